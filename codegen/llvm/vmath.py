"""float32 ``exp``, ``erf`` and ``tanh`` as inline LLVM IR that the loop vectorizer can widen.

LLVM lowers ``llvm.exp.v8f32`` and libm's ``erff``/``tanhf`` to one scalar library call per lane
(there is no vector libm on a plain Linux target), so a Softmax, Sigmoid, Tanh or GELU loop ran
at one element per call: the transformer layer's erf-based GELU took 225 us where onnxruntime's
polynomial takes 17. Here each function is straight-line float and integer arithmetic (Horner
steps as ``llvm.fmuladd``, a round, a shift, a bitcast, selects), inside the kernel's loop, so it
vectorizes with the rest of the body.

Accuracy (float32; measured against float64 references over 2**21 points spread over each
function's whole range, ``tests/loops/test_vmath.py``): exp within 2 ulp (subnormal results
within 2 of the smallest subnormal step), erf within 3 ulp, tanh within 3 ulp; NaN propagates,
exp(+inf) = inf, exp(-inf) = 0, erf(±inf) = ±1, tanh(±inf) = ±1. The interpreter and the C
back end use libm: results may differ from them by those few ulp, as onnxruntime's own
polynomial versions (MLAS) do.

Sources: exp is Cephes' ``expf`` (S. L. Moshier, range reduction by ln 2 split in two
constants, the multiple of ln 2 rounded by adding and subtracting 1.5 * 2**23, a degree-6
polynomial on [-ln2/2, ln2/2]) with 2**n built from its exponent bits in
two halves so that overflow and subnormal results stay exact. erf splits at 0.921875 as
onnxruntime's MLAS does: ``x * P(x**2)`` below (degree 5), ``1 - exp(Q(|x|))`` above with
Q ~ log(erfc) (degree 8), both least-squares fits made for onnxcc, and 1 past 3.925 where
erfc(x) < 2**-24. tanh is ``x + x**3 * R(x**2)`` (degree 5, a fit) below 0.625 and
``1 - 2 / (exp(2|x|) + 1)`` above.
"""

from __future__ import annotations

from typing import Sequence

import llvmlite.ir as ir

F32 = ir.FloatType()
I32 = ir.IntType(32)

# Cephes expf
LOG2E = 1.44269504088896341
LN2_HI, LN2_LO = 0.693359375, -2.12194440e-4
EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
         1.6666665459e-1, 5.0000001201e-1)
EXP_MIN, EXP_MAX = -104.0, 88.75      # exp underflows to 0 below, overflows to inf above
ROUND_MAGIC = 12582912.0               # 1.5 * 2**23: (v + it) - it rounds v to an integer

ERF_SPLIT, ERF_ONE = 0.921875, 3.925
ERF_SMALL = (-0.0006024643662385643, 0.005000903271138668, -0.026772962883114815,
             0.11282039433717728, -0.3761252462863922, 1.1283791065216064)
ERF_BIG = (1.6355552361346781e-06, -4.599288513418287e-05, 0.0005959701957181096,
           -0.004754332825541496, 0.02640233375132084, -0.11004021763801575,
           -0.6318755745887756, -1.1302002668380737, 0.0003109433746431023)

TANH_SPLIT = 0.625
TANH_SMALL = (0.002308012219145894, -0.00835995189845562, 0.02177494764328003,   # (tanh(x)-x)/x**3
              -0.05396023020148277, 0.13333310186862946, -0.3333333432674408)


def _c(v: float, t: ir.Type) -> ir.Constant:
    return ir.Constant(t, float(v))


class _Math:
    def __init__(self, b: ir.IRBuilder, module: ir.Module) -> None:
        self.b, self.module = b, module

    def fn(self, name: str, args: Sequence[ir.Type], ret: ir.Type) -> ir.Function:
        try:
            return self.module.get_global(name)
        except KeyError:
            return ir.Function(self.module, ir.FunctionType(ret, list(args)), name)

    def intr(self, name: str, *xs: ir.Value) -> ir.Value:
        t = xs[0].type
        return self.b.call(self.fn(f"llvm.{name}.f32", [t] * len(xs), t), list(xs))

    def horner(self, cs: Sequence[float], t: ir.Value) -> ir.Value:
        r: ir.Value = _c(cs[0], F32)
        for c in cs[1:]:
            r = self.intr("fmuladd", r, t, _c(c, F32))
        return r

    def clamp(self, x: ir.Value, lo: float, hi: float) -> ir.Value:
        """``x`` limited to [lo, hi] by compares and selects, any number for a NaN ``x`` (the
        callers return NaN for it). Not llvm.minnum/maxnum: a core without VMINNM/VMAXNM (a
        Cortex-M4's FPv4) calls fminf/fmaxf for those; x86 and AArch64 make min/max of these."""
        b = self.b
        x = b.select(b.fcmp_ordered(">", x, _c(lo, F32)), x, _c(lo, F32))
        return b.select(b.fcmp_ordered("<", x, _c(hi, F32)), x, _c(hi, F32))

    def pow2(self, n: ir.Value) -> ir.Value:
        """2**n for an i32 n in [-126, 127], from the exponent bits."""
        bits = self.b.shl(self.b.add(n, ir.Constant(I32, 127)), ir.Constant(I32, 23))
        return self.b.bitcast(bits, F32)

    def exp(self, x: ir.Value, bounded: bool = False) -> ir.Value:
        """exp(x); ``bounded``: the caller guarantees x is a number in [-80, 80] (erf's
        log(erfc) fit), so the clamp, the NaN test and the second power of two, which only
        results near overflow or in the subnormals need, are left out (the same value)."""
        b = self.b
        xc = x if bounded else self.clamp(x, EXP_MIN, EXP_MAX)
        # round(xc / ln 2) to the nearest integer, ties to even, without a call: adding and
        # subtracting 1.5 * 2**23 leaves an integer for |v| < 2**22 (here |v| <= 151). The
        # same number as llvm.roundeven, which a core without a rounding instruction (a
        # Cortex-M4's FPv4) turns into a call of C23's roundevenf, absent from newlib.
        v = b.fmul(xc, _c(LOG2E, F32))
        fn = b.fsub(b.fadd(v, _c(ROUND_MAGIC, F32)), _c(ROUND_MAGIC, F32))
        r = self.intr("fmuladd", fn, _c(-LN2_HI, F32), xc)
        r = self.intr("fmuladd", fn, _c(-LN2_LO, F32), r)
        p = self.horner(EXP_P, r)
        e = self.intr("fmuladd", b.fmul(p, r), r, b.fadd(r, _c(1.0, F32)))
        n = b.fptosi(fn, I32)                    # in [-150, 128]
        if bounded:                              # |n| <= 116: one normal power of two
            return b.fmul(e, self.pow2(n))
        n1 = b.ashr(n, ir.Constant(I32, 1))      # two halves, each a normal power of two
        y = b.fmul(b.fmul(e, self.pow2(n1)), self.pow2(b.sub(n, n1)))
        return b.select(b.fcmp_unordered("uno", x, x), x, y)

    def erf(self, x: ir.Value) -> ir.Value:
        b = self.b
        ax = self.intr("fabs", x)
        small = b.fmul(x, self.horner(ERF_SMALL, b.fmul(x, x)))
        axc = self.clamp(ax, 0.0, ERF_ONE)
        # Q(|x|) for |x| clamped into [0, 3.925] lies in [-17.5, 0.001]
        big = b.fsub(_c(1.0, F32), self.exp(self.horner(ERF_BIG, axc), bounded=True))
        y = b.select(b.fcmp_ordered("<", ax, _c(ERF_SPLIT, F32)), small, big)
        y = self.intr("copysign", y, x)          # erf is odd: the sign of x, -0.0 included
        return b.select(b.fcmp_unordered("uno", x, x), x, y)   # clamp made NaN a number

    def tanh(self, x: ir.Value) -> ir.Value:
        b = self.b
        ax = self.intr("fabs", x)
        x2 = b.fmul(x, x)
        small = self.intr("fmuladd", b.fmul(x2, x), self.horner(TANH_SMALL, x2), x)
        e = self.exp(b.fmul(ax, _c(2.0, F32)))
        big = b.fsub(_c(1.0, F32), b.fdiv(_c(2.0, F32), b.fadd(e, _c(1.0, F32))))
        y = b.select(b.fcmp_ordered("<", ax, _c(TANH_SPLIT, F32)), small, big)
        # tanh is odd: the sign of x, -0.0 included; a NaN x takes the big arm, exp(NaN) = NaN
        return self.intr("copysign", y, x)


def inline_math(b: ir.IRBuilder, module: ir.Module, op: str, x: ir.Value) -> ir.Value | None:
    """``op`` (``exp``, ``erf``, ``tanh``) of the float32 value ``x`` as inline IR, or None for
    another op or type (the caller then uses its intrinsic or libm call)."""
    if x.type != F32 or op not in ("exp", "erf", "tanh"):
        return None
    return getattr(_Math(b, module), op)(x)
