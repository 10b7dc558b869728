"""FPGA targets end to end: models compile to Vitis HLS projects whose C-simulation (g++ and the
ap_fixed headers) equals onnxcc's numpy fixed-point reference exactly and agrees with
onnxruntime's float result."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import onnxcc
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxcc.codegen.hls.reference import reference

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "compiler" / "models" / "digits.onnx"


def _bench_models():
    spec = importlib.util.spec_from_file_location("onnxcc_bench_models_hls",
                                                  ROOT / "benchmarks" / "models.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _exact(m, feeds):
    """C-sim outputs, after asserting they equal the fixed-point reference bit for bit."""
    got = m.run(feeds)
    want = reference(m.graph, m.precision, feeds)
    for k, w in want.items():
        assert np.array_equal(got[k].astype(np.float64), w), k
    return got


@pytest.fixture(scope="module")
def digits():
    return onnxcc.compile(DIGITS, "xczu7ev", input_shapes={"input": (1, 1, 8, 8)})


def test_digits_csim_exact_and_agrees_with_onnxruntime(digits):
    data = np.load(ROOT / "compiler" / "models" / "digits_test.npz")
    x, labels = data["x"], data["y"]
    sess = ort.InferenceSession(str(DIGITS))
    for i in range(0, len(x), 90):                     # bit-exact on a sample
        _exact(digits, {"input": x[i:i + 1]})
    agree = correct = 0
    for i in range(len(x)):                             # argmax over the whole test split
        y = digits.run({"input": x[i:i + 1]})["probabilities"]
        agree += int(y.argmax() == sess.run(None, {"input": x[i:i + 1]})[0].argmax())
        correct += int(y.argmax() == labels[i])
    assert agree >= 0.995 * len(x), (agree, len(x))
    assert correct >= 0.97 * len(x)
    assert digits.csim_warnings == ""                   # -Wall -Wextra, no warning


def test_digits_structure(digits):
    ops = [n.op for n in digits.graph.nodes]
    assert "onnxcc.TableSoftmax" in ops and "Softmax" not in ops
    assert "onnxcc.FusedConv" in ops                    # Conv + BN + Relu in one kernel
    text = (digits.lib_dir / "firmware" / "digits.cpp").read_text()
    assert "HLS PIPELINE II=1" in text and "HLS INTERFACE" in text
    assert digits.mmap["part"] == "xczu7ev-ffvc1156-2-e"
    from onnxcc.codegen.loops import Binary, children, stmt_exprs, walk_stmts

    def divides(e):   # index division or modulo would be a divider in logic
        return (isinstance(e, Binary) and e.op in ("div", "mod")) or any(map(divides, children(e)))

    convs = [k for k in digits.program.kernels if k.op == "onnxcc.FusedConv"]
    assert len(convs) == 2
    assert not any(divides(e) for k in convs for st in walk_stmts(k.body) for e in stmt_exprs(st))
    defines = (digits.lib_dir / "firmware" / "defines.h").read_text()
    assert "typedef ap_fixed<16,6,AP_RND_CONV,AP_SAT> input_t;" in defines


@pytest.mark.parametrize("cfg,io", [
    (onnxcc.FixedPoint(), "io_parallel"),
    (onnxcc.FixedPoint(), "io_stream"),
    (onnxcc.FixedPoint(default="ap_fixed<12,5>", rounding="AP_TRN", overflow="AP_WRAP",
                       weight_width=10), "io_parallel"),
], ids=["16_6_conv_sat", "16_6_stream", "12_5_trn_wrap"])
def test_jet_mlp_exact_in_every_mode(cfg, io):
    model = _bench_models().jet_mlp()
    m = onnxcc.compile(model, "xc7z020", quantize=cfg, hls=onnxcc.HLSConfig(io=io))
    rng = np.random.default_rng(3)
    sess = ort.InferenceSession(model.SerializeToString())
    agree = 0
    for _ in range(20):
        x = rng.normal(0, 1, (1, 16)).astype(np.float32)
        y = _exact(m, {"input": x})["output"]
        agree += int(y.argmax() == sess.run(None, {"input": x})[0].argmax())
    assert agree >= (19 if cfg.rounding == "AP_RND_CONV" else 12)


def _init(name, a):
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def _cnn():
    """Conv (pads), depthwise Conv (stride 2) + Clip, AveragePool (count_include_pad 0) and
    MaxPool with pads, Add/Mul/Sub with broadcast, Concat, a dilated Conv, GlobalAveragePool,
    Flatten, MatMul + Add, Softmax; two outputs."""
    r = np.random.default_rng(7)
    w = lambda *s: _init(f"w{len(s)}_{r.integers(1 << 30)}", r.normal(0, 0.4, s))  # noqa: E731
    inits = [w(6, 3, 3, 3), w(6), w(6, 1, 3, 3), w(6), w(1, 6, 1, 1), w(8, 12, 3, 3), w(8),
             w(8, 5), w(5), _init("lo", 0.0), _init("hi", 6.0)]
    n = [i.name for i in inits]
    nodes = [
        helper.make_node("Conv", ["x", n[0], n[1]], ["c1p"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1p"], ["c1"]),
        helper.make_node("Conv", ["c1", n[2], n[3]], ["c2p"], group=6, strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c2p", "lo", "hi"], ["c2"]),
        helper.make_node("AveragePool", ["c2"], ["p1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c2"], ["p2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["p1", "p2"], ["a"]),
        helper.make_node("Mul", ["a", n[4]], ["mu"]),
        helper.make_node("Sub", ["mu", "p1"], ["s"]),
        helper.make_node("Concat", ["s", "c2"], ["cat"], axis=1),
        helper.make_node("Conv", ["cat", n[5], n[6]], ["c3"], dilations=[2, 2], pads=[2, 2, 2, 2]),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", n[7]], ["mm"]),
        helper.make_node("Add", ["mm", n[8]], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       [1, 3, 12, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5]),
                           helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 6, 6, 6])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


@pytest.mark.parametrize("io", ["io_parallel", "io_stream"])
def test_cnn_ops_exact_and_close_to_onnxruntime(io):
    model = _cnn()
    m = onnxcc.compile(model, "xcvu9p", quantize=onnxcc.FixedPoint(layers={"c3": "ap_fixed<18,8>"}),
                       hls=onnxcc.HLSConfig(io=io))
    text = (m.lib_dir / "firmware" / "cnn.cpp").read_text()
    if io == "io_stream":   # tensors read by several layers go to one FIFO per reader, deep
        assert "HLS DATAFLOW" in text and "mode=axis" in text
        assert re.search(r"STREAM variable=st_\w+ depth=2\b", text)        # a chain link
        assert re.search(r"STREAM variable=st_\w+ depth=216\b", text)      # c2: 6x6x6, fan-out
        assert m.mmap["estimates"]["total"]["ii"] < m.mmap["estimates"]["total"]["latency"]
    else:
        assert "hls::stream" not in text and "ARRAY_PARTITION" in text
    assert "typedef ap_fixed<18,8,AP_RND_CONV,AP_SAT>" in \
        (m.lib_dir / "firmware" / "defines.h").read_text()
    sess = ort.InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.uniform(-2, 2, (1, 3, 12, 12)).astype(np.float32)
        got = _exact(m, {"x": x})
        ref = dict(zip(["y", "s"], sess.run(None, {"x": x})))
        np.testing.assert_allclose(got["s"], ref["s"], atol=0.02)
        np.testing.assert_allclose(got["y"], ref["y"], atol=0.03)


def test_table_activations_leaky_relu_and_calibrated_types():
    """Sigmoid and Tanh become lookup tables (onnxcc.TableActivation) fed by a stored tensor,
    LeakyRelu runs standalone and fused into a Conv, Clip has non-dyadic bounds; types come
    from calibration. C-sim equals the reference exactly and stays near onnxruntime."""
    r = np.random.default_rng(11)
    inits = [_init("cw", r.normal(0, 0.4, (4, 2, 3, 3))), _init("cb", r.normal(0, 0.1, 4)),
             _init("w", r.normal(0, 0.3, (64, 8))), _init("w2", r.normal(0, 0.5, (8, 4))),
             _init("lo", -0.3), _init("hi", 0.7)]
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("LeakyRelu", ["c"], ["cl"], alpha=0.2, name="conv_leaky"),
             helper.make_node("Flatten", ["cl"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "w"], ["h"], name="fc1"),
             helper.make_node("Tanh", ["h"], ["t"], name="tanh"),
             helper.make_node("LeakyRelu", ["t"], ["l"], alpha=0.1, name="leaky"),
             helper.make_node("MatMul", ["l", "w2"], ["h2"], name="fc2"),
             helper.make_node("Sigmoid", ["h2"], ["y"], name="sig"),
             helper.make_node("Clip", ["h2", "lo", "hi"], ["clipped"], name="clip")]
    g = helper.make_graph(nodes, "acts", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                        [1, 2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
                           helper.make_tensor_value_info("clipped", TensorProto.FLOAT, [1, 4])],
                          inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    cal = {"x": r.normal(0, 1.5, (32, 1, 2, 4, 4)).astype(np.float32)}
    m = onnxcc.compile(model, "xczu7ev", quantize=onnxcc.FixedPoint(calibration=cal))
    ops = [n.op for n in m.graph.nodes]
    assert ops.count("onnxcc.TableActivation") == 2 and "onnxcc.FusedConv" in ops
    fused = next(n for n in m.graph.nodes if n.op == "onnxcc.FusedConv")
    assert fused.attrs["activation"] == "LeakyRelu"
    table_in = next(n for n in m.graph.nodes if n.op == "onnxcc.TableActivation").inputs[0]
    assert m.mmap["types"][table_in.name].startswith("ap_fixed<16,")   # a stored tensor's type
    assert m.mmap["types"]["x"] != "ap_fixed<16,6>"                     # calibrated
    sess = ort.InferenceSession(model.SerializeToString())
    for _ in range(4):
        x = r.normal(0, 1.5, (1, 2, 4, 4)).astype(np.float32)
        got = _exact(m, {"x": x})
        want = dict(zip(["y", "clipped"], sess.run(None, {"x": x})))
        for k in want:
            np.testing.assert_allclose(got[k], want[k], atol=0.01)


def test_pad_resize_hard_sigmoid_prelu_div():
    """Pad (a non-dyadic value and reflect), nearest Resize, HardSigmoid, PRelu and Div by a
    constant: C-sim equals the reference exactly; close to onnxruntime."""
    r = np.random.default_rng(12)
    inits = [numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64), "pads"),
             _init("pv", 0.3), numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1],
                                                                np.int64), "pads2"),
             _init("sc", [1, 1, 2, 2]), _init("slope", r.uniform(0.05, 0.5, (3, 1, 1))),
             _init("d", [3.0])]
    nodes = [helper.make_node("Pad", ["x", "pads", "pv"], ["p"]),
             helper.make_node("Pad", ["p", "pads2"], ["p2"], mode="reflect"),
             helper.make_node("Resize", ["p2", "", "sc"], ["rz"], mode="nearest"),
             helper.make_node("HardSigmoid", ["rz"], ["hs"], alpha=0.3, beta=0.45),
             helper.make_node("PRelu", ["rz", "slope"], ["pr"]),
             helper.make_node("Div", ["pr", "d"], ["dv"]),
             helper.make_node("Add", ["hs", "dv"], ["y"])]
    g = helper.make_graph(nodes, "misc", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                        [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 18])],
                          inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    m = onnxcc.compile(model, "xczu7ev")
    sess = ort.InferenceSession(model.SerializeToString())
    for _ in range(3):
        x = r.normal(0, 2, (1, 3, 4, 4)).astype(np.float32)
        got = _exact(m, {"x": x})["y"]
        np.testing.assert_allclose(got, sess.run(None, {"x": x})[0], atol=0.01)


def test_conv1d_with_stride_dilation_and_pads():
    r = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[2, 1], strides=[2],
                              dilations=[2]),
             helper.make_node("Relu", ["c"], ["rl"]),
             helper.make_node("MaxPool", ["rl"], ["p"], kernel_shape=[2], strides=[2]),
             helper.make_node("GlobalAveragePool", ["p"], ["y"])]
    g = helper.make_graph(nodes, "c1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       [1, 3, 20])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 1])],
                          [_init("w", r.normal(0, 0.5, (5, 3, 3))), _init("b", r.normal(0, 0.1, 5))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    m = onnxcc.compile(model, "xczu7ev")
    sess = ort.InferenceSession(model.SerializeToString())
    x = r.normal(0, 1, (1, 3, 20)).astype(np.float32)
    np.testing.assert_allclose(_exact(m, {"x": x})["y"], sess.run(None, {"x": x})[0], atol=2e-3)


@pytest.mark.parametrize("io", ["io_parallel", "io_stream"])
def test_nhwc_input_port_without_a_transpose(io):
    """input_layout NHWC: the layers reading the input index it pixel by pixel (channel stride
    1), no transpose runs in the design, run() still takes NCHW, and C-sim equals the
    reference; a model whose first reader is elementwise over the flat input is refused."""
    model = _cnn()
    m = onnxcc.compile(model, "xcvu9p", hls=onnxcc.HLSConfig(io=io, input_layout="NHWC"))
    assert m.mmap["inputs"][0]["layout"] == "NHWC"
    text = (m.lib_dir / "firmware" / "cnn.cpp").read_text()
    if io == "io_parallel":
        assert "in_x[c + ((oh + kh) - 1) * 36 + ((ow + kw) - 1) * 3]" in text   # h*W*C + w*C + c
    else:   # pixel order is what a line buffer takes: the first conv holds 3 of 12 rows
        assert "line buffer: 3 of 12 input rows (108 of 432 elements)" in text
        assert m.mmap["line_buffered"][0] == "cnn_k0"
    x = np.random.default_rng(2).uniform(-2, 2, (1, 3, 12, 12)).astype(np.float32)
    _exact(m, {"x": x})
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="first_relu")], "ew",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    ew = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    ew.ir_version = 10
    with pytest.raises(onnxcc.OnnxccError, match="first_relu"):
        onnxcc.compile(ew, "xczu7ev", hls=onnxcc.HLSConfig(io=io, input_layout="NHWC"))


@pytest.mark.parametrize("io", ["io_parallel", "io_stream"])
def test_if_on_a_runtime_condition(io, tmp_path):
    """An If whose condition is a bool graph input: the frontend computes both branches and
    selects with Where, which runs on the FPGA target with a bool port."""
    r = np.random.default_rng(0)
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])],
                               [_init("two", [2.0])])
    else_g = helper.make_graph([helper.make_node("Relu", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
    nodes = [helper.make_node("If", ["c"], ["y0"], then_branch=then_g, else_branch=else_g),
             helper.make_node("MatMul", ["y0", "w"], ["y"])]
    g = helper.make_graph(nodes, "ifm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
                           helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          [_init("w", r.normal(0, 1, (4, 3)))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    m = onnxcc.compile(model, "xczu7ev", hls=onnxcc.HLSConfig(io=io))
    assert "Where" in [n.op for n in m.graph.nodes]
    assert "typedef bool input1_t;" in (m.lib_dir / "firmware" / "defines.h").read_text()
    sess = ort.InferenceSession(model.SerializeToString())
    for c in (True, False):
        feeds = {"x": r.normal(0, 1, (1, 4)).astype(np.float32), "c": np.array(c)}
        np.testing.assert_allclose(_exact(m, feeds)["y"], sess.run(None, feeds)[0], atol=2e-3)
    from onnxcc.runtime.hls import run_testbench

    m.save(tmp_path / "p")
    ok, out = run_testbench(tmp_path / "p")
    assert ok, out


def _stream_cnn():
    """A 1x3x48x48 CNN whose layers each read a window of rows: Conv 3x3 pads 1 (+Relu), MaxPool
    2x2 stride 2, a 1x1 Conv with stride 2 (its rows skip input rows: stride above the window),
    a dilated 3x3 Conv with asymmetric pads, AveragePool 3x3 stride 1 without pads, then Flatten
    and Gemm."""
    r = np.random.default_rng(3)
    w = lambda name, *s: _init(name, r.normal(0, 0.4, s))  # noqa: E731
    inits = [w("w1", 8, 3, 3, 3), w("b1", 8), w("w2", 8, 8, 1, 1), w("w3", 6, 8, 3, 3), w("b3", 6),
             w("wf", 5, 6 * 8 * 8), w("bf", 5)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], strides=[2, 2]),
        helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"], dilations=[2, 2], pads=[2, 1, 0, 1]),
        helper.make_node("AveragePool", ["c3"], ["p2"], kernel_shape=[3, 3]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    g = helper.make_graph(nodes, "lines", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 48, 48])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 5])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 10
    return m


def test_stream_layers_hold_line_buffers_not_tensors():
    """io_stream with an NHWC input port: every conv and pool layer holds a line buffer of the
    rows its window reads and one output row (not its whole input and output), C-sim equals
    the reference exactly and onnxruntime closely, and the block RAM estimate falls below the
    io_parallel design's (whose 48x48x8 tensors need block RAM)."""
    model = _stream_cnn()
    fx = onnxcc.FixedPoint(default="ap_fixed<24,10>")   # 14 fraction bits: outputs reach 190
    m = onnxcc.compile(model, "xczu7ev", quantize=fx,
                       hls=onnxcc.HLSConfig(io="io_stream", input_layout="NHWC"))
    text = (m.lib_dir / "firmware" / "lines.cpp").read_text()
    lines = re.findall(r"line buffer: (\d+) of (\d+) input rows", text)
    # conv 3x3: 3 of 48; maxpool 2x2/2: 2 of 48; 1x1/2: 1 of 24; dilated 3x3: 5 of 12 rows
    # (pads 2 top, 0 bottom: 10 output rows); avgpool 3x3: 3 of 10
    assert lines == [("3", "48"), ("2", "48"), ("1", "24"), ("5", "12"), ("3", "10")], lines
    assert len(m.mmap["line_buffered"]) == 5
    parallel = onnxcc.compile(model, "xczu7ev", quantize=fx,
                              hls=onnxcc.HLSConfig(io="io_parallel"))
    assert m.mmap["estimates"]["total"]["bram18"] < parallel.mmap["estimates"]["total"]["bram18"]
    sess = ort.InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(11)
    for _ in range(2):
        x = rng.uniform(-2, 2, (1, 3, 48, 48)).astype(np.float32)
        got = _exact(m, {"x": x})
        np.testing.assert_allclose(got["y"], sess.run(None, {"x": x})[0], atol=0.02)
    # the same values as the io_parallel build (both equal the same reference)
    np.testing.assert_array_equal(parallel.run({"x": x})["y"], got["y"])


def test_stream_elementwise_layers_hold_nothing():
    """io_stream: a Relu and a residual Add between two convolutions stream element by element
    (no array in the layer), the convolutions on line buffers; C-sim equals the reference."""
    r = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Add", ["r", "c"], ["a"]),
             helper.make_node("Conv", ["a", "w"], ["y"], pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "res", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4, 8, 8])], [_init("w", r.normal(0, 0.5, (4, 4, 3, 3)))])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    m = onnxcc.compile(model, "xczu7ev", quantize=onnxcc.FixedPoint(default="ap_fixed<20,8>"),
                       hls=onnxcc.HLSConfig(io="io_stream", input_layout="NHWC"))
    text = (m.lib_dir / "firmware" / "res.cpp").read_text()
    assert text.count("elementwise: one element of each input in") == 2
    assert text.count("line buffer:") == 1    # the last conv writes the output port (NCHW)
    assert m.mmap["line_buffered"] == ["res_k0", "res_k1", "res_k2"]
    x = r.uniform(-2, 2, (1, 4, 8, 8)).astype(np.float32)
    got = _exact(m, {"x": x})
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got["y"], want, atol=0.02)


def test_stream_channel_shuffle_and_concat_move_pixels():
    """io_stream: a channel shuffle (Reshape to 5-D, Transpose of the two channel axes,
    Reshape back) holds one pixel and a channel Concat holds nothing, between line-buffered
    convolutions; C-sim equals the reference and onnxruntime closely."""
    r = np.random.default_rng(0)
    inits = [_init("w", r.normal(0, 0.5, (8, 8, 3, 3))), _init("w2", r.normal(0, 0.3, (4, 16, 3, 3))),
             numpy_helper.from_array(np.array([1, 2, 4, 6, 6], np.int64), "s1"),
             numpy_helper.from_array(np.array([1, 8, 6, 6], np.int64), "s2")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Reshape", ["c", "s1"], ["r1"]),
             helper.make_node("Transpose", ["r1"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s2"], ["r2"]),
             helper.make_node("Conv", ["r2", "w"], ["d"], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["d", "c"], ["cat"], axis=1),
             helper.make_node("Conv", ["cat", "w2"], ["y"], pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "shuf", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 8, 6, 6])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    m = onnxcc.compile(model, "xczu7ev", quantize=onnxcc.FixedPoint(default="ap_fixed<24,12>"),
                       hls=onnxcc.HLSConfig(io="io_stream", input_layout="NHWC"))
    text = (m.lib_dir / "firmware" / "shuf.cpp").read_text()
    assert "static const int src[8] = {0, 4, 1, 5, 2, 6, 3, 7};" in text   # (2,4) -> (4,2)
    assert "concat of pixel streams" in text
    assert len(m.mmap["line_buffered"]) == 4    # conv, shuffle, conv, concat (the last writes y)
    x = r.uniform(-2, 2, (1, 8, 6, 6)).astype(np.float32)
    got = _exact(m, {"x": x})
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got["y"], want, atol=0.02)
