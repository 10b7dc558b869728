"""Running reductions as loop IR: CumSum, CumProd.

x and y are viewed as (outer, n, inner) around the axis; per (outer, inner) position one
accumulator walks the axis (from the end with ``reverse``), storing before (``exclusive``) or
after adding each element, in x's dtype (integers wrap). A constant axis gives one nest; an axis
read at run time gives one nest per axis of x, chosen by comparing the loaded (wrapped) axis, the
last axis taken for a value outside ``[-r, r)``, which the spec calls an error.
"""

from __future__ import annotations

import math

from onnxcc.codegen.loops import (Assign, Binary, Buffer, Const, Decl, If, Loop, Select, Stmt,
                                  Store, Var, affine, const)
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops.cumulative import cum_axis_value

from . import LowerCtx, lower
from .indexing import reshaped
from .norm import _strides3
from .tensor import flat, offset


def _supports(node: Node) -> str | None:
    x = node.inputs[0]
    if x.dtype.kind not in "iuf":
        return f"{node.op} on {x.dtype.name} is not supported"
    return None


def _along(ctx: LowerCtx, node: Node, a: int, xb: Buffer, xf: Buffer, yf: Buffer) -> list[Stmt]:
    """The nest accumulating along axis ``a``."""
    shape = node.inputs[0].shape
    O, n, I = math.prod(shape[:a]), shape[a], math.prod(shape[a + 1:])
    xs = _strides3(xb, (O, n, I))
    ys = [n * I, I, 1]
    dt = yf.dtype
    prod = node.op == "CumProd"
    o, i, k = ctx.var("o"), ctx.var("i"), ctx.var("k")
    pos = affine((k, -1), n - 1) if attr(node, "reverse") else k
    acc = Var(f"acc{a}", dt)
    step = Assign(acc, Binary("mul" if prod else "add", acc, xf[offset([o, pos, i], xs)]))
    store = Store(yf, (offset([o, pos, i], ys),), acc)
    inner = [store, step] if attr(node, "exclusive") else [step, store]
    body = [Decl(acc, const(1 if prod else 0, dt)), Loop(k, 0, n, inner)]
    return [Loop(o, 0, O, [Loop(i, 0, I, body)])]


@lower("CumSum", "CumProd", supports=_supports)
def _lower_cumulative(node: Node, ctx: LowerCtx):
    """y = running sum/product of x along the axis (module docstring)."""
    x, ax = node.inputs
    if x.type.size == 0:
        return None
    xb = ctx.input(0)
    xf, yf = flat(xb), flat(ctx.output(0))
    if ax.const is not None:
        body = _along(ctx, node, cum_axis_value(node, ax.const), xb, xf, yf)
        return ctx.kernel(node.op.lower(), [yf], [xf], body)
    r = len(x.shape)
    ab = reshaped(ctx.input(1), (1,))
    av = Var("axis", ab.dtype)
    an = Select(Binary("lt", av, const(0, av.dtype)), av + const(r, av.dtype), av) \
        if av.dtype.signed else av
    chain: list[Stmt] = _along(ctx, node, r - 1, xb, xf, yf)
    for a in reversed(range(r - 1)):
        chain = [If(Binary("eq", an, const(a, av.dtype)), _along(ctx, node, a, xb, xf, yf), chain)]
    return ctx.kernel(node.op.lower(), [yf], [xf, ab], [Decl(av, ab[Const(0)])] + chain)
