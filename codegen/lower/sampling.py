"""Sampling by coordinates as loop IR: AffineGrid, GridSample, DeformConv, RoiAlign, Col2Im,
MaxUnpool (semantics in :mod:`onnxcc.ops.sampling`).

AffineGrid: per batch entry, position and output coordinate j, ``sum_k theta[n, j, k] *
base[s, k]`` over a weight table of the homogeneous base grid (computed at compile time in
float64, stored in theta's dtype), accumulated in theta's dtype.

DeformConv: per output element (batch, group, output channel of the group, position), input
channel of the group and kernel tap, the sampling point per axis (the offset read from the
tap's offset-group channel), its 2 linear taps per axis with zeros outside, then the weight and
the mask; one accumulator per output element, started at the bias.

GridSample: per batch entry and output position, each spatial axis's coordinate is computed once
into locals (denormalized, rounded for nearest, clamped or reflected off the borders by
padding_mode), then its taps (1 nearest, 2 linear, 4 cubic) as an index and a weight each
(zeros padding: a validity flag; reflection: the tap reflected and truncated); the channel loop
innermost sums the product of the axes' tap weights times X at the taps (a masked load reads 0
outside for zeros). Every tap index is clamped to ``[0, L)`` inside the access, so verify proves
it in bounds; a coordinate is clamped to ``[-8, L + 8]`` before its cast to an integer, which
changes no tap (all outside either way). Coordinates are computed in float64 when X or grid is
float64, else float32.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from onnxcc.codegen.loops import (BOOL, F32, F64, INDEX, Assign, Binary, Buffer, Cast, Decl,
                                  Expr, If, Load, Loop, Select, Stmt, Store, Unary, Var, affine,
                                  all_of, const)
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops.sampling import (affine_grid_size, base_grid, borders, cubic_weights,
                                 col2im_params, deform_conv_params, grid_sample_params,
                                 max_unpool_shapes, roi_align_params)

from . import LowerCtx, lower, nest
from .tensor import clamp, flat, offset


def _float_only(node: Node) -> str | None:
    for v in node.inputs[:2] if node.op == "GridSample" else node.inputs[:1]:
        if v.dtype.kind != "f":
            return f"{node.op} on {v.dtype.name} is not supported (float32/float64)"
    return None


@lower("AffineGrid", supports=_float_only)
def _lower_affine_grid(node: Node, ctx: LowerCtx):
    """grid (N, S, r) [n, s, j] = sum_k theta[n, j, k] * base[s, k] (module docstring)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    sp = affine_grid_size(node)
    r = len(sp)
    S = math.prod(sp)
    tb = ctx.input(0)
    dt = tb.dtype
    base = base_grid(sp, bool(attr(node, "align_corners"))).astype(dt.np)
    bb = Buffer("base", dt, base.shape, space="weight", data=np.ascontiguousarray(base).reshape(-1))
    yf = flat(ctx.output(0))

    def body(v: list) -> list[Stmt]:
        n, s, j = v
        acc = Var("acc", dt)
        terms = [Binary("mul", tb[(n, j, const(k, INDEX))], bb[(s, const(k, INDEX))])
                 for k in range(r + 1)]
        e = terms[0]
        for t in terms[1:]:
            e = Binary("add", e, t)
        return [Decl(acc, e), Store(yf, (offset([n, s, j], [S * r, r, 1]),), acc)]

    return ctx.kernel("affine_grid", [yf], [tb, bb], nest(ctx, [y.shape[0], S, r], body))


def reflect_stmts(x: Var, lo: float, hi: float, tag: str) -> list[Stmt]:
    """Statements reflecting the float local ``x`` off ``lo`` and ``hi`` until inside
    (:func:`onnxcc.ops.sampling.reflect`)."""
    dt = x.dtype
    rng = hi - lo
    if rng <= 0:
        return [Assign(x, const(lo, dt))]
    c = lambda v: const(v, dt)   # noqa: E731
    below, above = Binary("lt", x, c(lo)), Binary("gt", x, c(hi))
    dx, n, r = Var(f"dx{tag}", dt), Var(f"nr{tag}", dt), Var(f"r{tag}", dt)
    even = Binary("eq", Binary("sub", n, Binary("mul", c(2.0), Unary("floor", Binary(
        "mul", n, c(0.5))))), c(0.0))
    lo_r, hi_r = Binary("add", c(lo), r), Binary("sub", c(hi), r)
    return [Decl(dx, Select(below, Binary("sub", c(lo), x), Binary("sub", x, c(hi)))),
            Decl(n, Unary("floor", Binary("div", dx, c(rng)))),
            Decl(r, Binary("sub", dx, Binary("mul", n, c(rng)))),
            Assign(x, Select(below, Select(even, lo_r, hi_r),
                              Select(above, Select(even, hi_r, lo_r), x)))]


def _supports_grid(node: Node) -> str | None:
    return _float_only(node)


@lower("GridSample", supports=_supports_grid)
def _lower_grid_sample(node: Node, ctx: LowerCtx):
    """Y (N, C, O...) = X sampled at grid (module docstring)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    mode, pad, align = grid_sample_params(node)
    X, G = node.inputs
    N, C, *S = X.shape
    r = len(S)
    out_sp = list(G.shape[1:-1])
    xb, gb, yb = ctx.input(0), ctx.input(1), ctx.output(0)
    ft = F64 if "float64" in (X.dtype.name, G.dtype.name) else F32
    c = lambda v: const(v, ft)   # noqa: E731

    def body(v: list) -> list[Stmt]:
        n, o = v[0], v[1:]
        stmts: list[Stmt] = []
        taps: list[list[tuple[Expr, Expr | None, Expr | None]]] = []   # (index, weight, valid)
        for a in range(r):
            L = S[a]
            lo, hi = borders(L, align)
            x = Var(f"u{a}", ft)
            g = Cast(gb[(n, *o, const(r - 1 - a, INDEX))], ft)
            g1 = Binary("add", g, c(1.0))
            den = Binary("mul", Binary("mul", g1, c(0.5)), c(L - 1.0)) if align else \
                Binary("mul", Binary("sub", Binary("mul", g1, c(float(L))), c(1.0)), c(0.5))
            stmts.append(Decl(x, den))
            if mode == "nearest":
                stmts.append(Assign(x, Unary("round", x)))
            out = Binary("or", Binary("lt", x, c(lo)), Binary("gt", x, c(hi)))
            if pad == "border" and mode != "cubic":
                stmts.append(Assign(x, Select(out, Binary("min", Binary("max", x, c(0.0)),
                                                            c(L - 1.0)), x)))
            elif pad == "reflection":
                stmts += reflect_stmts(x, lo, hi, f"_{a}")
            if mode == "nearest":
                base, offs, weights = x, [0], [None]
            else:
                f, t = Var(f"f{a}", ft), Var(f"t{a}", ft)
                stmts += [Decl(f, Unary("floor", x)), Decl(t, Binary("sub", x, f))]
                base = f
                if mode == "linear":
                    offs, weights = [0, 1], [Binary("sub", c(1.0), t), t]
                else:
                    offs, weights = [-1, 0, 1, 2], cubic_weights(_F(t, ft))
                    weights = [w.e for w in weights]
            b = Var(f"b{a}", INDEX)
            stmts.append(Decl(b, Cast(Binary("min", Binary("max", base, c(-8.0)),
                                                 c(L + 8.0)), INDEX)))
            axis_taps = []
            for k, (dk, w) in enumerate(zip(offs, weights)):
                j = Binary("add", b, const(dk, INDEX)) if dk else b
                tag = f"{a}_{k}"
                iv = Var(f"j{tag}", INDEX)
                ok = None
                if pad == "zeros":
                    okv = Var(f"ok{tag}", BOOL)
                    stmts.append(Decl(okv, Binary("and", Binary("ge", j, const(0, INDEX)),
                                                  Binary("lt", j, const(L, INDEX)))))
                    ok = okv
                    stmts.append(Decl(iv, j))
                elif pad == "border":
                    stmts.append(Decl(iv, j))
                else:
                    jf = Var(f"jf{tag}", ft)
                    stmts.append(Decl(jf, Cast(j, ft)))
                    stmts += reflect_stmts(jf, lo, hi, f"_{tag}")
                    stmts.append(Decl(iv, Cast(jf, INDEX)))
                wv = None
                if w is not None:
                    wv = Var(f"w{tag}", ft)
                    stmts.append(Decl(wv, w))
                axis_taps.append((clamp(iv, 0, L - 1), wv, ok))
            taps.append(axis_taps)
        ci = ctx.var("c")
        acc = Var("acc", ft)
        inner: list[Stmt] = [Decl(acc, c(0.0))]
        for combo in itertools.product(*taps):
            idx = tuple(t[0] for t in combo)
            oks = [t[2] for t in combo if t[2] is not None]
            mask = all_of(*oks)
            ld: Expr = Load(xb, (n, ci, *idx), mask, const(0, xb.dtype)) if mask is not None \
                else xb[(n, ci, *idx)]
            val: Expr = ld if xb.dtype == ft else Cast(ld, ft)
            ws = [t[1] for t in combo if t[1] is not None]
            for w in ws:
                val = Binary("mul", val, w)
            inner.append(Assign(acc, Binary("add", acc, val)))
        res: Expr = acc if yb.dtype == ft else Cast(acc, yb.dtype)
        inner.append(Store(yb, (n, ci, *o), res))
        return stmts + [Loop(ci, 0, C, inner)]

    return ctx.kernel("grid_sample", [yb], [xb, gb], nest(ctx, [N, *out_sp], body))


class _F:
    """A loop-IR float expression with the arithmetic :func:`cubic_weights` uses (Python numbers
    become constants of its dtype)."""

    def __init__(self, e: Expr, dt) -> None:
        self.e, self.dt = e, dt

    def _w(self, o) -> Expr:
        return o.e if isinstance(o, _F) else const(o, self.dt)

    def __add__(self, o): return _F(Binary("add", self.e, self._w(o)), self.dt)
    def __radd__(self, o): return _F(Binary("add", self._w(o), self.e), self.dt)
    def __sub__(self, o): return _F(Binary("sub", self.e, self._w(o)), self.dt)
    def __rsub__(self, o): return _F(Binary("sub", self._w(o), self.e), self.dt)
    def __mul__(self, o): return _F(Binary("mul", self.e, self._w(o)), self.dt)
    def __rmul__(self, o): return _F(Binary("mul", self._w(o), self.e), self.dt)


def _supports_deform(node: Node) -> str | None:
    for v in node.inputs:
        if v is not None and v.dtype.kind != "f":
            return f"DeformConv on {v.dtype.name} is not supported (float32/float64)"
    return None


@lower("DeformConv", supports=_supports_deform)
def _lower_deform_conv(node: Node, ctx: LowerCtx):
    """Y (N, M, O...) [n, g * M/G + q, o] = B + sum over the group's channels c and kernel taps k
    of W[., c - g C/G, k] * mask * the bilinear sample of X[n, c] at the tap's offset point
    (module docstring of :mod:`onnxcc.ops.sampling`). Per output element, channel and tap the
    point's 2^r neighbours are computed as GridSample's linear zeros taps."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    p = deform_conv_params(node)
    r, kernel, out, og, G = p["r"], p["kernel"], p["out"], p["offset_group"], p["group"]
    X, W = node.inputs[:2]
    N, C, *S = X.shape
    M, cg = W.shape[:2]
    K = math.prod(kernel)
    has_b = len(node.inputs) > 3 and node.inputs[3] is not None
    has_m = len(node.inputs) > 4 and node.inputs[4] is not None
    xb, wb, ob, yb = ctx.input(0), ctx.input(1), ctx.input(2), ctx.output(0)
    bb = ctx.input(3) if has_b else None
    mb = ctx.input(4) if has_m else None
    ft = F64 if X.dtype.name == "float64" else F32
    c = lambda v: const(v, ft)   # noqa: E731
    cpo = C // og

    def body(v: list) -> list[Stmt]:
        n, g, q, o = v[0], v[1], v[2], v[3:]
        oc = affine((g, M // G), (q, 1))
        acc = Var("acc", ft)
        init: Expr = c(0.0) if bb is None else \
            (bb[(oc,)] if bb.dtype == ft else Cast(bb[(oc,)], ft))
        ic, kv = ctx.var("ic"), [ctx.var("k") for _ in range(r)]
        ch = affine((g, cg), (ic, 1))
        ogv = Var("og", INDEX)
        kflat = affine(*[(kv[a], math.prod(kernel[a + 1:])) for a in range(r)])
        inner: list[Stmt] = [Decl(ogv, clamp(Binary("div", ch, const(cpo, INDEX)), 0, og - 1))]
        taps = []
        for a in range(r):
            u = Var(f"p{a}", ft)
            base = affine((o[a], p["strides"][a]), (kv[a], p["dilations"][a]), -p["pads"][a])
            och = clamp(Binary("add", Binary("mul", ogv, const(r * K, INDEX)),
                               affine((kflat, r), a)), 0, og * r * K - 1)
            offv = ob[(n, och, *o)]
            inner.append(Decl(u, Binary("add", Cast(base, ft),
                                        offv if ob.dtype == ft else Cast(offv, ft))))
            f, t, b = Var(f"f{a}", ft), Var(f"t{a}", ft), Var(f"b{a}", INDEX)
            inner += [Decl(f, Unary("floor", u)), Decl(t, Binary("sub", u, f)),
                      Decl(b, Cast(Binary("min", Binary("max", f, c(-8.0)), c(S[a] + 8.0)),
                                   INDEX))]
            axis_taps = []
            for d, w in ((0, Binary("sub", c(1.0), t)), (1, t)):
                j = Binary("add", b, const(d, INDEX)) if d else b
                ok = Binary("and", Binary("ge", j, const(0, INDEX)),
                            Binary("lt", j, const(S[a], INDEX)))
                okv, wv = Var(f"ok{a}_{d}", BOOL), Var(f"w{a}_{d}", ft)
                inner += [Decl(okv, ok), Decl(wv, w)]
                axis_taps.append((clamp(j, 0, S[a] - 1), wv, okv))
            taps.append(axis_taps)
        sv = Var("s", ft)
        inner.append(Decl(sv, c(0.0)))
        for combo in itertools.product(*taps):
            ld: Expr = Load(xb, (n, ch, *[t[0] for t in combo]), all_of(*[t[2] for t in combo]),
                            const(0, xb.dtype))
            val: Expr = ld if xb.dtype == ft else Cast(ld, ft)
            for t in combo:
                val = Binary("mul", val, t[1])
            inner.append(Assign(sv, Binary("add", sv, val)))
        wt: Expr = wb[(oc, ic, *kv)]
        wt = wt if wb.dtype == ft else Cast(wt, ft)
        term: Expr = Binary("mul", wt, sv)
        if mb is not None:
            mch = clamp(Binary("add", Binary("mul", ogv, const(K, INDEX)), kflat), 0, og * K - 1)
            mv: Expr = mb[(n, mch, *o)]
            term = Binary("mul", term, mv if mb.dtype == ft else Cast(mv, ft))
        inner.append(Assign(acc, Binary("add", acc, term)))
        loops: list[Stmt] = inner
        for a in reversed(range(r)):
            loops = [Loop(kv[a], 0, kernel[a], loops)]
        res: Expr = acc if yb.dtype == ft else Cast(acc, yb.dtype)
        return [Decl(acc, init), Loop(ic, 0, cg, loops), Store(yb, (n, oc, *o), res)]

    ins = [xb, wb, ob] + ([bb] if bb is not None else []) + ([mb] if mb is not None else [])
    return ctx.kernel("deform_conv", [yb], ins, nest(ctx, [N, G, M // G, *out], body))


def _supports_roi_align(node: Node) -> str | None:
    if node.inputs[0].dtype.kind != "f" or node.inputs[1].dtype.kind != "f":
        return "RoiAlign on integer data is not supported (float32/float64)"
    if int(attr(node, "sampling_ratio")) <= 0:
        return ("RoiAlign with sampling_ratio 0 (an adaptive grid whose size depends on the "
                "rois' values) is not supported: set sampling_ratio > 0")
    return None


@lower("RoiAlign", supports=_supports_roi_align)
def _lower_roi_align(node: Node, ctx: LowerCtx):
    """Y (R, C, oh, ow): per roi, channel and bin, the avg or max over its sampling_ratio^2
    points of their bilinear reads (comment above RoiAlign in :mod:`onnxcc.ops.sampling`). The
    roi's start and bin size per axis are computed per output element; each point's 4
    neighbours are clamped inside the access."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    mode, half, oh, ow, sr, scale = roi_align_params(node)
    X = node.inputs[0]
    N, C, H, W = X.shape
    R = node.inputs[1].shape[0]
    xb, rb, ib, yb = ctx.input(0), ctx.input(1), ctx.input(2), ctx.output(0)
    ft = xb.dtype
    c = lambda v: const(v, ft)   # noqa: E731
    o = 0.5 if half else 0.0

    def body(v: list) -> list[Stmt]:
        r, ch, ph, pw = v
        bv = Var("bidx", INDEX)
        jb = ib[(r,)]
        jc = clamp(jb, 0, N - 1)
        stmts: list[Stmt] = [Decl(bv, Cast(jc, INDEX) if jb.dtype != INDEX else jc)]
        starts, bins = [], []
        for a, (lo_col, hi_col, out) in enumerate(((1, 3, oh), (0, 2, ow))):
            st, sz = Var(f"start{a}", ft), Var(f"bin{a}", ft)
            lo = Binary("sub", Binary("mul", rb[(r, const(lo_col, INDEX))], c(scale)), c(o))
            hi = Binary("sub", Binary("mul", rb[(r, const(hi_col, INDEX))], c(scale)), c(o))
            size: Expr = Binary("sub", hi, Var(f"start{a}", ft))
            if not half:
                size = Binary("max", size, c(1.0))
            stmts += [Decl(st, lo), Decl(sz, Binary("div", size, c(float(out))))]
            starts.append(st)
            bins.append(sz)
        acc = Var("acc", ft)
        stmts.append(Decl(acc, c(0.0 if mode == "avg" else -np.inf)))
        iy, ix = ctx.var("iy"), ctx.var("ix")
        inner: list[Stmt] = []
        axes = []
        for a, (pv, gv, L) in enumerate(((ph, iy, H), (pw, ix, W))):
            u = Var(f"u{a}", ft)
            pos = Binary("add", Binary("add", starts[a], Binary("mul", Cast(pv, ft), bins[a])),
                         Binary("div", Binary("mul", Binary("add", Cast(gv, ft), c(0.5)),
                                              bins[a]), c(float(sr))))
            inner.append(Decl(u, pos))
            vc, tr = Var(f"vc{a}", ft), Var(f"tr{a}", ft)
            lo, hi, fr = Var(f"lo{a}", INDEX), Var(f"hi{a}", INDEX), Var(f"fr{a}", ft)
            last = Binary("ge", tr, c(L - 1.0))
            inner += [Decl(vc, Binary("min", Binary("max", u, c(0.0)), c(float(L)))),
                      Decl(tr, Unary("floor", vc)),
                      Decl(lo, Cast(Binary("min", tr, c(L - 1.0)), INDEX)),
                      Decl(hi, Select(last, lo, Binary("add", lo, const(1, INDEX)))),
                      Decl(fr, Select(last, c(0.0), Binary("sub", vc, Cast(lo, ft))))]
            axes.append((u, clamp(lo, 0, L - 1), clamp(hi, 0, L - 1), fr, L))
        (uy, yl, yh, ly, _), (ux, xl, xh, lx, _) = axes
        inside = all_of(Binary("ge", uy, c(-1.0)), Binary("le", uy, c(float(H))),
                        Binary("ge", ux, c(-1.0)), Binary("le", ux, c(float(W))))
        hy, hx = Binary("sub", c(1.0), ly), Binary("sub", c(1.0), lx)
        terms = [Binary("mul", Binary("mul", wy, wx), xb[(clamp(bv, 0, N - 1), ch, yi, xi)])
                 for wy, yi in ((hy, yl), (ly, yh)) for wx, xi in ((hx, xl), (lx, xh))]
        if mode == "avg":
            val: Expr = Binary("add", Binary("add", terms[0], terms[1]),
                               Binary("add", terms[2], terms[3]))
            new: Expr = Binary("add", acc, Select(inside, val, c(0.0)))
        else:
            val = Binary("max", Binary("max", terms[0], terms[1]),
                         Binary("max", terms[2], terms[3]))
            new = Binary("max", acc, Select(inside, val, c(0.0)))
        inner.append(Assign(acc, new))
        res: Expr = Binary("div", acc, c(float(sr * sr))) if mode == "avg" else acc
        return stmts + [Loop(iy, 0, sr, [Loop(ix, 0, sr, inner)]),
                        Store(yb, (r, ch, ph, pw), res)]

    return ctx.kernel("roi_align", [yb], [xb, rb, ib], nest(ctx, [R, C, oh, ow], body))


@lower("Col2Im")
def _lower_col2im(node: Node, ctx: LowerCtx):
    """image (N, C, *image) = 0, then per (n, c, block offset k, position l) the column value
    added at ``l stride - pad_begin + k dilation`` when inside the image (the comment above
    Col2Im in :mod:`onnxcc.ops.sampling`)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    p = col2im_params(node)
    image, block, n = p["image"], p["block"], p["n"]
    r = len(image)
    N, C = y.shape[:2]
    B = math.prod(block)
    xb, yb = ctx.input(0), ctx.output(0)
    zero = nest(ctx, y.shape, lambda v: [Store(yb, tuple(v), const(0, yb.dtype))], "z")

    def body(v: list) -> list[Stmt]:
        nn, c, k, ll = v[0], v[1], v[2:2 + r], v[2 + r:]
        pos = [affine((ll[a], p["strides"][a]), (k[a], p["dilations"][a]), -p["pads"][a])
               for a in range(r)]
        ch = affine((c, B), *[(k[a], math.prod(block[a + 1:])) for a in range(r)])
        col = affine(*[(ll[a], math.prod(n[a + 1:])) for a in range(r)])
        inside = all_of(*[Binary("and", Binary("ge", pos[a], const(0, INDEX)),
                                 Binary("lt", pos[a], const(image[a], INDEX)))
                          for a in range(r)])
        idx = (nn, c, *pos)
        add = Store(yb, idx, Binary("add", yb[idx], xb[(nn, ch, col)]))
        return [If(inside, [add])]

    return ctx.kernel("col2im", [yb], [xb], zero + nest(ctx, [N, C, *block, *n], body))


def _supports_max_unpool(node: Node) -> str | None:
    if node.inputs[1].dtype.kind not in "iu":
        return f"indices of dtype {node.inputs[1].dtype.name} are not supported"
    return None


@lower("MaxUnpool", supports=_supports_max_unpool)
def _lower_max_unpool(node: Node, ctx: LowerCtx):
    """Y = 0, then per element e of X (row-major): the flat index j = I[e] (clamped into the
    unpooled tensor) split into the unpooled shape's coordinates (``(j // stride) % dim`` per
    axis) and X[e] stored there (the comment above MaxUnpool in :mod:`onnxcc.ops.sampling`)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    inferred, shape = max_unpool_shapes(node)
    T = math.prod(inferred)
    X = node.inputs[0]
    xb, ib, yb = ctx.input(0), ctx.input(1), ctx.output(0)
    body: list[Stmt] = nest(ctx, shape, lambda v: [Store(yb, tuple(v), const(0, yb.dtype))], "z")
    if X.type.size == 0 or T == 0:
        return ctx.kernel("max_unpool", [yb], [], body)

    def scatter(v: list) -> list[Stmt]:
        jl = ib[tuple(v)]
        j = Var("j", INDEX)
        jc = clamp(jl, 0, T - 1)
        coords = [clamp(Binary("mod", Binary("div", j, const(math.prod(inferred[a + 1:]), INDEX)),
                               const(inferred[a], INDEX)), 0, inferred[a] - 1)
                  for a in range(len(inferred))]
        return [Decl(j, Cast(jc, INDEX) if jl.dtype != INDEX else jc),
                Store(yb, tuple(coords), xb[tuple(v)])]

    body += nest(ctx, X.shape, scatter)
    return ctx.kernel("max_unpool", [yb], [xb, ib], body)
