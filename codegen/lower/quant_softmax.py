"""onnxcc.QSoftmax as loop IR: TFLite's integer softmax (semantics and sources:
``onnxcc.ops.quant_int``; the numpy reference there is what this kernel reproduces bit for bit).

gemmlowp's fixed-point primitives as loop-IR arithmetic, in three forms of the same values:

- ``SaturatingRoundingDoublingHighMul(a, b)``: the product in int64, the nudge ``2**30`` (or
  ``1 - 2**30`` for a negative product), a truncating division by ``2**31``: for p >= 0 that
  is ``(p + 2**30) >> 31``; for p < 0 the truncation of the negative ``p + 1 - 2**30`` is the
  floor of ``p + 1 - 2**30 + 2**31 - 1``, the same ``(p + 2**30) >> 31`` (an arithmetic shift,
  no 64-bit division). Its saturation (only INT32_MIN * INT32_MIN overflows) is left out: in
  this kernel one operand is always a positive constant or a value above INT32_MIN (the exp's
  Q0.31 argument lies in [-2**28, 2**28), its powers and results are >= 0, the Newton iterate
  and the reciprocal are positive), so the reference's saturating form gives the same values.
  In size mode (C, LLVM) it is the ``srdhm`` intrinsic instead (``onnxcc.codegen.requantize``:
  one out-of-line C function, 11 calls of it).
- ``RoundingDivideByPOT(x, e)``: ``(x >> e) + (remainder > threshold)`` (``>>`` is arithmetic);
  of the values proved non-negative (C, LLVM): ``((x >> (e - 1)) + 1) >> 1``.
- left shifts of values that may be negative are multiplications (C's ``<<`` of a negative int
  is undefined).
- the reciprocal: HLS normalizes the (positive) sum by its leading zeros in int64 (a 5-step
  binary search) and keeps gemmlowp's saturations; C and LLVM normalize in int32 (the sum is
  at least 2**19: a 5-step search, in size mode a loop of at most 11 doublings), whose result
  is the half sum itself, and drop the Newton steps' and the final rescale's saturations that
  cannot happen (checked over all 2**30 half sums).
- the output's rounding shift: in C and LLVM one SMMLA (the ``smmla`` intrinsic) and a 32-bit
  shift when the output shift allows (output scales from about 2**-29 to 2), else in int64.

Per row (one loop nest over the other axes): the row's max, a pass summing the rescaled exps, the
reciprocal of the sum, a pass writing each output (the exp computed again, as TFLite and
CMSIS-NN do, so no scratch row is needed). In size mode the two passes are one loop run twice
(the exp's code emitted once) and, in C and LLVM, the exp's barrel shifter is a loop over the 7
EXP_BARREL multipliers (a 28-byte constant table among the weights) and the three Newton steps a
loop.

Cortex-M4, arm-none-eabi-gcc, the softmax of the MLP 784-128-64-10 (benchmarks/models.py):
size mode (-Os) 1,036 -> 370 bytes plus the 28-byte srdhm and 6-byte smmla functions, for 1.45x
the instructions (2,853 -> 4,149); speed mode 1,356 -> 956 bytes, 2,579 -> 2,054 instructions
(DS-CNN: size 1,066 -> 368, speed 1,380 -> 996 bytes; MobileNetV1-0.25: 936 -> 378, 1,226 ->
814).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from onnxcc.codegen.loops import (I32, I64, Assign, Binary, Buffer, Call, Cast, Comment, Const,
                                  Decl, DType, Expr, If, Loop, Select, Stmt, Store, Var, const,
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
    kernel). ``call`` (size mode): SaturatingRoundingDoublingHighMul as the ``srdhm``
    intrinsic (one out-of-line C function) instead of inline int64 arithmetic. ``short`` (not
    HLS): the RoundingDivideByPOT of values known to be non-negative in its short form."""

    def __init__(self, counter: list[int], call: bool = False, short: bool = False) -> None:
        self.body: list[Stmt] = []
        self.counter = counter
        self.call, self.short = call, short

    def sub(self) -> "_Emit":
        """An emitter for a nested block (a loop body): the same names and forms."""
        return _Emit(self.counter, self.call, self.short)

    def let(self, e: Expr, name: str = "t") -> Var:
        v = Var(f"{name}{self.counter[0]}", e.dtype)
        self.counter[0] += 1
        self.body.append(Decl(v, e))
        return v

    def srdhm(self, a: Expr, b: Expr | int) -> Var:
        """SaturatingRoundingDoublingHighMul of int32 ``a`` and ``b``."""
        if self.call:
            return self.let(Call("srdhm", (a, const(b, I32) if isinstance(b, int) else b), I32),
                            "h")
        bb = const(b, I64) if isinstance(b, int) else Cast(b, I64)
        p = self.let(Cast(a, I64) * bb, "p")
        # (p + nudge) / 2**31 truncated is (p + 2**30) >> 31 for either sign of p (module
        # docstring): no 64-bit division, which is a library call on 32-bit cores
        q = Binary("shr", p + const(1 << 30, I64), const(31, I64))
        return self.let(Cast(q, I32), "h")

    def rdbp(self, x: Expr, e: int, nonneg: bool = False) -> Var:
        """RoundingDivideByPOT of int32 ``x`` by ``2**e``. ``nonneg``: the caller proved
        ``x >= 0``, for which (short form) it is ``floor((x + 2**(e-1)) / 2**e)``, computed
        without overflow as ``((x >> (e - 1)) + 1) >> 1`` (``(x + 1) >> 1`` for e = 1, where
        ``x < INT32_MAX``)."""
        if nonneg and self.short:
            y = x if e == 1 else Binary("shr", x, const(e - 1, I32))
            return self.let(Binary("shr", y + const(1, I32), const(1, I32)), "r")
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

    def exp_on_negative_values(self, a: Var, barrel: Buffer | None = None) -> Var:
        """gemmlowp's exp_on_negative_values of a Q5.26 ``a <= 0`` (Q0.31). ``barrel``: the
        EXP_BARREL multipliers as a constant int32 buffer, for the barrel shifter as a loop
        over them (one doubling high multiply in the code), else 7 unrolled steps."""
        quarter = 1 << 24
        amq = self.let(Binary("and", a, const(quarter - 1, I32)) - const(quarter, I32), "amq")
        rem = self.let(amq - a, "rem")
        x = self.let(amq * const(32, I32) + const(1 << 28, I32), "x")
        x2 = self.srdhm(x, x)
        x3 = self.srdhm(x2, x)
        x4 = self.srdhm(x2, x2)
        # x4 >= 0, and so is the sum rounded into poly: over all 2**24 values of x (they depend
        # on a's low 24 bits only), tests/ops/test_int8_softmax_pool.py checks it
        x4q = self.rdbp(x4, 2, nonneg=True)
        poly = self.rdbp(self.srdhm(x4q + x3, 715827883) + x2, 1, nonneg=True)
        r = self.let(const(1895147668, I32) + self.srdhm(const(1895147668, I32), x + poly), "e")
        if barrel is not None:
            k, inner = Var(f"k{self.counter[0]}"), self.sub()
            self.counter[0] += 1
            bit = Binary("ne", Binary("and", Binary("shr", rem, k + const(24, I32)),
                                      const(1, I32)), const(0, I32))
            step = inner.srdhm(r, barrel[(k,)])
            self.body.append(Loop(k, 0, len(EXP_BARREL),
                                  [If(bit, inner.body + [Assign(r, step)])]))
        for k, c in ([] if barrel is not None else enumerate(EXP_BARREL)):
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

    def reciprocal_of_half(self, half: Expr, loop: bool) -> Var:
        """:meth:`one_over_one_plus_x` of the half sum ``half`` (Q0.31, (1 + a) / 2 in
        [1/2, 1)), the three Newton-Raphson steps as a loop (``loop``) or unrolled."""
        x = self.let(const(1515870810, I32) + self.srdhm(half, -1010580540), "nr")
        # the steps' saturating multiplications by 4 and 2 (mul_pot) never saturate and the
        # iterate stays positive: over every half in [2**30, 2**31), |t| <= 14,861,479 and x
        # lies in [535,013,226, 2**30] after each step (checked exhaustively; the test checks
        # a sample). So a step is x + 4 t, and the result 2 x, or INT32_MAX for x = 2**30.
        if loop:
            it, inner = Var(f"n{self.counter[0]}"), self.sub()
            self.counter[0] += 1
            t = inner.srdhm(x, const(1 << 29, I32) - inner.srdhm(half, x))
            self.body.append(Loop(it, 0, 3, inner.body + [Assign(x, x + t * const(4, I32))]))
        else:
            for _ in range(3):
                t = self.srdhm(x, const(1 << 29, I32) - self.srdhm(half, x))
                x = self.let(x + t * const(4, I32), "nr")
        return self.let(Select(Binary("gt", x, const((1 << 30) - 1, I32)), const(Q31_MAX, I32),
                               x * const(2, I32)), "s")


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

    def exp_of(em: _Emit, barrel: Buffer | None = None) -> Var:
        # the scaled difference: d * 2**left_shift (|.| < 31 * 2**26 once d >= diff_min), then
        # the doubling high multiply by the input multiplier: Q5.26
        # (left shift 31 gives diff_min 0: only d = 0 gets here)
        scaled = d * const(1 << lshift, I32) if lshift < 31 else const(0, I32)
        return em.exp_on_negative_values(em.srdhm(scaled, mult), barrel)

    hls = getattr(ctx.target, "backend", "") == "hls"
    # size mode (C, LLVM): the srdhm intrinsic, loops over the barrel and the Newton steps;
    # short (C, LLVM): exact shortcuts in int32 (module docstring); HLS (no srdhm, no smmla)
    # keeps gemmlowp's forms
    compact, short = ctx.size and not hls, not hls

    def emit() -> _Emit:
        return _Emit(counter, call=compact, short=short)

    barrel = None
    inputs = [X]
    if compact:
        barrel = Buffer("barrel", I32, (len(EXP_BARREL),), None, "weight",
                        data=np.array(EXP_BARREL, np.int32), value="")
        inputs.append(barrel)
    # pass 1: max
    body: list[Stmt] = [Decl(mx, xval(Const(0)))]
    if L > 1:
        body.append(Loop(l0, 1, L, [Assign(mx, maximum(mx, xval(l0)))]))
    # the reciprocal of the sum of exps (Q12.19), computed between the passes: leading zeros of
    # the sum, normalized sum - 1, 1 / (1 + that)
    scale, sh = Var("scale", I32), Var("shift", I32)
    if short:
        # in int32: the sum s is at least 2**19 (the row's max has d = 0, whose exp is
        # Q31_MAX, 2**19 once divided by 2**ACCUM_BITS) and below 2**31 (SOFTMAX_MAX_ROW): hr
        # doublings bring it into [2**30, 2**31) (at most 11; a 5-step binary search in speed
        # mode). The reference's normalized sum is twice that (hp1 = hr + 1 leading zeros),
        # minus 2**31 its sm1, and (sm1 + 2**31) / 2 exactly s * 2**hr: the half sum the
        # Newton steps divide.
        ns, hr = Var("ns", I32), Var("hr", I32)
        recip: list[Stmt] = [Assign(ns, total), Assign(hr, const(0, I32))]
        if compact:
            j = Var("j")
            recip.append(Loop(j, 0, 30 - (31 - ACCUM_BITS), [
                If(Binary("lt", ns, const(1 << 30, I32)),
                   [Assign(ns, ns * const(2, I32)), Assign(hr, hr + const(1, I32))])]))
        else:
            for k in (16, 8, 4, 2, 1):
                c = Binary("lt", ns, const(1 << (31 - k), I32))
                recip += [Assign(hr, hr + Select(c, const(k, I32), const(0, I32))),
                          Assign(ns, Select(c, ns * const(1 << k, I32), ns))]
        em = emit()
        inv = em.reciprocal_of_half(ns, loop=compact)
        recip += em.body + [Assign(scale, inv)]
        row_vars = [total, ns, hr, scale]
        # s = out_shift + bits_over_unit = out_shift + 11 - hr, in [out_shift, out_shift + 11]
        s_row = const(osh + ACCUM_BITS - 1, I32) - hr
    else:
        h, s64 = Var("hp1", I32), Var("norm", I64)
        recip = [Assign(h, const(0, I32)), Assign(s64, Cast(total, I64))]
        for k in (16, 8, 4, 2, 1):
            c = Binary("lt", s64, const(1 << (32 - k), I64))
            recip += [Assign(h, h + Select(c, const(k, I32), const(0, I32))),
                      Assign(s64, Select(c, s64 * const(1 << k, I64), s64))]
        em = emit()
        sm1 = em.let(Cast(s64 - const(1 << 31, I64), I32), "sm1")
        inv = em.one_over_one_plus_x(sm1)
        recip += em.body + [Assign(scale, inv)]
        row_vars = [total, h, s64, scale]
        s_row = const(osh + ACCUM_BITS, I32) - h          # + bits_over_unit
    hi_form = short and osh >= 33 and 0 < om < 1 << 31 and lo <= zp
    if hi_form:
        # the output's rounding shift in 32-bit words (out_shift >= 33 and a multiplier:
        # output scales from about 2**-29 to 2): P = p * om + 2**(s - 1) lies in [0, 2**63)
        # (p = srdhm(scale, e) is in [0, 2**31): scale > 0, e >= 0). For s <= 62 the half
        # 2**(s - 1) is 2**(s - 33) in P's high word, which SMMLA computes exactly (it is below
        # 2**31), and P >> s is that word >> (s - 32). s >= 63 (y = zero point in the
        # reference) is taken as 63: the high word of p * om + 2**62 is below 2**31, so 0 once
        # shifted by 31. The quotient is below 2**30, so adding the zero point cannot overflow,
        # and as it is >= 0 only the upper clamp remains.
        rsh, rnd = Var("rsh", I32), Var("rnd", I32)
        sc = s_row if osh + ACCUM_BITS - 1 <= 63 else minimum(s_row, const(63, I32))
        recip += [Assign(rsh, sc - const(32, I32)),
                  Assign(rnd, Binary("shl", const(1, I32), rsh - const(1, I32)))]
        row_vars += [rsh, rnd]
    else:
        recip.append(Assign(sh, s_row))
        row_vars.append(sh)

    def output(p: Expr) -> Stmt:
        # p = srdhm(scale, e): the probability times 2**(31 + bits_over_unit)
        if hi_form:
            word = Call("smmla", (p, const(om, I32), rnd), I32)
            v = Binary("shr", word, rsh) + const(zp, I32)
            return Store(Y, (o, lv, i), Cast(minimum(v, const(hi, I32)), out_dt))
        shc = minimum(sh, const(62, I32))
        v64 = Binary("shr", Cast(p, I64) * const(om, I64)
                     + Binary("shl", const(1, I64), Cast(shc - const(1, I32), I64)),
                     Cast(shc, I64))
        v64 = Select(Binary("ge", sh, const(63, I32)), const(0, I64), v64)
        yv = Cast(maximum(minimum(v64 + const(zp, I64), const(hi, I64)), const(lo, I64)),
                  out_dt)
        return Store(Y, (o, lv, i), yv)

    none = Store(Y, (o, lv, i), const(min(max(zp, lo), hi), out_dt))
    body += [Decl(rv, const(0, I64 if rv.dtype == I64 else I32)) for rv in row_vars]
    if ctx.size:
        # size mode: one loop over both passes, so the exp's code is there once (the
        # module docstring's bytes); the reciprocal at the top of the second pass
        ps = Var("pass")
        em = emit()
        e = exp_of(em, barrel)
        acc = em.rdbp(e, ACCUM_BITS, nonneg=True)   # exps are >= 0
        em3 = emit()
        st = output(em3.srdhm(scale, e))
        body.append(Loop(ps, 0, 2, [
            If(Binary("eq", ps, const(1, I32)), recip),
            Loop(lv, 0, L, [Decl(d, xval(lv) - mx),
                            If(Binary("ge", d, const(diff_min, I32)),
                               em.body + [If(Binary("eq", ps, const(0, I32)),
                                             [Assign(total, total + acc)], em3.body + [st])],
                               [If(Binary("ne", ps, const(0, I32)), [none])])])]))
    else:
        # pass 2: the sum of exps; the reciprocal; pass 3: each output
        em = emit()
        e = exp_of(em)
        acc = em.rdbp(e, ACCUM_BITS, nonneg=True)
        body.append(Loop(lv, 0, L, [Decl(d, xval(lv) - mx),
                                    If(Binary("ge", d, const(diff_min, I32)),
                                       em.body + [Assign(total, total + acc)])]))
        body += recip
        em = emit()
        e = exp_of(em)
        st = output(em.srdhm(scale, e))
        body.append(Loop(lv, 0, L, [Decl(d, xval(lv) - mx),
                                    If(Binary("ge", d, const(diff_min, I32)), em.body + [st],
                                       [none])]))
    nest = loops([(o, 0, outer), (i, 0, inner)], body)
    return _kernel(ctx, Y, inputs, nest, X, out_dt, mult, lshift, diff_min, om, osh, zp)


def _kernel(ctx: LowerCtx, Y: Buffer, inputs: list[Buffer], nest: list[Stmt], X: Buffer,
            out_dt: DType, mult: int, lshift: int, diff_min: int, om: int, osh: int,
            zp: int) -> Any:
    """The QSoftmax kernel of ``nest`` with its comment."""
    text = (f"QSoftmax: x {shape_text(X.shape)} {X.dtype} -> y {out_dt} along axis 1 of the "
            f"(outer, row, inner) view; TFLite integer softmax (input multiplier {mult}, left "
            f"shift {lshift}, diff_min {diff_min}), output multiplier {om} >> {osh}, zero "
            f"point {zp}")
    return ctx.kernel("qsoftmax", [Y], inputs, [Comment(text)] + nest, comment=text)
