"""Reductions: Reduce{Sum,Mean,Max,Min,Prod,L1,L2,LogSum,LogSumExp,SumSquare}, ArgMax, ArgMin.

x is any shape; the reduced axes come from :func:`reduce_axes` (attribute ``axes`` before
opset 13 for ReduceSum and before 18 for the others, then a constant input). With ``keepdims``
the reduced axes stay as size 1. Outputs keep x's dtype (ArgMax/ArgMin give int64).
"""

from __future__ import annotations

import numpy as np

from ..ir import Node, TensorType
from onnxcc.errors import UnsupportedOpError

from . import OpDef, attr, bad_attr, register_op
from ._util import const_input, ints, norm_axes, norm_axis


def reduce_axes(node: Node) -> tuple[int, ...]:
    """The axes (non-negative, ascending) a Reduce* node reduces.

    No axes given (or an empty axes input) means every axis, unless ``noop_with_empty_axes`` is
    set, which gives ``()``: the op then only applies its elementwise part (ReduceSum: identity).
    Raises ShapeError when the axes input is not a constant, AttributeValueError when an axis is
    out of range or repeated.
    """
    rank = len(node.inputs[0].shape)
    input_from = 13 if node.op == "ReduceSum" else 18
    if node.version < input_from:
        axes = node.attrs.get("axes")
    else:
        axes = const_input(node, 1, "axes")
    if axes is None or len(np.asarray(axes).reshape(-1)) == 0:
        return () if node.attrs.get("noop_with_empty_axes") else tuple(range(rank))
    return tuple(sorted(norm_axes(node, ints(axes), rank)))


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    """Shape after reducing ``axes`` of ``shape`` (kept as 1 with keepdims)."""
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _extreme(x: np.ndarray, low: bool):
    """Identity element of max (low=True: the lowest value) or min for x's dtype."""
    if np.issubdtype(x.dtype, np.floating):
        return -np.inf if low else np.inf
    if x.dtype == np.bool_:
        return not low
    info = np.iinfo(x.dtype)
    return info.min if low else info.max


def accurate_sum(x: np.ndarray, axis: tuple[int, ...], keepdims: bool = False) -> np.ndarray:
    """Sum of ``x`` over ``axis`` (non-negative axes), accurate to the output's rounding.

    numpy sums pairwise (Higham, "The accuracy of floating point summation", SIAM J. Sci. Comput.
    14(4), 1993) only along a contiguous inner axis; along a strided axis (``axis=0`` of a C
    array) it adds slices one after the other, whose error grows with the length (20 million
    float32 values summed over ``axis=0`` are off by ~4e-5 relative). So float16/float32 are
    accumulated in float64 (error ~ n * 1.1e-16, below float32's half-ulp for n < 5e8), and
    float64 is copied with the reduced axes last and contiguous, where numpy's pairwise sum
    applies. Integers are summed in their own dtype (exact, wrapping). Returns float64 for
    float16/float32 input (the caller casts), x's dtype otherwise.
    """
    if x.dtype.kind != "f" or not axis:
        return np.sum(x, axis=axis, keepdims=keepdims)
    if x.dtype.itemsize < 8:
        return np.sum(x, axis=axis, keepdims=keepdims, dtype=np.float64)
    kept = [d for d in range(x.ndim) if d not in axis]
    count = int(np.prod([x.shape[d] for d in axis], dtype=np.int64))
    flat = np.ascontiguousarray(np.transpose(x, kept + list(axis)))
    out = flat.reshape([x.shape[d] for d in kept] + [count]).sum(axis=-1)
    return out.reshape(reduced_shape(x.shape, axis, True)) if keepdims else out


def _logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0)
    s = np.log(accurate_sum(np.exp(x - m), axis, keepdims=True)) + m
    return s if keepdims else np.squeeze(s, axis=axis)


def _count(x: np.ndarray, axis: tuple[int, ...]) -> int:
    return int(np.prod([x.shape[d] for d in axis], dtype=np.int64))


# Float sums go through accurate_sum (pairwise / wide accumulation), like the kernels
# (codegen/lower/reduce.py): the reference is the oracle of tests at scale.
_FNS = {
    "ReduceSum": lambda x, a, k: accurate_sum(x, a, k),
    "ReduceMean": lambda x, a, k: accurate_sum(x, a, k) / _count(x, a),
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_extreme(x, True)),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_extreme(x, False)),
    "ReduceProd": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "ReduceL1": lambda x, a, k: accurate_sum(np.abs(x), a, k),
    "ReduceL2": lambda x, a, k: np.sqrt(accurate_sum(np.square(x), a, k)),
    "ReduceLogSum": lambda x, a, k: np.log(accurate_sum(x, a, k)),
    "ReduceLogSumExp": lambda x, a, k: _logsumexp(x, a, k),
    "ReduceSumSquare": lambda x, a, k: accurate_sum(np.square(x), a, k),
}
_DOCS = {
    "ReduceSum": "sum(x)", "ReduceMean": "mean(x)", "ReduceMax": "max(x) (-inf when empty)",
    "ReduceMin": "min(x) (+inf when empty)", "ReduceProd": "prod(x)", "ReduceL1": "sum(|x|)",
    "ReduceL2": "sqrt(sum(x^2))", "ReduceLogSum": "log(sum(x))",
    "ReduceLogSumExp": "log(sum(exp(x))) (computed stably)", "ReduceSumSquare": "sum(x^2)",
}


class Reduce(OpDef):
    """Base of the Reduce* ops: y = f(x) over :func:`reduce_axes`, keepdims."""

    attrs = {"axes": None, "keepdims": 1, "noop_with_empty_axes": None}
    max_inputs = 2

    def check(self, node):
        if attr(node, "keepdims") not in (0, 1):
            raise bad_attr(node, "keepdims must be 0 or 1")
        if node.attrs.get("noop_with_empty_axes") not in (None, 0, 1):
            raise bad_attr(node, "noop_with_empty_axes must be 0 or 1")
        if node.op in ("ReduceLogSumExp", "ReduceLogSum") and node.inputs[0].dtype.kind != "f":
            raise UnsupportedOpError([(node.name, node.op, f"{node.op} of "
                                       f"{node.inputs[0].dtype} (the spec leaves the rounding "
                                       "of an integer logarithm open): cast to float first")])

    def infer(self, node):
        x = node.inputs[0]
        return [TensorType(reduced_shape(x.shape, reduce_axes(node), bool(attr(node, "keepdims"))),
                           x.dtype)]

    def reference(self, node, x, *rest):
        axes = reduce_axes(node)
        ct = np.float32 if x.dtype == np.float16 else x.dtype
        y = _FNS[node.op](x.astype(ct, copy=False), axes, bool(attr(node, "keepdims")))
        return [np.asarray(y).astype(x.dtype)]


for _name in _FNS:
    _cls = type(_name, (Reduce,), {"__doc__": f"ONNX {_name}: y = {_DOCS[_name]} over the "
                                               "reduced axes (keepdims)."})
    register_op(_name)(_cls)
    globals()[_name] = _cls


class _Arg(OpDef):
    """ArgMax/ArgMin: int64 index of the first (or last, select_last_index) extreme along axis."""

    attrs = {"axis": 0, "keepdims": 1, "select_last_index": None}
    fn = staticmethod(np.argmax)

    def check(self, node):
        if attr(node, "keepdims") not in (0, 1):
            raise bad_attr(node, "keepdims must be 0 or 1")
        if node.attrs.get("select_last_index") not in (None, 0, 1):
            raise bad_attr(node, "select_last_index must be 0 or 1")

    def infer(self, node):
        x = node.inputs[0]
        a = norm_axis(node, attr(node, "axis"), len(x.shape))
        return [TensorType(reduced_shape(x.shape, (a,), bool(attr(node, "keepdims"))), np.int64)]

    def reference(self, node, x):
        a = norm_axis(node, attr(node, "axis"), x.ndim)
        if node.attrs.get("select_last_index"):
            i = x.shape[a] - 1 - self.fn(np.flip(x, axis=a), axis=a)
        else:
            i = self.fn(x, axis=a)
        if attr(node, "keepdims"):
            i = np.expand_dims(i, a)
        return [np.asarray(i, np.int64)]


@register_op("ArgMax")
class ArgMax(_Arg):
    """ONNX ArgMax: index (int64) of the maximum along ``axis``."""

    fn = staticmethod(np.argmax)


@register_op("ArgMin")
class ArgMin(_Arg):
    """ONNX ArgMin: index (int64) of the minimum along ``axis``."""

    fn = staticmethod(np.argmin)
