"""fuse_elementwise: single-use elementwise chains -> onnxcc.FusedElementwise."""

import numpy as np
from builders import make_model, ort_run
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret
from onnxcc.ir import Graph, Node, TensorType, Value
from onnxcc.passes import run_pipeline
from onnxcc.passes.fuse_elementwise import fuse_elementwise
from pass_builders import ops


def _check(model, g, rng, shapes, rtol=1e-5, atol=1e-6):
    feeds = {k: rng.standard_normal(s).astype("f4") for k, s in shapes.items()}
    want, got = ort_run(model, feeds), interpret(g, feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol)


def test_residual_add_relu(rng):
    model = make_model([("Add", ["x", "r"], ["a"]), ("Relu", ["a"], ["y"])],
                       {"x": (1, 4, 3, 3), "r": (1, 4, 3, 3)}, {"y": (1, 4, 3, 3)})
    g = run_pipeline(import_onnx(model), [fuse_elementwise])
    assert str(g) == """graph g(%x:f32[1,4,3,3], %r:f32[1,4,3,3])
  %y:f32[1,4,3,3] = onnxcc.FusedElementwise(%x, %r) {body=[['Add',[],[0,1]],['Relu',[],[-1]]]}
  return %y"""
    _check(model, g, rng, {"x": (1, 4, 3, 3), "r": (1, 4, 3, 3)})


def test_tree_with_constants_and_attrs(rng):
    k, t = rng.standard_normal((3, 1, 1)).astype("f4"), rng.standard_normal((3, 1, 1)).astype("f4")
    model = make_model([("Mul", ["x", "k"], ["m"]), ("Add", ["m", "t"], ["a"]),
                        ("Sigmoid", ["z"], ["s"]), ("Mul", ["a", "s"], ["p"]),
                        ("LeakyRelu", ["p"], ["y"], {"alpha": 0.3})],
                       {"x": (1, 3, 4, 4), "z": (1, 3, 4, 4)}, {"y": (1, 3, 4, 4)},
                       {"k": k, "t": t})
    g = run_pipeline(import_onnx(model), [fuse_elementwise])
    assert ops(g) == ["onnxcc.FusedElementwise"]
    n = g.nodes[0]
    assert [v.name for v in n.inputs] == ["x", "k", "t", "z"]
    leaky = ("LeakyRelu", (("alpha", np.float32(0.3)),), (-4,))
    assert n.attrs["body"] == (("Sigmoid", (), (3,)), ("Mul", (), (0, 1)), ("Add", (), (-2, 2)),
                               ("Mul", (), (-3, -1)), leaky)
    _check(model, g, rng, {"x": (1, 3, 4, 4), "z": (1, 3, 4, 4)})


def test_shared_input_is_deduplicated(rng):
    model = make_model([("Mul", ["x", "x"], ["a"]), ("Sub", ["a", "x"], ["y"])],
                       {"x": (5,)}, {"y": (5,)})
    g = run_pipeline(import_onnx(model), [fuse_elementwise])
    assert [v.name for v in g.nodes[0].inputs] == ["x"]
    assert g.nodes[0].attrs["body"] == (("Mul", (), (0, 0)), ("Sub", (), (-1, 0)))
    _check(model, g, rng, {"x": (5,)})


def test_not_fused_when_shape_grows_or_two_users_or_int(rng):
    model = make_model([("Neg", ["v"], ["n"]), ("Add", ["n", "x"], ["a"]),  # n is (4,), a (2,4)
                        ("Relu", ["a"], ["r"]), ("Exp", ["a"], ["e"])],      # a has two users
                       {"v": (4,), "x": (2, 4)}, {"r": (2, 4), "e": (2, 4)})
    g = run_pipeline(import_onnx(model), [fuse_elementwise])
    assert ops(g) == ["Neg", "Add", "Relu", "Exp"]
    _check(model, g, rng, {"v": (4,), "x": (2, 4)})


def test_castlike_with_a_larger_dtype_source_not_fused(rng):
    # y = Sqrt(CastLike(c, x)) with c a scalar and x (3, 4): y stays a scalar
    model = make_model([("CastLike", ["c", "x"], ["t"]), ("Sqrt", ["t"], ["s"]),
                        ("Mul", ["x", "s"], ["y"])], {"x": (3, 4)}, {"y": (3, 4)},
                       {"c": np.array(2.0, np.float32)})
    g = run_pipeline(import_onnx(model, fold=False), [fuse_elementwise])
    assert ops(g) == ["CastLike", "Sqrt", "Mul"]
    assert g.nodes[0].outputs[0].shape == ()
    _check(model, g, rng, {"x": (3, 4)})


def test_graph_output_producer_not_absorbed(rng):
    model = make_model([("Relu", ["x"], ["a"]), ("Neg", ["a"], ["y"])],
                       {"x": (3,)}, {"a": (3,), "y": (3,)})
    g = run_pipeline(import_onnx(model), [fuse_elementwise])
    assert ops(g) == ["Relu", "Neg"]


def test_bool_intermediate_not_fused(rng):
    model = make_model([("Greater", ["x", "z"], ["c"]), ("Where", ["c", "x", "z"], ["y"])],
                       {"x": (3,), "z": (3,)}, {"y": (3,)})
    g = run_pipeline(import_onnx(model), [fuse_elementwise])
    assert ops(g) == ["Greater", "Where"]


def test_fused_elementwise_broadcasts_inputs():
    x = Value("x", TensorType((2, 1), np.float32))
    c = Value("c", TensorType((3,), np.float32), const=np.arange(3, dtype="f4"))
    y = Value("y", TensorType((2, 3), np.float32))
    body = (("Add", (), (0, 1)), ("Neg", (), (-1,)))
    n = Node("onnxcc.FusedElementwise", [x, c], [y], {"body": body}, "f")
    y.producer = n
    g = Graph([n], [x], [y])
    g.verify()
    got = interpret(g, x=np.array([[1], [2]], "f4"))["y"]
    np.testing.assert_array_equal(got, -(np.array([[1], [2]], "f4") + np.arange(3, dtype="f4")))


def test_fused_castlike_takes_its_targets_dtype(rng):
    """CastLike inside a fused chain yields its second input's dtype: an int64 input cast like
    x, then divided into x, compiles (it failed verify: f32 / i64) and matches onnxruntime."""
    import onnxcc
    from onnx import TensorProto, helper

    nodes = [helper.make_node("CastLike", ["k", "x"], ["kf"]),
             helper.make_node("Div", ["x", "kf"], ["d"]), helper.make_node("Add", ["d", "x"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
                                       helper.make_tensor_value_info("k", TensorProto.INT64, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    m = onnxcc.compile(model, "host")
    assert any(n.op == "onnxcc.FusedElementwise" for n in m.graph.nodes)
    feeds = {"x": rng.standard_normal((2, 3)).astype(np.float32),
             "k": rng.integers(1, 9, (2, 3)).astype(np.int64)}
    np.testing.assert_allclose(m.run(feeds)["y"], ort_run(model, feeds)["y"], rtol=1e-6)
