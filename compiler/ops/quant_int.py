"""Integer-only Softmax and average pools: onnxcc.QSoftmax, com.microsoft.QLinearAveragePool and
com.microsoft.QLinearGlobalAveragePool, with the bit-exact numpy references the compiled kernels
(``onnxcc.codegen.lower.quant_softmax``, ``quant_pool``) are tested against.

Softmax (TFLite's int8/uint8 softmax, as CMSIS-NN's ``arm_softmax_s8`` computes it):

- ``softmax_params(input_scale)`` is TFLite's ``PreprocessSoftmaxScaling`` (beta 1, 5 integer
  bits of the scaled difference) and ``CalculateInputRadius``
  (tensorflow/lite/kernels/internal/quantization_util.cc): ``input_multiplier`` and
  ``input_left_shift`` with ``multiplier * 2**(left_shift - 31) == input_scale * 2**26``
  (``QuantizeMultiplier``: frexp, round half away from zero), and ``diff_min``, the most
  negative ``x - max`` whose exp is not negligible.
- per row: ``d = x - max(row)``; for ``d >= diff_min``, ``e = exp_on_negative_values(
  SaturatingRoundingDoublingHighMul(d * 2**left_shift, input_multiplier))`` (Q5.26 in, Q0.31
  out; gemmlowp fixedpoint.h), ``sum += RoundingDivideByPOT(e, 12)`` (a Q12.19 accumulator);
  then ``GetReciprocal(sum, 12)``: ``one_over_one_plus_x_for_x_in_0_1`` (gemmlowp, Newton-
  Raphson, three steps) of the sum normalized by its leading zeros, giving ``scale`` (Q0.31)
  and ``bits_over_unit`` (tensorflow/lite/kernels/internal/reference/softmax.h).
- ``p = SaturatingRoundingDoublingHighMul(scale, e)`` is the probability times
  ``2**(31 + bits_over_unit)``. TFLite writes ``RoundingDivideByPOT(p, bits_over_unit + 23)
  + type_min`` (an output of scale 1/256, zero point -128 for int8, 0 for uint8). onnxcc takes
  any output scale and zero point: ``y = saturate(((p * out_multiplier + 2**(s - 1)) >> s) +
  zero_point)`` with ``s = out_shift + bits_over_unit`` and ``out_multiplier * 2**-out_shift
  == 2**-31 / y_scale`` (``onnxcc.codegen.requantize.quantize_multiplier``; ``s`` of 63 or more
  gives 0). For scale 1/256 that is TFLite's expression exactly (out_multiplier 2**30,
  out_shift 53); the rounding is half up (p >= 0), as TFLite's. Elements with ``d < diff_min``
  get the zero point (TFLite: -128). Every intermediate is the int32 value TFLite computes; the
  reference holds them in int64 and so gives the exact rounding where TFLite's
  ``RoundingDivideByPOT`` would be asked for a shift past 31 (rows summing to 2**28 or more).
- Rows of more than ``SOFTMAX_MAX_ROW`` elements could overflow the Q12.19 sum and are refused.

Average pools (the int32 sum of TFLite's int8 AveragePool, reference_integer_ops/pooling.h):

- x and y with the same scale and zero point and count_include_pad 0 (what onnxruntime's
  quantizer and onnxcc's write): ``acc = sum of x`` over the window's taps inside x (int32),
  ``y = saturate(round_half_to_even(acc / c))``, ``c`` the taps counted, in integers:
  ``t = 2 * (acc + 128 * c) + c`` (>= 0), ``q = t / (2 * c)``, less 1 when ``t % (2 * c) == 0``
  and q is odd, ``y = q - 128``. That is onnxruntime's QLinearAveragePool,
  ``nearbyint(mean / y_scale + y_zero_point)`` on the dequantized values, computed exactly (its
  float32 sum can round an exact tie either way), and the QDQ pattern's
  ``QuantizeLinear(mean)`` (round half to even, then the zero point) whenever the zero point is
  even (0, 128, -128: every activation onnxruntime's quantizer writes after a Relu). With the
  attribute ``round_before_zero_point`` (set by ``passes/qdq_int.py`` on the pools it makes of
  the QDQ pattern), the zero point comes out first, as QuantizeLinear does for any zero point:
  ``acc = sum of (x - zp)``, ``t = 2 * (acc + 256 * c) + c``, ``y = q - 256 + zp``. TFLite
  rounds half away from zero instead ((acc + c/2) / c for acc > 0, else (acc - c/2) / c): on
  2x2 windows with padding over random int8 and uint8 inputs (zero points -5 and 3) that
  equals onnxruntime's QLinearAveragePool on 86% and 82% of the outputs, this rounding on 95%
  and 96% (the rest: ties that onnxruntime's float32 sum moved; all within 1).
- otherwise (other parameters, or padding counted): ``acc = sum of (x - x_zp)`` (a padded tap
  adds 0), ``y = saturate(requantize(acc, m_c, s_c) + y_zp)`` with ``(m_c, s_c)`` the
  fixed-point form of ``float32(x_scale / y_scale) / c`` (``onnxcc.codegen.requantize``: round
  half to even); one pair per count ``c``.
onnxruntime's QLinearAveragePool/QLinearGlobalAveragePool average in float and round half to
even; the integer results differ from them by at most 1, where float rounding moves a tie.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir import Node, TensorType
from . import OpDef, attr, bad_attr, register_op
from ._util import has_input
from .nn import AveragePool, _ceil_pad_end, _pad_spatial, _taps, pool_counts, pool_geometry
from .quant import ACC_TYPES, _scale, _zero_point, qrange, unsupported

Q31_MIN, Q31_MAX = -(1 << 31), (1 << 31) - 1
SCALED_DIFF_BITS = 5          # kScaledDiffIntegerBits: the exp's input is Q5.26
ACCUM_BITS = 12               # kAccumulationIntegerBits: the sum of exps is Q12.19
SOFTMAX_MAX_ROW = 4095        # 4095 * 2**19 < 2**31: the Q12.19 sum cannot overflow
EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)
# exp(-1/4), exp(-1/2), exp(-1), exp(-2), exp(-4), exp(-8), exp(-16) in Q0.31 (gemmlowp)


# ---- gemmlowp fixed-point primitives (fixedpoint.h), on int64 arrays holding int32 values ------
def srdhm(a, b) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul: round(a * b / 2**31) with ties rounded up, toward
    +inf (gemmlowp's nudge 1 - 2**30 for a negative product, then C's truncating division:
    -0.5 gives 0, -1.5 gives -1, 0.5 gives 1), saturated (only a = b = INT32_MIN overflows)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    r = a * b + np.where(a * b >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(r >= 0, r >> 31, -((-r) >> 31))         # C division: truncate toward zero
    return np.where((a == b) & (a == Q31_MIN), Q31_MAX, q)


def rdbp(x, e) -> np.ndarray:
    """RoundingDivideByPOT: round(x / 2**e), ties away from zero."""
    x, e = np.asarray(x, np.int64), np.asarray(e, np.int64)
    mask = (np.int64(1) << e) - 1
    return (x >> e) + ((x & mask) > ((mask >> 1) + (x < 0))).astype(np.int64)


def mul_pot(x, e: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT for e > 0: x * 2**e saturated to int32."""
    x = np.asarray(x, np.int64)
    thr = (1 << (31 - e)) - 1
    return np.where(x > thr, Q31_MAX, np.where(x < -thr, Q31_MIN, x << e))


def exp_on_negative_values(a) -> np.ndarray:
    """gemmlowp's exp_on_negative_values for a Q5.26 ``a <= 0``: exp(a) in Q0.31 (Q31_MAX at 0).
    exp of a in [-1/4, 0) by a 4th-order Taylor polynomial around -1/8, times exp(-2**k) for
    each bit k of the remainder (the barrel shifter)."""
    a = np.asarray(a, np.int64)
    quarter = 1 << 24
    amq = (a & (quarter - 1)) - quarter                  # a mod -1/4, in [-1/4, 0)
    rem = amq - a
    x = amq * 32 + (1 << 28)                             # Q0.31, plus 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = rdbp(srdhm(rdbp(x4, 2) + x3, 715827883) + x2, 1)       # 715827883 = 1/3
    r = 1895147668 + srdhm(1895147668, x + poly)                  # exp(-1/8) * (1 + ...)
    for k, c in enumerate(EXP_BARREL):
        r = np.where(rem & (1 << (24 + k)), srdhm(r, c), r)
    return np.where(a == 0, Q31_MAX, r)


def one_over_one_plus_x(a) -> np.ndarray:
    """gemmlowp's one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) for a Q0.31 ``a`` in [0, 1),
    result Q0.31; Newton-Raphson on the half denominator in Q2.29, three steps."""
    s = np.asarray(a, np.int64) + Q31_MAX
    half = np.where(s >= 0, (s + 1) >> 1, -((-(s - 1)) >> 1))   # RoundingHalfSum(a, 1)
    x = 1515870810 + srdhm(half, -1010580540)                      # 48/17 - 32/17 * half
    one = 1 << 29
    for _ in range(3):
        x = x + mul_pot(srdhm(x, one - srdhm(half, x)), 2)
    return mul_pot(x, 1)


def clz32(x) -> np.ndarray:
    """Leading zero bits of a positive int32."""
    x = np.asarray(x, np.int64)
    n = np.zeros(x.shape, np.int64)
    for k in (16, 8, 4, 2, 1):
        c = x < (np.int64(1) << (32 - k))
        n = n + np.where(c, k, 0)
        x = np.where(c, x << k, x)
    return n


# ---- Softmax -------------------------------------------------------------------------------------
def quantize_multiplier_tflite(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier for ``real`` > 0 (double): ``(m, shift)`` with m in
    [2**30, 2**31) and ``real == m * 2**(shift - 31)`` up to the rounding of m (half away from
    zero)."""
    q, shift = math.frexp(real)
    m = int(math.floor(q * (1 << 31) + 0.5))
    if m == 1 << 31:
        m //= 2
        shift += 1
    return m, shift


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int] | None:
    """``(input_multiplier, input_left_shift, diff_min)`` of TFLite's softmax for an input of
    ``input_scale`` (module docstring); None when ``beta * input_scale * 2**26 <= 1`` (TFLite
    refuses: the multiplier must exceed 1)."""
    real = min(float(beta) * float(input_scale) * (1 << (31 - SCALED_DIFF_BITS)),
               float((1 << 31) - 1))
    if not real > 1.0:
        return None
    m, shift = quantize_multiplier_tflite(real)
    radius = math.floor(((1 << SCALED_DIFF_BITS) - 1) * (1 << (31 - SCALED_DIFF_BITS))
                        / (1 << shift))
    return m, shift, -radius


def softmax_rows(x: np.ndarray, multiplier: int, left_shift: int, diff_min: int,
                 out_multiplier: int, out_shift: int, zero_point: int,
                 out_dtype: np.dtype) -> np.ndarray:
    """The integer softmax (module docstring) over the last axis of x (int8/uint8, (R, L))."""
    xi = np.asarray(x, np.int64)
    d = xi - xi.max(axis=-1, keepdims=True)
    ok = d >= diff_min
    scaled = srdhm(np.where(ok, d, 0) * (np.int64(1) << left_shift), multiplier)
    e = exp_on_negative_values(scaled)
    total = np.where(ok, rdbp(e, ACCUM_BITS), 0).sum(axis=-1, keepdims=True)
    hp1 = clz32(total)
    bits_over_unit = ACCUM_BITS - hp1
    scale = one_over_one_plus_x((total << hp1) - (np.int64(1) << 31))
    p = srdhm(scale, e)
    s = out_shift + bits_over_unit
    big = s >= 63
    sc = np.where(big, 1, s)
    v = np.where(big, 0, (p * out_multiplier + (np.int64(1) << (sc - 1))) >> sc)
    lo, hi = qrange(out_dtype)
    return np.clip(np.where(ok, v, 0) + zero_point, lo, hi).astype(out_dtype)


def row_view(shape: tuple[int, ...], axis: int, count: int) -> tuple[int, int, int]:
    """(outer, row length, inner) of a softmax over axes ``[axis, axis + count)`` of ``shape``."""
    return (math.prod(shape[:axis]), math.prod(shape[axis:axis + count]),
            math.prod(shape[axis + count:]))


@register_op("onnxcc.QSoftmax")
class QSoftmax(OpDef):
    """onnxcc's integer Softmax (module docstring), made by fuse_qdq from QuantizeLinear(Softmax(
    DequantizeLinear(x))): x int8/uint8 of any shape; y of the type ``to`` (int8/uint8, same
    shape), the softmax over axes ``[axis, axis + count)`` (one axis from opset 13; the
    flattened trailing axes before). Attributes: TFLite's ``multiplier``, ``left_shift``,
    ``diff_min`` (``softmax_params``), the output's ``out_multiplier``, ``out_shift`` and
    ``zero_point``."""

    attrs = {"axis": -1, "count": 1, "multiplier": 0, "left_shift": 0, "diff_min": 0,
             "out_multiplier": 0, "out_shift": 0, "zero_point": 0, "to": "int8"}
    min_inputs, max_inputs = 1, 1

    def check(self, node: Node) -> None:
        x = node.inputs[0]
        if x.dtype not in ACC_TYPES or np.dtype(attr(node, "to")) not in ACC_TYPES:
            raise unsupported(node, f"integer Softmax of {x.dtype} to {attr(node, 'to')} "
                              "(int8 or uint8)")
        a, c = int(attr(node, "axis")), int(attr(node, "count"))
        if not (0 <= a and c >= 1 and a + c <= len(x.shape)):
            raise bad_attr(node, f"axes [{a}, {a + c}) do not fit x of rank {len(x.shape)}")
        if row_view(x.shape, a, c)[1] > SOFTMAX_MAX_ROW:
            raise unsupported(node, f"rows longer than {SOFTMAX_MAX_ROW} elements")
        if not 0 <= int(attr(node, "left_shift")) <= 31:
            raise bad_attr(node, "left_shift must be in [0, 31]")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, np.dtype(attr(node, "to")))]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        outer, L, inner = row_view(x.shape, int(attr(node, "axis")), int(attr(node, "count")))
        rows = np.moveaxis(x.reshape(outer, L, inner), 1, 2).reshape(-1, L)
        y = softmax_rows(rows, *(int(attr(node, k)) for k in (
            "multiplier", "left_shift", "diff_min", "out_multiplier", "out_shift",
            "zero_point")), np.dtype(attr(node, "to")))
        return [np.moveaxis(y.reshape(outer, inner, L), 2, 1).reshape(x.shape)]


# ---- average pools -------------------------------------------------------------------------------
def pool_params(node: Node, xs, xz, ys, yz) -> tuple[bool, float]:
    """(tflite, real): whether the rounding division of the stored sum applies (same scale and
    zero point, padding not counted; TFLite's form), and the float32 ratio x_scale / y_scale."""
    f32 = np.float32
    s_x, s_y = f32(np.asarray(xs).reshape(-1)[0]), f32(np.asarray(ys).reshape(-1)[0])
    z_x = 0 if xz is None else int(np.asarray(xz).reshape(-1)[0])
    z_y = 0 if yz is None else int(np.asarray(yz).reshape(-1)[0])
    include = node.op.endswith("QLinearAveragePool") and bool(attr(node, "count_include_pad"))
    return (s_x == s_y and z_x == z_y and not include), float(s_x / s_y)


def count_multipliers(real: float, counts) -> dict[int, tuple[int, int]]:
    """Fixed-point ``(m, shift)`` of ``float32(real) / c`` per count ``c``."""
    from onnxcc.codegen.requantize import quantize_multiplier

    return {int(c): quantize_multiplier(float(np.float32(np.float32(real) / np.float32(c))))
            for c in sorted(set(np.asarray(counts).reshape(-1).tolist()))}


def pool_int(node: Node, x: np.ndarray, xs, xz, ys, yz, geometry) -> np.ndarray:
    """The integer average pool (module docstring) of x (N, C, *S) with ``geometry`` =
    pool_geometry's tuple and count_include_pad."""
    from onnxcc.codegen.requantize import requantize

    pb, pe, strides, dil, kernel, out, include = geometry
    tflite, real = pool_params(node, xs, xz, ys, yz)
    z_x = 0 if xz is None else int(np.asarray(xz).reshape(-1)[0])
    z_y = 0 if yz is None else int(np.asarray(yz).reshape(-1)[0])
    before = tflite and bool(node.attrs.get("round_before_zero_point"))
    xi = x.astype(np.int64) - (z_x if before or not tflite else 0)
    xp = _pad_spatial(xi, pb, _ceil_pad_end(x.shape[2:], pb, strides, dil, kernel, out))
    acc = None
    for _, v in _taps(xp, kernel, strides, dil, out):
        acc = v.copy() if acc is None else acc + v
    cnt = pool_counts(x.shape[2:], pb, pe, strides, dil, kernel, out, include)
    cnt = np.broadcast_to(cnt, acc.shape).astype(np.int64)
    lo, hi = qrange(x.dtype)
    acc = acc.astype(np.int32).astype(np.int64)        # the kernel's int32 accumulator
    if tflite:
        off = 256 if before else 128                   # x - zp >= -255; x >= -128
        t = 2 * (acc + off * cnt) + cnt                # >= 0
        q = t // (2 * cnt)
        q = np.where(t % (2 * cnt) == 0, q - q % 2, q)  # an exact tie: to the even quotient
        return np.clip(q - off + (z_x if before else 0), lo, hi).astype(x.dtype)
    mults = count_multipliers(real, cnt)
    m = np.vectorize(lambda c: mults[int(c)][0], otypes=[np.int64])(cnt)
    s = np.vectorize(lambda c: mults[int(c)][1], otypes=[np.int64])(cnt)
    y = requantize(acc, m, s).astype(np.int64) + z_y
    return np.clip(y, lo, hi).astype(x.dtype)


class _QPool(OpDef):
    """Shared checks: X int8/uint8 (N, C, *S) NCHW, per-tensor constant-or-runtime scales."""

    min_inputs, max_inputs = 4, 5

    def check(self, node: Node) -> None:
        x = node.inputs[0]
        if x.dtype not in ACC_TYPES:
            raise unsupported(node, f"X of type {x.dtype} (int8 or uint8)")
        if len(x.shape) < 3:
            raise bad_attr(node, "X must be (N, C, spatial...)")
        if attr(node, "channels_last"):
            raise unsupported(node, "channels_last=1 (NHWC); onnxcc compiles NCHW")
        _scale(node, 1, "x_scale")
        _scale(node, 3, "y_scale")
        _zero_point(node, 2, 0, "x_zero_point", ())
        if has_input(node, 4):
            _zero_point(node, 4, 0, "y_zero_point", ())
        names = ("x_scale", "x_zero_point", "y_scale", "y_zero_point")
        for k in (1, 2, 3, 4):
            if has_input(node, k) and node.inputs[k].const is None:
                raise unsupported(node, f"runtime {names[k - 1]} (onnxcc needs constants)")


@register_op("QLinearAveragePool", domain="com.microsoft")
class QLinearAveragePool(_QPool):
    """onnxruntime's QLinearAveragePool (domain com.microsoft): inputs X, x_scale,
    x_zero_point, y_scale, y_zero_point; AveragePool's attributes (and channels_last, 0 only).
    y = the integer average of each window (module docstring), X and y per tensor."""

    attrs = dict(AveragePool.attrs, channels_last=0)

    def check(self, node: Node) -> None:
        super().check(node)
        AveragePool().check(node)

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        out = pool_geometry(node, x.shape)[5]
        return [TensorType(tuple(x.shape[:2]) + tuple(out), x.dtype)]

    def reference(self, node, x, xs, xz, ys, yz=None):
        g = pool_geometry(node, x.shape)
        return [pool_int(node, x, xs, xz, ys, yz,
                         (*g, bool(attr(node, "count_include_pad"))))]


@register_op("QLinearGlobalAveragePool", domain="com.microsoft")
class QLinearGlobalAveragePool(_QPool):
    """onnxruntime's QLinearGlobalAveragePool (domain com.microsoft): inputs X, x_scale,
    x_zero_point, y_scale, y_zero_point; channels_last 0 only. y (N, C, 1, ...) = the integer
    average over all spatial positions (module docstring)."""

    attrs = {"channels_last": 0}

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        return [TensorType(tuple(x.shape[:2]) + (1,) * (len(x.shape) - 2), x.dtype)]

    def reference(self, node, x, xs, xz, ys, yz=None):
        sp = tuple(x.shape[2:])
        n = len(sp)
        g = ((0,) * n, (0,) * n, (1,) * n, (1,) * n, sp, (1,) * n, False)
        return [pool_int(node, x, xs, xz, ys, yz, g)]
