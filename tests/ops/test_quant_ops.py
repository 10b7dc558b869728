"""Quantization ops through the public API on host (C) and cpu (LLVM): QuantizeLinear,
DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

Integer outputs are compared for equality with onnx.reference (the spec) and with onnxruntime
(which requantizes in float32: at most 1 LSB apart, on rare near-ties only), and the C and LLVM
builds must give identical bytes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import onnxcc
from onnxcc.codegen.loops import kernel_text
from onnxcc.errors import OnnxccError

from builders import IR_VERSION, W7, ort_run

TARGETS = ("host", "cpu")
rng = np.random.default_rng(11)


def single(op: str, inputs: dict, outputs: dict, inits: dict | None = None, opset: int = 21,
           **attrs) -> onnx.ModelProto:
    """One-node model: ``inputs``/``outputs`` map names to numpy arrays or (dtype, shape); an
    input named in ``inits`` is an initializer; a name of "" is an omitted optional input."""
    inits = inits or {}
    names = list(inputs)
    node = helper.make_node(op, names, list(outputs), name="q0", **attrs)

    def info(name, spec):
        dt, shape = (spec.dtype, spec.shape) if isinstance(spec, np.ndarray) else spec
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dt)),
                                             list(shape))

    g = helper.make_graph([node], "q", [info(k, v) for k, v in inputs.items()
                                        if k and k not in inits],
                          [info(k, v) for k, v in outputs.items()],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m


def _for_reference(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` at opset 21 or newer: onnx.reference implements QuantizeLinear and
    DequantizeLinear from opset 19 only (their semantics on these types did not change)."""
    if model.opset_import[0].version >= 19 or model.graph.node[0].op_type not in (
            "QuantizeLinear", "DequantizeLinear"):
        return model
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.opset_import[0].version = 21
    return m


def check(model: onnx.ModelProto, feeds: dict, ort_lsb: int = 0, min_equal: float = 1.0,
          not_ort: tuple = (), want: dict | None = None, ort: bool = True) -> dict:
    """Compile for every target, run, compare with onnx.reference (or ``want``) exactly and with
    onnxruntime within ``ort_lsb`` (and at least ``min_equal`` of the elements equal), except the
    outputs named in ``not_ort``; returns the host outputs."""
    if want is None:
        want = dict(zip([o.name for o in model.graph.output],
                        ReferenceEvaluator(_for_reference(model)).run(None, feeds)))
    ort_out = ort_run(model, feeds) if ort else {}
    got = {}
    for t in TARGETS:
        got[t] = onnxcc.compile(model, t).run(feeds)
        for name, w in want.items():
            g = np.asarray(got[t][name])
            assert g.dtype == w.dtype and g.shape == w.shape, (t, name, g.dtype, g.shape)
            np.testing.assert_array_equal(g, w, err_msg=f"{t} {name} vs onnx.reference")
            if name in not_ort or not ort:
                continue
            o = np.asarray(ort_out[name])
            diff = np.abs(g.astype(np.float64) - o.astype(np.float64))
            assert diff.max(initial=0) <= ort_lsb, (t, name, diff.max())
            assert (diff == 0).mean() >= min_equal if diff.size else True
    for name in want:
        assert np.asarray(got["host"][name]).tobytes() == np.asarray(got["cpu"][name]).tobytes()
    return got["host"]


# ---- QuantizeLinear / DequantizeLinear ---------------------------------------------------------
@pytest.mark.parametrize("qt", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize("const", [False, True])
def test_quantize_per_tensor(qt, const):
    x = (rng.standard_normal((2, 3, 5)) * 40).astype(np.float32)
    x[0, 0, :5] = [0.25, 0.75, -0.25, 1e9, -1e9]          # ties of x / 0.5, saturation
    s, z = np.float32(0.5), np.array(3 if np.iinfo(qt).min == 0 else -2, qt)
    m = single("QuantizeLinear", {"x": x, "s": np.array(s), "z": z}, {"y": (qt, x.shape)},
               {"s": np.array(s), "z": z} if const else None)
    feeds = {"x": x} if const else {"x": x, "s": np.array(s), "z": z}
    y = check(m, feeds)["y"]
    assert y[0, 0, 0] == z + 0 and y[0, 0, 1] == z + 2     # 0.5 and 1.5 round to even
    assert y[0, 0, 3] == np.iinfo(qt).max and y[0, 0, 4] == np.iinfo(qt).min


@pytest.mark.parametrize("opset", [10, 13, 21])
def test_quantize_dequantize_opsets(opset):
    x = (rng.standard_normal((4, 6)) * 3).astype(np.float32)
    s = np.array(0.05, np.float32)
    z = np.array(128, np.uint8)
    q = single("QuantizeLinear", {"x": x, "s": s, "z": z}, {"y": (np.uint8, x.shape)},
               {"s": s, "z": z}, opset=opset)
    qy = check(q, {"x": x})["y"]
    d = single("DequantizeLinear", {"q": qy, "s": s, "z": z}, {"y": (np.float32, x.shape)},
               {"s": s, "z": z}, opset=opset)
    check(d, {"q": qy})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_dequantize_per_axis(axis):
    x = (rng.standard_normal((3, 4, 5)) * 10).astype(np.float32)
    n = x.shape[axis]
    s = (rng.random(n) * 0.2 + 0.01).astype(np.float32)
    z = rng.integers(-20, 20, n).astype(np.int8)
    q = single("QuantizeLinear", {"x": x, "s": s, "z": z}, {"y": (np.int8, x.shape)},
               opset=13, axis=axis)
    qy = check(q, {"x": x, "s": s, "z": z})["y"]
    d = single("DequantizeLinear", {"q": qy, "s": s, "z": z}, {"y": (np.float32, x.shape)},
               {"s": s, "z": z}, opset=13, axis=axis)
    check(d, {"q": qy})


def test_quantize_dequantize_blocked():
    x = (rng.standard_normal((3, 7)) * 5).astype(np.float32)
    s = (rng.random((3, 3)) * 0.1 + 0.01).astype(np.float32)   # blocks of 3 along axis 1
    z = rng.integers(0, 255, (3, 3)).astype(np.uint8)
    q = single("QuantizeLinear", {"x": x, "s": s, "z": z}, {"y": (np.uint8, x.shape)},
               {"s": s, "z": z}, axis=1, block_size=3)
    qy = check(q, {"x": x})["y"]
    d = single("DequantizeLinear", {"q": qy, "s": s, "z": z}, {"y": (np.float32, x.shape)},
               axis=1, block_size=3)
    check(d, {"q": qy, "s": s, "z": z})


def test_dequantize_int32_and_no_zero_point():
    x = rng.integers(-(1 << 30), 1 << 30, (2, 9)).astype(np.int32)
    s = np.array(1e-4, np.float32)
    check(single("DequantizeLinear", {"x": x, "s": s}, {"y": (np.float32, x.shape)}, {"s": s}),
          {"x": x})


def test_quantize_nan_goes_to_the_type_minimum():
    x = np.array([np.nan, 1.0, -np.inf, np.inf], np.float32)
    s, z = np.array(0.1, np.float32), np.array(-3, np.int8)
    m = single("QuantizeLinear", {"x": x, "s": s, "z": z}, {"y": (np.int8, x.shape)},
               {"s": s, "z": z})
    for t in TARGETS:
        assert onnxcc.compile(m, t).run({"x": x})["y"].tolist() == [-128, 7, -128, 127]


# ---- DynamicQuantizeLinear ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["normal", "positive", "negative", "zeros"])
def test_dynamic_quantize(kind):
    x = (rng.standard_normal((3, 17)) * 4).astype(np.float32)
    x = {"normal": x, "positive": np.abs(x) + 1, "negative": -np.abs(x) - 1,
         "zeros": np.zeros_like(x)}[kind]
    m = single("DynamicQuantizeLinear", {"x": x},
               {"y": (np.uint8, x.shape), "y_scale": (np.float32, ()),
                "y_zero_point": (np.uint8, ())}, opset=11)
    # all zeros: the spec's reference says scale 1/255, onnxruntime 1.0 (y and zero point agree)
    check(m, {"x": x}, not_ort=("y_scale",) if kind == "zeros" else ())


# ---- integer products ---------------------------------------------------------------------------
@pytest.mark.parametrize("at,bt", [(np.uint8, np.uint8), (np.uint8, np.int8), (np.int8, np.int8)])
@pytest.mark.parametrize("const_b", [False, True])
def test_matmul_integer(at, bt, const_b):
    a = rng.integers(np.iinfo(at).min, np.iinfo(at).max, (2, 5, 33), endpoint=True).astype(at)
    b = rng.integers(np.iinfo(bt).min, np.iinfo(bt).max, (33, 7), endpoint=True).astype(bt)
    if at != bt:
        b = rng.integers(*W7, (33, 7)).astype(bt)   # mixed signs: onnxruntime's range (W7)
    az = np.array(rng.integers(0, 20), at)
    bz = rng.integers(0, 20, 7).astype(bt)          # per column of b
    if at == np.int8 and bt == np.int8:
        bz = bz[:1]                               # onnxruntime: per-tensor for int8 x int8
    m = single("MatMulInteger", {"a": a, "b": b, "az": az, "bz": bz}, {"y": (np.int32, (2, 5, 7))},
               {"b": b, "bz": bz} if const_b else None, opset=10)
    check(m, {"a": a, "az": az} if const_b else {"a": a, "b": b, "az": az, "bz": bz})


def test_matmul_integer_per_row_a_zero_point():
    """a_zero_point with one value per row of a (the spec allows it; onnx.reference's
    MatMulInteger cannot broadcast it and onnxruntime refuses it, so the expected values are
    computed here)."""
    a = rng.integers(0, 255, (2, 5, 33), endpoint=True).astype(np.uint8)
    b = rng.integers(0, 255, (33, 7), endpoint=True).astype(np.uint8)
    az = rng.integers(0, 255, 5).astype(np.uint8)
    bz = np.array(77, np.uint8)
    m = single("MatMulInteger", {"a": a, "b": b, "az": az, "bz": bz}, {"y": (np.int32, (2, 5, 7))},
               {"b": b, "bz": bz}, opset=10)
    want = (a.astype(np.int64) - az.astype(np.int64)[:, None]) @ (b.astype(np.int64) - 77)
    check(m, {"a": a, "az": az}, want={"y": want.astype(np.int32)}, ort=False)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(pads=[1, 2, 1, 0], strides=[2, 1]),
    dict(group=2, dilations=[2, 1], pads=[2, 1, 2, 1]),
    dict(auto_pad="SAME_UPPER", strides=[2, 2]),
])
def test_conv_integer(kw):
    x = rng.integers(0, 255, (1, 4, 9, 8), endpoint=True).astype(np.uint8)
    w = rng.integers(0, 255, (6, 4 // kw.get("group", 1), 3, 3), endpoint=True).astype(np.uint8)
    xz, wz = np.array(128, np.uint8), np.array(120, np.uint8)
    m = single("ConvInteger", {"x": x, "w": w, "xz": xz, "wz": wz},
               {"y": (np.int32, ("?",) * 4)}, {"w": w, "wz": wz}, opset=10, **kw)
    m.graph.output[0].type.tensor_type.ClearField("shape")
    check(m, {"x": x, "xz": xz})


def _qlinear_conv(x, w, b, scales, zps, const: bool, per_channel: bool, **kw):
    xs, ws, ys = scales
    xz, wz, yz = zps
    inputs = {"x": x, "xs": xs, "xz": xz, "w": w, "ws": ws, "wz": wz, "ys": ys, "yz": yz}
    if b is not None:
        inputs["b"] = b
    inits = {k: v for k, v in inputs.items() if k != "x"} if const else {"w": w}
    m = single("QLinearConv", inputs, {"y": (yz.dtype, ("?",) * 4)}, inits, opset=10, **kw)
    m.graph.output[0].type.tensor_type.ClearField("shape")
    feeds = {k: v for k, v in inputs.items() if k not in inits}
    return m, feeds


@pytest.mark.parametrize("const", [True, False], ids=["const-scales", "runtime-scales"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("qt", [np.uint8, np.int8])
def test_qlinear_conv(const, per_channel, qt):
    lo, hi = np.iinfo(qt).min, np.iinfo(qt).max
    x = rng.integers(lo, hi, (1, 8, 10, 10), endpoint=True).astype(qt)
    w = rng.integers(*W7, (16, 8, 3, 3)).astype(np.int8)
    b = rng.integers(-2000, 2000, 16).astype(np.int32)
    nch = 16 if per_channel else 1
    xs, ys = np.array(0.02, np.float32), np.array(0.15, np.float32)
    ws = (rng.random(nch) * 0.01 + 0.002).astype(np.float32).reshape(-1 if per_channel else ())
    xz = np.array(lo + 7, qt)
    wz = np.zeros(nch, np.int8).reshape(-1 if per_channel else ())
    yz = np.array(lo + 100, qt)
    m, feeds = _qlinear_conv(x, w, b, (xs, ws, ys), (xz, wz, yz), const, per_channel,
                             pads=[1, 1, 1, 1])
    y = check(m, feeds, ort_lsb=1, min_equal=0.99)["y"]
    assert len(np.unique(y)) > 20       # a spread of outputs, not a saturated constant


def test_qlinear_conv_grouped_strided_uint8_weights():
    x = rng.integers(0, 255, (2, 6, 11, 9), endpoint=True).astype(np.uint8)
    w = rng.integers(0, 255, (9, 2, 3, 2), endpoint=True).astype(np.uint8)
    scales = (np.array(0.03, np.float32), np.array(0.004, np.float32),
              np.array(0.2, np.float32))
    zps = (np.array(120, np.uint8), np.array(130, np.uint8), np.array(5, np.uint8))
    m, feeds = _qlinear_conv(x, w, None, scales, zps, True, False, group=3, strides=[2, 1],
                             pads=[1, 0, 2, 1], dilations=[1, 2])
    check(m, feeds, ort_lsb=1, min_equal=0.99)


@pytest.mark.parametrize("const", [True, False], ids=["const-scales", "runtime-scales"])
@pytest.mark.parametrize("qt", [np.uint8, np.int8])
def test_qlinear_matmul(const, qt):
    lo, hi = np.iinfo(qt).min, np.iinfo(qt).max
    a = rng.integers(lo, hi, (3, 4, 40), endpoint=True).astype(qt)
    b = rng.integers(lo, hi, (40, 24), endpoint=True).astype(qt)
    sc = [np.array(v, np.float32) for v in (0.05, 0.01, 0.9)]
    zp = [np.array(lo + 10, qt), np.array(lo + 128, qt), np.array(lo + 60, qt)]
    inputs = {"a": a, "as": sc[0], "az": zp[0], "b": b, "bs": sc[1], "bz": zp[1], "ys": sc[2],
              "yz": zp[2]}
    inits = {k: v for k, v in inputs.items() if k != "a"} if const else {"b": b}
    m = single("QLinearMatMul", inputs, {"y": (qt, (3, 4, 24))}, inits, opset=21)
    y = check(m, {k: v for k, v in inputs.items() if k not in inits}, ort_lsb=1,
              min_equal=0.99)["y"]
    assert len(np.unique(y)) > 20


def test_requantize_is_integer_only_with_constant_scales():
    """With constant scales the compiled kernel has no float arithmetic: the loop IR calls the
    requantize intrinsic with fixed-point multipliers (per channel as weights)."""
    x = rng.integers(0, 255, (1, 3, 6, 6), endpoint=True).astype(np.uint8)
    w = rng.integers(-100, 100, (4, 3, 3, 3)).astype(np.int8)
    scales = (np.array(0.02, np.float32), (rng.random(4) * 0.01 + 0.001).astype(np.float32),
              np.array(0.1, np.float32))
    zps = (np.array(128, np.uint8), np.zeros(4, np.int8), np.array(0, np.uint8))
    m, _ = _qlinear_conv(x, w, None, scales, zps, True, True)
    cm = onnxcc.compile(m, "host")
    text = "\n".join(kernel_text(k) for k in cm.program.kernels)
    assert "requantize(" in text and "rq_m:i32[4]" in text and "rq_shift:i8[4]" in text
    assert "f32" not in text and "f64" not in text


# ---- bad input ---------------------------------------------------------------------------------
def test_bad_scale_is_refused_by_name():
    for s in (0.0, -1.0, np.nan):
        a = rng.integers(0, 9, (2, 3)).astype(np.uint8)
        m = single("QLinearMatMul", {"a": a, "as": np.array(s, np.float32),
                                     "az": np.array(0, np.uint8), "b": a.T.copy(),
                                     "bs": np.array(1, np.float32), "bz": np.array(0, np.uint8),
                                     "ys": np.array(1, np.float32), "yz": np.array(0, np.uint8)},
                   {"y": (np.uint8, (2, 2))},
                   {"as": np.array(s, np.float32), "az": np.array(0, np.uint8),
                    "bs": np.array(1, np.float32), "bz": np.array(0, np.uint8),
                    "ys": np.array(1, np.float32), "yz": np.array(0, np.uint8)})
        with pytest.raises(OnnxccError, match="q0.*a_scale .* must be positive and finite"):
            onnxcc.compile(m, "host")


def test_scale_of_wrong_length_is_refused_by_name():
    x = np.zeros((2, 3), np.float32)
    s = np.ones(5, np.float32)
    m = single("QuantizeLinear", {"x": x, "s": s}, {"y": (np.uint8, x.shape)}, {"s": s}, axis=1)
    with pytest.raises(OnnxccError, match="q0.*scale shape \\[5\\]"):
        onnxcc.compile(m, "host")


@pytest.mark.parametrize("op,s", [("QuantizeLinear", 0.0), ("QuantizeLinear", -0.5),
                                  ("QuantizeLinear", np.inf), ("DequantizeLinear", np.nan)])
def test_constant_scale_out_of_range_is_refused_by_name(op, s):
    x = np.zeros((2, 3), np.float32 if op == "QuantizeLinear" else np.uint8)
    sc_ = np.array(s, np.float32)
    m = single(op, {"x": x, "s": sc_}, {"y": (np.uint8 if op == "QuantizeLinear" else np.float32,
                                              x.shape)}, {"s": sc_})
    with pytest.raises(OnnxccError, match="q0.*scale .* of 's' must be"):
        onnxcc.compile(m, "host")


@pytest.mark.parametrize("shape,kw,rows", [((1, 8, 10, 10), dict(pads=[1, 1, 1, 1]), True),
                                           ((1, 8, 1, 1), {}, False)])
def test_integer_conv_nest_choice(shape, kw, rows):
    """Constant weights and output rows of 8 or more: a row of int32 accumulators per output
    row (the inner loop over contiguous outputs vectorizes); a 1x1 map: one accumulator per
    output. Both equal onnx.reference (checked by the other tests); here the structure."""
    k = 3 if kw else 1
    x = rng.integers(0, 255, shape, endpoint=True).astype(np.uint8)
    w = rng.integers(*W7, (4, shape[1], k, k)).astype(np.int8)
    scales = (np.array(0.02, np.float32), np.array(0.01, np.float32), np.array(0.1, np.float32))
    zps = (np.array(128, np.uint8), np.array(0, np.int8), np.array(0, np.uint8))
    m, feeds = _qlinear_conv(x, w, None, scales, zps, True, False, **kw)
    check(m, feeds, ort_lsb=1, min_equal=0.95)
    cm = onnxcc.compile(m, "host")
    text = kernel_text(next(k for k in cm.program.kernels if k.op == "QLinearConv"))
    assert ("local acc:i32[10]" in text) == rows, text
