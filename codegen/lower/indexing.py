"""Indexing by runtime index tensors as loop IR: GatherElements, GatherND, ScatterElements,
Scatter, ScatterND, TensorScatter.

Each index is loaded into a local, made non-negative (``j + dim`` for ``j < 0``) and clamped to
``[0, dim)`` inside the access expression itself, so verify proves every read and write in
bounds from the clamp (the spec calls an index outside ``[-dim, dim)`` an error; onnxruntime
refuses it; the kernel clamps it as Gather's lowering does). The scatters first copy data to the
output (nothing when the memory plan put the output on data), then walk the indices in row-major
order applying the reduction, so with ``none`` the last of duplicate indices wins, as in the
reference.
"""

from __future__ import annotations

import math
from typing import Sequence

from onnxcc.codegen.loops import (INDEX, Binary, Buffer, Cast, Decl, Expr, Loop, Select, Stmt,
                                  Store, Var, const)
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops.indexing import (elements_axis, gather_nd_shape, scatter_nd_depth,
                                 scatter_reduction, tensor_scatter_axis)

from . import LowerCtx, lower, nest
from .tensor import clamp


def _index_dtype(node: Node) -> str | None:
    if node.inputs[1].dtype.kind not in "iu":
        return f"indices of dtype {node.inputs[1].dtype.name} are not supported"
    return None


def wrapped_index(j: Expr, dim: int) -> Expr:
    """The INDEX expression ``clamp(j < 0 ? j + dim : j, 0, dim - 1)`` of the loaded index
    ``j`` (any integer dtype): in ``[0, dim)`` whatever ``j`` holds."""
    e: Expr = j
    if j.dtype.signed:
        e = Select(Binary("lt", j, const(0, j.dtype)), j + const(dim, j.dtype), j)
    e = clamp(e, 0, max(dim - 1, 0))
    return e if e.dtype == INDEX else Cast(e, INDEX)


def reshaped(b: Buffer, shape: Sequence[int]) -> Buffer:
    """``b`` (contiguous, or a splat read at stride 0) viewed as ``shape`` (same element count)."""
    st = (0,) * len(shape) if all(s == 0 for s in b.strides) else None
    return Buffer(b.name, b.dtype, tuple(shape), st, b.space, b.offset, b.index, b.data, b.value)


def _copy_data(ctx: LowerCtx, yb: Buffer, xb: Buffer) -> list[Stmt]:
    """``yb = xb`` (one shape) in row-major order, or nothing when the plan put y on data. The
    stores use ``yb`` itself: a kernel names each of its buffers by one object."""
    node = ctx.node
    if ctx.same_storage(node.inputs[0], node.outputs[0]):
        return []
    return nest(ctx, yb.shape, lambda i: [Store(yb, tuple(i), xb[tuple(i)])], "c")


def _combine(red: str, old: Expr, new: Expr) -> Expr:
    """The value a scatter writes: ``new``, or ``old (op) new`` for its reduction (max/min
    propagate NaN, as numpy.maximum in the reference)."""
    if red == "none":
        return new
    if red == "mul" and new.dtype.name == "bool":
        return Binary("and", old, new)
    if red == "add" and new.dtype.name == "bool":
        return Binary("or", old, new)
    return Binary({"add": "add", "mul": "mul", "max": "max", "min": "min"}[red], old, new)


@lower("GatherElements", supports=_index_dtype)
def _lower_gather_elements(node: Node, ctx: LowerCtx):
    """y (indices' shape) [i...] = data[i with i[axis] = indices[i]]."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    a = elements_axis(node)
    db, ib, yb = ctx.input(0), ctx.input(1), ctx.output(0)
    d = node.inputs[0].shape[a]

    def body(v: list) -> list[Stmt]:
        j = Var("j", ib.dtype)
        idx = list(v)
        idx[a] = wrapped_index(j, d)
        return [Decl(j, ib[tuple(v)]), Store(yb, tuple(v), db[tuple(idx)])]

    return ctx.kernel("gather_elements", [yb], [db, ib], nest(ctx, y.shape, body))


def _supports_scatter(node: Node) -> str | None:
    return _index_dtype(node)


@lower("ScatterElements", "Scatter", supports=_supports_scatter)
def _lower_scatter_elements(node: Node, ctx: LowerCtx):
    """y = data; then per index position i (row-major): y[i with i[axis] = indices[i]] (op)=
    updates[i]."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    a = elements_axis(node)
    red = scatter_reduction(node)
    yb, ib, ub = ctx.output(0), ctx.input(1), ctx.input(2)
    d = y.shape[a]
    xb = ctx.input(0)
    body = _copy_data(ctx, yb, xb)
    ins = [xb] if body else []

    def step(v: list) -> list[Stmt]:
        j = Var("j", ib.dtype)
        idx = list(v)
        idx[a] = wrapped_index(j, d)
        return [Decl(j, ib[tuple(v)]),
                Store(yb, tuple(idx), _combine(red, yb[tuple(idx)], ub[tuple(v)]))]

    if node.inputs[1].type.size:
        body += nest(ctx, node.inputs[1].shape, step)
        ins += [ib, ub]
    return ctx.kernel("scatter_elements", [yb], ins, body)


@lower("GatherND", supports=_index_dtype)
def _lower_gather_nd(node: Node, ctx: LowerCtx):
    """y viewed as (B, Q, S) = data viewed as (B, data.shape[b:b+m]..., S) at the m indices of
    each of the Q index tuples of each batch position (B: the batch_dims dims merged, S: the
    trailing slice)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    b, m, _ = gather_nd_shape(node)
    data, ind = node.inputs[0].shape, node.inputs[1].shape
    B, S = math.prod(data[:b]), math.prod(data[b + m:])
    Q = math.prod(ind[b:-1])
    dims = tuple(data[b:b + m])
    db = reshaped(ctx.input(0), (B,) + dims + (S,))
    ib = reshaped(ctx.input(1), (B, Q, m))
    yb = reshaped(ctx.output(0), (B, Q, S))
    bi, q, s = ctx.var("b"), ctx.var("q"), ctx.var("s")
    js = [Var(f"j{k}", ib.dtype) for k in range(m)]
    decls: list[Stmt] = [Decl(js[k], ib[bi, q, const(k, INDEX)]) for k in range(m)]
    src = (bi,) + tuple(wrapped_index(js[k], dims[k]) for k in range(m)) + (s,)
    body = [Loop(bi, 0, B, [Loop(q, 0, Q, decls + [Loop(s, 0, S, [Store(yb, (bi, q, s),
                                                                         db[src])])])])]
    return ctx.kernel("gather_nd", [yb], [db, ib], body)


@lower("ScatterND", supports=_supports_scatter)
def _lower_scatter_nd(node: Node, ctx: LowerCtx):
    """y = data; then per index tuple k of indices viewed as (K, m), in order:
    y[indices[k, 0], .., indices[k, m-1], s] (op)= updates[k, s] (S: the trailing slice)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    m = scatter_nd_depth(node)
    red = scatter_reduction(node)
    data = y.shape
    K, S = math.prod(node.inputs[1].shape[:-1]), math.prod(data[m:])
    dims = tuple(data[:m])
    yb = reshaped(ctx.output(0), dims + (S,))
    xb = reshaped(ctx.input(0), dims + (S,))
    body = _copy_data(ctx, yb, xb)
    ins = [xb] if body else []
    ib = reshaped(ctx.input(1), (K, m))
    ub = reshaped(ctx.input(2), (K, S))
    k, s = ctx.var("k"), ctx.var("s")
    js = [Var(f"j{t}", ib.dtype) for t in range(m)]
    decls: list[Stmt] = [Decl(js[t], ib[k, const(t, INDEX)]) for t in range(m)]
    dst = tuple(wrapped_index(js[t], dims[t]) for t in range(m)) + (s,)
    if K and S:
        body.append(Loop(k, 0, K, decls + [Loop(s, 0, S, [
            Store(yb, dst, _combine(red, yb[dst], ub[k, s]))])]))
        ins += [ib, ub]
    return ctx.kernel("scatter_nd", [yb], ins, body)


@lower("TensorScatter")
def _lower_tensor_scatter(node: Node, ctx: LowerCtx):
    """y = past_cache; then per position before the axis (batch b first) and step i < the
    update's length, y[..., p, ...] = update[..., i, ...] at p = write_indices[b] + i (clamped
    into the cache; circular: modulo its length, made non-negative)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    axis = tensor_scatter_axis(node)
    past, upd = node.inputs[:2]
    L = past.shape[axis]
    yb, xb, ub = ctx.output(0), ctx.input(0), ctx.input(1)
    has_w = len(node.inputs) > 2 and node.inputs[2] is not None
    wb = ctx.input(2) if has_w else None
    body = _copy_data(ctx, yb, xb)
    ins = [xb] if body else []
    if upd.type.size == 0:
        return ctx.kernel("tensor_scatter", [yb], ins, body) if body else None
    circular = attr(node, "mode") == "circular"

    def step(v: list) -> list[Stmt]:
        pre, i, post = v[:axis], v[axis], v[axis + 1:]
        if wb is None:
            pos: Expr = i
        else:
            w = Var("w", INDEX)
            wl = wb[(pre[0],)]
            wc = clamp(wl, -2 * L, 2 * L)
            pos = Binary("add", w, i)
            decl = [Decl(w, Cast(wc, INDEX) if wl.dtype != INDEX else wc)]
        if circular:
            m = Binary("mod", pos, const(L, INDEX))
            pos = Select(Binary("lt", m, const(0, INDEX)), Binary("add", m, const(L, INDEX)), m)
        pos = clamp(pos, 0, L - 1)
        store = Store(yb, (*pre, pos, *post), ub[tuple(v)])
        return (decl if wb is not None else []) + [store]

    body += nest(ctx, upd.shape, step)
    return ctx.kernel("tensor_scatter", [yb], ins + [ub] + ([wb] if wb is not None else []), body)
