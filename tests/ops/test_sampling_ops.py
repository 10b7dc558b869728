"""GridSample, AffineGrid, DeformConv, RoiAlign, Col2Im, MaxUnpool, DFT and STFT through the
public API on host C and cpu LLVM against onnxruntime, on random shapes and values beyond the node
suite: GridSample's three modes with padding modes and align_corners (coordinates past the
borders, opset 16 names, a 5-D volumetric case, a float64 grid), AffineGrid 2-D and 3-D,
DeformConv with groups, offset groups, strides, dilations, padding, bias and mask, RoiAlign (avg
and max, both coordinate modes, rois past the image; an adaptive sampling grid is refused by
name), Col2Im (strides, pads, dilations, overlapping blocks), MaxUnpool (a larger output_shape
against onnx's reference), DFT at opsets 17 and 20 (dft_length cutting and zero-padding, inverse,
one-sided forward and inverse, float64), STFT with a window on a complex signal and
CausalConvWithState (state in and out, bias, silu; against onnx's reference); the C of a
GridSample is sanitizer-clean and builds for cortex-m4; a shape-deciding input left unbound is a
ShapeError naming constant_inputs."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import onnxcc
import pytest
from builders import check_against_ort, node_model
from onnx.reference import ReferenceEvaluator
from onnxcc.errors import ShapeError, UnsupportedOpError

RNG = np.random.default_rng(0)


def _grid(shape, lim=1.3, dt=np.float32):
    return RNG.uniform(-lim, lim, shape).astype(dt)


@pytest.mark.parametrize("mode,pad,align", [
    ("linear", "zeros", 0), ("nearest", "reflection", 0), ("cubic", "zeros", 1),
    ("cubic", "border", 1)])
def test_grid_sample_modes_and_padding(mode, pad, align):
    x = RNG.standard_normal((2, 3, 5, 7)).astype(np.float32)
    g = _grid((2, 4, 6, 2))
    g[0, 0, :3] = [[-1, -1], [1, 1], [0.5, -0.5]]      # exact corners and half-pixel points
    m = node_model("GridSample", {"x": x, "g": g}, ["y"], opset=20, mode=mode,
                   padding_mode=pad, align_corners=align)
    check_against_ort(m, {"x": x, "g": g}, atol=1e-5)


def test_grid_sample_opset16_volumetric_and_float64_grid():
    x = RNG.standard_normal((1, 2, 4, 5, 6)).astype(np.float32)
    g = _grid((1, 3, 2, 4, 3))
    m = node_model("GridSample", {"x": x, "g": g}, ["y"], opset=20, mode="linear",
                   padding_mode="reflection")
    check_against_ort(m, {"x": x, "g": g}, atol=1e-5)
    x2 = RNG.standard_normal((2, 2, 6, 4)).astype(np.float64)
    g2 = _grid((2, 3, 5, 2), 2.5, np.float64)
    m = node_model("GridSample", {"x": x2, "g": g2}, ["y"], opset=20, mode="cubic",
                   padding_mode="reflection", align_corners=0)
    check_against_ort(m, {"x": x2, "g": g2}, atol=1e-10)
    x3 = RNG.standard_normal((1, 2, 4, 6)).astype(np.float32)
    g3 = _grid((1, 5, 3, 2))
    m = node_model("GridSample", {"x": x3, "g": g3}, ["y"], opset=16, mode="bicubic",
                   padding_mode="border")           # opset 16 names (onnxruntime: float32 only)
    check_against_ort(m, {"x": x3, "g": g3}, atol=1e-5)


@pytest.mark.parametrize("align", [0, 1])
def test_affine_grid(align):
    th = RNG.standard_normal((2, 2, 3)).astype(np.float32)
    m = node_model("AffineGrid", {"th": th}, ["y"], inits={"s": np.array([2, 3, 4, 5])},
                   opset=20, align_corners=align)
    check_against_ort(m, {"th": th})
    th3 = RNG.standard_normal((1, 3, 4)).astype(np.float32)
    size = np.array([1, 2, 3, 2, 4])
    m = node_model("AffineGrid", {"th": th3, "s": size}, ["y"], opset=20, align_corners=align)
    check_against_ort(m, {"th": th3}, constant_inputs={"s": size})


def test_affine_grid_size_must_be_known():
    th = np.zeros((1, 2, 3), np.float32)
    m = node_model("AffineGrid", {"th": th, "s": np.array([1, 1, 2, 2])}, ["y"], opset=20)
    with pytest.raises(ShapeError, match="constant_inputs"):
        onnxcc.compile(m, "host")


def _deform_model(N=2, C=4, M=6, S=(6, 5), k=(3, 2), group=2, og=2, strides=(2, 1),
                  dil=(1, 2), pads=(1, 0, 2, 1), mask=True, bias=True):
    x = RNG.standard_normal((N, C, *S)).astype(np.float32)
    w = RNG.standard_normal((M, C // group, *k)).astype(np.float32)
    out = [(S[a] + pads[a] + pads[2 + a] - (k[a] - 1) * dil[a] - 1) // strides[a] + 1
           for a in range(2)]
    off = RNG.uniform(-2, 2, (N, og * 2 * k[0] * k[1], *out)).astype(np.float32)
    feeds = {"x": x, "w": w, "off": off}
    if bias:
        feeds["b"] = RNG.standard_normal((M,)).astype(np.float32)
    if mask:
        if not bias:
            feeds["b"] = np.zeros((M,), np.float32)
        feeds["m"] = RNG.uniform(0, 1, (N, og * k[0] * k[1], *out)).astype(np.float32)
    m = node_model("DeformConv", feeds, ["y"], opset=19, kernel_shape=list(k), group=group,
                   offset_group=og, strides=list(strides), dilations=list(dil), pads=list(pads))
    return m, feeds


@pytest.mark.parametrize("variant", ["groups_mask_bias", "plain"])
def test_deform_conv(variant):
    if variant == "plain":
        m, feeds = _deform_model(C=3, M=2, group=1, og=1, strides=(1, 1), dil=(1, 1),
                                 pads=(0, 0, 0, 0), mask=False, bias=False)
    else:
        m, feeds = _deform_model()
    check_against_ort(m, feeds, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode,ctm", [("avg", "half_pixel"), ("max", "output_half_pixel")])
def test_roi_align(mode, ctm):
    x = RNG.standard_normal((2, 3, 7, 9)).astype(np.float32)
    rois = np.array([[0.5, 1.0, 6.0, 5.5], [-2.0, -1.5, 3.0, 2.0], [4.0, 3.0, 12.0, 9.5],
                     [2.2, 2.2, 2.4, 2.3]], np.float32)
    bi = np.array([1, 0, 1, 0], np.int64)
    m = node_model("RoiAlign", {"x": x, "r": rois, "b": bi}, ["y"], opset=16, mode=mode,
                   coordinate_transformation_mode=ctm, output_height=3, output_width=4,
                   sampling_ratio=2, spatial_scale=0.9)
    check_against_ort(m, {"x": x, "r": rois, "b": bi}, atol=1e-5)


def test_roi_align_adaptive_grid_is_refused():
    x = np.zeros((1, 1, 4, 4), np.float32)
    m = node_model("RoiAlign", {"x": x, "r": np.zeros((2, 4), np.float32),
                                "b": np.zeros(2, np.int64)}, ["y"], opset=16)
    with pytest.raises(UnsupportedOpError, match="sampling_ratio"):
        onnxcc.compile(m, "host")


def test_col2im():
    image, block = np.array([6, 7]), np.array([3, 2])
    st, dil, pads = [2, 1], [1, 2], [1, 0, 2, 1]
    n = [(image[a] + pads[a] + pads[2 + a] - dil[a] * (block[a] - 1) - 1) // st[a] + 1
         for a in range(2)]
    x = RNG.standard_normal((2, 3 * 6, n[0] * n[1])).astype(np.float32)
    m = node_model("Col2Im", {"x": x, "i": image, "b": block}, ["y"], opset=18, strides=st,
                   dilations=dil, pads=pads)
    check_against_ort(m, {"x": x}, constant_inputs={"i": image, "b": block})


def test_max_unpool():
    x = RNG.standard_normal((2, 3, 3, 4)).astype(np.float32)
    T = 2 * 3 * 6 * 8                                    # unpooled (2, 3, 6, 8): kernel 2, stride 2
    idx = RNG.permutation(T)[:x.size].reshape(x.shape).astype(np.int64)
    m = node_model("MaxUnpool", {"x": x, "i": idx}, ["y"], opset=11, kernel_shape=[2, 2],
                   strides=[2, 2])
    check_against_ort(m, {"x": x, "i": idx})
    # a larger output_shape: onnx's reference (the node case's oracle) places the unpooled
    # tensor at the origin; onnxruntime 1.31 reads the indices in the output's shape instead
    out = np.array([2, 3, 7, 9], np.int64)
    m = node_model("MaxUnpool", {"x": x, "i": idx, "o": out}, ["y"], opset=11,
                   kernel_shape=[2, 2], strides=[2, 2])
    (want,) = ReferenceEvaluator(m).run(None, {"x": x, "i": idx, "o": out})
    for t in ("host", "cpu"):
        got = onnxcc.compile(m, t, constant_inputs={"o": out}).run({"x": x, "i": idx})["y"]
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("opset,inverse,onesided,last,n", [
    (17, 0, 1, 1, 12), (17, 1, 0, 2, 5), (20, 1, 1, 2, None), (20, 1, 1, 2, 9)])
def test_dft(opset, inverse, onesided, last, n):
    x = RNG.standard_normal((2, 3, 8, last)).astype(np.float32)
    feeds, consts, attrs = {"x": x}, {}, {"inverse": inverse, "onesided": onesided}
    if n is not None:
        consts["n"] = np.array(n, np.int64)
    if opset == 17:
        attrs["axis"] = 2
        ins = {"x": x, **({"n": consts["n"]} if n is not None else {})}
    else:
        consts["a"] = np.array(1, np.int64)          # the (shorter) axis 1
        ins = {"x": x, "n": consts.get("n", np.zeros((), np.int64)), "a": consts["a"]}
    m = node_model("DFT", ins, ["y"], opset=opset, **attrs)
    if opset == 20 and n is None:
        m.graph.node[0].input[1] = ""
        del m.graph.input[1]
    m.graph.output[0].type.tensor_type.elem_type = 1    # onnx infers none with dft_length
    check_against_ort(m, feeds, constant_inputs=consts, atol=1e-5, rtol=1e-4)


def test_dft_float64_and_stft_window():
    x = RNG.standard_normal((3, 7, 2)).astype(np.float64)
    m = node_model("DFT", {"x": x}, ["y"], opset=17, axis=1)
    check_against_ort(m, {"x": x}, atol=1e-12, rtol=1e-12)
    sig = RNG.standard_normal((2, 40, 2)).astype(np.float32)
    win = RNG.uniform(0, 1, (10,)).astype(np.float32)
    step = np.array(3, np.int64)
    m = node_model("STFT", {"s": sig, "step": step, "w": win}, ["y"], opset=17, onesided=0)
    check_against_ort(m, {"s": sig, "w": win}, constant_inputs={"step": step}, atol=1e-5,
                      rtol=1e-4)


def test_c_sanitizer_clean_and_cortex_m4_build():
    from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS

    x = RNG.standard_normal((1, 2, 5, 6)).astype(np.float32)
    g = _grid((1, 3, 4, 2), 3.0)
    models = [(node_model("GridSample", {"x": x, "g": g}, ["y"], opset=20, mode="cubic",
                          padding_mode="reflection"), {"x": x, "g": g})]
    for m, feeds in models:
        cm = onnxcc.compile(m, "host")
        plain, san = cm.run(feeds), cm.run(feeds, sanitize=True)
        np.testing.assert_array_equal(san["y"], plain["y"])
    cm = onnxcc.compile(models[0][0], "cortex-m4")
    if shutil.which("arm-none-eabi-gcc"):
        prefix = cm.mmap["c_prefix"]
        subprocess.run(["arm-none-eabi-gcc", *WARN_FLAGS, *CORTEX_M4_FLAGS, "-Os",
                        f"-I{cm.lib_dir}", "-c", str(cm.lib_dir / f"{prefix}.c"), "-o",
                        "/dev/null"], check=True)
    np.testing.assert_allclose(cm.run(models[0][1])["y"], plain_gs(models[0]), atol=1e-5)


def plain_gs(model_feeds):
    from builders import ort_run

    m, feeds = model_feeds
    return ort_run(m, feeds)["y"]


@pytest.mark.parametrize("k,past,act", [(4, True, "silu"), (1, False, "none"), (6, False, "none")])
def test_causal_conv_with_state(k, past, act):
    x = RNG.standard_normal((2, 3, 5)).astype(np.float32)
    feeds = {"x": x, "w": RNG.standard_normal((3, 1, k)).astype(np.float32),
             "b": RNG.standard_normal((3,)).astype(np.float32)}
    if past:
        feeds["p"] = RNG.standard_normal((2, 3, k - 1)).astype(np.float32)
    m = node_model("CausalConvWithState", feeds, ["y", "s"], opset=27, activation=act)
    want = ReferenceEvaluator(m).run(None, feeds)      # onnxruntime 1.31 refuses opset 27
    for t in ("host", "cpu"):
        got = onnxcc.compile(m, t).run(feeds)
        for name, w in zip(["y", "s"], want):
            np.testing.assert_allclose(got[name], w, rtol=1e-5, atol=1e-6, err_msg=f"{t} {name}")
