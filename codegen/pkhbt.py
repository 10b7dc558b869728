"""The ``pkhbt`` and ``pkhtb`` intrinsics of the loop IR: Arm's halfword packs of the DSP
extension.

``pkhbt(lo, hi)`` (int32, int32 -> int32) is the word whose low 16 bits are those of ``lo`` and
whose high 16 bits are the low 16 bits of ``hi``: ``(lo & 0xFFFF) | (hi << 16)``, two int16
lanes (low lane first) as ``smlad`` reads them. This is Arm's ``PKHBT Rd, Rn, Rm, LSL #16``
(ARMv7E-M, ARMv8-M Mainline with DSP: Cortex-M4, M7, M33, M55; CMSIS's ``__PKHBT(lo, hi,
16)``): one instruction where gcc 12 emits ``UXTH`` and ``ORR`` for the C expression. ACLE has
no intrinsic for it, so the C helper is one line of inline assembly where the compiler defines
``__ARM_FEATURE_DSP`` and the portable expression elsewhere (the same source builds on a host).
``pkhtb(hi, lo)`` (int32, int32 -> int32) is the word whose high 16 bits are those of ``hi``
and whose low 16 bits are the high 16 bits of ``lo``: ``(hi & 0xFFFF0000) | (lo >> 16 &
0xFFFF)``, Arm's ``PKHTB Rd, Rn, Rm, ASR #16`` (``__PKHTB(hi, lo, 16)``). With ``sxtb16`` it
pairs the bytes of two words: for ``a`` and ``b`` four bytes each, ``pkhbt(sxtb16(a, 0),
sxtb16(b, 0))`` is ``(a0, b0)`` and ``pkhtb(sxtb16(b, 0), sxtb16(a, 0))`` is ``(a2, b2)``.

The inline assembly is opaque to the compiler: lowerings pass constant words as constants,
never through ``pkhbt``. The im2col fill of the blocked int8 Conv
(``onnxcc.codegen.lower.quant``) packs its channel pairs with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

C_HELPER = """\
/* the int16 pair (lo, hi): the low halves of lo and hi, lo's in bits 0-15 (onnxcc's pkhbt
   intrinsic): Arm's PKHBT where the DSP extension is, plain C elsewhere. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline __attribute__((always_inline)) int32_t onnxcc_pkhbt(int32_t lo, int32_t hi) {
    int32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
    return r;
}
#else
static inline __attribute__((always_inline)) int32_t onnxcc_pkhbt(int32_t lo, int32_t hi) {
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}
#endif"""

PKHTB_C = """\
/* the int16 pair (lo >> 16, hi >> 16): hi's high half stays, lo's high half goes low
   (onnxcc's pkhtb intrinsic): Arm's PKHTB where the DSP extension is, plain C elsewhere. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
static inline __attribute__((always_inline)) int32_t onnxcc_pkhtb(int32_t hi, int32_t lo) {
    int32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(hi), "r"(lo));
    return r;
}
#else
static inline __attribute__((always_inline)) int32_t onnxcc_pkhtb(int32_t hi, int32_t lo) {
    return (int32_t)(((uint32_t)hi & 0xFFFF0000u) | ((uint32_t)lo >> 16));
}
#endif"""


def pkhbt(lo: Any, hi: Any) -> np.int32:
    """The numpy reference of ``pkhbt`` (see the module docstring): int32 in, int32 out."""
    u = (int(lo) & 0xFFFF) | ((int(hi) & 0xFFFF) << 16)
    return np.uint32(u).view(np.int32)


def pkhtb(hi: Any, lo: Any) -> np.int32:
    """The numpy reference of ``pkhtb``: hi's high half, lo's high half below it."""
    u = (int(hi) & 0xFFFF0000) | ((int(lo) >> 16) & 0xFFFF)
    return np.uint32(u & 0xFFFFFFFF).view(np.int32)
