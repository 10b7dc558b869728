"""A small pattern language for graph rewrites, and the greedy driver that applies it.

    X, W, B = Any("x"), Const("w"), Const("b")
    TABLE = [(Op("Relu", Op("Conv", X, W, B, name="conv")),
              lambda m: Node("onnxcc.FusedConv", m["conv"].inputs, m.root.outputs, {...}))]
    g = rewrite(g, TABLE)

- ``Op(op, *inputs, name=, where=, one_use=True, commute=False)`` matches a node whose ``op`` is
  ``op`` (a name, a tuple of names, or None for any op). With input patterns, the node's inputs
  (trailing omitted ones dropped) must match them one to one; a trailing ``...`` matches any
  further inputs; with no input patterns, any inputs match.
  An interior ``Op`` (not the root) requires, by default, that every output of its node has a
  single use in total, the matched edge (``one_use=False`` to opt out). ``commute=True`` also tries
  the two inputs of a binary op swapped. ``where`` is a predicate on the node.
- ``Any(name)`` matches any value (``where`` on the value); ``Const(name)`` a constant value.
- A name bound twice must bind the same object both times.

A rewrite function gets a :class:`Match` and returns ``None`` (no change), a replacement node or
list of nodes (which either re-produce the root's output values or whose last node's outputs
replace them positionally), or a value / list of values that replace the root's outputs. Nothing
is mutated before the rewrite function returns; mutation goes through ``Graph.replace`` and
``Graph.replace_all_uses`` only. The matched nodes the rewrite left without readers are removed,
and so, transitively, are producers that only they read (so a rewrite may bypass a node it found
by itself, as fuse_elementwise does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import EllipsisType
from typing import TypeAlias

from onnxcc.errors import OnnxccError
from onnxcc.ir import Graph, Node, Value

Result: TypeAlias = "Node | Sequence[Node] | Value | Sequence[Value] | None"
Rewrite: TypeAlias = "Callable[[Match], Result]"


class Pat:
    """Base of the pattern classes."""

    name: str | None = None


@dataclass(frozen=True, eq=False)
class Any(Pat):
    """Matches any value (``where``: a predicate on it)."""

    name: str | None = None
    where: Callable[[Value], bool] | None = None
    const = False  # class attribute, not a field

    def __repr__(self) -> str:
        return (self.name or "_") + ("*" if self.const else "")


class Const(Any):
    """Matches a constant value."""

    const = True


class Op(Pat):
    """Matches a node by op name (see the module docstring)."""

    def __init__(self, op: str | tuple[str, ...] | None, *inputs: Pat | EllipsisType,
                 name: str | None = None,
                 where: Callable[[Node], bool] | None = None, one_use: bool = True,
                 commute: bool = False) -> None:
        self.ops = (op,) if isinstance(op, str) else op
        self.rest = bool(inputs) and inputs[-1] is Ellipsis
        self.inputs: tuple[Pat, ...] = inputs[:-1] if self.rest else inputs  # type: ignore
        self.name, self.where = name, where
        self.one_use, self.commute = one_use, commute

    def __repr__(self) -> str:
        op = "|".join(self.ops) if self.ops else "*"
        args = [repr(p) for p in self.inputs] + (["..."] if self.rest else [])
        return f"{op}({', '.join(args)})" if args else op


class Match(dict):
    """name -> Node (for ``Op``) or Value (for ``Any``/``Const``); ``root`` is the matched node,
    ``nodes`` every matched node, ``graph`` the graph; ``uses(v)`` counts reads of ``v`` (nodes
    plus graph outputs); ``alive(n)`` tells whether ``n`` is in the graph."""

    def __init__(self, graph: Graph, root: Node, counts: dict[int, int], alive: set[int]) -> None:
        super().__init__()
        self.graph, self.root, self.nodes = graph, root, [root]
        self._counts, self._alive = counts, alive

    def uses(self, v: Value) -> int:
        return self._counts.get(id(v), 0)

    def alive(self, n: Node) -> bool:
        """Whether ``n`` is (still) a node of the graph."""
        return id(n) in self._alive


def _inputs(n: Node) -> list[Value | None]:
    ins = list(n.inputs)
    while ins and ins[-1] is None:
        ins.pop()
    return ins


def _bind(m: Match, name: str | None, obj: object) -> bool:
    if name is None:
        return True
    if name in m:
        return m[name] is obj
    m[name] = obj
    return True


def _match_node(p: Op, n: Node, m: Match) -> bool:
    if p.ops is not None and n.op not in p.ops:
        return False
    if p.where is not None and not p.where(n):
        return False
    if not _bind(m, p.name, n):
        return False
    if not p.inputs and not p.rest:
        return True
    ins = _inputs(n)
    if len(ins) < len(p.inputs) or (len(ins) > len(p.inputs) and not p.rest):
        return False
    ins = ins[:len(p.inputs)]
    orders = [ins, ins[::-1]] if p.commute and len(ins) == 2 else [ins]
    for order in orders:
        saved, saved_nodes = dict(m), list(m.nodes)
        if all(_match_value(q, v, m) for q, v in zip(p.inputs, order)):
            return True
        m.clear()
        m.update(saved)
        m.nodes[:] = saved_nodes
    return False


def _match_value(p: Pat, v: Value | None, m: Match) -> bool:
    if v is None:
        return False
    if isinstance(p, Any):
        return (v.is_const or not p.const) and (p.where is None or p.where(v)) \
            and _bind(m, p.name, v)
    assert isinstance(p, Op)
    n = v.producer
    if n is None or v.is_const or id(n) not in m._alive:
        return False
    if p.one_use and sum(m.uses(o) for o in n.outputs) != 1:
        return False
    m.nodes.append(n)
    return _match_node(p, n, m)


def match(g: Graph, p: Op, root: Node, counts: dict[int, int] | None = None) -> Match | None:
    """Match ``p`` with ``root`` as the root node; the :class:`Match`, or None."""
    m = Match(g, root, counts if counts is not None else g.use_counts(), {id(n) for n in g.nodes})
    return m if _match_node(p, root, m) else None


def can_forward(g: Graph, old: Value, new: Value) -> bool:
    """Whether the readers of ``old`` may read the existing value ``new`` instead.

    A graph output keeps its name and stays produced by a node: it cannot be forwarded to a graph
    input, a constant, or another graph output (the code generator writes each output once).
    """
    if not any(o is old for o in g.outputs):
        return True
    return (new.producer is not None and not new.is_const
            and not any(o is new for o in g.outputs) and not any(i is new for i in g.inputs))


def _apply(g: Graph, m: Match, res: Result) -> None:
    items = [res] if isinstance(res, (Node, Value)) else list(res)  # type: ignore[arg-type]
    root = m.root
    if items and isinstance(items[0], Value):
        new_nodes: list[Node] = []
        for old, new in zip(root.outputs, items):
            g.replace_all_uses(old, new)  # type: ignore[arg-type]
    else:
        new_nodes = items  # type: ignore[assignment]
        made = {id(o) for n in new_nodes for o in n.outputs}
        for old, new in zip(root.outputs, new_nodes[-1].outputs if new_nodes else []):
            if id(old) not in made:
                g.replace_all_uses(old, new)
    made = {id(o) for n in new_nodes for o in n.outputs}
    # Remove what the rewrite made dead: matched nodes, then (transitively) the producers they
    # alone read (a rewrite may bypass an interior node it found itself), consumers first.
    pos = {id(n): k for k, n in enumerate(g.nodes)}
    reads: dict[int, int] = {}
    for x in g.nodes + new_nodes:
        for i in x.inputs:
            if i is not None:
                reads[id(i)] = reads.get(id(i), 0) + 1
    for v in g.outputs:
        reads[id(v)] = reads.get(id(v), 0) + 1
    work = {id(n): n for n in m.nodes}
    removed: dict[int, Node] = {}
    while work:
        n = work.pop(max(work, key=lambda k: pos[k]))
        dead = all(not reads.get(id(o)) for o in n.outputs)
        if not dead and not any(id(o) in made for o in n.outputs):
            continue
        removed[id(n)] = n
        for i in n.inputs:
            if i is None:
                continue
            reads[id(i)] -= 1
            p = i.producer
            if p is not None and id(p) in pos and id(p) not in removed:
                work[id(p)] = p
    g.replace(sorted(removed.values(), key=lambda n: pos[id(n)]), new_nodes)


def _label(p: Op, fn: Rewrite) -> str:
    name = getattr(fn, "__name__", "<lambda>")
    return repr(p) if name == "<lambda>" else name


def rewrite(g: Graph, patterns: Sequence[tuple[Op, Rewrite]], max_iters: int = 100) -> Graph:
    """Apply ``patterns`` greedily, visiting nodes in topological order, until none fires.

    Each sweep tries every pattern (in table order) at every node still in the graph; after a
    rewrite fires, the sweep continues with the next node. Raises :class:`OnnxccError` naming the
    patterns that fired in the last three sweeps when ``max_iters`` sweeps did not reach a fixpoint.
    """
    recent: list[list[str]] = []
    for _ in range(max_iters):
        fired: list[str] = []
        recent = recent[-2:] + [fired]
        counts = g.use_counts()
        alive = {id(n) for n in g.nodes}
        for node in list(g.nodes):
            if id(node) not in alive:
                continue
            for p, fn in patterns:
                m = Match(g, node, counts, alive)
                if not _match_node(p, node, m):
                    continue
                res = fn(m)
                if res is None:
                    continue
                _apply(g, m, res)
                fired.append(_label(p, fn))
                counts = g.use_counts()
                alive = {id(n) for n in g.nodes}
                break
        if not fired:
            return g
    names = ", ".join(sorted({name for sweep in recent for name in sweep}))
    raise OnnxccError(f"rewrite did not converge after {max_iters} sweeps; still firing: {names}",
                      hint="two patterns undo each other; report this as an onnxcc bug")


__all__ = ["Any", "Const", "Match", "Op", "Pat", "Result", "Rewrite", "can_forward", "match",
           "rewrite"]
