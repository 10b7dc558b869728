"""onnxruntime's quantized contrib ops (domain com.microsoft) through the public API on host and
cpu, against onnxruntime: QGemm as an integer kernel, the QLinear elementwise/pool/concat/softmax
ops through their float op between DequantizeLinear and QuantizeLinear; and the digits CNN as
onnxruntime's quantizer writes it in the QOperator format."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import onnxcc
from onnxcc.errors import UnsupportedOpError

from builders import IR_VERSION, W7, ort_run

TARGETS = ("host", "cpu")
rng = np.random.default_rng(21)
MS = "com.microsoft"


def contrib_model(op: str, inputs: dict, out: tuple, inits: dict, **attrs) -> onnx.ModelProto:
    """One com.microsoft node; ``inputs`` name -> array (None: omitted optional input);
    arrays named in ``inits`` are initializers."""
    names = [k if v is not None else "" for k, v in inputs.items()]
    node = helper.make_node(op, names, ["y"], name="c0", domain=MS, **attrs)
    graph_in = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                              list(v.shape))
                for k, v in inputs.items() if v is not None and k not in inits]
    g = helper.make_graph([node], "c", graph_in,
                          [helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(
                              np.dtype(out[0])), list(out[1]))],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid(MS, 1)])
    m.ir_version = IR_VERSION
    return m


def check(m: onnx.ModelProto, feeds: dict, min_equal: float = 0.9) -> None:
    """Within 1 LSB of onnxruntime everywhere, equal on at least ``min_equal`` of the elements
    (onnxruntime computes the QLinear ops in fixed point or lookup tables, onnxcc in float:
    near-ties round apart), and the C and LLVM builds equal."""
    want = ort_run(m, feeds)["y"]
    outs = {}
    for t in TARGETS:
        got = onnxcc.compile(m, t).run(feeds)["y"]
        assert got.dtype == want.dtype and got.shape == want.shape
        d = np.abs(got.astype(np.int64) - want.astype(np.int64))
        assert d.max(initial=0) <= 1, (t, d.max())
        assert (d == 0).mean() >= min_equal, (t, (d == 0).mean())
        outs[t] = got
    np.testing.assert_array_equal(outs["host"], outs["cpu"])


def q(shape, dt=np.uint8):
    i = np.iinfo(dt)
    return rng.integers(i.min, i.max, shape, endpoint=True).astype(dt)


def sc(v):
    return np.array(v, np.float32)


def zp(v, dt=np.uint8):
    return np.array(v, dt)


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
@pytest.mark.parametrize("dt", [np.uint8, np.int8])
def test_qlinear_binary_broadcast(op, dt):
    lo = np.iinfo(dt).min
    a, b = q((2, 3, 4, 5), dt), q((3, 1, 5), dt)
    ins = {"a": a, "as": sc(0.04), "az": zp(lo + 100, dt), "b": b, "bs": sc(0.02),
           "bz": zp(lo + 130, dt), "ys": sc(0.08 if op == "QLinearAdd" else 2.0),
           "yz": zp(lo + 120, dt)}
    inits = {k: v for k, v in ins.items() if k not in ("a", "b")}
    m = contrib_model(op, ins, (dt, a.shape), inits)
    check(m, {"a": a, "b": b})
    assert [n.op for n in onnxcc.compile(m, "host").graph.nodes] == [f"com.microsoft.{op}"]


@pytest.mark.parametrize("op,attrs", [("QLinearSigmoid", {}),
                                      ("QLinearLeakyRelu", {"alpha": 0.2}),
                                      ("QLinearSoftmax", {"axis": -1, "opset": 13}),
                                      ("QLinearGlobalAveragePool", {"channels_last": 0}),
                                      ("QLinearAveragePool", {"kernel_shape": [3, 3],
                                                              "pads": [1, 1, 1, 1],
                                                              "strides": [2, 2]})])
def test_qlinear_unary(op, attrs):
    x = q((1, 6, 7, 7))
    ins = {"x": x, "xs": sc(0.05), "xz": zp(128),
           "ys": sc(1 / 256 if op in ("QLinearSigmoid", "QLinearSoftmax") else 0.05),
           "yz": zp(0 if op in ("QLinearSigmoid", "QLinearSoftmax") else 128)}
    out = {"QLinearGlobalAveragePool": (1, 6, 1, 1), "QLinearAveragePool": (1, 6, 4, 4)}.get(
        op, x.shape)
    inits = {k: v for k, v in ins.items() if k != "x"}
    check(contrib_model(op, ins, (np.uint8, out), inits, **attrs), {"x": x})


def test_qlinear_concat():
    a, b = q((1, 2, 3), np.int8), q((1, 4, 3), np.int8)
    ins = {"ys": sc(0.1), "yz": zp(-5, np.int8), "a": a, "as": sc(0.07), "az": zp(3, np.int8),
           "b": b, "bs": sc(0.12), "bz": zp(-9, np.int8)}
    inits = {k: v for k, v in ins.items() if k not in ("a", "b")}
    m = contrib_model("QLinearConcat", ins, (np.int8, (1, 6, 3)), inits, axis=1)
    check(m, {"a": a, "b": b})
    assert [n.op for n in onnxcc.compile(m, "host").graph.nodes] == ["com.microsoft.QLinearConcat"]


@pytest.mark.parametrize("trans_a,trans_b,per_col,bias,alpha", [
    (0, 0, False, True, 1.0), (0, 1, True, True, 1.0), (1, 0, False, False, 1.0),
    (0, 1, True, False, 0.5)])
def test_qgemm(trans_a, trans_b, per_col, bias, alpha):
    m_, k_, n_ = 5, 37, 11
    a = q((k_, m_) if trans_a else (m_, k_))
    b = rng.integers(*W7, (n_, k_) if trans_b else (k_, n_)).astype(np.int8)
    bs = (rng.random(n_) * 0.01 + 0.002).astype(np.float32) if per_col else sc(0.004)
    bz = np.zeros(n_, np.int8) if per_col else zp(0, np.int8)
    c = rng.integers(-5000, 5000, n_).astype(np.int32) if bias else None
    ins = {"a": a, "as": sc(0.03), "az": zp(121), "b": b, "bs": bs, "bz": bz, "c": c,
           "ys": sc(0.2), "yz": zp(100)}
    inits = {k: v for k, v in ins.items() if k != "a" and v is not None}
    m = contrib_model("QGemm", ins, (np.uint8, (m_, n_)), inits, transA=trans_a,
                      transB=trans_b, alpha=alpha)
    check(m, {"a": a}, min_equal=0.9)
    nodes = onnxcc.compile(m, "host").graph.nodes
    assert [n.op for n in nodes] == ["com.microsoft.QGemm"]


def test_unknown_domains_and_ops_are_refused_by_name():
    x = q((2, 3))
    m = contrib_model("QLinearWhere", {"x": x}, (np.uint8, (2, 3)), {})
    with pytest.raises(UnsupportedOpError, match="c0.*QLinearWhere is not implemented"):
        onnxcc.compile(m, "host")
    m.graph.node[0].domain = "ai.onnx.contrib"
    m.opset_import.append(helper.make_opsetid("ai.onnx.contrib", 1))
    with pytest.raises(UnsupportedOpError, match="domain 'ai.onnx.contrib' is not supported"):
        onnxcc.compile(m, "host")


def test_digits_quantized_by_onnxruntime_qoperator(tmp_path):
    """onnxruntime's quantize_static in the QOperator format (uint8 activations, int8 weights
    per tensor): QuantizeLinear, QLinearConv, MaxPool, QGemm and QLinearSoftmax. onnxcc's
    outputs agree with onnxruntime's within 1 LSB on every element (in practice all equal)."""
    from importlib.resources import files

    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    models = files("onnxcc") / "models"
    x = np.load(str(models / "digits_test.npz"))["x"].astype(np.float32)
    m = onnx.load(str(models / "digits.onnx"))
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    src, pre, dst = tmp_path / "b1.onnx", tmp_path / "pre.onnx", tmp_path / "qop.onnx"
    onnx.save(m, str(src))
    quant_pre_process(str(src), str(pre))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x[i:i + 1]} for i in range(100)])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QOperator,
                    per_channel=False, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, reduce_range=True)   # 7-bit weights (W7)
    qm = onnx.load(str(dst))
    assert {n.op_type for n in qm.graph.node} >= {"QLinearConv", "QGemm", "QLinearSoftmax"}
    out = qm.graph.output[0].name
    want = np.concatenate([ort_run(qm, {"input": x[i:i + 1]})[out] for i in range(len(x))])
    for t in TARGETS:
        cm = onnxcc.compile(qm, t)
        ops = [n.op for n in cm.graph.nodes]
        assert ops.count("QLinearConv") == 2 and ops.count("com.microsoft.QGemm") == 2
        got = np.concatenate([cm.run({"input": x[i:i + 1]})[out] for i in range(len(x))])
        lsb = np.abs(got.astype(np.float64) - want) * 255
        assert lsb.max() <= 1.001 and (lsb < 1e-3).mean() >= 0.99
        assert (got.argmax(1) == want.argmax(1)).mean() >= 0.995
