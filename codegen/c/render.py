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

from typing import Sequence

from onnxcc.codegen.loops import (Assign, Binary, Buffer, Call, Cast, Comment, Const, Decl,
                                  DType, Expr, If, INDEX, Kernel, Load, Loop, MulAdd, Select,
                                  Stmt, Store, Unary, Var, children, substitute_stmts)

CTYPE = {"float32": "float", "float64": "double", "int8": "int8_t", "uint8": "uint8_t",
         "int16": "int16_t", "uint16": "uint16_t", "int32": "int32_t", "uint32": "uint32_t",
         "int64": "int64_t", "uint64": "uint64_t", "bool": "uint8_t"}
UTYPE = {"int8": "uint8_t", "int16": "uint16_t", "int32": "uint32_t", "int64": "uint64_t",
         "uint8": "uint8_t", "uint16": "uint16_t", "uint32": "uint32_t", "uint64": "uint64_t"}
MATH = {"exp", "log", "sqrt", "tanh", "erf", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
        "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "log1p", "expm1"}
_SYM = {"add": "+", "sub": "-", "mul": "*", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
        "eq": "==", "ne": "!=", "xor": "^", "shl": "<<", "shr": ">>"}
FULL_UNROLL_MAX = 16     # constant-trip loops marked unrolled are copied out up to this count


def ctype(d: DType) -> str:
    """The C type of one element of ``d`` (vectors are rendered lane by lane, never as a type)."""
    return CTYPE[d.name]


def c_literal(value: object, d: DType) -> str:
    """A C literal of ``d`` that round-trips exactly (NaN, infinities, INT64_MIN included)."""
    from onnxcc.codegen.c.lower import c_literal as lit

    if d.name == "bool":
        return "1" if value else "0"
    return lit(value, ctype(d))


def _helper_max(ct: str, name: str, cmp: str) -> str:
    return (f"static inline {ct} {name}({ct} a, {ct} b) {{ return (a != a || a {cmp} b) ? a : b; }}")


class CContext:
    """Helper functions the rendered kernels need, by name, emitted once before them."""

    def __init__(self) -> None:
        self.helpers: dict[str, str] = {}

    def need(self, name: str, text: str) -> str:
        self.helpers.setdefault(name, text)
        return name

    def text(self) -> str:
        return "\n".join(self.helpers[k] for k in sorted(self.helpers))


def _has_load(e: Expr) -> bool:
    return isinstance(e, Load) or any(_has_load(c) for c in children(e))


class _Renderer:
    def __init__(self, ctx: CContext) -> None:
        self.ctx = ctx

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
            return f"{x.fn}({', '.join(self.e(a) for a in x.args)})"
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
        a, b = self.e(x.a), self.e(x.b)
        ct = ctype(d)
        if x.op in ("add", "sub", "mul") and d.is_int:
            if d == INDEX and not (_has_load(x.a) or _has_load(x.b)):
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
            return f"{x.op}{'f' if d.name == 'float32' else ''}({a}, {b})"
        if x.op == "pow":
            return f"pow{'f' if d.name == 'float32' else ''}({a}, {b})"
        if x.op == "div":
            if d.is_float:
                return f"({a} / {b})"
            name = f"onnxcc_div_{d.name}"
            self.ctx.need(name, f"static inline {ct} {name}({ct} a, {ct} b) {{ return b == 0 ? 0 : ({ct})(a / b); }}")
            return f"{name}({a}, {b})"
        if x.op == "mod":
            if d.is_float:
                return f"fmod{'f' if d.name == 'float32' else ''}({a}, {b})"
            name = f"onnxcc_mod_{d.name}"
            self.ctx.need(name, f"static inline {ct} {name}({ct} a, {ct} b) {{ return b == 0 ? 0 : ({ct})(a % b); }}")
            return f"{name}({a}, {b})"
        raise ValueError(f"C renderer: no binary op {x.op}")

    def unary(self, x: Unary) -> str:
        d = x.a.dtype
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
            return f"fabs{sfx}({a})" if d.is_float else f"({a} < 0 ? ({ctype(d)})-{a} : {a})"
        if x.op in MATH:
            return f"{x.op}{sfx}({a})"
        if x.op == "round":
            name = f"onnxcc_roundeven{sfx or 'd'}"
            ct = ctype(d)
            # round half to even without relying on the rounding mode: nearbyint would follow
            # fesetround, and roundeven is C23.
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
        if x.dtype.name == "bool":
            return f"(uint8_t)({a} != 0)"
        return f"({ctype(x.dtype)})({a})"

    # -- statements ---------------------------------------------------------------------------
    def stmts(self, body: Sequence[Stmt], d: int, out: list[str]) -> None:
        pad = "    " * d
        for s in body:
            if isinstance(s, Store):
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

                out.append(f"{pad}/* {comment_text(s.text, 120)} */")

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
        inc = f"++{v}" if s.step == 1 else f"{v} += {s.step}"
        out.append(f"{pad}for ({ctype(s.var.dtype)} {v} = {self.e(s.start)}; {v} < "
                   f"{self.e(s.stop)}; {inc}) {{")
        self.stmts(s.body, d + 1, out)
        out.append(f"{pad}}}")


def render_kernel(k: Kernel, ctx: CContext, fn: str | None = None) -> tuple[str, str]:
    """``(signature, body)`` of ``k`` as a C function named ``fn`` (default ``k.name``): outputs
    first as ``T *restrict``, inputs as ``const T *restrict`` (no ``restrict`` for in-place
    kernels), each pointing at the buffer's first element; locals become arrays on the stack."""
    r = "" if k.inplace else "restrict "
    params = [f"{ctype(b.dtype)} *{r}{b.name}" for b in k.outputs]
    params += [f"const {ctype(b.dtype)} *{r}{b.name}" for b in k.inputs]
    lines = [f"{ctype(b.dtype)} {b.name}[{max(b.extent, 1)}];" for b in k.locals]
    _Renderer(ctx).stmts(k.body, 0, lines)
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
    return f"w{k}"


def render_program(p, fn: str = "run") -> str:
    """A self-contained C99 file for Program ``p``: weights as ``static const`` arrays, one
    function per kernel, and ``int fn(unsigned char *arena, const T *input0, …, T *output0, …)``
    calling them in order (returns 0). For tests and tools; the library emitter
    (``onnxcc.codegen.c.emit``) adds the public API around the same kernels."""
    from onnxcc.codegen.loops import Program

    assert isinstance(p, Program)
    ctx = CContext()
    wsym: dict[int, str] = {}
    lines = ["#include <math.h>", "#include <stdint.h>", "#include <stddef.h>", ""]
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
                     + [f"int {fn}({', '.join(params)})", "{", "    (void)arena;"] + calls
                     + ["    return 0;", "}", ""])
