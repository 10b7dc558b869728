"""Elementwise ops: one scalar function applied over the (numpy-broadcast) inputs.

x, y, ... are any shape; the output has the multidirectional broadcast shape of the inputs
(ONNX "Broadcasting in ONNX"), dtype of the first input unless stated.
"""

from __future__ import annotations

import numpy as np

from ..ir import Node, TensorType
from . import OpDef, register_op


class Unary(OpDef):
    """An elementwise op of one input; subclasses give ``fn``."""

    traits = frozenset({"elementwise"})

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, node.inputs[0].dtype)]

    def fn(self, node: Node, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reference(self, node: Node, x: np.ndarray, *rest) -> list[np.ndarray]:
        return [np.asarray(self.fn(node, x)).astype(x.dtype, copy=False)]


class Binary(OpDef):
    """An elementwise op of two broadcast inputs; subclasses give ``fn``."""

    traits = frozenset({"elementwise"})
    min_inputs = max_inputs = 2

    def infer(self, node: Node) -> list[TensorType]:
        a, b = node.inputs
        return [TensorType(np.broadcast_shapes(a.shape, b.shape), a.dtype)]

    def fn(self, node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reference(self, node: Node, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(self.fn(node, a, b)).astype(a.dtype, copy=False)]


@register_op("Relu", traits={"fusable_epilogue"})
class Relu(Unary):
    """ONNX Relu: y = max(x, 0)."""

    def fn(self, node, x):
        return np.maximum(x, 0)


@register_op("Add")
class Add(Binary):
    """ONNX Add: c = a + b (broadcast)."""

    def fn(self, node, a, b):
        return a + b
