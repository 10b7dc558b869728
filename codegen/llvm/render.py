"""LLVM renderer of a loop-IR :class:`Program`: one ``llvmlite.ir.Module``.

Each kernel is rendered by ``onnxcc.codegen.llvm.kernel`` (semantics stated there); the program
becomes one exported entry

    i32 <name>_run(i8* arena, iN arena_size, T* input0, ..., T* output0, ...)

with the C back end's status codes (:data:`STATUS`, as ``model.h.j2`` defines them) and checks
(NULL pointers, arena size and alignment), calling the kernels in order with pointers from the
memory plan: the arena plus an offset, a graph input/output plus an offset, or a weight — a
private constant aligned to 64 bytes, one global per data array (or an external symbol the JIT
binds, see :func:`render_program`).
"""

from __future__ import annotations

import re
from typing import Sequence

import llvmlite.ir as ir
import numpy as np

from onnxcc.codegen.loops import Buffer, Program
from onnxcc.errors import OnnxccError

from .kernel import I8, I32, kernel_params, mem_type, render_kernel

STATUS = {"OK": 0, "NULL_ARG": 1, "ARENA_TOO_SMALL": 2, "ARENA_MISALIGNED": 3}  # as model.h.j2
WEIGHT_ALIGN = 64


def symbol(name: str) -> str:
    """``name`` as a C identifier (the entry is ``<symbol(program.name)>_run`` by default)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name) or "model"
    return "m_" + s if s[0].isdigit() else s


_HEX = np.frombuffer(b"".join(b"\\%02X" % i for i in range(256)), np.uint8).reshape(256, 3)


def _escaped(raw: bytes) -> str:
    """``raw`` as the body of an LLVM ``c"..."`` string, every byte as ``\\XY`` (numpy-fast:
    llvmlite's per-byte Python escaping takes seconds per 10 MB of weights)."""
    return _HEX[np.frombuffer(raw, np.uint8)].tobytes().decode("ascii")


def weight_data(p: Program) -> list[np.ndarray]:
    """The distinct weight arrays of ``p`` (one per data array, by identity) as flat arrays of
    their dtype, in the order of the globals ``w0, w1, …`` that :func:`render_program` makes."""
    seen: dict[int, np.ndarray] = {}
    for b in p.weights():
        if id(b.data) not in seen:
            seen[id(b.data)] = np.ascontiguousarray(b.data, b.dtype.np).reshape(-1)
    return list(seen.values())


def weight_section(k: int) -> str:
    """The ELF section of weight ``w<k>`` when weights are patched into the object (see
    :func:`render_program`'s ``patched_weights``)."""
    return f".rodata.onnxcc_w{k}"


def render_program(p: Program, *, run_symbol: str | None = None, index_bits: int = 64,
                   extern_weights: str | None = None, patched_weights: bool = False
                   ) -> ir.Module:
    """``p`` as an LLVM module: its kernels, its weights and the exported entry
    ``i32 run_symbol(i8* arena, iN arena_size, T* input0..., T* output0...)`` (default
    ``<symbol(p.name)>_run``; ``N`` = ``index_bits``, the target's ``size_t`` width).

    Weights are private constants ``w<k>`` (:func:`weight_data` order) holding the data, or, with
    ``extern_weights=prefix``, external constants ``<prefix>w<k>`` the caller defines (64-byte
    aligned): the JIT binds them to arrays in memory instead of passing megabytes through IR text.
    With ``patched_weights``, each weight is an internal ``externally_initialized`` constant of
    zeros in its own ELF section :func:`weight_section` (so no pass may assume its value, and
    none is merged with another): the object's bytes are written over them afterwards
    (``jit.patch_sections``), so megabytes of weights never go through IR text either.

    The entry returns :data:`STATUS` codes: NULL_ARG when an input or output pointer is NULL (or
    the arena when ``p.arena_size > 0``), ARENA_TOO_SMALL when ``arena_size < p.arena_size``,
    ARENA_MISALIGNED when the arena is not aligned to ``p.arena_align`` bytes; else it runs every
    kernel in order and returns OK. Raises OnnxccError for what it cannot render (vector dtypes,
    unknown intrinsics, a kernel parameter living in a register or stream)."""
    module = ir.Module(name=symbol(p.name))   # the model's name is untrusted: never raw in IR
    it = ir.IntType(index_bits)
    weights: dict[int, ir.GlobalVariable] = {}
    for b in p.weights():
        if id(b.data) in weights:
            continue
        raw = np.ascontiguousarray(b.data, b.dtype.np).tobytes() or b"\0"
        k = len(weights)
        g = ir.GlobalVariable(module, ir.ArrayType(I8, len(raw)), f"{extern_weights or ''}w{k}")
        g.global_constant, g.align = True, WEIGHT_ALIGN
        if patched_weights:
            g.initializer = ir.Constant(g.type.pointee, None)      # zeroinitializer
            g.linkage, g.section = "internal", weight_section(k)
            g.storage_class = "externally_initialized"   # printed where the grammar wants it
        elif extern_weights is None:
            g.initializer = ir.FormattedConstant(g.type.pointee, f'c"{_escaped(raw)}"')
            g.linkage, g.unnamed_addr = "private", True
        else:
            g.linkage = "external"
        weights[id(b.data)] = g
    fns = [render_kernel(module, k, k.name, index_bits) for k in p.kernels]
    for fn in fns:
        # one function per kernel through O3: inlined into the entry, resnet50's 73 kernels
        # became one function that O3 took 29 s over (16 s kernel by kernel; shufflenet 8.5
        # -> 4.0 s), and run time is the same within noise
        fn.attributes.add("noinline")

    io_types = [mem_type(b.dtype).as_pointer() for b in p.inputs + p.outputs]
    ft = ir.FunctionType(I32, [I8.as_pointer(), it] + io_types)
    run = ir.Function(module, ft, run_symbol or f"{symbol(p.name)}_run")
    run.attributes.add("nounwind")
    arena, size = run.args[0], run.args[1]
    arena.name, size.name = "arena", "arena_size"
    io = run.args[2:]
    for a, b in zip(io, p.inputs + p.outputs):
        a.name = b.name
    b = ir.IRBuilder(run.append_basic_block("entry"))
    checks: list[tuple[ir.Value, str]] = []
    for a in io:
        checks.append((b.icmp_unsigned("==", a, ir.Constant(a.type, None)), "NULL_ARG"))
    if p.arena_size > 0:
        checks.append((b.icmp_unsigned("==", arena, ir.Constant(arena.type, None)), "NULL_ARG"))
        checks.append((b.icmp_unsigned("<", size, ir.Constant(it, p.arena_size)),
                       "ARENA_TOO_SMALL"))
        low = b.and_(b.ptrtoint(arena, it), ir.Constant(it, p.arena_align - 1))
        checks.append((b.icmp_unsigned("!=", low, ir.Constant(it, 0)), "ARENA_MISALIGNED"))
    # The first failing check, in order, gives the status: a chain of selects from the last.
    status: ir.Value = ir.Constant(I32, STATUS["OK"])
    for bad, code in reversed(checks):
        status = b.select(bad, ir.Constant(I32, STATUS[code]), status)
    if checks:
        go, fail = run.append_basic_block("go"), run.append_basic_block("fail")
        b.cbranch(b.icmp_unsigned("!=", status, ir.Constant(I32, 0)), fail, go)
        ir.IRBuilder(fail).ret(status)
        b.position_at_end(go)
    for k, fn in zip(p.kernels, fns):
        b.call(fn, [_pointer(b, buf, arena, io, p, weights, it) for buf in kernel_params(k)[0]])
    b.ret(ir.Constant(I32, STATUS["OK"]))
    return module


def _pointer(b: ir.IRBuilder, buf: Buffer, arena: ir.Value, io: Sequence[ir.Value], p: Program,
             weights: dict[int, ir.GlobalVariable], it: ir.IntType) -> ir.Value:
    """Where ``buf`` starts, as a pointer to its element type."""
    t = mem_type(buf.dtype).as_pointer()
    if buf.space == "weight":
        return b.bitcast(weights[id(buf.data)], t)
    if buf.space == "arena":
        base = arena
    elif buf.space in ("input", "output"):
        base = b.bitcast(io[buf.index + (len(p.inputs) if buf.space == "output" else 0)],
                         I8.as_pointer())
    else:
        raise OnnxccError(f"LLVM renderer: kernel parameter {buf.name} lives in {buf.space}, "
                          "not in the arena, a weight or a graph input/output")
    if buf.offset:
        base = b.gep(base, [ir.Constant(it, buf.offset)], inbounds=True)
    return b.bitcast(base, t)
