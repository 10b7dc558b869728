"""LLVM renderer of one loop-IR :class:`Kernel`: an internal ``llvmlite.ir`` function.

The C renderer's twin (``onnxcc.codegen.c.render``): one visitor over expressions, one over
statements, no lowering. A kernel becomes ``void k(T* out..., T* in...)`` with one pointer per
buffer (``noalias`` unless the kernel is in place, ``captures(none)``, ``readonly`` on inputs).

Semantics are ``onnxcc.codegen.loops``'s, made exact in LLVM terms:
- locals (``Decl``) and loop variables are allocas in the entry block (SROA/mem2reg turn them into
  SSA values at any optimization level above 0); loops are header/body/latch blocks; a loop's
  kind becomes ``llvm.loop`` metadata (``vectorized``: vectorize.width; ``unrolled`` with factor
  0: unroll.full; a partial unroll is the C renderer's hint and gets none here, as LLVM's loop
  vectorizer interleaves by itself and an unroll count doubled O3's time). A vectorize hint lets LLVM reassociate float reductions, so it
  is not attached to a loop that carries a float accumulator declared outside it (the loop is
  left to LLVM's cost model, which keeps the serial rounding).
- integer ``add``/``sub``/``mul`` wrap (no ``nsw``), except index arithmetic made of loop
  variables and constants only, which verify proves in range and which gets ``nsw`` so LLVM
  can widen induction variables.
- integer ``div``/``mod`` divide by a divisor replaced with 1 where it is 0 (and, for signed
  types, -1, whose ``INT_MIN / -1`` is undefined in LLVM), then select 0 (or ``-a`` for
  ``a / -1``): no undefined behaviour, C99's truncation.
- float ``max``/``min`` propagate NaN: ``(a != a || a > b) ? a : b`` as the C helper;
  ``fmax``/``fmin`` are ``llvm.maxnum``/``llvm.minnum``; ``MulAdd`` on floats is
  ``llvm.fmuladd`` (contraction allowed); math functions are LLVM intrinsics where LLVM has a
  well-supported one (:data:`INTRINSIC`) and libm calls otherwise (:data:`LIBM`), except float32
  ``exp``, ``erf`` and ``tanh``: inline polynomials within 3 ulp that vectorize
  (``onnxcc.codegen.llvm.vmath``).
- casts float -> integer truncate (``fptosi``/``fptoui``; types narrower than 32 bits convert
  through i32 then truncate, as numpy does on x86 for in-range values of the wider type),
  integer -> float round to nearest, to ``bool`` is ``!= 0`` (``une`` on floats, so NaN is true).
- ``bool`` is ``i1`` in registers and ``i8`` (0/1) in memory.
- a masked load branches around the load (LLVM if-converts it into a masked vector load where
  that pays); a ``Select`` whose arms contain a load evaluates only the chosen arm (branches and
  a phi), other selects are ``select``.

Vector dtypes (``lanes > 1``) are not rendered yet: no loop pass produces them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import llvmlite.ir as ir
import numpy as np

from onnxcc.codegen.loops import (Assign, Binary, Buffer, Call, Cast, Comment, Const, Decl,
                                  DType, Expr, If, Kernel, Load, Loop, MulAdd, Select, Stmt,
                                  Store, Unary, Var, children, walk_stmts)
from onnxcc.codegen.requantize import QUANTIZE
from onnxcc.errors import OnnxccError

from .vmath import inline_math

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
INTRINSIC = {"exp": "llvm.exp", "log": "llvm.log", "sqrt": "llvm.sqrt", "floor": "llvm.floor",
             "ceil": "llvm.ceil", "sin": "llvm.sin", "cos": "llvm.cos", "round": "llvm.rint",
             "abs": "llvm.fabs"}
# ``round`` (ties to even) is llvm.rint: LLVM assumes the default floating-point environment,
# round to nearest even, so it is roundeven; a core without a rounding instruction (Cortex-M4)
# calls rintf, which newlib has, where llvm.roundeven would call C23's roundevenf, which it lacks.
LIBM = {"tanh", "erf", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
        "log1p", "expm1"}
_ICMP_S = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_FCMP = {"lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge", "eq": "oeq", "ne": "une"}
# Call intrinsics (``loops.Call``) by name: fn(kernel renderer, rendered args, result dtype).
CALLS: dict[str, Callable[["_KernelRenderer", list[ir.Value], DType], ir.Value]] = {}


def _requantize_wide(r: "_KernelRenderer", args: list[ir.Value], wide: ir.IntType) -> ir.Value:
    """round_half_to_even(acc * m / 2**shift) computed in the integer type ``wide``, saturated
    to i32 (the formula: ``onnxcc.codegen.requantize``'s module docstring)."""
    b = r.b
    acc, m, shift = (b.sext(a, wide) for a in args)
    p = b.mul(acc, m)
    one = ir.Constant(wide, 1)
    half_m1 = b.sub(b.shl(one, b.sub(shift, one)), one)
    odd = b.and_(b.ashr(p, shift), one)
    q = b.ashr(b.add(b.add(p, half_m1), odd), shift)
    hi, lo = ir.Constant(wide, (1 << 31) - 1), ir.Constant(wide, -(1 << 31))
    q = b.select(b.icmp_signed(">", q, hi), hi, q)
    q = b.select(b.icmp_signed("<", q, lo), lo, q)
    return b.trunc(q, I32)


def _requantize(r: "_KernelRenderer", args: list[ir.Value], d: DType) -> ir.Value:
    """``onnxcc.codegen.requantize``: an int32 accumulator, the product in i64."""
    return _requantize_wide(r, args, I64)


def _requantize64(r: "_KernelRenderer", args: list[ir.Value], d: DType) -> ir.Value:
    """``onnxcc.codegen.requantize.requantize64``: an i64 accumulator, the product in i128
    (|acc| < 2**47 times m < 2**31 needs 78 bits)."""
    return _requantize_wide(r, args, ir.IntType(128))


def _smmla(r: "_KernelRenderer", args: list[ir.Value], d: DType) -> ir.Value:
    """``onnxcc.codegen.requantize.smmla``: the high word of ``acc * 2**32 + a * b`` (i64,
    wrapping as Arm's SMMLA)."""
    b = r.b
    a, m, acc = (b.sext(x, I64) for x in args)
    p = b.add(b.mul(a, m), b.shl(acc, ir.Constant(I64, 32)))
    return b.trunc(b.ashr(p, ir.Constant(I64, 32)), I32)


def _round_i32(r: "_KernelRenderer", args: list[ir.Value], d: DType) -> ir.Value:
    """``onnxcc.codegen.requantize.round_i32``: llvm.rint (ties to even in the default
    environment), then the saturating llvm.fptosi.sat (NaN -> 0)."""
    (v,) = args
    f = _declare(r.module, "llvm.rint.f32", v.type, [v.type])
    sat = _declare(r.module, "llvm.fptosi.sat.i32.f32", I32, [v.type])
    return r.b.call(sat, [r.b.call(f, [v])])


def _quantize(lo: int, hi: int):
    """``onnxcc.codegen.requantize.quantize_sat`` of x / s to [lo, hi]: llvm.rint (ties to even
    in the default environment), clamped in float32 to [lo - zp, hi - zp] (NaN to lo - zp: an
    ordered compare), converted to i32, zp added."""
    def render(r: "_KernelRenderer", args: list[ir.Value], d: DType) -> ir.Value:
        b = r.b
        x, s, zp = args
        v = b.fdiv(x, s)
        f = _declare(r.module, "llvm.rint.f32", v.type, [v.type])
        zf = b.sitofp(zp, v.type)
        lo_f = b.fsub(ir.Constant(v.type, float(lo)), zf)
        hi_f = b.fsub(ir.Constant(v.type, float(hi)), zf)
        q = b.call(f, [v])
        q = b.select(b.fcmp_ordered(">", q, lo_f), q, lo_f)     # NaN -> lo - zp
        q = b.select(b.fcmp_ordered("<", q, hi_f), q, hi_f)
        return b.add(b.fptosi(q, I32), zp)
    return render


def _srdhm(r: "_KernelRenderer", args: list[ir.Value], d: DType) -> ir.Value:
    """``onnxcc.codegen.requantize.srdhm``: gemmlowp's SaturatingRoundingDoublingHighMul,
    ``(a * b + 2**30) >> 31`` of the i64 product (an arithmetic shift: gemmlowp's nudged
    truncating division for either sign), saturated to i32 (only INT32_MIN * INT32_MIN
    exceeds it)."""
    b = r.b
    a, m = (b.sext(x, I64) for x in args)
    q = b.ashr(b.add(b.mul(a, m), ir.Constant(I64, 1 << 30)), ir.Constant(I64, 31))
    hi = ir.Constant(I64, (1 << 31) - 1)
    return b.trunc(b.select(b.icmp_signed(">", q, hi), hi, q), I32)


CALLS["requantize"] = _requantize
CALLS["srdhm"] = _srdhm
CALLS["round_i32"] = _round_i32
for _q, (_lo, _hi, _) in QUANTIZE.items():
    CALLS[_q] = _quantize(_lo, _hi)
CALLS["smmla"] = _smmla
CALLS["requantize64"] = _requantize64
CALLS["requantize_hi"] = _requantize   # the same function for 33 <= shift <= 62
CALLS["ldm"] = lambda r, args, d: args[0]   # a hint (codegen/smlad.py): the loaded value
CALLS["stpair"] = lambda r, args, d: args[0]   # a hint (codegen/smlad.py): the value stored


def value_type(d: DType) -> ir.Type:
    """The LLVM type of a value of ``d`` in registers (``bool`` is ``i1``)."""
    if d.lanes != 1:
        raise OnnxccError(f"LLVM renderer: vector dtype {d} is not supported yet")
    if d.name == "bool":
        return I1
    if d.name == "float32":
        return ir.FloatType()
    if d.name == "float16":
        return ir.HalfType()
    if d.name == "float64":
        return ir.DoubleType()
    return ir.IntType(d.bits)


def mem_type(d: DType) -> ir.Type:
    """The LLVM type of one element of ``d`` in memory (``bool`` is ``i8``)."""
    return I8 if d.name == "bool" else value_type(d)


def constant(value: object, d: DType) -> ir.Constant:
    """A literal of ``d`` (NaN and infinities included; unsigned values as their bit pattern)."""
    t = value_type(d)
    if d.is_float:
        v = float(value)  # type: ignore[arg-type]
        if d.name in ("float32", "float16") and np.isfinite(v):
            v = float(d.np.type(v))       # LLVM refuses a float literal that is not exact
        return ir.Constant(t, v)
    if d.name == "bool":
        return ir.Constant(t, int(bool(value)))
    v = int(value)  # type: ignore[call-overload]
    v &= (1 << d.bits) - 1
    return ir.Constant(t, v - (1 << d.bits) if v >= 1 << (d.bits - 1) else v)


class _ParamAttrs(ir.values.ArgumentAttributes):
    # llvmlite's list lacks the parameter attribute ``readonly``; LLVM 22 accepts it.
    _known = {**ir.values.ArgumentAttributes._known, "readonly": False}


class _LoopID(ir.values.MDValue):
    """``distinct !{!self, hints...}``: LLVM recognizes loop metadata only in this shape, which
    llvmlite's ``add_metadata`` (uniqued, no self-reference) cannot build."""

    def __init__(self, module: ir.Module, hints: Sequence[ir.values.MDValue]) -> None:
        super().__init__(module, [], name=str(len(module.metadata)))
        self.operands = (self, *hints)

    def descr(self, buf: list[str]) -> None:
        buf += ("distinct !{" + ", ".join(op.get_reference() for op in self.operands) + "}", "\n")

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


def _round_to_odd_f32(b: ir.IRBuilder, d: ir.Value) -> ir.Value:
    """float64 ``d`` as float32 rounded to odd (truncate, then set the last bit when inexact),
    so that rounding it once more to float16 (11 bits < 24 - 1) is float64 -> float16 rounded
    to nearest even directly, without LLVM's ``__truncdfhf2`` libcall (Boldo and Melquiond,
    "Emulation of FMA and correctly rounded sums: proved algorithms using rounding to odd",
    IEEE TC 2008)."""
    f = b.fptrunc(d, ir.FloatType())
    back = b.fpext(f, ir.DoubleType())
    bits = b.bitcast(f, I32)
    even = b.icmp_unsigned("==", b.and_(bits, ir.Constant(I32, 1)), ir.Constant(I32, 0))
    fabs = _declare(b.module, "llvm.fabs.f64", ir.DoubleType(), [ir.DoubleType()])
    away = b.fcmp_ordered(">", b.call(fabs, [back]), b.call(fabs, [d]))
    toward = b.select(away, b.sub(bits, ir.Constant(I32, 1)), b.add(bits, ir.Constant(I32, 1)))
    fix = b.and_(b.fcmp_ordered("!=", back, d), even)
    return b.bitcast(b.select(fix, toward, bits), ir.FloatType())


def _has_load(e: Expr) -> bool:
    return isinstance(e, Load) or any(_has_load(c) for c in children(e))


def _declare(module: ir.Module, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
    """The function ``name`` of ``module``, declared on first use."""
    g = module.globals.get(name)
    if g is None:
        g = ir.Function(module, ir.FunctionType(ret, list(args)), name)
        g.attributes.add("nounwind")
    return g


def _suffix(t: ir.Type) -> str:
    return "f32" if isinstance(t, ir.FloatType) else "f64"


def _carries_float_accumulator(loop: Loop) -> bool:
    """True when ``loop``'s body assigns a float local declared outside the loop (a reduction)."""
    inner = {s.var for s in walk_stmts(loop.body) if isinstance(s, Decl)}
    return any(isinstance(s, Assign) and s.var not in inner and s.var.dtype.is_float
               for s in walk_stmts(loop.body))


class _KernelRenderer:
    """Renders one Kernel's body into ``fn`` (params already bound to buffers by identity)."""

    def __init__(self, module: ir.Module, fn: ir.Function, k: Kernel, ptrs: dict[int, ir.Value],
                 index_type: ir.IntType) -> None:
        self.module, self.fn, self.k = module, fn, k
        self.ptrs = ptrs
        self.index_type = index_type
        self.entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(fn.append_basic_block("body"))
        self.slots: dict[tuple[str, DType], ir.AllocaInstr] = {}
        self.loop_vars: set[str] = set()
        for buf in k.locals:
            arr = ir.IRBuilder(self.entry).alloca(ir.ArrayType(mem_type(buf.dtype), max(buf.extent, 1)),
                                                  name=buf.name)
            arr.align = 16
            self.ptrs[id(buf)] = ir.IRBuilder(self.entry).bitcast(arr, mem_type(buf.dtype).as_pointer())

    def finish(self) -> None:
        self.b.ret_void()
        ir.IRBuilder(self.entry).branch(self.fn.blocks[1])

    # -- places -------------------------------------------------------------------------------
    def slot(self, v: Var) -> ir.AllocaInstr:
        key = (v.name, v.dtype)
        if key not in self.slots:
            eb = ir.IRBuilder(self.entry)
            self.slots[key] = eb.alloca(value_type(v.dtype), name=v.name)
        return self.slots[key]

    def address(self, buf: Buffer, index: Sequence[Expr]) -> ir.Value:
        ptr = self.ptrs.get(id(buf))
        if ptr is None:
            raise OnnxccError(f"LLVM renderer: kernel {self.k.name} accesses {buf.name}, which is "
                              "neither a parameter nor a local of the kernel")
        it = self.index_type
        off: ir.Value | None = None
        k = 0
        for i, s in zip(index, buf.strides):
            if s == 0:
                continue
            if isinstance(i, Const):
                k += int(i.value) * s
                continue
            v = self.e(i)
            if v.type.width < it.width:
                v = self.b.sext(v, it) if i.dtype.signed else self.b.zext(v, it)
            elif v.type.width > it.width:
                v = self.b.trunc(v, it)
            term = v if s == 1 else self.b.mul(v, ir.Constant(it, s), flags=["nsw"])
            off = term if off is None else self.b.add(off, term, flags=["nsw"])
        if k or off is None:
            c = ir.Constant(it, k)
            off = c if off is None else self.b.add(off, c, flags=["nsw"])
        return self.b.gep(ptr, [off], inbounds=True)

    # -- expressions --------------------------------------------------------------------------
    def is_index(self, e: Expr) -> bool:
        """Integer arithmetic of loop variables and constants only (verify proves it fits)."""
        if isinstance(e, Const):
            return True
        if isinstance(e, Var):
            return e.name in self.loop_vars
        return isinstance(e, Binary) and e.op in ("add", "sub", "mul") and \
            self.is_index(e.a) and self.is_index(e.b)

    def e(self, x: Expr) -> ir.Value:
        if isinstance(x, Var):
            return self.b.load(self.slot(x), name=x.name)
        if isinstance(x, Const):
            return constant(x.value, x.dtype)
        if isinstance(x, Load):
            return self.load(x)
        if isinstance(x, Binary):
            return self.binary(x)
        if isinstance(x, Unary):
            return self.unary(x)
        if isinstance(x, Cast):
            return self.cast(self.e(x.a), x.a.dtype, x.dtype)
        if isinstance(x, Select):
            return self.select(x)
        if isinstance(x, MulAdd):
            a, b, c = self.e(x.a), self.e(x.b), self.e(x.c)
            if x.dtype.is_float:
                f = _declare(self.module, f"llvm.fmuladd.{_suffix(a.type)}", a.type, [a.type] * 3)
                return self.b.call(f, [a, b, c])
            return self.b.add(self.b.mul(a, b), c)
        if isinstance(x, Call):
            if x.fn not in CALLS:
                raise OnnxccError(f"LLVM renderer: no intrinsic {x.fn!r}")
            return CALLS[x.fn](self, [self.e(a) for a in x.args], x.dtype)
        raise TypeError(x)

    def load(self, x: Load) -> ir.Value:
        d = x.buf.dtype
        if x.mask is None:
            return self.from_mem(self.b.load(self.address(x.buf, x.index)), d)
        # Read only where the mask holds (the address may be outside the buffer elsewhere).
        other = self.e(x.other) if x.other is not None else constant(0, d)
        m = self.e(x.mask)
        before = self.b.block
        then = self.fn.append_basic_block("ld")
        done = self.fn.append_basic_block("ld.done")
        self.b.cbranch(m, then, done)
        self.b.position_at_end(then)
        v = self.from_mem(self.b.load(self.address(x.buf, x.index)), d)
        then_end = self.b.block
        self.b.branch(done)
        self.b.position_at_end(done)
        phi = self.b.phi(v.type)
        phi.add_incoming(v, then_end)
        phi.add_incoming(other, before)
        return phi

    def from_mem(self, v: ir.Value, d: DType) -> ir.Value:
        return self.b.icmp_unsigned("!=", v, ir.Constant(I8, 0)) if d.name == "bool" else v

    def select(self, x: Select) -> ir.Value:
        c = self.e(x.cond)
        if not (_has_load(x.a) or _has_load(x.b)):
            return self.b.select(c, self.e(x.a), self.e(x.b))
        # An arm may hold a load valid only under its condition: evaluate the chosen arm only.
        ta, tb = self.fn.append_basic_block("sel.a"), self.fn.append_basic_block("sel.b")
        done = self.fn.append_basic_block("sel.done")
        self.b.cbranch(c, ta, tb)
        self.b.position_at_end(ta)
        va = self.e(x.a)
        ea = self.b.block
        self.b.branch(done)
        self.b.position_at_end(tb)
        vb = self.e(x.b)
        eb = self.b.block
        self.b.branch(done)
        self.b.position_at_end(done)
        phi = self.b.phi(va.type)
        phi.add_incoming(va, ea)
        phi.add_incoming(vb, eb)
        return phi

    def binary(self, x: Binary) -> ir.Value:
        d, op, b = x.a.dtype, x.op, self.b
        a, c = self.e(x.a), self.e(x.b)
        if d.is_float:
            if op in ("add", "sub", "mul", "div", "mod"):
                return {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv,
                        "mod": b.frem}[op](a, c)
            if op in _FCMP:
                return b.fcmp_unordered("!=", a, c) if op == "ne" else \
                    b.fcmp_ordered(_ICMP_S[op], a, c)
            if op in ("max", "min"):
                # (a != a || a > b) ? a : b — NaN in either operand gives NaN, as numpy.maximum.
                pick = b.or_(b.fcmp_unordered("uno", a, a),
                             b.fcmp_ordered(">" if op == "max" else "<", a, c))
                return b.select(pick, a, c)
            if op in ("fmax", "fmin", "pow"):
                name = {"fmax": "maxnum", "fmin": "minnum", "pow": "pow"}[op]
                f = _declare(self.module, f"llvm.{name}.{_suffix(a.type)}", a.type, [a.type] * 2)
                return b.call(f, [a, c])
            raise OnnxccError(f"LLVM renderer: no float binary op {op!r}")
        signed = d.signed and d.name != "bool"
        if op in ("add", "sub", "mul"):
            flags = ["nsw"] if self.is_index(x) else []
            return {"add": b.add, "sub": b.sub, "mul": b.mul}[op](a, c, flags=flags)
        if op in _ICMP_S:
            cmp = b.icmp_signed if signed else b.icmp_unsigned
            return cmp(_ICMP_S[op], a, c)
        if op in ("max", "min"):
            cmp = b.icmp_signed if signed else b.icmp_unsigned
            return b.select(cmp(">" if op == "max" else "<", a, c), a, c)
        if op in ("div", "mod"):
            return self.int_div(op, a, c, signed)
        if op in ("and", "or", "xor"):
            return {"and": b.and_, "or": b.or_, "xor": b.xor}[op](a, c)
        if op == "shl":
            return b.shl(a, c)
        if op == "shr":
            return b.ashr(a, c) if signed else b.lshr(a, c)
        raise OnnxccError(f"LLVM renderer: no integer binary op {op!r} on {d}")

    def int_div(self, op: str, a: ir.Value, c: ir.Value, signed: bool) -> ir.Value:
        """C99 truncating ``a / c`` or ``a % c``, 0 when ``c == 0``, wrapping for INT_MIN / -1."""
        b, t = self.b, a.type
        zero, one = ir.Constant(t, 0), ir.Constant(t, 1)
        is0 = b.icmp_unsigned("==", c, zero)
        bad = is0
        if signed:
            neg1 = b.icmp_signed("==", c, ir.Constant(t, -1))
            bad = b.or_(is0, neg1)
        safe = b.select(bad, one, c)
        if op == "div":
            q = (b.sdiv if signed else b.udiv)(a, safe)
            if signed:
                q = b.select(neg1, b.sub(zero, a), q)
        else:
            q = (b.srem if signed else b.urem)(a, safe)
            if signed:
                q = b.select(neg1, zero, q)
        return b.select(is0, zero, q)

    def unary(self, x: Unary) -> ir.Value:
        d, op, b = x.a.dtype, x.op, self.b
        a = self.e(x.a)
        if op == "neg":
            return b.fneg(a) if d.is_float else b.sub(ir.Constant(a.type, 0), a)
        if op == "not":
            return b.not_(a)
        if op == "abs" and not d.is_float:
            if not d.signed:
                return a
            return b.select(b.icmp_signed("<", a, ir.Constant(a.type, 0)),
                            b.sub(ir.Constant(a.type, 0), a), a)
        if op == "isnan":
            return b.fcmp_unordered("uno", a, a)
        if op == "isinf":
            f = _declare(self.module, f"llvm.fabs.{_suffix(a.type)}", a.type, [a.type])
            return b.fcmp_ordered("==", b.call(f, [a]), ir.Constant(a.type, float("inf")))
        inline = inline_math(b, self.module, op, a)   # float32 exp/erf/tanh: vectorizable
        if inline is not None:
            return inline
        if op in INTRINSIC:
            f = _declare(self.module, f"{INTRINSIC[op]}.{_suffix(a.type)}", a.type, [a.type])
            return b.call(f, [a])
        if op in LIBM:
            name = op + ("f" if isinstance(a.type, ir.FloatType) else "")
            return b.call(_declare(self.module, name, a.type, [a.type]), [a])
        raise OnnxccError(f"LLVM renderer: no unary op {op!r} on {d}")

    def cast(self, v: ir.Value, src: DType, dst: DType) -> ir.Value:
        b = self.b
        if src == dst:
            return v
        f32 = DType("float32")
        if src.name == "float16":   # exact in float32 (F16C's vcvtph2ps), then as from float32
            return self.cast(b.fpext(v, ir.FloatType()), f32, dst)
        if dst.name == "float16":
            if src.name == "float64":
                v, src = _round_to_odd_f32(b, v), f32
            if src.name != "float32":   # integers: exact in float32 below float16's overflow
                v, src = self.cast(v, src, f32), f32
            return b.fptrunc(v, ir.HalfType())
        t = value_type(dst)
        if dst.name == "bool":
            if src.is_float:
                return b.fcmp_unordered("!=", v, ir.Constant(v.type, 0.0))
            return b.icmp_unsigned("!=", v, ir.Constant(v.type, 0))
        if src.name == "bool":
            return b.uitofp(v, t) if dst.is_float else b.zext(v, t)
        if src.is_float and dst.is_float:
            return b.fpext(v, t) if dst.bits > src.bits else b.fptrunc(v, t)
        if src.is_float:
            if dst.bits < 32:
                return b.trunc(b.fptosi(v, I32), t)
            if dst.bits == 32 and not dst.signed:
                return b.trunc(b.fptosi(v, I64), t)
            return b.fptosi(v, t) if dst.signed else b.fptoui(v, t)
        if dst.is_float:
            return b.sitofp(v, t) if src.signed else b.uitofp(v, t)
        if dst.bits == src.bits:
            return v
        if dst.bits < src.bits:
            return b.trunc(v, t)
        return b.sext(v, t) if src.signed else b.zext(v, t)

    # -- statements ---------------------------------------------------------------------------
    def stmts(self, body: Sequence[Stmt]) -> None:
        for s in body:
            if isinstance(s, Store):
                ptr = self.address(s.buf, s.index)
                v = self.e(s.value)
                if s.buf.dtype.name == "bool":
                    v = self.b.zext(v, I8)
                self.b.store(v, ptr)
            elif isinstance(s, Decl):
                self.b.store(self.e(s.init), self.slot(s.var))
            elif isinstance(s, Assign):
                self.b.store(self.e(s.value), self.slot(s.var))
            elif isinstance(s, Loop):
                self.loop(s)
            elif isinstance(s, If):
                self.if_(s)
            elif not isinstance(s, Comment):
                raise OnnxccError(f"LLVM renderer: unknown statement {type(s).__name__}")

    def if_(self, s: If) -> None:
        c = self.e(s.cond)
        then = self.fn.append_basic_block("then")
        orelse = self.fn.append_basic_block("else") if s.orelse else None
        done = self.fn.append_basic_block("endif")
        self.b.cbranch(c, then, orelse or done)
        self.b.position_at_end(then)
        self.stmts(s.then)
        self.b.branch(done)
        if orelse is not None:
            self.b.position_at_end(orelse)
            self.stmts(s.orelse)
            self.b.branch(done)
        self.b.position_at_end(done)

    def loop(self, s: Loop) -> None:
        b = self.b
        var = self.slot(s.var)
        outer = s.var.name in self.loop_vars
        self.loop_vars.add(s.var.name)
        start, stop = self.e(s.start), self.e(s.stop)   # evaluated once, as range() does
        b.store(start, var)
        head = self.fn.append_basic_block(f"{s.var.name}.head")
        body = self.fn.append_basic_block(f"{s.var.name}.body")
        exit_ = self.fn.append_basic_block(f"{s.var.name}.exit")
        b.branch(head)
        b.position_at_end(head)
        b.cbranch(b.icmp_signed("<", b.load(var), stop), body, exit_)
        b.position_at_end(body)
        self.stmts(s.body)
        i = b.load(var)
        b.store(b.add(i, ir.Constant(i.type, s.step), flags=["nsw"]), var)
        latch = b.branch(head)
        md = self.loop_metadata(s)
        if md is not None:
            latch.set_metadata("llvm.loop", md)
        b.position_at_end(exit_)
        if not outer:
            self.loop_vars.discard(s.var.name)

    def loop_metadata(self, s: Loop) -> ir.values.MDValue | None:
        m = self.module
        if s.kind == "vectorized" and not _carries_float_accumulator(s):
            hints = [m.add_metadata(["llvm.loop.vectorize.enable", ir.Constant(I1, 1)])]
            if s.factor > 1:
                hints.append(m.add_metadata(["llvm.loop.vectorize.width",
                                             ir.Constant(I32, s.factor)]))
            trip = _trip(s)
            if s.factor > 1 and trip % s.factor == 0 and 0 < trip <= SHORT_VECTOR_LOOP * s.factor:
                # a few vectors' worth (a register tile's columns): O3's full unroll ran before
                # the loop vectorizer when the body was small, and the SLP vectorizer then made
                # scalar and <2 x float> code of it (a runtime-B MatMul tile of 4 rows x 16
                # columns: 5 GFLOP/s); so no unroll before vectorizing, a full one after
                hints.append(m.add_metadata(["llvm.loop.unroll.disable"]))
                hints.append(m.add_metadata(["llvm.loop.vectorize.followup_vectorized",
                                             m.add_metadata(["llvm.loop.unroll.full"])]))
        elif s.kind == "unrolled" and s.factor == 0:
            hints = [m.add_metadata(["llvm.loop.unroll.full"])]
        elif (any(isinstance(t, Loop) for t in walk_stmts(s.body))
              and (not (isinstance(s.start, Const) and isinstance(s.stop, Const)
                        and s.stop.value - s.start.value <= OUTER_UNROLL_MAX)
                   or any(isinstance(t, Loop) and _trip(t) >= LONG_INNER
                          for t in walk_stmts(s.body)))):
            # an outer loop of more than a kernel's few taps: LLVM fully unrolled such loops
            # around vectorized inner loops (0.6-2.3 s of O3 per 1x1 group conv of ShuffleNet);
            # nor a few taps around a long loop (a register-tiled conv's channel loop), where
            # unrolling gains nothing and cost resnet50 compile time (18 -> 46 s)
            hints = [m.add_metadata(["llvm.loop.unroll.disable"])]
        else:
            return None
        return _LoopID(m, hints)


SHORT_VECTOR_LOOP = 4   # vectorized loops of at most this many vectors: unrolled after, not before
OUTER_UNROLL_MAX = 4    # outer loops of more iterations are never unrolled by LLVM
LONG_INNER = 64         # ... nor outer loops around a loop of at least this many iterations


def _trip(s: Loop) -> int:
    """Iterations of ``s`` when its bounds are constants, else 0."""
    if isinstance(s.start, Const) and isinstance(s.stop, Const):
        return max(0, -(-(int(s.stop.value) - int(s.start.value)) // s.step))
    return 0


def _param_key(k: Kernel, b: Buffer) -> tuple:
    """What makes two of ``k``'s buffers one parameter: the same Buffer, or in an in-place
    kernel the same start (space, index, byte offset) and dtype."""
    if k.inplace and b.space != "weight":
        return (b.space, b.index, b.offset, b.dtype)
    return ("buffer", id(b))


def kernel_params(k: Kernel) -> tuple[list[Buffer], bool]:
    """The buffers that become ``k``'s pointer parameters, in order, and whether they may all
    be ``noalias``. An input placed exactly where an output is (an in-place kernel: Relu over
    its input) shares the output's parameter: two pointers to the same bytes made LLVM guard
    the vectorized loop with an overlap check that always failed, so it ran the scalar loop
    (the transformer's fused GELU: 330 us instead of 30). The parameters left may be noalias
    unless two of them overlap in the arena (or in one graph input or output)."""
    params: list[Buffer] = []
    seen: set[tuple] = set()
    for b in k.outputs + k.inputs:
        key = _param_key(k, b)
        if key not in seen:
            seen.add(key)
            params.append(b)
    if not k.inplace:
        return params, True
    spans = sorted((b.space, b.index, b.offset, b.offset + b.nbytes) for b in params
                   if b.space != "weight" and b.nbytes)
    overlap = any(a[:2] == c[:2] and c[2] < a[3] for a, c in zip(spans, spans[1:]))
    return params, not overlap


def render_kernel(module: ir.Module, k: Kernel, name: str | None = None,
                  index_bits: int = 64) -> ir.Function:
    """Add ``k`` to ``module`` as ``void name(T* p...)`` with internal linkage, one pointer per
    buffer of :func:`kernel_params` (``name`` defaults to ``k.name``; ``index_bits`` is the
    width of address arithmetic, the target's pointer width)."""
    params, noalias = kernel_params(k)
    ft = ir.FunctionType(ir.VoidType(), [mem_type(b.dtype).as_pointer() for b in params])
    fn = ir.Function(module, ft, name or k.name)
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    written = {_param_key(k, b) for b in k.outputs}
    by_key = {_param_key(k, b): arg for arg, b in zip(fn.args, params)}
    for arg, buf in zip(fn.args, params):
        arg.name = buf.name
        arg.attributes = _ParamAttrs()
        arg.attributes.add("captures(none)")
        if noalias:
            arg.attributes.add("noalias")
        if _param_key(k, buf) not in written:
            arg.attributes.add("readonly")
    ptrs = {id(b): by_key[_param_key(k, b)] for b in k.outputs + k.inputs}
    r = _KernelRenderer(module, fn, k, ptrs, ir.IntType(index_bits))
    r.stmts(k.body)
    r.finish()
    return fn
