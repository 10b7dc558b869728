"""C renderer of the loop IR: a :class:`Kernel` -> one C99 function (signature and body).

One visitor over expressions and one over statements (tinygrad's ``code_for_op`` shape); no
lowering happens here. Semantics follow ``onnxcc.codegen.loops``: integer ``add``/``sub``/``mul``
on data wrap (computed in the unsigned type, since signed overflow is undefined in C; index
arithmetic, proved in range by verify, stays plain ``int32_t``), narrow integer results are cast
back to their width, integer ``div``/``mod`` by zero give 0, float ``max``/``min`` propagate NaN
and casts follow C's rules (the module docstring of ``loops`` states them). Helper functions a
kernel needs (``onnxcc_maxf``…) are collected in :class:`CContext` and emitted once per file.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np

from onnxcc.codegen.loops import (Assign, Binary, Buffer, Call, Cast, Comment, Const, Decl,
                                  DType, Expr, If, INDEX, Kernel, Load, Loop, MulAdd, Select,
                                  Stmt, Store, Unary, Var, children, rebuild,
                                  substitute_stmts, walk_stmts)
from onnxcc.codegen.requantize import C_HELPER as REQUANTIZE_C
from onnxcc.codegen.requantize import C_HELPER_NARROW as REQUANTIZE_NARROW_C
from onnxcc.codegen.requantize import NARROW_SHIFT
from onnxcc.codegen.requantize import C_HELPER_HI as REQUANTIZE_HI_C
from onnxcc.codegen.requantize import C_HELPER_64 as REQUANTIZE64_C
from onnxcc.codegen.requantize import QUANTIZE, ROUND_I32_C, SAT8_C, SMMLA_C, SRDHM_C, USAT8_C
from onnxcc.codegen.pkhbt import C_HELPER as PKHBT_C
from onnxcc.codegen.pkhbt import PKHTB_C
from onnxcc.codegen.smlad import C_HELPER as SMLAD_C
from onnxcc.codegen.smlad import (LDM_BANKS, LDM_C, LOAD4_C, PACK4_C, SMLADX_C, STORE4_C,
                                  STPAIR_C, SXTB16_C)

CTYPE = {"float16": "uint16_t", "float32": "float", "float64": "double", "int8": "int8_t",
         "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t", "int32": "int32_t",
         "uint32": "uint32_t", "int64": "int64_t", "uint64": "uint64_t", "bool": "uint8_t"}
UTYPE = {"int8": "uint8_t", "int16": "uint16_t", "int32": "uint32_t", "int64": "uint64_t",
         "uint8": "uint8_t", "uint16": "uint16_t", "uint32": "uint32_t", "uint64": "uint64_t"}
MATH = {"exp", "log", "sqrt", "tanh", "erf", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
        "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "log1p", "expm1"}
_SYM = {"add": "+", "sub": "-", "mul": "*", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
        "eq": "==", "ne": "!=", "xor": "^", "shl": "<<", "shr": ">>"}
CALLS = {"requantize": "onnxcc_requantize", "smlad": "onnxcc_smlad", "sxtb16": "onnxcc_sxtb16",
         "smladx": "onnxcc_smladx", "pack4": "onnxcc_pack4",
         "requantize_hi": "onnxcc_requantize_hi", "sat_i8": "onnxcc_sat_i8",
         "sat_u8": "onnxcc_sat_u8", "requantize64": "onnxcc_requantize64",
         "smmla": "onnxcc_smmla", "round_i32": "onnxcc_round_i32",
         "srdhm": "onnxcc_srdhm", "pkhbt": "onnxcc_pkhbt", "pkhtb": "onnxcc_pkhtb",
         **{q: f"onnxcc_{q}" for q in QUANTIZE}}
# (loop-IR intrinsic -> C function)
C_HELPERS = {"onnxcc_requantize": REQUANTIZE_C, "onnxcc_requantize_hi": REQUANTIZE_HI_C,
             "onnxcc_requantize_narrow": REQUANTIZE_NARROW_C,
             "onnxcc_requantize64": REQUANTIZE64_C,
             "onnxcc_smlad": SMLAD_C,
             "onnxcc_sxtb16": SXTB16_C, "onnxcc_smladx": SMLADX_C, "onnxcc_pack4": PACK4_C,
             "onnxcc_load4": LOAD4_C, "onnxcc_sat_i8": SAT8_C, "onnxcc_sat_u8": USAT8_C,
             "onnxcc_smmla": SMMLA_C, "onnxcc_round_i32": ROUND_I32_C,
             "onnxcc_srdhm": SRDHM_C,
             **{f"onnxcc_{q}": c for q, (_, _, c) in QUANTIZE.items()},
             "onnxcc_pkhbt": PKHBT_C, "onnxcc_pkhtb": PKHTB_C}
FULL_UNROLL_MAX = 16     # constant-trip loops marked unrolled are copied out up to this count


def ctype(d: DType) -> str:
    """The C type of one element of ``d`` (vectors are rendered lane by lane, never as a type)."""
    return CTYPE[d.name]


def c_float(v: float, ct: str = "float") -> str:
    """A C literal for ``v`` that round-trips exactly in ``ct`` (``float`` or ``double``)."""
    v = float(v)
    if np.isnan(v):
        return "NAN" if ct == "float" else "(double)NAN"
    if np.isinf(v):
        return ("INFINITY" if v > 0 else "-INFINITY") if ct == "float" else \
            ("(double)INFINITY" if v > 0 else "(double)-INFINITY")
    x = np.float32(v) if ct == "float" else np.float64(v)
    s = np.format_float_positional(x, unique=True, trim="0")
    if len(s) > 12:  # 1e-30 reads better than thirty zeros
        s = np.format_float_scientific(x, unique=True, trim="0", exp_digits=1).replace("e+", "e")
    return s + ("f" if ct == "float" else "")


def c_int(v: int | float, ct: str = "int64_t") -> str:
    """A C literal for the integer ``v`` of C type ``ct`` (INT64_MIN and INT32_MIN safe)."""
    v = int(v)
    if ct in ("int64_t", "uint64_t"):
        if v == -(1 << 63):
            return "INT64_MIN"
        return f"INT64_C({v})" if ct == "int64_t" else f"UINT64_C({v})"
    if ct == "int32_t" and v == -(1 << 31):
        return "INT32_MIN"
    return str(v)


def c_value(v: Any, ct: str) -> str:
    """A C literal of the C element type ``ct`` (a value of :data:`CTYPE`)."""
    return c_float(v, ct) if ct in ("float", "double") else c_int(v, ct)


def c_literal(value: object, d: DType) -> str:
    """A C literal of ``d`` that round-trips exactly (NaN, infinities, INT64_MIN included; a
    float16 is its IEEE binary16 bit pattern, as stored)."""
    if d.name == "bool":
        return "1" if value else "0"
    if d.name == "float16":
        return f"0x{int(np.array(value, np.float16).view(np.uint16)):04X}u"
    return c_value(value, ctype(d))


# float16 <-> float32/float64 in portable C99 (float16 is stored as its uint16_t bit pattern; no
# _Float16 or __fp16 needed): IEEE binary16, round to nearest even, subnormals, overflow to
# infinity, NaN stays NaN (quieted, its top payload bits kept, as x86's F16C and LLVM do).
F16_TO_F32 = """static inline float onnxcc_f16_to_f32(uint16_t h)
{
    union { uint32_t u; float f; } v;
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (uint32_t)(h >> 10) & 0x1Fu;
    uint32_t m = (uint32_t)h & 0x3FFu;
    if (e == 0x1Fu) {
        v.u = sign | 0x7F800000u | (m << 13);           /* infinity, NaN */
    } else if (e != 0u) {
        v.u = sign | ((e + 112u) << 23) | (m << 13);    /* normal: rebias 15 -> 127 */
    } else if (m == 0u) {
        v.u = sign;                                      /* +-0 */
    } else {                                             /* subnormal: normalize */
        e = 113u;
        while ((m & 0x400u) == 0u) {
            m <<= 1;
            e--;
        }
        v.u = sign | (e << 23) | ((m & 0x3FFu) << 13);
    }
    return v.f;
}"""
F32_TO_F16 = """static inline uint16_t onnxcc_f32_to_f16(float f)
{
    union { float f; uint32_t u; } v;
    uint32_t ax, sign, e, m, sh, q, rem, half;
    v.f = f;
    ax = v.u & 0x7FFFFFFFu;
    sign = (v.u >> 16) & 0x8000u;
    if (ax > 0x7F800000u) {                              /* NaN: quiet, top payload bits */
        return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));
    }
    if (ax >= 0x477FF000u) {                             /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7C00u);
    }
    if (ax >= 0x38800000u) {                             /* normal: rebias, round to even */
        ax -= 0x38000000u;
        return (uint16_t)(sign | ((ax + 0xFFFu + ((ax >> 13) & 1u)) >> 13));
    }
    if (ax < 0x33000000u) {                              /* below 2^-25: +-0 */
        return (uint16_t)sign;
    }
    e = ax >> 23;                                        /* subnormal: 102..112 */
    m = (ax & 0x7FFFFFu) | 0x800000u;
    sh = 126u - e;
    q = m >> sh;
    rem = m & ((1u << sh) - 1u);
    half = 1u << (sh - 1u);
    if (rem > half || (rem == half && (q & 1u) != 0u)) {
        q++;
    }
    return (uint16_t)(sign | q);
}"""
F64_TO_F16 = """static inline uint16_t onnxcc_f64_to_f16(double d)
{
    union { double d; uint64_t u; } v;
    uint64_t ax, m, q, rem, half;
    uint32_t sign, sh;
    v.d = d;
    ax = v.u & UINT64_C(0x7FFFFFFFFFFFFFFF);
    sign = (uint32_t)(v.u >> 48) & 0x8000u;
    if (ax > UINT64_C(0x7FF0000000000000)) {             /* NaN: quiet, top payload bits */
        return (uint16_t)(sign | 0x7E00u | (uint32_t)((ax >> 42) & 0x3FFu));
    }
    if (ax >= UINT64_C(0x40EFFE0000000000)) {            /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7C00u);
    }
    if (ax >= UINT64_C(0x3F10000000000000)) {            /* normal: rebias, round to even */
        ax -= UINT64_C(0x3F00000000000000);
        return (uint16_t)(sign | (uint32_t)((ax + UINT64_C(0x1FFFFFFFFFF)
                                             + ((ax >> 42) & 1u)) >> 42));
    }
    if (ax < UINT64_C(0x3E60000000000000)) {             /* below 2^-25: +-0 */
        return (uint16_t)sign;
    }
    sh = 1051u - (uint32_t)(ax >> 52);                   /* subnormal: 43..53 */
    m = (ax & UINT64_C(0xFFFFFFFFFFFFF)) | (UINT64_C(1) << 52);
    q = m >> sh;
    rem = m & ((UINT64_C(1) << sh) - 1u);
    half = UINT64_C(1) << (sh - 1u);
    if (rem > half || (rem == half && (q & 1u) != 0u)) {
        q++;
    }
    return (uint16_t)(sign | (uint32_t)q);
}"""


def _helper_max(ct: str, name: str, cmp: str) -> str:
    return (f"static inline {ct} {name}({ct} a, {ct} b) {{ return (a != a || a {cmp} b) ? a : b; }}")


class CContext:
    """Helper functions the rendered kernels need, by name, emitted once before them. ``size``
    (``optimize="size"``): prefer the smaller form of a helper where there are two (libm calls
    over inline code)."""

    def __init__(self, size: bool = False) -> None:
        self.helpers: dict[str, str] = {}
        self.size = size

    def need(self, name: str, text: str) -> str:
        self.helpers.setdefault(name, text)
        return name

    def text(self) -> str:
        return "\n".join(self.helpers[k] for k in sorted(self.helpers))


def _no_float16_math(x: Expr) -> None:
    """float16 is stored, never computed on (``loops``' semantics): a kernel doing arithmetic
    on it is a lowering bug (passes.float16_compute should have made it float32)."""
    if any(c.dtype.name == "float16" for c in children(x)):
        raise TypeError(f"float16 arithmetic in the loop IR ({type(x).__name__} "
                        f"{getattr(x, 'op', '')}): float16 is a storage type")


def _has_load(e: Expr, data: frozenset[str] = frozenset()) -> bool:
    """Whether ``e`` reads tensor data: a load, or a local in ``data`` (one holding loaded
    values, :func:`data_locals`)."""
    return isinstance(e, Load) or (isinstance(e, Var) and e.name in data) \
        or any(_has_load(c, data) for c in children(e))


def data_locals(body: Sequence[Stmt]) -> frozenset[str]:
    """The names of the locals of ``body`` declared as a copy of loaded tensor data (``a0 =
    x[i]``, or a cast of it) and never assigned again: integer add/sub/mul on them wraps
    (unsigned arithmetic) like a load's, as the loop IR says of data. An int32 elementwise Add
    reads its operands into such locals, and ``a0 + a1`` was a signed int addition: undefined
    on overflow (UBSan: 2147483647 + 1). A copy of data narrower than 32 bits other than
    uint16 stays a plain int: one add, sub or multiply of two such values cannot overflow int32
    (int16 * int16 <= 2**30), and the blocked int8 kernels' widened operands and weights
    (``w0_0 * x0_0``) keep signed arithmetic, which gcc allocates better (cortex-m3 -Os, a 64 ->
    32 pointwise QLinearConv: 5.04 instructions per MAC with them unsigned, 3.0 signed).
    Locals computed by a kernel's own arithmetic (accumulators, the integer softmax's
    fixed-point steps, bounded by construction) keep plain C ints."""
    def source(e: Expr) -> DType | None:
        if isinstance(e, Load):
            return e.buf.dtype
        return source(e.a) if isinstance(e, Cast) else None

    def wide(d: DType | None) -> bool:
        return d is not None and (d.name == "uint16" or np.dtype(d.np).itemsize >= 4)

    stmts = list(walk_stmts(body))
    assigned = {s.var.name for s in stmts if isinstance(s, Assign)}
    return frozenset(s.var.name for s in stmts if isinstance(s, Decl)
                     and s.var.name not in assigned and wide(source(s.init)))


def _narrow_shift(shift: Expr) -> bool:
    """Whether a requantize's ``shift`` is known at compile time to be NARROW_SHIFT or more (a
    literal, or a load, widened or not, from a constant weight buffer all of whose values are)."""
    if isinstance(shift, Cast):
        shift = shift.a
    if isinstance(shift, Const):
        return isinstance(shift.value, (int, np.integer)) and int(shift.value) >= NARROW_SHIFT
    return (isinstance(shift, Load) and shift.mask is None and shift.buf.data is not None
            and shift.buf.data.size > 0 and int(np.min(shift.buf.data)) >= NARROW_SHIFT)


def _split_const(e: Expr) -> tuple[Expr | None, int]:
    """An index ``e`` as ``(base, k)`` with ``e == base + k`` (``base`` None for a constant)."""
    if isinstance(e, Const):
        return None, int(e.value)
    if isinstance(e, Binary) and e.op in ("add", "sub") and isinstance(e.b, Const):
        base, k = _split_const(e.a)
        k2 = int(e.b.value) if e.op == "add" else -int(e.b.value)
        return base, k + k2
    return e, 0


def _flat(b: Buffer, index: Sequence[Expr]) -> tuple[tuple, int] | None:
    """The flat element offset of ``b[index]`` as (its variable terms, sorted ``(name,
    coefficient)`` pairs, and its constant), or None when it is not affine."""
    terms: dict[str, int] = {}
    for i, st in zip(index, b.strides):
        lin = _linear(i)
        if lin is None:
            return None
        for name, c in lin.items():
            terms[name] = terms.get(name, 0) + c * st
    k = terms.pop("", 0)
    return tuple(sorted((n, c) for n, c in terms.items() if c)), k


def _ldm_bank(s: Stmt) -> int | None:
    """The register bank an ``ldm`` hint Decl asks for (its second argument), else None."""
    a = s.init.args if isinstance(s, Decl) and isinstance(s.init, Call) else ()
    return int(a[1].value) if len(a) == 2 and isinstance(a[1], Const) else None


def _ldm_word(s: Stmt) -> tuple[str, tuple, int] | None:
    """(buffer name, variable terms, constant offset) when ``s`` declares an ``ldm`` hint of
    an unmasked int32 element at an affine offset, else None."""
    if not (isinstance(s, Decl) and isinstance(s.init, Call) and s.init.fn == "ldm"
            and s.var.dtype.name == "int32"):
        return None
    ld = s.init.args[0]
    if not (isinstance(ld, Load) and ld.mask is None and ld.dtype.name == "int32"):
        return None
    f = _flat(ld.buf, ld.index)
    return None if f is None else (ld.buf.name, f[0], f[1])


def _ldm_run(decls: Sequence[Stmt], most: int = 4) -> tuple[int, tuple, int] | None:
    """(n, variable terms, constant offset) when the first 2 to ``most`` of ``decls`` declare
    ``ldm`` hints (codegen/smlad.py) of consecutive int32 elements of one buffer, asking for
    the same register bank, else None."""
    n, first = 0, None
    for s in decls[:most]:
        w = _ldm_word(s)
        if w is None or _ldm_bank(s) != _ldm_bank(decls[0]):
            break
        if first is None:
            first = w
        elif w != (first[0], first[1], first[2] + n):
            break
        n += 1
    return (n, first[1], first[2]) if n >= 2 and first is not None else None


def _ldm_next(s: Stmt, walk: dict[tuple, list]) -> list | None:
    """The walking pointer of ``walk`` (see ``stmts``) when ``s`` declares a lone ``ldm`` hint
    of the int32 element the pointer points at (a fifth word after a group of 4 in register
    bank 1), else None: read through it, the next group needs no new pointer (cortex-m4 -Os,
    dense 64 -> 10 before groups of 5: one ADD per group less)."""
    f = _ldm_word(s)
    w = walk.get(f[:2]) if f is not None else None
    return w if w is not None and w[1] == f[2] else None


def _stpair(stores: Sequence[Stmt]) -> bool:
    """Whether ``stores`` are 2 stores of ``stpair`` hints (codegen/smlad.py) into consecutive
    int32 elements of one buffer, unmasked."""
    if len(stores) != 2 or not all(isinstance(s, Store) and isinstance(s.value, Call)
                                   and s.value.fn == "stpair" and s.buf.dtype.name == "int32"
                                   for s in stores):
        return False
    a, b = (_flat(s.buf, s.index) for s in stores)
    return (stores[0].buf.name == stores[1].buf.name and a is not None and b is not None
            and b == (a[0], a[1] + 1))


def _word_bytes(stores: Sequence[Stmt]) -> Expr | None:
    """The int32 variable ``w`` when ``stores`` are 4 stores into one buffer of 1-byte
    elements at last indices ``i``, ``i + 1``, ``i + 2``, ``i + 3`` (stride one, the other
    indices equal) of ``w``'s bytes, low first (``(int8_t)(uint32_t)w``, then ``(uint32_t)w >>
    8``, 16, 24): then one word store writes them. Else None."""
    if len(stores) != 4 or not all(isinstance(s, Store) for s in stores):
        return None
    s0 = stores[0]
    if s0.buf.dtype.np.itemsize != 1 or not s0.index or s0.buf.strides[-1] != 1:
        return None
    base0, k0 = _split_const(s0.index[-1])
    word: Expr | None = None
    for u, s in enumerate(stores):
        if not (s.buf.name == s0.buf.name and s.buf.strides == s0.buf.strides
                and tuple(s.index[:-1]) == tuple(s0.index[:-1])
                and _split_const(s.index[-1]) == (base0, k0 + u)
                and isinstance(s.value, Cast) and s.value.dtype.np.itemsize == 1):
            return None
        v = s.value.a
        if u:
            if not (isinstance(v, Binary) and v.op == "shr" and isinstance(v.b, Const)
                    and int(v.b.value) == 8 * u):
                return None
            v = v.a
        if not (isinstance(v, Cast) and v.dtype.name == "uint32" and v.a.dtype.name == "int32"):
            return None
        if word is None:
            word = v.a
        elif v.a != word:
            return None
    # a variable: its value cannot change with the bytes stored (a load could read them)
    return word if isinstance(word, Var) else None


def _adjacent_bytes(args: Sequence[Expr]) -> bool:
    """Whether ``args`` are unmasked loads of one buffer at last indices ``i``, ``i + 1``, ...
    (a stride of one element along it, the other indices equal): one word in memory."""
    a0 = args[0]
    if not isinstance(a0, Load) or a0.mask is not None or not a0.index or a0.buf.strides[-1] != 1:
        return False
    base0, k0 = _split_const(a0.index[-1])
    for u, a in enumerate(args[1:], 1):
        if not (isinstance(a, Load) and a.buf.name == a0.buf.name and a.mask is None
                and a.buf.strides == a0.buf.strides
                and tuple(a.index[:-1]) == tuple(a0.index[:-1])
                and _split_const(a.index[-1]) == (base0, k0 + u)):
            return False
    return True


class _Renderer:
    def __init__(self, ctx: CContext, outputs: Sequence[Buffer] = (),
                 data: frozenset[str] = frozenset()) -> None:
        self.ctx = ctx
        self.outputs = list(outputs)
        self.data = data   # locals holding tensor data (data_locals)

    # -- expressions --------------------------------------------------------------------------
    def e(self, x: Expr) -> str:
        if isinstance(x, Var):
            return x.name
        if isinstance(x, Const):
            return c_literal(x.value, x.dtype)
        if isinstance(x, Load):
            ref = f"{x.buf.name}[{self.offset(x.buf, x.index)}]"
            if x.mask is None:
                return ref
            other = self.e(x.other) if x.other is not None else c_literal(0, x.buf.dtype)
            return f"({self.e(x.mask)} ? {ref} : {other})"
        if isinstance(x, Binary):
            return self.binary(x)
        if isinstance(x, Unary):
            return self.unary(x)
        if isinstance(x, Cast):
            return self.cast(x)
        if isinstance(x, Select):
            return f"({self.e(x.cond)} ? {self.e(x.a)} : {self.e(x.b)})"
        if isinstance(x, MulAdd):
            return f"({self.e(x.a)} * {self.e(x.b)} + {self.e(x.c)})"
        if isinstance(x, Call):
            if x.fn in ("ldm", "stpair"):   # a hint (alone, or outside its pattern): the value
                return self.e(x.args[0])
            if x.fn == "pack4" and _adjacent_bytes(x.args):
                a = x.args[0]
                self.ctx.need("onnxcc_load4", C_HELPERS["onnxcc_load4"])
                return f"onnxcc_load4(&{a.buf.name}[{self.offset(a.buf, a.index)}])"
            fn = CALLS[x.fn]
            if x.fn == "requantize" and _narrow_shift(x.args[2]):
                fn = "onnxcc_requantize_narrow"   # 48 bytes at -Os on the M4, the general form 190
            if fn in C_HELPERS:
                self.ctx.need(fn, C_HELPERS[fn])
            return f"{fn}({', '.join(self.e(a) for a in x.args)})"
        raise TypeError(x)

    def offset(self, b: Buffer, index: Sequence[Expr]) -> str:
        terms: list[str] = []
        k = 0
        for i, s in zip(index, b.strides):
            if s == 0:
                continue
            if isinstance(i, Const):
                k += int(i.value) * s
                continue
            t = self.e(i)
            if s != 1 and not isinstance(i, (Var, Load)):
                t = f"({t})"
            terms.append(t if s == 1 else f"{t}*{s}")
        if k or not terms:
            terms.append(str(k))
        return " + ".join(terms)

    def binary(self, x: Binary) -> str:
        d = x.a.dtype
        _no_float16_math(x)
        a, b = self.e(x.a), self.e(x.b)
        ct = ctype(d)
        if x.op in ("add", "sub", "mul") and d.is_int:
            if d == INDEX and not (_has_load(x.a, self.data) or _has_load(x.b, self.data)):
                return f"({a} {_SYM[x.op]} {b})"
            ut = UTYPE[d.name]
            return f"({ct})(({ut}){a} {_SYM[x.op]} ({ut}){b})"
        if x.op in _SYM:
            s = f"({a} {_SYM[x.op]} {b})"
            if x.op in ("xor", "shl", "shr") and d.bits < 32:
                return f"({ct}){s}"
            return s
        if x.op == "and":
            return f"({a} && {b})" if d.name == "bool" else f"({ct})({a} & {b})"
        if x.op == "or":
            return f"({a} || {b})" if d.name == "bool" else f"({ct})({a} | {b})"
        if x.op in ("max", "min"):
            if d.is_float and isinstance(x.b, Const) and not math.isnan(float(x.b.value)):
                # a bound that is not NaN (Relu, Clip): one comparison, and NaN in a still
                # comes out (the comparison is false), ties give b as the general helper does
                return self._bound(x.op, "<=" if x.op == "max" else ">=", ct, d, a, b,
                                   keep_b=True)
            if d.is_float:
                sfx = "f" if d.name == "float32" else ""
                name = f"onnxcc_{x.op}{sfx or 'd'}"
                self.ctx.need(name, _helper_max(ct, name, ">" if x.op == "max" else "<"))
                return f"{name}({a}, {b})"
            name = f"onnxcc_{x.op}_{d.name}"
            cmp = ">" if x.op == "max" else "<"
            self.ctx.need(name, f"static inline {ct} {name}({ct} a, {ct} b) {{ return a {cmp} b ? a : b; }}")
            return f"{name}({a}, {b})"
        if x.op in ("fmax", "fmin"):
            if d.is_float and isinstance(x.b, Const) and not math.isnan(float(x.b.value)) \
                    and not self.ctx.size:
                # a bound that is not NaN (QuantizeLinear's clamp): one comparison inline, NaN in
                # a gives the bound as fmax/fmin do (the comparison is false); libm's fmaxf is a
                # call on cores without VMAXNM (Cortex-M4: ~20 instructions)
                return self._bound(x.op, ">" if x.op == "fmax" else "<", ct, d, a, b,
                                   keep_b=False)
            return f"{x.op}{'f' if d.name == 'float32' else ''}({a}, {b})"
        if x.op == "pow":
            return f"pow{'f' if d.name == 'float32' else ''}({a}, {b})"
        if x.op == "div":
            if d.is_float:
                return f"({a} / {b})"
            name = f"onnxcc_div_{d.name}"
            # 0 for b == 0; a signed INT_MIN / -1 wraps to INT_MIN (the C division overflows:
            # SIGFPE on x86), as the LLVM back end's int_div and numpy do
            wrap = (f"b == -1 ? ({ct})(0u - ({UTYPE[d.name]})a) : " if d.name.startswith("int")
                    else "")
            self.ctx.need(name, f"static inline {ct} {name}({ct} a, {ct} b) "
                                f"{{ return b == 0 ? 0 : {wrap}({ct})(a / b); }}")
            return f"{name}({a}, {b})"
        if x.op == "mod":
            if d.is_float:
                return f"fmod{'f' if d.name == 'float32' else ''}({a}, {b})"
            name = f"onnxcc_mod_{d.name}"
            zero = "b == 0 || b == -1" if d.name.startswith("int") else "b == 0"  # INT_MIN % -1: 0
            self.ctx.need(name, f"static inline {ct} {name}({ct} a, {ct} b) "
                                f"{{ return {zero} ? 0 : ({ct})(a % b); }}")
            return f"{name}({a}, {b})"
        raise ValueError(f"C renderer: no binary op {x.op}")

    def _bound(self, op: str, cmp: str, ct: str, d: DType, a: str, b: str, keep_b: bool) -> str:
        """``op(a, b)`` against a constant bound ``b`` that is not NaN as one comparison in an
        inline helper: ``a cmp b ? b : a`` (max/min: NaN in ``a`` comes out) when ``keep_b``,
        else ``a cmp b ? a : b`` (fmax/fmin: NaN in ``a`` gives the bound)."""
        name = f"onnxcc_{op}_bound{'f' if d.name == 'float32' else 'd'}"
        pick = "b : a" if keep_b else "a : b"
        self.ctx.need(name, f"static inline {ct} {name}({ct} a, {ct} b) "
                            f"{{ return a {cmp} b ? {pick}; }}")
        return f"{name}({a}, {b})"

    def unary(self, x: Unary) -> str:
        d = x.a.dtype
        _no_float16_math(x)
        a = self.e(x.a)
        sfx = "f" if d.name == "float32" else ""
        if x.op == "neg":
            if d.is_int:
                ut = UTYPE[d.name]
                return f"({ctype(d)})(0u - ({ut}){a})"
            return f"(-{a})"
        if x.op == "not":
            return f"(!{a})" if d.name == "bool" else f"({ctype(d)})(~{a})"
        if x.op == "abs":
            if d.is_float:
                return f"fabs{sfx}({a})"
            # negated in the unsigned type: |INT_MIN| wraps to INT_MIN (as numpy and onnxruntime
            # give) instead of overflowing a signed int
            return f"({a} < 0 ? ({ctype(d)})(0u - ({UTYPE[d.name]}){a}) : {a})"
        if x.op in MATH:
            return f"{x.op}{sfx}({a})"
        if x.op == "round":
            name = f"onnxcc_roundeven{sfx or 'd'}"
            ct = ctype(d)
            # round half to even without relying on the rounding mode: nearbyint would follow
            # fesetround, and roundeven is C23.
            if sfx and not self.ctx.size:
                # float (unless optimizing for size): inline through int32 (a C cast truncates
                # in every rounding mode): q = floor(2|v|) (exact below 2^24), |v| rounded half
                # up is (q + 1) >> 1, and a tie (2|v| the odd integer q) rounded up to an odd
                # value goes down to the even one. |v| >= 2^23, inf and NaN are returned as
                # they are (integers already); copysignf keeps the sign of a zero result
                # (roundf(-0.3f) is -0.0f). Checked against nearbyintf on all 2^32 floats.
                # roundf and truncf are libm calls on a Cortex-M4 (~100 instructions a value;
                # this ~21).
                self.ctx.need(name, f"static inline float {name}(float v) {{\n"
                              "    float a = fabsf(v);\n"
                              "    if (!(a < 8388608.0f)) return v;\n"
                              "    int32_t q = (int32_t)(a + a);\n"
                              "    int32_t r = (q + 1) >> 1;\n"
                              "    if ((q & r & 1) && (float)q == a + a) r -= 1;\n"
                              "    return copysignf((float)r, v);\n}")
                return f"{name}({a})"
            self.ctx.need(name, f"static inline {ct} {name}({ct} v) {{ {ct} r = round{sfx}(v); "
                          f"if (fabs{sfx}(v - trunc{sfx}(v)) == ({ct})0.5) "
                          f"r = ({ct})2 * round{sfx}(v / ({ct})2); return r; }}")
            return f"{name}({a})"
        if x.op == "isnan":
            return f"({a} != {a})"
        if x.op == "isinf":
            return f"(isinf({a}) != 0)"
        raise ValueError(f"C renderer: no unary op {x.op}")

    def cast(self, x: Cast) -> str:
        a = self.e(x.a)
        src, dst = x.a.dtype.name, x.dtype.name
        if src == "float16" and dst != "float16":   # exact in float32, then C's conversion
            a = f"{self.ctx.need('onnxcc_f16_to_f32', F16_TO_F32)}({a})"
            if dst == "float32":
                return a
        if dst == "float16":
            if src == "float16":
                return a
            if src == "float64":
                return f"{self.ctx.need('onnxcc_f64_to_f16', F64_TO_F16)}({a})"
            # integers go through float32: exact up to 2^24, beyond which float16 overflows
            return (f"{self.ctx.need('onnxcc_f32_to_f16', F32_TO_F16)}"
                    f"({a if src == 'float32' else f'(float)({a})'})")
        if dst == "bool":
            return f"(uint8_t)({a} != 0)"
        return f"({ctype(x.dtype)})({a})"

    # -- statements ---------------------------------------------------------------------------
    def walker(self) -> str:
        """A new name for an ``ldm`` walking pointer."""
        self.walkers = getattr(self, "walkers", 0) + 1
        return f"onnxcc_w{self.walkers}"

    def ldm_bank(self, buf: str) -> int:
        """The register bank of buffer ``buf``'s ``ldm`` groups: the kernel's first buffer read
        so 0, the others 1 (codegen/smlad.py LDM_C)."""
        banks = self.__dict__.setdefault("banks", {})
        return banks.setdefault(buf, 0 if not banks else 1)

    def ldm_run(self, decls: Sequence[Stmt]) -> tuple[int, tuple, int] | None:
        """``_ldm_run`` of ``decls`` with groups as long as their register bank has registers
        (the bank the hint asks for, else the one their buffer would get, ``ldm_bank``, not
        assigned here): 5 words in bank 0, 4 in bank 1."""
        s = decls[0] if decls else None
        if not (isinstance(s, Decl) and isinstance(s.init, Call) and s.init.fn == "ldm"
                and isinstance(s.init.args[0], Load)):
            return None
        banks = self.__dict__.get("banks", {})
        buf = s.init.args[0].buf.name
        bank = _ldm_bank(s)
        bank = banks.get(buf, 0 if not banks else 1) if bank is None else bank
        return _ldm_run(decls, len(LDM_BANKS[bank]))

    def stmts(self, body: Sequence[Stmt], d: int, out: list[str],
              walk: dict[tuple, list] | None = None) -> None:
        """``body`` at depth ``d``; ``walk`` the ``ldm`` pointers set before it: (buffer name,
        variable terms) -> [pointer name, flat offset it points at, register bank]."""
        pad = "    " * d
        skip = 0
        walk = {} if walk is None else walk
        for j, s in enumerate(body):
            if skip:
                skip -= 1
                continue
            run = self.ldm_run(body[j:j + 5]) if isinstance(s, Decl) else None
            if run is not None:   # consecutive words: one group load through a walking pointer
                n, terms, k0 = run
                ld = s.init.args[0]
                w = walk.get((ld.buf.name, terms))
                if w is None or w[1] != k0:
                    # (a group asking for its own bank leaves the buffer's bank unassigned)
                    w = [self.walker(), k0, self.ldm_bank(ld.buf.name) if _ldm_bank(s) is None
                         else self.__dict__.get("banks", {}).get(ld.buf.name, 0)]
                    walk[(ld.buf.name, terms)] = w
                    out.append(f"{pad}const int32_t *{w[0]} = &{ld.buf.name}"
                               f"[{self.offset(ld.buf, ld.index)}];")
                names = [st.var.name for st in body[j:j + n]]
                bank = w[2] if _ldm_bank(s) is None else _ldm_bank(s)
                fn = f"onnxcc_ldm{n}{'ab'[bank]}"
                self.ctx.need(fn, LDM_C[(n, bank)])
                out.append(f"{pad}int32_t {', '.join(names)};")
                out.append(f"{pad}{fn}(&{w[0]}, {', '.join('&' + v for v in names)});")
                w[1] = k0 + n
                skip = n - 1
                continue
            lone = _ldm_next(s, walk)
            if lone is not None:   # the next word of a walking pointer: LDR with post-increment
                out.append(f"{pad}int32_t {s.var.name} = *{lone[0]}++;")
                lone[1] += 1
                continue
            if isinstance(s, Store) and _stpair(body[j:j + 2]):   # one STRD
                self.ctx.need("onnxcc_stpair", STPAIR_C)
                out.append(f"{pad}onnxcc_stpair(&{s.buf.name}[{self.offset(s.buf, s.index)}], "
                           f"{self.e(s.value.args[0])}, {self.e(body[j + 1].value.args[0])});")
                skip = 1
                continue
            w = _word_bytes(body[j:j + 4]) if isinstance(s, Store) else None
            if w is not None:   # a word's 4 bytes to adjacent elements: one word store
                self.ctx.need("onnxcc_store4", STORE4_C)
                out.append(f"{pad}onnxcc_store4(&{s.buf.name}[{self.offset(s.buf, s.index)}], "
                           f"{self.e(w)});")
                skip = 3
            elif isinstance(s, Store):
                out.append(f"{pad}{s.buf.name}[{self.offset(s.buf, s.index)}] = {self.e(s.value)};")
            elif isinstance(s, Decl):
                out.append(f"{pad}{ctype(s.var.dtype)} {s.var.name} = {self.e(s.init)};")
            elif isinstance(s, Assign):
                out.append(f"{pad}{s.var.name} = {self.e(s.value)};")
            elif isinstance(s, Loop):
                self.loop(s, d, out)
            elif isinstance(s, If):
                out.append(f"{pad}if ({self.e(s.cond)}) {{")
                self.stmts(s.then, d + 1, out)
                if s.orelse:
                    out.append(f"{pad}}} else {{")
                    self.stmts(s.orelse, d + 1, out)
                out.append(f"{pad}}}")
            elif isinstance(s, Comment):
                from onnxcc.codegen.c.emit import comment_text

                out.append(f"{pad}/* {comment_text(s.text, 400)} */")

    def loop(self, s: Loop, d: int, out: list[str]) -> None:
        pad = "    " * d
        if (s.kind == "unrolled" and isinstance(s.start, Const) and isinstance(s.stop, Const)
                and (s.stop.value - s.start.value) // s.step <= FULL_UNROLL_MAX):
            for v in range(s.start.value, s.stop.value, s.step):
                out.append(f"{pad}{{ /* {s.var.name} = {v} */")
                self.stmts(substitute_stmts(s.body, {s.var: Const(v, s.var.dtype)}), d + 1, out)
                out.append(f"{pad}}}")
            return
        v = s.var.name
        if s.step == 1 and ((s.kind == "unrolled" and s.factor > 1)
                            or not any(isinstance(t, Loop) for t in walk_stmts(s.body))):
            if self.row_pointers(s, d, out):
                return
        inc = f"++{v}" if s.step == 1 else f"{v} += {s.step}"
        out.append(f"{pad}for ({ctype(s.var.dtype)} {v} = {self.e(s.start)}; {v} < "
                   f"{self.e(s.stop)}; {inc}) {{")
        self.stmts(s.body, d + 1, out)
        out.append(f"{pad}}}")


    def loop_walkers(self, body: Sequence[Stmt], j: str) -> dict[tuple, list]:
        """The ``ldm`` pointers one loop (variable ``j`` from 0, step 1) can set once before it:
        for each buffer whose ``ldm`` groups in ``body`` (its own statements) read
        ``j*c + k0`` to ``j*c + k0 + c - 1`` in order, each starting where the one before
        ended, so that the pointer after one iteration is where the next starts (a lone
        ``ldm`` word where the pointer is, read through it: ``_ldm_next``, counts as a group of
        one; at least one group of 2 or more). (buffer name, terms) -> [pointer name, k0,
        register bank, buffer name]."""
        runs: dict[tuple, list] = {}
        i = 0
        while i < len(body):
            run = self.ldm_run(body[i:i + 5]) if isinstance(body[i], Decl) else None
            if run is None:
                one = _ldm_word(body[i])
                if one is not None:
                    runs.setdefault(one[:2], []).append((one[2], 1))
                i += 1
                continue
            n, terms, k0 = run
            runs.setdefault((body[i].init.args[0].buf.name, terms), []).append((k0, n))
            i += n
        walk: dict[tuple, list] = {}
        for (buf, terms), rs in runs.items():
            if len(terms) != 1 or terms[0][0] != j:
                continue
            c, pos = terms[0][1], rs[0][0]
            if all(n == 1 for _, n in rs):
                continue
            for k0, n in rs:
                if k0 != pos:
                    break
                pos += n
            else:
                if pos == rs[0][0] + c:
                    walk[(buf, terms)] = [self.walker(), rs[0][0],
                                          self.ldm_bank(buf), buf]
        return walk

    def row_pointers(self, s: Loop, d: int, out: list[str]) -> bool:
        """An innermost loop, or one of kind ``unrolled`` (factor F), in the row-pointer form a
        C compiler vectorizes: every access whose flat offset is affine in the loop variable
        goes through a pointer set before the loop to its buffer at the first iteration (one per
        buffer and loop-invariant part), indexed by ``j*stride + constant`` with ``j`` counting
        from 0 (gcc -O2 vectorizes neither form with absolute int32 indices); unrolled: F copies
        of the body per step of ``j``, then the remaining iterations one by one. A body that
        still reads the variable gets it as ``start + j``. Returns False, writing nothing, when
        no access can use a pointer and there is nothing to unroll."""
        pad = "    " * d
        v = s.var
        F = s.factor if s.kind == "unrolled" and s.factor > 1 else 1
        j = Var(f"{v.name}_j", v.dtype)
        inner = _declared(s.body)
        ptrs: dict[tuple[str, tuple], tuple[str, str]] = {}   # key -> (name, declaration)

        def hoist(buf: Buffer, index: Sequence[Expr]) -> tuple[Buffer, tuple[Expr, ...]] | None:
            """``buf[index]`` as ``pointer[j*stride + k]`` (the pointer declared once), or None
            when the offset is not affine in the loop variable with a loop-invariant rest."""
            terms: dict[str, int] = {}
            k0, kv = 0, 0
            for i, st in zip(index, buf.strides):
                lin = _linear(i)
                if lin is None:
                    return None
                for name, c in lin.items():
                    if name == "":
                        k0 += c * st
                    elif name == v.name:
                        kv += c * st
                    elif name in inner:
                        return None
                    else:
                        terms[name] = terms.get(name, 0) + c * st
            if kv == 0:
                return None
            key = (buf.name, tuple(sorted((n, c) for n, c in terms.items() if c)))
            if key not in ptrs:
                base = [f"{c}*{n}" if c != 1 else n for n, c in key[1]]
                start = self.e(s.start)
                base.append(f"({start})*{kv}" if kv != 1 else f"({start})")
                q = "" if any(o.name == buf.name for o in self.outputs) else "const "
                name = f"{buf.name}_r{len(ptrs)}"
                ptrs[key] = (name, f"{q}{ctype(buf.dtype)} *{name} = {buf.name} + "
                                   f"{' + '.join(base)};")
            view = Buffer(ptrs[key][0], buf.dtype, (1,), (1,), "local")
            step = j if kv == 1 else Binary("mul", j, Const(kv, j.dtype))
            return view, (_plus(step, k0),)

        def rw_expr(e: Expr) -> Expr:
            if isinstance(e, Load):
                mask = None if e.mask is None else rw_expr(e.mask)
                other = None if e.other is None else rw_expr(e.other)
                h = hoist(e.buf, e.index)
                if h is not None:
                    return Load(h[0], h[1], mask, other)
                return Load(e.buf, tuple(rw_expr(i) for i in e.index), mask, other)
            if isinstance(e, (Var, Const)):
                return e
            return rebuild(e, [rw_expr(c) for c in children(e)])

        def rw(body: Sequence[Stmt]) -> list[Stmt]:
            res: list[Stmt] = []
            for st in body:
                if isinstance(st, Store):
                    h = hoist(st.buf, st.index)
                    val = rw_expr(st.value)
                    res.append(Store(h[0], h[1], val) if h is not None else
                               Store(st.buf, tuple(rw_expr(i) for i in st.index), val))
                elif isinstance(st, Decl):
                    res.append(Decl(st.var, rw_expr(st.init)))
                elif isinstance(st, Assign):
                    res.append(Assign(st.var, rw_expr(st.value)))
                elif isinstance(st, Loop):
                    res.append(Loop(st.var, rw_expr(st.start), rw_expr(st.stop), rw(st.body),
                                    st.step, st.kind, st.factor))
                elif isinstance(st, If):
                    res.append(If(rw_expr(st.cond), rw(st.then), rw(st.orelse)))
                else:
                    res.append(st)
            return res

        body = rw(s.body)
        if not ptrs and F == 1:
            return False
        n = f"{v.name}_n"
        probe: list[str] = []     # does the rendered body read the variable (a 0-stride index
        self.stmts(body, 0, probe)  # reads nothing)?
        needs_v = re.search(rf"\b{re.escape(v.name)}\b", "\n".join(probe)) is not None
        out.append(f"{pad}{{")
        out.append(f"{pad}    const {ctype(v.dtype)} {n} = ({self.e(s.stop)}) - ({self.e(s.start)});")
        for _name, decl in ptrs.values():
            out.append(f"{pad}    {decl}")
        out.append(f"{pad}    {ctype(v.dtype)} {j.name} = 0;")
        walk = self.loop_walkers(body, j.name) if F == 1 else {}
        for name, k0, bank, buf in walk.values():
            out.append(f"{pad}    const int32_t *{name} = &{buf}[{k0}];")

        def copy(u: int, depth: int) -> None:
            b = body if u == 0 else substitute_stmts(body, {j: Binary("add", j, Const(u, j.dtype))})
            if needs_v:
                jj = j.name if u == 0 else f"{j.name} + {u}"
                out.append(f"{'    ' * depth}const {ctype(v.dtype)} {v.name} = "
                           f"({self.e(s.start)}) + {jj};")
            self.stmts(b, depth, out, {k: w[:3] for k, w in walk.items()})

        if F > 1:
            out.append(f"{pad}    for (; {j.name} + {F} <= {n}; {j.name} += {F}) {{")
            for u in range(F):
                out.append(f"{pad}        {{")
                copy(u, d + 3)
                out.append(f"{pad}        }}")
            out.append(f"{pad}    }}")
        # no remainder loop after an unrolled one whose constant trip count F divides: it would
        # never run, and arm-none-eabi-gcc 12 at -O2 reported "iteration 1073741823 invokes
        # undefined behavior" for it (a 1x1 QLinearConv of one channel over 84 positions)
        known = isinstance(s.start, Const) and isinstance(s.stop, Const)
        if F == 1 or not known or (int(s.stop.value) - int(s.start.value)) % F:
            out.append(f"{pad}    for (; {j.name} < {n}; ++{j.name}) {{")
            copy(0, d + 2)
            out.append(f"{pad}    }}")
        out.append(f"{pad}}}")
        return True


def _linear(e: Expr) -> dict[str, int] | None:
    """``e`` as ``{variable name: coefficient}`` plus ``""`` for the constant, or None when it
    is not an integer affine form of variables (a load, min/max, division...)."""
    if isinstance(e, Const) and isinstance(e.value, (int, np.integer)) and not isinstance(e.value, bool):
        return {"": int(e.value)}
    if isinstance(e, Var):
        return {e.name: 1}
    if isinstance(e, Binary) and e.op in ("add", "sub"):
        a, b = _linear(e.a), _linear(e.b)
        if a is None or b is None:
            return None
        sign = 1 if e.op == "add" else -1
        res = dict(a)
        for k, c in b.items():
            res[k] = res.get(k, 0) + sign * c
        return res
    if isinstance(e, Binary) and e.op == "mul":
        a, b = _linear(e.a), _linear(e.b)
        if a is None or b is None:
            return None
        for x, y in ((a, b), (b, a)):
            if set(y) == {""}:
                return {n: c * y[""] for n, c in x.items()}
        return None
    return None


def _plus(e: Expr, k: int) -> Expr:
    if k == 0:
        return e
    return Binary("add", e, Const(k, e.dtype)) if k > 0 else Binary("sub", e, Const(-k, e.dtype))


def _declared(body: Sequence[Stmt]) -> set[str]:
    """Names of the variables whose value changes inside ``body``: its loop variables, its
    locals and any local assigned there (an index using one cannot be hoisted out)."""
    return {st.var.name for st in walk_stmts(body) if isinstance(st, (Loop, Decl, Assign))}


def render_kernel(k: Kernel, ctx: CContext, fn: str | None = None) -> tuple[str, str]:
    """``(signature, body)`` of ``k`` as a C function named ``fn`` (default ``k.name``): outputs
    first as ``T *restrict``, inputs as ``const T *restrict`` (in in-place kernels only the
    ``disjoint`` ones), each pointing at the buffer's first element; locals become arrays on
    the stack."""
    def r(b: Buffer) -> str:
        return "restrict " if not k.inplace or b.name in k.disjoint else ""

    params = [f"{ctype(b.dtype)} *{r(b)}{b.name}" for b in k.outputs]
    params += [f"const {ctype(b.dtype)} *{r(b)}{b.name}" for b in k.inputs]
    lines = [f"{ctype(b.dtype)} {b.name}[{max(b.extent, 1)}];" for b in k.locals]
    _Renderer(ctx, k.outputs + k.locals, data_locals(k.body)).stmts(k.body, 0, lines)
    return f"void {fn or k.name}({', '.join(params) or 'void'})", "\n".join(lines)


def render_kernel_text(k: Kernel, fn: str | None = None, *, static: bool = True) -> str:
    """A self-contained C function (with the helpers it needs) for ``k``; used by tests and
    tools that compile one kernel alone."""
    ctx = CContext()
    sig, body = render_kernel(k, ctx, fn)
    body = "\n".join("    " + ln if ln else ln for ln in body.splitlines())
    head = ctx.text()
    return (head + "\n\n" if head else "") + ("static " if static else "") + sig + "\n{\n" + body + "\n}\n"


def weight_symbol(k: int) -> str:
    """The C identifier of the Program's ``k``-th weight buffer in :func:`render_program`."""
    return f"weight{k}"


def render_program(p, fn: str = "run") -> str:
    """A self-contained C99 file for Program ``p``: weights as ``static const`` arrays, one
    function per kernel, and ``int fn(unsigned char *arena, const T *input0, …, T *output0, …)``
    calling them in order (returns 0). For tests and tools; the library emitter
    (``onnxcc.codegen.c.emit``) adds the public API around the same kernels."""
    from onnxcc.codegen.loops import Program

    assert isinstance(p, Program)
    ctx = CContext()
    wsym: dict[int, str] = {}
    lines = ["#include <math.h>", "#include <stdint.h>", "#include <stddef.h>",
             "#include <string.h>", ""]
    decls: list[str] = []
    for b in p.weights():
        key = id(b.data)
        if key in wsym:
            continue
        wsym[key] = weight_symbol(len(wsym))
        flat = b.data.reshape(-1)
        vals = ", ".join(c_literal(v.item(), b.dtype) for v in flat) or "0"
        decls.append(f"static const {ctype(b.dtype)} {wsym[key]}[{max(flat.size, 1)}] = {{ {vals} }};")
    funcs, calls = [], []
    for k in p.kernels:
        sig, body = render_kernel(k, ctx, k.name)
        body = "\n".join("    " + ln for ln in body.splitlines())
        funcs.append(f"static {sig}\n{{\n{body}\n}}\n")
        args = []
        for b in k.params:
            ct = ctype(b.dtype)
            if b.space == "weight":
                args.append(wsym[id(b.data)])
            elif b.space == "arena":
                args.append(f"({ct} *)(void *)(arena + {b.offset})")
            else:
                io = f"{b.space}{b.index}"
                base = (p.inputs if b.space == "input" else p.outputs)[b.index]
                q = "const " if b.space == "input" else ""
                if base.dtype == b.dtype and not b.offset:
                    args.append(io)
                else:
                    args.append(f"({q}{ct} *)({q}void *)(({q}unsigned char *){io} + {b.offset})")
        calls.append(f"    {k.name}({', '.join(args)});")
    params = ["unsigned char *arena"]
    params += [f"const {ctype(b.dtype)} *input{k}" for k, b in enumerate(p.inputs)]
    params += [f"{ctype(b.dtype)} *output{k}" for k, b in enumerate(p.outputs)]
    head = ctx.text()
    return "\n".join(lines + decls + ([head] if head else []) + [""] + funcs
                     + [f"int {fn}({', '.join(params)})", "{", "    (void)arena;"]
                     + [f"    (void){p.split('*')[-1]};" for p in params[1:]] + calls
                     + ["    return 0;", "}", ""])
