"""The LLVM back end's library: a verified Program -> object file beside the C header.

:func:`emit_llvm` takes the graph's Program (lowered, scheduled and verified by
:func:`onnxcc.codegen.lower.lower_for_target`, as for the C back end), compiles it at O3 for the target's triple, CPU and features into ``<m>.o`` (``<m>_run``, its
kernels and its weights), and lets the C emitter write the same ``<m>.h`` as the C back end, an
``<m>.c`` with the tensor-info tables and ``<m>_run_static``, the memory map and the build files.
So a user switches ``--target host`` to ``--target cpu`` without touching the calling code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from onnxcc.codegen.loops import Program
from onnxcc.ir import Graph


def emit_llvm(g: Graph, program: Program, out_dir: Path, *, target: Any, name: str,
              version: str, sha256: str, options: dict[str, Any], source: str
              ) -> tuple[dict[str, Any], bytes]:
    """Write the library of the planned graph ``g`` for the LLVM ``target`` into ``out_dir``.

    Returns (memory map, the object's bytes). The object is for ``target.triple``/``cpu``/
    ``features`` (``cpu="native"``: this machine, from LLVM's host detection),
    position-independent except on bare-metal triples. Raises OnnxccError when LLVM rejects
    the rendered IR.
    """
    from onnxcc.codegen.c.emit import RunObject, emit_c

    from .jit import emit_object, host_cpu
    from .render import weight_data

    triple, cpu, features = target.triple, target.cpu, target.features
    if cpu == "native":
        triple, cpu, features = host_cpu()
    weights_size = sum(w.nbytes for w in weight_data(program))
    obj: dict[str, bytes] = {}

    def compile_object(run_symbol: str) -> bytes:
        obj["data"] = emit_object(program, triple, cpu, features, run_symbol=run_symbol)
        return obj["data"]

    info = {"triple": triple, "cpu": cpu, "features": features}
    mmap = emit_c(g, out_dir, name=name, weights_in_c=False, version=version, sha256=sha256,
                  options=options, source=source,
                  run_object=RunObject(compile_object, weights_size, info))
    return mmap, obj["data"]


class JITLibrary:
    """The LLVM back end's library run in process: ``run(feeds)`` as the C back end's
    ``SharedLibrary.run`` (inputs checked by name, shape and dtype; output name -> array).

    With ``obj`` (an object emitted for this machine, ``cpu="native"``) the JIT loads those
    very bytes, so ``run()`` executes the code ``save()`` ships; otherwise (a cross target) the
    Program is compiled again for this machine. Thread-safe: each thread has its own arena."""

    def __init__(self, program: Program, mmap: dict[str, Any], obj: bytes | None) -> None:
        from .jit import JITProgram

        from onnxcc.runtime.build import check_feeds

        self.mmap = mmap
        self.jit = JITProgram(program, run_symbol=f"{mmap['c_prefix']}_run", obj=obj)
        self._check = check_feeds
        self._names = [t["name"] for t in mmap["outputs"]]

    def run(self, feeds: Any) -> dict[str, Any]:
        """Run on ``feeds`` (input name -> array). Raises ShapeError for a missing, extra or
        mis-shaped input or a lossy dtype conversion; OnnxccError for a non-OK status."""
        return dict(zip(self._names, self.jit.run(self._check(self.mmap, feeds))))
