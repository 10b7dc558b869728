"""float16 tensors on the C (host, Cortex-M) and LLVM (cpu) targets: stored as IEEE binary16,
computed in float32 (passes/float16_compute.py), converted in portable C99 bit manipulation
(codegen/c/render.py) or LLVM fptrunc/fpext (codegen/llvm/kernel.py)."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T, helper, numpy_helper

import onnxcc
from onnxcc.codegen.interpret import run_program
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret

from builders import IR_VERSION, ort_run

# float32 edge values: zeros, the largest float16 (65504), just under and at the overflow tie
# (65520 rounds to inf), the smallest subnormal 2^-24, the tie 2^-25 (rounds to 0, even), above
# it (rounds to 2^-24), the smallest normal 2^-14, a subnormal tie (3 * 2^-25: to 2^-23, even),
# ties to even between normals (1 + 2^-11 -> 1, 1 + 3 * 2^-11 -> 1 + 2^-9), inf, NaN, tiny.
F32_EDGES = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 65519.996, 65520.0, -65520.0, 1e6, 2.0**-24,
                      -(2.0**-24), 2.0**-25, 1.5 * 2.0**-25, 2.0**-14, 2.0**-14 - 2.0**-24,
                      3 * 2.0**-25, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 1e-10, np.inf, -np.inf,
                      np.nan, 0.1, 333.3], np.float32)
# float64 values where rounding twice (to float32, then float16) would be wrong: just above a
# float16 tie by less than a float32 ulp, and just under the overflow tie.
F64_EDGES = np.concatenate([F32_EDGES.astype(np.float64), np.array(
    [1 + 2.0**-11 + 2.0**-40, 1 + 2.0**-11 - 2.0**-40, 2.0**-25 + 2.0**-60,
     65520.0 - 2.0**-30, 2049.0 + 2.0**-35, 1e-300, -1e300], np.float64)])
INTS = np.array([0, 1, -1, 2049, 2051, -2051, 65504, 65519, 65520, 100000, -(2**31),
                 2**24 + 1], np.int32)
TO_INT = np.array([-2.5, 2.5, 0.999, -0.999, 65504.0, -65504.0, 3.0e-8, 1000.5], np.float16)


def _cast_model() -> onnx.ModelProto:
    """Six Casts side by side: float32, float64, int32 -> float16; float16 -> float32, float64,
    int32."""
    casts = [("x32", T.FLOAT, "h_from32", T.FLOAT16, F32_EDGES.size),
             ("x64", T.DOUBLE, "h_from64", T.FLOAT16, F64_EDGES.size),
             ("xi", T.INT32, "h_fromint", T.FLOAT16, INTS.size),
             ("h", T.FLOAT16, "f32_from_h", T.FLOAT, F32_EDGES.size),
             ("h", T.FLOAT16, "f64_from_h", T.DOUBLE, F32_EDGES.size),
             ("hi", T.FLOAT16, "int_from_h", T.INT32, TO_INT.size)]
    nodes = [helper.make_node("Cast", [i], [o], to=to, name=f"c{k}")
             for k, (i, _, o, to, _) in enumerate(casts)]
    ins = {i: helper.make_tensor_value_info(i, t, [n]) for i, t, _, _, n in casts}
    outs = [helper.make_tensor_value_info(o, to, [n]) for _, _, o, to, n in casts]
    g = helper.make_graph(nodes, "casts", list(ins.values()), outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    m.ir_version = IR_VERSION
    return m


def _cast_feeds() -> dict[str, np.ndarray]:
    with np.errstate(over="ignore"):
        h = F32_EDGES.astype(np.float16)
    return {"x32": F32_EDGES, "x64": F64_EDGES, "xi": INTS, "h": h, "hi": TO_INT}


def _cast_want(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """numpy's astype: float -> float16 rounds once to nearest even (ints exactly through
    float64); float16 -> float32/float64 is exact; float16 -> int32 truncates."""
    with np.errstate(over="ignore", invalid="ignore"):
        return {"h_from32": feeds["x32"].astype(np.float16),
                "h_from64": feeds["x64"].astype(np.float16),
                "h_fromint": feeds["xi"].astype(np.float64).astype(np.float16),
                "f32_from_h": feeds["h"].astype(np.float32),
                "f64_from_h": feeds["h"].astype(np.float64),
                "int_from_h": feeds["hi"].astype(np.int32)}


def _same_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (what, got.dtype, got.shape)
    u = {2: np.uint16, 4: np.uint32, 8: np.uint64}[want.dtype.itemsize]
    bad = np.nonzero(got.view(u) != want.view(u))[0]
    assert bad.size == 0, (what, [(float(a), float(b)) for a, b in
                                  zip(got[bad][:5], want[bad][:5])], bad[:5])


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_cast_edge_values_bit_exact_with_numpy(target):
    m = _cast_model()
    feeds = _cast_feeds()
    want = _cast_want(feeds)
    cm = onnxcc.compile(m, target)
    got = cm.run(feeds)
    for k, w in want.items():
        _same_bits(got[k], w, f"{target} {k}")
    # the loop IR's numpy interpreter runs the same Program
    outs = run_program(cm.program, [feeds[b.value] for b in cm.program.inputs])
    for b, o in zip(cm.program.outputs, outs):
        _same_bits(o, want[b.value], f"{target} interpreter {b.value}")
    if target == "host":   # the reference interpreter too
        ref = interpret(import_onnx(m), feeds)
        for k, w in want.items():
            _same_bits(np.asarray(ref[k]), w, f"reference {k}")
        # float16 travels as uint16_t bit patterns: no _Float16/__fp16 in the generated C
        src = (cm.lib_dir / f"{cm.mmap['c_prefix']}.c").read_text()
        assert "onnxcc_f32_to_f16" in src and "onnxcc_f64_to_f16" in src
        assert "_Float16" not in src and "__fp16" not in src


def _conv_relu_matmul(rng) -> onnx.ModelProto:
    """x:f16[1,3,8,8] -> Conv 3x3 (4 channels, pad 1) + bias -> Relu -> Flatten -> MatMul
    [256, 10] -> y:f16[1,10], weights float16."""
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float16)
    b = (rng.standard_normal(4) * 0.1).astype(np.float16)
    wm = (rng.standard_normal((256, 10)) * 0.1).astype(np.float16)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "wm"], ["y"], name="mm")]
    g = helper.make_graph(nodes, "fp16net",
                          [helper.make_tensor_value_info("x", T.FLOAT16, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", T.FLOAT16, [1, 10])],
                          [numpy_helper.from_array(a, k) for k, a in
                           (("w", w), ("b", b), ("wm", wm))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    return m


def _check_fp16(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Within float16 tolerance: float32 accumulation orders differ, then one rounding (a few
    float16 ulps of the output's scale)."""
    assert got.dtype == np.float16 and got.shape == want.shape, (what, got.dtype, got.shape)
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=4e-3,
                               atol=4e-3 * float(np.abs(want.astype(np.float32)).max()),
                               err_msg=what)


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_fp16_conv_relu_matmul_against_onnxruntime(target, rng):
    m = _conv_relu_matmul(rng)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float16)
    want = ort_run(m, {"x": x})["y"]
    cm = onnxcc.compile(m, target)
    _check_fp16(cm.run({"x": x})["y"], want, target)
    # float16 at the API (2 bytes per element), computed in float32 between casts
    assert [(t["dtype"], t["shape"]) for t in cm.mmap["inputs"]] == [("float16", [1, 3, 8, 8])]
    assert cm.mmap["outputs"][0]["dtype"] == "float16"
    # weights stay 2 bytes each (also a lowering's packed copy), widened where kernels load them
    assert {str(b.dtype) for b in cm.program.weights() if b.data.size > 1} == {"f16"}
    if target == "host":
        assert cm.weights_size == 2 * (4 * 3 * 3 * 3 + 4 + 256 * 10)
    # the loop IR's interpreter runs the same Program (to the bit on host: no FMA contraction
    # there; LLVM may contract a multiply-add, which can move a float16 rounding by one ulp)
    (ref,) = run_program(cm.program, [x])
    if target == "host":
        _same_bits(ref, cm.run({"x": x})["y"], "interpreter")
    _check_fp16(ref, want, f"{target} interpreter")
    ops = [n.op for n in cm.graph.nodes]
    assert any(op.startswith("onnxcc.Conv") or op == "Conv" for op in ops), ops
    assert all(v.dtype == np.float32 for n in cm.graph.nodes if n.op not in
               ("Cast", "onnxcc.FusedElementwise", "Reshape") for v in n.inputs if v is not None
               and v.dtype.kind == "f"), str(cm.graph)
    if target == "host" and shutil.which("clang"):   # warning-free with clang too
        _check_fp16(cm.run({"x": x}, cc="clang")["y"], want, "host clang")


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                    or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_fp16_conv_relu_matmul_on_cortex_m4_qemu(rng):
    from onnxcc.runtime import qemu

    m = _conv_relu_matmul(rng)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float16)
    want = ort_run(m, {"x": x})["y"]
    cm = onnxcc.compile(m, "cortex-m4")   # built with -Wall -Wextra -Werror by arm-none-eabi-gcc
    _check_fp16(qemu.run_on_qemu(cm, {"x": x})["y"], want, "cortex-m4 on QEMU")


def _h(rng, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float16)


# (op, inputs, initializers, opset, attributes): float16 forms onnxruntime computes in float32
ONE_ROUNDING = {
    "BatchNormalization": (lambda r: ({"x": _h(r, 1, 3, 4, 4)}, {
        "s": _h(r, 3), "b": _h(r, 3), "m": _h(r, 3), "v": np.abs(_h(r, 3)) + 0.1}), 15, {}),
    "LayerNormalization": (lambda r: ({"x": _h(r, 2, 5, 16)}, {"s": _h(r, 16), "b": _h(r, 16)}),
                           17, {"axis": -1}),
    "Softmax": (lambda r: ({"x": _h(r, 3, 10)}, {}), 13, {}),
    "Gemm": (lambda r: ({"a": _h(r, 4, 8)}, {"b": _h(r, 8, 6), "c": _h(r, 6)}), 13, {}),
    "AveragePool": (lambda r: ({"x": _h(r, 1, 2, 6, 6)}, {}), 12, {"kernel_shape": [3, 3]}),
}


@pytest.mark.parametrize("target,op", [("host", op) for op in ONE_ROUNDING]
                         + [("cpu", "BatchNormalization"), ("cpu", "LayerNormalization")])
def test_float16_ops_round_once_like_onnxruntime(target, op, rng):
    """Each op computes in float32 and rounds once (BatchNormalization is not rewritten into a
    float16 Mul and Add, whose constants would round): within one float16 ulp of onnxruntime
    (float32 summation orders differ)."""
    from builders import node_model

    make, opset, attrs = ONE_ROUNDING[op]
    ins, inits = make(rng)
    m = node_model(op, ins, ["y"], inits, opset=opset, **attrs)
    want = ort_run(m, ins)["y"]
    got = onnxcc.compile(m, target).run(ins)["y"]
    assert got.dtype == np.float16 and got.shape == want.shape
    diff = np.abs(got.astype(np.float32) - want.astype(np.float32))
    assert (diff <= np.spacing(np.abs(want)).astype(np.float32)).all(), (op, diff.max())
