"""The compile report: per node op, output shape, MACs, parameter bytes, arena offset and size;
totals of weights, arena beside its lower bound and the naive sum of intermediates; and the
memory-plan picture (:func:`plot_memory_plan`, matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Collection, NamedTuple

import numpy as np

from .ir import Graph, Node

if TYPE_CHECKING:
    from .driver import CompiledModel


def macs(n: Node) -> int:
    """Multiply-accumulates of a node (Conv/ConvTranspose/Gemm/MatMul and their fused forms, the
    recurrent layers' gate products); 0 for everything else."""
    op = n.op.split(".")[-1]
    y = n.outputs[0]
    if op in ("Conv", "FusedConv", "ConvInteger", "QLinearConv"):
        w = n.inputs[3 if op == "QLinearConv" else 1].shape
        return y.type.size * int(np.prod(w[1:]))
    if op in ("QGemm", "QLinearMatMul", "MatMulInteger"):
        a = n.inputs[0].shape
        k = a[0] if op == "QGemm" and n.attrs.get("transA", 0) else a[-1]
        return y.type.size * int(k)
    if op == "ConvTranspose":
        w = n.inputs[1].shape
        return n.inputs[0].type.size * int(np.prod(w[1:]))
    if op in ("Gemm", "FusedGemm", "MatMul"):
        a = n.inputs[0].shape
        k = a[-1] if not (op != "MatMul" and n.attrs.get("transA", 0)) else a[0]
        return y.type.size * int(k)
    if op in ("LSTM", "GRU", "RNN"):   # per step and batch entry: W (D, G*H, I), R (D, G*H, H)
        x = n.inputs[0].shape
        steps = int(np.prod(x[:2]))
        return steps * (n.inputs[1].type.size + n.inputs[2].type.size)
    return 0


def param_bytes(n: Node, float16: Collection[str] = ()) -> int:
    """Bytes of constant inputs as stored (a splat constant stores one element; a constant named
    in ``float16``, a float16 weight that passes.float16_compute widened, stores 2 bytes each)."""
    from onnxcc.codegen.lower import is_splat

    from onnxcc.ops import get_op

    if "view" in get_op(n).traits:  # a Reshape's shape input is not stored
        return 0
    total = 0
    for v in n.inputs:
        if v is not None and v.const is not None:
            total += v.dtype.itemsize if is_splat(v.const) else \
                v.const.size * (2 if v.name in float16 else v.dtype.itemsize)
    return total


def format_hls_report(cm: CompiledModel) -> str:
    """The FPGA report: per kernel its node, op, output type, accumulator, and the estimates
    of ``onnxcc.codegen.hls.estimate`` (II and latency in cycles, multipliers, DSP, BRAM18,
    LUT, FF); then the totals against the part."""
    man = cm.mmap
    est = man["estimates"]
    outs = {n.name: n.outputs[0].name for n in cm.graph.nodes}
    rows = [("node", "op", "output type", "accumulator", "II", "latency", "mult", "DSP",
             "BRAM18", "LUT", "FF")]
    for e in est["layers"]:
        node = e["node"]
        rows.append((node[:32], e["op"].replace("onnxcc.", "") or "copy",
                     man["types"].get(outs.get(node, ""), "-"), man["accumulators"].get(node, "-"),
                     str(e["ii"]), f"{e['latency']:,}", str(e["multipliers"]), f"{e['dsp']:,}",
                     f"{e['bram18']:,}", f"{e['lut']:,}", f"{e['ff']:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    t, part = est["total"], est["part"] or {}
    clock = man["clock_ns"]
    lines += ["",
              f"model {cm.name}  target {cm.target.name} ({man['part']}, {clock:g} ns)  "
              f"{man['io']}  estimated, not synthesized",
              f"latency      {t['latency']:>12,} cycles  ({t['latency'] * clock / 1000:,.2f} us)",
              f"interval     {t['ii']:>12,} cycles  (a new input every "
              f"{t['ii'] * clock / 1000:,.2f} us{', layers overlap' if man['io'] == 'io_stream' else ''})"]
    for key in ("dsp", "bram18", "lut", "ff"):
        have = part.get(key)
        share = f"  ({t[key] / have:.1%} of {have:,})" if have else ""
        lines.append(f"{key.upper():12s} {t[key]:>12,}{share}")
    return "\n".join(lines)


def format_report(cm: CompiledModel) -> str:
    """A plain-text table for ``CompiledModel.report()`` (bytes, MACs); the FPGA report for an
    HLS target."""
    if cm.target.backend == "hls":
        return format_hls_report(cm)
    g = cm.graph
    plan = g.meta["memory_plan"]
    rows = [("node", "op", "output", "MACs", "param B", "space", "offset", "bytes")]
    for n in g.nodes:
        b = plan.buffers.get(n.outputs[0].name)
        rows.append((n.name[:32], n.op.replace("onnxcc.", ""), str(n.outputs[0].type), f"{macs(n):,}",
                     f"{param_bytes(n, g.meta.get('float16_weights', ())):,}", b.space if b else "-", str(b.offset) if b else "-",
                     f"{b.size:,}" if b else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    total_macs = sum(macs(n) for n in g.nodes)
    ratio = plan.arena_size / plan.lower_bound if plan.lower_bound else 1.0
    lines += ["",
              f"model {cm.name}  target {cm.target.name}  nodes {len(g.nodes)}  MACs {total_macs:,}",
              f"weights      {cm.weights_size:>14,} bytes",
              f"arena        {plan.arena_size:>14,} bytes  (lower bound {plan.lower_bound:,}; "
              f"ratio {ratio:.3f}; naive sum of intermediates {plan.naive:,})",
              f"in place     {len(plan.inplace)} nodes"]
    choice = g.meta.get("patch")
    if choice is not None:
        lines.append(choice.summary())
    if getattr(cm.target, "sram_bytes", None):
        lines.append(f"{cm.target.name}: arena uses {plan.arena_size / cm.target.sram_bytes:.1%} of "
                     f"{cm.target.sram_bytes:,} B SRAM; weights {cm.weights_size / cm.target.flash_bytes:.1%} "
                     f"of {cm.target.flash_bytes:,} B flash")
        sizes = cm.cross_sizes()
        if sizes is not None:
            lines.append(f"{cm.target.name} object ({cm.target.cc} -Os): text {sizes['text']:,} B, "
                         f"data {sizes['data']:,} B, bss {sizes['bss']:,} B")
        else:
            lines.append(f"{cm.target.name} object: {cm.target.cc} not installed, sizes not measured")
    q = g.meta.get("quantization")
    if q is not None:
        lines += ["", q.table()]
    return "\n".join(lines)


class PlanRect(NamedTuple):
    """One arena tensor of the memory-plan picture: ``name``, live from schedule step ``first``
    to ``last`` (inclusive; steps index the graph's nodes), at byte ``offset`` for ``size``
    bytes; ``group`` is its storage group (values of one group share bytes on purpose)."""

    name: str
    first: int
    last: int
    offset: int
    size: int
    group: str


def plan_rects(graph: Graph) -> list[PlanRect]:
    """The arena tensors of ``graph``'s memory plan as :class:`PlanRect` (bytes, steps), in
    order of offset, then first step, then name."""
    from onnxcc.passes.liveness import value_intervals

    plan = graph.meta["memory_plan"]
    rects = []
    for v, (first, last) in value_intervals(graph).items():
        b = plan.buffers.get(v.name)
        if b is not None and b.space == "arena" and b.size:
            rects.append(PlanRect(v.name, first, last, b.offset, b.size,
                                  plan.groups.get(v.name, v.name)))
    return sorted(rects, key=lambda r: (r.offset, r.first, r.name))


def _label(s: str) -> str:
    """``s`` with each non-printable character written as its escape (``\\x1b``)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def plot_memory_plan(cm: CompiledModel, path: str | Path, *, dpi: int = 120) -> list[PlanRect]:
    """Draw the arena of ``cm`` over time into the image ``path`` (PNG, or any format
    matplotlib's Agg canvas writes by suffix) and return the rectangles drawn.

    x: schedule steps (a tensor live from step f to step l spans [f, l + 1)); y: byte offset in
    the arena. Each arena tensor is a rectangle (labeled when large enough), the step where the
    live bytes peak is a vertical line with its bytes, and the arena size and the lower bound
    (peak live bytes) are horizontal lines; the title names the model, target and arena bytes.
    Names from the model are text labels only. Uses matplotlib's Agg canvas directly, so the
    global pyplot backend is left alone. Raises OSError when ``path`` cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from .fit import fit_report, live_bytes

    g = cm.graph
    plan = g.meta["memory_plan"]
    rects = plan_rects(g)
    live = live_bytes(g)
    steps = max(len(g.nodes), 1)
    arena = plan.arena_size
    top = max(arena, 1)
    fig = Figure(figsize=(10, 6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = {}
    palette = [f"C{k}" for k in range(10)]
    for r in rects:
        color = colors.setdefault(r.group, palette[len(colors) % len(palette)])
        width = r.last + 1 - r.first
        ax.add_patch(Rectangle((r.first, r.offset), width, r.size, facecolor=color, alpha=0.55,
                               edgecolor="black", linewidth=0.6))
        if r.size >= 0.06 * top and width >= 0.08 * steps:
            ax.text(r.first + width / 2, r.offset + r.size / 2, f"{_label(r.name)}\n{r.size:,} B",
                    ha="center", va="center", fontsize=7, clip_on=True, parse_math=False)
    ax.axhline(arena, color="black", linewidth=1.2)
    ax.text(0, arena, f" arena {arena:,} B", va="bottom", fontsize=8, parse_math=False)
    ax.axhline(plan.lower_bound, color="tab:red", linestyle="--", linewidth=1)
    ax.text(steps, plan.lower_bound, f"lower bound {plan.lower_bound:,} B ", ha="right",
            va="top", fontsize=8, color="tab:red", parse_math=False)
    peak = fit_report(g, cm.target).peak_step
    if peak is not None:
        ax.axvline(peak + 0.5, color="tab:red", linewidth=1)
        ax.text(peak + 0.5, top * 1.02, f"peak: step {peak}, {live[peak]:,} B", ha="center",
                va="bottom", fontsize=8, color="tab:red", parse_math=False)
    ax.set_xlim(0, steps)
    ax.set_ylim(0, top * 1.1)
    ax.set_xlabel("schedule step (node)")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"{_label(cm.name)} on {_label(cm.target.name)}: arena {arena:,} bytes",
                 parse_math=False)
    fig.tight_layout()
    fig.savefig(str(path))
    return rects
