"""Post-training int8 quantization through the public API: onnxcc.compile(..., quantize=Int8(...)).

The digits CNN keeps its accuracy within 1 point of float on the C build with 4x smaller weights
and a smaller arena; the LLVM build gives the C build's outputs; the emulated Cortex-M4 runs the
integer kernels; bad calibration data is refused by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxcc
from onnxcc.quantize import CalibrationError

from builders import IR_VERSION

MODELS = Path(__file__).resolve().parents[1] / "compiler" / "models"
SHAPES = {"input": (1, 1, 8, 8)}


@pytest.fixture(scope="module")
def digits():
    with np.load(MODELS / "digits_test.npz", allow_pickle=False) as z:
        x, y = z["x"].astype(np.float32), z["y"]
    return str(MODELS / "digits.onnx"), x, y


def _accuracy(cm, x, y) -> float:
    pred = [int(np.argmax(cm.run({"input": x[i:i + 1]})["probabilities"])) for i in range(len(x))]
    return float(np.mean(np.array(pred) == y))


@pytest.fixture(scope="module")
def quantized(digits):
    path, x, _ = digits
    return onnxcc.compile(path, "host", input_shapes=SHAPES,
                          quantize=onnxcc.Int8(calibration={"input": x[:200]}))


def test_digits_int8_keeps_accuracy_with_smaller_weights_and_arena(digits, quantized):
    path, x, y = digits
    fp = onnxcc.compile(path, "host", input_shapes=SHAPES)
    q = quantized
    ops = [n.op for n in q.graph.nodes]
    assert ops.count("QLinearConv") == 2 and ops.count("com.microsoft.QGemm") == 2
    assert not {"Conv", "Gemm", "onnxcc.FusedConv", "onnxcc.FusedGemm"} & set(ops)
    acc_f, acc_q = _accuracy(fp, x, y), _accuracy(q, x, y)
    assert acc_q >= acc_f - 0.01, (acc_f, acc_q)
    # int8 weight tensors are a quarter of the float ones; the int32 biases, per-channel
    # multipliers and shifts and 64-byte alignment bring the total to under a third
    int8_w = sum(n.inputs[3].const.nbytes for n in q.graph.nodes
                 if n.op in ("QLinearConv", "com.microsoft.QGemm"))
    float_w = sum(n.inputs[1].const.nbytes for n in fp.graph.nodes
                  if n.op.split(".")[-1] in ("Conv", "Gemm", "FusedConv", "FusedGemm"))
    assert int8_w * 4 == float_w, (int8_w, float_w)
    assert q.weights_size * 3 <= fp.weights_size, (q.weights_size, fp.weights_size)
    plan_f, plan_q = fp.graph.meta["memory_plan"], q.graph.meta["memory_plan"]
    assert plan_q.arena_size < plan_f.arena_size, (plan_q.arena_size, plan_f.arena_size)


def test_report_names_each_quantized_tensor_with_its_sqnr(quantized):
    text = quantized.report()
    assert "int8 quantization: minmax, 200 calibration samples" in text
    rep = quantized.graph.meta["quantization"]
    assert [r.tensor for r in rep.layers] == ["input", "relu1_out", "relu2_out", "relu3_out",
                                              "logits", "probabilities"]   # Softmax: int8 too
    assert all(20 < r.sqnr_db < 80 for r in rep.layers), [r.sqnr_db for r in rep.layers]
    assert "<- lowest" in text


def test_llvm_build_gives_the_c_build_outputs(digits, quantized):
    path, x, _ = digits
    cpu = onnxcc.compile(path, "cpu", input_shapes=SHAPES,
                         quantize=onnxcc.Int8(calibration={"input": x[:200]}))
    for i in range(0, 450, 37):
        a = quantized.run({"input": x[i:i + 1]})["probabilities"]
        b = cpu.run({"input": x[i:i + 1]})["probabilities"]
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)   # float softmax of equal logits


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_other_calibration_methods(digits, method):
    path, x, y = digits
    q = onnxcc.compile(path, "host", input_shapes=SHAPES,
                       quantize=onnxcc.Int8(calibration={"input": x[:100]}, method=method))
    assert _accuracy(q, x, y) >= 0.95
    assert q.graph.meta["quantization"].method == method


def test_calibration_from_npz_folder_and_sample_list(digits, tmp_path):
    path, x, _ = digits
    np.savez(tmp_path / "cal.npz", input=x[:20])
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "input.npy", x[:20])
    outs = []
    for cal in (str(tmp_path / "cal.npz"), tmp_path / "npy",
                [{"input": x[i:i + 1]} for i in range(20)], {"input": x[:20]}):
        q = onnxcc.compile(path, "host", input_shapes=SHAPES, quantize=onnxcc.Int8(calibration=cal))
        outs.append(q.run({"input": x[:1]})["probabilities"])
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])


@pytest.mark.parametrize("cal,match", [
    ({"image": np.zeros((4, 1, 8, 8), np.float32)}, "lacks input.*'input'.*names \\['image'\\]"),
    ({"input": np.zeros((4, 3, 8, 8), np.float32)}, "input 'input' has shape \\[4, 3, 8, 8\\]"),
    ({"input": np.zeros((4, 1, 8, 8), np.int32)}, "input 'input' is int32"),
    ({"input": np.zeros((0, 1, 8, 8), np.float32)}, "calibration set is empty"),
    ([], "calibration set is empty"),
    ({"input": np.full((4, 1, 8, 8), np.nan, np.float32)}, "tensor 'input' .* not finite"),
    ({"input": np.zeros((4, 1, 8, 8), np.float32)}, "tensor 'input' is 0 on every"),
    # a range whose scale underflows float32 (was ZeroDivisionError in activation_params)
    ({"input": np.full((4, 1, 8, 8), 1e-44, np.float32)}, "tensor 'input' .* smallest normal"),
    ("/nonexistent/cal.npz", "no calibration file or folder"),
])
def test_bad_calibration_is_refused_by_name(digits, cal, match):
    path, _, _ = digits
    with pytest.raises(CalibrationError, match=match):
        onnxcc.compile(path, "host", input_shapes=SHAPES, quantize=onnxcc.Int8(calibration=cal))


def test_bad_settings_are_refused():
    with pytest.raises(CalibrationError, match="unknown calibration method 'kl'"):
        onnxcc.Int8(calibration={}, method="kl")
    with pytest.raises(CalibrationError, match="percentile 20"):
        onnxcc.Int8(calibration={}, method="percentile", percentile=20)


def test_mlp_gemm_and_matmul_layers():
    """A float MLP (MatMul + Add, Gemm with transB, Relu) becomes QGemm layers end to end."""
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((16, 32)) * 0.3).astype(np.float32)
    b1 = (rng.standard_normal(32) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((5, 32)) * 0.3).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]),
             helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h"]),
             helper.make_node("Gemm", ["h", "w2"], ["y"], transB=1)]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                        [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
                           numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = IR_VERSION
    xs = rng.standard_normal((300, 16)).astype(np.float32)
    q = onnxcc.compile(m, "host", quantize=onnxcc.Int8(calibration={"x": xs[:200]}))
    fp = onnxcc.compile(m, "host")
    assert [n.op for n in q.graph.nodes].count("com.microsoft.QGemm") == 2
    err, ref = [], []
    for i in range(200, 300):
        a, b = q.run({"x": xs[i:i + 1]})["y"], fp.run({"x": xs[i:i + 1]})["y"]
        err.append(a - b)
        ref.append(b)
    sqnr = 10 * np.log10(np.sum(np.square(ref)) / np.sum(np.square(err)))
    assert sqnr > 25, sqnr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or
                    shutil.which("arm-none-eabi-gcc") is None, reason="needs qemu-system-arm")
def test_digits_int8_on_emulated_cortex_m4(digits, quantized):
    from onnxcc.runtime import qemu

    path, x, _ = digits
    m4 = onnxcc.compile(path, "cortex-m4", input_shapes=SHAPES, name="digits_q",
                        quantize=onnxcc.Int8(calibration={"input": x[:200]}))
    assert "QLinearConv" in [n.op for n in m4.graph.nodes]
    for i in (0, 1, 2, 57):
        got = qemu.run_on_qemu(m4, {"input": x[i:i + 1]})["probabilities"]
        want = quantized.run({"input": x[i:i + 1]})["probabilities"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_compile_never_modifies_the_users_model(digits):
    """The user's model is never modified on disk or in memory."""
    path, x, _ = digits
    before = Path(path).read_bytes()
    proto = onnx.load(path)
    ser = proto.SerializeToString()
    onnxcc.compile(proto, "host", input_shapes=SHAPES,
                   quantize=onnxcc.Int8(calibration={"input": x[:10]}))
    assert Path(path).read_bytes() == before and proto.SerializeToString() == ser


def test_mobilenet_v1_relu6_folds_into_the_ranges():
    """MobileNetV1-0.25 at 96x96 (benchmarks/models.py; depthwise and pointwise convs, BN,
    ReLU6 as Clip(0, 6)): every conv becomes QLinearConv with its ReLU6 folded into the output
    range (no Clip, clamp or float op left between them), the arena shrinks to under a third,
    and the int8 output stays close to the float one on a held-out input."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import models

    m = models.mobilenet_v1(0.25, 96)
    feeds = [models.random_feeds(m, seed=s) for s in range(5)]
    q = onnxcc.compile(m, "cpu", quantize=onnxcc.Int8(calibration=feeds[:4]))
    fp = onnxcc.compile(m, "cpu")
    ops = [n.op for n in q.graph.nodes]
    assert ops.count("QLinearConv") == 28
    assert not {"Clip", "Max", "Min", "onnxcc.LookupTable", "Conv", "onnxcc.FusedConv"} & set(ops)
    assert q.arena_size * 3 < fp.arena_size
    a = list(q.run(feeds[4]).values())[0].astype(np.float64)
    b = list(fp.run(feeds[4]).values())[0].astype(np.float64)
    assert 10 * np.log10(np.sum(b * b) / np.sum((a - b) ** 2)) > 25


def test_residual_block_add_is_integer():
    """Conv-BN-Relu-Conv-BN plus the shortcut, Add, Relu (a ResNet basic block) then pooling and
    a dense layer: the Add of two quantized tensors becomes com.microsoft.QLinearAdd with the
    Relu folded, so the block is int8 end to end; the output stays within 25 dB SQNR of float."""
    rng = np.random.default_rng(4)
    c = 8

    def conv(name, x, y):
        w = (rng.standard_normal((c, c, 3, 3)) * (2 / (9 * c)) ** 0.5).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"{name}_w"))
        bn = [rng.uniform(0.8, 1.2, c), rng.standard_normal(c) * 0.1,
              rng.standard_normal(c) * 0.1, rng.uniform(0.8, 1.2, c)]
        for k, v in zip(("s", "b", "m", "v"), bn):
            inits.append(numpy_helper.from_array(v.astype(np.float32), f"{name}_{k}"))
        return [helper.make_node("Conv", [x, f"{name}_w"], [f"{name}_c"], pads=[1, 1, 1, 1]),
                helper.make_node("BatchNormalization", [f"{name}_c", f"{name}_s", f"{name}_b",
                                                        f"{name}_m", f"{name}_v"], [y])]

    inits: list = []
    nodes = [helper.make_node("Relu", ["x"], ["r0"])]
    nodes += conv("a", "r0", "a") + [helper.make_node("Relu", ["a"], ["ar"])]
    nodes += conv("b", "ar", "bb")
    nodes += [helper.make_node("Add", ["bb", "r0"], ["s"]), helper.make_node("Relu", ["s"], ["sr"]),
              helper.make_node("GlobalAveragePool", ["sr"], ["p"]),
              helper.make_node("Flatten", ["p"], ["f"]),
              helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    inits.append(numpy_helper.from_array((rng.standard_normal((4, c)) * 0.5).astype(np.float32),
                                         "fc"))
    g = helper.make_graph(nodes, "res", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                        [1, c, 10, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = IR_VERSION
    xs = rng.standard_normal((40, 1, c, 10, 10)).astype(np.float32)
    for t in ("host", "cpu"):
        cal = {"x": xs[:30].reshape(-1, c, 10, 10)}
        q = onnxcc.compile(m, t, quantize=onnxcc.Int8(calibration=cal))
        fp = onnxcc.compile(m, t)
        ops = [n.op for n in q.graph.nodes]
        assert "com.microsoft.QLinearAdd" in ops and ops.count("QLinearConv") == 2
        assert "Add" not in ops and "onnxcc.FusedElementwise" not in ops, ops
        err = ref = 0.0
        for i in range(30, 40):
            a, b = q.run({"x": xs[i]})["y"], fp.run({"x": xs[i]})["y"]
            err += float(np.sum((a - b) ** 2))
            ref += float(np.sum(b ** 2))
        assert 10 * np.log10(ref / err) > 25, (t, 10 * np.log10(ref / err))


@pytest.mark.slow
def test_int8_under_sanitizers_and_warning_free_with_every_compiler(digits, quantized):
    """The int8 library (integer kernels and the requantize helper) runs clean under
    -fsanitize=address,undefined with the outputs of the plain build, and compiles with
    -Werror under clang and arm-none-eabi-gcc as well as gcc."""
    import subprocess

    from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS

    _, x, _ = digits
    san = quantized.run({"input": x[:1]}, sanitize=True)["probabilities"]
    np.testing.assert_array_equal(san, quantized.run({"input": x[:1]})["probabilities"])
    m = quantized.mmap["c_prefix"]
    for cc, flags in (("gcc", ()), ("clang", ()), ("arm-none-eabi-gcc", CORTEX_M4_FLAGS)):
        if not shutil.which(cc):
            continue
        for src in (f"{m}.c", f"{m}_weights.c"):
            subprocess.run([cc, *WARN_FLAGS, *flags, "-O1", f"-I{quantized.lib_dir}",
                            f"-Wa,-I{quantized.lib_dir}", "-c", str(quantized.lib_dir / src),
                            "-o", "/dev/null"], check=True)
