"""CPU targets: C for the machine onnxcc runs on (LLVM later).

The pipeline is the ordered list of passes every CPU target runs.
"""

from __future__ import annotations

import platform
import struct

from onnxcc.passes.canonicalize import canonicalize
from onnxcc.passes.fold_batchnorm import fold_batchnorm
from onnxcc.passes.fuse_conv_activation import fuse_conv_activation
from onnxcc.passes.fuse_elementwise import fuse_elementwise
from onnxcc.passes.plan_memory import plan_memory
from onnxcc.passes.schedule import schedule

from .base import Target

PIPELINE = [
    canonicalize,
    fold_batchnorm,
    canonicalize,
    fuse_conv_activation,
    fuse_elementwise,
    schedule,
    plan_memory(alignment=16),
]

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

TARGETS = [HOST]
