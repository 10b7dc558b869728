"""Helpers for loop-IR tests: a planned graph from the public API, its Program, and the Program
run four ways (the numpy interpreter, C built with a host compiler, LLVM's JIT, and onnxruntime's
oracle)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx

import onnxcc
from onnxcc.codegen.c.render import render_program
from onnxcc.codegen.interpret import run_program
from onnxcc.codegen.loops import Program
from onnxcc.codegen.lower import lower_program
from onnxcc.codegen.verify import verify

C_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-O1", "-shared", "-fPIC"]


def program_of(model: onnx.ModelProto, **kw) -> Program:
    """The verified Program of ``model`` compiled for ``host`` through the public API."""
    cm = onnxcc.compile(model, "host", **kw)
    p = lower_program(cm.graph)
    verify(p)
    return p


def run_c(p: Program, inputs: Sequence[np.ndarray], cc: str = "gcc") -> list[np.ndarray]:
    """Render ``p`` as one C file, build it warning-free with ``cc`` and run it via ctypes."""
    src = render_program(p)
    with tempfile.TemporaryDirectory() as d:
        c, so = Path(d) / "p.c", Path(d) / "p.so"
        c.write_text(src)
        r = subprocess.run([shutil.which(cc) or cc, *C_FLAGS, str(c), "-o", str(so), "-lm"],
                           capture_output=True, text=True)
        if r.returncode:
            raise AssertionError(f"{cc} failed:\n{r.stderr}\n---\n{src}")
        lib = ctypes.CDLL(str(so))
        arena = np.zeros(max(p.arena_size, 1) + 64, np.uint8)
        base = (-arena.ctypes.data) % 64
        ins = [np.ascontiguousarray(np.asarray(x, b.dtype.np)) for x, b in zip(inputs, p.inputs)]
        outs = [np.zeros(b.shape, b.dtype.np) for b in p.outputs]
        args = [ctypes.c_void_p(arena.ctypes.data + base)]
        args += [ctypes.c_void_p(a.ctypes.data) for a in ins + outs]
        assert lib.run(*args) == 0
        return outs


def run_interp(p: Program, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run ``p`` in the numpy interpreter."""
    return run_program(p, inputs)


def run_llvm(p: Program, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Render ``p`` through llvmlite, optimize it at O3 for this CPU, JIT it and run it."""
    from onnxcc.codegen.llvm.jit import JITProgram

    return JITProgram(p).run(inputs)
