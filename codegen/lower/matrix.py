"""Matrix-structure ops as loop IR: Trilu, EyeLike.

Loops over the (batch, row i, column j) positions of the output with the diagonal offset
``j - i`` compared with k: a constant folded into the comparison (clamped to the matrix, which
changes no comparison), or Trilu's runtime k input loaded once and compared in int64.
"""

from __future__ import annotations

import math

from onnxcc.codegen.loops import (I64, Binary, Cast, Const, Decl, Expr, Loop, Select, Store, Var,
                                  affine, const)
from onnxcc.ir import Node
from onnxcc.ops import attr

from . import LowerCtx, lower
from .indexing import reshaped


def _diag(i: Var, j: Var, k: int, n: int, m: int) -> tuple[Expr, Const]:
    """(``j - i`` as an INDEX expression, k clamped to ``[-n, m]`` as a literal)."""
    return affine(j, (i, -1)), Const(max(-n, min(m, int(k))))


@lower("Trilu")
def _lower_trilu(node: Node, ctx: LowerCtx):
    """y (B, N, M) = x where ``j - i >= k`` (upper) or ``<= k`` (lower), else 0."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    N, M = x.shape[-2:]
    B = math.prod(x.shape[:-2])
    xb, yb = reshaped(ctx.input(0), (B, N, M)), reshaped(ctx.output(0), (B, N, M))
    b, i, j = ctx.var("b"), ctx.var("i"), ctx.var("j")
    cmp = "ge" if attr(node, "upper") else "le"
    kin = node.inputs[1] if len(node.inputs) > 1 else None
    pre, ins = [], [xb]
    if kin is None or kin.const is not None:
        k = 0 if kin is None else int(kin.const.reshape(-1)[0])
        d, kc = _diag(i, j, k, N, M)
        cond = Binary(cmp, d, kc)
    else:
        kb = reshaped(ctx.input(1), (1,))
        kv = Var("k", kb.dtype)
        pre, ins = [Decl(kv, kb[Const(0)])], [xb, kb]
        kx: Expr = kv if kv.dtype == I64 else Cast(kv, I64)
        cond = Binary(cmp, Cast(affine(j, (i, -1)), I64), kx)
    val = Select(cond, xb[b, i, j], const(0, yb.dtype))
    body = pre + [Loop(b, 0, B, [Loop(i, 0, N, [Loop(j, 0, M, [Store(yb, (b, i, j), val)])])])]
    return ctx.kernel("trilu", [yb], ins, body)


@lower("EyeLike")
def _lower_eye_like(node: Node, ctx: LowerCtx):
    """y (N, M) = 1 where ``j - i == k``, else 0 (x's values are not read)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    N, M = y.shape
    yb = ctx.output(0)
    i, j = ctx.var("i"), ctx.var("j")
    d, kc = _diag(i, j, attr(node, "k"), N, M)
    val = Select(Binary("eq", d, kc), const(1, yb.dtype), const(0, yb.dtype))
    return ctx.kernel("eye_like", [yb], [], [Loop(i, 0, N, [Loop(j, 0, M, [Store(yb, (i, j), val)])])])
