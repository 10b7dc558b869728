"""Bitwise ops on integer tensors: BitShift (opsets 11 and 28), BitwiseAnd, BitwiseOr,
BitwiseXor, BitwiseNot (opset 18).

Inputs broadcast as numpy does; the output has the first input's integer dtype. BitShift's
semantics are opset 28's, which extends opset 11's (unsigned only) to signed types and defines
every shift amount: a right shift of a signed value is arithmetic (sign-extending); a left shift
discards the bits moved past the top (two's complement wrap); a shift amount that is negative or
at least the bit width gives what the sign fill alone gives: -1 for a right shift of a negative
value, 0 otherwise (C leaves all three undefined; the lowering never relies on them).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import REQUIRED, OpDef, attr, bad_attr, register_op


def _check_ints(node: Node) -> None:
    for v in node.inputs:
        if v.dtype.kind not in "iu":
            raise ShapeError(f"{v.name!r} has dtype {v.dtype.name}; {node.op} takes integers",
                             node=node.name, op=node.op, hint="cast the input to an integer type")
    if len(node.inputs) == 2 and node.inputs[0].dtype != node.inputs[1].dtype:
        raise ShapeError(f"inputs have dtypes {node.inputs[0].dtype.name} and "
                         f"{node.inputs[1].dtype.name}; {node.op} takes one", node=node.name,
                         op=node.op, hint="cast both inputs to one integer type")


class _BitwiseBinary(OpDef):
    min_inputs = max_inputs = 2

    def infer(self, node: Node) -> list[TensorType]:
        _check_ints(node)
        a, b = node.inputs
        return [TensorType(np.broadcast_shapes(a.shape, b.shape), a.dtype)]


def shift_direction(node: Node) -> str:
    """BitShift's direction, ``LEFT`` or ``RIGHT``. Raises AttributeValueError otherwise."""
    d = attr(node, "direction")
    d = d.decode() if isinstance(d, bytes) else str(d)
    if d not in ("LEFT", "RIGHT"):
        raise bad_attr(node, f"direction {d!r} is neither LEFT nor RIGHT")
    return d


def bit_shift(x: np.ndarray, s: np.ndarray, left: bool) -> np.ndarray:
    """``x << s`` or ``x >> s`` with opset 28's semantics (module docstring), x's dtype."""
    x, s = np.broadcast_arrays(x, s)
    width = x.dtype.itemsize * 8
    ok = (s >= 0) & (s < width)
    sc = np.where(ok, s, 0).astype(np.int64)
    if left:
        u = np.dtype(f"u{x.dtype.itemsize}")
        r = np.left_shift(x.astype(u), sc.astype(u)).astype(u).view(x.dtype)
        return np.where(ok, r, 0).astype(x.dtype)
    r = np.right_shift(x, sc.astype(x.dtype))
    fill = np.where(x < 0, -1, 0) if x.dtype.kind == "i" else np.zeros_like(x)
    return np.where(ok, r, fill).astype(x.dtype)


@register_op("BitShift")
class BitShift(_BitwiseBinary):
    """ONNX BitShift(X, Y; direction): Z = X << Y or X >> Y (module docstring)."""

    attrs = {"direction": REQUIRED}

    def check(self, node: Node) -> None:
        shift_direction(node)

    def reference(self, node: Node, x, s) -> list[np.ndarray]:
        return [bit_shift(x, s, shift_direction(node) == "LEFT")]


@register_op("BitwiseAnd")
class BitwiseAnd(_BitwiseBinary):
    """ONNX BitwiseAnd: C = A & B (broadcast)."""

    def reference(self, node: Node, a, b) -> list[np.ndarray]:
        return [np.bitwise_and(a, b)]


@register_op("BitwiseOr")
class BitwiseOr(_BitwiseBinary):
    """ONNX BitwiseOr: C = A | B (broadcast)."""

    def reference(self, node: Node, a, b) -> list[np.ndarray]:
        return [np.bitwise_or(a, b)]


@register_op("BitwiseXor")
class BitwiseXor(_BitwiseBinary):
    """ONNX BitwiseXor: C = A ^ B (broadcast)."""

    def reference(self, node: Node, a, b) -> list[np.ndarray]:
        return [np.bitwise_xor(a, b)]


@register_op("BitwiseNot")
class BitwiseNot(OpDef):
    """ONNX BitwiseNot: Y = ~X (every bit flipped)."""

    def infer(self, node: Node) -> list[TensorType]:
        _check_ints(node)
        x = node.inputs[0]
        return [TensorType(x.shape, x.dtype)]

    def reference(self, node: Node, x) -> list[np.ndarray]:
        return [np.invert(x)]
