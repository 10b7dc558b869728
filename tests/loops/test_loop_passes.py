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


def test_register_block_tiles_conv_interior_8x8_and_keeps_every_bit():
    """The cpu target's register_block pass on a real Conv lowering: the interior output columns
    run in tiles of 8 columns x 8 output channels (64 accumulators, one x load shared by 8
    channels, one weight shared by 8 columns), the border columns keep their guarded form, verify
    still proves every access, and the blocked program gives bit-identical outputs (each output's
    summation order is unchanged) through the JIT, and through the interpreter."""
    import onnxcc
    from builders import make_model
    from loopir import run_interp
    from onnxcc.codegen.llvm.jit import JITProgram
    from onnxcc.codegen.loops import program_text
    from onnxcc.codegen.lower import lower_program
    from onnxcc.codegen.schedule import register_block
    from onnxcc.codegen.verify import verify

    rng = np.random.default_rng(5)
    w = rng.standard_normal((16, 4, 3, 3)).astype(np.float32)
    m = make_model([("Conv", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1]})], {"x": (1, 4, 12, 12)},
                   {"y": (1, 16, 12, 12)}, {"w": w})
    cm = onnxcc.compile(m, target="cpu")
    blocked = cm.program
    plain = lower_program(onnxcc.compile(m, target="host").graph)
    text = program_text(blocked)
    assert "register_block[ow:8,m:8]" in [p.name for p in cm.target.loop_passes]
    assert "for m_o in 0..2:" in text and "for ow_o in 0..1:" in text
    assert "acc_0_7:f32" in text and "acc_7_7:f32" in text     # 8 x 8 renamed accumulators
    assert "for ow in 9..11:" in text                          # remainder of the 10 interior columns
    assert "for m_o" not in program_text(plain)
    verify(blocked)
    x = rng.standard_normal((1, 4, 12, 12)).astype(np.float32)
    want = JITProgram(plain).run([x])[0]
    np.testing.assert_array_equal(JITProgram(blocked).run([x])[0], want)
    np.testing.assert_array_equal(cm.run({"x": x})["y"], want)
    # the interpreter's multiply-add rounds like neither fused nor LLVM's choice: compare it
    # with itself, blocked against plain
    np.testing.assert_array_equal(run_interp(blocked, [x])[0], run_interp(plain, [x])[0])
