"""C kernels of the conv, pool and normalization families, compiled and run against onnxruntime.

Each case is a one- or two-node graph compiled for the host with the IR verified after every pass;
the structural assertion checks which kernel ran (so a fusion or fold does not hide the kernel
under test), the numeric one compares with onnxruntime.
"""

import shutil
import subprocess

import numpy as np
import onnxcc
import pytest
from builders import make_model, ort_run
from onnx import TensorProto, helper
from onnxcc.errors import ModelLoadError
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret
from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def check(model, feeds, *, rtol, atol, ops=None, **compile_kw):
    """Compile for the host, check the kernels that ran, compare every output with onnxruntime."""
    cm = onnxcc.compile(model, "host", verify=True, **compile_kw)
    if ops is not None:
        assert [n.op for n in cm.graph.nodes] == ops
    got = cm.run(feeds)
    want = ort_run(model, feeds)
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=k)
    return cm


def conv_model(rng, x_shape, w_shape, bias=True, op="Conv", dtype=np.float32, **attrs):
    """A one-node Conv/ConvTranspose graph with constant weights (and bias) and its feed."""
    w = rng.standard_normal(w_shape).astype(dtype)
    inits, ins = {"w": w}, ["x", "w"]
    if bias:
        m = w_shape[1] * attrs.get("group", 1) if op == "ConvTranspose" else w_shape[0]
        inits["b"] = rng.standard_normal(m).astype(dtype)
        ins.append("b")
    onnx_dtype = TensorProto.DOUBLE if dtype == np.float64 else TensorProto.FLOAT
    model = make_model([(op, ins, ["y"], attrs)], {"x": x_shape}, {"y": None}, inits,
                       dtype=onnx_dtype)
    return model, {"x": rng.standard_normal(x_shape).astype(dtype)}


# ---- Conv ------------------------------------------------------------------------------------
CONV_2D = {
    "pad1": ((2, 3, 9, 8), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
    "stride2_asym_pads": ((1, 3, 10, 11), (5, 3, 3, 3), {"strides": [2, 2], "pads": [1, 0, 0, 2]}),
    "dilation": ((1, 2, 12, 12), (3, 2, 3, 3), {"dilations": [2, 3], "pads": [2, 1, 0, 3]}),
    "group2": ((1, 4, 7, 6), (6, 2, 3, 3), {"group": 2, "pads": [1, 0, 2, 1], "dilations": [1, 2]}),
    "depthwise": ((1, 6, 9, 9), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),
    "depthwise_s2_mult2": ((1, 3, 9, 8), (6, 1, 3, 3), {"group": 3, "strides": [2, 2],
                                                       "pads": [1, 1, 1, 1]}),
    "same_upper": ((1, 2, 7, 8), (3, 2, 4, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 3]}),
    "same_lower": ((1, 2, 7, 8), (3, 2, 4, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 1]}),
    "valid": ((1, 2, 7, 8), (3, 2, 4, 3), {"auto_pad": "VALID"}),
    "pad_beyond_kernel": ((1, 1, 3, 3), (2, 1, 3, 3), {"pads": [3, 2, 2, 3]}),
    "rect_kernel_stride": ((1, 5, 11, 13), (4, 5, 2, 5), {"strides": [3, 2], "pads": [0, 2, 1, 1]}),
    "pointwise": ((2, 16, 5, 7), (8, 16, 1, 1), {}),
    "pointwise_stride2": ((1, 16, 5, 7), (8, 16, 1, 1), {"strides": [2, 2]}),
    "pointwise_padded": ((1, 4, 5, 5), (3, 4, 1, 1), {"pads": [1, 0, 0, 1]}),
    "1x1_output": ((1, 3, 4, 4), (2, 3, 4, 4), {}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", list(CONV_2D))
def test_conv2d(rng, case, bias):
    xs, ws, attrs = CONV_2D[case]
    model, feeds = conv_model(rng, xs, ws, bias=bias, **attrs)
    check(model, feeds, rtol=1e-4, atol=1e-5, ops=["Conv"])


@pytest.mark.parametrize("xs,ws,attrs", [
    ((2, 3, 20), (4, 3, 5), {"pads": [2, 1], "strides": [2]}),
    ((1, 4, 17), (4, 2, 3), {"group": 2, "dilations": [3], "pads": [3, 2]}),
    ((1, 2, 5, 6, 7), (3, 2, 3, 2, 3), {"pads": [1, 0, 1, 1, 1, 0], "strides": [1, 2, 1]}),
    ((1, 4, 4, 5, 6), (4, 1, 2, 3, 3), {"group": 4, "strides": [1, 2, 2],
                                         "auto_pad": "SAME_LOWER"}),
], ids=["1d", "1d_group_dil", "3d", "3d_depthwise"])
def test_conv_1d_3d(rng, xs, ws, attrs):
    model, feeds = conv_model(rng, xs, ws, **attrs)
    check(model, feeds, rtol=1e-4, atol=1e-5, ops=["Conv"])


@pytest.mark.parametrize("xs,ws,attrs", [
    ((1, 64, 70, 64), (4, 64, 3, 3), {"pads": [1, 1, 1, 1]}),   # tiles of output rows
    ((1, 256, 40, 75), (4, 256, 1, 1), {}),                     # pointwise, tiles of pixels
    ((1, 512, 300), (3, 512, 3), {"pads": [1, 1]}),             # 1-D, tiles with padding
], ids=["rows", "pixels", "1d"])
def test_conv_tiled(rng, xs, ws, attrs):
    model, feeds = conv_model(rng, xs, ws, **attrs)
    cm = check(model, feeds, rtol=1e-4, atol=1e-4, ops=["Conv"])
    assert "tiles of" in (cm.lib_dir / f"{cm.mmap['c_prefix']}.c").read_text()


def test_conv_splat_weights_read_through_zero_strides(rng):
    """ConstantOfShape weights and bias (as in the light zoo) stay one element each."""
    def fill(name, v):
        return helper.make_tensor(name, TensorProto.FLOAT, [1], [v])

    model = make_model(
        [("ConstantOfShape", ["ws"], ["w"], {"value": fill("a", 0.01)}),
         ("ConstantOfShape", ["bs"], ["b"], {"value": fill("c", -0.5)}),
         ("Conv", ["x", "w", "b"], ["y"], {"pads": [1, 1, 1, 1]})],
        {"x": (1, 256, 6, 6)}, {"y": None},
        {"ws": np.array([256, 256, 3, 3], np.int64), "bs": np.array([256], np.int64)})
    cm = check(model, {"x": _f32(rng, 1, 256, 6, 6)}, rtol=1e-4, atol=1e-5, ops=["Conv"])
    assert cm.weights_size < 64          # 2.4 MB of weights if materialized



# Blocks of 4 output channels per pass (M per group >= 8 and divisible by 4); 10 per group stays
# one channel per pass.
CONV_BLOCKED = {
    "pad1": ((1, 5, 9, 8), (8, 5, 3, 3), {"pads": [1, 1, 1, 1]}),
    "stride2_asym": ((2, 6, 11, 10), (12, 6, 3, 3), {"strides": [2, 2], "pads": [1, 0, 0, 2]}),
    "group2_dil": ((1, 6, 9, 9), (16, 3, 3, 3), {"group": 2, "dilations": [2, 1],
                                                  "pads": [2, 1, 1, 0]}),
    "pointwise": ((1, 7, 5, 6), (12, 7, 1, 1), {}),
    "pointwise_stride2": ((1, 8, 9, 7), (8, 8, 1, 1), {"strides": [2, 2]}),
    "1d": ((1, 3, 30), (8, 3, 5), {"pads": [2, 1], "strides": [2]}),
    "3d": ((1, 2, 4, 5, 6), (8, 2, 3, 2, 3), {"pads": [1, 0, 1, 1, 1, 0]}),
    "tiled_rows": ((1, 64, 70, 64), (8, 64, 3, 3), {"pads": [1, 1, 1, 1]}),
    "m10_unblocked": ((1, 4, 7, 6), (10, 4, 3, 3), {"pads": [1, 1, 1, 1]}),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", list(CONV_BLOCKED))
def test_conv_output_channel_blocks(rng, case, bias):
    xs, ws, attrs = CONV_BLOCKED[case]
    model, feeds = conv_model(rng, xs, ws, bias=bias, **attrs)
    cm = check(model, feeds, rtol=1e-4, atol=1e-4, ops=["Conv"])
    src = (cm.lib_dir / f"{cm.mmap['c_prefix']}.c").read_text()
    assert ("blocks of 4 output channels" in src) == (case != "m10_unblocked")


def test_conv_blocks_splat_weight_times_batchnorm(rng):
    """A splat weight times a per-channel BatchNorm scale: each channel of a block reads its own
    (folded) weight."""
    def fill(name, v):
        return helper.make_tensor(name, TensorProto.FLOAT, [1], [v])

    m = 16
    model = make_model(
        [("ConstantOfShape", ["ws"], ["w"], {"value": fill("a", 0.01)}),
         ("Conv", ["x", "w"], ["t"], {"pads": [1, 1, 1, 1]}),
         ("BatchNormalization", ["t", "s", "b", "mu", "var"], ["y"])],
        {"x": (1, 8, 6, 7)}, {"y": None},
        {"ws": np.array([m, 8, 3, 3], np.int64), "s": _f32(rng, m), "b": _f32(rng, m),
         "mu": _f32(rng, m), "var": np.abs(_f32(rng, m)) + 0.5})
    cm = check(model, {"x": _f32(rng, 1, 8, 6, 7)}, rtol=1e-4, atol=1e-5)
    assert "blocks of 4 output channels" in (cm.lib_dir / f"{cm.mmap['c_prefix']}.c").read_text()


@pytest.mark.parametrize("act", ["relu", "sigmoid", "prelu_scalar"])
def test_fused_conv_activation_blocked(rng, act):
    inits = {"w": _f32(rng, 8, 4, 3, 3), "b": _f32(rng, 8), "slope": np.array([0.25], np.float32)}
    nodes = [("Conv", ["x", "w", "b"], ["t"], {"pads": [1, 2, 1, 0]}), *ACTIVATIONS[act]]
    used = {i for n in nodes for i in n[1]}
    model = make_model(nodes, {"x": (1, 4, 8, 7)}, {"y": None},
                       {k: v for k, v in inits.items() if k in used})
    cm = check(model, {"x": _f32(rng, 1, 4, 8, 7)}, rtol=1e-4, atol=1e-5,
               ops=["onnxcc.FusedConv"])
    assert "blocks of 4 output channels" in (cm.lib_dir / f"{cm.mmap['c_prefix']}.c").read_text()



def test_conv_blocks_float64_and_sanitizers(rng):
    """The blocked path on doubles (oracle: the reference interpreter), under ASan/UBSan."""
    model = make_model([("Conv", ["x", "w", "b"], ["y"], {"pads": [1, 0, 2, 1], "strides": [1, 2]})],
                       {"x": (1, 3, 9, 10)}, {"y": None},
                       {"w": rng.standard_normal((8, 3, 3, 2)), "b": rng.standard_normal(8)},
                       dtype=TensorProto.DOUBLE)
    x = rng.standard_normal((1, 3, 9, 10))
    cm = onnxcc.compile(model, "host", verify=True)
    assert "blocks of 4 output channels" in (cm.lib_dir / f"{cm.mmap['c_prefix']}.c").read_text()
    want = interpret(import_onnx(model), {"x": x})["y"]
    np.testing.assert_allclose(cm.run({"x": x}, sanitize=True)["y"], want, rtol=1e-10, atol=1e-12)


# ---- FusedConv -------------------------------------------------------------------------------
ACTIVATIONS = {
    "relu": [("Relu", ["t"], ["y"])],
    "clip06": [("Clip", ["t", "lo", "hi"], ["y"])],
    "clip_min_only": [("Clip", ["t", "lo"], ["y"])],
    "leaky": [("LeakyRelu", ["t"], ["y"], {"alpha": 0.2})],
    "sigmoid": [("Sigmoid", ["t"], ["y"])],
    "hardswish": [("HardSwish", ["t"], ["y"])],
    "tanh": [("Tanh", ["t"], ["y"])],
    "prelu_scalar": [("PRelu", ["t", "slope"], ["y"])],
}


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_fused_conv_activation(rng, act):
    w = _f32(rng, 6, 2, 3, 3)
    b = _f32(rng, 6)
    inits = {"w": w, "b": b, "lo": np.array(0.0, np.float32), "hi": np.array(0.6, np.float32),
             "slope": np.array([0.25], np.float32)}
    conv = ("Conv", ["x", "w", "b"], ["t"], {"group": 2, "pads": [1, 2, 1, 0]})
    nodes = [conv, *ACTIVATIONS[act]]
    used = {i for n in nodes for i in n[1]}
    model = make_model(nodes, {"x": (1, 4, 8, 7)}, {"y": None},
                       {k: v for k, v in inits.items() if k in used})
    check(model, {"x": _f32(rng, 1, 4, 8, 7)}, rtol=1e-4, atol=1e-5, ops=["onnxcc.FusedConv"])


# ---- ConvTranspose ---------------------------------------------------------------------------
CONV_T = {
    "stride2_pads": ((1, 3, 5, 6), (3, 2, 3, 3), {"strides": [2, 2], "pads": [1, 0, 1, 1]}),
    "group_dil_outpad": ((1, 4, 5, 6), (4, 3, 3, 2), {"group": 2, "strides": [2, 1],
                                                      "dilations": [1, 2],
                                                      "output_padding": [1, 0]}),
    "same_upper": ((1, 2, 5, 6), (2, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    "output_shape": ((1, 2, 4, 4), (2, 2, 3, 3), {"strides": [2, 2], "output_shape": [8, 9]}),
    "1d": ((1, 2, 7), (2, 3, 4), {"strides": [3], "pads": [1, 2]}),
    "stride1": ((2, 3, 4, 5), (3, 4, 2, 2), {}),
}


@pytest.mark.parametrize("case", list(CONV_T))
def test_conv_transpose(rng, case):
    xs, ws, attrs = CONV_T[case]
    model, feeds = conv_model(rng, xs, ws, op="ConvTranspose", **attrs)
    check(model, feeds, rtol=1e-4, atol=1e-5, ops=["ConvTranspose"])


@pytest.mark.parametrize("output_shape", [[10, 11], [12, 9]])
def test_conv_transpose_negative_pads_matches_reference(rng, output_shape):
    """An output_shape past the full result makes pads_begin negative: the extra rows and columns
    hold the bias only (onnxruntime rejects these shapes; the oracle is the reference)."""
    model, feeds = conv_model(rng, (1, 2, 4, 4), (2, 2, 3, 3), op="ConvTranspose",
                              strides=[2, 2], output_shape=output_shape)
    cm = onnxcc.compile(model, "host", verify=True)
    want = interpret(import_onnx(model), feeds)["y"]
    np.testing.assert_allclose(cm.run(feeds)["y"], want, rtol=1e-4, atol=1e-5)


# ---- pools -----------------------------------------------------------------------------------
POOLS = {
    "max_s2_pad": ("MaxPool", (1, 3, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2],
                                             "pads": [1, 1, 1, 1]}),
    "max_ceil": ("MaxPool", (1, 3, 10, 10), {"kernel_shape": [3, 3], "strides": [2, 2],
                                             "ceil_mode": 1}),
    "max_dil_asym": ("MaxPool", (1, 3, 10, 10), {"kernel_shape": [2, 3], "dilations": [2, 2],
                                                 "pads": [1, 0, 0, 2]}),
    "max_same_upper": ("MaxPool", (2, 2, 7, 8), {"kernel_shape": [2, 3], "strides": [2, 2],
                                                 "auto_pad": "SAME_UPPER"}),
    "max_1d": ("MaxPool", (1, 2, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    "max_3d": ("MaxPool", (1, 2, 5, 6, 7), {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]}),
    "avg_exclude_pad": ("AveragePool", (1, 3, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2],
                                                      "pads": [1, 1, 1, 1]}),
    "avg_include_pad": ("AveragePool", (1, 3, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2],
                                                      "pads": [1, 1, 1, 1],
                                                      "count_include_pad": 1}),
    "avg_ceil_include_pad": ("AveragePool", (1, 3, 10, 10),
                             {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1,
                              "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    "avg_ceil": ("AveragePool", (1, 2, 8, 9), {"kernel_shape": [2, 3], "strides": [3, 2],
                                               "ceil_mode": 1}),
    "avg_same_lower": ("AveragePool", (1, 3, 10, 10), {"kernel_shape": [3, 3], "strides": [2, 2],
                                                       "auto_pad": "SAME_LOWER"}),
    "avg_1d": ("AveragePool", (2, 3, 10), {"kernel_shape": [3], "strides": [2]}),
    "avg_3d_pad": ("AveragePool", (1, 2, 4, 5, 6), {"kernel_shape": [2, 3, 2],
                                                    "pads": [1, 1, 0, 0, 1, 1]}),
}


@pytest.mark.parametrize("case", list(POOLS))
def test_pool(rng, case):
    op, xs, attrs = POOLS[case]
    model = make_model([(op, ["x"], ["y"], attrs)], {"x": xs}, {"y": None})
    check(model, {"x": _f32(rng, *xs)}, rtol=1e-5, atol=1e-6, ops=[op])


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 3], "strides": [1, 2], "ceil_mode": 1},
    {"kernel_shape": [2, 2], "dilations": [2, 1], "pads": [0, 1, 1, 0]},
], ids=["pads", "ceil", "dilation"])
def test_maxpool_indices(rng, attrs, storage_order):
    """Indices: the first maximum in window order, flat into x (spatial axes column-major for
    storage_order=1)."""
    model = make_model([("MaxPool", ["x"], ["y", "i"], {"storage_order": storage_order, **attrs})],
                       {"x": (2, 3, 7, 8)}, {"y": None, "i": None}, opset=12)
    model.graph.output[1].type.tensor_type.elem_type = TensorProto.INT64
    check(model, {"x": _f32(rng, 2, 3, 7, 8)}, rtol=0, atol=0, ops=["MaxPool"])


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("xs", [(2, 3, 7, 5), (1, 4, 9), (1, 2, 3, 4, 5)], ids=["2d", "1d", "3d"])
def test_global_pool(rng, op, xs):
    model = make_model([(op, ["x"], ["y"])], {"x": xs}, {"y": None})
    check(model, {"x": _f32(rng, *xs)}, rtol=1e-5, atol=1e-6, ops=[op])


@pytest.mark.parametrize("dtype", [TensorProto.UINT8, TensorProto.INT8])
def test_maxpool_8bit(rng, dtype):
    np_dtype = np.uint8 if dtype == TensorProto.UINT8 else np.int8
    model = make_model([("MaxPool", ["x"], ["y"], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]})],
                       {"x": (1, 2, 6, 6)}, {"y": None}, dtype=dtype, opset=13)
    x = rng.integers(np.iinfo(np_dtype).min, np.iinfo(np_dtype).max, (1, 2, 6, 6)).astype(np_dtype)
    check(model, {"x": x}, rtol=0, atol=0, ops=["MaxPool"])


# ---- LRN -------------------------------------------------------------------------------------
@pytest.mark.parametrize("size,attrs", [(5, {}), (3, {"alpha": 0.01, "beta": 0.6, "bias": 2.0}),
                                        (1, {})])
def test_lrn(rng, size, attrs):
    model = make_model([("LRN", ["x"], ["y"], {"size": size, **attrs})], {"x": (2, 7, 4, 5)},
                       {"y": None})
    check(model, {"x": _f32(rng, 2, 7, 4, 5)}, rtol=1e-5, atol=1e-6, ops=["LRN"])


def test_lrn_even_size_matches_reference(rng):
    """onnxruntime rejects an even size; the spec's window is then asymmetric (more after c)."""
    model = make_model([("LRN", ["x"], ["y"], {"size": 4, "alpha": 0.1})], {"x": (1, 6, 3, 3)},
                       {"y": None})
    x = _f32(rng, 1, 6, 3, 3)
    cm = onnxcc.compile(model, "host", verify=True)
    want = interpret(import_onnx(model), {"x": x})["y"]
    np.testing.assert_allclose(cm.run({"x": x})["y"], want, rtol=1e-5, atol=1e-6)


# ---- normalizations --------------------------------------------------------------------------
@pytest.mark.parametrize("xs", [(2, 3, 4, 5), (4, 3), (1, 3, 7)], ids=["4d", "2d", "3d"])
def test_batchnorm(rng, xs):
    c = xs[1]
    params = {"s": _f32(rng, c), "b": _f32(rng, c), "m": _f32(rng, c),
              "v": np.abs(_f32(rng, c)) + 0.1}
    model = make_model([("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                         {"epsilon": 1e-3})], {"x": xs}, {"y": None}, params)
    check(model, {"x": _f32(rng, *xs)}, rtol=1e-4, atol=1e-5, ops=["BatchNormalization"],
          disable_passes=["fold_batchnorm"])


def test_batchnorm_runtime_params(rng):
    names = ["s", "b", "m", "v"]
    model = make_model([("BatchNormalization", ["x", *names], ["y"])],
                       {"x": (2, 3, 4, 4), **{k: (3,) for k in names}}, {"y": None})
    feeds = {"x": _f32(rng, 2, 3, 4, 4), "s": _f32(rng, 3), "b": _f32(rng, 3), "m": _f32(rng, 3),
             "v": np.abs(_f32(rng, 3)) + 0.1}
    check(model, feeds, rtol=1e-4, atol=1e-5, ops=["BatchNormalization"])


@pytest.mark.parametrize("xs", [(2, 3, 4, 5), (1, 4, 9), (1, 2, 3, 4, 2)], ids=["2d", "1d", "3d"])
def test_instancenorm(rng, xs):
    c = xs[1]
    model = make_model([("InstanceNormalization", ["x", "s", "b"], ["y"], {"epsilon": 1e-3})],
                       {"x": xs}, {"y": None}, {"s": _f32(rng, c), "b": _f32(rng, c)})
    check(model, {"x": _f32(rng, *xs)}, rtol=1e-4, atol=1e-5, ops=["InstanceNormalization"])


@pytest.mark.parametrize("axis,scale,bias,n_out", [
    (-1, (5,), (5,), 1),
    (2, (4, 5), (5,), 1),     # B broadcasts over the normalized axes
    (1, (3, 4, 5), None, 1),
    (-1, (5,), None, 3),      # Mean and InvStdDev outputs
    (0, (2, 3, 4, 5), (2, 3, 4, 5), 3),
])
def test_layernorm(rng, axis, scale, bias, n_out):
    xs = (2, 3, 4, 5)
    inits = {"s": _f32(rng, *scale)}
    ins = ["x", "s"]
    if bias:
        inits["b"] = _f32(rng, *bias)
        ins.append("b")
    outs = ["y", "mean", "inv"][:n_out]
    model = make_model([("LayerNormalization", ins, outs, {"axis": axis, "epsilon": 1e-3})],
                       {"x": xs}, dict.fromkeys(outs), inits)
    check(model, {"x": _f32(rng, *xs)}, rtol=1e-4, atol=1e-5, ops=["LayerNormalization"])


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(11, None), (11, 1), (11, -2), (11, 0), (13, None),
                                        (13, 1), (13, -1), (13, 0)])
def test_softmax(rng, op, opset, axis):
    """Opset < 13 coerces x to 2-D at ``axis`` (default 1); 13+ works along one axis (default
    -1). A non-last axis reads with a stride."""
    attrs = {} if axis is None else {"axis": axis}
    model = make_model([(op, ["x"], ["y"], attrs)], {"x": (2, 3, 4, 5)}, {"y": None}, opset=opset)
    x = 4 * _f32(rng, 2, 3, 4, 5)
    check(model, {"x": x}, rtol=1e-5, atol=1e-6, ops=[op])


def test_softmax_infinite_inputs():
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, 3.0]], np.float32)
    model = make_model([("Softmax", ["x"], ["y"])], {"x": (2, 3)}, {"y": None}, opset=13)
    check(model, {"x": x}, rtol=1e-6, atol=1e-7, ops=["Softmax"])


# ---- float64 ---------------------------------------------------------------------------------
def test_float64_kernels(rng):
    """onnxruntime has no float64 Conv: the oracle is onnxcc's reference interpreter."""
    w = rng.standard_normal((4, 3, 3, 3))
    model = make_model(
        [("Conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}),
         ("MaxPool", ["c"], ["p"], {"kernel_shape": [2, 2], "strides": [2, 2]}),
         ("AveragePool", ["p"], ["a"], {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]}),
         ("InstanceNormalization", ["a", "s", "b"], ["n"]),
         ("Softmax", ["n"], ["y"], {"axis": 1})],
        {"x": (1, 3, 8, 8)}, {"y": None},
        {"w": w, "s": rng.standard_normal(4), "b": rng.standard_normal(4)},
        dtype=TensorProto.DOUBLE)
    x = rng.standard_normal((1, 3, 8, 8))
    cm = onnxcc.compile(model, "host", verify=True)
    assert [n.op for n in cm.graph.nodes] == ["Conv", "MaxPool", "AveragePool",
                                              "InstanceNormalization", "Softmax"]
    want = interpret(import_onnx(model), {"x": x})["y"]
    np.testing.assert_allclose(cm.run({"x": x})["y"], want, rtol=1e-10, atol=1e-12)


# ---- legality, sanitizers, compilers ---------------------------------------------------------
def test_dtype_outside_the_spec_is_reported_by_node_name():
    # MaxPool-12+ takes float and 8-bit integers only: onnx's checker and onnxruntime refuse int32
    model = make_model([("MaxPool", ["x"], ["y"], {"kernel_shape": [2, 2]})], {"x": (1, 1, 4, 4)},
                       {"y": None}, dtype=TensorProto.INT32)
    with pytest.raises(ModelLoadError, match="'n0' \\(MaxPool\\).*tensor\\(int32\\)"):
        onnxcc.compile(model, "host")


def _chain_model(rng):
    """One of every kernel of this family, in one graph (odd shapes, padding everywhere)."""
    c = rng.standard_normal
    inits = {"w1": c((6, 3, 3, 3)).astype(np.float32), "b1": c(6).astype(np.float32),
             "w2": c((6, 2, 3, 2)).astype(np.float32), "wd": c((6, 1, 3, 3)).astype(np.float32),
             "wt": c((6, 2, 3, 3)).astype(np.float32), "s": c(4).astype(np.float32),
             "b": c(4).astype(np.float32), "ls": c(6).astype(np.float32)}
    nodes = [
        ("Conv", ["x", "w1", "b1"], ["c1"], {"pads": [1, 2, 0, 1], "strides": [2, 1]}),
        ("Relu", ["c1"], ["r1"]),
        ("Conv", ["r1", "w2"], ["c2"], {"group": 3, "strides": [1, 2], "auto_pad": "SAME_LOWER"}),
        ("Conv", ["c2", "wd"], ["c3"], {"group": 6, "pads": [1, 1, 1, 1]}),
        ("LRN", ["c3"], ["l"], {"size": 3}),
        ("MaxPool", ["l"], ["p", "idx"], {"kernel_shape": [3, 3], "strides": [2, 2],
                                          "ceil_mode": 1}),
        ("ConvTranspose", ["p", "wt"], ["t"], {"group": 2, "strides": [2, 2],
                                               "pads": [1, 0, 0, 1]}),
        ("AveragePool", ["t"], ["a"], {"kernel_shape": [2, 3], "pads": [1, 1, 1, 1],
                                       "count_include_pad": 1}),
        ("InstanceNormalization", ["a", "s", "b"], ["n"]),
        ("LayerNormalization", ["n", "ls"], ["ln"], {"axis": -1}),
        ("GlobalAveragePool", ["ln"], ["g"]),
        ("Flatten", ["g"], ["f"]),
        ("LogSoftmax", ["f"], ["y"]),
    ]
    model = make_model(nodes, {"x": (1, 3, 13, 11)}, {"y": None, "idx": None}, inits)
    model.graph.output[1].type.tensor_type.elem_type = TensorProto.INT64
    return model


@pytest.mark.slow
def test_sanitizers_clean(rng):
    model = _chain_model(rng)
    x = _f32(rng, 1, 3, 13, 11)
    cm = onnxcc.compile(model, "host", verify=True)
    got, want = cm.run({"x": x}, sanitize=True), ort_run(model, {"x": x})
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got["idx"], want["idx"])


@pytest.mark.parametrize("cc,flags,target", [("clang", (), "host"),
                                             ("arm-none-eabi-gcc", CORTEX_M4_FLAGS, "cortex-m4")])
def test_compiles_warning_free(rng, cc, flags, target):
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    cm = onnxcc.compile(_chain_model(rng), target)
    m = cm.mmap["c_prefix"]
    subprocess.run([cc, *WARN_FLAGS, *flags, "-O2", f"-I{cm.lib_dir}", "-c",
                    str(cm.lib_dir / f"{m}.c"), "-o", "/dev/null"], check=True)
