"""The facts onnxcc knows about a target, as one frozen dataclass."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

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
        pointer_bits: width of a pointer and of ``size_t`` on the target, in bits (32 for a
            Cortex-M, 64 for a 64-bit host; None: 32 for the ``mcu`` family, 64 otherwise). No
            tensor, arena or weight blob may exceed the largest object such a target can address
            (``2**(pointer_bits - 1) - 1`` bytes, C's PTRDIFF_MAX).
        backend: the code generator: ``c`` (portable C99, built by ``cc``) or ``llvm`` (the
            loop IR rendered through llvmlite, optimized at O3 for ``cpu`` and ``features`` and
            written as an object file beside the same C header).
        features: LLVM target features for the ``llvm`` back end (``+neon``...); with
            ``cpu="native"`` the CPU name and features come from LLVM's host detection.
        dsp: the core has Arm's DSP extension (the dual 16-bit multiply-accumulate ``SMLAD``
            and the other SIMD-in-a-register instructions of ARMv7E-M/ARMv8-M Mainline: Cortex-M4,
            M7, M33, M55); False for Cortex-M0+/M3, RISC-V without the P extension and hosts.
        board: the part whose SRAM, flash and clock these are (``STM32F407``), for people.
        fpga: the FPGA part of an ``hls`` target (``onnxcc.targets.fpga.FpgaPart``: part
            string, DSP slices, BRAM18 blocks, LUTs, flip-flops); None for processors. Its
            clock is ``clock_hz`` (the HLS clock period is ``1e9 / clock_hz`` ns).
        optimize: ``speed`` (default) or ``size``: what the lowerings and the C build favour
            (``onnxcc.compile(..., optimize=)``, CLI ``--optimize``). In size mode every op
            family takes its smallest nest (one output-stationary loop nest per layer, masked
            loads for the padding, no border/interior split, unrolled taps, register tiles or
            blocks of outputs), patching is off unless asked for, and C is built at ``-Os``.
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
    pointer_bits: int | None = None
    backend: str = "c"
    features: str = ""
    dsp: bool = False
    board: str = ""
    fpga: Any = None
    optimize: str = "speed"

    def __post_init__(self) -> None:
        if self.pointer_bits is None:
            object.__setattr__(self, "pointer_bits", 32 if self.family == "mcu" else 64)

    @property
    def size_mode(self) -> bool:
        """True when compiling for the smallest code (``optimize="size"``)."""
        return self.optimize == "size"

    @property
    def c_opt(self) -> str:
        """The optimization flag the C library is built with: ``-Os`` in size mode, else
        ``-O2``."""
        return "-Os" if self.size_mode else "-O2"

    @property
    def max_object_bytes(self) -> int:
        """The largest object, in bytes, the target's C can address (PTRDIFF_MAX)."""
        return (1 << (int(self.pointer_bits or 64) - 1)) - 1

    @property
    def pipeline(self) -> list[GraphPass]:
        """The pass pipeline of the target's family (``targets/<family>.py``'s ``PIPELINE``)."""
        return list(importlib.import_module(f"onnxcc.targets.{self.family}").PIPELINE)

    @property
    def loop_passes(self) -> list:
        """The loop passes the LLVM back end runs on every kernel of the Program (the family
        module's ``LOOP_PASSES``; none when it has no such list)."""
        return list(getattr(importlib.import_module(f"onnxcc.targets.{self.family}"),
                            "LOOP_PASSES", []))

    def vector_registers(self) -> tuple[int, int] | None:
        """(float32 lanes per vector register, number of vector registers) the LLVM back end
        may use on this target, or None (the C back end, or an ISA without a known vector
        unit). x86-64: AVX-512VL gives 32 registers of 8 lanes (256-bit operations, as
        compilers prefer on x86), AVX2 16 of 8, SSE 16 of 4; AArch64 NEON 32 of 4. A ``native``
        CPU is described by LLVM's host detection."""
        if self.backend == "hls":
            return 1, 1   # one scalar accumulator: the output-stationary nest HLS pipelines
        if self.backend != "llvm":
            return None
        feats, cpu = self.features, self.cpu
        if cpu == "native":
            from onnxcc.codegen.llvm.jit import host_cpu

            _, cpu, feats = host_cpu()
        have = {f[1:] for f in feats.split(",") if f.startswith("+")}
        if self.triple.startswith(("x86_64", "i686")):
            if "avx512vl" in have or cpu == "x86-64-v4":
                return 8, 32
            if "avx2" in have or cpu == "x86-64-v3":
                return 8, 16
            return 4, 16
        if self.triple.startswith(("aarch64", "arm64")):
            return 4, 32
        return None

    @property
    def register_tile(self) -> tuple[int, int] | None:
        """(output positions, output channels) of the register tile a float32 convolution
        accumulates in vector registers on this target (``codegen/lower/nn.py``), or None to
        keep the portable tap-stationary lowering: 5 positions by 2 vectors of channels with
        16 registers, 6 by 4 vectors with 32 (accumulators, weight vectors and the broadcasts
        fill the register file). With 16 registers, 6 positions (12 accumulators) spilled:
        LLVM loads the tile's broadcasts of x before its multiply-adds, 12 + 6 + 1 live
        vectors, and the channel loop stored and reloaded four accumulators per step (Zen 3,
        time of 6 / of 5 positions: 64->64 3x3 over 56x56 2.9, 256->256 3x3 over 14x14 2.1);
        see :attr:`short_reduction_rows` for short reductions."""
        vr = self.vector_registers()
        if vr is None or self.size_mode:
            return None
        if self.backend == "hls":
            return 1, 1   # one output position by one channel per pipelined iteration
        lanes, regs = vr
        return (6 if regs >= 32 else 5), lanes * (4 if regs >= 32 else 2)

    @property
    def short_reduction_rows(self) -> int:
        """Positions of the register tile (at most) when its reduction is short (at most
        ``codegen.lower.SHORT_REDUCTION`` multiply-adds per output) and for matrix products:
        there the tile's fixed costs weigh, and with 16 registers 4 positions ran faster than
        5 (Zen 3, one thread: MobileNetV1-0.25's 3->8 3x3/2 stem and 8->16, 16->32 and
        32->32 1x1 convs 6-13% faster; from 34 input channels per group on, 5 was as fast or
        up to 17% faster: ShuffleNet's grouped 1x1s 7% over 7x7 and 28x28)."""
        tile = self.register_tile
        if tile is None:
            return 0
        return tile[0] if (self.vector_registers() or (0, 0))[1] >= 32 else 4

    @property
    def scalar_accumulators(self) -> bool:
        """True when kernels should keep their accumulators in scalar registers: a
        microcontroller core (``family`` ``mcu``), whose C compiler does not vectorize the
        long contiguous rows the portable lowering shapes for a host's vectorizer, so a
        tap-stationary nest there loads and stores its output once per tap. Lowerings then pick
        output-stationary nests (``codegen/lower/nn.py``: depthwise Conv). False in size mode
        (whose one plain nest per layer is output-stationary anyway)."""
        return self.family == "mcu" and not self.size_mode

    @property
    def scratch_in_arena(self) -> bool:
        """True when a kernel's local arrays (an accumulator row, a reduction's partial sums)
        must live in the caller's arena rather than on the stack: a microcontroller (``family``
        ``mcu``), where every mutable byte lives in the arena (DESIGN.md) and the stack is
        small. ``codegen/lower.lower_program`` then places each local array over
        SCRATCH_MIN_BYTES in the arena at its kernel's step (``passes.plan_memory.place_scratch``)."""
        return self.family == "mcu"

    @property
    def stack_array_bytes(self) -> int | None:
        """The largest local array (bytes) a kernel may keep on the stack; larger ones move into
        the caller's arena (``codegen/lower.lower_program``). A microcontroller keeps only
        arrays of at most SCRATCH_MIN_BYTES (64) on its small stack (``scratch_in_arena``); a
        host or CPU target keeps up to STACK_ARRAY_BYTES (16 KiB), so a padded-input copy of
        hundreds of KiB never lands on a thread's stack (macOS gives secondary threads 512 KiB,
        musl 128 KiB). None on an FPGA, whose locals are on-chip memories."""
        from onnxcc.codegen.lower import SCRATCH_MIN_BYTES, STACK_ARRAY_BYTES

        if self.family == "fpga":
            return None
        return SCRATCH_MIN_BYTES if self.scratch_in_arena else STACK_ARRAY_BYTES

    @staticmethod
    def tile_rows(tile: int, n: int) -> int:
        """Rows (positions) per register tile for ``n`` of them: the tile's own count, or fewer
        when that wastes less (rows past ``n`` are recomputed copies of the last one): ``n``
        itself when smaller (a batch-1 Gemm has one row), else the count t in [tile/2, tile]
        with the least rows in all plus one per tile (each tile also loads its weights and
        stores), the larger on a tie (49 positions: 5 x 10 rather than 6 x 9; with a tile of
        4, 4 x 13 rather than 2 x 25, whose tiles reuse each weight load twice only)."""
        if n <= tile:
            return max(n, 1)
        return min(range(max(1, tile // 2), tile + 1),
                   key=lambda t: (-(-n // t) * (t + 1), -t))

    def describe(self) -> str:
        """One line for ``onnxcc targets``."""
        parts = [f"{self.backend.upper()} back end", self.triple, self.cpu, f"{self.pointer_bits}-bit"]
        if self.board:
            parts.append(self.board)
        if self.sram_bytes is not None:
            parts.append(f"{self.sram_bytes // 1024} KiB SRAM")
        if self.flash_bytes is not None:
            parts.append(f"{self.flash_bytes // 1024} KiB flash")
        if self.clock_hz is not None:
            parts.append(f"{self.clock_hz / 1e6:g} MHz")
        if self.family == "mcu":
            parts.append("DSP extension" if self.dsp else "no DSP extension")
        if self.fpga is not None:
            parts.append(self.fpga.describe())
        if self.backend == "hls":
            parts.append("weights in C++ headers")
        elif self.backend == "llvm":
            parts.append("weights in the object file")
        else:
            parts.append("weights in C arrays" if self.weights_in_c else "weights in a blob")
        return ", ".join(parts)
