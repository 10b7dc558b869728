"""Microcontroller targets: C99 with every mutable byte in the caller's arena, weights in flash.

The pipeline is the ordered list of passes every MCU target runs.
"""

from __future__ import annotations

from onnxcc.passes.canonicalize import canonicalize
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
    fuse_conv_activation,
    fuse_elementwise,
    schedule,
    plan_memory(alignment=16),
]

CORTEX_M4 = Target(  # an STM32F4-class part (STM32F407: 192 KiB SRAM, 1 MiB flash, 168 MHz)
    name="cortex-m4",
    family="mcu",
    triple="thumbv7em-none-eabihf",
    cpu="cortex-m4",
    c_flags=("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    cc="arm-none-eabi-gcc",
    sram_bytes=192 * 1024,
    flash_bytes=1024 * 1024,
    clock_hz=168_000_000,
    weights_in_c=True,
    pointer_bits=32,
)

TARGETS = [CORTEX_M4]
