"""Bitwise ops as loop IR: BitShift, BitwiseAnd, BitwiseOr, BitwiseXor, BitwiseNot.

One elementwise nest (:func:`onnxcc.codegen.lower.elementwise.elementwise_kernel`) whose element
is built so that no renderer meets an undefined shift: the shift amount is clamped into
``[0, width)`` before shifting and the result selected against the out-of-range fill; a signed
left shift runs in the unsigned type of the same width (bits past the top are discarded) and is
cast back; a signed right shift of a negative value is ``~(~x >> s)`` (C leaves ``x >> s``
implementation-defined for negative ``x``). ``~x`` is ``x ^ all-ones``.
"""

from __future__ import annotations

from onnxcc.codegen.loops import Binary, Cast, DType, Expr, Select, const, maximum, minimum
from onnxcc.ir import Node
from onnxcc.ops.bitwise import shift_direction

from . import LowerCtx, lower
from .elementwise import elementwise_kernel


def _ints_only(node: Node) -> str | None:
    for v in node.inputs:
        if v.dtype.kind not in "iu":
            return f"{node.op} on {v.dtype.name} is not supported (integers only)"
    return None


def _all_ones(x: Expr) -> Expr:
    return const(-1 if x.dtype.signed else (1 << x.dtype.bits) - 1, x.dtype)


def shift_expr(x: Expr, s: Expr, left: bool) -> Expr:
    """``x << s`` / ``x >> s`` with ONNX BitShift-28 semantics, free of C undefined behaviour
    (module docstring); x and s of one integer dtype."""
    dt = x.dtype
    w = dt.bits
    sc = minimum(maximum(s, const(0, dt)), const(w - 1, dt)) if dt.signed else \
        minimum(s, const(w - 1, dt))
    ok = Binary("lt", s, const(w, dt))
    if dt.signed:
        ok = Binary("and", Binary("ge", s, const(0, dt)), ok)
    zero = const(0, dt)
    if left:
        if dt.signed:
            u = DType("u" + dt.name)
            r: Expr = Cast(Binary("shl", Cast(x, u), Cast(sc, u)), dt)
        else:
            r = Binary("shl", x, sc)
        return Select(ok, r, zero)
    if not dt.signed:
        return Select(ok, Binary("shr", x, sc), zero)
    neg = Binary("lt", x, zero)
    ones = _all_ones(x)
    r = Select(neg, Binary("xor", Binary("shr", Binary("xor", x, ones), sc), ones),
               Binary("shr", x, sc))
    return Select(ok, r, Select(neg, ones, zero))


_BINARY = {"BitwiseAnd": "and", "BitwiseOr": "or", "BitwiseXor": "xor"}


@lower("BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", supports=_ints_only)
def _lower_bitwise(node: Node, ctx: LowerCtx):
    """z = x (op) y over the broadcast shape (BitwiseNot: y = ~x)."""
    if node.outputs[0].type.size == 0:
        return None
    if node.op == "BitwiseNot":
        return elementwise_kernel(ctx, [0], lambda a: Binary("xor", a[0], _all_ones(a[0])))
    if node.op == "BitShift":
        left = shift_direction(node) == "LEFT"
        return elementwise_kernel(ctx, [0, 1], lambda a: shift_expr(a[0], a[1], left))
    return elementwise_kernel(ctx, [0, 1], lambda a: Binary(_BINARY[node.op], a[0], a[1]))
