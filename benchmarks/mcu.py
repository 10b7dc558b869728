"""Microcontroller table: the MLPerf-Tiny-shaped models on an emulated Cortex-M4, float and int8.

    python benchmarks/mcu.py [--models mlp ds_cnn ...] [--target cortex-m4] [--opt -Os]

The models (benchmarks/models.py ``TINY_MODELS``, seeded random weights): the MLP 784-128-64-10,
DS-CNN keyword spotting on 49x10, ResNet-8 on 32x32x3, MobileNetV1-0.25 on 96x96x3 with 2
classes (visual wake words) and the fully connected autoencoder 640-128x4-8-128x4-640. Each is
compiled for ``--target`` as float and as int8 (``onnxcc.Int8``, minmax, calibrated on
``--samples`` seeded N(0, 1) inputs) and run once as firmware on the target's QEMU board
(cortex-m4: mps2-an386), built with the target's cross compiler at ``--opt``, on a seeded N(0, 1)
input. One table per model, a column per precision; rows (bytes unless said):

- three lower bounds of the arena (the memory plan's "lower bound": the most bytes of arena
  tensors live at once in the chosen schedule), each row naming its floor:
  "tensor floor (unpatched, no in-place)": the unpatched graph (``max_recompute=0``) planned
  with every tensor in bytes of its own (``plan_memory.plan(..., depthwise_in_place=False)``);
  "in-place floor (unpatched)": the same graph as the target plans it (on microcontrollers a
  depthwise Conv's output over its input, TinyEngine's in-place depthwise: the two count once),
  and "arena without patching" that build's ``<M>_ARENA_SIZE``;
  "patched floor (as compiled)": the graph as compiled with the target's default patching (the
  in-place floor again when the patch row says none);
- patch: what patch-based inference chose with the target's default bound (``passes/patch.py``:
  the grid and the MACs it adds), or "none" (why: in the notes);
- size mode: the ``optimize="size"`` build of the same precision (``onnxcc.compile``; one plain
  loop nest per layer, kernels that differ only in integer constants sharing one C function,
  patching off unless the unpatched arena does not fit the part, then the fewest repeated
  kernels that fit): its code (as "code" below),
  its arena (``<M>_ARENA_SIZE``), its RAM beyond the arena, its instructions / inference and
  its max |error| (each as below), the firmware at ``--opt`` as for the other rows;
- arena: ``<M>_ARENA_SIZE`` of the build as compiled (the target's default patching);
- RAM beyond the arena: the library objects' .data + .bss (what the library keeps in RAM outside
  the caller's arena); stack used by the run: measured on the board (the harness paints the free
  stack before the call and finds the lowest word changed after it; the C library's functions
  included); stack frames: ``-fstack-usage``'s frame of ``<m>_run`` plus the largest of the
  other library functions (a static estimate, libm not included);
- code: .text (with .rodata, as binutils' ``size`` counts it) of ``<m>.o`` compiled at ``-Os``,
  the weights excluded; weights: .text + .data of ``<m>_weights.o``;
- instructions / inference: guest instructions from the first instruction of ``<m>_run`` to its
  return, counted exactly by onnxcc's TCG plugin (``onnxcc.runtime.qemu.count_instructions``);
  instructions / MAC: that over the MACs of the float graph's Conv, Gemm and MatMul
  (``onnxcc.report.macs``; the same MACs for int8); then per kind of kernel (depthwise conv,
  other conv, dense) its instructions over its MACs, each kernel's instructions counted from its
  call in ``<m>_run`` to its return (``onnxcc.runtime.qemu.count_kernels``), and the share of
  the instructions outside kernels with MACs (pooling, softmax, ``<m>_run`` itself);
- a precision that the QEMU board cannot hold even with the board's memory (``--target
  cortex-m0plus`` runs on the micro:bit: 256 KiB of flash, 16 KiB of SRAM) has dashes in its
  column and the reason (the compiler's or the linker's) in a note; the other models go on;
- with ``--onnx2c PATH`` (an onnx2c binary the user built; onnxcc neither ships nor builds it),
  the peer's bytes for the float model, cross-compiled as onnxcc's library is: "onnx2c: code"
  (.text + .rodata + .data without its initializer arrays), "onnx2c: weights" (those arrays)
  and "onnx2c: RAM (.data+.bss)" (its static intermediate tensors); compare "size mode: code".
  Measured 2026-12-07 with onnx2c ea045cc (cortex-m4, -Os): code 380 / 1,332 / 2,740 / 5,888 /
  976 B and RAM 1,024 / 64,000 / 196,608 / 294,912 / 1,024 B (MLP, DS-CNN, ResNet-8,
  MobileNetV1-0.25, autoencoder);
- max |error|: float against onnxruntime; int8 against onnxcc's numpy reference of the quantized
  graph (``onnxcc.interpreter.interpret``: its integer layers are exact, so what differs is the
  float after the last dequantize, e.g. Softmax, by libm's rounding).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))


def _models():
    import models as M

    return M


def library_bytes(cm, opt: str = "-Os") -> dict[str, int]:
    """Bytes of ``cm``'s library cross-compiled for its target at ``opt``: ``code`` (.text of
    ``<m>.o``), ``weights`` (.text + .data of ``<m>_weights.o``), ``ram`` (.data + .bss of both)
    and ``stack`` (``<m>_run``'s frame plus the largest other frame, from ``-fstack-usage``)."""
    from onnxcc.runtime.build import WARN_FLAGS, library_sources, object_sizes, run_checked

    tgt, m = cm.target, cm.mmap["c_prefix"]
    size_tool = tgt.cc[:-3] + "size"
    out = {"code": 0, "weights": 0, "ram": 0, "stack": 0}
    with tempfile.TemporaryDirectory(prefix="onnxcc_mcu_bench_") as td:
        for src in library_sources(cm.lib_dir, cm.mmap):
            obj = Path(td) / (src.stem + ".o")
            run_checked([tgt.cc, *WARN_FLAGS, opt, *tgt.c_flags, "-fstack-usage",
                         f"-I{cm.lib_dir}", f"-Wa,-I{cm.lib_dir}", "-c", str(src), "-o", str(obj)],
                        f"cross-compile {src.name}")
            s = object_sizes(obj, size_tool)
            if src.stem.endswith("_weights"):
                out["weights"] += s["text"] + s["data"]
            else:
                out["code"] += s["text"]
                frames = {}
                for line in obj.with_suffix(".su").read_text().splitlines():
                    where, nbytes, _kind = line.split("\t")
                    frames[where.rsplit(":", 1)[-1]] = int(nbytes)
                run = frames.pop(f"{m}_run", 0)
                out["stack"] = run + max(frames.values(), default=0)
            out["ram"] += s["data"] + s["bss"]
    return out


def onnx2c_bytes(onnx2c: str, model, target: str, opt: str = "-Os") -> dict[str, int]:
    """Bytes of the C that the peer compiler onnx2c (https://github.com/kraiskil/onnx2c, a binary
    the user built: ``--onnx2c PATH``) generates for ``model``, cross-compiled as onnxcc's
    library is (``target``'s compiler and flags at ``opt``): ``code`` (.text + .rodata +
    .data of the object without the arrays of the model's initializers, which onnx2c names
    ``tensor_<name>``), ``weights`` (those arrays) and ``ram`` (.data + .bss: onnx2c keeps its
    intermediate tensors in static buffers). Raises BuildError when onnx2c or the compiler
    fails."""
    import re

    from onnxcc.runtime.build import run_checked
    from onnxcc.targets import get_target

    import onnx

    tgt = get_target(target)
    tools = tgt.cc[:-3]
    inits = {"tensor_" + re.sub(r"[^A-Za-z0-9_]", "_", t.name) for t in model.graph.initializer}
    with tempfile.TemporaryDirectory(prefix="onnxcc_onnx2c_") as td:
        path, src, obj = Path(td) / "m.onnx", Path(td) / "m.c", Path(td) / "m.o"
        onnx.save(model, str(path))
        src.write_text(run_checked([onnx2c, "-l", "1", str(path)], "onnx2c"))
        run_checked([tgt.cc, opt, *tgt.c_flags, "-c", str(src), "-o", str(obj)],
                    "cross-compile onnx2c's C")
        secs = {}
        for line in run_checked([tools + "size", "-A", str(obj)], "size").splitlines():
            f = line.split()
            if len(f) == 3 and f[0].startswith("."):
                secs[f[0]] = int(f[1])
        weights, seen = 0, set()
        for line in run_checked([tools + "objdump", "-t", str(obj)], "objdump").splitlines():
            m = re.match(r"^[0-9a-f]+ .{7} (\.rodata\S*|\.data\S*)\s+([0-9a-f]+) (\S+)$", line)
            if m and m.group(3).split(".")[0] in inits and m.group(3) not in seen:
                seen.add(m.group(3))
                weights += int(m.group(2), 16)
    flash = sum(n for sec, n in secs.items() if sec.startswith((".text", ".rodata", ".data")))
    return {"code": flash - weights, "weights": weights,
            "ram": secs.get(".data", 0) + secs.get(".bss", 0)}


def graph_macs(cm) -> int:
    """MACs of the Conv/Gemm/MatMul nodes (and their fused forms) of ``cm``'s graph."""
    from onnxcc.report import macs

    return sum(macs(n) for n in cm.graph.nodes)


KINDS = ("depthwise conv", "other conv", "dense")
_CONV = {"Conv", "FusedConv", "ConvInteger", "QLinearConv"}
_DENSE = {"Gemm", "FusedGemm", "MatMul", "QGemm", "QLinearMatMul", "MatMulInteger"}


def kernel_kind(node) -> str | None:
    """``depthwise conv`` (a Conv with one input channel per group and more than one group),
    ``other conv``, ``dense`` (Gemm/MatMul) for a node with MACs, else None."""
    from onnxcc.report import macs

    op = node.op.split(".")[-1]
    if not macs(node):
        return None
    if op in _CONV:
        w = node.inputs[3 if op == "QLinearConv" else 1].shape
        return "depthwise conv" if node.attrs.get("group", 1) > 1 and w[1] == 1 else "other conv"
    return "dense" if op in _DENSE else None


def kind_rows(cm, per_kernel: dict[str, int] | None, total: int) -> dict[str, object]:
    """Instructions per MAC of each kind of kernel (:func:`kernel_kind`) and the share of the
    instructions outside kernels with MACs, from the per-kernel counts; "n/a" cells when the
    kernels' calls could not be matched or the model has no kernel of a kind."""
    from onnxcc.report import macs

    rows: dict[str, object] = {f"instr / MAC, {k}": "n/a" for k in KINDS}
    rows["share outside MAC kernels"] = "n/a (kernels not matched)"
    if per_kernel is None:
        return rows
    nodes = {n.name: n for n in cm.graph.nodes}
    insns = dict.fromkeys(KINDS, 0)
    mac = dict.fromkeys(KINDS, 0)
    for k in cm.program.kernels:
        node = nodes.get(k.node)
        kind = kernel_kind(node) if node is not None else None
        if kind is not None and k.name in per_kernel:
            insns[kind] += per_kernel[k.name]
            mac[kind] += macs(node)
    for kind in KINDS:
        if mac[kind]:
            rows[f"instr / MAC, {kind}"] = insns[kind] / mac[kind]
    rows["share outside MAC kernels"] = f"{1 - sum(insns.values()) / total:.1%}"
    return rows


def measure(name: str, model, *, target: str, opt: str, samples: int, timeout: float,
            onnx2c: str | None = None) -> dict:
    """Every row of ``name``'s table, per precision (``float``, ``int8``); with ``onnx2c`` (the
    path of an onnx2c binary) also onnx2c's bytes for the float model (:func:`onnx2c_bytes`)."""
    import onnxcc
    from onnxcc.errors import BuildError, MemoryBudgetError
    from onnxcc.runtime import qemu
    from onnxcc.targets import get_target

    M = _models()
    feeds = M.random_feeds(model)
    ref = M.ort_session(model).run(None, feeds)
    (in_name, shape), = M.input_specs(model)
    rng = np.random.default_rng(7)
    calib = {in_name: rng.standard_normal((samples, *shape[1:])).astype(np.float32)}
    cols, notes, macs = {}, [], None
    board = qemu.machine_for(get_target(target)).name
    for prec in ("float", "int8"):
        quant = onnxcc.Int8(calibration=calib) if prec == "int8" else None
        try:
            cols[prec], macs = _precision_rows(name, model, prec, quant, target=target,
                                               opt=opt, timeout=timeout, feeds=feeds, ref=ref,
                                               macs=macs, notes=notes)
        except (MemoryBudgetError, BuildError) as e:
            # A board too small for the model (the M0+'s micro:bit: 256 KiB of flash): the
            # column says so and the other models and precisions go on.
            cols[prec] = None
            notes.append(f"{prec} does not run on QEMU {board}: {_why(e)}")
    rows = next((list(c) for c in cols.values() if c is not None), [])
    cols = {p: c if c is not None else dict.fromkeys(rows, "–") for p, c in cols.items()}
    if onnx2c and rows:
        theirs = onnx2c_bytes(onnx2c, model, target, opt)
        for key, label in (("code", "onnx2c: code"), ("weights", "onnx2c: weights"),
                           ("ram", "onnx2c: RAM (.data+.bss)")):
            cols["float"][label] = theirs[key]
            cols["int8"][label] = "–"
        notes.append("onnx2c: the float model through onnx2c -l 1 (its int8 input is a QDQ "
                     "graph that it runs in float)")
    return {"macs": macs, "shape": shape, "cols": cols, "notes": notes}


def _why(e: Exception) -> str:
    """The line of onnxcc error ``e`` that says why a build does not fit: the linker's
    "region ... overflowed" lines when there are any, else the message's first line."""
    lines = str(e.args[0]).splitlines()
    over = [ln.split(": ", 1)[-1].strip() for ln in lines if "overflowed" in ln]
    return "; ".join(dict.fromkeys(over)) or lines[0]


def _precision_rows(name: str, model, prec: str, quant, *, target: str, opt: str,
                    timeout: float, feeds: dict, ref: list, macs: int | None,
                    notes: list) -> tuple[dict, int]:
    """One precision's column of ``measure`` and the MACs it counted per (``macs`` when given:
    the float graph's, the same for int8). Raises MemoryBudgetError or BuildError when the
    model does not fit the QEMU board's memory even with the board's sizes."""
    import onnxcc
    from onnxcc.errors import MemoryBudgetError
    from onnxcc.runtime import qemu

    t0 = time.perf_counter()
    builds = []
    for recompute in (None, 0):   # the target's default patching, then none
        try:
            builds.append(onnxcc.compile(model, target, name=f"{name}_{prec}",
                                         quantize=quant, max_recompute=recompute))
        except MemoryBudgetError as e:
            builds.append(onnxcc.compile(model, board_target(target), name=f"{name}_{prec}",
                                         quantize=quant, max_recompute=recompute))
            notes.append(f"{prec}{'' if recompute is None else ' without patching'} does "
                         f"not fit {target}'s part ({e.args[0].splitlines()[0]}); measured "
                         "with the emulated board's memory")
    cm, plain = builds
    try:
        small = onnxcc.compile(model, target, name=f"{name}_{prec}", quantize=quant,
                               optimize="size")
    except MemoryBudgetError:
        small = onnxcc.compile(model, board_target(target), name=f"{name}_{prec}",
                               quantize=quant, optimize="size")
        notes.append(f"{prec} size mode does not fit {target}'s part; measured with the "
                     "emulated board's memory")
    small_choice = small.graph.meta.get("patch")
    if small_choice is not None and small_choice.grid is not None:
        notes.append(f"{prec} size mode: patched {patch_text(small_choice)} (the unpatched "
                     f"arena exceeds {target}'s SRAM)")
    small_sizes = library_bytes(small)
    small_prof = qemu.count_kernels(small, feeds, opt=opt, timeout=timeout)
    small_want = want_outputs(small, prec, model, ref, feeds)
    small_err = max(float(np.abs(small_prof.outputs[k].astype(np.float64) - small_want[k])
                          .max()) for k in small_want)
    choice = cm.graph.meta.get("patch")
    if choice is not None and choice.grid is None and choice.reason:
        notes.append(f"{prec}: not patched ({choice.reason})")
    macs = macs or graph_macs(cm)
    sizes = library_bytes(cm)
    prof = qemu.count_kernels(cm, feeds, opt=opt, timeout=timeout)
    outs, n = prof.outputs, prof.instructions
    want = want_outputs(cm, prec, model, ref, feeds)
    err = max(float(np.abs(outs[k].astype(np.float64) - want[k]).max()) for k in want)
    return {
        "tensor floor (unpatched, no in-place)": tensor_floor(plain),
        "in-place floor (unpatched)": plain.graph.meta["memory_plan"].lower_bound,
        "arena without patching": plain.arena_size,
        "patch": patch_text(cm.graph.meta.get("patch")),
        "patched floor (as compiled)": cm.graph.meta["memory_plan"].lower_bound,
        "arena": cm.arena_size,
        "RAM beyond arena (.data+.bss)": sizes["ram"],
        "stack used by the run": prof.stack_bytes,
        "stack frames (run + largest)": sizes["stack"],
        "code": sizes["code"],
        "weights": sizes["weights"],
        "instructions / inference": n,
        "instructions / MAC": n / macs if macs else float("nan"),
        **kind_rows(cm, prof.kernels, n),
        "size mode: code": small_sizes["code"],
        "size mode: arena": small.arena_size,
        "size mode: RAM beyond arena": small_sizes["ram"],
        "size mode: instructions / inference": small_prof.instructions,
        "size mode: max |error|": small_err,
        "max |error|": err,
        "seconds (compile+run)": time.perf_counter() - t0,
    }, macs


def tensor_floor(cm) -> int:
    """The lower bound of ``cm``'s arena with no tensor written over another (the memory plan of
    its graph, in its schedule, without the in-place depthwise Conv): bytes."""
    from onnxcc.passes.plan_memory import plan

    return plan(cm.graph, cm.graph.meta["memory_plan"].alignment,
                depthwise_in_place=False).lower_bound


def want_outputs(cm, prec: str, model, ref: list, feeds: dict) -> dict:
    """The outputs ``cm``'s run should give: onnxruntime's ``ref`` for float, onnxcc's numpy
    reference of ``cm``'s quantized graph for int8 (see the module docstring)."""
    from onnxcc.interpreter import interpret

    if prec == "float":
        return dict(zip([o.name for o in model.graph.output], ref))
    return interpret(cm.graph, feeds)


def patch_text(choice) -> str:
    """One cell for the patch pass's decision (``passes.patch.PatchChoice``): the grid and the
    extra MACs, or "none" (the reason goes to the table's notes)."""
    if choice is None or choice.grid is None:
        return "none"
    rows, cols = choice.grid
    return f"{rows}x{cols},+{100 * choice.extra_macs / max(choice.macs, 1):.1f}%MACs"


def board_target(target: str):
    """``target`` with the SRAM and the code and constant memory of its QEMU board (mps2-an386:
    4 MiB each; mps3-an547: 512 KiB ITCM and 2 MiB SRAM for the constants) instead of
    its part's, for a model that does not fit the part but runs on the emulated board."""
    import dataclasses

    from onnxcc.runtime import qemu
    from onnxcc.targets import get_target

    tgt = get_target(target)
    mc = qemu.machine_for(tgt)
    return dataclasses.replace(tgt, sram_bytes=mc.ram[1] - mc.stack_bytes,
                               flash_bytes=mc.rom_bytes)


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.2f}"
    return f"{v:,}"


def format_table(name: str, res: dict, target: str, board: str, opt: str) -> str:
    """One model's table: a row per quantity, a column per precision."""
    cols = res["cols"]
    rows = list(next(iter(cols.values())))
    if not rows:   # no precision ran
        return "\n".join([f"== {name}: not run on {board}", *(f"note: {n}" for n in res["notes"])])
    w0 = max(len(r) for r in rows)
    w = max(12, *(len(_cell(c[r])) for c in cols.values() for r in rows))
    head = (f"== {name}: input {'x'.join(map(str, res['shape']))}, {_cell(res['macs'])} MACs; "
            f"{target} on QEMU {board}, {opt}")
    lines = [head, f"{'':{w0}}  " + "  ".join(f"{p:>{w}}" for p in cols)]
    lines += [f"{r:{w0}}  " + "  ".join(f"{_cell(c[r]):>{w}}" for c in cols.values())
              for r in rows]
    lines += [f"note: {n}" for n in res["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    M = _models()
    ap.add_argument("--models", nargs="*", default=list(M.TINY_MODELS),
                    help=f"from {', '.join(M.TINY_MODELS)}")
    ap.add_argument("--target", default="cortex-m4")
    ap.add_argument("--opt", default="-Os", help="the firmware's optimization flag")
    ap.add_argument("--samples", type=int, default=8, help="int8 calibration inputs")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per QEMU run")
    ap.add_argument("--onnx2c", metavar="PATH",
                    help="an onnx2c binary (github.com/kraiskil/onnx2c, built by you): adds its "
                         "code, weight and RAM bytes for each float model")
    args = ap.parse_args(argv)
    from onnxcc.runtime import qemu
    from onnxcc.targets import get_target

    unknown = [n for n in args.models if n not in M.TINY_MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(M.TINY_MODELS)}")
    board = qemu.machine_for(get_target(args.target)).name
    summary = []
    for name in args.models:
        res = measure(name, M.build(name), target=args.target, opt=args.opt,
                      samples=args.samples, timeout=args.timeout, onnx2c=args.onnx2c)
        print(format_table(name, res, args.target, board, args.opt), flush=True)
        print()
        summary.append((name, *(res["cols"][p].get("instructions / MAC") for p in ("float", "int8"))))
    print("instructions per MAC  " + "  ".join(f"{n} {_cell(f)} / {_cell(q)}" for n, f, q in summary)
          + "  (float / int8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
