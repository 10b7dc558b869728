"""Integer Softmax (TFLite's fixed-point softmax) and integer average pools, on host (C) and cpu
(LLVM): from QDQ models (DequantizeLinear -> op -> QuantizeLinear), from onnxruntime's QOperator
contrib ops (com.microsoft.QLinearAveragePool / QLinearGlobalAveragePool) and from onnxcc's own
quantizer.

Outputs are bit-exact with the numpy references (``onnxcc.ops.quant_int``; for the pools also
with an independent formula here), the C and LLVM builds give identical bytes, and onnxruntime
(which computes these ops in float) is within the stated LSBs."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import onnxcc
from onnxcc.codegen.requantize import quantize_multiplier
from onnxcc.ops.quant_int import (exp_on_negative_values, one_over_one_plus_x, softmax_params,
                                  softmax_rows)

from builders import IR_VERSION, ort_run
from onnxcc.codegen.loops import Const, Loop, walk_stmts

TARGETS = ("host", "cpu")
rng = np.random.default_rng(6)


def qdq_model(op: str, shape, xs, xz, ys, yz, dt=np.int8, opset: int = 21,
              **attrs) -> onnx.ModelProto:
    """x (int8/uint8) -> DequantizeLinear -> ``op`` -> QuantizeLinear -> y, per-tensor
    constant parameters."""
    T = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
    inits = [numpy_helper.from_array(np.array(xs, np.float32), "xs"),
             numpy_helper.from_array(np.array(xz, dt), "xz"),
             numpy_helper.from_array(np.array(ys, np.float32), "ys"),
             numpy_helper.from_array(np.array(yz, dt), "yz")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"], name="dq"),
             helper.make_node(op, ["xf"], ["yf"], name="op", **attrs),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"], name="q")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T, list(shape))],
                          [helper.make_tensor_value_info("y", T, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m


def run_all(model: onnx.ModelProto, feeds: dict, op: str) -> np.ndarray:
    """Compile for host and cpu; the graph must be the single integer ``op``; the two builds
    must agree byte for byte. Returns the host output."""
    outs = []
    for t in TARGETS:
        m = onnxcc.compile(model, t)
        assert [n.op for n in m.graph.nodes] == [op], (t, [n.op for n in m.graph.nodes])
        outs.append(np.asarray(m.run(feeds)["y"]))
    assert outs[0].dtype == outs[1].dtype and outs[0].tobytes() == outs[1].tobytes()
    return outs[0]


def int_input(shape, dt=np.int8) -> np.ndarray:
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max + 1, shape).astype(dt)


# ---- the fixed-point primitives ----------------------------------------------------------------
def test_fixed_point_exp_and_reciprocal_are_accurate():
    """gemmlowp's exp over the whole Q5.26 range [-31, 0] and 1/(1+x) over [0, 1): the error
    bounds of the fixed-point formats (a few units of 2**-31)."""
    a = np.arange(-31 * 2 ** 26, 1, 2 ** 16 + 7, dtype=np.int64)
    err = np.abs(exp_on_negative_values(a) / 2.0 ** 31 - np.exp(a / 2.0 ** 26))
    assert err.max() < 1e-6
    assert exp_on_negative_values(np.array([0]))[0] == 2 ** 31 - 1
    v = np.arange(0, 2 ** 31, 2 ** 18 + 3, dtype=np.int64)
    assert np.abs(one_over_one_plus_x(v) / 2.0 ** 31 - 1 / (1 + v / 2.0 ** 31)).max() < 1e-8


def test_softmax_params_follow_tflite():
    """input scale 0.25: 0.25 * 2**26 = 2**24 = 2**30 * 2**(25 - 31): multiplier 2**30, left
    shift 25, radius floor(31 * 2**26 / 2**25) = 62; a scale whose multiplier is not above 1 is
    refused, as TFLite refuses it."""
    assert softmax_params(0.25) == (1 << 30, 25, -62)
    assert softmax_params(2.0 ** -27) is None


@pytest.mark.parametrize("scale", [0.02, 0.0625, 0.1, 0.3, 0.5])
def test_softmax_reference_is_within_one_lsb_of_float(scale):
    """The integer softmax (output scale 1/256, zero point -128) against round(256 * softmax)
    - 128 in float64: within 1 LSB everywhere, equal on at least 98% of the elements."""
    x = int_input((500, 12))
    m, ls, dmin = softmax_params(np.float32(scale))
    y = softmax_rows(x, m, ls, dmin, 1 << 30, 53, -128, np.dtype(np.int8))
    xf = x.astype(np.float64)
    f = np.exp((xf - xf.max(axis=-1, keepdims=True)) * np.float64(np.float32(scale)))
    f /= f.sum(axis=-1, keepdims=True)
    want = np.clip(np.round(f * 256) - 128, -128, 127)
    d = np.abs(y.astype(np.float64) - want)
    assert d.max() <= 1 and (d == 0).mean() >= 0.98


# ---- Softmax from QDQ ---------------------------------------------------------------------------
SOFTMAX_CASES = [
    # shape, opset, axis, x scale, x zp, y scale, y zp, dtype
    ((4, 10), 21, -1, 0.1, 3, 1 / 256, -128, np.int8),          # TFLite's int8 form
    ((3, 16), 21, -1, 0.5, 0, 1 / 256, -128, np.int8),          # many below diff_min
    ((2, 5, 3), 13, 1, 0.08, -10, 1 / 256, -128, np.int8),      # a middle axis (inner 3)
    ((2, 3, 4), 11, 1, 0.06, 0, 1 / 256, -128, np.int8),        # opset 11: axes 1.. flattened
    ((5, 9), 21, -1, 0.07, 128, 1 / 256, 0, np.uint8),          # TFLite's uint8 form
    ((6, 10), 21, -1, 0.12, -4, 0.0041, -120, np.int8),         # a calibrated output scale
    ((3, 7), 21, -1, 0.2, 120, 1 / 255, 0, np.uint8),
    ((5, 1), 21, -1, 0.1, 0, 1 / 256, -128, np.int8),           # rows of one: probability 1
    ((12,), 21, 0, 0.25, 0, 1 / 256, -128, np.int8),            # rank 1
]


@pytest.mark.parametrize("case", SOFTMAX_CASES, ids=lambda c: f"{c[0]}-op{c[1]}-{c[7].__name__}")
def test_qdq_softmax(case):
    shape, opset, axis, xs, xz, ys, yz, dt = case
    attrs = {"axis": axis}
    model = qdq_model("Softmax", shape, xs, xz, ys, yz, dt, opset, **attrs)
    x = int_input(shape, dt)
    got = run_all(model, {"x": x}, "onnxcc.QSoftmax")
    # the numpy reference over rows of the softmax's axes
    a = axis % len(shape)
    if opset < 13:
        rows = x.reshape(math.prod(shape[:a]), -1)
    else:
        rows = np.moveaxis(x, a, -1).reshape(-1, shape[a])
    m, ls, dmin = softmax_params(np.float32(xs))
    om, osh = quantize_multiplier(float(np.float32(2.0 ** -31 / np.float32(ys))))
    want = softmax_rows(rows, m, ls, dmin, om, osh, yz, np.dtype(dt))
    want = want.reshape(shape) if opset < 13 else np.moveaxis(
        want.reshape(tuple(np.delete(shape, a)) + (shape[a],)), -1, a)
    np.testing.assert_array_equal(got, want)
    # onnxruntime's QLinearSoftmax (a float exp table) is within 1 LSB; the integer kernel is
    # within 1 LSB of the exactly rounded float64 softmax and equal on most elements (on these
    # inputs onnxruntime is off by one on up to 15% of them where y_scale is not 1/256)
    ort = ort_run(model, {"x": x})["y"]
    assert np.abs(got.astype(np.int64) - ort.astype(np.int64)).max() <= 1
    xf = rows.astype(np.float64)
    f = np.exp((xf - xf.max(axis=-1, keepdims=True)) * np.float64(np.float32(xs)))
    f /= f.sum(axis=-1, keepdims=True)
    lo, hi = np.iinfo(dt).min, np.iinfo(dt).max
    exact = np.clip(np.round(f / np.float64(np.float32(ys))) + yz, lo, hi)
    d = np.abs(softmax_rows(rows, m, ls, dmin, om, osh, yz, np.dtype(dt)) - exact)
    assert d.max() <= 1 and (d == 0).mean() >= 0.95, (d.max(), (d == 0).mean())


@pytest.mark.parametrize("case", SOFTMAX_CASES[:3] + SOFTMAX_CASES[4:6],
                         ids=lambda c: f"{c[0]}-{c[7].__name__}")
def test_size_mode_softmax_gives_the_speed_mode_bytes(case):
    """In size mode the sum and output passes are one loop run twice (the exp emitted once);
    host and cpu size-mode builds give the speed-mode build's bytes."""
    shape, opset, axis, xs, xz, ys, yz, dt = case
    model = qdq_model("Softmax", shape, xs, xz, ys, yz, dt, opset, axis=axis)
    x = int_input(shape, dt)
    want = run_all(model, {"x": x}, "onnxcc.QSoftmax")
    for t in TARGETS:
        cm = onnxcc.compile(model, t, optimize="size")
        assert [n.op for n in cm.graph.nodes] == ["onnxcc.QSoftmax"]
        text = "\n".join(k.comment or "" for k in cm.program.kernels)
        assert any(isinstance(s, Loop) and s.var.name == "pass"
                   for k in cm.program.kernels for s in walk_stmts(k.body)), text
        got = np.asarray(cm.run({"x": x})["y"])
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), t


def test_qdq_softmax_long_equal_rows():
    """Rows of 1000 equal values sum to about 2**29 in Q12.19: the output shift goes past 31
    (33), where the exact rounding gives 0 probability units; C, LLVM and the reference agree,
    and a row with one value 10 above 999 others gets its 0.957 (245/256)."""
    x = np.zeros((2, 1000), np.int8)
    x[1, 17] = 100
    model = qdq_model("Softmax", x.shape, 0.1, 0, 1 / 256, -128)
    got = run_all(model, {"x": x}, "onnxcc.QSoftmax")
    m, ls, dmin = softmax_params(np.float32(0.1))
    np.testing.assert_array_equal(got, softmax_rows(x, m, ls, dmin, 1 << 30, 53, -128,
                                                    np.dtype(np.int8)))
    top = 256 / (1 + 999 * np.exp(-100 * np.float64(np.float32(0.1)))) - 128     # 116.9
    assert (got[0] == -128).all() and got[1, 17] == round(top) and (got[1, :17] == -128).all()
    ort = ort_run(model, {"x": x})["y"]
    assert np.abs(got.astype(np.int64) - ort.astype(np.int64)).max() <= 1


def test_qdq_softmax_tiny_input_scale_stays_float():
    """x_scale * 2**26 <= 1 is outside TFLite's integer softmax: the Softmax stays float."""
    model = qdq_model("Softmax", (2, 4), 1e-9, 0, 1 / 256, -128)
    ops = [n.op for n in onnxcc.compile(model, "host").graph.nodes]
    assert "Softmax" in ops and "onnxcc.QSoftmax" not in ops


# ---- average pools ------------------------------------------------------------------------------
def pool_want(x, xs, xz, ys, yz, kernel, strides, pads, include, dt) -> np.ndarray:
    """An independent 2-D formula: windows by index arithmetic, round_half_even(sum(x) / c) for
    equal parameters (padding not counted), else round_half_even(sum(x - xz) * m_c) + yz with
    m_c = float32(float32(xs / ys) / c) (float64 holds the product exactly)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (pt, pl, pbm, pr) = kernel, strides, pads
    OH = (H + pt + pbm - kh) // sh + 1
    OW = (W + pl + pr - kw) // sw + 1
    lo, hi = np.iinfo(dt).min, np.iinfo(dt).max
    tfl = np.float32(xs) == np.float32(ys) and xz == yz and not include
    y = np.zeros((N, C, OH, OW), np.int64)
    for i in range(OH):
        for j in range(OW):
            r0, c0 = i * sh - pt, j * sw - pl
            rs = [r for r in range(r0, r0 + kh) if 0 <= r < H]
            cs = [c for c in range(c0, c0 + kw) if 0 <= c < W]
            win = x[:, :, rs][:, :, :, cs].astype(np.int64)
            cnt = kh * kw if include else len(rs) * len(cs)
            if tfl:
                acc = win.sum(axis=(2, 3))
                y[:, :, i, j] = np.rint(acc / cnt).astype(np.int64)   # float64: exact ties
            else:
                acc = (win - xz).sum(axis=(2, 3))
                mc = np.float32(np.float32(np.float32(xs) / np.float32(ys)) / np.float32(cnt))
                y[:, :, i, j] = np.rint(acc * np.float64(mc)).astype(np.int64) + yz
    return np.clip(y, lo, hi).astype(dt)


POOL_CASES = [
    # x shape, kernel, strides, pads, count_include_pad, xs, xz, ys, yz, dtype
    ((1, 3, 7, 7), (3, 3), (2, 2), (1, 1, 1, 1), 0, 0.05, 2, 0.05, 2, np.int8),   # TFLite form
    ((2, 4, 6, 5), (2, 2), (2, 2), (0, 0, 0, 0), 0, 0.02, 128, 0.02, 128, np.uint8),
    ((1, 3, 7, 7), (3, 3), (1, 1), (1, 1, 1, 1), 0, 0.05, 2, 0.03, -7, np.int8),  # requantized
    ((1, 2, 6, 6), (3, 3), (2, 2), (1, 1, 1, 1), 1, 0.04, -3, 0.04, -3, np.int8),  # pads counted
    ((1, 2, 9, 8), (4, 3), (3, 2), (0, 1, 2, 1), 0, 0.1, 10, 0.07, 100, np.uint8),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[0]}-k{c[1]}-inc{c[4]}")
def test_qdq_average_pool(case):
    shape, k, s, p, inc, xs, xz, ys, yz, dt = case
    model = qdq_model("AveragePool", shape, xs, xz, ys, yz, dt, kernel_shape=list(k),
                      strides=list(s), pads=list(p), count_include_pad=inc)
    x = int_input(shape, dt)
    got = run_all(model, {"x": x}, "com.microsoft.QLinearAveragePool")
    np.testing.assert_array_equal(got, pool_want(x, xs, xz, ys, yz, k, s, p, inc, dt))
    ort = ort_run(model, {"x": x})["y"]
    assert np.abs(got.astype(np.int64) - ort.astype(np.int64)).max() <= 1



@pytest.mark.parametrize("dt,zp", [(np.uint8, 133), (np.int8, -5)])
def test_qdq_average_pool_rounds_before_the_odd_zero_point(dt, zp):
    """Q(AveragePool(DQ(x))) with equal parameters and an odd zero point: QuantizeLinear rounds
    the mean of (x - zp) half to even, then adds zp, so every tie lands where the spec puts it
    (found by a QDQ fuzz: rounding after the zero point, as onnxruntime's QLinearAveragePool
    does, moved 1 in 4 outputs of 2x2 windows by 1)."""
    model = qdq_model("AveragePool", (1, 4, 8, 8), 0.02, zp, 0.02, zp, dt,
                      kernel_shape=[2, 2], strides=[2, 2])
    x = int_input((1, 4, 8, 8), dt)
    got = run_all(model, {"x": x}, "com.microsoft.QLinearAveragePool")
    s = (x.astype(np.int64) - zp).reshape(1, 4, 4, 2, 4, 2).sum(axis=(3, 5))
    assert (s % 4 == 2).sum() > 0                       # ties are there to round
    np.testing.assert_array_equal(got.astype(np.int64), np.rint(s / 4).astype(np.int64) + zp)

@pytest.mark.parametrize("dt,zp", [(np.uint8, 3), (np.int8, -5), (np.int8, -128)])
def test_average_pool_ties_round_as_onnxruntime(dt, zp):
    """com.microsoft.QLinearAveragePool with equal parameters on 2x2 windows with padding (counts
    1, 2 and 4: ties on a third of the outputs): the integer mean rounds half to even as
    onnxruntime's kernel (nearbyint(mean / y_scale + y_zero_point)) does, so the two agree on
    >= 93% of the outputs and within 1 on all (onnxruntime's float32 sum moves some ties;
    TFLite's half away from zero agreed on 82-86%), and C and LLVM equal the reference."""
    shape = (1, 8, 12, 12)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
             numpy_helper.from_array(np.array(zp, dt), "xz"),
             numpy_helper.from_array(np.array(0.02, np.float32), "ys"),
             numpy_helper.from_array(np.array(zp, dt), "yz")]
    node = helper.make_node("QLinearAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"],
                            domain="com.microsoft", kernel_shape=[2, 2], pads=[1, 1, 1, 1])
    tp = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
    g = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", tp, shape)],
                          [helper.make_tensor_value_info("y", tp, (1, 8, 13, 13))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = IR_VERSION
    x = int_input(shape, dt)
    got = run_all(m, {"x": x}, "com.microsoft.QLinearAveragePool")
    np.testing.assert_array_equal(got, pool_want(x, 0.02, zp, 0.02, zp, (2, 2), (1, 1),
                                                 (1, 1, 1, 1), 0, dt))
    d = np.abs(got.astype(np.int64) - ort_run(m, {"x": x})["y"].astype(np.int64))
    assert d.max() <= 1 and (d == 0).mean() >= 0.93, (d == 0).mean()


@pytest.mark.parametrize("case", [
    ((1, 2, 11), {"kernel_shape": [3], "strides": [2]}, (0.05, 2, 0.05, 2)),
    ((1, 2, 4, 5, 6), {"kernel_shape": [2, 2, 2], "pads": [1, 0, 1, 1, 1, 0]},
     (0.05, 2, 0.04, 9)),
    ((1, 3, 10, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "dilations": [2, 2],
                     "ceil_mode": 1, "pads": [1, 1, 1, 1]}, (0.05, 2, 0.05, 2)),
    ((1, 3, 10, 9), {"kernel_shape": [3, 3], "strides": [2, 2], "dilations": [2, 1],
                     "ceil_mode": 1, "pads": [2, 1, 0, 1]}, (0.05, -2, 0.06, 3)),
], ids=["1d", "3d", "dilated-ceil", "dilated-ceil-requantized"])
def test_qdq_average_pool_any_rank_dilated_ceil(case):
    """1 to 3 spatial axes, dilations and ceil_mode (AveragePool-19): the C and LLVM builds give
    the numpy reference's values (onnxcc's interpreter on the fused graph), and onnxruntime's
    float DequantizeLinear -> AveragePool -> QuantizeLinear within 1 LSB (graph optimizations
    off: onnxruntime 1.31 fuses a dilated AveragePool into a QLinearAveragePool that then
    refuses the dilations attribute)."""
    import onnxruntime as ort

    from onnxcc.interpreter import interpret

    shape, attrs, ps = case
    model = qdq_model("AveragePool", shape, *ps, opset=19, **attrs)
    x = int_input(shape)
    got = run_all(model, {"x": x}, "com.microsoft.QLinearAveragePool")
    np.testing.assert_array_equal(got, interpret(onnxcc.compile(model, "host").graph,
                                                 {"x": x})["y"])
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= 1


@pytest.mark.parametrize("params", [(0.05, 2, 0.05, 2, np.int8), (0.05, 2, 0.03, -5, np.int8),
                                    (0.02, 128, 0.011, 120, np.uint8)])
def test_qdq_global_average_pool(params):
    xs, xz, ys, yz, dt = params
    shape = (2, 5, 6, 7)
    model = qdq_model("GlobalAveragePool", shape, xs, xz, ys, yz, dt)
    x = int_input(shape, dt)
    got = run_all(model, {"x": x}, "com.microsoft.QLinearGlobalAveragePool")
    want = pool_want(x, xs, xz, ys, yz, (6, 7), (1, 1), (0, 0, 0, 0), 0, dt)
    np.testing.assert_array_equal(got, want)
    ort = ort_run(model, {"x": x})["y"]
    assert np.abs(got.astype(np.int64) - ort.astype(np.int64)).max() <= 1


@pytest.mark.parametrize("op", ["QLinearAveragePool", "QLinearGlobalAveragePool"])
def test_qoperator_pools_import(op):
    """onnxruntime's contrib pools (as its QOperator quantizer writes them) compile and agree
    with onnxruntime within 1 LSB."""
    dt = np.uint8
    x = int_input((1, 4, 8, 8), dt)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]} if op == "QLinearAveragePool" else {}
    inits = [numpy_helper.from_array(np.array(0.03, np.float32), "xs"),
             numpy_helper.from_array(np.array(120, dt), "xz"),
             numpy_helper.from_array(np.array(0.025, np.float32), "ys"),
             numpy_helper.from_array(np.array(110, dt), "yz")]
    node = helper.make_node(op, ["x", "xs", "xz", "ys", "yz"], ["y"], name="p",
                            domain="com.microsoft", **attrs)
    T = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", T, list(x.shape))],
                          [helper.make_tensor_value_info("y", T, None)], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21),
                                                helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = IR_VERSION
    got = run_all(model, {"x": x}, f"com.microsoft.{op}")
    kernel = (2, 2) if op == "QLinearAveragePool" else (8, 8)
    np.testing.assert_array_equal(got, pool_want(x, 0.03, 120, 0.025, 110, kernel, kernel,
                                                 (0, 0, 0, 0), 0, dt))
    ort = ort_run(model, {"x": x})["y"]
    assert np.abs(got.astype(np.int64) - ort.astype(np.int64)).max() <= 1


# ---- onnxcc's own quantizer ---------------------------------------------------------------------
def float_classifier() -> onnx.ModelProto:
    """Conv 3x3 -> Relu -> AveragePool 2x2 -> Conv 1x1 -> GlobalAveragePool -> Flatten -> Gemm
    -> Softmax, float32, seeded weights."""
    r = np.random.default_rng(1)
    w1 = (r.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    w2 = (r.standard_normal((16, 8, 1, 1)) * 0.3).astype(np.float32)
    wg = (r.standard_normal((10, 16)) * 0.5).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(wg, "wg"),
             numpy_helper.from_array(np.zeros(10, np.float32) + 0.1, "bg")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("AveragePool", ["r1"], ["p1"], kernel_shape=[2, 2],
                              strides=[2, 2], name="pool"),
             helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2"),
             helper.make_node("GlobalAveragePool", ["c2"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "wg", "bg"], ["logits"], transB=1, name="fc"),
             helper.make_node("Softmax", ["logits"], ["prob"], axis=-1, name="softmax")]
    g = helper.make_graph(nodes, "cls", [helper.make_tensor_value_info("x", 1, [1, 3, 12, 12])],
                          [helper.make_tensor_value_info("prob", 1, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = IR_VERSION
    return m


def test_quantizer_makes_integer_softmax_and_pools():
    model = float_classifier()
    r = np.random.default_rng(2)
    calib = [{"x": r.standard_normal((1, 3, 12, 12)).astype(np.float32)} for _ in range(16)]
    q = onnxcc.Int8(calibration=calib)
    outs = []
    for t in TARGETS:
        m = onnxcc.compile(model, t, quantize=q)
        ops = [n.op for n in m.graph.nodes]
        for op in ("onnxcc.QSoftmax", "com.microsoft.QLinearAveragePool",
                   "com.microsoft.QLinearGlobalAveragePool"):
            assert op in ops, (t, ops)
        assert "Softmax" not in ops and "AveragePool" not in ops
        outs.append([m.run(s)["prob"] for s in calib])
    for a, b in zip(*outs):
        assert a.tobytes() == b.tobytes()
    want = [ort_run(model, s)["prob"] for s in calib]
    err = max(np.abs(a - w).max() for a, w in zip(outs[0], want))
    assert err < 0.05, err          # int8 throughout, output steps of 1/256
    assert sum(int(a.argmax() == w.argmax()) for a, w in zip(outs[0], want)) >= 14


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_classifier_quantized_by_onnxruntime(tmp_path, fmt):
    """The classifier quantized by onnxruntime's quantize_static (QDQ: int8, calibrated
    Softmax output; QOperator: uint8, QLinearAveragePool, QLinearGlobalAveragePool and
    QLinearSoftmax): every op becomes an integer kernel, and the outputs agree with
    onnxruntime's within 1 LSB, in argmax on every sample."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    r = np.random.default_rng(3)
    xs = [r.standard_normal((1, 3, 12, 12)).astype(np.float32) for _ in range(40)]
    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(float_classifier(), str(src))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x} for x in xs[:20]])

        def get_next(self):
            return next(self.it, None)

    qdq = fmt == "QDQ"
    quantize_static(str(src), str(dst), Reader(),
                    quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
                    per_channel=qdq, activation_type=QuantType.QInt8 if qdq else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, reduce_range=True)   # 7-bit weights (W7)
    qm = onnx.load(str(dst))
    if not qdq:
        assert {"QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearSoftmax"} <= {
            n.op_type for n in qm.graph.node}
    want = [ort_run(qm, {"x": x})["prob"] for x in xs]
    step = float(numpy_helper.to_array(next(
        i for i in qm.graph.initializer if i.name.startswith("prob") and "scale" in i.name)))
    outs = []
    for t in TARGETS:
        cm = onnxcc.compile(qm, t)
        ops = {n.op for n in cm.graph.nodes}
        assert {"onnxcc.QSoftmax", "com.microsoft.QLinearAveragePool",
                "com.microsoft.QLinearGlobalAveragePool"} <= ops, (t, ops)
        assert not {"Softmax", "AveragePool", "GlobalAveragePool"} & ops
        got = [cm.run({"x": x})["prob"] for x in xs]
        for g, w in zip(got, want):
            assert np.abs(g - w).max() <= step * 1.001, (t, np.abs(g - w).max() / step)
            assert g.argmax() == w.argmax()
        outs.append(got)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(*outs))


# ---- the microcontroller build ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                    or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
@pytest.mark.parametrize("op", ["Softmax", "AveragePool", "GlobalAveragePool"])
def test_cortex_m4_firmware_gives_the_host_bytes(op):
    """The cortex-m4 library (arm-none-eabi-gcc, run on QEMU mps2-an386) gives the host build's
    bytes for each integer kernel."""
    from onnxcc.runtime import qemu

    if op == "Softmax":
        shape, attrs, ps = (3, 20), {"axis": -1}, (0.15, 5, 1 / 256, -128)
    elif op == "AveragePool":
        shape, attrs, ps = (1, 3, 7, 7), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                          "strides": [2, 2]}, (0.05, 2, 0.04, -3)
    else:
        shape, attrs, ps = (1, 6, 5, 5), {}, (0.05, 2, 0.05, 2)
    model = qdq_model(op, shape, *ps, **attrs)
    x = int_input(shape)
    cm = onnxcc.compile(model, "cortex-m4")
    assert len(cm.graph.nodes) == 1 and cm.graph.nodes[0].op != op
    got = np.asarray(qemu.run_on_qemu(cm, {"x": x})["y"])
    want = np.asarray(onnxcc.compile(model, "host").run({"x": x})["y"])
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


@pytest.mark.slow
@pytest.mark.parametrize("op", ["Softmax", "AveragePool"])
def test_kernels_clean_under_sanitizers_and_warning_free(op):
    """Host builds under -fsanitize=address,undefined give the plain build's bytes (no signed
    overflow, no shift out of range); the library compiles with -Werror under gcc and clang."""
    import subprocess

    from onnxcc.runtime.build import WARN_FLAGS

    if op == "Softmax":      # rows with diffs below diff_min, and a row of 600 equal values
        shape, attrs, ps = (4, 600), {"axis": -1}, (0.4, 0, 0.0037, -128)
    else:                    # requantized, pads counted
        shape, attrs, ps = (1, 3, 9, 9), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                          "count_include_pad": 1}, (0.05, 2, 0.03, -3)
    model = qdq_model(op, shape, *ps, **attrs)
    x = int_input(shape)
    if op == "Softmax":
        x[3] = 7
    cm = onnxcc.compile(model, "host")
    plain = cm.run({"x": x})["y"]
    assert cm.run({"x": x}, sanitize=True)["y"].tobytes() == plain.tobytes()
    m = cm.mmap["c_prefix"]
    for cc in ("gcc", "clang"):
        if shutil.which(cc):
            subprocess.run([cc, *WARN_FLAGS, "-O2", f"-I{cm.lib_dir}", "-c",
                            str(cm.lib_dir / f"{m}.c"), "-o", "/dev/null"], check=True)


# ---- size mode's compact softmax ----------------------------------------------------------------
# the SOFTMAX_CASES plus the forms size mode treats apart: an output scale whose shift is below
# 33 (the int64 rounding shift), one so large its multiplier is 0, rows of 4095 equal values
# (the largest sum: no doubling), a row of one (the reciprocal saturates to INT32_MAX)
SIZE_CASES = SOFTMAX_CASES + [
    ((3, 11), 21, -1, 0.1, 0, 1e-9, 0, np.int8),                # out_shift 32
    ((2, 6), 21, -1, 0.1, 0, 4.0, 3, np.int8),                  # out multiplier 0
    ((2, 4095), 21, -1, 0.05, 0, 1 / 256, -128, np.int8),       # the longest rows
    ((1, 1), 21, -1, 0.1, 0, 1 / 256, -128, np.int8),
]


def _size_reference(case, x):
    shape, opset, axis, xs, xz, ys, yz, dt = case
    a = axis % len(shape)
    rows = x.reshape(math.prod(shape[:a]), -1) if opset < 13 else \
        np.moveaxis(x, a, -1).reshape(-1, shape[a])
    m, ls, dmin = softmax_params(np.float32(xs))
    om, osh = quantize_multiplier(float(np.float32(2.0 ** -31 / np.float32(ys))))
    want = softmax_rows(rows, m, ls, dmin, om, osh, yz, np.dtype(dt))
    return want.reshape(shape) if opset < 13 else np.moveaxis(
        want.reshape(tuple(np.delete(shape, a)) + (shape[a],)), -1, a)


@pytest.mark.parametrize("optimize", ["size", "speed"])
@pytest.mark.parametrize("case", SIZE_CASES, ids=lambda c: f"{c[0]}-ys{c[5]:.3g}-{c[7].__name__}")
def test_softmax_forms_bit_exact(case, optimize):
    """Size mode's compact kernel (the srdhm intrinsic, loops over the exp's barrel and the
    Newton steps) and both modes' int32 shortcuts (the normalization, the unsaturated Newton
    steps, the SMMLA rounding shift) equal the numpy reference on host (C, also under
    -fsanitize=address,undefined: no overflow, no shift out of range) and cpu (LLVM), and in
    the loop-IR interpreter."""
    shape, opset, axis, xs, xz, ys, yz, dt = case
    model = qdq_model("Softmax", shape, xs, xz, ys, yz, dt, opset, axis=axis)
    x = int_input(shape, dt)
    if shape == (2, 4095):
        x[:] = 5
    want = _size_reference(case, x)
    from onnxcc.codegen.interpret import run_program

    for t in TARGETS:
        cm = onnxcc.compile(model, t, optimize=optimize)
        assert [n.op for n in cm.graph.nodes] == ["onnxcc.QSoftmax"]
        np.testing.assert_array_equal(cm.run({"x": x})["y"], want, err_msg=t)
        if t == "host":
            np.testing.assert_array_equal(cm.run({"x": x}, sanitize=True)["y"], want)
            assert _calls(cm.program.kernels[0].body, "srdhm") == (11 if optimize == "size"
                                                                   else 0)
            if x.size <= 200:   # the loop-IR interpreter (slow: small cases)
                (got,) = run_program(cm.program, [x])
                np.testing.assert_array_equal(got.reshape(shape), want)


def _calls(body, fn: str) -> int:
    """How many ``Call``s of intrinsic ``fn`` the statements ``body`` hold."""
    from onnxcc.codegen.loops import Call, stmt_exprs, walk_exprs

    return sum(isinstance(e, Call) and e.fn == fn for s in walk_stmts(body)
               for x in stmt_exprs(s) for e in walk_exprs(x))


def test_size_mode_softmax_is_one_srdhm_function():
    """Size mode's softmax calls one out-of-line SaturatingRoundingDoublingHighMul (``srdhm``,
    ONNXCC_NOINLINE in the C file) instead of ~20 inline int64 products, and no int64 is left
    in the kernel; the exp's barrel shifter is a loop over the 7 EXP_BARREL multipliers (a
    weight) and the Newton steps a loop of 3, with one and two srdhm. Speed mode keeps the
    inline form."""
    from onnxcc.ops.quant_int import EXP_BARREL

    model = qdq_model("Softmax", (1, 10), 0.1, 0, 1 / 256, -128)
    cm = onnxcc.compile(model, "cortex-m4", name="sm", optimize="size")
    (k,) = cm.program.kernels
    assert _calls(k.body, "srdhm") == 11 and _calls(k.body, "smmla") == 1
    loops = [s for s in walk_stmts(k.body) if isinstance(s, Loop)
             and isinstance(s.stop, Const) and isinstance(s.start, Const)]
    trips = {s.stop.value - s.start.value: _calls([s], "srdhm") for s in loops}
    assert trips[7] == 1 and trips[3] == 2 and trips[11] == 0, trips   # barrel, Newton, clz
    (tab,) = [b for b in k.inputs if b.space == "weight"]
    assert tab.data.tolist() == list(EXP_BARREL)
    text = (cm.lib_dir / "sm.c").read_text()
    assert text.count("static ONNXCC_NOINLINE int32_t onnxcc_srdhm(") == 1
    body = text.split("_qsoftmax(", 1)[1].split("\n}\n", 1)[0]
    assert body.count("onnxcc_srdhm(") == 11 and "int64_t" not in body
    fast = onnxcc.compile(model, "cortex-m4", name="sm")
    assert _calls(fast.program.kernels[0].body, "srdhm") == 0
    assert "onnxcc_srdhm" not in (fast.lib_dir / "sm.c").read_text()


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
def test_size_mode_softmax_code_bytes():
    """The size-mode softmax's bytes on the Cortex-M4 at -Os (arm-none-eabi-nm -S): measured
    370 for the kernel and 28 for the srdhm function (1,036 before, the int64 products inline);
    the speed-mode kernel, inline and unrolled, 956 at -Os (1,356 before the int32
    shortcuts)."""
    import subprocess
    import tempfile
    from pathlib import Path

    from onnxcc.runtime.build import CORTEX_M4_FLAGS

    def sizes(cm) -> dict[str, int]:
        with tempfile.TemporaryDirectory() as td:
            obj = Path(td) / "m.o"
            subprocess.run(["arm-none-eabi-gcc", "-Os", *CORTEX_M4_FLAGS, f"-I{cm.lib_dir}",
                            "-c", str(cm.lib_dir / "sm.c"), "-o", str(obj)], check=True)
            out = subprocess.run(["arm-none-eabi-nm", "-S", str(obj)], check=True,
                                 capture_output=True, text=True).stdout
        return {ln.split()[3]: int(ln.split()[1], 16) for ln in out.splitlines()
                if len(ln.split()) == 4}

    model = qdq_model("Softmax", (1, 10), 0.1, 0, 1 / 256, -128)
    small = sizes(onnxcc.compile(model, "cortex-m4", name="sm", optimize="size"))
    fast = sizes(onnxcc.compile(model, "cortex-m4", name="sm"))
    kern = next(v for k, v in small.items() if k.endswith("_qsoftmax"))
    assert kern + small["onnxcc_srdhm"] < 480, small
    assert 2 * kern < next(v for k, v in fast.items() if k.endswith("_qsoftmax")) < 1_100, fast


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None
                    or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus"])
def test_size_mode_softmax_on_qemu(target):
    """The size-mode softmax on the emulated Cortex-M4 (SMMLA in the smmla helper) and
    Cortex-M0+ (no DSP: the 64-bit C forms) equals the interpreter and the reference."""
    from onnxcc.interpreter import interpret
    from onnxcc.runtime import qemu

    case = ((4, 10), 21, -1, 0.1, 3, 1 / 256, -128, np.int8)
    model = qdq_model("Softmax", *case[:1], *case[3:8])
    x = int_input((4, 10))
    x[3] = 9
    cm = onnxcc.compile(model, target, optimize="size")
    got = np.asarray(qemu.run_on_qemu(cm, {"x": x}, timeout=60)["y"])
    np.testing.assert_array_equal(got, interpret(cm.graph, {"x": x})["y"])
    np.testing.assert_array_equal(got, _size_reference(case, x))


def test_size_mode_softmax_drops_only_impossible_cases():
    """The facts the compact kernel rests on, over the reference's own arithmetic: every
    RoundingDivideByPOT it shortens has a non-negative operand (exhaustively: the exp's
    polynomial depends only on the 2**24 values of a mod 2**24), and the Newton steps of the
    reciprocal never saturate (a sample of the 2**30 half sums, with both ends; all of them
    were checked once: |t| <= 14,861,479, the iterate in [535,013,226, 2**30])."""
    def srdhm(a, b):   # no INT32_MIN * INT32_MIN among these operands
        return (a * b + (1 << 30)) >> 31

    amq = np.arange(-(1 << 24), 0, dtype=np.int64)
    x = amq * 32 + (1 << 28)
    x2 = srdhm(x, x)
    x3, x4 = srdhm(x2, x), srdhm(x2, x2)
    assert x4.min() >= 0
    q = (x4 >> 2) + ((x4 & 3) > 1)
    y = srdhm(q + x3, 715827883) + x2
    assert y.min() >= 0 and y.max() < (1 << 31) - 1
    r = 1895147668 + srdhm(1895147668, x + ((y >> 1) + (y & 1)))
    assert r.min() > 0     # and the barrel multiplies it by positive constants
    half = np.concatenate([np.arange(1 << 30, 1 << 31, 4093, dtype=np.int64),
                           np.array([(1 << 30) + 1, (1 << 31) - 1], np.int64)])
    xn = 1515870810 + srdhm(half, -1010580540)
    for _ in range(3):
        t = srdhm(xn, (1 << 29) - srdhm(half, xn))
        assert np.abs(t).max() <= 14_861_479
        xn = xn + 4 * t
        assert xn.min() >= 535_013_226 and xn.max() <= 1 << 30
    assert xn[0] == 1 << 30      # half = 1/2: 1 / (1 + 0) saturates to INT32_MAX


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ONNXCC_EXHAUSTIVE") != "1",
                    reason="40-70 s of numpy, over the suite's time budget: the test above "
                    "samples every 4,093rd half sum; ONNXCC_EXHAUSTIVE=1 runs all 2**30 "
                    "(passed 2026-12-07)")
def test_newton_steps_never_saturate_over_every_half_sum():
    """The check behind size mode's unsaturated Newton steps, over all 2**30 half sums
    [2**30, 2**31) (about a minute): |t| <= 14,861,479 (far below the 2**29 where the
    multiplication by 4 saturates) and the iterate stays in [535,013,226, 2**30]."""
    tmax, lo, hi = 0, 1 << 31, 0
    chunk = 1 << 24
    for start in range(1 << 30, 1 << 31, chunk):
        half = np.arange(start, start + chunk, dtype=np.int64)
        x = 1515870810 + ((half * -1010580540 + (1 << 30)) >> 31)
        for _ in range(3):
            u = (half * x + (1 << 30)) >> 31
            t = (x * ((1 << 29) - u) + (1 << 30)) >> 31
            tmax = max(tmax, int(np.abs(t).max()))
            x += 4 * t
            lo, hi = min(lo, int(x.min())), max(hi, int(x.max()))
    assert (tmax, lo, hi) == (14_861_479, 535_013_226, 1 << 30)
