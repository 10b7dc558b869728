"""Build a generated MCU library into firmware and run it on an emulated core (QEMU).

Every MCU target runs on one of QEMU's boards (:data:`MACHINES`, chosen by the target's ``cpu``
through :data:`MACHINE_OF_CPU`): Cortex-M3 on ``mps2-an385``, M4 on ``mps2-an386``, M7 on
``mps2-an500``, M33 on ``mps2-an505``, M55 on ``mps3-an547``, M0+ on ``microbit`` (QEMU has no
M0+; the micro:bit's nRF51 is a Cortex-M0, the same ARMv6-M instruction set, so the code built for
``-mcpu=cortex-m0plus`` runs unchanged), rv32imac on ``qemu-system-riscv32 -M virt -bios none``.
The firmware is the library, a harness ``main`` (written here, not part of the library), the
core family's startup (``mcu/startup_cortex_m.c`` or ``mcu/startup_riscv.c``),
``mcu/onnxcc_semihost.c`` and ``mcu/firmware.ld`` with the board's memory map
(``onnxcc_memory.ld``, written from :data:`MACHINES`):

* the inputs are embedded in the firmware as typed ``const`` arrays generated for each run (only
  that small file is recompiled; the library and harness objects are built once per library);
* the harness runs ``<m>_run`` on a static arena of ``<M>_ARENA_SIZE`` bytes aligned to
  ``<M>_ARENA_ALIGN`` in the board's RAM, prints each output's bytes as hex over semihosting
  stdout and exits through ``SYS_EXIT_EXTENDED`` with the status (QEMU's exit code);
* QEMU runs with ``-nographic -monitor none``, semihosting on and a timeout;
* the harness makes its one call of ``<m>_run`` in ``onnxcc_qemu_call``, after filling the free
  stack with a pattern, and prints the stack bytes the call used (``onnxcc-stack``);
* :func:`count_instructions` and :func:`count_kernels` run it under onnxcc's own TCG plugin
  (``qemu_plugin/insn_count.c``, built for the host at first use, :func:`plugin_path`), which
  counts the guest instructions between addresses found in the firmware's disassembly
  (:func:`call_window`): exactly those of one inference, and of each kernel's call.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from onnxcc.errors import BuildError
from onnxcc.runtime.build import (CORTEX_M4_FLAGS, WARN_FLAGS, build_into, check_feeds, failure_hint,
                                  find_cc, library_sources, run_checked)


@dataclass(frozen=True)
class Arch:
    """What firmware for one family of cores needs: the cross compiler and its C library, the
    startup file, how to link, and the QEMU binary (each with the Debian package to install)."""

    cc: str
    cc_packages: str
    qemu: str
    qemu_package: str
    startup: str
    link_flags: tuple[str, ...]
    default_flags: tuple[str, ...]


ARCHES = {
    "cortex-m": Arch("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi",
                     "qemu-system-arm", "qemu-system-arm", "startup_cortex_m.c",
                     ("--specs=nano.specs", "--specs=nosys.specs"), CORTEX_M4_FLAGS),
    "riscv": Arch("riscv64-unknown-elf-gcc", "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf",
                  "qemu-system-riscv32", "qemu-system-misc", "startup_riscv.c",
                  ("--specs=picolibc.specs",),
                  ("-march=rv32imac", "-mabi=ilp32", "--specs=picolibc.specs")),
}


@dataclass(frozen=True)
class Machine:
    """One emulated board: QEMU's ``-M`` name, its options, and where firmware goes.

    Attributes:
        name: QEMU's machine (``-M``).
        core: the core it emulates, for messages.
        arch: the key of its :class:`Arch` in :data:`ARCHES`.
        args: QEMU options besides ``-M`` (the ``-cpu``, or ``-bios none``).
        flash: (origin, bytes) of the memory for code and constants, starting where the core
            fetches its vector table (Cortex-M) or first instruction (RISC-V) at reset.
        ram: (origin, bytes) of the memory for .data, .bss (the arena) and the stack.
        stack_bytes: the stack reserved at the top of ``ram``, in bytes.
        const: (origin, bytes) of a memory for the constants (.rodata: the weights) apart from
            ``flash``, on a board whose boot memory is small; None: they follow the code.
    """

    name: str
    core: str
    arch: str
    args: tuple[str, ...]
    flash: tuple[int, int]
    ram: tuple[int, int]
    stack_bytes: int = 0x10000
    const: tuple[int, int] | None = None

    @property
    def rom_bytes(self) -> int:
        """Bytes for code and constants: ``flash``, and ``const`` when the board has one."""
        return self.flash[1] + (self.const[1] if self.const else 0)

    def memory_script(self) -> str:
        """The ``onnxcc_memory.ld`` that ``mcu/firmware.ld`` includes for this board: the
        regions FLASH, RAM and CONST (``const``, else an alias of FLASH)."""
        (fo, fl), (ro, rl) = self.flash, self.ram
        const = f"    CONST (r)   : ORIGIN = {self.const[0]:#010x}, LENGTH = {self.const[1]:#x}\n" \
            if self.const else ""
        return (f"/* {self.name} ({self.core}): written by onnxcc.runtime.qemu */\n"
                f"MEMORY\n{{\n    FLASH (rx)  : ORIGIN = {fo:#010x}, LENGTH = {fl:#x}\n"
                f"    RAM   (rwx) : ORIGIN = {ro:#010x}, LENGTH = {rl:#x}\n{const}}}\n"
                + ("" if self.const else "REGION_ALIAS(\"CONST\", FLASH);\n")
                + f"_stack_size = {self.stack_bytes:#x};\n")


KIB, MIB = 1024, 1024 * 1024
#: The boards, as QEMU's hw/arm/mps2.c, mps2-tz.c and nrf51_soc.c and hw/riscv/virt.c model them
#: (tests/targets/test_mcu_cores.py links and runs firmware on each). The MPS2 AN385/AN386/AN500 images: 4 MiB ZBT SSRAM1 at 0 (where the
#: core starts, so it plays the flash), 4 MiB SSRAM2/3 at 0x20000000. The AN505 (IoT Kit, the
#: core starts secure with its vector table at 0x10000000): SSRAM1 through its secure alias at
#: 0x10000000, SSRAM2 and SSRAM3 (2 MiB each, contiguous) through theirs at 0x38000000. The AN547
#: (Corstone-300, vector table at 0): the 512 KiB ITCM at 0 and the 512 KiB DTCM at 0x20000000,
#: the constants in its 2 MiB SRAM at 0x01000000 (a model's weights outgrow the ITCM).
#: The micro:bit (nRF51822): 256 KiB flash at 0, 16 KiB SRAM at 0x20000000. RISC-V ``virt``:
#: DRAM at 0x80000000, where the board's reset code jumps with ``-bios none``.
MACHINES: dict[str, Machine] = {m.name: m for m in [
    Machine("microbit", "Cortex-M0", "cortex-m", ("-cpu", "cortex-m0"),
            (0x00000000, 256 * KIB), (0x20000000, 16 * KIB), stack_bytes=4 * KIB),
    Machine("mps2-an385", "Cortex-M3", "cortex-m", ("-cpu", "cortex-m3"),
            (0x00000000, 4 * MIB), (0x20000000, 4 * MIB)),
    Machine("mps2-an386", "Cortex-M4", "cortex-m", ("-cpu", "cortex-m4"),
            (0x00000000, 4 * MIB), (0x20000000, 4 * MIB)),
    Machine("mps2-an500", "Cortex-M7", "cortex-m", ("-cpu", "cortex-m7"),
            (0x00000000, 4 * MIB), (0x20000000, 4 * MIB)),
    Machine("mps2-an505", "Cortex-M33", "cortex-m", ("-cpu", "cortex-m33"),
            (0x10000000, 4 * MIB), (0x38000000, 4 * MIB)),
    Machine("mps3-an547", "Cortex-M55", "cortex-m", ("-cpu", "cortex-m55"),
            (0x00000000, 512 * KIB), (0x20000000, 512 * KIB), const=(0x01000000, 2 * MIB)),
    Machine("virt", "RV32IMAC", "riscv", ("-bios", "none"),
            (0x80000000, 4 * MIB), (0x80400000, 4 * MIB)),
]}
#: The board each target's ``cpu`` runs on.
MACHINE_OF_CPU = {"cortex-m0plus": "microbit", "cortex-m0": "microbit", "cortex-m3": "mps2-an385",
                  "cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500",
                  "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547", "rv32imac": "virt"}

BOARD = "mps2-an386"   # the board of a library built for a target that is not an MCU
LINKER_SCRIPT = "firmware.ld"
MEMORY_SCRIPT = "onnxcc_memory.ld"
#: exit codes the startup file uses for a fault and for an unexpected interrupt
FAULT_EXIT, UNEXPECTED_IRQ_EXIT = 0xFE, 0xFD
#: the harness exits with 100 + status when ``<m>_run`` returns a non-OK status
STATUS_BASE = 100

HARNESS = r"""/* QEMU harness for {m}: runs {m}_run on inputs embedded in the firmware ({m}_qemu_inputs.c)
 * and prints each output's bytes as hex over semihosting. Not part of the library. */
#include <stddef.h>
#include <stdint.h>
#include "{m}.h"
#include "onnxcc_semihost.h"

{in_decls}
static {M}_ARENA_ATTR unsigned char arena[{M}_ARENA_SIZE > 0 ? {M}_ARENA_SIZE : 1]
    __attribute__((aligned({M}_ARENA_ALIGN)));
{out_defs}

static void put_hex(const void *data, size_t n)
{{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)data;
    char line[2 * 64 + 1];
    size_t i, k = 0;
    for (i = 0; i < n; ++i) {{
        line[k++] = digits[p[i] >> 4];
        line[k++] = digits[p[i] & 15u];
        if (k == sizeof line - 1 || i + 1 == n) {{
            line[k] = '\0';
            onnxcc_semihost_write0(line);
            k = 0;
        }}
    }}
}}

static void put_uint(unsigned v)
{{
    char buf[12];
    int k = (int)sizeof buf - 1;
    buf[k] = '\0';
    do {{
        buf[--k] = (char)('0' + v % 10u);
        v /= 10u;
    }} while (v);
    onnxcc_semihost_write0(buf + k);
}}

/* The stack's free part, from the end of .bss up to the stack pointer, is filled with a pattern
 * before the run; the lowest word changed after it gives the stack the run used. */
#define ONNXCC_STACK_PAINT 0x5AC3E17Du
extern uint32_t _end[];
static uintptr_t sp_at_call;

static inline __attribute__((always_inline)) uintptr_t stack_pointer(void)
{{
    uintptr_t sp;
#if defined(__riscv)
    __asm__ __volatile__("mv %0, sp" : "=r"(sp));
#else
    __asm__ __volatile__("mov %0, sp" : "=r"(sp));
#endif
    return sp;
}}

/* The one call of {m}_run (onnxcc.runtime.qemu.call_window counts from it): sp_at_call is the
 * stack pointer {m}_run starts with (the outgoing arguments are part of this frame). */
static __attribute__((noinline, noclone)) int onnxcc_qemu_call(void)
{{
    int status;
    sp_at_call = stack_pointer();
    status = (int){m}_run(arena, sizeof arena{args});
    __asm__ __volatile__("" : : "r"(status));   /* a call, not a tail call: it returns here */
    return status;
}}

int main(void)
{{
    uintptr_t sp = stack_pointer();
    volatile uint32_t *w;
    int status;
    for (w = _end; (uintptr_t)w < sp; ++w) *w = ONNXCC_STACK_PAINT;
    status = onnxcc_qemu_call();
    for (w = _end; (uintptr_t)w < sp && *w == ONNXCC_STACK_PAINT; ++w) {{ }}
    onnxcc_semihost_write0("onnxcc-stack ");
    put_uint((unsigned)(sp_at_call - (uintptr_t)w));
    onnxcc_semihost_write0("\n");
    onnxcc_semihost_write0("onnxcc-status ");
    put_uint((unsigned)status);
    onnxcc_semihost_write0("\n");
    if (status != 0) return {base} + status;
{prints}    return 0;
}}
"""

#: the harness function that makes the one call of ``<m>_run``
HARNESS_CALLER = "onnxcc_qemu_call"
_OUT_RE = re.compile(r"^onnxcc-out (\d+) ([0-9a-f]*)$", re.MULTILINE)
_STACK_RE = re.compile(r"^onnxcc-stack (\d+)$", re.MULTILINE)
_STATUS_RE = re.compile(r"^onnxcc-status (\d+)$", re.MULTILINE)


def mcu_dir() -> Path:
    """The folder holding the startup files, ``onnxcc_semihost.c``/``.h`` and ``firmware.ld``."""
    return Path(str(resources.files("onnxcc.runtime") / "mcu"))


def include_dir() -> Path:
    """The folder of onnxcc's C headers shipped in the package (``onnxcc/runtime/include``)."""
    return Path(str(resources.files("onnxcc.runtime") / "include"))


def find_tools(cc: str | None = None, qemu: str | None = None, *,
               arch: str = "cortex-m") -> tuple[str, str]:
    """The cross compiler and QEMU for ``arch`` (a key of :data:`ARCHES`; ``cc``/``qemu``
    override its commands), as paths. Raises BuildError naming the Debian package when either
    is missing."""
    a = ARCHES[arch]
    cc, qemu = cc or a.cc, qemu or a.qemu
    cc_path, qemu_path = shutil.which(cc), shutil.which(qemu)
    if not cc_path:
        raise BuildError(f"{cc} not found: cannot build {arch} firmware",
                         hint=f"install it: apt-get install {a.cc_packages}")
    if not qemu_path:
        raise BuildError(f"{qemu} not found: cannot run {arch} firmware",
                         hint=f"install it: apt-get install {a.qemu_package}")
    return cc_path, qemu_path


def _run_tool(cmd: Sequence[str], what: str, timeout: float = 600, *,
              arch: str = "cortex-m") -> str:
    a = ARCHES[arch]
    try:
        p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as e:
        raise BuildError(f"{what}: {cmd[0]} not found",
                         hint=f"apt-get install {a.cc_packages} {a.qemu_package}") from e
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"{what} timed out after {timeout:g} s: {' '.join(cmd)}") from e
    if p.returncode != 0:
        text = p.stdout + p.stderr
        hint = failure_hint(text, cmd)
        if any(k in text for k in ("cannot find -lc", "cannot find -lm", "cannot read spec file",
                                   "stdint.h: No such file", "math.h: No such file")):
            hint = f"the C library for {a.cc} is missing: apt-get install {a.cc_packages}"
        elif "region `FLASH' overflowed" in text or "region `RAM' overflowed" in text:
            hint = "the firmware does not fit the emulated board's memory (qemu.MACHINES)"
        raise BuildError(f"{what} failed ({p.returncode}): {' '.join(cmd)}\n{text}"[-6000:], hint=hint)
    return p.stdout


def _c_literal(v: Any, dtype: np.dtype) -> str:
    """An exact C literal for one element of ``dtype`` (float16: its bit pattern, as stored)."""
    if dtype == np.float16:
        return f"0x{int(np.float16(v).view(np.uint16)):04X}u"
    if dtype.kind == "f":
        f, x = ("f", float(v)) if dtype.itemsize == 4 else ("", float(v))
        if math.isnan(x):
            return f"__builtin_nan{f}(\"\")"
        if math.isinf(x):
            return f"{'-' if x < 0 else ''}__builtin_inf{f}()"
        return x.hex() + f
    if dtype.kind == "b":
        return "1" if v else "0"
    i = int(v)
    if dtype.itemsize == 8:
        if dtype.kind == "u":
            return f"{i}ULL"
        return "(-9223372036854775807LL - 1)" if i == -2**63 else f"{i}LL"
    if dtype.kind == "u":
        return f"{i}u"
    return "(-2147483647 - 1)" if i == -2**31 else str(i)


def write_inputs(path: Path, mmap: dict, feeds: Mapping[str, np.ndarray]) -> Path:
    """Write ``<m>_qemu_inputs.c``: one typed const array per model input, from ``feeds``.

    Raises ShapeError for a missing or mis-shaped input.
    """
    from onnxcc.codegen.c.render import CTYPE as CTYPES

    m = mmap["c_prefix"]
    lines = [f"/* Inputs for one QEMU run of {m} (generated by onnxcc.runtime.qemu). */",
             "#include <stdint.h>", ""]
    for k, (t, a) in enumerate(zip(mmap["inputs"], check_feeds(mmap, feeds))):
        dt = np.dtype(t["dtype"])
        flat = a.reshape(-1)
        vals = [_c_literal(v, dt) for v in flat.tolist()] or ["0"]
        body = ",\n".join("    " + ", ".join(vals[i:i + 8]) for i in range(0, len(vals), 8))
        decl = (f"const {CTYPES[t['dtype']]} onnxcc_qemu_in{k}[{max(len(flat), 1)}] "
                "__attribute__((aligned(16)))")
        lines += [f"{decl} = {{\n{body}\n}};", ""]
    path.write_text("\n".join(lines))
    return path


def write_harness(path: Path, mmap: dict) -> Path:
    """Write the firmware's ``main`` (``<m>_qemu_main.c``) for the library described by ``mmap``."""
    from onnxcc.codegen.c.render import CTYPE as CTYPES

    m = mmap["c_prefix"]
    ins, outs = mmap["inputs"], mmap["outputs"]
    n_el = [max(int(np.prod(t["shape"], dtype=np.int64)), 1) for t in outs]
    in_decls = "\n".join(f"extern const {CTYPES[t['dtype']]} onnxcc_qemu_in{k}[];"
                         for k, t in enumerate(ins))
    out_defs = "\n".join(f"static {CTYPES[t['dtype']]} onnxcc_qemu_out{k}[{n}] __attribute__((aligned(16)));"
                         for k, (t, n) in enumerate(zip(outs, n_el)))
    args = "".join(f", onnxcc_qemu_in{k}" for k in range(len(ins)))
    args += "".join(f", onnxcc_qemu_out{k}" for k in range(len(outs)))
    prints = "".join(
        f'    onnxcc_semihost_write0("onnxcc-out {k} ");\n'
        f"    put_hex(onnxcc_qemu_out{k}, sizeof onnxcc_qemu_out{k});\n"
        f'    onnxcc_semihost_write0("\\n");\n' for k in range(len(outs)))
    path.write_text(HARNESS.format(m=m, M=m.upper(), in_decls=in_decls, out_defs=out_defs,
                                   args=args, prints=prints, base=STATUS_BASE))
    return path


class Firmware:
    """The library of one CompiledModel built for an emulated board (a :class:`Machine`):
    objects compiled once, then linked with a fresh inputs file for each ``run``."""

    def __init__(self, lib_dir: Path, mmap: dict, *, flags: Sequence[str] | None = None,
                 opt: str = "-O2", cc: str | None = None, qemu: str | None = None,
                 machine: str | Machine = BOARD) -> None:
        self.machine = machine if isinstance(machine, Machine) else get_machine(machine)
        self.arch = ARCHES[self.machine.arch]
        self.lib_dir, self.mmap = Path(lib_dir), mmap
        self.cc, self.qemu = find_tools(cc, qemu, arch=self.machine.arch)
        flags = self.arch.default_flags if flags is None else flags
        self.flags = [*flags, opt, "-ffunction-sections", "-fdata-sections"]
        self.build_dir = self.lib_dir / f"qemu-{self.machine.name}"
        self.build_dir.mkdir(exist_ok=True)
        (self.build_dir / MEMORY_SCRIPT).write_text(self.machine.memory_script())
        self.timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.runtime_objects = [self._compile(mcu_dir() / s, self.build_dir / (Path(s).stem + ".o"))
                                for s in (self.arch.startup, "onnxcc_semihost.c")]
        self.objects = [*self._compile_library(), *self.runtime_objects]
        self.timings["build_s"] = time.perf_counter() - t0

    def _compile(self, src: Path, obj: Path, warn: Sequence[str] = WARN_FLAGS) -> Path:
        inc = [f"-I{self.lib_dir}", f"-I{mcu_dir()}", f"-I{include_dir()}", f"-Wa,-I{self.lib_dir}"]
        _run_tool([self.cc, *warn, *self.flags, *inc, "-c", str(src), "-o", str(obj)],
                  f"cross-compile {src.name}", arch=self.machine.arch)
        return obj

    def compile_c(self, src: Path, obj: Path, flags: Sequence[str] = ()) -> Path:
        """Cross-compile the C file ``src`` into ``obj`` with the firmware's flags and
        optimization, ``flags`` added (e.g. ``-I`` folders, ``-D`` macros; warnings are not
        errors here): for benchmark code linked beside the library with :meth:`link_objects`
        (``benchmarks/cmsis_nn.py``). Returns ``obj``; raises BuildError when it fails."""
        return self._compile(Path(src), Path(obj), warn=list(flags))

    def _compile_library(self) -> list[Path]:
        m, b = self.mmap["c_prefix"], self.build_dir
        harness = write_harness(b / f"{m}_qemu_main.c", self.mmap)
        srcs = [*library_sources(self.lib_dir, self.mmap), harness]
        # The LLVM back end's object is linked as it is.
        return [s if s.suffix == ".o" else self._compile(s, b / (s.stem + ".o")) for s in srcs]

    def link_objects(self, objects: Sequence[Path], elf: Path) -> Path:
        """Link ``objects`` (which hold ``main``, the startup and semihosting objects among
        them) into ``elf`` for the board; returns ``elf``."""
        _run_tool([self.cc, *self.flags, "-nostartfiles", "-L", str(self.build_dir),
                   "-T", str(mcu_dir() / LINKER_SCRIPT),
                   *(f for f in self.arch.link_flags if f not in self.flags), "-Wl,--gc-sections",
                   *map(str, objects), "-lm", "-o", str(elf)], "link firmware",
                  arch=self.machine.arch)
        return elf

    def link(self, feeds: Mapping[str, np.ndarray], out_dir: Path) -> Path:
        """Link firmware with ``feeds`` embedded; returns the ELF path."""
        m = self.mmap["c_prefix"]
        src = write_inputs(out_dir / f"{m}_qemu_inputs.c", self.mmap, feeds)
        obj = self._compile(src, out_dir / f"{m}_qemu_inputs.o")
        return self.link_objects([*self.objects, obj], out_dir / f"{m}_qemu.elf")

    def run_elf(self, elf: Path, timeout: float = 60, extra_args: Sequence[str] = ()) -> str:
        """Run ``elf`` on the board (``extra_args`` appended to QEMU's command line); returns
        its semihosting stdout. Raises BuildError when QEMU fails, times out (``timeout`` in
        seconds), or the firmware exits with a non-zero status."""
        mc = self.machine
        cmd = [self.qemu, "-M", mc.name, *mc.args, "-nographic", "-monitor", "none",
               "-serial", "null", "-semihosting-config", "enable=on,target=native",
               "-kernel", str(elf), *extra_args]
        where = f"{Path(self.qemu).name} -M {mc.name} ({mc.core})"
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"")[-2000:]
            raise BuildError(f"{where} timed out after {timeout:g} s: {' '.join(cmd)}\n{out!r}",
                             hint="the firmware hangs or is very slow; raise timeout= for big models") from e
        except FileNotFoundError as e:
            raise BuildError(f"{self.qemu} not found",
                             hint=f"install it: apt-get install {self.arch.qemu_package}") from e
        text = p.stdout + p.stderr
        if p.returncode != 0 and ("Could not load plugin" in text
                                  or "-plugin: invalid option" in text):
            raise BuildError(f"{where} could not load onnxcc's instruction-count plugin:\n"
                             f"{text[-2000:]}",
                             hint="this QEMU needs plugin support (--enable-plugins) and plugin "
                             f"API version {PLUGIN_API_VERSION} (QEMU 5.2 to 8.1; Debian 12's "
                             "7.2 qualifies)")
        if p.returncode != 0:
            why = {FAULT_EXIT: "the core took a fault (HardFault/MemManage/BusFault/UsageFault, "
                               "or a RISC-V trap)",
                   UNEXPECTED_IRQ_EXIT: "an unexpected interrupt"}.get(p.returncode, "")
            if p.returncode > STATUS_BASE and p.returncode < FAULT_EXIT - 1:
                why = f"{self.mmap['c_prefix']}_run returned status {p.returncode - STATUS_BASE}"
            raise BuildError(f"firmware on {where} exited with {p.returncode}"
                             f"{': ' + why if why else ''}\n{' '.join(cmd)}\n{text}"[-6000:],
                             hint="1 = NULL argument, 2 = arena too small, 3 = arena misaligned; "
                             "otherwise a bug in onnxcc's generated code, please report it")
        return text   # QEMU writes semihosting console output to stderr, without a chardev

    def parse(self, text: str) -> dict[str, np.ndarray]:
        """The outputs printed by the harness, as name -> array."""
        st = _STATUS_RE.search(text)
        found = {int(k): h for k, h in _OUT_RE.findall(text)}
        if st is None or int(st.group(1)) != 0 or len(found) != len(self.mmap["outputs"]):
            raise BuildError(f"unexpected firmware output on {self.machine.name}:\n{text[-4000:]}",
                             hint="this is a bug in onnxcc's QEMU harness; please report it")
        res = {}
        for k, t in enumerate(self.mmap["outputs"]):
            n = int(np.prod(t["shape"], dtype=np.int64))
            raw = bytes.fromhex(found[k])
            res[t["name"]] = np.frombuffer(raw, dtype=t["dtype"], count=n).copy().reshape(t["shape"])
        return res

    def run(self, feeds: Mapping[str, np.ndarray], timeout: float = 60) -> dict[str, np.ndarray]:
        """Link firmware with ``feeds`` and run it on the board (``timeout`` in seconds);
        returns output name -> array."""
        with tempfile.TemporaryDirectory(prefix="onnxcc_qemu_", dir=self.build_dir) as td:
            t0 = time.perf_counter()
            elf = self.link(feeds, Path(td))
            t1 = time.perf_counter()
            text = self.run_elf(elf, timeout=timeout)
            t2 = time.perf_counter()
        self.timings.update(link_s=t1 - t0, qemu_s=t2 - t1)
        return self.parse(text)

    def count_elf(self, elf: Path, function: str, timeout: float = 120) -> InstructionCount:
        """Run ``elf`` under onnxcc's TCG plugin, counting the guest instructions of the one
        call ``main`` makes to ``function`` (see :func:`call_window`); ``timeout`` in seconds.
        Raises BuildError as :meth:`run_elf` does, and when the plugin cannot be built or
        loaded or the call never returned."""
        return self._count_run(elf, function, timeout)[0]

    def _count_run(self, elf: Path, function: str, timeout: float, *, calls: bool = False,
                   caller: str = "main") -> tuple[InstructionCount, list[tuple[str, int]], str]:
        """:meth:`count_elf`; with ``calls``, (callee, instructions) of each direct call
        ``function`` makes, in the order of the call instructions in it (each call from its call
        instruction, not counted, to its return; summed over the times it runs); and the
        firmware's semihosting output."""
        start, stop = call_window(elf, function, self.cc, caller)
        sites = disassemble_calls(elf, self.cc)[1].get(function, []) if calls else []
        so = plugin_path()
        with tempfile.TemporaryDirectory(prefix="onnxcc_count_", dir=self.build_dir) as td:
            out, marks = Path(td) / "counts.txt", Path(td) / "marks.txt"
            arg = f"{so},out={out},start={start:#x},stop={stop:#x}"
            if sites:
                marks.write_text("".join(f"{c.call:#x} {c.ret:#x}\n" for c in sites))
                arg += f",marks={marks}"
            text = self.run_elf(elf, timeout=timeout, extra_args=["-plugin", arg])
            counts = out.read_text() if out.exists() else ""
        total = _TOTAL_RE.search(counts)
        wins = {int(k): (int(r), int(w)) for k, r, w in _WINDOW_RE.findall(counts)}
        if not total or len(wins) != 1 + len(sites):
            raise BuildError(f"onnxcc's instruction-count plugin wrote nothing on "
                             f"{self.machine.name}:\n{text[-2000:]}",
                             hint="QEMU did not exit normally; please report it")
        c = InstructionCount(int(total.group(1)), *wins[0])
        if c.windows != 1:
            raise BuildError(f"{function} was entered and returned {c.windows} times on "
                             f"{self.machine.name}, expected once",
                             hint=f"the firmware must call it exactly once from {caller}")
        per_site = [(site.callee.split(".")[0], wins[k][0] - wins[k][1])   # foo.constprop.0: foo
                    for k, site in enumerate(sites, start=1)]
        return c, per_site, text

    def run_counted(self, feeds: Mapping[str, np.ndarray],
                    timeout: float = 120) -> tuple[dict[str, np.ndarray], int]:
        """:meth:`run` under the instruction-count plugin: (output name -> array, the guest
        instructions of the one ``<m>_run`` on ``feeds``, everything it calls included; see
        :func:`call_window`). Raises as :meth:`run` and :meth:`count_elf` do."""
        p = self.run_profiled(feeds, timeout, calls=False)
        return p.outputs, p.instructions

    def run_profiled(self, feeds: Mapping[str, np.ndarray], timeout: float = 120, *,
                     calls: bool = True) -> Profile:
        """:meth:`run` under the instruction-count plugin: the outputs, the instructions of
        ``<m>_run``, with ``calls`` (callee, instructions) of each direct call in ``<m>_run``
        (its kernels, ``memcpy``...) in the order of the call instructions, each call from the
        callee's first instruction to its return (what remains of the total is ``<m>_run``'s
        own; a callee may stand for several kernels: the compiler merges identical functions,
        ``-fipa-icf``, see :func:`count_kernels`), and the stack bytes the run used."""
        m = self.mmap["c_prefix"]
        with tempfile.TemporaryDirectory(prefix="onnxcc_qemu_", dir=self.build_dir) as td:
            elf = self.link(feeds, Path(td))
            c, per_site, text = self._count_run(elf, f"{m}_run", timeout, calls=calls,
                                                caller=HARNESS_CALLER)
        return Profile(self.parse(text), c.region, per_site, stack_bytes(text))

    def count(self, feeds: Mapping[str, np.ndarray], timeout: float = 120) -> int:
        """Guest instructions executed by one ``<m>_run`` on ``feeds`` on the board (the
        second item of :meth:`run_counted`)."""
        return self.run_counted(feeds, timeout)[1]


#: the QEMU plugin API version (``qemu_plugin_version``) onnxcc's plugin is written against
PLUGIN_API_VERSION = 1
PLUGIN_SOURCE = "insn_count.c"
_TOTAL_RE = re.compile(r"^onnxcc-insns total=(\d+)$", re.MULTILINE)
_WINDOW_RE = re.compile(r"^onnxcc-window (\d+) region=(\d+) windows=(\d+)$", re.MULTILINE)


def stack_bytes(text: str) -> int:
    """The stack bytes one ``<m>_run`` used, from the harness's output ``text``: the distance
    from the stack pointer at the call to the lowest word of the painted free stack that the run
    changed (exact to the word, counting what the kernels and the C library's functions push)."""
    found = _STACK_RE.search(text)
    if not found:
        raise BuildError(f"the firmware printed no stack use:\n{text[-2000:]}",
                         hint="this is a bug in onnxcc's QEMU harness; please report it")
    return int(found.group(1))


@dataclass
class Profile:
    """One inference on an emulated board (:meth:`Firmware.run_profiled`).

    Attributes:
        outputs: output name -> array.
        instructions: guest instructions of ``<m>_run``, everything it calls included.
        calls: (callee, instructions) per direct call in ``<m>_run``, in address order.
        stack_bytes: the stack the run used (:func:`stack_bytes`).
        kernels: kernel name -> instructions of its call (:func:`count_kernels`), or None.
    """

    outputs: dict[str, np.ndarray]
    instructions: int
    calls: list[tuple[str, int]]
    stack_bytes: int
    kernels: dict[str, int] | None = None


@dataclass(frozen=True)
class InstructionCount:
    """What the instruction-count plugin reports for one QEMU run.

    Attributes:
        total: guest instructions executed from reset to exit.
        region: those executed inside the counted windows (each from the first instruction of
            the counted function to the instruction after its call site, excluded).
        windows: how many such windows were closed.
    """

    total: int
    region: int
    windows: int


def plugin_dir() -> Path:
    """The folder holding the plugin's C source (``qemu_plugin/insn_count.c``)."""
    return Path(str(resources.files("onnxcc.runtime") / "qemu_plugin"))


def cache_dir() -> Path:
    """Where onnxcc keeps what it builds for the host once: ``$ONNXCC_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/onnxcc``, else ``~/.cache/onnxcc``."""
    env = os.environ.get("ONNXCC_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "onnxcc"


def plugin_path(cc: str | None = None) -> Path:
    """The instruction-count TCG plugin (``insn_count.c`` shipped with onnxcc) built for the
    host as a shared object, compiled at first use into :func:`cache_dir` ``/qemu-plugin`` under
    a name that hashes the source and the compiler, so an edit or another compiler rebuilds it.

    Raises BuildError when no host C compiler is found or the build fails.
    """
    src = plugin_dir() / PLUGIN_SOURCE
    cc = cc or find_cc()
    key = hashlib.sha256(src.read_bytes() + b"\0" + cc.encode()).hexdigest()[:16]
    so = cache_dir() / "qemu-plugin" / f"insn_count-{key}.so"
    if so.exists():
        return so
    try:
        so.parent.mkdir(parents=True, exist_ok=True)
        build_into([cc, *WARN_FLAGS, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", str(src)],
                   so, "build the QEMU instruction-count plugin")
    except (BuildError, OSError) as e:
        raise BuildError(f"cannot build onnxcc's QEMU instruction-count plugin {src} into {so}: {e}",
                         hint="it needs a host C compiler (apt-get install gcc) and a writable "
                         "cache folder (set ONNXCC_CACHE_DIR)") from e
    return so


#: a direct call in objdump's disassembly: Thumb ``bl``/``blx``, RISC-V ``jal [ra,]``
_CALL_RE = re.compile(r"^\s*([0-9a-f]+):\s+(bl|blx|jal)\s+(?:ra,\s*)?[0-9a-f]+ <([^>+]+)>$")
_INSN_RE = re.compile(r"^\s*([0-9a-f]+):\s")
_FUNC_RE = re.compile(r"^([0-9a-f]+) <(\S+)>:$")


@dataclass(frozen=True)
class CallSite:
    """A direct call in the firmware: the call instruction's address, the next instruction's
    (where the callee returns), the callee's symbol."""

    call: int
    ret: int
    callee: str


def disassemble_calls(elf: Path, cc: str) -> tuple[dict[str, int], dict[str, list[CallSite]]]:
    """(function name -> address, function name -> its direct calls in address order) of
    ``elf``, from binutils' objdump of the cross toolchain ``cc`` (``...-gcc`` -> ``...-objdump``).
    A call that is its function's last instruction (no return address inside it) is left out.
    Raises BuildError when objdump fails."""
    objdump = cc[:-3] + "objdump" if cc.endswith("gcc") else "objdump"
    text = run_checked([objdump, "-d", "--no-show-raw-insn", str(elf)], "disassemble firmware")
    funcs: dict[str, int] = {}
    calls: dict[str, list[CallSite]] = {}
    current, pending = "", None
    for line in text.splitlines():
        f = _FUNC_RE.match(line)
        if f:
            current, pending = f.group(2), None
            funcs[current] = int(f.group(1), 16)
            continue
        i = _INSN_RE.match(line)
        if not i:
            continue
        if pending is not None:
            calls.setdefault(current, []).append(CallSite(pending[0], int(i.group(1), 16),
                                                          pending[1]))
            pending = None
        c = _CALL_RE.match(line)
        if c:
            pending = (int(c.group(1), 16), c.group(3))
    return funcs, calls


def call_window(elf: Path, function: str, cc: str, caller: str = "main") -> tuple[int, int]:
    """(start, stop) guest addresses delimiting one call of ``function`` in ``elf``: start is
    ``function``'s first instruction, stop the instruction after ``caller``'s single call to it
    (:func:`disassemble_calls`). Counting from start (included) to stop (excluded) gives
    exactly the instructions of the call: the callee's, those of everything it calls, its
    return.

    Raises BuildError when ``function`` is missing or ``caller`` does not call it exactly once.
    """
    funcs, calls = disassemble_calls(elf, cc)
    if function not in funcs:
        raise BuildError(f"no function {function!r} in {elf}",
                         hint="link the library into the firmware")
    sites = [c for c in calls.get(caller, []) if c.callee == function]
    if len(sites) != 1:
        raise BuildError(f"{caller} in {elf} calls {function} {len(sites)} times (or last), "
                         "expected exactly once followed by another instruction",
                         hint="count one call at a time")
    return funcs[function], sites[0].ret


def count_instructions(model: Any, inputs: Mapping[str, np.ndarray], *, target: Any = None,
                       machine: str | None = None, opt: str | None = None,
                       timeout: float = 120) -> int:
    """Guest instructions one inference executes on an emulated core, counted by onnxcc's TCG
    plugin (``runtime/qemu_plugin/insn_count.c``): from the first instruction of ``<m>_run`` to
    its return into the harness, every kernel and library call (``memcpy``, ``expf``) in
    between included. Exact and deterministic for given inputs (QEMU's translation does not
    change what the guest executes).

    Args:
        model: a CompiledModel for an MCU target, or the folder of a saved C library (then
            ``target`` names its target, a name or a Target).
        inputs: input name -> array, as for ``run``.
        target: only with a folder.
        machine: the board (a key of :data:`MACHINES`); by default the target's.
        opt: the optimization flag the firmware is built with (default: the target's
            ``c_opt``: ``-Os`` in size mode, else ``-O2``).
        timeout: seconds for the QEMU run.

    Raises ShapeError for bad inputs, BuildError when a tool is missing, the build fails, the
    run fails, or the plugin cannot be built or loaded (the message says what QEMU needs).
    """
    if isinstance(model, (str, Path)):
        from onnxcc.runtime.build import load_mmap
        from onnxcc.targets import get_target

        if target is None:
            raise BuildError(f"count_instructions on the folder {model} needs target=",
                             hint="pass the target the library was compiled for")
        tgt = get_target(target) if isinstance(target, str) else target
        fw = _new_firmware(Path(model), load_mmap(Path(model)), tgt,
                           opt or getattr(tgt, "c_opt", "-O2"), machine)
    else:
        fw = firmware(model, opt=opt, machine=machine)
    return fw.count(inputs, timeout=timeout)


_KERNEL_FN_RE = re.compile(r"(k\d+)(?:_|$)")


def count_kernels(cm: Any, inputs: Mapping[str, np.ndarray], *, machine: str | None = None,
                  opt: str | None = None, timeout: float = 120) -> Profile:
    """One inference of the CompiledModel ``cm`` on its board under the instruction-count
    plugin (:meth:`Firmware.run_profiled`), with ``kernels``: kernel name
    (``cm.program.kernels[i].name``, e.g. ``k3``) -> the instructions of its call. The kernels
    are matched in order to ``<m>_run``'s calls of kernel functions; a call may go to another
    kernel's function when the compiler merged identical ones (then always an earlier
    kernel's). When they cannot be matched (a kernel inlined, calls reordered) ``kernels`` is
    None. Raises as :func:`count_instructions` does."""
    prof = firmware(cm, opt=opt, machine=machine).run_profiled(inputs, timeout)
    m = cm.mmap["c_prefix"]
    kernels = [k.name for k in getattr(cm.program, "kernels", [])]
    calls = [(f[len(m) + 1:], n) for f, n in prof.calls
             if f.startswith(m + "_") and _KERNEL_FN_RE.match(f[len(m) + 1:])]
    if len(calls) != len(kernels):
        return prof
    order = {k: i for i, k in enumerate(kernels)}
    per: dict[str, int] = {}
    for i, (k, (f, n)) in enumerate(zip(kernels, calls)):
        j = order.get(_KERNEL_FN_RE.match(f).group(1))
        if j is None or j > i:
            return prof
        per[k] = n
    prof.kernels = per
    return prof


def get_machine(name: str) -> Machine:
    """The board called ``name`` in :data:`MACHINES`. Raises BuildError listing them."""
    try:
        return MACHINES[name]
    except KeyError:
        raise BuildError(f"unknown emulated board {name!r}; known: {', '.join(MACHINES)}") from None


def machine_for(target: Any) -> Machine:
    """The board a library compiled for ``target`` runs on: by the target's ``cpu``
    (:data:`MACHINE_OF_CPU`), ``mps2-an386`` for a target outside the ``mcu`` family. Raises
    BuildError naming the CPUs that have a board."""
    if getattr(target, "family", None) != "mcu":
        return MACHINES[BOARD]
    name = MACHINE_OF_CPU.get(target.cpu)
    if name is None:
        raise BuildError(f"no emulated board for cpu {target.cpu!r} of target {target.name}",
                         hint=f"cpus with a board: {', '.join(MACHINE_OF_CPU)}; or pass "
                         f"machine= one of {', '.join(MACHINES)}")
    return MACHINES[name]


def firmware(cm: Any, *, opt: str | None = None, machine: str | None = None) -> Firmware:
    """The (cached) Firmware of a CompiledModel ``cm`` for ``machine`` (a key of
    :data:`MACHINES`; by default the board of ``cm``'s target, :func:`machine_for`), built at
    ``opt`` (default: the target's ``c_opt``, ``-Os`` in size mode, else ``-O2``)."""
    tgt = getattr(cm, "target", None)
    opt = opt or getattr(tgt, "c_opt", "-O2")
    mc = get_machine(machine) if machine else machine_for(tgt)
    cache = cm.__dict__.setdefault("_qemu_fw", {})
    key = (opt, mc.name)
    if key not in cache:
        cache[key] = _new_firmware(cm.lib_dir, cm.mmap, tgt, opt, mc.name)
    return cache[key]


def _new_firmware(lib_dir: Path, mmap: dict, tgt: Any, opt: str, machine: str | None) -> Firmware:
    """A Firmware for the library in ``lib_dir`` compiled for ``tgt``, with the target's flags
    and cross compiler when it is an MCU target."""
    mc = get_machine(machine) if machine else machine_for(tgt)
    mcu = getattr(tgt, "family", None) == "mcu"
    return Firmware(lib_dir, mmap, flags=tgt.c_flags if mcu else None, opt=opt,
                    cc=tgt.cc if mcu else None, machine=mc)


def run_on_qemu(cm: Any, feeds: Mapping[str, np.ndarray], *, timeout: float = 60,
                opt: str | None = None, machine: str | None = None) -> dict[str, np.ndarray]:
    """Build ``cm`` (a CompiledModel for an MCU target) into firmware for the emulated board of
    its target (:func:`machine_for`, or ``machine``) and run it on ``feeds`` (input name ->
    array); ``timeout`` in seconds.

    Returns output name -> array. Raises ShapeError for a missing or mis-shaped input, BuildError
    with the tool's output when the cross compiler or QEMU is missing (the hint names the Debian
    package), when a build fails, or when the run fails or times out.
    """
    return firmware(cm, opt=opt, machine=machine).run(feeds, timeout=timeout)
