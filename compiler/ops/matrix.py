"""Matrix-structure ops: Trilu (opset 14) and EyeLike (opsets 9, 22).

Both act on the last two axes ``(N, M)`` (EyeLike's input is 2-D): Trilu keeps the elements on
and above (``upper=1``) or on and below (``upper=0``) the ``k``-th diagonal (``j - i >= k`` or
``j - i <= k``; k is an optional int64 scalar input, 0 when absent, known at compile time or
read at run time) and zeroes the rest; EyeLike gives ones on the ``k``-th diagonal (attribute)
and zeros elsewhere, in the ``dtype`` attribute's type (the input's when unset).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import OpDef, attr, register_op
from ._util import has_input, onnx_dtype


def _rank_error(node: Node, what: str) -> ShapeError:
    return ShapeError(what, node=node.name, op=node.op,
                      hint="give the input the rank the ONNX spec requires")


@register_op("Trilu")
class Trilu(OpDef):
    """ONNX Trilu(input, k?; upper): y (input's shape and dtype) = input where ``j - i >= k``
    (upper) or ``j - i <= k`` (lower) on the last two axes, else 0."""

    attrs = {"upper": 1}
    min_inputs, max_inputs = 1, 2

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        if len(x.shape) < 2:
            raise _rank_error(node, f"input has rank {len(x.shape)}; Trilu needs rank >= 2")
        if has_input(node, 1) and node.inputs[1].type.size != 1:
            raise _rank_error(node, f"k must be a scalar, got shape {list(node.inputs[1].shape)}")
        return [TensorType(x.shape, x.dtype)]

    def reference(self, node: Node, x, k=None) -> list[np.ndarray]:
        kk = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
        n, m = x.shape[-2:]
        d = np.arange(m)[None, :] - np.arange(n)[:, None]
        keep = d >= kk if attr(node, "upper") else d <= kk
        return [np.where(keep, x, np.zeros((), x.dtype)).astype(x.dtype)]


def eye_like_dtype(node: Node) -> np.dtype:
    """EyeLike's output dtype: the ``dtype`` attribute's, else the input's."""
    code = node.attrs.get("dtype")
    return node.inputs[0].dtype if code is None else onnx_dtype(node, code)


@register_op("EyeLike")
class EyeLike(OpDef):
    """ONNX EyeLike(input; dtype, k): y (input's 2-D shape) = 1 where ``j - i == k``, else 0."""

    attrs = {"dtype": None, "k": 0}

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        if len(x.shape) != 2:
            raise _rank_error(node, f"input has rank {len(x.shape)}; EyeLike needs rank 2")
        return [TensorType(x.shape, eye_like_dtype(node))]

    def reference(self, node: Node, x) -> list[np.ndarray]:
        n, m = x.shape
        return [np.eye(n, m, int(attr(node, "k")), dtype=eye_like_dtype(node))]
