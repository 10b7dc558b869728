"""The integer (ap_int) path on FPGA targets: a quantized model whose scales are not powers of two
(onnxruntime's quantize_static, or onnxcc's own Int8 quantization) compiles to int8 kernels with
int32 accumulators and an explicit requantization (int32 multiplier and shift), and its
C-simulation equals the host int8 build of the same model bit for bit."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxcc
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxcc.codegen.hls.emit import integer_reference

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "compiler" / "models"


def _model(nodes, init, name: str, x_shape, y_shape) -> onnx.ModelProto:
    """A float32 graph x -> y of ``nodes`` with initializers ``init`` (opset 13, IR 8)."""
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                      x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _float_cnn():
    """x (1,2,6,6) -> Conv 3x3 (4 ch) -> Relu -> MaxPool 2x2 -> Flatten -> Gemm (3) -> y."""
    r = np.random.default_rng(0)
    init = [numpy_helper.from_array(a, n) for a, n in [
        (r.normal(0, .3, (4, 2, 3, 3)).astype(np.float32), "w"),
        (r.normal(0, .1, 4).astype(np.float32), "b"),
        (r.normal(0, .3, (3, 36)).astype(np.float32), "fw"),
        (r.normal(0, .1, 3).astype(np.float32), "fb")]]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="dense")]
    m = _model(nodes, init, "small_cnn", [1, 2, 6, 6], [1, 3])
    return m


def _jet_mlp():
    """The jet-tagging MLP 16-64-32-32-5 (MatMul + Add + Relu layers), float."""
    r = np.random.default_rng(5)
    nodes, init, prev, sizes = [], [], "x", [16, 64, 32, 32, 5]
    for k in range(4):
        init += [numpy_helper.from_array(r.normal(0, 0.4, (sizes[k], sizes[k + 1]))
                                         .astype(np.float32), f"w{k}"),
                 numpy_helper.from_array(r.normal(0, 0.2, sizes[k + 1]).astype(np.float32),
                                         f"b{k}")]
        nodes += [helper.make_node("MatMul", [prev, f"w{k}"], [f"m{k}"], name=f"dense{k}"),
                  helper.make_node("Add", [f"m{k}", f"b{k}"], [f"a{k}" if k < 3 else "y"])]
        if k < 3:
            nodes.append(helper.make_node("Relu", [f"a{k}"], [f"h{k}"]))
            prev = f"h{k}"
    m = _model(nodes, init, "jet", [1, 16], [1, 5])
    return m


def _residual_cnn():
    """Conv -> Relu -> Conv, a residual Add of the two, a depthwise Conv -> Relu, a Concat of
    that and the sum, MaxPool, Flatten, Gemm: QLinearAdd and QLinearConcat (float32 rescaling)
    and a tensor read by three layers (the io_stream fan-out) once quantized."""
    r = np.random.default_rng(0)
    a = lambda *s: r.normal(0, .3, s).astype(np.float32)   # noqa: E731
    init = [numpy_helper.from_array(v, n) for v, n in [
        (a(4, 2, 3, 3), "w1"), (a(4), "b1"), (a(4, 4, 3, 3), "w2"), (a(4), "b2"),
        (a(4, 1, 3, 3), "wd"), (a(3, 72), "fw"), (a(3), "fb")]]
    mk = helper.make_node
    nodes = [mk("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="c1"),
             mk("Relu", ["c1"], ["r1"]),
             mk("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="c2"),
             mk("Add", ["r1", "c2"], ["s"], name="add"),
             mk("Conv", ["s", "wd"], ["d"], pads=[1, 1, 1, 1], group=4, name="dw"),
             mk("Relu", ["d"], ["g"]),
             mk("Concat", ["g", "s"], ["cc"], axis=1, name="cat"),
             mk("MaxPool", ["cc"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             mk("Flatten", ["p"], ["f"]),
             mk("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="dense")]
    m = _model(nodes, init, "res", [1, 2, 6, 6], [1, 3])
    return m


def _quantize_static(model, feeds, tmp_path: Path, per_channel: bool,
                     exclude: tuple[str, ...] = ()) -> onnx.ModelProto:
    """``model`` quantized by onnxruntime's quantize_static in the QDQ format (int8 activations
    and weights; scales from min-max calibration, so not powers of two); the nodes named in
    ``exclude`` stay float."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    src, dst = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, str(src))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, reduce_range=True,
                    nodes_to_exclude=list(exclude))
    return onnx.load(str(dst))


def _same_as_host(fpga, host, samples):
    """Assert the C-simulation equals the host int8 build and the integer graph's numpy
    reference bit for bit on every sample (dicts of float inputs)."""
    name = fpga.graph.outputs[0].name
    for feeds in samples:
        got, want = fpga.run(feeds)[name], host.run(feeds)[name]
        np.testing.assert_array_equal(got, want)
        # the design's own integers equal the interpreter's on the integer graph
        ports = {s["name"]: s for s in fpga.mmap["inputs"]}
        from onnxcc.runtime.hls import dequantize_port, quantize_port

        ints = {k: quantize_port(v, ports[k]["quantize"]).astype(
            ports[k]["quantize"]["dtype"]) for k, v in feeds.items()}
        ref = integer_reference(fpga.graph, ints)[name]
        np.testing.assert_array_equal(
            got, dequantize_port(ref, fpga.mmap["outputs"][0]["dequantize"]))


@pytest.mark.parametrize("io", ["io_parallel", "io_stream"])
def test_quantize_static_cnn_is_bit_exact_with_the_host_int8_build(io, tmp_path):
    r = np.random.default_rng(1)
    cal = [{"x": r.uniform(-2, 2, (1, 2, 6, 6)).astype(np.float32)} for _ in range(16)]
    q = _quantize_static(_float_cnn(), cal, tmp_path, per_channel=True)
    m = onnxcc.compile(q, "xczu7ev", hls=onnxcc.HLSConfig(io=io))
    ops = [n.op for n in m.graph.nodes]
    assert ops.count("QLinearConv") == 1 and ops.count("com.microsoft.QGemm") == 1, ops
    assert not {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} & set(ops)
    defines = (m.lib_dir / "firmware" / "defines.h").read_text()
    assert "typedef ap_int<8> input_t" in defines and "typedef ap_int<8> result_t" in defines
    typedefs = [ln for ln in defines.splitlines() if ln.startswith("typedef")]
    assert typedefs and not any("ap_fixed" in ln for ln in typedefs), typedefs
    top = (m.lib_dir / "firmware" / f"{m.mmap['c_prefix']}.cpp").read_text()
    assert "onnxcc_requantize(acc, " in top and re.search(r"\bint acc = ", top)
    weights = " ".join(p.read_text() for p in (m.lib_dir / "firmware" / "weights").iterdir())
    assert "72 int8_t values" in weights and "108 int8_t values" in weights   # conv, dense
    assert m.mmap["inputs"][0]["quantize"]["dtype"] == "int8"
    host = onnxcc.compile(q, "host")
    samples = [{"x": r.uniform(-3, 3, (1, 2, 6, 6)).astype(np.float32)} for _ in range(20)]
    _same_as_host(m, host, samples)
    assert m.csim_warnings == ""                            # g++ -Wall -Wextra


def test_onnxcc_int8_mlp_is_bit_exact_with_the_host_int8_build():
    """onnxcc.Int8 on the jet MLP 16-64-32-32-5: the same integer graph on both targets."""
    r = np.random.default_rng(2)
    cal = {"x": r.normal(0, 1, (64, 1, 16)).astype(np.float32)}
    model = _jet_mlp()
    m = onnxcc.compile(model, "xczu7ev", quantize=onnxcc.Int8(calibration=cal))
    host = onnxcc.compile(model, "host", quantize=onnxcc.Int8(calibration=cal))
    assert [n.op for n in m.graph.nodes] == [n.op for n in host.graph.nodes[1:-1]]
    samples = [{"x": r.normal(0, 1.5, (1, 16)).astype(np.float32)} for _ in range(30)]
    _same_as_host(m, host, samples)
    assert m.csim_warnings == ""


@pytest.mark.parametrize("io", ["io_parallel", "io_stream"])
def test_residual_int8_cnn_with_float_rescaling_is_bit_exact(io):
    """QLinearAdd and QLinearConcat rescale in float32 (onnxruntime's definition, the host
    build's arithmetic): on the integer path those steps are C float in the design, so the
    C-sim still equals the host int8 build bit for bit."""
    r = np.random.default_rng(4)
    cal = {"x": r.uniform(-2, 2, (32, 1, 2, 6, 6)).astype(np.float32)}
    model = _residual_cnn()
    m = onnxcc.compile(model, "xczu7ev", quantize=onnxcc.Int8(calibration=cal),
                       hls=onnxcc.HLSConfig(io=io))
    ops = [n.op for n in m.graph.nodes]
    assert {"com.microsoft.QLinearAdd", "com.microsoft.QLinearConcat"} <= set(ops), ops
    top = (m.lib_dir / "firmware" / f"{m.mmap['c_prefix']}.cpp").read_text()
    assert "onnxcc_roundevenf(" in top and "fminf(fmaxf(" in top
    host = onnxcc.compile(model, "host", quantize=onnxcc.Int8(calibration=cal))
    samples = [{"x": r.uniform(-3, 3, (1, 2, 6, 6)).astype(np.float32)} for _ in range(20)]
    _same_as_host(m, host, samples)
    assert m.csim_warnings == ""


def test_quantized_digits_cnn_csim_equals_host_on_the_test_split(tmp_path):
    """The shipped digits CNN with its Softmax, pre-processed (batch norm folded) and quantized
    by onnxruntime (QDQ, per-channel weights), as onnxruntime's documentation recommends: the
    C-sim equals the host int8 build on every sample of the test split. The Softmax between
    its QDQ pairs is TFLite's integer softmax (onnxcc.QSoftmax) in the design too."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    data = np.load(str(MODELS / "digits_test.npz"))
    x = data["x"].astype(np.float32)
    m0 = onnx.load(str(MODELS / "digits.onnx"))
    m0.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    assert m0.graph.node[-1].op_type == "Softmax"
    onnx.save(m0, str(tmp_path / "full.onnx"))
    quant_pre_process(str(tmp_path / "full.onnx"), str(tmp_path / "pre.onnx"))
    pre = onnx.load(str(tmp_path / "pre.onnx"))
    assert not any(n.op_type == "BatchNormalization" for n in pre.graph.node)
    q = _quantize_static(pre, [{"input": x[i:i + 1]} for i in range(200)], tmp_path, True)
    m = onnxcc.compile(q, "xczu7ev")
    assert all(t.int_only for t in m.precision.values.values())
    assert m.graph.nodes[-1].op == "onnxcc.QSoftmax"
    host = onnxcc.compile(q, "host")
    out = q.graph.output[0].name
    got = np.concatenate([m.run({"input": x[i:i + 1]})[out] for i in range(len(x))])
    want = np.concatenate([host.run({"input": x[i:i + 1]})[out] for i in range(len(x))])
    np.testing.assert_array_equal(got, want)
    assert (got.argmax(1) == data["y"]).mean() >= 0.95
    assert m.csim_warnings == ""


def _jet_softmax():
    """The jet MLP ending in a Softmax, a seeded generator and 64 calibration inputs."""
    model = _jet_mlp()
    model.graph.node[-1].output[0] = "logits"
    model.graph.node.append(helper.make_node("Softmax", ["logits"], ["y"], axis=-1))
    r = np.random.default_rng(2)
    return model, r, {"x": r.normal(0, 1, (64, 1, 16)).astype(np.float32)}


def test_int8_softmax_streams_bit_exact_with_the_host_int8_build():
    """onnxcc.Int8 on the jet MLP ending in a Softmax, io_stream: the Softmax is TFLite's
    integer softmax (gemmlowp fixed point, int64 products, bitwise masks) rendered from its loop
    IR in C integer types, and the C-sim equals the host int8 build bit for bit (io_parallel:
    the digits CNN above)."""
    model, r, cal = _jet_softmax()
    m = onnxcc.compile(model, "xczu7ev", quantize=onnxcc.Int8(calibration=cal),
                       hls=onnxcc.HLSConfig(io="io_stream"))
    assert [n.op for n in m.graph.nodes][-1] == "onnxcc.QSoftmax"
    top = (m.lib_dir / "firmware" / f"{m.mmap['c_prefix']}.cpp").read_text()
    assert "& 16777215)" in top and "&& 16777215" not in top   # gemmlowp's masks: bitwise
    host = onnxcc.compile(model, "host", quantize=onnxcc.Int8(calibration=cal))
    samples = [{"x": r.normal(0, 1.5, (1, 16)).astype(np.float32)} for _ in range(30)]
    _same_as_host(m, host, samples)
    got = np.concatenate([m.run(s)["y"] for s in samples])
    assert (got > 0).sum(1).max() > 1   # rows with several non-zero probabilities
    assert m.csim_warnings == ""


def test_int8_softmax_in_size_mode_stays_plain_arithmetic_for_hls():
    """Size mode's softmax calls the ``srdhm`` intrinsic, which has no HLS form: an FPGA
    target in size mode keeps the inline fixed-point arithmetic (the one-loop two-pass form),
    and the C-sim equals the host int8 build."""
    model, r, cal = _jet_softmax()
    m = onnxcc.compile(model, "xczu7ev", quantize=onnxcc.Int8(calibration=cal),
                       hls=onnxcc.HLSConfig(io="io_stream"), optimize="size")
    assert [n.op for n in m.graph.nodes][-1] == "onnxcc.QSoftmax"
    top = (m.lib_dir / "firmware" / f"{m.mmap['c_prefix']}.cpp").read_text()
    assert "srdhm" not in top and "& 16777215)" in top
    host = onnxcc.compile(model, "host", quantize=onnxcc.Int8(calibration=cal))
    _same_as_host(m, host, [{"x": r.normal(0, 1.5, (1, 16)).astype(np.float32)}
                            for _ in range(10)])


def test_int8_average_pools_are_bit_exact_with_the_host_int8_build(tmp_path):
    """quantize_static on Conv -> Relu -> AveragePool 2x2 -> GlobalAveragePool -> Gemm: the
    pools are onnxruntime's QLinearAveragePool and QLinearGlobalAveragePool, integer kernels
    (an int32 window sum requantized by count) rendered from their loop IR, io_stream; the C-sim
    equals the host int8 build bit for bit."""
    r = np.random.default_rng(0)
    a = lambda *s: r.normal(0, .3, s).astype(np.float32)   # noqa: E731
    init = [numpy_helper.from_array(v, n) for v, n in [(a(4, 2, 3, 3), "w"), (a(4), "b"),
                                                        (a(3, 4), "fw"), (a(3), "fb")]]
    mk = helper.make_node
    nodes = [mk("Conv", ["x", "w", "b"], ["c"], pads=[1] * 4, name="conv"),
             mk("Relu", ["c"], ["rr"]),
             mk("AveragePool", ["rr"], ["ap"], kernel_shape=[2, 2], strides=[2, 2], name="ap"),
             mk("GlobalAveragePool", ["ap"], ["g"], name="gap"), mk("Flatten", ["g"], ["f"]),
             mk("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="dense")]
    model = _model(nodes, init, "pools", [1, 2, 6, 6], [1, 3])
    cal = [{"x": r.uniform(-2, 2, (1, 2, 6, 6)).astype(np.float32)} for _ in range(16)]
    q = _quantize_static(model, cal, tmp_path, True)
    m = onnxcc.compile(q, "xczu7ev", hls=onnxcc.HLSConfig(io="io_stream"))
    ops = [n.op for n in m.graph.nodes]
    assert {"com.microsoft.QLinearAveragePool", "com.microsoft.QLinearGlobalAveragePool"} <= \
        set(ops), ops
    host = onnxcc.compile(q, "host")
    _same_as_host(m, host, [{"x": r.uniform(-3, 3, (1, 2, 6, 6)).astype(np.float32)}
                            for _ in range(20)])
    assert m.csim_warnings == ""


@pytest.mark.parametrize("io,tail", [("io_parallel", ("sm",)), ("io_stream", ("dense", "sm"))])
def test_int8_model_with_a_float_tail(io, tail, tmp_path):
    """A QDQ model whose last layers stay float (onnxruntime's quantize_static told to leave the
    Softmax, or the Gemm and the Softmax, float): the design is the integer (ap_int) path up to
    the DequantizeLinear, whose output is ap_fixed, then the float layers in ap_fixed (typed from
    calibration samples when given, as the float path types them). Its C-sim equals the
    fixed-point reference exactly and the host build within the float path's Softmax
    tolerance; before, the whole model fell back to approximate ap_fixed types."""
    from onnxcc.codegen.hls.reference import reference
    from onnxcc.runtime.hls import quantize_port

    model = _float_cnn()
    model.graph.node[-1].output[0] = "logits"
    model.graph.node.append(helper.make_node("Softmax", ["logits"], ["y"], axis=-1, name="sm"))
    r = np.random.default_rng(1)
    cal = [{"x": r.uniform(-2, 2, (1, 2, 6, 6)).astype(np.float32)} for _ in range(16)]
    q = _quantize_static(model, cal, tmp_path, True, exclude=tail)
    kw = {"quantize": onnxcc.FixedPoint(calibration=cal)} if "dense" in tail else {}
    m = onnxcc.compile(q, "xczu7ev", hls=onnxcc.HLSConfig(io=io), **kw)
    ops = [n.op for n in m.graph.nodes]
    float_ops = ["Gemm"] * ("dense" in tail) + ["onnxcc.TableSoftmax"]
    assert ops[:2] == ["QLinearConv", "MaxPool"] and "QuantizeLinear" not in ops
    assert ops[ops.index("DequantizeLinear") + 1:] == float_ops, ops
    dq = m.graph.nodes[ops.index("DequantizeLinear")]
    types = m.precision.values
    assert types["x"].int_only and types[dq.inputs[0].name].int_only
    assert str(types[dq.outputs[0].name]) == "ap_fixed<16,4>"   # covers the int8 range
    if "dense" in tail:   # the logits typed from the calibration samples, not the default
        assert str(types["logits"]) != "ap_fixed<16,6>" and not types["logits"].int_only
    host = onnxcc.compile(q, "host")
    spec = m.mmap["inputs"][0]["quantize"]
    for _ in range(8):
        x = r.uniform(-3, 3, (1, 2, 6, 6)).astype(np.float32)
        got = m.run({"x": x})["y"]
        ref = reference(m.graph, m.precision, {"x": quantize_port(x, spec)})["y"]
        np.testing.assert_array_equal(got.astype(np.float64), ref)
        np.testing.assert_allclose(got, host.run({"x": x})["y"], atol=0.02)
    assert m.csim_warnings == ""


def test_float_op_between_qdq_pairs_falls_back_to_ap_fixed_with_a_warning(caplog):
    """A QDQ model whose Gemm stays float (its input is not requantized) keeps the ap_fixed
    reading, and the warning names the nodes that blocked the integer path."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_hls_qdq import _qdq_model

    with caplog.at_level(logging.WARNING, logger="onnxcc.passes"):
        m = onnxcc.compile(_qdq_model(x_scale=0.05), "xczu7ev")
    assert "no integer (ap_int) FPGA path" in caplog.text and "'y_quant'" in caplog.text
    assert not any(t.int_only for t in m.precision.values.values())


def test_testbench_of_an_integer_design_passes(tmp_path):
    """The generated C++ test bench (tb_data from the integer reference) builds warning-free
    with g++ -Wall -Wextra and reports no mismatch."""
    r = np.random.default_rng(3)
    cal = {"x": r.uniform(-2, 2, (16, 1, 2, 6, 6)).astype(np.float32)}
    m = onnxcc.compile(_float_cnn(), "xczu7ev", quantize=onnxcc.Int8(calibration=cal))
    out = tmp_path / "prj"
    m.save(out)
    rows = (out / "tb_data" / "tb_input_features.dat").read_text().split("\n")[0].split()
    assert len(rows) == 72 and all(float(v) == int(float(v)) for v in rows)   # int8 values
    res = subprocess.run([sys.executable, "-m", "onnxcc.cli", "hls", "build", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 output values differ" in res.stdout and "passed" in res.stdout
    assert "warning" not in res.stdout.lower()
