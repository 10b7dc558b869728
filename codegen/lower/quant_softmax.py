"""onnxcc.QSoftmax as loop IR: TFLite's integer softmax (semantics and sources:
``onnxcc.ops.quant_int``; the numpy reference there is what this kernel reproduces bit for bit).

gemmlowp's fixed-point primitives become plain loop-IR arithmetic, with no intrinsic a back end
must know, so the C, LLVM and HLS renderers (and the interpreter) all get the kernel:

- ``SaturatingRoundingDoublingHighMul(a, b)``: the product in int64, the nudge ``2**30`` (or
  ``1 - 2**30`` for a negative product), a truncating division by ``2**31``: for p >= 0 that
  is ``(p + 2**30) >> 31``; for p < 0 the truncation of the negative ``p + 1 - 2**30`` is the
  floor of ``p + 1 - 2**30 + 2**31 - 1``, the same ``(p + 2**30) >> 31`` (an arithmetic shift,
  no 64-bit division). Its saturation (only INT32_MIN * INT32_MIN overflows) is left out: in
  this kernel one operand is always a positive constant or a value above INT32_MIN (the exp's
  Q0.31 argument lies in [-2**28, 2**28), its powers and results are >= 0, the Newton iterate
  and the reciprocal are positive), so the reference's saturating form gives the same values.
- ``RoundingDivideByPOT(x, e)``: ``(x >> e) + (remainder > threshold)`` (``>>`` is arithmetic).
- left shifts of values that may be negative are multiplications (C's ``<<`` of a negative int
  is undefined); the normalizing shift of the positive sum by its leading zeros is in int64.
- the leading-zero count of the (positive) sum is a 5-step binary search.

Per row (one loop nest over the other axes): the row's max, a pass summing the rescaled exps, the
reciprocal of the sum, a pass writing each output (the exp computed again, as TFLite and
CMSIS-NN do, so no scratch row is needed). In size mode the two passes are one loop run twice,
so the exp's code is emitted once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from onnxcc.codegen.loops import (I32, I64, Assign, Binary, Cast, Comment, Const, Decl, DType,
                                  Expr, If, Loop, Select, Stmt, Store, Var, const,
                                  contiguous_strides, maximum, minimum)
from onnxcc.errors import OnnxccError
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops.quant_int import (ACCUM_BITS, EXP_BARREL, Q31_MAX, SOFTMAX_MAX_ROW,
                                  row_view)
from onnxcc.ops.quant import qrange

from . import LowerCtx, lower
from .nn import axis_var, loops, shape_text


class _Emit:
    """Statements computing fixed-point values into fresh int32 locals (names unique in the
    kernel)."""

    def __init__(self, counter: list[int]) -> None:
        self.body: list[Stmt] = []
        self.counter = counter

    def let(self, e: Expr, name: str = "t") -> Var:
        v = Var(f"{name}{self.counter[0]}", e.dtype)
        self.counter[0] += 1
        self.body.append(Decl(v, e))
        return v

    def srdhm(self, a: Expr, b: Expr | int) -> Var:
        """SaturatingRoundingDoublingHighMul of int32 ``a`` and ``b``."""
        bb = const(b, I64) if isinstance(b, int) else Cast(b, I64)
        p = self.let(Cast(a, I64) * bb, "p")
        # (p + nudge) / 2**31 truncated is (p + 2**30) >> 31 for either sign of p (module
        # docstring): no 64-bit division, which is a library call on 32-bit cores
        q = Binary("shr", p + const(1 << 30, I64), const(31, I64))
        return self.let(Cast(q, I32), "h")

    def rdbp(self, x: Expr, e: int) -> Var:
        """RoundingDivideByPOT of int32 ``x`` by ``2**e``."""
        mask = (1 << e) - 1
        thr = const(mask >> 1, I32) + Select(Binary("lt", x, const(0, I32)), const(1, I32),
                                             const(0, I32))
        up = Select(Binary("gt", Binary("and", x, const(mask, I32)), thr), const(1, I32),
                    const(0, I32))
        return self.let(Binary("shr", x, const(e, I32)) + up, "r")

    def mul_pot(self, x: Expr, e: int) -> Var:
        """SaturatingRoundingMultiplyByPOT for e > 0: ``x * 2**e`` saturated."""
        thr = (1 << (31 - e)) - 1
        return self.let(Select(Binary("gt", x, const(thr, I32)), const(Q31_MAX, I32),
                               Select(Binary("lt", x, const(-thr, I32)),
                                      const(-(1 << 31), I32), x * const(1 << e, I32))), "s")

    def exp_on_negative_values(self, a: Var) -> Var:
        """gemmlowp's exp_on_negative_values of a Q5.26 ``a <= 0`` (Q0.31)."""
        quarter = 1 << 24
        amq = self.let(Binary("and", a, const(quarter - 1, I32)) - const(quarter, I32), "amq")
        rem = self.let(amq - a, "rem")
        x = self.let(amq * const(32, I32) + const(1 << 28, I32), "x")
        x2 = self.srdhm(x, x)
        x3 = self.srdhm(x2, x)
        x4 = self.srdhm(x2, x2)
        x4q = self.rdbp(x4, 2)
        poly = self.rdbp(self.srdhm(x4q + x3, 715827883) + x2, 1)
        r = self.let(const(1895147668, I32) + self.srdhm(const(1895147668, I32), x + poly), "e")
        for k, c in enumerate(EXP_BARREL):
            bit = Binary("ne", Binary("and", rem, const(1 << (24 + k), I32)), const(0, I32))
            r = self.let(Select(bit, self.srdhm(r, c), r), "e")
        return self.let(Select(Binary("eq", a, const(0, I32)), const(Q31_MAX, I32), r), "exp")

    def one_over_one_plus_x(self, a: Var) -> Var:
        """gemmlowp's one_over_one_plus_x_for_x_in_0_1 of a Q0.31 ``a`` in [0, 1) (so the
        half sum with 1 is ``(a + INT32_MAX + 1) >> 1``, positive)."""
        half = self.let(Cast(Binary("shr", Cast(a, I64) + const(Q31_MAX + 1, I64),
                                    const(1, I64)), I32), "half")
        x = self.let(const(1515870810, I32) + self.srdhm(half, -1010580540), "nr")
        for _ in range(3):
            t = self.srdhm(x, const(1 << 29, I32) - self.srdhm(half, x))
            x = self.let(x + self.mul_pot(t, 2), "nr")
        return self.mul_pot(x, 1)


def _supports(node: Node) -> str | None:
    x = node.inputs[0]
    if x.dtype not in (np.int8, np.uint8):
        return f"integer Softmax of {x.dtype} is not supported (int8, uint8)"
    return None


@lower("onnxcc.QSoftmax", supports=_supports)
def _lower_qsoftmax(node: Node, ctx: LowerCtx) -> Any:
    """y (outer, L, inner) = TFLite's integer softmax of x along L (x and y contiguous, any
    rank: the axes before, in and after the softmax's axes are viewed as outer, L, inner)."""
    x = node.inputs[0]
    X, Y = ctx.input(0, "x"), ctx.output(0, "y")
    axis, count = int(attr(node, "axis")), int(attr(node, "count"))
    outer, L, inner = row_view(x.shape, axis, count)
    if L > SOFTMAX_MAX_ROW:
        raise OnnxccError(f"node {node.name!r}: integer Softmax rows of {L} > "
                          f"{SOFTMAX_MAX_ROW} elements")
    for b in (X, Y):
        if b.strides != contiguous_strides(b.shape):
            raise OnnxccError(f"node {node.name!r} ({node.op}): {b.name} is not contiguous")
    view = (outer, L, inner)
    vs = (L * inner, inner, 1)
    X = dataclasses.replace(X, shape=view, strides=vs)
    Y = dataclasses.replace(Y, shape=view, strides=vs)
    mult, lshift = int(attr(node, "multiplier")), int(attr(node, "left_shift"))
    diff_min = int(attr(node, "diff_min"))
    om, osh, zp = (int(attr(node, k)) for k in ("out_multiplier", "out_shift", "zero_point"))
    out_dt = DType.of(node.outputs[0].dtype)
    lo, hi = qrange(out_dt.np)
    counter = [0]
    o, i = axis_var("o", outer), axis_var("i", inner)
    lv, l0 = Var("l"), Var("m")

    def xval(l: Expr) -> Expr:
        return Cast(X[(o, l, i)], I32)

    mx, total = Var("mx", I32), Var("sum", I32)
    d = Var("d", I32)

    def exp_of(em: _Emit) -> Var:
        # the scaled difference: d * 2**left_shift (|.| < 31 * 2**26 once d >= diff_min), then
        # the doubling high multiply by the input multiplier: Q5.26
        # (left shift 31 gives diff_min 0: only d = 0 gets here)
        scaled = d * const(1 << lshift, I32) if lshift < 31 else const(0, I32)
        return em.exp_on_negative_values(em.srdhm(scaled, mult))

    # pass 1: max
    body: list[Stmt] = [Decl(mx, xval(Const(0)))]
    if L > 1:
        body.append(Loop(l0, 1, L, [Assign(mx, maximum(mx, xval(l0)))]))
    # pass 2: sum of exps, Q12.19
    h, s64 = Var("hp1", I32), Var("norm", I64)
    em = _Emit(counter)
    e2 = exp_of(em)
    acc = em.rdbp(e2, ACCUM_BITS)
    sum_body = em.body + [Assign(total, total + acc)]
    # the reciprocal: leading zeros of the sum, normalized sum - 1, 1 / (1 + that)
    recip: list[Stmt] = [Assign(h, const(0, I32)), Assign(s64, Cast(total, I64))]
    for k in (16, 8, 4, 2, 1):
        c = Binary("lt", s64, const(1 << (32 - k), I64))
        recip += [Assign(h, h + Select(c, const(k, I32), const(0, I32))),
                  Assign(s64, Select(c, s64 * const(1 << k, I64), s64))]
    em = _Emit(counter)
    sm1 = em.let(Cast(s64 - const(1 << 31, I64), I32), "sm1")
    inv = em.one_over_one_plus_x(sm1)
    scale, sh = Var("scale", I32), Var("shift", I32)
    recip += em.body + [Assign(scale, inv),
                        Assign(sh, const(osh + ACCUM_BITS, I32) - h)]   # + bits_over_unit
    # pass 3: each output
    def output(e: Expr, em: _Emit) -> Stmt:
        p = em.srdhm(scale, e)
        shc = minimum(sh, const(62, I32))
        v64 = Binary("shr", Cast(p, I64) * const(om, I64)
                     + Binary("shl", const(1, I64), Cast(shc - const(1, I32), I64)),
                     Cast(shc, I64))
        v64 = Select(Binary("ge", sh, const(63, I32)), const(0, I64), v64)
        yv = Cast(maximum(minimum(v64 + const(zp, I64), const(hi, I64)), const(lo, I64)),
                  out_dt)
        return Store(Y, (o, lv, i), yv)
    none = Store(Y, (o, lv, i), const(min(max(zp, lo), hi), out_dt))
    body += [Decl(total, const(0, I32)), Decl(h, const(0, I32)), Decl(s64, const(0, I64)),
             Decl(scale, const(0, I32)), Decl(sh, const(0, I32))]
    if ctx.size:
        # size mode: one loop over both passes, so the exp's code is there once (1,224 -> 940
        # bytes on the M4 at -Os, MobileNetV1-0.25); the reciprocal at the top of the second pass
        ps = Var("pass")
        em = _Emit(counter)
        e = exp_of(em)
        acc = em.rdbp(e, ACCUM_BITS)
        em3 = _Emit(counter)
        st = output(e, em3)
        first = Binary("eq", ps, const(0, I32))
        body.append(Loop(ps, 0, 2, [
            If(Binary("eq", ps, const(1, I32)), recip),
            Loop(lv, 0, L, [Decl(d, xval(lv) - mx),
                            If(Binary("ge", d, const(diff_min, I32)),
                               em.body + [If(first, [Assign(total, total + acc)],
                                             em3.body + [st])],
                               [If(Binary("ne", ps, const(0, I32)), [none])])])]))
    else:
        body.append(Loop(lv, 0, L, [Decl(d, xval(lv) - mx),
                                    If(Binary("ge", d, const(diff_min, I32)), sum_body)]))
        body += recip
        em = _Emit(counter)
        e = exp_of(em)
        st = output(e, em)
        body.append(Loop(lv, 0, L, [Decl(d, xval(lv) - mx),
                                    If(Binary("ge", d, const(diff_min, I32)), em.body + [st],
                                       [none])]))
    nest = loops([(o, 0, outer), (i, 0, inner)], body)
    text = (f"QSoftmax: x {shape_text(X.shape)} {X.dtype} -> y {out_dt} along axis 1 of the "
            f"(outer, row, inner) view; TFLite integer softmax (input multiplier {mult}, left "
            f"shift {lshift}, diff_min {diff_min}), output multiplier {om} >> {osh}, zero "
            f"point {zp}")
    return ctx.kernel("qsoftmax", [Y], [X], [Comment(text)] + nest, comment=text)
