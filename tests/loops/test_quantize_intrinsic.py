"""The ``quantize_i8`` / ``quantize_u8`` / ``quantize_i16`` / ``quantize_u16`` intrinsics (a
float32 QuantizeLinear's y from x / scale on a microcontroller: the bits of ``v + 1.5 * 2**23``
saturated): bit-identical in the numpy
reference, the loop-IR interpreter, C (the helper) and LLVM on random values and on every edge
of the bit trick: ties of each sign, the ends of its exact range (2**22), the sums that turn
negative (v <= -1.5 * 2**23) or overflow int32 as bits, infinities, NaN of either sign,
denormals; verify refuses wrong operand types."""

from __future__ import annotations

import numpy as np
import pytest

from onnxcc.codegen.loops import F32, I32, Buffer, Call, Const, Kernel, Loop, Program, Store, Var
from onnxcc.codegen.requantize import QUANTIZE, quantize_reference
from onnxcc.codegen.verify import verify
from onnxcc.errors import VerifyError

from loopir import run_c, run_interp, run_llvm


def _program(n: int, fn: str, zp: int, call: Call | None = None) -> Program:
    x = Buffer("x", F32, (n,), space="input", index=0)
    s = Buffer("s", F32, (n,), space="input", index=1)
    y = Buffer("y", I32, (n,), space="output", index=0)
    i = Var("i")
    e = call if call is not None else Call(fn, (x[i], s[i], Const(zp, I32)), I32)
    return Program("q", [Kernel("k0", [y], [x, s], [Loop(i, 0, n, [Store(y, (i,), e)])],
                                op="quantize")],
                   [Buffer(f"input{k}", F32, (n,), space="input", index=k) for k in range(2)],
                   [Buffer("output0", I32, (n,), space="output", index=0)], 0, 16)


def _values() -> np.ndarray:
    rng = np.random.default_rng(5)
    rand = np.concatenate([rng.standard_normal(2000) * 100, rng.standard_normal(500) * 1e6,
                           rng.integers(-400, 400, 500) + 0.5])
    m = 12582912.0
    edge = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5,
            127.5, 128.5, -128.5, -129.5, 255.5, 2 ** 22 - 0.5, -(2 ** 22) + 0.5, 2 ** 22,
            -(2 ** 22), 2 ** 22 + 1, -(2 ** 22) - 1, m, -m, -m + 1, -m - 1, -3 * 2 ** 23,
            -2.5e7, -2 ** 24, 2 ** 24, 3.4e38, -3.4e38, 1e-45, -1e-45, 1e-38, -1e-38]
    v = np.concatenate([np.array(edge, np.float64), rand]).astype(np.float32)
    bits = v.view(np.uint32)
    bits[1] |= np.uint32(0x80000000)          # a NaN with the sign bit set
    return v


@pytest.mark.parametrize("fn,zp", [("quantize_i8", -3), ("quantize_i8", 0), ("quantize_u8", 128),
                                   ("quantize_u8", 255), ("quantize_i16", -300),
                                   ("quantize_u16", 40000)])
def test_quantize_renderers_agree(fn, zp):
    v = _values()
    s = np.ones(v.size, np.float32)
    s[-500:] = np.random.default_rng(2).uniform(0.01, 0.1, 500).astype(np.float32)
    want = quantize_reference(fn)(v, s, zp)
    lo, hi, _ = QUANTIZE[fn]
    assert want[0] == want[1] == lo                       # NaN of either sign
    assert want[2] == hi and want[3] == lo                # infinities saturate
    # ties to even, then the zero point; the bit trick's far ends saturate
    assert int(want[6]) == int(np.clip(0 + zp, lo, hi))
    assert int(want[10]) == int(np.clip(2 + zp, lo, hi))
    assert int(want[17]) == hi and int(want[18]) == lo    # +-(2**22 - 0.5)
    p = _program(v.size, fn, zp)
    verify(p)
    for run in (run_interp, run_c, run_llvm):
        np.testing.assert_array_equal(run(p, [v, s])[0], want, err_msg=run.__name__)


@pytest.mark.parametrize("args", [(Const(1, I32), Const(1.0, F32), Const(0, I32)),
                                  (Const(1.0, F32), Const(0, I32))])
def test_verify_refuses_quantize_of_wrong_types(args):
    with pytest.raises(VerifyError, match="quantize_i8"):
        verify(_program(4, "quantize_i8", 0, Call("quantize_i8", args, I32)))
