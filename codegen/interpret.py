"""interpret: run the loop IR with numpy, so every lowering is checked without a C compiler.

A kernel is translated once into a Python function (one ``for`` per loop, numpy scalars of the
exact dtype for every value, so float32 rounds as float32 and integers wrap as their width) and
called on flat numpy views of its buffers. Slow (microseconds per element): meant for the small
shapes of tests, where it is the oracle that the C and LLVM renderings are compared against.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .loops import (Assign, Binary, Buffer, Call, Cast, Comment, Const, Decl, Expr, If,
                    Kernel, Load, Loop, MulAdd, Program, Select, Stmt, Store, Unary, Var)
from .pkhbt import pkhbt, pkhtb
from .requantize import (QUANTIZE, quantize_reference, requantize, requantize64, requantize_hi,
                         round_i32, sat_i8, sat_u8, smmla, srdhm)
from .smlad import ldm, pack4, smlad, smladx, stpair, sxtb16

INTRINSICS: dict[str, Callable[..., Any]] = {"requantize": requantize, "smlad": smlad,
                                                 "sxtb16": sxtb16, "smladx": smladx,
                                                 "pack4": pack4, "ldm": ldm,
                                                 "stpair": stpair,
                                                 "requantize_hi": requantize_hi,
                                                 "sat_i8": sat_i8, "sat_u8": sat_u8,
                                                 "requantize64": requantize64,
                                                 "smmla": smmla, "round_i32": round_i32,
                                                 **{q: quantize_reference(q)
                                                    for q in QUANTIZE},
                                                 "srdhm": srdhm,
                                                 "pkhbt": pkhbt, "pkhtb": pkhtb}   # name -> numpy


def _tdiv(a: Any, b: Any) -> Any:
    """Integer division truncating toward zero; 0 for a zero divisor."""
    t = type(a)
    if b == 0:
        return t(0)
    q = abs(int(a)) // abs(int(b))
    return t(np.array(q if (a < 0) == (b < 0) else -q).astype(t))


def _tmod(a: Any, b: Any) -> Any:
    t = type(a)
    if b == 0:
        return t(0)
    return t(np.array(int(a) - int(b) * int(_tdiv(a, b))).astype(t))


def _fmax(a: Any, b: Any) -> Any:
    return np.fmax(a, b)


def _var(v: Var) -> str:
    """The Python name of loop-IR variable ``v``: ``v_`` + its name, so that a C name that is a
    Python keyword (size mode's softmax loops over ``pass``) or one of the translation's own
    names (``np``, ``_I``) stays a plain variable."""
    return f"v_{v.name}"


def _round(a: Any) -> Any:
    return type(a)(np.round(a))


_UNARY = {"neg": "(-{0})", "not": "(not {0})", "abs": "abs({0})", "exp": "np.exp({0})",
          "log": "np.log({0})", "sqrt": "np.sqrt({0})", "tanh": "np.tanh({0})",
          "erf": "_erf({0})", "sin": "np.sin({0})", "cos": "np.cos({0})", "tan": "np.tan({0})",
          "asin": "np.arcsin({0})", "acos": "np.arccos({0})", "atan": "np.arctan({0})",
          "sinh": "np.sinh({0})", "cosh": "np.cosh({0})", "asinh": "np.arcsinh({0})",
          "acosh": "np.arccosh({0})", "atanh": "np.arctanh({0})", "floor": "np.floor({0})",
          "ceil": "np.ceil({0})", "round": "_round({0})", "log1p": "np.log1p({0})",
          "expm1": "np.expm1({0})", "isnan": "np.bool_(np.isnan({0}))",
          "isinf": "np.bool_(np.isinf({0}))"}
_BIN = {"add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "lt": "({0} < {1})",
        "le": "({0} <= {1})", "gt": "({0} > {1})", "ge": "({0} >= {1})", "eq": "({0} == {1})",
        "ne": "({0} != {1})", "max": "np.maximum({0}, {1})", "min": "np.minimum({0}, {1})",
        "fmax": "np.fmax({0}, {1})", "fmin": "np.fmin({0}, {1})", "pow": "np.power({0}, {1})",
        "xor": "({0} ^ {1})", "shl": "({0} << {1})", "shr": "({0} >> {1})"}


def _erf(x: Any) -> Any:
    return type(x)(math.erf(float(x)))


class _Py:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}

    def const(self, c: Const) -> str:
        key = f"_c{len(self.consts)}"
        self.consts[key] = c.dtype.np.type(c.value)
        return key

    def e(self, x: Expr) -> str:
        if isinstance(x, Var):
            return _var(x)
        if isinstance(x, Const):
            if x.dtype.name == "int32" and isinstance(x.value, int):
                return f"_I({x.value})"
            return self.const(x)
        if isinstance(x, Load):
            idx = " + ".join(f"int({self.e(i)}) * {s}" for i, s in zip(x.index, x.buf.strides)
                             if s) or "0"
            ref = f"_b_{x.buf.name}[{idx}]"
            if x.mask is not None:
                other = self.e(x.other) if x.other is not None else \
                    self.const(Const(0, x.buf.dtype) if not x.buf.dtype.is_float
                               else Const(0.0, x.buf.dtype))
                return f"({ref} if {self.e(x.mask)} else {other})"
            return ref
        if isinstance(x, Binary):
            a, b = self.e(x.a), self.e(x.b)
            if x.op == "and":
                return f"({a} and {b})" if x.a.dtype.name == "bool" else f"({a} & {b})"
            if x.op == "or":
                return f"({a} or {b})" if x.a.dtype.name == "bool" else f"({a} | {b})"
            if x.op == "div":
                return f"({a} / {b})" if x.dtype.is_float else f"_tdiv({a}, {b})"
            if x.op == "mod":
                return f"np.fmod({a}, {b})" if x.dtype.is_float else f"_tmod({a}, {b})"
            return _BIN[x.op].format(a, b)
        if isinstance(x, Unary):
            return _UNARY[x.op].format(self.e(x.a))
        if isinstance(x, Cast):
            if x.dtype.name == "bool":
                return f"np.bool_({self.e(x.a)} != 0)"
            if x.dtype.is_int and x.a.dtype.is_float:
                return f"_castf({self.e(x.a)}, _T_{x.dtype.name})"
            return f"_cast({self.e(x.a)}, _T_{x.dtype.name})"
        if isinstance(x, Select):
            return f"({self.e(x.a)} if {self.e(x.cond)} else {self.e(x.b)})"
        if isinstance(x, MulAdd):
            return f"({self.e(x.a)} * {self.e(x.b)} + {self.e(x.c)})"
        if isinstance(x, Call):
            return f"_INTR[{x.fn!r}]({', '.join(self.e(a) for a in x.args)})"
        raise TypeError(x)

    def stmts(self, body: Sequence[Stmt], d: int) -> None:
        pad = "    " * d
        n0 = len(self.lines)
        for s in body:
            if isinstance(s, Store):
                idx = " + ".join(f"int({self.e(i)}) * {st}" for i, st in
                                 zip(s.index, s.buf.strides) if st) or "0"
                self.lines.append(f"{pad}_b_{s.buf.name}[{idx}] = {self.e(s.value)}")
            elif isinstance(s, (Decl, Assign)):
                self.lines.append(f"{pad}{_var(s.var)} = "
                                  f"{self.e(s.init if isinstance(s, Decl) else s.value)}")
            elif isinstance(s, Loop):
                self.lines.append(f"{pad}for {_var(s.var)} in map(_I, range("
                                  f"int({self.e(s.start)}), int({self.e(s.stop)}), {s.step})):")
                self.stmts(s.body, d + 1)
            elif isinstance(s, If):
                self.lines.append(f"{pad}if {self.e(s.cond)}:")
                self.stmts(s.then, d + 1)
                if s.orelse:
                    self.lines.append(f"{pad}else:")
                    self.stmts(s.orelse, d + 1)
            elif isinstance(s, Comment):
                pass
        if len(self.lines) == n0:
            self.lines.append(f"{pad}pass")


def _cast(v: Any, t: type) -> Any:
    with np.errstate(all="ignore"):
        return np.array(v).astype(t)[()]


def _castf(v: Any, t: type) -> Any:
    with np.errstate(all="ignore"):
        return np.array(np.trunc(v)).astype(t)[()]


def compile_kernel(k: Kernel) -> Callable[..., None]:
    """A Python function ``f(**flat_arrays)`` running ``k``; each parameter (by buffer name) is a
    flat numpy array of the buffer's dtype starting at its first element."""
    py = _Py()
    names = [b.name for b in k.params + k.locals]
    py.lines.append(f"def {k.name}({', '.join('_b_' + n for n in names)}):")
    py.stmts(k.body, 1)
    ns: dict[str, Any] = {"np": np, "_I": np.int32, "_tdiv": _tdiv, "_tmod": _tmod,
                          "_round": _round, "_erf": _erf, "_cast": _cast, "_castf": _castf,
                          "_INTR": INTRINSICS, **py.consts}
    for dt in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
               "uint16", "uint32", "uint64", "bool"):
        ns[f"_T_{dt}"] = np.dtype(dt).type
    exec(compile("\n".join(py.lines), f"<loop-ir {k.name}>", "exec"), ns)
    return ns[k.name]


def _view(storage: np.ndarray, b: Buffer, byte_offset: int) -> np.ndarray:
    flat = storage.reshape(-1).view(np.uint8)
    n = b.nbytes
    return flat[byte_offset: byte_offset + n].view(b.dtype.np)


def run_kernel(k: Kernel, arrays: Mapping[str, np.ndarray]) -> None:
    """Run ``k`` on ``arrays`` (buffer name -> flat storage of that buffer, written in place).
    Locals are allocated here."""
    fn = compile_kernel(k)
    args = []
    for b in k.params + k.locals:
        if b.name in arrays:
            args.append(arrays[b.name])
        elif b.space == "weight" and b.data is not None:
            args.append(np.ascontiguousarray(b.data).reshape(-1))
        else:
            args.append(np.zeros(max(b.extent, 1), b.dtype.np))
    with np.errstate(all="ignore"):
        fn(*args)


def run_program(p: Program, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run the whole program on graph inputs (in order); returns the graph outputs."""
    arena = np.zeros(max(p.arena_size, 1), np.uint8)
    ins = [np.ascontiguousarray(np.asarray(x, b.dtype.np)).reshape(-1).copy()
           for x, b in zip(inputs, p.inputs)]
    outs = [np.zeros(max(b.extent, 1), b.dtype.np) for b in p.outputs]
    for k in p.kernels:
        arrays: dict[str, np.ndarray] = {}
        for b in k.params:
            if b.space == "arena":
                arrays[b.name] = _view(arena, b, b.offset)
            elif b.space == "input":
                arrays[b.name] = _view(ins[b.index], b, b.offset)
            elif b.space == "output":
                arrays[b.name] = _view(outs[b.index], b, b.offset)
        run_kernel(k, arrays)
    return [o[: b.extent].reshape(b.shape) for o, b in zip(outs, p.outputs)]
