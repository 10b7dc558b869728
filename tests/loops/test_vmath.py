"""The LLVM back end's inline float32 exp, erf and tanh (``codegen/llvm/vmath.py``): accuracy in
ulp against float64 references over each function's whole range, special values, and that a
loop of them vectorizes (no scalar library call per element)."""

import math
import re

import numpy as np
import pytest

from onnxcc.codegen.llvm.jit import JITProgram
from onnxcc.codegen.loops import F32, Buffer, Kernel, Loop, Program, Store, Unary, Var
from onnxcc.codegen.verify import verify

_erf = np.frompyfunc(math.erf, 1, 1)
REF = {"exp": np.exp, "erf": lambda x: _erf(x).astype(np.float64), "tanh": np.tanh}
ULP = {"exp": 2, "erf": 3, "tanh": 3}


def _program(op: str, n: int) -> Program:
    x = Buffer("x", F32, (n,), space="input", index=0)
    y = Buffer("y", F32, (n,), space="output", index=0)
    i = Var("i")
    k = Kernel("k0", [y], [x], [Loop(i, 0, n, [Store(y, (i,), Unary(op, x[i]))])])
    p = Program("vm", [k], [x], [y], arena_size=0, arena_align=16)
    verify(p)
    return p


def _samples(op: str) -> np.ndarray:
    """2**21 float32 values over the function's interesting range, both signs, plus the tiny
    and subnormal ones (every float32 exponent is covered by the geometric part)."""
    hi = {"exp": 104.0, "erf": 5.0, "tanh": 10.0}[op]
    lin = np.linspace(-hi, hi, 1 << 20, dtype=np.float32)
    geo = np.geomspace(1e-45, hi, 1 << 19).astype(np.float32)
    return np.concatenate([lin, geo, -geo])


def _ulp_error(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units of the float32 spacing at want (float64 want); the spacing of the
    smallest normal for subnormal results."""
    step = np.spacing(np.maximum(np.abs(want.astype(np.float32)), np.float32(2 ** -126)))
    return np.abs(got.astype(np.float64) - want) / step.astype(np.float64)


@pytest.mark.parametrize("op", ["exp", "erf", "tanh"])
def test_inline_math_is_within_a_few_ulp(op):
    x = _samples(op)
    got = JITProgram(_program(op, x.size)).run([x])[0]
    with np.errstate(over="ignore"):
        want = REF[op](x.astype(np.float64))
        finite = np.isfinite(want.astype(np.float32))
    err = _ulp_error(got[finite], want[finite])
    assert err.max() <= ULP[op], (op, x[finite][err.argmax()], got[finite][err.argmax()])
    if op == "exp":   # where float32 overflows, inf (as libm)
        assert np.isposinf(got[~finite]).all()


@pytest.mark.parametrize("op", ["exp", "erf", "tanh"])
def test_inline_math_special_values(op):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72, 88.73, -87.4, -103.9, -104.5],
                 np.float32)
    got = JITProgram(_program(op, x.size)).run([x])[0]
    with np.errstate(over="ignore"):
        want = REF[op](x.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert (np.isinf(got[ok]) == np.isinf(want[ok])).all()
    np.testing.assert_allclose(got[ok], want[ok], rtol=3e-7, atol=0)
    assert math.copysign(1, got[4]) == math.copysign(1, want[4])   # the sign of -0.0 kept


@pytest.mark.parametrize("op", ["exp", "erf", "tanh"])
def test_a_loop_of_inline_math_vectorizes(op):
    ir = JITProgram(_program(op, 1024)).ir
    assert re.search(r"<(8|16) x float>", ir)
    assert not re.search(r"call [^\n]*@(expf|erff|tanhf|llvm\.exp\.f32)\(", ir)
