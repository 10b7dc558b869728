"""LLVM back end, second half: optimize a rendered Program at O3 for a CPU, then JIT-run it in
process (:class:`JITProgram`) or write an object file for any triple (:func:`emit_object`).

The pipeline is LLVM's default ``O3`` through the new pass manager with the loop and SLP
vectorizers and loop unrolling on, for the target machine's CPU and features (the host's from
LLVM's detection unless given). Math functions LLVM lowers to libm calls (``tanhf``, ``erff``,
``expf``…) resolve against the process's libm, loaded here once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import math
import re
import threading
import time
from typing import Sequence

import llvmlite.binding as llvm
import numpy as np

from onnxcc.codegen.loops import Program
from onnxcc.errors import OnnxccError, ShapeError

from .render import STATUS, WEIGHT_ALIGN, render_program, symbol, weight_data, weight_section

_OK = STATUS["OK"]

_init_lock = threading.Lock()
_compile_lock = threading.Lock()   # llvmlite's parse and JIT share one global LLVM context
_serial = itertools.count()
_initialized: set[str] = set()
CROSS = {   # name -> (triple, cpu, features): the cross targets tests and the CLI know
    "x86-64-v3": ("x86_64-unknown-linux-gnu", "x86-64-v3", ""),
    "aarch64": ("aarch64-unknown-linux-gnu", "generic", "+neon"),
    "thumbv7em": ("thumbv7em-none-eabihf", "cortex-m4", ""),
}


def _init(kind: str) -> None:
    """Initialize LLVM's native target (``kind='native'``) or every target, once per process."""
    with _init_lock:
        if kind in _initialized:
            return
        if kind == "native":
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            libm = ctypes.util.find_library("m")
            if libm:
                llvm.load_library_permanently(libm)
        else:
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
        _initialized.add(kind)


def host_target_machine(opt: int = 3) -> llvm.TargetMachine:
    """A TargetMachine for this process's triple, CPU (``llvm.get_host_cpu_name()``) and
    features (``llvm.get_host_cpu_features()``), for the JIT."""
    _init("native")
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=opt, codemodel="jitdefault", jit=True)


def pointer_bits(tm: llvm.TargetMachine) -> int:
    """The target's pointer width in bits (64 unless its data layout says ``p:32``)."""
    m = re.search(r"(?:^|-)p:(\d+)", str(tm.target_data))
    return int(m.group(1)) if m else 64


def optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine, speed_level: int = 3) -> None:
    """Run LLVM's ``O<speed_level>`` module pipeline on ``mod`` (in place) for ``tm``, with loop
    and SLP vectorization and loop unrolling enabled."""
    pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)


def build_module(p: Program, tm: llvm.TargetMachine, *, run_symbol: str | None = None,
                 speed_level: int = 3, extern_weights: str | None = None,
                 patched_weights: bool = False) -> llvm.ModuleRef:
    """``p`` rendered for ``tm`` (its triple, data layout and pointer width), verified by LLVM
    and optimized (``extern_weights``, ``patched_weights``: see ``render_program``). Raises OnnxccError when the
    rendered IR does not verify (a renderer bug)."""
    ir_module = render_program(p, run_symbol=run_symbol, index_bits=pointer_bits(tm),
                               extern_weights=extern_weights, patched_weights=patched_weights)
    text = str(ir_module)
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as e:
        raise OnnxccError(f"LLVM rejected the IR rendered for {p.name!r}: {e}",
                          hint="a bug in onnxcc's LLVM renderer: please report it") from None
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    if speed_level:
        optimize(mod, tm, speed_level)
    return mod


class JITProgram:
    """A Program compiled in process: ``run(inputs) -> outputs``, reentrant (each thread has
    its own arena, kept between its calls, so several threads may call ``run`` at once; ctypes
    releases the GIL).

    Weights stay out of the IR: the module names them as external constants that the JIT binds
    to 64-byte-aligned copies held by this object (megabytes of weights would otherwise go
    through IR text); ``emit_object`` embeds them.

    Attributes: ``ir`` (the optimized module's text, made on first use), ``compile_seconds``
    (render + O3 + machine code, wall clock), ``symbol`` (the entry's name) and ``entry``, the
    raw ctypes function ``int32 (void *arena, size_t arena_size, void *input0, …, void *output0,
    …)`` returning :data:`~onnxcc.codegen.llvm.render.STATUS` codes.
    """

    def __init__(self, program: Program, *, run_symbol: str | None = None,
                 speed_level: int = 3, obj: bytes | None = None) -> None:
        t0 = time.perf_counter()
        self.program = program
        self.symbol = run_symbol or f"{symbol(program.name)}_run"
        prefix = f"onnxcc_jit{next(_serial)}_"
        self._weights = [] if obj is not None else [_aligned_copy(w) for w in weight_data(program)]
        with _compile_lock:
            self._tm = host_target_machine()
            if obj is not None:
                # The object :func:`emit_object` wrote for this machine, weights inside: the
                # code that runs here is byte for byte the code ``save()`` ships.
                self._mod = llvm.parse_assembly("")
                self._mod.triple = self._tm.triple
                self._engine = llvm.create_mcjit_compiler(self._mod, self._tm)
                self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            else:
                for k, w in enumerate(self._weights):
                    llvm.add_symbol(f"{prefix}w{k}", w.ctypes.data)
                self._mod = build_module(program, self._tm, run_symbol=self.symbol,
                                         speed_level=speed_level, extern_weights=prefix)
                self._engine = llvm.create_mcjit_compiler(self._mod, self._tm)
            self._engine.finalize_object()
            addr = self._engine.get_function_address(self.symbol)
        if not addr:
            raise OnnxccError(f"the JIT found no symbol {self.symbol!r}",
                              hint="a bug in onnxcc's LLVM back end: please report it")
        nio = len(program.inputs) + len(program.outputs)
        proto = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t,
                                 *([ctypes.c_void_p] * nio))
        self.entry = proto(addr)
        from onnxcc.runtime.build import ThreadArenas

        self._arenas = ThreadArenas(program.arena_size, program.arena_align)
        # what run() checks and allocates, computed once (a run of a small model costs
        # microseconds; onnxruntime's own call is about 8 us)
        self._ins = [(b.dtype.np, math.prod(b.shape), b.value or b.name, b.shape)
                     for b in program.inputs]
        self._outs = [(tuple(b.shape), b.dtype.np) for b in program.outputs]
        self.compile_seconds = time.perf_counter() - t0

    @property
    def ir(self) -> str:
        """The optimized LLVM IR (text) of the program."""
        return str(self._mod)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run on the graph inputs (in order; converted to each input's dtype, any shape with
        the right element count) and return the outputs as new arrays of their shapes and
        dtypes. Raises ShapeError for a wrong count or size, OnnxccError for a non-zero status."""
        p = self.program
        if len(inputs) != len(self._ins):
            raise ShapeError(f"{p.name}: {len(p.inputs)} input(s) expected, got {len(inputs)}")
        raw, base = self._arenas.get()
        ptrs = []
        keep = []
        for x, (dt, size, label, shape) in zip(inputs, self._ins):
            if type(x) is not np.ndarray or x.dtype != dt or not x.flags.c_contiguous:
                x = np.ascontiguousarray(np.asarray(x, dt))
            if x.size != size:
                raise ShapeError(f"{p.name}: input {label} has {x.size} elements, "
                                 f"expected shape {shape}")
            keep.append(x)
            ptrs.append(x.ctypes.data if size else raw.ctypes.data)
        outs = [np.empty(shape, dt) for shape, dt in self._outs]
        ptrs += [o.ctypes.data if o.size else raw.ctypes.data for o in outs]
        status = self.entry(base, p.arena_size, *ptrs)
        if status != _OK:
            name = {v: k for k, v in STATUS.items()}.get(status, str(status))
            raise OnnxccError(f"{self.symbol} returned {name}")
        return outs


def _aligned_copy(a: np.ndarray, align: int = WEIGHT_ALIGN) -> np.ndarray:
    """A copy of the bytes of ``a`` starting at an ``align``-byte boundary (at least 1 byte)."""
    raw = a.reshape(-1).view(np.uint8)
    out = np.zeros(max(raw.size, 1) + align, np.uint8)
    off = (-out.ctypes.data) % align
    view = out[off: off + max(raw.size, 1)]
    view[: raw.size] = raw
    return view


def host_cpu() -> tuple[str, str, str]:
    """(triple, cpu, features) of the machine onnxcc runs on, from LLVM's host detection."""
    _init("native")
    return (llvm.get_process_triple(), llvm.get_host_cpu_name(),
            llvm.get_host_cpu_features().flatten())


def emit_object(program: Program, triple: str, cpu: str = "", features: str = "", *,
                run_symbol: str | None = None, speed_level: int = 3) -> bytes:
    """``program`` compiled to a relocatable object file (ELF for the Linux and bare-metal
    triples) for ``triple``/``cpu``/``features`` (e.g. ``("aarch64-unknown-linux-gnu",
    "generic", "+neon")``, ``("thumbv7em-none-eabihf", "cortex-m4", "")``; :data:`CROSS`), with
    the entry ``<name>_run`` exported. Position-independent except on bare-metal triples
    (``-none-``). Raises OnnxccError for a triple LLVM does not know.

    On 32-bit ARM hard-float triples (``thumbv7em-none-eabihf``) llvmlite leaves LLVM's float ABI
    at its default, so floats passed to libm go in core registers: such an object must not be
    linked with hard-float C code (GNU ld refuses it: no Tag_ABI_VFP_args). No onnxcc target uses
    it until the renderer calls libm with ``arm_aapcs_vfpcc`` itself."""
    _init("all")
    if cpu == "native":
        triple, cpu, features = host_cpu()
    try:
        target = llvm.Target.from_triple(triple)
    except RuntimeError as e:
        raise OnnxccError(f"LLVM has no target for triple {triple!r}: {e}") from None
    reloc = "static" if "-none-" in triple else "pic"
    tm = target.create_target_machine(cpu=cpu, features=features, opt=3, reloc=reloc,
                                      codemodel="default")
    elf = not any(os_ in triple for os_ in ("apple", "darwin", "windows", "macho"))
    with _compile_lock:
        mod = build_module(program, tm, run_symbol=run_symbol, speed_level=speed_level,
                           patched_weights=elf)
        obj = tm.emit_object(mod)
        # the weights O3 kept (it deletes one that no code reads; get_global_variable does
        # not see internal globals)
        names = {g.name for g in mod.global_variables}
        kept = {k for k in range(len(weight_data(program))) if f"w{k}" in names}
    if not elf:
        return obj
    return patch_sections(obj, {weight_section(k): w.tobytes() or b"\0"
                                for k, w in enumerate(weight_data(program)) if k in kept})


def patch_sections(obj: bytes, contents: dict[str, bytes]) -> bytes:
    """``obj`` (a little-endian ELF32 or ELF64 relocatable) with the bytes of each named
    section replaced by ``contents[name]`` (same size). This is how weights reach an object
    without going through LLVM IR text (309 MB of it for resnet50: 8 s of the compile); the
    caller leaves out the weights O3 deleted. Raises OnnxccError when the object is not such an
    ELF file or a section is missing or has another type or size (a bug in onnxcc's LLVM back
    end). Format: the System V ABI's ELF header and section header table (``e_shoff``,
    ``e_shentsize``, ``e_shnum``, ``e_shstrndx``, with the extended numbering of objects of
    0xff00 sections or more: counts in section 0's ``sh_size`` and ``sh_link``)."""
    import struct

    def bug(why: str) -> OnnxccError:
        return OnnxccError(f"cannot place the weights in the object: {why}",
                           hint="a bug in onnxcc's LLVM back end: please report it")

    if obj[:4] != b"\x7fELF" or obj[5] != 1:
        raise bug("not a little-endian ELF object")
    wide = obj[4] == 2
    if wide:
        shoff, = struct.unpack_from("<Q", obj, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", obj, 0x3A)
    else:
        shoff, = struct.unpack_from("<I", obj, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", obj, 0x2E)

    def header(i: int) -> tuple[int, int, int, int, int]:
        """(name offset, type, file offset, size, link) of section ``i``."""
        at = shoff + i * shentsize
        if wide:
            name, typ, _, _, off, size, link = struct.unpack_from("<IIQQQQI", obj, at)
        else:
            name, typ, _, _, off, size, link = struct.unpack_from("<IIIIIII", obj, at)
        return name, typ, off, size, link

    if shnum == 0 or shstrndx == 0xFFFF:   # extended numbering (SHN_LORESERVE and above)
        _, _, _, size0, link0 = header(0)
        shnum = shnum or size0
        shstrndx = link0 if shstrndx == 0xFFFF else shstrndx
    _, _, stroff, strsize, _ = header(shstrndx)
    names = obj[stroff: stroff + strsize]
    out = bytearray(obj)
    todo = dict(contents)
    for i in range(shnum):
        name_at, typ, off, size, _ = header(i)
        name = names[name_at: names.index(b"\0", name_at)].decode("ascii", "replace")
        if name in todo:
            data = todo.pop(name)
            if typ != 1 or size != len(data):     # SHT_PROGBITS of the weight's size
                raise bug(f"section {name} has type {typ} and {size} bytes, not {len(data)}")
            out[off: off + size] = data
    if todo:
        raise bug(f"no section {sorted(todo)[0]}")
    return bytes(out)
