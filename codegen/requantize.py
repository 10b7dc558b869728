"""The ``requantize`` intrinsic of the loop IR: an int32 accumulator scaled by a real multiplier
given as an int32 fixed-point multiplier and a right shift, in integer arithmetic only.

``requantize(acc, m, shift)`` (int32, int32, int32 -> int32) is
``round_half_to_even(acc * m / 2**shift)``, computed exactly in 64 bits and saturated to int32,
for ``1 <= shift <= 62``
(``requantize_hi``, the same function, for ``33 <= shift <= 62`` only: a multiplier below 1/4,
the usual case, whose C form works in 32-bit words and is always inlined; ``requantize64``, the
same function of an int64 accumulator below 2**47 in magnitude, ``25 <= shift <= 62``, for the
16x8 layers whose sums outgrow int32, in 64-bit words without a 128-bit product; TFLite's int64
``MultiplyByQuantizedMultiplier`` in tensorflow/lite/kernels/internal/common.h takes the same
accumulator range but cuts the multiplier to 16 bits and rounds half up):

    p = int64(acc) * m
    r = (p + (2**(shift-1) - 1) + ((p >> shift) & 1)) >> shift     (>> arithmetic: floor)

Adding ``2**(shift-1) - 1`` plus the parity of ``floor(p / 2**shift)`` carries into the quotient
exactly when the remainder is above one half, or equal to one half with an odd quotient: round
half to even, the rounding of the ONNX spec (QuantizeLinear, QLinearConv) and of onnxruntime's
``nearbyint``. The form is the single-rounding requantization of TFLite
(``MultiplyByQuantizedMultiplier`` under ``TFLITE_SINGLE_ROUNDING``) and CMSIS-NN
(``arm_nn_requantize`` under ``CMSIS_NN_USE_SINGLE_ROUNDING``), which round half up; onnxcc rounds
half to even so that it equals the spec's float formula.

:func:`quantize_multiplier` turns the float32 multiplier of the spec
(``float32(x_scale * w_scale) / y_scale``) into ``(m, shift)`` with no error at all: a float32
has a 24-bit significand, so ``m * 2**-shift`` is the float32 value exactly and ``requantize``
equals the spec's ``round(acc * multiplier)`` evaluated in exact arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

C_HELPER = """\
/* round_half_to_even(acc * m / 2^shift) saturated to int32, 1 <= shift <= 62 (onnxcc's
   requantize intrinsic: single rounding, exact in 64 bits; >> of a negative value is an
   arithmetic shift on gcc, clang and arm-none-eabi-gcc). */
static inline int32_t onnxcc_requantize(int32_t acc, int32_t m, int32_t shift) {
    int64_t p = (int64_t)acc * (int64_t)m;
    if (shift >= 32) {
        /* the usual case (a multiplier below 1/2): |p| < 2^62, so the result fits in 31 bits
           and the 64-bit shifts are of the high word by shift - 32, in 32 bits */
        int32_t t = shift - 32;
        int32_t odd = ((int32_t)(p >> 32) >> t) & 1;
        int64_t s = p + (((int64_t)(1u << t) << 31) - 1 + odd);
        return (int32_t)(s >> 32) >> t;
    }
    int64_t r = (p + ((INT64_C(1) << (shift - 1)) - 1) + ((p >> shift) & 1)) >> shift;
    return r > INT32_MAX ? INT32_MAX : (r < INT32_MIN ? INT32_MIN : (int32_t)r);
}"""

C_HELPER_NARROW = """\
/* onnxcc_requantize for 32 <= shift <= 62 (a multiplier below 1/2: every shift of the call sites
   that use it is known at compile time): |acc * m| < 2^62, so the result fits in 31 bits and
   the 64-bit shifts are of the high word by shift - 32, in 32 bits. */
static inline int32_t onnxcc_requantize_narrow(int32_t acc, int32_t m, int32_t shift) {
    int64_t p = (int64_t)acc * (int64_t)m;
    int32_t t = shift - 32;
    int32_t odd = ((int32_t)(p >> 32) >> t) & 1;
    int64_t s = p + (((int64_t)(1u << t) << 31) - 1 + odd);
    return (int32_t)(s >> 32) >> t;
}"""
NARROW_SHIFT = 32   # the least shift C_HELPER_NARROW takes


C_HELPER_HI = """\
/* onnxcc_requantize for 33 <= shift <= 62 (onnxcc's requantize_hi intrinsic): with
   p = acc * m = hi * 2^32 + lo and t = shift - 32 >= 1, the high word of p + 2^(31+t) - 1 + odd
   is that of (hi * 2^32 + (lo | odd)) + 2^(31+t) - 1 (the low word of the addend is all ones:
   the carry out of it is lo + odd >= 1), one 64-bit add; |p| < 2^62, so nothing overflows and
   no saturation is needed. The addend 2^(31+t) - 1 is written as its two words, the high one
   2^(t-1) - 1 and the low one all ones, which gcc computes in 3 instructions per channel (8 for
   the 64-bit shift). Inlined, so that the per-channel constants stay out of the loops. */
static inline __attribute__((always_inline)) int32_t onnxcc_requantize_hi(int32_t acc,
                                                                          int32_t m,
                                                                          int32_t shift) {
    int64_t p = (int64_t)acc * (int64_t)m;
    int32_t t = shift - 32;
    int32_t hi = (int32_t)((uint64_t)p >> 32);
    uint32_t lo = (uint32_t)p | (uint32_t)((hi >> t) & 1);
    uint32_t rhi = (1u << (t - 1)) - 1u;
    uint64_t q = (((uint64_t)(uint32_t)hi << 32) | lo) + (((uint64_t)rhi << 32) | 0xFFFFFFFFu);
    return (int32_t)(uint32_t)(q >> 32) >> t;
}"""

C_HELPER_64 = """\
/* round_half_to_even(acc * m / 2^shift) saturated to int32 for an int64 acc, |acc| < 2^47,
   0 <= m < 2^31, 25 <= shift <= 62 (onnxcc's requantize64 intrinsic: the 16x8 layers whose sums
   outgrow int32). With acc = ah * 2^24 + al, 0 <= al < 2^24, the product acc * m (up to 2^78) is
   q1 * 2^24 + r1 exactly, q1 = ah * m + ((al * m) >> 24) (|q1| < 2^55), r1 = (al * m) mod 2^24;
   its quotient by 2^shift is q1's by 2^(shift - 24) with r1 as further low bits, all in 64-bit
   words (& of a negative int64 is of its two's complement on gcc, clang, arm-none-eabi-gcc). */
static inline int32_t onnxcc_requantize64(int64_t acc, int32_t m, int32_t shift) {
    int64_t ah = acc >> 24;
    int64_t lo = (acc & INT64_C(0xFFFFFF)) * (int64_t)m;
    int64_t q1 = ah * (int64_t)m + (lo >> 24);
    int64_t r1 = lo & INT64_C(0xFFFFFF);
    int32_t t = shift - 24;
    int64_t fl = q1 >> t;
    int64_t rem = q1 & ((INT64_C(1) << t) - 1);
    int64_t half = INT64_C(1) << (t - 1);
    int64_t r = fl + (rem > half || (rem == half && (r1 != 0 || (fl & 1))));
    return r > INT32_MAX ? INT32_MAX : (r < INT32_MIN ? INT32_MIN : (int32_t)r);
}"""
REQUANTIZE64_MIN_SHIFT = 25     # requantize64's least shift (a multiplier below 64)
ACC64_MAX = (1 << 47) - 1       # requantize64's largest |acc|


SAT8_C = """\
/* x saturated to int8 (onnxcc's sat_i8 intrinsic): Arm's SSAT where the core has it */
static inline int32_t onnxcc_sat_i8(int32_t x) {
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    return __builtin_arm_ssat(x, 8);
#else
    return x > 127 ? 127 : (x < -128 ? -128 : x);
#endif
}"""

USAT8_C = """\
/* x saturated to uint8 (onnxcc's sat_u8 intrinsic): Arm's USAT where the core has it */
static inline int32_t onnxcc_sat_u8(int32_t x) {
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    return (int32_t)__builtin_arm_usat(x, 8);
#else
    return x > 255 ? 255 : (x < 0 ? 0 : x);
#endif
}"""


SMMLA_C = """\
/* the high word of acc * 2^32 + a * b (onnxcc's smmla intrinsic: Arm's SMMLA where the DSP
   extension is, the 64-bit product elsewhere; modulo 2^64 alike, so equal for every input). */
static inline int32_t onnxcc_smmla(int32_t a, int32_t b, int32_t acc) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t r;
    __asm__("smmla %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    uint64_t s = (uint64_t)((int64_t)a * (int64_t)b) + ((uint64_t)(uint32_t)acc << 32);
    return (int32_t)(uint32_t)(s >> 32);
#endif
}"""


def smmla(a, b, acc):
    """numpy reference of ``smmla``: the high word of ``acc * 2**32 + a * b`` (int32 operands),
    ``acc + floor(a * b / 2**32)`` wrapped to int32, as Arm's SMMLA computes it."""
    p = np.asarray(a, np.int64) * np.asarray(b, np.int64)
    out = (np.asarray(acc, np.int64) + (p >> 32)).astype(np.int32)
    return out[()] if out.ndim == 0 else out


SRDHM_C = """\
/* gemmlowp's SaturatingRoundingDoublingHighMul (onnxcc's srdhm intrinsic): a * b / 2^31 rounded
   half up (gemmlowp's nudge 2^30, or 1 - 2^30 for a negative product, then a truncating
   division: -0.5 gives 0), INT32_MIN * INT32_MIN (the one overflow) saturated to INT32_MAX.
   The nudged product's truncation toward zero is (p + 2^30) >> 31 for either sign of p (floor:
   >> of int64 is arithmetic on every compiler onnxcc targets), so no 64-bit division; q lies
   in [-2^31 + 1, 2^31], so its low word is INT32_MIN only for the overflow. */
static inline int32_t onnxcc_srdhm(int32_t a, int32_t b) {
    int64_t q = ((int64_t)a * (int64_t)b + (INT64_C(1) << 30)) >> 31;
    int32_t r = (int32_t)(uint32_t)(uint64_t)q;
    return r == INT32_MIN ? INT32_MAX : r;
}"""


def srdhm(a, b):
    """numpy reference of ``srdhm``: gemmlowp's SaturatingRoundingDoublingHighMul of int32 ``a``
    and ``b`` as ``onnxcc.ops.quant_int.srdhm`` computes it (the integer Softmax's reference),
    as int32: ``a * b / 2**31`` rounded half up, only ``INT32_MIN * INT32_MIN`` saturated."""
    from onnxcc.ops.quant_int import srdhm as reference

    out = np.asarray(reference(a, b)).astype(np.int32)
    return out[()] if out.ndim == 0 else out


ROUND_I32_C = """\
/* round_half_to_even(v) as int32, saturated, NaN -> 0 (onnxcc's round_i32 intrinsic): one
   VCVTR (the FPSCR's rounding mode, round to nearest even from reset) on a core with a
   single-precision FPU, plain C elsewhere. */
static inline int32_t onnxcc_round_i32(float v) {
#if defined(__ARM_FP) && (__ARM_FP & 4) && !defined(__ARM_ARCH_6M__)
    float r;
    int32_t i;
    __asm__("vcvtr.s32.f32 %0, %1" : "=t"(r) : "t"(v));
    memcpy(&i, &r, sizeof i);
    return i;
#else
    float a = v < 0.0f ? -v : v;
    int32_t q, r;
    if (v != v) return 0;
    if (v >= 2147483648.0f) return INT32_MAX;
    if (v <= -2147483648.0f) return INT32_MIN;
    if (!(a < 8388608.0f)) return (int32_t)v;   /* already an integer */
    q = (int32_t)(a + a);
    r = (q + 1) >> 1;
    if ((q & r & 1) && (float)q == a + a) r -= 1;
    return v < 0.0f ? -r : r;
#endif
}"""


def round_i32(v):
    """numpy reference of ``round_i32``: float32 ``v`` rounded half to even, saturated to int32,
    NaN as 0 (Arm's VCVTR.S32.F32 in round-to-nearest mode)."""
    x = np.asarray(v, np.float32).astype(np.float64)
    r = np.rint(np.nan_to_num(x, nan=0.0))
    out = np.clip(r, INT32_MIN, INT32_MAX).astype(np.int32)
    return out[()] if out.ndim == 0 else out


QUANTIZE_C = """\
/* sat(round_half_to_even(x / s) + zp) to [@LO@, @HI@], NaN -> @LO@ (onnxcc's @NAME@ intrinsic: the
   float32 QuantizeLinear). v + 1.5 * 2^23 rounds v = x / s half to even in float32 (the FPSCR's
   default rounding) and its bits are 0x4B400000 + round(v) for |v| < 2^22; past that the bits
   of a non-negative sum grow with v, so they still saturate to the right end; a negative sum
   (v <= -1.5 * 2^23) and a NaN (bits above +inf's 0x7F800000, or with the sign set) go to @LO@.
   No rintf, no float compare (cortex-m4 -Os: VDIV, VADD, VMOV, SUB, SSAT, CMP, IT, MOV). Built
   with -ffast-math too: the empty asm makes s opaque, so x / s is not turned into x times a
   reciprocal rounded once (ties would move; the asm costs nothing, hoisted out of the loop),
   and the sum's bits are read, so it cannot be folded away as (v + M) - M could. */
static inline __attribute__((always_inline)) int32_t onnxcc_@NAME@(float x, float s, int32_t zp) {
    float f;
    uint32_t u;
    int32_t r;
#if defined(__GNUC__) && defined(__ARM_FP) && (__ARM_FP & 4)
    __asm__("" : "+t"(s));
#elif defined(__GNUC__) && defined(__riscv_flen)
    __asm__("" : "+f"(s));
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__("" : "+w"(s));
#elif defined(__GNUC__) && (defined(__x86_64__) || defined(__SSE2__))
    __asm__("" : "+x"(s));
#elif defined(__GNUC__)
    __asm__("" : "+r"(s));
#endif
    f = x / s + 12582912.0f;
    memcpy(&u, &f, sizeof u);
    r = (int32_t)(u - (uint32_t)(0x4B400000 - zp));
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
    r = @SAT@;
#else
    r = r > @HI@ ? @HI@ : (r < @LO@ ? @LO@ : r);
#endif
    return u > 0x7F800000u ? @LO@ : r;
}"""

def _quantize_c(name: str, lo: int, hi: int, sat: str) -> str:
    return QUANTIZE_C.replace("@NAME@", name).replace("@LO@", str(lo)).replace(
        "@HI@", str(hi)).replace("@SAT@", sat)


#: the ``quantize_*`` intrinsics: name -> (lo, hi, C helper)
QUANTIZE = {
    "quantize_i8": (-128, 127, _quantize_c("quantize_i8", -128, 127, "__builtin_arm_ssat(r, 8)")),
    "quantize_u8": (0, 255, _quantize_c("quantize_u8", 0, 255,
                                        "(int32_t)__builtin_arm_usat(r, 8)")),
    "quantize_i16": (-32768, 32767, _quantize_c("quantize_i16", -32768, 32767,
                                                "__builtin_arm_ssat(r, 16)")),
    "quantize_u16": (0, 65535, _quantize_c("quantize_u16", 0, 65535,
                                           "(int32_t)__builtin_arm_usat(r, 16)")),
}


def quantize_sat(v, zp, lo: int, hi: int):
    """numpy reference of the ``quantize_*`` intrinsics (:data:`QUANTIZE`; ``quantize_i8``: lo,
    hi = -128, 127):
    ``clip(round_half_to_even(v) + zp, lo, hi)`` of float32 ``v``, NaN as ``lo``: the spec's
    QuantizeLinear (ONNX operators, QuantizeLinear: saturate(round(x / y_scale) + y_zero_point))
    with NaN where onnxruntime's x86 kernel puts it (its clamp's MAXPS returns the bound)."""
    x = np.asarray(v, np.float32).astype(np.float64)
    r = np.rint(np.nan_to_num(x, nan=-np.inf, posinf=np.inf, neginf=-np.inf))
    out = np.clip(r + np.asarray(zp, np.float64), lo, hi)
    out = np.where(np.isnan(x), lo, out).astype(np.int32)
    return out[()] if out.ndim == 0 else out


def quantize_reference(name: str):
    """The numpy reference of the intrinsic ``name`` (a key of :data:`QUANTIZE`): ``f(x, s,
    zp)``, the float32 quotient ``x / s`` through :func:`quantize_sat`."""
    lo, hi, _ = QUANTIZE[name]

    def ref(x, s, zp):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            v = np.asarray(x, np.float32) / np.asarray(s, np.float32)
        return quantize_sat(v, zp, lo, hi)
    return ref


def mla_form(pairs: list[tuple[int, int]], bound: np.ndarray, zero_point: int, lo: int,
             hi: int) -> tuple[list[int], int, int] | None:
    """The requantize epilogue ``sat(requantize(acc, m_c, shift_c) + zero_point)`` of channels
    ``c`` (``pairs``: one ``(m, shift)`` per channel, or one for all) as
    ``sat(smmla(acc, m'_c, ra) >> t)``: Arm's SMMLA and an SSAT/USAT with a shift, 2
    instructions where the exact form takes about 8 (cortex-m4). Returns ``(m', t, ra)`` with
    one ``m'`` per pair, or None when the form is not exact for every accumulator with
    ``|acc| <= bound[c]`` (``bound``: int per channel, or one value), which it is when:

    - one shift ``S = 32 + t``, ``1 <= t <= 31``, serves every channel: ``m'_c = m_c >> (shift_c
      - S)`` loses no bit (``quantize_multiplier``'s m holds a float32 significand, 24 bits, so
      up to 7 trailing zeros of it may go), so ``m'_c / 2**S`` is channel c's multiplier;
    - no accumulator is a tie: ``acc * m'`` is an odd multiple of ``2**(S-1)`` only when
      ``|acc| >= 2**(S - 1 - v)``, ``v`` the trailing zeros of ``m'``, so below that bound
      rounding half up (a floor after adding ``2**(S-1)``) equals rounding half to even;
    - the zero point and the half fold into ``ra = 2**(t-1) + zero_point * 2**t``:
      ``floor((acc * m' + ra * 2**32) / 2**S) = round(acc * m' / 2**S) + zero_point``, and SMMLA's
      high word ``floor((ra * 2**32 + acc * m') / 2**32)`` fits int32 for every such acc, so the
      arithmetic shift by t of it is that floor exactly;
    - the clamp is the output type's range: ``(lo, hi)`` is (-128, 127) or (0, 255) (SSAT/USAT).
    """
    if (lo, hi) not in ((-128, 127), (0, 255)):
        return None
    live = [s for m, s in pairs if m]
    if not live:
        return None
    S = min(live)
    t = S - 32
    if not 1 <= t <= 31:
        return None
    ra = (1 << (t - 1)) + zero_point * (1 << t)
    if not INT32_MIN <= ra <= INT32_MAX:
        return None
    b = np.broadcast_to(np.asarray(bound, np.int64).reshape(-1), (len(pairs),)) \
        if len(pairs) > 1 else [int(np.max(bound))]
    out = []
    for (m, s), bc in zip(pairs, b):
        bc = int(bc)
        if m == 0:
            out.append(0)
            continue
        k = s - S
        if m & ((1 << k) - 1):
            return None
        mm = m >> k
        v = (mm & -mm).bit_length() - 1
        if bc >= 1 << (S - 1 - v):
            return None
        top = (ra * (1 << 32) + bc * mm) >> 32, (ra * (1 << 32) - bc * mm) >> 32
        if not all(INT32_MIN <= x <= INT32_MAX for x in top):
            return None
        out.append(mm)
    return out, t, ra


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``(m, shift)`` with ``m * 2**-shift == real`` for a float32 ``real`` >= 0, m an int32 in
    [2**30, 2**31) and 1 <= shift <= 62. A multiplier under 2**-32 maps to (0, 1): every int32
    accumulator then rounds to 0 whatever the shift. One of 2**30 or more maps to
    (2**31 - 1, 1), which saturates every non-zero accumulator as the exact product would.
    Raises ValueError for a negative, NaN or infinite ``real``."""
    real = float(np.float32(real))
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"requantization multiplier {real!r} must be finite and >= 0")
    if real == 0.0:
        return 0, 1
    mant, exp = math.frexp(real)             # real = mant * 2**exp, mant in [0.5, 1)
    m = int(mant * (1 << 31))                # exact: 24 significant bits
    shift = 31 - exp
    if shift > 62:
        # |acc * m| < 2**62, so |acc * real| < 2**(62 - shift) <= 1/2 and rounds to 0
        return 0, 1
    if shift < 1:
        return INT32_MAX, 1
    return m, shift


def requantize(acc, m, shift):
    """numpy reference of the intrinsic (scalars or broadcastable int arrays); int32 result."""
    p = np.asarray(acc, np.int64) * np.asarray(m, np.int64)
    s = np.asarray(shift, np.int64)
    r = (p + ((np.int64(1) << (s - 1)) - 1) + ((p >> s) & 1)) >> s
    out = np.clip(r, INT32_MIN, INT32_MAX).astype(np.int32)
    return out[()] if out.ndim == 0 else out


def requantize_hi(acc, m, shift):
    """numpy reference of ``requantize_hi``: :func:`requantize` for 33 <= shift <= 62 (raises
    ValueError for another shift)."""
    if not np.all((np.asarray(shift) >= 33) & (np.asarray(shift) <= 62)):
        raise ValueError(f"requantize_hi needs 33 <= shift <= 62, got {shift!r}")
    return requantize(acc, m, shift)


def requantize64(acc, m, shift):
    """numpy reference of ``requantize64``: :func:`requantize` of an int64 ``acc`` (|acc| <
    2**47; 25 <= shift <= 62), by the C helper's split into 64-bit words; int32 result. Raises
    ValueError outside those ranges."""
    acc, m, s = np.broadcast_arrays(np.asarray(acc, np.int64), np.asarray(m, np.int64),
                                    np.asarray(shift, np.int64))
    if np.any(np.abs(acc) > ACC64_MAX) or np.any((s < REQUANTIZE64_MIN_SHIFT) | (s > 62)):
        raise ValueError("requantize64 needs |acc| < 2**47 and 25 <= shift <= 62")
    low = np.int64(0xFFFFFF)
    lo = (acc & low) * m
    q1 = (acc >> 24) * m + (lo >> 24)
    r1 = lo & low
    t = s - 24
    fl = q1 >> t
    rem = q1 & ((np.int64(1) << t) - 1)
    half = np.int64(1) << (t - 1)
    up = (rem > half) | ((rem == half) & ((r1 != 0) | ((fl & 1) == 1)))
    out = np.clip(fl + up.astype(np.int64), INT32_MIN, INT32_MAX).astype(np.int32)
    return out[()] if out.ndim == 0 else out


def sat_i8(x):
    """numpy reference of ``sat_i8``: int32 ``x`` clamped to [-128, 127]."""
    return np.int32(min(max(int(x), -128), 127))


def sat_u8(x):
    """numpy reference of ``sat_u8``: int32 ``x`` clamped to [0, 255]."""
    return np.int32(min(max(int(x), 0), 255))
