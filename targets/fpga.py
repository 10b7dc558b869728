"""FPGA targets: a Vitis HLS C++ project per model, checked by C-simulation with the host g++.

Each target is a Xilinx part with the resources the estimates are measured against. The
numbers are the device data sheets' totals:

- ``xczu7ev``: Zynq UltraScale+ ZU7EV on the ZCU104 board (DS891): 1,728 DSP48E2, 624 BRAM18
  (312 BRAM36), 230,400 LUTs, 460,800 flip-flops; 200 MHz (5 ns), hls4ml's default period.
- ``xc7z020``: Zynq-7020 on the PYNQ-Z2 board (DS190): 220 DSP48E1, 280 BRAM18, 53,200 LUTs,
  106,400 flip-flops; 100 MHz (10 ns).
- ``xcvu9p``: Virtex UltraScale+ VU9P on the VCU118 board (DS923): 6,840 DSP48E2, 4,320
  BRAM18, 1,182,240 LUTs, 2,364,480 flip-flops; 200 MHz.
- ``xcu250``: the Alveo U250 card's XCU250 (DS962): 12,288 DSP48E2, 5,376 BRAM18, 1,728,000
  LUTs, 3,456,000 flip-flops; 300 MHz (3.33 ns), the card's default kernel clock.

The pipeline keeps each layer a node of its own (no elementwise fusion: every tensor gets its
own fixed-point type), turns Sigmoid and Tanh into ``onnxcc.TableActivation`` and Softmax into
``onnxcc.TableSoftmax`` (lookup tables, as hls4ml computes them), and plans
memory without sharing (HLS gives every tensor its own array; only views share their input's).
A quantized model takes ``qdq_integer`` first (QDQ pairs whose grids no ap_fixed type matches:
the integer kernels of the host int8 build, see ``passes/qdq_integer.py``) or ``qdq_fixed``
(power-of-two grids as ap_fixed types); ``integer_ports`` makes an integer graph's int8 tensors
the design's ports.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxcc.codegen.schedule import pipeline
from onnxcc.passes.canonicalize import canonicalize
from onnxcc.passes.fold_batchnorm import fold_batchnorm
from onnxcc.passes.fuse_conv_activation import fuse_conv_activation
from onnxcc.passes.plan_memory import plan_memory
from onnxcc.passes.qdq_fixed import qdq_fixed
from onnxcc.passes.qdq_integer import integer_ports, qdq_integer
from onnxcc.passes.schedule import schedule
from onnxcc.passes.table_activation import table_activation
from onnxcc.passes.table_softmax import table_softmax

from .base import Target


@dataclass(frozen=True)
class FpgaPart:
    """An FPGA part's resources: ``part`` is the full Vivado part string (package and speed
    grade); ``dsp`` DSP slices, ``bram18`` 18-Kib block RAMs, ``lut`` look-up tables, ``ff``
    flip-flops (counts from the device data sheet)."""

    part: str
    dsp: int
    bram18: int
    lut: int
    ff: int

    def describe(self) -> str:
        """One line of facts for ``onnxcc targets``."""
        return (f"part {self.part}: {self.dsp:,} DSP, {self.bram18:,} BRAM18, {self.lut:,} LUT, "
                f"{self.ff:,} FF")


PIPELINE = [
    qdq_integer,
    qdq_fixed,
    canonicalize,
    fold_batchnorm,
    canonicalize,
    table_activation,
    fuse_conv_activation,
    table_softmax,
    integer_ports,
    schedule,
    plan_memory(alignment=16, share=False),
]

# Every kernel's loop over outputs is pipelined at II=1 (reuse factor 1: one multiplier per
# product of an output, as hls4ml's default latency strategy).
LOOP_PASSES = [pipeline(1)]


def _fpga(name: str, part: FpgaPart, clock_hz: int) -> Target:
    return Target(name=name, family="fpga", triple="fpga-xilinx-vitis", cpu=name,
                  cc="g++", clock_hz=clock_hz, weights_in_c=True, pointer_bits=64,
                  backend="hls", fpga=part)


XCZU7EV = _fpga("xczu7ev", FpgaPart("xczu7ev-ffvc1156-2-e", 1728, 624, 230_400, 460_800),
                200_000_000)
XC7Z020 = _fpga("xc7z020", FpgaPart("xc7z020clg400-1", 220, 280, 53_200, 106_400), 100_000_000)
XCVU9P = _fpga("xcvu9p", FpgaPart("xcvu9p-flga2104-2L-e", 6840, 4320, 1_182_240, 2_364_480),
               200_000_000)
XCU250 = _fpga("xcu250", FpgaPart("xcu250-figd2104-2L-e", 12_288, 5376, 1_728_000, 3_456_000),
               300_000_000)

TARGETS = [XCZU7EV, XC7Z020, XCVU9P, XCU250]
