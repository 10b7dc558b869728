"""The C renderer's row-pointer form of unrolled loops, verify's per-tap case split, and
prune_kernel: what the C back end needs to render the loop IR as fast as hand-written C."""

import shutil
import subprocess

import numpy as np
import pytest

import onnxcc
from builders import make_model, ort_run
from onnxcc.codegen.c.render import render_kernel_text
from onnxcc.codegen.interpret import run_kernel
from onnxcc.codegen.loops import (F32, Assign, Binary, Buffer, Const, Decl, Kernel, Loop, Store,
                                  Var, kernel_text, maximum, minimum, prune_kernel)
from onnxcc.codegen.verify import verify_kernel
from onnxcc.errors import VerifyError


def taps_kernel(hi_bias: int = 5) -> Kernel:
    """A 1-D padded convolution, tap-stationary: y[o] += w[k] * x[o + k - 1] over the o whose
    input is inside x (x, y of 4; 3 taps; bounds max(1 - k, 0)..min(hi_bias - k, 4))."""
    x = Buffer("x", F32, (4,), space="input", index=0)
    w = Buffer("w", F32, (3,), space="input", index=1)
    y = Buffer("y", F32, (4,), space="output")
    k, o = Var("k"), Var("o")
    lo = maximum(Binary("sub", Const(1), k), Const(0))
    hi = minimum(Binary("sub", Const(hi_bias), k), Const(4))
    body = [Loop(o, 0, 4, [Store(y, (o,), Const(0.0, F32))]),
            Loop(k, 0, 3, [Loop(o, lo, hi, [Store(y, (o,), y[o] + w[k] * x[o + k - 1])],
                                kind="unrolled", factor=4)])]
    return Kernel("taps", [y], [x, w], body)


def test_verify_proves_per_tap_ranges_and_refuses_one_past():
    verify_kernel(taps_kernel())          # tap by tap: k = 0, 1, 2 each give constant ranges
    with pytest.raises(VerifyError, match=r"cannot prove x\["):
        verify_kernel(taps_kernel(hi_bias=6))   # k = 2 would read x[4]


def test_unrolled_loop_renders_row_pointers_and_matches_the_interpreter():
    k = taps_kernel()
    src = render_kernel_text(k, static=False)
    assert "float *y_r0 = y + " in src and "const float *x_r1 = x + " in src
    assert "for (; o_j + 4 <= o_n; o_j += 4) {" in src and "for (; o_j < o_n; ++o_j) {" in src
    x, w = np.array([1, 2, 3, 4], np.float32), np.array([0.5, -1, 2], np.float32)
    y = np.zeros(4, np.float32)
    run_kernel(k, {"x": x, "w": w, "y": y})
    np.testing.assert_allclose(y, np.convolve(np.pad(x, 1), w[::-1], "valid"), rtol=1e-6)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_gcc_O2_vectorizes_the_generated_convolution(tmp_path):
    """The promise of the row-pointer form: gcc -O2 (no -march) vectorizes the conv's
    innermost loop, as it did the deleted hand-written C kernels; the result is onnxruntime's."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    m = make_model([("Conv", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1]})], {"x": (1, 8, 20, 20)},
                   {"y": None}, {"w": w})
    cm = onnxcc.compile(m, "host", name="cv")
    r = subprocess.run(["gcc", "-std=c99", "-O2", "-fopt-info-vec-optimized", "-c",
                        str(cm.lib_dir / "cv.c"), "-I", str(cm.lib_dir), "-o",
                        str(tmp_path / "cv.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "loop vectorized" in r.stderr
    x = rng.standard_normal((1, 8, 20, 20)).astype(np.float32)
    np.testing.assert_allclose(cm.run({"x": x})["y"], ort_run(m, {"x": x})["y"], rtol=1e-4,
                               atol=1e-4)


def test_prune_kernel_drops_dead_locals_and_unread_inputs():
    x = Buffer("x", F32, (3,), space="input", index=0)
    lo = Buffer("lo", F32, (3,), (0,), space="weight", data=np.array([0.5], np.float32))
    y = Buffer("y", F32, (3,), space="output")
    i, a, b = Var("i"), Var("a", F32), Var("b", F32)
    k = Kernel("k", [y], [x, lo], [Loop(i, 0, 3, [Decl(a, x[i]), Decl(b, lo[i]),
                                                   Store(y, (i,), maximum(a, Const(0.5, F32)))])])
    pruned = prune_kernel(k)
    assert [b.name for b in pruned.inputs] == ["x"]
    assert "b:f32" not in kernel_text(pruned) and "a:f32 = x[i]" in kernel_text(pruned)
    assert prune_kernel(pruned) is pruned


def test_an_index_through_a_local_assigned_in_the_loop_is_not_hoisted():
    """y[i + p] with p changed inside the loop: a pointer set once before the loop would keep
    p's first value, so the access keeps its absolute index (x[i] still gets a pointer)."""
    x = Buffer("x", F32, (4,), space="input", index=0)
    y = Buffer("y", F32, (8,), space="output")
    i, p = Var("i"), Var("p")
    body = [Decl(p, Const(0)),
            Loop(i, 0, 4, [Store(y, (Binary("add", i, p),), x[i]),
                           Assign(p, Binary("add", p, Const(1)))])]
    src = render_kernel_text(Kernel("k", [y], [x], body), static=False)
    assert "const float *x_r0 = x + " in src and "y_r" not in src
    assert "y[(i + p)] = x_r0[i_j];" in src
