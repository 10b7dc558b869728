"""The pattern language and the greedy rewrite driver (passes/pattern.py)."""

import numpy as np
import pytest
from builders import make_model, ort_run
from onnxcc.errors import OnnxccError
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret
from onnxcc.ir import Node, TensorType, Value
from onnxcc.passes.pattern import Any, Const, Op, match, rewrite
from pass_builders import ops

X, C = Any("x"), Const("c")


def _relu_add_model(rng, c_first=False):
    c = rng.standard_normal((4,)).astype("f4")
    add_in = ["c", "x"] if c_first else ["x", "c"]
    return make_model([("Add", add_in, ["t"]), ("Relu", ["t"], ["y"])],
                      {"x": (2, 4)}, {"y": (2, 4)}, {"c": c})


def _to_leaky(m):  # Relu(Add(x, c)) -> LeakyRelu(Add(x, c)) with alpha 0: same values
    return Node("LeakyRelu", [m["add"].outputs[0]], m.root.outputs, {"alpha": 0.0}, m.root.name)


def test_match_binds_names_and_commutes(rng):
    g = import_onnx(_relu_add_model(rng, c_first=True))
    plain = Op("Relu", Op("Add", X, C, name="add"))
    both = Op("Relu", Op("Add", X, C, name="add", commute=True))
    assert match(g, plain, g.nodes[1]) is None
    m = match(g, both, g.nodes[1])
    assert m is not None and m["x"] is g.inputs[0] and m["add"] is g.nodes[0]
    assert m.root is g.nodes[1] and m["c"].is_const


def test_rewrite_replaces_root_and_keeps_output_name(rng):
    model = _relu_add_model(rng)
    g = rewrite(import_onnx(model), [(Op("Relu", Op("Add", X, C, name="add")), _to_leaky)])
    assert ops(g) == ["Add", "LeakyRelu"] and g.outputs[0].name == "y"
    x = rng.standard_normal((2, 4)).astype("f4")
    np.testing.assert_allclose(interpret(g, x=x)["y"], ort_run(model, {"x": x})["y"], rtol=1e-6)


def test_fused_replacement_removes_single_use_interior(rng):
    def fuse(m):
        body = (("Add", (), (0, 1)), ("Relu", (), (-1,)))
        return Node("onnxcc.FusedElementwise", [m["x"], m["c"]], m.root.outputs, {"body": body})

    model = _relu_add_model(rng)
    g = rewrite(import_onnx(model), [(Op("Relu", Op("Add", X, C)), fuse)])
    assert ops(g) == ["onnxcc.FusedElementwise"]
    g.verify()
    x = rng.standard_normal((2, 4)).astype("f4")
    np.testing.assert_allclose(interpret(g, x=x)["y"], ort_run(model, {"x": x})["y"], rtol=1e-6)


def test_one_use_blocks_interior_with_two_users(rng):
    c = rng.standard_normal((4,)).astype("f4")
    model = make_model([("Add", ["x", "c"], ["t"]), ("Relu", ["t"], ["y"]), ("Neg", ["t"], ["z"])],
                       {"x": (2, 4)}, {"y": (2, 4), "z": (2, 4)}, {"c": c})
    g = import_onnx(model)
    before = str(g)
    assert rewrite(g, [(Op("Relu", Op("Add", X, C, name="add")), _to_leaky)]) is g
    assert str(g) == before  # t has two users: no match, nothing touched
    relaxed = Op("Relu", Op("Add", X, C, name="add", one_use=False))
    g = rewrite(g, [(relaxed, _to_leaky)])
    assert ops(g) == ["Add", "LeakyRelu", "Neg"]  # the Add stays: Neg still reads it
    x = rng.standard_normal((2, 4)).astype("f4")
    got, want = interpret(g, x=x), ort_run(model, {"x": x})
    for k in ("y", "z"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6)


def test_ellipsis_and_where(rng):
    g = import_onnx(_relu_add_model(rng))
    assert match(g, Op("Add", X, ...), g.nodes[0]) is not None
    assert match(g, Op("Add", X), g.nodes[0]) is None
    assert match(g, Op(None, where=lambda n: n.op == "Add"), g.nodes[0]) is not None
    assert match(g, Op("Add", X, Const(where=lambda v: v.shape == (9,))), g.nodes[0]) is None


def test_none_means_no_change(rng):
    g = import_onnx(_relu_add_model(rng))
    before = str(g)
    rewrite(g, [(Op("Relu", Op("Add", X, C)), lambda m: None)])
    assert str(g) == before


def test_value_result_forwards_readers(rng):
    c = rng.standard_normal((4,)).astype("f4")
    model = make_model([("Neg", ["x"], ["a"]), ("Neg", ["a"], ["b"]), ("Add", ["b", "c"], ["y"])],
                       {"x": (2, 4)}, {"y": (2, 4)}, {"c": c})
    g = rewrite(import_onnx(model), [(Op("Neg", Op("Neg", X)), lambda m: m["x"])])
    assert ops(g) == ["Add"] and g.nodes[0].inputs[0] is g.inputs[0]
    x = rng.standard_normal((2, 4)).astype("f4")
    np.testing.assert_allclose(interpret(g, x=x)["y"], ort_run(model, {"x": x})["y"], rtol=1e-6)


def test_non_convergence_names_the_patterns(rng):
    g = import_onnx(_relu_add_model(rng))

    def relu_to_leaky(m):
        return Node("LeakyRelu", m.root.inputs, m.root.outputs, {"alpha": 0.0}, m.root.name)

    def leaky_to_relu(m):
        return Node("Relu", m.root.inputs, m.root.outputs, {}, m.root.name)

    with pytest.raises(OnnxccError, match="relu_to_leaky.*leaky_to_relu|leaky_to_relu.*relu"):
        rewrite(g, [(Op("Relu"), relu_to_leaky), (Op("LeakyRelu"), leaky_to_relu)], max_iters=5)


def test_new_values_replace_root_outputs_positionally(rng):
    def via_new_value(m):
        out = m.root.outputs[0]
        t = Value(m.graph.fresh_name("t"), TensorType(out.shape, out.dtype))
        return [Node("Neg", [m["x"]], [t], {}, "n1"), Node("Neg", [t], [Value("u", out.type)],
                                                             {}, "n2")]

    model = make_model([("Abs", ["x"], ["y"])], {"x": (3,)}, {"y": (3,)})
    g = rewrite(import_onnx(model), [(Op("Abs", X), via_new_value)])
    assert ops(g) == ["Neg", "Neg"] and g.outputs[0].name == "y"
    g.verify()
