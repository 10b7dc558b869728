"""C lowering of reductions: Reduce{Sum,Mean,Max,Min,Prod,L1,L2,LogSum,LogSumExp,SumSquare},
ArgMax, ArgMin (template ``reduce.c.j2``).

Input dims are merged where both x and y walk them contiguously; a reduced dim has y stride 0.
The loop order follows memory: when the innermost input dim is reduced, each output accumulates
in a register over contiguous inputs (``inner`` form; global average pooling); when it is kept,
y itself is the accumulator and x is read once in memory order (``outer`` form; a reduction over
channels of NCHW), so no scratch memory is needed either way. Integer sums and products wrap
(computed in the unsigned type of the same width: no signed overflow).

Float sums over more than ``SUM_BLOCK`` elements (Sum, Mean, L1, L2, LogSum, SumSquare, the exp
sum of LogSumExp; GlobalAveragePool in nn.py) are blocked and pairwise, as numpy's own sum: each
block of up to ``SUM_BLOCK`` contiguous elements is summed into a register, and the block sums
are added pairwise through a binary counter and a stack of partial sums (``pairwise_sum``). One
running float accumulator has an error bound growing with n (40 million float32 ones sum to
16,777,216); pairwise summation's grows with log2(n) (Higham, "The accuracy of floating point
summation", SIAM J. Sci. Comput. 14(4), 1993). In the outer form the same is done for a tile
of ``OUTER_TILE`` outputs side by side (``_outer_pairwise``). The stacks live on the C stack,
sized by the number of blocks (at most 32 partials). Smaller sums keep the single accumulator:
same code, same speed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops._util import norm_axis
from onnxcc.ops.reduce import reduce_axes

from . import KernelDesc, LowerCtx, c_literal, contiguous_strides, ctype, lower
from . import merge_dims
from .tensor import Level, at, empty_desc, level

FLOAT_CT = ("float", "double")
INT_OPS = {"ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"}
SUM_BLOCK = 128        # elements summed in one register before entering the pairwise stack
OUTER_TILE = 32        # outputs summed side by side when the innermost dim is kept
SUM_OPS = {"ReduceSum", "ReduceMean", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceSumSquare",
           "ReduceLogSumExp"}
REDUCE_OPS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


def _fn(ct: str, name: str) -> str:
    return name + "f" if ct == "float" else name


def _wrap(ct: str, a: str, op: str, b: str) -> str:
    """``a op b`` in ``ct``; for 32/64-bit signed types through their unsigned type."""
    if ct in ("int32_t", "int64_t", "uint32_t", "uint64_t", "int16_t", "uint16_t", "int8_t",
              "uint8_t"):
        ut = "uint64_t" if "64" in ct else "uint32_t"
        return f"({ct})(({ut}){a} {op} ({ut}){b})"
    return f"{a} {op} {b}"


def _lowest(ct: str, high: bool) -> str:
    """The identity of max (high=False: the lowest value) or of min, as a C literal."""
    if ct in FLOAT_CT:
        return c_literal(np.inf if high else -np.inf, ct)
    info = np.iinfo(np.dtype({"int8_t": "i1", "uint8_t": "u1", "int16_t": "i2", "uint16_t": "u2",
                              "int32_t": "i4", "uint32_t": "u4", "int64_t": "i8",
                              "uint64_t": "u8"}[ct]))
    return c_literal(info.max if high else info.min, ct)


def _pick(ct: str, greater: bool) -> Callable[[str, str], str]:
    """update(acc, x) of Max (greater) / Min, NaN-propagating for floats."""
    cmp = ">" if greater else "<"
    if ct in FLOAT_CT:
        return lambda acc, x: f"({x} {cmp} {acc} || {x} != {x}) ? {x} : {acc}"
    return lambda acc, x: f"{x} {cmp} {acc} ? {x} : {acc}"


def _spec(op: str, ct: str, count: int, bool_: bool = False
          ) -> tuple[str, Callable[[str, str], str], Callable[[str], str] | None]:
    """(identity literal, update(acc, x) expression, final(acc) expression or None); ``bool_``:
    x is bool (uint8_t 0/1: max is any, min is all)."""
    zero, one = c_literal(0, ct), c_literal(1, ct)
    add = lambda acc, x: _wrap(ct, acc, "+", x)  # noqa: E731
    if op == "ReduceSum":
        return zero, add, None
    if op == "ReduceMean":
        return zero, add, lambda acc: f"{acc} / {c_literal(count, ct)}"
    if op == "ReduceMax":
        return (zero if bool_ else _lowest(ct, False)), _pick(ct, True), None
    if op == "ReduceMin":
        return (one if bool_ else _lowest(ct, True)), _pick(ct, False), None
    if op == "ReduceProd":
        return one, lambda acc, x: _wrap(ct, acc, "*", x), None
    if op == "ReduceL1":
        return zero, lambda acc, x: f"{acc} + {_fn(ct, 'fabs')}({x})", None
    if op == "ReduceL2":
        return zero, lambda acc, x: f"{acc} + {x} * {x}", lambda acc: f"{_fn(ct, 'sqrt')}({acc})"
    if op == "ReduceLogSum":
        return zero, add, lambda acc: f"{_fn(ct, 'log')}({acc})"
    if op == "ReduceSumSquare":
        return zero, lambda acc, x: f"{acc} + {x} * {x}", None
    raise KeyError(op)


def pairwise_sum(ct: str, acc: str, reds: Sequence[Level], term: str,
                 update: Callable[[str, str], str] | None = None) -> tuple:
    """Statements (a nest body, see ``tensor.c.j2``) declaring ``ct acc`` = the sum of ``term``
    over the loops ``reds`` (outermost first), blocked and pairwise.

    The innermost loop runs in blocks of ``SUM_BLOCK``; each block is summed into ``part``
    (``part = update(part, xv)``, default ``part + xv``, with ``xv`` = ``term``), a loop the
    compiler keeps tight. Block k (counted from 1) is then merged with the stack's top partial
    sums once per trailing zero bit of k, so that only sums of equal numbers of blocks are added:
    pairwise summation over blocks (Higham 1993, cited above), error O((SUM_BLOCK + log2 n) eps)
    rather than O(n eps), at the cost of a few operations per block. The stack holds at most
    :func:`_depth` partials, on the C stack.
    """
    update = update or (lambda a, x: f"{a} + {x}")
    zero = c_literal(0, ct)
    *outer, last = reds
    var, start, stop, step, pre, post = last
    assert start == 0 and step == 1 and not pre and not post, last
    blocked = (level(f"{var}b", stop, step=SUM_BLOCK,
                     pre=(f"const int32_t {var}e = {var}b + {SUM_BLOCK} < {stop} ? "
                          f"{var}b + {SUM_BLOCK} : {stop};", f"{ct} part = {zero};"),
                     post=("for (uint32_t bits = ++nb; (bits & 1u) == 0u; bits >>= 1) {",
                           "    part += stk[--sp];",
                           "}",
                           "stk[sp++] = part;"),
                     ),
               level(var, f"{var}e", start=f"{var}b"))
    blocks = math.prod(lv[2] for lv in outer) * -(-stop // SUM_BLOCK)
    return (f"{ct} stk[{_depth(blocks)}]; /* pairwise partial sums (Higham 1993) */",
            "int32_t sp = 0;",
            "uint32_t nb = 0;",
            (tuple(outer) + blocked, (f"const {ct} xv = {term};", f"part = {update('part', 'xv')};")),
            f"{ct} {acc} = {zero};",
            "while (sp > 0) {",
            f"    {acc} += stk[--sp];",
            "}")


def _supports(node: Node) -> str | None:
    x = node.inputs[0]
    if x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        return None
    if x.dtype.kind in "iu" and node.op in INT_OPS | {"ArgMax", "ArgMin"}:
        return None
    if x.dtype.kind == "b" and node.op in ("ReduceMax", "ReduceMin"):
        return None
    return f"{node.op} of {x.dtype.name} is not supported by the C target"


def _merged(x_shape: tuple[int, ...], x_strides: tuple[int, ...], axes: tuple[int, ...]
            ) -> tuple[list[int], list[int], list[int]]:
    """Merged (extents, x strides, y strides) with y stride 0 on reduced dims."""
    keep_shape = tuple(1 if d in axes else n for d, n in enumerate(x_shape))
    ys = [0 if d in axes else s for d, s in enumerate(contiguous_strides(keep_shape))]
    shp, (xs, ys2) = merge_dims(x_shape, [list(x_strides), ys])
    return shp, xs, ys2


@lower(*REDUCE_OPS, supports=_supports)
def _lower_reduce(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y = reduce(x) over :func:`onnxcc.ops.reduce.reduce_axes` (keepdims does not change the
    memory layout of y, only its shape)."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return empty_desc(ctx)
    ct = ctype(x.dtype)
    axes = reduce_axes(node)
    count = math.prod(x.shape[a] for a in axes)
    shp, xs, ys = _merged(x.shape, ctx.strides(x), axes)
    if x.type.size == 0:  # nothing to read: y is the identity (then the final map)
        shp, xs, ys = [y.type.size], [0], [1]
    kept = [k for k in range(len(shp)) if ys[k] != 0 or (shp[k] == 1 and not axes)]
    red = [k for k in range(len(shp)) if k not in kept]
    ins = ctx.ins()
    void = [f"(void){o.ptr};" for o in ins[0 if x.type.size == 0 else 1:] if o is not None]
    v = [f"i{k}" for k in range(len(shp))]
    x_at = at("x0", v, xs) if x.type.size else None
    y_at = at("y0", v, ys)
    if node.op == "ReduceLogSumExp":
        return _logsumexp(ctx, ct, shp, v, kept, red, x_at, y_at, void)
    init, update, final = _spec(node.op, ct, count, x.dtype.kind == "b")
    if x_at is None:
        body = (f"{y_at} = {final(init) if final else init};",)
        return ctx.desc("reduce", "reduce", inputs=ins, pre=tuple(void),
                        nests=(((level(v[0], shp[0]),), body),))
    pairwise = uses_pairwise(node.op, ct, count)
    inner = not kept or (red and red[-1] == len(shp) - 1)
    if inner:
        reds = reduce_levels(v, shp, red)
        if pairwise:
            acc_body: tuple = (*pairwise_sum(ct, "acc", reds, x_at, update),
                               f"{y_at} = {final('acc') if final else 'acc'};")
        else:
            acc_body = (f"{ct} acc = {init};",
                        (reds, (f"const {ct} xv = {x_at};", f"acc = {update('acc', 'xv')};")),
                        f"{y_at} = {final('acc') if final else 'acc'};")
        nest = (tuple(level(v[k], shp[k]) for k in kept), acc_body)
        return ctx.desc("reduce", "reduce", inputs=ins, pre=tuple(void), nests=(nest,))
    if pairwise:
        nest = _outer_pairwise(ct, shp, v, kept, red, x_at, y_at, update, final)
        return ctx.desc("reduce", "reduce", inputs=ins, pre=tuple(void), nests=(nest,))
    # outer form: y is the accumulator, x read in memory order
    n_y = y.type.size
    nests = [((level("j", n_y),), (f"y0[j] = {init};",)),
             (tuple(level(v[k], shp[k]) for k in range(len(shp))),
              (f"const {ct} xv = {x_at};", f"{y_at} = {update(y_at, 'xv')};"))]
    if final:
        nests.append(((level("j", n_y),), (f"y0[j] = {final('y0[j]')};",)))
    return ctx.desc("reduce", "reduce", inputs=ins, pre=tuple(void), nests=tuple(nests))


def _depth(blocks: int) -> int:
    """The most partial sums the binary-counter stack holds over ``blocks`` blocks: the largest
    number of one bits of a count in 1..blocks."""
    return max(1, (blocks + 1).bit_length() - 1)


def uses_pairwise(op: str, ct: str, count: int) -> bool:
    """Whether ``op`` over ``count`` elements of ``ct`` sums blocked and pairwise
    (:func:`pairwise_sum`): float sums longer than one block."""
    return op in SUM_OPS and ct in FLOAT_CT and count > SUM_BLOCK


def reduce_levels(v: list[str], shp: list[int], red: list[int]) -> tuple[Level, ...]:
    """The loops over the reduced dims, outermost first; loops of extent 1 go outside, so the
    innermost loop (the one :func:`pairwise_sum` blocks) is a real one."""
    order = [k for k in red if shp[k] == 1] + [k for k in red if shp[k] != 1]
    return tuple(level(v[k], shp[k]) for k in order)


def _outer_pairwise(ct: str, shp: list[int], v: list[str], kept: list[int], red: list[int],
                    x_at: str, y_at: str, update: Callable[[str, str], str],
                    final: Callable[[str], str] | None) -> tuple:
    """The outer form (innermost dim kept) of a long float sum, blocked and pairwise.

    The innermost (kept, contiguous) dim is cut into tiles of ``OUTER_TILE`` outputs; per tile,
    each block of up to ``SUM_BLOCK`` steps of the innermost reduced dim is summed into y itself
    (the innermost loop runs over the tile: independent sums the compiler vectorizes), then
    merged into a stack of partial tiles by the binary counter of :func:`pairwise_sum`, and the
    final y is the stack summed from its top. The stack, ``depth x OUTER_TILE`` elements with
    ``depth`` the most partials ever held (the bit length of the block count), is on the C stack.
    """
    inner = len(shp) - 1
    j, jt, je = v[inner], f"{v[inner]}t", f"{v[inner]}te"
    n_j = shp[inner]
    tile = min(OUTER_TILE, n_j)
    reds = reduce_levels(v, shp, red)
    *outer_reds, (r, _, n_r, _, _, _) = reds
    depth = _depth(math.prod(lv[2] for lv in outer_reds) * -(-n_r // SUM_BLOCK))
    tile_loop = (level(j, je, start=jt),)
    block_body = (
        (tile_loop, (f"{y_at} = {c_literal(0, ct)};",)),
        ((level(r, f"{r}e", start=f"{r}b"),) + tile_loop,
         (f"const {ct} xv = {x_at};", f"{y_at} = {update(y_at, 'xv')};")),
        "for (uint32_t bits = ++nb; (bits & 1u) == 0u; bits >>= 1) {",
        "    --sp;",
        f"    for (int32_t {j} = {jt}; {j} < {je}; ++{j}) {{",
        f"        {y_at} += stk[sp][{j} - {jt}];",
        "    }",
        "}",
        (tile_loop, (f"stk[sp][{j} - {jt}] = {y_at};",)),
        "++sp;")
    block = level(f"{r}b", n_r, step=SUM_BLOCK,
                  pre=(f"const int32_t {r}e = {r}b + {SUM_BLOCK} < {n_r} ? {r}b + {SUM_BLOCK} : {n_r};",))
    final_body = (f"{ct} acc = {c_literal(0, ct)};",
                  "for (int32_t s = sp - 1; s >= 0; --s) {",
                  f"    acc += stk[s][{j} - {jt}];",
                  "}",
                  f"{y_at} = {final('acc') if final else 'acc'};")
    tile_body = (f"{ct} stk[{depth}][{tile}]; /* pairwise partial sums (Higham 1993) */",
                 "int32_t sp = 0;",
                 "uint32_t nb = 0;",
                 (tuple(outer_reds) + (block,), block_body),
                 (tile_loop, final_body))
    levels = tuple(level(v[k], shp[k]) for k in kept if k != inner)
    levels += (level(jt, n_j, step=tile,
                     pre=(f"const int32_t {je} = {jt} + {tile} < {n_j} ? {jt} + {tile} : {n_j};",)),)
    return levels, tile_body


def _logsumexp(ctx: LowerCtx, ct: str, shp: list[int], v: list[str], kept: list[int],
               red: list[int], x_at: str | None, y_at: str, void: list[str]) -> KernelDesc:
    """log(sum(exp(x - m))) + m with m the max (0 when not finite), per output: two passes (the
    second a blocked pairwise sum when long)."""
    ins = ctx.ins()
    zero = c_literal(0, ct)
    if x_at is None:
        body: tuple = (f"{y_at} = {c_literal(-np.inf, ct)};",)
        return ctx.desc("reduce", "reduce", inputs=ins, pre=tuple(void),
                        nests=(((level(v[0], shp[0]),), body),))
    reds = reduce_levels(v, shp, red)
    count = math.prod(shp[k] for k in red)
    if uses_pairwise("ReduceLogSumExp", ct, count):
        sum_exp: tuple = pairwise_sum(ct, "acc", reds, f"{_fn(ct, 'exp')}({x_at} - mf)")
    else:
        sum_exp = (f"{ct} acc = {zero};", (reds, (f"acc += {_fn(ct, 'exp')}({x_at} - mf);",)))
    body = (f"{ct} m = {c_literal(-np.inf, ct)};",
            (reds, (f"const {ct} xv = {x_at};", f"m = {_pick(ct, True)('m', 'xv')};")),
            f"const {ct} mf = (m - m == {zero}) ? m : {zero};",
            *sum_exp,
            f"{y_at} = {_fn(ct, 'log')}(acc) + mf;")
    nest = (tuple(level(v[k], shp[k]) for k in kept), body)
    return ctx.desc("reduce", "reduce", inputs=ins, pre=tuple(void), nests=(nest,))


def _supports_arg(node: Node) -> str | None:
    x = node.inputs[0]
    a = norm_axis(node, attr(node, "axis"), len(x.shape))
    if x.shape[a] == 0:
        return "ArgMax/ArgMin over an empty axis"
    return _supports(node)


@lower("ArgMax", "ArgMin", supports=_supports_arg)
def _lower_arg(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y (int64) = index of the first (select_last_index: last) max/min of x along axis; NaN
    counts as the extreme, as numpy's argmax does."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return empty_desc(ctx)
    ct = ctype(x.dtype)
    a = norm_axis(node, attr(node, "axis"), len(x.shape))
    shp, xs, ys = _merged(x.shape, ctx.strides(x), (a,))
    n = x.shape[a]
    kept = [k for k in range(len(shp)) if ys[k] != 0]
    red = [k for k in range(len(shp)) if ys[k] == 0 and shp[k] > 1]
    v = [f"i{k}" for k in range(len(shp))]
    idx_r = [v[k] if k in kept else 0 for k in range(len(shp))]
    x_first = at("x0", idx_r, xs)
    x_r = at("x0", [v[k] if k in kept else "r" for k in range(len(shp))],
             [xs[k] if k in kept else (xs[k] if k in red else 0) for k in range(len(shp))])
    if not red:   # a reduced axis of one element
        x_r = x_first
    cmp = ">" if node.op == "ArgMax" else "<"
    last = bool(node.attrs.get("select_last_index"))
    if ct in FLOAT_CT:
        cond = (f"xv {cmp}= best || xv != xv" if last
                else f"xv {cmp} best || (xv != xv && best == best)")
    else:
        cond = f"xv {cmp}= best" if last else f"xv {cmp} best"
    loop_body = (f"const {ct} xv = {x_r};", f"if ({cond}) {{", "    best = xv;", "    bi = r;", "}")
    done = f"{at('y0', [v[k] if k in kept else 0 for k in range(len(shp))], ys)} = (int64_t)bi;"
    body = (f"{ct} best = {x_first};", "int32_t bi = 0;", ((level("r", n, start=1),), loop_body),
            done)
    nest = (tuple(level(v[k], shp[k]) for k in kept), body)
    void = [f"(void){o.ptr};" for o in ctx.ins()[1:] if o is not None]
    return ctx.desc("reduce", "argreduce", inputs=ctx.ins(), pre=tuple(void), nests=(nest,))
