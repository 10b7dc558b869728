"""fold_batchnorm: BN and per-channel Mul/Add into Conv/Gemm; standalone BN -> Mul + Add."""

import numpy as np
import pytest
from builders import make_model, ort_run
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret
from onnxcc.passes import run_pipeline
from onnxcc.passes.canonicalize import canonicalize
from onnxcc.passes.fold_batchnorm import channel_vector, fold_batchnorm
from pass_builders import ops


def _bn_inits(rng, c, prefix="bn"):
    return {f"{prefix}_s": rng.uniform(0.5, 2, c).astype("f4"),
            f"{prefix}_t": rng.standard_normal(c).astype("f4"),
            f"{prefix}_m": rng.standard_normal(c).astype("f4"),
            f"{prefix}_v": rng.uniform(0.5, 2, c).astype("f4")}


def _bn(x, y, prefix="bn"):
    return ("BatchNormalization", [x] + [f"{prefix}_{k}" for k in "stmv"], [y], {"epsilon": 1e-3})


def _check(model, g, rng, shape, rtol=1e-4, atol=1e-5):
    x = rng.standard_normal(shape).astype("f4")
    name = g.inputs[0].name
    want = ort_run(model, {name: x})
    got = interpret(g, {name: x})
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol)


def test_conv_bn_mul_add_fold_into_conv(rng):
    # densenet121 / inception_v2 shape: Conv -> BN -> Mul (C,1,1) -> Add (C,1,1) -> Relu
    w = rng.standard_normal((4, 3, 3, 3)).astype("f4")
    inits = {"w": w, "k": rng.standard_normal((4, 1, 1)).astype("f4"),
             "t": rng.standard_normal((1, 4, 1, 1)).astype("f4"), **_bn_inits(rng, 4)}
    model = make_model([("Conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}), _bn("c", "b"),
                        ("Mul", ["k", "b"], ["m"]), ("Add", ["m", "t"], ["a"]),
                        ("Relu", ["a"], ["y"])], {"x": (1, 3, 5, 5)}, {"y": (1, 4, 5, 5)}, inits)
    g = run_pipeline(import_onnx(model), [fold_batchnorm])
    assert ops(g) == ["Conv", "Relu"]
    conv = g.nodes[0]
    assert conv.inputs[1].const.shape == w.shape and conv.inputs[2].const.shape == (4,)
    assert conv.inputs[1] is not g.inputs[0] and not np.shares_memory(conv.inputs[1].const, w)
    _check(model, g, rng, (1, 3, 5, 5))


def test_gemm_bn_and_scalar_mul_fold(rng):
    inits = {"w": rng.standard_normal((6, 5)).astype("f4"),
             "c": rng.standard_normal(6).astype("f4"),
             "k": np.array(0.5, "f4"), **_bn_inits(rng, 6)}
    model = make_model([("Gemm", ["x", "w", "c"], ["g"], {"transB": 1, "beta": 0.5}),
                        _bn("g", "b"), ("Mul", ["b", "k"], ["y"])],
                       {"x": (2, 5)}, {"y": (2, 6)}, inits)
    g = run_pipeline(import_onnx(model), [fold_batchnorm])
    assert ops(g) == ["Gemm"] and g.nodes[0].attrs["beta"] == 1.0
    _check(model, g, rng, (2, 5))


def test_standalone_bn_and_affine_chain_merge(rng):
    # densenet121: MaxPool -> BN -> Mul -> Add -> Relu; nothing to fold into
    inits = {"k": rng.standard_normal((3, 1, 1)).astype("f4"),
             "t": rng.standard_normal((3, 1, 1)).astype("f4"), **_bn_inits(rng, 3)}
    model = make_model([("MaxPool", ["x"], ["p"], {"kernel_shape": [2, 2]}), _bn("p", "b"),
                        ("Mul", ["b", "k"], ["m"]), ("Add", ["m", "t"], ["a"]),
                        ("Relu", ["a"], ["y"])], {"x": (1, 3, 6, 6)}, {"y": (1, 3, 5, 5)}, inits)
    g = run_pipeline(import_onnx(model), [fold_batchnorm])
    assert ops(g) == ["MaxPool", "Mul", "Add", "Relu"]
    assert g.nodes[1].inputs[1].const.shape == (3, 1, 1)
    _check(model, g, rng, (1, 3, 6, 6))


def test_no_fold_when_conv_output_has_two_users(rng):
    inits = {"w": rng.standard_normal((4, 3, 1, 1)).astype("f4"), **_bn_inits(rng, 4)}
    model = make_model([("Conv", ["x", "w"], ["c"]), _bn("c", "b"), ("Add", ["b", "c"], ["y"])],
                       {"x": (1, 3, 4, 4)}, {"y": (1, 4, 4, 4)}, inits)
    g = run_pipeline(import_onnx(model), [fold_batchnorm])
    assert ops(g) == ["Conv", "Mul", "Add", "Add"]  # BN became Mul + Add, Conv untouched
    _check(model, g, rng, (1, 3, 4, 4))


def test_no_fold_of_non_per_channel_constant(rng):
    inits = {"w": rng.standard_normal((4, 3, 1, 1)).astype("f4"),
             "k": rng.standard_normal((4, 1)).astype("f4")}  # varies along H, not channels
    model = make_model([("Conv", ["x", "w"], ["c"]), ("Mul", ["c", "k"], ["y"])],
                       {"x": (1, 3, 4, 1)}, {"y": (1, 4, 4, 1)}, inits)
    g = run_pipeline(import_onnx(model), [fold_batchnorm])
    assert ops(g) == ["Conv", "Mul"]
    _check(model, g, rng, (1, 3, 4, 1))


def test_no_fold_when_weights_are_not_constant(rng):
    model = make_model([("Conv", ["x", "w"], ["c"]), _bn("c", "y")],
                       {"x": (1, 2, 3, 3), "w": (2, 2, 1, 1)}, {"y": (1, 2, 3, 3)},
                       _bn_inits(rng, 2))
    g = run_pipeline(import_onnx(model), [fold_batchnorm])
    assert ops(g) == ["Conv", "Mul", "Add"]


@pytest.mark.parametrize("shape,ok", [((4, 1, 1), True), ((1, 4, 1, 1), True), ((), True),
                                      ((1,), True), ((4,), False), ((1, 4, 2, 1), False)])
def test_channel_vector(shape, ok):
    c = np.arange(int(np.prod(shape)), dtype="f4").reshape(shape) + 1
    v = channel_vector(c, (1, 4, 2, 2), 1)
    assert (v is not None) == ok
    if ok:
        assert v.shape == (4,)
        np.testing.assert_array_equal(np.broadcast_to(c, (1, 4, 2, 2))[0, :, 0, 0], v)


@pytest.mark.parametrize("name", ["densenet121", "inception_v2", "resnet50"])
def test_zoo_batchnorms_fold(name):
    from onnxcc.zoo import zoo_expected_output, zoo_input

    g = run_pipeline(import_onnx(f"zoo:{name}"), [canonicalize, fold_batchnorm, canonicalize])
    assert "BatchNormalization" not in ops(g)
    if name != "densenet121":  # every BN there follows a Conv
        assert "Mul" not in ops(g)
    x = zoo_input(g.inputs[0].shape)
    got = interpret(g, {g.inputs[0].name: x})[g.outputs[0].name]
    np.testing.assert_allclose(got, zoo_expected_output(name), rtol=1e-3, atol=1e-4)
