"""The loop IR itself: text form, verify (bounds and types), interpreter and C renderer."""

import numpy as np
import pytest

from builders import make_model, ort_run
from loopir import program_of, run_c, run_interp
from onnxcc.codegen.c.render import render_kernel_text
from onnxcc.codegen.loops import (BOOL, F32, Buffer, Const, Decl, Kernel, Load, Loop, Store,
                                  Var, affine, all_of, kernel_text, program_text)
from onnxcc.codegen.verify import verify_kernel
from onnxcc.errors import VerifyError


def _pad_kernel(guard: bool) -> Kernel:
    """y[i] = x[i - 1] (0 outside x): a 1-D zero padding by one on each side."""
    x = Buffer("x", F32, (8,), space="input")
    y = Buffer("y", F32, (10,), space="output")
    i = Var("i")
    src = affine(i, -1)
    mask = all_of(src >= 0, src < 8) if guard else None
    ld = Load(x, (src,), mask, Const(0.0, F32) if guard else None)
    return Kernel("pad", [y], [x], [Loop(i, 0, 10, [Store(y, (i,), ld)])])


def test_text_form_is_readable_and_deterministic():
    k = _pad_kernel(True)
    assert kernel_text(k) == (
        "kernel pad(out y:f32[10] @output0, in x:f32[8] @input0)\n"
        "  for i in 0..10:\n"
        "    y[i] = (x[(i - 1)] if (((i - 1) >= 0) && ((i - 1) < 8)) else 0.0:f32)")
    assert kernel_text(_pad_kernel(True)) == kernel_text(k)


def test_verify_proves_guarded_access_and_refuses_unguarded():
    verify_kernel(_pad_kernel(True))
    with pytest.raises(VerifyError, match=r"cannot prove x\[.*\(i - 1\).*\] inside dim 0 of extent 8"):
        verify_kernel(_pad_kernel(False))


def test_verify_refuses_store_past_the_end_and_type_mismatch():
    y = Buffer("y", F32, (4,), space="output")
    i = Var("i")
    with pytest.raises(VerifyError, match="inside dim 0 of extent 4"):
        verify_kernel(Kernel("k", [y], [], [Loop(i, 0, 5, [Store(y, (i,), Const(1.0, F32))])]))
    with pytest.raises(VerifyError, match="storing bool"):
        verify_kernel(Kernel("k", [y], [], [Loop(i, 0, 4, [Store(y, (i,), Const(True, BOOL))])]))
    acc = Var("acc", F32)
    with pytest.raises(VerifyError, match="undeclared|before its Decl"):
        verify_kernel(Kernel("k", [y], [], [Loop(i, 0, 4, [Store(y, (i,), acc)])]))
    verify_kernel(Kernel("k", [y], [], [Decl(acc, Const(2.0, F32)),
                                         Loop(i, 0, 4, [Store(y, (i,), acc)])]))


def test_verify_refuses_a_buffer_past_the_arena():
    from onnxcc.codegen.loops import Program
    from onnxcc.codegen.verify import verify

    y = Buffer("y", F32, (4,), space="arena", offset=8)
    i = Var("i")
    k = Kernel("k", [y], [], [Loop(i, 0, 4, [Store(y, (i,), Const(0.0, F32))])])
    verify(Program("p", [k], [], [], arena_size=24))
    with pytest.raises(VerifyError, match="overruns its storage"):
        verify(Program("p", [k], [], [], arena_size=20))


def test_guarded_kernel_runs_in_interpreter_and_c():
    from onnxcc.codegen.interpret import run_kernel

    x = np.arange(8, dtype=np.float32)
    y = np.zeros(10, np.float32)
    run_kernel(_pad_kernel(True), {"x": x, "y": y})
    np.testing.assert_array_equal(y, np.pad(x, 1))
    assert "static void pad(float *restrict y, const float *restrict x)" in \
        render_kernel_text(_pad_kernel(True))


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_elementwise_chain_matches_onnxruntime(rng, cc):
    b = rng.standard_normal((4, 1), dtype=np.float32)
    m = make_model([("Add", ["x", "b"], ["t"]), ("Relu", ["t"], ["u"]), ("Sigmoid", ["u"], ["y"])],
                   inputs={"x": (2, 4, 3)}, outputs={"y": (2, 4, 3)}, inits={"b": b})
    p = program_of(m)
    assert [k.op for k in p.kernels] == ["onnxcc.FusedElementwise"]
    assert "t1:f32 = (0.0:f32 if (t0 < 0.0:f32) else t0)" in program_text(p)
    x = rng.standard_normal((2, 4, 3), dtype=np.float32)
    want = ort_run(m, {"x": x})["y"]
    np.testing.assert_allclose(run_interp(p, [x])[0], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run_c(p, [x], cc)[0], want, rtol=1e-6, atol=1e-7)
