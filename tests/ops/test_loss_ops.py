"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss through the public API on host C, cpu
LLVM and an MCU target, against onnxruntime: every reduction, ignore_index (also negative and
absent from the targets), weights, the optional log_prob output, extra dims d1..dk, float64, a
splat input; the reference interpreter against onnxruntime; the errors a user can cause."""

from __future__ import annotations

import numpy as np
import onnxcc
import pytest
from builders import check_against_ort, node_model, ort_run
from onnxcc.errors import AttributeValueError, ShapeError
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret


def _feeds(shape, C, ii=None, dtype=np.float32, tdtype=np.int64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.integers(0, C, (shape[0],) + tuple(shape[2:])).astype(tdtype)
    if ii is not None:
        t.reshape(-1)[::3] = ii
    return x, t


@pytest.mark.parametrize("op", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ii", [None, 2, -1])
def test_reductions_weights_ignore_index(op, reduction, weighted, ii):
    x, t = _feeds((3, 5, 2, 4), 5, ii)
    w = np.random.default_rng(1).uniform(0.5, 2, 5).astype(np.float32)
    attrs = {"reduction": reduction} | ({} if ii is None else {"ignore_index": ii})
    feeds = {"x": x, "t": t} | ({"w": w} if weighted else {})
    m = node_model(op, feeds, ["loss"], opset=13, **attrs)
    check_against_ort(m, feeds, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_softmax_cross_entropy_log_prob_output(reduction):
    x, t = _feeds((4, 6, 3), 6, ii=0)
    m = node_model("SoftmaxCrossEntropyLoss", {"x": x, "t": t}, ["loss", "log_prob"], opset=13,
                   reduction=reduction, ignore_index=0)
    check_against_ort(m, {"x": x, "t": t}, targets=("host", "cpu", "cortex-m4"), atol=1e-5)


def test_two_dims_float64_int32_targets_and_constant_weight():
    x, t = _feeds((6, 4), 4, dtype=np.float64, tdtype=np.int32)
    w = np.array([1.0, 0.5, 2.0, 0.0])
    m = node_model("NegativeLogLikelihoodLoss", {"x": x, "t": t}, ["loss"], inits={"w": w},
                   opset=22)
    check_against_ort(m, {"x": x, "t": t}, rtol=1e-12, atol=1e-12)


def test_every_target_ignored_gives_nan_mean():
    # onnxruntime and the reference divide 0 by a weight sum of 0
    x, t = _feeds((2, 3), 3)
    t[:] = 1
    m = node_model("NegativeLogLikelihoodLoss", {"x": x, "t": t}, ["loss"], opset=13,
                   ignore_index=1)
    want = check_against_ort(m, {"x": x, "t": t})
    assert np.isnan(want["loss"])


def test_reference_interpreter_agrees_with_onnxruntime():
    x, t = _feeds((2, 5, 3), 5, ii=4)
    w = np.linspace(0.5, 1.5, 5).astype(np.float32)
    feeds = {"x": x, "t": t, "w": w}
    m = node_model("SoftmaxCrossEntropyLoss", feeds, ["loss", "log_prob"], opset=13,
                   reduction="sum", ignore_index=4)
    got = interpret(import_onnx(m), feeds)
    for k, v in ort_run(m, feeds).items():
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6)


def test_out_of_range_target_is_clamped_by_the_kernel_and_refused_by_the_reference():
    x, t = _feeds((2, 3), 3)
    t[0] = 7    # an error in the spec: the compiled kernel reads class 2 (clamped), never past x
    m = node_model("NegativeLogLikelihoodLoss", {"x": x, "t": t}, ["loss"], opset=13,
                   reduction="none")
    got = onnxcc.compile(m, "host").run({"x": x, "t": t})["loss"]
    np.testing.assert_allclose(got, [-x[0, 2], -x[1, t[1]]])
    with pytest.raises(IndexError, match="outside"):
        interpret(import_onnx(m), {"x": x, "t": t})


def test_bad_reduction_and_shapes_are_refused_by_name():
    x, t = _feeds((2, 3), 3)
    m = node_model("NegativeLogLikelihoodLoss", {"x": x, "t": t}, ["loss"], opset=13)
    m.graph.node[0].attribute.append(__import__("onnx").helper.make_attribute("reduction", "avg"))
    with pytest.raises(AttributeValueError, match="reduction 'avg'"):
        onnxcc.compile(m, "host")
    m = node_model("NegativeLogLikelihoodLoss", {"x": x, "t": t[:1]}, ["loss"], opset=13)
    with pytest.raises(ShapeError, match="target shape"):
        onnxcc.compile(m, "host")
