"""Microcontroller targets: C99 with every mutable byte in the caller's arena, weights in flash
(``thumbv7em``: the same Cortex-M4 through the LLVM back end, an object file with the weights).

The pipeline is the ordered list of passes every MCU target runs.
"""

from __future__ import annotations

from dataclasses import replace

from onnxcc.passes.canonicalize import canonicalize
from onnxcc.passes.float16_compute import float16_compute
from onnxcc.passes.fold_batchnorm import fold_batchnorm
from onnxcc.passes.fuse_conv_activation import fuse_conv_activation
from onnxcc.passes.fuse_elementwise import fuse_elementwise
from onnxcc.passes.fuse_qdq import fuse_qdq
from onnxcc.passes.patch import patch
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
    patch(max_recompute=0.15, depthwise_in_place=True),
    schedule,
    plan_memory(alignment=16, depthwise_in_place=True),
]

def _cortex_m(name: str, triple: str, float_flags: tuple[str, ...], *, board: str, sram_kib: int,
              flash_kib: int, mhz: int, dsp: bool) -> Target:
    """A Cortex-M target: C for ``-mcpu=<name> -mthumb`` plus ``float_flags`` (the float ABI and
    FPU), built by arm-none-eabi-gcc; SRAM and flash in KiB and the clock in MHz of ``board``."""
    return Target(name=name, family="mcu", triple=triple, cpu=name, board=board,
                  c_flags=(f"-mcpu={name}", "-mthumb", *float_flags), cc="arm-none-eabi-gcc",
                  sram_bytes=sram_kib * 1024, flash_bytes=flash_kib * 1024,
                  clock_hz=mhz * 1_000_000, weights_in_c=True, pointer_bits=32, dsp=dsp)


SOFT_FLOAT = ("-mfloat-abi=soft",)

#: ARMv6-M, no FPU, no DSP extension. Raspberry Pi RP2040 (Pico): 264 KiB SRAM, 2 MiB QSPI flash,
#: 133 MHz.
CORTEX_M0PLUS = _cortex_m("cortex-m0plus", "thumbv6m-none-eabi", SOFT_FLOAT,
                          board="RP2040", sram_kib=264, flash_kib=2048, mhz=133, dsp=False)
#: ARMv7-M, no FPU, no DSP extension. STM32F103ZE: 64 KiB SRAM, 512 KiB flash, 72 MHz.
CORTEX_M3 = _cortex_m("cortex-m3", "thumbv7m-none-eabi", SOFT_FLOAT,
                      board="STM32F103ZE", sram_kib=64, flash_kib=512, mhz=72, dsp=False)
#: ARMv7E-M with the DSP extension and a single-precision FPU (FPv4-SP). STM32F407: 192 KiB SRAM,
#: 1 MiB flash, 168 MHz.
CORTEX_M4 = _cortex_m("cortex-m4", "thumbv7em-none-eabihf",
                      ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
                      board="STM32F407", sram_kib=192, flash_kib=1024, mhz=168, dsp=True)
#: The Cortex-M4 of ``cortex-m4`` (ARMv7E-M, DSP extension, FPv4-SP single-precision FPU;
#: STM32F407: 192 KiB SRAM, 1 MiB flash, 168 MHz; QEMU's ``mps2-an386``) through the LLVM back end:
#: the loop IR compiled by LLVM at O3 for ``thumbv7em-none-eabihf``/``cortex-m4`` into ``<m>.o``
#: (``<m>_run``, its kernels and its weights in ``.rodata``), with the hard-float calling
#: convention (floats in VFP registers, Tag_ABI_VFP_args set: it links with C built by ``c_flags``),
#: beside the same ``<m>.h`` and a small ``<m>.c`` for ``arm-none-eabi-gcc`` with those flags.
#: Same pipeline, arena and budget checks as the C targets; ``run()`` JIT-compiles the loop IR
#: for this machine, ``onnxcc.runtime.qemu.run_on_qemu`` runs the object on the emulated M4.
THUMBV7EM = replace(CORTEX_M4, name="thumbv7em", backend="llvm", weights_in_c=False)
#: ARMv7E-M with the DSP extension and a double-precision FPU (FPv5-D16). STM32F767ZI
#: (Nucleo-F767ZI): 512 KiB SRAM, 2 MiB flash, 216 MHz.
CORTEX_M7 = _cortex_m("cortex-m7", "thumbv7em-none-eabihf", ("-mfloat-abi=hard", "-mfpu=fpv5-d16"),
                      board="STM32F767ZI", sram_kib=512, flash_kib=2048, mhz=216, dsp=True)
#: ARMv8-M Mainline with the DSP extension and a single-precision FPU (FPv5-SP-D16). STM32L552ZE
#: (Nucleo-L552ZE-Q): 256 KiB SRAM, 512 KiB flash, 110 MHz.
CORTEX_M33 = _cortex_m("cortex-m33", "thumbv8m.main-none-eabihf",
                       ("-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
                       board="STM32L552ZE", sram_kib=256, flash_kib=512, mhz=110, dsp=True)
#: ARMv8.1-M Mainline with the DSP extension, Helium (MVE, integer and float) and a
#: double-precision FPU: ``-mcpu=cortex-m55`` enables them all and ``-mfpu=auto`` takes the FPU
#: from it. Arm's Corstone-300 reference design on the MPS3 FPGA board (AN547, what QEMU's
#: ``mps3-an547`` emulates; it has no on-chip flash): 512 KiB DTCM for data, 512 KiB ITCM for code
#: and constants, 32 MHz.
CORTEX_M55 = _cortex_m("cortex-m55", "thumbv8.1m.main-none-eabihf",
                       ("-mfloat-abi=hard", "-mfpu=auto"),
                       board="MPS3 AN547", sram_kib=512, flash_kib=512, mhz=32, dsp=True)

#: RV32IMAC (integer, multiply/divide, atomics, compressed; no FPU, no DSP/P extension), built by
#: Debian's riscv64-unknown-elf-gcc against picolibc. GigaDevice GD32VF103CB (Sipeed Longan Nano):
#: 32 KiB SRAM, 128 KiB flash, 108 MHz.
RV32IMAC = Target(
    name="rv32imac",
    family="mcu",
    triple="riscv32-unknown-none-elf",
    cpu="rv32imac",
    c_flags=("-march=rv32imac", "-mabi=ilp32", "--specs=picolibc.specs"),
    cc="riscv64-unknown-elf-gcc",
    sram_bytes=32 * 1024,
    flash_bytes=128 * 1024,
    clock_hz=108_000_000,
    weights_in_c=True,
    pointer_bits=32,
    dsp=False,
    board="GD32VF103CB",
)

TARGETS = [CORTEX_M0PLUS, CORTEX_M3, CORTEX_M4, THUMBV7EM, CORTEX_M7, CORTEX_M33, CORTEX_M55,
           RV32IMAC]
