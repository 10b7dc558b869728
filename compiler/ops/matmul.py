"""Matrix products: Gemm (2-D, transposes, alpha/beta, bias) and MatMul (numpy matmul rules).

Weights may be read-only 0-stride views (splat constants from ConstantOfShape); products with a
splat operand are computed from row sums instead of materializing the 400 MB matrix.
"""

from __future__ import annotations

import numpy as np

from ..ir import Node, TensorType
from . import OpDef, attr, bad_attr, register_op


def _is_splat(a: np.ndarray) -> bool:
    """True for an array whose every stride is 0 (one value repeated), e.g. np.broadcast_to."""
    return a.ndim > 0 and a.size > 1 and all(s == 0 for s in a.strides)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul(a, b), without materializing a splat (0-stride) 2-D operand."""
    if b.ndim == 2 and a.ndim >= 1 and _is_splat(b):
        v = b.reshape(-1)[0]
        s = a.sum(axis=-1, keepdims=True) * v
        out = np.broadcast_to(s, a.shape[:-1] + (b.shape[1],))
        return np.array(out if a.ndim > 1 else out.reshape(-1), dtype=np.result_type(a, b))
    if a.ndim == 2 and b.ndim >= 2 and _is_splat(a):
        v = a.reshape(-1)[0]
        s = b.sum(axis=-2, keepdims=True) * v
        return np.array(np.broadcast_to(s, b.shape[:-2] + (a.shape[0], b.shape[-1])),
                        dtype=np.result_type(a, b))
    return np.matmul(a, b)


def gemm_dims(node: Node, b_input: int = 1) -> tuple[int, int, int]:
    """(M, K, N) of a Gemm node from its input shapes and transA/transB; B is input
    ``b_input`` (3 for onnxruntime's QGemm, whose A and B carry scales and zero points).

    Raises AttributeValueError when A or B is not 2-D or their inner sizes differ.
    """
    a, b = node.inputs[0].shape, node.inputs[b_input].shape
    if len(a) != 2 or len(b) != 2:
        raise bad_attr(node, f"A and B must be 2-D, got {a} and {b}")
    m, k = a[::-1] if attr(node, "transA") else a
    k2, n = b[::-1] if attr(node, "transB") else b
    if k != k2:
        raise bad_attr(node, f"inner sizes differ: A' is ({m}, {k}), B' is ({k2}, {n})")
    return m, k, n


@register_op("Gemm", traits={"quantizable"})
class Gemm(OpDef):
    """ONNX Gemm: Y (M, N) = alpha * A' @ B' + beta * C, A' = A or A^T (transA), B' likewise;
    C (optional from opset 11) broadcasts unidirectionally to (M, N). Float and int types."""

    attrs = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0}
    min_inputs, max_inputs = 2, 3

    def check(self, node):
        for t in ("transA", "transB"):
            if attr(node, t) not in (0, 1):
                raise bad_attr(node, f"{t} must be 0 or 1, got {attr(node, t)}")
        m, _, n = gemm_dims(node)
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            c = node.inputs[2].shape  # unidirectional: each dim of C is 1 or the target's
            if len(c) > 2 or any(d not in (1, t) for d, t in zip(c[::-1], (n, m))):
                raise bad_attr(node, f"C {c} does not broadcast to ({m}, {n})")

    def infer(self, node):
        m, _, n = gemm_dims(node)
        return [TensorType((m, n), node.inputs[0].dtype)]

    def reference(self, node, a, b, c=None):
        if attr(node, "transA"):
            a = a.T
        if attr(node, "transB"):
            b = b.T
        y = matmul(a, b)
        t = y.dtype.type
        if attr(node, "alpha") != 1.0:
            y = y * t(attr(node, "alpha"))
        if c is not None and attr(node, "beta") != 0:
            cc = c if attr(node, "beta") == 1.0 else c * t(attr(node, "beta"))
            y = y + cc
        return [np.asarray(y).astype(a.dtype, copy=False)]


def matmul_shape(node: Node, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of numpy matmul of shapes a and b (1-D operands promoted then squeezed).

    Raises AttributeValueError when the inner sizes or batch dims do not match.
    """
    if not a or not b:
        raise bad_attr(node, "MatMul operands must have rank >= 1")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise bad_attr(node, f"inner sizes differ: {a} @ {b}")
    try:
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    except ValueError:
        raise bad_attr(node, f"batch dims do not broadcast: {a} @ {b}") from None
    out = tuple(batch) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


@register_op("MatMul", traits={"quantizable"})
class MatMul(OpDef):
    """ONNX MatMul: numpy matmul semantics (batched, broadcasting batch dims, 1-D operands
    promoted and squeezed). Dtype of A."""

    min_inputs = max_inputs = 2

    def check(self, node):
        matmul_shape(node, node.inputs[0].shape, node.inputs[1].shape)

    def infer(self, node):
        a, b = node.inputs
        return [TensorType(matmul_shape(node, a.shape, b.shape), a.dtype)]

    def reference(self, node, a, b):
        return [np.asarray(matmul(a, b)).astype(a.dtype, copy=False)]
