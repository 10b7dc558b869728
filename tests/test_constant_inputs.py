"""constant_inputs / --constant-input: graph inputs bound as constants at compile time where
onnxcc needs their values (shapes); parameters that only enter the arithmetic (Clip's bounds,
Pad's constant value) stay runtime inputs."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import onnxcc
from builders import make_model, ort_run
from onnxcc.cli import main
from onnxcc.errors import ShapeError

TARGETS = ["host", "cpu"]


def _with_input(m, name, elem, shape):
    m.graph.input.append(helper.make_tensor_value_info(name, elem, shape))
    return m


def _unsqueeze():
    m = make_model([("Unsqueeze", ["x", "axes"], ["y"])], {"x": (2, 3)}, {"y": None}, opset=13)
    return _with_input(m, "axes", TensorProto.INT64, [1])


@pytest.mark.parametrize("target", TARGETS)
def test_shape_parameter_bound_by_constant_inputs(rng, target):
    m, x = _unsqueeze(), rng.standard_normal((2, 3), "f4")
    cm = onnxcc.compile(m, target, constant_inputs={"axes": np.array([1])})
    assert [v.name for v in cm.graph.inputs] == ["x"]
    got = cm.run({"x": x})["y"]
    np.testing.assert_array_equal(got, ort_run(m, {"x": x, "axes": np.array([1])})["y"])


def test_missing_binding_names_the_input_and_the_option():
    with pytest.raises(ShapeError) as e:
        onnxcc.compile(_unsqueeze(), "host")
    text = str(e.value)
    assert "'n0' (Unsqueeze)" in text and "graph input 'axes'" in text
    assert "constant_inputs={'axes': ...}" in text and "--constant-input axes=" in text


def test_computed_parameter_names_its_graph_inputs():
    m = make_model([("Add", ["s", "one"], ["s1"]), ("Reshape", ["x", "s1"], ["y"])],
                   {"x": (2, 3)}, {"y": None}, {"one": np.array([1, 0])}, opset=13)
    m = _with_input(m, "s", TensorProto.INT64, [2])
    with pytest.raises(ShapeError, match=r"graph input\(s\) 's'.*constant_inputs"):
        onnxcc.compile(m, "host")
    cm = onnxcc.compile(m, "host", constant_inputs={"s": [2, 2]})   # s + [1, 0] = (3, 2)
    assert cm.graph.outputs[0].shape == (3, 2)


def test_bad_bindings_are_refused_by_name():
    m = _unsqueeze()
    with pytest.raises(ShapeError, match="unknown inputs"):
        onnxcc.compile(m, "host", constant_inputs={"nope": [1]})
    with pytest.raises(ShapeError, match="without changing values"):
        onnxcc.compile(m, "host", constant_inputs={"axes": [1.5]})
    with pytest.raises(ShapeError, match="declares"):
        onnxcc.compile(m, "host", constant_inputs={"axes": [1, 2]})
    with pytest.raises(ShapeError, match="both input_shapes and constant_inputs"):
        onnxcc.compile(m, "host", constant_inputs={"axes": [1]}, input_shapes={"axes": (1,)})


@pytest.mark.parametrize("target", TARGETS)
def test_clip_bounds_are_runtime_inputs(rng, target):
    x = rng.standard_normal((3, 5), "f4")
    m = make_model([("Clip", ["x", "lo", "hi"], ["y"])], {"x": x.shape, "lo": (), "hi": ()},
                   {"y": None}, opset=13)
    cm = onnxcc.compile(m, target)
    for lo, hi in ((-0.5, 0.3), (0.1, 2.0)):
        feeds = {"x": x, "lo": np.array(lo, "f4"), "hi": np.array(hi, "f4")}
        np.testing.assert_array_equal(cm.run(feeds)["y"], ort_run(m, feeds)["y"])


@pytest.mark.parametrize("target", TARGETS)
def test_pad_constant_value_is_a_runtime_input(rng, target):
    x = rng.standard_normal((2, 3), "f4")
    m = make_model([("Pad", ["x", "pads", "v"], ["y"])], {"x": x.shape, "v": ()}, {"y": None},
                   {"pads": np.array([1, 0, 0, 2])}, opset=13)
    cm = onnxcc.compile(m, target)
    for v in (0.5, -3.0):
        feeds = {"x": x, "v": np.array(v, "f4")}
        np.testing.assert_array_equal(cm.run(feeds)["y"], ort_run(m, feeds)["y"])


def test_cli_constant_input(tmp_path, rng, capsys):
    path = tmp_path / "u.onnx"
    path.write_bytes(_unsqueeze().SerializeToString())
    x = rng.standard_normal((2, 3), "f4")
    np.savez(tmp_path / "x.npz", x=x)
    assert main(["run", str(path), "--constant-input", "axes=0", "--inputs",
                 str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["y"], x[None])
    assert main(["check", str(path)]) == 2
    assert "--constant-input axes=" in capsys.readouterr().err
    assert main(["check", str(path), "--constant-input", "axes=one"]) == 2
    assert "NAME=V0,V1" in capsys.readouterr().err


def test_feeding_a_bound_input_is_refused_by_name(rng):
    cm = onnxcc.compile(_unsqueeze(), "host", constant_inputs={"axes": [1]})
    with pytest.raises(ShapeError, match=r"\['axes'\] were bound at compile time"):
        cm.run({"x": rng.standard_normal((2, 3), "f4"), "axes": np.array([1])})


def test_scalar_binding_keeps_rank_0():
    # a rank-0 input bound with constant_inputs stays rank 0 (np.ascontiguousarray made it [1])
    m = make_model([("Add", ["x", "s"], ["y"])], {"x": (), "s": ()}, {"y": ()})
    cm = onnxcc.compile(m, "host", constant_inputs={"s": np.float32(2.0)})
    got = cm.run({"x": np.array(1.0, np.float32)})["y"]
    assert got.shape == () and got == 3.0
