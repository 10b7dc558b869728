"""Data movement as loop IR: Transpose, Expand, Tile, Slice, InsertSlice, DepthToSpace, SpaceToDepth, Concat,
Split, Gather, Pad, Resize/Upsample, Range, Shape, Size, ConstantOfShape.

Most kernels are strided copies ``y[...] = x[...]``: each output dim has an extent and, per
buffer, an element stride (a transpose permutes the source strides, a slice scales them by its
step and starts at an offset, a broadcast or splat reads with stride 0, a tile splits an output
dim into (repeat, dim)). Both sides are indexed through flat (1-D) views of their buffers, so
dims that both walk contiguously merge into one loop (``merge_dims``), the innermost loop is the
contiguous one, and ``verify`` proves each affine offset from the loop ranges. Where the source
index is not affine, it is computed (Pad edge/wrap/reflect: clamps and modulos) or read from a
table (Gather: the indices, clamped to the axis; Resize: per-axis tap tables from
``onnxcc.ops.resize.resize_taps``, clamped), so every read is proved in bounds.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from onnxcc.codegen.loops import (BOOL, INDEX, Binary, Buffer, Cast, Const, Decl, DType, Expr,
                                  Load, Loop, Select, Stmt, Store, Var, affine, all_of, const,
                                  Unary, contiguous_strides, maximum, minimum)
from onnxcc.ir import Node
from onnxcc.ops import attr, get_op
from onnxcc.ops._util import norm_axis
from onnxcc.ops.resize import resize_taps
from onnxcc.ops.shape import pad_params, slice_params, split_sizes, transpose_perm

from . import LowerCtx, is_splat, lower, nest

MAX_TABLE = 1 << 16      # elements of one resize index table
MAX_RESIZE_TAPS = 64     # terms of one resized output element (product of taps per axis)


# ---- shared helpers (also used by reduce.py and norm.py) ---------------------------------------
def flat(b: Buffer) -> Buffer:
    """``b`` as a 1-D view of its storage: element ``(i0, .., in)`` of ``b`` is element
    ``sum(ik * strides[k])`` of the view (shape ``(extent,)``, stride 1; one element for a
    splat). Same name, place and data as ``b``."""
    return Buffer(b.name, b.dtype, (max(b.extent, 1),), (1,), b.space, b.offset, b.index,
                  b.data, b.value)


def merge_dims(shape: Sequence[int], stride_sets: Sequence[Sequence[int]]
               ) -> tuple[list[int], list[list[int]]]:
    """Drop unit dims and merge adjacent dims that every stride set walks contiguously (0-stride
    dims merge with 0-stride dims). Returns ``([1], [[0], ...])`` when no dim is left."""
    keep = [k for k, d in enumerate(shape) if d != 1]
    shp = [int(shape[k]) for k in keep]
    sts = [[int(s[k]) for k in keep] for s in stride_sets]
    k = len(shp) - 2
    while k >= 0:
        if all(s[k] == s[k + 1] * shp[k + 1] for s in sts):
            shp[k] *= shp[k + 1]
            for s in sts:
                s[k] = s[k + 1]
                del s[k + 1]
            del shp[k + 1]
        k -= 1
    if not shp:
        return [1], [[0] for _ in sts]
    return shp, sts


def offset(vs: Sequence[Expr], strides: Sequence[int], base: int = 0) -> Expr:
    """The flat offset ``base + sum(v * s)`` as an affine INDEX expression."""
    return affine(*[(v, int(s)) for v, s in zip(vs, strides)], int(base))


def clamp(e: Expr, lo: int, hi: int) -> Expr:
    """``min(max(e, lo), hi)``: an index verify can bound whatever ``e`` holds."""
    return minimum(maximum(e, Const(lo, e.dtype)), Const(hi, e.dtype))


def copy_nest(ctx: LowerCtx, shape: Sequence[int], dst: Buffer, dst_strides: Sequence[int],
              dst_off: int, src: Buffer, src_strides: Sequence[int], src_off: int,
              value: Callable[[Expr], Expr] | None = None) -> list[Stmt]:
    """Loops copying ``src`` (flat view, element strides ``src_strides`` from ``src_off``) to
    ``dst`` (likewise) over ``shape``, each element through ``value`` when given (a rescale);
    dims both sides walk contiguously are merged."""
    shp, (ds, ss) = merge_dims(shape, [list(dst_strides), list(src_strides)])
    f = value or (lambda e: e)
    return nest(ctx, shp, lambda v: [Store(dst, (offset(v, ds, dst_off),),
                                           f(src[offset(v, ss, src_off)]))])


def _strides(b: Buffer) -> tuple[int, ...]:
    """Element strides of a buffer ``ctx.input`` returned (contiguous, or 0 for a splat)."""
    return tuple(b.strides)


def _copy_kernel(ctx: LowerCtx, shape: Sequence[int], src_strides: Sequence[int],
                 src_off: int = 0, name: str = "copy"):
    """The kernel ``y0 = x0`` read through ``src_strides`` (y0 contiguous, in ``shape``)."""
    y, x = ctx.output(0), ctx.input(0)
    if y.extent == 0:
        return None
    yf, xf = flat(y), flat(x)
    body = copy_nest(ctx, shape, yf, contiguous_strides(shape), 0, xf, src_strides, src_off)
    return ctx.kernel(name, [yf], [xf], body)


# ---- views and plain strided copies ------------------------------------------------------------
@lower("Transpose")
def _lower_transpose(node: Node, ctx: LowerCtx):
    """y (x.shape[perm]) = x.transpose(perm): the source strides permuted."""
    xs = _strides(ctx.input(0))
    return _copy_kernel(ctx, node.outputs[0].shape, [xs[p] for p in transpose_perm(node)],
                        name="transpose")


@lower("Expand")
def _lower_expand(node: Node, ctx: LowerCtx):
    """y = x broadcast to the (constant) shape: stride 0 along expanded dims."""
    x, y = node.inputs[0], node.outputs[0]
    xs = _strides(ctx.input(0))
    pad = len(y.shape) - len(x.shape)
    src = [0] * pad + [0 if d == 1 else s for d, s in zip(x.shape, xs)]
    return _copy_kernel(ctx, y.shape, src, name="expand")


@lower("Tile")
def _lower_tile(node: Node, ctx: LowerCtx):
    """y dim d = repeats[d] copies of x dim d: each output dim split into (repeat, dim)."""
    x, y = node.inputs[0], node.outputs[0]
    yb, xb = ctx.output(0), ctx.input(0)
    if yb.extent == 0:
        return None
    shape, dst, src = [], [], []
    for d, (n, s, t) in enumerate(zip(x.shape, _strides(xb), contiguous_strides(y.shape))):
        shape += [y.shape[d] // n, n]
        dst += [t * n, t]
        src += [0, s]
    yf, xf = flat(yb), flat(xb)
    return ctx.kernel("tile", [yf], [xf], copy_nest(ctx, shape, yf, dst, 0, xf, src, 0))


@lower("Slice")
def _lower_slice(node: Node, ctx: LowerCtx):
    """y = x[start:end:step] per axis: source strides times steps, from the starts; no code
    when the plan made y a window of x read in place (its buffer has x's strides)."""
    if getattr(ctx.storage.get(node.outputs[0].name), "strides", None) is not None:
        return None
    starts, _, _, steps = slice_params(node)
    xs = _strides(ctx.input(0))
    return _copy_kernel(ctx, node.outputs[0].shape, [s * k for s, k in zip(xs, steps)],
                        sum(b * s for b, s in zip(starts, xs)), name="slice")


@lower("onnxcc.InsertSlice")
def _lower_insert_slice(node: Node, ctx: LowerCtx):
    """y = dest with the window at ``offsets`` replaced by source: dest is copied first unless
    the plan put y in dest's storage (then only the window is written); without dest, y is
    zero-filled first."""
    dest, src = node.inputs
    y = node.outputs[0]
    ys = contiguous_strides(y.shape)
    yf = flat(ctx.output(0))
    body: list[Stmt] = []
    ins: list[Buffer] = []
    if dest is None:
        body += nest(ctx, [y.type.size], lambda v: [Store(yf, (offset(v, [1]),), const(0, yf.dtype))])
    elif not ctx.same_storage(dest, y):
        db = ctx.input(0)
        df = flat(db)
        ins.append(df)
        body += copy_nest(ctx, y.shape, yf, ys, 0, df, _strides(db), 0)
    sb = ctx.input(1)
    sf = flat(sb)
    ins.append(sf)
    base = sum(o * s for o, s in zip(attr(node, "offsets"), ys))
    body += copy_nest(ctx, src.shape, yf, ys, base, sf, _strides(sb), 0)
    return ctx.kernel("insert_slice", [yf], ins, body)


@lower("DepthToSpace", "SpaceToDepth")
def _lower_depth_space(node: Node, ctx: LowerCtx):
    """Block rearrangements (x (N,C,H,W)): a reshape-transpose-reshape, i.e. one strided copy
    over y viewed 6-D."""
    b = attr(node, "blocksize")
    n, c, h, w = node.inputs[0].shape
    if node.op == "SpaceToDepth":
        crd = (node.attrs.get("mode") or "DCR") == "CRD"
        view, perm = (n, c, h // b, b, w // b, b), ((0, 1, 3, 5, 2, 4) if crd else (0, 3, 5, 1, 2, 4))
    elif (node.attrs.get("mode") or "DCR") == "DCR":
        view, perm = (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2)
    else:
        view, perm = (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3)
    splat = all(s == 0 for s in _strides(ctx.input(0)))
    vs = (0,) * 6 if splat else contiguous_strides(view)
    return _copy_kernel(ctx, [view[p] for p in perm], [vs[p] for p in perm],
                        name=node.op.lower())


# ---- Concat and Split: slabs, skipped when the memory plan put them in place --------------------
@lower("Concat")
def _lower_concat(node: Node, ctx: LowerCtx):
    """y = x0 | x1 | ... along axis; an input the plan placed inside y at its offset is not
    copied (its producer wrote it there), and no code at all when every input was."""
    y = node.outputs[0]
    axis = norm_axis(node, attr(node, "axis"), len(y.shape))
    ys = contiguous_strides(y.shape)
    inner = math.prod(y.shape[axis + 1:])
    yf = flat(ctx.output(0))
    body: list[Stmt] = []
    ins: list[Buffer] = []
    pos = 0
    for k, v in enumerate(node.inputs):
        off = pos * inner
        pos += v.shape[axis]
        if v.type.size == 0 or ctx.same_storage(v, y, off * y.dtype.itemsize):
            continue
        xb = ctx.input(k)
        xf = flat(xb)
        ins.append(xf)
        body += copy_nest(ctx, v.shape, yf, ys, off, xf, _strides(xb), 0)
    if not body:
        return None
    return ctx.kernel("concat", [yf], ins, body)


@lower("Split")
def _lower_split(node: Node, ctx: LowerCtx):
    """y_k = x[..., pos_k : pos_k + size_k, ...] along axis; outputs the plan placed inside x
    (views) are skipped, and no code when all are."""
    x = node.inputs[0]
    axis, sizes = split_sizes(node)
    xb = ctx.input(0)
    xs, xf = _strides(xb), flat(xb)
    inner = math.prod(x.shape[axis + 1:])
    body: list[Stmt] = []
    outs: list[Buffer] = []
    pos = 0
    for k, (v, n) in enumerate(zip(node.outputs, sizes)):
        off, byte_off = pos * xs[axis], pos * inner * x.dtype.itemsize
        pos += n
        if v.type.size == 0 or ctx.same_storage(v, x, byte_off):
            continue
        yf = flat(ctx.output(k))
        outs.append(yf)
        body += copy_nest(ctx, v.shape, yf, contiguous_strides(v.shape), 0, xf, xs, off)
    if not body:
        return None
    return ctx.kernel("split", outs, [xf], body)


# ---- Gather ------------------------------------------------------------------------------------
def _supports_gather(node: Node) -> str | None:
    if node.inputs[1].dtype.kind not in "iu":
        return f"indices of dtype {node.inputs[1].dtype.name} are not supported"
    return None


@lower("Gather", supports=_supports_gather)
def _lower_gather(node: Node, ctx: LowerCtx):
    """y (data.shape[:axis] + indices.shape + data.shape[axis+1:]) = take(data, indices, axis),
    viewed as (outer, n_idx, inner).

    Constant indices in arithmetic progression become a stride. Other indices are read, made
    non-negative (``j + d`` for ``j < 0``) and clamped to ``[0, d)``: ONNX calls an out-of-range
    index an error (onnxruntime refuses it); the clamp keeps every read inside ``data``."""
    data, ind, y = node.inputs[0], node.inputs[1], node.outputs[0]
    if y.type.size == 0:
        return None
    axis = norm_axis(node, attr(node, "axis"), len(data.shape))
    d = data.shape[axis]
    outer, nidx, inner = (math.prod(data.shape[:axis]), ind.type.size,
                          math.prod(data.shape[axis + 1:]))
    db, yb = ctx.input(0), ctx.output(0)
    df, yf = flat(db), flat(yb)
    s_outer, s_axis = (0, 0) if all(s == 0 for s in db.strides) else (d * inner, inner)
    ins = [df]
    step = None
    if ind.const is not None:
        vals = np.asarray(ind.const).reshape(-1).astype(np.int64)
        vals = np.clip(np.where(vals < 0, vals + d, vals), 0, d - 1)
        step = int(vals[1] - vals[0]) if len(vals) > 1 else 0
        if len(vals) > 1 and not np.all(np.diff(vals) == step):
            step = None
        first = int(vals[0])
    if step is None:
        ib = flat(ctx.input(1))
        ins.append(ib)

    o, t, i = ctx.var("o"), ctx.var("t"), ctx.var("i")
    dst = offset([o, t, i], [nidx * inner, inner, 1])
    if step is not None:
        src: Expr = offset([o, t, i], [s_outer, step * s_axis, 1], first * s_axis)
        inner_body: list[Stmt] = [Store(yf, (dst,), df[src])]
        per_t: list[Stmt] = []
    else:
        j = Var("j", ib.dtype)
        jn: Expr = j
        if ib.dtype.signed:
            jn = Select(Binary("lt", j, const(0, j.dtype)), j + const(d, j.dtype), j)
        jc: Expr = clamp(jn, 0, d - 1)
        if jc.dtype != INDEX:
            jc = Cast(jc, INDEX)
        per_t = [Decl(j, ib[t])]
        inner_body = [Store(yf, (dst,), df[affine((o, s_outer), (jc, s_axis), i)])]
    body = [Loop(o, 0, outer, [Loop(t, 0, nidx, per_t + [Loop(i, 0, inner, inner_body)])])]
    return ctx.kernel("gather", [yf], ins, body)


# ---- Pad ---------------------------------------------------------------------------------------
def _pad_source(mode: str, i: Expr, before: int, lo: int, m: int) -> Expr:
    """Source index along one axis for output index ``i`` (``before`` = padding before the
    interior, which is ``x[lo:lo+m]`` after cropping) in the edge, wrap or reflect mode, as
    numpy.pad extends an axis (reflect: mirror without repeating the edge, periodic)."""
    j = affine(i, -before)
    if mode == "edge" or (mode == "reflect" and m == 1):
        r = clamp(j, 0, m - 1)
    elif mode == "wrap":
        r = Binary("mod", affine(Binary("mod", j, Const(m)), m), Const(m))
    else:  # reflect: period 2(m-1), the mirror image of the far half
        p = 2 * (m - 1)
        t = Binary("mod", affine(Binary("mod", j, Const(p)), p), Const(p))
        # min(t, p - t) <= m - 1 always; the outer min states it for verify
        r = minimum(minimum(t, affine((t, -1), p)), Const(m - 1))
    return affine(r, lo)


@lower("Pad")
def _lower_pad(node: Node, ctx: LowerCtx):
    """y = pad(x) (pads may be negative: a crop). constant: each element a load of x masked to
    the interior, ``value`` outside; edge, wrap, reflect: per axis a source index computed from
    the output index (:func:`_pad_source`)."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    pb, pe, mode, value = pad_params(node, runtime_value=True)
    xb, yb = ctx.input(0), ctx.output(0)
    crop = [(max(-b, 0), d - max(-e, 0)) for d, b, e in zip(x.shape, pb, pe)]
    interior = all(hi > lo for lo, hi in crop)
    extra = []
    if value is None:   # constant_value known at run time: one load of the scalar input
        vb = ctx.input(2)
        fill = vb[tuple(Const(0) for _ in node.inputs[2].shape)]
        extra = [vb] if mode == "constant" or not interior else []
    else:
        fill = const(value, yb.dtype)

    def body(v: list[Var]) -> list[Stmt]:
        if not interior:
            return [Store(yb, tuple(v), fill)]
        if mode == "constant":
            idx = [affine(i, -b) for i, b in zip(v, pb)]
            conds = []
            for e, b, en, n in zip(idx, pb, pe, x.shape):
                if b > 0:
                    conds.append(Binary("ge", e, Const(0)))
                if en > 0:
                    conds.append(Binary("lt", e, Const(n)))
            mask = all_of(*conds)
            return [Store(yb, tuple(v), Load(xb, tuple(idx), mask, fill if mask else None))]
        idx = [affine(i, lo) if b <= 0 and e <= 0 else _pad_source(mode, i, max(b, 0), lo, hi - lo)
               for i, b, e, (lo, hi) in zip(v, pb, pe, crop)]
        return [Store(yb, tuple(v), xb[tuple(idx)])]

    ins = ([xb] if interior else []) + extra
    return ctx.kernel("pad", [yb], ins, nest(ctx, y.shape, body))


# ---- Resize / Upsample -------------------------------------------------------------------------
def _runtime_roi_taps(p: Any, d: int, in_len: int, roi: Buffer, o: Var, dt: DType
                      ) -> tuple[list[Stmt], list[Expr], list[Expr | None], Expr]:
    """Axis ``d`` of a tf_crop_and_resize whose roi (flat, starts then ends of ``p.roi_axes``)
    is read at run time, at output index ``o``: (statements declaring its locals, tap offsets,
    tap weights or None for nearest, the "outside the crop" flag). Computed in float64 as
    :func:`onnxcc.ops.resize._source_coords` and :func:`~onnxcc.ops.resize.resize_taps` do:
    x = o * (end - start) * (n - 1) / (out_f - 1) + start * (n - 1) (out_f = scale * n; when it
    is 1, x = (end - start) * (n - 1) / 2 + start * (n - 1)), outside when x < 0 or x > n - 1;
    lo = floor(x) and r = x - lo, with an integral x taken as lo - 1 and r = 1 (the tables'
    taps). Linear reads lo (weight 1 - r) and lo + 1 (weight r); nearest reads lo + 1 when r
    passes ``nearest_mode`` (or is 1), else lo. Indices are clamped in float before the cast
    (a NaN or huge roi makes no out-of-range conversion) and into [0, n) after it."""
    f64 = DType("float64")
    k = p.roi_axes.index(d)
    na = len(p.roi_axes)
    # locals named rz_*: no clash with the buffers x0, y0
    start, end = Var(f"rz_s{d}", f64), Var(f"rz_e{d}", f64)
    xv, fl, lo, r = (Var(f"rz_x{d}", f64), Var(f"rz_f{d}", f64), Var(f"rz_lo{d}", f64),
                     Var(f"rz_r{d}", f64))
    out_f = p.scales[d] * in_len
    n1 = const(in_len - 1, f64)

    def load(i: int) -> Expr:
        v = roi[Const(i)]
        return v if v.dtype == f64 else Cast(v, f64)

    if out_f == 1:
        x = (end - start) * n1 / const(2, f64) + start * n1
    else:
        x = Cast(o, f64) * (end - start) * n1 / const(out_f - 1, f64) + start * n1
    whole = Binary("eq", xv, fl)
    stmts: list[Stmt] = [
        Decl(start, load(k)), Decl(end, load(na + k)), Decl(xv, x),
        Decl(fl, Unary("floor", xv)),
        Decl(r, Select(whole, const(1, f64), xv - fl)),
        Decl(lo, Select(whole, fl - const(1, f64), fl))]
    flag = Binary("or", Binary("lt", xv, const(0, f64)), Binary("gt", xv, n1))

    def index(v: Expr) -> Expr:
        return Cast(Binary("fmin", Binary("fmax", v, const(-1, f64)), const(in_len, f64)), INDEX)

    def use(v: Var) -> Expr:   # clamped where read: a no-op verify can bound
        return clamp(v, 0, in_len - 1)

    if p.mode == "nearest":
        right = {"round_prefer_floor": Binary("gt", r, const(0.5, f64)),
                 "round_prefer_ceil": Binary("ge", r, const(0.5, f64)),
                 "floor": Const(False, BOOL), "ceil": Const(True, BOOL)}[p.nearest_mode]
        right = Binary("or", right, Binary("eq", r, const(1, f64)))
        ov = Var(f"o{d}_0")
        stmts.append(Decl(ov, index(Select(right, lo + const(1, f64), lo))))
        return stmts, [use(ov)], [None], flag
    o0, o1 = Var(f"o{d}_0"), Var(f"o{d}_1")
    w0, w1 = Var(f"w{d}_0", dt), Var(f"w{d}_1", dt)
    stmts += [Decl(o0, index(lo)), Decl(o1, index(lo + const(1, f64))),
              Decl(w0, Cast(const(1, f64) - r, dt)), Decl(w1, Cast(r, dt))]
    return stmts, [use(o0), use(o1)], [w0, w1], flag


def _resize_axes(node: Node) -> tuple[Any, list[int]]:
    from onnxcc.ops.resize import resize_params

    p = resize_params(node)
    x = node.inputs[0]
    axes = [a for a in range(len(x.shape))
            if not (math.isclose(p.scales[a], 1.0) and p.out_shape[a] == x.shape[a]
                    and p.roi[a] == (0.0, 1.0) and a not in p.roi_axes)]
    return p, axes


def _supports_resize(node: Node) -> str | None:
    p, axes = _resize_axes(node)
    x = node.inputs[0]
    if p.mode != "nearest" and x.dtype.kind != "f":
        return f"{p.mode} resize of {x.dtype.name} is not supported (float only)"
    if p.roi_runtime and (p.mode == "cubic" or p.antialias):
        return (f"tf_crop_and_resize with roi {node.inputs[1].name!r} known only at run time is "
                f"compiled for nearest and linear modes without antialias; bind roi with "
                f"constant_inputs={{{node.inputs[1].name!r}: ...}} (CLI: --constant-input)")
    if p.roi_runtime and node.inputs[1].dtype.kind != "f":
        return f"a runtime roi of {node.inputs[1].dtype.name} is not supported (float only)"
    if p.mode != "nearest":
        taps = 1
        for a in axes:
            taps *= 2 if a in p.roi_axes else resize_taps(p, a, x.shape[a])[0].shape[1]
        if taps > MAX_RESIZE_TAPS:
            return f"{taps} taps per output element (more than {MAX_RESIZE_TAPS})"
    if any(p.out_shape[a] * 4 > MAX_TABLE for a in axes):
        return f"an output axis longer than {MAX_TABLE // 4}"
    return None


@lower("Resize", "Upsample", supports=_supports_resize)
def _lower_resize(node: Node, ctx: LowerCtx):
    """y = resize(x), separable: per resized axis ``d`` a weight table of source indices
    ``rz_idx{d}`` (out_len, taps) and, for linear/cubic, of tap weights ``rz_w{d}`` (in y's
    dtype), from :func:`onnxcc.ops.resize.resize_taps` (every tap kept, so a NaN neighbour of
    weight 0 gives NaN as in IEEE arithmetic; nearest keeps its one tap). The loop over y reads a row of each table at that axis' level
    (indices clamped, so verify proves the reads) and the innermost statement sums the products
    of the taps. tf_crop_and_resize marks outputs outside the crop in ``rz_out{d}``; those get
    extrapolation_value. A roi known only at run time (:func:`_runtime_roi_taps`) gives its
    axes' taps and outside flags from roi at that axis' loop level instead of tables."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    p, axes = _resize_axes(node)
    xb, yb = ctx.input(0), ctx.output(0)
    dt = yb.dtype
    tables: list[Buffer] = []
    taps: dict[int, tuple[Buffer, Buffer | None, int]] = {}
    outside: dict[int, Buffer] = {}
    vs = [ctx.var("i") for _ in y.shape]
    offs: dict[int, list[Expr]] = {}
    wts: dict[int, list[Expr | None]] = {}
    pre: dict[int, list[Stmt]] = {}
    out_flags: dict[int, Expr] = {}
    if p.roi_runtime:
        rb = flat(ctx.input(1, "roi"))
        tables.append(rb)
    for d in axes:
        if d in p.roi_axes:
            taps[d] = (rb, None, 0)
            pre[d], offs[d], wts[d], out_flags[d] = _runtime_roi_taps(p, d, x.shape[d], rb,
                                                                       vs[d], dt)
            continue
        idx, w, out = resize_taps(p, d, x.shape[d])
        if p.mode == "nearest":
            idx, w = idx[np.arange(len(idx)), w.argmax(axis=1)][:, None], None
        # linear/cubic keep every tap, even one of weight 0 for every output: 0 * NaN is NaN,
        # as in the reference and onnxruntime
        ib = Buffer(f"rz_idx{d}", DType("int32"), idx.shape, space="weight",
                    data=np.ascontiguousarray(idx, np.int32).reshape(-1))
        wb = None if w is None else Buffer(f"rz_w{d}", dt, w.shape, space="weight",
                                           data=np.ascontiguousarray(w, dt.np).reshape(-1))
        tables += [ib] + ([wb] if wb is not None else [])
        taps[d] = (ib, wb, idx.shape[1])
        if out is not None and out.any():
            outside[d] = Buffer(f"rz_out{d}", BOOL, out.shape, space="weight",
                                data=np.ascontiguousarray(out, np.bool_))
            tables.append(outside[d])
    # per resized axis: (offset locals, weight locals), declared at that axis' loop level
    for d, (ib, wb, nt) in taps.items():
        if d in p.roi_axes:
            continue
        pre[d], offs[d], wts[d] = [], [], []
        for t in range(nt):
            o = Var(f"o{d}_{t}")
            pre[d].append(Decl(o, ib[vs[d], Const(t)]))
            offs[d].append(clamp(o, 0, x.shape[d] - 1))   # a no-op that lets verify prove
            if wb is not None:
                wv = Var(f"w{d}_{t}", dt)
                pre[d].append(Decl(wv, wb[vs[d], Const(t)]))
                wts[d].append(wv)
            else:
                wts[d].append(None)
    order = list(taps)

    def combine(k: int, idx: list[Expr]) -> Expr:
        if k == len(order):
            full = [idx[order.index(d)] if d in taps else vs[d] for d in range(len(y.shape))]
            return xb[tuple(full)]
        d = order[k]
        e: Expr | None = None
        for o, wv in zip(offs[d], wts[d]):
            term = combine(k + 1, idx + [o])
            term = term if wv is None else Binary("mul", wv, term)
            e = term if e is None else Binary("add", e, term)
        assert e is not None
        return e

    val = combine(0, [])
    if outside or out_flags:
        cond = None
        for c in [ob[vs[d]] for d, ob in outside.items()] + list(out_flags.values()):
            cond = c if cond is None else Binary("or", cond, c)
        val = Select(cond, const(p.extrapolation_value, dt), val)
    stmts: list[Stmt] = [Store(yb, tuple(vs), val)]
    for d in reversed(range(len(y.shape))):
        stmts = [Loop(vs[d], 0, y.shape[d], pre.get(d, []) + stmts)]
    return ctx.kernel("resize", [yb], [xb] + tables, stmts)


# ---- Range -------------------------------------------------------------------------------------
def _supports_range(node: Node) -> str | None:
    if any(v.const is None for v in node.inputs):
        return "start, limit and delta must be constants"
    return None


@lower("Range", supports=_supports_range)
def _lower_range(node: Node, ctx: LowerCtx):
    """y[i] = start + i * delta (constants baked in; integers wrap as their width)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    yb = ctx.output(0)
    dt = yb.dtype
    start = const(np.asarray(node.inputs[0].const).reshape(-1)[0].item(), dt)
    delta = const(np.asarray(node.inputs[2].const).reshape(-1)[0].item(), dt)
    body = nest(ctx, y.shape, lambda v: [Store(yb, (v[0],),
                                               start + Cast(v[0], dt) * delta)])
    return ctx.kernel("arange", [yb], [], body)


# ---- outputs known at compile time (normally folded by the frontend) ---------------------------
def _supports_known(node: Node) -> str | None:
    if node.op == "ConstantOfShape" and node.inputs[0].const is None:
        return "the shape input must be a constant"
    return None


@lower("Shape", "Size", "ConstantOfShape", supports=_supports_known)
def _lower_known(node: Node, ctx: LowerCtx):
    """y depends on static shapes (Shape, Size) or on constants only (ConstantOfShape): its
    values are baked in, as a fill loop for a splat or a copy of a weight table."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    yb = ctx.output(0)
    args = [None if v is None else v.const if v.const is not None
            else np.broadcast_to(np.zeros((), v.dtype), v.shape) for v in node.inputs]
    (val,) = get_op(node).reference(node, *args)[:1]
    vals = np.ascontiguousarray(np.asarray(val).astype(y.dtype)).reshape(-1)
    yf = flat(yb)
    if is_splat(vals):
        body = nest(ctx, [vals.size], lambda v: [Store(yf, (v[0],), const(vals[0].item(),
                                                                          yf.dtype))])
        return ctx.kernel("fill", [yf], [], body)
    tb = Buffer("values", yf.dtype, (vals.size,), space="weight", data=vals)
    body = nest(ctx, [vals.size], lambda v: [Store(yf, (v[0],), tb[v[0]])])
    return ctx.kernel("values", [yf], [tb], body)
