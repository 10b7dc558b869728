"""The HLS design options of an FPGA compile (``onnxcc.compile(..., hls=onnxcc.HLSConfig(...))``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from onnxcc.errors import OnnxccError


@dataclass
class HLSConfig:
    """How the design trades area for speed.

    Args:
        reuse_factor: products each multiplier computes per output (hls4ml's ``ReuseFactor``):
            the initiation interval, in clock cycles, of each layer's loop over outputs, which
            divides its multipliers (and DSP slices) by the same factor. An int for every layer,
            or node name -> factor (layers not named: 1). Raises OnnxccError for a factor under
            1 or a name of no node.
        io: ``io_parallel`` (arrays between layers, which run one after another; hls4ml's
            io_parallel) or ``io_stream`` (``hls::stream`` FIFOs between layers under
            ``DATAFLOW``, so consecutive inputs overlap; AXI-Stream ports).
    """

    reuse_factor: int | Mapping[str, int] = 1
    io: str = "io_parallel"

    def __post_init__(self) -> None:
        if self.io not in ("io_parallel", "io_stream"):
            raise OnnxccError(f"io must be 'io_parallel' or 'io_stream', got {self.io!r}")

    def factors(self, nodes: set[str]) -> dict[str, int] | int:
        """The validated reuse factor(s) for a graph with node names ``nodes``."""
        rf = self.reuse_factor
        if isinstance(rf, int):
            if rf < 1:
                raise OnnxccError(f"reuse_factor must be at least 1, got {rf}")
            return rf
        bad = {k: v for k, v in rf.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise OnnxccError(f"reuse factors must be integers >= 1, got {bad}")
        unknown = sorted(set(rf) - nodes)
        if unknown:
            raise OnnxccError(f"reuse_factor names no node of the model: "
                              f"{', '.join(repr(u) for u in unknown)}",
                              hint="use the node names `onnxcc report` lists")
        return dict(rf)
