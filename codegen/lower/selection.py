"""TopK, OneHot, Compress, ReverseSequence and CenterCropPad as loop IR.

Tensors are viewed as (outer, axis, inner) around the op's axis. TopK selects without a scratch
buffer: pick t is the best element that comes strictly after pick t - 1 in the op's total order
(value, then lower index), one pass over the axis per pick (k * n comparisons per position, the
partial selection sort; k is small where TopK is used). Runtime indices (OneHot's indices,
ReverseSequence's lengths) are made non-negative and clamped inside the access expressions, so
verify proves every read; Compress reads its compile-time selection from a table.
"""

from __future__ import annotations

import math

import numpy as np

from onnxcc.codegen.loops import (BOOL, I64, INDEX, Assign, Binary, Buffer, Cast, Const, Decl,
                                  Expr, Load, Loop, Select, Stmt, Store, Unary, Var,
                                  affine, all_of, const, maximum, minimum)
from onnxcc.ir import Node
from onnxcc.ops.selection import (center_crop_pad_params, compress_params, onehot_params,
                                  reverse_sequence_axes, topk_params)

from . import LowerCtx, lower, nest
from .indexing import reshaped
from .tensor import clamp


# ---- TopK --------------------------------------------------------------------------------------
def _supports_topk(node: Node) -> str | None:
    if node.inputs[0].dtype.kind not in "iuf":
        return f"TopK on {node.inputs[0].dtype.name} is not supported"
    return None


def _first(a: Expr, b: Expr, largest: bool) -> Expr:
    """``a`` strictly before ``b`` by value: larger (smaller) first; NaN above every number."""
    c = Binary("gt" if largest else "lt", a, b)
    if a.dtype.is_float:
        na, nb = Unary("isnan", a), Unary("isnan", b)
        c = Binary("or", c, Binary("and", na, Unary("not", nb)) if largest
                   else Binary("and", Unary("not", na), nb))
    return c


def _same(a: Expr, b: Expr) -> Expr:
    """``a`` and ``b`` tie by value (two NaNs tie)."""
    e = Binary("eq", a, b)
    if a.dtype.is_float:
        e = Binary("or", e, Binary("and", Unary("isnan", a), Unary("isnan", b)))
    return e


@lower("TopK", supports=_supports_topk)
def _lower_topk(node: Node, ctx: LowerCtx):
    """(values, indices) (outer, k, inner) = the k first elements of x (outer, n, inner) along
    the axis in TopK's order (module docstring)."""
    x = node.inputs[0]
    axis, k, largest = topk_params(node)
    O, n, I = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    if O * k * I == 0:
        return None
    xb = reshaped(ctx.input(0), (O, n, I))
    vb, ib = reshaped(ctx.output(0), (O, k, I)), reshaped(ctx.output(1), (O, k, I))
    dt = xb.dtype
    o, i, t, r = ctx.var("o"), ctx.var("i"), ctx.var("t"), ctx.var("r")
    pv, pi, bv, bi, v = Var("pv", dt), Var("pi"), Var("bv", dt), Var("bi"), Var("v", dt)
    cand, take = Var("cand", BOOL), Var("take", BOOL)
    after_prev = Binary("or", _first(pv, v, largest),
                        Binary("and", _same(pv, v), Binary("lt", pi, r)))
    scan = Loop(r, 0, n, [
        Decl(v, xb[o, r, i]),
        Decl(cand, Binary("or", Binary("eq", t, Const(0)), after_prev)),
        Decl(take, Binary("and", cand, Binary("or", Binary("lt", bi, Const(0)),
                                              _first(v, bv, largest)))),
        Assign(bv, Select(take, v, bv)), Assign(bi, Select(take, r, bi))])
    pick = Loop(t, 0, k, [Decl(bv, const(0, dt)), Decl(bi, Const(-1)), scan,
                          Store(vb, (o, t, i), bv), Store(ib, (o, t, i), Cast(bi, I64)),
                          Assign(pv, bv), Assign(pi, bi)])
    body = [Decl(pv, const(0, dt)), Decl(pi, Const(-1)), pick]
    return ctx.kernel("topk", [vb, ib], [xb], [Loop(o, 0, O, [Loop(i, 0, I, body)])])


# ---- OneHot ------------------------------------------------------------------------------------
def _onehot_index(j: Expr, depth: int) -> Expr:
    """The loaded index ``j`` as int64 in ``[0, depth)``, or -1 when outside ``[-depth,
    depth)``: negative counts from depth, floats truncate (NaN is outside)."""
    if j.dtype.is_float:
        lim = const(float(depth) + 1, j.dtype)
        jc = Cast(minimum(maximum(j, -lim), lim), I64)     # in range before the conversion
        jj: Expr = Select(Binary("ne", j, j), const(-1 - depth, I64), jc)
    elif not j.dtype.signed:
        jj = Cast(minimum(j, const(depth, j.dtype)), I64)
    else:
        jj = j if j.dtype == I64 else Cast(j, I64)
    jw = Select(Binary("lt", jj, const(0, I64)), jj + const(depth, I64), jj)
    ok = Binary("and", Binary("ge", jw, const(0, I64)), Binary("lt", jw, const(depth, I64)))
    return Select(ok, jw, const(-1, I64))


@lower("OneHot")
def _lower_onehot(node: Node, ctx: LowerCtx):
    """y (outer, depth, inner) = on where the position on the axis equals indices (outer,
    inner), off elsewhere (values read at run time)."""
    ind, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    depth, axis = onehot_params(node)
    O, I = math.prod(ind.shape[:axis]), math.prod(ind.shape[axis:])
    ib = reshaped(ctx.input(0), (O, I))
    vb = reshaped(ctx.input(2), (2,))
    yb = reshaped(ctx.output(0), (O, depth, I))
    dt = yb.dtype
    o, i, d = ctx.var("o"), ctx.var("i"), ctx.var("d")
    off, on, j, hot = Var("off", dt), Var("on", dt), Var("j", ib.dtype), Var("hot", I64)
    body = [Decl(j, ib[o, i]), Decl(hot, _onehot_index(j, depth)),
            Loop(d, 0, depth, [Store(yb, (o, d, i), Select(
                Binary("eq", Cast(d, I64), hot), on, off))])]
    return ctx.kernel("one_hot", [yb], [ib, vb],
                      [Decl(off, vb[Const(0)]), Decl(on, vb[Const(1)]),
                       Loop(o, 0, O, [Loop(i, 0, I, body)])])


# ---- Compress ----------------------------------------------------------------------------------
@lower("Compress")
def _lower_compress(node: Node, ctx: LowerCtx):
    """y (outer, m, inner) = x (outer, n, inner) at the m selected positions along the axis
    (the flattened x without axis), read from a table of positions."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    axis, sel = compress_params(node)
    if axis is None:
        O, n, I = 1, x.type.size, 1
    else:
        O, n, I = math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:])
    m = len(sel)
    xb = reshaped(ctx.input(0), (O, n, I))
    yb = reshaped(ctx.output(0), (O, m, I))
    tb = Buffer("positions", INDEX, (m,), space="weight",
                data=np.ascontiguousarray(sel, INDEX.np))
    o, t, i = ctx.var("o"), ctx.var("t"), ctx.var("i")
    src = clamp(tb[t], 0, n - 1)   # a no-op on the table's values that lets verify prove
    body = [Loop(o, 0, O, [Loop(t, 0, m, [Loop(i, 0, I, [Store(yb, (o, t, i),
                                                                xb[o, src, i])])])])]
    return ctx.kernel("compress", [yb], [xb, tb], body)


# ---- ReverseSequence ---------------------------------------------------------------------------
@lower("ReverseSequence", supports=lambda n: None if n.inputs[1].dtype.kind in "iu"
       else "sequence_lens must be an integer tensor")
def _lower_reverse_sequence(node: Node, ctx: LowerCtx):
    """y[t, b, r] = x[L - 1 - t, b, r] for t < L = clamp(sequence_lens[b], 0, T), else
    x[t, b, r] (time and batch in the node's axis order, r the trailing dims)."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    ta, ba = reverse_sequence_axes(node)
    T, B = x.shape[ta], x.shape[ba]
    R = math.prod(x.shape[2:])
    shape3 = (T, B, R) if ta == 0 else (B, T, R)
    xb, yb = reshaped(ctx.input(0), shape3), reshaped(ctx.output(0), shape3)
    lb = ctx.input(1)
    b, t, r = ctx.var("b"), ctx.var("t"), ctx.var("r")
    ln = Var("len", I64)
    lv = lb[b]
    lc = clamp(lv if lv.dtype == I64 else Cast(lv, I64), 0, T)
    src = clamp(Select(Binary("lt", Cast(t, I64), ln), Cast(ln - const(1, I64), INDEX) - t, t),
                0, T - 1)

    def at(tt: Expr) -> tuple[Expr, ...]:
        return (tt, b, r) if ta == 0 else (b, tt, r)

    body = [Loop(b, 0, B, [Decl(ln, lc), Loop(t, 0, T, [Loop(r, 0, R, [
        Store(yb, at(t), xb[at(src)])])])])]
    return ctx.kernel("reverse_sequence", [yb], [xb, lb], body)


# ---- CenterCropPad -----------------------------------------------------------------------------
@lower("CenterCropPad")
def _lower_center_crop_pad(node: Node, ctx: LowerCtx):
    """y[i] = x[i + offset] where inside x, else 0 (per-axis offsets from
    :func:`onnxcc.ops.selection.center_crop_pad_params`)."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    out, off = center_crop_pad_params(node)
    xb, yb = ctx.input(0), ctx.output(0)
    zero = const(0, yb.dtype)
    if x.type.size == 0:
        return ctx.kernel("center_crop_pad", [yb], [], nest(ctx, out, lambda v: [
            Store(yb, tuple(v), zero)]))

    def body(v: list[Var]) -> list[Stmt]:
        idx = [affine(i, o) for i, o in zip(v, off)]
        conds = []
        for e, o, n, d in zip(idx, off, out, x.shape):
            if o < 0:
                conds.append(Binary("ge", e, Const(0)))
            if n + o > d:
                conds.append(Binary("lt", e, Const(d)))
        mask = all_of(*conds)
        return [Store(yb, tuple(v), Load(xb, tuple(idx), mask, zero if mask else None))]

    return ctx.kernel("center_crop_pad", [yb], [xb], nest(ctx, out, body))

