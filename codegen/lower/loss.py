"""Loss functions as loop IR: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss.

x (N, C, d1..dk) is read through a flat view as (N, C, D), the target as (N, D). Per (n, d) the
kernel reads the class index ``j``, compares it with ignore_index, clamps it to [0, C) (the spec
calls an index outside an error; the clamp keeps every read inside x and the weight, as Gather's
lowering does) and forms ``-x[n, j, d] * weight[j]`` (0 when ignored). SoftmaxCrossEntropyLoss
first takes, per (n, d), the max over C and the sum of exponentials (blocked as the softmax
family's, :func:`onnxcc.codegen.lower.norm._sum`), so ``log_prob[n, c, d] = (x - max) -
log(sum)`` is computed where needed and written when the node has that output. With ``sum`` or
``mean`` the terms and the weights are summed in float64 (the sum over N * D runs along one
accumulator; float64 keeps its error far below the output's rounding) and the scalar written
once: ``sum``, or ``sum / sum of weights`` for ``mean``.
"""

from __future__ import annotations

import math

from onnxcc.codegen.loops import (BOOL, F64, INDEX, Assign, Binary, Cast, Const, Decl, Expr, Loop,
                                  Select, Stmt, Store, Unary, Var, const)
from onnxcc.ir import Node
from onnxcc.ops.loss import loss_params

from . import LowerCtx, lower
from .norm import _strides3, _sum, float_only
from .tensor import clamp, flat, offset


def _supports(node: Node) -> str | None:
    if node.inputs[1].dtype.kind not in "iu":
        return f"target of dtype {node.inputs[1].dtype.name} is not supported"
    return float_only(node)


@lower("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss", supports=_supports)
def _lower_loss(node: Node, ctx: LowerCtx):
    """loss (target's shape for reduction none, else a scalar) and, for SoftmaxCrossEntropyLoss,
    the optional log_prob (x's shape); see the module docstring."""
    x, y = node.inputs[0], node.outputs[0]
    red, ii = loss_params(node)
    N, C = x.shape[:2]
    D = math.prod(x.shape[2:])
    sce = node.op == "SoftmaxCrossEntropyLoss"
    want_lp = sce and len(node.outputs) > 1 and node.outputs[1] is not None
    xb, tb = ctx.input(0), ctx.input(1)
    xf, tf = flat(xb), flat(tb)
    xs, ts = _strides3(xb, (N, C, D)), _strides3(tb, (N, D))
    has_w = len(node.inputs) > 2 and node.inputs[2] is not None
    wf = flat(ctx.input(2)) if has_w else None
    ws = 0 if wf is None or all(s == 0 for s in ctx.input(2).strides) else 1
    yf = flat(ctx.output(0))
    lpf = flat(ctx.output(1)) if want_lp else None
    dt = xf.dtype
    if y.type.size == 0 and (lpf is None or x.type.size == 0):
        return None

    n, d = ctx.var("n"), ctx.var("d")
    j, keep, w, val = Var("j", tf.dtype), Var("keep", BOOL), Var("w", dt), Var("v", dt)
    body: list[Stmt] = []
    xat = lambda c: xf[offset([n, c, d], xs)]  # noqa: E731
    if sce:   # per (n, d): the max over the classes and log(sum(exp(x - max)))
        mx, lse = Var("mx", dt), Var("lse", dt)
        c = ctx.var("c")
        body.append(Decl(mx, const(float("-inf"), dt)))
        body.append(Loop(c, 0, C, [Assign(mx, Select(Binary("gt", xat(c), mx), xat(c), mx))]))
        sums, total = _sum(ctx, [C], "se", dt, lambda k: Unary("exp", xat(k[0]) - mx))
        body += sums + [Decl(lse, Unary("log", total))]
        logp = lambda c: (xat(c) - mx) - lse  # noqa: E731
        if lpf is not None:
            c2 = ctx.var("c")
            body.append(Loop(c2, 0, C, [Store(lpf, (offset([n, c2, d], [C * D, D, 1]),),
                                              logp(c2))]))
    else:
        logp = xat
    body.append(Decl(j, tf[offset([n, d], ts)]))
    body.append(Decl(keep, Const(True, keep.dtype) if ii is None
                     else Binary("ne", j, const(ii, j.dtype))))
    # the clamped index stays an expression (not a local) so that verify bounds every read
    jc: Expr = clamp(j, 0, C - 1)
    jc = jc if jc.dtype == INDEX else Cast(jc, INDEX)
    one = const(1, dt)
    body.append(Decl(w, Select(keep, one if wf is None else wf[offset([jc], [ws])],
                               const(0, dt))))
    body.append(Decl(val, Select(keep, Unary("neg", logp(jc)) * w, const(0, dt))))
    if red == "none":
        body.append(Store(yf, (offset([n, d], [D, 1]),), val))
        return ctx.kernel("nll_loss", [yf] + ([lpf] if lpf else []),
                          [xf, tf] + ([wf] if wf is not None else []),
                          [Loop(n, 0, N, [Loop(d, 0, D, body)])])
    num, den = Var("num", F64), Var("den", F64)
    body.append(Assign(num, num + Cast(val, F64)))
    stmts: list[Stmt] = [Decl(num, const(0, F64))]
    total: Expr = num
    if red == "mean" and (has_w or ii is not None):   # divide by the weights not ignored
        body.append(Assign(den, den + Cast(w, F64)))
        stmts.append(Decl(den, const(0, F64)))
        total = Binary("div", num, den)
    elif red == "mean":
        total = Binary("div", num, const(N * D, F64))
    stmts += [Loop(n, 0, N, [Loop(d, 0, D, body)]), Store(yf, (Const(0),), Cast(total, dt))]
    return ctx.kernel("nll_loss", [yf] + ([lpf] if lpf else []),
                      [xf, tf] + ([wf] if wf is not None else []), stmts)
