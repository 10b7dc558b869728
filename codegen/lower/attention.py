"""Transformer ops as loop IR: Attention, LinearAttention, RMSNormalization, RotaryEmbedding.

Tensors are read through flat views with element strides (a splat constant has strides 0), so
the 3-D forms of Attention and RotaryEmbedding ((batch, seq, heads * size)) are the 4-D ones
((batch, heads, seq, size)) with other strides: :func:`head_strides`. Arithmetic is in the
input's dtype (float32 or float64), as the op references compute. RMSNormalization is
LayerNormalization's kernel without the mean (:func:`~onnxcc.codegen.lower.norm.normalize_trailing`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from onnxcc.codegen.loops import (BOOL, INDEX, Assign, Binary, Buffer, Cast, Decl, Expr, Loop,
                                  Select, Stmt, Store, Unary, Var, affine, const)
from onnxcc.ir import Node, Value
from onnxcc.ops import attr
from onnxcc.ops._util import has_input
from onnxcc.ops.attention import (attention_dims, attention_scale, attention_window,
                                  linear_attention_dims, linear_attention_rule,
                                  linear_attention_scale, rotary_dims)

from . import LowerCtx, broadcast_view, lower
from .norm import normalize_trailing
from .tensor import clamp, copy_nest, flat, offset

FLOATS = ("float32", "float64")


def head_strides(b: Buffer, rank3: bool, size: int) -> list[int]:
    """Element strides of ``b`` seen as (batch, heads, seq, size): its own strides when 4-D;
    for a 3-D (batch, seq, heads * size) buffer, head h starts ``h * size`` elements into a
    row."""
    if not rank3:
        return list(b.strides)
    s0, s1, s2 = b.strides
    return [s0, size * s2, s1, s2]


def _float_reason(node: Node, values: Sequence[Value | None]) -> str | None:
    dts = {v.dtype.name for v in values if v is not None}
    if len(dts) != 1 or not dts <= set(FLOATS):
        return f"{node.op} on {'/'.join(sorted(dts))} is not supported (one of float32/float64)"
    return None


# ---- Attention --------------------------------------------------------------------------------
def _supports_attention(node: Node) -> str | None:
    ins = node.inputs
    why = _float_reason(node, [ins[0], ins[1], ins[2], *(ins[4:6] if len(ins) > 4 else []),
                               *[o for o in node.outputs if o is not None]])
    if why:
        return why
    if has_input(node, 3) and ins[3].dtype != np.bool_ and ins[3].dtype != ins[0].dtype:
        return f"attn_mask of {ins[3].dtype.name} with Q of {ins[0].dtype.name}"
    if has_input(node, 6) and ins[6].dtype.kind not in "iu":
        return f"nonpad_kv_seqlen of {ins[6].dtype.name} is not supported"
    return None


@lower("Attention", supports=_supports_attention)
def _lower_attention(node: Node, ctx: LowerCtx):
    """Q (B, Hq, S, D), K/V (B, Hkv, T, D/Dv) (or their 3-D forms, :func:`head_strides`),
    past_key/past_value (B, Hkv, P, ·) ahead of K/V. Per batch b, key/value head g, query head
    h = g * rep + r (rep = Hq / Hkv) and query i, with a local row ``sc`` of L = P + T scores:
    sc[j] = sum_d (Q*s)(K_j*s) (s = sqrt(scale)); soft-capped; masked to -inf where the bool
    mask, the mask's padding, causality, the window or nonpad_kv_seqlen forbid j, else plus the
    float mask; softmax over j (0 for a row with no key left); Y = sum_j sc[j] V_j. present_key
    and present_value are copies of the concatenations; qk_matmul_output is the row at the step
    ``qk_matmul_output_mode`` names (as :class:`onnxcc.ops.attention.Attention`)."""
    d = attention_dims(node)
    if node.outputs[0].type.size == 0:
        return None
    dt = ctx.input(0).dtype
    rep = d.Hq // d.Hkv
    qb, kb, vb = ctx.input(0), ctx.input(1), ctx.input(2)
    qf, kf, vf = flat(qb), flat(kb), flat(vb)
    qs, ks, vs = (head_strides(qb, d.rank3, d.D), head_strides(kb, d.rank3, d.D),
                  head_strides(vb, d.rank3, d.Dv))
    ins = [qf, kf, vf]
    past = has_input(node, 4)
    if past:
        pkb, pvb = ctx.input(4), ctx.input(5)
        pkf, pvf = flat(pkb), flat(pvb)
        ins += [pkf, pvf]
    yb = ctx.output(0)
    yf, ys = flat(yb), head_strides(yb, d.rank3, d.Dv)
    outs = [yf]
    body: list[Stmt] = []

    def out(k: int) -> Buffer | None:
        if k < len(node.outputs) and node.outputs[k] is not None:
            return ctx.output(k, f"y{k}")
        return None

    # present_key / present_value: the past rows, then the new ones
    for k, (new, nst, pst, size) in enumerate(((kf, ks, (pkf, pkb.strides) if past else None, d.D),
                                               (vf, vs, (pvf, pvb.strides) if past else None,
                                                d.Dv)), 1):
        ob = out(k)
        if ob is None:
            continue
        of = flat(ob)
        outs.append(of)
        if past:
            body += copy_nest(ctx, (d.B, d.Hkv, d.P, size), of, ob.strides, 0, *pst, 0)
        body += copy_nest(ctx, (d.B, d.Hkv, d.T, size), of, ob.strides, d.P * ob.strides[2],
                          new, nst, 0)
    qkb = out(3)
    qkf = flat(qkb) if qkb is not None else None
    if qkf is not None:
        outs.append(qkf)
    mode = attr(node, "qk_matmul_output_mode")

    b, g, r, i = ctx.var("b"), ctx.var("g"), ctx.var("r"), ctx.var("i")
    h = affine((g, rep), r)
    j, e, t = ctx.var("j"), ctx.var("e"), ctx.var("d")
    sc = Buffer("sc", dt, (max(d.L, 1),), space="local")
    s = const(float(attention_scale(node, d, dt.np)), dt)
    acc, x, mx, tot, live = (Var("acc", dt), Var("x", dt), Var("mx", dt), Var("tot", dt),
                             Var("live", BOOL))
    ninf = const(-np.inf, dt)

    def q_at(dd: Expr) -> Expr:
        return qf[offset([b, h, i, dd], qs)]

    def dot(src: Buffer, st: Sequence[int], row: Expr) -> list[Stmt]:
        """sc[j] = sum_d (Q[b, h, i, d] * s) * (src[b, g, row, d] * s)."""
        term = (q_at(t) * s) * (src[offset([b, g, row, t], st)] * s)
        return [Decl(acc, const(0, dt)), Loop(t, 0, d.D, [Assign(acc, acc + term)]),
                Store(sc, (j,), acc)]

    row: list[Stmt] = []
    if past:
        row.append(Loop(j, 0, d.P, dot(pkf, pkb.strides, j)))
    row.append(Loop(j, d.P, d.L, dot(kf, ks, affine(j, -d.P))))

    # the bias of key j: conditions it must meet, and the float mask's term
    conds: list[Expr] = []
    add: Expr | None = None
    causal_off: Expr = const(d.P, INDEX)
    per_b: list[Stmt] = []
    if has_input(node, 6):
        nb = flat(ctx.input(6))
        ins.append(nb)
        nv = Var("nonpad", INDEX)
        per_b.append(Decl(nv, Cast(nb[b], INDEX) if nb.dtype != INDEX else nb[b]))
        conds.append(Binary("lt", j, nv))
        causal_off = affine(nv, -d.S)
    if has_input(node, 3):
        mb = broadcast_view(ctx.input(3), (d.B, d.Hq, d.S, d.Lm))
        mf = flat(mb)
        ins.append(mf)
        jm = j if d.Lm == d.L else clamp(j, 0, d.Lm - 1)
        mval = mf[offset([b, h, i, jm], mb.strides)]
        if d.Lm < d.L:
            conds.append(Binary("lt", j, const(d.Lm, INDEX)))
        if mf.dtype.name == "bool":
            conds.append(mval)
        else:
            add = mval
    pos = Binary("add", i, causal_off)     # the query's position among the keys
    if attr(node, "is_causal"):
        conds.append(Binary("le", j, pos))
    left, right = attention_window(node)
    if left >= 0:
        conds.append(Binary("le", Binary("sub", pos, j), const(left, INDEX)))
    if right >= 0:
        conds.append(Binary("le", Binary("sub", j, pos), const(right, INDEX)))
    cond: Expr | None = None
    for c in conds:
        cond = c if cond is None else Binary("and", cond, c)

    def qk_store(v: Expr) -> list[Stmt]:
        return [Store(qkf, (offset([b, h, i, j], qkb.strides),), v)] if qkf is not None else []

    cap = float(attr(node, "softcap") or 0.0)
    bias: list[Stmt] = [Decl(x, sc[j])]
    if cap > 0:
        c = const(cap, dt)
        bias.append(Assign(x, Unary("tanh", x / c) * c))
    if mode in (0, 1):
        bias += qk_store(x)
    v: Expr = x if add is None else x + add
    if cond is not None:
        v = Select(cond, v, ninf)
    bias += [Assign(x, v), Store(sc, (j,), x)]
    if mode == 2:
        bias += qk_store(x)
    masked = cond is not None or add is not None
    if masked:   # a row whose every key is masked gives zeros (decided on the bias, as the spec)
        ok = cond if add is None else (Binary("gt", add, ninf) if cond is None else
                                       Binary("and", cond, Binary("gt", add, ninf)))
        bias.append(Assign(live, Binary("or", live, ok)))
    # a max that skips NaN, as the softmax lowering (a NaN makes the sum NaN anyway)
    bias.append(Assign(mx, Select(Binary("gt", x, mx), x, mx)))
    row += ([Decl(live, const(False, BOOL))] if masked else []) + [Decl(mx, ninf),
                                                                     Loop(j, 0, d.L, bias)]
    # an infinite max shifts by 0 (a fully masked row: every exp is 0)
    row.append(Assign(mx, Select(Binary("eq", mx - mx, const(0, dt)), mx, const(0, dt))))
    row += [Decl(tot, const(0, dt)),
            Loop(j, 0, d.L, [Store(sc, (j,), Unary("exp", sc[j] - mx)),
                             Assign(tot, tot + sc[j])]),
            Assign(tot, Select(Binary("eq", tot, const(0, dt)), const(1, dt), tot))]
    p: Expr = sc[j] / tot
    if masked:
        p = Select(live, p, const(0, dt))
    row.append(Loop(j, 0, d.L, [Store(sc, (j,), p)] + (qk_store(sc[j]) if mode == 3 else [])))
    # Y[b, h, i, e] = sum_j p_j V[b, g, j, e]
    pv: list[Stmt] = [Decl(acc, const(0, dt))]
    if past:
        pv.append(Loop(j, 0, d.P, [Assign(acc, acc + sc[j] * pvf[offset([b, g, j, e],
                                                                        pvb.strides)])]))
    pv.append(Loop(j, d.P, d.L, [Assign(acc, acc + sc[j] * vf[offset(
        [b, g, affine(j, -d.P), e], vs)])]))
    pv.append(Store(yf, (offset([b, h, i, e], ys),), acc))
    row.append(Loop(e, 0, d.Dv, pv))
    body.append(Loop(b, 0, d.B, per_b + [Loop(g, 0, d.Hkv, [Loop(r, 0, rep, [
        Loop(i, 0, d.S, row)])])]))
    text = (f"attention: B={d.B} heads {d.Hq}/{d.Hkv} q_len {d.S} kv_len {d.P}+{d.T} "
            f"head size {d.D}/{d.Dv}")
    return ctx.kernel("attention", outs, ins, body, comment=text, locals=[sc])


# ---- LinearAttention --------------------------------------------------------------------------
def _supports_linear_attention(node: Node) -> str | None:
    return _float_reason(node, [*[v for v in node.inputs if v is not None],
                                *[o for o in node.outputs if o is not None]])


@lower("LinearAttention", supports=_supports_linear_attention)
def _lower_linear_attention(node: Node, ctx: LowerCtx):
    """query (B, T, Hq*Dk), key (B, T, Hkv*Dk), value (B, T, Hkv*Dv), past_state
    (B, Hkv, Dk, Dv), decay (B, T, Hkv*Dk or Hkv), beta (B, T, Hkv or 1), read through flat
    views. Per batch b and key/value head g the state S (Dk, Dv) lives in present_state (a
    local array when that output is dropped), starts as past_state (or zeros) and per token t:
    S[d, :] *= exp(g[d]) (gated rules); u = beta * (v - S^T k) (delta rules: a local row of
    Dv) else u = v; S += k u^T; then for each query head h = g * rep + r,
    output[b, t, h*Dv + m] = scale * sum_d q[b, t, h*Dk + d] S[d, m]
    (as :class:`onnxcc.ops.attention.LinearAttention`)."""
    d = linear_attention_dims(node)
    gating, delta = linear_attention_rule(node)
    dt = ctx.input(0).dtype
    qb, kb, vb = ctx.input(0), ctx.input(1), ctx.input(2)
    qf, kf, vf = flat(qb), flat(kb), flat(vb)
    ins = [qf, kf, vf]
    yb = ctx.output(0)
    yf = flat(yb)
    outs = [yf]
    locs: list[Buffer] = []
    b, g, t, r = ctx.var("b"), ctx.var("g"), ctx.var("t"), ctx.var("r")
    i, m = ctx.var("d"), ctx.var("m")
    if len(node.outputs) > 1 and node.outputs[1] is not None:
        sb = ctx.output(1, "state")
        sf = flat(sb)
        outs.append(sf)

        def st(dd: Expr, mm: Expr) -> tuple[Buffer, tuple[Expr]]:
            return sf, (offset([b, g, dd, mm], sb.strides),)
    else:
        sl = Buffer("state", dt, (d.Dk * d.Dv,), space="local")
        locs.append(sl)

        def st(dd: Expr, mm: Expr) -> tuple[Buffer, tuple[Expr]]:
            return sl, (affine((dd, d.Dv), mm),)

    def s_at(dd: Expr, mm: Expr) -> Expr:
        buf, idx = st(dd, mm)
        return buf[idx]

    def s_set(dd: Expr, mm: Expr, v: Expr) -> Store:
        buf, idx = st(dd, mm)
        return Store(buf, idx, v)

    def at(f: Buffer, src: Buffer, col: Expr) -> Expr:
        return f[offset([b, t, col], src.strides)]

    # S = past_state[b, g] or 0
    if d.past:
        pb = ctx.input(3)
        pf = flat(pb)
        ins.append(pf)
        init: Expr = pf[offset([b, g, i, m], pb.strides)]
    else:
        init = const(0, dt)
    per_bg: list[Stmt] = [Loop(i, 0, d.Dk, [Loop(m, 0, d.Dv, [s_set(i, m, init)])])]
    tok: list[Stmt] = []
    if gating:   # S[d, :] *= exp(decay)
        db = ctx.input(4)
        df = flat(db)
        ins.append(df)
        col = affine((g, d.Dk), i) if d.decay_per_key else g
        e = Var("ed", dt)
        tok.append(Loop(i, 0, d.Dk, [Decl(e, Unary("exp", at(df, db, col))),
                                     Loop(m, 0, d.Dv, [s_set(i, m, s_at(i, m) * e)])]))
    k_at = at(kf, kb, affine((g, d.Dk), i))
    v_at = at(vf, vb, affine((g, d.Dv), m))
    acc = Var("acc", dt)
    if delta:    # u = beta * (v - S^T k); S += k u^T
        bb = ctx.input(5)
        bf = flat(bb)
        ins.append(bf)
        u = Buffer("u", dt, (d.Dv,), space="local")
        locs.append(u)
        bt = Var("bt", dt)
        tok += [Decl(bt, at(bf, bb, g if d.beta_per_head else const(0, INDEX))),
                Loop(m, 0, d.Dv, [Decl(acc, const(0, dt)),
                                  Loop(i, 0, d.Dk, [Assign(acc, acc + s_at(i, m) * k_at)]),
                                  Store(u, (m,), bt * (v_at - acc))])]
        add: Expr = u[m]
    else:        # S += k v^T
        add = v_at
    kd = Var("kd", dt)
    tok.append(Loop(i, 0, d.Dk, [Decl(kd, k_at),
                                 Loop(m, 0, d.Dv, [s_set(i, m, s_at(i, m) + kd * add)])]))
    # output[b, t, h*Dv + m] = scale * sum_d q[b, t, h*Dk + d] S[d, m], h = g * rep + r
    h = affine((g, d.rep), r)
    scale = const(linear_attention_scale(node, d), dt)
    read = [Decl(acc, const(0, dt)),
            Loop(i, 0, d.Dk, [Assign(acc, acc + at(qf, qb, affine((h, d.Dk), i)) * s_at(i, m))]),
            Store(yf, (offset([b, t, affine((h, d.Dv), m)], yb.strides),), scale * acc)]
    tok.append(Loop(r, 0, d.rep, [Loop(m, 0, d.Dv, read)]))
    per_bg.append(Loop(t, 0, d.T, tok))
    body: list[Stmt] = [Loop(b, 0, d.B, [Loop(g, 0, d.Hkv, per_bg)])]
    rule = node.attrs.get("update_rule") or "gated_delta"
    text = (f"linear attention ({rule}): B={d.B} T={d.T} heads {d.Hq}/{d.Hkv} "
            f"sizes {d.Dk}/{d.Dv}")
    return ctx.kernel("linear_attention", outs, ins, body, comment=text, locals=locs)


# ---- RMSNormalization -------------------------------------------------------------------------
@lower("RMSNormalization", supports=lambda n: _float_reason(n, [*n.inputs, n.outputs[0]]))
def _lower_rmsnorm(node: Node, ctx: LowerCtx):
    """x, y viewed as (outer, inner) at ``axis``; Scale broadcast to x.shape[axis:]. Per outer
    position y = x / sqrt(mean(x^2) + epsilon) * Scale."""
    return normalize_trailing(node, ctx, center=False)


# ---- RotaryEmbedding --------------------------------------------------------------------------
def _supports_rotary(node: Node) -> str | None:
    why = _float_reason(node, [*node.inputs[:3], node.outputs[0]])
    if why:
        return why
    if has_input(node, 3) and node.inputs[3].dtype.kind not in "iu":
        return f"position_ids of {node.inputs[3].dtype.name} are not supported"
    return None


@lower("RotaryEmbedding", supports=_supports_rotary)
def _lower_rotary(node: Node, ctx: LowerCtx):
    """x, y (B, H, S, D) (or 3-D, :func:`head_strides`); per (b, h, s) the angle row c, sn =
    cos_cache / sin_cache at position_ids[b, s] (clamped to the cache: an out-of-range id is an
    error the spec leaves undefined) or at (b, s). Pair k of R/2 is (x[k], x[k + R/2]) or,
    interleaved, (x[2k], x[2k + 1]): y1 = c x1 - sn x2, y2 = sn x1 + c x2; dims from R copy."""
    d = rotary_dims(node)
    if node.outputs[0].type.size == 0:
        return None
    xb, yb, cb, sb = ctx.input(0), ctx.output(0), ctx.input(1), ctx.input(2)
    xf, yf, cf, sf = flat(xb), flat(yb), flat(cb), flat(sb)
    xs, ys = head_strides(xb, d.rank3, d.D), head_strides(yb, d.rank3, d.D)
    ins = [xf, cf, sf]
    half = d.R // 2
    b, h, s, k = ctx.var("b"), ctx.var("h"), ctx.var("s"), ctx.var("k")
    per_s: list[Stmt] = []
    if has_input(node, 3):
        pb = flat(ctx.input(3))
        ins.append(pb)
        pos = Var("pos", pb.dtype)
        n_pos = node.inputs[1].shape[0]
        pc: Expr = clamp(pos, 0, n_pos - 1)
        if pc.dtype != INDEX:
            pc = Cast(pc, INDEX)
        per_s.append(Decl(pos, pb[offset([b, s], ctx.input(3).strides)]))
        cs_at = lambda kk: offset([pc, kk], cb.strides)  # noqa: E731
    else:
        cs_at = lambda kk: offset([b, s, kk], cb.strides)  # noqa: E731
    inter = bool(attr(node, "interleaved"))
    a_k, b_k = (affine((k, 2)), affine((k, 2), 1)) if inter else (k, affine(k, half))
    x_at = lambda kk: xf[offset([b, h, s, kk], xs)]  # noqa: E731
    y_off = lambda kk: offset([b, h, s, kk], ys)  # noqa: E731
    c, sn = cf[cs_at(k)], sf[cs_at(k)]
    x1, x2 = Var("u1", xf.dtype), Var("u2", xf.dtype)
    pair = [Decl(x1, x_at(a_k)), Decl(x2, x_at(b_k)),
            Store(yf, (y_off(a_k),), c * x1 - sn * x2),
            Store(yf, (y_off(b_k),), sn * x1 + c * x2)]
    per_s.append(Loop(k, 0, half, pair))
    if d.R < d.D:
        per_s.append(Loop(k, d.R, d.D, [Store(yf, (y_off(k),), x_at(k))]))
    body = [Loop(b, 0, d.B, [Loop(h, 0, d.H, [Loop(s, 0, d.S, per_s)])])]
    text = f"rotary embedding: B={d.B} H={d.H} S={d.S} D={d.D} rotated {d.R}"
    return ctx.kernel("rotary", [yf], ins, body, comment=text)
