"""verify: the loop IR's checker. It proves every load and store inside its buffer and checks
types, so a lowering or loop pass cannot generate an out-of-bounds access or an arena overflow.

Bounds are proved by interval arithmetic over the loop ranges (Cousot & Cousot's interval
domain): a loop ``for v in a..b`` gives ``v`` the interval ``[min a, max b - 1]``; every index
expression's interval must lie inside ``[0, shape[d])``. Guards refine intervals: inside
``if c``, the true arm of ``select(c, …)`` and a load's ``mask``, each conjunct of ``c`` of the
form ``e < k``, ``e <= k``, ``e >= k``, ``e > k`` (``k`` any expression with a known interval)
bounds every occurrence of the *same* expression ``e``. So a padded convolution written as
``x[iy] if 0 <= iy && iy < H`` proves, and a lowering that forgets the guard does not. A short
loop (at most :data:`SPLIT_MAX` iterations) whose variable bounds an inner loop (a convolution's
per-tap position ranges) is proved once per value, so those ranges need no guard. Index
arithmetic is checked to stay inside :data:`INDEX`'s range, and every buffer's span inside its
storage (the arena, its weight data, its graph input/output).
"""

from __future__ import annotations

import math
from typing import Sequence

from onnxcc.errors import VerifyError

from .loops import (BOOL, COMPARE, I32, I64, INDEX, Assign, Binary, Buffer, Call, Cast, Comment,
                    Const, Decl, Expr, If, Kernel, Load, Loop, MulAdd, Program, Select, Stmt,
                    Store, Unary, Var, expr_text, children, uses_var, walk_stmts)

Interval = tuple[float, float]
# intrinsic names the renderers and the interpreter implement
KNOWN_CALLS: set[str] = {"requantize", "smlad", "sxtb16", "smladx", "pack4", "ldm", "stpair",
                         "requantize_hi", "sat_i8", "sat_u8", "requantize64", "smmla",
                         "round_i32", "pkhbt", "pkhtb", "srdhm", "quantize_i8",
                         "quantize_u8", "quantize_i16", "quantize_u16"}
INDEX_MIN, INDEX_MAX = -(2**31), 2**31 - 1
SPLIT_MAX = 16    # loops of at most this many iterations are proved value by value when needed


class _Scope:
    def __init__(self, vars: dict[Var, Interval], facts: dict[Expr, Interval],
                 locals_: set[Var]) -> None:
        self.vars, self.facts, self.locals = vars, facts, locals_

    def child(self) -> _Scope:
        return _Scope(dict(self.vars), dict(self.facts), set(self.locals))


def _interval(e: Expr, sc: _Scope, where: str) -> Interval:
    """Interval of an integer expression (floats and unknowns give (-inf, inf))."""
    if e in sc.facts and not isinstance(e, Const):
        lo, hi = sc.facts[e]
        blo, bhi = _interval_raw(e, sc, where)
        return max(lo, blo), min(hi, bhi)
    return _interval_raw(e, sc, where)


def _interval_raw(e: Expr, sc: _Scope, where: str) -> Interval:
    inf = math.inf
    if isinstance(e, Const):
        v = e.value
        return (v, v) if isinstance(v, (int, bool)) else (-inf, inf)
    if isinstance(e, Var):
        if e in sc.vars:
            return sc.vars[e]
        if e in sc.locals:   # a local holds a value of its type
            return _type_range(e.dtype)
        raise VerifyError(f"{where}: variable {e.name!r} used outside its loop or before its Decl")
    if isinstance(e, Binary):
        a, b = _interval(e.a, sc, where), _interval(e.b, sc, where)
        if e.op == "add":
            return a[0] + b[0], a[1] + b[1]
        if e.op == "sub":
            return a[0] - b[1], a[1] - b[0]
        if e.op == "mul":
            ps = [x * y for x in a for y in b if not (math.isinf(x) or math.isinf(y))]
            if len(ps) < 4:
                return (-inf, inf)
            return min(ps), max(ps)
        if e.op == "div" and b[0] == b[1] and b[0] > 0 and e.dtype.is_int:
            k = b[0]
            return (math.trunc(a[0] / k) if not math.isinf(a[0]) else a[0],
                    math.trunc(a[1] / k) if not math.isinf(a[1]) else a[1])
        if e.op == "mod" and b[0] == b[1] and b[0] > 0 and e.dtype.is_int:
            k = b[0]
            return (0 if a[0] >= 0 else -(k - 1), k - 1 if a[1] >= 0 else 0)
        if e.op == "max":
            return max(a[0], b[0]), max(a[1], b[1])
        if e.op == "min":
            return min(a[0], b[0]), min(a[1], b[1])
        if e.op in COMPARE or e.op in ("and", "or"):
            return (0, 1)
        return (-inf, inf)
    if isinstance(e, Select):
        t = sc.child()
        _refine(e.cond, t)
        a, b = _interval(e.a, t, where), _interval(e.b, sc, where)
        return min(a[0], b[0]), max(a[1], b[1])
    if isinstance(e, Cast) and e.dtype.is_int and e.a.dtype.is_int:
        return _interval(e.a, sc, where)
    if isinstance(e, Load):   # data read from memory: anything its type holds
        return _type_range(e.dtype)
    return (-inf, inf)


def _type_range(d) -> Interval:
    """The values a scalar of dtype ``d`` can hold, for types narrower than 32 bits (wider
    integers, floats and vectors: unbounded, so that int32 data arithmetic, which wraps by the
    loop IR's semantics, is never taken for index arithmetic that might overflow)."""
    if d.lanes == 1 and d.name == "bool":
        return (0, 1)
    if d.lanes == 1 and d.is_int and d.bits < 32:
        import numpy as np

        info = np.iinfo(d.np)
        return (int(info.min), int(info.max))
    return (-math.inf, math.inf)


def _conjuncts(c: Expr) -> list[Expr]:
    if isinstance(c, Binary) and c.op == "and":
        return _conjuncts(c.a) + _conjuncts(c.b)
    return [c]


def _refine(cond: Expr, sc: _Scope) -> None:
    """Record the bounds that ``cond`` (a conjunction) puts on sub-expressions."""
    for c in _conjuncts(cond):
        if not (isinstance(c, Binary) and c.op in ("lt", "le", "gt", "ge")):
            continue
        try:
            ka = _interval(c.b, sc, "")
            kb = _interval(c.a, sc, "")
        except VerifyError:
            continue
        # e < k  =>  e <= max(k) - 1 ;  e >= k  =>  e >= min(k)
        if c.op in ("lt", "le"):
            e, hi = c.a, ka[1] - (1 if c.op == "lt" else 0)
            lo0, hi0 = sc.facts.get(e, (-math.inf, math.inf))
            sc.facts[e] = (lo0, min(hi0, hi))
            e2, lo = c.b, kb[0] + (1 if c.op == "lt" else 0)      # k > e  => k >= min(e)+1
            lo1, hi1 = sc.facts.get(e2, (-math.inf, math.inf))
            sc.facts[e2] = (max(lo1, lo), hi1)
        else:
            e, lo = c.a, ka[0] + (1 if c.op == "gt" else 0)
            lo0, hi0 = sc.facts.get(e, (-math.inf, math.inf))
            sc.facts[e] = (max(lo0, lo), hi0)
            e2, hi = c.b, kb[1] - (1 if c.op == "gt" else 0)
            lo1, hi1 = sc.facts.get(e2, (-math.inf, math.inf))
            sc.facts[e2] = (lo1, min(hi1, hi))


def _check_access(buf: Buffer, index: Sequence[Expr], sc: _Scope, where: str) -> None:
    if len(index) != len(buf.shape):
        raise VerifyError(f"{where}: {buf.name} has {len(buf.shape)} dims, indexed with {len(index)}")
    for d, (i, n) in enumerate(zip(index, buf.shape)):
        if not i.dtype.is_int:
            raise VerifyError(f"{where}: index {d} of {buf.name} is {i.dtype}, not an integer")
        lo, hi = _interval(i, sc, where)
        if lo < 0 or hi > n - 1:
            raise VerifyError(
                f"{where}: cannot prove {buf.name}[..{expr_text(i)}..] inside dim {d} of extent {n}"
                f" (index range [{lo}, {hi}])")


def _check_expr(e: Expr, sc: _Scope, where: str) -> None:
    if isinstance(e, Load):
        inner = sc
        if e.mask is not None:
            _check_expr(e.mask, sc, where)
            if e.mask.dtype.scalar != BOOL:
                raise VerifyError(f"{where}: mask of a load of {e.buf.name} is not bool")
            if e.other is not None:
                _check_expr(e.other, sc, where)
                if e.other.dtype != e.buf.dtype:
                    raise VerifyError(f"{where}: masked load of {e.buf.name}: other is {e.other.dtype}")
            inner = sc.child()
            _refine(e.mask, inner)
        for i in e.index:
            _check_expr(i, inner, where)
        _check_access(e.buf, e.index, inner, where)
        return
    if isinstance(e, Select):
        _check_expr(e.cond, sc, where)
        if e.cond.dtype.scalar != BOOL:
            raise VerifyError(f"{where}: select condition is {e.cond.dtype}, not bool")
        t = sc.child()
        _refine(e.cond, t)
        _check_expr(e.a, t, where)
        _check_expr(e.b, sc, where)
        if e.a.dtype != e.b.dtype:
            raise VerifyError(f"{where}: select arms differ: {e.a.dtype} vs {e.b.dtype} in {expr_text(e)}")
        return
    for c in children(e):
        _check_expr(c, sc, where)
    if isinstance(e, Var):
        _interval(e, sc, where)
    elif isinstance(e, Binary):
        if e.a.dtype != e.b.dtype:
            raise VerifyError(f"{where}: {e.op} of {e.a.dtype} and {e.b.dtype} in {expr_text(e)}")
        if e.op in ("and", "or") and e.a.dtype.scalar != BOOL and not e.a.dtype.is_int:
            raise VerifyError(f"{where}: {e.op} of {e.a.dtype}")
        if e.dtype == INDEX and e.op in ("add", "sub", "mul"):
            lo, hi = _interval(e, sc, where)
            if lo < INDEX_MIN or hi > INDEX_MAX:
                if not (math.isinf(lo) or math.isinf(hi)):
                    raise VerifyError(f"{where}: index arithmetic {expr_text(e)} may overflow int32")
    elif isinstance(e, MulAdd):
        if not (e.a.dtype == e.b.dtype == e.c.dtype):
            raise VerifyError(f"{where}: muladd of {e.a.dtype}, {e.b.dtype}, {e.c.dtype}")
    elif isinstance(e, Unary):
        if e.op not in ("neg", "not", "abs", "isnan", "isinf") and not e.a.dtype.is_float:
            raise VerifyError(f"{where}: {e.op} of {e.a.dtype} (floats only)")
    elif isinstance(e, Call):
        if e.fn not in KNOWN_CALLS:
            raise VerifyError(f"{where}: unknown intrinsic {e.fn!r}")
        if e.fn in ("requantize", "requantize_hi") and (len(e.args) != 3 or e.dtype != I32
                                     or any(a.dtype != I32 for a in e.args)):
            raise VerifyError(f"{where}: requantize takes and returns int32")
        if e.fn == "requantize64" and (len(e.args) != 3 or e.dtype != I32
                                       or e.args[0].dtype != I64
                                       or any(a.dtype != I32 for a in e.args[1:])):
            raise VerifyError(f"{where}: requantize64 takes int64, int32, int32 and returns "
                              "int32")
        if e.fn in ("sat_i8", "sat_u8") and (len(e.args) != 1 or e.dtype != I32
                                             or e.args[0].dtype != I32):
            raise VerifyError(f"{where}: {e.fn} takes and returns int32")
        if e.fn == "pack4" and (len(e.args) != 4 or e.dtype != I32
                                or any(a.dtype.name not in ("int8", "uint8") for a in e.args)):
            raise VerifyError(f"{where}: pack4 takes four int8 or uint8 and returns int32")
        if e.fn == "round_i32" and (len(e.args) != 1 or e.dtype != I32
                                    or e.args[0].dtype.name != "float32"):
            raise VerifyError(f"{where}: round_i32 takes a float32 and returns int32")
        if e.fn.startswith("quantize_") and (
                len(e.args) != 3 or e.dtype != I32 or e.args[0].dtype.name != "float32"
                or e.args[1].dtype.name != "float32" or e.args[2].dtype != I32):
            raise VerifyError(f"{where}: {e.fn} takes two float32 (x, scale) and an int32 (zero "
                              "point) and returns int32")
        if e.fn == "smmla" and (len(e.args) != 3 or e.dtype != I32
                                or any(a.dtype != I32 for a in e.args)):
            raise VerifyError(f"{where}: smmla takes and returns int32")
        if e.fn == "srdhm" and (len(e.args) != 2 or e.dtype != I32
                                or any(a.dtype != I32 for a in e.args)):
            raise VerifyError(f"{where}: srdhm takes two int32 and returns int32")
        if e.fn in ("smlad", "smladx") and (len(e.args) != 3 or e.dtype != I32
                                or any(a.dtype != I32 for a in e.args)):
            raise VerifyError(f"{where}: {e.fn} takes and returns int32 (words of int16 pairs)")
        if e.fn == "sxtb16" and (len(e.args) != 2 or e.dtype != I32 or e.args[0].dtype != I32
                                 or not (isinstance(e.args[1], Const)
                                         and e.args[1].value in (0, 8))):
            raise VerifyError(f"{where}: sxtb16 takes an int32 and a constant rotation 0 or 8")
        if e.fn in ("pkhbt", "pkhtb") and (len(e.args) != 2 or e.dtype != I32
                                or any(a.dtype != I32 for a in e.args)):
            raise VerifyError(f"{where}: {e.fn} takes and returns int32")
        if e.fn == "stpair" and (len(e.args) != 1 or e.dtype != I32 or e.args[0].dtype != I32):
            raise VerifyError(f"{where}: stpair takes and returns int32")
        if e.fn == "ldm" and (len(e.args) not in (1, 2) or e.dtype != I32
                              or not isinstance(e.args[0], Load) or e.args[0].dtype != I32
                              or e.args[0].mask is not None
                              or (len(e.args) == 2 and not (isinstance(e.args[1], Const)
                                                            and e.args[1].value in (0, 1)))):
            raise VerifyError(f"{where}: ldm takes one unmasked int32 load (and a constant "
                              "register bank 0 or 1)")


def _check_body(body: Sequence[Stmt], sc: _Scope, where: str) -> None:
    for s in body:
        if isinstance(s, Store):
            for i in s.index:
                _check_expr(i, sc, where)
            _check_expr(s.value, sc, where)
            _check_access(s.buf, s.index, sc, where)
            if s.value.dtype != s.buf.dtype:
                raise VerifyError(f"{where}: storing {s.value.dtype} into {s.buf.name}:{s.buf.dtype}")
            if s.buf.space in ("weight", "input"):
                raise VerifyError(f"{where}: store into read-only {s.buf.space} buffer {s.buf.name}")
        elif isinstance(s, Decl):
            _check_expr(s.init, sc, where)
            if s.init.dtype != s.var.dtype:
                raise VerifyError(f"{where}: {s.var.name}:{s.var.dtype} initialised with {s.init.dtype}")
            if s.var in sc.vars:
                raise VerifyError(f"{where}: {s.var.name} declared twice")
            sc.locals.add(s.var)
        elif isinstance(s, Assign):
            if s.var not in sc.locals:
                raise VerifyError(f"{where}: assignment to undeclared {s.var.name}")
            _check_expr(s.value, sc, where)
            if s.value.dtype != s.var.dtype:
                raise VerifyError(f"{where}: {s.var.name}:{s.var.dtype} assigned {s.value.dtype}")
        elif isinstance(s, Loop):
            _check_expr(s.start, sc, where)
            _check_expr(s.stop, sc, where)
            if s.var in sc.vars or s.var in sc.locals:
                raise VerifyError(f"{where}: loop variable {s.var.name} shadows another")
            if s.step < 1:
                raise VerifyError(f"{where}: loop {s.var.name} has step {s.step}")
            lo, _ = _interval(s.start, sc, where)
            _, hi = _interval(s.stop, sc, where)
            if math.isinf(lo) or math.isinf(hi):
                raise VerifyError(f"{where}: loop {s.var.name} has no bounded range")
            if hi <= lo:      # the loop never runs (e.g. over the other taps of a 1-tap axis)
                continue
            if (isinstance(s.start, Const) and isinstance(s.stop, Const)
                    and hi - lo <= SPLIT_MAX and _bounds_use(s.body, s.var)):
                # case split: inner loop bounds depend on this short loop's variable (a
                # convolution's per-tap ranges), so prove the body once per value
                for v in range(int(lo), int(hi), s.step):
                    inner = sc.child()
                    inner.vars[s.var] = (v, v)
                    _check_body(s.body, inner, where)
                continue
            inner = sc.child()
            inner.vars[s.var] = (lo, hi - 1)
            _check_body(s.body, inner, where)
        elif isinstance(s, If):
            _check_expr(s.cond, sc, where)
            t = sc.child()
            _refine(s.cond, t)
            _check_body(s.then, t, where)
            _check_body(s.orelse, sc.child(), where)
        elif not isinstance(s, Comment):
            raise VerifyError(f"{where}: unknown statement {type(s).__name__}")


def _bounds_use(body: Sequence[Stmt], v: Var) -> bool:
    """True when some loop nested in ``body`` has a bound that reads ``v``."""
    for s in body:
        if isinstance(s, Loop):
            if uses_var(s.start, v) or uses_var(s.stop, v) or _bounds_use(s.body, v):
                return True
        elif isinstance(s, If) and (_bounds_use(s.then, v) or _bounds_use(s.orelse, v)):
            return True
    return False


def storage_bytes(b: Buffer, program: Program | None) -> int | None:
    """Bytes available from ``b``'s start to the end of its storage, or None when unknown."""
    if program is None or b.space == "weight":
        return None
    if b.space == "arena":
        return program.arena_size - b.offset
    if b.space in ("input", "output"):
        io = (program.inputs if b.space == "input" else program.outputs)
        if b.index >= len(io):
            raise VerifyError(f"buffer {b.name}: no graph {b.space} {b.index}")
        return io[b.index].nbytes - b.offset
    return None


def verify_kernel(k: Kernel, program: Program | None = None) -> None:
    """Raise :class:`VerifyError` unless every access of ``k`` is proved in bounds, types agree,
    variables are in scope, and each buffer's span fits its storage (arena size, input/output
    bytes, weight data)."""
    where = f"kernel {k.name}"
    for b in k.params + k.locals:
        if b.space == "weight" and b.data is not None:
            if b.data.dtype != b.dtype.np:
                raise VerifyError(f"{where}: weight {b.name} holds {b.data.dtype}, declared {b.dtype}")
            if b.extent > b.data.size and b.data.size > 0:
                raise VerifyError(f"{where}: weight {b.name} spans {b.extent} elements, has {b.data.size}")
        avail = storage_bytes(b, program)
        if avail is not None and b.space != "weight" and (b.offset < 0 or b.nbytes > avail):
            raise VerifyError(f"{where}: buffer {b.name} ({b.nbytes} bytes at {b.place()}) "
                              f"overruns its storage ({avail} bytes left)")
    for b in k.outputs:
        if b.space in ("weight", "input"):
            raise VerifyError(f"{where}: output {b.name} lives in read-only {b.space}")
    names = {b.name for b in k.params + k.locals}
    for s in walk_stmts(k.body):   # a local named like a buffer would shadow it in C and LLVM
        if isinstance(s, (Decl, Loop)) and not isinstance(s.var, Var):
            raise VerifyError(f"{where}: {'loop' if isinstance(s, Loop) else 'declaration'} over "
                              f"{s.var}, which is not a variable")
        if isinstance(s, (Decl, Loop)) and s.var.name in names:
            raise VerifyError(f"{where}: {'loop variable' if isinstance(s, Loop) else 'local'} "
                              f"{s.var.name} has the name of a buffer of the kernel")
    _check_body(k.body, _Scope({}, {}, set()), where)


def verify(p: Program) -> None:
    """Verify every kernel of ``p`` against its placement (see :func:`verify_kernel`)."""
    for b in p.inputs + p.outputs:
        if b.offset:
            raise VerifyError(f"program {p.name}: I/O buffer {b.name} must start at offset 0")
    for k in p.kernels:
        verify_kernel(k, p)
