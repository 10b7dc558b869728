"""Liveness analyses over the node order (step k = the k-th node of ``g.nodes``).

A non-constant value is live from the step of its producer (graph inputs: step 0) to the step of
its last reader; a graph output lives to the last step; a value nobody reads lives only at its
producer's step. The peak functions count the storage a schedule needs for intermediates:
views (trait ``view``: output 0 aliases input 0) share their input's storage, an elementwise node
that is the last reader of an input of its output's size writes over it, as does an ``inplace``
node (InsertSlice) over its input 0 (as plan_memory does),
and storage that holds a graph input or output is the caller's, so it is not counted (a window of
a graph input read in place, :func:`input_windows`, is the input's storage).
"""

from __future__ import annotations

from collections.abc import Sequence

from onnxcc.ir import Graph, Node, Value
from onnxcc.ops import get_op


def liveness(g: Graph) -> dict[str, tuple[int, int]]:
    """value name -> (first step, last step) for every non-constant value of ``g``."""
    return {v.name: iv for v, iv in value_intervals(g).items()}


def value_intervals(g: Graph, order: Sequence[Node] | None = None) -> dict[Value, tuple[int, int]]:
    """Value -> (first step, last step) over ``order`` (default ``g.nodes``), non-constants only."""
    nodes = list(g.nodes if order is None else order)
    end = max(len(nodes) - 1, 0)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    vals: dict[int, Value] = {}
    for v in g.inputs:
        vals[id(v)], first[id(v)], last[id(v)] = v, 0, 0
    for k, n in enumerate(nodes):
        for i in n.inputs:
            if i is not None and not i.is_const:
                last[id(i)] = k
        for o in n.outputs:
            vals[id(o)], first[id(o)] = o, k
            last.setdefault(id(o), k)
    for v in g.outputs:
        if not v.is_const:
            last[id(v)] = end
    return {vals[k]: (first[k], max(first[k], last[k])) for k in vals}


def is_view(n: Node) -> bool:
    """Whether ``n``'s output 0 is its input 0 reinterpreted (same bytes)."""
    return "view" in get_op(n).traits and n.inputs[0] is not None \
        and n.outputs[0].type.nbytes == n.inputs[0].type.nbytes


def overwritable_inputs(n: Node) -> list[Value]:
    """Inputs whose storage ``n`` may write its output into when it reads them last: every
    non-constant input of an elementwise node (trait ``elementwise``), input 0 of an ``inplace``
    node (InsertSlice's dest); only those of the output's shape and itemsize."""
    if len(n.outputs) != 1:
        return []
    traits = get_op(n).traits
    o = n.outputs[0]
    cands = n.inputs if "elementwise" in traits else n.inputs[:1] if "inplace" in traits else []
    return [i for i in cands if i is not None and not i.is_const and i.shape == o.shape
            and i.dtype.itemsize == o.dtype.itemsize]


# ops whose lowering reads input 0 through its buffer's strides, so it may be a window
WINDOW_READERS = ("Conv", "onnxcc.FusedConv", "QLinearConv", "QuantizeLinear")


def input_windows(g: Graph) -> dict[int, Node]:
    """id(value) -> its Slice node, for each Slice that reads a window of a graph input in place:
    steps of 1, not a graph output, read only as input 0 of ops in ``WINDOW_READERS`` (their
    lowerings index x through strides). Such a window needs no storage of its own: it is the
    input's bytes seen through the input's strides from the window's first element (the patch
    pass slices the image so; MCUNetV2 reads its patches from the input buffer likewise)."""
    from onnxcc.ops.shape import slice_params

    inputs = {id(v) for v in g.inputs}
    outputs = {id(v) for v in g.outputs}
    readers: dict[int, list[tuple[Node, int]]] = {}
    for n in g.nodes:
        for k, v in enumerate(n.inputs):
            if v is not None:
                readers.setdefault(id(v), []).append((n, k))
    out: dict[int, Node] = {}
    for n in g.nodes:
        if n.op != "Slice" or id(n.inputs[0]) not in inputs or id(n.outputs[0]) in outputs:
            continue
        rs = readers.get(id(n.outputs[0]), [])
        if rs and all(r.op in WINDOW_READERS and k == 0 for r, k in rs) \
                and all(s == 1 for s in slice_params(n)[3]):
            out[id(n.outputs[0])] = n
    return out


def storage_owner(g: Graph) -> dict[int, Value]:
    """id(value) -> the value whose storage it uses: a view's output, or a window of a graph
    input (:func:`input_windows`), uses its input's owner."""
    owner: dict[int, Value] = {id(v): v for v in g.inputs}
    windows = input_windows(g)
    for n in g.nodes:
        for o in n.outputs:
            owner[id(o)] = o
        if (is_view(n) or id(n.outputs[0]) in windows) and not n.inputs[0].is_const:
            owner[id(n.outputs[0])] = owner.get(id(n.inputs[0]), n.inputs[0])
    return owner


class StorageModel:
    """The intermediate storages of ``g`` and what each node allocates and reads, for scheduling.

    ``size[s]`` bytes per storage s (an owner value's id); ``allocs[k]`` storages node k creates;
    ``reads[k]`` storages node k reads (or, for a view, extends); ``reuse[k]`` storages an
    elementwise node k may overwrite in place (same bytes and itemsize as its output) when it is
    their last reader; ``counted`` the storages that live in the arena (not a graph input's or
    output's).
    """

    def __init__(self, g: Graph) -> None:
        owner = storage_owner(g)
        io = {id(owner[id(v)]) for v in list(g.inputs) + list(g.outputs) if id(v) in owner}
        self.nodes = list(g.nodes)
        self.size: dict[int, int] = {}
        self.allocs: list[list[int]] = []
        self.reads: list[list[int]] = []
        self.reuse: list[list[int]] = []
        for n in self.nodes:
            allocs, reads = [], []
            for o in n.outputs:
                s = id(owner[id(o)])
                if s == id(o):
                    self.size[s] = o.type.nbytes
                    allocs.append(s)
                else:
                    reads.append(s)  # a view keeps its input's storage alive as its own
            for i in n.inputs:
                if i is not None and id(i) in owner:
                    reads.append(id(owner[id(i)]))
            self.allocs.append(allocs)
            self.reads.append(sorted(set(reads)))
            self.reuse.append(sorted({id(owner[id(i)]) for i in overwritable_inputs(n)
                                      if id(i) in owner}))
        self.counted = {s for s in self.size if s not in io}

    def cost(self, k: int, live: int, last: set[int]) -> tuple[int, int]:
        """(bytes live while node k runs, bytes live after it), given ``live`` bytes before and
        the storages ``last`` that die after node k (read for the last time, or never read)."""
        alloc = sum(self.size[s] for s in self.allocs[k] if s in self.counted)
        freed = sum(self.size[s] for s in last if s in self.counted)
        reused = max((self.size[s] for s in self.reuse[k] if s in last and s in self.counted),
                     default=0)
        return live + alloc - min(reused, alloc), live + alloc - freed

    def peak(self, order: Sequence[int]) -> int:
        """Peak counted bytes over the node order given as indices into ``self.nodes``."""
        remaining: dict[int, int] = {}
        for k in order:
            for s in self.reads[k]:
                remaining[s] = remaining.get(s, 0) + 1
        live = peak = 0
        for k in order:
            for s in self.reads[k]:
                remaining[s] -= 1
            last = {s for s in self.reads[k] if remaining[s] == 0}
            last |= {s for s in self.allocs[k] if not remaining.get(s)}  # never read
            during, live = self.cost(k, live, last)
            peak = max(peak, during)
        return peak


def peak_live_bytes(g: Graph) -> int:
    """The most bytes of intermediate storage live at once over ``g.nodes`` (views share their
    input's storage, elementwise ops may run in place; graph inputs, outputs and constants are
    not counted)."""
    model = StorageModel(g)
    return model.peak(range(len(model.nodes)))
