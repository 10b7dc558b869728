"""Signal ops as loop IR.

Window functions: their values depend on the compile-time size only, so the kernel writes a table
computed by the op's reference (the lowering of Shape/Size/ConstantOfShape,
:func:`onnxcc.codegen.lower.tensor._lower_known`: a fill loop for a splat, else a copy of a weight
table). Constant folding normally removes these nodes first.

DFT and STFT (semantics in :mod:`onnxcc.ops.signal`): a direct O(L^2) transform. The L
twiddles ``cos`` and ``sin`` of ``2 pi m / L`` are computed at compile time in float64 into two
weight tables of L entries in the signal's dtype, with the sign of the direction and the 1/L of
an inverse folded in (a one-sided inverse also reads the factor 1 or 2 of each input bin from a
table); output bin k reads entry ``m = (k n) mod L`` for input sample n, kept as a running index
(``m += k``, minus L when it reaches L: no multiply or division per term). Per output position and
bin, two accumulators in the signal's dtype (float64 for float64) sum ``re += xr C - xi S`` and
``im += xr S + xi C`` over the input samples (xi absent for a real signal; only re stored for a
one-sided inverse). STFT reads each frame's samples at ``f * frame_step + n`` times the window (a
run-time input) and transforms it forward.

CausalConvWithState: a depthwise causal FIR filter per (batch, channel, step), reading the
state-padded signal through two masked loads (past_state before step k - 1, input after), then
the present state copied the same way.
"""

from __future__ import annotations


import numpy as np

from onnxcc.codegen.loops import (F32, INDEX, Assign, Binary, Buffer, Cast, Const, Decl, DType,
                                  Expr, Load, Loop, Select, Stmt, Store, Unary, Var, affine,
                                  const)
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops.signal import causal_conv_shapes, dft_params, mel_sizes, stft_params

from . import LowerCtx, lower, nest
from .tensor import _lower_known, clamp

lower("HannWindow", "HammingWindow", "BlackmanWindow")(_lower_known)


def twiddles(L: int, sign: float, scale: float, dt) -> tuple[np.ndarray, np.ndarray]:
    """(C, S) of L entries: ``scale * cos(2 pi m / L)`` and ``sign * scale * sin(2 pi m / L)``,
    computed in float64 and stored in ``dt``."""
    theta = 2 * np.pi * np.arange(L) / L
    return ((scale * np.cos(theta)).astype(dt), (sign * scale * np.sin(theta)).astype(dt))


def _float_signal(node: Node) -> str | None:
    if node.inputs[0].dtype.kind != "f":
        return f"{node.op} on {node.inputs[0].dtype.name} is not supported (float32/float64)"
    return None


def _tables(ctx: LowerCtx, C: np.ndarray, S: np.ndarray, dt) -> tuple[Buffer, Buffer]:
    return (Buffer("tw_cos", dt, C.shape, space="weight", data=np.ascontiguousarray(C).reshape(-1)),
            Buffer("tw_sin", dt, S.shape, space="weight", data=np.ascontiguousarray(S).reshape(-1)))


def _accumulate(k: Var, n_in: int, L: int, ctx: LowerCtx, sample, cb: Buffer, sb: Buffer,
                dt, complex_in: bool, want_im: bool, store) -> list[Stmt]:
    """Decl re/im; for n < n_in (m = (k n) mod L): re += xr C[m] - xi S[m], im += xr S[m] +
    xi C[m]; then ``store(re, im)``. Needs 0 <= k < L."""
    re, im, m = Var("re", dt), Var("im", dt), Var("m", INDEX)
    n = ctx.var("n")
    xr, xi = sample(n)
    mi = clamp(m, 0, L - 1)
    c, s = cb[(mi,)], sb[(mi,)]
    upd_re: Expr = Binary("add", re, Binary("mul", xr, c))
    upd_im: Expr = Binary("add", im, Binary("mul", xr, s))
    if complex_in:
        upd_re = Binary("sub", upd_re, Binary("mul", xi, s))
        upd_im = Binary("add", upd_im, Binary("mul", xi, c))
    step = Binary("add", m, k)
    body: list[Stmt] = [Assign(re, upd_re)] + ([Assign(im, upd_im)] if want_im else []) + [
        Assign(m, Select(Binary("ge", step, const(L, INDEX)),
                         Binary("sub", step, const(L, INDEX)), step))]
    return ([Decl(re, const(0, dt))] + ([Decl(im, const(0, dt))] if want_im else [])
            + [Decl(m, const(0, INDEX)), Loop(n, 0, n_in, body)] + store(re, im))


@lower("DFT", supports=_float_signal)
def _lower_dft(node: Node, ctx: LowerCtx):
    """y = the DFT of x along the axis (module docstring)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    axis, L, inverse, onesided = dft_params(node)
    x = node.inputs[0]
    xb, yb = ctx.input(0), ctx.output(0)
    dt = xb.dtype
    n_out = y.shape[axis]
    kb = None
    if inverse and onesided:       # irfft: bins k <= L/2 of a Hermitian spectrum
        n_in = min(x.shape[axis], L // 2 + 1)
        kk = np.arange(n_in)
        ck = np.where((kk == 0) | (2 * kk == L), 1.0, 2.0).astype(dt.np)
        kb = Buffer("bin_scale", dt, (n_in,), space="weight", data=ck)
        C, S = twiddles(L, 1.0, 1.0 / L, dt.np)
    else:
        n_in = min(x.shape[axis], L)
        C, S = twiddles(L, 1.0 if inverse else -1.0, 1.0 / L if inverse else 1.0, dt.np)
    cb, sb = _tables(ctx, C, S, dt)
    complex_in, want_im = x.shape[-1] == 2, y.shape[-1] == 2
    r = len(x.shape)
    outer = [d for a, d in enumerate(y.shape) if a not in (axis, r - 1)]
    if x.type.size == 0 or n_in == 0:
        n_in = 0

    def body(v: list) -> list[Stmt]:
        k = ctx.var("k")

        def at(pos: Expr, last: int) -> tuple:
            idx = list(v)
            idx.insert(axis, pos)
            return (*idx, const(last, INDEX))

        def sample(n: Var):
            xr, xi = xb[at(n, 0)], (xb[at(n, 1)] if complex_in else None)
            if kb is not None:
                xr = Binary("mul", xr, kb[(n,)])
                xi = Binary("mul", xi, kb[(n,)]) if xi is not None else None
            return xr, xi

        def store(re: Var, im: Var) -> list[Stmt]:
            out = [Store(yb, at(k, 0), re)]
            return out + ([Store(yb, at(k, 1), im)] if want_im else [])

        return [Loop(k, 0, n_out, _accumulate(k, n_in, L, ctx, sample, cb, sb, dt, complex_in,
                                              want_im, store))]

    ins = ([xb, cb, sb] + ([kb] if kb is not None else [])) if n_in else []
    return ctx.kernel("dft", [yb], ins, nest(ctx, outer or [1], body if outer else
                                              (lambda v: body([]))))


@lower("STFT", supports=_float_signal)
def _lower_stft(node: Node, ctx: LowerCtx):
    """y (B, frames, bins, 2) = the DFT of each windowed frame (module docstring)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    step, W, L, frames = stft_params(node)
    x = node.inputs[0]
    xb, yb = ctx.input(0), ctx.output(0)
    dt = xb.dtype
    bins = y.shape[2]
    n_in = min(W, L)
    C, S = twiddles(L, -1.0, 1.0, dt.np)
    cb, sb = _tables(ctx, C, S, dt)
    wb = ctx.input(2) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    complex_in = x.shape[-1] == 2

    def body(v: list) -> list[Stmt]:
        b, f = v
        k = ctx.var("k")

        def sample(n: Var):
            t = affine((f, step), (n, 1))
            xr: Expr = xb[(b, t, const(0, INDEX))]
            xi = xb[(b, t, const(1, INDEX))] if complex_in else None
            if wb is not None:
                xr = Binary("mul", xr, wb[(n,)])
                xi = Binary("mul", xi, wb[(n,)]) if xi is not None else None
            return xr, xi

        def store(re: Var, im: Var) -> list[Stmt]:
            return [Store(yb, (b, f, k, const(0, INDEX)), re),
                    Store(yb, (b, f, k, const(1, INDEX)), im)]

        return [Loop(k, 0, bins, _accumulate(k, n_in, L, ctx, sample, cb, sb, dt, complex_in,
                                             True, store))]

    ins = [xb, cb, sb] + ([wb] if wb is not None else [])
    return ctx.kernel("stft", [yb], ins, nest(ctx, [x.shape[0], frames], body))


def _float_data(node: Node) -> str | None:
    if node.inputs[0].dtype.kind != "f":
        return f"{node.op} on {node.inputs[0].dtype.name} is not supported (float32/float64)"
    return None


@lower("CausalConvWithState", supports=_float_data)
def _lower_causal_conv(node: Node, ctx: LowerCtx):
    """output[b, c, t] = act(bias[c] + sum_j w[c, 0, j] padded[b, c, t + j]) and present_state
    = the last k - 1 steps of padded, where padded step p reads past_state[p] for p < k - 1
    (0 when omitted) and input[p - (k - 1)] after: two masked loads, one of them live."""
    B, C, L, k = causal_conv_shapes(node)
    xb, wb, yb = ctx.input(0), ctx.input(1), ctx.output(0)
    dt = xb.dtype
    has_b = len(node.inputs) > 2 and node.inputs[2] is not None
    has_p = len(node.inputs) > 3 and node.inputs[3] is not None
    bb = ctx.input(2) if has_b else None
    pb = ctx.input(3) if has_p else None
    K1 = k - 1

    def padded(b: Expr, c: Expr, p: Expr) -> Expr:
        xi = Binary("sub", p, const(K1, INDEX)) if K1 else p
        e: Expr = Load(xb, (b, c, xi), Binary("ge", xi, const(0, INDEX)), const(0, dt)) \
            if K1 else xb[(b, c, xi)]
        if pb is not None and K1:
            e = Binary("add", e, Load(pb, (b, c, p), Binary("lt", p, const(K1, INDEX)),
                                      const(0, dt)))
        return e

    def out(v: list) -> list[Stmt]:
        b, c, t = v
        acc, j = Var("acc", dt), ctx.var("j")
        init: Expr = const(0, dt) if bb is None else bb[(c,)]
        body = [Assign(acc, Binary("add", acc, Binary("mul", wb[(c, const(0, INDEX), j)],
                                                      padded(b, c, affine(t, j)))))]
        res: Expr = acc
        if attr(node, "activation") in ("silu", "swish"):
            f = acc if dt.name == "float32" else Cast(acc, F32)
            sil: Expr = Binary("div", f, Binary("add", const(1, F32),
                                                Unary("exp", Unary("neg", f))))
            res = sil if dt.name == "float32" else Cast(sil, dt)
        return [Decl(acc, init), Loop(j, 0, k, body), Store(yb, (b, c, t), res)]

    body = nest(ctx, [B, C, L], out) if L else []
    outs, ins = [yb], [xb, wb] + ([bb] if bb is not None else []) + \
        ([pb] if pb is not None else [])
    if K1 and node.outputs[1] is not None:
        sb = ctx.output(1)
        outs.append(sb)
        body += nest(ctx, [B, C, K1], lambda v: [Store(sb, tuple(v), padded(
            v[0], v[1], affine(v[2], L)))], "s")
    if not body:
        return None
    return ctx.kernel("causal_conv", outs, ins, body)


# ---- MelWeightMatrix ----------------------------------------------------------------------------
def _supports_mel(node: Node) -> str | None:
    if node.inputs[3].dtype.name not in ("float32", "float64") or \
            node.inputs[4].dtype != node.inputs[3].dtype:
        return (f"edges of {node.inputs[3].dtype.name}/{node.inputs[4].dtype.name} are not "
                "supported (float32 or float64, both the same)")
    if node.outputs[0].dtype.name == "float16":
        return "a float16 output_datatype is not supported"
    return None


@lower("MelWeightMatrix", supports=_supports_mel)
def _lower_mel(node: Node, ctx: LowerCtx):
    """MelWeightMatrix (:class:`onnxcc.ops.signal.MelWeightMatrix`) from sample_rate and the
    edges read at run time: the num_mel_bins + 2 corners into a local float64 row ``bins``
    (:func:`onnxcc.ops.signal.mel_bins`'s arithmetic in its dtypes: the mel of an edge in the
    edges' type, the rest in float64, the floor division as numpy's: fmod, then a correction
    toward floor), then every output (j, i) from corners i, i + 1, i + 2 compared as float64
    (no conversion of an out-of-range corner to an integer)."""
    M, n = mel_sizes(node)
    N = n // 2 + 1
    f64 = DType("float64")
    et = ctx.input(3).dtype
    srb, lob, hib = ctx.input(2), ctx.input(3), ctx.input(4)
    yb = ctx.output(0)
    ins = [srb, lob, hib]

    def scalar(b: Buffer) -> Expr:
        return b[tuple(Const(0) for _ in b.shape)]

    def mel(edge: Expr) -> Expr:   # 2595 * log1p(edge / 700) in the edge's type, / ln 10
        m = Binary("mul", const(2595, et), Unary("log1p", Binary("div", edge, const(700, et))))
        return Binary("div", m if et == f64 else Cast(m, f64), const(np.log(10), f64))

    lm, hm, step, sr = Var("mel_lo", f64), Var("mel_hi", f64), Var("mel_step", f64), Var("sr", f64)
    bins = Buffer("bins", f64, (M + 2,), space="local")
    k, i, j = ctx.var("k"), ctx.var("i"), ctx.var("j")
    a, md, dv, fl = Var("a", f64), Var("md", f64), Var("dv", f64), Var("fl", f64)
    zero, one = const(0, f64), const(1, f64)
    hz = Binary("mul", const(700, f64), Unary("expm1", Binary("mul", Binary(
        "div", Binary("add", Binary("mul", Cast(k, f64), step), lm), const(2595, f64)),
        const(np.log(10), f64))))
    srv = scalar(srb)
    body: list[Stmt] = [
        Decl(lm, mel(scalar(lob))), Decl(hm, mel(scalar(hib))),
        Decl(step, Binary("div", Binary("sub", hm, lm), const(M + 2, f64))),
        Decl(sr, srv if srv.dtype == f64 else Cast(srv, f64)),
        # bins[k] = floor((dft_length + 1) * hz / sr) as numpy's float floor division
        Loop(k, 0, M + 2, [
            Decl(a, Binary("mul", const(n + 1, f64), hz)),
            Decl(md, Binary("mod", a, sr)),
            Decl(dv, Binary("div", Binary("sub", a, md), sr)),
            Assign(dv, Select(Binary("or", Binary("and", Binary("lt", sr, zero),
                                                  Binary("gt", md, zero)),
                                     Binary("and", Binary("gt", sr, zero),
                                                  Binary("lt", md, zero))), dv - one, dv)),
            Decl(fl, Unary("floor", dv)),
            Store(bins, (k,), Select(Binary("gt", dv - fl, const(0.5, f64)), fl + one, fl))])]
    lo, c, h, jf = Var("lo", f64), Var("c", f64), Var("h", f64), Var("jf", f64)
    up = Select(Binary("eq", c, lo), Select(Binary("eq", jf, c), one, zero),
                Select(Binary("and", Binary("le", lo, jf), Binary("le", jf, c)),
                       (jf - lo) / (c - lo), zero))
    down = Binary("and", Binary("gt", h, c), Binary("and", Binary("le", c, jf),
                                                    Binary("lt", jf, h)))
    v = Select(down, (h - jf) / (h - c), up)
    body.append(Loop(i, 0, M, [
        Decl(lo, bins[(i,)]), Decl(c, bins[(affine(i, 1),)]), Decl(h, bins[(affine(i, 2),)]),
        Loop(j, 0, N, [Decl(jf, Cast(j, f64)),
                       Store(yb, (j, i), v if yb.dtype == f64 else Cast(v, yb.dtype))])]))
    text = f"MelWeightMatrix: {M} mel bins over {N} spectrogram bins"
    return ctx.kernel("mel_weight_matrix", [yb], ins, body, comment=text, locals=[bins])
