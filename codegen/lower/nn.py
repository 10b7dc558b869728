"""Convolutions and pools as loop IR: Conv, onnxcc.FusedConv, ConvTranspose, MaxPool (with its
optional Indices), AveragePool, GlobalAveragePool and GlobalMaxPool, on NC(D)HW tensors with 1 to
3 spatial axes.

Geometry comes from the op declarations (``conv_geometry``, ``conv_transpose_geometry``,
``pool_geometry``, ``pool_counts`` in ``onnxcc.ops.nn``); this module only turns it into loops:

- Conv is tap-stationary (:func:`_conv_taps`): y starts at the bias over a tile of output rows,
  then for each block of input channels and each kernel tap, ``y[o] += sum of w * x[o*s + k*d -
  pb]`` over the output positions whose input lies inside x (per-tap loop bounds: no guard in
  the hot loop, and ``verify`` proves them tap by tap), with blocks of output channels sharing
  each x load; the fused activation runs over the tile at the end. The innermost loop walks
  contiguous outputs and is marked unrolled, so the C renderer writes it in the row-pointer form
  gcc -O2 vectorizes and LLVM's loop vectorizer takes it as is.
- ConvTranspose scatters: y starts at the bias, then each input position adds ``x * w`` into the
  output position ``i*stride + tap*dilation - pad`` of every tap (no division, no modulo).
- Pools gather per output position with a max or a sum over the window's taps that can land
  inside x; AveragePool divides by ``pool_counts`` (per-axis tables of divisors when they vary,
  stored as weights).

Padding is never materialized. For pools and ConvTranspose the positions split into an interior,
where every tap lands inside the other tensor and loads carry no guard, and one nest over the
rest, where the reads are masked loads (``x[iy] if 0 <= iy && iy < H else 0``) or the writes
guarded stores, so ``verify`` proves every access and the hot interior has no branches.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from onnxcc.codegen.loops import (I64, Assign, Binary, Buffer, Comment, Const, Decl, DType, Expr,
                                  If, Load, Loop, MulAdd, Select, Stmt, Store, Var, affine, all_of,
                                  const,
                                  Unary, contiguous_strides, maximum, minimum,
                                  substitute_stmts)
from onnxcc.errors import OnnxccError
from onnxcc.ir import Node
from onnxcc.ops import REQUIRED, get_op
from onnxcc.ops.nn import conv_geometry, conv_transpose_geometry, pool_counts, pool_geometry

from . import LowerCtx, lower

SUM_BLOCK = 256          # GlobalAveragePool: terms per partial sum (nested blocked accumulation)
WINDOW_BLOCK = 128       # AveragePool: windows of more taps sum each row into its own partial
LABELS = {1: ("w",), 2: ("h", "w"), 3: ("d", "h", "w")}
FLOATS = ("float32", "float64")
ACT_INPUTS = {"Clip": ("min", "max"), "PRelu": ("slope",)}


# ---- small helpers shared with matmul.py -------------------------------------------------------
def axis_var(name: str, n: int) -> Expr:
    """The loop variable ``name`` over ``[0, n)``, or the constant 0 when ``n == 1`` (no loop is
    emitted for it: see :func:`loops`)."""
    return Const(0) if n == 1 else Var(name)


def loops(spec: Sequence[tuple[Expr, Any, Any]], body: list[Stmt]) -> list[Stmt]:
    """``body`` inside serial loops ``(var, start, stop)``, outermost first; entries whose var is
    a constant (an axis of extent 1) add no loop."""
    for v, lo, hi in reversed(spec):
        if isinstance(v, Var):
            body = [Loop(v, lo, hi, body)]
    return body


def lin(*terms: tuple[Expr, int] | Expr | int) -> Expr:
    """``sum(coef * e) + k`` as an index expression (see ``loops.affine``), with constant terms
    (axes of extent 1) folded into ``k``."""
    k, rest = 0, []
    for t in terms:
        if isinstance(t, (int, np.integer)):
            k += int(t)
            continue
        e, c = (t, 1) if isinstance(t, Expr) else t
        if isinstance(e, Const):
            k += int(e.value) * int(c)
        else:
            rest.append((e, int(c)))
    return affine(*rest, k)


def in_range(pairs: Sequence[tuple[Expr, int]]) -> tuple[list[Expr], bool]:
    """Guards ``0 <= e && e < n`` for each ``(e, n)``: ``(conditions, possible)``. A constant
    ``e`` is decided here (no condition; ``possible`` False when it is outside)."""
    conds: list[Expr] = []
    for e, n in pairs:
        if isinstance(e, Const):
            if not 0 <= e.value < n:
                return [], False
            continue
        conds += [e >= 0, e < n]
    return conds, True


def _clamped(e: Expr, n: int) -> Expr:
    """``e`` clamped into ``[0, n)``: an index that is always inside an axis of ``n``, for a
    load whose value a select then replaces where ``e`` was outside (zero padding without a
    branch)."""
    return minimum(maximum(e, Const(0)), Const(n - 1))


def activation_expr(node: Node, v: Expr) -> Expr:
    """FusedConv/FusedGemm's epilogue applied to ``v``: the node's ``activation`` (an ONNX
    elementwise op name, ``""`` for none) with its defaults overridden by ``activation_attrs``
    (Clip's bounds as ``min``/``max``, PRelu's scalar slope as ``slope``), through
    ``elementwise.scalar_expr`` so each activation has one definition."""
    from .elementwise import scalar_expr

    act = node.attrs.get("activation") or ""
    if not act:
        return v
    given = dict(node.attrs.get("activation_attrs") or ())
    if act == "Clip":   # a stand-in node: Clip at opset 10 reads its bounds from attributes
        sub = Node("Clip", [None], list(node.outputs[:1]),
                   {"min": given.get("min"), "max": given.get("max")}, node.name, 10)
        return scalar_expr("Clip", sub.attrs, [v], v.dtype, sub)
    attrs = {k: d for k, d in get_op(act).attrs.items() if d is not REQUIRED}
    attrs.update({k: x for k, x in given.items() if k in attrs})
    args = [v] + [const(float(np.asarray(given[k]).reshape(-1)[0]), v.dtype)
                  for k in ACT_INPUTS.get(act, ())]
    sub = Node(act, [None] * len(args), list(node.outputs[:1]), attrs, node.name, node.version)
    return scalar_expr(act, attrs, args, v.dtype, sub)


def activation_reason(node: Node) -> str | None:
    """Why the node's fused activation has no loop-IR form, or None."""
    from .elementwise import SCALAR

    act = node.attrs.get("activation") or ""
    if not act:
        return None
    if act not in SCALAR and act != "Clip":
        return f"activation {act} has no scalar loop-IR form"
    given = dict(node.attrs.get("activation_attrs") or ())
    if act == "PRelu" and given.get("slope") is None:
        return "PRelu activation without a scalar constant slope"
    if act not in ACT_INPUTS and get_op(act).max_inputs > 1:
        return f"activation {act} takes more than one input"
    return None


def read_buffers(body: Sequence[Stmt], bufs: Sequence[Buffer]) -> list[Buffer]:
    """The buffers of ``bufs`` that ``body`` loads from (a kernel lists only those: a Conv whose
    taps all land in the padding reads neither x nor w)."""
    from onnxcc.codegen.loops import children, walk_stmts

    seen: set[int] = set()

    def visit(e: Expr) -> None:
        if isinstance(e, Load):
            seen.add(id(e.buf))
        for ch in children(e):
            visit(ch)

    for st in walk_stmts(body):
        for e in ([st.value, *st.index] if isinstance(st, Store) else
                  [st.init] if isinstance(st, Decl) else [st.value] if isinstance(st, Assign) else
                  [st.start, st.stop] if isinstance(st, Loop) else
                  [st.cond] if isinstance(st, If) else []):
            visit(e)
    return [b for b in bufs if id(b) in seen]


def shape_text(shape: Sequence[int]) -> str:
    return "(" + ",".join(str(int(v)) for v in shape) + ")"


def _lst(v: Sequence[int]) -> str:
    return "[" + ",".join(str(int(x)) for x in v) + "]"


# ---- interior / border split of position loops -----------------------------------------------
def segments(n_pos: int, taps: int, dil: int, stride: int, pad: int, n_dst: int
             ) -> list[tuple[int, int, bool]]:
    """Positions ``p`` in ``[0, n_pos)`` as ``(start, stop, border)`` ranges: in the interior
    (border False) every ``p*stride + t*dil - pad`` (``t < taps``) lies in ``[0, n_dst)``; the
    borders before and after need guards."""
    lo = min(max(0, -(-pad // stride)), n_pos)
    hi = max(min(n_pos, (n_dst - 1 + pad - (taps - 1) * dil) // stride + 1), 0)
    if hi <= lo:
        return [(0, n_pos, True)] if n_pos else []
    segs = [(0, lo, True), (lo, hi, False), (hi, n_pos, True)]
    return [s for s in segs if s[1] > s[0]]


def split_positions(pos: Sequence[Expr], segs: Sequence[list[tuple[int, int, bool]]],
                    make: Callable[[frozenset[int]], list[Stmt]]) -> list[Stmt]:
    """Loops over the position axes ``pos`` (outermost first) in two nests: the interior (every
    axis in its interior segment, no guards) and one nest over every position that skips the
    interior and guards each axis that has a border. ``make(border_axes)`` builds the innermost
    body knowing which axes need guards there. Two copies of the body whatever the rank (a split
    per axis and segment made 3**rank copies: 84 KB of Cortex-M4 code for MobileNetV1-0.25
    against 19 KB). The border nest's position variables are renamed ``<name>_b``, so loop
    passes that block the interior by name (``register_block``) leave it alone."""
    axes = range(len(pos))
    inner = [[(lo, hi) for lo, hi, b in segs[a] if not b] for a in axes]
    bordered = frozenset(a for a in axes if any(b for _, _, b in segs[a]))
    full = [(segs[a][0][0], segs[a][-1][1]) if segs[a] else (0, 0) for a in axes]
    if any(hi <= lo for lo, hi in full):
        return []
    if not bordered:
        return _nest(pos, full, make(frozenset()))
    rename = {v: Var(f"{v.name}_b", v.dtype) for v in pos if isinstance(v, Var)}
    renamed = [rename.get(v, v) if isinstance(v, Var) else v for v in pos]
    if any(not inner[a] for a in axes):     # some axis is all border: one guarded nest
        return _nest(renamed, full, substitute_stmts(make(bordered), rename))
    outside: Expr | None = None
    for a in sorted(bordered):
        lo, hi = inner[a][0]
        for cond in ([pos[a] < lo] if lo > full[a][0] else []) + \
                    ([pos[a] >= hi] if hi < full[a][1] else []):
            outside = cond if outside is None else Binary("or", outside, cond)
    assert outside is not None
    border = substitute_stmts([If(outside, make(bordered))], rename)
    return _nest(pos, [inner[a][0] for a in axes], make(frozenset())) + _nest(renamed, full, border)


def _nest(pos: Sequence[Expr], ranges: Sequence[tuple[int, int]], body: list[Stmt]) -> list[Stmt]:
    """``body`` inside loops over the variables of ``pos`` (constants add no loop)."""
    for v, (lo, hi) in reversed(list(zip(pos, ranges))):
        if isinstance(v, Var):
            body = [Loop(v, lo, hi, body)]
    return body


# ---- supports ---------------------------------------------------------------------------------
def _float_only(node: Node) -> str | None:
    x = node.inputs[0]
    if x.dtype.name not in FLOATS:
        return f"{node.op} on {x.dtype.name} is not supported (float32/float64 only)"
    return None


def _spatial_rank(node: Node) -> str | None:
    r = len(node.inputs[0].shape)
    if not 3 <= r <= 5:
        return f"{node.op} with {r - 2} spatial axes is not supported (1 to 3)"
    return None


def _supports_conv(node: Node) -> str | None:
    why = _float_only(node) or _spatial_rank(node)
    if why:
        return why
    for v in node.inputs[1:]:
        if v is not None and v.dtype != node.inputs[0].dtype:
            return f"{node.op} with weights or bias of another dtype than x is not supported"
    return activation_reason(node)


def _supports_pool(node: Node) -> str | None:
    if len(node.inputs[0].shape) < 3:
        return f"{node.op} needs an (N, C, spatial...) input"
    if node.op in ("MaxPool", "AveragePool", "LpPool"):
        why = _spatial_rank(node)
        if why:
            return why
    if node.op in ("MaxPool", "GlobalMaxPool"):
        dt = node.inputs[0].dtype
        if dt.kind not in "iu" and dt.name not in FLOATS:
            return f"{node.op} on {dt.name} is not supported"
        return None
    return _float_only(node)


def _lowest(dt: DType) -> Const:
    """The identity of max for ``dt``: -inf, or the type's minimum."""
    if dt.is_float:
        return const(-np.inf, dt)
    return const(int(np.iinfo(dt.np).min), dt)


# ---- Conv -------------------------------------------------------------------------------------
TILE_X_BYTES = 512 * 1024     # input rows one output tile reads, kept in L2 over all out channels
TILE_Y_BYTES = 16 * 1024      # one output tile, kept in L1 over the reduction
MIN_TILE_PIXELS = 64          # a merged (1-D) tile never goes below this many pixels
OUT_BLOCK = 4                 # output channels per pass (register blocking) ...
OUT_BLOCK_MIN = 8             # ... when a group has at least this many (and a multiple of 4)
UNROLL = (8, 4)               # innermost loop unroll: rows of >= 112 positions, shorter rows


def _tap_bounds(k: Expr, taps: int, dil: int, stride: int, pad: int, n_pos: int, n_dst: int
                ) -> tuple[Expr, Expr]:
    """``[lo, hi)``: the positions ``p`` in ``[0, n_pos)`` whose ``p*stride + k*dil - pad`` lies
    in ``[0, n_dst)``, for the tap variable ``k`` in ``[0, taps)``: constants when equal for
    every tap, else min/max expressions of ``k`` (integer division truncates, and a negative
    numerator is clamped by the max/min, so the bounds are exact)."""
    rng = []
    for t in range(taps):
        lo = max(0, -((t * dil - pad) // stride))
        hi = min(n_pos, (n_dst - 1 + pad - t * dil) // stride + 1)
        rng.append((lo, max(lo, hi)))
    los, his = {r[0] for r in rng}, {r[1] for r in rng}
    if len(los) == 1:
        lo_e: Expr = Const(rng[0][0])
    elif stride == 1:
        lo_e = maximum(lin((k, -dil), pad), Const(0))
    else:
        lo_e = maximum(Binary("div", lin((k, -dil), pad + stride - 1), Const(stride)), Const(0))
    if len(his) == 1:
        hi_e: Expr = Const(rng[0][1])
    elif stride == 1:
        hi_e = minimum(lin((k, -dil), n_dst + pad), Const(n_pos))
    else:
        hi_e = minimum(Binary("div", lin((k, -dil), n_dst - 1 + pad + stride), Const(stride)),
                       Const(n_pos))
    return lo_e, hi_e


class _ConvParts(NamedTuple):
    """A Conv node's buffers and geometry: x (N,C,*I), w (M,C/G,*K), y (N,M,*O), optional
    bias B (M,); pads_begin, strides, dilations and O as lists per spatial axis."""

    X: Buffer
    Wt: Buffer
    Y: Buffer
    B: Buffer | None
    G: int
    N: int
    C: int
    M: int
    K: list[int]
    I: list[int]
    pb: list[int]
    s: list[int]
    d: list[int]
    O: list[int]


def _conv_parts(node: Node, ctx: LowerCtx) -> _ConvParts:
    x, w = node.inputs[0], node.inputs[1]
    Y = ctx.output(0, "y")
    has_b = len(node.inputs) > 2 and node.inputs[2] is not None
    pb, _, s, d, O = conv_geometry(node, x.shape, w.shape)
    return _ConvParts(ctx.input(0, "x"), ctx.input(1, "w"), Y, ctx.input(2, "b") if has_b else None,
                      int(node.attrs.get("group") or 1), x.shape[0], x.shape[1], Y.shape[1],
                      list(w.shape[2:]), list(x.shape[2:]), list(pb), list(s), list(d), list(O))


def _conv_taps(node: Node, ctx: LowerCtx) -> Any:
    """Conv as a tap-stationary nest: y = bias over a tile of output rows, then for each block of
    CB input channels and each kernel tap, ``y[o] += sum over the block of w * x[o*s + k*d - pb]``
    over the output positions ``o`` whose input lies inside x (per-tap loop bounds, so no guard
    runs inside; verify proves them tap by tap), then the fused activation over the tile.
    Output channels go in blocks of OUT_BLOCK per pass when a group has at least OUT_BLOCK_MIN
    (each x load feeds OUT_BLOCK x CB multiply-adds); output rows are tiled so a tile of y stays
    in L1 (TILE_Y_BYTES) and the input rows it reads in L2 (TILE_X_BYTES); the innermost loop
    (contiguous output positions) is unrolled by UNROLL so that a C compiler's SLP vectorizer
    packs it. A 1x1, stride-1, unpadded conv walks its pixels as one axis (a small matrix
    product per output channel). x (N,C,*S), w (M,C/group,*K), b (M,), y (N,M,*O)."""
    w = node.inputs[1]
    X, Wt, Y, B, group, N, C, M, K, I, pb, s, d, O = _conv_parts(node, ctx)
    pb_, s_, d_ = list(pb), list(s), list(d)
    CG, MG = C // group, M // group
    nd = len(K)
    merged = (nd > 1 and all(kk == 1 for kk in K) and all(v == 1 for v in s) and not any(pb)
              and O == I and X.strides == contiguous_strides(X.shape)
              and Y.strides == contiguous_strides(Y.shape))
    if merged:
        P = math.prod(I)
        X = dataclasses.replace(X, shape=(N, C, P), strides=(C * P, P, 1))
        Y = dataclasses.replace(Y, shape=(N, M, P), strides=(M * P, P, 1))
        Wt = dataclasses.replace(Wt, shape=(M, CG, 1), strides=(Wt.strides[0], Wt.strides[1], 0))
        I, O, K, s, d, pb, nd = [P], [P], [1], [1], [1], [0], 1
    lb = LABELS[nd]
    CB = next(b for b in (4, 3, 2, 1) if CG % b == 0)
    MB = OUT_BLOCK if MG >= OUT_BLOCK_MIN and MG % OUT_BLOCK == 0 else 1
    item = Y.dtype.np.itemsize
    rows = O[0]
    R = min(TILE_X_BYTES // max(1, CG * s[0] * math.prod(I[1:]) * item),
            TILE_Y_BYTES // max(1, math.prod(O[1:]) * MB * item))
    R = min(rows, max(MIN_TILE_PIXELS if nd == 1 else 1, R))
    tiled = R < rows
    n, g = axis_var("n", N), axis_var("g", group)
    mm = axis_var("mm", MG // MB)
    cb = axis_var("cb", CG // CB)
    t = axis_var("t", -(-rows // R)) if tiled else Const(0)
    o = [Var("o" + lb[a]) for a in range(nd)]
    k = [axis_var("k" + lb[a], K[a]) for a in range(nd)]
    co = [lin((g, MG), (mm, MB), i) for i in range(MB)]
    ci = [lin((g, CG), (cb, CB), q) for q in range(CB)]
    dt = Y.dtype
    # the tile of output positions: rows [t*R, min(t*R + R, rows)) by the other axes
    t0: Expr = lin((t, R))
    t1: Expr = minimum(lin((t, R), R), Const(rows)) if rows % R else lin((t, R), R)
    tile = [(o[0], t0, t1)] + [(o[a], 0, O[a]) for a in range(1, nd)]

    def over_tile(body: list[Stmt]) -> list[Stmt]:
        """``body`` over the tile's positions, the innermost loop unrolled (row-pointer form)."""
        for a, (v, lo, hi) in reversed(list(enumerate(tile))):
            body = [Loop(v, lo, hi, body, kind="unrolled" if a == nd - 1 else "serial",
                         factor=UNROLL[1] if a == nd - 1 else 0)]
        return body

    init = over_tile([Store(Y, (n, co[i], *o), B[(co[i],)] if B is not None else const(0, dt))
                      for i in range(MB)])
    # per tap: the weights of the block as locals, then the positions in the tap's range
    wv = [[Var(f"w{i}_{q}", dt) for q in range(CB)] for i in range(MB)]
    decls: list[Stmt] = [Decl(wv[i][q], Wt[(co[i], lin((cb, CB), q), *k)])
                         for i in range(MB) for q in range(CB)]
    iv = [lin((o[a], s[a]), (k[a], d[a]), -pb[a]) for a in range(nd)]
    # Zero padding contributes w * 0, which is 0 unless w is infinite or NaN (onnxruntime's
    # im2col then gives NaN). With finite constant weights the per-tap ranges skip the padding;
    # else every position runs and a padded read is a masked load of 0.
    exact = w.const is None or not bool(np.isfinite(w.const).all())
    mask = all_of(*in_range([(iv[a], I[a]) for a in range(nd)])[0]) if exact else None

    def xat(q: int) -> Expr:
        return Load(X, (n, ci[q], *iv), mask, const(0, dt) if mask is not None else None)

    upd: list[Stmt] = []
    for i in range(MB):
        # y + (w0*x0 + w1*x1 + ...): the block's sum as multiply-adds, then one add into y
        acc: Expr = wv[i][0] * xat(0)
        for q in range(1, CB):
            acc = MulAdd(wv[i][q], xat(q), acc)
        upd.append(Store(Y, (n, co[i], *o), Y[(n, co[i], *o)] + acc))
    inner_len = min(R, rows) if nd == 1 else O[-1]
    unroll = UNROLL[0] if inner_len >= 112 and MB == 1 else UNROLL[1]
    body: list[Stmt] = upd
    for a in reversed(range(nd)):
        lo, hi = (Const(0), Const(O[a])) if exact else \
            _tap_bounds(k[a], K[a], d[a], s[a], pb[a], O[a], I[a])
        if a == 0 and tiled:
            lo = t0 if lo == Const(0) else maximum(lo, t0)
            hi = t1 if hi == Const(rows) else minimum(hi, t1)
        kind = "unrolled" if a == nd - 1 else "serial"
        body = [Loop(o[a], lo, hi, body, kind=kind, factor=unroll if a == nd - 1 else 0)]
    red = loops([(cb, 0, CG // CB)] + [(k[a], 0, K[a]) for a in range(nd)], decls + body)
    act = node.attrs.get("activation") or ""
    epi: list[Stmt] = []
    if act:
        epi = over_tile([Store(Y, (n, co[i], *o), activation_expr(node, Y[(n, co[i], *o)]))
                         for i in range(MB)])
    nest = loops([(n, 0, N), (g, 0, group), (mm, 0, MG // MB)]
                 + ([(t, 0, -(-rows // R))] if tiled else []), init + red + epi)
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), w {shape_text(Wt.shape)} is "
            f"(M,C/group,k...), y {shape_text(Y.shape)}; group {group}, strides {_lst(s_)}, "
            f"dilations {_lst(d_)}, pads_begin {_lst(pb_)}" + (f"; activation {act}" if act else "")
            + (f"; tiles of {R} output rows" if tiled else "")
            + (f"; blocks of {MB} output channels" if MB > 1 else "")
            + ("; 1x1: pixels as one axis" if merged else ""))
    ins = read_buffers(nest, [X, Wt] + ([B] if B is not None else []))
    return ctx.kernel("conv", [Y], ins, [Comment(text)] + nest, comment=text)


def _register_tile(node: Node, ctx: LowerCtx) -> tuple[int, int, int] | None:
    """(positions, output channels, lanes) of :func:`_conv_tiled`'s register tile for this
    node on the context's target, or None for the tap-stationary nest: the target has no
    register tile (the C back end), or the conv is float64, has runtime weights, or fewer
    output channels per group than one vector (a depthwise conv has its own nest)."""
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    if w.const is None or x.dtype.name != "float32":
        return None
    return ctx.register_tile(math.prod(y.shape[2:]),
                             y.shape[1] // int(node.attrs.get("group") or 1),
                             math.prod(w.shape[1:]))


def _conv_tiled(node: Node, ctx: LowerCtx, tile: tuple[int, int, int]) -> Any:
    """Conv as an output-stationary register tile (for targets with a vector register file,
    see ``Target.register_tile``): TP output positions by TM output channels accumulate in a
    local tile over every tap and input channel, then bias, activation and one store each.

    The weights are packed at compile time as (M/TM, K..., C, TM), so the TM weights of one
    (tap, channel) are contiguous (one vector load per ``lanes``) and each x value is broadcast
    to TM multiply-adds: the direct convolution of Georganas et al., "Anatomy of
    high-performance deep learning convolutions on SIMD architectures" (SC'18), with x left in
    NCHW and the output positions flattened (so 7x7 maps fill the tile as well as 56x56 ones).
    Taps run outside the channel loop, so position arithmetic stays out of the hot loop.
    A tile whose positions all read inside x for every tap runs unguarded; the other tiles
    load x at the index clamped into x and select 0 outside (zero padding without a branch;
    an infinite weight times padding gives NaN, IEEE's inf * 0, as onnx's reference and the
    C back end give; onnxruntime 1.31 does or not depending on its kernel). The last tile
    repeats the last position (recomputed and rewritten) instead of a tail; output channels
    past M are packed as zero weights and not stored. LLVM keeps the tile in registers
    (measured on Zen 4: the loop body is 2-4 vector loads, TP broadcasts and TP*TM/lanes FMAs).
    x (N,C,*S), w (M,C/G,*K), b (M,), y (N,M,*O); constant float32 weights. Groups are
    independent convolutions over their CG input and MG output channels (weights packed per
    group as (G, MG/TM, K..., CG, TM))."""
    TP, TM, lanes = tile
    x, w = node.inputs[0], node.inputs[1]
    X, Y = ctx.input(0, "x"), ctx.output(0, "y")
    has_b = len(node.inputs) > 2 and node.inputs[2] is not None
    (N, C), M = x.shape[:2], Y.shape[1]
    G = int(node.attrs.get("group") or 1)
    CG, MG = C // G, M // G
    K, I = list(w.shape[2:]), list(x.shape[2:])
    pb_, pe_, s_, d_, O_ = conv_geometry(node, x.shape, w.shape)
    pb, s, d, O = list(pb_), list(s_), list(d_), list(O_)
    nd, dt = len(K), Y.dtype
    MT = -(-MG // TM)
    # zero padding copied once into a local (C, I + pads): every tile then reads unguarded
    Ip = [I[a] + pb[a] + pe_[a] for a in range(nd)]
    copied = N * C * math.prod(Ip)
    padded = (any(pb) or any(pe_)) and min(pb) >= 0 and min(pe_) >= 0 and \
        C * math.prod(Ip) * dt.np.itemsize <= PAD_BYTES and \
        N * M * CG * math.prod(K) * math.prod(O) >= PAD_MACS * copied
    XP = Buffer("xpad", dt, (C, *Ip), space="local") if padded else None
    wc = np.asarray(w.const, dtype=dt.np).reshape((G, MG) + tuple(w.shape[1:]))
    packed = np.zeros((G, MT * TM) + wc.shape[2:], dt.np)
    packed[:, :MG] = wc
    packed = np.moveaxis(packed.reshape((G, MT, TM) + wc.shape[2:]), 2, -1)   # (G,MT,CG,K..,TM)
    packed = np.ascontiguousarray(np.moveaxis(packed, 2, 2 + nd))            # (G,MT,K..,CG,TM)
    if G == 1:
        packed = packed[0]
    Wp = Buffer("wp", dt, packed.shape, None, "weight", data=packed.reshape(-1),
                value=f"{w.name} packed")
    B = ctx.input(2, "b") if has_b else None
    P = math.prod(O)
    n, g, mt = axis_var("n", N), axis_var("g", G), axis_var("mt", MT)
    pt, c, i, j = Var("pt"), Var("c"), Var("i"), Var("j")
    wg = (g,) if G > 1 else ()
    k = [axis_var("k" + LABELS[nd][a], K[a]) for a in range(nd)]
    ostr = contiguous_strides(O)
    # position q of the tile (clamped to the last) per output axis, as expressions (not locals)
    # so that verify sees their ranges; LLVM hoists them out of the reduction
    pos = [minimum(Binary("add", Binary("mul", pt, Const(TP)), Const(q)), Const(P - 1))
           for q in range(TP)]

    def coord(q: int, a: int) -> Expr:
        e: Expr = pos[q]
        if ostr[a] > 1:
            e = Binary("div", e, Const(ostr[a]))
        return Binary("mod", e, Const(O[a])) if a > 0 else e

    base = [[Binary("mul", coord(q, a), Const(s[a])) if s[a] > 1 else coord(q, a)
             for a in range(nd)] for q in range(TP)]
    if not padded:
        base = [[Binary("sub", e, Const(pb[a])) if pb[a] else e for a, e in enumerate(row)]
                for row in base]
    iv = [[Binary("add", base[q][a], Binary("mul", k[a], Const(d[a])) if d[a] > 1 else k[a])
           if K[a] > 1 else base[q][a] for a in range(nd)] for q in range(TP)]
    A = Buffer("acc", dt, (TP, TM), space="local")
    jg = lin((mt, TM), j)                  # output channel within the group
    # g*MG + jg with jg kept whole, so that verify bounds it by the guard jg < MG
    mj = jg if G == 1 else Binary("add", Binary("mul", g, Const(MG)), jg)
    b0: Expr = const(0, dt)
    if B is not None:
        b0 = B[(mj,)] if MT * TM == MG else Load(B, (mj,), Binary("lt", jg, Const(MG)), b0)
    init: list[Stmt] = [Loop(j, 0, TM, [Loop(i, 0, TP, [Store(A, (i, j), b0)], kind="unrolled")],
                             kind="vectorized", factor=lanes)]

    cx = lin((g, CG), c)                   # the input channel of reduction step c

    def reduction(masked: bool) -> list[Stmt]:
        xs: list[Stmt] = []
        xv = [Var(f"x{q}", dt) for q in range(TP)]
        for q in range(TP):
            if XP is not None:
                xs.append(Decl(xv[q], Load(XP, (cx, *iv[q]))))
                continue
            if not masked:
                xs.append(Decl(xv[q], Load(X, (n, cx, *iv[q]))))
                continue
            # load at the index clamped into x, select 0 outside: the select's arms are
            # locals, so no renderer branches around the load
            ok = all_of(*[cnd for a in range(nd) for cnd in (iv[q][a] >= 0, iv[q][a] < I[a])])
            cl = [_clamped(iv[q][a], I[a]) for a in range(nd)]
            xl = Var(f"xl{q}", dt)
            xs += [Decl(xl, Load(X, (n, cx, *cl))), Decl(xv[q], Select(ok, xl, const(0, dt)))]
        wj = Var("wj", dt)
        upd: list[Stmt] = [Decl(wj, Wp[(*wg, mt, *k, c, j)])]
        upd += [Store(A, (Const(q), j), MulAdd(xv[q], wj, A[(Const(q), j)])) for q in range(TP)]
        return loops([(k[a], 0, K[a]) for a in range(nd)],
                     [Loop(c, 0, CG, xs + [Loop(j, 0, TM, upd, kind="vectorized", factor=lanes)])])

    # every tap of every position of the tile lands inside x (conditions only on padded sides)
    guards = [cnd for q in range(TP) for a in range(nd)
              for cnd in (([base[q][a] >= 0] if pb[a] else [])
                          + ([Binary("lt", base[q][a], Const(I[a] - (K[a] - 1) * d[a]))]
                             if (O[a] - 1) * s[a] - pb[a] + (K[a] - 1) * d[a] >= I[a] else []))]
    inside = all_of(*guards)
    red = reduction(False) if inside is None or padded else \
        [If(inside, reduction(False), reduction(True))]
    sts: list[Stmt] = [Store(Y, (n, mj, *[coord(q, a) for a in range(nd)]),
                             activation_expr(node, A[(Const(q), j)])) for q in range(TP)]
    store = [Loop(j, 0, TM, sts if MT * TM == MG else [If(Binary("lt", jg, Const(MG)), sts)])]
    act = node.attrs.get("activation") or ""
    tiles = loops([(g, 0, G), (mt, 0, MT)], [Loop(pt, 0, -(-P // TP), init + red + store)])
    copy: list[Stmt] = []
    if XP is not None:
        # xpad[c, r...] = x[n, c, r - pb] inside x, else 0 (loads clamped into x, then a select)
        cc, r = Var("cc"), [Var("r" + LABELS[nd][a]) for a in range(nd)]
        ri = [Binary("sub", r[a], Const(pb[a])) if pb[a] else r[a] for a in range(nd)]
        ok = all_of(*[cnd for a in range(nd) for cnd in (ri[a] >= 0, ri[a] < I[a])])
        xl = Var("xl", dt)
        body: list[Stmt] = [Decl(xl, X[(n, cc, *[_clamped(ri[a], I[a]) for a in range(nd)])]),
                            Store(XP, (cc, *r), Select(ok, xl, const(0, dt)) if ok is not None
                                  else xl)]
        for a in reversed(range(nd)):
            body = [Loop(r[a], 0, Ip[a], body, kind="vectorized" if a == nd - 1 else "serial",
                         factor=lanes if a == nd - 1 else 0)]
        copy = [Loop(cc, 0, C, body)]
    nest = loops([(n, 0, N)], copy + tiles)
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), w {shape_text(w.shape)} "
            f"packed as {shape_text(Wp.shape)} ({'G,' if G > 1 else ''}M/{TM},k...,C,{TM}), y "
            f"{shape_text(Y.shape)}; " + (f"group {G}, " if G > 1 else "")
            + f"strides {_lst(s_)}, dilations {_lst(d_)}, pads_begin {_lst(pb_)}"
            + (f"; activation {act}" if act else "")
            + f"; register tiles of {TP} positions x {TM} output channels"
            + (f"; x zero-padded into a local {shape_text(XP.shape)}" if XP is not None else ""))
    ins = read_buffers(nest, [X, Wp] + ([B] if B is not None else []))
    return ctx.kernel("conv", [Y], ins, [Comment(text)] + nest, comment=text,
                      locals=[A] + ([XP] if XP is not None else []))


PLANE_BYTES = 256 * 1024     # _conv_depthwise: the largest padded plane (kernel scratch)
FLAT_ROWS = 2                # ... and output rows shorter than this many vectors: one loop
ALL_PLANES_BYTES = 64 * 1024  # ... and the most bytes of the planes of all channels at once
PAD_BYTES = 512 * 1024       # _conv_tiled: the largest zero-padded copy of x (kernel scratch)
PAD_MACS = 64                # ... and the fewest multiply-adds per element copied


def _depthwise_applies(node: Node, ctx: LowerCtx) -> bool:
    """True when :func:`_conv_depthwise` lowers ``node``: a target with a vector register file,
    one input channel per group (depthwise, any depth multiplier), float32, a padded plane of at
    most PLANE_BYTES and a 2-D kernel."""
    if not ctx.vector_lanes():
        return False
    x, w = node.inputs[0], node.inputs[1]
    group = int(node.attrs.get("group") or 1)
    if group == 1 or x.shape[1] != group or x.dtype.name != "float32" or len(x.shape) != 4:
        return False
    pb, pe, s, _, _ = conv_geometry(node, x.shape, w.shape)
    hp, wp = x.shape[2] + pb[0] + max(pe[0], 0), x.shape[3] + pb[1] + max(pe[1], 0)
    return min(pb) >= 0 and hp * _plane_row(wp, s[1]) * 4 <= PLANE_BYTES


def _plane_row(wp: int, stride: int) -> int:
    """Elements per row of :func:`_conv_depthwise`'s padded plane: ``wp`` columns, or with a
    column stride above 1 the ``stride`` phases (columns ``p, p+stride, ...``) one after the
    other, each ``ceil(wp/stride)`` long."""
    return wp if stride == 1 else stride * -(-wp // stride)


def _conv_depthwise(node: Node, ctx: LowerCtx) -> Any:
    """A depthwise Conv (one input channel per group) for targets with a vector register file:
    per input channel, its plane is copied once into a zero-padded local (Hp, Wp) (zeroed once
    per kernel, each channel then writing only x's rows into its interior), then each
    output row is one loop over its positions, vectorized (rows shorter than FLAT_ROWS
    vectors: one loop over the plane's positions into a local, whose rows are copied to y), every tap an unguarded load of the
    padded plane and a multiply-add with the tap's weight (a register), bias and activation
    fused into the single store. No per-tap bounds and no scatter of partial sums: the tap-
    stationary nest re-read and re-wrote y nine times over rows of 6 to 24 (MobileNetV1-0.25's
    depthwise layers ran at about 1 GMAC/s on cpu). With a column stride sw above 1 the plane is
    stored de-interleaved: each padded row as its sw phases (columns p, p+sw, ...) one after the
    other, so tap (a, b) of output column ow reads phase (b*dw) mod sw at ow + (b*dw) div sw,
    unit-stride along the row (read with stride 2, LLVM refused the forced vectorization with a
    "loop not vectorized" warning and the row ran scalar). x (N,C,H,W), w (C*mult,1,kh,kw),
    y (N,C*mult,OH,OW)."""
    x, w = node.inputs[0], node.inputs[1]
    X, Wt, Y = ctx.input(0, "x"), ctx.input(1, "w"), ctx.output(0, "y")
    has_b = len(node.inputs) > 2 and node.inputs[2] is not None
    B = ctx.input(2, "b") if has_b else None
    (N, C), M = x.shape[:2], Y.shape[1]
    MG = M // C
    K, I = list(w.shape[2:]), list(x.shape[2:])
    pb_, pe_, s_, d_, O_ = conv_geometry(node, x.shape, w.shape)
    pb, s, d, O = list(pb_), list(s_), list(d_), list(O_)
    Hp, Wp = I[0] + pb[0] + max(pe_[0], 0), I[1] + pb[1] + max(pe_[1], 0)
    dt = Y.dtype
    lanes = ctx.vector_lanes()
    sw = s[1]
    Wr = _plane_row(Wp, sw)         # row length; with sw > 1, sw phases of Wq columns each
    Wq = Wr // sw
    flat = s == [1, 1] and O[1] < FLAT_ROWS * lanes
    # short rows: one loop over the plane's positions fq = oh*Wp + ow (below), rounded up to
    # whole vectors; the plane then holds the furthest tap of the last position, past its
    # Hp*Wp (zeros)
    F = (O[0] - 1) * Wp + O[1]
    Fv = -(-F // lanes) * lanes
    size = max(Hp * Wr, Fv + (K[0] - 1) * d[0] * Wp + (K[1] - 1) * d[1]) if flat else Hp * Wr
    n, g, m = axis_var("n", N), Var("g"), axis_var("m", MG)
    interior = min(pe_) >= 0
    # small planes: every channel's plane copied before any is read (C planes one after the
    # other), so no load of a plane waits on the stores just made into it (a vector load over
    # several narrower stores is not forwarded from them: 6x6 and 3x3 planes stalled on it)
    every = interior and C * size * dt.np.itemsize <= ALL_PLANES_BYTES
    gp = [(g, size)] if every else []      # the channel's plane within the local
    xp = Buffer("plane", dt, ((C if every else 1) * size,), space="local")  # (Hp, Wr) each
    r, q, oh, ow = Var("r"), Var("q"), Var("oh"), Var("ow")
    co = lin((g, MG), m)
    # the padded plane: rows/columns outside x are 0. At column stride 1 without cropping
    # (pads_end >= 0) the plane is zeroed once per kernel and each channel copies only its
    # rows into the interior (contiguous on both sides); else each channel writes the whole
    # plane, loads clamped into x then a select, column q = j*sw + p of a row at p*Wq + j
    # (sw phases, each stored unit-stride in j; the columns past Wp in the last phases are 0
    # and never read)
    zero: list[Stmt] = []
    if interior:
        zq = Var("zq")
        zero = [Loop(zq, 0, xp.shape[0], [Store(xp, (zq,), const(0, dt))], kind="vectorized",
                     factor=lanes)]
        phases: list[Stmt] = []
        for p in range(sw):
            # padded column j*sw + p is x's column j*sw + p - pb[1], inside x for j in [j0, j1)
            j0 = max(0, -(-(pb[1] - p) // sw))
            j1 = min(Wq, (I[1] - 1 + pb[1] - p) // sw + 1)
            if j1 <= j0:
                continue
            row = [Store(xp, (lin((r, Wr), *gp, q, pb[0] * Wr + p * Wq),),
                         X[(n, g, r, lin((q, sw), p - pb[1]))])]
            # x read at stride sw: left to LLVM's cost model (forced, it printed "loop not
            # vectorized" and ran the copy scalar)
            vec = sw == 1 and j1 - j0 >= lanes
            phases.append(Loop(q, j0, j1, row, kind="vectorized" if vec else "serial",
                               factor=lanes if vec else 0))
        copy = [Loop(r, 0, I[0], phases)]
    else:
        ri = Binary("sub", r, Const(pb[0]))
        xl = [Var(f"xl{p}" if sw > 1 else "xl", dt) for p in range(sw)]
        body: list[Stmt] = []
        for p in range(sw):
            qi = lin((q, sw), p - pb[1])
            ok = all_of(ri >= 0, ri < I[0], qi >= 0, qi < I[1])
            body += [Decl(xl[p], X[(n, g, _clamped(ri, I[0]), _clamped(qi, I[1]))]),
                     Store(xp, (lin((r, Wr), q, p * Wq),), Select(ok, xl[p], const(0, dt)))]
        copy = [Loop(r, 0, Hp, [Loop(q, 0, Wq, body, kind="vectorized", factor=lanes)])]
        if size > Hp * Wr:
            zq = Var("zq")
            zero = [Loop(zq, Hp * Wr, size, [Store(xp, (zq,), const(0, dt))])]
    wv = [[Var(f"w{a}_{b}", dt) for b in range(K[1])] for a in range(K[0])]
    acc = Var("acc", dt)
    taps: list[Stmt] = [Decl(acc, B[(co,)] if B is not None else const(0, dt))]
    out: Buffer | None = None
    if flat:
        # rows shorter than a vector: one loop over the plane's positions, the Wp - OW
        # columns past each row computed into a local row-major (OH, Wp) and not copied out,
        # so vectors fill (a 6x6 plane: 6 vectors of 8 instead of 6 rows of 6 that LLVM's
        # vectorizer left scalar: 21 -> 13 us for 128 channels); then the OH rows of OW are
        # copied into y (stored straight into y under a column test, LLVM made one branch
        # per lane of each vector: 11.6 -> 7 us)
        fq = Var("fq")
        out = Buffer("rows", dt, (Fv,), space="local")
        for a in range(K[0]):
            for b in range(K[1]):
                taps.append(Assign(acc, MulAdd(wv[a][b], xp[(lin(fq, *gp, a * d[0] * Wp + b * d[1]),)],
                                               acc)))
        taps.append(Store(out, (fq,), activation_expr(node, acc)))
        rows = [Loop(fq, 0, Fv, taps, kind="vectorized", factor=lanes),
                Loop(oh, 0, O[0], [Loop(ow, 0, O[1], [Store(Y, (n, co, oh, ow),
                                                            out[(lin((oh, Wp), ow),)])])])]
    else:
        for a in range(K[0]):
            for b in range(K[1]):
                cb = (b * d[1]) % sw * Wq + (b * d[1]) // sw     # phase, then column in it
                taps.append(Assign(acc, MulAdd(wv[a][b], xp[(lin((oh, s[0] * Wr), *gp, ow,
                                                                 a * d[0] * Wr + cb),)],
                                               acc)))
        taps.append(Store(Y, (n, co, oh, ow), activation_expr(node, acc)))
        rows = [Loop(oh, 0, O[0], [Loop(ow, 0, O[1], taps, kind="vectorized", factor=lanes)])]
    wdecl: list[Stmt] = [Decl(wv[a][b], Wt[(co, Const(0), Const(a), Const(b))])
                         for a in range(K[0]) for b in range(K[1])]
    compute = loops([(m, 0, MG)], wdecl + rows)
    per_n = [Loop(g, 0, C, copy), Loop(g, 0, C, compute)] if every else \
        [Loop(g, 0, C, copy + compute)]
    nest = zero + loops([(n, 0, N)], per_n)
    act = node.attrs.get("activation") or ""
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,H,W), w {shape_text(Wt.shape)}, y "
            f"{shape_text(Y.shape)}; depthwise (group {C}), strides {_lst(s_)}, dilations "
            f"{_lst(d_)}, pads_begin {_lst(pb_)}" + (f"; activation {act}" if act else "")
            + f"; each channel's plane padded into a local ({Hp},{Wp}), "
            + (f"its columns de-interleaved into {sw} phases of {Wq} per row (rows of {Wr}), "
               if sw > 1 else "")
            + ("its positions one vectorized loop" if flat else "rows vectorized"))
    ins = read_buffers(nest, [X, Wt] + ([B] if B is not None else []))
    return ctx.kernel("conv", [Y], ins, [Comment(text)] + nest, comment=text,
                      locals=[xp] + ([out] if out is not None else []))


SCALAR_TAPS = 32     # _conv_depthwise_scalar: the most kernel taps unrolled into one body
SCALAR_COPIES = 9    # ... and the most bodies specialized by which taps land inside x
SCALAR_BLOCK = 4     # ... and the outputs along the last axis that share their loads


def _tap_runs(n_pos: int, taps: int, dil: int, stride: int, pad: int, n_dst: int
              ) -> list[tuple[int, int, tuple[int, ...]]]:
    """Positions ``p`` in ``[0, n_pos)`` as maximal runs ``(start, stop, taps)`` of consecutive
    positions whose taps ``t`` with ``p*stride + t*dil - pad`` in ``[0, n_dst)`` are the same
    (the interior one run, each padded position at a border its own run)."""
    runs: list[tuple[int, int, tuple[int, ...]]] = []
    for p in range(n_pos):
        ts = tuple(t for t in range(taps) if 0 <= p * stride + t * dil - pad < n_dst)
        if runs and runs[-1][2] == ts:
            runs[-1] = (runs[-1][0], p + 1, ts)
        else:
            runs.append((p, p + 1, ts))
    return runs


def _depthwise_scalar_applies(node: Node, ctx: LowerCtx) -> bool:
    """True when :func:`_conv_depthwise_scalar` lowers ``node``: a target that keeps
    accumulators in scalar registers (``Target.scalar_accumulators``), one input channel per
    group (depthwise, any depth multiplier) and at most SCALAR_TAPS kernel taps."""
    if not getattr(ctx.target, "scalar_accumulators", False):
        return False
    x, w = node.inputs[0], node.inputs[1]
    group = int(node.attrs.get("group") or 1)
    return (group > 1 and x.shape[1] == group and len(x.shape) >= 3
            and math.prod(w.shape[2:]) <= SCALAR_TAPS)


DEPTHWISE_IN_PLACE_OPS = ("Conv", "onnxcc.FusedConv", "QLinearConv")


def depthwise_in_place_ok(node: Node) -> bool:
    """Whether the output of ``node`` may be planned over its input 0 on targets that keep
    accumulators in scalar registers (``Target.scalar_accumulators``), computed channel by
    channel (TinyEngine's in-place depthwise convolution: Lin et al., "MCUNet: Tiny Deep Learning
    on IoT Devices", NeurIPS 2020, section 3.2). True for a depthwise Conv, FusedConv or
    QLinearConv with one output channel per input channel (y (N,C,*O) no larger than x
    (N,C,*S), same element size) that the scalar depthwise lowerings take: at most SCALAR_TAPS
    taps, and for QLinearConv constant weights, weight and x zero points and bias, with at most
    SCALAR_COPIES border runs (so :func:`scalar_depthwise_nest` specializes). Each channel's
    outputs then go to a plane of scratch and are copied over the output's channel, which
    only covers input channels already read: output channel k ends at (k+1)*prod(O) <=
    (k+1)*prod(S) elements, where input channel k+1 starts."""
    if node.op not in DEPTHWISE_IN_PLACE_OPS or len(node.outputs) != 1:
        return False
    q = node.op == "QLinearConv"
    x, w, y = node.inputs[0], node.inputs[3 if q else 1], node.outputs[0]
    group = int(node.attrs.get("group") or 1)
    if (x is None or x.is_const or len(x.shape) < 3 or group == 1 or x.shape[1] != group
            or y.shape[1] != group or y.dtype.itemsize != x.dtype.itemsize
            or y.type.nbytes > x.type.nbytes or math.prod(w.shape[2:]) > SCALAR_TAPS):
        return False
    if not q:
        return True
    if w.const is None or any(k < len(node.inputs) and node.inputs[k] is not None
                              and node.inputs[k].const is None for k in (2, 5, 8)):
        return False
    xz = node.inputs[2].const if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if xz is not None and not (np.asarray(xz) == np.asarray(xz).reshape(-1)[0]).all():
        return False
    pb, _, s, d, O = conv_geometry(node, x.shape, w.shape)
    K, I = w.shape[2:], x.shape[2:]
    return math.prod(len(_tap_runs(O[a], K[a], d[a], s[a], pb[a], I[a]))
                     for a in range(len(K))) <= SCALAR_COPIES


def in_place_plane(ctx: LowerCtx, Y: Buffer) -> Buffer | None:
    """The scratch plane (prod(O) elements of y's dtype, a kernel local) through which a depthwise
    Conv planned over its input (:func:`depthwise_in_place_ok`) stores each channel, or None
    when the plan put y elsewhere. Raises OnnxccError when y overlaps x at another offset."""
    node = ctx.node
    if not _overlaps(ctx, node.inputs[0], node.outputs[0]):
        return None
    if not ctx.same_storage(node.outputs[0], node.inputs[0]):
        raise OnnxccError(f"node {node.name!r} ({node.op}): its output overlaps its input at "
                          f"another offset", hint="a bug in onnxcc's memory plan: please report it")
    return Buffer("plane", Y.dtype, (math.prod(Y.shape[2:]),), space="local")


def _overlaps(ctx: LowerCtx, a: Any, b: Any) -> bool:
    """Whether the plan put values ``a`` and ``b`` on common bytes."""
    ba, bb = ctx.storage.get(a.name), ctx.storage.get(b.name)
    return ba is not None and bb is not None and ba.space == bb.space and ba.index == bb.index \
        and ba.offset < bb.offset + bb.size and bb.offset < ba.offset + ba.size


def refuse_in_place(node: Node, ctx: LowerCtx) -> None:
    """Raise when the plan put ``node``'s output over its input 0 but the lowering about to run
    computes every channel at once (it would read inputs its outputs overwrote): only the scalar
    depthwise nests compute in place."""
    if _overlaps(ctx, node.inputs[0], node.outputs[0]):
        raise OnnxccError(f"node {node.name!r} ({node.op}): the memory plan put its output over "
                          f"its input, which this target's {node.op} lowering cannot compute in "
                          f"place", hint="a bug in onnxcc's memory plan: please report it")


def scalar_depthwise_nest(X: Buffer, Y: Buffer, geometry: Sequence[Sequence[int]], mult: int,
                          acc_dt: DType, weight: Callable[[Expr, tuple[int, ...]], Expr],
                          start: Callable[[Expr, Sequence[Expr]], Expr],
                          mac: Callable[[Expr, Expr, Expr], Expr],
                          finish: Callable[[Expr, Expr], Expr], specialize: bool,
                          guarded_ok: bool, block: int = SCALAR_BLOCK,
                          plane: Buffer | None = None) -> tuple[list[Stmt], str] | None:
    """The loops of a depthwise convolution as one scalar accumulator per output, shared by the
    float and the integer lowerings for cores that keep accumulators in scalar registers.

    x (N,C,*S), y (N,C*mult,*O); ``geometry`` is (K, I, pads_begin, strides, dilations, O) per
    spatial axis. Per output channel ``co`` the taps' weights ``weight(co, tap)`` are locals of
    ``acc_dt``; the output positions, cut per axis into runs whose taps inside x are the same
    (:func:`_tap_runs`), get one nest per combination of runs with only those taps unrolled (no
    guard, no multiply by padding), ``block`` (a power of two) neighbouring outputs together
    (overlapping windows, so the C compiler shares their loads) along the axis whose runs put
    the most outputs in full blocks (the last on a tie). Each accumulator
    starts at ``start(co, weights of the run's taps)`` (a local per channel and run), takes
    ``acc = mac(w, x, acc)`` per tap and is stored as ``finish(acc, co)``. Without
    ``specialize`` (padding must still multiply) or with more than SCALAR_COPIES combinations,
    the positions are the interior and one border nest whose loads are masked to 0 (every tap
    multiplies) when ``guarded_ok``, else None. With ``plane`` (a local of prod(O) elements, one
    output channel per input channel) a channel's outputs are stored there, then copied to y
    once all of them are computed, so y may be planned over x (:func:`depthwise_in_place_ok`).
    Returns (statements, a note for the kernel's comment)."""
    K, I, pb, s, d, O = (list(v) for v in geometry)
    N, C = X.shape[:2]
    nd, lb = len(K), LABELS[len(K)]
    n, g, m = axis_var("n", N), axis_var("g", C), axis_var("m", mult)
    co = lin((g, mult), m)
    taps = list(np.ndindex(*K))
    wv = {t: Var("w" + "_".join(str(i) for i in t), acc_dt) for t in taps}
    wdecl: list[Stmt] = [Decl(wv[t], weight(co, t)) for t in taps]
    made = itertools.count()

    def outputs(points: list[list[Expr]], tapset: Sequence[tuple[int, ...]], init: Expr,
                border: frozenset[int] = frozenset()) -> list[Stmt]:
        """Accumulate the outputs at ``points`` (index lists) over ``tapset`` tap by tap, then
        store them; loads masked on the ``border`` axes."""
        k = next(made)
        accs = [Var(f"acc{k}_{u}", acc_dt) for u in range(len(points))]
        body: list[Stmt] = [Decl(a, init) for a in accs]
        for t in tapset:
            for a, o in zip(accs, points):
                iv = [lin((o[i], s[i]), -pb[i] + t[i] * d[i]) for i in range(nd)]
                conds, possible = in_range([(iv[i], I[i]) for i in sorted(border)])
                if not possible:
                    continue
                mask = all_of(*conds)
                xv = Load(X, (n, g, *iv), mask, const(0, X.dtype) if mask is not None else None)
                body.append(Assign(a, mac(wv[t], xv, a)))
        return body + [store(o, finish(a, co)) for a, o in zip(accs, points)]

    def flat(o: Sequence[Expr]) -> Expr:
        return lin(*[(o[a], math.prod(O[a + 1:])) for a in range(nd)])

    def store(o: Sequence[Expr], v: Expr) -> Stmt:
        return Store(plane, (flat(o),), v) if plane is not None else Store(Y, (n, co, *o), v)

    runs = [_tap_runs(O[a], K[a], d[a], s[a], pb[a], I[a]) for a in range(nd)]
    positions: list[Stmt] = []
    if specialize and math.prod(len(r) for r in runs) <= SCALAR_COPIES:
        # the blocks go along the axis whose runs put the most outputs in full blocks (the last
        # on a tie): DS-CNN's 25x5 maps along their 23-row interior, not its 3 columns
        def in_blocks(a: int) -> int:
            return sum((r[1] - r[0]) // block * block for r in runs[a]) * math.prod(
                O[:a] + O[a + 1:])

        ba = max(range(nd), key=lambda a: (in_blocks(a), a))
        others = [a for a in range(nd) if a != ba]
        for c, combo in enumerate(itertools.product(*runs)):
            tapset = list(itertools.product(*[r[2] for r in combo]))
            init = Var(f"start{c}", acc_dt)
            fixed = {a: axis_var("o" + lb[a], O[a]) if combo[a][1] - combo[a][0] > 1
                     else Const(combo[a][0]) for a in others}
            spec = [(fixed[a], combo[a][0], combo[a][1]) for a in others]

            def at(v: Expr) -> list[Expr]:
                return [v if a == ba else fixed[a] for a in range(nd)]

            lo, hi = combo[ba][0], combo[ba][1]
            blocks = (hi - lo) // block
            inner: list[Stmt] = []
            if blocks > 1:
                j = Var("o" + lb[ba] + "_j")
                pts = [at(lin((j, block), lo + u)) for u in range(block)]
                inner = [Loop(j, 0, blocks, outputs(pts, tapset, init))]
            p = lo + blocks * block if blocks > 1 else lo
            while p < hi:   # the rest (or a short run) in halving blocks at constant positions
                size = next(b for b in (block >> i for i in range(block))
                            if 0 < b <= hi - p)
                inner += outputs([at(Const(p + u)) for u in range(size)], tapset, init)
                p += size
            positions += [Decl(init, start(co, [wv[t] for t in tapset]))] + loops(spec, inner)
        how = f"{len(taps)} taps unrolled, no guards (one nest per border run)"
    elif guarded_ok:
        o = [axis_var("o" + lb[a], O[a]) for a in range(nd)]
        segs = [segments(O[a], K[a], d[a], s[a], pb[a], I[a]) for a in range(nd)]
        init = start(co, [wv[t] for t in taps])
        positions = split_positions(o, segs, lambda border: outputs([o], taps, init, border))
        how = f"{len(taps)} taps unrolled, interior unguarded"
    else:
        return None
    if plane is not None:
        assert mult == 1 and plane.shape == (math.prod(O),)
        positions += copy_channel(plane, Y, n, co)
        how += "; in place: each channel through a plane of scratch"
    return loops([(n, 0, N), (g, 0, C), (m, 0, mult)], wdecl + positions), \
        f"one accumulator per output, {how}"


def copy_channel(plane: Buffer, Y: Buffer, n: Expr, c: Expr) -> list[Stmt]:
    """The loops copying ``plane`` (prod(O) elements) over y's channel ``(n, c)`` (y (N,C,*O)):
    one loop over the channel's positions when they are contiguous in y (with the plane a
    ``restrict`` parameter, ``Kernel.disjoint``, gcc makes it one call of newlib's
    ``memmove``: about 3 Cortex-M4 instructions per float, against 4 per float and 6 per row for
    a nest of rows), else a nest over y's axes."""
    O = Y.shape[2:]
    P = math.prod(O)
    if tuple(Y.strides[2:]) == contiguous_strides(O):
        Yf = dataclasses.replace(Y, shape=(*Y.shape[:2], P), strides=(*Y.strides[:2], 1))
        p = axis_var("cp", P)
        return loops([(p, 0, P)], [Store(Yf, (n, c, p), plane[(p,)])])   # no loop when P == 1
    lb = LABELS[len(O)]
    oc = [axis_var("c" + lb[a], O[a]) for a in range(len(O))]
    flat = lin(*[(oc[a], math.prod(O[a + 1:])) for a in range(len(O))])
    return loops([(oc[a], 0, O[a]) for a in range(len(O))],
                 [Store(Y, (n, c, *oc), plane[(flat,)])])


def _conv_depthwise_scalar(node: Node, ctx: LowerCtx) -> Any:
    """A depthwise Conv (one input channel per group) for cores without a vector unit the C
    compiler uses (microcontrollers), as :func:`scalar_depthwise_nest` builds it: weights in
    locals, guard-free nests per run of border positions with only the taps inside x, bias as
    the start value, multiply-adds, the activation fused into the one store. Non-finite or
    runtime weights keep every tap (an infinite weight times padding is NaN in onnx's
    reference): an unguarded interior and a masked border. The tap-stationary nest loaded and
    stored y once per tap: about 8 Cortex-M4 instructions per MAC on DS-CNN's 3x3 layers.
    x (N,C,*S), w (C*mult,1,*K), b (C*mult,), y (N,C*mult,*O)."""
    w = node.inputs[1]
    X, Wt, Y, B, G, N, C, M, K, I, pb, s, d, O = _conv_parts(node, ctx)
    dt = Y.dtype
    plane = in_place_plane(ctx, Y)
    built = scalar_depthwise_nest(
        X, Y, (K, I, pb, s, d, O), M // G, dt,
        weight=lambda co, t: Wt[(co, Const(0), *[Const(i) for i in t])],
        start=lambda co, _ws: B[(co,)] if B is not None else const(0, dt),
        mac=lambda wv, xv, acc: MulAdd(wv, xv, acc),
        finish=lambda acc, _co: activation_expr(node, acc),
        specialize=w.const is not None and bool(np.isfinite(w.const).all()), guarded_ok=True,
        plane=plane)
    assert built is not None
    nest, how = built
    act = node.attrs.get("activation") or ""
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), w {shape_text(Wt.shape)}, "
            f"y {shape_text(Y.shape)}; depthwise (group {G}), strides {_lst(s)}, dilations "
            f"{_lst(d)}, pads_begin {_lst(pb)}" + (f"; activation {act}" if act else "")
            + f"; {how}")
    ins = read_buffers(nest, [X, Wt] + ([B] if B is not None else []))
    # the plane overlaps neither x nor y: restrict, so gcc copies it to y with one memmove
    return ctx.kernel("conv", [Y], ins, [Comment(text)] + nest, comment=text,
                      locals=[plane] if plane is not None else [], inplace=plane is not None,
                      disjoint=("plane",) if plane is not None else ())


SCALAR_TILE = (4, 4)   # _conv_scalar_tile: positions x output channels in scalar registers


SCALAR_PAD_BYTES = 4096   # _conv_scalar_tile: the largest zero-padded copy of x (kernel scratch)


def _scalar_tile_mode(node: Node, ctx: LowerCtx) -> str | None:
    """How :func:`_conv_scalar_tile` lowers ``node``, or None when it does not: on a target
    that keeps accumulators in scalar registers (``Target.scalar_accumulators``) a float32 conv
    with constant weights is ``merged`` (a 1x1 with strides 1 and no padding: the pixels one
    axis), ``runs`` (finite weights, at most SCALAR_TAPS taps and SCALAR_COPIES combinations of
    border runs: padded taps skipped) or ``padded`` (x copied into a zero-padded local of at
    most SCALAR_PAD_BYTES, at most 2 * SCALAR_TAPS taps)."""
    if not getattr(ctx.target, "scalar_accumulators", False):
        return None
    x, w = node.inputs[0], node.inputs[1]
    if x.dtype.name != "float32" or w.const is None or len(x.shape) < 3:
        return None
    pb, pe, s, d, O = conv_geometry(node, x.shape, w.shape)
    K, I = list(w.shape[2:]), list(x.shape[2:])
    if (all(k == 1 for k in K) and all(v == 1 for v in s) and not any(pb) and not any(pe)
            and list(O) == I):
        return "merged"
    if (bool(np.isfinite(w.const).all()) and math.prod(K) <= SCALAR_TAPS
            and math.prod(len(_tap_runs(O[a], K[a], d[a], s[a], pb[a], I[a]))
                          for a in range(len(K))) <= SCALAR_COPIES):
        return "runs"
    padded = x.shape[1] * math.prod(I[a] + pb[a] + max(pe[a], 0) for a in range(len(K))) * 4
    if min(pb) >= 0 and padded <= SCALAR_PAD_BYTES and math.prod(K) <= 2 * SCALAR_TAPS:
        return "padded"
    return None


def _conv_scalar_tile(node: Node, ctx: LowerCtx) -> Any:
    """A Conv (:func:`_scalar_tile_mode`) as an output-stationary register tile for cores
    that keep accumulators in scalar registers: TP neighbouring outputs along the last axis by
    TM output channels (SCALAR_TILE) start at the bias and accumulate in TP*TM locals over the
    group's input channels, each channel's taps unrolled (per kernel row the distinct x values
    of the TP windows loaded once, TM weights per tap, packed at compile time as
    (G, ceil(MG/TM), CG, K..., TM), TP*TM multiply-adds per tap), then the activation and one
    store each. As in :func:`scalar_depthwise_nest` the positions are cut per axis into runs
    whose taps inside x are the same (:func:`_tap_runs`), one nest per combination with only
    those taps (no guard, no multiply by padding); the last axis of a run in blocks of TP, the
    rest in one smaller block. In ``padded`` mode (too many runs or taps, a small x: DS-CNN's
    10x4 stride-2 stem) x is first copied into a zero-padded local (kernel scratch), then one
    run covers every output, the kernel rows a loop, and padding multiplies as zeros. A 1x1, stride-1, unpadded conv
    walks its pixels as one axis. The tap-stationary nest loaded and stored y once per 4 input
    channels and tap: 2.23 Cortex-M4 instructions per MAC on DS-CNN's 64->64 1x1 layers at -Os,
    1.87 with this tile (gcc keeps its 16 accumulators in s0-s15: 8 loads, 16 VFMA and 4 loop
    instructions per input channel); ResNet-8's 3x3 layers 2.36 -> 1.51, DS-CNN's stem 4.63 ->
    1.85. Channels past the last full block go in one narrower block. x (N,C,*S),
    w (M,C/G,*K), b (M,), y (N,M,*O)."""
    w, x = node.inputs[1], node.inputs[0]
    mode = _scalar_tile_mode(node, ctx)
    X, Wt, Y, B, G, N, C, M, K, I, pb, s, d, O = _conv_parts(node, ctx)
    CG, MG, dt, nd = C // G, M // G, Y.dtype, len(K)
    merged = (mode == "merged" and X.strides == contiguous_strides(X.shape)
              and Y.strides == contiguous_strides(Y.shape))
    geo = (K, I, pb, s, d, O)
    n = axis_var("n", N)
    copy: list[Stmt] = []
    XP: Buffer | None = None
    if mode == "padded":
        # x copied once into a zero-padded local (C, I + pads): every tap then reads inside it
        pe = conv_geometry(node, x.shape, w.shape)[1]
        Ip = [I[a] + pb[a] + max(pe[a], 0) for a in range(nd)]
        XP = Buffer("xpad", dt, (C, *Ip), space="local")
        cc, r = Var("cc"), [Var("r" + LABELS[nd][a]) for a in range(nd)]
        ri = [lin(r[a], -pb[a]) for a in range(nd)]
        ok = all_of(*in_range([(ri[a], I[a]) for a in range(nd)])[0])
        xl = Var("xl", dt)
        cbody: list[Stmt] = [Decl(xl, X[(n, cc, *[_clamped(ri[a], I[a]) for a in range(nd)])]),
                             Store(XP, (cc, *r), Select(ok, xl, const(0, dt)) if ok is not None
                                   else xl)]
        copy = loops([(cc, 0, C)] + [(r[a], 0, Ip[a]) for a in range(nd)], cbody)
        I, pb = Ip, [0] * nd
    if merged:
        P = math.prod(I)
        X = dataclasses.replace(X, shape=(N, C, P), strides=(C * P, P, 1))
        Y = dataclasses.replace(Y, shape=(N, M, P), strides=(M * P, P, 1))
        K, I, pb, s, d, O, nd = [1], [P], [0], [1], [1], [P], 1
    runs = [_tap_runs(O[a], K[a], d[a], s[a], pb[a], I[a]) for a in range(nd)]
    TP, TM = SCALAR_TILE
    TM = min(TM, MG)
    MT, rem = divmod(MG, TM)
    MTc = MT + (rem > 0)
    wc = np.asarray(w.const, dtype=dt.np).reshape((G, MG, CG, *K))
    packed = np.zeros((G, MTc * TM, CG, *K), dt.np)
    packed[:, :MG] = wc
    packed = np.moveaxis(packed.reshape((G, MTc, TM, CG, *K)), 2, -1)   # (G,MTc,CG,K...,TM)
    packed = np.ascontiguousarray(packed[0] if G == 1 else packed)
    Wp = Buffer("wp", dt, packed.shape, None, "weight", data=packed.reshape(-1),
                value=f"{w.name} packed")
    lb = LABELS[nd]
    g, c = axis_var("g", G), axis_var("c", CG)
    wg = (g,) if G > 1 else ()
    made = itertools.count()

    # padded: the first axis's taps a loop (kernel rows), the others unrolled; gcc -Os kept
    # DS-CNN's 40 unrolled taps' loads live at once (a 760-byte frame)
    kl = axis_var("k" + LABELS[nd][0], K[0]) if XP is not None else Const(0)

    def tile(mt: Expr, nm: int, points: list[list[Expr]], tapset: list[tuple[int, ...]]
             ) -> list[Stmt]:
        """The outputs of channels ``mt*TM + j`` (j < nm) of group g at ``points``."""
        t = next(made)
        acc = [[Var(f"acc{t}_{j}_{q}", dt) for q in range(len(points))] for j in range(nm)]
        ch = [lin((g, MG), (mt, TM), j) for j in range(nm)]
        body: list[Stmt] = [Decl(acc[j][q], B[(ch[j],)] if B is not None else const(0, dt))
                            for j in range(nm) for q in range(len(points))]
        red: list[Stmt] = []
        xs: dict[tuple, Var] = {}
        ci = lin((g, CG), c)
        if isinstance(kl, Var):   # one kernel row per iteration
            tapset = sorted({tap[1:] for tap in tapset})
        for tap in tapset:
            taps: list[Expr] = [*([kl] if isinstance(kl, Var) else []), *map(Const, tap)]
            ivs = [tuple(lin((o[a], s[a]), (taps[a], d[a]), -pb[a]) for a in range(nd))
                   for o in points]
            for iv in ivs:   # each distinct x value of the tap's windows loaded once
                if iv not in xs:
                    xs[iv] = Var(f"x{t}_{len(xs)}", dt)
                    red.append(Decl(xs[iv], XP[(ci, *iv)] if XP is not None
                                    else X[(n, ci, *iv)]))
            for j in range(nm):
                wv = Var(f"w{t}_{'_'.join(map(str, tap))}_{j}", dt)
                red.append(Decl(wv, Wp[(*wg, mt, c, *taps, Const(j))]))
                red += [Assign(acc[j][q], MulAdd(wv, xs[iv], acc[j][q]))
                        for q, iv in enumerate(ivs)]
        if red:   # (no tap inside x: the bias)
            body += loops([(c, 0, CG), (kl, 0, K[0])], red)
        body += [Store(Y, (n, ch[j], *o), activation_expr(node, acc[j][q]))
                 for j in range(nm) for q, o in enumerate(points)]
        return body

    def positions(mt: Expr, nm: int) -> list[Stmt]:
        out: list[Stmt] = []
        for combo in itertools.product(*runs):
            tapset = list(itertools.product(*[r[2] for r in combo]))
            outer = [axis_var("o" + lb[a], O[a]) if combo[a][1] - combo[a][0] > 1
                     else Const(combo[a][0]) for a in range(nd - 1)]
            spec = [(outer[a], combo[a][0], combo[a][1]) for a in range(nd - 1)]
            lo, hi = combo[-1][0], combo[-1][1]
            blocks = (hi - lo) // TP
            inner: list[Stmt] = []
            if blocks:
                jv = axis_var("o" + lb[-1] + "_j", blocks)
                inner = loops([(jv, 0, blocks)], tile(mt, nm, [outer + [lin((jv, TP), lo + u)]
                                                               for u in range(TP)], tapset))
            p = lo + blocks * TP
            if p < hi:
                inner += tile(mt, nm, [outer + [Const(v)] for v in range(p, hi)], tapset)
            out += loops(spec, inner)
        return out

    mt = axis_var("mt", MT)
    body = loops([(mt, 0, MT)], positions(mt, TM)) + (positions(Const(MT), rem) if rem else [])
    nest = loops([(n, 0, N)], copy + loops([(g, 0, G)], body))
    K_, I_, pb_, s_, d_, O_ = geo
    act = node.attrs.get("activation") or ""
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), w {shape_text(Wt.shape)} "
            f"packed as {shape_text(Wp.shape)} ({'G,' if G > 1 else ''}M/{TM},C,k...,{TM}), y "
            f"{shape_text(Y.shape)}; group {G}, strides {_lst(s_)}, dilations {_lst(d_)}, "
            f"pads_begin {_lst(pb_)}" + (f"; activation {act}" if act else "")
            + f"; register tiles of {TP} positions x {TM} output channels in scalar locals, "
            + ("1x1: pixels as one axis" if merged else
               f"x zero-padded into a local {shape_text(XP.shape)}" if XP is not None else
               "one nest per border run, no guards"))
    ins = read_buffers(nest, [X, Wp] + ([B] if B is not None else []))
    return ctx.kernel("conv", [Y], ins, [Comment(text)] + nest, comment=text,
                      locals=[XP] if XP is not None else [])


def _output_stationary_axes(G: int, N: int, C: int, M: int, K: Sequence[int],
                            pb: Sequence[int], s: Sequence[int], d: Sequence[int],
                            O: Sequence[int]) -> tuple:
    """The loop variables of an output-stationary Conv (x (N,C,*S), w (M,C/G,*K), y (N,M,*O)):
    ``(n, g, mg, c, o, k, m, ci, iv)``: batch, group, output channel in the group, input channel
    in the group, output positions and taps per spatial axis, then the output channel
    ``m = g*M/G + mg``, input channel ``ci = g*C/G + c`` and input positions
    ``iv = o*stride + k*dilation - pads_begin`` (affine, unguarded)."""
    nd, lb = len(K), LABELS[len(K)]
    n, g, mg, c = axis_var("n", N), axis_var("g", G), axis_var("mg", M // G), axis_var("c", C // G)
    o = [axis_var("o" + lb[a], O[a]) for a in range(nd)]
    k = [axis_var("k" + lb[a], K[a]) for a in range(nd)]
    iv = [lin((o[a], s[a]), (k[a], d[a]), -pb[a]) for a in range(nd)]
    return n, g, mg, c, o, k, lin((g, M // G), mg), lin((g, C // G), c), iv


def _conv_direct(node: Node, ctx: LowerCtx) -> Any:
    """Conv as an output-stationary nest for targets that pipeline each layer's loop over
    outputs (HLS): per output position (n, o..., group, channel) ``acc = bias``, then ``acc +=
    w * x`` over the group's input channels and the kernel taps (a masked load reads 0 in the
    padding), then ``y = activation(acc)``. Every index is affine in the loop variables: no
    division or modulo, which would become dividers in logic. x (N,C,*S), w (M,C/group,*K),
    b (M,), y (N,M,*O)."""
    X, Wt, Y, B, G, N, C, M, K, I, pb_, s_, d_, O_ = _conv_parts(node, ctx)
    CG, MG = C // G, M // G
    nd, dt = len(K), Y.dtype
    n, g, mg, c, o, k, m, ci, iv = _output_stationary_axes(G, N, C, M, K, pb_, s_, d_, O_)
    conds, possible = in_range([(iv[a], I[a]) for a in range(nd)])
    ok = all_of(*conds)
    # not possible: an axis of one output and one tap, in the padding: every tap reads a 0
    xl = Load(X, (n, ci, *iv), ok, const(0, dt)) if ok is not None else X[(n, ci, *iv)] \
        if possible else const(0, dt)
    acc = Var("acc", dt)
    body: list[Stmt] = [
        Decl(acc, B[(m,)] if B is not None else const(0, dt)),
        *loops([(c, 0, CG)] + [(k[a], 0, K[a]) for a in range(nd)],
               [Assign(acc, MulAdd(Wt[(m, c, *k)], xl, acc))]),
        Store(Y, (n, m, *o), activation_expr(node, acc))]
    # output positions outermost, channels inside: the outputs come out pixel by pixel, and an
    # output row reads only a window of input rows (what a streaming layer's line buffer holds)
    nest = loops([(n, 0, N)] + [(o[a], 0, O_[a]) for a in range(nd)] + [(g, 0, G), (mg, 0, MG)],
                 body)
    act = node.attrs.get("activation") or ""
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), w {shape_text(Wt.shape)} is "
            f"(M,C/group,k...), y {shape_text(Y.shape)}; group {G}, strides {_lst(s_)}, "
            f"dilations {_lst(d_)}, pads_begin {_lst(pb_)}" + (f"; activation {act}" if act else "")
            + "; one accumulator per output, outputs in pixel order")
    ins = read_buffers(nest, [X, Wt] + ([B] if B is not None else []))
    return ctx.kernel("conv", [Y], ins, [Comment(text)] + nest, comment=text)


# ---- size mode (Target.optimize == "size") ------------------------------------------------------
def tap_guard(iv: Sequence[Expr], geometry: Sequence[Sequence[int]]) -> Expr | None:
    """The condition that the input position ``iv`` (per spatial axis ``o*s + k*d - pb``) of a
    tap lies inside x, with only the bounds some output crosses (the lower one when ``pb > 0``,
    the upper one when the last output's last tap passes ``I``); None when none is needed (an
    unpadded 1x1). A constant position (one output, one tap) gets no condition: the caller
    decides it (``in_range``'s ``possible``: outside x, no tap reads it). ``geometry`` is (K, I, pads_begin, strides, dilations, O) per axis."""
    K, I, pb, s, d, O = geometry
    return all_of(*[cond for a in range(len(K)) for cond, need in (
        (iv[a] >= 0, pb[a] > 0),
        (iv[a] < I[a], (O[a] - 1) * s[a] + (K[a] - 1) * d[a] - pb[a] >= I[a]))
        if need and not isinstance(iv[a], Const)])


def size_taps(o: Sequence[Expr], k: Sequence[Expr], geometry: Sequence[Sequence[int]]
              ) -> tuple[list[Stmt], list[Expr], Expr | None]:
    """Size mode's input positions of a Conv's taps and the guard that they lie inside x, in one
    text for every layer: ``(declarations, iv, guard)``. On an axis with more than one tap the
    stride and the begin pad are locals declared with their values (``int32_t stride_h = 2;``)
    and ``iv = o*stride + k*dilation - pad`` keeps them in every layer (a stride of 1 or a pad
    of 0 would fold away and change the text), and the guard checks both bounds. Layers then
    differ only in integer literals, so ``codegen/c/share.py`` shares one function between a
    stride-1 and a stride-2 depthwise layer, a padded and an unpadded one (the patches of a
    patched layer). An axis with one tap keeps the folded ``o*s - pb`` and only the bounds some
    output crosses (:func:`tap_guard`). ``o``, ``k``: the output position and tap per spatial
    axis; ``geometry`` is (K, I, pads_begin, strides, dilations, O) per axis."""
    K, I, pb, s, d, O = geometry
    nd, lb = len(K), LABELS[len(K)]
    decls: list[Stmt] = []
    iv: list[Expr] = []
    conds: list[Expr] = []
    for a in range(nd):
        if K[a] == 1:
            iv.append(lin((o[a], s[a]), (k[a], d[a]), -pb[a]))
            g1 = tap_guard(iv[a:], ([1], [I[a]], [pb[a]], [s[a]], [d[a]], [O[a]]))
            conds += [g1] if g1 is not None else []
            continue
        sv, pv = Var(f"stride_{lb[a]}"), Var(f"pad_{lb[a]}")
        decls += [Decl(sv, Const(int(s[a]))), Decl(pv, Const(int(pb[a])))]
        pos = Binary("mul", o[a], sv) if isinstance(o[a], Var) else None
        tap = lin((k[a], d[a]))
        e = tap if pos is None else Binary("add", pos, tap)
        iv.append(Binary("sub", e, pv))
        conds += [iv[a] >= 0, iv[a] < I[a]]
    return decls, iv, all_of(*conds)


def _conv_small(node: Node, ctx: LowerCtx) -> Any:
    """Size mode's Conv: one output-stationary nest, output positions outermost (as
    :func:`_conv_direct`), then per output ``acc = bias``, for each kernel tap whose input lies
    inside x (one guard per tap, only on the axes where some output reaches the padding) ``acc
    += w * x`` over the group's input channels, then ``y = activation(acc)``. A padded tap is
    skipped, which adds the 0 it would; with runtime or non-finite weights (where ``inf * 0``
    must give NaN as onnxruntime's im2col does) every tap multiplies: :func:`_conv_direct`'s
    masked loads. A depthwise Conv planned over its input (:func:`depthwise_in_place_ok`) runs
    channel by channel, storing through a plane of scratch copied over the output's channel.
    x (N,C,*S), w (M,C/group,*K), b (M,), y (N,M,*O)."""
    w = node.inputs[1]
    if w.const is None or not bool(np.isfinite(w.const).all()):
        return _conv_direct(node, ctx)
    X, Wt, Y, B, G, N, C, M, K, I, pb, s, d, O = _conv_parts(node, ctx)
    CG, MG = C // G, M // G
    nd, dt = len(K), Y.dtype
    n, g, mg, c, o, k, m, ci, _ = _output_stationary_axes(G, N, C, M, K, pb, s, d, O)
    decls, iv, guard = size_taps(o, k, (K, I, pb, s, d, O))
    # an axis of one output and one tap whose input lies in the padding: no tap reads x (the
    # output is the bias), and size_taps' constant position gets no guard
    possible = in_range(list(zip(iv, I)))[1]
    acc = Var("acc", dt)
    red = loops([(c, 0, CG)], [Assign(acc, MulAdd(Wt[(m, c, *k)], X[(n, ci, *iv)], acc))])
    plane = in_place_plane(ctx, Y)   # planned over x: channel by channel through a plane
    flat = lin(*[(o[a], math.prod(O[a + 1:])) for a in range(nd)])
    body: list[Stmt] = [
        Decl(acc, B[(m,)] if B is not None else const(0, dt)),
        *(loops([(k[a], 0, K[a]) for a in range(nd)], [If(guard, red)] if guard is not None
                else red) if possible else []),
        Store(Y, (n, m, *o), activation_expr(node, acc)) if plane is None
        else Store(plane, (flat,), activation_expr(node, acc))]
    if plane is None:
        nest = loops([(n, 0, N)] + [(o[a], 0, O[a]) for a in range(nd)]
                     + [(g, 0, G), (mg, 0, MG)], body)
    else:
        assert MG == 1 and CG == 1
        spatial = [(o[a], 0, O[a]) for a in range(nd)]
        nest = loops([(n, 0, N), (g, 0, G), (mg, 0, MG)],
                     loops(spatial, body) + loops(spatial, [Store(Y, (n, m, *o), plane[(flat,)])]))
    nest = decls + nest
    act = node.attrs.get("activation") or ""
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), w {shape_text(Wt.shape)} is "
            f"(M,C/group,k...), y {shape_text(Y.shape)}; group {G}, strides {_lst(s)}, "
            f"dilations {_lst(d)}, pads_begin {_lst(pb)}" + (f"; activation {act}" if act else "")
            + "; size mode: one accumulator per output, padded taps skipped")
    ins = read_buffers(nest, [X, Wt] + ([B] if B is not None else []))
    return ctx.kernel("conv", [Y], ins, [Comment(text)] + nest, comment=text,
                      locals=[plane] if plane is not None else [], inplace=plane is not None)


@lower("Conv", "onnxcc.FusedConv", supports=_supports_conv)
def _lower_conv(node: Node, ctx: LowerCtx) -> Any:
    if getattr(ctx.target, "backend", "") == "hls":
        return _conv_direct(node, ctx)
    in_place = _overlaps(ctx, node.inputs[0], node.outputs[0])
    w = node.inputs[1]
    if ctx.size and (not in_place or (w.const is not None and np.isfinite(w.const).all())):
        return _conv_small(node, ctx)   # size mode: one plain nest (channel by channel in place)
    if in_place:
        # planned over its input (depthwise_in_place_ok): the scalar depthwise nest computes
        # channel by channel
        if depthwise_in_place_ok(node):
            return _conv_depthwise_scalar(node, ctx)
        refuse_in_place(node, ctx)
    if _depthwise_applies(node, ctx):
        return _conv_depthwise(node, ctx)
    if _depthwise_scalar_applies(node, ctx):
        return _conv_depthwise_scalar(node, ctx)
    if _scalar_tile_mode(node, ctx):
        return _conv_scalar_tile(node, ctx)
    if _pointwise_gemm_applies(node, ctx):
        return _conv_pointwise_gemm(node, ctx)
    tile = _register_tile(node, ctx)
    return _conv_tiled(node, ctx, tile) if tile else _conv_taps(node, ctx)


POINTWISE_MIN_POSITIONS = 64    # _conv_pointwise_gemm: the fewest output positions
POINTWISE_FEW_CHANNELS = 64     # ... taken at any such size with at most this many input channels,
POINTWISE_POSITIONS_PER_CHANNEL = 3   # ... else with this many positions per input channel


def _pointwise_gemm_applies(node: Node, ctx: LowerCtx) -> bool:
    """True when :func:`_conv_pointwise_gemm` lowers ``node``: a target with a vector register
    file, float32, constant weights, one group, a 1x1 kernel at stride 1 without padding, P >=
    POINTWISE_MIN_POSITIONS output positions and C <= POINTWISE_FEW_CHANNELS input channels or
    P >= POINTWISE_POSITIONS_PER_CHANNEL * C. Measured per layer on Zen 3 against
    :func:`_conv_tiled`: faster on every 1x1 of MobileNetV1-0.25 from 12x12 up (29 -> 13 us at
    48x48, 20 -> 14 us at 12x12 with 64 channels) and ResNet-50's at 56x56 (64 -> 256: 1.7 ->
    1.2 ms) and 28x28 with 128 channels; slower on 6x6 (36 positions: 16 -> 21 us), on 28x28
    with 512 channels and 14x14 with 256 or 1024 (the (C, 16) panel of x each row tile reads
    leaves L1)."""
    x, w = node.inputs[0], node.inputs[1]
    if not ctx.vector_lanes() or w.const is None or x.dtype.name != "float32":
        return False
    if int(node.attrs.get("group") or 1) != 1 or any(k != 1 for k in w.shape[2:]):
        return False
    pb, pe, st, _, O = conv_geometry(node, x.shape, w.shape)
    P, C = math.prod(O), x.shape[1]
    X, Y = ctx.input(0), ctx.output(0)
    if any(b.strides != contiguous_strides(b.shape) for b in (X, Y)):
        return False
    return not any(pb) and not any(pe) and all(v == 1 for v in st) and \
        P >= POINTWISE_MIN_POSITIONS and \
        (C <= POINTWISE_FEW_CHANNELS or P >= POINTWISE_POSITIONS_PER_CHANNEL * C)


def _conv_pointwise_gemm(node: Node, ctx: LowerCtx) -> Any:
    """A 1x1 Conv (stride 1, no padding, one group) over many positions and few input channels
    as the matrix product y[n] (M, P) = w (M, C) @ x[n] (C, P) (P the positions, contiguous in
    NCHW), in the register tiles of ``matmul.product``: a vector of positions per load of x,
    one broadcast weight per output channel of the tile, and each output row stored
    contiguously. :func:`_conv_tiled` vectorizes over output channels instead, and with few
    input channels its stores (one per output, P apart) outweighed its multiply-adds
    (MobileNetV1-0.25's 8 -> 16 channels at 48x48: 29 us, 16 with onnxruntime). Bias is the
    product's C (broadcast along the positions), the activation its epilogue. x (N,C,*S),
    w (M,C,1...), b (M,), y (N,M,*S)."""
    from .matmul import _view, product

    x = node.inputs[0]
    X, Wt, Y = ctx.input(0, "x"), ctx.input(1, "w"), ctx.output(0, "y")
    (N, C), M = x.shape[:2], Y.shape[1]
    P = math.prod(Y.shape[2:])
    batch = (N,) if N > 1 else ()
    # w and b through their own strides (a splat constant is one element at stride 0); x and
    # y are contiguous (see _pointwise_gemm_applies), their positions one axis
    A = _view(Wt, "w", batch + (M, C), (0,) * len(batch) + tuple(Wt.strides[:2]))
    Bx = _view(X, "x", batch + (C, P), ((C * P,) if batch else ()) + (P, 1))
    Yv = _view(Y, "y", batch + (M, P), ((M * P,) if batch else ()) + (P, 1))
    has_b = len(node.inputs) > 2 and node.inputs[2] is not None
    if has_b:
        b0 = ctx.input(2, "b")
        bias = _view(b0, "b", (M, P), (b0.strides[0], 0))
    else:
        bias = None
    pr = product(ctx, A, Bx, Yv, batch, M, C, P, bias)
    act = node.attrs.get("activation") or ""
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), w {shape_text(Wt.shape)}, "
            f"y {shape_text(Y.shape)}; 1x1: y[n] ({M},{P}) = w ({M},{C}) @ x[n] ({C},{P})"
            + (" + b" if has_b else "") + (f"; activation {act}" if act else "") + pr.note)
    ins = read_buffers(pr.body, [A, Bx] + pr.weights + ([bias] if bias is not None else []))
    return ctx.kernel("conv", [Yv], ins, [Comment(text)] + pr.body, comment=text,
                      locals=pr.locals)


@lower("ConvTranspose", supports=_supports_conv)
def _lower_conv_transpose(node: Node, ctx: LowerCtx) -> Any:
    """y = b, then y[n, co, i*s + k*d - pb] += x[n, ci, i...] * w[ci, m, k...] for every input
    position i and tap k landing inside y; x (N,C,*S), w (C,M/group,*K), b (M,), y (N,M,*O)."""
    x, w = node.inputs[0], node.inputs[1]
    X, Wt, Y = ctx.input(0, "x"), ctx.input(1, "w"), ctx.output(0, "y")
    has_b = len(node.inputs) > 2 and node.inputs[2] is not None
    B = ctx.input(2, "b") if has_b else None
    group = int(node.attrs.get("group") or 1)
    (N, C), M = x.shape[:2], Y.shape[1]
    CG, MG = C // group, M // group
    K, I = list(w.shape[2:]), list(x.shape[2:])
    pb, _, s, d, _, O = conv_transpose_geometry(node, x.shape, w.shape)
    nd, lb = len(K), LABELS[len(K)]
    n, g, m = axis_var("n", N), axis_var("g", group), axis_var("m", MG)
    o = [axis_var("o" + lb[a], O[a]) for a in range(nd)]
    k = [axis_var("k" + lb[a], K[a]) for a in range(nd)]
    co = lin((g, MG), m)
    dt = Y.dtype
    init = loops([(n, 0, N), (g, 0, group), (m, 0, MG)] + [(o[a], 0, O[a]) for a in range(nd)],
                 [Store(Y, (n, co, *o), B[(co,)] if B is not None else const(0, dt))])
    i = [Var("i" + lb[a]) for a in range(nd)]
    ov = [lin((i[a], s[a]), (k[a], d[a]), -pb[a]) for a in range(nd)]
    # taps outside, input positions inside over the tap's range (those whose output lands in
    # y: per-tap bounds, no guard), x read contiguously by the innermost (unrolled) loop
    # up to 4 input channels per pass: one load and store of y per block
    CB = next(b for b in (4, 3, 2, 1) if CG % b == 0)
    cb = axis_var("cb", CG // CB)
    cq = [lin((cb, CB), q) for q in range(CB)]
    wv = [Var(f"w{q}", dt) for q in range(CB)]
    acc: Expr = X[(n, lin((g, CG), cq[0]), *i)] * wv[0]
    for q in range(1, CB):
        acc = MulAdd(X[(n, lin((g, CG), cq[q]), *i)], wv[q], acc)
    body: list[Stmt] = [Store(Y, (n, co, *ov), Y[(n, co, *ov)] + acc)]
    for a in reversed(range(nd)):
        lo, hi = _tap_bounds(k[a], K[a], d[a], s[a], pb[a], I[a], O[a])
        last = a == nd - 1
        body = [Loop(i[a], lo, hi, body, kind="unrolled" if last else "serial",
                     factor=UNROLL[1] if last else 0)]
    scatter = loops([(n, 0, N), (g, 0, group), (m, 0, MG), (cb, 0, CG // CB)]
                    + [(k[a], 0, K[a]) for a in range(nd)],
                    [Decl(wv[q], Wt[(lin((g, CG), cq[q]), m, *k)]) for q in range(CB)] + body)
    text = (f"ConvTranspose: x {shape_text(X.shape)} is (N,C,spatial...), w "
            f"{shape_text(Wt.shape)} is (C,M/group,k...), y {shape_text(Y.shape)}; group {group}, "
            f"strides {_lst(s)}, dilations {_lst(d)}, pads_begin {_lst(pb)}")
    ins = read_buffers(init + scatter, [X, Wt] + ([B] if B is not None else []))
    return ctx.kernel("conv_transpose", [Y], ins, [Comment(text)] + init + scatter, comment=text)


# ---- MaxPool / AveragePool --------------------------------------------------------------------
def _vectorize_innermost(s: Stmt, v: Var, lanes: int) -> Stmt:
    """``s`` with the loop over ``v`` (the interior's last position axis) marked vectorized."""
    if isinstance(s, Loop):
        if s.var == v:
            return dataclasses.replace(s, kind="vectorized", factor=lanes)
        return dataclasses.replace(s, body=[_vectorize_innermost(b, v, lanes) for b in s.body])
    return s


@lower("MaxPool", "AveragePool", "LpPool", supports=_supports_pool)
def _lower_pool(node: Node, ctx: LowerCtx) -> Any:
    """y[n, c, o...] = max / mean / p-norm of x[n, c, o*s + k*d - pb] over the window's taps
    inside x (LpPool: (sum |x|^p)^(1/p), padding adding 0, as AveragePool's sum does);
    x (N,C,*S), y (N,C,*O); MaxPool's Indices (int64, same shape) is the flat index into x of the
    first maximum in window order (spatial axes column-major when storage_order=1)."""
    x = node.inputs[0]
    X, Y = ctx.input(0, "x"), ctx.output(0, "y")
    pb, pe, s, d, K, O = pool_geometry(node, x.shape)
    N, C = x.shape[:2]
    I = list(x.shape[2:])
    nd, lb = len(K), LABELS[len(K)]
    n, c = axis_var("n", N), axis_var("c", C)
    o = [axis_var("o" + lb[a], O[a]) for a in range(nd)]
    k0, KT = _pool_taps(pb, s, d, K, O, I)
    k = [axis_var("k" + lb[a], KT[a]) for a in range(nd)]
    dt = Y.dtype
    acc = Var("acc", dt)
    iv = [lin((o[a], s[a]), (k[a], d[a]), k0[a] * d[a] - pb[a]) for a in range(nd)]
    taps = [(k[a], 0, KT[a]) for a in range(nd)]
    avg = node.op in ("AveragePool", "LpPool")
    lp = node.op == "LpPool"
    ins, outs = [X], [Y]
    div = _pool_divisor(node, ins, o, dt) if avg and not lp else None
    yi = ctx.output(1, "yi") if len(node.outputs) > 1 else None
    if yi is None and not lp and (getattr(ctx.target, "backend", "") == "hls" or ctx.size):
        return _pool_direct(node, ctx, X, Y, o, iv, taps, div, ins)
    if yi is not None:
        outs.append(yi)
        sp = list(contiguous_strides(I))
        if node.attrs.get("storage_order"):
            sp = list(reversed(contiguous_strides(list(reversed(I)))))
        P = math.prod(I)
        flat = lin((n, C * P), (c, P), *[(iv[a], sp[a]) for a in range(nd)])
        idx = Var("idx", I64)

    def body(border: frozenset[int]) -> list[Stmt]:
        conds, possible = in_range([(iv[a], I[a]) for a in sorted(border)])
        mask = all_of(*conds)
        red: list[Stmt] = []
        if avg:
            if possible:
                xv = Load(X, (n, c, *iv), mask, const(0, dt) if conds else None)
                if lp:
                    xv = _lp_term(xv, int(node.attrs.get("p", 2)))
                red = loops(taps, [Assign(acc, acc + xv)])
                if math.prod(KT) > WINDOW_BLOCK and nd > 1:
                    # a large window: one partial per step of the outermost tap loop (error
                    # ~ (rows + row length) eps rather than window size eps; Higham 1993)
                    row = Var("row", dt)
                    red = loops(taps[:1], [Decl(row, const(0, dt)),
                                           *loops(taps[1:], [Assign(row, row + xv)]),
                                           Assign(acc, acc + row)])
            res = (Binary("pow", acc, const(1 / int(node.attrs.get("p", 2)), dt)) if lp
                   else acc / div)
            return [Decl(acc, const(0, dt)), *red, Store(Y, (n, c, *o), res)]
        if yi is None:
            if possible:
                xv = Load(X, (n, c, *iv), mask, _lowest(dt) if conds else None)
                red = loops(taps, [Assign(acc, maximum(acc, xv))])
            return [Decl(acc, _lowest(dt)), *red, Store(Y, (n, c, *o), acc)]
        # Indices: the first maximum in window order; taps in the padding are never candidates
        v = Var("v", dt)
        better = Binary("or", v > acc, idx < 0)
        if dt.is_float:   # a NaN propagates; the first NaN of the window wins
            better = Binary("or", better, Binary("and", Unary("isnan", v),
                                                 Unary("not", Unary("isnan", acc))))
        take: list[Stmt] = [Decl(v, X[(n, c, *iv)]),
                            If(better, [Assign(acc, v), Assign(idx, _cast64(flat))])]
        if possible:
            red = loops(taps, [If(mask, take)] if conds else take)
        return [Decl(acc, _lowest(dt)), Decl(idx, const(-1, I64)), *red,
                Store(Y, (n, c, *o), acc), Store(yi, (n, c, *o), idx)]

    segs = [segments(O[a], KT[a], d[a], s[a], pb[a] - k0[a] * d[a], I[a]) for a in range(nd)]
    positions = split_positions(o, segs, body)
    # On LLVM targets the loop vectorizer left AveragePool's interior rows scalar (each
    # output's window is a short loop of its own); with the hint it widens them, strided loads
    # included (3x3/2 over 24 channels of 56x56: 29.5 -> 18 us). MaxPool (without Indices)
    # too: its NaN-propagating max is a compare and a blend per tap either way, bit for bit
    # the same; short rows gain (3x3/2 over 256 channels of 27x27: 156 -> 96 us on Zen 3),
    # rows of 55 outputs stay within 2-5% (of 276-300 us).
    lanes = ctx.vector_lanes() if node.op == "AveragePool" or (
        node.op == "MaxPool" and yi is None) else 0
    if lanes and positions and isinstance(o[-1], Var):
        positions[0] = _vectorize_innermost(positions[0], o[-1], lanes)
    nest = loops([(n, 0, N), (c, 0, C)], positions)
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), y {shape_text(Y.shape)}; "
            f"kernel {_lst(K)}, strides {_lst(s)}, dilations {_lst(d)}, pads_begin {_lst(pb)}")
    return ctx.kernel(node.op.lower(), outs, read_buffers(nest, ins), [Comment(text)] + nest,
                      comment=text)


def _pool_taps(pb, s, d, K, O, I) -> tuple[list[int], list[int]]:
    """(k0, KT) per spatial axis: only taps ``[k0, k0 + KT)`` can land inside x for some
    output; the others read padding for every output, which adds nothing (max: -inf; average:
    0, the divisor counts it apart). So a window of 2**31 taps over a row of 5 loops over at
    most 5 taps, and its index arithmetic stays small: iv = o*s + kk*d + (k0*d - pb) with
    kk = k - k0."""
    k0 = [min(max(0, -(-(pb[a] - (O[a] - 1) * s[a]) // d[a])), K[a]) for a in range(len(K))]
    KT = [max(0, min(K[a], (I[a] - 1 + pb[a]) // d[a] + 1) - k0[a]) for a in range(len(K))]
    return k0, KT


def _pool_divisor(node: Node, ins: list[Buffer], o: list[Expr], dt: DType) -> Expr:
    """AveragePool's divisor at output position ``o``: the product of per-axis counts
    (pool_counts), each a literal or a table indexed by the position (appended to ``ins``)."""
    x = node.inputs[0]
    pb, pe, s, d, K, O = pool_geometry(node, x.shape)
    I = list(x.shape[2:])
    include = bool(node.attrs.get("count_include_pad") or 0)
    div: Expr | None = None
    for a in range(len(K)):
        cnt = pool_counts((I[a],), (pb[a],), (pe[a],), (s[a],), (d[a],), (K[a],), (O[a],),
                          include).astype(dt.np)
        if len(set(cnt.tolist())) == 1:
            f: Expr = const(float(cnt[0]), dt)
        else:
            tab = Buffer(f"cnt{a}", dt, (O[a],), space="weight", data=cnt, value="")
            ins.append(tab)
            f = tab[(o[a],)]
        div = f if div is None else div * f
    assert div is not None
    return div


def _pool_direct(node: Node, ctx: LowerCtx, X: Buffer, Y: Buffer, o: list[Expr],
                 iv: list[Expr], taps: list, div: Expr | None, ins: list[Buffer]) -> Any:
    """MaxPool/AveragePool for targets that pipeline each layer's loop over outputs (HLS): one
    nest, output positions outermost and channels inside (pixel order, as :func:`_conv_direct`),
    ``acc`` over the window's taps with a masked load in the padding (max: the lowest value;
    average: 0, the divisor counts the taps apart). Every index is affine: no division, no
    modulo, no border/interior split (each split would be hardware of its own)."""
    N, C = X.shape[:2]
    O = list(Y.shape[2:])
    nd, dt = len(O), Y.dtype
    n, c = axis_var("n", N), axis_var("c", C)
    conds, possible = in_range([(iv[a], X.shape[2 + a]) for a in range(nd)])
    mask = all_of(*conds)
    acc = Var("acc", dt)
    avg = node.op == "AveragePool"
    red: list[Stmt] = []
    if possible:
        xv = Load(X, (n, c, *iv), mask, (const(0, dt) if avg else _lowest(dt))
                  if mask is not None else None)
        red = loops(taps, [Assign(acc, acc + xv if avg else maximum(acc, xv))])
    body = [Decl(acc, const(0, dt) if avg else _lowest(dt)), *red,
            Store(Y, (n, c, *o), acc / div if avg else acc)]
    nest = loops([(n, 0, N)] + [(o[a], 0, O[a]) for a in range(nd)] + [(c, 0, C)], body)
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), y {shape_text(Y.shape)}; "
            f"one accumulator per output, outputs in pixel order")
    return ctx.kernel(node.op.lower(), [Y], read_buffers(nest, ins), [Comment(text)] + nest,
                      comment=text)


def _lp_term(x: Expr, p: int) -> Expr:
    """|x|^p, LpPool's term (x * x for p = 2, |x| for p = 1)."""
    if p == 1:
        return Unary("abs", x)
    if p == 2:
        return x * x
    return Binary("pow", Unary("abs", x), const(p, x.dtype))


def _blocked_sum(X: Buffer, n: Expr, c: Expr, target: Var, base: list, count: int, level: int,
                 own: bool) -> list[Stmt]:
    """Statements adding ``sum(x[n, c, base + p] for p < count)`` into ``target``: blocks of
    ``SUM_BLOCK ** level`` elements are each summed (recursively) into a partial ``part{level}``
    that is then added to ``target``; the elements left over are summed at the lower levels.
    At level 0 the elements go into ``target`` directly, or into their own partial ``tail`` when
    ``own`` (a remainder added to a large total)."""
    dt = target.dtype
    if level == 0:
        p = Var("p")
        if count == 0:
            return []
        if not own:
            return [Loop(p, 0, count, [Assign(target, target + X[(n, c, lin(*base, p))])])]
        tail = Var("tail", dt)
        return [Decl(tail, const(0, dt)),
                Loop(p, 0, count, [Assign(tail, tail + X[(n, c, lin(*base, p))])]),
                Assign(target, target + tail)]
    size = SUM_BLOCK ** level
    full, rest = divmod(count, size)
    blk, part = Var(f"blk{level}"), Var(f"part{level}", dt)
    out: list[Stmt] = []
    if full:
        out.append(Loop(blk, 0, full, [
            Decl(part, const(0, dt)),
            *_blocked_sum(X, n, c, part, base + [(blk, size)], size, level - 1, False),
            Assign(target, target + part)]))
    if rest:
        out += _blocked_sum(X, n, c, target, base + [full * size], rest, level - 1, True)
    return out


def _cast64(e: Expr) -> Expr:
    from onnxcc.codegen.loops import Cast

    return Cast(e, I64)


# ---- global pools -----------------------------------------------------------------------------
@lower("GlobalAveragePool", "GlobalMaxPool", supports=_supports_pool)
def _lower_global_pool(node: Node, ctx: LowerCtx) -> Any:
    """y[n, c, 0...] = mean / max of x[n, c, :] over the S spatial positions (read as one axis);
    x (N,C,*S), y (N,C,1,...). A mean over more than ``SUM_BLOCK`` positions is accumulated in
    nested blocks (:func:`_blocked_sum`): SUM_BLOCK elements per partial, SUM_BLOCK partials per
    partial of the next level, so the float error grows with about SUM_BLOCK per level (plus
    S / SUM_BLOCK**levels at the top) instead of S: 40 million float32 ones sum to 4e7 exactly,
    where one running sum stops at 16,777,216."""
    x = node.inputs[0]
    X0, Y0 = ctx.input(0, "x"), ctx.output(0, "y")
    N, C = x.shape[:2]
    S = math.prod(x.shape[2:])
    st = X0.strides
    sst = 0 if all(v == 0 for v in st[2:]) else 1   # contiguous, or a splat (all strides 0)
    X = Buffer("x", X0.dtype, (N, C, S), (st[0], st[1], sst), X0.space, X0.offset, X0.index,
               X0.data, X0.value)
    Y = Buffer("y", Y0.dtype, (N, C), Y0.strides[:2], Y0.space, Y0.offset, Y0.index, Y0.data,
               Y0.value)
    n, c, p = axis_var("n", N), axis_var("c", C), axis_var("p", S)
    dt = Y.dtype
    acc = Var("acc", dt)
    if node.op == "GlobalMaxPool":
        inner = [Decl(acc, _lowest(dt)),
                 *loops([(p, 0, S)], [Assign(acc, maximum(acc, X[(n, c, p)]))]),
                 Store(Y, (n, c), acc)]
    elif S <= SUM_BLOCK:
        inner = [Decl(acc, const(0, dt)), *loops([(p, 0, S)], [Assign(acc, acc + X[(n, c, p)])]),
                 Store(Y, (n, c), acc / const(S, dt))]
    else:
        level = 1
        while SUM_BLOCK ** (level + 1) < S:
            level += 1
        inner = [Decl(acc, const(0, dt)), *_blocked_sum(X, n, c, acc, [], S, level, True),
                 Store(Y, (n, c), acc / const(S, dt))]
    text = f"{node.op}: x {shape_text(x.shape)} is (N,C,spatial...), y {shape_text(Y0.shape)}"
    if node.op == "GlobalAveragePool" and S > SUM_BLOCK:
        text += f"; blocked sum ({SUM_BLOCK} per partial)"
    body = loops([(n, 0, N), (c, 0, C)], inner)
    return ctx.kernel(node.op.lower(), [Y], [X], [Comment(text)] + body, comment=text)
