"""C lowering registry: node -> frozen :class:`KernelDesc`, computed entirely in Python.

A lowering is registered per op with :func:`lower`; it reads the node, the shapes and the
constant data, and returns a KernelDesc whose ``macro`` names a jinja macro in
``templates/ops/<family>.c.j2``. Templates only loop and substitute: every extent, stride and
index expression is a string or number computed here. Each operand carries element strides, so a
splat constant (a 0-stride broadcast view, as ConstantOfShape makes) is read through strides of 0
and never materialized; transposed or broadcast reads are strides too.

Families live in sibling modules (``elementwise``, ``nn``, ``tensor``), imported by
:func:`registry`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from onnxcc.ir import Node, Value

CTYPES = {"float32": "float", "float64": "double", "int8": "int8_t", "uint8": "uint8_t",
          "int16": "int16_t", "uint16": "uint16_t", "int32": "int32_t", "uint32": "uint32_t",
          "int64": "int64_t", "uint64": "uint64_t", "bool": "uint8_t"}


def ctype(dtype: np.dtype) -> str:
    """The C type holding one element of ``dtype``; KeyError for dtypes C code cannot hold."""
    return CTYPES[np.dtype(dtype).name]


@dataclass(frozen=True)
class Operand:
    """A tensor as a kernel sees it: parameter name, C element type, shape and element strides."""

    ptr: str
    ctype: str
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    def at(self, idx: Sequence[str | int]) -> str:
        """C expression of the element at per-dim index expressions ``idx`` (strings or ints)."""
        return f"{self.ptr}[{index_expr(idx, self.strides)}]"


@dataclass(frozen=True)
class KernelDesc:
    """One generated C function. ``outputs``/``inputs`` are the kernel's pointer parameters (out
    first); ``params`` is a frozen tuple of (name, value) pairs the macro substitutes."""

    family: str
    macro: str
    op: str
    node: str
    outputs: tuple[Operand, ...]
    inputs: tuple[Operand | None, ...]
    params: tuple[tuple[str, Any], ...] = ()
    inplace: bool = False
    scratch_bytes: int = 0

    @property
    def p(self) -> dict[str, Any]:
        """The params as a dict (what templates read as ``k.p.name``)."""
        return dict(self.params)


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major element strides of ``shape``."""
    st, acc = [], 1
    for d in reversed(shape):
        st.append(acc)
        acc *= int(d)
    return tuple(reversed(st))


def broadcast_strides(shape: Sequence[int], strides: Sequence[int], out_shape: Sequence[int]
                      ) -> tuple[int, ...]:
    """Strides that read an operand of ``shape`` broadcast (numpy rules) to ``out_shape``."""
    pad = len(out_shape) - len(shape)
    res = [0] * pad
    for d, s in zip(shape, strides):
        res.append(0 if d == 1 else s)
    return tuple(res)


def merge_dims(shape: Sequence[int], stride_sets: Sequence[Sequence[int]]
               ) -> tuple[list[int], list[list[int]]]:
    """Drop unit dims and merge adjacent dims that every stride set walks contiguously
    (0-stride dims merge with 0-stride dims). Returns ``([1], [[0], ...])`` for no dims."""
    keep = [k for k, d in enumerate(shape) if d != 1]
    shp = [int(shape[k]) for k in keep]
    sts = [[int(s[k]) for k in keep] for s in stride_sets]
    k = len(shp) - 2
    while k >= 0:
        if all(s[k] == s[k + 1] * shp[k + 1] for s in sts):
            shp[k] *= shp[k + 1]
            for s in sts:
                s[k] = s[k + 1]
                del s[k + 1]
            del shp[k + 1]
        k -= 1
    if not shp:
        return [1], [[0] for _ in sts]
    return shp, sts


def index_expr(idx: Sequence[str | int], strides: Sequence[int]) -> str:
    """``i0*s0 + i1*s1 + ...`` with zero strides dropped and unit strides unmultiplied."""
    terms = []
    const = 0
    for i, s in zip(idx, strides):
        if s == 0:
            continue
        if isinstance(i, (int, np.integer)):
            const += int(i) * s
        else:
            terms.append(i if s == 1 else f"{i}*{s}")
    if const or not terms:
        terms.append(str(const))
    return " + ".join(terms)


def c_float(v: float, ct: str = "float") -> str:
    """A C literal for ``v`` that round-trips exactly in ``ct`` (float or double)."""
    v = float(v)
    if np.isnan(v):
        return "NAN" if ct == "float" else "(double)NAN"
    if np.isinf(v):
        return ("INFINITY" if v > 0 else "-INFINITY") if ct == "float" else \
            ("(double)INFINITY" if v > 0 else "(double)-INFINITY")
    if ct in ("float", "double"):
        x = np.float32(v) if ct == "float" else np.float64(v)
        s = np.format_float_positional(x, unique=True, trim="0")
        if len(s) > 12:  # 1e-30 reads better than thirty zeros
            s = np.format_float_scientific(x, unique=True, trim="0", exp_digits=1).replace("e+", "e")
        return s + ("f" if ct == "float" else "")
    return c_int(v, ct)


def c_int(v: int | float, ct: str = "int64_t") -> str:
    """A C literal for the integer ``v`` of type ``ct`` (INT64_MIN safe)."""
    v = int(v)
    if ct in ("int64_t", "uint64_t"):
        if v == -(1 << 63):
            return "INT64_MIN"
        return f"INT64_C({v})" if ct == "int64_t" else f"UINT64_C({v})"
    if ct == "int32_t" and v == -(1 << 31):
        return "INT32_MIN"
    return str(v)


def c_literal(v: Any, ct: str) -> str:
    """A C literal of element type ``ct``."""
    return c_float(v, ct) if ct in ("float", "double") else c_int(v, ct)


class LowerCtx:
    """What a lowering may ask about the graph: operands with strides, constant data, the plan.

    ``storage`` maps a value name to its planned Buffer (``onnxcc.passes.plan_memory.Buffer``).
    """

    def __init__(self, node: Node, storage: dict[str, Any] | None = None) -> None:
        self.node = node
        self.storage = storage or {}

    def strides(self, v: Value) -> tuple[int, ...]:
        """Element strides for reading ``v``: 0 everywhere for a splat constant."""
        if v.const is not None and v.const.size > 1 and is_splat(v.const):
            return (0,) * len(v.shape)
        return contiguous_strides(v.shape)

    def operand(self, v: Value, ptr: str) -> Operand:
        """``v`` as the kernel parameter ``ptr``, with its read strides."""
        return Operand(ptr, ctype(v.dtype), v.shape, self.strides(v))

    def ins(self) -> tuple[Operand | None, ...]:
        """The node's inputs as parameters ``x0, x1, ...`` (None for omitted ones)."""
        return tuple(None if v is None else self.operand(v, f"x{k}")
                     for k, v in enumerate(self.node.inputs))

    def outs(self) -> tuple[Operand, ...]:
        """The node's outputs as parameters ``y0, y1, ...``."""
        return tuple(self.operand(v, f"y{k}") for k, v in enumerate(self.node.outputs))

    def same_storage(self, a: Value, b: Value, byte_offset: int = 0) -> bool:
        """True when the plan put ``a`` at ``byte_offset`` inside ``b``'s storage."""
        ba, bb = self.storage.get(a.name), self.storage.get(b.name)
        return (ba is not None and bb is not None and ba.space == bb.space
                and ba.index == bb.index and ba.offset == bb.offset + byte_offset)

    def desc(self, family: str, macro: str, *, outputs: tuple[Operand, ...] | None = None,
             inputs: tuple[Operand | None, ...] | None = None, inplace: bool = False,
             scratch_bytes: int = 0, **params: Any) -> KernelDesc:
        """A KernelDesc for this node; params are frozen in name order."""
        return KernelDesc(family, macro, self.node.op, self.node.name,
                          self.outs() if outputs is None else outputs,
                          self.ins() if inputs is None else inputs,
                          tuple(sorted(params.items())), inplace, scratch_bytes)


def is_splat(a: np.ndarray) -> bool:
    """True when every element of ``a`` is equal (checked cheaply for 0-stride views)."""
    if a.size <= 1:
        return True
    if all(s == 0 for s in a.strides):
        return True
    flat = a.reshape(-1)
    return bool(np.all(flat == flat[0])) and not np.isnan(flat[0])


Lowering = Callable[[Node, LowerCtx], "KernelDesc | None"]
Supports = Callable[[Node], "str | None"]
LOWERINGS: dict[str, Lowering] = {}
SUPPORTS: dict[str, Supports] = {}
FAMILIES = ("elementwise", "nn", "tensor", "matmul", "reduce", "norm")
_loaded = False


def lower(*ops: str, supports: Supports | None = None) -> Callable[[Lowering], Lowering]:
    """Register a C lowering for ``ops``; ``supports(node)`` returns a reason string when the
    node's attributes or dtypes are outside what the kernel handles (None when fine)."""

    def deco(fn: Lowering) -> Lowering:
        for op in ops:
            LOWERINGS[op] = fn
            if supports is not None:
                SUPPORTS[op] = supports
        return fn

    return deco


def registry() -> dict[str, Lowering]:
    """Every C lowering, by op name (imports the family modules on first use)."""
    global _loaded
    if not _loaded:
        _loaded = True
        for fam in FAMILIES:
            importlib.import_module(f"{__name__}.{fam}")
    return LOWERINGS


def unsupported_reason(node: Node) -> str | None:
    """Why the C target cannot lower ``node``, or None when it can."""
    reg = registry()
    if node.op not in reg:
        return "no C lowering for this op"
    for v in list(node.inputs) + list(node.outputs):
        if v is not None and v.dtype.name not in CTYPES:
            return f"dtype {v.dtype.name} of {v.name!r} is not supported by the C target"
    check = SUPPORTS.get(node.op)
    return check(node) if check else None
