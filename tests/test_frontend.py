"""Frontend: folding, shape binding, and every kind of bad input the issue lists."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from builders import make_model, ort_run
from onnxcc.errors import (AttributeValueError, ModelLoadError, OnnxccError, ShapeError,
                            UnsupportedOpError)
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
    m = make_model([("Relu", ["x"], ["a"]), ("RandomUniformLike", ["a"], ["b"]),
                    ("Bernoulli", ["b"], ["y"])], {"x": (2, 2)}, {"y": None})
    with pytest.raises(UnsupportedOpError) as e:
        import_onnx(m)
    assert [p[:2] for p in e.value.problems] == [("n1", "RandomUniformLike"), ("n2", "Bernoulli")]


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


@pytest.mark.parametrize("opset", [0, onnx.defs.onnx_opset_version() + 1])
def test_opset_out_of_range(opset):
    m = make_model([("Relu", ["x"], ["y"])], {"x": (2,)}, {"y": (2,)}, opset=opset)
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


# ---- SSA: one producer per tensor, as onnx.checker and onnxruntime require -------------------
def test_two_nodes_producing_one_tensor_are_refused_naming_both():
    m = make_model([("Relu", ["x"], ["y"]), ("Neg", ["x"], ["y"])], {"x": (2,)}, {"y": (2,)})
    with pytest.raises(ModelLoadError) as e:
        import_onnx(m)
    msg = str(e.value)
    assert "'y'" in msg and "'n0'" in msg and "'n1'" in msg and e.value.node == "n1"


def test_constant_node_producing_an_existing_tensor_is_refused():
    c = helper.make_tensor("v", TensorProto.FLOAT, [2], [1.0, 2.0])
    m = make_model([("Relu", ["x"], ["y"]), ("Constant", [], ["y"], {"value": c})],
                   {"x": (2,)}, {"y": (2,)})
    with pytest.raises(ModelLoadError, match="'y' is produced twice"):
        import_onnx(m)


def test_node_output_shadowing_a_graph_input_or_an_initializer_is_refused():
    m = make_model([("Relu", ["x"], ["x"]), ("Neg", ["x"], ["y"])], {"x": (2,)}, {"y": (2,)})
    with pytest.raises(ModelLoadError, match="'x' is produced twice: by graph input and by node 'n0'"):
        import_onnx(m)
    m = make_model([("Relu", ["x"], ["w"]), ("Add", ["x", "w"], ["y"])], {"x": (2,)}, {"y": (2,)},
                   {"w": np.ones(2, np.float32)})
    with pytest.raises(ModelLoadError, match="'w' is produced twice: by initializer"):
        import_onnx(m)


def test_graph_output_that_is_an_input_or_initializer_is_a_valid_passthrough():
    # onnxruntime accepts these (the output is the input / the weight), so onnxcc imports them
    m = make_model([("Relu", ["x"], ["y"])], {"x": (2,)}, {"y": (2,), "x": (2,)})
    assert [v.name for v in import_onnx(m).outputs] == ["y", "x"]
    m = make_model([("Add", ["x", "w"], ["y"])], {"x": (2,)}, {"y": (2,), "w": (2,)},
                   {"w": np.ones(2, np.float32)})
    assert [v.name for v in import_onnx(m).outputs] == ["y", "w"]


# ---- external data of an in-memory model ---------------------------------------------------
def _external_model(tmp_path):
    """(in-memory ModelProto whose weight is external, the weight, the data folder)."""
    w = np.arange(64, dtype=np.float32).reshape(8, 8)
    m = make_model([("MatMul", ["x", "w"], ["y"])], {"x": (1, 8)}, {"y": (1, 8)}, {"w": w})
    onnx.save_model(m, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.data", size_threshold=0)
    return onnx.load(str(tmp_path / "m.onnx"), load_external_data=False), w, tmp_path


def test_in_memory_model_with_external_data_needs_external_data_dir(tmp_path, monkeypatch):
    proto, w, folder = _external_model(tmp_path)
    monkeypatch.chdir(folder)   # the data sits in the current folder: it must not be read from there
    with pytest.raises(ModelLoadError, match="'w'.*external_data_dir") as e:
        import_onnx(proto)
    assert "external_data_dir" in e.value.hint


def test_in_memory_model_reads_external_data_from_the_named_folder_only(tmp_path, monkeypatch):
    import onnxcc

    proto, w, folder = _external_model(tmp_path)
    before = proto.SerializeToString()
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    g = import_onnx(proto, external_data_dir=folder)
    np.testing.assert_array_equal(g.nodes[0].inputs[1].const, w)
    assert proto.SerializeToString() == before   # the caller's proto is not modified
    with pytest.raises(ModelLoadError, match="cannot be read"):
        import_onnx(proto, external_data_dir=other)   # no m.data there
    x = np.ones((1, 8), np.float32)
    y = onnxcc.compile(proto, external_data_dir=folder).run({"x": x})["y"]
    np.testing.assert_allclose(y, x @ w)


def test_external_data_outside_the_named_folder_is_refused(tmp_path):
    proto, w, folder = _external_model(tmp_path)
    inner = folder / "inner"
    inner.mkdir()
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../m.data"
    with pytest.raises(ModelLoadError, match="'w'"):
        import_onnx(proto, external_data_dir=inner)


def test_external_data_dir_with_a_model_file_is_an_error(tmp_path):
    _external_model(tmp_path)
    with pytest.raises(ModelLoadError, match="only for a ModelProto"):
        import_onnx(tmp_path / "m.onnx", external_data_dir=tmp_path)


def test_negative_dim_is_reported_as_negative_not_symbolic():
    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, -3)}, {"y": None})
    with pytest.raises(ShapeError, match="negative") as e:
        import_onnx(m)
    assert "symbolic" not in str(e.value)



def test_minus_one_and_zero_dims_are_unknown_and_bindable():
    m = make_model([("Relu", ["x"], ["y"])], {"x": (-1, 3)}, {"y": None})   # paddle2onnx
    with pytest.warns(UserWarning, match="bound to 1"):
        assert import_onnx(m).inputs[0].shape == (1, 3)
    assert import_onnx(m, {"x": (2, 3)}).inputs[0].shape == (2, 3)
    m = make_model([("Relu", ["x"], ["y"])], {"x": (2, -1)}, {"y": None})
    with pytest.raises(ShapeError, match=r"dim 1 \(-1\) is unknown") as e:
        import_onnx(m)
    assert "input_shapes" in str(e.value)
    m = make_model([("Relu", ["x"], ["y"])], {"x": (0, 3)}, {"y": None})
    assert import_onnx(m).inputs[0].shape == (0, 3)   # the spec's zero size, unless rebound
    assert import_onnx(m, {"x": (4, 3)}).inputs[0].shape == (4, 3)
    with pytest.raises(ShapeError, match="fixed dim 3"):
        import_onnx(m, {"x": (4, 5)})


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_named_dim_binds_every_input_sharing_it(rng, target):
    import onnxcc

    m = make_model([("Add", ["a", "b"], ["y"])], {"a": ("N", "C"), "b": ("N", "C")}, {"y": None})
    cm = onnxcc.compile(m, target, input_shapes={"a": (2, 5)})
    assert [v.shape for v in cm.graph.inputs] == [(2, 5), (2, 5)]
    a, b = rng.standard_normal((2, 5), "f4"), rng.standard_normal((2, 5), "f4")
    np.testing.assert_allclose(cm.run({"a": a, "b": b})["y"], ort_run(m, {"a": a, "b": b})["y"],
                               rtol=1e-6)
    with pytest.raises(ShapeError, match="'N' is bound to 2"):
        import_onnx(m, {"a": (2, 5), "b": (3, 5)})


@pytest.mark.parametrize("kwargs,err,match", [
    ({"input_shapes": {"x": "abc"}}, ShapeError, r"input_shapes\['x'\] is 'abc'"),
    ({"input_shapes": {"x": None}}, ShapeError, r"input_shapes\['x'\] is None"),
    ({"input_shapes": {"x": (1, 2.5)}}, ShapeError, "not a sequence of integer sizes"),
    ({"input_shapes": 5}, ShapeError, "input_shapes is a int"),
    ({"name": 5}, OnnxccError, "name=5 is a int"),
    ({"max_recompute": "a"}, OnnxccError, "max_recompute must be a share"),
    ({"disable_passes": "canonicalize"}, OnnxccError, "is one string"),
    ({"disable_passes": ["plan_memory"]}, OnnxccError, "no passes that may be disabled"),
    ({"disable_passes": ["canonicalise"]}, OnnxccError, "no passes that may be disabled"),
])
def test_compile_arguments_of_the_wrong_kind_are_onnxcc_errors(kwargs, err, match):
    """Arguments of onnxcc.compile that are no valid value raise OnnxccError naming them; they
    were TypeError/ValueError from inside the compiler (input_shapes of a string or None, a name
    or max_recompute of the wrong type), KeyError 'memory_plan' (plan_memory disabled), or were
    ignored (a disable_passes string, a misspelled pass, a size of 2.5 truncated to 2)."""
    import onnxcc

    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, "N")}, {"y": None})
    kwargs = {"input_shapes": {"x": (1, 2)}, **kwargs}
    with pytest.raises(err, match=match):
        onnxcc.compile(m, "host", **kwargs)


def test_dump_dir_that_is_a_file_is_an_output_error(tmp_path):
    """dump_dir naming an existing file: OutputError (was FileExistsError from the pipeline)."""
    import onnxcc
    from onnxcc.errors import OutputError

    (tmp_path / "f").write_text("mine")
    m = make_model([("Relu", ["x"], ["y"])], {"x": (1, 2)}, {"y": None})
    with pytest.raises(OutputError, match="cannot write the IR dump"):
        onnxcc.compile(m, "host", dump_dir=tmp_path / "f")
    assert (tmp_path / "f").read_text() == "mine"
