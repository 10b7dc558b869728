"""Running reductions along an axis: CumSum (opsets 11, 14) and CumProd (opset 26).

x: any rank >= 1, numeric; axis: an int32/int64 scalar input in ``[-r, r)``, known at compile
time or read at run time; y: x's shape and dtype. ``y[..., i, ...]`` is the sum (product) of
``x[..., 0..i, ...]`` along the axis; ``exclusive`` leaves the element itself out (the first
is 0, or 1 for a product), ``reverse`` runs from the end. Integers wrap; floats accumulate in
order, as the onnx reference (numpy.cumsum) does.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import OpDef, attr, register_op
from ._util import norm_axis


def cum_axis_value(node: Node, axis: np.ndarray) -> int:
    """The non-negative axis of a CumSum/CumProd node from its axis value. Raises
    AttributeValueError when it is outside ``[-r, r)``."""
    return norm_axis(node, int(np.asarray(axis).reshape(-1)[0]), len(node.inputs[0].shape))


def cumulative(x: np.ndarray, axis: int, exclusive: bool, reverse: bool,
               product: bool) -> np.ndarray:
    """The running sum (``product``: product) of ``x`` along ``axis`` in x's dtype."""
    fn = np.cumprod if product else np.cumsum
    v = np.flip(x, axis) if reverse else x
    with np.errstate(over="ignore"):
        r = fn(v, axis=axis, dtype=x.dtype)
    if exclusive:
        first = np.ones_like if product else np.zeros_like
        head = first(np.take(r, [0], axis=axis))
        r = np.concatenate([head, np.delete(r, -1, axis=axis)], axis=axis) if x.shape[axis] \
            else r
    return np.flip(r, axis) if reverse else r


class _Cumulative(OpDef):
    attrs = {"exclusive": 0, "reverse": 0}
    min_inputs = max_inputs = 2
    product = False

    def infer(self, node: Node) -> list[TensorType]:
        x, a = node.inputs
        if len(x.shape) < 1:
            raise ShapeError("x must have rank >= 1", node=node.name, op=node.op,
                             hint="reshape the input to 1-D")
        if a.type.size != 1 or a.dtype.kind not in "iu":
            raise ShapeError(f"axis must be an integer scalar, got {a.dtype.name} "
                             f"{list(a.shape)}", node=node.name, op=node.op,
                             hint="give axis as an int64 scalar")
        if a.const is not None:
            cum_axis_value(node, a.const)
        return [TensorType(x.shape, x.dtype)]

    def reference(self, node: Node, x, axis) -> list[np.ndarray]:
        return [cumulative(x, cum_axis_value(node, axis), bool(attr(node, "exclusive")),
                           bool(attr(node, "reverse")), self.product)]


@register_op("CumSum")
class CumSum(_Cumulative):
    """ONNX CumSum(x, axis; exclusive, reverse): running sums (module docstring)."""


@register_op("CumProd")
class CumProd(_Cumulative):
    """ONNX CumProd(x, axis; exclusive, reverse): running products (module docstring)."""

    product = True
