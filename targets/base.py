"""The facts onnxcc knows about a target, as one frozen dataclass."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from onnxcc.passes import GraphPass


@dataclass(frozen=True)
class Target:
    """A named target: its toolchain facts and memory budget.

    Attributes:
        name: what ``--target`` takes (``host``, ``cortex-m4``).
        family: the module in ``onnxcc.targets`` that holds its pipeline (``cpu``, ``mcu``).
        triple: the LLVM/GNU target triple.
        cpu: the CPU name for ``-mcpu``/``-march``.
        c_flags: flags the C compiler needs for this target (ISA, float ABI, FPU).
        cc: the C compiler command for this target.
        sram_bytes, flash_bytes: memory budget in bytes (None: no fixed limit, e.g. the host).
        clock_hz: core clock in Hz (None: unknown).
        weights_in_c: emit weights as C arrays (flash) rather than a binary blob.
    """

    name: str
    family: str
    triple: str
    cpu: str
    c_flags: tuple[str, ...] = ()
    cc: str = "cc"
    sram_bytes: int | None = None
    flash_bytes: int | None = None
    clock_hz: int | None = None
    weights_in_c: bool = False

    @property
    def pipeline(self) -> list[GraphPass]:
        """The pass pipeline of the target's family (``targets/<family>.py``'s ``PIPELINE``)."""
        return list(importlib.import_module(f"onnxcc.targets.{self.family}").PIPELINE)

    def describe(self) -> str:
        """One line for ``onnxcc targets``."""
        parts = [self.triple, self.cpu]
        if self.sram_bytes is not None:
            parts.append(f"{self.sram_bytes // 1024} KiB SRAM")
        if self.flash_bytes is not None:
            parts.append(f"{self.flash_bytes // 1024} KiB flash")
        if self.clock_hz is not None:
            parts.append(f"{self.clock_hz / 1e6:g} MHz")
        parts.append("weights in C arrays" if self.weights_in_c else "weights in a blob")
        return ", ".join(parts)
