"""Normalizations (inference form) and the softmax family as loop IR: BatchNormalization,
InstanceNormalization, LayerNormalization, LRN, Softmax, LogSoftmax, Hardmax.

Each kernel is a loop nest over the independent positions holding a few passes over the
normalized axes (a max or mean, a sum, the write), each its own loop nest. x and y are read
through flat views with their strides (a splat reads at stride 0); parameters (scale, bias, mean,
var) through their own strides, so splat or broadcast parameters are never expanded. Sums over
more than ``SUM_BLOCK`` elements (means, variances, softmax denominators) are blocked, as the
reductions are (:func:`onnxcc.codegen.lower.reduce.blocked_sum`, Higham 1993). Arithmetic is in
x's dtype (float32 or float64), as the op references compute.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from onnxcc.codegen.loops import (Assign, Binary, Buffer, Cast, Const, Decl, DType, Expr, Loop,
                                  Select, Stmt, Store, Unary, Var, affine, const, maximum,
                                  minimum)
from onnxcc.ir import Node
from onnxcc.ops._util import norm_axes, norm_axis
from onnxcc.ops.norm import softmax_axes

from . import LowerCtx, broadcast_view, lower, nest
from .reduce import SUM_BLOCK, Acc, blocked_sum, scalar_accs
from .tensor import flat, merge_dims, offset


def float_only(node: Node) -> str | None:
    """Why ``node`` is refused unless x is float32/float64."""
    x = node.inputs[0]
    if x.dtype.name not in ("float32", "float64"):
        return f"{node.op} on {x.dtype.name} is not supported (float32/64 only)"
    return None


def _strides3(b: Buffer, shape3: Sequence[int]) -> list[int]:
    """Element strides of ``b`` (contiguous or a splat) viewed as ``shape3``."""
    if all(s == 0 for s in b.strides):
        return [0] * len(shape3)
    return [math.prod(shape3[k + 1:]) for k in range(len(shape3))]


def _eps(node: Node, dt: DType) -> Expr:
    return const(float(dt.np.type(node.attrs.get("epsilon", 1e-5))), dt)


def reduction_lanes(ctx: LowerCtx, n: int) -> int:
    """Partial accumulators for a reduction over ``n`` terms of one contiguous dim: two vectors'
    worth of float32 lanes (16 on AVX2) on targets with a vector register file, when ``n`` is
    at least twice that and at most ``SUM_BLOCK`` terms per partial; else 0 (one running
    accumulator, or blocked sums past that length: C targets, size mode, short or long sums)."""
    lanes = 2 * ctx.vector_lanes()
    return lanes if lanes and not ctx.size and 2 * lanes <= n <= lanes * SUM_BLOCK else 0


def lane_reduce(ctx: LowerCtx, n: int, name: str, dt: DType, lanes: int, init: Expr,
                update, term) -> tuple[list[Stmt], Var]:
    """``name`` = the reduction over k < ``n`` of ``term(k)`` by ``update(acc, x)`` (an
    associative, commutative update: a sum, a max) in ``lanes`` partial accumulators: partial
    ``u`` takes the terms ``k = lanes * kb + u`` in order of kb, the tail of ``n % lanes`` terms
    goes into partial 0, then the partials combine pairwise (``update(p[2t], p[2t+1])`` per
    level). The updates of one step do not wait on each other, so LLVM's SLP vectorizer makes
    vector instructions of them (a running scalar accumulator is a chain of dependent adds,
    three or four cycles each: the transformer layer's Softmax over 64 ran at 30 us); a fixed
    reassociation, as MLAS and every BLAS make, identical on every back end (the loop IR says
    it). Statements and the local holding the result."""
    parts = [Var(ctx.var(name).name, dt) for _ in range(lanes)]
    kb = ctx.var("kb")
    main = n - n % lanes
    out: list[Stmt] = [Decl(p, init) for p in parts]
    out.append(Loop(kb, 0, main // lanes, [Assign(p, update(p, term(affine((kb, lanes), u))))
                                           for u, p in enumerate(parts)]))
    if main < n:
        k = ctx.var("k")
        out.append(Loop(k, main, n, [Assign(parts[0], update(parts[0], term(k)))]))
    level: list[Var] = parts
    while len(level) > 1:
        nxt = [Var(ctx.var(name).name, dt) for _ in range(len(level) // 2)]
        out += [Decl(v, update(level[2 * t], level[2 * t + 1])) for t, v in enumerate(nxt)]
        level = nxt + level[2 * len(nxt):]
    return out, level[0]


def _sum(ctx: LowerCtx, dims: Sequence[int], name: str, dt: DType, term) -> tuple[list[Stmt], Var]:
    """``name`` = the sum over the box ``dims`` of ``term(index)``: statements and the local.
    Over one dim of at least twice :func:`reduction_lanes`, in that many partial sums
    (:func:`lane_reduce`); else blocked when longer than ``SUM_BLOCK``."""
    n = math.prod(dims)
    lanes = reduction_lanes(ctx, n) if len(dims) == 1 else 0
    if lanes:
        return lane_reduce(ctx, n, name, dt, lanes, const(0, dt), lambda a, x: a + x,
                           lambda k: term([k]))
    acc = Acc(Var(name, dt))
    leaf = lambda idx, a: [Assign(a.var, a.var + term(idx))]  # noqa: E731
    body = acc.init(const(0, dt)) + blocked_sum(ctx, list(dims), acc, scalar_accs(ctx, dt),
                                                leaf, const(0, dt),
                                                SUM_BLOCK if n > SUM_BLOCK else max(n, 1))
    return body, acc.var


def _supports_norm(node: Node) -> str | None:
    why = float_only(node)
    if why:
        return why
    x = node.inputs[0]
    if any(v is not None and v.dtype != x.dtype for v in node.inputs[1:]):
        return f"{node.op} with parameters of another dtype than x is not supported"
    if node.op == "BatchNormalization":
        if len(x.shape) < 2:
            return "BatchNormalization needs an (N, C, ...) input"
        if any(v.shape != (x.shape[1],) for v in node.inputs[1:]):
            return "BatchNormalization with per-position parameters (spatial=0) is not supported"
    if node.op == "InstanceNormalization" and len(x.shape) < 3:
        return "InstanceNormalization needs an (N, C, spatial...) input"
    return None


def _nc_s(node: Node, ctx: LowerCtx):
    """x, y as flat views over (N, C, S) (S = the spatial dims merged) with their strides."""
    x = node.inputs[0]
    shape3 = (x.shape[0], x.shape[1], math.prod(x.shape[2:]))
    xb, yb = ctx.input(0), ctx.output(0)
    return shape3, flat(xb), _strides3(xb, shape3), flat(yb), _strides3(yb, shape3)


# ---- BatchNormalization / InstanceNormalization ------------------------------------------------
@lower("BatchNormalization", supports=_supports_norm)
def _lower_batchnorm(node: Node, ctx: LowerCtx):
    """x, y (N, C, *S); scale, B, mean, var (C,): y = (x - mean[c]) * (scale[c] /
    sqrt(var[c] + eps)) + B[c], the per-channel factors computed once per (n, c)."""
    if node.outputs[0].type.size == 0:
        return None
    (N, C, S), xf, xs, yf, ys = _nc_s(node, ctx)
    sc, bb, mn, vr = (ctx.input(k) for k in range(1, 5))
    dt = xf.dtype
    n, c, s = ctx.var("n"), ctx.var("c"), ctx.var("s")
    a, m, b = Var("a", dt), Var("m", dt), Var("b", dt)
    write = Store(yf, (offset([n, c, s], ys),), (xf[offset([n, c, s], xs)] - m) * a + b)
    per_c = [Decl(a, sc[c] / Unary("sqrt", vr[c] + _eps(node, dt))), Decl(m, mn[c]),
             Decl(b, bb[c]), Loop(s, 0, S, [write])]
    return ctx.kernel("batchnorm", [yf], [xf, sc, bb, mn, vr],
                      [Loop(n, 0, N, [Loop(c, 0, C, per_c)])])


@lower("InstanceNormalization", supports=_supports_norm)
def _lower_instancenorm(node: Node, ctx: LowerCtx):
    """x, y (N, C, *S); scale, B (C,). Per (n, c): mean and variance over S (two passes), then
    y = (x - mean) * (scale[c] / sqrt(var + eps)) + B[c]."""
    if node.outputs[0].type.size == 0:
        return None
    (N, C, S), xf, xs, yf, ys = _nc_s(node, ctx)
    sc, bb = ctx.input(1), ctx.input(2)
    dt = xf.dtype
    n, c = ctx.var("n"), ctx.var("c")
    mean, a, b = Var("mean", dt), Var("a", dt), Var("b", dt)
    xat = lambda i: xf[offset([n, c, i[0]], xs)]  # noqa: E731
    sum_x, total = _sum(ctx, [S], "sum", dt, xat)
    sum_sq, sq = _sum(ctx, [S], "sq", dt, lambda i: (xat(i) - mean) * (xat(i) - mean))
    cnt = const(S, dt)
    per_c = sum_x + [Decl(mean, total / cnt)] + sum_sq + [
        Decl(a, sc[c] / Unary("sqrt", sq / cnt + _eps(node, dt))), Decl(b, bb[c])]
    per_c += nest(ctx, [S], lambda i: [Store(yf, (offset([n, c, i[0]], ys),),
                                             (xat(i) - mean) * a + b)], "s")
    return ctx.kernel("instancenorm", [yf], [xf, sc, bb],
                      [Loop(n, 0, N, [Loop(c, 0, C, per_c)])])


# ---- LayerNormalization ------------------------------------------------------------------------
def _supports_layernorm(node: Node) -> str | None:
    why = float_only(node)
    if why:
        return why
    if any(v is not None and v.dtype != node.inputs[0].dtype for v in node.inputs[1:]):
        return "LayerNormalization with Scale/B of another dtype than x is not supported"
    return None


@lower("LayerNormalization", supports=_supports_layernorm)
def _lower_layernorm(node: Node, ctx: LowerCtx):
    """x, y viewed as (outer, inner) at ``axis``; Scale, B broadcast to x.shape[axis:]. Per outer
    position: mean and variance over inner, then y = (x - mean) * inv_std * Scale + B; the
    optional Mean and InvStdDev outputs (outer,) in their stash dtype."""
    return normalize_trailing(node, ctx, center=True)


def normalize_trailing(node: Node, ctx: LowerCtx, center: bool):
    """The kernel of LayerNormalization (``center``) and RMSNormalization (not ``center``: the
    mean is taken as 0, so inv_std = 1 / sqrt(mean(x^2) + eps)): x, y viewed as (outer, inner)
    at ``axis``; inputs 1 and 2 (Scale, optional B) broadcast to x.shape[axis:]; outputs 1 and 2
    (optional Mean, InvStdDev) of shape (outer,). None for a zero-size x."""
    x = node.inputs[0]
    if x.type.size == 0:
        return None
    axis = norm_axis(node, node.attrs.get("axis", -1), len(x.shape))
    outer, inner = math.prod(x.shape[:axis]), tuple(x.shape[axis:])
    xb, yb = ctx.input(0), ctx.output(0)
    xf, yf = flat(xb), flat(yb)
    params = [ctx.input(k) for k in (1, 2) if k < len(node.inputs) and node.inputs[k] is not None]
    pviews = [broadcast_view(p, inner) for p in params]
    n_in = math.prod(inner)
    x_in = [0] * len(inner) if all(s == 0 for s in xb.strides) else \
        [math.prod(inner[k + 1:]) for k in range(len(inner))]
    y_in = [math.prod(inner[k + 1:]) for k in range(len(inner))]
    shp, sts = merge_dims(inner, [x_in, y_in] + [list(p.strides) for p in pviews])
    x_o = 0 if all(s == 0 for s in xb.strides) else n_in
    dt = xf.dtype
    o = ctx.var("o")
    mean, inv = Var("mean", dt), Var("inv", dt)
    xat = lambda i: xf[affine((o, x_o), offset(i, sts[0]))]  # noqa: E731
    cnt = const(n_in, dt)
    if center:
        sum_x, total = _sum(ctx, shp, "sum", dt, xat)
        sum_sq, sq = _sum(ctx, shp, "sq", dt, lambda i: (xat(i) - mean) * (xat(i) - mean))
        body = sum_x + [Decl(mean, total / cnt)] + sum_sq
        centered = lambda i: xat(i) - mean  # noqa: E731
    else:
        body, sq = _sum(ctx, shp, "sq", dt, lambda i: xat(i) * xat(i))
        centered = xat
    body += [Decl(inv, const(1, dt) / Unary("sqrt", sq / cnt + _eps(node, dt)))]
    pf = [flat(p) for p in params]

    def write(i: list[Var]) -> list[Stmt]:
        v = centered(i) * inv * pf[0][offset(i, sts[2])]
        if len(pf) > 1:
            v = v + pf[1][offset(i, sts[3])]
        return [Store(yf, (affine((o, n_in), offset(i, sts[1])),), v)]

    body += nest(ctx, shp, write, "j")
    stats = [flat(ctx.output(k)) for k in range(1, len(node.outputs))
             if node.outputs[k] is not None]
    for st, val in zip(stats, (mean, inv)):
        body.append(Store(st, (o,), val if st.dtype == dt else Cast(val, st.dtype)))
    return ctx.kernel("layernorm" if center else "rmsnorm", [yf] + stats, [xf] + pf,
                      [Loop(o, 0, outer, body)])


# ---- LRN ---------------------------------------------------------------------------------------
@lower("LRN", supports=lambda n: float_only(n) or (
        None if len(n.inputs[0].shape) >= 3 else "LRN needs an (N, C, spatial...) input"))
def _lower_lrn(node: Node, ctx: LowerCtx):
    """x, y (N, C, *S): y = x / (bias + alpha/size * sum of x^2 over the channel window)^beta;
    the window of channel c is [c - (size-1)//2, c + size-1 - (size-1)//2], cut to [0, C)."""
    if node.outputs[0].type.size == 0:
        return None
    (N, C, S), xf, xs, yf, ys = _nc_s(node, ctx)
    dt = xf.dtype
    size = int(node.attrs["size"])
    # the window is cut to [0, C) anyway: offsets past C (size 2**63 - 1) would only overflow
    lo, hi = min((size - 1) // 2, C), min(size - 1 - (size - 1) // 2, C)
    n, c, s, q = ctx.var("n"), ctx.var("c"), ctx.var("s"), ctx.var("q")
    acc, v = Var("acc", dt), Var("v", dt)
    k = const(float(dt.np.type(node.attrs.get("alpha", 1e-4)) / dt.np.type(size)), dt)
    bias = const(float(node.attrs.get("bias", 1.0)), dt)
    beta = const(float(node.attrs.get("beta", 0.75)), dt)
    window = Loop(q, maximum(affine(c, -lo), Const(0)), minimum(affine(c, hi + 1), Const(C)),
                  [Decl(v, xf[offset([n, q, s], xs)]), Assign(acc, acc + v * v)])
    y = xf[offset([n, c, s], xs)] / Binary("pow", bias + k * acc, beta)
    body = [Decl(acc, const(0, dt)), window, Store(yf, (offset([n, c, s], ys),), y)]
    return ctx.kernel("lrn", [yf], [xf],
                      [Loop(n, 0, N, [Loop(c, 0, C, [Loop(s, 0, S, body)])])])


# ---- Softmax / LogSoftmax / Hardmax ------------------------------------------------------------
def _oki(node: Node, ctx: LowerCtx):
    """x, y as flat views over (outer, K, inner), K the axes of :func:`softmax_axes` merged."""
    x = node.inputs[0]
    axes = softmax_axes(node)
    a0, a1 = (axes[0], axes[-1] + 1) if axes else (len(x.shape), len(x.shape))
    shape3 = (math.prod(x.shape[:a0]), math.prod(x.shape[a0:a1]), math.prod(x.shape[a1:]))
    xb, yb = ctx.input(0), ctx.output(0)
    return shape3, flat(xb), _strides3(xb, shape3), flat(yb), _strides3(yb, shape3)


@lower("Softmax", "LogSoftmax", supports=float_only)
def _lower_softmax(node: Node, ctx: LowerCtx):
    """Along :func:`softmax_axes` (opset < 13: every axis from ``axis``, x coerced to 2-D; 13+:
    one axis), per (outer, inner) position: m = max (0 when not finite, as the reference),
    s = sum exp(x - m); Softmax y = exp(x - m) / s, LogSoftmax y = (x - m) - log(s)."""
    if node.outputs[0].type.size == 0:
        return None
    (O, K, I), xf, xs, yf, ys = _oki(node, ctx)
    dt = xf.dtype
    o, i = ctx.var("o"), ctx.var("i")
    mx, ls = Var("mx", dt), Var("ls", dt)
    xat = lambda k: xf[offset([o, k, i], xs)]  # noqa: E731
    yoff = lambda k: offset([o, k, i], ys)  # noqa: E731
    body: list[Stmt] = [Decl(mx, const(-np.inf, dt))]
    # a max that skips NaN (x > mx ? x : mx: the form compilers turn into max instructions): a
    # NaN anywhere makes the sum of exponentials NaN, so every output is NaN either way
    take_max = lambda a, x: Select(Binary("gt", x, a), x, a)  # noqa: E731
    lanes = reduction_lanes(ctx, K) if xs[1] == 1 else 0
    if lanes:   # partial maxima (the max is exact in any order), combined pairwise
        maxes, m0 = lane_reduce(ctx, K, "mx", dt, lanes, const(-np.inf, dt), take_max, xat)
        body += maxes + [Assign(mx, m0)]
    else:
        body += nest(ctx, [K], lambda k: [Assign(mx, take_max(mx, xat(k[0])))], "k")
    # as the reference: an infinite (or NaN) max shifts by 0
    body.append(Assign(mx, Select(Binary("eq", mx - mx, const(0, dt)), mx, const(0, dt))))
    # y = exp(x - m) in a loop of its own (it vectorizes: a sum in the same loop kept the
    # exponentials scalar), then s = the sum of y, in the same order as before
    if ctx.size and K <= SUM_BLOCK:
        # size mode: one loop (MLP 784-128-64-10 on the M4 at -Os: 144 -> 128 bytes), the sum
        # in the order _sum takes for a row of at most SUM_BLOCK (one block); a longer row keeps
        # _sum's blocks (its accuracy)
        total = Var("sum", dt)
        body += [Decl(total, const(0, dt))] + nest(ctx, [K], lambda k: [
            Store(yf, (yoff(k[0]),), Unary("exp", xat(k[0]) - mx)),
            Assign(total, total + yf[yoff(k[0])])], "k")
    else:
        body += nest(ctx, [K], lambda k: [Store(yf, (yoff(k[0]),),
                                                Unary("exp", xat(k[0]) - mx))], "k")
        sums, total = _sum(ctx, [K], "sum", dt, lambda k: yf[yoff(k[0])])
        body += sums
    if node.op == "Softmax":
        body += nest(ctx, [K], lambda k: [Store(yf, (yoff(k[0]),), yf[yoff(k[0])] / total)], "k")
    else:
        body += [Decl(ls, Unary("log", total))]
        body += nest(ctx, [K], lambda k: [Store(yf, (yoff(k[0]),), (xat(k[0]) - mx) - ls)], "k")
    return ctx.kernel(node.op.lower(), [yf], [xf], [Loop(o, 0, O, [Loop(i, 0, I, body)])])


def _supports_hardmax(node: Node) -> str | None:
    x = node.inputs[0]
    if x.const is not None:
        return "a constant Hardmax should have been folded"
    return None if x.dtype.kind == "f" else f"Hardmax on {x.dtype.name} is not supported"


@lower("Hardmax", supports=_supports_hardmax)
def _lower_hardmax(node: Node, ctx: LowerCtx):
    """y = one-hot of the first maximum along :func:`softmax_axes` (NaN counts as the maximum,
    like numpy.argmax), per (outer, inner) position of x viewed as (outer, K, inner)."""
    if node.outputs[0].type.size == 0:
        return None
    (O, K, I), xf, xs, yf, ys = _oki(node, ctx)
    dt = xf.dtype
    o, i, k = ctx.var("o"), ctx.var("i"), ctx.var("k")
    bv, best, v, take = Var("bv", dt), Var("best"), Var("v", dt), Var("take", DType("bool"))
    cond = Binary("or", Binary("gt", v, bv), Binary("and", Binary("ne", v, v),
                                                     Binary("eq", bv, bv)))
    scan = Loop(k, 1, K, [Decl(v, xf[offset([o, k, i], xs)]), Decl(take, cond),
                          Assign(bv, Select(take, v, bv)), Assign(best, Select(take, k, best))])
    body = [Decl(bv, xf[offset([o, i], [xs[0], xs[2]])]), Decl(best, Const(0)), scan]
    body += nest(ctx, [K], lambda kk: [Store(yf, (offset([o, kk[0], i], ys),), Select(
        Binary("eq", kk[0], best), const(1, dt), const(0, dt)))], "k")
    return ctx.kernel("hardmax", [yf], [xf], [Loop(o, 0, O, [Loop(i, 0, I, body)])])


# ---- LpNormalization / GroupNormalization ------------------------------------------------------
@lower("LpNormalization", supports=float_only)
def _lower_lpnorm(node: Node, ctx: LowerCtx):
    """x, y viewed as (outer, K, inner), K the ``axis``; per (outer, inner) position the norm
    n = sum |x| (p 1) or sqrt(sum x^2) (p 2) over K, then y = x / n (0 where n is 0)."""
    x = node.inputs[0]
    if x.type.size == 0:
        return None
    axis = norm_axis(node, node.attrs.get("axis", -1), len(x.shape))
    shape3 = (math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:]))
    xb, yb = ctx.input(0), ctx.output(0)
    xf, xs, yf, ys = flat(xb), _strides3(xb, shape3), flat(yb), _strides3(yb, shape3)
    (O, K, I), dt = shape3, xf.dtype
    o, i = ctx.var("o"), ctx.var("i")
    xat = lambda k: xf[offset([o, k[0], i], xs)]  # noqa: E731
    p1 = node.attrs.get("p", 2) == 1
    body, total = _sum(ctx, [K], "sum", dt, (lambda k: Unary("abs", xat(k))) if p1 else
                       (lambda k: xat(k) * xat(k)))
    nv = Var("norm", dt)
    body.append(Decl(nv, total if p1 else Unary("sqrt", total)))
    zero = Binary("eq", nv, const(0, dt))
    body += nest(ctx, [K], lambda k: [Store(yf, (offset([o, k[0], i], ys),),
                                            Select(zero, const(0, dt), xat(k) / nv))], "k")
    return ctx.kernel("lpnorm", [yf], [xf], [Loop(o, 0, O, [Loop(i, 0, I, body)])])


@lower("GroupNormalization", supports=lambda n: float_only(n) or (
        None if all(v.dtype == n.inputs[0].dtype for v in n.inputs[1:])
        else "scale/bias of another dtype than x is not supported"))
def _lower_groupnorm(node: Node, ctx: LowerCtx):
    """x, y (N, C, *S) viewed as (N, G, C/G, S); per (n, g): mean and variance over (C/G, S)
    (two passes), then y = (x - mean) * inv_std * scale[ch] + bias[ch], ch the channel (or the
    group, for opset 18's per-group parameters)."""
    x = node.inputs[0]
    if x.type.size == 0:
        return None
    G = int(node.attrs["num_groups"])
    N, C, S = x.shape[0], x.shape[1], math.prod(x.shape[2:])
    Cg = C // G
    shape4 = (N, G, Cg, S)
    xb, yb = ctx.input(0), ctx.output(0)
    xf, yf = flat(xb), flat(yb)
    xs, ys = _strides3(xb, shape4), _strides3(yb, shape4)
    sc, bb = ctx.input(1), ctx.input(2)
    dt = xf.dtype
    n, g = ctx.var("n"), ctx.var("g")
    mean, inv = Var("mean", dt), Var("inv", dt)
    xat = lambda i: xf[offset([n, g, i[0], i[1]], xs)]  # noqa: E731
    sum_x, total = _sum(ctx, [Cg, S], "sum", dt, xat)
    sum_sq, sq = _sum(ctx, [Cg, S], "sq", dt, lambda i: (xat(i) - mean) * (xat(i) - mean))
    cnt = const(Cg * S, dt)
    body = sum_x + [Decl(mean, total / cnt)] + sum_sq + [
        Decl(inv, const(1, dt) / Unary("sqrt", sq / cnt + _eps(node, dt)))]
    per_group = node.inputs[1].shape[0] != C
    ch = (lambda i: g) if per_group else (lambda i: affine((g, Cg), i[0]))  # noqa: E731
    body += nest(ctx, [Cg, S], lambda i: [Store(
        yf, (offset([n, g, i[0], i[1]], ys),),
        (xat(i) - mean) * inv * sc[ch(i)] + bb[ch(i)])], "c")
    return ctx.kernel("groupnorm", [yf], [xf, sc, bb], [Loop(n, 0, N, [Loop(g, 0, G, body)])])


@lower("MeanVarianceNormalization", supports=float_only)
def _lower_mvn(node: Node, ctx: LowerCtx):
    """Per position of the axes not in ``axes`` (a nest over them, x read through its strides):
    the mean over ``axes``, then the mean of squared deviations (a second pass), std =
    sqrt(mean((x - mean)^2)) (the spec's sqrt(mean(x^2) - mean^2) in exact arithmetic, without
    its cancellation: in float32 that gave NaN for x = 1000 + 0.1 N(0, 1), and errors of 1e9
    at 1e4 + N(0, 1), where onnxruntime's is within 1e-3), then y = (x - mean) / (std + 1e-9)."""
    x = node.inputs[0]
    if x.type.size == 0:
        return None
    rank = len(x.shape)
    red = sorted(norm_axes(node, node.attrs.get("axes", [0, 2, 3]), rank))
    kept = [a for a in range(rank) if a not in red]
    xb, yb = ctx.input(0), ctx.output(0)
    xf, yf = flat(xb), flat(yb)
    dt = xf.dtype
    mean, std = Var("mean", dt), Var("std", dt)

    def per_kept(kv: list[Var]) -> list[Stmt]:
        def idx(rv: list[Var]) -> list:
            full: list = [None] * rank
            for a, v in zip(kept, kv):
                full[a] = v
            for a, v in zip(red, rv):
                full[a] = v
            return full

        xat = lambda rv: xf[offset(idx(rv), xb.strides)]  # noqa: E731
        rshape = [x.shape[a] for a in red]
        sum_x, total = _sum(ctx, rshape, "sum", dt, xat)
        sum_sq, sq = _sum(ctx, rshape, "sq", dt,
                          lambda rv: (xat(rv) - mean) * (xat(rv) - mean))
        cnt = const(math.prod(rshape), dt)
        body = sum_x + [Decl(mean, total / cnt)] + sum_sq + [Decl(std, Unary("sqrt", sq / cnt))]
        body += nest(ctx, rshape, lambda rv: [Store(yf, (offset(idx(rv), yb.strides),),
                                                    (xat(rv) - mean) / (std + const(1e-9, dt)))],
                     "r")
        return body

    return ctx.kernel("mvn", [yf], [xf], nest(ctx, [x.shape[a] for a in kept], per_kept, "o")
                      if kept else per_kept([]))
