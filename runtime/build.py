"""Build a generated C library with the system compiler and run it.

The host build links the library with a small test harness (``<m>_main.c``, written here, not
part of the library) into an executable that reads raw input files and writes raw output files,
so the same path works under ``-fsanitize=address,undefined`` and, later, under an emulator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from onnxcc.errors import BuildError, ShapeError

WARN_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer", "-g")
CORTEX_M4_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16")

HARNESS = r"""/* Test harness for {m}: reads raw inputs, runs, writes raw outputs. Not part of the library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "{m}.h"

static int read_file(const char *path, void *dst, size_t n)
{{
    FILE *f = fopen(path, "rb");
    size_t got;
    if (!f) return 1;
    got = n ? fread(dst, 1, n, f) : 0;
    fclose(f);
    return got != n;
}}

static int write_file(const char *path, const void *src, size_t n)
{{
    FILE *f = fopen(path, "wb");
    size_t put;
    if (!f) return 1;
    put = n ? fwrite(src, 1, n, f) : 0;
    fclose(f);
    return put != n;
}}

int main(int argc, char **argv)
{{
    void *bufs[{n_io}];
    const size_t bytes[{n_io}] = {{ {io_bytes} }};
    unsigned char *raw = (unsigned char *)malloc({M}_ARENA_SIZE + {M}_ARENA_ALIGN);
    unsigned char *arena = raw + ({M}_ARENA_ALIGN - ((size_t)raw % {M}_ARENA_ALIGN)) % {M}_ARENA_ALIGN;
    int k, status = 0, repeat = 1;
    if (argc < {n_io} + 1) return 90;
    if (argc > {n_io} + 1) repeat = atoi(argv[{n_io} + 1]);
    for (k = 0; k < {n_io}; ++k) {{
        bufs[k] = malloc(bytes[k] ? bytes[k] : 1);
        if (!bufs[k]) return 91;
    }}
    for (k = 0; k < {n_in}; ++k)
        if (read_file(argv[1 + k], bufs[k], bytes[k])) return 92;
    for (k = 0; k < repeat; ++k)
        status = (int){m}_run(arena, {M}_ARENA_SIZE{args});
    if (status != 0) return 100 + status;
    for (k = {n_in}; k < {n_io}; ++k)
        if (write_file(argv[1 + k], bufs[k], bytes[k])) return 93;
    for (k = 0; k < {n_io}; ++k) free(bufs[k]);
    free(raw);
    return 0;
}}
"""


def find_cc(prefer: Sequence[str] = ("cc", "gcc", "clang")) -> str:
    """The first C compiler found on PATH. Raises BuildError when there is none."""
    for c in prefer:
        if shutil.which(c):
            return c
    raise BuildError("no C compiler found (cc, gcc or clang)",
                     hint="install one: apt-get install gcc")


def write_harness(lib_dir: Path, mmap: dict) -> Path:
    """Write ``<m>_main.c`` for the library in ``lib_dir`` described by its memory map."""
    m = mmap["c_prefix"]
    n_in, n_out = len(mmap["inputs"]), len(mmap["outputs"])
    sizes = [int(np.prod(t["shape"], dtype=np.int64)) * np.dtype(t["dtype"]).itemsize
             for t in mmap["inputs"] + mmap["outputs"]]
    from onnxcc.codegen.c.render import CTYPE as CTYPES

    args = "".join(f", ({'const ' if k < n_in else ''}{CTYPES[t['dtype']]} *)bufs[{k}]"
                   for k, t in enumerate(mmap["inputs"] + mmap["outputs"]))
    text = HARNESS.format(m=m, M=m.upper(), n_io=n_in + n_out, n_in=n_in,
                          io_bytes=", ".join(f"{s}u" for s in sizes) or "0", args=args)
    path = lib_dir / f"{m}_main.c"
    tmp = _temp_beside(path)
    tmp.write_text(text)
    os.replace(tmp, path)   # atomic: a compiler in another thread never reads a half-written file
    return path


def _temp_beside(path: Path) -> Path:
    """A fresh file name in ``path``'s folder, to write and then ``os.replace`` onto ``path``.

    Several threads may build the same library at once (``CompiledModel.run`` builds lazily);
    each writes its own file and the rename is atomic, so a file another thread has open or
    mapped (a loaded ``.so``, a running harness) is never truncated under it.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def build_into(cmd: list[str], out: Path, what: str) -> None:
    """Run the compiler ``cmd`` (without ``-o``) writing a temporary file, then rename it to
    ``out`` atomically. Raises BuildError when compilation fails."""
    tmp = _temp_beside(out)
    try:
        run_checked([*cmd, "-o", str(tmp)], what)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def library_sources(lib_dir: Path, mmap: dict) -> list[Path]:
    """What to compile and link for the library in ``lib_dir``: ``<m>.c`` and ``<m>_weights.c``
    (C back end), or ``<m>.c`` and the object ``<m>.o`` (LLVM back end: ``<m>_run`` inside)."""
    m = mmap["c_prefix"]
    rest = f"{m}.o" if mmap.get("backend") == "llvm" else f"{m}_weights.c"
    return [Path(lib_dir) / f"{m}.c", Path(lib_dir) / rest]


def build_executable(lib_dir: Path, mmap: dict, *, cc: str | None = None, opt: str = "-O2",
                     sanitize: bool = False, extra_flags: Sequence[str] = ()) -> Path:
    """Compile the library in ``lib_dir`` and its harness into an executable; returns its path.

    Raises BuildError with the compiler's messages when compilation fails.
    """
    cc = cc or find_cc()
    m = mmap["c_prefix"]
    harness = write_harness(lib_dir, mmap)
    exe = lib_dir / (f"{m}_run_asan" if sanitize else f"{m}_run")
    flags = [*WARN_FLAGS, opt, f"-I{lib_dir}", f"-Wa,-I{lib_dir}", *extra_flags]
    if sanitize:
        flags += SANITIZE_FLAGS
    cmd = [cc, *flags, *map(str, library_sources(lib_dir, mmap)), str(harness), "-lm"]
    build_into(cmd, exe, "build")
    return exe


def compile_object(lib_dir: Path, mmap: dict, *, cc: str, flags: Sequence[str]) -> dict[str, int]:
    """Cross-compile the library to objects (no link); returns section sizes in bytes
    (``text``, ``data``, ``bss``) summed over the library's objects."""
    sizes = {"text": 0, "data": 0, "bss": 0}
    size_tool = cc.replace("gcc", "size") if cc.endswith("gcc") else "size"
    with tempfile.TemporaryDirectory(prefix="onnxcc_size_") as tmp:
        for src in library_sources(lib_dir, mmap):
            obj = src
            if src.suffix == ".c":   # the LLVM back end's object is measured as it is
                obj = Path(tmp) / (src.stem + ".o")
                run_checked([cc, *WARN_FLAGS, "-Os", *flags, f"-I{lib_dir}", f"-Wa,-I{lib_dir}",
                             "-c", str(src), "-o", str(obj)], "cross-compile")
            out = run_checked([size_tool, str(obj)], "size").splitlines()
            vals = out[-1].split()
            sizes["text"] += int(vals[0])
            sizes["data"] += int(vals[1])
            sizes["bss"] += int(vals[2])
    return sizes


def object_sizes(obj: Path, size_tool: str = "size") -> dict[str, int] | None:
    """``text``, ``data`` and ``bss`` bytes of the object file ``obj`` as binutils' ``size``
    reports them (None when ``size`` is not installed)."""
    if not shutil.which(size_tool):
        return None
    vals = run_checked([size_tool, str(obj)], "size").splitlines()[-1].split()
    return {"text": int(vals[0]), "data": int(vals[1]), "bss": int(vals[2])}


GENERATED_CODE_HINT = "this is a bug in onnxcc's generated code; please report it with the model"
#: what gcc and clang print when they refuse a command-line flag (a target's ``c_flags``)
_FLAG_ERRORS = ("unrecognized command-line option", "unrecognized command line option",
                "unrecognized argument", "unknown argument", "unrecognized -m",
                "unknown target CPU", "bad value", "missing argument to", "unsupported option")


def failure_hint(text: str, cmd: Sequence[str]) -> str:
    """The hint of a BuildError for a tool that failed printing ``text``: a refused flag names
    the flags (a target file's ``c_flags``), else onnxcc's generated code is to blame."""
    if any(k in text for k in _FLAG_ERRORS):
        flags = " ".join(a for a in cmd[1:] if a.startswith("-") and a not in ("-c", "-o")
                         and not a.startswith(("-I", "-W", "-L", "-T")))
        return (f"{Path(cmd[0]).name} refused a flag of the build ({flags}): check the target's "
                "c_flags and cc (a target file's c_flags, or a compiler too old for the core)")
    return GENERATED_CODE_HINT


def run_checked(cmd: Sequence[str], what: str, timeout: float = 1800) -> str:
    """Run ``cmd``; raise BuildError with its output when it fails (the hint from
    :func:`failure_hint`)."""
    try:
        p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as e:
        raise BuildError(f"{what}: {cmd[0]} not found", hint="install the toolchain") from e
    if p.returncode != 0:
        raise BuildError(f"{what} failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}"[-6000:],
                         hint=failure_hint(p.stdout + p.stderr, cmd))
    return p.stdout


def check_feeds(mmap: dict, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The model's inputs from ``feeds``, in order, as C-contiguous arrays of the model's dtypes.

    Inputs are checked by name, shape and dtype against the model, as onnxruntime does, except
    that a dtype conversion that loses nothing is made for the caller. The rule ("same kind with
    a value check"): an integer or bool input accepts any bool/int/uint/float array whose every
    value it holds exactly (``3.0`` feeds an int64 input; ``3.5``, NaN or ``300`` for uint8 do
    not); a float input accepts bool and integer arrays whose values it holds exactly (``2**24 + 1``
    does not fit float32's 24-bit significand), and a float array of another width, rounded to the
    input's precision when no finite value overflows. Strings, objects and complex numbers are
    never converted.

    Raises ShapeError for feeds that are no mapping, naming a missing input, a name the model
    has no input for, an input whose shape differs from the model's, or one whose dtype cannot
    be converted without loss.
    """
    names = [t["name"] for t in mmap["inputs"]]
    if not isinstance(feeds, Mapping):
        raise ShapeError(f"the inputs are a {type(feeds).__name__}, not a mapping of input names "
                         "to arrays", hint=f"feed a dict with the keys {names}")
    extra = [k for k in feeds if k not in names]
    if extra:
        raise ShapeError(f"the model has no input named {', '.join(repr(k) for k in extra)}; "
                         f"its inputs are {names}",
                         hint="feed exactly the model's inputs (onnxruntime refuses others too)")
    arrays = []
    for t in mmap["inputs"]:
        if t["name"] not in feeds:
            raise ShapeError(f"missing input {t['name']!r}", hint=f"feed all of {names}")
        a = np.asarray(feeds[t["name"]])
        want = np.dtype(t["dtype"])
        if tuple(a.shape) != tuple(t["shape"]):
            raise ShapeError(f"input {t['name']!r} has shape {a.shape}, the model wants "
                             f"{tuple(t['shape'])}", hint="compile with input_shapes for another shape")
        if a.dtype != want:
            if a.dtype.kind not in "biuf":
                kind = _KINDS.get(a.dtype.kind, "not numbers")
                raise ShapeError(f"input {t['name']!r} is an array of {a.dtype} ({kind}); "
                                 f"the model wants {want}", hint=f"feed a numeric array of {want}")
            if not _lossless(a, want):
                raise ShapeError(f"input {t['name']!r} is {a.dtype} with values {want} cannot "
                                 f"hold exactly; the model wants {want}",
                                 hint=f"convert it yourself (a.astype(np.{want})) if the loss "
                                 "is intended")
            with np.errstate(all="ignore"):
                a = a.astype(want)
        arrays.append(np.ascontiguousarray(a))
    return arrays


_KINDS = {"U": "strings", "S": "byte strings", "O": "Python objects", "c": "complex numbers",
          "M": "dates", "m": "time deltas", "V": "raw records"}


def _lossless(a: np.ndarray, want: np.dtype) -> bool:
    """Whether every value of the bool/int/uint/float array ``a`` converts to ``want`` exactly
    (for a float to a float of another width: whether no finite value overflows)."""
    if a.size == 0 or np.can_cast(a.dtype, want, "safe") and not (a.dtype.kind in "iu" and want.kind == "f"):
        return True
    if want.kind == "b":
        return bool(np.isin(a, (0, 1)).all())
    if want.kind in "iu":
        info = np.iinfo(want)
        if a.dtype.kind == "f":
            if not np.isfinite(a).all() or (a != np.trunc(a)).any():
                return False
            return float(a.min()) >= info.min and float(a.max()) < float(info.max) + 1
        return int(a.min()) >= info.min and int(a.max()) <= info.max
    with np.errstate(all="ignore"):
        b = a.astype(want)
    if a.dtype.kind == "f":
        return bool((np.isfinite(b) == np.isfinite(a)).all())
    if a.dtype.kind == "b":
        return True
    exact = 2 ** (np.finfo(want).nmant + 1)   # every integer up to this is a float of ``want``
    big = (a < -exact) | (a > exact)
    return all(np.isfinite(y) and int(x) == int(y) for x, y in zip(a[big].tolist(), b[big].tolist()))


def run_executable(exe: Path, mmap: dict, feeds: Mapping[str, np.ndarray], repeat: int = 1,
                   env: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """Run a harness executable on ``feeds`` (input name -> array); returns name -> array.

    Raises ShapeError for a missing or mis-shaped input, BuildError when the run fails.
    """
    with tempfile.TemporaryDirectory(prefix="onnxcc_run_") as td:
        paths = []
        for k, a in enumerate(check_feeds(mmap, feeds)):
            p = Path(td) / f"in{k}.bin"
            p.write_bytes(a.tobytes())
            paths.append(str(p))
        outs = [str(Path(td) / f"out{k}.bin") for k in range(len(mmap["outputs"]))]
        e = dict(os.environ, **(env or {}))
        p = subprocess.run([str(exe), *paths, *outs, str(repeat)], capture_output=True, text=True,
                           env=e, timeout=3600)
        if p.returncode != 0:
            raise BuildError(f"generated code exited with {p.returncode}\n{p.stdout}{p.stderr}"[-6000:],
                             hint="a status >= 100 is the model's status enum + 100")
        res = {}
        for t, path in zip(mmap["outputs"], outs):
            res[t["name"]] = np.fromfile(path, dtype=t["dtype"]).reshape(t["shape"])
        return res


def load_mmap(lib_dir: Path) -> dict:
    """The memory map ``<m>.json`` of a generated library folder."""
    found = sorted(Path(lib_dir).glob("*.json"))
    return json.loads(found[0].read_text())


def build_shared(lib_dir: Path, mmap: dict, *, cc: str | None = None, opt: str = "-O2") -> Path:
    """Compile the library in ``lib_dir`` into a shared object for ctypes; returns its path.

    Raises BuildError with the compiler's messages when compilation fails.
    """
    cc = cc or find_cc()
    m = mmap["c_prefix"]
    so = lib_dir / f"lib{m}.so"
    build_into([cc, *WARN_FLAGS, opt, "-shared", "-fPIC", f"-I{lib_dir}", f"-Wa,-I{lib_dir}",
                 *map(str, library_sources(lib_dir, mmap)), "-lm"], so, "build")
    return so


class ThreadArenas:
    """One arena per calling thread, kept between calls: ``get()`` returns this thread's arena
    (``size`` bytes aligned to ``align``), allocated on the thread's first call.

    Allocating a fresh arena per call cost a page fault per 4 KiB touched (resnet50: tens of MB
    every run; MobileNetV1-0.25's 216 KiB arena was a tenth of its run time), which onnxruntime
    does not pay either. Still reentrant across threads: no two threads share an arena, and one
    thread is inside one ``<m>_run`` at a time. Generated code never relies on an arena's
    previous contents (every kernel writes before it reads)."""

    def __init__(self, size: int, align: int) -> None:
        self.size, self.align = int(size), int(align)
        self._local = threading.local()

    def get(self) -> tuple[np.ndarray, int]:
        """(the buffer that owns the memory, the aligned address of the arena in it)."""
        got = getattr(self._local, "arena", None)
        if got is None:
            raw = np.empty(max(self.size, 1) + self.align, np.uint8)
            got = self._local.arena = (raw, raw.ctypes.data + (-raw.ctypes.data) % self.align)
        return got


class SharedLibrary:
    """A generated library loaded with ctypes: ``run(feeds)`` calls ``<m>_run`` in-process with
    the calling thread's arena (numpy bytes aligned to ``<M>_ARENA_ALIGN``, see ThreadArenas)
    and numpy-owned inputs/outputs.

    Thread-safe: each thread has its own arena and every call its own outputs, the generated
    ``<m>_run`` keeps no state outside them (only ``<m>_run_static`` does, and it is not called
    here), and ctypes releases the GIL during the call, so several threads run the model at
    once."""

    def __init__(self, so: Path, mmap: dict) -> None:
        import ctypes

        self.mmap = mmap
        self.lib = ctypes.CDLL(str(so))
        self.fn = getattr(self.lib, f"{mmap['c_prefix']}_run")
        n = len(mmap["inputs"]) + len(mmap["outputs"])
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t] + [ctypes.c_void_p] * n
        self.fn.restype = ctypes.c_int
        self.arenas = ThreadArenas(mmap["arena"]["size"], max(mmap["arena"]["alignment"], 8))

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on ``feeds`` (input name -> array); returns output name -> array.

        Raises ShapeError for a missing or mis-shaped input, BuildError for a non-OK status.
        """
        ins = check_feeds(self.mmap, feeds)
        outs = [np.empty(t["shape"], t["dtype"]) for t in self.mmap["outputs"]]
        size = self.arenas.size
        _raw, arena = self.arenas.get()
        # A zero-size input or output still gets a valid pointer: <m>_run refuses NULL.
        spare = np.zeros(1, np.uint64)
        status = self.fn(arena if size else None, size,
                         *[a.ctypes.data if a.size else spare.ctypes.data for a in ins + outs])
        if status != 0:
            raise BuildError(f"generated code returned status {status}",
                             hint="1 = NULL argument, 2 = arena too small, 3 = arena misaligned")
        return {t["name"]: o for t, o in zip(self.mmap["outputs"], outs)}
