"""plan_memory: a place for every non-constant value; ``g.meta["memory_plan"] = MemoryPlan``.

    %a = Conv(%x); %b = Relu(%a); %c = Conv(%b); %y = Concat(%b, %c)
        ==>  x: input 0 @0;  a, b: arena @0 (Relu in place);  c: arena @|b|;  y: output 0 @0
             with b at output 0 @0 and c at output 0 @|b| when Concat can be written in place

Storage groups (union-find, each member at a byte offset from its group's root):
- a view's output (trait ``view``: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout
  output 0) shares its input's storage;
- a Slice of a graph input read only by ops that index their input through strides
  (``liveness.input_windows``) is that input's bytes from the window's first element, with the
  input's strides (``Buffer.strides``): no copy, no arena;
- an elementwise node (trait ``elementwise``, FusedElementwise too) writes in place into an input
  with the output's shape and itemsize when nothing reads that input's storage later, and so does
  an ``inplace`` node (InsertSlice) into its input 0;
- a Concat whose dims before the axis multiply to 1 holds its inputs at their running offsets,
  for each input produced by a node, read only by that Concat, appearing once, whose storage
  group fits inside it.
A group holding a graph input lives in that input's buffer ("input" space), one holding a graph
output in that output's buffer ("output" space, so the last node writes straight into the user's
buffer); the rest share the "arena". A group may not hold a graph input together with anything a
node writes, nor two graph outputs, nor a graph input and a graph output: such an alias is not
made, and the code generator copies (a view's or Concat input's buffer then differs from its
output's). Arena groups get offsets greedy by size (Pisarchyk & Lee 2020: largest first, each
at the lowest aligned offset free during its live interval).
Preconditions: the final node order (after schedule). Ordering: the last pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from onnxcc.codegen.loops import contiguous_strides
from onnxcc.ir import Graph, Value
from onnxcc.ops import attr
from onnxcc.ops.shape import slice_params

from .liveness import input_windows, is_view, overwritable_inputs, value_intervals
from .manager import GraphPass, graph_pass

CONCAT_OPS = ("Concat",)  # ops whose inputs may be placed inside their output


@dataclass(frozen=True)
class Buffer:
    """Where a value lives: ``offset`` bytes into ``space`` ("arena", "input" or "output"; for the
    last two, ``index`` is the graph input/output position), ``size`` bytes. ``strides`` (in
    elements) is set for a window of a larger tensor read in place (a Slice of a graph input,
    see ``liveness.input_windows``): its elements are not contiguous; None: contiguous."""

    space: str
    index: int
    offset: int
    size: int
    strides: tuple[int, ...] | None = None


@dataclass
class MemoryPlan:
    """The memory plan of a graph; ``groups`` maps each value to its storage group (the name of
    the group's root value): values of one group alias on purpose."""

    buffers: dict[str, Buffer]
    arena_size: int
    alignment: int
    lower_bound: int
    naive: int
    inplace: list[str]
    groups: dict[str, str] = field(default_factory=dict)


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


class _Groups:
    """Union-find over values with byte offsets relative to the group root."""

    def __init__(self, g: Graph, vals: list[Value], iv: dict[Value, tuple[int, int]]) -> None:
        self.parent: dict[Value, Value] = {v: v for v in vals}
        self.rel: dict[Value, int] = {v: 0 for v in vals}
        self.members: dict[Value, list[Value]] = {v: [v] for v in vals}
        self.iv = iv
        self.inputs = {v: k for k, v in reversed(list(enumerate(g.inputs)))}
        self.outputs = {v: k for k, v in reversed(list(enumerate(g.outputs)))}
        self.view_of: dict[Value, Value] = {}  # view output -> view input (an alias if grouped)

    def find(self, v: Value) -> tuple[Value, int]:
        off = 0
        while self.parent[v] is not v:
            off += self.rel[v]
            v = self.parent[v]
        return v, off

    def off(self, v: Value) -> int:
        return self.find(v)[1]

    def extent(self, root: Value) -> tuple[int, int]:
        ms = self.members[root]
        lo = min(self.off(m) for m in ms)
        return lo, max(self.off(m) + m.type.nbytes for m in ms)

    def interval(self, root: Value) -> tuple[int, int]:
        ms = self.members[root]
        return min(self.iv[m][0] for m in ms), max(self.iv[m][1] for m in ms)

    def has_io(self, root: Value) -> bool:
        return any(m in self.inputs or m in self.outputs for m in self.members[root])

    def union(self, a: Value, b: Value, delta: int) -> bool:
        """Put b's group inside a's so that off(b) = off(a) + delta, if the result is legal."""
        (ra, oa), (rb, ob) = self.find(a), self.find(b)
        if ra is rb:
            return oa + delta == ob
        shift = oa + delta - ob
        ms = self.members[ra] + self.members[rb]
        offs = {m: self.off(m) + (shift if self.find(m)[0] is rb else 0) for m in ms}
        ins = [m for m in ms if m in self.inputs]
        outs = [m for m in ms if m in self.outputs]
        written = [m for m in ms if m not in self.inputs and not (
            m in self.view_of and self.find(self.view_of[m])[0] in (ra, rb))]
        if len(outs) > 1 or len(ins) > 1 or (ins and (outs or written)):
            return False
        lo, hi = min(offs.values()), max(offs[m] + m.type.nbytes for m in ms)
        for io in ins + outs:  # the user's buffer must hold the whole group
            if offs[io] != lo or offs[io] + io.type.nbytes < hi:
                return False
        self.parent[rb], self.rel[rb] = ra, shift
        self.members[ra] = ms
        del self.members[rb]
        return True


def _alias_views(g: Graph, gr: _Groups) -> None:
    for n in g.nodes:
        if is_view(n) and not n.inputs[0].is_const:
            gr.view_of[n.outputs[0]] = n.inputs[0]
            gr.union(n.inputs[0], n.outputs[0], 0)


def _alias_windows(g: Graph, gr: _Groups) -> dict[str, tuple[int, ...]]:
    """Put each in-place window of a graph input (``liveness.input_windows``) inside the input at
    its first element; returns value name -> element strides of the windows placed."""
    placed = {}
    for n in input_windows(g).values():
        x, y = n.inputs[0], n.outputs[0]
        strides = contiguous_strides(x.shape)
        first = sum(b * s for b, s in zip(slice_params(n)[0], strides))
        gr.view_of[y] = x
        if gr.union(x, y, first * x.dtype.itemsize):
            placed[y.name] = strides
        else:
            del gr.view_of[y]
    return placed


def _alias_inplace(g: Graph, gr: _Groups, step: dict[int, int], depthwise: bool = False
                   ) -> list[str]:
    done = []
    if depthwise:
        from onnxcc.codegen.lower.nn import depthwise_in_place_ok
    for n in g.nodes:
        cands = overwritable_inputs(n)
        if depthwise and not cands and depthwise_in_place_ok(n):
            cands = [n.inputs[0]]
        if not cands:
            continue
        o = n.outputs[0]
        for i in cands:
            root, off = gr.find(i)
            if gr.interval(root)[1] != step[id(n)] or any(
                    m in gr.outputs for m in gr.members[root]):
                continue  # read later (or a graph output): writing over it would clobber it
            others = [j for j in n.inputs if j is not None and j is not i and not j.is_const
                      and gr.find(j)[0] is root]
            if any(gr.off(j) != off or j.shape != i.shape for j in others):
                continue  # another input reads the same bytes at other positions
            if gr.union(i, o, 0):
                done.append(n.name)
                break
    return done


def _alias_concat(g: Graph, gr: _Groups, step: dict[int, int]) -> None:
    counts = g.use_counts()
    for n in g.nodes:
        if n.op not in CONCAT_OPS:
            continue
        o = n.outputs[0]
        axis = attr(n, "axis") % len(o.shape)
        if math.prod(o.shape[:axis]) != 1:
            continue
        running = 0
        for v in n.inputs:
            if (v.producer is not None and counts.get(id(v)) == 1 and not v.is_const
                    and sum(1 for u in n.inputs if u is v) == 1):
                root, off = gr.find(v)
                lo, hi = gr.extent(root)
                # the group must fit in v's chunk and be dead once the Concat has run (an
                # in-place reader of the output may overwrite the chunk afterwards)
                if lo >= off and hi <= off + v.type.nbytes \
                        and gr.interval(root)[1] == step[id(n)]:
                    gr.union(o, v, running)
            running += v.type.nbytes


def _place(sizes: list[tuple[Value, int, tuple[int, int]]], alignment: int) -> dict[Value, int]:
    """Greedy by size: largest first, lowest aligned offset free over its live interval."""
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    where: dict[Value, int] = {}
    for root, size, (first, last) in sorted(sizes, key=lambda t: (-t[1], t[2][0], t[0].name)):
        busy = sorted((o, s) for o, s, f, l in placed if f <= last and first <= l)
        cand = 0
        for o, s in busy:
            if cand + size <= o:
                break
            cand = max(cand, _align(o + s, alignment))
        where[root] = cand
        placed.append((cand, size, first, last))
    return where


def plan(g: Graph, alignment: int = 16, share: bool = True, depthwise_in_place: bool = False
         ) -> MemoryPlan:
    """The memory plan of ``g`` in its current node order (see the module docstring). With
    ``share=False`` (HLS, where each tensor is an array of its own type) only views alias their
    input: no in-place writes, no Concat placement, and no two arena groups overlap even when
    their lifetimes do not. With ``depthwise_in_place`` (microcontroller targets, whose
    depthwise lowerings compute channel by channel through a plane of scratch) a depthwise Conv
    that reads its input last writes its output over it
    (``codegen.lower.nn.depthwise_in_place_ok``; TinyEngine's in-place depthwise)."""
    iv = value_intervals(g)
    vals = list(iv)
    step = {id(n): k for k, n in enumerate(g.nodes)}
    gr = _Groups(g, vals, iv)
    _alias_views(g, gr)
    windows = _alias_windows(g, gr) if share else {}
    inplace = _alias_inplace(g, gr, step, depthwise_in_place) if share else []
    if share:
        _alias_concat(g, gr, step)

    roots = [v for v in vals if gr.parent[v] is v]
    arena = [r for r in roots if not gr.has_io(r)]
    ext = {r: gr.extent(r) for r in roots}
    whole = (0, max(len(g.nodes), 1))
    base = _place([(r, ext[r][1] - ext[r][0], gr.interval(r) if share else whole)
                   for r in arena], alignment)
    buffers: dict[str, Buffer] = {}
    for v in vals:
        root, off = gr.find(v)
        ms = gr.members[root]
        io_in = [m for m in ms if m in gr.inputs]
        io_out = [m for m in ms if m in gr.outputs]
        if io_in or io_out:
            space, io = ("input", io_in[0]) if io_in else ("output", io_out[0])
            index = gr.inputs[io] if io_in else gr.outputs[io]
            buffers[v.name] = Buffer(space, index, off - gr.off(io), v.type.nbytes,
                                     windows.get(v.name))
        else:
            buffers[v.name] = Buffer("arena", 0, base[root] + off - ext[root][0], v.type.nbytes)
    end = max((base[r] + ext[r][1] - ext[r][0] for r in arena), default=0)
    n_steps = max(len(g.nodes), 1)
    live = [0] * n_steps
    for r in arena:
        first, last = gr.interval(r)
        for k in range(first, last + 1):
            live[k] += ext[r][1] - ext[r][0]
    io = set(gr.inputs) | set(gr.outputs)
    return MemoryPlan(
        buffers=buffers, arena_size=_align(end, alignment), alignment=alignment,
        lower_bound=max(live, default=0),
        naive=sum(v.type.nbytes for v in vals if v not in io), inplace=inplace,
        groups={v.name: gr.find(v)[0].name for v in vals})


def _scratch_offset(g: Graph, step: int, nbytes: int) -> int:
    """The lowest aligned arena offset where ``nbytes`` of scratch of node ``step`` overlap no
    value live at that step (the node's inputs and outputs are), the plan's arena end when no
    gap fits."""
    p: MemoryPlan = g.meta["memory_plan"]
    busy = sorted((b.offset, b.size) for v, (first, last) in value_intervals(g).items()
                  if first <= step <= last and (b := p.buffers.get(v.name)) is not None
                  and b.space == "arena" and b.size)
    cand = 0
    for o, s in busy:
        if cand + nbytes <= o:
            break
        cand = max(cand, _align(o + s, p.alignment))
    return cand


def place_scratch(g: Graph, step: int, nbytes: int) -> int:
    """The arena offset of ``nbytes`` of scratch that node ``step`` of the planned graph ``g``
    uses while it runs (a kernel's local array on a target whose every mutable byte lives in
    the caller's arena, see ``Target.scratch_in_arena``): the lowest aligned offset that no value
    live at that step occupies (the node's inputs and outputs are live there), after the plan's
    arena when no gap fits, and then ``g.meta["memory_plan"].arena_size`` grows to hold it.
    Scratch of different steps may share bytes (never live together); the same request on the
    same plan gives the same offset, so lowering twice is harmless."""
    p: MemoryPlan = g.meta["memory_plan"]
    cand = _scratch_offset(g, step, nbytes)
    p.arena_size = max(p.arena_size, _align(cand + nbytes, p.alignment))
    return cand


def scratch_fits(g: Graph, step: int, nbytes: int) -> bool:
    """Whether :func:`place_scratch` would place ``nbytes`` of scratch of node ``step`` in a gap
    of the arena as planned so far, without growing it."""
    p: MemoryPlan = g.meta["memory_plan"]
    return _align(_scratch_offset(g, step, nbytes) + nbytes, p.alignment) <= p.arena_size


def check_plan(g: Graph) -> None:
    """Assert that ``g.meta["memory_plan"]`` is sound for ``g``'s node order: every non-constant
    value has a buffer inside its space, arena groups start aligned, and no two values of
    different groups that are live at the same step overlap. Raises AssertionError."""
    p: MemoryPlan = g.meta["memory_plan"]
    iv = value_intervals(g)
    sizes = {"input": [v.type.nbytes for v in g.inputs],
             "output": [v.type.nbytes for v in g.outputs]}
    for v in iv:
        b = p.buffers.get(v.name)
        if b is None or b.size != v.type.nbytes or b.offset < 0:
            raise AssertionError(f"value {v.name!r} has no (or a wrong) buffer: {b}")
        limit = p.arena_size if b.space == "arena" else sizes[b.space][b.index]
        if b.offset + b.size > limit:
            raise AssertionError(f"value {v.name!r} lies outside its space: {b}")
    starts: dict[str, int] = {}
    for name, b in p.buffers.items():
        if b.space == "arena":
            starts[p.groups[name]] = min(starts.get(p.groups[name], b.offset), b.offset)
    if p.arena_size % p.alignment or any(s % p.alignment for s in starts.values()):
        raise AssertionError("arena size or a group's start is not aligned")
    arena = sorted(((p.buffers[v.name].offset, v) for v in iv
                    if p.buffers[v.name].space == "arena" and v.type.nbytes), key=lambda t: t[0])
    for k, (off_a, a) in enumerate(arena):
        end_a = off_a + a.type.nbytes
        for off_b, b in arena[k + 1:]:
            if off_b >= end_a:
                break
            if p.groups[a.name] != p.groups[b.name] and \
                    iv[a][0] <= iv[b][1] and iv[b][0] <= iv[a][1]:
                raise AssertionError(f"{a.name!r} and {b.name!r} overlap while both live")


def plan_memory(alignment: int = 16, share: bool = True, depthwise_in_place: bool = False
                ) -> GraphPass:
    """The plan_memory pass for ``alignment`` (bytes, a power of two), ``share`` and
    ``depthwise_in_place`` (see :func:`plan`): named "plan_memory" for the defaults, else
    "plan_memory[...]" with the options that differ, e.g. "plan_memory[alignment=N]"."""
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, got {alignment}")

    def run(g: Graph) -> Graph:
        g.meta["memory_plan"] = plan(g, alignment, share, depthwise_in_place)
        return g

    opts = ([f"alignment={alignment}"] if alignment != 16 or not share or depthwise_in_place
            else []) + ([] if share else ["share=False"]) \
        + (["depthwise_in_place=True"] if depthwise_in_place else [])
    name = "plan_memory" + (f"[{','.join(opts)}]" if opts else "")
    return GraphPass(name, run, plan_memory.__doc__)


@graph_pass("plan_memory")
def _plan_memory_default(g: Graph) -> Graph:
    """Memory plan with 16-byte alignment (see the module docstring); the last pass."""
    g.meta["memory_plan"] = plan(g, 16)
    return g

