"""HLS C++ renderer of the loop IR: a :class:`Kernel` -> one C++ function over ``ap_fixed`` arrays.

No lowering happens here; the float loop IR is printed with fixed-point types:

- a tensor's buffer (graph input/output, arena) is an array of the tensor's type (views share
  their input's array); a weight is a ``const`` array of its own type; a local array, and a
  float local scalar, is the kernel's accumulator type ``acc_t`` -- except a local that only
  ever holds one load, which takes the loaded buffer's type (so a product of two loads is a
  narrow multiply, one DSP, not a multiply of two accumulators);
- ``add``/``sub``/``mul``/``muladd`` are ap_fixed's full-precision operators (exact); a value is
  quantized only where it is assigned (to a local: ``acc_t``; stored: the buffer's type) with
  the type's rounding and overflow modes; the arms of a select, min or max are converted to
  ``acc_t`` (exact, as the accumulator is chosen wide enough: ``onnxcc.codegen.hls.fixed``);
- a float constant is ``const_t(value)``, the kernel's literal type with 16 fraction bits
  (``onnxcc.codegen.hls.fixed.const_type``); infinities are ``acc_t``'s lowest/highest value;
- integer values (the integer path of quantized models, ``passes/qdq_integer.py``) are
  computed in C integer types exactly as the C back end computes them: an element of an
  ``ap_int<W>`` array is converted to its C type where it is loaded and stored back exactly;
  the ``requantize`` intrinsic is ``onnxcc_requantize`` (``onnxcc.codegen.requantize``'s C
  helper, in defines.h); the float steps of such a kernel (QLinearAdd's and QLinearConcat's
  float32 rescaling, ``native=True``) are C ``float`` arithmetic with the C back end's
  round-half-to-even helper, not ap_fixed;
- float ``div`` is ap_fixed division (the quotient truncated toward zero at the dividend's
  fraction bits, UG1399); a float -> int cast is ``to_int()`` (truncation toward zero);
- loops keep their kind as pragmas: ``pipelined`` -> ``HLS PIPELINE II=n``, ``unrolled`` ->
  ``HLS UNROLL``; ``vectorized`` is a CPU kind and renders serial. Pragmas are written as
  ``ONNXCC_HLS(HLS ...)``, which is ``_Pragma("HLS ...")`` under Vitis HLS (``__SYNTHESIS__``)
  and nothing in C-simulation, so g++ -Wall sees no unknown pragma.
Math functions (exp, tanh...) have no fixed-point rendering: :func:`unsupported` names them, and
the compile refuses the node before anything is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from onnxcc.codegen.c.emit import comment_text
from onnxcc.codegen.loops import (Assign, Binary, Buffer, Call, Cast, Comment, Const, Decl,
                                  Expr, If, Kernel, Load, Loop, MulAdd, Select, Stmt, Store,
                                  Unary, Var, stmt_exprs, walk_exprs, walk_stmts)

from .fixed import FixedType

INT_CTYPE = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
             "int32": "int", "uint32": "unsigned", "int64": "long long",
             "uint64": "unsigned long long", "bool": "bool"}
_SYM = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "lt": "<", "le": "<=",
        "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "and": "&&", "or": "||", "xor": "^",
        "shl": "<<", "shr": ">>"}
FIXED_UNARY = ("neg", "abs", "not")
#: loop-IR intrinsics with an HLS form: the function defines.h declares for each
HLS_CALLS = {"requantize": "onnxcc_requantize"}
#: float unary ops of integer-path kernels (C float): the C back end's round half to even
NATIVE_UNARY = {"round": "onnxcc_roundevenf"}


@dataclass
class ArrayRef:
    """Where a buffer's elements live in C++: the array ``name`` (of C++ type ``ctype``) and the
    element ``offset`` of the buffer's first element in it."""

    name: str
    ctype: str
    offset: int
    raw: bool = False   # elements stored as raw integers (weights): loads use onnxcc_raw<T>


def float_literals(k: Kernel) -> list[float]:
    """Every finite float literal of kernel ``k``."""
    out = []
    for s in walk_stmts(k.body):
        for e in stmt_exprs(s):
            for x in walk_exprs(e):
                if isinstance(x, Const) and x.dtype.is_float and math.isfinite(float(x.value)):
                    out.append(float(x.value))
    return out


def unsupported(k: Kernel, native: bool = False) -> str | None:
    """Why kernel ``k`` has no fixed-point rendering (a float math function, an intrinsic), or
    None. ``native``: a kernel of the integer path, whose float steps render as C float
    (round included: :data:`NATIVE_UNARY`)."""
    for s in walk_stmts(k.body):
        for e in stmt_exprs(s):
            for x in walk_exprs(e):
                if isinstance(x, Unary) and x.a.dtype.is_float and x.op not in FIXED_UNARY and \
                        not (native and x.op in NATIVE_UNARY):
                    return f"float {x.op} has no fixed-point form on FPGA targets"
                if isinstance(x, Binary) and x.a.dtype.is_float and x.op in ("pow", "mod"):
                    return f"float {x.op} has no fixed-point form on FPGA targets"
                if isinstance(x, Call) and x.fn not in HLS_CALLS:
                    return f"the intrinsic {x.fn} has no HLS form"
                if isinstance(x, (Load, Const, Var)) and x.dtype.lanes > 1:
                    return "vector types have no HLS form"
    return None


def float_literal(v: float) -> str:
    """A C float literal equal to the float32 ``v`` (finite; the shortest decimal of its
    double value, which rounds back to the same float)."""
    if not math.isfinite(v):
        return "NAN" if math.isnan(v) else ("INFINITY" if v > 0 else "(-INFINITY)")
    r = repr(float(v))
    return (r if any(c in r for c in ".en") else r + ".0") + "f"


def int_literal(v: int, dtype: str) -> str:
    """A C++ literal of the integer ``v`` with the type of loop-IR ``dtype``: a 64-bit value
    carries ``LL``/``ULL`` (so ``1 << 40`` of an int64 constant shifts a long long, not an
    int), and the least int32/int64 is written as a difference (its magnitude has no literal
    of the type)."""
    if dtype == "int64":
        return "(-9223372036854775807LL - 1)" if v == -(1 << 63) else f"{v}LL"
    if dtype == "uint64":
        return f"{v}ULL"
    if dtype == "int32" and v == -(1 << 31):
        return "(-2147483647 - 1)"
    return str(v)   # as the C back end writes them (c_int): the same arithmetic


def cpp_double(v: float) -> str:
    """A C++ double literal equal to ``v`` (finite)."""
    r = repr(float(v))
    return r if any(c in r for c in ".en") else r + ".0"


class KernelRenderer:
    """Renders one kernel. ``arrays(buf)`` says where a buffer lives; ``acc`` is the kernel's
    accumulator type name and ``acc_type`` its FixedType; ``weight_type(buf)`` the C++ type
    name of a weight buffer."""

    def __init__(self, k: Kernel, arrays: Callable[[Buffer], ArrayRef], acc: str,
                 acc_type: FixedType, const_t: str = "", native: bool = False) -> None:
        self.k, self.arrays, self.acc, self.acc_type = k, arrays, acc, acc_type
        self.native = native   # integer-path kernel: float steps are C float, as in the C build
        self.const_t = const_t or acc
        self.assigned = {s.var.name for s in walk_stmts(k.body) if isinstance(s, Assign)}
        self.decl_type: dict[int, str] = {}   # id(Decl) -> C++ type
        self.narrow: dict[str, str] = {}      # a local holding one load -> the load's type
        for s in walk_stmts(k.body):
            if isinstance(s, Decl):
                v = s.var
                if not v.dtype.is_float:
                    t = INT_CTYPE[v.dtype.name]
                elif native:
                    t = "float"
                else:
                    t = self._narrow_type(s.init) if v.name not in self.assigned else None
                    if t is not None:
                        self.narrow[v.name] = t
                    t = t or acc
                self.decl_type[id(s)] = t

    def _narrow_type(self, e: Expr) -> str | None:
        """The array type of ``e`` when it is one unmasked load, or a select between such a
        load (or a local holding one) and the constant 0 (zero padding), else None."""
        if isinstance(e, Load) and e.mask is None:
            return self.arrays(e.buf).ctype
        if isinstance(e, Var) and e.name not in self.assigned:
            return self.narrow.get(e.name)
        if isinstance(e, Select):
            arms = [a for a in (e.a, e.b) if not (isinstance(a, Const) and a.value == 0)]
            if len(arms) == 1:
                return self._narrow_type(arms[0])
        return None

    # -- expressions ---------------------------------------------------------------------------
    def index(self, b: Buffer, idx: Sequence[Expr]) -> str:
        """``b[idx]`` as a C++ element of its array (strides applied, zero terms dropped)."""
        ref = self.arrays(b)
        terms = [] if not ref.offset else [str(ref.offset)]
        for i, st in zip(idx, b.strides):
            if st == 0 or (isinstance(i, Const) and i.value == 0):
                continue
            t = self.expr(i)
            terms.append(t if st == 1 else f"{t} * {st}")
        return f"{ref.name}[{' + '.join(terms) or '0'}]"

    def load(self, b: Buffer, idx: Sequence[Expr]) -> str:
        """A load of ``b[idx]``; a raw-integer weight is converted with ``onnxcc_raw``, an
        element of an ``ap_int`` array to its C integer type (integer arithmetic is C's, as in
        the C back end: the two builds compute the same bits)."""
        ref = self.arrays(b)
        val = self.index(b, idx)
        if ref.raw:
            return f"onnxcc_raw<{ref.ctype}>({val})"
        if not b.dtype.is_float and ref.ctype != INT_CTYPE[b.dtype.name]:
            return f"(({INT_CTYPE[b.dtype.name]})({val}))"
        return val

    def const(self, c: Const) -> str:
        """A literal: float as ``const_t``, infinity as ``acc_t``'s extreme, bool, int."""
        if c.dtype.is_float and self.native:
            return float_literal(float(c.value))
        if c.dtype.is_float:
            v = float(c.value)
            if math.isnan(v):
                v = 0.0
            if math.isinf(v):
                v = self.acc_type.lowest if v < 0 else self.acc_type.highest
                return f"{self.acc}({cpp_double(v)})"
            return f"{self.const_t}({cpp_double(v)})"
        if c.dtype.name == "bool":
            return "true" if c.value else "false"
        return int_literal(int(c.value), c.dtype.name)

    def to_acc(self, e: Expr) -> str:
        """``e`` converted to the accumulator type."""
        return f"{self.acc}({self.expr(e)})"

    def expr(self, e: Expr) -> str:
        """``e`` as C++ (semantics in the module docstring)."""
        if isinstance(e, Var):
            return e.name
        if isinstance(e, Const):
            return self.const(e)
        if isinstance(e, Load):
            val = self.load(e.buf, e.index)
            if e.mask is None:
                return val
            t = self.arrays(e.buf).ctype if e.buf.dtype.is_float else INT_CTYPE[e.buf.dtype.name]
            other = self.expr(e.other) if e.other is not None else "0"
            return f"({self.expr(e.mask)} ? {t}({val}) : {t}({other}))"
        if self.native and (e.dtype.is_float or (isinstance(e, Cast) and e.a.dtype.is_float)):
            return self._native(e)
        if isinstance(e, Binary):
            fl = e.a.dtype.is_float
            if e.op in ("max", "min", "fmax", "fmin"):
                cmp = ">" if e.op in ("max", "fmax") else "<"
                a, b = self.expr(e.a), self.expr(e.b)
                if fl:
                    return f"({a} {cmp} {b} ? {self.acc}({a}) : {self.acc}({b}))"
                # integers: a function call evaluates each operand once (a requantize inside a
                # clamp is not repeated)
                fn = "max" if e.op in ("max", "fmax") else "min"
                return f"onnxcc_{fn}<{INT_CTYPE[e.dtype.name]}>({a}, {b})"
            if e.op in ("and", "or") and e.dtype.name != "bool":   # integers: bitwise
                return f"({self.expr(e.a)} {'&' if e.op == 'and' else '|'} {self.expr(e.b)})"
            if e.op in _SYM:
                return f"({self.expr(e.a)} {_SYM[e.op]} {self.expr(e.b)})"
            raise ValueError(f"no HLS rendering of {e.op}")
        if isinstance(e, Unary):
            a = self.expr(e.a)
            if e.op == "neg":
                return f"(-{a})"
            if e.op == "not":
                return f"(!{a})"
            if e.op == "abs" and e.a.dtype.is_float:
                return f"({a} < 0 ? {self.acc}(-{a}) : {self.acc}({a}))"
            if e.op == "abs":
                return f"({a} < 0 ? -{a} : {a})"
            raise ValueError(f"no HLS rendering of {e.op}")
        if isinstance(e, Cast):
            src, dst = e.a.dtype, e.dtype
            if src.is_float and dst.is_float:
                return self.expr(e.a)
            if src.is_float:
                if dst.name == "bool":
                    return f"({self.expr(e.a)} != 0)"
                return f"(({INT_CTYPE[dst.name]})({self.to_acc(e.a)}).to_int())"
            if dst.is_float:
                return self.to_acc(e.a)
            return f"(({INT_CTYPE[dst.name]})({self.expr(e.a)}))"
        if isinstance(e, Select):
            c = self.expr(e.cond)
            if e.dtype.is_float:
                return f"({c} ? {self.to_acc(e.a)} : {self.to_acc(e.b)})"
            return f"({c} ? {self.expr(e.a)} : {self.expr(e.b)})"
        if isinstance(e, Call) and e.fn in HLS_CALLS:
            return f"{HLS_CALLS[e.fn]}({', '.join(self.expr(a) for a in e.args)})"
        if isinstance(e, MulAdd):
            return f"({self.expr(e.a)} * {self.expr(e.b)} + {self.expr(e.c)})"
        raise ValueError(f"no HLS rendering of {type(e).__name__}")

    def _native(self, e: Expr) -> str:
        """A float expression of an integer-path kernel as C float arithmetic, the same
        operations as the C back end's (so C-sim equals the host build bit for bit)."""
        if isinstance(e, Binary) and e.op in ("fmax", "fmin", "max", "min"):
            fn = "fmaxf" if e.op in ("fmax", "max") else "fminf"
            return f"{fn}({self.expr(e.a)}, {self.expr(e.b)})"
        if isinstance(e, Binary) and e.op in ("add", "sub", "mul", "div"):
            return f"({self.expr(e.a)} {_SYM[e.op]} {self.expr(e.b)})"
        if isinstance(e, Unary) and e.op in NATIVE_UNARY:
            return f"{NATIVE_UNARY[e.op]}({self.expr(e.a)})"
        if isinstance(e, Unary) and e.op == "neg":
            return f"(-{self.expr(e.a)})"
        if isinstance(e, Cast):
            dst = "float" if e.dtype.is_float else INT_CTYPE[e.dtype.name]
            return f"(({dst})({self.expr(e.a)}))"
        if isinstance(e, Select):
            return f"({self.expr(e.cond)} ? {self.expr(e.a)} : {self.expr(e.b)})"
        if isinstance(e, Var):
            return e.name
        if isinstance(e, Const):
            return self.const(e)
        if isinstance(e, Load):
            return self._plain_load(e)
        raise ValueError(f"no HLS rendering of float {type(e).__name__} in an integer kernel")

    def _plain_load(self, e: Load) -> str:
        val = self.load(e.buf, e.index)
        if e.mask is None:
            return val
        other = self.expr(e.other) if e.other is not None else "0.0f"
        return f"({self.expr(e.mask)} ? (float)({val}) : (float)({other}))"

    # -- statements ----------------------------------------------------------------------------
    def stmts(self, body: Sequence[Stmt], depth: int) -> list[str]:
        """``body`` as C++ lines indented ``depth`` levels."""
        pad = "    " * depth
        out: list[str] = []
        for s in body:
            if isinstance(s, Store):
                out.append(f"{pad}{self.index(s.buf, s.index)} = {self.expr(s.value)};")
            elif isinstance(s, Decl):
                t = self.decl_type[id(s)]
                out.append(f"{pad}{t} {s.var.name} = {self.expr(s.init)};")
            elif isinstance(s, Assign):
                out.append(f"{pad}{s.var.name} = {self.expr(s.value)};")
            elif isinstance(s, Loop):
                v = s.var.name
                step = f"{v}++" if s.step == 1 else f"{v} += {s.step}"
                out.append(f"{pad}for (int {v} = {self.expr(s.start)}; {v} < {self.expr(s.stop)}; "
                           f"{step}) {{")
                if s.kind == "pipelined":
                    out.append(f"{pad}    ONNXCC_HLS(HLS PIPELINE II={max(s.factor, 1)})")
                elif s.kind == "unrolled":
                    out.append(f"{pad}    ONNXCC_HLS(HLS UNROLL" +
                               (f" factor={s.factor})" if s.factor > 1 else ")"))
                out += self.stmts(s.body, depth + 1)
                out.append(f"{pad}}}")
            elif isinstance(s, If):
                out.append(f"{pad}if ({self.expr(s.cond)}) {{")
                out += self.stmts(s.then, depth + 1)
                if s.orelse:
                    out.append(f"{pad}}} else {{")
                    out += self.stmts(s.orelse, depth + 1)
                out.append(f"{pad}}}")
            elif isinstance(s, Comment):
                out.append(f"{pad}// {comment_text(s.text, 200)}")
        return out

    def var_types(self) -> dict[str, str]:
        """Local scalar name -> its C++ type (the last declaration's, for a reused name)."""
        return {s.var.name: self.decl_type[id(s)] for s in walk_stmts(self.k.body)
                if isinstance(s, Decl)}

    def function(self, fn: str, params: list[tuple[str, str, int, bool]],
                 pragmas: Sequence[str] = ()) -> str:
        """The C++ function ``fn`` taking ``params`` (array name, C++ type, elements, is output)
        with ``pragmas`` (``HLS ...`` texts) first, then the kernel's local arrays."""
        sig = ", ".join(f"{'' if out else 'const '}{t} {n}[{max(size, 1)}]"
                        for n, t, size, out in params)
        lines = [f"static void {fn}({sig}) {{"] + [f"    ONNXCC_HLS({p})" for p in pragmas]
        for b in self.k.locals:
            ref = self.arrays(b)
            lines.append(f"    {ref.ctype} {ref.name}[{max(b.extent, 1)}];")
        lines += self.stmts(self.k.body, 1)
        lines.append("}")
        return "\n".join(lines)
