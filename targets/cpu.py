"""CPU targets: portable C for the machine onnxcc runs on (``host``), and the LLVM back end
for this machine (``cpu``) and for named x86-64 levels and AArch64 (objects only). The LLVM
back end's Cortex-M4 (``thumbv7em``) is an MCU target: ``targets/mcu.py``.

The pipeline is the ordered list of passes every CPU target runs.
"""

from __future__ import annotations

import platform
import struct

from onnxcc.passes.canonicalize import canonicalize
from onnxcc.passes.float16_compute import float16_compute
from onnxcc.passes.fold_batchnorm import fold_batchnorm
from onnxcc.passes.fuse_conv_activation import fuse_conv_activation
from onnxcc.passes.fuse_elementwise import fuse_elementwise
from onnxcc.passes.fuse_qdq import fuse_qdq
from onnxcc.passes.plan_memory import plan_memory
from onnxcc.passes.schedule import schedule

from .base import Target

PIPELINE = [
    fuse_qdq,
    canonicalize,
    fold_batchnorm,
    canonicalize,
    float16_compute,
    fuse_conv_activation,
    fuse_elementwise,
    schedule,
    plan_memory(alignment=16),
]

# Loop passes run on every kernel of the Program (both back ends). None yet: on LLVM targets
# convolutions are lowered as register tiles sized from the target's vector register file
# (Target.register_tile, codegen/lower/nn.py: resnet50 on cpu 314 -> 89 ms, onnxruntime 77 ms);
# on host, tap-stationary with blocks of output and input channels and row tiles, which gcc -O2
# vectorizes. Both measured faster than nests blocked by codegen.schedule.register_block.
LOOP_PASSES: list = []

_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(),
                                                       platform.machine().lower() or "x86_64")
_OS = {"darwin": "apple-darwin", "windows": "pc-windows-msvc"}.get(platform.system().lower(),
                                                                   "unknown-linux-gnu")

HOST = Target(
    name="host",
    family="cpu",
    triple=f"{_MACHINE}-{_OS}",
    cpu="x86-64" if _MACHINE == "x86_64" else _MACHINE,
    c_flags=(),
    cc="cc",
    weights_in_c=False,
    pointer_bits=8 * struct.calcsize("P"),   # the machine onnxcc runs on
)

CPU = Target(   # this machine through LLVM: CPU name and features from LLVM's host detection
    name="cpu",
    family="cpu",
    triple=f"{_MACHINE}-{_OS}",
    cpu="native",
    backend="llvm",
    pointer_bits=8 * struct.calcsize("P"),
)


def _llvm_cpu(name: str, triple: str, cpu: str, features: str = "") -> Target:
    """A 64-bit CPU target of the LLVM back end (``save()`` writes an object for it; ``run()``
    JIT-compiles the same loop IR for this machine)."""
    return Target(name=name, family="cpu", triple=triple, cpu=cpu, features=features,
                  backend="llvm", pointer_bits=64)


TARGETS = [
    HOST,
    CPU,
    _llvm_cpu("x86-64-v2", "x86_64-unknown-linux-gnu", "x86-64-v2"),   # SSE4.2, POPCNT
    _llvm_cpu("x86-64-v3", "x86_64-unknown-linux-gnu", "x86-64-v3"),   # AVX2, FMA
    _llvm_cpu("x86-64-v4", "x86_64-unknown-linux-gnu", "x86-64-v4"),   # AVX-512
    _llvm_cpu("aarch64", "aarch64-unknown-linux-gnu", "generic", "+neon"),
]
