"""The LLVM back end: loop-IR Programs rendered through llvmlite, optimized at O3, JIT-run and
compared with the loop IR's interpreter (exact for integers) and onnxruntime; objects for the
cross triples; the host object linked with a C program; the entry's status codes."""

import re
import shutil
import subprocess
import threading

import numpy as np
import pytest
from onnx import TensorProto, helper

from builders import IR_VERSION, make_model, ort_run
from loopir import program_of, run_interp, run_llvm
from onnxcc.codegen.llvm.jit import CROSS, JITProgram, emit_object
from onnxcc.codegen.llvm.render import STATUS, render_program
from onnxcc.codegen.loops import (F32, I32, Assign, Binary, Buffer, Const, Decl, If,
                                  Kernel, Load, Loop, MulAdd, Program, Select, Store, Unary, Var,
                                  affine, all_of)
from onnxcc.codegen.verify import verify
from onnxcc.errors import OnnxccError

F, I8_, I32_, B_ = TensorProto.FLOAT, TensorProto.INT8, TensorProto.INT32, TensorProto.BOOL


def typed_model(nodes, inputs, outputs, inits=None):
    """Like builders.make_model, with a dtype per tensor: ``inputs``/``outputs`` map a name to
    ``(shape, TensorProto dtype)``."""
    ns = [helper.make_node(t[0], list(t[1]), list(t[2]), name=f"n{k}", **(t[3] if len(t) > 3 else {}))
          for k, t in enumerate(nodes)]
    from onnx import numpy_helper

    g = helper.make_graph(ns, "g", [helper.make_tensor_value_info(k, t, s) for k, (s, t) in inputs.items()],
                          [helper.make_tensor_value_info(k, t, s) for k, (s, t) in outputs.items()],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    return m


def check_three_ways(m, feeds, rtol=1e-6, atol=1e-7, exact=False):
    """The JIT agrees with the interpreter (exactly when ``exact``) and with onnxruntime."""
    p = program_of(m)
    xs = list(feeds.values())
    got = run_llvm(p, xs)
    ref = run_interp(p, xs)
    want = ort_run(m, feeds)
    for g, r, w in zip(got, ref, want.values()):
        assert g.dtype == w.dtype and g.shape == w.shape
        if exact:
            np.testing.assert_array_equal(g, r)
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, r, rtol=rtol, atol=atol)
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return p


# ---- graph-level programs against onnxruntime -------------------------------------------------
UNARY = ["Relu", "Sigmoid", "Tanh", "Exp", "Erf", "Sin", "Cos", "Tan", "Atan", "Asinh", "Sinh",
         "Cosh", "Floor", "Ceil", "Round", "Abs", "Neg", "Softplus", "Softsign", "Mish", "Gelu",
         "HardSwish", "HardSigmoid", "Sign", "Elu", "Selu", "Celu", "IsNaN", "IsInf"]


@pytest.mark.parametrize("op", UNARY)
def test_unary_float_ops(rng, op):
    x = (rng.standard_normal((3, 17)) * 2).astype(np.float32)
    x[0, :4] = [0.5, -0.5, 2.5, -1.5]          # Round: half to even
    out_t = B_ if op in ("IsNaN", "IsInf") else F
    m = typed_model([(op, ["x"], ["y"])], {"x": ((3, 17), F)}, {"y": ((3, 17), out_t)})
    if op in ("Gelu", "Mish"):
        m.opset_import[0].version = 20
    check_three_ways(m, {"x": x}, rtol=2e-6, atol=2e-7)


@pytest.mark.parametrize("op", ["Log", "Sqrt", "Reciprocal", "Asin", "Acos", "Acosh", "Atanh"])
def test_unary_ops_on_their_domain(rng, op):
    x = rng.uniform(0.05, 0.95, (40,)).astype(np.float32)
    if op == "Acosh":
        x = x + np.float32(1)
    m = make_model([(op, ["x"], ["y"])], inputs={"x": (40,)}, outputs={"y": (40,)})
    check_three_ways(m, {"x": x}, rtol=2e-6, atol=2e-7)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"])
@pytest.mark.parametrize("shapes", [((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((5,), (1,))])
def test_binary_float_ops_broadcast(rng, op, shapes):
    sa, sb = shapes
    out = np.broadcast_shapes(sa, sb)
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    if op == "Pow":
        a = np.abs(a) + np.float32(0.1)
    m = make_model([(op, ["a", "b"], ["y"])], inputs={"a": sa, "b": sb}, outputs={"y": out})
    check_three_ways(m, {"a": a, "b": b}, rtol=2e-6, atol=1e-7)


def test_float_max_min_propagate_nan():
    a = np.array([np.nan, 1.0, np.nan, -0.0, 3.0, -np.inf, 2.0], np.float32)
    b = np.array([1.0, np.nan, np.nan, 0.0, np.inf, 1.0, 2.0], np.float32)
    for op in ("Max", "Min"):
        m = make_model([(op, ["a", "b"], ["y"])], inputs={"a": (7,), "b": (7,)}, outputs={"y": (7,)})
        p = program_of(m)
        got = run_llvm(p, [a, b])[0]
        want = (np.maximum if op == "Max" else np.minimum)(a, b)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(got, run_interp(p, [a, b])[0])
        np.testing.assert_array_equal(got, ort_run(m, {"a": a, "b": b})["y"])


def test_int8_add_wraps_around():
    a = np.array([127, -128, 100, -100, 5, 0, 64, -1], np.int8)
    b = np.array([1, -1, 100, -100, -5, 0, 64, -128], np.int8)
    for op in ("Add", "Sub", "Mul"):
        m = make_model([(op, ["a", "b"], ["y"])], inputs={"a": (8,), "b": (8,)},
                       outputs={"y": (8,)}, dtype=I8_)
        p = program_of(m)
        got = run_llvm(p, [a, b])[0]
        with np.errstate(over="ignore"):
            want = {"Add": a + b, "Sub": a - b, "Mul": a * b}[op]
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, run_interp(p, [a, b])[0])


def test_int32_add_wraps_around():
    a = np.array([2**31 - 1, -(2**31), 7], np.int32)
    b = np.array([1, -1, -9], np.int32)
    m = make_model([("Add", ["a", "b"], ["y"])], inputs={"a": (3,), "b": (3,)},
                   outputs={"y": (3,)}, dtype=I32_)
    p = program_of(m)
    np.testing.assert_array_equal(run_llvm(p, [a, b])[0], run_interp(p, [a, b])[0])
    np.testing.assert_array_equal(run_llvm(p, [a, b])[0], np.array([-(2**31), 2**31 - 1, -2], np.int32))


@pytest.mark.parametrize("op, attrs", [("Div", {}), ("Mod", {}), ("Mod", {"fmod": 1})])
def test_int32_div_mod_truncate_and_zero_divisor_gives_zero(op, attrs):
    a = np.array([7, -7, 7, -7, 0, 5, -(2**31), -(2**31), 9, -9], np.int32)
    b = np.array([2, 2, -2, -2, 3, 0, -1, 1, 0, 4], np.int32)
    m = make_model([(op, ["a", "b"], ["y"], attrs)], inputs={"a": (10,), "b": (10,)},
                   outputs={"y": (10,)}, dtype=I32_)
    p = program_of(m)
    got = run_llvm(p, [a, b])[0]
    np.testing.assert_array_equal(got, run_interp(p, [a, b])[0])
    assert (got[b == 0] == 0).all()
    np.testing.assert_array_equal(got[6], 0 if op == "Mod" else -(2**31))   # INT_MIN / -1 wraps
    # onnxruntime's result for a zero divisor is undefined, and INT_MIN % -1 traps in it
    nz = (b != 0) & ~((a == -(2**31)) & (b == -1))
    if op == "Div":
        np.testing.assert_array_equal(got[:4], [3, -3, -3, 3])
    else:
        want = ort_run(make_model([(op, ["a", "b"], ["y"], attrs)], inputs={"a": (7,), "b": (7,)},
                                  outputs={"y": (8,)}, dtype=I32_), {"a": a[nz], "b": b[nz]})["y"]
        np.testing.assert_array_equal(got[nz], want)


@pytest.mark.parametrize("to, np_t", [(TensorProto.INT32, np.int32), (TensorProto.INT8, np.int8),
                                      (TensorProto.UINT8, np.uint8), (TensorProto.INT64, np.int64),
                                      (TensorProto.DOUBLE, np.float64), (B_, np.bool_)])
def test_cast_from_float_truncates(to, np_t):
    x = np.array([0.0, 0.9, -0.9, 1.5, -1.5, 2.99, -2.99, 100.7, 7.0, 126.9], np.float32)
    if np_t == np.uint8:
        x = np.abs(x)
    m = typed_model([("Cast", ["x"], ["y"], {"to": to})], {"x": ((10,), F)}, {"y": ((10,), to)})
    check_three_ways(m, {"x": x}, exact=True)


def test_cast_int_to_float_and_widths():
    x = np.array([-128, -1, 0, 1, 127, 55], np.int8)
    for to in (F, TensorProto.INT32, TensorProto.UINT8, TensorProto.INT16):
        m = typed_model([("Cast", ["x"], ["y"], {"to": to})], {"x": ((6,), I8_)}, {"y": ((6,), to)})
        check_three_ways(m, {"x": x}, exact=True)


def test_bool_ops(rng):
    a, b = rng.random(12) < 0.5, rng.random(12) < 0.5
    shp = {"a": ((12,), B_), "b": ((12,), B_)}
    for op in ("And", "Or", "Xor"):
        m = typed_model([(op, ["a", "b"], ["y"])], shp, {"y": ((12,), B_)})
        check_three_ways(m, {"a": a, "b": b}, exact=True)
    m = typed_model([("Not", ["a"], ["y"])], {"a": ((12,), B_)}, {"y": ((12,), B_)})
    check_three_ways(m, {"a": a}, exact=True)


def test_where_and_equal_on_mixed_dtypes(rng):
    c = rng.random((2, 6)) < 0.5
    x = rng.standard_normal((2, 6)).astype(np.float32)
    y = rng.standard_normal((6,)).astype(np.float32)
    m = typed_model([("Where", ["c", "x", "y"], ["z"])],
                    {"c": ((2, 6), B_), "x": ((2, 6), F), "y": ((6,), F)}, {"z": ((2, 6), F)})
    check_three_ways(m, {"c": c, "x": x, "y": y}, exact=True)
    a = np.array([1, 2, 3, -4], np.int32)
    b = np.array([1, 0, 3, 4], np.int32)
    m = typed_model([("Equal", ["a", "b"], ["e"]), ("Less", ["a", "b"], ["l"])],
                    {"a": ((4,), I32_), "b": ((4,), I32_)}, {"e": ((4,), B_), "l": ((4,), B_)})
    check_three_ways(m, {"a": a, "b": b}, exact=True)


def test_fused_chain_is_one_kernel_and_vectorizes(rng):
    b = rng.standard_normal((4, 1), dtype=np.float32)
    m = make_model([("Add", ["x", "b"], ["t"]), ("Relu", ["t"], ["u"]), ("Mul", ["u", "c"], ["v"]),
                    ("Sub", ["v", "b"], ["y"])],
                   inputs={"x": (8, 4, 64)}, outputs={"y": (8, 4, 64)},
                   inits={"b": b, "c": np.array(1.5, np.float32)})
    x = rng.standard_normal((8, 4, 64), dtype=np.float32)
    p = check_three_ways(m, {"x": x})
    assert [k.op for k in p.kernels] == ["onnxcc.FusedElementwise"]
    assert re.search(r"<\d+ x float>", JITProgram(p).ir)


def test_concurrent_runs_from_threads(rng):
    m = make_model([("Tanh", ["x"], ["y"])], inputs={"x": (256,)}, outputs={"y": (256,)})
    jp = JITProgram(program_of(m))
    xs = [rng.standard_normal(256).astype(np.float32) for _ in range(8)]
    outs: list = [None] * 8

    def work(k):
        for _ in range(20):
            outs[k] = jp.run([xs[k]])[0]

    ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for x, y in zip(xs, outs):
        np.testing.assert_allclose(y, np.tanh(x), rtol=2e-6, atol=1e-7)


# ---- hand-built kernels: what lowering of other families will need ----------------------------
def _prog(kernels, ins, outs, arena=0):
    p = Program("hand", kernels, ins, outs, arena_size=arena, arena_align=16)
    verify(p)
    return p


def _compare(p, xs, exact=False):
    got, want = run_llvm(p, xs), run_interp(p, xs)
    for g, w in zip(got, want):
        if exact:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    return got


def test_triangular_loops_with_accumulator_and_muladd(rng):
    """y[i] = sum_{j <= i} a[i, j] * x[j] (lower-triangular matvec): the inner bound is i + 1."""
    n = 13
    a = Buffer("a", F32, (n, n), space="input", index=0)
    x = Buffer("x", F32, (n,), space="input", index=1)
    y = Buffer("y", F32, (n,), space="output", index=0)
    i, j, acc = Var("i"), Var("j"), Var("acc", F32)
    body = [Loop(i, 0, n, [Decl(acc, Const(0.0, F32)),
                           Loop(j, 0, affine(i, 1), [Assign(acc, MulAdd(a[i, j], x[j], acc))]),
                           Store(y, (i,), acc)])]
    p = _prog([Kernel("trmv", [y], [a, x], body)], [a, x], [y])
    av, xv = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    got = _compare(p, [av, xv])
    np.testing.assert_allclose(got[0], np.tril(av) @ xv, rtol=1e-5, atol=1e-5)


def test_masked_load_pads_and_never_reads_outside():
    """y[i] = x[i - 2] (0 outside): the input sits at the very start of its storage, so an
    unguarded read would be out of bounds (ASan would not see it; the values show it)."""
    x = Buffer("x", F32, (5,), space="input", index=0)
    y = Buffer("y", F32, (9,), space="output", index=0)
    i = Var("i")
    src = affine(i, -2)
    ld = Load(x, (src,), all_of(src >= 0, src < 5), Const(-1.0, F32))
    p = _prog([Kernel("pad", [y], [x], [Loop(i, 0, 9, [Store(y, (i,), ld)])])], [x], [y])
    got = _compare(p, [np.arange(1, 6, dtype=np.float32)], exact=True)
    np.testing.assert_array_equal(got[0], [-1, -1, 1, 2, 3, 4, 5, -1, -1])


def test_if_and_select_with_guarded_load_arm():
    """y[i] = x[i+1] if i+1 < n else x[i]  (a select whose arm is valid only under its guard),
    then an If that doubles even positions."""
    n = 7
    x = Buffer("x", I32, (n,), space="input", index=0)
    y = Buffer("y", I32, (n,), space="output", index=0)
    i, v = Var("i"), Var("v", I32)
    nxt = affine(i, 1)
    body = [Loop(i, 0, n, [
        Decl(v, Select(Binary("lt", nxt, Const(n)), Load(x, (nxt,)), Load(x, (i,)))),
        If(Binary("eq", Binary("mod", i, Const(2)), Const(0)), [Assign(v, v * Const(2, I32))],
           [Assign(v, Binary("sub", Const(0, I32), v))]),
        Store(y, (i,), v)])]
    p = _prog([Kernel("k", [y], [x], body)], [x], [y])
    got = _compare(p, [np.arange(10, 10 + n, dtype=np.int32)], exact=True)
    np.testing.assert_array_equal(got[0], [22, -12, 26, -14, 30, -16, 32])


@pytest.mark.parametrize("kind, factor", [("unrolled", 0), ("unrolled", 4), ("vectorized", 8),
                                          ("parallel", 0)])
def test_loop_kinds_keep_semantics_and_carry_metadata(rng, kind, factor):
    n = 64
    x = Buffer("x", F32, (n,), space="input", index=0)
    y = Buffer("y", F32, (n,), space="output", index=0)
    i = Var("i")
    loop = Loop(i, 0, n, [Store(y, (i,), MulAdd(x[i], Const(2.0, F32), Const(1.0, F32)))],
                kind=kind, factor=factor)
    p = _prog([Kernel("k", [y], [x], [loop])], [x], [y])
    text = str(render_program(p))
    # a partial unroll (factor > 0) is for the C renderer's row-pointer form: LLVM's loop
    # vectorizer interleaves on its own, and an unroll count slowed O3 down 2x on MobileNet
    hint = {("unrolled", 0): "llvm.loop.unroll.full",
            ("vectorized", 8): "llvm.loop.vectorize.width"}.get((kind, factor))
    if hint:
        assert re.search(r"distinct !\{!(\d+), ", text) and hint in text
    else:
        assert "llvm.loop" not in text
    _compare(p, [rng.standard_normal(n).astype(np.float32)])


def test_vectorize_hint_is_not_given_to_a_float_reduction():
    """A vectorize hint would let LLVM reassociate the sum; the loop stays without it."""
    x = Buffer("x", F32, (16,), space="input", index=0)
    y = Buffer("y", F32, (1,), space="output", index=0)
    i, acc = Var("i"), Var("acc", F32)
    body = [Decl(acc, Const(0.0, F32)),
            Loop(i, 0, 16, [Assign(acc, acc + x[i])], kind="vectorized", factor=8),
            Store(y, (Const(0),), acc)]
    p = _prog([Kernel("sum", [y], [x], body)], [x], [y])
    assert "llvm.loop" not in str(render_program(p))
    xs = np.array([1e8, 1, -1e8, 1] * 4, np.float32)
    _compare(p, [xs], exact=True)


def _arena_program():
    """t = x * 2 in the arena (at offset 16), y = t + 1: a Program whose arena matters."""
    x = Buffer("x", F32, (4,), space="input", index=0)
    t = Buffer("t", F32, (4,), space="arena", offset=16)
    y = Buffer("y", F32, (4,), space="output", index=0)
    i, j = Var("i"), Var("j")
    k0 = Kernel("k0", [t], [x], [Loop(i, 0, 4, [Store(t, (i,), x[i] * Const(2.0, F32))])])
    t_in = Buffer("t", F32, (4,), space="arena", offset=16)
    k1 = Kernel("k1", [y], [t_in], [Loop(j, 0, 4, [Store(y, (j,), t_in[j] + Const(1.0, F32))])])
    return _prog([k0, k1], [x], [y], arena=32)


def test_entry_returns_the_c_back_ends_status_codes():
    import ctypes

    jp = JITProgram(_arena_program())
    x = np.arange(4, dtype=np.float32)
    y = np.zeros(4, np.float32)
    buf = np.zeros(128, np.uint8)
    base = buf.ctypes.data + (-buf.ctypes.data) % 16
    xp, yp = x.ctypes.data, y.ctypes.data
    assert STATUS == {"OK": 0, "NULL_ARG": 1, "ARENA_TOO_SMALL": 2, "ARENA_MISALIGNED": 3}
    assert jp.entry(base, 32, None, yp) == STATUS["NULL_ARG"]
    assert jp.entry(base, 32, xp, None) == STATUS["NULL_ARG"]
    assert jp.entry(None, 32, xp, yp) == STATUS["NULL_ARG"]
    assert jp.entry(base, 31, xp, yp) == STATUS["ARENA_TOO_SMALL"]
    assert jp.entry(base + 4, 64, xp, yp) == STATUS["ARENA_MISALIGNED"]
    assert (y == 0).all()
    assert jp.entry(ctypes.c_void_p(base), 32, xp, yp) == STATUS["OK"]
    np.testing.assert_array_equal(y, x * 2 + 1)
    np.testing.assert_array_equal(jp.run([x])[0], x * 2 + 1)


def test_renderer_refuses_vector_dtypes():
    x = Buffer("x", F32.vec(4), (4,), space="input", index=0)
    y = Buffer("y", F32.vec(4), (4,), space="output", index=0)
    i = Var("i")
    p = Program("v", [Kernel("k", [y], [x], [Loop(i, 0, 4, [Store(y, (i,), x[i])])])], [x], [y], 0)
    with pytest.raises(OnnxccError, match="vector dtype f32x4"):
        render_program(p)


# ---- objects: cross triples and the host object linked with C ---------------------------------
ELF_MACHINE = {"x86-64-v3": 62, "aarch64": 183, "thumbv7em": 40}


@pytest.mark.parametrize("name", sorted(CROSS))
def test_objects_for_cross_triples(name):
    p = _arena_program()
    triple, cpu, features = CROSS[name]
    obj = emit_object(p, triple, cpu, features)
    assert obj[:4] == b"\x7fELF"
    assert int.from_bytes(obj[18:20], "little") == ELF_MACHINE[name]
    assert b"hand_run" in obj


@pytest.mark.parametrize("name", sorted(CROSS))
def test_weights_are_patched_into_their_own_sections(name, rng):
    """Weights reach an object without going through IR text: zero constants in sections
    ``.rodata.onnxcc_w<k>`` that LLVM may not fold (externally_initialized), overwritten in the
    ELF (64-bit x86-64/AArch64, 32-bit Thumb). The bytes are there, once each, and the JIT
    running this machine's object gives the numbers. A weight O3 deleted (no code reads it: a
    ConvTranspose whose taps all miss y) is not patched; any other missing section is an
    error, never zeros in place of weights."""
    from onnxcc.codegen.llvm.jit import patch_sections

    w = rng.standard_normal((3, 5), dtype=np.float32)
    b = rng.standard_normal(5, dtype=np.float32)
    m = make_model([("MatMul", ["x", "w"], ["t"]), ("Add", ["t", "b"], ["y"])],
                   inputs={"x": (2, 3)}, outputs={"y": None}, inits={"w": w, "b": b})
    p = program_of(m)
    obj = emit_object(p, *CROSS[name])
    for data in (w, b):
        assert obj.count(data.tobytes()) == 1
    assert b".rodata.onnxcc_w0" in obj and b".rodata.onnxcc_w1" in obj
    with pytest.raises(OnnxccError, match="no section .rodata.onnxcc_w9"):
        patch_sections(obj, {".rodata.onnxcc_w9": b"1234"})
    with pytest.raises(OnnxccError, match="has type 1 and 60 bytes, not 4"):
        patch_sections(obj, {".rodata.onnxcc_w0": b"1234"})
    with pytest.raises(OnnxccError, match="not a little-endian ELF"):
        patch_sections(b"MZ" + obj[2:], {})
    if name != "thumbv7em":   # ELF64: the same object in extended section numbering
        import struct

        ext = bytearray(obj)
        shoff, = struct.unpack_from("<Q", ext, 0x28)
        shnum, shstrndx = struct.unpack_from("<HH", ext, 0x3C)
        struct.pack_into("<HH", ext, 0x3C, 0, 0xFFFF)                 # e_shnum, e_shstrndx
        struct.pack_into("<Q", ext, shoff + 0x20, shnum)              # section 0's sh_size
        struct.pack_into("<I", ext, shoff + 0x28, shstrndx)           # section 0's sh_link
        patched = patch_sections(bytes(ext), {".rodata.onnxcc_w0": b"\x01" * w.nbytes})
        assert patched.count(b"\x01" * w.nbytes) == 1 and w.tobytes() not in patched
    x = rng.standard_normal((2, 3), dtype=np.float32)
    got = JITProgram(p, obj=emit_object(p, "", "native")).run([x])[0]   # this machine's object
    np.testing.assert_allclose(got, x @ w + b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_host_object_linked_with_a_c_program_matches_the_jit(tmp_path, rng):
    import llvmlite.binding as llvm

    b = rng.standard_normal((3, 1), dtype=np.float32)
    m = make_model([("Add", ["x", "b"], ["t"]), ("Tanh", ["t"], ["y"])],
                   inputs={"x": (2, 3, 5)}, outputs={"y": (2, 3, 5)}, inits={"b": b}, name="demo")
    p = program_of(m)
    x = rng.standard_normal((2, 3, 5), dtype=np.float32)
    want = JITProgram(p).run([x])[0]
    obj = emit_object(p, llvm.get_process_triple(), llvm.get_host_cpu_name(),
                      llvm.get_host_cpu_features().flatten())
    (tmp_path / "m.o").write_bytes(obj)
    vals = ", ".join(f"{v!r}f" for v in x.reshape(-1).tolist())
    (tmp_path / "main.c").write_text(f"""
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
int32_t demo_run(void *arena, size_t arena_size, const float *input0, float *output0);
static const float x[30] = {{ {vals} }};
int main(void) {{
    static unsigned char arena[{max(p.arena_size, 1)}] __attribute__((aligned(64)));
    float y[30];
    int32_t s = demo_run(arena, sizeof arena, x, y);
    if (s != 0) return 10 + s;
    for (int i = 0; i < 30; ++i) printf("%a\\n", (double)y[i]);
    return 0;
}}
""")
    exe = tmp_path / "main"
    r = subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", str(tmp_path / "main.c"),
                        str(tmp_path / "m.o"), "-o", str(exe), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    got = np.array([float.fromhex(v) for v in out], np.float32).reshape(2, 3, 5)
    np.testing.assert_array_equal(got, want)


def test_outer_loops_past_a_few_iterations_are_not_unrolled(rng):
    """LLVM fully unrolled constant-trip outer loops around vectorized inner loops (0.6-2.3 s
    of O3 per 1x1 group conv of ShuffleNet): outer loops of more than OUTER_UNROLL_MAX
    iterations carry unroll.disable; a kernel's few taps (3) and innermost loops do not."""
    from onnxcc.codegen.llvm.kernel import OUTER_UNROLL_MAX

    x = Buffer("x", F32, (8, 3, 16), space="input", index=0)
    y = Buffer("y", F32, (8, 3, 16), space="output", index=0)
    i, t, j = Var("i"), Var("t"), Var("j")
    inner = Loop(j, 0, 16, [Store(y, (i, t, j), MulAdd(x[i, t, j], Const(2.0, F32), Const(1.0, F32)))])
    p = _prog([Kernel("k", [y], [x], [Loop(i, 0, 8, [Loop(t, 0, 3, [inner])])])], [x], [y])
    text = str(render_program(p))
    # one loop carries metadata (i): not the 3-tap loop t, not the innermost j
    assert OUTER_UNROLL_MAX < 8 and "llvm.loop.unroll.disable" in text
    assert text.count("!llvm.loop !") == 1
    _compare(p, [rng.standard_normal((8, 3, 16)).astype(np.float32)])


def test_a_weight_no_code_reads_is_dropped_not_an_error():
    """ConvTranspose whose every tap misses y (dilation 100): O3 deletes the unread weight and
    its section; the object is still written and runs (found by a fuzz fix's test)."""
    import onnxcc

    m = make_model([("ConvTranspose", ["x", "w"], ["y"], dict(dilations=[100], output_shape=[5]))],
                   inputs={"x": (1, 1, 1)}, outputs={"y": None},
                   inits={"w": np.ones((1, 1, 2), np.float32)})
    x = np.array([[[2.0]]], np.float32)
    got = onnxcc.compile(m, target="cpu").run({"x": x})["y"]
    np.testing.assert_allclose(got, ort_run(m, {"x": x})["y"])


def _inplace_program(shift: int):
    """x -> a (arena) -> a' = tanh(a) in place (the input ``shift`` floats ahead of the output)
    -> y: the in-place kernel's output starts at arena+0, its input at arena+4*shift."""
    n = 64
    x = Buffer("x", F32, (n,), space="input", index=0)
    y = Buffer("y", F32, (n - shift,), space="output", index=0)
    a_out = Buffer("a", F32, (n,), space="arena", offset=0)
    t_in = Buffer("t", F32, (n - shift,), space="arena", offset=4 * shift)
    t_out = Buffer("u", F32, (n - shift,), space="arena", offset=0)
    a_in = Buffer("u", F32, (n - shift,), space="arena", offset=0)
    i, j, m = Var("i"), Var("j"), Var("m")
    k0 = Kernel("k0", [a_out], [x], [Loop(i, 0, n, [Store(a_out, (i,), x[i])])])
    k1 = Kernel("k1", [t_out], [t_in],
                [Loop(j, 0, n - shift, [Store(t_out, (j,), Unary("tanh", t_in[j]))])],
                inplace=True)
    k2 = Kernel("k2", [y], [a_in], [Loop(m, 0, n - shift, [Store(y, (m,), a_in[m])])])
    return _prog([k0, k1, k2], [x], [y], arena=4 * n)


def test_an_in_place_kernel_passes_one_pointer_and_vectorizes(rng):
    """An in-place kernel whose input starts where its output does gets one pointer parameter:
    with two, LLVM guarded the vector loop with an overlap check that always failed and ran
    the scalar loop. One that reads a few floats ahead keeps two pointers, not noalias, and
    still computes the serial result."""
    from onnxcc.codegen.llvm.kernel import kernel_params

    x = rng.standard_normal(64).astype(np.float32)
    for shift in (0, 3):
        p = _inplace_program(shift)
        params, noalias = kernel_params(p.kernels[1])
        assert (len(params), noalias) == ((1, True) if shift == 0 else (2, False))
        got = run_llvm(p, [x])[0]
        np.testing.assert_allclose(got, np.tanh(x[shift:]), rtol=3e-7, atol=1e-7)
        if shift == 0:
            ir = JITProgram(p).ir
            k1 = ir[re.search(r"define [^\n]*@k1\(", ir).start():]
            k1 = k1[: k1.index("\n}\n")]
            assert re.search(r"<(8|16) x float>", k1) and "memcheck" not in k1
