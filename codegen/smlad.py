"""The ``smlad`` intrinsic of the loop IR: a dual 16-bit multiply-accumulate.

``smlad(a, b, acc)`` (int32, int32, int32 -> int32) reads ``a`` and ``b`` as two signed 16-bit
lanes each (bits 0-15 the low lane, 16-31 the high lane, as a little-endian int16 pair is laid
out in memory) and returns ``acc + lo(a) * lo(b) + hi(a) * hi(b)`` wrapped to int32 (two's
complement, as every int32 sum of the loop IR wraps). This is Arm's ``SMLAD`` instruction of the
DSP extension (ARMv7E-M, ARMv8-M Mainline with DSP: Cortex-M4, M7, M33, M55; ACLE's
``__smlad``), which also wraps and only sets the Q flag on overflow. Lowerings emit it only for
a target with ``Target.dsp`` (``codegen/lower/int_blocked.py``); the C helper falls back to
plain C where the compiler does not define ``__ARM_FEATURE_DSP``, so the same source also builds
on a host.
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


def _lanes(v: int) -> tuple[int, int]:
    lo = ((v & 0xFFFF) ^ 0x8000) - 0x8000
    hi = (((v >> 16) & 0xFFFF) ^ 0x8000) - 0x8000
    return lo, hi


def smlad(a: Any, b: Any, acc: Any) -> np.int32:
    """The numpy reference of the intrinsic (see the module docstring): int32 in, int32 out."""
    (al, ah), (bl, bh) = _lanes(int(a)), _lanes(int(b))
    r = int(acc) + al * bl + ah * bh
    return np.int32(((r + (1 << 31)) % (1 << 32)) - (1 << 31))
