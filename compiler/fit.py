"""Fit before you build: does a planned graph fit a target's SRAM and flash, and if not, why.

``fit_report(g, tgt)`` reads the memory plan of ``g`` (after the target's pipeline) and returns a
:class:`FitReport`: the arena beside the SRAM, the weights beside the flash, the schedule step
where the arena's live bytes peak and the tensors live there, the largest weights, and, for a
model that does not fit, what would help (int8, a bigger MCU part, a smaller input) with
estimated sizes. ``check_memory_budget`` (driver) raises MemoryBudgetError from it; ``onnxcc
check`` prints :func:`format_fit`. All sizes are in bytes; steps index ``g.nodes``.

Names taken from the model are printed with ``repr()`` so control characters never reach a
terminal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ir import Graph


@dataclass(frozen=True)
class LiveTensor:
    """A storage group of the arena live at a step: ``name`` (the member live there, or the
    group's outermost value), ``nbytes`` its bytes in the arena, ``producer`` the name of the
    node that writes it (None for none), ``aliases`` other values sharing those bytes (in place,
    views, Concat inputs) live at the same step; ``group`` names the value whose storage it
    shares (a Concat's output, an in-place result) when that is another."""

    name: str
    nbytes: int
    producer: str | None
    aliases: tuple[str, ...] = ()
    group: str = ""   # the storage group (its root value), when it is not ``name``
    alias_producers: tuple[str | None, ...] = ()   # the node writing each alias


@dataclass
class FitReport:
    """How a planned graph fits a target (bytes; ``None`` limits: the target has none)."""

    model: str
    target: str
    arena_bytes: int
    lower_bound: int
    sram_bytes: int | None
    weights_bytes: int
    flash_bytes: int | None
    steps: int
    peak_step: int | None           # the step (index into g.nodes) where live arena bytes peak
    peak_node: str | None           # the node run at that step
    peak_op: str | None
    live_at_peak: list[LiveTensor]  # largest first
    largest_weights: list[tuple[str, int]]   # (name, bytes), largest first
    live_bytes: list[int] = field(default_factory=list)   # live arena bytes per step
    helps: list[str] = field(default_factory=list)        # what would help, when it does not fit

    @property
    def fits_sram(self) -> bool:
        """Whether the arena fits the SRAM (always, without a limit)."""
        return self.sram_bytes is None or self.arena_bytes <= self.sram_bytes

    @property
    def fits_flash(self) -> bool:
        """Whether the weights fit the flash (always, without a limit)."""
        return self.flash_bytes is None or self.weights_bytes <= self.flash_bytes

    @property
    def fits(self) -> bool:
        """Whether both fit."""
        return self.fits_sram and self.fits_flash


def weight_values(g: Graph) -> list[tuple[Any, int]]:
    """(constant value, bytes as stored) for every constant a node reads (a splat constant
    stores one element), largest first."""
    from onnxcc.codegen.lower import is_splat

    consts = {id(v): v for n in g.nodes for v in n.inputs if v is not None and v.const is not None}
    out = [(v, v.dtype.itemsize if is_splat(v.const) else v.const.nbytes) for v in consts.values()]
    return sorted(out, key=lambda t: (-t[1], t[0].name))


def arena_groups(g: Graph) -> dict[str, tuple[int, int, int, int]]:
    """Storage group root name -> (first step, last step, offset, bytes) of each arena group of
    ``g``'s memory plan (offset and bytes span every member)."""
    from onnxcc.passes.liveness import value_intervals

    plan = g.meta["memory_plan"]
    out: dict[str, list[int]] = {}
    for v, (first, last) in value_intervals(g).items():
        b = plan.buffers.get(v.name)
        if b is None or b.space != "arena" or not b.size:
            continue
        root = plan.groups.get(v.name, v.name)
        if root not in out:
            out[root] = [first, last, b.offset, b.offset + b.size]
        else:
            r = out[root]
            r[0], r[1] = min(r[0], first), max(r[1], last)
            r[2], r[3] = min(r[2], b.offset), max(r[3], b.offset + b.size)
    return {k: (f, la, lo, hi - lo) for k, (f, la, lo, hi) in out.items()}


def live_bytes(g: Graph) -> list[int]:
    """Arena bytes live at each step of ``g.nodes`` (the sum of the live storage groups); its
    maximum is the plan's lower bound."""
    live = [0] * max(len(g.nodes), 1)
    for first, last, _, size in arena_groups(g).values():
        for k in range(first, last + 1):
            live[k] += size
    return live


def _int8_bytes(v: Any) -> int:
    """Bytes of ``v`` with its float elements as int8 (other dtypes unchanged)."""
    n = v.type.nbytes
    return n // v.dtype.itemsize if np.issubdtype(v.dtype, np.floating) else n


def fit_report(g: Graph, tgt: Any, model: str | None = None, top: int = 5) -> FitReport:
    """The :class:`FitReport` of the planned graph ``g`` (``g.meta["memory_plan"]``) on ``tgt``;
    ``top`` weights are listed. Suggestions (``helps``) are filled in when it does not fit."""
    from onnxcc.passes.liveness import value_intervals

    plan = g.meta["memory_plan"]
    weights = weight_values(g)
    wbytes = sum(b for _, b in weights)
    live = live_bytes(g)
    peak = None
    if any(live):   # ties: the step where most bytes of values (not only reserved) are live
        own = [0] * len(live)
        for v, (first, last) in value_intervals(g).items():
            b = plan.buffers.get(v.name)
            if b is not None and b.space == "arena":
                for k in range(first, last + 1):
                    own[k] += b.size
        peak = max(range(len(live)), key=lambda k: (live[k], own[k], -k))
    at_peak: list[LiveTensor] = []
    vals = {}
    if peak is not None:
        groups = arena_groups(g)
        members: dict[str, list[Any]] = {}
        for v, (first, last) in value_intervals(g).items():
            b = plan.buffers.get(v.name)
            if b is not None and b.space == "arena" and b.size and first <= peak <= last:
                members.setdefault(plan.groups.get(v.name, v.name), []).append(v)
                vals[v.name] = v
        for root, ms in members.items():
            ms.sort(key=lambda v: (-v.type.nbytes, v.name))
            head = ms[0]
            at_peak.append(LiveTensor(head.name, groups[root][3],
                                      head.producer.name if head.producer is not None else None,
                                      tuple(m.name for m in ms[1:]),
                                      root if root != head.name else "",
                                      tuple(m.producer.name if m.producer is not None else None
                                            for m in ms[1:])))
        at_peak.sort(key=lambda t: (-t.nbytes, t.name))
    node = g.nodes[peak] if peak is not None and g.nodes else None
    r = FitReport(model=model or g.name or "model", target=tgt.name, arena_bytes=plan.arena_size,
                  lower_bound=plan.lower_bound, sram_bytes=getattr(tgt, "sram_bytes", None),
                  weights_bytes=wbytes, flash_bytes=getattr(tgt, "flash_bytes", None),
                  steps=len(g.nodes), peak_step=peak, peak_node=node.name if node else None,
                  peak_op=node.op if node else None, live_at_peak=at_peak,
                  largest_weights=[(v.name, b) for v, b in weights[:top]], live_bytes=live)
    if not r.fits:
        r.helps = _helps(g, r, weights, vals)
    return r


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.0f} KiB" if n % 1024 == 0 else f"{n:,} B"


def smallest_mcu(arena: int, weights: int) -> Any:
    """The onnxcc MCU target (``onnxcc.targets.TARGETS``, family "mcu") with the least SRAM,
    then flash, whose SRAM holds ``arena`` bytes and flash ``weights`` bytes; None when none."""
    from onnxcc.targets import TARGETS

    ok = [t for t in TARGETS.values() if t.family == "mcu" and t.sram_bytes is not None
          and t.flash_bytes is not None and t.sram_bytes >= arena and t.flash_bytes >= weights]
    return min(ok, key=lambda t: (t.sram_bytes, t.flash_bytes, t.name), default=None)


def _helps(g: Graph, r: FitReport, weights: list[tuple[Any, int]], vals: dict) -> list[str]:
    """What would make ``r`` fit, each with numbers (estimates for int8 and the smaller input)."""
    helps = []
    align = g.meta["memory_plan"].alignment
    # int8: float weights and activations take one byte per element (bias stays wider: ~)
    w8 = sum(min(b, _int8_bytes(v)) for v, b in weights)
    live = sum(t.nbytes for t in r.live_at_peak)
    live8 = sum(t.nbytes * _int8_bytes(vals[t.name]) / max(vals[t.name].type.nbytes, 1)
                for t in r.live_at_peak)
    ratio = live8 / live if live else 1.0
    a8 = -(-math.ceil(r.arena_bytes * ratio) // align) * align
    if w8 < r.weights_bytes or a8 < r.arena_bytes:
        fit8 = (r.sram_bytes is None or a8 <= r.sram_bytes) and \
            (r.flash_bytes is None or w8 <= r.flash_bytes)
        where = f"fits {r.target}" if fit8 else f"still too big for {r.target}"
        part8 = smallest_mcu(a8, w8)
        also = f"; smallest MCU target then: {part8.name}" if part8 is not None and not fit8 else ""
        helps.append(f"int8 quantization (--quantize int8 --calibration DATA): weights ~{w8:,} "
                     f"bytes, arena ~{a8:,} bytes (estimated, ~4x smaller: {where}{also})")
    else:
        helps.append("int8 quantization: the tensors are not float, it would not shrink them")
    part = smallest_mcu(r.arena_bytes, r.weights_bytes)
    if part is not None:
        helps.append(f"a bigger part: {part.name} ({part.board or 'MCU'}: {_kib(part.sram_bytes)} "
                     f"SRAM, {_kib(part.flash_bytes)} flash) is the smallest onnxcc MCU target "
                     f"that fits {r.arena_bytes:,} bytes of arena and {r.weights_bytes:,} of weights")
    else:
        helps.append(f"a bigger part: no onnxcc MCU target has {r.arena_bytes:,} bytes of SRAM "
                     f"and {r.weights_bytes:,} bytes of flash")
    if not r.fits_sram:
        helps.append(_smaller_input(g, r, align))
    return helps


def _smaller_input(g: Graph, r: FitReport, align: int) -> str:
    """The smaller-input suggestion: batch 1, or half the last two dims, with the arena scaled
    by the input's size (an estimate: intermediates grow with the input)."""
    ins = [v for v in g.inputs if len(v.shape) >= 1 and math.prod(v.shape) > 1]
    if not ins:
        return "a smaller input: the inputs are already scalars"
    v = max(ins, key=lambda v: v.type.nbytes)
    shape = list(v.shape)
    if shape[0] > 1:
        new = [1, *shape[1:]]
    elif len(shape) >= 3:
        new = [*shape[:-2], max(shape[-2] // 2, 1), max(shape[-1] // 2, 1)]
    else:
        new = [*shape[:-1], max(shape[-1] // 2, 1)]
    scale = math.prod(new) / math.prod(shape)
    est = -(-math.ceil(r.arena_bytes * scale) // align) * align
    dims = ",".join(map(str, new))
    flag = v.name if re.fullmatch(r"[\w.:/-]+", v.name) else "NAME"
    return (f"a smaller input: {v.name!r} {shape} -> {new} (--input-shape {flag}={dims}, "
            f"input_shapes=) needs an arena of ~{est:,} bytes (estimated, scaling with the input)")


def budget_message(r: FitReport) -> str:
    """The MemoryBudgetError text of a report that does not fit: the SRAM and/or flash line,
    the tensors live at the peak, the largest weights."""
    lines = []
    if not r.fits_sram:
        big = ", ".join(f"{t.name!r} ({t.nbytes:,} B)" for t in r.live_at_peak[:3])
        lines.append(f"the arena needs {r.arena_bytes:,} bytes but {r.target} has "
                     f"{r.sram_bytes:,} bytes of SRAM; largest tensors: {big}")
    if not r.fits_flash:
        lines.append(f"the weights need {r.weights_bytes:,} bytes but {r.target} has "
                     f"{r.flash_bytes:,} bytes of flash")
    lines += ["  " + s for s in _peak_lines(r)]
    if r.largest_weights:
        lines.append("  largest weights: " + ", ".join(f"{n!r} ({b:,} B)"
                                                        for n, b in r.largest_weights))
    return "\n".join(lines)


def _peak_lines(r: FitReport) -> list[str]:
    if r.peak_step is None:
        return ["no intermediate tensor lives in the arena"]
    head = (f"live at the peak (step {r.peak_step} of steps 0-{r.steps - 1}, node {r.peak_node!r} "
            f"({r.peak_op}), {r.live_bytes[r.peak_step]:,} bytes):")
    rows = []
    def src(name: str, producer: str | None) -> str:
        return f"{name!r} from node {producer!r}" if producer is not None else f"{name!r}"

    for t in r.live_at_peak:
        names = ", ".join(src(n, p) for n, p in zip((t.name, *t.aliases),
                                                     (t.producer, *t.alias_producers)))
        where = (f" (in the storage of {t.group!r})" if t.group
                 else " (in place, sharing these bytes)" if t.aliases else "")
        rows.append(f"  {t.nbytes:>12,} B  {names}{where}")
    return [head, *rows]


def format_fit(r: FitReport) -> str:
    """The short table ``onnxcc check`` prints: arena vs SRAM and weights vs flash with
    percentages, the peak step and the tensors live there."""
    def row(what: str, used: int, have: int | None) -> str:
        share = f"{used / have:7.1%}" if have else "      -"
        avail = f"{have:,}" if have is not None else "no limit"
        return f"{what:16s} {used:>14,} {avail:>14} {share}"

    lines = [f"{'':16s} {'bytes':>14} {'available':>14} {'share':>7}",
             row("arena / SRAM", r.arena_bytes, r.sram_bytes),
             row("weights / flash", r.weights_bytes, r.flash_bytes),
             f"lower bound {r.lower_bound:,} bytes (the most bytes live at one step)"]
    return "\n".join(lines + _peak_lines(r))
