"""Convolutions and pools as loop IR: Conv, onnxcc.FusedConv, ConvTranspose, MaxPool (with its
optional Indices), AveragePool, GlobalAveragePool and GlobalMaxPool, on NC(D)HW tensors with 1 to
3 spatial axes.

Geometry comes from the op declarations (``conv_geometry``, ``conv_transpose_geometry``,
``pool_geometry``, ``pool_counts`` in ``onnxcc.ops.nn``); this module only turns it into loops.
Every kernel is the plain loop nest that later loop passes (tile, block, vectorize) rewrite:

- Conv gathers: for each output position, a scalar accumulator (kept in a register) starts at the
  bias and takes ``muladd(x[...], w[...], acc)`` over input channels and taps, the innermost tap
  loop walking x and w contiguously; the fused activation is applied when it is stored.
- ConvTranspose scatters: y starts at the bias, then each input position adds ``x * w`` into the
  output position ``i*stride + tap*dilation - pad`` of every tap (no division, no modulo).
- Pools gather like Conv with a max or a sum; AveragePool divides by ``pool_counts`` (per-axis
  tables of divisors when they vary, stored as weights).

Padding is never materialized. Along each spatial axis the positions split into an interior,
where every tap lands inside the other tensor and loads carry no guard, and the borders before
and after it, where the reads are masked loads (``x[iy] if 0 <= iy && iy < H else 0``) or the
writes guarded stores, so ``verify`` proves every access and the hot interior has no branches.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np

from onnxcc.codegen.loops import (I64, Assign, Binary, Buffer, Comment, Const, Decl, DType, Expr,
                                  If, Load, Loop, MulAdd, Stmt, Store, Var, affine, all_of, const,
                                  Unary, contiguous_strides, maximum)
from onnxcc.ir import Node
from onnxcc.ops import REQUIRED, get_op
from onnxcc.ops.nn import conv_geometry, conv_transpose_geometry, pool_counts, pool_geometry

from . import LowerCtx, lower

SUM_BLOCK = 256          # GlobalAveragePool: terms per partial sum (nested blocked accumulation)
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
    """Loops over the position axes ``pos`` (outermost first), each split into its ``segs``;
    ``make(border_axes)`` builds the innermost body knowing which axes need guards there."""
    def rec(a: int, border: frozenset[int]) -> list[Stmt]:
        if a == len(pos):
            return make(border)
        out: list[Stmt] = []
        for lo, hi, b in segs[a]:
            inner = rec(a + 1, border | {a} if b else border)
            out += [Loop(pos[a], lo, hi, inner)] if isinstance(pos[a], Var) else inner
        return out

    return rec(0, frozenset())


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
    if node.op in ("MaxPool", "AveragePool"):
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
def _conv(node: Node, ctx: LowerCtx) -> Any:
    """y[n, co, o...] = act(b[co] + sum over c, k... of x[n, ci, o*s + k*d - pb] * w[co, c, k...])
    with co = g*MG + m, ci = g*CG + c; x (N,C,*S), w (M,C/group,*K), b (M,), y (N,M,*O)."""
    x, w = node.inputs[0], node.inputs[1]
    X, Wt, Y = ctx.input(0, "x"), ctx.input(1, "w"), ctx.output(0, "y")
    has_b = len(node.inputs) > 2 and node.inputs[2] is not None
    B = ctx.input(2, "b") if has_b else None
    group = int(node.attrs.get("group") or 1)
    (N, C), M = x.shape[:2], Y.shape[1]
    CG, MG = C // group, M // group
    K, I = list(w.shape[2:]), list(x.shape[2:])
    pb, _, s, d, O = conv_geometry(node, x.shape, w.shape)
    nd, lb = len(K), LABELS[len(K)]
    n, g, m, c = axis_var("n", N), axis_var("g", group), axis_var("m", MG), axis_var("c", CG)
    o = [axis_var("o" + lb[a], O[a]) for a in range(nd)]
    k = [axis_var("k" + lb[a], K[a]) for a in range(nd)]
    co, ci = lin((g, MG), m), lin((g, CG), c)
    dt = Y.dtype
    acc = Var("acc", dt)
    iv = [lin((o[a], s[a]), (k[a], d[a]), -pb[a]) for a in range(nd)]

    def body(border: frozenset[int]) -> list[Stmt]:
        conds, possible = in_range([(iv[a], I[a]) for a in sorted(border)])
        red: list[Stmt] = []
        if possible:
            xv = Load(X, (n, ci, *iv), all_of(*conds), const(0, dt) if conds else None)
            red = loops([(c, 0, CG)] + [(k[a], 0, K[a]) for a in range(nd)],
                        [Assign(acc, MulAdd(xv, Wt[(co, c, *k)], acc))])
        init = B[(co,)] if B is not None else const(0, dt)
        return [Decl(acc, init), *red, Store(Y, (n, co, *o), activation_expr(node, acc))]

    P = math.prod(I)
    pointwise = (all(kk == 1 for kk in K) and all(v == 1 for v in s) and not any(pb)
                 and list(O) == I and group == 1 and P > 1 and I[-1] < 8
                 and X.strides == contiguous_strides(X.shape)
                 and Y.strides == contiguous_strides(Y.shape))
    if pointwise:
        # 1x1, stride 1, no padding, rows narrower than a register tile (8): the spatial axes
        # are one axis of P positions (a matrix product y[n] (M, P) = w (M, C) @ x[n] (C, P)),
        # so register_block can tile it (measured here: 256 channels at 3x3, 0.141 -> 0.103 ms;
        # at 24x24 the row-wise nest stays 2x faster). The loop keeps the name "ow".
        X = dataclasses.replace(X, shape=(N, C, P), strides=(C * P, P, 1))
        Y = dataclasses.replace(Y, shape=(N, M, P), strides=(M * P, P, 1))
        q = Var("ow")
        zeros = tuple(Const(0) for _ in range(nd))
        red = loops([(c, 0, C)], [Assign(acc, MulAdd(X[(n, c, q)], Wt[(m, c, *zeros)], acc))])
        init = B[(m,)] if B is not None else const(0, dt)
        inner = [Decl(acc, init), *red, Store(Y, (n, m, q), activation_expr(node, acc))]
        nest = loops([(n, 0, N), (m, 0, MG), (q, 0, P)], inner)
    else:
        segs = [segments(O[a], K[a], d[a], s[a], pb[a], I[a]) for a in range(nd)]
        nest = loops([(n, 0, N), (g, 0, group), (m, 0, MG)], split_positions(o, segs, body))
    act = node.attrs.get("activation") or ""
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), w {shape_text(Wt.shape)} is "
            f"(M,C/group,k...), y {shape_text(Y.shape)}; group {group}, strides {_lst(s)}, "
            f"dilations {_lst(d)}, pads_begin {_lst(pb)}" + (f"; activation {act}" if act else ""))
    ins = read_buffers(nest, [X, Wt] + ([B] if B is not None else []))
    return ctx.kernel("conv", [Y], ins, [Comment(text)] + nest, comment=text)


@lower("Conv", "onnxcc.FusedConv", supports=_supports_conv)
def _lower_conv(node: Node, ctx: LowerCtx) -> Any:
    return _conv(node, ctx)


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
    n, g, m, c = axis_var("n", N), axis_var("g", group), axis_var("m", MG), axis_var("c", CG)
    o = [axis_var("o" + lb[a], O[a]) for a in range(nd)]
    i = [axis_var("i" + lb[a], I[a]) for a in range(nd)]
    k = [axis_var("k" + lb[a], K[a]) for a in range(nd)]
    co, ci = lin((g, MG), m), lin((g, CG), c)
    dt = Y.dtype
    init = loops([(n, 0, N), (g, 0, group), (m, 0, MG)] + [(o[a], 0, O[a]) for a in range(nd)],
                 [Store(Y, (n, co, *o), B[(co,)] if B is not None else const(0, dt))])
    ov = [lin((i[a], s[a]), (k[a], d[a]), -pb[a]) for a in range(nd)]

    def body(border: frozenset[int]) -> list[Stmt]:
        conds, possible = in_range([(ov[a], O[a]) for a in sorted(border)])
        if not possible:
            return []
        st: Stmt = Store(Y, (n, co, *ov), MulAdd(X[(n, ci, *i)], Wt[(ci, m, *k)], Y[(n, co, *ov)]))
        return [If(all_of(*conds), [st])] if conds else [st]

    # taps outside, input positions innermost (x read contiguously), split per axis
    segs = [segments(I[a], K[a], d[a], s[a], pb[a], O[a]) for a in range(nd)]
    scatter = loops([(n, 0, N), (g, 0, group), (m, 0, MG), (c, 0, CG)]
                    + [(k[a], 0, K[a]) for a in range(nd)], split_positions(i, segs, body))
    text = (f"ConvTranspose: x {shape_text(X.shape)} is (N,C,spatial...), w "
            f"{shape_text(Wt.shape)} is (C,M/group,k...), y {shape_text(Y.shape)}; group {group}, "
            f"strides {_lst(s)}, dilations {_lst(d)}, pads_begin {_lst(pb)}")
    ins = read_buffers(init + scatter, [X, Wt] + ([B] if B is not None else []))
    return ctx.kernel("conv_transpose", [Y], ins, [Comment(text)] + init + scatter, comment=text)


# ---- MaxPool / AveragePool --------------------------------------------------------------------
@lower("MaxPool", "AveragePool", supports=_supports_pool)
def _lower_pool(node: Node, ctx: LowerCtx) -> Any:
    """y[n, c, o...] = max / mean of x[n, c, o*s + k*d - pb] over the window's taps inside x;
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
    k = [axis_var("k" + lb[a], K[a]) for a in range(nd)]
    dt = Y.dtype
    acc = Var("acc", dt)
    iv = [lin((o[a], s[a]), (k[a], d[a]), -pb[a]) for a in range(nd)]
    taps = [(k[a], 0, K[a]) for a in range(nd)]
    avg = node.op == "AveragePool"
    ins, outs = [X], [Y]
    div: Expr | None = None
    if avg:   # per-axis divisors (pool_counts): a literal, or a table indexed by the position
        include = bool(node.attrs.get("count_include_pad") or 0)
        for a in range(nd):
            cnt = pool_counts((I[a],), (pb[a],), (pe[a],), (s[a],), (d[a],), (K[a],), (O[a],),
                              include).astype(dt.np)
            if len(set(cnt.tolist())) == 1:
                f: Expr = const(float(cnt[0]), dt)
            else:
                tab = Buffer(f"cnt{a}", dt, (O[a],), space="weight", data=cnt, value="")
                ins.append(tab)
                f = tab[(o[a],)]
            div = f if div is None else div * f
    yi = ctx.output(1, "yi") if len(node.outputs) > 1 else None
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
                red = loops(taps, [Assign(acc, acc + xv)])
            return [Decl(acc, const(0, dt)), *red, Store(Y, (n, c, *o), acc / div)]
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

    segs = [segments(O[a], K[a], d[a], s[a], pb[a], I[a]) for a in range(nd)]
    nest = loops([(n, 0, N), (c, 0, C)], split_positions(o, segs, body))
    text = (f"{node.op}: x {shape_text(X.shape)} is (N,C,spatial...), y {shape_text(Y.shape)}; "
            f"kernel {_lst(K)}, strides {_lst(s)}, dilations {_lst(d)}, pads_begin {_lst(pb)}")
    return ctx.kernel(node.op.lower(), outs, read_buffers(nest, ins), [Comment(text)] + nest,
                      comment=text)


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
