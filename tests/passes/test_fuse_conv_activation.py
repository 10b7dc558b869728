"""fuse_conv_activation: Conv/Gemm/MatMul + bias + activation -> FusedConv/FusedGemm."""

import numpy as np
import pytest
from builders import make_model, ort_run
from onnxcc.errors import AttributeValueError
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret
from onnxcc.passes import run_pipeline
from onnxcc.passes.fuse_conv_activation import fuse_conv_activation
from pass_builders import ops


def _check(model, g, rng, shapes, rtol=1e-5, atol=1e-5):
    feeds = {k: rng.standard_normal(s).astype("f4") for k, s in shapes.items()}
    want, got = ort_run(model, feeds), interpret(g, feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol)


def test_conv_bias_add_relu(rng):
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype("f4"),
             "b": rng.standard_normal(4).astype("f4"),
             "k": rng.standard_normal((4, 1, 1)).astype("f4")}
    model = make_model([("Conv", ["x", "w", "b"], ["c"], {"strides": [2, 2]}),
                        ("Add", ["k", "c"], ["a"]), ("Relu", ["a"], ["y"])],
                       {"x": (1, 3, 7, 7)}, {"y": (1, 4, 3, 3)}, inits)
    g = run_pipeline(import_onnx(model), [fuse_conv_activation])
    assert ops(g) == ["onnxcc.FusedConv"]
    n = g.nodes[0]
    assert n.attrs["activation"] == "Relu" and n.attrs["activation_attrs"] == ()
    assert tuple(n.attrs["strides"]) == (2, 2) and n.inputs[1].name == "w"
    _check(model, g, rng, {"x": (1, 3, 7, 7)})


@pytest.mark.parametrize("act,attrs,extra", [
    ("LeakyRelu", {"alpha": 0.2}, {}), ("Clip", {}, {"lo": np.array(0, "f4"),
                                                     "hi": np.array(6, "f4")}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, {}), ("Sigmoid", {}, {})])
def test_matmul_add_activation_becomes_fused_gemm(rng, act, attrs, extra):
    inits = {"w": rng.standard_normal((5, 3)).astype("f4"),
             "c": rng.standard_normal(3).astype("f4"), **extra}
    model = make_model([("MatMul", ["x", "w"], ["m"]), ("Add", ["m", "c"], ["a"]),
                        (act, ["a", *extra], ["y"], attrs)], {"x": (2, 5)}, {"y": (2, 3)}, inits)
    g = run_pipeline(import_onnx(model), [fuse_conv_activation])
    assert ops(g) == ["onnxcc.FusedGemm"]
    n = g.nodes[0]
    assert (n.attrs["alpha"], n.attrs["beta"], n.attrs["transA"], n.attrs["transB"]) == (1, 1, 0, 0)
    assert n.attrs["activation"] == act
    if act == "Clip":
        assert n.attrs["activation_attrs"] == (("max", 6.0), ("min", 0.0))
    _check(model, g, rng, {"x": (2, 5)})


def test_gemm_add_without_activation_stays_gemm(rng):
    inits = {"w": rng.standard_normal((3, 5)).astype("f4"),
             "c": rng.standard_normal(3).astype("f4"),
             "k": rng.standard_normal((2, 3)).astype("f4")}
    model = make_model([("Gemm", ["x", "w", "c"], ["m"], {"transB": 1, "beta": 0.5}),
                        ("Add", ["m", "k"], ["y"])], {"x": (2, 5)}, {"y": (2, 3)}, inits)
    g = run_pipeline(import_onnx(model), [fuse_conv_activation])
    assert ops(g) == ["Gemm"] and g.nodes[0].attrs["beta"] == 1.0
    assert g.nodes[0].inputs[2].shape == (2, 3)
    _check(model, g, rng, {"x": (2, 5)})


def test_conv_with_two_users_is_not_fused(rng):
    inits = {"w": rng.standard_normal((2, 2, 1, 1)).astype("f4")}
    model = make_model([("Conv", ["x", "w"], ["c"]), ("Relu", ["c"], ["r"]),
                        ("Add", ["r", "c"], ["y"])],
                       {"x": (1, 2, 3, 3)}, {"y": (1, 2, 3, 3)}, inits)
    g = run_pipeline(import_onnx(model), [fuse_conv_activation])
    assert ops(g) == ["Conv", "Relu", "Add"]
    _check(model, g, rng, {"x": (1, 2, 3, 3)})


def test_non_epilogue_and_non_scalar_clip_are_not_fused(rng):
    inits = {"w": rng.standard_normal((4, 3)).astype("f4"), "hi": np.full((2, 3), 0.5, "f4")}
    model = make_model([("MatMul", ["x", "w"], ["m"]), ("Clip", ["m", "", "hi"], ["c"]),
                        ("MatMul", ["x", "w"], ["m2"]), ("Exp", ["m2"], ["e"])],
                       {"x": (2, 4)}, {"c": (2, 3), "e": (2, 3)}, inits)
    # A (2, 3) Clip bound is outside the spec (min/max are scalars): refused at import, so it
    # can never reach the fusion; Exp is no epilogue and stays a node of its own.
    with pytest.raises(AttributeValueError, match=r"max must be a scalar, got shape \[2, 3\]"):
        import_onnx(model)
    model = make_model([("MatMul", ["x", "w"], ["m2"]), ("Exp", ["m2"], ["e"])],
                       {"x": (2, 4)}, {"e": (2, 3)}, {"w": inits["w"]})
    g = run_pipeline(import_onnx(model), [fuse_conv_activation])
    assert ops(g) == ["MatMul", "Exp"]


def test_batched_matmul_is_not_a_gemm(rng):
    inits = {"w": rng.standard_normal((4, 3)).astype("f4"),
             "c": rng.standard_normal(3).astype("f4")}
    model = make_model([("MatMul", ["x", "w"], ["m"]), ("Add", ["m", "c"], ["y"])],
                       {"x": (2, 2, 4)}, {"y": (2, 2, 3)}, inits)
    g = run_pipeline(import_onnx(model), [fuse_conv_activation])
    assert ops(g) == ["MatMul", "Add"]


def test_clip_attributes_before_opset_11(rng):
    inits = {"w": rng.standard_normal((2, 2, 1, 1)).astype("f4")}
    model = make_model([("Conv", ["x", "w"], ["c"]),
                        ("Clip", ["c"], ["y"], {"min": -0.1, "max": 0.2})],
                       {"x": (1, 2, 3, 3)}, {"y": (1, 2, 3, 3)}, inits, opset=9)
    g = run_pipeline(import_onnx(model), [fuse_conv_activation])
    assert ops(g) == ["onnxcc.FusedConv"]
    pairs = dict(g.nodes[0].attrs["activation_attrs"])
    assert pairs == pytest.approx({"max": 0.2, "min": -0.1})
    _check(model, g, rng, {"x": (1, 2, 3, 3)})
