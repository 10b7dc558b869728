"""canonicalize: folding, DCE, Identity/Dropout removal, Sum -> Add, reshape chains."""

import numpy as np
import pytest
from builders import make_model, ort_run
from onnx import TensorProto, helper
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret
from onnxcc.passes import canonicalize as canon_mod
from onnxcc.passes import run_pipeline
from onnxcc.passes.canonicalize import canonicalize
from pass_builders import ops


def _check(model, g, rng, shapes, rtol=1e-6, atol=1e-6):
    feeds = {k: rng.standard_normal(s).astype("f4") for k, s in shapes.items()}
    want = ort_run(model, feeds)
    got = interpret(g, feeds)
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol)


def test_identity_and_dropout_removed(rng):
    model = make_model([("Identity", ["x"], ["a"]), ("Relu", ["a"], ["b"]),
                        ("Dropout", ["b"], ["c"]), ("Identity", ["c"], ["y"])],
                       {"x": (2, 3)}, {"y": (2, 3)})
    g = run_pipeline(import_onnx(model), [canonicalize])
    assert str(g) == "graph g(%x:f32[2,3])\n  %y:f32[2,3] = Relu(%x)\n  return %y"
    _check(model, g, rng, {"x": (2, 3)})


def test_identity_from_input_to_output_stays(rng):
    # negative: forwarding would turn the graph output into the graph input (and rename it)
    model = make_model([("Identity", ["x"], ["y"])], {"x": (4,)}, {"y": (4,)})
    g = run_pipeline(import_onnx(model), [canonicalize])
    assert ops(g) == ["Identity"] and g.outputs[0].name == "y"
    _check(model, g, rng, {"x": (4,)})


def test_dropout_with_used_mask_stays(rng):
    model = make_model([("Dropout", ["x"], ["y", "mask"])], {"x": (4,)}, {"y": (4,), "mask": None})
    model.graph.output[1].type.tensor_type.elem_type = TensorProto.BOOL   # Dropout's mask is bool
    g = run_pipeline(import_onnx(model), [canonicalize])
    assert ops(g) == ["Dropout"]


def test_sum_becomes_adds(rng):
    model = make_model([("Sum", ["x", "z"], ["s"]), ("Sum", ["s", "x", "z"], ["y"])],
                       {"x": (2, 3), "z": (3,)}, {"y": (2, 3)})
    g = run_pipeline(import_onnx(model), [canonicalize])
    assert str(g) == """graph g(%x:f32[2,3], %z:f32[3])
  %s:f32[2,3] = Add(%x, %z)
  %y_sum_0:f32[2,3] = Add(%s, %x)
  %y:f32[2,3] = Add(%y_sum_0, %z)
  return %y"""
    _check(model, g, rng, {"x": (2, 3), "z": (3,)})


def test_reshape_chain_collapses_to_one_reshape(rng):
    shape = np.array([6, 4], np.int64)
    axes = np.array([0], np.int64)
    model = make_model([("Flatten", ["x"], ["f"], {"axis": 2}), ("Reshape", ["f", "k"], ["r"]),
                        ("Unsqueeze", ["r", "axes"], ["u"]), ("Relu", ["u"], ["y"])],
                       {"x": (2, 3, 4)}, {"y": (1, 6, 4)}, {"k": shape, "axes": axes})
    g = run_pipeline(import_onnx(model), [canonicalize])
    assert ops(g) == ["Reshape", "Relu"]
    k = g.nodes[0].inputs[1]
    assert k.is_const and k.const.dtype == np.int64 and k.const.tolist() == [1, 6, 4]
    assert g.nodes[0].inputs[0] is g.inputs[0]
    _check(model, g, rng, {"x": (2, 3, 4)})


def test_single_squeeze_becomes_reshape_and_noop_reshape_goes(rng):
    same = np.array([2, -1], np.int64)
    model = make_model([("Squeeze", ["x"], ["s"]), ("Relu", ["s"], ["r"]),
                        ("Reshape", ["r", "k"], ["t"]), ("Neg", ["t"], ["y"])],
                       {"x": (2, 1, 3)}, {"y": (2, 3)}, {"k": same})
    g = run_pipeline(import_onnx(model), [canonicalize])
    assert ops(g) == ["Reshape", "Relu", "Neg"]
    assert g.nodes[0].inputs[1].const.tolist() == [2, 3]
    _check(model, g, rng, {"x": (2, 1, 3)})


def test_reshape_feeding_output_keeps_name(rng):
    model = make_model([("Relu", ["x"], ["r"]), ("Reshape", ["r", "k"], ["y"])],
                       {"x": (2, 3)}, {"y": (2, 3)}, {"k": np.array([2, 3], np.int64)})
    g = run_pipeline(import_onnx(model), [canonicalize])
    assert ops(g) == ["Relu"] and g.outputs[0].name == "y"
    _check(model, g, rng, {"x": (2, 3)})


def test_constant_folding_after_import_without_folding(rng):
    w = rng.standard_normal((4,)).astype("f4")
    model = make_model([("Unsqueeze", ["w", "axes"], ["wu"]), ("Mul", ["x", "wu"], ["y"])],
                       {"x": (2, 4, 3)}, {"y": (2, 4, 3)},
                       {"w": w, "axes": np.array([1], np.int64)})
    g = import_onnx(model, fold=False)
    assert ops(g) == ["Unsqueeze", "Mul"]
    g = run_pipeline(g, [canonicalize])
    assert ops(g) == ["Mul"] and g.nodes[0].inputs[1].const.shape == (4, 1)
    _check(model, g, rng, {"x": (2, 4, 3)})


def _splat_model():
    value = helper.make_tensor("v", 1, [1], [0.5])
    return make_model([("ConstantOfShape", ["shape"], ["c"], {"value": value}),
                       ("Add", ["x", "c"], ["y"])],
                      {"x": (2, 3, 4)}, {"y": (2, 3, 4)}, {"shape": np.array([3, 4], np.int64)})


def test_splat_stays_a_zero_stride_view(rng, monkeypatch):
    monkeypatch.setattr(canon_mod, "MAX_FOLD_ELEMENTS", 4)  # force the big-output path
    model = _splat_model()
    g = run_pipeline(import_onnx(model, fold=False), [canonicalize])
    assert ops(g) == ["Add"]
    c = g.nodes[0].inputs[1].const
    assert c.shape == (3, 4) and canon_mod.is_splat(c)
    _check(model, g, rng, {"x": (2, 3, 4)})


def test_big_non_splat_result_is_not_folded(rng, monkeypatch):
    monkeypatch.setattr(canon_mod, "MAX_FOLD_ELEMENTS", 4)
    a, b = rng.standard_normal((3, 4)).astype("f4"), rng.standard_normal((3, 4)).astype("f4")
    model = make_model([("Mul", ["a", "b"], ["c"]), ("Add", ["x", "c"], ["y"])],
                       {"x": (3, 4)}, {"y": (3, 4)}, {"a": a, "b": b})
    g = run_pipeline(import_onnx(model, fold=False), [canonicalize])
    assert ops(g) == ["Mul", "Add"]
    _check(model, g, rng, {"x": (3, 4)})


def test_graph_output_is_not_folded(rng):
    w = rng.standard_normal((3,)).astype("f4")
    model = make_model([("Relu", ["x"], ["y"]), ("Neg", ["w"], ["z"])],
                       {"x": (3,)}, {"y": (3,), "z": (3,)}, {"w": w})
    g = run_pipeline(import_onnx(model, fold=False), [canonicalize])
    assert ops(g) == ["Relu", "Neg"] and [v.name for v in g.outputs] == ["y", "z"]
    _check(model, g, rng, {"x": (3,)})


def test_dead_code_removed_and_idempotent(rng):
    model = make_model([("Relu", ["x"], ["y"]), ("Neg", ["x"], ["dead"])], {"x": (3,)}, {"y": (3,)})
    g = run_pipeline(import_onnx(model, fold=False), [canonicalize])
    assert ops(g) == ["Relu"]
    text = str(g)
    assert str(canonicalize(g)) == text


@pytest.mark.parametrize("name", ["squeezenet", "resnet50", "shufflenet"])
def test_zoo_canonicalize_keeps_outputs(name):
    from onnxcc.zoo import zoo_expected_output, zoo_input

    g = run_pipeline(import_onnx(f"zoo:{name}"), [canonicalize])
    assert not {"Identity", "Dropout", "Sum", "Flatten", "Squeeze", "Unsqueeze"} & set(ops(g))
    x = zoo_input(g.inputs[0].shape)
    got = interpret(g, {g.inputs[0].name: x})[g.outputs[0].name]
    np.testing.assert_allclose(got, zoo_expected_output(name), rtol=1e-3, atol=1e-4)
