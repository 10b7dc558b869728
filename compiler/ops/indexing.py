"""Indexing by runtime index tensors: GatherElements, GatherND, ScatterElements, Scatter (opsets
9 and 10: ScatterElements without reduction), ScatterND, TensorScatter (opset 24).

Index tensors are int32 or int64; a negative index counts from the end of its axis
(``j + dim``). The spec calls an index outside ``[-dim, dim)`` an error: the references raise
IndexError, the compiled kernels clamp it to the axis (every read and write stays inside its
buffer, as Gather's lowering does). Scatter reductions (``reduction`` none, add, mul from opset
16, max, min from opset 18) apply in index order, so with ``none`` the last of duplicate indices
wins (onnxruntime and the onnx reference do the same).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import OpDef, attr, bad_attr, register_op
from ._util import norm_axis

SCATTER_REDUCTIONS = {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum,
                      "min": np.minimum}


def _err(node: Node, msg: str, hint: str) -> ShapeError:
    return ShapeError(msg, node=node.name, op=node.op, hint=hint)


def _check_index_dtype(node: Node, k: int) -> None:
    v = node.inputs[k]
    if v.dtype.kind not in "iu":
        raise _err(node, f"indices must be int32 or int64, got {v.dtype.name}",
                   "cast the indices to int64")


def wrap_indices(node: Node, idx: np.ndarray, dim: int | np.ndarray) -> np.ndarray:
    """``idx`` (int64) with negative entries counted from the end (``+ dim``). Raises
    IndexError naming the node for an index outside ``[-dim, dim)``."""
    idx = np.asarray(idx).astype(np.int64)
    out = np.where(idx < 0, idx + dim, idx)
    bad = (out < 0) | (out >= dim)
    if np.any(bad):
        raise IndexError(f"node {node.name!r} ({node.op}): index {int(idx[bad].reshape(-1)[0])} "
                         f"is outside [-{np.broadcast_to(dim, idx.shape)[bad].reshape(-1)[0]}, "
                         f"{np.broadcast_to(dim, idx.shape)[bad].reshape(-1)[0]})")
    return out


def scatter_reduction(node: Node) -> str:
    """The ``reduction`` of a ScatterElements/ScatterND node (``none`` before opset 16, and for
    Scatter). Raises AttributeValueError for a value the node's opset does not define."""
    if node.op == "Scatter" or node.version < 16:
        return "none"
    red = node.attrs.get("reduction") or "none"
    if isinstance(red, bytes):
        red = red.decode()
    allowed = ("none", "add", "mul") + (("max", "min") if node.version >= 18 else ())
    if red not in allowed:
        raise bad_attr(node, f"reduction {red!r} is not one of {', '.join(allowed)} at opset "
                       f"{node.version}")
    return red


def elements_axis(node: Node) -> int:
    """The non-negative axis of a GatherElements/ScatterElements/Scatter node, after checking
    that data and indices have one rank and that indices (and updates, which must equal it)
    fit inside data on every other axis. Raises ShapeError otherwise."""
    data, ind = node.inputs[0], node.inputs[1]
    r = len(data.shape)
    a = norm_axis(node, attr(node, "axis"), r)
    _check_index_dtype(node, 1)
    if len(ind.shape) != r:
        raise _err(node, f"indices rank {len(ind.shape)} differs from data rank {r}",
                   "give indices the data's rank")
    if any(i > d for k, (i, d) in enumerate(zip(ind.shape, data.shape)) if k != a):
        raise _err(node, f"indices shape {list(ind.shape)} exceeds data shape "
                   f"{list(data.shape)} outside axis {a}", "indices must fit inside data")
    if len(node.inputs) > 2 and node.inputs[2].shape != ind.shape:
        raise _err(node, f"updates shape {list(node.inputs[2].shape)} differs from indices "
                   f"shape {list(ind.shape)}", "give updates the indices' shape")
    return a


def _full_index(node: Node, idx: np.ndarray, axis: int, dim: int) -> tuple:
    """Index arrays addressing data at ``idx`` along ``axis`` and at each position elsewhere."""
    full = list(np.indices(idx.shape, sparse=True))
    full[axis] = wrap_indices(node, idx, dim)
    return tuple(full)


@register_op("GatherElements")
class GatherElements(OpDef):
    """ONNX GatherElements(data, indices; axis): y (indices' shape, data's dtype) with
    ``y[i..., j, k...] = data[i..., indices[i..., j, k...], k...]`` (j on ``axis``)."""

    attrs = {"axis": 0}
    min_inputs = max_inputs = 2

    def infer(self, node: Node) -> list[TensorType]:
        elements_axis(node)
        return [TensorType(node.inputs[1].shape, node.inputs[0].dtype)]

    def reference(self, node: Node, data, idx) -> list[np.ndarray]:
        a = norm_axis(node, attr(node, "axis"), data.ndim)
        return [data[_full_index(node, idx, a, data.shape[a])]]


class _ScatterElementsBase(OpDef):
    min_inputs = max_inputs = 3

    def check(self, node: Node) -> None:
        scatter_reduction(node)

    def infer(self, node: Node) -> list[TensorType]:
        elements_axis(node)
        if node.inputs[2].dtype != node.inputs[0].dtype:
            raise _err(node, f"updates dtype {node.inputs[2].dtype.name} differs from data "
                       f"dtype {node.inputs[0].dtype.name}", "cast updates to data's dtype")
        return [TensorType(node.inputs[0].shape, node.inputs[0].dtype)]

    def reference(self, node: Node, data, idx, upd) -> list[np.ndarray]:
        a = norm_axis(node, attr(node, "axis"), data.ndim)
        out = data.copy()
        full = _full_index(node, idx, a, data.shape[a])
        fn = SCATTER_REDUCTIONS[scatter_reduction(node)]
        if fn is None:   # in index order: the last of duplicates wins
            for pos in np.ndindex(*idx.shape):
                out[tuple(np.broadcast_to(f, idx.shape)[pos] for f in full)] = upd[pos]
        else:
            fn.at(out, tuple(np.broadcast_to(f, idx.shape) for f in full), upd)
        return [out]


@register_op("ScatterElements")
class ScatterElements(_ScatterElementsBase):
    """ONNX ScatterElements(data, indices, updates; axis, reduction): y = data with
    ``y[i..., indices[i..., j, k...], k...] (op)= updates[i..., j, k...]`` in index order."""

    attrs = {"axis": 0, "reduction": "none"}


@register_op("Scatter")
class Scatter(_ScatterElementsBase):
    """ONNX Scatter (opsets 9, 10; deprecated): ScatterElements without reduction."""

    attrs = {"axis": 0}


def gather_nd_shape(node: Node) -> tuple[int, int, tuple[int, ...]]:
    """(batch_dims b, index depth m, output shape) of a GatherND node: output shape is
    ``indices.shape[:-1] + data.shape[b + m:]``. Raises ShapeError when the shapes disagree."""
    data, ind = node.inputs[0].shape, node.inputs[1].shape
    _check_index_dtype(node, 1)
    b = int(node.attrs.get("batch_dims") or 0)
    if not ind or not 0 <= b < min(len(data), len(ind)):
        raise _err(node, f"batch_dims {b} must be less than the ranks of data {list(data)} and "
                   f"indices {list(ind)}", "check batch_dims")
    m = ind[-1]
    if data[:b] != ind[:b] or b + m > len(data):
        raise _err(node, f"indices shape {list(ind)} does not address data shape {list(data)} "
                   f"with batch_dims {b}", "the leading batch_dims dims must agree and "
                   "indices.shape[-1] must not exceed rank(data) - batch_dims")
    return b, m, tuple(ind[:-1]) + tuple(data[b + m:])


@register_op("GatherND")
class GatherND(OpDef):
    """ONNX GatherND(data, indices; batch_dims): per batch position and index tuple of
    ``indices[..., :]`` (depth m), the slice ``data[batch..., i0, .., i(m-1), ...]``."""

    attrs = {"batch_dims": 0}
    min_inputs = max_inputs = 2

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(gather_nd_shape(node)[2], node.inputs[0].dtype)]

    def reference(self, node: Node, data, idx) -> list[np.ndarray]:
        b, m, shape = gather_nd_shape(node)
        B = math.prod(data.shape[:b])
        d = data.reshape((B,) + data.shape[b:])
        ix = wrap_indices(node, idx.reshape(B, -1, m), np.array(data.shape[b:b + m]))
        out = np.stack([d[(i,) + tuple(ix[i, q])] for i in range(B) for q in range(ix.shape[1])]) \
            if B * ix.shape[1] else np.zeros((0,) + data.shape[b + m:], data.dtype)
        return [out.reshape(shape)]


def scatter_nd_depth(node: Node) -> int:
    """The index depth m of a ScatterND node (``indices.shape[-1]``), after checking that
    updates has shape ``indices.shape[:-1] + data.shape[m:]``. Raises ShapeError otherwise."""
    data, ind, upd = (v.shape for v in node.inputs[:3])
    _check_index_dtype(node, 1)
    if not ind or ind[-1] > len(data):
        raise _err(node, f"indices shape {list(ind)} does not address data shape {list(data)}",
                   "indices.shape[-1] must not exceed rank(data)")
    m = ind[-1]
    if tuple(upd) != tuple(ind[:-1]) + tuple(data[m:]):
        raise _err(node, f"updates shape {list(upd)} must be {list(ind[:-1]) + list(data[m:])}",
                   "updates = indices.shape[:-1] + data.shape[indices.shape[-1]:]")
    return m


@register_op("ScatterND")
class ScatterND(OpDef):
    """ONNX ScatterND(data, indices, updates; reduction): y = data with, per index tuple of
    ``indices[..., :]`` (depth m) in order, ``y[i0, .., i(m-1), ...] (op)= updates[...]``."""

    attrs = {"reduction": "none"}
    min_inputs = max_inputs = 3

    def check(self, node: Node) -> None:
        scatter_reduction(node)

    def infer(self, node: Node) -> list[TensorType]:
        scatter_nd_depth(node)
        return [TensorType(node.inputs[0].shape, node.inputs[0].dtype)]

    def reference(self, node: Node, data, idx, upd) -> list[np.ndarray]:
        m = scatter_nd_depth(node)
        out = data.copy()
        ix = wrap_indices(node, idx.reshape(-1, m), np.array(data.shape[:m]))
        u = upd.reshape((-1,) + data.shape[m:])
        fn = SCATTER_REDUCTIONS[scatter_reduction(node)]
        for k in range(ix.shape[0]):
            at = tuple(ix[k])
            out[at] = u[k] if fn is None else fn(out[at], u[k])
        return [out]


# ---- TensorScatter -----------------------------------------------------------------------------
def tensor_scatter_axis(node: Node) -> int:
    """The sequence axis (>= 1) of a TensorScatter node. Raises AttributeValueError for axis 0
    or another mode than linear/circular, and ShapeError when update does not fit past_cache
    (equal dims, except a sequence no longer) or write_indices is not (batch,)."""
    past, upd = node.inputs[:2]
    r = len(past.shape)
    axis = norm_axis(node, attr(node, "axis"), r)
    if axis == 0:
        raise bad_attr(node, "axis 0 is the batch axis; the sequence axis must come after it")
    if str(attr(node, "mode")) not in ("linear", "circular"):
        raise bad_attr(node, f"mode {attr(node, 'mode')!r} is not linear or circular")
    if len(upd.shape) != r or any(p != u for a, (p, u) in enumerate(zip(past.shape, upd.shape))
                                  if a != axis) or upd.shape[axis] > past.shape[axis]:
        raise _err(node, f"update {list(upd.shape)} does not fit past_cache {list(past.shape)} "
                   f"(axis {axis})", "give the update past_cache's shape with a shorter sequence")
    if len(node.inputs) > 2 and node.inputs[2] is not None and \
            tuple(node.inputs[2].shape) != (past.shape[0],):
        raise _err(node, f"write_indices {list(node.inputs[2].shape)} should be "
                   f"[{past.shape[0]}]", "give one write position per batch entry")
    return axis


@register_op("TensorScatter")
class TensorScatter(OpDef):
    """ONNX TensorScatter(past_cache, update, write_indices; mode, axis) (opset 24): a copy of
    past_cache with, per batch entry b, update's sequence written along the axis from position
    write_indices[b] (0 when omitted); circular mode wraps positions modulo the cache length. A
    linear position past the cache (an error in the spec) is clamped to its last entry."""

    attrs = {"mode": "linear", "axis": -2}
    min_inputs, max_inputs = 2, 3

    def infer(self, node: Node) -> list[TensorType]:
        tensor_scatter_axis(node)
        return [TensorType(node.inputs[0].shape, node.inputs[0].dtype)]

    def reference(self, node: Node, past, upd, wi=None) -> list[np.ndarray]:
        axis = tensor_scatter_axis(node)
        L, S = past.shape[axis], upd.shape[axis]
        out = past.copy()
        w = np.zeros(past.shape[0], np.int64) if wi is None else wi.astype(np.int64)
        for pre in np.ndindex(*past.shape[:axis]):
            for i in range(S):
                j = w[pre[0]] + i
                j = j % L if attr(node, "mode") == "circular" else min(max(j, 0), L - 1)
                out[(*pre, j)] = upd[(*pre, i)]
        return [out]
