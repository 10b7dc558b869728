"""Tree ensembles (``onnxcc.ops.ml_trees``) as loops over compact node tables, for every target.

The trees become weight tables (:class:`onnxcc.ops.ml_trees.Forest`): per node its feature
index, threshold, true and false child (global node indices, a leaf pointing to itself; index
tables are int16 when every index fits, else int32), and,
when needed, its mode and missing-value flag; per tree its root; per leaf its row of weights and
vote flags (L, K). The kernel walks them with a loop rather than branch code, the same on host C,
LLVM and MCU C (branch code would grow the code with the trees and gives the renderers nothing to
vectorize either); each step is branch-free (a select between the two children), and a walk of
``depth`` steps ends on a leaf because leaves point to themselves:

    for b in 0..N:                              # x (N, F), y (N, K) [+ labels (N,)]
      s[k] = 0, h[k] = false                    # per target: aggregate, voted
      for t in 0..T:
        n = root[t]
        for d in 0..depth:
          v = x[b, feature[n]]
          n = (v MODE threshold[n] | miss[n] & isnan(v)) ? true[n] : false[n]
        for k in 0..K: s[k], h[k] = aggregate(s[k], h[k], weights[leaf[n], k], has[leaf[n], k])
      y[b, :] = post_transform(finish(s, h))     # base values, labels, as the reference

Indices read from the tables are clamped into their table (``verify`` proves every access);
the tables are built by the compiler, so the clamps never change a value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onnxcc.codegen.loops import (BOOL, F32, I32, Assign, Binary, Buffer, Cast, Comment, Const,
                                  Decl, DType, Expr, Loop, Select, Store, Unary, Var, const,
                                  maximum, minimum)
from onnxcc.ir import Node
from onnxcc.ops.ml_forest import LEAF, MEMBER, forest

from . import LowerCtx, lower

I64 = DType("int64")
_CMP = ("le", "lt", "ge", "gt", "eq", "ne")   # MODES order


def table(name: str, data: np.ndarray, dt: DType) -> Buffer:
    """A weight buffer holding ``data`` (any shape) as ``dt``."""
    arr = np.ascontiguousarray(np.asarray(data).astype(dt.np))
    return Buffer(name, dt, arr.shape or (1,), None, "weight", data=arr.reshape(-1), value="")


def clamp(e: Expr, n: int) -> Expr:
    """``e`` clamped into 0..n-1 (an index read from a table, for verify's proof)."""
    return minimum(maximum(e, Const(0)), Const(n - 1))


def rows(b: Buffer, n: int, f: int) -> Buffer:
    """``b`` viewed as (n, f) (a 1-D x is one row)."""
    return Buffer(b.name, b.dtype, (n, f), None, b.space, b.offset, b.index, b.data, b.value)


# ---- post transforms on scalar expressions (float32, as onnxruntime computes them) -----------
def logistic(v: Expr) -> Expr:
    """onnxruntime's ComputeLogistic: e = 1 / (1 + exp(-|v|)); v < 0 ? 1 - e : e."""
    e = const(1, F32) / (const(1, F32) + Unary("exp", -Unary("abs", v)))
    return Select(v < const(0, F32), const(1, F32) - e, e)


def probit(v: Expr) -> Expr:
    """onnxruntime's ComputeProbit (see onnxcc.ops.ml_trees.probit)."""
    x = v * const(2, F32) - const(1, F32)
    lg = Unary("log", (const(1, F32) - x) * (const(1, F32) + x))
    w = const(2 / (math.pi * 0.147), F32) + const(0.5, F32) * lg
    r = Unary("sqrt", -w + Unary("sqrt", w * w - const(1 / 0.147, F32) * lg))
    return Select(x < const(0, F32), -r, r) * const(math.sqrt(2), F32)


def transform_row(ctx: LowerCtx, name: str, src: Buffer, out: Buffer, b: Var, K: int) -> list:
    """Statements writing ``out[b, k] = post_transform(src[k])`` for k < K (src a local (K,)
    buffer; float32 arithmetic; out's dtype at the store)."""
    k = ctx.var("k")

    def put(e: Expr) -> Store:
        return Store(out, (b, k), e if out.dtype == F32 else Cast(e, out.dtype))

    v = src[(k,)] if src.dtype == F32 else Cast(src[(k,)], F32)
    if name == "NONE":
        return [Loop(k, 0, K, [Store(out, (b, k), src[(k,)] if src.dtype == out.dtype
                                     else Cast(src[(k,)], out.dtype))])]
    if name == "LOGISTIC":
        return [Loop(k, 0, K, [put(logistic(v))])]
    if name == "PROBIT":
        return [Loop(k, 0, K, [put(probit(v))])]
    m, tot, k1, k2 = Var(ctx.var("m").name, F32), Var(ctx.var("sum").name, F32), ctx.var("k"), \
        ctx.var("k")
    v1 = src[(k1,)] if src.dtype == F32 else Cast(src[(k1,)], F32)
    v2 = src[(k2,)] if src.dtype == F32 else Cast(src[(k2,)], F32)
    ex = Unary("exp", v2 - m)
    if name == "SOFTMAX_ZERO":   # |v| <= 1e-7 stays 0 and adds nothing
        nz = (v2 > const(1e-7, F32)) | (v2 < const(-1e-7, F32))
        ex = Select(nz, ex, const(0, F32))
    e = Var(ctx.var("e").name, F32)
    ev = Unary("exp", v - m)
    if name == "SOFTMAX_ZERO":
        ev = Select((v > const(1e-7, F32)) | (v < const(-1e-7, F32)), ev, const(0, F32))
    return [Decl(m, const(-3.4028234663852886e38, F32)),
            Loop(k1, 0, K, [Assign(m, Select(v1 > m, v1, m))]),
            Decl(tot, const(0, F32)),
            Loop(k2, 0, K, [Assign(tot, tot + ex)]),
            Loop(k, 0, K, [Decl(e, ev), put(e / tot)])]


def pair_transform(name: str, a: Expr, b: Expr) -> tuple[Expr, Expr, list]:
    """(z0, z1, statements) of a post transform of the two float32 scores a, b."""
    if name == "NONE":
        return a, b, []
    if name == "LOGISTIC":
        return logistic(a), logistic(b), []
    if name == "PROBIT":
        return probit(a), probit(b), []
    m = Select(a > b, a, b)
    ea, eb = Unary("exp", a - m), Unary("exp", b - m)
    if name == "SOFTMAX_ZERO":
        ea = Select((a > const(1e-7, F32)) | (a < const(-1e-7, F32)), ea, const(0, F32))
        eb = Select((b > const(1e-7, F32)) | (b < const(-1e-7, F32)), eb, const(0, F32))
    return ea / (ea + eb), eb / (ea + eb), []


@lower("ai.onnx.ml.TreeEnsembleRegressor", "ai.onnx.ml.TreeEnsembleClassifier",
       "ai.onnx.ml.TreeEnsemble")
def _lower_trees(node: Node, ctx: LowerCtx) -> Any:
    """See the module docstring: node tables walked by a fixed-depth loop, then the
    aggregation, base values and post transform of onnxcc.ops.ml_trees (regress/classify)."""
    f = forest(node)
    classifier = node.op.endswith("Classifier")
    x = ctx.input(0, "x")
    N = 1 if len(x.shape) == 1 else x.shape[0]
    F = x.shape[-1]
    X = rows(x, N, F)
    dt = DType.of(f.dtype)
    M, T, (L, K) = len(f.feature), len(f.roots), f.weights.shape
    # index tables in int16 when every index fits (half the flash of int32 on an MCU)
    ix = DType("int16") if max(M, L, F) < 2**15 else I32
    FEAT, THR = table("feature", f.feature, ix), table("threshold", f.threshold, dt)
    TRUE, FALSE = table("true_child", f.true, ix), table("false_child", f.false, ix)
    ROOT, LEAFT = table("root", f.roots, ix), table("leaf", f.leaf, ix)

    def at(buf: Buffer, i: Expr) -> Expr:   # an index read from a table, as int32
        return buf[(i,)] if buf.dtype == I32 else Cast(buf[(i,)], I32)

    W, HAS = table("leaf_weights", f.weights, dt), table("leaf_votes", f.has, BOOL)
    ins = [X, FEAT, THR, TRUE, FALSE, ROOT, LEAFT, W, HAS]
    S, H = Buffer("s", dt, (K,), space="local"), Buffer("h", BOOL, (K,), space="local")
    b, t, d, k = ctx.var("b"), ctx.var("t"), ctx.var("d"), ctx.var("k")
    nd, v = Var("nd", I32), Var("v", dt)
    idx = clamp(nd, M)
    xv = X[(b, clamp(at(FEAT, idx), F))]
    # the walk: one branch-free step per level
    modes = f.modes_used or [0]
    member: list = []
    inset = Var("inset", BOOL)
    if MEMBER in modes:   # v in the node's set: a scan of its NaN-padded row
        R, Smax = f.members.shape
        MROW, MEMB = table("member_row", f.member_row, ix), table("members", f.members, dt)
        ins += [MROW, MEMB]
        s_ = ctx.var("s")
        member = [Decl(inset, const(False, BOOL)),
                  Loop(s_, 0, Smax, [Assign(inset, inset | Binary(
                      "eq", v, MEMB[(clamp(at(MROW, idx), R), s_)]))])]

    def compare(m: int) -> Expr:
        return inset if m == MEMBER else Binary(_CMP[m], v, THR[(idx,)])

    if len(modes) == 1:
        cond: Expr = compare(modes[0])
    else:
        MODE = table("mode", np.where(f.mode == LEAF, 0, f.mode), DType("int8"))
        ins.append(MODE)
        cond = compare(modes[-1])
        for m in reversed(modes[:-1]):
            cond = Select(Binary("eq", MODE[(idx,)], const(m, "int8")), compare(m), cond)
    if f.missing.any():
        MISS = table("missing_true", f.missing, BOOL)
        ins.append(MISS)
        cond = cond | (MISS[(idx,)] & Unary("isnan", v))
    step = [Decl(v, xv if X.dtype == dt else Cast(xv, dt)), *member,
            Assign(nd, Select(cond, at(TRUE, idx), at(FALSE, idx)))]
    lf = Var("lf", I32)
    w, hv = W[(clamp(lf, L), k)], HAS[(clamp(lf, L), k)]
    if f.aggregate in ("SUM", "AVERAGE"):
        acc = S[(k,)] + w
    else:
        better = (w < S[(k,)]) if f.aggregate == "MIN" else (w > S[(k,)])
        acc = Select(Unary("not", H[(k,)]) | better, w, S[(k,)])
    tree = [Decl(nd, at(ROOT, t)),
            Loop(d, 0, f.depth, step) if f.depth else Comment("single-leaf trees"),
            Decl(lf, at(LEAFT, idx)),
            Loop(k, 0, K, [Store(S, (k,), Select(hv, acc, S[(k,)])),
                           Store(H, (k,), H[(k,)] | hv)])]
    k0 = ctx.var("k")
    body = [Loop(k0, 0, K, [Store(S, (k0,), const(0, dt)), Store(H, (k0,), const(False, BOOL))]),
            Loop(t, 0, T, tree)]
    if classifier:
        y, z = ctx.output(0, "label"), ctx.output(1, "scores")
        outs = [y, z]
        body += _finish_classifier(ctx, f, S, H, b, y, z, ins)
    else:
        y = ctx.output(0, "y")
        outs = [y]
        body += _finish_regressor(ctx, f, S, H, b, y, ins)
    text = (f"{node.op.split('.')[-1]}: {T} trees, {M} nodes, {L} leaves, depth {f.depth}, "
            f"{K} targets; x {N}x{F}; {f.aggregate}, {f.transform}")
    return ctx.kernel("trees", outs, ins, [Comment(text), Loop(b, 0, N, body)], comment=text,
                      locals=[S, H])


def _finish_regressor(ctx: LowerCtx, f, S: Buffer, H: Buffer, b: Var, y: Buffer,
                      ins: list) -> list:
    """Base values and post transform of a regressor row (onnxcc.ops.ml_trees.regress); the
    tables it reads are appended to ``ins``."""
    dt, K = S.dtype, S.shape[0]
    k = ctx.var("k")
    val: Expr = S[(k,)]
    if f.aggregate == "AVERAGE":
        val = val / const(len(f.roots), dt)
    if K == 1:
        val = S[(Const(0),)] / const(len(f.roots), dt) if f.aggregate == "AVERAGE" \
            else S[(Const(0),)]
        origin = float(f.base[0]) if len(f.base) == 1 else 0.0
        out = Select(H[(Const(0),)], val, const(0, dt)) + const(origin, dt) \
            if f.aggregate in ("MIN", "MAX") else val + const(origin, dt)
        out = out if dt == F32 else Cast(out, F32)
        if f.transform == "PROBIT":
            out = probit(out)
        return [_store0(y, b, out)]
    if len(f.base) == K:
        BASE = table("base_values", f.base, dt)
        ins.append(BASE)
        val = val + BASE[(k,)]
    fin = [Loop(k, 0, K, [Store(S, (k,), Select(H[(k,)], val, const(0, dt)))])]
    return fin + transform_row(ctx, f.transform, S, y, b, K)


def _store0(y: Buffer, b: Var, e: Expr) -> Store:
    """y[b, 0] = e (converted to y's dtype)."""
    return Store(y, (b, Const(0)), e if y.dtype == e.dtype else Cast(e, y.dtype))


def _finish_classifier(ctx: LowerCtx, f, S: Buffer, H: Buffer, b: Var, y: Buffer, z: Buffer,
                       ins: list) -> list:
    """Labels and scores of a classifier row (onnxcc.ops.ml_trees.classify)."""
    dt, K = S.dtype, S.shape[0]
    base = f.base
    CL = table("class_labels", f.classes, I64)
    ins.append(CL)
    if K > 2:
        k, k2 = ctx.var("k"), ctx.var("k")
        best, bw, u = Var("best", I32), Var("bw", dt), Var("better", BOOL)
        fin = []
        if len(base):
            BASE = table("base_values", base, dt)
            ins.append(BASE)
            nb = min(len(base), K)
            fin.append(Loop(k, 0, nb, [Store(S, (k,), S[(k,)] + BASE[(k,)]),
                                       Store(H, (k,), const(True, BOOL))]))
        upd = H[(k2,)] & ((best < Const(0)) | (S[(k2,)] > bw))
        fin += [Decl(best, Const(-1)), Decl(bw, const(0, dt)),
                Loop(k2, 0, K, [Decl(u, upd), Assign(bw, Select(u, S[(k2,)], bw)),
                                Assign(best, Select(u, k2, best))]),
                Store(y, (b,), CL[(clamp(best, K),)])]
        return fin + transform_row(ctx, f.transform, S, z, b, K)
    # two classes: scalar logic (see classify)
    s0, s1, h0, h1 = S[(Const(0),)], S[(Const(1),)], H[(Const(0),)], H[(Const(1),)]
    a0, a1 = Var("s0", dt), Var("s1", dt)
    if len(base) == 2:
        b0, b1 = const(base[0], dt), const(base[1], dt)
        pre = [Decl(a1, Select(h1, b1 + s0, s1 + b1)), Decl(a0, Select(h1, -(b1 + s0), s0 + b0))]
        two: Expr = const(True, BOOL)
    elif len(base) == 1:
        pre = [Decl(a1, s1), Decl(a0, s0 + const(base[0], dt))]
        two = h1
    else:
        pre = [Decl(a1, s1), Decl(a0, s0)]
        two = h1
    pos = Select(h1, a1, Select(h0, a0, const(0, dt)))
    if f.binary_case:
        win = pos > const(0.5 if f.all_positive else 0.0, dt)
        lab = Select(win, CL[(Const(1),)], CL[(Const(0),)])
    else:
        lab = Select(pos > const(0, dt), const(1, I64), const(0, I64))
    f0 = (lambda e: e) if dt == F32 else (lambda e: Cast(e, F32))
    t0, t1, _ = pair_transform(f.transform, f0(Select(h0, a0, const(0, dt))),
                               f0(Select(h1, a1, const(0, dt))))
    v = f0(a0)
    if f.transform == "LOGISTIC":
        o0, o1 = const(1, F32) - logistic(v), logistic(v)
    elif f.transform == "PROBIT":
        o0, o1 = probit(v), const(0, F32)
    elif f.binary_case and f.all_positive:
        o0, o1 = const(1, F32) - v, v
    elif f.binary_case or len(base) == 0:
        o0, o1 = -v, v
    else:
        o0, o1 = v, const(0, F32)
    if isinstance(two, Const):
        z0, z1 = t0, t1
    else:
        z0, z1 = Select(two, t0, o0), Select(two, t1, o1)
    return pre + [Store(y, (b,), lab), Store(z, (b, Const(0)), z0), Store(z, (b, Const(1)), z1)]
