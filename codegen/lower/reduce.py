"""Reductions as loop IR: Reduce{Sum,Mean,Max,Min,Prod,L1,L2,LogSum,LogSumExp,SumSquare},
ArgMax, ArgMin.

x and y are read through flat views; x's dims are merged where x and y (stride 0 on reduced
dims) both walk them contiguously. The loop order follows memory: when the innermost x dim is
reduced, each output accumulates in a local over contiguous inputs (*inner* form: global average
pooling); when it is kept, y itself is the accumulator and x is read once in memory order
(*outer* form: a reduction over the channels of NCHW), so the innermost loop is contiguous in
both cases. Integer sums and products wrap (the loop IR's integer semantics).

Float sums longer than ``SUM_BLOCK`` elements (Sum, Mean, L1, L2, LogSum, SumSquare, the exp sum
of LogSumExp; the norm family uses :func:`blocked_sum` too) are blocked: each run of up to
``SUM_BLOCK`` contiguous terms is summed into a partial, partials of ``SUM_BLOCK`` blocks into a
partial of the next level, and so on (a ``SUM_BLOCK``-ary tree). One running float accumulator
has an error bound growing with n (40 million float32 ones sum to 16,777,216); blocked summation's
grows with ``SUM_BLOCK * log_SUM_BLOCK(n)`` (Higham, "The accuracy of floating point summation",
SIAM J. Sci. Comput. 14(4), 1993), so 40 million ones sum to 4e7. Every bound is a constant (the
tails of full blocks are separate loops), so verify proves each access without guards. In the
outer form the partials are local arrays of a tile of ``OUTER_TILE`` outputs side by side, and
the innermost loop still runs over contiguous outputs.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from onnxcc.codegen.loops import (BOOL, I64, Assign, Binary, Buffer, Cast, Const, Decl, DType,
                                  Expr, Loop, Select, Stmt, Store, Unary, Var, affine,
                                  contiguous_strides, const)
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops._util import norm_axis
from onnxcc.ops.reduce import reduce_axes

from . import LowerCtx, lower, nest
from .tensor import flat, merge_dims, offset

SUM_BLOCK = 128        # terms summed into one partial (as the C kernels' blocks)
OUTER_TILE = 32        # outputs summed side by side when the innermost dim is kept
INT_OPS = {"ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"}
SUM_OPS = {"ReduceSum", "ReduceMean", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceSumSquare",
           "ReduceLogSumExp"}
REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
Update = Callable[[Expr, Expr], Expr]


# ---- accumulators and blocked sums (shared with norm.py) ---------------------------------------
class Acc:
    """A scalar accumulator: a local of ``dtype``."""

    def __init__(self, var: Var) -> None:
        self.var = var

    def init(self, value: Expr) -> list[Stmt]:
        return [Decl(self.var, value)]

    def add(self, other: Acc) -> list[Stmt]:
        """``self += other``."""
        return [Assign(self.var, self.var + other.var)]


class TileAcc(Acc):
    """``width`` accumulators side by side: a local array (one per output of a tile)."""

    def __init__(self, ctx: LowerCtx, buf: Buffer, width: int) -> None:
        self.ctx, self.buf, self.width = ctx, buf, width

    def each(self, fn: Callable[[Var], list[Stmt]]) -> list[Stmt]:
        """A loop over the tile (innermost, contiguous) around ``fn(lane)``."""
        j = self.ctx.var("jj")
        return [Loop(j, 0, self.width, fn(j))]

    def init(self, value: Expr) -> list[Stmt]:
        return self.each(lambda j: [Store(self.buf, (j,), value)])

    def add(self, other: Acc) -> list[Stmt]:
        assert isinstance(other, TileAcc)
        return self.each(lambda j: [Store(self.buf, (j,), self.buf[j] + other.buf[j])])


def _plus(base: Expr | None, e: Expr) -> Expr:
    return e if base is None else affine(base, e)


def _blocked_range(ctx: LowerCtx, n: int, base: Expr | None, acc: Acc, new_acc: Callable[[], Acc],
                   add_one: Callable[[Expr, Acc], list[Stmt]], zero: Expr, block: int
                   ) -> list[Stmt]:
    """Statements adding the terms ``base + r`` for r in [0, n) into ``acc``: directly when
    ``n <= block``, else per chunk (the largest power of ``block`` below n) into a fresh partial
    that is then added to ``acc``; the last, shorter chunk is its own loop."""
    if n <= block:
        r = ctx.var("r")
        return [Loop(r, 0, n, add_one(_plus(base, r), acc))]
    size = block
    while size * block < n:
        size *= block
    full, tail = divmod(n, size)
    c = ctx.var("rb")
    part = new_acc()
    out: list[Stmt] = [Loop(c, 0, full, part.init(zero) + _blocked_range(
        ctx, size, _plus(base, affine((c, size))), part, new_acc, add_one, zero, block)
        + acc.add(part))]
    if tail:
        part = new_acc()
        out += part.init(zero) + _blocked_range(ctx, tail, _plus(base, Const(full * size)), part,
                                                new_acc, add_one, zero, block) + acc.add(part)
    return out


def blocked_sum(ctx: LowerCtx, dims: Sequence[int], acc: Acc, new_acc: Callable[[], Acc],
                leaf: Callable[[list[Expr], Acc], list[Stmt]], zero: Expr,
                block: int = SUM_BLOCK) -> list[Stmt]:
    """Statements adding, into ``acc``, the terms over the index box ``dims`` (outermost first;
    ``leaf(index, acc)`` adds one term): a ``block``-ary tree of partials from ``new_acc()``,
    each dim blocked (Higham 1993). With ``block`` at least every extent it is the plain nest."""
    if all(n <= block for n in dims) and math.prod(dims) <= block:
        return nest(ctx, dims, lambda v: leaf(list(v), acc), "r")

    def box(idx: list[Expr], a: Acc) -> list[Stmt]:
        k = len(idx)
        if k == len(dims) - 1:
            return _blocked_range(ctx, dims[k], None, a, new_acc,
                                  lambda e, aa: leaf(idx + [e], aa), zero, block)

        def one(e: Expr, aa: Acc) -> list[Stmt]:
            p = new_acc()
            return p.init(zero) + box(idx + [e], p) + aa.add(p)

        return _blocked_range(ctx, dims[k], None, a, new_acc, one, zero, block)

    return box([], acc)


def scalar_accs(ctx: LowerCtx, dtype: DType, prefix: str = "s") -> Callable[[], Acc]:
    """A factory of fresh scalar accumulators ``{prefix}{n}`` of ``dtype``."""
    return lambda: Acc(Var(ctx.var(prefix).name, dtype))


# ---- Reduce* ------------------------------------------------------------------------------------
def _supports(node: Node) -> str | None:
    x = node.inputs[0]
    if x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        return None
    if x.dtype.kind in "iu" and node.op in INT_OPS | {"ArgMax", "ArgMin"}:
        return None
    if x.dtype.kind == "b" and node.op in ("ReduceMax", "ReduceMin"):
        return None
    return f"{node.op} of {x.dtype.name} is not supported"


def _spec(op: str, dt: DType, count: int) -> tuple[Expr, Update, Callable[[Expr], Expr] | None]:
    """(identity, update(acc, x), final(acc) or None) of ``op`` on ``dt`` (bool: max is any,
    min is all; float max/min propagate NaN, as numpy)."""
    zero, one = const(0, dt), const(1, dt)
    add: Update = lambda a, x: a + x  # noqa: E731
    sq: Update = lambda a, x: a + x * x  # noqa: E731
    if op == "ReduceSum":
        return zero, add, None
    if op == "ReduceMean":
        return zero, add, lambda a: a / const(count, dt)
    if op in ("ReduceMax", "ReduceMin"):
        hi = op == "ReduceMax"
        if dt == BOOL:
            return const(not hi, dt), (lambda a, x: Binary("or" if hi else "and", a, x)), None
        if dt.is_float:
            ident = const(-np.inf if hi else np.inf, dt)
        else:
            info = np.iinfo(dt.np)
            ident = const(info.min if hi else info.max, dt)
        return ident, (lambda a, x: Binary("max" if hi else "min", a, x)), None
    if op == "ReduceProd":
        return one, (lambda a, x: a * x), None
    if op == "ReduceL1":
        return zero, (lambda a, x: a + Unary("abs", x)), None
    if op == "ReduceL2":
        return zero, sq, lambda a: Unary("sqrt", a)
    if op == "ReduceLogSum":
        return zero, add, lambda a: Unary("log", a)
    if op == "ReduceSumSquare":
        return zero, sq, None
    raise KeyError(op)


def uses_blocks(op: str, dt: DType, count: int) -> bool:
    """Whether ``op`` over ``count`` elements of ``dt`` is summed blocked (float sums longer
    than one block)."""
    return op in SUM_OPS and dt.is_float and count > SUM_BLOCK


@lower(*REDUCE_OPS, supports=_supports)
def _lower_reduce(node: Node, ctx: LowerCtx):
    """y = reduce(x) over :func:`onnxcc.ops.reduce.reduce_axes` (keepdims changes y's shape,
    not its layout; noop_with_empty_axes reduces nothing and applies the elementwise part)."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    xb, yb = ctx.input(0), ctx.output(0)
    xf, yf = flat(xb), flat(yb)
    dt = xb.dtype
    axes = reduce_axes(node)
    count = math.prod(x.shape[a] for a in axes)
    if x.type.size == 0:   # nothing to read: y is the identity (then the final map)
        if node.op == "ReduceLogSumExp":
            val = const(-np.inf, dt)
        else:
            init, _, final = _spec(node.op, dt, count)
            val = final(init) if final else init
        return ctx.kernel("reduce", [yf], [], nest(ctx, [y.type.size],
                                                   lambda v: [Store(yf, (v[0],), val)]))
    keep_shape = tuple(1 if d in axes else n for d, n in enumerate(x.shape))
    ys0 = [0 if d in axes else s for d, s in enumerate(contiguous_strides(keep_shape))]
    shp, (xs, ys) = merge_dims(x.shape, [list(xb.strides), ys0])
    kept = [k for k in range(len(shp)) if ys[k] != 0 or (shp[k] == 1 and not axes)]
    red = [k for k in range(len(shp)) if k not in kept]
    vs = [ctx.var("i") for _ in shp]
    kernel = lambda body, locals_=(): ctx.kernel("reduce", [yf], [xf], body,  # noqa: E731
                                                 locals=list(locals_))

    def x_at(idx: dict[int, Expr]) -> Expr:
        return xf[offset([idx[k] for k in range(len(shp))], xs)]

    def y_off(idx: dict[int, Expr]) -> Expr:
        return offset([idx[k] for k in kept], [ys[k] for k in kept])

    def kept_loops(body: list[Stmt], skip: int | None = None) -> list[Stmt]:
        for k in reversed(kept):
            if k != skip:
                body = [Loop(vs[k], 0, shp[k], body)]
        return body

    blocked = uses_blocks(node.op, dt, count)
    if node.op == "ReduceLogSumExp":
        return kernel(kept_loops(_logsumexp(ctx, dt, shp, vs, red, x_at, y_off, yf)))
    init, update, final = _spec(node.op, dt, count)
    fin = final or (lambda a: a)
    inner = not kept or bool(red and red[-1] == len(shp) - 1)
    if inner or not red:
        acc = Acc(Var("acc", dt))
        idx0 = {k: vs[k] for k in kept}

        def leaf(r: list[Expr], a: Acc) -> list[Stmt]:
            return [_assign(a.var, update(a.var, x_at({**idx0, **dict(zip(red, r))})))]

        body = acc.init(init) + (blocked_sum(ctx, [shp[k] for k in red], acc,
                                             scalar_accs(ctx, dt), leaf, const(0, dt),
                                             SUM_BLOCK if blocked else max(count, 1))
                                 if red else leaf([], acc))
        body.append(Store(yf, (y_off(idx0),), fin(acc.var)))
        return kernel(kept_loops(body))
    if not blocked:
        # outer form: y starts at the identity, takes every x in memory order, then the final map
        n_y = y.type.size
        all_idx = {k: vs[k] for k in range(len(shp))}
        loops: list[Stmt] = [Store(yf, (y_off(all_idx),),
                                   update(yf[y_off(all_idx)], x_at(all_idx)))]
        for k in reversed(range(len(shp))):
            loops = [Loop(vs[k], 0, shp[k], loops)]
        body = nest(ctx, [n_y], lambda v: [Store(yf, (v[0],), init)]) + loops
        if final:
            body += nest(ctx, [n_y], lambda v: [Store(yf, (v[0],), final(yf[v[0]]))])
        return kernel(body)
    return _outer_blocked(ctx, kernel, dt, shp, vs, kept, red, x_at, y_off, yf, update, fin,
                          kept_loops)


def _assign(v: Var, e: Expr) -> Stmt:
    return Assign(v, e)


def _outer_blocked(ctx, kernel, dt, shp, vs, kept, red, x_at, y_off, yf, update, fin,
                   kept_loops):
    """The outer form (innermost dim kept) of a long float sum: the innermost kept dim is cut into
    tiles of ``OUTER_TILE`` outputs; per tile, :func:`blocked_sum` over the reduced dims with
    local arrays as partials (the innermost loop runs over the tile: independent sums a compiler
    vectorizes), then y = final(sum) for the tile. A shorter last tile is its own copy."""
    j = len(shp) - 1
    n_j = shp[j]
    tile = min(OUTER_TILE, n_j)
    locals_: list[Buffer] = []

    def new_acc(width: int) -> Callable[[], Acc]:
        def make() -> Acc:
            b = Buffer(f"part{len(locals_)}", dt, (width,), space="local")
            locals_.append(b)
            return TileAcc(ctx, b, width)
        return make

    def tile_body(base: Expr, width: int) -> list[Stmt]:
        make = new_acc(width)
        acc = make()
        assert isinstance(acc, TileAcc)
        idx0 = {k: vs[k] for k in kept if k != j}

        def leaf(r: list[Expr], a: Acc) -> list[Stmt]:
            assert isinstance(a, TileAcc)
            return a.each(lambda jj: [Store(a.buf, (jj,), update(a.buf[jj], x_at(
                {**idx0, **dict(zip(red, r)), j: affine(base, jj)})))])

        body = acc.init(const(0, dt))
        body += blocked_sum(ctx, [shp[k] for k in red], acc, make, leaf, const(0, dt))
        body += acc.each(lambda jj: [Store(yf, (y_off({**idx0, j: affine(base, jj)}),),
                                           fin(acc.buf[jj]))])
        return body

    full, rest = divmod(n_j, tile)
    jt = ctx.var("jt")
    body: list[Stmt] = [Loop(jt, 0, full, tile_body(affine((jt, tile)), tile))]
    if rest:
        body += tile_body(Const(full * tile), rest)
    return kernel(kept_loops(body, skip=j), locals_)


def _logsumexp(ctx, dt, shp, vs, red, x_at, y_off, yf) -> list[Stmt]:
    """Per output: m = max (0 when not finite, as the reference), then
    y = log(sum(exp(x - m))) + m (the sum blocked when long). The reduced loops run inside the
    kept ones (strided reads when the innermost dim is kept)."""
    kept_idx = {k: vs[k] for k in range(len(shp)) if k not in red}
    rv = [ctx.var("r") for _ in red]
    m, mf, acc = Var("m", dt), Var("mf", dt), Acc(Var("acc", dt))
    body: list[Stmt] = [Decl(m, const(-np.inf, dt))]
    inner: list[Stmt] = [_assign(m, Binary("max", m, x_at({**kept_idx, **dict(zip(red, rv))})))]
    for k, v in reversed(list(zip(red, rv))):
        inner = [Loop(v, 0, shp[k], inner)]
    body += inner
    body.append(Decl(mf, Select(Binary("eq", m - m, const(0, dt)), m, const(0, dt))))
    count = math.prod(shp[k] for k in red)

    def leaf(r: list[Expr], a: Acc) -> list[Stmt]:
        return [_assign(a.var, a.var + Unary("exp", x_at({**kept_idx, **dict(zip(red, r))}) - mf))]

    body += acc.init(const(0, dt))
    body += blocked_sum(ctx, [shp[k] for k in red], acc, scalar_accs(ctx, dt), leaf,
                        const(0, dt), SUM_BLOCK if uses_blocks("ReduceLogSumExp", dt, count)
                        else max(count, 1))
    body.append(Store(yf, (y_off(kept_idx),), Unary("log", acc.var) + mf))
    return body


# ---- ArgMax / ArgMin ---------------------------------------------------------------------------
def _supports_arg(node: Node) -> str | None:
    x = node.inputs[0]
    a = norm_axis(node, attr(node, "axis"), len(x.shape))
    if x.shape[a] == 0:
        return "ArgMax/ArgMin over an empty axis"
    return _supports(node)


@lower("ArgMax", "ArgMin", supports=_supports_arg)
def _lower_arg(node: Node, ctx: LowerCtx):
    """y (int64; x viewed as (outer, n, inner), y as (outer, inner)) = index of the first
    (select_last_index: last) max/min of x along axis; NaN counts as the extreme, as numpy's
    argmax does."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    xb, yb = ctx.input(0), ctx.output(0)
    xf, yf = flat(xb), flat(yb)
    dt = xb.dtype
    a = norm_axis(node, attr(node, "axis"), len(x.shape))
    outer, n, inner = math.prod(x.shape[:a]), x.shape[a], math.prod(x.shape[a + 1:])
    xs = [0, 0, 0] if all(s == 0 for s in xb.strides) else [n * inner, inner, 1]
    o, i, r = ctx.var("o"), ctx.var("i"), ctx.var("r")
    best, bi, xv = Var("best", dt), Var("bi"), Var("xv", dt)
    cmp = "gt" if node.op == "ArgMax" else "lt"
    last = bool(node.attrs.get("select_last_index"))
    if last:
        cond = Binary(cmp[0] + "e", xv, best)
    else:
        cond = Binary(cmp, xv, best)
    if dt.is_float:
        nan = Binary("ne", xv, xv)
        cond = Binary("or", cond, nan if last else Binary("and", nan, Binary("eq", best, best)))
    take = Var("take", BOOL)
    loop = Loop(r, 1, n, [Decl(xv, xf[offset([o, r, i], xs)]), Decl(take, cond),
                          _assign(best, Select(take, xv, best)),
                          _assign(bi, Select(take, r, bi))])
    body = [Decl(best, xf[offset([o, i], [xs[0], xs[2]])]), Decl(bi, Const(0)), loop,
            Store(yf, (offset([o, i], [inner, 1]),), Cast(bi, I64))]
    return ctx.kernel(node.op.lower(), [yf], [xf],
                      [Loop(o, 0, outer, [Loop(i, 0, inner, body)])])
