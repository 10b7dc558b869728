"""The onnxcc IR: plain dataclasses for values (tensors), nodes and graphs.

Static shapes only (symbolic dims are bound by the frontend). Values are SSA edges: produced
once, by a node or as a graph input or a constant. Graph methods are structural primitives;
everything else is a pass (``onnxcc.passes``) or an analysis.
"""

from __future__ import annotations

import math

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .errors import VerifyError


@dataclass(frozen=True)
class QParams:
    """Quantization parameters of a tensor: real = scale * (q - zero_point).

    ``scale``/``zero_point`` are scalars (per-tensor) or 1-D arrays along ``axis`` (per-channel).
    """

    scale: Any
    zero_point: Any
    axis: int | None = None


@dataclass(frozen=True)
class TensorType:
    """A static tensor type: ``shape`` in elements (row-major), numpy ``dtype``, optional quant."""

    shape: tuple[int, ...]
    dtype: np.dtype
    quant: QParams | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        object.__setattr__(self, "dtype", np.dtype(self.dtype))

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)   # a Python int: a corrupt dim cannot overflow it

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return self.size * self.dtype.itemsize

    def __str__(self) -> str:
        return f"{_DTYPE_SHORT.get(self.dtype.name, self.dtype.name)}[{','.join(map(str, self.shape))}]"


_DTYPE_SHORT = {"float32": "f32", "float64": "f64", "float16": "f16", "int64": "i64",
                "int32": "i32", "int16": "i16", "int8": "i8", "uint8": "u8", "uint16": "u16",
                "uint32": "u32", "uint64": "u64", "bool": "bool"}


@dataclass(eq=False)
class Value:
    """A tensor edge. ``const`` holds initializer data (may be a 0-stride broadcast view for a
    splat constant, as ConstantOfShape makes); ``producer`` is None for inputs and constants."""

    name: str
    type: TensorType
    const: np.ndarray | None = None
    producer: Node | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape in elements (row-major)."""
        return self.type.shape

    @property
    def dtype(self) -> np.dtype:
        """numpy element type."""
        return self.type.dtype

    @property
    def is_const(self) -> bool:
        """True for initializers and folded constants."""
        return self.const is not None

    def __repr__(self) -> str:
        return f"%{self.name}:{self.type}"


@dataclass(eq=False)
class Node:
    """An operation. ``op`` is an ONNX op name or an onnxcc op (``onnxcc.FusedConv``...).

    ``inputs`` may hold None for an omitted optional input. ``version`` is the opset version of
    the op's domain the node was imported with (semantics of some ops changed across opsets).
    """

    op: str
    inputs: list[Value | None]
    outputs: list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    version: int = 21

    def __repr__(self) -> str:
        return f"Node({self.op}, {self.name!r})"


def _fmt_attr(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"tensor<{v.dtype}{list(v.shape)}>"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_fmt_attr(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(round(v, 7))
    return str(v) if not isinstance(v, str) else repr(v)


@dataclass(eq=False)
class Graph:
    """A model: ``nodes`` in topological order, graph ``inputs`` and ``outputs``.

    ``name`` is the model name (a C identifier after sanitizing). ``meta`` carries analysis
    results that later stages read (``"schedule"``, ``"memory_plan"``, ``"passes"``).
    """

    nodes: list[Node]
    inputs: list[Value]
    outputs: list[Value]
    name: str = "model"
    meta: dict[str, Any] = field(default_factory=dict)
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)
    _used: set[str] | None = field(default=None, repr=False)

    # ---- structural primitives -------------------------------------------------------------
    def fresh_name(self, hint: str) -> str:
        """A value/node name not used yet in this graph (deterministic per-graph counter).

        The set of used names is collected once per graph and then grows with every name this
        method returns; passes name new values and nodes only through it."""
        if self._used is None:
            self._used = {v.name for v in self.values()} | {n.name for n in self.nodes}
        while True:
            name = f"{hint}_{next(self._counter)}"
            if name not in self._used:
                self._used.add(name)
                return name

    def constant(self, hint: str, a: np.ndarray) -> Value:
        """A new constant value holding ``a`` (any shape and dtype), named from ``hint`` by
        :meth:`fresh_name`; not yet read by any node."""
        return Value(self.fresh_name(hint), TensorType(a.shape, a.dtype), const=a)

    def values(self) -> list[Value]:
        """All values (inputs, constants and node outputs), first-seen order, no duplicates."""
        seen: dict[int, Value] = {}
        for v in self.inputs:
            seen.setdefault(id(v), v)
        for n in self.nodes:
            for v in itertools.chain(n.inputs, n.outputs):
                if v is not None:
                    seen.setdefault(id(v), v)
        for v in self.outputs:
            seen.setdefault(id(v), v)
        return list(seen.values())

    def users(self, v: Value) -> list[Node]:
        """Nodes that read ``v`` (each once, in graph order)."""
        return [n for n in self.nodes if any(i is v for i in n.inputs)]

    def use_counts(self) -> dict[int, int]:
        """id(value) -> number of reads by nodes plus reads as a graph output."""
        counts: dict[int, int] = {}
        for n in self.nodes:
            for v in n.inputs:
                if v is not None:
                    counts[id(v)] = counts.get(id(v), 0) + 1
        for v in self.outputs:
            counts[id(v)] = counts.get(id(v), 0) + 1
        return counts

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Make every reader of ``old`` (nodes and graph outputs) read ``new`` instead.

        A graph output keeps its public name: ``new`` takes ``old``'s name when ``old`` is an output
        and ``new`` is not an input or already an output.
        """
        for n in self.nodes:
            n.inputs = [new if i is old else i for i in n.inputs]
        if any(o is old for o in self.outputs):
            if not any(new is v for v in self.inputs) and not any(new is o for o in self.outputs):
                new.name = old.name
            self.outputs = [new if o is old else o for o in self.outputs]

    def replace(self, old_nodes: Iterable[Node], new_nodes: list[Node]) -> None:
        """Replace ``old_nodes`` by ``new_nodes`` (placed where the first old node stood).

        Outputs of the old nodes that new nodes do not produce must be unused afterwards.
        """
        old = list(old_nodes)
        old_ids = {id(n) for n in old}
        pos = min(i for i, n in enumerate(self.nodes) if id(n) in old_ids)
        rest = [n for n in self.nodes if id(n) not in old_ids]
        kept_before = sum(1 for n in self.nodes[:pos] if id(n) not in old_ids)
        for n in new_nodes:
            for o in n.outputs:
                o.producer = n
        self.nodes = rest[:kept_before] + list(new_nodes) + rest[kept_before:]
        if not self._in_order():
            self.toposort()

    def _in_order(self) -> bool:
        """True when every node reads only values produced before it (one linear scan)."""
        produced = {id(o) for n in self.nodes for o in n.outputs}
        seen: set[int] = set()
        for n in self.nodes:
            for i in n.inputs:
                if i is not None and id(i) in produced and id(i) not in seen:
                    return False
            seen.update(id(o) for o in n.outputs)
        return True

    def remove_dead(self) -> int:
        """Drop nodes none of whose outputs reach a graph output. Returns how many were dropped."""
        live: set[int] = {id(v) for v in self.outputs}
        keep: list[Node] = []
        for n in reversed(self.nodes):
            if any(id(o) in live for o in n.outputs):
                keep.append(n)
                live.update(id(i) for i in n.inputs if i is not None)
        dropped = len(self.nodes) - len(keep)
        self.nodes = keep[::-1]
        return dropped

    def toposort(self) -> None:
        """Reorder ``nodes`` topologically, keeping the current order where it is already valid."""
        producer = {id(o): n for n in self.nodes for o in n.outputs}
        done: set[int] = set()
        order: list[Node] = []
        visiting: set[int] = set()
        for root in self.nodes:
            stack = [(root, False)]
            while stack:
                n, expanded = stack.pop()
                if id(n) in done:
                    continue
                if expanded:
                    visiting.discard(id(n))
                    done.add(id(n))
                    order.append(n)
                    continue
                if id(n) in visiting:
                    raise VerifyError(f"cycle through node {n.name!r} ({n.op})")
                visiting.add(id(n))
                stack.append((n, True))
                for i in reversed(n.inputs):
                    p = producer.get(id(i)) if i is not None else None
                    if p is not None and id(p) not in done:
                        stack.append((p, False))
        self.nodes = order

    def copy(self) -> Graph:
        """A deep copy of the structure; constant arrays are shared (they are never mutated)."""
        vmap: dict[int, Value] = {}

        def cv(v: Value | None) -> Value | None:
            if v is None:
                return None
            if id(v) not in vmap:
                vmap[id(v)] = Value(v.name, v.type, v.const)
            return vmap[id(v)]

        g = Graph([], [cv(v) for v in self.inputs], [], self.name, dict(self.meta))  # type: ignore[misc]
        for n in self.nodes:
            nn = Node(n.op, [cv(i) for i in n.inputs], [cv(o) for o in n.outputs],  # type: ignore[misc]
                      dict(n.attrs), n.name, n.version)
            for o in nn.outputs:
                o.producer = nn
            g.nodes.append(nn)
        g.outputs = [cv(v) for v in self.outputs]  # type: ignore[misc]
        return g

    def verify(self) -> None:
        """Check SSA, topological order, no dangling values, and types against each op's infer.

        Raises:
            VerifyError: naming the first node that breaks an invariant.
        """
        from .ops import infer_node  # local: ops import ir

        input_ids = {id(v) for v in self.inputs}
        defined: set[int] = set(input_ids)
        produced: set[int] = set()
        for n in self.nodes:
            for i in n.inputs:
                if i is None:
                    continue
                if id(i) not in defined and not i.is_const:
                    raise VerifyError(f"reads {i.name!r} before it is produced", node=n.name, op=n.op)
            for o in n.outputs:
                if id(o) in produced or id(o) in input_ids or o.is_const:
                    raise VerifyError(f"output {o.name!r} is produced twice", node=n.name, op=n.op)
                if o.producer is not n:
                    raise VerifyError(f"output {o.name!r} has a stale producer", node=n.name, op=n.op)
                produced.add(id(o))
                defined.add(id(o))
            want = infer_node(n)
            got = [o.type for o in n.outputs]
            for w, g_ in zip(want, got):
                if w.shape != g_.shape or w.dtype != g_.dtype:
                    raise VerifyError(f"declared type {g_} but op infers {w}", node=n.name, op=n.op)
        for v in self.outputs:
            if id(v) not in defined and not v.is_const:
                raise VerifyError(f"graph output {v.name!r} is never produced")

    def __str__(self) -> str:
        """Deterministic text form, one line per node."""
        lines = [f"graph {self.name}(" + ", ".join(repr(v) for v in self.inputs) + ")"]
        for n in self.nodes:
            args = ", ".join("_" if i is None else (f"%{i.name}" + ("*" if i.is_const else ""))
                             for i in n.inputs)
            outs = ", ".join(repr(o) for o in n.outputs)
            attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in sorted(n.attrs.items()))
            lines.append(f"  {outs} = {n.op}({args})" + (f" {{{attrs}}}" if attrs else ""))
        lines.append("  return " + ", ".join(f"%{v.name}" for v in self.outputs))
        return "\n".join(lines)


def to_networkx(g: Graph):  # -> networkx.DiGraph
    """A derived view: a DiGraph over node indices with an edge per data dependency.

    Edge attribute ``value`` holds the Value carried. Used by analyses (scheduling, liveness).
    """
    import networkx as nx

    dg = nx.DiGraph()
    producer = {id(o): k for k, n in enumerate(g.nodes) for o in n.outputs}
    for k, n in enumerate(g.nodes):
        dg.add_node(k, node=n)
        for i in n.inputs:
            if i is not None and id(i) in producer:
                dg.add_edge(producer[id(i)], k, value=i)
    return dg
