"""The ``onnxcc`` command line.

    onnxcc compile [MODEL] --target T -o DIR     compile (no MODEL: the bundled digits CNN, built,
                                                 run on its test split and scored)
    onnxcc run MODEL --inputs x.npz [-o y.npz]   compile for the host, run, save/print outputs
    onnxcc report MODEL [--plot plan.png]        per-layer MACs, parameters and arena placement
                                                 (and a picture of the memory plan)
    onnxcc check MODEL                           every unsupported op / unbound dim, and whether
                                                 it fits the target's SRAM and flash; no code
    onnxcc targets | onnxcc ops                  what onnxcc knows

MODEL is a path to an .onnx file or ``zoo:NAME`` (a light model inside the onnx wheel).
Every error a user can cause (a bad model, option, input file or output folder) prints one
message naming what is wrong and what to do, and exits 2, never with a traceback. Exit status:
0 ok, 1 a failed check (the digits score), 2 a user error, 70 a bug in onnxcc (``-v`` prints its
traceback), 130 interrupted, 141 stdout closed early (``onnxcc ops | head``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from . import __version__
from .errors import InputError, OnnxccError, OutputError, ShapeError

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = MODELS_DIR / "digits.onnx"


def _input_shapes(items: Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    """``--input-shape NAME=D0,D1,...`` options as name -> dims. Raises ShapeError for a value
    that is not ``NAME=`` and comma-separated integers, or a negative dim."""
    shapes = {}
    for it in items or ():
        name, _, dims = it.rpartition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise ShapeError(f"cannot parse --input-shape {it!r}", hint="write NAME=1,3,224,224") from None
        if not name:
            raise ShapeError(f"cannot parse --input-shape {it!r}", hint="write NAME=1,3,224,224")
        if any(d < 0 for d in shapes[name]):
            raise ShapeError(f"--input-shape {it!r}: a dim cannot be negative",
                             hint="dims are sizes >= 0, e.g. NAME=1,3,224,224")
    return shapes


def _constant_inputs(items: Sequence[str] | None) -> dict[str, "np.ndarray"]:
    """``--constant-input NAME=V0,V1,...`` options as name -> 1-D array (integers when every
    value is one, else floats); the compiler converts it to the input's declared dtype and
    shape. Raises ShapeError for a value that is not ``NAME=`` and comma-separated numbers."""
    import numpy as np

    values = {}
    for it in items or ():
        name, _, text = it.partition("=")
        hint = "write NAME=V0,V1,... (e.g. --constant-input axes=0,2)"
        if not name or not text:
            raise ShapeError(f"cannot parse --constant-input {it!r}", hint=hint)
        parts = [t.strip() for t in text.split(",")]
        try:
            values[name] = np.array([int(t) for t in parts], np.int64)
        except ValueError:
            try:
                values[name] = np.array([float(t) for t in parts], np.float64)
            except ValueError:
                raise ShapeError(f"cannot parse --constant-input {it!r}", hint=hint) from None
    return values


def _add_model_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    p.add_argument("model", nargs="?" if optional else None,
                   help="path to an .onnx model or zoo:NAME" + (" (default: the bundled digits CNN)" if optional else ""))
    p.add_argument("--target", "-t", default="host", help="target name (see `onnxcc targets`)")
    p.add_argument("--target-file", metavar="TOML",
                   help="describe another board in TOML (overrides --target; see README)")
    p.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                   help="bind a symbolic input shape (repeatable)")
    p.add_argument("--constant-input", action="append", metavar="NAME=V0,V1,...",
                   help="bind a graph input to constant values (repeatable), e.g. axes=1; "
                   "the values take the input's declared type and shape")
    p.add_argument("--name", help="C prefix of every symbol and file (default: the model's name)")
    p.add_argument("--max-recompute", type=float, metavar="SHARE",
                   help="patch-based execution of the CNN's first stage: the most extra MACs it "
                   "may add, as a share of the model's MACs (default 0.15 on MCU targets, off "
                   "elsewhere; 0 disables it); applied only when it lowers the arena")
    p.add_argument("--optimize", default="speed", metavar="speed|size",
                   help="speed (default), or size: the smallest code (one plain loop nest per "
                   "layer, layers differing only in constants share one C function, C built at "
                   "-Os, patching only with --max-recompute or when the arena would not fit "
                   "the SRAM) for 1.3-6x the instructions")
    p.add_argument("--quantize", choices=["int8", "int16x8"],
                   help="post-training quantization, calibrated on --calibration: int8, or "
                   "int16x8 (int16 activations, int8 weights: TFLite's 16x8 mode)")
    p.add_argument("--int16-layer", action="append", metavar="NAME",
                   help="with --quantize int8: a Conv/Gemm/MatMul/Add node whose activations "
                   "are int16 (a layer that needs the range; repeatable)")
    p.add_argument("--calibration", metavar="NPZ|DIR",
                   help="calibration inputs: an .npz of input name -> samples stacked on axis 0, "
                   "or a folder of <input name>.npy")
    p.add_argument("--calibration-method", choices=["minmax", "percentile", "entropy"],
                   default="minmax", help="how ranges are chosen (default minmax)")
    p.add_argument("--per-tensor", action="store_true",
                   help="one weight scale per tensor instead of per output channel")
    p.add_argument("--precision", metavar="TYPE",
                   help="FPGA targets: the fixed-point type of every tensor (default ap_fixed<16,6>)")
    p.add_argument("--precision-file", metavar="TOML",
                   help="FPGA targets: the types from a TOML file (default = \"ap_fixed<16,6>\" "
                   "and a [layers] table); --precision/--precision-layer override it")
    p.add_argument("--io", choices=["io_parallel", "io_stream"],
                   help="FPGA targets: arrays between layers (default) or hls::stream FIFOs "
                   "under DATAFLOW")
    p.add_argument("--input-layout", choices=["NCHW", "NHWC"],
                   help="FPGA targets: the element order of 4-D inputs at the ports (NHWC: "
                   "pixels with their channels together; no transpose runs in the design)")
    p.add_argument("--reuse-factor", action="append", metavar="N|NAME=N",
                   help="FPGA targets: products per multiplier (the initiation interval) for "
                   "every layer, or for one node (repeatable)")
    p.add_argument("--precision-layer", action="append", metavar="NAME=TYPE",
                   help="FPGA targets: the type of one node's output or tensor, e.g. "
                   "conv1=ap_fixed<18,8> (repeatable)")


def _fixed_point(args: argparse.Namespace):
    """The FixedPoint settings of --precision/--precision-layer, or None when neither is given."""
    default = getattr(args, "precision", None)
    layers = {}
    for item in getattr(args, "precision_layer", None) or []:
        name, sep, t = item.rpartition("=")
        if not sep or not name:
            raise InputError(f"--precision-layer {item!r} is not NAME=TYPE",
                             hint="e.g. --precision-layer conv1=ap_fixed<18,8>")
        layers[name] = t
    path = getattr(args, "precision_file", None)
    if default is None and not layers and not path:
        return None
    from onnxcc.codegen.hls.fixed import FixedPoint, load_precision_file

    base = load_precision_file(path) if path else FixedPoint()
    base.layers = {**base.layers, **layers}
    if default is not None:
        base.default = default
    return base


def _quantize(args: argparse.Namespace):
    """The Int8 settings of --quantize/--calibration, the FixedPoint settings of --precision
    (FPGA targets), or None."""
    fixed = _fixed_point(args)
    if fixed is not None:
        if getattr(args, "quantize", None) is not None:
            raise InputError("--precision (FPGA fixed point) and --quantize int8 exclude each other",
                             hint="drop one of them")
        return fixed
    if getattr(args, "quantize", None) is None:
        if getattr(args, "calibration", None):
            raise InputError("--calibration is given without --quantize",
                             hint="add --quantize int8")
        if getattr(args, "int16_layer", None):
            raise InputError("--int16-layer is given without --quantize int8",
                             hint="add --quantize int8 --calibration data.npz")
        return None
    if args.quantize == "int16x8" and getattr(args, "int16_layer", None):
        raise InputError("--int16-layer with --quantize int16x8: every layer is int16 already",
                         hint="use --quantize int8 --int16-layer NAME for some layers")
    if not args.calibration:
        raise InputError("--quantize int8 needs calibration inputs",
                         hint="add --calibration data.npz (input name -> samples on axis 0) or "
                         "a folder of <input name>.npy")
    from .quantize import Int8

    return Int8(calibration=args.calibration, method=args.calibration_method,
                per_channel=not args.per_tensor,
                activations="int16" if args.quantize == "int16x8" else "int8",
                int16_layers=getattr(args, "int16_layer", None) or ())


def _target(args: argparse.Namespace):
    from onnxcc.targets import get_target, load_target_file

    return load_target_file(args.target_file) if args.target_file else get_target(args.target)


def _hls_config(args: argparse.Namespace):
    """The HLSConfig of --reuse-factor, --io and --input-layout, or None."""
    items = getattr(args, "reuse_factor", None) or []
    io = getattr(args, "io", None)
    layout = getattr(args, "input_layout", None)
    if not items and io is None and layout is None:
        return None
    from onnxcc.codegen.hls.config import HLSConfig

    every, per = None, {}
    for item in items:
        name, sep, v = item.rpartition("=")
        try:
            n = int(v)
        except ValueError:
            raise InputError(f"--reuse-factor {item!r} is not N or NAME=N",
                             hint="e.g. --reuse-factor 4 or --reuse-factor conv2=8") from None
        if sep:
            per[name] = n
        else:
            every = n
    if every is not None and per:
        raise InputError("--reuse-factor N and NAME=N exclude each other",
                         hint="give one factor for all layers, or one per node")
    return HLSConfig(reuse_factor=every if every is not None else (per or 1),
                     io=io or "io_parallel", input_layout=layout or "NCHW")


def _compile(args: argparse.Namespace, model: str):
    from .driver import compile as cc

    return cc(model, _target(args), input_shapes=_input_shapes(args.input_shape), name=args.name,
              dump_dir=getattr(args, "dump_dir", None), dump_after=getattr(args, "dump_ir", None),
              constant_inputs=_constant_inputs(args.constant_input), quantize=_quantize(args),
              hls=_hls_config(args), max_recompute=getattr(args, "max_recompute", None),
              optimize=getattr(args, "optimize", "speed"))


def cmd_compile(args: argparse.Namespace) -> int:
    """``onnxcc compile``: compile the model for ``--target`` into ``--output`` (default
    ``build/<name>``; a folder written whole or not at all, ``--force`` to replace one), with
    ``--dump-ir`` printing a pass's graph or the loop IR. Without a model: the main job on
    the bundled digits CNN (:func:`_main_job`). Returns 0."""
    if args.model is None:
        return _main_job(args)
    t0 = time.perf_counter()
    cm = _compile(args, args.model)
    if args.dump_ir == "loops":   # the loop-IR Program (after the target's loop passes)
        from onnxcc.codegen.loops import program_text

        print(program_text(cm.program))
    elif args.dump_ir:
        dumps = cm.graph.meta.get("dumps", {})
        if args.dump_ir not in dumps:
            raise OnnxccError(f"no pass named {args.dump_ir!r} ran",
                              hint=f"passes that ran: {', '.join(cm.graph.meta.get('passes', []))}")
        print(dumps[args.dump_ir])
    out = Path(args.output or f"build/{cm.mmap['c_prefix']}")
    cm.save(out, force=args.force)
    print(f"compiled {args.model} for {cm.target.name} in {time.perf_counter() - t0:.2f} s -> {out}/")
    print(f"  files:   {', '.join(cm.saved_files)}")
    if cm.target.backend == "hls":
        print(f"  project: Vitis HLS, part {cm.mmap['part']}, clock {cm.mmap['clock_ns']:g} ns; "
              f"`onnxcc hls build {out}` runs C-simulation (and vitis_hls when installed)")
        return 0
    if "CMakeLists.txt" not in cm.saved_files:
        print(f"  note:    {out / 'CMakeLists.txt'} is not onnxcc's and was left as is: "
              f"include({cm.mmap['c_prefix']}.cmake) from it for the CMake target")
    sram, flash = getattr(cm.target, "sram_bytes", None), getattr(cm.target, "flash_bytes", None)
    print(f"  arena:   {cm.arena_size:,} bytes (lower bound {cm.mmap['arena']['lower_bound']:,}, "
          f"naive {cm.mmap['arena']['naive']:,})"
          + (f"; fits: {cm.arena_size / sram:.1%} of {sram:,} bytes of SRAM" if sram else ""))
    print(f"  weights: {cm.weights_size:,} bytes"
          + (f"; fits: {cm.weights_size / flash:.1%} of {flash:,} bytes of flash" if flash else ""))
    sizes = cm.cross_sizes()
    if sizes:
        print(f"  {cm.target.name} object: text {sizes['text']:,} B, data {sizes['data']:,} B, "
              f"bss {sizes['bss']:,} B")
    return 0


def _main_job(args: argparse.Namespace) -> int:
    """Compile the bundled digits CNN, build it, run the test split, score beside onnxruntime."""
    from .driver import compile as cc

    data = np.load(MODELS_DIR / "digits_test.npz")
    x, y = data["x"], data["y"]
    t0 = time.perf_counter()
    tgt = _target(args)
    hls = tgt.backend == "hls"   # an FPGA design takes one image at a time
    cm = cc(str(DEFAULT_MODEL), tgt, input_shapes={"input": (1,) + x.shape[1:] if hls else x.shape},
            name=args.name or "digits", quantize=_quantize(args), hls=_hls_config(args))
    t_compile = time.perf_counter() - t0
    out = Path(args.output or "build/digits")
    cm.save(out, force=args.force)
    t0 = time.perf_counter()
    if hls:
        probs = np.concatenate([cm.run({"input": x[i:i + 1]})["probabilities"]
                                for i in range(len(x))])
    else:
        probs = cm.run({"input": x})["probabilities"]
    t_run = time.perf_counter() - t0
    acc_c = float((probs.argmax(1) == y).mean())
    print(f"onnxcc {__version__}: compiled the bundled digits CNN ({DEFAULT_MODEL.name}) for "
          f"{cm.target.name} in {t_compile:.2f} s -> {out}/")
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(DEFAULT_MODEL), providers=["CPUExecutionProvider"])
        ref = sess.run(None, {"input": x})[0]
        ref_name = "onnxruntime"
    except ImportError:
        from .frontend import import_onnx
        from .interpreter import interpret

        ref = interpret(import_onnx(str(DEFAULT_MODEL), {"input": x.shape}), {"input": x})["probabilities"]
        ref_name = "onnxcc reference interpreter (onnxruntime not installed)"
    acc_ref = float((ref.argmax(1) == y).mean())
    print(f"  test split:          {len(y)} images of 8x8 digits")
    what = ("C-simulation (g++, ap_fixed)" if hls else "C library")
    how = "one image at a time" if hls else "built with the system C compiler"
    print(f"  accuracy, {what}: {acc_c:.4f}  ({how}, ran in {t_run:.2f} s)")
    print(f"  accuracy, {ref_name}: {acc_ref:.4f}")
    print(f"  max |C - {ref_name.split()[0]}| probability difference: {np.abs(probs - ref).max():.2e}")
    if hls:
        t = cm.mmap["estimates"]["total"]
        print(f"  design (estimated): latency {t['latency']:,} cycles at {cm.mmap['clock_ns']:g} ns, "
              f"{t['dsp']:,} DSP, {t['bram18']:,} BRAM18, {t['lut']:,} LUT, {t['ff']:,} FF "
              f"({cm.mmap['part']}); `onnxcc report` itemizes them")
        print(f"  argmax agreement with {ref_name.split()[0]}: "
              f"{float((probs.argmax(1) == ref.argmax(1)).mean()):.4f}")
        return 0 if acc_c + 0.01 >= acc_ref else 1
    print(f"  arena:   {cm.arena_size:,} bytes (lower bound {cm.mmap['arena']['lower_bound']:,}, "
          f"naive sum of intermediates {cm.mmap['arena']['naive']:,})")
    print(f"  weights: {cm.weights_size:,} bytes")
    code = sum((cm.lib_dir / f).stat().st_size for f in cm.files if f.endswith((".c", ".h")))
    print(f"  C source: {code:,} bytes in {len([f for f in cm.files if f.endswith(('.c', '.h'))])} files")
    mcu = cc(str(DEFAULT_MODEL), "cortex-m4", input_shapes={"input": (1, 1, 8, 8)}, name="digits")
    sizes = mcu.cross_sizes()
    line = (f"text {sizes['text']:,} B, data {sizes['data']:,} B, bss {sizes['bss']:,} B"
            if sizes else "arm-none-eabi-gcc not installed: object sizes not measured")
    print(f"  cortex-m4, one image: arena {mcu.arena_size:,} B, weights {mcu.weights_size:,} B "
          f"in flash; object {line}")
    _qemu_check(mcu, x[:QEMU_IMAGES], ref[:QEMU_IMAGES])
    if acc_c + 1e-9 < acc_ref:
        print("error: the C library scored below the reference", file=sys.stderr)
        return 1
    return 0


QEMU_IMAGES = 10


def _qemu_check(mcu, xs: np.ndarray, ref: np.ndarray) -> None:
    """Run a few images on an emulated Cortex-M4 (QEMU) and print the agreement with ``ref``."""
    from onnxcc.errors import BuildError
    from onnxcc.runtime.qemu import run_on_qemu

    try:
        t0 = time.perf_counter()
        got = np.concatenate([run_on_qemu(mcu, {"input": xs[k:k + 1]})["probabilities"]
                              for k in range(len(xs))])
    except BuildError as e:
        print(f"  cortex-m4 on QEMU: not run ({str(e).splitlines()[0]})")
        return
    same = int((got.argmax(1) == ref.argmax(1)).sum())
    print(f"  cortex-m4 on QEMU (mps2-an386): {same}/{len(xs)} images classified as onnxruntime does, "
          f"max |diff| {np.abs(got - ref).max():.2e} ({time.perf_counter() - t0:.1f} s)")


def cmd_run(args: argparse.Namespace) -> int:
    """``onnxcc run``: compile the model and run it on ``--inputs`` (an .npz; without it
    arange(n)/n for every input), printing each output's dtype, shape, min, max and argmax and,
    with ``-o``, writing the outputs to an .npz. Returns 0; OutputError when -o cannot be
    written."""
    out = _output_npz(args.output) if args.output else None
    feeds = load_inputs(args.inputs) if args.inputs else None
    cm = _compile(args, args.model)
    if feeds is None:
        from .zoo import zoo_input

        feeds = {v.name: zoo_input(v.shape).astype(v.dtype) for v in cm.graph.inputs}
        print("no --inputs given: feeding arange(n)/n to every input")
    outs = cm.run(feeds)
    if out is not None:
        try:
            np.savez(out, **outs)
        except OSError as e:
            raise OutputError(f"cannot write -o {out}: {e.strerror}",
                              hint="choose a writable .npz path with -o") from e
        print(f"wrote {out}")
    for k, v in outs.items():
        print(f"{k}: {v.dtype}{list(v.shape)} min {v.min():.6g} max {v.max():.6g} "
              f"argmax {int(np.argmax(v.reshape(v.shape[0], -1)[0])) if v.size else '-'}")
    return 0


def load_inputs(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file ``path`` (written by ``numpy.savez``), name -> array.

    Raises InputError naming the file (and array) when it is missing, a folder, not an .npz
    (a lone .npy array, text, a damaged zip), or holds Python objects (never unpickled).
    """
    p = Path(path)
    hint = "write it with numpy.savez(path, input_name=array, ...)"
    if not p.exists():
        raise InputError(f"--inputs {p}: no such file", hint=hint)
    if p.is_dir():
        raise InputError(f"--inputs {p} is a folder, not an .npz file", hint=hint)
    try:
        f = open(p, "rb")
    except OSError as e:
        raise InputError(f"cannot read --inputs {p}: {e.strerror or e}", hint=hint) from None
    with f:
        try:
            z = np.load(f, allow_pickle=False)
        except Exception:   # ValueError, EOFError, zipfile.BadZipFile: not a readable .npz
            raise InputError(f"--inputs {p} is not an .npz file (a zip of .npy arrays)",
                             hint=hint) from None
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise InputError(f"--inputs {p} is a single .npy array, not an .npz of named inputs",
                             hint=hint)
        feeds = {}
        with z:
            for k in z.files:
                try:
                    feeds[k] = z[k]
                except ValueError as e:
                    raise InputError(f"--inputs {p}: array {k!r} cannot be read without unpickling "
                                     f"Python objects ({e})", hint="save numeric arrays") from None
                except Exception as e:   # a damaged member: zipfile.BadZipFile, zlib.error, ...
                    raise InputError(f"--inputs {p}: array {k!r} cannot be read "
                                     f"({type(e).__name__}: {e})", hint=hint) from None
    return feeds


def _output_npz(path: str) -> Path:
    """The .npz file ``-o`` names (numpy adds the suffix), checked before any work is done.
    Raises OutputError when its folder does not exist or it is a folder."""
    out = Path(path if path.endswith(".npz") else path + ".npz")
    if out.is_dir():
        raise OutputError(f"-o {out} is a folder", hint="give the path of an .npz file to write")
    if not out.parent.is_dir():
        what = "is not a folder" if out.parent.exists() else "does not exist"
        raise OutputError(f"-o {out}: {out.parent} {what}",
                          hint="create the folder first, or choose another -o")
    return out


def cmd_report(args: argparse.Namespace) -> int:
    """``onnxcc report``: print the compiled model's report (``CompiledModel.report()``:
    per node its op, shapes, MACs and arena bytes; with ``--quantize`` the scales, zero points
    and SQNR in dB) and, with ``--plot``, draw the memory plan to an image. Returns 0."""
    if args.plot:
        _check_plot_path(args.plot)
    cm = _compile(args, args.model)
    print(cm.report())
    if args.plot:
        from .report import plot_memory_plan

        rects = plot_memory_plan(cm, args.plot)
        print(f"memory plan: {len(rects)} arena tensors drawn -> {args.plot}")
    return 0


def _check_plot_path(path: str) -> None:
    """Raise OutputError before compiling when ``--plot`` cannot be written: its folder is
    missing, it names a folder, or its suffix is no image format matplotlib writes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(path)
    kinds = FigureCanvasAgg.get_supported_filetypes()
    if out.suffix and out.suffix[1:].lower() not in kinds:
        raise OutputError(f"--plot {out}: matplotlib cannot write {out.suffix!r} images",
                          hint=f"use one of {', '.join('.' + k for k in sorted(kinds))}")
    if out.is_dir():
        raise OutputError(f"--plot {out} is a folder", hint="give the path of a .png file to write")
    if not out.parent.is_dir():
        raise OutputError(f"--plot {out}: {out.parent} does not exist",
                          hint="create the folder first, or choose another --plot")


def cmd_check(args: argparse.Namespace) -> int:
    """``onnxcc check``: run the target's passes and lowering without writing any file and
    tell whether every node compiles and the arena (with kernel scratch) and weights fit the
    target's SRAM and flash; an error names what does not. Returns 0 when it fits."""
    from onnxcc.codegen.c.emit import check_legal
    from onnxcc.passes import run_pipeline

    from .frontend import import_onnx

    from .driver import with_optimize

    tgt = with_optimize(_target(args), getattr(args, "optimize", "speed"))
    g = import_onnx(args.model, _input_shapes(args.input_shape),
                    constant_inputs=_constant_inputs(args.constant_input))
    from onnxcc.passes.patch import with_max_recompute

    recompute = getattr(args, "max_recompute", None)
    auto = recompute is None and tgt.size_mode and tgt.backend != "hls"
    g0 = g.copy() if auto else g
    g = run_pipeline(g, with_max_recompute(tgt.pipeline, 0 if auto else recompute), verify=True)
    if auto and tgt.sram_bytes is not None and g.meta["memory_plan"].arena_size > tgt.sram_bytes:
        g1 = g0.copy()   # as compile(optimize="size"): the fewest patched kernels that fit
        g = run_pipeline(g0, with_max_recompute(tgt.pipeline, None, fit_bytes=tgt.sram_bytes),
                         verify=True)
        if g.meta["memory_plan"].arena_size > tgt.sram_bytes:
            g = run_pipeline(g1, tgt.pipeline, verify=True)
    check_legal(g, tgt.name)
    if tgt.backend == "hls":   # every node without a fixed-point kernel
        from onnxcc.codegen.hls.emit import check_hls

        check_hls(g)
    from .driver import check_memory_budget

    check_memory_budget(g, tgt)
    if tgt.backend != "hls":   # kernel scratch joins the arena while lowering (as compile does)
        from onnxcc.codegen.lower import lower_for_target

        lower_for_target(g, tgt, g.name)
        check_memory_budget(g, tgt)
    from .fit import fit_report, format_fit

    plan = g.meta["memory_plan"]
    print(f"{args.model}: every node can be compiled for {tgt.name} ({len(g.nodes)} nodes after "
          f"passes; arena {plan.arena_size:,} bytes)")
    print(f"it fits {tgt.name}" + (f" ({tgt.board})" if getattr(tgt, "board", None) else "") + ":")
    print(format_fit(fit_report(g, tgt)))
    return 0


def cmd_hls_build(args: argparse.Namespace) -> int:
    """C-simulation with g++ (and the Vitis flow when vitis_hls is installed) of a project."""
    import shutil as _sh

    from onnxcc.runtime.hls import find_project, run_testbench, vitis_build

    folder = Path(args.folder)
    man = find_project(folder)
    steps = {s: getattr(args, s) for s in ("csim", "synth", "cosim", "export")}
    if not any(steps.values()):
        steps["csim"] = True
        steps["synth"] = _sh.which("vitis_hls") is not None
    if _sh.which("vitis_hls"):
        rc = vitis_build(folder, **steps)
        report = folder / f"{man['c_prefix']}_prj" / "solution1" / "syn" / "report" / \
            f"{man['c_prefix']}_csynth.xml"
        if rc == 0 and steps["synth"] and report.is_file():
            from onnxcc.runtime.hls import parse_csynth, synthesis_table

            print(synthesis_table(man, parse_csynth(report)))
        return rc
    if any(steps[s] for s in ("synth", "cosim", "export")):
        print("vitis_hls is not on the PATH: running C-simulation only (g++); synthesis, "
              "co-simulation and export need Vitis HLS")
    ok, text = run_testbench(folder)
    print(text.strip())
    print(f"C-simulation of {man['c_prefix']} with g++: {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


def cmd_targets(args: argparse.Namespace) -> int:
    """``onnxcc targets``: one line per known target (back end, triple, memory). Returns 0."""
    from onnxcc.targets import TARGETS

    for name, t in TARGETS.items():
        print(f"{name:14s} {t.describe() if hasattr(t, 'describe') else t}")
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    """``onnxcc ops``: the table of supported ops per back end (the README's). Returns 0."""
    print(ops_table())
    return 0


def ops_table() -> str:
    """Markdown table: every registered op and whether each back end renders it. The C and
    LLVM back ends render the loop IR, so an op lowered into it is in both columns (the C back
    end: host and the other MCU targets; the LLVM back end: cpu, x86-64-v2/v3/v4, aarch64 and
    thumbv7em, a Cortex-M4); the HLS
    back end renders the ops that have a fixed-point form ("yes") and the integer ops of its
    ap_int path for int8/uint8 models ("int8"; ``onnxcc.codegen.hls.reference``).
    A line under the table names the control-flow ops the frontend inlines (``onnxcc.control_flow``),
    which never reach a back end."""
    from onnxcc.codegen.lower import registry as loop_registry
    from onnxcc.targets import TARGETS

    from . import control_flow
    from .ops import all_ops

    from onnxcc.codegen.hls.reference import INTEGER_OPS as HLS_INT_OPS
    from onnxcc.codegen.hls.reference import SUPPORTED as HLS_OPS

    loops = loop_registry()
    cols: dict[str, list[str]] = {}
    for t in TARGETS.values():
        cols.setdefault(getattr(t, "backend", "c"), []).append(t.name)
    head = " | ".join(f"{b.upper()}: {', '.join(ts)}"
                      for b, ts in cols.items())
    rows = [f"| op | {head} |", "|---|" + "---|" * len(cols)]
    for name in all_ops():
        yes = [("yes" if name in HLS_OPS else "int8" if name in HLS_INT_OPS else "no")
               if b == "hls" else "yes" if name in loops else "no" for b in cols]
        rows.append(f"| {name} | " + " | ".join(yes) + " |")
    rows += ["", "If, Loop and Scan are inlined by the frontend, never rendered by a back end: "
             "an If with a constant condition compiles its branch, with a runtime condition both "
             "branches (selected by Where); Loop and Scan are unrolled when their trip count is "
             "known at compile time (bind it with constant_inputs / --constant-input), up to "
             f"{control_flow.MAX_ITERATIONS} iterations; the ops they inline need the support "
             "above."]
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``onnxcc`` command (sub-commands as in the module docstring)."""
    p = argparse.ArgumentParser(prog="onnxcc", description="Compile ONNX models to C libraries.")
    p.add_argument("--version", action="version", version=f"onnxcc {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log each pass")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compile", help="compile a model into a C library folder")
    _add_model_args(c, optional=True)
    c.add_argument("-o", "--output", help="output folder (default build/<name>); onnxcc writes only "
                   "its own files there and never removes or overwrites yours")
    c.add_argument("--force", action="store_true",
                   help="overwrite files in -o that have a generated name but onnxcc did not write")
    c.add_argument("--dump-ir", metavar="PASS", help="print the graph IR after PASS, or with "
                   "'loops' the loop-IR program the back end renders")
    c.add_argument("--dump-dir", help="write the IR after every pass into this folder")
    c.set_defaults(fn=cmd_compile)
    r = sub.add_parser("run", help="compile for the host, run on inputs")
    _add_model_args(r)
    r.add_argument("--inputs", help=".npz of input name -> array")
    r.add_argument("-o", "--output", help=".npz to write the outputs to")
    r.set_defaults(fn=cmd_run)
    rp = sub.add_parser("report", help="per-layer report")
    _add_model_args(rp)
    rp.add_argument("--plot", metavar="PNG", help="draw the memory plan (arena tensors over the "
                    "schedule steps, the peak marked) into this image with matplotlib")
    rp.set_defaults(fn=cmd_report)
    ck = sub.add_parser("check", help="list every unsupported op and unbound dim; say whether "
                        "the model fits the target's SRAM and flash")
    _add_model_args(ck)
    ck.set_defaults(fn=cmd_check)
    h = sub.add_parser("hls", help="FPGA projects: `onnxcc hls build DIR`")
    hsub = h.add_subparsers(dest="hls_cmd", required=True)
    hb = hsub.add_parser("build", help="C-simulate (g++), and with vitis_hls on the PATH "
                         "synthesize, an HLS project folder")
    hb.add_argument("folder", help="the folder `onnxcc compile --target <fpga>` wrote")
    for step in ("csim", "synth", "cosim", "export"):
        hb.add_argument(f"--{step}", action="store_true",
                        help=f"run {step} (default: csim, plus synth when vitis_hls is installed)")
    hb.set_defaults(fn=cmd_hls_build)
    sub.add_parser("targets", help="list targets").set_defaults(fn=cmd_targets)
    sub.add_parser("ops", help="supported-op table per target").set_defaults(fn=cmd_ops)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``onnxcc``: returns the exit status (0 ok, 1 a failed check, 2 a user
    error, 70 a bug in onnxcc, 130 interrupted, 141 stdout closed early)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:   # argparse printed the usage error (2), or --help / --version (0)
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, *a, **k: f"warning: {msg}\n"
    try:
        status = int(args.fn(args) or 0)
        sys.stdout.flush()   # a closed pipe shows here, not in the interpreter's exit
        return status
    except OnnxccError as e:
        return _error(str(e))
    except BrokenPipeError:   # `onnxcc ops | head`: the reader left; stop quietly
        _detach_stdout()
        return 141
    except OSError as e:      # a file or folder named on the command line
        where = f"{e.filename}: " if e.filename else ""
        return _error(f"{where}{e.strerror or e}", "check the path and its permissions")
    except MemoryError:
        return _error("out of memory", "use a smaller input (--input-shape) or model")
    except KeyboardInterrupt:
        return 130
    except Exception as e:   # a bug: one line, the traceback with -v
        if args.verbose:
            traceback.print_exc()
        print(f"error: internal error in onnxcc ({type(e).__name__}: {e})\n  hint: this is a bug; "
              f"please report it with the model and the command (-v prints the traceback)",
              file=sys.stderr)
        return 70


def _error(message: str, hint: str | None = None) -> int:
    print(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""), file=sys.stderr)
    return 2


def _detach_stdout() -> None:
    """Point stdout at /dev/null so Python's final flush does not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
