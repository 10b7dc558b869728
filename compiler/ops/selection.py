"""Ops that pick, place or reorder elements along an axis: TopK (opsets 1, 10, 11+), OneHot,
Compress, ReverseSequence, CenterCropPad.

Inputs that decide an output shape must be known at compile time (constants, or graph inputs
bound with ``onnxcc.compile(..., constant_inputs=...)``): TopK's K (an attribute before opset
10), OneHot's depth, Compress's condition and CenterCropPad's shape. The others (OneHot's values
and indices, ReverseSequence's sequence_lens) are read at run time.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import OpDef, attr, bad_attr, register_op
from ._util import const_input, ints, norm_axes, norm_axis


def _err(node: Node, msg: str, hint: str) -> ShapeError:
    return ShapeError(msg, node=node.name, op=node.op, hint=hint)


# ---- TopK --------------------------------------------------------------------------------------
def topk_params(node: Node) -> tuple[int, int, bool]:
    """(axis >= 0, k, largest) of a TopK node: k from the attribute before opset 10, else from
    the constant input K. Raises ShapeError when K is not a constant or k is outside
    ``[0, dim]``."""
    x = node.inputs[0]
    axis = norm_axis(node, attr(node, "axis"), len(x.shape))
    if node.version < 10:
        k = int(attr(node, "k"))
    else:
        k = int(ints(const_input(node, 1, "K"))[0])
    if not 0 <= k <= x.shape[axis]:
        raise _err(node, f"k = {k} is outside [0, {x.shape[axis]}] (the axis length)",
                   "choose k no larger than the axis")
    largest = node.version < 11 or bool(node.attrs.get("largest", 1))
    return axis, k, largest


def topk_order(x: np.ndarray, axis: int, largest: bool) -> np.ndarray:
    """Indices along ``axis`` that order ``x`` largest (or smallest) first, ties by lower index;
    NaN counts as larger than every number (first when largest, last when smallest)."""
    v = np.moveaxis(x, axis, -1)
    pos = np.broadcast_to(np.arange(v.shape[-1]), v.shape)
    if x.dtype.kind == "f":
        nan = np.isnan(v)
        val = np.where(nan, 0, v)
        keys = (pos, -val, ~nan) if largest else (pos, val, nan)
    else:   # ~v reverses the order of every integer type without overflow
        keys = (pos, np.invert(v)) if largest else (pos, v)
    return np.moveaxis(np.lexsort(keys, axis=-1), -1, axis)


@register_op("TopK")
class TopK(OpDef):
    """ONNX TopK(X, K; axis, largest, sorted) -> (Values, Indices int64), both X's shape with
    the axis cut to k: the k largest (smallest) elements in order, ties by lower index; with
    ``sorted=0`` the order is unspecified and this order is kept."""

    attrs = {"axis": -1, "largest": 1, "sorted": 1, "k": None}
    min_inputs, max_inputs = 1, 2

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        axis, k, _ = topk_params(node)
        shape = x.shape[:axis] + (k,) + x.shape[axis + 1:]
        return [TensorType(shape, x.dtype), TensorType(shape, np.dtype(np.int64))]

    def reference(self, node: Node, x, kin=None) -> list[np.ndarray]:
        axis, k, largest = topk_params(node)
        idx = np.take(topk_order(x, axis, largest), np.arange(k), axis=axis)
        return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]


# ---- OneHot ------------------------------------------------------------------------------------
def onehot_params(node: Node) -> tuple[int, int]:
    """(depth, axis >= 0 in the output) of a OneHot node. Raises ShapeError when depth is not a
    constant or is below 1."""
    depth = int(np.asarray(const_input(node, 1, "depth")).reshape(-1)[0])
    if depth < 1:
        raise _err(node, f"depth {depth} must be at least 1", "give a positive depth")
    axis = norm_axis(node, attr(node, "axis"), len(node.inputs[0].shape) + 1)
    return depth, axis


@register_op("OneHot")
class OneHot(OpDef):
    """ONNX OneHot(indices, depth, values; axis): y (indices' shape with ``depth`` inserted at
    axis, values' dtype) = values[1] (on) where ``y``'s position on axis equals the index (a
    negative index counts from ``depth``; non-integer indices truncate toward zero), values[0]
    (off) elsewhere; an index outside ``[-depth, depth)`` gives a row of off values."""

    attrs = {"axis": -1}
    min_inputs = max_inputs = 3

    def infer(self, node: Node) -> list[TensorType]:
        ind, _, vals = node.inputs
        if vals.type.size != 2:
            raise _err(node, f"values must hold [off, on], got shape {list(vals.shape)}",
                       "give values two elements")
        depth, axis = onehot_params(node)
        shape = ind.shape[:axis] + (depth,) + ind.shape[axis:]
        return [TensorType(shape, vals.dtype)]

    def reference(self, node: Node, ind, depth, vals) -> list[np.ndarray]:
        d, axis = onehot_params(node)
        with np.errstate(invalid="ignore"):
            i = np.trunc(ind).astype(np.int64) if ind.dtype.kind == "f" else ind.astype(np.int64)
        i = np.where(i < 0, i + d, i)
        hot = np.expand_dims(i, axis) == np.arange(d).reshape((d,) + (1,) * (ind.ndim - axis))
        v = vals.reshape(-1)
        return [np.where(hot, v[1], v[0]).astype(vals.dtype)]


# ---- Compress ----------------------------------------------------------------------------------
def compress_params(node: Node) -> tuple[int | None, np.ndarray]:
    """(axis >= 0 or None for the flattened input, selected positions along it) of a Compress
    node. Raises ShapeError when the condition is not a constant or is longer than the axis."""
    x = node.inputs[0]
    cond = np.asarray(const_input(node, 1, "condition")).reshape(-1).astype(bool)
    a = node.attrs.get("axis")
    axis = None if a is None else norm_axis(node, a, len(x.shape))
    n = x.type.size if axis is None else x.shape[axis]
    if cond.size > n:
        raise _err(node, f"condition has {cond.size} entries, more than the {n} along the axis",
                   "shorten the condition")
    return axis, np.flatnonzero(cond)


@register_op("Compress")
class Compress(OpDef):
    """ONNX Compress(input, condition; axis): the slices along axis (of the flattened input
    without axis) where condition is true, as numpy.compress."""

    attrs = {"axis": None}
    min_inputs = max_inputs = 2

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        axis, sel = compress_params(node)
        shape = (len(sel),) if axis is None else x.shape[:axis] + (len(sel),) + x.shape[axis + 1:]
        return [TensorType(shape, x.dtype)]

    def reference(self, node: Node, x, cond) -> list[np.ndarray]:
        axis, sel = compress_params(node)
        return [np.take(x.reshape(-1) if axis is None else x, sel, axis=0 if axis is None
                        else axis)]


# ---- ReverseSequence ---------------------------------------------------------------------------
def reverse_sequence_axes(node: Node) -> tuple[int, int]:
    """(time_axis, batch_axis) of a ReverseSequence node (each 0 or 1, different). Raises
    AttributeValueError otherwise and ShapeError for sequence_lens not of shape [batch]."""
    t, b = int(attr(node, "time_axis")), int(attr(node, "batch_axis"))
    if {t, b} != {0, 1}:
        raise bad_attr(node, f"time_axis {t} and batch_axis {b} must be 0 and 1 in some order")
    x, lens = node.inputs
    if len(x.shape) < 2 or tuple(lens.shape) != (x.shape[b],):
        raise _err(node, f"sequence_lens shape {list(lens.shape)} must be [batch] = "
                   f"[{x.shape[b] if len(x.shape) > b else '?'}] for input {list(x.shape)}",
                   "one length per batch entry")
    return t, b


@register_op("ReverseSequence")
class ReverseSequence(OpDef):
    """ONNX ReverseSequence(input, sequence_lens; time_axis, batch_axis): per batch entry b,
    the first ``sequence_lens[b]`` steps along time reversed, the rest copied. A length outside
    ``[0, steps]`` (an error in the spec) is clamped into it."""

    attrs = {"time_axis": 0, "batch_axis": 1}
    min_inputs = max_inputs = 2

    def infer(self, node: Node) -> list[TensorType]:
        reverse_sequence_axes(node)
        if node.inputs[1].dtype.kind not in "iu":
            raise _err(node, "sequence_lens must be int64", "cast sequence_lens to int64")
        x = node.inputs[0]
        return [TensorType(x.shape, x.dtype)]

    def reference(self, node: Node, x, lens) -> list[np.ndarray]:
        t, b = reverse_sequence_axes(node)
        v = np.moveaxis(x, (t, b), (0, 1))
        out = v.copy()
        for j, n in enumerate(np.clip(lens.astype(np.int64), 0, v.shape[0])):
            out[:n, j] = v[:n, j][::-1]
        return [np.moveaxis(out, (0, 1), (t, b))]


# ---- CenterCropPad -----------------------------------------------------------------------------
def center_crop_pad_params(node: Node) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(output shape, per-axis offset) of a CenterCropPad node: ``y[i] = x[i + offset]`` where
    that is inside x, else 0; a crop starts ``(dim - size) // 2`` in (offset > 0), a pad puts
    ``(size - dim) // 2`` zeros first (offset < 0). Raises ShapeError when shape is not a
    constant or does not match axes."""
    x = node.inputs[0]
    r = len(x.shape)
    sizes = ints(const_input(node, 1, "shape"))
    a = node.attrs.get("axes")
    axes = tuple(range(r)) if a is None else norm_axes(node, ints(a), r)
    if len(sizes) != len(axes) or any(s < 0 for s in sizes):
        raise _err(node, f"shape {list(sizes)} must give one size >= 0 per axis of {list(axes)}",
                   "give one size per axis")
    out, off = list(x.shape), [0] * r
    for ax, s in zip(axes, sizes):
        out[ax] = s
        off[ax] = (x.shape[ax] - s) // 2 if s <= x.shape[ax] else -((s - x.shape[ax]) // 2)
    return tuple(out), tuple(off)


@register_op("CenterCropPad")
class CenterCropPad(OpDef):
    """ONNX CenterCropPad(input_data, shape; axes): each listed axis center-cropped or
    zero-padded to its size (:func:`center_crop_pad_params`)."""

    attrs = {"axes": None}
    min_inputs = max_inputs = 2

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(center_crop_pad_params(node)[0], node.inputs[0].dtype)]

    def reference(self, node: Node, x, shape) -> list[np.ndarray]:
        out, off = center_crop_pad_params(node)
        src = [np.arange(n) + o for n, o in zip(out, off)]
        ok = [(i >= 0) & (i < d) for i, d in zip(src, x.shape)]
        y = np.zeros(out, x.dtype)
        y[np.ix_(*[np.flatnonzero(k) for k in ok])] = x[np.ix_(*[i[k] for i, k in zip(src, ok)])]
        return [y]
