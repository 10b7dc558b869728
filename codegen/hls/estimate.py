"""Latency and resource estimates of an HLS design, from its loop IR, before any synthesis.

First-order formulas in the spirit of FINN's estimators (Umuroglu et al., "FINN: A Framework for
Fast, Scalable Binarized Neural Network Inference", FPGA'17, and its ``bram_estimation`` /
``lut_estimation``) and of hls4ml's reuse-factor model (Duarte et al., JINST 13 (2018) P07027):
they are not calibrated against Vitis HLS reports here (no Vitis on this machine), so read them
as orders of magnitude that rank designs, not as synthesis results.

Per kernel, for each loop marked ``pipelined(II)`` (the loop over outputs; everything inside it
is unrolled by Vitis):

- ``M``: the multiplies of two non-constant operands per iteration (inner constant-trip loops
  multiplied out; of an if/else the larger branch). With reuse factor ``R = II`` each
  multiplier serves ``R`` products: ``ceil(M / R)`` multipliers.
  Integer products count when both operands read arrays (the integer path's int8 x int8; not
  index arithmetic) or when the product is 64-bit and neither operand is a constant (the
  fixed-point products of the integer Softmax, ``codegen/lower/quant_softmax.py``), and each
  ``requantize`` is one 32 x 32 product.
- DSP per multiplier: 0 when the narrower operand has at most 10 bits (Vivado maps such
  products to LUTs), else ``ceil(wa / A) * ceil(wb / 18)`` with ``A = 27`` on UltraScale(+)
  DSP48E2 and ``25`` on 7-series DSP48E1 (``wa >= wb``).
- II: ``R``, or more when an array kept in block RAM (more than :data:`PARTITION_LIMIT`
  elements; smaller arrays are partitioned into registers) is read more often per iteration
  than its two ports allow: ``ceil(reads / 2)``.
- latency in cycles: ``(N - 1) * II + depth`` with ``N`` the iterations of the pipelined loop
  and the loops around it (a perfect nest is flattened), ``depth = 2 + 3 [if M] +
  ceil(log2(M + 1))`` (read, multiplier stages, adder tree). Kernels run one after another.
- BRAM18 per array in block RAM: ``ceil(elements / 1024) * ceil(width / 18)`` (the 1K x 18
  configuration).
- LUT: per multiplier in LUTs ``wa * wb / 2``, plus one accumulator-wide adder per multiplier;
  FF: the bits of arrays in registers plus one accumulator register per multiplier.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from onnxcc.codegen.loops import (Binary, Call, Const, Expr, If, Kernel, Load, Loop, MulAdd, Stmt,
                                  children, stmt_exprs)

PARTITION_LIMIT = 4096   # arrays up to this many elements are partitioned into registers
LUT_MUL_BITS = 10        # products whose narrower operand is this wide or less use LUTs


@dataclass
class LayerEstimate:
    """One kernel's estimate: ``ii`` and ``latency`` in clock cycles, ``multipliers`` after
    sharing, resources as counts of the part's DSP slices, BRAM18 blocks, LUTs and FFs."""

    kernel: str
    node: str
    op: str
    ii: int
    latency: int
    multipliers: int
    dsp: int
    bram18: int
    lut: int
    ff: int

    def row(self) -> dict[str, Any]:
        return asdict(self)


def dsp_per_multiplier(wa: int, wb: int, dsp_a: int = 27) -> int:
    """DSP slices for one ``wa x wb`` signed product (see the module docstring)."""
    wa, wb = max(wa, wb), min(wa, wb)
    if wb <= LUT_MUL_BITS:
        return 0
    return math.ceil(wa / dsp_a) * math.ceil(wb / 18)


def _trip(lp: Loop) -> int:
    if isinstance(lp.start, Const) and isinstance(lp.stop, Const):
        return max(0, math.ceil((lp.stop.value - lp.start.value) / lp.step))
    return 1


class _Count:
    def __init__(self) -> None:
        self.mults: dict[tuple[int, int], int] = {}
        self.reads: dict[str, int] = {}

    def scaled(self, k: int) -> "_Count":
        c = _Count()
        c.mults = {w: n * k for w, n in self.mults.items()}
        c.reads = {a: n * k for a, n in self.reads.items()}
        return c

    def add(self, o: "_Count") -> None:
        for w, n in o.mults.items():
            self.mults[w] = self.mults.get(w, 0) + n
        for a, n in o.reads.items():
            self.reads[a] = self.reads.get(a, 0) + n

    @property
    def total(self) -> int:
        return sum(self.mults.values())


def _reads(e: Expr) -> bool:
    """Whether ``e`` reads an array (an integer product of data, not of loop indices)."""
    return isinstance(e, Load) or any(_reads(x) for x in children(e))


def _count(body: Sequence[Stmt], width: Callable[[Expr], int | None],
           array: Callable[[Load], str]) -> _Count:
    """Multiplies (by operand widths) and array reads of one execution of ``body``."""
    c = _Count()

    def visit(e: Expr) -> None:
        if isinstance(e, (Binary, MulAdd)) and (isinstance(e, MulAdd) or e.op == "mul") and \
                (e.dtype.is_float or (_reads(e.a) and _reads(e.b)) or
                 (e.dtype.bits == 64 and not isinstance(e.a, Const)
                  and not isinstance(e.b, Const))):
            a, b = e.a, e.b
            wa, wb = width(a), width(b)
            if wa is not None and wb is not None:
                key = (max(wa, wb), min(wa, wb))
                c.mults[key] = c.mults.get(key, 0) + 1
        if isinstance(e, Call) and e.fn == "requantize":   # int32 x int32 in 64 bits
            c.mults[(32, 32)] = c.mults.get((32, 32), 0) + 1
        if isinstance(e, Load):
            name = array(e)
            c.reads[name] = c.reads.get(name, 0) + 1
        for x in children(e):
            visit(x)

    for s in body:
        if isinstance(s, Loop):
            c.add(_count(s.body, width, array).scaled(_trip(s)))
        elif isinstance(s, If):
            a, b = _count(s.then, width, array), _count(s.orelse, width, array)
            c.add(a if a.total >= b.total else b)
            for e in stmt_exprs(s):
                visit(e)
        else:
            for e in stmt_exprs(s):
                visit(e)
    return c


def estimate_kernel(k: Kernel, width: Callable[[Expr], int | None], array: Callable[[Load], str],
                    in_bram: Callable[[str], bool], acc_width: int, dsp_a: int) -> LayerEstimate:
    """The estimate of kernel ``k`` (module docstring). ``width(e)`` is the bit width of an
    operand (None for a constant), ``array(load)`` the array a load reads, ``in_bram(name)``
    whether that array stays in block RAM."""
    latency, mults, dsp, lut, ff, ii_max = 0, 0, 0, 0, 0, 1

    def visit(body: Sequence[Stmt], outer: int) -> None:
        nonlocal latency, mults, dsp, lut, ff, ii_max
        for s in body:
            if not isinstance(s, Loop):
                if isinstance(s, If):
                    visit(s.then, outer)
                continue
            n = outer * _trip(s)
            if s.kind != "pipelined":
                visit(s.body, n)
                continue
            r = max(s.factor, 1)
            c = _count(s.body, width, array)
            ports = max([math.ceil(v / 2) for a, v in c.reads.items() if in_bram(a)], default=1)
            ii = max(r, ports)
            ii_max = max(ii_max, ii)
            m = c.total
            depth = 2 + (3 if m else 0) + math.ceil(math.log2(m + 1))
            latency += (n - 1) * ii + depth
            for (wa, wb), cnt in c.mults.items():
                units = math.ceil(cnt / r)
                mults += units
                per = dsp_per_multiplier(wa, wb, dsp_a)
                dsp += units * per
                lut += units * (acc_width + (wa * wb // 2 if per == 0 else 0))
                ff += units * acc_width

    visit(k.body, 1)
    return LayerEstimate(k.name, k.node, k.op, ii_max, latency, mults, dsp, 0, lut, ff)


def bram18(elements: int, width: int) -> int:
    """Block RAMs for an array of ``elements`` values of ``width`` bits (1K x 18 blocks)."""
    return math.ceil(elements / 1024) * math.ceil(width / 18)


def totals(layers: Sequence[LayerEstimate], array_bram: int, array_ff: int) -> dict[str, int]:
    """The design's totals: latency (cycles, kernels in sequence), resources summed, plus the
    arrays' block RAM and registers."""
    return {"latency": sum(e.latency for e in layers),
            "ii": sum(e.latency for e in layers),   # io_parallel: a new input after the last layer
            "dsp": sum(e.dsp for e in layers),
            "bram18": sum(e.bram18 for e in layers) + array_bram,
            "lut": sum(e.lut for e in layers),
            "ff": sum(e.ff for e in layers) + array_ff}
