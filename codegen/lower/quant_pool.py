"""com.microsoft.QLinearAveragePool and QLinearGlobalAveragePool as loop IR: an int32 sum over
the window's taps inside x, then a division by the count rounding half to even or a fixed-point
requantization (semantics and sources: ``onnxcc.ops.quant_int``; the numpy reference there is
what this kernel reproduces bit for bit).

One nest over (n, c, output position); the taps that can land inside x (``nn._pool_taps``) with
a guarded load (a padded tap reads nothing and adds 0). The count at an output position is the
product of per-axis counts (``nn._pool_divisor``: literals, or tables by position when they
vary). In the requantizing form, the fixed-point multiplier of each possible count is a literal
when there is one count, else a table indexed by the count (the index clamped to the table, so
``verify`` proves it in bounds).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onnxcc.codegen.loops import (I32, Buffer, Call, Cast, Comment, DType, Expr, Load, Select,
                                  Binary, Stmt, Assign, Decl, Store, Var, all_of, const,
                                  maximum, minimum)
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops.nn import pool_counts, pool_geometry
from onnxcc.ops.quant import qrange
from onnxcc.ops.quant_int import count_multipliers, pool_params

from . import LowerCtx, lower
from .nn import (LABELS, _pool_divisor, _pool_taps, axis_var, in_range, lin, loops,
                 read_buffers, shape_text)


def _scalar(node: Node, k: int) -> Any:
    v = node.inputs[k] if len(node.inputs) > k and node.inputs[k] is not None else None
    return None if v is None else np.asarray(v.const).reshape(-1)[0]


def _supports(node: Node) -> str | None:
    if node.inputs[0].dtype not in (np.int8, np.uint8):
        return f"{node.op} of {node.inputs[0].dtype} is not supported (int8, uint8)"
    return None


@lower("com.microsoft.QLinearAveragePool", "com.microsoft.QLinearGlobalAveragePool",
       supports=_supports)
def _lower_qpool(node: Node, ctx: LowerCtx) -> Any:
    """y[n, c, o...] = the integer average of x[n, c, o*s + k*d - pb] over the window's taps
    inside x; x (N, C, *S) and y (N, C, *O) int8/uint8 (module docstring)."""
    x = node.inputs[0]
    X, Y = ctx.input(0, "x"), ctx.output(0, "y")
    glob = node.op.endswith("GlobalAveragePool")
    I = list(x.shape[2:])
    nd = len(I)
    if glob:
        pb, pe, s, d, K, O = (0,) * nd, (0,) * nd, (1,) * nd, (1,) * nd, tuple(I), (1,) * nd
        include = False
    else:
        pb, pe, s, d, K, O = pool_geometry(node, x.shape)
        include = bool(attr(node, "count_include_pad"))
    xs, xz, ys, yz = (_scalar(node, k) for k in (1, 2, 3, 4))
    tflite, real = pool_params(node, xs, xz, ys, yz)
    z_x = 0 if xz is None else int(xz)
    z_y = 0 if yz is None else int(yz)
    N, C = x.shape[:2]
    lb = LABELS[nd]
    n, c = axis_var("n", N), axis_var("c", C)
    o = [axis_var("o" + lb[a], O[a]) for a in range(nd)]
    k0, KT = _pool_taps(pb, s, d, K, O, I)
    k = [axis_var("k" + lb[a], KT[a]) for a in range(nd)]
    iv = [lin((o[a], s[a]), (k[a], d[a]), k0[a] * d[a] - pb[a]) for a in range(nd)]
    conds, possible = in_range([(iv[a], I[a]) for a in range(nd)])
    mask = all_of(*conds)
    before = tflite and bool(node.attrs.get("round_before_zero_point"))
    fill = 0 if tflite and not before else z_x     # a padded tap adds 0 to the sum it joins
    xv: Expr = Cast(Load(X, (n, c, *iv), mask, const(fill, X.dtype) if conds else None), I32)
    if (before or not tflite) and z_x:
        xv = xv - const(z_x, I32)
    ins: list[Buffer] = [X]
    acc, cnt = Var("acc", I32), Var("cnt", I32)
    if glob:
        count: Expr = const(math.prod(I), I32)
        counts = np.array([math.prod(I)])
    else:
        count = _pool_divisor(node, ins, o, I32)
        counts = pool_counts(I, pb, pe, s, d, K, O, include)
    out_dt = DType.of(node.outputs[0].dtype)
    lo, hi = qrange(out_dt.np)
    red = loops([(k[a], 0, KT[a]) for a in range(nd)], [Assign(acc, acc + xv)]) \
        if possible else []
    body: list[Stmt] = [Decl(acc, const(0, I32)), *red, Decl(cnt, count)]
    if tflite:
        # round half to even of acc / cnt: t / (2 cnt) with t = 2 (acc + 128 cnt) + cnt >= 0
        # (every stored value is >= -128; 128 is even, so the parity is kept), less one on an
        # exact tie with an odd quotient
        # with round_before_zero_point: of (sum of x - zp) / cnt, then the zero point (x - zp
        # >= -255, so 256 keeps t >= 0)
        off = 256 if before else 128
        t, q = Var("t", I32), Var("q", I32)
        body_tie: list[Stmt] = [
            Decl(t, (acc + cnt * const(off, I32)) * const(2, I32) + cnt),
            Decl(q, t / (cnt * const(2, I32)))]
        r: Expr = Select(Binary("eq", t % (cnt * const(2, I32)), const(0, I32)),
                         q - q % const(2, I32), q) - const(off - (z_x if before else 0), I32)
        how = ("division by the count rounding half to even"
               + (", before the zero point" if before else ""))
    else:
        mults = count_multipliers(real, counts)
        if len(mults) == 1:
            (m, sh), = mults.values()
            r = Call("requantize", (acc, const(m, I32), const(sh, I32)), I32)
        else:
            top = max(mults)
            tm = np.zeros(top + 1, np.int32)
            ts = np.ones(top + 1, np.int8)
            for cc, (m, sh) in mults.items():
                tm[cc], ts[cc] = m, sh
            TM = Buffer("rq_m", I32, (top + 1,), space="weight", data=tm, value="")
            TS = Buffer("rq_shift", DType("int8"), (top + 1,), space="weight", data=ts, value="")
            ins += [TM, TS]
            at = (minimum(maximum(cnt, const(0, I32)), const(top, I32)),)
            r = Call("requantize", (acc, TM[at], Cast(TS[at], I32)), I32)
        # |requantize| < 2**31; saturating before adding the zero point keeps the sum in int32
        r = maximum(minimum(r, const(hi - z_y, I32)), const(lo - z_y, I32)) + const(z_y, I32)
        how = (f"requantize by float32(x_scale / y_scale) / count (x zero point {z_x}, y zero "
               f"point {z_y})")
    if tflite:
        body += body_tie
    body.append(Store(Y, (n, c, *o), Cast(maximum(minimum(r, const(hi, I32)), const(lo, I32)),
                                         out_dt)))
    nest = loops([(n, 0, N), (c, 0, C)] + [(o[a], 0, O[a]) for a in range(nd)], body)
    text = (f"{node.op.split('.')[-1]}: x {shape_text(X.shape)} {X.dtype} (N,C,spatial...), "
            f"y {shape_text(Y.shape)}; kernel {list(K)}, strides {list(s)}, pads_begin "
            f"{list(pb)}; int32 sum, {how}")
    return ctx.kernel(node.op.split(".")[-1].lower(), [Y], read_buffers(nest, ins),
                      [Comment(text)] + nest, comment=text)
