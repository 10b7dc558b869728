"""Table-driven ops (``onnxcc.ops.table``) as loops: TableSoftmax row by row."""

from __future__ import annotations

import math
from typing import Any

from onnxcc.codegen.loops import (Assign, Binary, Buffer, Cast, Comment, Const, Decl, I32,
                                  Loop, Store, Var, const, maximum, minimum)
from onnxcc.ir import Node

from . import LowerCtx, lower


@lower("onnxcc.TableSoftmax")
def _lower_table_softmax(node: Node, ctx: LowerCtx) -> Any:
    """Per row r of x viewed as (R, L): ``m`` = the row's maximum; ``e[j]`` = exp_table at
    ``min(trunc((m - x[r, j]) * exp_scale), N - 1)`` kept in a local row; ``s`` = their sum;
    ``y[r, j] = e[j] * inv_table[min(trunc(s * inv_scale), N2 - 1)]`` (onnxcc.ops.table). The
    float index is clamped before the cast (fmin), so no out-of-range conversion happens, and
    into [0, N) after it."""
    x, y = ctx.input(0, "x"), ctx.output(0, "y")
    ET, IT = ctx.input(1, "exp_table"), ctx.input(2, "inv_table")
    axis = int(node.attrs.get("axis", -1)) % len(x.shape)   # followed only by dims of 1
    L = x.shape[axis]
    R = math.prod(x.shape[:axis])
    X = Buffer(x.name, x.dtype, (R, L), None, x.space, x.offset, x.index, x.data, x.value)
    Y = Buffer(y.name, y.dtype, (R, L), None, y.space, y.offset, y.index, y.data, y.value)
    dt = X.dtype
    N, N2 = ET.shape[0], IT.shape[0]
    es = float(node.attrs.get("exp_scale", 128.0))
    ins = float(node.attrs.get("inv_scale", 64.0))
    E = Buffer("e", dt, (L,), space="local")
    r, j, j2, j3 = Var("r"), Var("j"), Var("j2"), Var("j3")
    m, s, inv = Var("m", dt), Var("s", dt), Var("inv", dt)
    def index(v, n: int):   # clamped in float (no out-of-range cast), then in int (verify)
        return minimum(maximum(Cast(Binary("fmin", v, const(n - 1, dt)), I32), Const(0)),
                       Const(n - 1))

    idx = index((m - X[(r, j2)]) * const(es, dt), N)
    kid = index(s * const(ins, dt), N2)
    body = [
        Decl(m, X[(r, Const(0))]),
        Loop(j, 1, L, [Assign(m, maximum(m, X[(r, j)]))]),
        Decl(s, const(0, dt)),
        Loop(j2, 0, L, [Store(E, (j2,), ET[(idx,)]), Assign(s, s + E[(j2,)])]),
        Decl(inv, IT[(kid,)]),
        Loop(j3, 0, L, [Store(Y, (r, j3), E[(j3,)] * inv)]),
    ]
    text = (f"TableSoftmax: x {R}x{L} rows; exp table of {N} entries, {es:g} per unit; "
            f"reciprocal table of {N2} entries, {ins:g} per unit of the sum")
    return ctx.kernel("table_softmax", [Y], [X, ET, IT],
                      [Comment(text), Loop(r, 0, R, body)], comment=text, locals=[E])


@lower("onnxcc.TableActivation")
def _lower_table_activation(node: Node, ctx: LowerCtx) -> Any:
    """y[i] = table[clamp(trunc((x[i] - lo) * scale), 0, N - 1)] (onnxcc.ops.table), the float
    index clamped before the cast (no out-of-range conversion) and into [0, N) after it."""
    from .elementwise import elementwise_kernel

    T = ctx.input(1, "table")
    N = T.shape[0]
    lo, sc = float(node.attrs.get("lo", -8.0)), float(node.attrs.get("scale", 64.0))

    def fn(v):
        dt = v[0].dtype
        pos = Binary("fmax", (v[0] - const(lo, dt)) * const(sc, dt), const(0, dt))
        i = minimum(maximum(Cast(Binary("fmin", pos, const(N - 1, dt)), I32), Const(0)),
                    Const(N - 1))
        return T[(i,)]

    k = elementwise_kernel(ctx, [0], fn)
    k.inputs = k.inputs + [T]
    k.comment = f"lookup table of {N} entries over [{lo:g}, {lo + N / sc:g})"
    return k
