"""The ``smlad`` and ``sxtb16`` intrinsics of the loop IR: Arm's dual 16-bit multiply-accumulate
and its dual sign extension of bytes.

``smlad(a, b, acc)`` (int32, int32, int32 -> int32) reads ``a`` and ``b`` as two signed 16-bit
lanes each (bits 0-15 the low lane, 16-31 the high lane, as a little-endian int16 pair is laid
out in memory) and returns ``acc + lo(a) * lo(b) + hi(a) * hi(b)`` wrapped to int32 (two's
complement, as every int32 sum of the loop IR wraps). This is Arm's ``SMLAD`` instruction of the
DSP extension (ARMv7E-M, ARMv8-M Mainline with DSP: Cortex-M4, M7, M33, M55; ACLE's
``__smlad``), which also wraps and only sets the Q flag on overflow. Lowerings emit it only for
a target with ``Target.dsp`` (``codegen/lower/int_blocked.py``); the C helper falls back to
plain C where the compiler does not define ``__ARM_FEATURE_DSP``, so the same source also builds
on a host.

``sxtb16(x, rot)`` (int32, constant 0 or 8 -> int32) is Arm's ``SXTB16`` of ``x`` rotated right
by ``rot`` bits: bytes 0 and 2 (``rot`` 0) or 1 and 3 (``rot`` 8) of ``x``, each sign-extended
into a 16-bit lane (low, high), the word ``smlad`` reads. It widens four int8 weights loaded as
one word into two words of int16 pairs. ACLE has ``__sxtb16`` but no rotate, so the rotated form
is one ``sxtb16 ..., ror #8`` in inline assembly (gcc 12 does not fold a C rotate into it).

``smladx(a, b, acc)`` is ``smlad`` with the halves of ``b`` exchanged: ``acc + lo(a) * hi(b) +
hi(a) * lo(b)`` (Arm's ``SMLADX``, ACLE's ``__smladx``).

``pack4(b0, b1, b2, b3)`` (four int8 -> int32) is the word whose bytes are ``b0`` (bits 0-7) to
``b3`` (bits 24-31), as four consecutive int8 read as one little-endian int32. When its arguments
are unmasked loads of four consecutive elements of one buffer (the last index ``i``, ``i + 1``,
``i + 2``, ``i + 3``, stride 1) the C renderer reads them with one 4-byte ``memcpy`` (one
``LDR`` on a Cortex-M3/M4/M7/M33, which allow unaligned words); else it shifts and ors the bytes.

``ldm(load)`` (an int32 load -> int32) is the value loaded: a hint, not an operation. A run of
2 to 5 statements ``Decl(v, ldm(buf[..]))`` that read consecutive int32 elements of one buffer
(flat offsets ``o, o + 1, ...``, no mask; 5 only for the register bank of 5, 4 for the other,
see :data:`LDM_C`) is one load of a group of words: the C renderer reads
it with :data:`LDM_C` (``onnxcc_ldm2a`` to ``onnxcc_ldm5a``) through a pointer that walks the
buffer, so that the next run starting where this one ended reads on from it (set once before
a loop whose runs tile each iteration's words). ``ldm(load, bank)`` (``bank`` a constant 0
or 1) asks for that register bank for its group; by default a buffer's groups all take the
bank of the buffer (the kernel's first buffer read so bank 0, others bank 1). On a Thumb-2
core that is one
``LDMIA p!, {r8, r10, ...}`` (one instruction for up to 5 words, the address advanced for
free; gcc 12 -Os neither pairs such loads reliably into ``LDRD`` nor forms ``LDM``), with a
"memory" clobber so that gcc -O2 does not hoist the loads around it (it spilled: a 3x3 conv
1.45 instructions per MAC against 1.12), elsewhere plain loads. The blocked int8 products
(``codegen/lower/int_blocked.py``) read their scratch and weights so.

``stpair(v)`` (int32 -> int32) is the value stored: a hint, not an operation. Two adjacent
statements ``Store(buf[..], stpair(a))``, ``Store(buf[..], stpair(b))`` into consecutive int32
elements of one buffer (flat offsets ``o, o + 1``, no mask) are one store of the pair: the C
renderer writes it with :data:`STPAIR_C`, on Thumb-2 one ``STRD`` (an asm memory operand of
a may_alias 8-byte type at the first element, so gcc orders it with the buffer's other loads
and stores; its addressing modes, base plus a multiple of 4, are STRD's), elsewhere plain
stores. The batch-1 fill of the blocked int8 MatMul/Gemm (``codegen/lower/quant.py``) writes
each 4 bytes' two widened words so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

C_HELPER = """\
/* acc + lo(a)*lo(b) + hi(a)*hi(b) of int16 pairs (low half first), wrapping modulo 2^32
   (onnxcc's smlad intrinsic): Arm's SMLAD where the DSP extension is, plain C elsewhere. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
static inline int32_t onnxcc_smlad(int32_t a, int32_t b, int32_t acc) {
    return __smlad(a, b, acc);
}
#else
static inline int32_t onnxcc_smlad(int32_t a, int32_t b, int32_t acc) {
    int32_t p = (int32_t)(int16_t)a * (int32_t)(int16_t)b;
    int32_t q = (int32_t)(int16_t)((uint32_t)a >> 16) * (int32_t)(int16_t)((uint32_t)b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)p + (uint32_t)q);
}
#endif"""

SXTB16_C = """\
/* bytes 0 and 2 (rot 0) or 1 and 3 (rot 8) of x, each sign-extended to an int16 lane
   (onnxcc's sxtb16 intrinsic): Arm's SXTB16 where the DSP extension is, plain C elsewhere. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
static inline int32_t onnxcc_sxtb16(int32_t x, int32_t rot) {
    int32_t r;
    if (rot == 8) __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    else r = __sxtb16(x);
    return r;
}
#else
static inline int32_t onnxcc_sxtb16(int32_t x, int32_t rot) {
    uint32_t u = (uint32_t)x >> rot;
    uint32_t lo = (uint32_t)(int32_t)(int8_t)(u & 0xFFu) & 0xFFFFu;
    uint32_t hi = (uint32_t)(int32_t)(int8_t)((u >> 16) & 0xFFu);
    return (int32_t)(lo | (hi << 16));
}
#endif"""


SMLADX_C = """\
/* acc + lo(a)*hi(b) + hi(a)*lo(b) of int16 pairs, wrapping modulo 2^32 (onnxcc's smladx
   intrinsic): Arm's SMLADX where the DSP extension is, plain C elsewhere. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
static inline int32_t onnxcc_smladx(int32_t a, int32_t b, int32_t acc) {
    return __smladx(a, b, acc);
}
#else
static inline int32_t onnxcc_smladx(int32_t a, int32_t b, int32_t acc) {
    int32_t p = (int32_t)(int16_t)a * (int32_t)(int16_t)((uint32_t)b >> 16);
    int32_t q = (int32_t)(int16_t)((uint32_t)a >> 16) * (int32_t)(int16_t)b;
    return (int32_t)((uint32_t)acc + (uint32_t)p + (uint32_t)q);
}
#endif"""

PACK4_C = """\
/* the int32 of bytes b0 (low) .. b3 (high) (onnxcc's pack4 intrinsic) */
static inline __attribute__((always_inline)) int32_t onnxcc_pack4(int32_t b0, int32_t b1,
                                                                  int32_t b2, int32_t b3) {
    return (int32_t)(((uint32_t)b0 & 0xFFu) | (((uint32_t)b1 & 0xFFu) << 8)
                     | (((uint32_t)b2 & 0xFFu) << 16) | ((uint32_t)b3 << 24));
}"""

LOAD4_C = """\
/* four consecutive bytes at p as one little-endian int32 (onnxcc's pack4 intrinsic of four
   adjacent loads): one unaligned word load where the core allows it */
static inline int32_t onnxcc_load4(const void *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    int32_t w;
    __builtin_memcpy(&w, p, 4);
    return w;
#else
    const uint8_t *b = (const uint8_t *)p;
    return (int32_t)((uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16)
                     | ((uint32_t)b[3] << 24));
#endif
}"""


STORE4_C = """\
/* the bytes of w, low first, at p..p+3 (the C renderer's form of four stores of a word's
   bytes to adjacent elements): one unaligned word store where the core allows it */
static inline void onnxcc_store4(void *p, int32_t w) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    __builtin_memcpy(p, &w, 4);
#else
    uint8_t *b = (uint8_t *)p;
    b[0] = (uint8_t)w; b[1] = (uint8_t)((uint32_t)w >> 8);
    b[2] = (uint8_t)((uint32_t)w >> 16); b[3] = (uint8_t)((uint32_t)w >> 24);
#endif
}"""


LDM_BANKS = (("r8", "r10", "r11", "r12", "lr"), ("r0", "r1", "r2", "r3"))


def _ldm_c(n: int, bank: int) -> str:
    regs = LDM_BANKS[bank][:n]
    names = "abcde"[:n]
    outs = ", ".join(f"int32_t *{c}" for c in names)
    decl = ", ".join(f"v{c} __asm__(\"{r}\")" for c, r in zip(names, regs))
    lst = ", ".join(f"%[{c}]" for c in names)
    ops = ", ".join(f"[{c}] \"=r\"(v{c})" for c in names)
    sets = " ".join(f"*{c} = v{c};" for c in names)
    plain = " ".join(f"*{c} = q[{k}];" for k, c in enumerate(names))
    return f"""\
static inline __attribute__((always_inline)) void
onnxcc_ldm{n}{"ab"[bank]}(const int32_t **p, {outs}) {{
#if defined(__GNUC__) && defined(__thumb2__)
    register int32_t {decl};
    const int32_t *q = *p;
    __asm__("ldmia %[q]!, {{{lst}}}"
            : {ops}, [q] "+r"(q) : "m"(*(const int32_t (*)[{n}])q) : "memory");
    {sets}
    *p = q;
#else
    const int32_t *q = *p;
    {plain}
    *p = q + {n};
#endif
}}"""


#: The C helpers of the ``ldm`` hint by group size (2 to 4 words, 5 in bank 0) and register
#: bank (0, 1): ``onnxcc_ldmNa(&p, &a, ..)`` sets ``a, b, ..`` to ``p[0], p[1], ..`` and
#: advances ``p`` by N. On Thumb-2 one ``LDMIA`` into fixed registers (a register list must be
#: ascending, which gcc and clang honour for local register variables that are asm operands):
#: bank 0 (``a``) r8, r10, r11, r12, then lr (r14) for a fifth word (not r7, the Thumb frame
#: pointer, nor r9, a platform register on some systems; r4-r6 made gcc 12 -Os spill
#: accumulators of the blocked conv in its loop, benchmarks/mcu.py int8 "other conv" resnet8
#: 1.26 against 1.10; lr is free once the prologue has saved it, and the 1 x 5 dense block's
#: 5 weights in one LDMIA, not an LDMIA and an LDR, took a QGemm 64 -> 10 from 677 to 612
#: instructions on cortex-m4 -Os), bank 1 (``b``) r0 to r3, so that two groups live at once
#: need no register moves. A build that reserves one of them (``-ffixed-r10``, a PIC base
#: register) gets a compile error from these helpers.
LDM_C = {(n, b): "/* p[0..N-1] into the outputs, p advanced by N (onnxcc's ldm hint): one "
                 "LDMIA on\n   Thumb-2, plain loads elsewhere */\n" + _ldm_c(n, b)
         for b in (0, 1) for n in range(2, len(LDM_BANKS[b]) + 1)}


STPAIR_C = """\
/* p[0] = a, p[1] = b (onnxcc's stpair hint): one STRD on Thumb-2 (gcc 12 -Os pairs no
   stores), plain stores elsewhere */
#if defined(__GNUC__) && defined(__thumb2__)
typedef int64_t __attribute__((may_alias, aligned(4))) onnxcc_i64a;
#endif
static inline __attribute__((always_inline)) void onnxcc_stpair(int32_t *p, int32_t a,
                                                                int32_t b) {
#if defined(__GNUC__) && defined(__thumb2__)
    __asm__("strd %1, %2, %0" : "=m"(*(onnxcc_i64a *)p) : "r"(a), "r"(b));
#else
    p[0] = a;
    p[1] = b;
#endif
}"""


def stpair(x: Any) -> Any:
    """The numpy reference of the ``stpair`` hint: its argument, the value stored."""
    return x


def ldm(x: Any, bank: Any = None) -> Any:
    """The numpy reference of the ``ldm`` hint: its argument, the loaded value (``bank``, a
    register bank for the C renderer, does not change it)."""
    return x


def _lanes(v: int) -> tuple[int, int]:
    lo = ((v & 0xFFFF) ^ 0x8000) - 0x8000
    hi = (((v >> 16) & 0xFFFF) ^ 0x8000) - 0x8000
    return lo, hi


def smlad(a: Any, b: Any, acc: Any) -> np.int32:
    """The numpy reference of the intrinsic (see the module docstring): int32 in, int32 out."""
    (al, ah), (bl, bh) = _lanes(int(a)), _lanes(int(b))
    r = int(acc) + al * bl + ah * bh
    return np.int32(((r + (1 << 31)) % (1 << 32)) - (1 << 31))


def sxtb16(x: Any, rot: Any) -> np.int32:
    """The numpy reference of ``sxtb16`` (see the module docstring): int32 in, int32 out."""
    v = (int(x) & 0xFFFFFFFF) >> int(rot)
    lo = ((v & 0xFF) ^ 0x80) - 0x80
    hi = (((v >> 16) & 0xFF) ^ 0x80) - 0x80
    return np.uint32((lo & 0xFFFF) | ((hi & 0xFFFF) << 16)).view(np.int32)


def smladx(a: Any, b: Any, acc: Any) -> np.int32:
    """The numpy reference of ``smladx``: ``smlad`` with the halves of ``b`` exchanged."""
    bv = int(b) & 0xFFFFFFFF
    return smlad(a, ((bv >> 16) | (bv << 16)) & 0xFFFFFFFF, acc)


def pack4(b0: Any, b1: Any, b2: Any, b3: Any) -> np.int32:
    """The numpy reference of ``pack4``: bytes b0 (low) to b3 (high) as one int32."""
    u = sum((int(b) & 0xFF) << (8 * k) for k, b in enumerate((b0, b1, b2, b3)))
    return np.uint32(u).view(np.int32)
