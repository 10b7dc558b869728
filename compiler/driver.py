"""The driver: ``compile()`` runs import -> target pipeline -> legality -> fit -> C codegen.

The library is generated into a private temporary folder; ``CompiledModel.save`` then writes it
into the user's folder (see :mod:`onnxcc.outdir`), so a failed compile never touches that folder.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx

from . import __version__
from .errors import MemoryBudgetError
from .frontend import import_onnx, load_model
from .ir import Graph


_JIT_LOCK = threading.Lock()


class CompiledModel:
    """A compiled model: the optimized graph, the generated C library, and ways to run it.

    ``run`` builds the library for this machine with the system C compiler (once) and runs it;
    it behaves the same for every target (a cortex-m4 library runs as host code here).
    """

    def __init__(self, graph: Graph, target: Any, name: str, lib_dir: Path, mmap: dict,
                 options: dict[str, Any]) -> None:
        self.graph, self.target, self.name = graph, target, name
        self.lib_dir, self.mmap, self.options = lib_dir, mmap, options
        self._exe: dict[Any, Any] = {}
        self.saved_files: list[str] = []   # what the last ``save`` wrote
        self.program: Any = None           # the loop-IR Program
        self.precision: Any = None         # the fixed-point types (FPGA targets)
        self.csim_warnings = ""            # g++'s warnings on the C-simulation build (FPGA)
        self._object: bytes | None = None  # the object LLVM wrote (LLVM targets)

    @property
    def files(self) -> list[str]:
        """Names of the generated files (the memory map's ``"files"``), sorted."""
        from .outdir import generated_files

        return generated_files(self.lib_dir, self.mmap)

    @property
    def arena_size(self) -> int:
        """Bytes of arena the generated ``<m>_run`` needs."""
        return int(self.mmap["arena"]["size"])

    @property
    def weights_size(self) -> int:
        """Bytes of constant weights."""
        return int(self.mmap["weights"]["size"])

    def build(self, *, cc: str | None = None, sanitize: bool = False, opt: str | None = None
              ) -> Path:
        """Build the host executable harness at ``opt`` (default: the target's ``c_opt``,
        ``-Os`` in size mode, else ``-O2``); returns its path (cached per options)."""
        from onnxcc.runtime.build import build_executable

        opt = opt or getattr(self.target, "c_opt", "-O2")
        key = (cc, sanitize, opt)
        if key not in self._exe:
            self._exe[key] = build_executable(self.lib_dir, self.mmap, cc=cc, sanitize=sanitize, opt=opt)
        return self._exe[key]

    def run(self, inputs: Mapping[str, np.ndarray], *, cc: str | None = None,
            sanitize: bool = False) -> dict[str, Any]:
        """Run the generated code on ``inputs`` (name -> array); returns name -> array (an
        output of an ai.onnx.ml ZipMap: a list of {label: probability} dicts, as onnxruntime
        returns it; see ``OpDef.to_python``). Arguments as :meth:`run_arrays`."""
        outs = self.run_arrays(inputs, cc=cc, sanitize=sanitize)
        for name, node, to_python in self._converters():
            if name in outs:
                outs[name] = to_python(node, outs[name])
        return outs

    def _converters(self) -> list[tuple[str, Any, Any]]:
        """(output name, producer, its op's ``to_python``) for the graph outputs whose op
        converts what the generated code wrote (found once: a run costs microseconds)."""
        conv = self.__dict__.get("_to_python")
        if conv is None:
            from .ops import OpDef, get_op

            conv = []
            for v in self.graph.outputs:
                if v.producer is not None:
                    op = get_op(v.producer)
                    if type(op).to_python is not OpDef.to_python:
                        conv.append((v.name, v.producer, op.to_python))
            self.__dict__["_to_python"] = conv
        return conv

    def run_arrays(self, inputs: Mapping[str, np.ndarray], *, cc: str | None = None,
                   sanitize: bool = False) -> dict[str, np.ndarray]:
        """Run the generated code on ``inputs`` (name -> array); returns name -> array, the
        buffers as the generated code wrote them.

        On an LLVM target (``cpu``...) the Program runs through LLVM's JIT in process (for
        ``cpu``: the very object ``save()`` writes); with ``cc`` given, the saved library (header
        glue + object) is linked into a shared object by that compiler instead.
        On a C target the library is built as a shared object and called in-process through ctypes;
        ``sanitize=True`` builds an executable harness under -fsanitize=address,undefined instead
        (a sanitizer runtime cannot be loaded into a running Python).
        Raises ShapeError for bad inputs (also for one bound by ``constant_inputs``), BuildError
        when the C build or run fails.
        """
        from onnxcc.runtime.build import SharedLibrary, build_shared, check_feeds, run_executable

        if not isinstance(inputs, Mapping):
            check_feeds(self.mmap, inputs)   # raises ShapeError: no mapping of names to arrays
        if self.target.backend == "llvm" and cc is None and not sanitize:
            jit = self._exe.get("jit")    # the common case first: the JIT is built
            if jit is not None and not self.options.get("constant_inputs"):
                return jit.run(inputs)
        bound = sorted(set(inputs) & set(self.options.get("constant_inputs", ())))
        if bound:
            from .errors import ShapeError

            raise ShapeError(f"inputs {bound} were bound at compile time (constant_inputs): their "
                             "values are built into the code",
                             hint="feed only the other inputs, or compile again without binding "
                             "them")
        if self.target.backend == "hls":
            with _JIT_LOCK:
                if "csim" not in self._exe:
                    from onnxcc.runtime.hls import CSimLibrary, build_csim

                    lib, self.csim_warnings = build_csim(self.lib_dir, self.mmap, cxx=cc,
                                                         out_dir=Path(self._tmp))
                    self._exe["csim"] = CSimLibrary(lib, self.mmap)
            return self._exe["csim"].run(inputs)
        if sanitize:
            return run_executable(self.build(cc=cc, sanitize=True, opt="-O1"), self.mmap, inputs)
        if self.target.backend == "llvm" and cc is None:
            with _JIT_LOCK:   # threads racing to the first run share one JIT
                if "jit" not in self._exe:
                    from onnxcc.codegen.llvm.emit import JITLibrary

                    native = self.target.cpu == "native"
                    self._exe["jit"] = JITLibrary(self.program, self.mmap,
                                                  self._object if native else None)
            return self._exe["jit"].run(inputs)
        key = ("so", cc)
        if key not in self._exe:
            self._exe[key] = SharedLibrary(build_shared(self.lib_dir, self.mmap, cc=cc,
                                                        opt=getattr(self.target, "c_opt", "-O2")),
                                           self.mmap)
        return self._exe[key].run(inputs)  # type: ignore[union-attr]

    def save(self, out_dir: str | Path, *, force: bool = False) -> Path:
        """Write the library into the folder ``out_dir`` (created, with the umask, if missing).

        Writes only the files onnxcc generates and never removes or overwrites a file it did not
        write: a recompile of the same model replaces the files its memory map ``<m>.json``
        lists, each atomically, and removes those no longer generated; other models' files and
        the user's files stay. ``CMakeLists.txt`` (an index including every model's
        ``<m>.cmake``) is written only when absent or onnxcc's. See :mod:`onnxcc.outdir`.
        ``self.saved_files`` lists the files written. Returns the folder.

        Raises OutputError, leaving the folder as it was, when a file of a generated name was
        not written by onnxcc (``force=True`` overwrites it), or when the folder cannot be written.
        """
        from .outdir import write_library

        self.saved_files = write_library(self.lib_dir, self.mmap, out_dir, force=force)
        return Path(out_dir).absolute()

    def cross_sizes(self) -> dict[str, int] | None:
        """text/data/bss bytes of the library compiled for the target (None when the target
        has no cross compiler or it is not installed). On an LLVM target: of the object
        ``<m>.o`` (kernels and weights), measured with ``size``; the small ``<m>.c`` of tensor
        tables is left out, as it would be compiled by the user's compiler for that machine."""
        from onnxcc.runtime.build import compile_object, object_sizes

        if self.target.backend == "llvm":
            return object_sizes(self.lib_dir / f"{self.mmap['c_prefix']}.o")
        cc = getattr(self.target, "cc", None)
        if not cc or not shutil.which(cc):
            return None
        return compile_object(self.lib_dir, self.mmap, cc=cc, flags=self.target.c_flags)

    def report(self) -> str:
        """Per-node table (op, output shape, MACs, parameter bytes, arena offset/size) + totals."""
        from .report import format_report

        return format_report(self)

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)


def check_memory_budget(g: Graph, tgt: Any) -> None:
    """Check that the planned graph ``g`` fits ``tgt`` before any file is written.

    Sizes are in bytes. Raises MemoryBudgetError, naming the largest tensors and what to do, when
    a tensor (input, output, intermediate or constant), the arena or the weights exceed the
    largest object the target's pointer width can address (``tgt.max_object_bytes``, C's
    PTRDIFF_MAX: 2**31 - 1 on a Cortex-M), when the arena, weights and graph inputs/outputs
    together exceed its address space, when the arena exceeds its SRAM, or the weights its flash.
    In the last two cases the message names the tensors live at the step where the arena peaks
    (bytes, producing node), the largest weights (bytes), and the hint what would help with
    estimated sizes: int8, the smallest onnxcc MCU target that fits, a smaller input
    (:mod:`onnxcc.fit`).
    """
    from onnxcc.codegen.lower import is_splat

    plan = g.meta["memory_plan"]
    consts = {id(v): v for n in g.nodes for v in n.inputs if v is not None and v.const is not None}
    f16 = g.meta.get("float16_weights", ())   # stored as float16 again (2 bytes each)
    weights = sum(v.dtype.itemsize if is_splat(v.const) else
                  v.const.size * (2 if v.name in f16 else v.dtype.itemsize)
                  for v in consts.values())
    bits = int(getattr(tgt, "pointer_bits", None) or 64)
    limit = (1 << (bits - 1)) - 1
    nbytes = {v.name: math.prod(v.shape) * v.dtype.itemsize for v in g.values()}
    too_big = sorted(((b, n) for n, b in nbytes.items() if b > limit), reverse=True)
    if too_big:
        names = ", ".join(f"{n!r} ({b:,} B)" for b, n in too_big[:3])
        raise MemoryBudgetError(
            f"{len(too_big)} tensor(s) exceed the largest object a {bits}-bit {tgt.name} can "
            f"address ({limit:,} bytes): {names}",
            hint="use a smaller input (input_shapes / --input-shape), a smaller model, "
            "or a target with a wider address space")
    io = sum(nbytes[v.name] for v in {id(v): v for v in [*g.inputs, *g.outputs]}.values())
    for what, size in (("arena", plan.arena_size + plan.alignment), ("weights", weights)):
        if size > limit:
            raise MemoryBudgetError(
                f"the {what} needs {size:,} bytes, more than the largest object a {bits}-bit "
                f"{tgt.name} can address ({limit:,} bytes)",
                hint="use a smaller input (input_shapes / --input-shape), a smaller model, "
                "or a target with a wider address space")
    if plan.arena_size + weights + io > 1 << bits:
        raise MemoryBudgetError(
            f"the arena ({plan.arena_size:,} B), weights ({weights:,} B) and inputs/outputs "
            f"({io:,} B) together exceed the {bits}-bit address space of {tgt.name}",
            hint="use a smaller input (input_shapes / --input-shape) or a smaller model")
    from .fit import budget_message, fit_report

    fit = fit_report(g, tgt)
    if not fit.fits:
        hint = "what would help:\n" + "\n".join(f"    - {h}" for h in fit.helps)
        raise MemoryBudgetError(budget_message(fit), hint=hint)


def _fixed_point_config(quantize: Any, tgt: Any) -> Any:
    """The FixedPoint configuration of an FPGA compile: ``quantize`` when it is one, the
    default ``ap_fixed<16,6>`` when None or an ``onnxcc.Int8`` (whose integer graph then types
    its int8/int32 tensors as ap_int). Raises PrecisionError for anything else."""
    from onnxcc.codegen.hls.fixed import FixedPoint, PrecisionError
    from onnxcc.quantize import Int8

    if quantize is None or isinstance(quantize, Int8):
        return FixedPoint()
    if isinstance(quantize, FixedPoint):
        return quantize
    raise PrecisionError(f"{tgt.name} is an FPGA target: quantize={quantize!r} does not apply",
                         hint="give its fixed-point types with quantize=onnxcc.FixedPoint("
                         "default='ap_fixed<16,6>', layers={...})")


OPTIMIZE_MODES = ("speed", "size")


def with_optimize(tgt: Any, optimize: Any) -> Any:
    """``tgt`` (a Target) compiling for ``optimize`` (``"speed"`` or ``"size"``, see
    :func:`compile`). Raises OnnxccError naming the option for another value."""
    import dataclasses

    from .errors import OnnxccError

    if optimize not in OPTIMIZE_MODES:
        raise OnnxccError(f"optimize={optimize!r} (CLI --optimize) is neither 'speed' nor 'size'",
                          hint="give optimize='speed' (the default) or optimize='size' "
                          "(--optimize size)")
    return tgt if tgt.optimize == optimize else dataclasses.replace(tgt, optimize=optimize)


def model_sha256(proto: onnx.ModelProto) -> str:
    """sha256 of the model's serialized bytes (deterministic serialization)."""
    return hashlib.sha256(proto.SerializeToString(deterministic=True)).hexdigest()


def compile(model: str | Path | onnx.ModelProto, target: Any = "host", *,
            input_shapes: Mapping[str, Sequence[int]] | None = None, name: str | None = None,
            verify: bool | None = None, dump_dir: str | Path | None = None,
            dump_after: str | None = None, disable_passes: Sequence[str] = (),
            external_data_dir: str | Path | None = None,
            constant_inputs: Mapping[str, Any] | None = None,
            quantize: Any = None, hls: Any = None,
            max_recompute: float | None = None, optimize: str = "speed") -> CompiledModel:
    """Compile an ONNX model for ``target`` (``onnxcc targets`` lists them).

    Args:
        model: path to an .onnx file, ``zoo:NAME``, or a ModelProto.
        target: ``host`` (C for this machine), ``cpu`` (LLVM for this machine's CPU),
            ``x86-64-v2/v3/v4``/``aarch64`` (LLVM objects), ``cortex-m4`` (C for an M4; likewise
            ``cortex-m0plus/m3/m7/m33/m55`` and ``rv32imac``), or a Target
            (``onnxcc.targets.load_target_file("board.toml")`` describes another board).
        input_shapes: binds unknown input dims (named, -1, or a declared 0), e.g.
            ``{"input": (1, 3, 224, 224)}``; a named dim bound for one input binds it in all.
        name: C prefix of every symbol and file (default: the model's file or graph name).
        verify: verify the IR after every pass (default: on when ONNXCC_VERIFY=1 or in tests).
        dump_dir: write the IR text after every pass into this folder.
        dump_after: keep the IR text after this pass in ``graph.meta["dumps"]``.
        disable_passes: names of pipeline passes to skip.
        external_data_dir: for a ModelProto whose tensors keep their data in external files, the
            folder holding those files (a model file's external data is read from beside it;
            the current folder is never searched).
        constant_inputs: graph inputs bound to constant values at compile time (name ->
            array-like, e.g. ``{"axes": np.array([1])}``; CLI ``--constant-input axes=1``): needed
            for inputs that decide an output's shape (axes, sizes, starts, shape...); they leave
            the inputs of ``run`` and of the generated ``<m>_run``. Values take the input's
            declared dtype and shape.
        quantize: ``onnxcc.Int8(calibration=samples, method=..., per_channel=...)`` quantizes
            a float model to int8 after calibrating it on ``samples`` (``onnxcc.quantize``);
            ``report()`` then lists each quantized tensor's scale, zero point and SQNR. On an
            FPGA target, ``onnxcc.FixedPoint(default="ap_fixed<16,6>", layers={...})`` gives
            the fixed-point types (that default when None).
        hls: FPGA targets: ``onnxcc.HLSConfig(reuse_factor=...)``, the design's area/speed
            trade (default reuse factor 1).
        max_recompute: patch-based execution of the CNN's first stage (``onnxcc.passes.patch``,
            MCUNetV2): the most extra MACs it may add, as a share of the model's MACs (0.15 =
            15%); it is applied only when it lowers the arena. None: the target's default (on
            at 0.15 for the MCU targets, off elsewhere); 0: off. ``report()`` shows the arena
            and MACs with and without it.
        optimize: ``"speed"`` (default) or ``"size"`` (CLI ``--optimize size``): size mode
            trades speed for code size on every target: each op family is lowered to its
            smallest nest (one output-stationary loop nest per layer with masked loads for the
            padding; no border/interior split, unrolled taps, register tiles or blocks of
            outputs), kernels that differ only in integer constants share one C function, the
            C library is built at ``-Os`` (also on the host), and patching is off (it repeats
            the first stage's kernels per patch) unless ``max_recompute`` asks for it or the
            unpatched arena exceeds the target's SRAM. Raises OnnxccError for another value.
    Returns:
        a CompiledModel whose library sits in a private temporary folder until ``save``.
    Raises:
        ModelLoadError, UnsupportedOpError, ShapeError, AttributeValueError, OutputError;
        MemoryBudgetError when the model does not fit the target, or compiling it runs out of
        this machine's memory; PrecisionError and DesignFitError (the estimated design exceeds
        the FPGA part) on FPGA targets.
    """
    try:
        return _compile(model, target, input_shapes=input_shapes, name=name, verify=verify,
                        dump_dir=dump_dir, dump_after=dump_after, disable_passes=disable_passes,
                        external_data_dir=external_data_dir, constant_inputs=constant_inputs,
                        quantize=quantize, hls=hls, max_recompute=max_recompute,
                        optimize=optimize)
    except MemoryError:
        raise MemoryBudgetError(
            "compiling the model ran out of memory on this machine",
            hint="a tensor or constant is probably far larger than intended: check the "
            "model's dims and input_shapes (`onnxcc check` lists them)") from None


def _check_disabled(disable: Any, pipeline: Sequence[Any], target: str) -> None:
    """Refuse a ``disable_passes`` that would be ignored or break code generation: a string
    (its letters would be the names), a name that is no pass of the target's pipeline (a typo
    disabled nothing), and ``plan_memory``, whose arena plan every back end reads (disabling it
    was a KeyError). Raises OnnxccError naming the passes that may be disabled."""
    from .errors import OnnxccError

    names = [p.name.split("[")[0] for p in pipeline]
    may = sorted(set(names + ["patch"]) - {"plan_memory"})
    if isinstance(disable, (str, bytes)):
        raise OnnxccError(f"disable_passes={disable!r} is one string",
                          hint=f"give a list of pass names, e.g. [{disable!r}]")
    full = {p.name for p in pipeline}
    bad = [d for d in disable if str(d).split("[")[0] == "plan_memory"
           or (d not in full and d not in may)]
    if bad:
        raise OnnxccError(f"disable_passes names {bad}, which are no passes that may be "
                          f"disabled on {target}", hint=f"passes that may be: {', '.join(may)} "
                          "(plan_memory lays out the arena every back end reads)")


def _compile(model: str | Path | onnx.ModelProto, target: Any, *,
             input_shapes: Mapping[str, Sequence[int]] | None, name: str | None,
             verify: bool | None, dump_dir: str | Path | None, dump_after: str | None,
             disable_passes: Sequence[str], external_data_dir: str | Path | None,
             constant_inputs: Mapping[str, Any] | None = None,
             quantize: Any = None, hls: Any = None,
             max_recompute: float | None = None, optimize: str = "speed") -> CompiledModel:
    """:func:`compile` without its MemoryError guard."""
    from onnxcc.codegen.c.emit import emit_c
    from onnxcc.passes import run_pipeline

    from .outdir import finish_library
    from onnxcc.targets import get_target

    tgt = with_optimize(get_target(target), optimize)
    # size mode: patching repeats the first stage's kernels per patch, so it is off unless asked
    # for, or unless the unpatched arena does not fit the target's SRAM (then the default)
    auto_patch = tgt.size_mode and max_recompute is None and tgt.backend != "hls"
    if auto_patch:
        max_recompute = 0
    if name is not None and not isinstance(name, str):
        from .errors import OnnxccError

        raise OnnxccError(f"name={name!r} is a {type(name).__name__}, not a string",
                          hint="the C prefix, e.g. name='kws'")
    proto, default_name = load_model(model, external_data_dir=external_data_dir)
    g = import_onnx(proto, input_shapes, constant_inputs=constant_inputs)
    g.name = name or default_name
    if verify is None:
        verify = os.environ.get("ONNXCC_VERIFY", "") == "1"
    from onnxcc.passes.quantize import with_quantization

    hls_cfg, hls = hls, tgt.backend == "hls"
    if hls_cfg is not None and not hls:
        from .errors import OnnxccError

        raise OnnxccError(f"hls= applies to FPGA targets, not {tgt.name}",
                          hint="drop hls=, or compile for an FPGA part (`onnxcc targets`)")
    fixed = None
    if hls:
        from onnxcc.quantize import Int8

        fixed = _fixed_point_config(quantize, tgt)
        if not isinstance(quantize, Int8):
            quantize = None   # an FPGA target's FixedPoint types are no graph pass
    imported = {v.name for v in g.values()} | {n.name for n in g.nodes} if hls else set()
    from onnxcc.passes.patch import with_max_recompute

    if max_recompute is not None and hls:
        from .errors import OnnxccError

        raise OnnxccError(f"max_recompute= (patch-based execution) applies to C and LLVM "
                          f"targets, not the FPGA target {tgt.name}", hint="drop max_recompute=")
    if max_recompute is not None and (isinstance(max_recompute, (bool, str, bytes))
                                      or not isinstance(max_recompute, (int, float, np.number))
                                      or not max_recompute >= 0):
        from .errors import OnnxccError

        raise OnnxccError(f"max_recompute must be a share of the MACs >= 0, got {max_recompute!r}",
                          hint="e.g. max_recompute=0.15 (15% extra MACs), or 0 to disable patching")
    pipeline = with_max_recompute(with_quantization(tgt.pipeline, quantize), max_recompute)
    _check_disabled(disable_passes, pipeline, tgt.name)
    g0 = g.copy() if auto_patch else g
    g = run_pipeline(g, pipeline, verify=verify, dump_dir=dump_dir,
                     dump_after=dump_after, disable=disable_passes)
    if auto_patch and tgt.sram_bytes is not None \
            and g.meta["memory_plan"].arena_size > tgt.sram_bytes:
        # the target's patching, choosing the fewest repeated kernels that fit (else, as in
        # speed mode, the smallest arena)
        max_recompute = None
        g1 = g0.copy()
        g = run_pipeline(g0, with_max_recompute(with_quantization(tgt.pipeline, quantize), None,
                                                fit_bytes=tgt.sram_bytes),
                         verify=verify, dump_dir=dump_dir, dump_after=dump_after,
                         disable=disable_passes)
        if g.meta["memory_plan"].arena_size > tgt.sram_bytes:
            g = run_pipeline(g1, with_quantization(tgt.pipeline, quantize), verify=verify,
                             dump_dir=dump_dir, dump_after=dump_after, disable=disable_passes)
    g.verify()
    from onnxcc.codegen.c.emit import check_legal

    check_legal(g, tgt.name)   # every node the target cannot lower, by name, before any code
    precision = None
    if hls:
        from onnxcc.codegen.hls.emit import check_hls
        from onnxcc.codegen.hls.fixed import assign_types

        check_hls(g)           # every node without a fixed-point kernel, before any code
        precision = assign_types(g, fixed, imported)
    check_memory_budget(g, tgt)
    options = {"target": tgt.name, "input_shapes": {k: list(v) for k, v in (input_shapes or {}).items()},
               "name": g.name, "disabled_passes": list(disable_passes),
               "constant_inputs": sorted(constant_inputs or {}), "max_recompute": max_recompute,
               "optimize": tgt.optimize}
    tmp = Path(tempfile.mkdtemp(prefix="onnxcc_"))
    source = (Path(str(model)).name if not isinstance(model, onnx.ModelProto)
              else f"<ModelProto {g.name}>")
    obj = None
    try:
        from onnxcc.codegen.lower import lower_for_target

        passes = None
        if hls:
            from onnxcc.codegen.hls.config import HLSConfig
            from onnxcc.codegen.schedule import pipeline

            passes = [pipeline((hls_cfg or HLSConfig()).factors({n.name for n in g.nodes}))]
        program = lower_for_target(g, tgt, g.name, passes)
        check_memory_budget(g, tgt)   # again: kernel scratch placed in the arena while lowering
        if hls:
            from onnxcc.codegen.hls.config import apply_input_layout
            from onnxcc.codegen.hls.emit import emit_hls
            from onnxcc.codegen.verify import verify as verify_program

            cfg = hls_cfg or HLSConfig()
            nhwc = apply_input_layout(program, g, cfg.input_layout)
            if nhwc:
                verify_program(program)   # the reordered reads stay inside the inputs
            mmap = emit_hls(g, program, precision, tmp, target=tgt, name=g.name,
                            version=__version__, sha256=model_sha256(proto), options=options,
                            source=source, io=cfg.io, nhwc_inputs=nhwc)
        elif tgt.backend == "llvm":
            from onnxcc.codegen.llvm.emit import emit_llvm

            mmap, obj = emit_llvm(g, program, tmp, target=tgt, name=g.name, version=__version__,
                                  sha256=model_sha256(proto), options=options, source=source)
        else:
            mmap = emit_c(g, tmp, name=g.name, weights_in_c=tgt.weights_in_c,
                          version=__version__, sha256=model_sha256(proto), options=options,
                          source=source, program=program)
        if not hls:
            mmap = finish_library(tmp, mmap)   # <m>.cmake, CMakeLists.txt, the "files" list
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cm = CompiledModel(g, tgt, g.name, tmp, mmap, options)
    cm.program, cm._object = program, obj
    cm.precision = precision
    cm._tmp = str(tmp)  # type: ignore[attr-defined]
    return cm
