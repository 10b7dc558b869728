"""The shipped digits CNN (compiler/models/digits.onnx, made by examples/digits/train.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

MODELS = Path(__file__).resolve().parents[1] / "compiler" / "models"
MODEL = MODELS / "digits.onnx"
TEST_SPLIT = MODELS / "digits_test.npz"

# What examples/digits/train.py exports, in node order.
EXPECTED_OPS = ["Conv", "BatchNormalization", "Relu", "MaxPool", "Conv", "Relu", "MaxPool",
                "Flatten", "Gemm", "Relu", "Gemm", "Softmax"]
EXPECTED_NAMES = ["conv1", "bn1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1",
                  "relu3", "fc2", "softmax"]


def _test_split():
    with np.load(TEST_SPLIT, allow_pickle=False) as z:
        return z["x"], z["y"]


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_test_split_shapes_and_dtypes():
    with np.load(TEST_SPLIT, allow_pickle=False) as z:
        assert sorted(z.files) == ["x", "y"]
        x, y = z["x"], z["y"]
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.ndim == 4 and x.shape[1:] == (1, 8, 8)
    assert y.shape == (x.shape[0],)
    assert x.shape[0] == 450          # 25% of the 1797 sklearn digits, stratified
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))


def test_model_structure():
    model = onnx.load(str(MODEL))
    onnx.checker.check_model(model, full_check=True)
    g = model.graph
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    assert g.name == "digits"
    assert [n.op_type for n in g.node] == EXPECTED_OPS
    assert [n.name for n in g.node] == EXPECTED_NAMES
    (inp,), (out,) = g.input, g.output
    assert inp.name == "input" and out.name == "probabilities"
    assert _dims(inp) == ["N", 1, 8, 8]
    assert _dims(out) == ["N", 10]


def test_model_accuracy_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    x, y = _test_split()
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    (probs,) = sess.run(["probabilities"], {"input": x})     # whole split, one run (symbolic N)
    assert probs.shape == (x.shape[0], 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-5)
    acc = float((probs.argmax(axis=1) == y).mean())
    assert acc >= 0.95, f"test accuracy {acc:.4f} < 0.95"
