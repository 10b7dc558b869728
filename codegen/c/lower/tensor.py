"""C lowering of data movement: Transpose, Concat, Split, Slice, Gather, Pad, Resize, Upsample,
Expand, Tile, DepthToSpace, SpaceToDepth, Range.

Every kernel is a set of strided copy nests ``y[...] = x[...]`` (template ``tensor.c.j2``):
Python computes each dim's extent and element strides (a transpose permutes the source strides,
a slice scales them by its step and offsets the base, a broadcast or a splat reads with stride 0,
a tile splits an output dim into (repeat, dim)), and dims both sides walk contiguously merge into
one loop. Where the source index is not affine in the output index (Pad reflect/edge/wrap, Resize,
Gather with constant indices) it comes from a per-axis ``static const int32_t`` table computed
here, holding element offsets (index times stride). Inputs a kernel does not read (constant
parameters such as Slice's starts, Concat inputs the memory plan already placed) are passed and
cast to void, so every splat constant the emitter declares stays referenced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from onnxcc.ir import Node
from onnxcc.ops import attr, get_op
from onnxcc.ops._util import norm_axis
from onnxcc.ops.shape import (
    pad_params,
    resize_params,
    resize_taps,
    slice_params,
    split_sizes,
    transpose_perm,
)

from . import (
    KernelDesc,
    LowerCtx,
    Operand,
    broadcast_strides,
    c_literal,
    contiguous_strides,
    ctype,
    index_expr,
    is_splat,
    lower,
)
from . import merge_dims

Level = tuple  # (var, start, stop, step, pre lines, post lines)
Nest = tuple   # (levels, body lines)
MAX_TABLE = 1 << 16      # elements of one static index table
MAX_RESIZE_TAPS = 64     # terms of one resized output element (product of taps per axis)


# ---- shared helpers (also used by matmul.py and reduce.py) -----------------------------------
def level(var: str, stop: int | str, pre: Sequence[str] = (), post: Sequence[str] = (),
          start: int | str = 0, step: int = 1) -> Level:
    """One loop ``for (int32_t var = start; var < stop; var += step)`` of a nest."""
    return (var, start, stop, step, tuple(pre), tuple(post))


def at(ptr: str, idx: Sequence[str | int], strides: Sequence[int], offset: int = 0) -> str:
    """``ptr[i0*s0 + ... + offset]``: zero strides dropped, unit strides unmultiplied, integer
    indices folded into the offset, negative strides as subtractions (``41 - i0``)."""
    pos: list[str] = []
    neg: list[str] = []
    for i, s in zip(idx, strides):
        if s == 0:
            continue
        if isinstance(i, (int, np.integer)):
            offset += int(i) * s
            continue
        if s == 1 and i.startswith("(") and i.endswith(")") and "(" not in i[1:]:
            i = i[1:-1]  # "(k + 1)" at unit stride needs no parentheses
        term = i if abs(s) == 1 else f"{i}*{abs(s)}"
        (pos if s > 0 else neg).append(term)
    if offset > 0:
        pos.append(str(offset))
    e = " + ".join(pos)
    for t in neg:
        e = f"{e} - {t}" if e else f"-{t}"
    if offset < 0:
        e = f"{e} - {-offset}" if e else str(offset)
    return f"{ptr}[{e or '0'}]"


def void_unused(inputs: Sequence[Operand | None], used: set[str]) -> list[str]:
    """``(void)xk;`` for each passed input no statement reads."""
    return [f"(void){o.ptr};" for o in inputs if o is not None and o.ptr not in used]


def copy_nest(shape: Sequence[int], dst: str, dst_strides: Sequence[int], dst_off: int,
              src: str, src_strides: Sequence[int], src_off: int, var: str = "i") -> Nest:
    """A nest copying ``src`` to ``dst`` over ``shape`` (dims merged where both are contiguous)."""
    shp, (ds, ss) = merge_dims(shape, [list(dst_strides), list(src_strides)])
    vs = [f"{var}{k}" for k in range(len(shp))]
    body = f"{at(dst, vs, ds, dst_off)} = {at(src, vs, ss, src_off)};"
    return tuple(level(v, n) for v, n in zip(vs, shp)), (body,)


def empty_desc(ctx: LowerCtx) -> KernelDesc:
    """A kernel with nothing to do (an empty output) that still takes, and casts to void, every
    parameter, so each constant the emitter declares for the node stays referenced."""
    params = [o for o in ctx.outs() + ctx.ins() if o is not None]
    return ctx.desc("tensor", "copy", pre=tuple(f"(void){o.ptr};" for o in params), nests=())


def _copy_desc(ctx: LowerCtx, nests: Sequence[Nest], used: set[str], pre: Sequence[str] = (),
               macro: str = "copy", skip: frozenset[str] | set[str] = frozenset()
               ) -> KernelDesc:
    """The kernel of ``nests``; parameters named in ``skip`` (buffers the memory plan placed
    where the kernel would write them) are not passed at all, since they alias an output."""
    if not nests:
        return empty_desc(ctx)
    ins = tuple(None if o is None or o.ptr in skip else o for o in ctx.ins())
    outs = tuple(o for o in ctx.outs() if o.ptr not in skip)
    return ctx.desc("tensor", macro, inputs=ins, outputs=outs,
                    pre=tuple(pre) + tuple(void_unused(ins, used)), nests=tuple(nests))


def _table(name: str, ct: str, values: Sequence[Any], per_line: int = 12) -> str:
    """A ``static const`` array definition (several lines when long)."""
    items = [c_literal(v, ct) for v in values]
    head = f"static const {ct} {name}[{len(items)}] = {{"
    if len(items) <= per_line:
        return f"{head} {', '.join(items)} }};"
    rows = [", ".join(items[k:k + per_line]) for k in range(0, len(items), per_line)]
    return head + "\n" + ",\n".join("    " + r for r in rows) + "\n};"


# ---- views and plain strided copies ----------------------------------------------------------


@lower("Transpose")
def _lower_transpose(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y (x.shape[perm]) = x.transpose(perm): the source strides permuted."""
    x, y = node.inputs[0], node.outputs[0]
    perm = transpose_perm(node)
    xs = ctx.strides(x)
    nest = copy_nest(y.shape, "y0", contiguous_strides(y.shape), 0, "x0", [xs[p] for p in perm], 0)
    return _copy_desc(ctx, [nest], {"x0"})


@lower("Expand")
def _lower_expand(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y = broadcast of x to the (constant) shape: stride 0 along expanded dims."""
    x, y = node.inputs[0], node.outputs[0]
    src = broadcast_strides(x.shape, ctx.strides(x), y.shape)
    nest = copy_nest(y.shape, "y0", contiguous_strides(y.shape), 0, "x0", src, 0)
    return _copy_desc(ctx, [nest], {"x0"})


@lower("Tile")
def _lower_tile(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y dim d = repeats[d] copies of x dim d: each output dim split into (repeat, dim)."""
    x, y = node.inputs[0], node.outputs[0]
    xs, ys = ctx.strides(x), contiguous_strides(y.shape)
    shape, dst, src = [], [], []
    for d, (n, s, t) in enumerate(zip(x.shape, xs, ys)):
        shape += [y.shape[d] // n if n else 0, n]
        dst += [t * n, t]
        src += [0, s]
    nest = copy_nest(shape, "y0", dst, 0, "x0", src, 0)
    return _copy_desc(ctx, [nest], {"x0"})


@lower("Slice")
def _lower_slice(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y = x[start:end:step] per axis: source strides times steps, base at the starts."""
    x, y = node.inputs[0], node.outputs[0]
    starts, _, _, steps = slice_params(node)
    xs = ctx.strides(x)
    off = sum(b * s for b, s in zip(starts, xs))
    nest = copy_nest(y.shape, "y0", contiguous_strides(y.shape), 0, "x0",
                     [s * k for s, k in zip(xs, steps)], off)
    return _copy_desc(ctx, [nest], {"x0"})


def _space_depth_view(node: Node, ctx: LowerCtx) -> tuple[tuple[int, ...], list[int]]:
    """DepthToSpace/SpaceToDepth as a 6-D transpose: (shape of y viewed 6-D, x strides for it)."""
    x = node.inputs[0]
    b = attr(node, "blocksize")
    n, c, h, w = x.shape
    if node.op == "SpaceToDepth":
        view, perm = (n, c, h // b, b, w // b, b), (0, 3, 5, 1, 2, 4)
    elif (node.attrs.get("mode") or "DCR") == "DCR":
        view, perm = (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2)
    else:
        view, perm = (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3)
    vs = (0,) * 6 if all(s == 0 for s in ctx.strides(x)) else contiguous_strides(view)
    return tuple(view[p] for p in perm), [vs[p] for p in perm]


@lower("DepthToSpace", "SpaceToDepth")
def _lower_depth_space(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """Block rearrangements: a reshape-transpose-reshape, i.e. one strided copy."""
    shape, src = _space_depth_view(node, ctx)
    nest = copy_nest(shape, "y0", contiguous_strides(shape), 0, "x0", src, 0)
    return _copy_desc(ctx, [nest], {"x0"})


# ---- Concat and Split: slabs, skipped when the memory plan put them in place -----------------
@lower("Concat")
def _lower_concat(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y = x0 | x1 | ... along axis; an input planned inside y at its offset is not copied."""
    y = node.outputs[0]
    axis = norm_axis(node, attr(node, "axis"), len(y.shape))
    ys = contiguous_strides(y.shape)
    inner = math.prod(y.shape[axis + 1:])
    nests: list[Nest] = []
    used: set[str] = set()
    in_place: set[str] = set()
    pos = 0
    for k, v in enumerate(node.inputs):
        off = pos * inner
        pos += v.shape[axis]
        if ctx.same_storage(v, y, off * y.dtype.itemsize):
            in_place.add(f"x{k}")
        elif v.type.size:
            used.add(f"x{k}")
            nests.append(copy_nest(v.shape, "y0", ys, off, f"x{k}", ctx.strides(v), 0))
    if len(in_place) == len(node.inputs):
        return None     # every input was written in place by its producer: nothing to do
    return _copy_desc(ctx, nests, used, skip=in_place)


@lower("Split")
def _lower_split(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y_k = x[..., pos_k : pos_k + size_k, ...] along axis; outputs planned in place skipped."""
    x = node.inputs[0]
    axis, sizes = split_sizes(node)
    xs = ctx.strides(x)
    inner = math.prod(x.shape[axis + 1:])
    nests: list[Nest] = []
    skip: set[str] = set()
    pos = 0
    for k, (v, n) in enumerate(zip(node.outputs, sizes)):
        off = pos * xs[axis]
        byte_off = pos * inner * x.dtype.itemsize
        pos += n
        if v.type.size == 0 or ctx.same_storage(v, x, byte_off):
            skip.add(f"y{k}")
        else:
            nests.append(copy_nest(v.shape, f"y{k}", contiguous_strides(v.shape), 0, "x0", xs, off))
    return _copy_desc(ctx, nests, {"x0"}, skip=skip)


# ---- Gather ------------------------------------------------------------------------------------
def _supports_gather(node: Node) -> str | None:
    idx = node.inputs[1]
    if idx.dtype.kind not in "iu":
        return f"indices of dtype {idx.dtype.name} are not supported"
    return None


@lower("Gather", supports=_supports_gather)
def _lower_gather(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y (data[:axis] + indices + data[axis+1:]) = take(data, indices, axis).

    Viewed as (outer, n_idx, inner). Constant indices in arithmetic progression become strides;
    other constant indices a table; runtime indices are read, made non-negative, and clamped to
    the axis (the spec leaves out-of-range indices undefined; clamping keeps memory safe)."""
    data, ind, y = node.inputs[0], node.inputs[1], node.outputs[0]
    axis = norm_axis(node, attr(node, "axis"), len(data.shape))
    d = data.shape[axis]
    outer, nidx, inner = (math.prod(data.shape[:axis]), ind.type.size,
                          math.prod(data.shape[axis + 1:]))
    if y.type.size == 0:
        return empty_desc(ctx)
    ds = ctx.strides(data)
    splat = all(s == 0 for s in ds)
    s_outer, s_axis = (0, 0) if splat else (d * inner, inner)
    vars_ = [("o", outer), ("t", nidx), ("i", inner)]
    idx = {v: (v if n > 1 else 0) for v, n in vars_}
    dst = at("y0", [idx["o"], idx["t"], idx["i"]], [nidx * inner, inner, 1])
    pre_t: list[str] = []
    pre: list[str] = []
    used = {"x0"}
    if s_axis == 0:
        src = "x0[0]"
    elif ind.const is not None:
        vals = np.asarray(ind.const).reshape(-1).astype(np.int64)
        vals = np.clip(np.where(vals < 0, vals + d, vals), 0, d - 1)
        step = int(vals[1] - vals[0]) if len(vals) > 1 else 0
        if len(vals) == 1 or np.all(np.diff(vals) == step):
            src = at("x0", [idx["o"], idx["t"], idx["i"]], [s_outer, step * s_axis, 1],
                     int(vals[0]) * s_axis)
        else:
            pre.append(_table("gather_off", "int32_t", [int(v) * s_axis for v in vals]))
            src = at("x0", [idx["o"], "gather_off[t]", idx["i"]], [s_outer, 1, 1])
    else:
        used.add("x1")
        neg = f"j_ < 0 ? j_ + {d} : j_" if ind.dtype.kind == "i" else "j_"
        pre_t += [f"const int64_t j_ = (int64_t){at('x1', [idx['t']], [1])};",
                  f"const int64_t jn_ = {neg};",
                  f"const int32_t j = jn_ < 0 ? 0 : (jn_ >= {d} ? {d - 1} : (int32_t)jn_);"]
        src = at("x0", [idx["o"], "j", idx["i"]], [s_outer, s_axis, 1])
    levels = []
    for v, n in vars_:
        if n > 1:
            levels.append(level(v, n, pre_t if v == "t" else ()))
        elif v == "t":
            pre += pre_t
    nest = (tuple(levels), (f"{dst} = {src};",))
    return _copy_desc(ctx, [nest], used, pre, macro="gather")


# ---- Pad -------------------------------------------------------------------------------------
def _supports_pad(node: Node) -> str | None:
    pb, pe, mode, _ = pad_params(node)
    y = node.outputs[0]
    if mode != "constant" and any((b or e) and n > MAX_TABLE for b, e, n in zip(pb, pe, y.shape)):
        return f"{mode} padding of an axis longer than {MAX_TABLE}"
    return None


@lower("Pad", supports=_supports_pad)
def _lower_pad(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y = pad(x). constant: fill y with the value, then copy the (cropped) interior. reflect,
    edge, wrap: each padded axis reads its source offset from a table (numpy's own pad of the
    index range, so the modes follow the reference exactly)."""
    x, y = node.inputs[0], node.outputs[0]
    pb, pe, mode, value = pad_params(node)
    if y.type.size == 0:
        return empty_desc(ctx)
    xs, ys = ctx.strides(x), contiguous_strides(y.shape)
    ct = ctype(y.dtype)
    crop = [(max(-b, 0), d - max(-e, 0)) for d, b, e in zip(x.shape, pb, pe)]
    inner_shape = [hi - lo for lo, hi in crop]
    interior = all(n > 0 for n in inner_shape)
    if mode == "constant" or not interior:
        nests: list[Nest] = []
        if not interior or any(b > 0 or e > 0 for b, e in zip(pb, pe)):
            lit = c_literal(value if y.dtype.kind != "b" else int(bool(value)), ct)
            nests.append(((level("i", y.type.size),), (f"y0[i] = {lit};",)))
        if interior:
            dst_off = sum(max(b, 0) * s for b, s in zip(pb, ys))
            src_off = sum(lo * s for (lo, _), s in zip(crop, xs))
            nests.append(copy_nest(inner_shape, "y0", ys, dst_off, "x0", xs, src_off, "j"))
        return _copy_desc(ctx, nests, {"x0"} if interior else set())
    pre: list[str] = []
    idx: list[str | int] = []
    strides: list[int] = []
    levels: list[Level] = []
    off = 0
    for d, (b, e, s) in enumerate(zip(pb, pe, xs)):
        lo, hi = crop[d]
        src = np.pad(np.arange(lo, hi), (max(b, 0), max(e, 0)), mode=mode)
        iv: str | int = f"i{d}" if y.shape[d] > 1 else 0
        if y.shape[d] > 1:
            levels.append(level(f"i{d}", y.shape[d]))
        if s == 0:
            continue
        if np.array_equal(src, np.arange(len(src)) + src[0]):
            idx.append(iv)
            strides.append(s)
            off += int(src[0]) * s
        else:
            pre.append(_table(f"pad_off{d}", "int32_t", [int(v) * s for v in src]))
            idx.append(f"pad_off{d}[{iv}]")
            strides.append(1)
    dst = at("y0", [f"i{d}" if y.shape[d] > 1 else 0 for d in range(len(y.shape))], ys)
    body = f"{dst} = {at('x0', idx, strides, off)};"
    return _copy_desc(ctx, [(tuple(levels), (body,))], {"x0"}, pre, macro="gather")


# ---- Resize / Upsample -------------------------------------------------------------------------
def _resize_axes(node: Node) -> tuple[Any, list[int]]:
    p = resize_params(node)
    x = node.inputs[0]
    axes = [a for a in range(len(x.shape))
            if not (math.isclose(p.scales[a], 1.0) and p.out_shape[a] == x.shape[a]
                    and p.roi[a] == (0.0, 1.0))]
    return p, axes


def _supports_resize(node: Node) -> str | None:
    p, axes = _resize_axes(node)
    x = node.inputs[0]
    if p.mode != "nearest" and x.dtype.kind != "f":
        return f"{p.mode} resize of {x.dtype.name} is not supported (float only)"
    if p.mode != "nearest":
        taps = 1
        for a in axes:
            taps *= resize_taps(p, a, x.shape[a])[0].shape[1]
        if taps > MAX_RESIZE_TAPS:
            return f"{taps} taps per output element (more than {MAX_RESIZE_TAPS})"
    if any(p.out_shape[a] * 4 > MAX_TABLE for a in axes):
        return f"an output axis longer than {MAX_TABLE // 4}"
    return None


@lower("Resize", "Upsample", supports=_supports_resize)
def _lower_resize(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y = resize(x): per resized axis a, tables of source offsets (and weights, for linear and
    cubic) from :func:`onnxcc.ops.resize.resize_taps`; the loop over y reads them at each level
    and the innermost statement sums the taps (nearest: one tap)."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return empty_desc(ctx)
    p, axes = _resize_axes(node)
    ct = ctype(y.dtype)
    xs, ys = ctx.strides(x), contiguous_strides(y.shape)
    pre: list[str] = []
    levels: list[Level] = []
    base_idx: list[str | int] = []
    base_st: list[int] = []
    taps: list[list[tuple[str, str | None]]] = []   # per resized axis: (offset expr, weight expr)
    outside: list[str] = []
    for d in range(len(y.shape)):
        var = f"i{d}"
        iv: str | int = var if y.shape[d] > 1 else 0
        lv_pre: list[str] = []
        if d not in axes:
            base_idx.append(iv)
            base_st.append(xs[d])
        else:
            idx, w, out = resize_taps(p, d, x.shape[d])
            if p.mode == "nearest":
                idx, w = idx[np.arange(len(idx)), w.argmax(axis=1)][:, None], np.ones((len(idx), 1))
            # every tap is kept, even one of weight 0 for every output: 0 * NaN is NaN, as in
            # the reference and onnxruntime (dropping it hid a NaN neighbour)
            nt = idx.shape[1]
            pre.append(_table(f"rz_off{d}", "int32_t", [int(v) * xs[d] for v in idx.reshape(-1)]))
            row = f"{var}*{nt}" if (nt > 1 and iv != 0) else iv
            axis_taps = []
            for t in range(nt):
                pos = f"{row} + {t}" if row != 0 and t else row if row != 0 else t
                o_expr = f"rz_off{d}[{pos}]"
                lv_pre.append(f"const int32_t o{d}_{t} = {o_expr};")
                wexpr = None
                if p.mode != "nearest":
                    if t == 0:
                        pre.append(_table(f"rz_w{d}", ct, list(w.reshape(-1))))
                    lv_pre.append(f"const {ct} w{d}_{t} = "
                                  f"{o_expr.replace(f'rz_off{d}', f'rz_w{d}')};")
                    wexpr = f"w{d}_{t}"
                axis_taps.append((f"o{d}_{t}", wexpr))
            taps.append(axis_taps)
            if out is not None and out.any():
                pre.append(_table(f"rz_out{d}", "uint8_t", [int(v) for v in out]))
                outside.append(f"rz_out{d}[{iv}]")
        if y.shape[d] > 1:
            levels.append(level(var, y.shape[d], lv_pre))
        else:
            pre += lv_pre
    base = index_expr(base_idx, base_st)

    def combine(k: int, offs: list[str]) -> str:
        if k == len(taps):
            return f"x0[{' + '.join(([base] if base != '0' else []) + offs) or '0'}]"
        terms = []
        for off, wexpr in taps[k]:
            inner = combine(k + 1, offs + [off])
            terms.append(inner if wexpr is None else f"{wexpr} * {inner}")
        return terms[0] if len(terms) == 1 else "(" + " + ".join(terms) + ")"

    expr = combine(0, [])
    if outside:
        expr = f"({' || '.join(outside)}) ? {c_literal(p.extrapolation_value, ct)} : {expr}"
    dst = at("y0", [f"i{d}" if y.shape[d] > 1 else 0 for d in range(len(y.shape))], ys)
    return _copy_desc(ctx, [(tuple(levels), (f"{dst} = {expr};",))], {"x0"}, pre, macro="gather")


# ---- Range -----------------------------------------------------------------------------------
def _supports_range(node: Node) -> str | None:
    if any(v.const is None for v in node.inputs):
        return "start, limit and delta must be constants"
    return None


@lower("Range", supports=_supports_range)
def _lower_range(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y[i] = start + i * delta (constants baked in)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return empty_desc(ctx)
    ct = ctype(y.dtype)
    start = np.asarray(node.inputs[0].const).reshape(-1)[0].item()
    delta = np.asarray(node.inputs[2].const).reshape(-1)[0].item()
    if ct in ("float", "double"):
        expr = f"{c_literal(start, ct)} + ({ct})i * {c_literal(delta, ct)}"
    else:
        expr = f"({ct})({c_literal(start, 'int64_t')} + (int64_t)i * {c_literal(delta, 'int64_t')})"
    return _copy_desc(ctx, [((level("i", y.type.size),), (f"y0[i] = {expr};",))], set())


# ---- outputs known at compile time (normally folded by the frontend) -----------------------
def _supports_known(node: Node) -> str | None:
    if node.op == "ConstantOfShape" and node.inputs[0].const is None:
        return "the shape input must be a constant"
    return None


@lower("Shape", "Size", "ConstantOfShape", supports=_supports_known)
def _lower_known(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """y depends on static shapes (Shape, Size) or on constants only (ConstantOfShape): its
    values are baked in, as a fill loop for a splat or a table copy."""
    y = node.outputs[0]
    if y.type.size == 0:
        return empty_desc(ctx)
    ct = ctype(y.dtype)
    args = [None if v is None else v.const if v.const is not None
            else np.broadcast_to(np.zeros((), v.dtype), v.shape) for v in node.inputs]
    (val,) = get_op(node).reference(node, *args)[:1]
    flat = np.asarray(val).astype(y.dtype).reshape(-1)
    if is_splat(flat):
        return _copy_desc(ctx, [((level("i", y.type.size),),
                                 (f"y0[i] = {c_literal(flat[0].item(), ct)};",))], set())
    table = _table("values", ct, [v.item() for v in flat])
    return _copy_desc(ctx, [((level("i", y.type.size),), ("y0[i] = values[i];",))], set(),
                      [table])
