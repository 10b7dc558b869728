"""Quantized (QDQ) models on FPGA targets: a QuantizeLinear -> DequantizeLinear pair with a
power-of-two scale becomes the tensor's ap_fixed type (passes/qdq_fixed.py), so the C-simulation
reproduces the QDQ model's grid exactly."""

from __future__ import annotations

import logging

import numpy as np
import onnxcc
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxcc.codegen.hls.reference import reference


def _qdq_model(x_scale=2.0 ** -4, relu_scale=2.0 ** -3):
    """x -> Q/DQ (int8) -> Conv 3x3 (int8 weights, per-channel power-of-two scales, int32 bias)
    -> Q/DQ (int8) -> Relu -> Q/DQ (uint8, zero point 0) -> MaxPool -> Flatten -> Gemm (int8
    weights) -> Q/DQ (int8) -> y, as a Brevitas-style export with power-of-two scales."""
    r = np.random.default_rng(4)
    wq = r.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8)
    ws = (2.0 ** -r.integers(5, 8, 4)).astype(np.float32)
    bq = r.integers(-300, 300, 4).astype(np.int32)
    fq = r.integers(-127, 128, (3, 4 * 3 * 3)).astype(np.int8)
    init = [numpy_helper.from_array(a, n) for a, n in [
        (wq, "wq"), (ws, "ws"), (np.zeros(4, np.int8), "wz"), (bq, "bq"),
        ((ws * x_scale).astype(np.float32), "bs"), (np.zeros(4, np.int32), "bz"),
        (fq, "fq"), (np.float32(2.0 ** -6), "fs"), (np.int8(0), "fz"),
        (np.float32(x_scale), "xs"), (np.int8(0), "z8"), (np.float32(2.0 ** -3), "cs"),
        (np.float32(relu_scale), "rs"), (np.uint8(0), "zu"), (np.float32(2.0 ** -2), "ys")]]
    qdq = lambda a, s, z, o: [helper.make_node("QuantizeLinear", [a, s, z], [o + "_q"],  # noqa: E731
                                               name=o + "_quant"),
                              helper.make_node("DequantizeLinear", [o + "_q", s, z], [o])]
    nodes = [*qdq("x", "xs", "z8", "xd"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"], axis=0),
             helper.make_node("Conv", ["xd", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             *qdq("c", "cs", "z8", "cd"),
             helper.make_node("Relu", ["cd"], ["r"]),
             *qdq("r", "rs", "zu", "rd"),
             helper.make_node("MaxPool", ["rd"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("DequantizeLinear", ["fq", "fs", "fz"], ["fw"]),
             helper.make_node("Gemm", ["f", "fw"], ["g"], transB=1, name="dense"),
             *qdq("g", "ys", "z8", "y")]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 6, 6])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 3])], init)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _spec_session(model):
    """onnxruntime running the QDQ model as the spec defines it (DequantizeLinear, the float op,
    QuantizeLinear): without graph optimizations, which would fuse the pairs into its integer
    kernels (on CPUs without VNNI those saturate uint8 x int8 pair sums at int16)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so)


@pytest.mark.parametrize("io", ["io_parallel", "io_stream"])
def test_power_of_two_qdq_becomes_exact_fixed_types(io):
    model = _qdq_model()
    m = onnxcc.compile(model, "xczu7ev", hls=onnxcc.HLSConfig(io=io))
    defines = (m.lib_dir / "firmware" / "defines.h").read_text()
    assert "typedef ap_fixed<8,4,AP_RND_CONV,AP_SAT> input_t" in defines      # x: 2^-4, int8
    assert "ap_ufixed<8,5,AP_RND_CONV,AP_SAT>" in defines                       # relu: 2^-3, uint8
    assert "typedef ap_fixed<8,6,AP_RND_CONV,AP_SAT> result_t" in defines      # y: 2^-2, int8
    assert not any(n.op in ("QuantizeLinear", "DequantizeLinear") for n in m.graph.nodes)
    assert str(m.precision.values["p"]) == str(m.precision.values["r"])   # MaxPool keeps it
    sess = _spec_session(model)
    rng = np.random.default_rng(8)
    equal = total = 0
    for _ in range(12):
        x = rng.uniform(-8, 8, (1, 2, 6, 6)).astype(np.float32)
        got = m.run({"x": x})["y"]
        np.testing.assert_array_equal(got.astype(np.float64),
                                      reference(m.graph, m.precision, {"x": x})["y"])
        want = sess.run(None, {"x": x})[0]
        # onnxruntime sums in float32 before rounding to the grid; onnxcc sums exactly
        assert np.max(np.abs(got - want)) <= 2.0 ** -2 + 1e-6
        equal += int(np.sum(got == want))
        total += want.size
    assert equal >= 0.9 * total, (equal, total)


def test_other_scales_get_a_covering_type_with_a_warning(caplog):
    model = _qdq_model(x_scale=0.05)
    with caplog.at_level(logging.WARNING, logger="onnxcc.passes"):
        m = onnxcc.compile(model, "xczu7ev")
    assert "'xd_quant' (QuantizeLinear)" in caplog.text and "not bit-equal" in caplog.text
    assert "typedef ap_fixed<16,4,AP_RND_CONV,AP_SAT> input_t" in \
        (m.lib_dir / "firmware" / "defines.h").read_text()          # 0.05 * 128 = 6.4 < 8
    x = np.random.default_rng(1).uniform(-6, 6, (1, 2, 6, 6)).astype(np.float32)
    want = _spec_session(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(m.run({"x": x})["y"], want, atol=0.5)



@pytest.mark.parametrize("qtype,zp", [(np.int16, -32768), (np.uint8, 0), (np.int8, -128)])
def test_a_pair_whose_range_starts_at_zero_keeps_its_clamp(qtype, zp):
    """A quantizer folds a Relu into the pair after a Conv whose range starts at 0
    (onnxruntime's quantize_static removes the Relu; int16 pairs always take the approximated
    type on FPGAs). The symmetric approximated type alone let negative values through: the
    C-simulation gave outputs off by their own magnitude. The pair now becomes a Clip."""
    r = np.random.default_rng(3)
    w = (r.standard_normal((3, 2, 3, 3)) * 0.5).astype(np.float32)
    init = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32(3e-2), "s"),
            numpy_helper.from_array(np.asarray(zp, qtype), "z")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("QuantizeLinear", ["c", "s", "z"], ["q"], name="c_quant"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "relu_folded", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 2, 5, 5])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 3, 5, 5])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    m = onnxcc.compile(model, "xczu7ev")
    clips = [n for n in m.graph.nodes if n.op == "Clip"]
    assert len(clips) == 1 and float(clips[0].inputs[1].const) == 0.0
    x = r.uniform(-3, 3, (1, 2, 5, 5)).astype(np.float32)
    got, want = m.run({"x": x})["y"], _spec_session(model).run(None, {"x": x})[0]
    assert want.min() == 0.0 and got.min() >= 0.0
    np.testing.assert_allclose(got, want, atol=2e-2)


QONNX = "qonnx.custom_op.general"


def _quant(x, y, scale, bits, signed=1, narrow=0, mode="ROUND", zp=0.0):
    """A QONNX Quant node and its constant inputs."""
    inits = [numpy_helper.from_array(np.asarray(scale, np.float32), f"{y}_s"),
             numpy_helper.from_array(np.asarray(zp, np.float32), f"{y}_z"),
             numpy_helper.from_array(np.asarray(bits, np.float32), f"{y}_b")]
    return helper.make_node("Quant", [x, f"{y}_s", f"{y}_z", f"{y}_b"], [y], domain=QONNX,
                            name=f"{y}_quant", signed=signed, narrow=narrow,
                            rounding_mode=mode), inits


def _spec_quant(x, scale, bits, signed=1, narrow=0, mode="ROUND", zp=0.0):
    """QONNX's Quant as its documentation defines it (numpy, float64)."""
    qmin, qmax = (-2 ** (bits - 1) + narrow, 2 ** (bits - 1) - 1) if signed else \
        (0, 2 ** bits - 1 - narrow)
    r = {"ROUND": np.round, "FLOOR": np.floor, "CEIL": np.ceil}[mode]
    return (np.clip(r(x / scale + zp), qmin, qmax) - zp) * scale


def _model(nodes, inits, shape_in, shape_out, name):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, shape_in)], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, shape_out)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid(QONNX, 1)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("args", [(0.25, 4), (0.5, 3, 0, 0, "FLOOR"), (0.1, 5, 1, 1, "CEIL", 1.0),
                                  (np.array([[0.5], [0.125]]), 6)])
def test_qonnx_quant_imports_as_its_definition(args):
    """Quant (signed/unsigned, narrow, ROUND/FLOOR/CEIL, a zero point, per-channel scales) runs
    on the host target as QONNX defines it."""
    node, inits = _quant("x", "y", *args)
    m = onnxcc.compile(_model([node], inits, [2, 32], [2, 32], "quant"), "host")
    x = np.random.default_rng(0).uniform(-4, 4, (2, 32)).astype(np.float32)
    # equal up to the float32 rounding of (q - zp) * scale (exact for power-of-two scales)
    np.testing.assert_allclose(m.run({"x": x})["y"], _spec_quant(x.astype(np.float64), *args),
                               rtol=1e-6, atol=0)


def _qonnx_mlp():
    """The jet-tagging MLP 16-64-32-32-5 as a QONNX export: 6-bit signed input (2^-3), 4-bit
    weights (2^-3), 6-bit unsigned ReLU outputs (2^-2), 8-bit logits (2^-3)."""
    r = np.random.default_rng(5)
    nodes, inits = [], []
    n, i = _quant("x", "xq", 2.0 ** -3, 6)
    nodes.append(n)
    inits += i
    prev, sizes = "xq", [16, 64, 32, 32, 5]
    for k in range(4):
        w = r.normal(0, 0.5, (sizes[k], sizes[k + 1])).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{k}"),
                  numpy_helper.from_array(r.normal(0, 0.2, sizes[k + 1]).astype(np.float32),
                                          f"b{k}")]
        n, i = _quant(f"w{k}", f"w{k}q", 2.0 ** -3, 4)
        nodes.append(n)
        inits += i
        nodes += [helper.make_node("MatMul", [prev, f"w{k}q"], [f"m{k}"], name=f"dense{k}"),
                  helper.make_node("Add", [f"m{k}", f"b{k}"], [f"a{k}"])]
        if k < 3:
            nodes.append(helper.make_node("Relu", [f"a{k}"], [f"r{k}"]))
            n, i = _quant(f"r{k}", f"h{k}", 2.0 ** -2, 6, signed=0)
            prev = f"h{k}"
        else:
            n, i = _quant(f"a{k}", "y", 2.0 ** -3, 8)
        nodes.append(n)
        inits += i
    return _model(nodes, inits, [1, 16], [1, 5], "jet_qonnx")


def test_qonnx_mlp_on_fpga_is_exact_on_its_grids():
    """A QONNX jet MLP compiles for an FPGA with every Quant as the tensor's exact type
    (ap_fixed<6,3>, ap_ufixed<6,4>, ap_fixed<8,5>); C-sim equals the reference bit for bit
    and the float graph (host) on the grid of the logits."""
    model = _qonnx_mlp()
    m = onnxcc.compile(model, "xczu7ev")
    defines = (m.lib_dir / "firmware" / "defines.h").read_text()
    assert "typedef ap_fixed<6,3,AP_RND_CONV,AP_SAT> input_t" in defines
    assert "ap_ufixed<6,4,AP_RND_CONV,AP_SAT>" in defines
    assert "typedef ap_fixed<8,5,AP_RND_CONV,AP_SAT> result_t" in defines
    assert {n.op for n in m.graph.nodes} <= {"Gemm", "onnxcc.FusedGemm", "Relu", "Add", "MatMul"}
    host = onnxcc.compile(model, "host")
    rng = np.random.default_rng(2)
    equal = total = 0
    for _ in range(20):
        x = rng.uniform(-4, 4, (1, 16)).astype(np.float32)
        got = m.run({"x": x})["y"]
        np.testing.assert_array_equal(got.astype(np.float64),
                                      reference(m.graph, m.precision, {"x": x})["y"])
        want = host.run({"x": x})["y"]
        assert np.max(np.abs(got - want)) <= 2.0 ** -3 + 1e-6
        equal += int(np.sum(got == want))
        total += want.size
    assert equal >= 0.95 * total, (equal, total)


def _qonnx_node(op, inputs, consts, **attrs):
    """A QONNX ``op`` node on x with constant inputs ``consts`` (name suffix -> array)."""
    inits = [numpy_helper.from_array(np.asarray(v), f"{op}_{k}") for k, v in consts.items()]
    node = helper.make_node(op, ["x"] + [f"{op}_{k}" for k in inputs], ["y"], domain=QONNX,
                            name=f"{op.lower()}_node", **attrs)
    return node, inits


def _spec_trunc(x, scale, zp, in_bits, out_bits, mode="FLOOR", out_scale=None, signed=1,
                narrow=0):
    """QONNX's Trunc as its documentation's sample implementations define it (v1 without
    ``out_scale``, v2 with it), in float32 as numpy evaluates them on float32 inputs."""
    f = np.float32
    r = {"ROUND": np.round, "FLOOR": np.floor, "CEIL": np.ceil}[mode]
    y = np.round(x / f(scale) + f(zp))
    if out_scale is None:
        y = r(y / f(2.0 ** (in_bits - out_bits)))
        return (y - f(zp)) * f(scale)
    t = f(2.0 ** np.round(np.log2(f(out_scale) / f(scale))))
    lo, hi = (-2 ** (out_bits - 1) + narrow, 2 ** (out_bits - 1) - 1) if signed else \
        (0, 2 ** out_bits - 1 - narrow)
    y = np.clip(y / t, f(lo), f(hi))
    return (r(y) - f(zp) / t) * f(out_scale)


@pytest.mark.parametrize("case", [
    dict(scale=0.125, zp=0.0, in_bits=10, out_bits=4),
    dict(scale=0.3, zp=2.0, in_bits=8, out_bits=5, mode="ROUND"),
    dict(scale=0.25, zp=0.0, in_bits=12, out_bits=6, mode="CEIL"),
    dict(scale=0.0625, zp=0.0, in_bits=12, out_bits=4, out_scale=0.5),
    dict(scale=0.1, zp=1.0, in_bits=10, out_bits=3, out_scale=0.4, signed=0, mode="ROUND"),
    dict(scale=0.125, zp=0.0, in_bits=10, out_bits=4, out_scale=1.0, narrow=1)])
def test_qonnx_trunc_imports_as_its_definition(case):
    """Trunc v1 (5 inputs) and v2 (6 inputs: out_scale, with signed/narrow clamping) run on the
    host target exactly as QONNX's documentation defines them."""
    case = dict(case)
    mode, signed, narrow = case.pop("mode", "FLOOR"), case.pop("signed", 1), case.pop("narrow", 0)
    consts = {"s": np.float32(case["scale"]), "z": np.float32(case["zp"]),
              "ib": np.int32(case["in_bits"])}
    names = ["s", "z", "ib"]
    attrs = {"rounding_mode": mode}
    if "out_scale" in case:
        consts["os"] = np.float32(case["out_scale"])
        names.append("os")
        attrs.update(signed=signed, narrow=narrow)
    consts["ob"] = np.int32(case["out_bits"])
    names.append("ob")
    node, inits = _qonnx_node("Trunc", names, consts, **attrs)
    m = onnxcc.compile(_model([node], inits, [4, 64], [4, 64], "trunc"), "host")
    x = np.random.default_rng(1).uniform(-40, 40, (4, 64)).astype(np.float32)
    want = _spec_trunc(x, mode=mode, signed=signed, narrow=narrow, **case)
    np.testing.assert_array_equal(m.run({"x": x})["y"], want.astype(np.float32))
    assert len(np.unique(want)) > 4     # the grid is not degenerate


@pytest.mark.parametrize("scale", [np.float32(0.5), np.array([[1.0], [0.25]], np.float32)])
def test_qonnx_bipolar_quant_imports_as_its_definition(scale):
    """BipolarQuant: +scale where x >= 0 (0 included), -scale elsewhere (per-tensor or
    broadcast scales), on the host target."""
    node, inits = _qonnx_node("BipolarQuant", ["s"], {"s": scale})
    m = onnxcc.compile(_model([node], inits, [2, 32], [2, 32], "bipolar"), "host")
    x = np.random.default_rng(2).uniform(-2, 2, (2, 32)).astype(np.float32)
    x[0, :3] = 0.0
    want = np.where(x >= 0, np.float32(1), np.float32(-1)) * scale
    np.testing.assert_array_equal(m.run({"x": x})["y"], want.astype(np.float32))


def test_unknown_qonnx_op_is_named():
    node = helper.make_node("FloatQuant", ["x"], ["y"], domain=QONNX, name="fq")
    with pytest.raises(onnxcc.UnsupportedOpError, match="BipolarQuant, Trunc"):
        onnxcc.compile(_model([node], [], [2, 32], [2, 32], "fq"), "host")


def _qonnx_trunc_bipolar(ceil=False, bipolar_scale=None):
    """x -> Quant (2^-3, 6 bits) -> MatMul (Quant 4-bit weights) + bias -> Quant (2^-4, 10 bits)
    = m, read by a Trunc v1 (10 -> 7 bits, FLOOR; CEIL when ``ceil``) -> y1, a Trunc v2 (to
    5 bits at 2^-2, ROUND) -> y2 and a BipolarQuant (per-column scales 2, 1, ..., 2^-6) -> y3."""
    r = np.random.default_rng(0)
    nodes, inits = [], []

    def add(pair):
        nodes.append(pair[0])
        inits.extend(pair[1])

    add(_quant("x", "xq", 2.0 ** -3, 6))
    inits += [numpy_helper.from_array(r.normal(0, .5, (16, 8)).astype(np.float32), "w"),
              numpy_helper.from_array(r.normal(0, .5, 8).astype(np.float32), "b")]
    add(_quant("w", "wq", 2.0 ** -3, 4))
    nodes += [helper.make_node("MatMul", ["xq", "wq"], ["mm"], name="dense"),
              helper.make_node("Add", ["mm", "b"], ["a"], name="bias")]
    add(_quant("a", "m", 2.0 ** -4, 10))
    for out, mode, consts in [("y1", "CEIL" if ceil else "FLOOR",
                               {"s": 2.0 ** -4, "z": 0, "ib": 10, "ob": 7}),
                              ("y2", "ROUND", {"s": 2.0 ** -4, "z": 0, "ib": 10, "os": 0.25,
                                               "ob": 5})]:
        inits += [numpy_helper.from_array(np.float32(v), f"{out}_{k}") for k, v in consts.items()]
        nodes.append(helper.make_node("Trunc", ["m"] + [f"{out}_{k}" for k in consts], [out],
                                      domain=QONNX, name=f"{out}_trunc", rounding_mode=mode))
    scale = bipolar_scale if bipolar_scale is not None else 2.0 ** -np.arange(8) * 2
    inits.append(numpy_helper.from_array(np.asarray(scale, np.float32), "bs"))
    nodes.append(helper.make_node("BipolarQuant", ["m", "bs"], ["y3"], domain=QONNX, name="bq"))
    g = helper.make_graph(nodes, "qonnx_trunc", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 16])], [helper.make_tensor_value_info(
            y, TensorProto.FLOAT, [1, 8]) for y in ("y1", "y2", "y3")], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid(QONNX, 1)])
    m.ir_version = 8
    return m


def test_qonnx_trunc_and_bipolar_quant_on_fpga_equal_the_host_build():
    """Trunc on a tensor typed by its Quant becomes one exact ap_fixed step (v1: the raw value
    shifted right by in - out bits, FLOOR as AP_TRN; v2: the conversion to the out_scale grid,
    ROUND as AP_RND_CONV, saturating to 5 bits), BipolarQuant a Where between +-scale typed to
    hold every per-column power of two; io_stream (m fans out to the three). C-sim equals the
    fixed-point reference and the host build (QONNX's float definitions) on every value. The
    bias Add after the MatMul stays apart from the Trunc's shift (fold_batchnorm does not fold
    across m's type)."""
    model = _qonnx_trunc_bipolar()
    m = onnxcc.compile(model, "xczu7ev", hls=onnxcc.HLSConfig(io="io_stream"))
    ops = [n.op for n in m.graph.nodes]
    assert ops.count("Mul") == 2 and ops.count("Where") == 1, ops
    assert not {"Round", "Floor", "Div", "Clip", "Sub"} & set(ops), ops
    t = {k: str(m.precision.values[k]) for k in ("y1", "y2", "y3")}
    assert t == {"y1": "ap_fixed<7,3>", "y2": "ap_fixed<5,3>", "y3": "ap_fixed<9,3>"}, t
    host = onnxcc.compile(model, "host")
    rng = np.random.default_rng(3)
    seen = {k: set() for k in t}
    for _ in range(20):
        x = rng.uniform(-4, 4, (1, 16)).astype(np.float32)
        got, want = m.run({"x": x}), host.run({"x": x})
        ref = reference(m.graph, m.precision, {"x": x})
        for k in t:
            np.testing.assert_array_equal(got[k].astype(np.float64), ref[k])
            np.testing.assert_array_equal(got[k], want[k])
            seen[k] |= set(got[k].reshape(-1).tolist())
    assert min(seen["y2"]) == -4.0 and min(len(v) for v in seen.values()) > 8   # saturation
    assert m.csim_warnings == ""


def test_qonnx_trunc_ceil_is_refused_and_bipolar_scale_approximated_by_name(caplog):
    """A CEIL Trunc has no ap_fixed rounding mode: the FPGA check names its float nodes; a
    BipolarQuant scale that is not a power of two gets a covering type with a warning."""
    with pytest.raises(onnxcc.UnsupportedOpError, match=r"'y1_trunc__qi' \(Ceil\)"):
        onnxcc.compile(_qonnx_trunc_bipolar(ceil=True), "xczu7ev")
    with caplog.at_level(logging.WARNING, logger="onnxcc.passes"):
        m = onnxcc.compile(_qonnx_trunc_bipolar(bipolar_scale=np.float32(0.3)), "xczu7ev")
    assert "'bq' (QONNX BipolarQuant)" in caplog.text
    assert str(m.precision.values["y3"]) == "ap_fixed<16,1>"
