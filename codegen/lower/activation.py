"""Shrink as loop IR: one elementwise nest (:func:`onnxcc.codegen.lower.elementwise.
elementwise_kernel`); floats compare and offset in their dtype, integers in float64, the result
truncated and saturated to the dtype's range before the conversion back (as the reference)."""

from __future__ import annotations

import numpy as np

from onnxcc.codegen.loops import F64, Binary, Cast, Expr, Select, const, maximum, minimum
from onnxcc.ir import Node
from onnxcc.ops.activation import shrink_params

from . import LowerCtx, lower
from .elementwise import elementwise_kernel


def shrink_expr(x: Expr, lambd: float, bias: float) -> Expr:
    """Shrink of the scalar ``x`` (module docstring)."""
    v = x if x.dtype.is_float else Cast(x, F64)
    ct = v.dtype
    y = Select(Binary("lt", v, const(-lambd, ct)), v + const(bias, ct),
               Select(Binary("gt", v, const(lambd, ct)), v - const(bias, ct), const(0, ct)))
    if x.dtype.is_float:
        return y
    info = np.iinfo(x.dtype.np)
    y = minimum(maximum(y, const(float(info.min), ct)), const(float(info.max), ct))
    return Cast(y, x.dtype)


@lower("Shrink", supports=lambda n: None if n.inputs[0].dtype.kind in "iuf"
       else f"Shrink on {n.inputs[0].dtype.name} is not supported")
def _lower_shrink(node: Node, ctx: LowerCtx):
    """y = shrink(x) elementwise."""
    if node.outputs[0].type.size == 0:
        return None
    lambd, bias = shrink_params(node)
    if ctx.input(0).dtype.is_float:   # the parameters rounded to x's dtype, as the reference
        dt = ctx.input(0).dtype.np
        lambd, bias = float(dt.type(lambd)), float(dt.type(bias))
    return elementwise_kernel(ctx, [0], lambda a: shrink_expr(a[0], lambd, bias))
