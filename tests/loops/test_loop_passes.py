"""Loop passes: structure before => after through the text form, and equal numerics through the
interpreter (and C for the blocked matmul)."""

import numpy as np
import pytest

from onnxcc.codegen.interpret import run_kernel
from onnxcc.codegen.loops import (F32, Assign, Buffer, Const, Decl, Kernel, Loop, MulAdd, Store,
                                  Var, kernel_text)
from onnxcc.codegen.schedule import (ScheduleError, apply_passes, split, unroll, unroll_and_jam,
                                     vectorize)
from onnxcc.codegen.verify import verify_kernel


def matvec(m: int = 6, n: int = 5) -> Kernel:
    """y[j] = sum_k a[j, k] * x[k]: y is (m,), a is (m, n), x is (n,)."""
    a = Buffer("a", F32, (m, n), space="input", index=0)
    x = Buffer("x", F32, (n,), space="input", index=1)
    y = Buffer("y", F32, (m,), space="output")
    j, k, acc = Var("j"), Var("k"), Var("acc", F32)
    body = [Loop(j, 0, m, [Decl(acc, Const(0.0, F32)),
                           Loop(k, 0, n, [Assign(acc, MulAdd(a[j, k], x[k], acc))]),
                           Store(y, (j,), acc)])]
    return Kernel("matvec", [y], [a, x], body)


def run(k: Kernel, rng) -> np.ndarray:
    a, x = rng.standard_normal(k.inputs[0].shape, dtype=np.float32), \
        rng.standard_normal(k.inputs[1].shape, dtype=np.float32)
    y = np.zeros(k.outputs[0].shape, np.float32)
    run_kernel(k, {"a": a.reshape(-1), "x": x, "y": y})
    return y


def test_unroll_and_jam_shares_loads_and_keeps_numerics():
    before = matvec()
    after = unroll_and_jam(before, "j", 4)
    verify_kernel(after)
    assert kernel_text(after) == """kernel matvec(out y:f32[6] @output0, in a:f32[6,5] @input0, in x:f32[5] @input1)
  for j_o in 0..1:
    acc_0:f32 = 0.0:f32
    acc_1:f32 = 0.0:f32
    acc_2:f32 = 0.0:f32
    acc_3:f32 = 0.0:f32
    for k in 0..5:
      acc_0 = muladd(a[(j_o * 4), k], x[k], acc_0)
      acc_1 = muladd(a[((j_o * 4) + 1), k], x[k], acc_1)
      acc_2 = muladd(a[((j_o * 4) + 2), k], x[k], acc_2)
      acc_3 = muladd(a[((j_o * 4) + 3), k], x[k], acc_3)
    y[(j_o * 4)] = acc_0
    y[((j_o * 4) + 1)] = acc_1
    y[((j_o * 4) + 2)] = acc_2
    y[((j_o * 4) + 3)] = acc_3
  for j in 4..6:
    acc:f32 = 0.0:f32
    for k in 0..5:
      acc = muladd(a[j, k], x[k], acc)
    y[j] = acc"""
    np.testing.assert_array_equal(run(after, np.random.default_rng(0)),
                                  run(before, np.random.default_rng(0)))


def test_split_and_unroll_keep_numerics():
    k = matvec(7, 9)
    want = run(k, np.random.default_rng(1))
    s = split(k, "k", 4)
    verify_kernel(s)
    assert "for k_o in 0..2:\n      for k_i in 0..4:" in kernel_text(s)
    assert "for k in 8..9:" in kernel_text(s)
    u = unroll(s, "k_i")
    verify_kernel(u)
    assert "k_i" not in kernel_text(u)
    np.testing.assert_allclose(run(u, np.random.default_rng(1)), want, rtol=1e-6)


def test_unroll_and_jam_refuses_a_reduction_loop():
    with pytest.raises(ScheduleError, match="not independent"):
        unroll_and_jam(matvec(), "k", 2)


def test_vectorize_marks_contiguous_innermost_loops_only():
    y = Buffer("y", F32, (4, 16), space="output")
    x = Buffer("x", F32, (4, 16), space="input")
    i, j = Var("i"), Var("j")
    k = Kernel("copy", [y], [x], [Loop(i, 0, 4, [Loop(j, 0, 16, [Store(y, (i, j), x[i, j])])])])
    out = apply_passes(k, [vectorize(8)], check=True)
    assert "for j in 0..16 vectorized(8):" in kernel_text(out)
    # a transposed store is not contiguous in the innermost loop: left alone
    t = Kernel("t", [Buffer("y", F32, (16, 4), space="output")], [x],
               [Loop(i, 0, 4, [Loop(j, 0, 16, [Store(Buffer("y", F32, (16, 4), space="output"),
                                                     (j, i), x[i, j])])])])
    assert "vectorized" not in kernel_text(apply_passes(t, [vectorize(8)]))
    assert "vectorized" not in kernel_text(apply_passes(matvec(), [vectorize(8)]))


def direct_conv1d(m: int = 16, c: int = 3, o: int = 19, k: int = 3) -> Kernel:
    """An output-stationary 1-D convolution: y[m, o] = sum over c, k of w[m, c, k] * x[c, o + k];
    y (m, o), w (m, c, k), x (c, o + k - 1)."""
    x = Buffer("x", F32, (c, o + k - 1), space="input", index=0)
    w = Buffer("w", F32, (m, c, k), space="input", index=1)
    y = Buffer("y", F32, (m, o), space="output")
    mv, ov, cv, kv, acc = Var("m"), Var("ow"), Var("c"), Var("k"), Var("acc", F32)
    body = [Loop(mv, 0, m, [Loop(ov, 0, o, [
        Decl(acc, Const(0.0, F32)),
        Loop(cv, 0, c, [Loop(kv, 0, k, [Assign(acc, MulAdd(x[cv, ov + kv], w[mv, cv, kv], acc))])]),
        Store(y, (mv, ov), acc)])])]
    return Kernel("conv1d", [y], [x, w], body, op="Conv")


def test_register_block_tiles_output_columns_and_channels_and_keeps_every_bit():
    """register_block[ow:8,m:8] on a direct convolution: tiles of 8 output columns x 8 output
    channels (64 accumulators: one x load shared by 8 channels, one weight by 8 columns), a
    remainder loop for the 3 last columns, verify proves every access, and each output keeps its
    summation order, so the interpreter gives the same bits."""
    from onnxcc.codegen.schedule import register_block

    before = direct_conv1d()
    after = apply_passes(before, [register_block([("ow", 8), ("m", 8)], ops=("Conv",))],
                         check=True)
    text = kernel_text(after)
    assert "for m_o in 0..2:" in text and "for ow_o in 0..2:" in text
    assert "acc_0_7:f32" in text and "acc_7_7:f32" in text     # 8 x 8 renamed accumulators
    assert "for ow in 16..19:" in text                         # the remainder columns
    assert apply_passes(before, [register_block([("ow", 8)], ops=("Gemm",))]) is before
    rng = np.random.default_rng(5)
    x = rng.standard_normal(before.inputs[0].shape, dtype=np.float32)
    w = rng.standard_normal(before.inputs[1].shape, dtype=np.float32)
    ys = []
    for k in (before, after):
        y = np.zeros(k.outputs[0].shape, np.float32)
        run_kernel(k, {"x": x.reshape(-1), "w": w.reshape(-1), "y": y.reshape(-1)})
        ys.append(y)
    np.testing.assert_array_equal(ys[1], ys[0])
