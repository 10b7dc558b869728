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
        input_layout: the element order of the 4-D graph inputs at the ports: ``NCHW`` (the
            model's) or ``NHWC`` (pixels with their channels together, as a camera or a
            line-by-line sensor delivers them). With NHWC the layers that read an input index
            it in that order, so no transpose runs on the device; every reader must index the
            input as (N, C, H, W) (a convolution, a pool), which :func:`apply_input_layout`
            checks. ``run()`` still takes NCHW arrays and reorders them on the host.
    """

    reuse_factor: int | Mapping[str, int] = 1
    io: str = "io_parallel"
    input_layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.io not in ("io_parallel", "io_stream"):
            raise OnnxccError(f"io must be 'io_parallel' or 'io_stream', got {self.io!r}")
        if self.input_layout not in ("NCHW", "NHWC"):
            raise OnnxccError(f"input_layout must be 'NCHW' or 'NHWC', got {self.input_layout!r}")

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


def apply_input_layout(program, g, layout: str) -> list[str]:
    """Give every kernel's view of each 4-D graph input NHWC strides when ``layout`` is NHWC;
    returns the names of the inputs so laid out. Raises OnnxccError naming the node when a
    kernel reads an input as anything but its (N, C, H, W) shape (an elementwise op over the
    flat tensor, a reshape): such a reader would need the model's order."""
    if layout == "NCHW":
        return []
    done = []
    for k_in, v in enumerate(g.inputs):
        if len(v.shape) != 4:
            continue
        n, c, h, w = v.shape
        nhwc = (h * w * c, 1, w * c, c)
        for k in program.kernels:
            for b in k.params:
                if b.space != "input" or b.index != k_in:
                    continue
                if tuple(b.shape) != tuple(v.shape) or b.offset != 0:
                    raise OnnxccError(
                        f"input_layout NHWC: node {k.node!r} ({k.op}) reads input {v.name!r} as "
                        f"shape {list(b.shape)}, not as its (N, C, H, W) shape",
                        hint="use input_layout='NCHW', or put a convolution or pooling layer "
                        "first")
                b.strides = nhwc
        done.append(v.name)
    return done
