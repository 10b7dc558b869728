"""Frontend: folding, shape binding, and every kind of bad input the issue lists."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from builders import make_model
from onnxcc.errors import AttributeValueError, ModelLoadError, ShapeError, UnsupportedOpError
from onnxcc.frontend import import_onnx


def test_shape_subgraph_and_constant_of_shape_fold_to_constants():
    shape = np.array([1, 4], np.int64)
    m = make_model([("Shape", ["x"], ["s"]), ("ConstantOfShape", ["c"], ["z"],
                    {"value": helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])}),
                    ("Reshape", ["x", "s2"], ["r"]), ("Add", ["r", "z"], ["y"])],
                   {"x": (2, 2)}, {"y": (1, 4)}, {"c": shape, "s2": shape})
    g = import_onnx(m)
    assert [n.op for n in g.nodes] == ["Reshape", "Add"]
    z = g.nodes[1].inputs[1]
    assert z.is_const and z.const.strides == (0, 0)   # a splat stays a 0-stride view


def test_symbolic_batch_binds_to_one_with_warning_and_input_shapes_binds():
    m = make_model([("Relu", ["x"], ["y"])], {"x": ("N", 3)}, {"y": ("N", 3)})
    with pytest.warns(UserWarning, match="bound to 1"):
        assert import_onnx(m).inputs[0].shape == (1, 3)
    assert import_onnx(m, {"x": (5, 3)}).inputs[0].shape == (5, 3)


def test_unbindable_dim_names_the_input_and_the_remedy():
    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, "W")}, {"y": (1, "W")})
    with pytest.raises(ShapeError, match="input_shapes"):
        import_onnx(m)
    with pytest.raises(ShapeError, match="unknown inputs"):
        import_onnx(m, {"nope": (1, 2)})


def test_truncated_and_non_onnx_files(tmp_path):
    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, 3)}, {"y": (1, 3)})
    data = m.SerializeToString()
    (tmp_path / "t.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "j.onnx").write_text("this is not a model\n" * 5)
    for f in ("t.onnx", "j.onnx", "missing.onnx"):
        with pytest.raises(ModelLoadError):
            import_onnx(tmp_path / f)


def test_every_unsupported_node_listed_at_once():
    m = make_model([("Relu", ["x"], ["a"]), ("Det", ["a"], ["b"]), ("NonZero", ["b"], ["y"])],
                   {"x": (2, 2)}, {"y": None})
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(m)
    assert [p[:2] for p in e.value.problems] == [("n1", "Det"), ("n2", "NonZero")]


def test_custom_domain_is_unsupported():
    node = helper.make_node("Foo", ["x"], ["y"], domain="com.vendor", name="foo")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [1])],
                          [helper.make_tensor_value_info("y", 1, [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.vendor", 1)])
    with pytest.raises(UnsupportedOpError, match="com.vendor.Foo"):
        import_onnx(m)


def test_attribute_outside_spec_and_unknown_attribute():
    m = make_model([("LeakyRelu", ["x"], ["y"], {"bogus": 1})], {"x": (2,)}, {"y": (2,)})
    with pytest.raises(AttributeValueError, match="bogus"):
        import_onnx(m)


def test_opset_out_of_range():
    m = make_model([("Relu", ["x"], ["y"])], {"x": (2,)}, {"y": (2,)}, opset=6)
    with pytest.raises(ModelLoadError, match="convert_version"):
        import_onnx(m)


def test_external_data_loads_from_beside_the_model(tmp_path):
    w = np.arange(64, dtype=np.float32).reshape(8, 8)
    m = make_model([("MatMul", ["x", "w"], ["y"])], {"x": (1, 8)}, {"y": (1, 8)}, {"w": w})
    onnx.save_model(m, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.data", size_threshold=0)
    assert (tmp_path / "m.data").exists()
    g = import_onnx(tmp_path / "m.onnx")
    np.testing.assert_array_equal(g.nodes[0].inputs[1].const, w)


def test_attribute_value_outside_spec_names_node_and_op():
    w = np.ones((2, 1, 3, 3), np.float32)
    m = make_model([("Conv", ["x", "w"], ["y"], {"auto_pad": "BOGUS"})], {"x": (1, 1, 5, 5)},
                   {"y": None}, {"w": w})
    with pytest.raises(AttributeValueError) as e:
        import_onnx(m)
    assert e.value.node == "n0" and e.value.op == "Conv" and "BOGUS" in str(e.value)
