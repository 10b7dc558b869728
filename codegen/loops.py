"""The loop IR: buffers, loops, statements and expressions that every back end renders.

One level below the graph IR (as TVM's TensorIR sits below Relax, or tinygrad's UOps below its
graph): a :class:`Kernel` per (fused) graph node says *how* the node is computed — loops with a
kind, typed buffers with strides and a place to live, scalar statements with exact dtype
semantics — and a :class:`Program` is the schedule's ordered kernels with every buffer placed
(arena offset, weight, graph input/output). Lowering (``onnxcc.codegen.lower``) builds it once per
op family, target-neutral; loop passes rewrite it; renderers (C, LLVM, HLS) print it and never
lower. ``verify`` (``onnxcc.codegen.verify``) proves every access in bounds; ``interpret``
(``onnxcc.codegen.interpret``) runs it with numpy.

Plain frozen dataclasses: expressions compare and hash structurally (so a mask ``0 <= e < n``
is matched against an index ``e`` by equality), buffers by identity.

Semantics (what every renderer must reproduce):
- ``add sub mul`` wrap around on integers (two's complement, as LLVM and numpy do; the C renderer
  computes signed wrap-around in the unsigned type); on floats IEEE-754 round-to-nearest.
- ``div`` and ``mod`` on integers truncate toward zero (C99 6.5.5); a zero divisor gives 0.
  On floats, ``div`` is IEEE division and ``mod`` is C's ``fmod``.
- ``max``/``min`` on floats propagate NaN (numpy.maximum); ``fmax``/``fmin`` return the number.
- ``Cast`` float -> integer truncates toward zero (C99 6.3.1.4; out-of-range is undefined, as in
  C), integer -> float rounds to nearest, float64 -> float32 rounds to nearest, to ``bool`` is
  ``!= 0``; ``round`` is round-half-to-even (IEEE ``roundeven``, ONNX Round).
- ``float16`` (IEEE binary16) is a storage type: a kernel only loads, stores, selects and casts
  it (the graph pass ``float16_compute`` makes every other op compute in float32). Casts to it
  round to nearest even once, from float32 or float64 (subnormals kept, overflow to infinity, NaN
  stays NaN); integers convert through float32, which is exact below float16's overflow.
- ``MulAdd(a, b, c)`` is ``a * b + c`` where a renderer may contract to one fused rounding.
- ``Load(mask=m, other=o)`` reads only when ``m`` holds, else yields ``o``; ``Select`` evaluates
  only the chosen arm, so a guarded load inside it is never out of bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np

# ---- types ------------------------------------------------------------------------------------
SHORT = {"float16": "f16", "float32": "f32", "float64": "f64", "int8": "i8", "int16": "i16",
         "int32": "i32", "int64": "i64", "uint8": "u8", "uint16": "u16", "uint32": "u32",
         "uint64": "u64", "bool": "bool"}


@dataclass(frozen=True)
class DType:
    """An element type: a numpy scalar name (``float32``, ``int8``, ``bool``…) and a lane count
    (``lanes > 1`` is a vector of that many elements)."""

    name: str
    lanes: int = 1

    def __post_init__(self) -> None:
        if self.name not in SHORT:
            raise ValueError(f"no loop-IR dtype {self.name!r}")

    @property
    def np(self) -> np.dtype:
        return np.dtype(self.name)

    @property
    def is_float(self) -> bool:
        return self.name in ("float16", "float32", "float64")

    @property
    def is_int(self) -> bool:
        return not self.is_float and self.name != "bool"

    @property
    def signed(self) -> bool:
        return self.name.startswith("int") or self.is_float

    @property
    def bits(self) -> int:
        return 8 if self.name == "bool" else self.np.itemsize * 8

    @property
    def scalar(self) -> DType:
        return DType(self.name) if self.lanes > 1 else self

    def vec(self, lanes: int) -> DType:
        return DType(self.name, lanes)

    def __str__(self) -> str:
        return SHORT[self.name] + (f"x{self.lanes}" if self.lanes > 1 else "")

    @staticmethod
    def of(x: Any) -> DType:
        """The DType of a numpy dtype, a dtype name or a DType."""
        return x if isinstance(x, DType) else DType(np.dtype(x).name)


F16, F32, F64, I32, I64, BOOL = DType("float16"), DType("float32"), DType("float64"), \
    DType("int32"), DType("int64"), DType("bool")
INDEX = I32   # loop variables and index arithmetic; verify proves every index value fits

SPACES = ("arena", "weight", "input", "output", "local", "register", "stream")


@dataclass(eq=False)
class Buffer:
    """A typed n-d view of memory.

    ``shape`` and ``strides`` are in elements (row-major by default; a stride of 0 broadcasts, so
    a splat constant is one element). ``space`` says where it lives: ``arena`` (``offset`` bytes
    into the caller's arena), ``weight`` (``data`` holds the constant), ``input``/``output``
    (graph input/output ``index``, ``offset`` bytes into it), ``local``/``register`` (a kernel's
    own small array) or ``stream`` (a FIFO, for HLS). ``value`` is the graph value it holds.
    Compared and hashed by identity.
    """

    name: str
    dtype: DType
    shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None
    space: str = "arena"
    offset: int = 0
    index: int = 0
    data: np.ndarray | None = None
    value: str = ""

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        if self.strides is None:
            self.strides = contiguous_strides(self.shape)
        self.strides = tuple(int(s) for s in self.strides)
        if self.space not in SPACES:
            raise ValueError(f"buffer {self.name}: unknown space {self.space!r}")
        if len(self.strides) != len(self.shape):
            raise ValueError(f"buffer {self.name}: {len(self.shape)} dims, {len(self.strides)} strides")

    @property
    def extent(self) -> int:
        """Elements spanned from the first to one past the last element (0 when empty)."""
        if any(d == 0 for d in self.shape):
            return 0
        return 1 + sum((d - 1) * s for d, s in zip(self.shape, self.strides))

    @property
    def nbytes(self) -> int:
        """Bytes spanned (``extent`` elements)."""
        return self.extent * self.dtype.np.itemsize

    def __getitem__(self, idx: Any) -> Load:
        return Load(self, tuple(as_expr(i) for i in (idx if isinstance(idx, tuple) else (idx,))))

    def place(self) -> str:
        """Where it lives, as the text form shows it: ``@arena+64``, ``@input0``, ``@weight``."""
        if self.space == "arena":
            return f"@arena+{self.offset}"
        if self.space in ("input", "output"):
            return f"@{self.space}{self.index}" + (f"+{self.offset}" if self.offset else "")
        return f"@{self.space}"

    def decl(self) -> str:
        st = "" if self.strides == contiguous_strides(self.shape) else \
            "{" + ",".join(map(str, self.strides)) + "}"
        return f"{self.name}:{self.dtype}[{','.join(map(str, self.shape))}]{st} {self.place()}"


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major element strides of ``shape``."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= max(int(d), 1)
    return tuple(reversed(out))


# ---- expressions ------------------------------------------------------------------------------
class Expr:
    """Base of expressions; Python operators build them (``a + 1``, ``a * b``, ``a < n``)."""

    dtype: DType

    def _b(self, op: str, other: Any, swap: bool = False) -> Binary:
        o = as_expr(other, self.dtype)
        return Binary(op, o, self) if swap else Binary(op, self, o)

    def __add__(self, o: Any) -> Expr: return self._b("add", o)
    def __radd__(self, o: Any) -> Expr: return self._b("add", o, True)
    def __sub__(self, o: Any) -> Expr: return self._b("sub", o)
    def __rsub__(self, o: Any) -> Expr: return self._b("sub", o, True)
    def __mul__(self, o: Any) -> Expr: return self._b("mul", o)
    def __rmul__(self, o: Any) -> Expr: return self._b("mul", o, True)
    def __truediv__(self, o: Any) -> Expr: return self._b("div", o)
    def __floordiv__(self, o: Any) -> Expr: return self._b("div", o)
    def __mod__(self, o: Any) -> Expr: return self._b("mod", o)
    def __neg__(self) -> Expr: return Unary("neg", self)
    def __lt__(self, o: Any) -> Expr: return self._b("lt", o)  # type: ignore[override]
    def __le__(self, o: Any) -> Expr: return self._b("le", o)  # type: ignore[override]
    def __gt__(self, o: Any) -> Expr: return self._b("gt", o)  # type: ignore[override]
    def __ge__(self, o: Any) -> Expr: return self._b("ge", o)  # type: ignore[override]
    def __and__(self, o: Any) -> Expr: return self._b("and", o)
    def __or__(self, o: Any) -> Expr: return self._b("or", o)


@dataclass(frozen=True, eq=True)
class Var(Expr):
    """A loop variable or a kernel-local scalar (declared by :class:`Decl`)."""

    name: str
    dtype: DType = INDEX

    def __hash__(self) -> int:
        return hash(("var", self.name))


@dataclass(frozen=True)
class Const(Expr):
    """A literal of ``dtype`` (a Python int/float/bool; NaN and infinities allowed)."""

    value: Any
    dtype: DType = INDEX

    def __hash__(self) -> int:
        return hash(("const", repr(self.value), self.dtype))

    def __eq__(self, o: object) -> bool:
        return (isinstance(o, Const) and self.dtype == o.dtype
                and repr(self.value) == repr(o.value))


@dataclass(frozen=True, eq=False)
class Load(Expr):
    """``buf[index]`` (one index expression per dim); with ``mask``, reads only where it holds
    and yields ``other`` elsewhere (a guarded load: padding, tails)."""

    buf: Buffer
    index: tuple[Expr, ...]
    mask: Expr | None = None
    other: Expr | None = None

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.buf.dtype

    def _key(self) -> tuple:
        return (id(self.buf), self.index, self.mask, self.other)

    def __eq__(self, o: object) -> bool:
        return isinstance(o, Load) and self._key() == o._key()

    def __hash__(self) -> int:
        return hash(self._key())


BINARY = ("add", "sub", "mul", "div", "mod", "max", "min", "fmax", "fmin", "pow", "and", "or",
          "xor", "shl", "shr", "lt", "le", "gt", "ge", "eq", "ne")
COMPARE = ("lt", "le", "gt", "ge", "eq", "ne")
UNARY = ("neg", "not", "abs", "exp", "log", "sqrt", "tanh", "erf", "sin", "cos", "tan", "asin",
         "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "round",
         "log1p", "expm1", "isnan", "isinf")


@dataclass(frozen=True)
class Binary(Expr):
    """``a op b`` on operands of one dtype (comparisons yield ``bool``)."""

    op: str
    a: Expr
    b: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return BOOL.vec(self.a.dtype.lanes) if self.op in COMPARE else self.a.dtype


@dataclass(frozen=True)
class Unary(Expr):
    """``op(a)``: negation, logical not, or a math function of ``a``'s dtype (``isnan`` and
    ``isinf`` yield ``bool``)."""

    op: str
    a: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return BOOL if self.op in ("isnan", "isinf") else self.a.dtype


@dataclass(frozen=True)
class Cast(Expr):
    """``a`` converted to ``dtype`` (rounding rules in the module docstring)."""

    a: Expr
    dtype: DType


@dataclass(frozen=True)
class Select(Expr):
    """``a if cond else b``; only the chosen arm is evaluated."""

    cond: Expr
    a: Expr
    b: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.a.dtype


@dataclass(frozen=True)
class MulAdd(Expr):
    """``a * b + c`` (a renderer may fuse it into one rounding)."""

    a: Expr
    b: Expr
    c: Expr

    @property
    def dtype(self) -> DType:  # type: ignore[override]
        return self.c.dtype


@dataclass(frozen=True)
class Call(Expr):
    """An intrinsic by name with its result dtype, for operations no other node states (the
    integer issue's ``requantize``). Each renderer and the interpreter declare the names they
    know; verify refuses others."""

    fn: str
    args: tuple[Expr, ...]
    dtype: DType


def as_expr(x: Any, dtype: DType | None = None) -> Expr:
    """``x`` as an Expr: Exprs pass through; Python numbers become Const of ``dtype`` (INDEX for
    ints, float32 for floats when not given)."""
    if isinstance(x, Expr):
        return x
    if isinstance(x, (bool, np.bool_)):
        return Const(bool(x), dtype or BOOL)
    if isinstance(x, (int, np.integer)):
        d = dtype or INDEX
        return Const(float(x) if d.is_float else int(x), d)
    if isinstance(x, (float, np.floating)):
        return Const(float(x), dtype or F32)
    raise TypeError(f"cannot make a loop-IR expression of {x!r}")


def const(v: Any, dtype: Any) -> Const:
    """A literal ``v`` of ``dtype`` (a numpy dtype, name or DType)."""
    d = DType.of(dtype)
    if d.is_float:
        return Const(float(v), d)
    if d.name == "bool":
        return Const(bool(v), d)
    return Const(int(v), d)


def maximum(a: Expr, b: Any) -> Expr:
    return Binary("max", a, as_expr(b, a.dtype))


def minimum(a: Expr, b: Any) -> Expr:
    return Binary("min", a, as_expr(b, a.dtype))


def select(c: Expr, a: Any, b: Any) -> Expr:
    a = as_expr(a, b.dtype if isinstance(b, Expr) else None)
    return Select(c, a, as_expr(b, a.dtype))


def call(fn: str, a: Expr) -> Expr:
    """A math function of one argument (``exp``, ``tanh``…)."""
    return Unary(fn, a)


def all_of(*conds: Expr) -> Expr | None:
    """The conjunction of ``conds`` (None when there are none)."""
    out: Expr | None = None
    for c in conds:
        out = c if out is None else Binary("and", out, c)
    return out


# ---- statements -------------------------------------------------------------------------------
@dataclass
class Store:
    """``buf[index] = value``."""

    buf: Buffer
    index: tuple[Expr, ...]
    value: Expr


@dataclass
class Decl:
    """Declares the local scalar ``var`` (mutable) with its first value."""

    var: Var
    init: Expr


@dataclass
class Assign:
    """``var = value`` for a local declared by :class:`Decl`."""

    var: Var
    value: Expr


LOOP_KINDS = ("serial", "unrolled", "vectorized", "parallel", "pipelined")


@dataclass
class Loop:
    """``for var in range(start, stop, step)``.

    ``kind``: serial; unrolled (``factor`` copies of the body per iteration; 0 = fully);
    vectorized (``factor`` lanes); parallel (iterations independent, may run on threads);
    pipelined (HLS, initiation interval ``factor``). A renderer may ignore a kind it cannot use,
    never the semantics: every kind computes what the serial loop computes.
    """

    var: Var
    start: Expr
    stop: Expr
    body: list[Stmt]
    step: int = 1
    kind: str = "serial"
    factor: int = 0

    def __post_init__(self) -> None:
        self.start, self.stop = as_expr(self.start), as_expr(self.stop)
        if self.kind not in LOOP_KINDS:
            raise ValueError(f"unknown loop kind {self.kind!r}")


@dataclass
class If:
    """``if cond: then else: orelse``."""

    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt] = field(default_factory=list)


@dataclass
class Comment:
    """A line of explanation kept in the generated code (sanitized by each renderer)."""

    text: str


Stmt = Union[Store, Decl, Assign, Loop, If, Comment]


@dataclass
class Kernel:
    """One (fused) graph node as loops: ``outputs`` and ``inputs`` are the buffers it writes
    and reads (outputs first, as the renderers order parameters); ``locals`` are arrays it owns;
    ``inplace`` says an output may alias an input (so no ``restrict``), ``disjoint`` names the
    parameters of an in-place kernel that overlap no other one all the same (``restrict`` in C:
    a depthwise Conv's plane of scratch); ``op``, ``node`` and ``comment`` name what it
    computes."""

    name: str
    outputs: list[Buffer]
    inputs: list[Buffer]
    body: list[Stmt]
    op: str = ""
    node: str = ""
    comment: str = ""
    locals: list[Buffer] = field(default_factory=list)
    inplace: bool = False
    disjoint: tuple[str, ...] = ()

    @property
    def params(self) -> list[Buffer]:
        return self.outputs + self.inputs


@dataclass
class Program:
    """A whole model as loops: ``kernels`` in schedule order over buffers placed by the memory
    plan. ``inputs``/``outputs`` are the graph's I/O buffers (contiguous), ``arena_size`` and
    ``arena_align`` in bytes."""

    name: str
    kernels: list[Kernel]
    inputs: list[Buffer]
    outputs: list[Buffer]
    arena_size: int
    arena_align: int = 16

    def weights(self) -> list[Buffer]:
        """Every weight buffer the kernels read, once each, in first-use order."""
        seen: dict[int, Buffer] = {}
        for k in self.kernels:
            for b in k.inputs:
                if b.space == "weight" and id(b) not in seen:
                    seen[id(b)] = b
        return list(seen.values())


# ---- traversal --------------------------------------------------------------------------------
def children(e: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``e``."""
    if isinstance(e, Load):
        return e.index + tuple(x for x in (e.mask, e.other) if x is not None)
    if isinstance(e, Binary):
        return (e.a, e.b)
    if isinstance(e, (Unary, Cast)):
        return (e.a,)
    if isinstance(e, Select):
        return (e.cond, e.a, e.b)
    if isinstance(e, MulAdd):
        return (e.a, e.b, e.c)
    if isinstance(e, Call):
        return e.args
    return ()


def rebuild(e: Expr, kids: Sequence[Expr]) -> Expr:
    """``e`` with its direct sub-expressions replaced by ``kids`` (in :func:`children`'s
    order). Raises TypeError for an expression with none (Var, Const)."""
    if isinstance(e, Load):
        n = len(e.index)
        rest = list(kids[n:])
        mask = rest.pop(0) if e.mask is not None else None
        other = rest.pop(0) if e.other is not None else None
        return Load(e.buf, tuple(kids[:n]), mask, other)
    if isinstance(e, Binary):
        return Binary(e.op, kids[0], kids[1])
    if isinstance(e, Unary):
        return Unary(e.op, kids[0])
    if isinstance(e, Cast):
        return Cast(kids[0], e.dtype)
    if isinstance(e, Select):
        return Select(kids[0], kids[1], kids[2])
    if isinstance(e, MulAdd):
        return MulAdd(kids[0], kids[1], kids[2])
    if isinstance(e, Call):
        return Call(e.fn, tuple(kids), e.dtype)
    raise TypeError(e)


def uses_var(e: Expr, v: Var) -> bool:
    """True when expression ``e`` reads variable ``v``."""
    return e == v or any(uses_var(c, v) for c in children(e))


def walk_stmts(body: Sequence[Stmt]) -> Iterator[Stmt]:
    """Every statement of ``body``, depth first."""
    for s in body:
        yield s
        if isinstance(s, Loop):
            yield from walk_stmts(s.body)
        elif isinstance(s, If):
            yield from walk_stmts(s.then)
            yield from walk_stmts(s.orelse)


def stmt_exprs(s: Stmt) -> tuple[Expr, ...]:
    """The expressions statement ``s`` evaluates itself (not those of nested statements)."""
    if isinstance(s, Store):
        return s.index + (s.value,)
    if isinstance(s, Decl):
        return (s.init,)
    if isinstance(s, Assign):
        return (s.value,)
    if isinstance(s, Loop):
        return (s.start, s.stop)
    if isinstance(s, If):
        return (s.cond,)
    return ()


def walk_exprs(e: Expr) -> Iterator[Expr]:
    """``e`` and every sub-expression, depth first."""
    yield e
    for c in children(e):
        yield from walk_exprs(c)


def prune_kernel(k: Kernel) -> Kernel:
    """``k`` without dead code: loops of constant bounds that never run go; a local whose value
    is never read loses its declaration and assignments (expressions have no side effects, so
    nothing else changes), repeated until none is left; then an input no load reads is dropped
    from ``k.inputs`` (so no renderer declares a parameter it never reads: C's
    -Wunused-variable and -Wunused-parameter)."""
    body = _without_empty_loops(k.body)
    while True:
        read = {e.name for st in walk_stmts(body) for top in stmt_exprs(st)
                for e in walk_exprs(top) if isinstance(e, Var)}
        dead = {st.var.name for st in walk_stmts(body)
                if isinstance(st, Decl) and st.var.name not in read}
        if not dead:
            break
        body = _without(body, dead)
    loaded = {e.buf.name for st in walk_stmts(body) for top in stmt_exprs(st)
              for e in walk_exprs(top) if isinstance(e, Load)}
    inputs = [b for b in k.inputs if b.name in loaded]
    if body is k.body and len(inputs) == len(k.inputs):
        return k
    return replace(k, body=body, inputs=inputs)


def _without_empty_loops(body: list[Stmt]) -> list[Stmt]:
    """``body`` without loops of constant bounds that never run (a 1-tap axis's other taps);
    ``body`` itself when there is none."""
    out: list[Stmt] = []
    changed = False
    for s in body:
        t = s
        if isinstance(s, Loop):
            if isinstance(s.start, Const) and isinstance(s.stop, Const) and \
                    s.stop.value <= s.start.value:
                changed = True
                continue
            inner = _without_empty_loops(s.body)
            t = s if inner is s.body else replace(s, body=inner)
        elif isinstance(s, If):
            a, b = _without_empty_loops(s.then), _without_empty_loops(s.orelse)
            t = s if (a is s.then and b is s.orelse) else If(s.cond, a, b)
        changed = changed or t is not s
        out.append(t)
    return out if changed else body


def _without(body: Sequence[Stmt], dead: set[str]) -> list[Stmt]:
    out: list[Stmt] = []
    for s in body:
        if isinstance(s, (Decl, Assign)) and s.var.name in dead:
            continue
        if isinstance(s, Loop):
            s = replace(s, body=_without(s.body, dead))
        elif isinstance(s, If):
            s = If(s.cond, _without(s.then, dead), _without(s.orelse, dead))
        out.append(s)
    return out


Access = Callable[[Buffer, tuple], tuple[Buffer, tuple]]


def substitute(e: Expr, env: dict[Var, Expr], access: Access | None = None) -> Expr:
    """``e`` with each variable in ``env`` replaced (constants folded where both sides are);
    ``access(buf, index) -> (buf, index)``, when given, then moves each load to another buffer
    or index (a line buffer in place of a whole tensor, for instance)."""
    def sub(x: Expr) -> Expr:
        return substitute(x, env, access)

    if isinstance(e, Var):
        return env.get(e, e)
    if isinstance(e, Const):
        return e
    if isinstance(e, Load):
        idx = tuple(sub(i) for i in e.index)
        buf, idx = access(e.buf, idx) if access is not None else (e.buf, idx)
        return Load(buf, idx, None if e.mask is None else sub(e.mask),
                    None if e.other is None else sub(e.other))
    if isinstance(e, Binary):
        return fold(Binary(e.op, sub(e.a), sub(e.b)))
    if isinstance(e, Unary):
        return Unary(e.op, sub(e.a))
    if isinstance(e, Cast):
        return Cast(sub(e.a), e.dtype)
    if isinstance(e, Select):
        return Select(sub(e.cond), sub(e.a), sub(e.b))
    if isinstance(e, MulAdd):
        return MulAdd(sub(e.a), sub(e.b), sub(e.c))
    if isinstance(e, Call):
        return Call(e.fn, tuple(sub(a) for a in e.args), e.dtype)
    raise TypeError(e)


def substitute_stmts(body: Sequence[Stmt], env: dict[Var, Expr],
                     access: Access | None = None) -> list[Stmt]:
    """Statements with variables replaced (loop bodies copied, not shared); ``access`` moves
    loads and stores as in :func:`substitute`."""
    def sub(x: Expr) -> Expr:
        return substitute(x, env, access)

    out: list[Stmt] = []
    for s in body:
        if isinstance(s, Store):
            idx = tuple(sub(i) for i in s.index)
            buf, idx = access(s.buf, idx) if access is not None else (s.buf, idx)
            out.append(Store(buf, idx, sub(s.value)))
        elif isinstance(s, Decl):
            out.append(Decl(s.var, sub(s.init)))
        elif isinstance(s, Assign):
            out.append(Assign(s.var, sub(s.value)))
        elif isinstance(s, Loop):
            out.append(replace(s, start=sub(s.start), stop=sub(s.stop),
                               body=substitute_stmts(s.body, env, access)))
        elif isinstance(s, If):
            out.append(If(sub(s.cond), substitute_stmts(s.then, env, access),
                          substitute_stmts(s.orelse, env, access)))
        else:
            out.append(s)
    return out


def fold(e: Binary) -> Expr:
    """Integer constant folding and identities (``x + 0``, ``x * 1``, ``x * 0``) on index math."""
    a, b = e.a, e.b
    if not e.dtype.is_int or e.op not in ("add", "sub", "mul"):
        return e
    if isinstance(a, Const) and isinstance(b, Const):
        v = {"add": a.value + b.value, "sub": a.value - b.value, "mul": a.value * b.value}[e.op]
        return Const(v, e.dtype)
    if isinstance(b, Const) and b.value == 0 and e.op in ("add", "sub"):
        return a
    if isinstance(a, Const) and a.value == 0 and e.op == "add":
        return b
    if e.op == "mul":
        if isinstance(b, Const) and b.value == 1:
            return a
        if isinstance(a, Const) and a.value == 1:
            return b
        if (isinstance(b, Const) and b.value == 0) or (isinstance(a, Const) and a.value == 0):
            return Const(0, e.dtype)
    return e


def affine(*terms: tuple[Expr, int] | Expr | int) -> Expr:
    """``sum(coef * e) + const`` as an INDEX expression, dropping zero terms: ``affine((oy, 2),
    ky, -1)`` is ``oy*2 + ky - 1``."""
    out: Expr | None = None
    k = 0
    for t in terms:
        if isinstance(t, (int, np.integer)):
            k += int(t)
            continue
        e, c = (t, 1) if isinstance(t, Expr) else t
        if c == 0:
            continue
        term = e if c == 1 else Binary("mul", e, Const(int(c), INDEX))
        out = term if out is None else Binary("add", out, term)
    if out is None:
        return Const(k, INDEX)
    return Binary("add", out, Const(k, INDEX)) if k > 0 else \
        (Binary("sub", out, Const(-k, INDEX)) if k < 0 else out)


# ---- text form --------------------------------------------------------------------------------
_SYM = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "lt": "<", "le": "<=",
        "gt": ">", "ge": ">=", "eq": "==", "ne": "!=", "and": "&&", "or": "||", "xor": "^",
        "shl": "<<", "shr": ">>"}


def expr_text(e: Expr) -> str:
    """The deterministic text of ``e``."""
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Const):
        if e.dtype == INDEX:
            return str(e.value)
        return f"{e.value!r}:{e.dtype}"
    if isinstance(e, Load):
        s = f"{e.buf.name}[{', '.join(expr_text(i) for i in e.index)}]"
        if e.mask is not None:
            s += f" if {expr_text(e.mask)} else {expr_text(e.other) if e.other else '0'}"
            s = f"({s})"
        return s
    if isinstance(e, Binary):
        if e.op in _SYM:
            return f"({expr_text(e.a)} {_SYM[e.op]} {expr_text(e.b)})"
        return f"{e.op}({expr_text(e.a)}, {expr_text(e.b)})"
    if isinstance(e, Unary):
        return f"-{expr_text(e.a)}" if e.op == "neg" else f"{e.op}({expr_text(e.a)})"
    if isinstance(e, Cast):
        return f"{e.dtype}({expr_text(e.a)})"
    if isinstance(e, Select):
        return f"({expr_text(e.a)} if {expr_text(e.cond)} else {expr_text(e.b)})"
    if isinstance(e, MulAdd):
        return f"muladd({expr_text(e.a)}, {expr_text(e.b)}, {expr_text(e.c)})"
    if isinstance(e, Call):
        return f"{e.fn}({', '.join(expr_text(a) for a in e.args)}):{e.dtype}"
    raise TypeError(e)


def _stmt_lines(body: Sequence[Stmt], depth: int) -> Iterator[str]:
    pad = "  " * depth
    for s in body:
        if isinstance(s, Store):
            yield f"{pad}{s.buf.name}[{', '.join(expr_text(i) for i in s.index)}] = {expr_text(s.value)}"
        elif isinstance(s, Decl):
            yield f"{pad}{s.var.name}:{s.var.dtype} = {expr_text(s.init)}"
        elif isinstance(s, Assign):
            yield f"{pad}{s.var.name} = {expr_text(s.value)}"
        elif isinstance(s, Loop):
            kind = "" if s.kind == "serial" else f" {s.kind}" + (f"({s.factor})" if s.factor else "")
            step = f" step {s.step}" if s.step != 1 else ""
            yield f"{pad}for {s.var.name} in {expr_text(s.start)}..{expr_text(s.stop)}{step}{kind}:"
            yield from _stmt_lines(s.body, depth + 1)
        elif isinstance(s, If):
            yield f"{pad}if {expr_text(s.cond)}:"
            yield from _stmt_lines(s.then, depth + 1)
            if s.orelse:
                yield f"{pad}else:"
                yield from _stmt_lines(s.orelse, depth + 1)
        elif isinstance(s, Comment):
            yield f"{pad}# {s.text}"


def kernel_text(k: Kernel) -> str:
    """The kernel in the loop IR's text form (one line per statement, two-space indents)."""
    params = [f"out {b.decl()}" for b in k.outputs] + [f"in {b.decl()}" for b in k.inputs]
    head = f"kernel {k.name}({', '.join(params)})" + (" inplace" if k.inplace else "")
    lines = [head] + [f"  local {b.decl()}" for b in k.locals] + list(_stmt_lines(k.body, 1))
    return "\n".join(lines)


def program_text(p: Program) -> str:
    """The whole program: its buffers, then each kernel."""
    lines = [f"program {p.name} arena={p.arena_size} align={p.arena_align}"]
    lines += [f"  input {b.decl()}" for b in p.inputs]
    lines += [f"  output {b.decl()}" for b in p.outputs]
    return "\n".join(lines + [kernel_text(k) for k in p.kernels]) + "\n"
