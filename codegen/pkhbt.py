"""The ``pkhbt`` intrinsic of the loop IR: Arm's halfword pack of the DSP extension.

``pkhbt(lo, hi)`` (int32, int32 -> int32) is the word whose low 16 bits are those of ``lo`` and
whose high 16 bits are the low 16 bits of ``hi``: ``(lo & 0xFFFF) | (hi << 16)``, two int16
lanes (low lane first) as ``smlad`` reads them. This is Arm's ``PKHBT Rd, Rn, Rm, LSL #16``
(ARMv7E-M, ARMv8-M Mainline with DSP: Cortex-M4, M7, M33, M55; CMSIS's ``__PKHBT(lo, hi,
16)``): one instruction where gcc 12 emits ``UXTH`` and ``ORR`` for the C expression. ACLE has
no intrinsic for it, so the C helper is one line of inline assembly where the compiler defines
``__ARM_FEATURE_DSP`` and the portable expression elsewhere (the same source builds on a host).
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


def pkhbt(lo: Any, hi: Any) -> np.int32:
    """The numpy reference of ``pkhbt`` (see the module docstring): int32 in, int32 out."""
    u = (int(lo) & 0xFFFF) | ((int(hi) & 0xFFFF) << 16)
    return np.uint32(u).view(np.int32)
