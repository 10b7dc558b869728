"""Build a generated cortex-m4 library into firmware and run it on an emulated Cortex-M4 (QEMU).

The board is QEMU's ``mps2-an386`` (ARM MPS2 with the AN386 image: a Cortex-M4 with the
single-precision FPU, so the hard-float ``-mfpu=fpv4-sp-d16`` code of the cortex-m4 target runs
as is). The firmware is the library, a harness ``main`` (written here, not part of the library),
``mcu/startup.c`` (vector table, reset handler, semihosting) and ``mcu/mps2_an386.ld``:

* the inputs are embedded in the firmware as typed ``const`` arrays generated for each run (only
  that small file is recompiled; the library and harness objects are built once per library);
* the harness runs ``<m>_run`` on a static arena of ``<M>_ARENA_SIZE`` bytes aligned to
  ``<M>_ARENA_ALIGN`` in the board's RAM, prints each output's bytes as hex over semihosting
  stdout and exits through ``SYS_EXIT_EXTENDED`` with the status (QEMU's exit code);
* QEMU runs with ``-nographic -monitor none``, semihosting on and a timeout.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from onnxcc.errors import BuildError
from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS, check_feeds, library_sources

BOARD = "mps2-an386"
QEMU = "qemu-system-arm"
CROSS_CC = "arm-none-eabi-gcc"
LINKER_SCRIPT = "mps2_an386.ld"
STARTUP = "startup.c"
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

int main(void)
{{
    int status = (int){m}_run(arena, sizeof arena{args});
    onnxcc_semihost_write0("onnxcc-status ");
    put_uint((unsigned)status);
    onnxcc_semihost_write0("\n");
    if (status != 0) return {base} + status;
{prints}    return 0;
}}
"""

_OUT_RE = re.compile(r"^onnxcc-out (\d+) ([0-9a-f]*)$", re.MULTILINE)
_STATUS_RE = re.compile(r"^onnxcc-status (\d+)$", re.MULTILINE)


def mcu_dir() -> Path:
    """The folder holding ``startup.c``, ``onnxcc_semihost.h`` and the linker script."""
    return Path(str(resources.files("onnxcc.runtime") / "mcu"))


def include_dir() -> Path:
    return Path(str(resources.files("onnxcc.runtime") / "include"))


def find_tools(cc: str = CROSS_CC, qemu: str = QEMU) -> tuple[str, str]:
    """The cross compiler and QEMU, as paths. Raises BuildError naming the Debian package when
    either is missing."""
    cc_path, qemu_path = shutil.which(cc), shutil.which(qemu)
    if not cc_path:
        raise BuildError(f"{cc} not found: cannot build cortex-m4 firmware",
                         hint="install it: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")
    if not qemu_path:
        raise BuildError(f"{qemu} not found: cannot run cortex-m4 firmware",
                         hint="install it: apt-get install qemu-system-arm")
    return cc_path, qemu_path


def _run_tool(cmd: Sequence[str], what: str, timeout: float = 600) -> str:
    try:
        p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as e:
        raise BuildError(f"{what}: {cmd[0]} not found",
                         hint="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm") from e
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"{what} timed out after {timeout:g} s: {' '.join(cmd)}") from e
    if p.returncode != 0:
        hint = "this is a bug in onnxcc's generated code; please report it with the model"
        text = p.stdout + p.stderr
        if "cannot find -lc" in text or "cannot find -lm" in text or "nano.specs" in text \
                or "stdint.h: No such file" in text:
            hint = "the C library for arm-none-eabi is missing: apt-get install libnewlib-arm-none-eabi"
        raise BuildError(f"{what} failed ({p.returncode}): {' '.join(cmd)}\n{text}"[-6000:], hint=hint)
    return p.stdout


def _c_literal(v: Any, dtype: np.dtype) -> str:
    """An exact C literal for one element of ``dtype``."""
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


def _target_flags(cm: Any) -> tuple[str, ...]:
    tgt = getattr(cm, "target", None)
    if getattr(tgt, "cpu", None) == "cortex-m4" and getattr(tgt, "c_flags", None):
        return tuple(tgt.c_flags)
    return CORTEX_M4_FLAGS


class Firmware:
    """The library of one CompiledModel built for the board: objects compiled once, then linked
    with a fresh inputs file for each ``run``."""

    def __init__(self, lib_dir: Path, mmap: dict, *, flags: Sequence[str] = CORTEX_M4_FLAGS,
                 opt: str = "-O2", cc: str = CROSS_CC, qemu: str = QEMU) -> None:
        self.lib_dir, self.mmap = Path(lib_dir), mmap
        self.cc, self.qemu = find_tools(cc, qemu)
        self.flags = [*flags, opt, "-ffunction-sections", "-fdata-sections"]
        self.build_dir = self.lib_dir / "qemu"
        self.build_dir.mkdir(exist_ok=True)
        self.timings: dict[str, float] = {}
        t0 = time.perf_counter()
        self.objects = self._compile_library()
        self.timings["build_s"] = time.perf_counter() - t0

    def _compile(self, src: Path, obj: Path, warn: Sequence[str] = WARN_FLAGS) -> Path:
        inc = [f"-I{self.lib_dir}", f"-I{mcu_dir()}", f"-I{include_dir()}", f"-Wa,-I{self.lib_dir}"]
        _run_tool([self.cc, *warn, *self.flags, *inc, "-c", str(src), "-o", str(obj)],
                  f"cross-compile {src.name}")
        return obj

    def _compile_library(self) -> list[Path]:
        m, b = self.mmap["c_prefix"], self.build_dir
        harness = write_harness(b / f"{m}_qemu_main.c", self.mmap)
        srcs = [*library_sources(self.lib_dir, self.mmap), harness, mcu_dir() / STARTUP]
        # The LLVM back end's object is linked as it is.
        return [s if s.suffix == ".o" else self._compile(s, b / (s.stem + ".o")) for s in srcs]

    def link(self, feeds: Mapping[str, np.ndarray], out_dir: Path) -> Path:
        """Link firmware with ``feeds`` embedded; returns the ELF path."""
        m = self.mmap["c_prefix"]
        src = write_inputs(out_dir / f"{m}_qemu_inputs.c", self.mmap, feeds)
        obj = self._compile(src, out_dir / f"{m}_qemu_inputs.o")
        elf = out_dir / f"{m}_qemu.elf"
        _run_tool([self.cc, *self.flags, "-nostartfiles", "-T", str(mcu_dir() / LINKER_SCRIPT),
                   "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections",
                   *map(str, self.objects), str(obj),
                   "-lm", "-o", str(elf)], "link firmware")
        return elf

    def run_elf(self, elf: Path, timeout: float = 60) -> str:
        """Run ``elf`` on the board; returns its semihosting stdout. Raises BuildError when QEMU
        fails, times out, or the firmware exits with a non-zero status."""
        cmd = [self.qemu, "-M", BOARD, "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
               "-serial", "null", "-semihosting-config", "enable=on,target=native",
               "-kernel", str(elf)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"")[-2000:]
            raise BuildError(f"{QEMU} timed out after {timeout:g} s on {BOARD}: {' '.join(cmd)}\n{out!r}",
                             hint="the firmware hangs or is very slow; raise timeout= for big models") from e
        except FileNotFoundError as e:
            raise BuildError(f"{QEMU} not found", hint="install it: apt-get install qemu-system-arm") from e
        text = p.stdout + p.stderr
        if p.returncode != 0:
            why = {FAULT_EXIT: "the core took a fault (HardFault/MemManage/BusFault/UsageFault)",
                   UNEXPECTED_IRQ_EXIT: "an unexpected interrupt"}.get(p.returncode, "")
            if p.returncode > STATUS_BASE and p.returncode < FAULT_EXIT - 1:
                why = f"{self.mmap['c_prefix']}_run returned status {p.returncode - STATUS_BASE}"
            raise BuildError(f"firmware on {QEMU} -M {BOARD} exited with {p.returncode}"
                             f"{': ' + why if why else ''}\n{' '.join(cmd)}\n{text}"[-6000:],
                             hint="1 = NULL argument, 2 = arena too small, 3 = arena misaligned; "
                             "otherwise a bug in onnxcc's generated code, please report it")
        return text   # QEMU writes semihosting console output to stderr, without a chardev

    def parse(self, text: str) -> dict[str, np.ndarray]:
        """The outputs printed by the harness, as name -> array."""
        st = _STATUS_RE.search(text)
        found = {int(k): h for k, h in _OUT_RE.findall(text)}
        if st is None or int(st.group(1)) != 0 or len(found) != len(self.mmap["outputs"]):
            raise BuildError(f"unexpected firmware output on {BOARD}:\n{text[-4000:]}",
                             hint="this is a bug in onnxcc's QEMU harness; please report it")
        res = {}
        for k, t in enumerate(self.mmap["outputs"]):
            n = int(np.prod(t["shape"], dtype=np.int64))
            raw = bytes.fromhex(found[k])
            res[t["name"]] = np.frombuffer(raw, dtype=t["dtype"], count=n).copy().reshape(t["shape"])
        return res

    def run(self, feeds: Mapping[str, np.ndarray], timeout: float = 60) -> dict[str, np.ndarray]:
        """Link firmware with ``feeds`` and run it on the board; returns output name -> array."""
        with tempfile.TemporaryDirectory(prefix="onnxcc_qemu_", dir=self.build_dir) as td:
            t0 = time.perf_counter()
            elf = self.link(feeds, Path(td))
            t1 = time.perf_counter()
            text = self.run_elf(elf, timeout=timeout)
            t2 = time.perf_counter()
        self.timings.update(link_s=t1 - t0, qemu_s=t2 - t1)
        return self.parse(text)


def _target_cc(cm: Any) -> str:
    cc = getattr(getattr(cm, "target", None), "cc", None)
    return cc if cc and cc.endswith("arm-none-eabi-gcc") else CROSS_CC


def firmware(cm: Any, *, opt: str = "-O2") -> Firmware:
    """The (cached) Firmware of a CompiledModel ``cm``."""
    cache = cm.__dict__.setdefault("_qemu_fw", {})
    if opt not in cache:
        cache[opt] = Firmware(cm.lib_dir, cm.mmap, flags=_target_flags(cm), opt=opt,
                              cc=_target_cc(cm))
    return cache[opt]


def run_on_qemu(cm: Any, feeds: Mapping[str, np.ndarray], *, timeout: float = 60,
                opt: str = "-O2") -> dict[str, np.ndarray]:
    """Build ``cm`` (a CompiledModel, normally for ``cortex-m4``) into firmware for QEMU's
    ``mps2-an386`` Cortex-M4 board and run it on ``feeds`` (input name -> array).

    Returns output name -> array. Raises ShapeError for a missing or mis-shaped input, BuildError
    with the tool's output when arm-none-eabi-gcc or qemu-system-arm is missing (the hint names
    the Debian package), when a build fails, or when the run fails or times out.
    """
    return firmware(cm, opt=opt).run(feeds, timeout=timeout)
