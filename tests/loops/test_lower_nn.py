"""Conv, FusedConv, ConvTranspose and the pools lowered to the loop IR: verified, run in the numpy
interpreter and as C (gcc; clang for a few), compared with onnxruntime."""

import numpy as np
import pytest
from onnx import TensorProto

from builders import make_model, ort_run
from loopir import program_of, run_c, run_interp
from onnxcc.codegen.loops import program_text


def _check(m, feeds, rtol=1e-5, atol=1e-5, cc="gcc", interp=True):
    """Program of ``m`` (verified) run by the interpreter and by C vs onnxruntime; returns it."""
    p = program_of(m)
    want = ort_run(m, feeds)
    xs = list(feeds.values())
    names = [o.name for o in m.graph.output]
    runs = ([run_interp(p, xs)] if interp else []) + [run_c(p, xs, cc)]
    for got in runs:
        for name, g in zip(names, got):
            assert g.shape == want[name].shape
            if g.dtype.kind == "f":
                np.testing.assert_allclose(g, want[name], rtol=rtol, atol=atol, err_msg=name)
            else:
                np.testing.assert_array_equal(g, want[name], err_msg=name)
    return p


CONV_CASES = [   # x shape, w shape, attrs
    ((1, 3, 7, 6), (4, 3, 3, 3), {}),
    ((1, 3, 7, 6), (4, 3, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((2, 2, 8, 7), (3, 2, 3, 2), dict(pads=[1, 0, 2, 1], strides=[2, 3])),
    ((1, 2, 9, 9), (2, 2, 3, 3), dict(dilations=[2, 3], pads=[2, 1, 0, 3])),
    ((1, 4, 6, 6), (6, 2, 3, 3), dict(group=2, pads=[1, 1, 1, 1])),
    ((1, 4, 6, 5), (4, 1, 3, 3), dict(group=4, pads=[1, 1, 1, 1], strides=[2, 2])),   # depthwise
    ((1, 3, 7, 6), (4, 3, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    ((1, 3, 7, 6), (4, 3, 2, 2), dict(auto_pad="SAME_LOWER")),
    ((1, 3, 7, 6), (4, 3, 3, 3), dict(auto_pad="VALID", strides=[1, 2])),
    ((1, 3, 5, 5), (2, 3, 1, 1), {}),                                                 # pointwise
    ((1, 2, 3, 3), (2, 2, 5, 5), dict(pads=[2, 2, 2, 2])),   # kernel larger than x: no interior
    ((1, 1, 3, 1), (2, 1, 1, 1), dict(pads=[1, 0, 1, 0], strides=[2, 3])),   # extent-1 axes
    ((2, 3, 11), (4, 3, 3), dict(pads=[1, 2], strides=[2])),                        # 1-D
    ((1, 2, 12), (2, 1, 5), dict(group=2, auto_pad="SAME_UPPER")),
    ((1, 2, 12), (2, 1, 3), dict(group=2, dilations=[3], pads=[3, 2])),
    ((1, 2, 4, 5, 4), (3, 2, 3, 2, 3), dict(pads=[1, 0, 1, 1, 1, 0])),                  # 3-D
    ((1, 2, 5, 6, 4), (2, 1, 2, 3, 3), dict(group=2, strides=[2, 1, 2], dilations=[1, 2, 1])),
]


@pytest.mark.parametrize("xs,ws,attrs", CONV_CASES,
                         ids=[f"conv{k}" for k in range(len(CONV_CASES))])
def test_conv_matches_onnxruntime(rng, xs, ws, attrs):
    w = rng.standard_normal(ws, dtype=np.float32)
    b = rng.standard_normal(ws[0], dtype=np.float32)
    m = make_model([("Conv", ["x", "w", "b"], ["y"], attrs)], inputs={"x": xs}, outputs={"y": None},
                   inits={"w": w, "b": b})
    p = _check(m, {"x": rng.standard_normal(xs, dtype=np.float32)})
    assert [k.op for k in p.kernels] == ["Conv"]


def test_conv_is_tap_stationary_with_per_tap_ranges_and_no_guard(rng):
    """Conv without bias: y = 0, then per tap the output positions whose input lies inside x
    (min/max bounds of the tap), with no masked load anywhere; verify proves it tap by tap."""
    w = rng.standard_normal((2, 3, 3, 3), dtype=np.float32)
    m = make_model([("Conv", ["x", "w"], ["y"], dict(pads=[1, 1, 1, 1]))],
                   inputs={"x": (1, 3, 6, 6)}, outputs={"y": None}, inits={"w": w})
    p = _check(m, {"x": rng.standard_normal((1, 3, 6, 6), dtype=np.float32)}, cc="clang")
    text = program_text(p)
    assert "y[0, mm, oh, ow] = 0.0:f32" in text
    assert "for oh in max(((kh * -1) + 1), 0)..min(((kh * -1) + 7), 6):" in text
    assert "for ow in max(((kw * -1) + 1), 0)..min(((kw * -1) + 7), 6) unrolled(4):" in text
    assert " if " not in text     # no guard: the ranges keep every load inside x


ACTIVATIONS = [
    ("Relu", [], {}, {}),
    ("LeakyRelu", [], dict(alpha=0.2), {}),
    ("Sigmoid", [], {}, {}),
    ("HardSwish", [], {}, {}),
    ("HardSigmoid", [], dict(alpha=0.3, beta=0.4), {}),
    ("Tanh", [], {}, {}),
    ("Clip", ["lo", "hi"], {}, {"lo": np.float32(-0.5), "hi": np.float32(0.7)}),
    ("Clip", ["", "hi"], {}, {"hi": np.float32(6.0)}),
    ("Elu", [], dict(alpha=0.5), {}),
]


@pytest.mark.parametrize("act,extra,attrs,inits", ACTIVATIONS,
                         ids=[f"{a[0]}{k}" for k, a in enumerate(ACTIVATIONS)])
def test_fused_conv_activation(rng, act, extra, attrs, inits):
    w = rng.standard_normal((4, 2, 3, 3), dtype=np.float32)
    b = rng.standard_normal(4, dtype=np.float32)
    m = make_model([("Conv", ["x", "w", "b"], ["t"], dict(pads=[1, 1, 1, 1], strides=[2, 1])),
                    (act, ["t", *extra], ["y"], attrs)],
                   inputs={"x": (1, 2, 5, 6)}, outputs={"y": None},
                   inits={"w": w, "b": b, **inits})
    p = _check(m, {"x": rng.standard_normal((1, 2, 5, 6), dtype=np.float32)})
    assert [k.op for k in p.kernels] == ["onnxcc.FusedConv"]
    assert f"activation {act}" in program_text(p)


def test_fused_conv_float64(rng):
    """onnxruntime has no float64 Conv: the float64 program against its float32 twin's oracle."""
    w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    x = rng.standard_normal((1, 2, 5, 5))
    nodes = [("Conv", ["x", "w", "b"], ["t"], dict(pads=[0, 1, 1, 0])), ("Relu", ["t"], ["y"])]
    m = make_model(nodes, inputs={"x": x.shape}, outputs={"y": None}, inits={"w": w, "b": b},
                   dtype=TensorProto.DOUBLE)
    m32 = make_model(nodes, inputs={"x": x.shape}, outputs={"y": None},
                     inits={"w": w.astype(np.float32), "b": b.astype(np.float32)})
    want = ort_run(m32, {"x": x.astype(np.float32)})["y"]
    p = program_of(m)
    got = run_c(p, [x], "clang")[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, run_interp(p, [x])[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


CONVT_CASES = [
    ((1, 2, 3, 3), (2, 3, 3, 3), {}),
    ((1, 2, 3, 4), (2, 2, 3, 3), dict(strides=[2, 2], pads=[1, 0, 1, 1])),
    ((1, 2, 3, 3), (2, 2, 3, 2), dict(strides=[3, 2], output_padding=[1, 1])),
    ((1, 2, 3, 3), (2, 2, 3, 3), dict(strides=[2, 2], output_shape=[7, 8])),
    ((1, 4, 3, 3), (4, 1, 2, 2), dict(group=2, strides=[2, 1], dilations=[1, 2])),
    ((1, 2, 3, 3), (2, 2, 3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((2, 2, 5), (2, 3, 3), dict(strides=[2], pads=[2, 1])),                             # 1-D
    ((1, 2, 2, 3, 2), (2, 2, 2, 2, 2), dict(strides=[2, 1, 2])),                        # 3-D
]


@pytest.mark.parametrize("xs,ws,attrs", CONVT_CASES,
                         ids=[f"convT{k}" for k in range(len(CONVT_CASES))])
def test_conv_transpose_matches_onnxruntime(rng, xs, ws, attrs):
    w = rng.standard_normal(ws, dtype=np.float32)
    b = rng.standard_normal(ws[1] * attrs.get("group", 1), dtype=np.float32)
    m = make_model([("ConvTranspose", ["x", "w", "b"], ["y"], attrs)], inputs={"x": xs},
                   outputs={"y": None}, inits={"w": w, "b": b})
    p = _check(m, {"x": rng.standard_normal(xs, dtype=np.float32)})
    assert [k.op for k in p.kernels] == ["ConvTranspose"]


POOL_CASES = [   # op, x shape, attrs
    ("MaxPool", (1, 2, 6, 6), dict(kernel_shape=[2, 2], strides=[2, 2])),
    ("MaxPool", (1, 2, 7, 6), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])),
    ("MaxPool", (1, 2, 7, 7), dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", (1, 1, 8, 8), dict(kernel_shape=[2, 2], dilations=[2, 3], pads=[1, 0, 1, 1])),
    ("MaxPool", (1, 2, 5, 6), dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER", strides=[2, 2])),
    ("MaxPool", (2, 2, 9), dict(kernel_shape=[4], strides=[3], pads=[2, 1])),
    ("MaxPool", (1, 1, 4, 5, 4), dict(kernel_shape=[2, 3, 2], pads=[0, 1, 1, 1, 1, 0])),
    ("AveragePool", (1, 2, 6, 6), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])),
    ("AveragePool", (1, 2, 6, 6), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                        count_include_pad=1)),
    ("AveragePool", (1, 2, 7, 7), dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("AveragePool", (1, 2, 7, 7), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                        ceil_mode=1, count_include_pad=1)),
    ("AveragePool", (1, 2, 5, 6), dict(kernel_shape=[2, 3], auto_pad="SAME_LOWER")),
    ("AveragePool", (2, 2, 9), dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
    ("AveragePool", (1, 1, 4, 4, 5), dict(kernel_shape=[2, 2, 3], pads=[1, 0, 1, 0, 1, 1])),
]


@pytest.mark.parametrize("op,xs,attrs", POOL_CASES,
                         ids=[f"{c[0]}{k}" for k, c in enumerate(POOL_CASES)])
def test_pool_matches_onnxruntime(rng, op, xs, attrs):
    m = make_model([(op, ["x"], ["y"], attrs)], inputs={"x": xs}, outputs={"y": None},
                   opset=19 if "dilations" in attrs and op == "AveragePool" else 17)
    _check(m, {"x": rng.standard_normal(xs, dtype=np.float32)})


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("attrs", [dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
                                   dict(kernel_shape=[2, 2], strides=[1, 2], ceil_mode=1)])
def test_maxpool_indices(rng, storage_order, attrs):
    m = make_model([("MaxPool", ["x"], ["y", "i"], dict(attrs, storage_order=storage_order))],
                   inputs={"x": (2, 2, 5, 6)}, outputs={"y": None, "i": None})
    m.graph.output[1].type.tensor_type.elem_type = TensorProto.INT64
    # ties: the first maximum in window order wins
    x = rng.integers(-3, 3, (2, 2, 5, 6)).astype(np.float32)
    p = _check(m, {"x": x}, cc="clang")
    assert "idx:i64 = -1:i64" in program_text(p)


def test_maxpool_int8_and_float64(rng):
    m = make_model([("MaxPool", ["x"], ["y"], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]))],
                   inputs={"x": (1, 2, 4, 4)}, outputs={"y": None}, dtype=TensorProto.INT8)
    _check(m, {"x": rng.integers(-128, 127, (1, 2, 4, 4)).astype(np.int8)})
    m = make_model([("MaxPool", ["x"], ["y"], dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]))],
                   inputs={"x": (1, 2, 4, 4)}, outputs={"y": None}, dtype=TensorProto.DOUBLE)
    _check(m, {"x": rng.standard_normal((1, 2, 4, 4))}, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("xs", [(2, 3, 4, 5), (1, 2, 7), (1, 2, 2, 3, 2), (1, 2, 25, 23)])
def test_global_pools(rng, op, xs):
    m = make_model([(op, ["x"], ["y"])], inputs={"x": xs}, outputs={"y": None})
    p = _check(m, {"x": rng.standard_normal(xs, dtype=np.float32)})
    blocked = op == "GlobalAveragePool" and np.prod(xs[2:]) > 256
    assert ("part1:f32 = 0.0:f32" in program_text(p)) == blocked


def test_global_average_pool_sums_in_blocks(rng):
    """2**20 values of 0.1: one running float32 sum is off by ~1%; nested partials are not."""
    x = np.full((1, 2, 1024, 1024), 0.1, np.float32)
    m = make_model([("GlobalAveragePool", ["x"], ["y"])], inputs={"x": x.shape},
                   outputs={"y": None})
    p = program_of(m)
    assert "tail" not in program_text(p)        # 2**20 is a whole number of blocks
    assert "part2:f32 = 0.0:f32" in program_text(p)
    y = run_c(p, [x])[0]
    np.testing.assert_allclose(y, np.float32(0.1), rtol=1e-5)
