"""Shrink (opset 9): ``y = x + bias`` where ``x < -lambd``, ``x - bias`` where ``x > lambd``,
else 0; any numeric dtype. For floats, bias and lambd are taken in x's dtype; for integers, as
onnxruntime does, x is compared and offset as a float (float64 here, exact for every int32) and
the result converted back truncating toward zero (saturating at the dtype's range, where C
would be undefined).
"""

from __future__ import annotations

import numpy as np

from ..ir import Node, TensorType
from . import OpDef, attr, register_op


def shrink_params(node: Node) -> tuple[float, float]:
    """(lambd, bias) of a Shrink node."""
    return float(attr(node, "lambd")), float(attr(node, "bias"))


@register_op("Shrink")
class Shrink(OpDef):
    """ONNX Shrink(input; bias, lambd): y of input's shape and dtype (module docstring)."""

    attrs = {"bias": 0.0, "lambd": 0.5}

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        return [TensorType(x.shape, x.dtype)]

    def reference(self, node: Node, x) -> list[np.ndarray]:
        lambd, bias = shrink_params(node)
        ct = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        v, lam, b = x.astype(ct), ct.type(lambd), ct.type(bias)
        with np.errstate(over="ignore", invalid="ignore"):
            y = np.where(v < -lam, v + b, np.where(v > lam, v - b, ct.type(0)))
        if x.dtype.kind == "f":
            return [y.astype(x.dtype)]
        info = np.iinfo(x.dtype)
        return [np.clip(np.trunc(y), float(info.min), float(info.max)).astype(x.dtype)]
