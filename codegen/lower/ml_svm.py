"""Support vector machines (``onnxcc.ops.ml_svm``) as loops, for every target: the support
vectors, coefficients and pair tables are weights; per row the kernel values, then the pair
scores and votes (SVMClassifier), then, with probabilities, libsvm's pairwise coupling as a
fixed loop of at most 100 iterations that stops updating once converged (the reference's
early exit), all in float32 as onnxruntime computes them (pair sums in float64)."""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxcc.codegen.loops import (BOOL, F32, F64, I32, Assign, Binary, Buffer, Cast, Comment,
                                  Const, Decl, Expr, If, Loop, MulAdd, Select, Store, Unary, Var,
                                  const)
from onnxcc.ir import Node
from onnxcc.ops.ml_svm import SVC, svm_parts

from . import LowerCtx, lower
from .ml import as_f32, x_rows
from .ml_trees import I64, clamp, logistic, probit, table, transform_row


def kernel_value(kname: str, params, xv, sv, c: Var, C: int, dot: Var) -> tuple[list, Expr]:
    """(statements, K(x, sv)) with ``xv(c)``/``sv(c)`` the two vectors' elements; ``dot`` a
    fresh float32 local."""
    gamma, coef0, degree = params
    if kname == "RBF":
        diff = xv(c) - sv(c)
        return ([Decl(dot, const(0, F32)), Loop(c, 0, C, [Assign(dot, MulAdd(diff, diff, dot))])],
                Unary("exp", const(-gamma, F32) * dot))
    pre = [Decl(dot, const(0, F32)), Loop(c, 0, C, [Assign(dot, MulAdd(xv(c), sv(c), dot))])]
    g = const(gamma, F32) * dot + const(coef0, F32)
    return pre, {"LINEAR": dot, "POLY": Binary("pow", g, const(degree, F32)),
                 "SIGMOID": Unary("tanh", g)}[kname]


@lower("ai.onnx.ml.SVMRegressor")
def _lower_svm_regressor(node: Node, ctx: LowerCtx) -> Any:
    """y[b] = sum_j coef[j] * K(x[b], sv[j]) + rho (onnxcc.ops.ml.kernel), one_class sign,
    PROBIT."""
    kname, params, sv, coef, rho = svm_parts(node)
    gamma, coef0, degree = (list(params) + [0.0, 0.0, 0.0])[:3]
    X, N, C = x_rows(ctx)
    y = ctx.output(0, "y")
    SV, CO = table("support_vectors", sv, F32), table("sv_coefficients", coef, F32)
    b, j, c = ctx.var("b"), ctx.var("j"), ctx.var("c")
    acc, kv, dot = Var("acc", F32), Var("kv", F32), Var("dot", F32)
    inner, kval = kernel_value(kname, (gamma, coef0, degree), lambda c: as_f32(X[(b, c)]),
                               lambda c: SV[(j, c)], c, C, dot)
    inner += [Decl(kv, kval), Assign(acc, MulAdd(CO[(j,)], kv, acc))]
    out: Expr = acc + const(rho, F32)
    if node.attrs["one_class"]:
        out = Select(out > const(0, F32), const(1, F32), const(-1, F32))
    if node.attrs["post_transform"] == "PROBIT":
        out = probit(out)
    body = [Decl(acc, const(0, F32)), Loop(j, 0, sv.shape[0], inner),
            Store(y, (b, Const(0)), out)]
    text = f"SVMRegressor: x {N}x{C}, {sv.shape[0]} support vectors, {kname} kernel"
    return ctx.kernel("svm_regressor", [y], [X, SV, CO], [Comment(text), Loop(b, 0, N, body)],
                      comment=text)




def _argmax_first(ctx: LowerCtx, src: Buffer, n: int, best: Var, bw: Var) -> list:
    """best = the first index of the greatest src[0..n) (bw its value)."""
    k, u = ctx.var("k"), Var(f"better_{best.name}", BOOL)
    return [Decl(best, Const(0)), Decl(bw, src[(Const(0),)]),
            Loop(k, 1, n, [Decl(u, src[(k,)] > bw), Assign(bw, Select(u, src[(k,)], bw)),
                           Assign(best, Select(u, k, best))])]


def _coupling(ctx: LowerCtx, K: int, R: Buffer, P: Buffer) -> tuple[list, list[Buffer]]:
    """libsvm's multiclass_probability (onnxcc.ops.ml_svm) from the pairwise R (K, K) into
    P (K,): statements and the locals they use."""
    Q, QP = Buffer("q", F32, (K, K), space="local"), Buffer("qp", F32, (K,), space="local")
    one, two = const(1, F32), const(2, F32)
    st: list = []
    for i in range(K):
        st.append(Store(P, (Const(i),), one / const(K, F32)))
        for j in range(K):
            st.append(Store(Q, (Const(i), Const(j)), const(0, F32)))
    for i in range(K):
        ii = (Const(i), Const(i))
        for j in range(K):
            if j == i:
                continue
            rji = R[(Const(j), Const(i))]
            st.append(Store(Q, ii, Q[ii] + rji * rji))
            st.append(Store(Q, (Const(i), Const(j)), Q[(Const(j), Const(i))] if j < i
                            else -rji * R[(Const(i), Const(j))]))
    it, i, j, i2, i3, j3 = (ctx.var(n) for n in ("it", "i", "j", "i", "i", "j"))
    done, pqp, err, diff = Var("done", BOOL), Var("pqp", F32), Var("err", F32), Var("diff", F32)
    eps = const(0.005, F32) / const(K, F32)
    e = Unary("abs", QP[(i2,)] - pqp)
    update = [Loop(i3, 0, K, [
        Decl(diff, (-QP[(i3,)] + pqp) / Q[(i3, i3)]),
        Store(P, (i3,), P[(i3,)] + diff),
        Assign(pqp, (pqp + diff * (diff * Q[(i3, i3)] + two * QP[(i3,)])) / (one + diff)
               / (one + diff)),
        Loop(j3, 0, K, [Store(QP, (j3,), (QP[(j3,)] + diff * Q[(i3, j3)]) / (one + diff)),
                        Store(P, (j3,), P[(j3,)] / (one + diff))])])]
    st += [Decl(done, const(False, BOOL)), Loop(it, 0, 100, [If(Unary("not", done), [
        Decl(pqp, const(0, F32)),
        Loop(i, 0, K, [Store(QP, (i,), const(0, F32)),
                       Loop(j, 0, K, [Store(QP, (i,), QP[(i,)] + Q[(i, j)] * P[(j,)])]),
                       Assign(pqp, pqp + P[(i,)] * QP[(i,)])]),
        Decl(err, const(0, F32)),
        Loop(i2, 0, K, [Assign(err, Select(e > err, e, err))]),
        If(err < eps, [Assign(done, const(True, BOOL))], update)])])]
    return st, [Q, QP]


@lower("ai.onnx.ml.SVMClassifier")
def _lower_svm_classifier(node: Node, ctx: LowerCtx) -> Any:
    """See the module docstring and onnxcc.ops.ml_svm.SVMClassifier.reference."""
    m = SVC(node)
    post = node.attrs["post_transform"]
    X, N, C = x_rows(ctx)
    lab, z = ctx.output(0, "label"), ctx.output(1, "scores")
    CL = table("class_labels", m.labels, I64)
    K = m.K
    b = ctx.var("b")
    best, bw = Var("best", I32), Var("bw", F32)
    if m.sv is None:   # linear: scores = x @ W^T + rho[0]
        W = table("coefficients", m.coef, F32)
        S = Buffer("s", F32, (K,), space="local")
        k, c = ctx.var("k"), ctx.var("c")
        acc = Var("acc", F32)
        body = [Loop(k, 0, K, [Decl(acc, const(0, F32)),
                               Loop(c, 0, C, [Assign(acc, MulAdd(as_f32(X[(b, c)]), W[(k, c)],
                                                                 acc))]),
                               Store(S, (k,), acc + const(m.rho[0], F32))])]
        body += _argmax_first(ctx, S, K, best, bw)
        label: Expr = CL[(clamp(best, K),)]
        if K == 2 and not m.prob_a.size:
            win = bw >= const(0.5, F32) if m.all_positive else bw > const(0, F32)
            label = Select(win, CL[(Const(1),)], label)
        body += [Store(lab, (b,), label)] + transform_row(ctx, post, S, z, b, K)
        return ctx.kernel("svm_classifier", [lab, z], [X, W, CL], [Loop(b, 0, N, body)],
                          locals=[S], comment=f"SVMClassifier (linear): x {N}x{C}, {K} classes")
    V, Pn = m.sv.shape[0], m.P
    SV = table("support_vectors", m.sv, F32)
    pairs = [(i, j) for i in range(K - 1) for j in range(i + 1, K)]
    dense = np.zeros((Pn, V), np.float32)   # the pair's coefficient of each vector (0: none)
    for p, (i, j) in enumerate(pairs):
        si, sj = m.starts[i], m.starts[j]
        dense[p, si:si + m.vpc[i]] = m.coef[j - 1, si:si + m.vpc[i]]
        dense[p, sj:sj + m.vpc[j]] = m.coef[i, sj:sj + m.vpc[j]]
    CO, RHO = table("pair_coefficients", dense, F32), table("rho", m.rho[:Pn], F32)
    PI, PJ = table("pair_i", [i for i, _ in pairs], I32), table("pair_j", [j for _, j in pairs],
                                                               I32)
    ins = [X, SV, CO, RHO, PI, PJ, CL]
    KV = Buffer("kv", F32, (V,), space="local")
    PS = Buffer("ps", F32, (Pn,), space="local")
    VOTES = Buffer("votes", I32, (K,), space="local")
    locs = [KV, PS, VOTES]
    v, c, p, v2, k0 = ctx.var("v"), ctx.var("c"), ctx.var("p"), ctx.var("v"), ctx.var("k")
    dot, tot = Var("dot", F32), Var("tot", F64)
    pre, kval = kernel_value(m.kernel, m.params, lambda c: as_f32(X[(b, c)]),
                             lambda c: SV[(v, c)], c, C, dot)
    at = clamp(Select(tot > const(0, F64), PI[(p,)], PJ[(p,)]), K)
    body = [Loop(k0, 0, K, [Store(VOTES, (k0,), Const(0))]),
            Loop(v, 0, V, pre + [Store(KV, (v,), kval)]),
            Loop(p, 0, Pn, [
                Decl(tot, const(0, F64)),
                Loop(v2, 0, V, [Assign(tot, tot + Cast(CO[(p, v2)] * KV[(v2,)], F64))]),
                Assign(tot, tot + Cast(RHO[(p,)], F64)),
                Store(PS, (p,), Cast(tot, F32)),
                Store(VOTES, (at,), VOTES[(at,)] + Const(1))])]
    bv = Var("bv", I32)
    k = ctx.var("k")
    u = Var("more", BOOL)
    body += [Decl(best, Const(0)), Decl(bv, VOTES[(Const(0),)]),
             Loop(k, 1, K, [Decl(u, VOTES[(k,)] > bv), Assign(bv, Select(u, VOTES[(k,)], bv)),
                            Assign(best, Select(u, k, best))]),
             Store(lab, (b,), CL[(clamp(best, K),)])]
    if m.prob_a.size:
        R = Buffer("r", F32, (K, K), space="local")
        PR = Buffer("prob", F32, (K,), space="local")
        A, B = table("prob_a", m.prob_a[:Pn], F32), table("prob_b", m.prob_b[:Pn], F32)
        ins += [A, B]
        for q, (i, j) in enumerate(pairs):
            val = const(1, F32) - logistic(PS[(Const(q),)] * A[(Const(q),)] + B[(Const(q),)])
            val = Binary("fmin", Binary("fmax", val, const(1e-7, F32)), const(1 - 1e-7, F32))
            body += [Store(R, (Const(i), Const(j)), val),
                     Store(R, (Const(j), Const(i)), const(1, F32) - R[(Const(i), Const(j))])]
        st, more = _coupling(ctx, K, R, PR)
        body += st + transform_row(ctx, post, PR, z, b, K)
        locs += [R, PR, *more]
    elif K > 2:
        body += transform_row(ctx, post, PS, z, b, Pn)
    else:
        s = PS[(Const(0),)]
        vv = logistic(s) if post == "LOGISTIC" else s
        z0 = -vv if post == "NONE" else const(1, F32) - vv
        body += [Store(z, (b, Const(0)), z0), Store(z, (b, Const(1)), vv)]
    text = (f"SVMClassifier: x {N}x{C}, {V} support vectors, {K} classes, {m.kernel} kernel"
            + (", probabilities" if m.prob_a.size else ""))
    return ctx.kernel("svm_classifier", [lab, z], ins, [Comment(text), Loop(b, 0, N, body)],
                      locals=locs, comment=text)
