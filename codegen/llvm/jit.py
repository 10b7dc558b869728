"""LLVM back end, second half: optimize a rendered Program at O3 for a CPU, then JIT-run it in
process (:class:`JITProgram`) or write an object file for any triple (:func:`emit_object`).

The pipeline is LLVM's default ``O3`` through the new pass manager with the loop and SLP
vectorizers and loop unrolling on, for the target machine's CPU and features (the host's from
LLVM's detection unless given). Math functions LLVM lowers to libm calls (``tanhf``, ``erff``,
``expf``…) resolve against the process's libm, and float16 conversions on a CPU without F16C
against libgcc_s, both loaded here once.
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
            # float16 <-> float32 on an x86 CPU without F16C: LLVM calls __extendhfsf2 and
            # __truncsfhf2, which libgcc_s defines (with F16C they are single instructions)
            libgcc = ctypes.util.find_library("gcc_s")
            if libgcc:
                llvm.load_library_permanently(libgcc)
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
    (``-none-``). Raises OnnxccError for a triple LLVM does not know, or when an ARM hard-float
    object comes out without the hard-float calling convention (:func:`check_float_abi`).

    The triple goes to LLVM in its four-part form (:func:`llvm_triple`): LLVM's TargetMachine
    reads the GNU short form ``thumbv7em-none-eabihf`` position by position (vendor ``none``, OS
    ``eabihf``, no environment), so it did not see ``eabihf``, took the soft-float calling
    convention (floats to and from ``expf``/``logf`` in core registers) and left
    Tag_ABI_VFP_args out of the object, which GNU ld then refused to link with hard-float C."""
    _init("all")
    if cpu == "native":
        triple, cpu, features = host_cpu()
    triple = llvm_triple(triple)
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
    check_float_abi(obj, triple)
    return patch_sections(obj, {weight_section(k): w.tobytes() or b"\0"
                                for k, w in enumerate(weight_data(program)) if k in kept})


def llvm_triple(triple: str) -> str:
    """``triple`` as LLVM's TargetMachine must be given it: a three-part GNU triple whose last
    part is an environment (``thumbv7em-none-eabihf``, ``x86_64-linux-gnu``) gets the vendor
    ``unknown`` in front (``thumbv7em-unknown-none-eabihf``, ``x86_64-unknown-linux-gnu``); any
    other triple is returned as it is. LLVM's ``Triple`` constructor, which the TargetMachine
    uses, reads the parts by position (clang normalizes first; llvmlite does not), while
    ``get_triple_parts`` normalizes and so tells which part is the environment."""
    parts = triple.split("-")
    if len(parts) != 3:
        return triple
    env = llvm.get_triple_parts(triple).Env
    if env in ("", "unknown") or parts[2] != env:
        return triple
    return f"{parts[0]}-unknown-{parts[1]}-{parts[2]}"


TAG_ABI_VFP_ARGS = 28   # ARM EABI build attribute: 1 = arguments in VFP registers (hard float)


def check_float_abi(obj: bytes, triple: str) -> None:
    """Raise OnnxccError unless an object for a 32-bit ARM hard-float triple (environment
    ``eabihf``/``gnueabihf``/``musleabihf``) says it passes floats in VFP registers
    (Tag_ABI_VFP_args = 1 in its ``.ARM.attributes``), as the hard-float C it is linked with
    does; other triples pass. GNU ld refuses to link objects that disagree on this tag."""
    parts = llvm.get_triple_parts(triple)
    if parts.Arch not in ("arm", "thumb", "armeb", "thumbeb") or not parts.Env.endswith("hf"):
        return
    got = arm_attributes(obj).get(TAG_ABI_VFP_ARGS)
    if got != 1:
        raise OnnxccError(f"the object for {triple} does not pass floats in VFP registers "
                          f"(Tag_ABI_VFP_args = {got}): it would not link with hard-float C",
                          hint="a bug in onnxcc's LLVM back end: please report it")


def _uleb(data: bytes, at: int) -> tuple[int, int]:
    """(value, next offset) of the unsigned LEB128 number at ``data[at:]``."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def arm_attributes(obj: bytes) -> dict[int, int | str]:
    """The file-scope ``aeabi`` build attributes of a 32-bit ARM ELF object (tag -> value:
    ULEB128 numbers, or strings for Tag_CPU_raw_name/Tag_CPU_name/Tag_conformance and the odd
    tags above 32), read from its ``.ARM.attributes`` section; empty when it has none. Format:
    Arm's "Addenda to, and Errata in, the ABI for the Arm Architecture" (build attributes):
    ``'A'``, then sub-sections (uint32 length, vendor name, then Tag_File (1), uint32 size,
    tag-value pairs). Raises OnnxccError for an object that is not a little-endian ELF file."""
    sec = _sections(obj).get(".ARM.attributes")
    if sec is None:
        return {}
    import struct

    data = obj[sec[1]: sec[1] + sec[2]]
    out: dict[int, int | str] = {}
    if not data or data[0] != ord("A"):
        return out
    at = 1
    while at + 4 <= len(data):
        length, = struct.unpack_from("<I", data, at)
        end = at + length
        vendor_end = data.index(b"\0", at + 4)
        if data[at + 4: vendor_end] == b"aeabi":
            p = vendor_end + 1
            while p < end:
                tag, size = data[p], struct.unpack_from("<I", data, p + 1)[0]
                if tag == 1:   # Tag_File: the attributes of the whole file
                    q, stop = p + 5, p + size
                    while q < stop:
                        t, q = _uleb(data, q)
                        if t in (4, 5, 67) or (t > 32 and t % 2 == 1):
                            z = data.index(b"\0", q)
                            out[t], q = data[q:z].decode("ascii", "replace"), z + 1
                        else:
                            if t == 32:   # Tag_compatibility: a number, then a string
                                _, q = _uleb(data, q)
                                q = data.index(b"\0", q) + 1
                                continue
                            out[t], q = _uleb(data, q)
                p += max(size, 1)
        at = max(end, at + 1)
    return out


def patch_sections(obj: bytes, contents: dict[str, bytes]) -> bytes:
    """``obj`` (a little-endian ELF32 or ELF64 relocatable) with the bytes of each named
    section replaced by ``contents[name]`` (same size). This is how weights reach an object
    without going through LLVM IR text (309 MB of it for resnet50: 8 s of the compile); the
    caller leaves out the weights O3 deleted. Raises OnnxccError when the object is not such an
    ELF file or a section is missing or has another type or size (a bug in onnxcc's LLVM back
    end). Format: the System V ABI's ELF header and section header table (``e_shoff``,
    ``e_shentsize``, ``e_shnum``, ``e_shstrndx``, with the extended numbering of objects of
    0xff00 sections or more: counts in section 0's ``sh_size`` and ``sh_link``)."""

    def bug(why: str) -> OnnxccError:
        return OnnxccError(f"cannot place the weights in the object: {why}",
                           hint="a bug in onnxcc's LLVM back end: please report it")

    sections = _sections(obj)
    out = bytearray(obj)
    for name in sorted(contents):
        if name not in sections:
            raise bug(f"no section {name}")
        typ, off, size = sections[name]
        data = contents[name]
        if typ != 1 or size != len(data):     # SHT_PROGBITS of the weight's size
            raise bug(f"section {name} has type {typ} and {size} bytes, not {len(data)}")
        out[off: off + size] = data
    return bytes(out)


def _sections(obj: bytes) -> dict[str, tuple[int, int, int]]:
    """Section name -> (type, file offset, size) of a little-endian ELF32 or ELF64 file (the
    last section of a name that occurs more than once). Raises OnnxccError when ``obj`` is not
    such a file. Format: the System V ABI's ELF header and section header table, with the
    extended numbering of files of 0xff00 sections or more (see :func:`patch_sections`)."""
    import struct

    if obj[:4] != b"\x7fELF" or obj[5] != 1:
        raise OnnxccError("cannot read the object: not a little-endian ELF object",
                          hint="a bug in onnxcc's LLVM back end: please report it")
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
    found = {}
    for i in range(shnum):
        name_at, typ, off, size, _ = header(i)
        name = names[name_at: names.index(b"\0", name_at)].decode("ascii", "replace")
        found[name] = (typ, off, size)
    return found
