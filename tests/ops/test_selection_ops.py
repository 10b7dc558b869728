"""TopK, OneHot, Compress, ReverseSequence and CenterCropPad through the public API on host C,
cpu LLVM and an MCU target, against onnxruntime: TopK's largest/smallest, ties (lower index
first), every axis, integers, K from an initializer, from a bound graph input and as the opset-1
attribute; OneHot's negative and out-of-range indices, float indices, axes; Compress with and
without axis; ReverseSequence in both layouts with lengths 0..T; CenterCropPad cropping and
padding; the errors a user can cause (a shape-deciding input left unbound)."""

from __future__ import annotations

import numpy as np
import onnxcc
import pytest
from builders import check_against_ort, node_model
from onnxcc.errors import ShapeError
from onnx.reference import ReferenceEvaluator

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("k", [1, 3])
def test_topk_with_ties(largest, axis, k):
    x = RNG.integers(0, 4, (4, 5, 6)).astype(np.float32)    # many ties
    K = np.array([k], np.int64)
    m = node_model("TopK", {"x": x}, ["v", "i"], inits={"K": K}, opset=11, axis=axis,
                   largest=largest)
    check_against_ort(m, {"x": x})


@pytest.mark.parametrize("dt", [np.int32, np.int64, np.uint8, np.float64])
def test_topk_dtypes_bound_k_and_opset1(dt):
    x = RNG.integers(0, 100, (3, 7)).astype(dt)
    m = node_model("TopK", {"x": x, "K": np.array([4], np.int64)}, ["v", "i"], opset=11)
    check_against_ort(m, {"x": x}, constant_inputs={"K": np.array([4], np.int64)},
                      targets=("host", "cpu", "cortex-m4"))
    if dt in (np.float64,):
        check_against_ort(node_model("TopK", {"x": x}, ["v", "i"], opset=1, k=2), {"x": x})


def test_topk_needs_k_at_compile_time():
    x = np.zeros((3, 7), np.float32)
    m = node_model("TopK", {"x": x, "K": np.array([4], np.int64)}, ["v", "i"], opset=11)
    with pytest.raises(ShapeError, match="constant_inputs"):
        onnxcc.compile(m, "host")


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("idt", [np.int64, np.int32, np.float32])
def test_onehot(axis, idt):
    ind = np.array([[0, 3, -1], [-4, 5, -6]]).astype(idt)     # 5 and -6 are outside depth 4
    vals = np.array([-2.0, 7.5], np.float32)
    depth = np.array(4, np.int64)
    m = node_model("OneHot", {"ind": ind, "depth": depth, "vals": vals}, ["y"], opset=11,
                   axis=axis)
    if idt == np.int64:
        check_against_ort(m, {"ind": ind, "vals": vals}, constant_inputs={"depth": depth})
        return
    # onnxruntime 1.31 has no OneHot kernel for these index types: onnx.reference is the oracle
    (want,) = ReferenceEvaluator(m).run(None, {"ind": ind, "vals": vals, "depth": depth})
    for t in ("host", "cpu"):
        got = onnxcc.compile(m, t, constant_inputs={"depth": depth}).run({"ind": ind,
                                                                          "vals": vals})["y"]
        np.testing.assert_array_equal(got, want, err_msg=t)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress(axis):
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    cond = np.array([True, False, True])
    attrs = {} if axis is None else {"axis": axis}
    m = node_model("Compress", {"x": x, "cond": cond}, ["y"], opset=11, **attrs)
    check_against_ort(m, {"x": x}, constant_inputs={"cond": cond})


@pytest.mark.parametrize("time_axis", [0, 1])
def test_reverse_sequence(time_axis):
    T, B = 5, 4
    shape = (T, B, 3) if time_axis == 0 else (B, T, 3)
    x = RNG.standard_normal(shape).astype(np.float32)
    lens = np.array([5, 0, 1, 3], np.int64)
    m = node_model("ReverseSequence", {"x": x, "lens": lens}, ["y"], opset=10,
                   time_axis=time_axis, batch_axis=1 - time_axis)
    check_against_ort(m, {"x": x, "lens": lens}, targets=("host", "cpu", "cortex-m4"))


@pytest.mark.parametrize("shape, axes", [((3, 8), None), ((7, 2), None), ((9, 3), [0, -1]),
                                         ((4,), [1]), ((1, 10, 5), None)])
def test_center_crop_pad(shape, axes):
    x = RNG.standard_normal((5, 6, 4) if len(shape) == 3 else (5, 6)).astype(np.float32)
    s = np.array(shape, np.int64)
    attrs = {} if axes is None else {"axes": axes}
    m = node_model("CenterCropPad", {"x": x, "s": s}, ["y"], opset=18, **attrs)
    check_against_ort(m, {"x": x}, constant_inputs={"s": s})
