"""NonZero, Unique and NonMaxSuppression (``onnxcc.ops.data_dependent``): their output length
depends on the input values, so they fold at compile time when their inputs are known
(initializers or ``constant_inputs``) and are refused by name otherwise."""

import numpy as np
import onnxcc
import pytest
from builders import IR_VERSION, ort_run
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnxcc.errors import ShapeError


def _model(nodes, inputs, outputs, inits=(), opset=13):
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m


def _nonzero_model():
    """y = float(NonZero(x)) + z, x (3,4) a graph input."""
    return _model([h.make_node("NonZero", ["x"], ["i"], name="nz"),
                   h.make_node("Cast", ["i"], ["c"], to=T.FLOAT),
                   h.make_node("Add", ["c", "z"], ["y"])],
                  [h.make_tensor_value_info("x", T.FLOAT, [3, 4]),
                   h.make_tensor_value_info("z", T.FLOAT, [1])],
                  [h.make_tensor_value_info("y", T.FLOAT, None)])


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_nonzero_of_a_bound_input_folds_and_matches_onnxruntime(target):
    x = np.array([[1, 0, 2, 0], [0, 0, 3, 1], [4, 0, 0, 0]], np.float32)
    z = np.array([0.5], np.float32)
    m = _nonzero_model()
    cm = onnxcc.compile(m, target, constant_inputs={"x": x})
    assert [n.op for n in cm.graph.nodes] == ["Add"]          # NonZero and Cast folded
    np.testing.assert_array_equal(cm.run({"z": z})["y"], ort_run(m, {"x": x, "z": z})["y"])


def test_nonzero_of_a_runtime_input_is_refused_by_name():
    with pytest.raises(ShapeError) as e:
        onnxcc.compile(_nonzero_model(), "host")
    text = str(e.value)
    assert "'nz' (NonZero)" in text and "'x'" in text and "constant_inputs" in text


@pytest.mark.parametrize("axis", [None, 0])
def test_unique_of_an_initializer_folds_every_output(axis):
    x = np.array([[2, 1], [1, 3], [2, 1], [4, 4]], np.float32)
    attrs = {"sorted": 1} | ({} if axis is None else {"axis": axis})
    m = _model([h.make_node("Unique", ["x"], ["u", "idx", "inv", "cnt"], **attrs),
                h.make_node("Mul", ["u", "z"], ["y"])],
               [h.make_tensor_value_info("z", T.FLOAT, [1])],
               [h.make_tensor_value_info("y", T.FLOAT, None),
                h.make_tensor_value_info("inv", T.INT64, None),
                h.make_tensor_value_info("cnt", T.INT64, None)],
               [numpy_helper.from_array(x, "x")], opset=11)
    z = np.array([3.0], np.float32)
    got = onnxcc.compile(m, "host").run({"z": z})
    want = ort_run(m, {"z": z})
    for k in ("y", "inv", "cnt"):
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_non_max_suppression_of_constant_boxes_folds():
    boxes = np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, 3, 1, 4], [0, 10, 1, 11]]],
                     np.float32)
    scores = np.array([[[0.9, 0.75, 0.6, 0.95]]], np.float32)
    inits = [numpy_helper.from_array(boxes, "boxes"), numpy_helper.from_array(scores, "scores"),
             numpy_helper.from_array(np.array([3], np.int64), "k"),
             numpy_helper.from_array(np.array([0.5], np.float32), "iou")]
    m = _model([h.make_node("NonMaxSuppression", ["boxes", "scores", "k", "iou"], ["sel"]),
                h.make_node("Add", ["sel", "o"], ["y"])],
               [h.make_tensor_value_info("o", T.INT64, [1])],
               [h.make_tensor_value_info("y", T.INT64, None)], inits, opset=11)
    o = np.array([100], np.int64)
    got = onnxcc.compile(m, "host").run({"o": o})["y"]
    np.testing.assert_array_equal(got, ort_run(m, {"o": o})["y"])
    assert got.shape == (3, 3)
