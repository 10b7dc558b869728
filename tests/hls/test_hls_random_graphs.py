"""Random CNNs on FPGA targets: chains of Conv (pads, strides, dilations), depthwise Conv,
MaxPool/AveragePool, Add/Mul/Sub, global pools and the table and piecewise activations, then
Gemm and Softmax, at random widths, rounding and overflow modes and I/O styles. C-simulation
must equal the numpy fixed-point reference bit for bit (any difference is a renderer or
reference bug: a silently wrong FPGA result)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxcc
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxcc.codegen.hls.reference import reference


def build(seed):
    """(model, FixedPoint, io style, input) for ``seed``."""
    r = np.random.default_rng(seed)
    C, H = int(r.integers(1, 5)), int(r.integers(4, 10))
    inits, nodes = [], []
    def init(a):
        n = f"i{len(inits)}"; inits.append(numpy_helper.from_array(np.asarray(a, np.float32), n)); return n
    cur, shape = "x", [1, C, H, H]
    k = 0
    for step in range(int(r.integers(2, 6))):
        k += 1; out = f"t{k}"
        op = r.choice(["conv", "dw", "pool", "avg", "act", "add", "gap"])
        c, h = shape[1], shape[2]
        if op == "conv" or (op == "dw" and c == 1):
            m = int(r.integers(1, 6)); ks = int(r.integers(1, min(4, h) + 1)); s = int(r.integers(1, 3)); p = int(r.integers(0, ks))
            d = 1 if ks == 1 or (h + 2 * p - 2 * (ks - 1) - 1) < 0 else int(r.integers(1, 3))
            if (h + 2 * p - d * (ks - 1) - 1) < 0: d = 1
            nodes.append(helper.make_node("Conv", [cur, init(r.normal(0, 0.5, (m, c, ks, ks))), init(r.normal(0, 0.2, m))], [out], pads=[p]*4, strides=[s, s], dilations=[d, d]))
            h = (h + 2 * p - d * (ks - 1) - 1) // s + 1; shape = [1, m, h, h]
        elif op == "dw":
            ks = int(r.integers(1, min(3, h) + 1)); p = int(r.integers(0, ks))
            nodes.append(helper.make_node("Conv", [cur, init(r.normal(0, 0.5, (c, 1, ks, ks)))], [out], pads=[p]*4, group=c))
            h = h + 2 * p - ks + 1; shape = [1, c, h, h]
        elif op in ("pool", "avg") and h >= 2:
            ks = int(r.integers(1, min(3, h) + 1)); s = int(r.integers(1, 3)); p = int(r.integers(0, ks))
            kw = dict(kernel_shape=[ks, ks], strides=[s, s], pads=[p]*4)
            if op == "avg": kw["count_include_pad"] = int(r.integers(0, 2))
            nodes.append(helper.make_node("MaxPool" if op == "pool" else "AveragePool", [cur], [out], **kw))
            h = (h + 2 * p - ks) // s + 1; shape = [1, c, h, h]
        elif op == "add":
            nodes.append(helper.make_node(str(r.choice(["Add", "Mul", "Sub"])), [cur, init(r.normal(0, 1, (1, c, 1, 1)))], [out]))
        elif op == "gap":
            nodes.append(helper.make_node(str(r.choice(["GlobalAveragePool", "GlobalMaxPool"])), [cur], [out])); shape = [1, c, 1, 1]
        else:
            a = str(r.choice(["Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip"]))
            if a == "Clip":
                nodes.append(helper.make_node("Clip", [cur, init(float(r.normal(-0.5, 0.3))), init(float(r.normal(1, 0.5)))], [out]))
            elif a == "LeakyRelu":
                nodes.append(helper.make_node(a, [cur], [out], alpha=float(r.uniform(0.01, 0.5))))
            else:
                nodes.append(helper.make_node(a, [cur], [out]))
        cur = out
    nodes.append(helper.make_node("Flatten", [cur], ["f"]))
    n = int(np.prod(shape)); o = int(r.integers(2, 7))
    nodes.append(helper.make_node("Gemm", ["f", init(r.normal(0, 0.3, (n, o))), init(r.normal(0, 0.1, o))], ["g"]))
    nodes.append(helper.make_node("Softmax", ["g"], ["y"], axis=-1) if r.random() < 0.5 else helper.make_node("Relu", ["g"], ["y"]))
    g = helper.make_graph(nodes, f"f{seed}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, H])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, o])], inits)
    mm = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); mm.ir_version = 10
    w = int(r.integers(6, 20)); i = int(r.integers(2, min(w, 8)))
    cfg = onnxcc.FixedPoint(default=f"ap_fixed<{w},{i}>", rounding=str(r.choice(["AP_RND_CONV", "AP_RND", "AP_TRN", "AP_TRN_ZERO"])),
                            overflow=str(r.choice(["AP_SAT", "AP_WRAP"])), weight_width=int(r.integers(6, 18)))
    io = str(r.choice(["io_parallel", "io_stream"]))
    return mm, cfg, io, r.normal(0, 1.5, (1, C, H, H)).astype(np.float32)


def _check(seed: int) -> None:
    mm, cfg, io, x = build(seed)
    onnx.checker.check_model(mm)
    m = onnxcc.compile(mm, "xcvu9p", quantize=cfg, hls=onnxcc.HLSConfig(io=io))
    got = m.run({"x": x})["y"].astype(np.float64)
    want = reference(m.graph, m.precision, {"x": x})["y"]
    assert np.array_equal(got, want), (seed, io, cfg, got, want)


@pytest.mark.parametrize("seed", range(4))
def test_random_cnn_csim_equals_reference(seed):
    _check(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4, 8))
def test_random_cnn_csim_equals_reference_more(seed):
    _check(seed)
