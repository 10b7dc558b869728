"""The ``srdhm`` intrinsic (gemmlowp's SaturatingRoundingDoublingHighMul, the integer Softmax's
multiply in size mode): bit-identical in its numpy reference (``onnxcc.ops.quant_int``'s
gemmlowp form), the loop-IR interpreter, C (the helper function) and LLVM, on random and
extreme operands (INT32_MIN * INT32_MIN saturates, ties round half up: 0.5 -> 1, -0.5 -> 0,
as gemmlowp's nudged truncating division does); verify refuses wrong operand types."""

from __future__ import annotations

import numpy as np
import pytest

from onnxcc.codegen.loops import I32, I64, Buffer, Call, Const, Kernel, Loop, Program, Store, Var
from onnxcc.codegen.requantize import INT32_MAX, INT32_MIN, srdhm
from onnxcc.codegen.verify import verify
from onnxcc.errors import VerifyError

from loopir import run_c, run_interp, run_llvm


def _program(n: int, call: Call | None = None) -> Program:
    ins = [Buffer(nm, I32, (n,), space="input", index=k) for k, nm in enumerate("ab")]
    y = Buffer("y", I32, (n,), space="output", index=0)
    i = Var("i")
    e = call if call is not None else Call("srdhm", (ins[0][i], ins[1][i]), I32)
    return Program("sr", [Kernel("k0", [y], ins, [Loop(i, 0, n, [Store(y, (i,), e)])],
                                 op="srdhm")],
                   [Buffer(f"input{k}", I32, (n,), space="input", index=k) for k in range(2)],
                   [Buffer("output0", I32, (n,), space="output", index=0)], 0, 16)


def test_srdhm_renderers_agree():
    rng = np.random.default_rng(11)
    n = 4096
    a, b = (rng.integers(INT32_MIN, INT32_MAX, n, dtype=np.int64, endpoint=True)
            .astype(np.int32) for _ in range(2))
    # the saturating case, the other ends, products that are exact halves (ties) of each sign
    edge = [(INT32_MIN, INT32_MIN), (INT32_MIN, INT32_MAX), (INT32_MAX, INT32_MIN),
            (INT32_MAX, INT32_MAX), (INT32_MIN, 1), (INT32_MIN, -1), (1 << 30, 1), (-(1 << 30), 1),
            (3 << 29, 1), (-(3 << 29), 1), (1 << 15, 1 << 15), (-(1 << 15), 1 << 15), (0, 0),
            (1515870810, -1010580540), (1895147668, 715827883)]
    for t, (p, q) in enumerate(edge):
        a[t], b[t] = p, q
    want = srdhm(a, b)
    assert want.dtype == np.int32
    assert [int(v) for v in want[:10]] == [INT32_MAX, -INT32_MAX, -INT32_MAX, INT32_MAX - 1,
                                           -1, 1, 1, 0, 1, -1]
    p = _program(n)
    verify(p)
    for run in (run_interp, run_c, run_llvm):
        np.testing.assert_array_equal(run(p, [a, b])[0], want, err_msg=run.__name__)


@pytest.mark.parametrize("args", [(Const(1, I64), Const(2, I32)), (Const(1, I32),)])
def test_verify_refuses_srdhm_of_wrong_types(args):
    with pytest.raises(VerifyError, match="srdhm"):
        verify(_program(4, Call("srdhm", args, I32)))
