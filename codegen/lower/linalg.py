"""Einsum and Det as loop IR.

Einsum: one loop per output label around one loop per summed label; each input is read at the
loop variables of its labels (index 0 where its dim is 1 and broadcast), the product summed in a
local of the inputs' dtype (as numpy.einsum; integers wrap).

Det: per matrix, a copy into a local (M, M) array, then LU elimination with partial pivoting
(Golub and Van Loan, "Matrix Computations", 4th ed., algorithm 3.4.1): for each column k the row
of the largest magnitude at or below k is swapped up (the determinant changes sign) and
eliminated below; det = the product of the pivots with that sign. A zero pivot column gives 0.
The pivot row index is clamped inside the access, so verify proves every access.
"""

from __future__ import annotations

import math

from onnxcc.codegen.loops import (BOOL, Assign, Binary, Buffer, Const, Decl, If, Loop, Select,
                                  Stmt, Store, Unary, Var, affine, const)
from onnxcc.ir import Node
from onnxcc.ops.linalg import einsum_spec

from . import LowerCtx, lower
from .indexing import reshaped
from .norm import float_only
from .tensor import clamp


def _supports_einsum(node: Node) -> str | None:
    if node.inputs[0].dtype.kind not in "iuf":
        return f"Einsum on {node.inputs[0].dtype.name} is not supported"
    return None


@lower("Einsum", supports=_supports_einsum)
def _lower_einsum(node: Node, ctx: LowerCtx):
    """y[out labels] = sum over the summed labels of the product of the inputs (module
    docstring)."""
    y = node.outputs[0]
    if y.type.size == 0:
        return None
    sp = einsum_spec(node)
    yb = ctx.output(0)
    xbs = [ctx.input(k) for k in range(len(node.inputs))]
    dt = yb.dtype
    var = {c: ctx.var("i") for c in sp.out + sp.summed}
    prod = None
    for t, xb, v in zip(sp.terms, xbs, node.inputs):
        idx = tuple(var[c] if d != 1 else Const(0) for c, d in zip(t, v.shape))
        term = xb[idx]
        prod = term if prod is None else Binary("mul", prod, term)
    acc = Var("acc", dt)
    body: list[Stmt]
    if any(sp.sizes[c] == 0 for c in sp.summed):
        body = [Store(yb, tuple(var[c] for c in sp.out), const(0, dt))]
    else:
        inner: list[Stmt] = [Assign(acc, acc + prod)]
        for c in reversed(sp.summed):
            inner = [Loop(var[c], 0, sp.sizes[c], inner)]
        body = [Decl(acc, const(0, dt))] + inner + [Store(yb, tuple(var[c] for c in sp.out), acc)]
    for c in reversed(sp.out):
        body = [Loop(var[c], 0, sp.sizes[c], body)]
    return ctx.kernel("einsum", [yb], xbs, body)


@lower("Det", supports=float_only)
def _lower_det(node: Node, ctx: LowerCtx):
    """y (B,) = det of each matrix of x (B, M, M) by LU with partial pivoting (module
    docstring)."""
    x, y = node.inputs[0], node.outputs[0]
    if y.type.size == 0:
        return None
    M = x.shape[-1]
    B = math.prod(x.shape[:-2])
    xb = reshaped(ctx.input(0), (B, M, M))
    yb = reshaped(ctx.output(0), (B,))
    dt = yb.dtype
    a = Buffer("lu", dt, (M, M), space="local")
    b, i, j, k, r = ctx.var("b"), ctx.var("i"), ctx.var("j"), ctx.var("k"), ctx.var("r")
    det, piv, best, mag, f, tmp = (Var("det", dt), Var("piv"), Var("best", dt), Var("mag", dt),
                                   Var("f", dt), Var("tmp", dt))
    take = Var("take", BOOL)
    p = clamp(piv, 0, M - 1)
    copy = Loop(i, 0, M, [Loop(j, 0, M, [Store(a, (i, j), xb[b, i, j])])])
    find = [Decl(piv, k), Decl(best, Unary("abs", a[k, k])),
            Loop(r, affine(k, 1), M, [Decl(mag, Unary("abs", a[r, k])),
                                      Decl(take, Binary("gt", mag, best)),
                                      Assign(best, Select(take, mag, best)),
                                      Assign(piv, Select(take, r, piv))])]
    swap = If(Binary("ne", piv, k), [
        Loop(j, 0, M, [Decl(tmp, a[k, j]), Store(a, (k, j), a[p, j]), Store(a, (p, j), tmp)]),
        Assign(det, Unary("neg", det))])
    elim = Loop(r, affine(k, 1), M, [Decl(f, a[r, k] / a[k, k]), Loop(
        j, k, M, [Store(a, (r, j), a[r, j] - f * a[k, j])])])
    # a zero pivot: the column is zero at and below k, so det is 0 (no division by it)
    step = find + [swap, Assign(det, det * a[k, k]),
                   If(Binary("ne", a[k, k], const(0, dt)), [elim])]
    body = [copy, Decl(det, const(1, dt)), Loop(k, 0, M, step), Store(yb, (b,), det)]
    return ctx.kernel("det", [yb], [xb], [Loop(b, 0, B, body)], locals=[a])
