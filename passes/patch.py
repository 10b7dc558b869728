"""patch: patch-based execution of a CNN's first stage (MCUNetV2), chosen when it lowers the peak.

    %a = FusedConv(%x) {strides=[2,2], pads=[1,1,1,1]}; %b = FusedConv(%a) {group=8}; ...; %c
        ==>  for each patch (i, j) of a P x Q grid over %c's height and width, in turn:
               %x_ij = Slice(%x, the window of %x that patch (i, j) of %c reads)
               %a_ij = FusedConv(%x_ij) {pads: the original ones on the image's borders, 0 inside}
               ...   (a Slice crops a value when a reader needs less of it than was computed)
               %c_ij = ...
               %t_ij = onnxcc.InsertSlice(%t_prev, %c_ij) {offsets=[0, 0, row, col]}
             the rest of the graph reads the last %t_ij in place of %c

Lin et al., "MCUNetV2: Memory-Efficient Patch-based Inference for Tiny Deep Learning" (NeurIPS
2021): the first layers of a CNN hold the largest activations; run them one spatial patch at a
time, so only one patch's activations are live beside the stage's output, and recompute the
overlap of the patches' receptive fields instead of keeping it. Each patch's window is found by
walking the receptive field back from its part of the cut tensor through every node of the
stage (kernel, stride, dilation, pads): a node computes the bounding box its readers need;
padding is kept only where that box meets the image's border, since the overlap inside is real
data. The InsertSlice chain shares one buffer (trait ``inplace``: plan_memory writes each patch
into it in place), so the cut tensor is stored once; the first InsertSlice (no dest) zero-fills
it. A Slice of the image read by a Conv-like op or QuantizeLinear is a window of the input read
in place (``liveness.input_windows``), so it costs no arena either.

Stage: the nodes between a 4-D graph input and a cut value, all spatially local
(``receptive_field.window``: Conv,
onnxcc.FusedConv, QLinearConv, ConvInteger, MaxPool, AveragePool, constant-mode Pad, elementwise
ops whose other operands are constants without spatial extent, QuantizeLinear/DequantizeLinear,
onnxcc.LookupTable, com.microsoft.QLinearAdd/QLinearMul of two equal-shaped tensors); nothing outside the stage reads any of its values but the cut. Branches
inside the stage (residual Adds) are fine.
Choice: for every cut, grids of P x P patches, P rows and P columns of patches (P from 2 up to
``MAX_PATCHES``, each side at most the cut's size; :func:`grid_families`) are tried while their
extra MACs (recomputed overlap, over the whole graph's MACs) stay within ``max_recompute`` (more
patches recompute more, so the first grid over the bound ends the family); each is rewritten on a copy and planned in the order it is emitted (patch after
patch); the lowest arena wins (ties: fewer extra MACs, then fewer patches). A cut whose tensor
alone fills the best arena so far is skipped. Nothing changes unless the winner, scheduled and
planned as the pipeline will, needs a smaller arena than the unpatched graph (also scheduled and
planned). ``g.meta["patch"]`` holds a :class:`PatchChoice`
either way (what was chosen, peak and MACs with and without it).
Preconditions: constants folded, BatchNormalization folded, activations fused (each fused node
is one patch node). Ordering: after quantize and the fuse passes, before schedule and
plan_memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from onnxcc.ir import Graph, Node, TensorType, Value
from onnxcc.ops import get_op
from onnxcc.report import macs

from .manager import GraphPass
from .receptive_field import POOL_OPS, Box, Window, input_box, window

MAX_PATCHES = 8          # patches per side tried
DEFAULT_MAX_RECOMPUTE = 0.15


@dataclass
class Stage:
    """A patchable stage: graph input ``source`` (its index in ``g.inputs``), the stage's node
    indices into ``g.nodes`` (in order; the cut value is the last one's output) and their
    windows by node index."""

    source: int
    nodes: list[int]
    windows: dict[int, Window]

    def cut(self, g: Graph) -> Value:
        """The value the rest of the graph reads."""
        return g.nodes[self.nodes[-1]].outputs[0]


def find_stages(g: Graph) -> list[Stage]:
    """Every candidate stage of ``g`` (see the module docstring), shortest first per input. The
    scan of an input stops at the first node it reaches that is not spatially local."""
    stages: list[Stage] = []
    counts = g.use_counts()
    for s, x in enumerate(g.inputs):
        if len(x.shape) != 4:
            continue
        reached: dict[int, int] = {id(x): -1}   # value id -> producing node index (-1: x)
        wins: dict[int, Window] = {}
        for k, n in enumerate(g.nodes):
            if not any(v is not None and id(v) in reached for v in n.inputs):
                continue
            win = window(n)
            if win is None or any(v is not None and not v.is_const and id(v) not in reached
                                  for v in n.inputs):
                break
            wins[k] = win
            reached[id(n.outputs[0])] = k
            anc = _ancestors(g, k, reached)
            if all(wins[j].kind == "pointwise" for j in anc):
                continue
            inner = {id(g.nodes[j].outputs[0]) for j in anc if j != k}
            readers = {id(o): 0 for o in (g.nodes[j].outputs[0] for j in anc)}
            for j in anc:
                for v in g.nodes[j].inputs:
                    if v is not None and id(v) in readers:
                        readers[id(v)] += 1
            if all(readers[i] == counts.get(i, 0) for i in inner) and \
                    not any(g.nodes[j].outputs[0] in g.outputs for j in anc if j != k):
                stages.append(Stage(s, sorted(anc), {j: wins[j] for j in anc}))
    return stages


def _ancestors(g: Graph, k: int, reached: dict[int, int]) -> set[int]:
    """Node indices among ``reached``'s producers that node ``k`` depends on, ``k`` included."""
    out, todo = set(), [k]
    while todo:
        j = todo.pop()
        if j in out:
            continue
        out.add(j)
        for v in g.nodes[j].inputs:
            if v is not None and reached.get(id(v), -1) >= 0:
                todo.append(reached[id(v)])
    return out


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """``[begin, end)`` of ``parts`` near-equal ranges covering ``range(n)`` (larger ones first)."""
    q, r = divmod(n, parts)
    out, pos = [], 0
    for i in range(parts):
        size = q + (i < r)
        out.append((pos, pos + size))
        pos += size
    return out


def _union(a: Box | None, b: Box) -> Box:
    return b if a is None else tuple((min(x0, y0), max(x1, y1)) for (x0, x1), (y0, y1) in zip(a, b))


def regions(g: Graph, stage: Stage, cut_box: Box) -> tuple[dict[int, Box], dict[int, tuple]]:
    """Walk the receptive field of ``cut_box`` back through the stage: the box computed of each
    value (id -> box; the source's too) and, per stage node index, (input boxes it reads, pads
    before, pads after)."""
    boxes: dict[int, Box] = {id(stage.cut(g)): cut_box}
    reads: dict[int, tuple] = {}
    for k in reversed(stage.nodes):
        n = g.nodes[k]
        win = stage.windows[k]
        out = boxes[id(n.outputs[0])]
        need = {}
        pb = pe = (0, 0)
        for j in win.spatial:
            v = n.inputs[j]
            if win.kind == "pointwise":
                need[j] = out
            else:
                need[j], pb, pe = input_box(win, out, v.shape[2:])
            boxes[id(v)] = _union(boxes.get(id(v)), need[j])
        reads[k] = (need, pb, pe)
    return boxes, reads


def _area(box: Box) -> int:
    return math.prod(e - b for b, e in box)


def _patch_boxes(g: Graph, stage: Stage, grid: tuple[int, int]) -> Iterator[dict[int, Box]]:
    """For each patch of ``grid`` (row-major), the box computed of each value (:func:`regions`)."""
    cut = stage.cut(g)
    for rows in split(cut.shape[2], grid[0]):
        for cols in split(cut.shape[3], grid[1]):
            yield regions(g, stage, (rows, cols))[0]


def patch_macs(g: Graph, stage: Stage, grid: tuple[int, int]) -> int:
    """MACs of the stage run as ``grid`` patches (each node over the boxes its readers need)."""
    total = 0
    for boxes in _patch_boxes(g, stage, grid):
        for k in stage.nodes:
            n = g.nodes[k]
            o = n.outputs[0]
            total += macs(n) * _area(boxes[id(o)]) // (o.shape[2] * o.shape[3])
    return total


def _slice(g: Graph, v: Value, box: Box, hint: str) -> tuple[Node, Value]:
    """A Slice node taking ``box`` (spatial axes 2, 3) of ``v``."""
    starts = g.constant(f"{hint}_starts", np.array([b for b, _ in box], np.int64))
    ends = g.constant(f"{hint}_ends", np.array([e for _, e in box], np.int64))
    axes = g.constant(f"{hint}_axes", np.array([2, 3], np.int64))
    y = Value(g.fresh_name(hint), TensorType(v.shape[:2] + tuple(e - b for b, e in box), v.dtype))
    n = Node("Slice", [v, starts, ends, axes], [y], dict(get_op("Slice").attrs),
             g.fresh_name(f"{hint}_slice"), 13)
    y.producer = n
    return n, y


def _patched_node(g: Graph, n: Node, win: Window, inputs: list[Value | None], pb, pe,
                  box: Box, hint: str) -> Node:
    """A copy of ``n`` (whose window is ``win``) computing the output ``box`` from ``inputs``,
    with spatial pads ``pb``/``pe`` (a Conv-like op or a pool: the pads attribute; a Pad: its
    pads input over every axis)."""
    attrs = dict(n.attrs)
    ins = list(inputs)
    if win.kind == "conv":
        attrs["pads"] = [*pb, *pe]
        attrs["auto_pad"] = "NOTSET"
        if n.op in POOL_OPS:
            attrs["ceil_mode"] = 0
    elif win.kind == "pad":
        pads = np.array([0, 0, *pb, 0, 0, *pe], np.int64)
        if n.version < 11:
            attrs["pads"] = [int(p) for p in pads]
        else:
            ins[1] = g.constant(f"{hint}_pads", pads)
            if len(ins) > 3:
                ins = ins[:3]
    t = n.outputs[0].type
    y = Value(g.fresh_name(hint), TensorType(t.shape[:2] + tuple(e - b for b, e in box), t.dtype,
                                             t.quant))
    m = Node(n.op, ins, [y], attrs, g.fresh_name(f"{n.name or n.op}_patch"), n.version)
    y.producer = m
    return m


def build(g: Graph, stage: Stage, grid: tuple[int, int]) -> tuple[list[Node], Value]:
    """The patched stage's nodes (patch after patch, row-major) and the value that replaces the
    cut. ``g`` is only asked for fresh names and new constants."""
    x = g.inputs[stage.source]
    cut = stage.cut(g)
    out: list[Node] = []
    acc: Value | None = None
    for pi, rows in enumerate(split(cut.shape[2], grid[0])):
        for pj, cols in enumerate(split(cut.shape[3], grid[1])):
            boxes, reads = regions(g, stage, (rows, cols))
            tag = f"p{pi}_{pj}"
            have: dict[int, tuple[Value, Box]] = {}
            full = tuple((0, d) for d in x.shape[2:])
            if boxes[id(x)] == full:
                have[id(x)] = (x, full)
            else:
                nd, v = _slice(g, x, boxes[id(x)], f"{x.name}_{tag}")
                out.append(nd)
                have[id(x)] = (v, boxes[id(x)])
            for k in stage.nodes:
                n = g.nodes[k]
                need, pb, pe = reads[k]
                ins = list(n.inputs)
                for j, box in need.items():
                    v, got = have[id(n.inputs[j])]
                    if got != box:   # a reader needing less than was computed: crop
                        rel = tuple((b - g0, e - g0) for (b, e), (g0, _) in zip(box, got))
                        nd, v = _slice(g, v, rel, f"{n.inputs[j].name}_{tag}_crop")
                        out.append(nd)
                    ins[j] = v
                m = _patched_node(g, n, stage.windows[k], ins, pb, pe, boxes[id(n.outputs[0])],
                                  f"{n.outputs[0].name}_{tag}")
                out.append(m)
                have[id(n.outputs[0])] = (m.outputs[0], boxes[id(n.outputs[0])])
            piece = have[id(cut)][0]
            y = Value(g.fresh_name(f"{cut.name}_{tag}_assembled"), cut.type)
            ins_ = Node("onnxcc.InsertSlice", [acc, piece], [y],
                        {"offsets": [0, 0, rows[0], cols[0]], "shape": list(cut.shape)},
                        g.fresh_name(f"{cut.name}_insert_{tag}"), 1)
            y.producer = ins_
            out.append(ins_)
            acc = y
    assert acc is not None
    return out, acc


def apply(g: Graph, stage: Stage, grid: tuple[int, int]) -> Graph:
    """Rewrite ``g`` in place: the stage runs as ``grid`` patches; returns ``g``."""
    cut = stage.cut(g)
    old = [g.nodes[k] for k in stage.nodes]
    new, final = build(g, stage, grid)
    g.replace_all_uses(cut, final)
    g.replace(old, new)
    return g


def planned_arena(g: Graph, scheduled: bool = True, depthwise_in_place: bool = False) -> int:
    """Arena bytes of ``g`` planned after the schedule pass (or, with ``scheduled=False``, in
    its node order), on a copy: ``g`` is left as it is. ``depthwise_in_place`` as the target's
    plan_memory pass (``plan_memory.plan``)."""
    from .plan_memory import plan
    from .schedule import schedule

    h = g.copy()
    return plan(schedule(h) if scheduled else h,
                depthwise_in_place=depthwise_in_place).arena_size


@dataclass
class PatchChoice:
    """What the patch pass decided (``g.meta["patch"]``). Bytes and MACs; ``cut`` names the
    stage's last value, ``grid`` the patches (rows, columns), ``stage_nodes`` the stage's node
    count; all None when nothing was patched (``reason`` says why). ``arena_before``: the
    unpatched graph's arena once scheduled and planned; ``arena_after``: the patched one's
    (equal to before when nothing was patched). ``macs``: the unpatched graph's MACs;
    ``extra_macs``: MACs added by recomputing the patches' overlap. ``tried``: (cut, grid,
    arena, extra MACs) of every candidate planned."""

    max_recompute: float
    arena_before: int
    arena_after: int
    macs: int
    extra_macs: int = 0
    cut: str | None = None
    grid: tuple[int, int] | None = None
    stage_nodes: int = 0
    reason: str = ""
    tried: list[tuple[str, tuple[int, int], int, int]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the report."""
        share = self.extra_macs / self.macs if self.macs else 0.0
        if self.cut is None:
            return (f"patch        not applied ({self.reason}); arena {self.arena_before:,} bytes, "
                    f"bound {self.max_recompute:.0%} extra MACs")
        return (f"patch        {self.grid[0]}x{self.grid[1]} patches over {self.stage_nodes} nodes "
                f"up to {self.cut!r}: arena {self.arena_before:,} -> {self.arena_after:,} bytes; "
                f"MACs {self.macs:,} -> {self.macs + self.extra_macs:,} (+{share:.1%}, bound "
                f"{self.max_recompute:.0%})")


def grid_families(rows: int, cols: int, max_patches: int) -> list[list[tuple[int, int]]]:
    """The grids tried for a cut of ``rows`` x ``cols``, as families of growing patch counts: P x P,
    then P rows of patches spanning the width, then P columns spanning the height (P from 2 to
    ``max_patches``, each side at most the cut's size). Rows or columns alone suit a narrow map
    (a keyword-spotting spectrogram 5 wide) whose receptive field spans its width."""
    ps = range(2, max_patches + 1)
    return [[(min(p, rows), min(p, cols)) for p in ps], [(min(p, rows), 1) for p in ps],
            [(1, min(p, cols)) for p in ps]]


def grid_is_feasible(g: Graph, stage: Stage, grid: tuple[int, int]) -> bool:
    """True when every patch of ``grid`` reads a non-empty box of every value in the stage. A
    patch whose output lies wholly in a Conv's padding (a 1-wide input under pads of 2) needs
    no input at all, and its producers would be sliced to an empty window, which no kernel
    computes; such grids are not candidates."""
    return not any(e <= b for boxes in _patch_boxes(g, stage, grid)
                   for box in boxes.values() for b, e in box)


def choose(g: Graph, max_recompute: float, max_patches: int = MAX_PATCHES,
           depthwise_in_place: bool = False, fit_bytes: int | None = None
           ) -> tuple[PatchChoice, Stage | None]:
    """Evaluate every candidate (see the module docstring) without changing ``g``; arenas
    planned with ``depthwise_in_place`` as the target plans them. With ``fit_bytes`` (size
    mode: the target's SRAM) the candidate chosen is, among those whose arena fits
    ``fit_bytes``, the one that repeats the fewest nodes (patches x stage nodes: each is a
    kernel call of its own), then the smallest arena; with none fitting, the smallest arena."""
    total = sum(macs(n) for n in g.nodes)
    before = planned_arena(g, depthwise_in_place=depthwise_in_place)
    choice = PatchChoice(max_recompute, before, before, total)
    stages = find_stages(g)
    if not stages:
        choice.reason = "no stage of spatially local nodes from a 4-D input"
        return choice, None
    best: tuple | None = None
    over = 0
    for st in stages:
        cut = st.cut(g)
        stage_macs = sum(macs(g.nodes[k]) for k in st.nodes)
        if best is not None and fit_bytes is None and cut.type.nbytes >= best[0][0]:
            continue   # the cut tensor alone fills the best arena so far
        seen: set[tuple[int, int]] = {(1, 1)}
        for family in grid_families(cut.shape[2], cut.shape[3], max_patches):
            for grid in family:
                if grid in seen:
                    continue
                seen.add(grid)
                if not grid_is_feasible(g, st, grid):
                    continue
                extra = patch_macs(g, st, grid) - stage_macs
                if extra > max_recompute * total:
                    over += 1
                    break   # more patches recompute more
                h = g.copy()
                apply(h, st, grid)
                arena = planned_arena(h, scheduled=False, depthwise_in_place=depthwise_in_place)
                choice.tried.append((cut.name, grid, arena, extra))
                key = (arena, extra, grid[0] * grid[1])
                if fit_bytes is not None:
                    key = (arena > fit_bytes, grid[0] * grid[1] * len(st.nodes)) + key
                if best is None or key < best[0]:
                    best = (key, st, grid, h)
    after = planned_arena(best[3], depthwise_in_place=depthwise_in_place) \
        if best is not None else before
    if best is None or after >= before:
        choice.reason = (f"none of {len(choice.tried)} candidates lowers the arena"
                         + (f"; {over} over the recompute bound" if over else ""))
        return choice, None
    *_, extra, _ = best[0]
    st, grid = best[1], best[2]
    choice.arena_after, choice.extra_macs = after, extra
    choice.cut, choice.grid, choice.stage_nodes = st.cut(g).name, grid, len(st.nodes)
    return choice, st


def patch(max_recompute: float = DEFAULT_MAX_RECOMPUTE, max_patches: int = MAX_PATCHES,
          depthwise_in_place: bool = False, fit_bytes: int | None = None) -> GraphPass:
    """The patch pass (see the module docstring) allowing ``max_recompute`` extra MACs (a share
    of the graph's MACs, 0.15 = 15%) and up to ``max_patches`` patches per side, comparing
    arenas planned with ``depthwise_in_place`` as the target's plan_memory pass does; named
    ``patch[max_recompute=0.15]``. With ``fit_bytes`` (size mode) it picks the fewest repeated
    nodes whose arena fits that many bytes rather than the smallest arena (:func:`choose`).
    Raises ValueError for a negative bound or fewer than 2 patches per side."""
    if not max_recompute >= 0:
        raise ValueError(f"max_recompute must be >= 0, got {max_recompute}")
    if max_patches < 2:
        raise ValueError(f"max_patches must be at least 2, got {max_patches}")

    def run(g: Graph) -> Graph:
        choice, st = choose(g, max_recompute, max_patches, depthwise_in_place, fit_bytes)
        if st is not None:
            apply(g, st, choice.grid)
        g.meta["patch"] = choice
        return g

    extra = "" if max_patches == MAX_PATCHES else f",max_patches={max_patches}"
    extra += "" if fit_bytes is None else f",fit_bytes={fit_bytes}"
    return GraphPass(f"patch[max_recompute={max_recompute:g}{extra}]", run, patch.__doc__)


def with_max_recompute(pipeline: list[GraphPass], max_recompute: float | None,
                       fit_bytes: int | None = None) -> list[GraphPass]:
    """``pipeline`` with its patch pass set to ``max_recompute``: None keeps the pipeline as it
    is (the target's default); 0 removes the patch pass; a positive bound replaces it, or inserts
    it before ``schedule`` (at the end when there is none) in a pipeline without one; the new
    pass plans depthwise Convs in place when the pipeline's plan_memory pass does. With
    ``fit_bytes`` (size mode) the patch pass, the pipeline's own at its bound when
    ``max_recompute`` is None, picks the fewest repeated nodes that fit (:func:`patch`). Raises
    ValueError for a negative bound."""
    if max_recompute is None and fit_bytes is not None:
        own = [p for p in pipeline if p.name.startswith("patch[max_recompute=")]
        if own:
            max_recompute = float(own[0].name.split("=")[1].split(",")[0].rstrip("]"))
    if max_recompute is None:
        return list(pipeline)
    if max_recompute < 0:
        raise ValueError(f"max_recompute must be >= 0, got {max_recompute}")
    base = [p.name.split("[")[0] for p in pipeline]
    rest = [p for p, b in zip(pipeline, base) if b != "patch"]
    if max_recompute == 0:
        return rest
    names = [p.name.split("[")[0] for p in rest]
    at = base.index("patch") if "patch" in base else (
        names.index("schedule") if "schedule" in names else len(rest))
    in_place = any(b == "plan_memory" and "depthwise_in_place=True" in p.name
                   for p, b in zip(pipeline, base))
    return rest[:at] + [patch(max_recompute, depthwise_in_place=in_place, fit_bytes=fit_bytes)] \
        + rest[at:]
