import numpy as np
import pytest

from builders import make_model, ort_run
import onnxcc


@pytest.mark.parametrize("opset,axis", [(11, 1), (11, 2), (11, 0), (13, -1), (13, 1), (13, 0)])
def test_hardmax_matches_onnxruntime(rng, opset, axis):
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    x[0, 1, 2] = x[0, 1, 3]  # a tie: the first maximum wins
    m = make_model([("Hardmax", ["x"], ["y"], {"axis": axis})], {"x": (2, 3, 5)}, {"y": (2, 3, 5)},
                   opset=opset)
    cm = onnxcc.compile(m, "host")
    assert [n.op for n in cm.graph.nodes] == ["Hardmax"]
    np.testing.assert_array_equal(cm.run({"x": x})["y"], ort_run(m, {"x": x})["y"])


def test_hardmax_nan_is_the_maximum_like_numpy():
    x = np.array([[1.0, np.nan, 3.0, np.nan]], np.float32)
    m = make_model([("Hardmax", ["x"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)}, opset=13)
    np.testing.assert_array_equal(onnxcc.compile(m, "host").run({"x": x}, sanitize=True)["y"],
                                  [[0, 1, 0, 0]])
