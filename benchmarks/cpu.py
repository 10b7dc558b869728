"""CPU inference speed: onnxcc ``cpu`` (LLVM JIT), onnxcc ``host`` (C) and onnxruntime, side by
side, with GFLOP/s and the share of this core's FMA peak that the same script measures.

    python benchmarks/cpu.py [--models a,b] [--repeat 10] [--quick] [--zoo] [--runners cpu]
                             [--clock thread]

One process, one thread, batch 1. Each runner is built once and run once (warm-up, and the
outputs are checked against onnxruntime); then ``repeat`` interleaved rounds time one run of every
runner in turn (``for r in rounds: for runner in runners: time one run``), and the table shows
medians in milliseconds. ratio = onnxcc time / onnxruntime time (lower is better).
GFLOP/s counts 2 x the MACs of Conv/Gemm/MatMul from the model's shapes (onnxcc's report);
"%peak" is that rate over the single-core FMA peak measured at start-up with a loop of
independent ``<N x float>`` fmuladd accumulators JIT-compiled through llvmlite for this CPU.
"compile s" is compile() plus the first run (for ``host`` that includes the C build, for ``cpu``
the JIT).

Runners: ``cpu`` is ``onnxcc.compile(model, "cpu").run`` (the LLVM back end, JIT);
``host`` is ``onnxcc.compile(model, "host").run`` (C, cc -O2); ``ort`` is onnxruntime
with intra/inter-op threads 1 and ORT_ENABLE_ALL.

Models (``benchmarks/models.py``): ``mlp``, ``mobilenet_v1_025`` (96x96), ``mobilenet_v2_blocks``,
``transformer`` (seq 64, d_model 128, 4 heads), and the nine light zoo models with seeded random
weights in place of their ConstantOfShape fills (included by default; ``--quick`` runs a small set
with 3 rounds and leaves the zoo out unless ``--zoo``). The geometric mean of the cpu/ORT (and
host/ORT) ratio is printed over resnet50, squeezenet, shufflenet, mobilenet_v1_025 and transformer
(over those of them that ran).

The machines here are shared and noisy: compare ratios within one run, never absolute times
across runs.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent


def _load_models():
    spec = importlib.util.spec_from_file_location("onnxcc_bench_models", _HERE / "models.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


M = _load_models()

OWN = ["mlp", "mobilenet_v1_025", "mobilenet_v2_blocks", "transformer"]
QUICK = ["mlp", "mobilenet_v1_025", "mobilenet_v2_blocks", "transformer", "squeezenet"]
GEOMEAN_SET = ["resnet50", "squeezenet", "shufflenet", "mobilenet_v1_025", "transformer"]
RTOL, ATOL = 1e-3, 1e-3   # the agreement check with onnxruntime after the warm-up run


# ---- the FMA peak ------------------------------------------------------------------------------
def _peak_ir(lanes: int, accs: int) -> str:
    """LLVM IR of ``peak(i64 n, ptr io)``: ``accs`` independent ``<lanes x float>`` accumulators,
    each updated ``a = fmuladd(a, m, c)`` n times; their sum is stored back to ``io``."""
    vt = f"<{lanes} x float>"
    intr = f"@llvm.fmuladd.v{lanes}f32"
    ln = [f"declare {vt} {intr}({vt}, {vt}, {vt})",
          "define void @peak(i64 %n, ptr %io) #0 {",
          "entry:",
          f"  %m = load {vt}, ptr %io, align 4",
          f"  %p1 = getelementptr {vt}, ptr %io, i64 1",
          f"  %c = load {vt}, ptr %p1, align 4",
          f"  %p2 = getelementptr {vt}, ptr %io, i64 2",
          f"  %init = load {vt}, ptr %p2, align 4",
          "  br label %loop",
          "loop:",
          "  %i = phi i64 [ 0, %entry ], [ %i1, %loop ]"]
    for a in range(accs):
        ln.append(f"  %a{a} = phi {vt} [ %init, %entry ], [ %b{a}, %loop ]")
    for a in range(accs):
        ln.append(f"  %b{a} = call {vt} {intr}({vt} %a{a}, {vt} %m, {vt} %c)")
    ln += ["  %i1 = add i64 %i, 1",
           "  %done = icmp sge i64 %i1, %n",
           "  br i1 %done, label %exit, label %loop",
           "exit:"]
    prev = "%b0"
    for a in range(1, accs):
        ln.append(f"  %s{a} = fadd {vt} {prev}, %b{a}")
        prev = f"%s{a}"
    ln += [f"  store {vt} {prev}, ptr %io, align 4", "  ret void", "}",
           f'attributes #0 = {{ "min-legal-vector-width"="{32 * lanes}" }}']
    return "\n".join(ln) + "\n"


def _time_peak(fn: Callable[[int, int], None], lanes: int, n: int) -> float:
    """Seconds of one call of the peak loop ``fn`` for ``n`` iterations."""
    io = np.empty(3 * lanes, np.float32)
    io[:lanes], io[lanes:2 * lanes], io[2 * lanes:] = 0.999, 1e-3, 0.5
    t0 = time.perf_counter()
    fn(n, io.ctypes.data)
    dt = time.perf_counter() - t0
    if not np.all(np.isfinite(io[:lanes])):
        raise RuntimeError("peak loop produced non-finite values")
    return dt


def fma_peak(accs: tuple[int, ...] = (12, 16), seconds: float = 0.01,
             trials: int = 15) -> dict[str, Any]:
    """Single-core float32 FMA peak in GFLOP/s, measured with llvmlite.

    For each vector width the host has (8 lanes with AVX, 16 with AVX-512F, 4 otherwise) and each
    count in ``accs``, a loop of that many independent fmuladd accumulators is JIT-compiled for
    the host CPU name and features, sized to run about ``seconds``, and timed ``trials`` times;
    the rate is 2 * lanes * accumulators * n / best time (short runs, best of many: a shared
    machine preempts long ones). Returns {"gflops": the best rate, "by_lanes": {lanes: best
    gflops}, "cpu": name}. Raises whatever llvmlite raises when it cannot JIT.
    """
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    cpu = llvm.get_host_cpu_name()
    feats = llvm.get_host_cpu_features()
    have = {k for k, v in feats.items() if v}
    widths = [16, 8] if "avx512f" in have else [8] if "avx" in have else [4]
    target = llvm.Target.from_triple(llvm.get_process_triple())
    by_lanes: dict[int, float] = {}
    keep = []
    for lanes in widths:
        for na in accs:
            mod = llvm.parse_assembly(_peak_ir(lanes, na))
            mod.verify()
            # an engine owns its target machine: one each
            tm = target.create_target_machine(cpu=cpu, features=feats.flatten(), opt=3)
            engine = llvm.create_mcjit_compiler(mod, tm)
            engine.finalize_object()
            keep.append(engine)
            fn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p)(
                engine.get_function_address("peak"))
            n = 1000
            while (dt := _time_peak(fn, lanes, n)) < seconds / 4:   # size the loop to ~seconds
                n *= 4
            n = max(n, int(n * seconds / dt))
            best = min(_time_peak(fn, lanes, n) for _ in range(trials))
            rate = 2.0 * lanes * na * n / best / 1e9
            by_lanes[lanes] = max(by_lanes.get(lanes, 0.0), rate)
    return {"gflops": max(by_lanes.values()), "by_lanes": by_lanes, "cpu": cpu}


# ---- FLOPs ---------------------------------------------------------------------------------------
def model_flops(model) -> int:
    """2 x the MACs of Conv/ConvTranspose/Gemm/MatMul (onnxcc.report.macs) over the imported,
    unoptimized graph of ``model``."""
    from onnxcc.frontend import import_onnx
    from onnxcc.report import macs

    g = import_onnx(model)
    return 2 * sum(macs(n) for n in g.nodes)


# ---- runners -------------------------------------------------------------------------------------
class NotAvailable(Exception):
    """A runner cannot run this model; the message says why."""


def _short(e: BaseException, limit: int = 70) -> str:
    problems = getattr(e, "problems", None)
    if problems:                               # UnsupportedOpError: name the ops
        ops = sorted({op for _, op, _ in problems})
        text = f"no loop-IR lowering or support for {len(problems)} node(s): {', '.join(ops)}"
        return text if len(text) <= 2 * limit else text[:2 * limit - 3] + "..."
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _first_output(out: Any) -> list[np.ndarray]:
    if isinstance(out, dict):
        return [np.asarray(v) for v in out.values()]
    return [np.asarray(v) for v in out]


def setup_ort(model, feeds) -> tuple[Callable[[], Any], float | None]:
    """onnxruntime: one thread, all graph optimizations."""
    sess = M.ort_session(model)
    return (lambda: sess.run(None, feeds)), None


def setup_host(model, feeds) -> tuple[Callable[[], Any], float | None]:
    """onnxcc ``host``: the C library built for this machine, run through ctypes."""
    import onnxcc

    t0 = time.perf_counter()
    cm = onnxcc.compile(model, "host")
    cm.run(feeds)                                   # builds the shared library
    return (lambda: cm.run(feeds)), time.perf_counter() - t0


def setup_cpu(model, feeds) -> tuple[Callable[[], Any], float | None]:
    """onnxcc ``cpu``: the LLVM back end for this machine, run through its JIT."""
    import onnxcc

    t0 = time.perf_counter()
    cm = onnxcc.compile(model, "cpu")
    cm.run(feeds)
    return (lambda: cm.run(feeds)), time.perf_counter() - t0


RUNNERS: dict[str, Callable] = {"cpu": setup_cpu, "host": setup_host, "ort": setup_ort}


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "thread": time.thread_time}


def bench_model(name: str, repeat: int, verbose: bool = False,
                runners: tuple[str, ...] = ("ort", "host", "cpu"),
                clock: str = "wall") -> dict[str, Any]:
    """Build ``name``, set up the ``runners`` (onnxruntime always), check outputs against
    onnxruntime, time ``repeat`` interleaved rounds with ``clock`` (``wall``: perf_counter;
    ``thread``: this thread's CPU time, which leaves out the time other processes hold the core:
    every runner computes on the calling thread). Returns {"flops", "ms": {runner: median or None}, "compile": {...},
    "na": {runner: reason}, "mismatch": {runner: max abs error}}."""
    model = M.build(name)
    feeds = M.random_feeds(model)
    res: dict[str, Any] = {"ms": {}, "compile": {}, "na": {}, "mismatch": {}}
    try:
        res["flops"] = model_flops(model)
    except Exception as e:        # noqa: BLE001 - FLOPs are a column, not a reason to stop
        res["flops"] = None
        res["na"]["flops"] = _short(e)
    fns: dict[str, Callable[[], Any]] = {}
    ref = None
    for r in ("ort", "host", "cpu"):
        if r != "ort" and r not in runners:
            continue
        try:
            fn, comp = RUNNERS[r](model, feeds)
            out = _first_output(fn())
        except NotAvailable as e:
            res["na"][r] = str(e)
            continue
        except Exception as e:    # noqa: BLE001 - one runner failing must not stop the table
            if verbose:
                traceback.print_exc()
            res["na"][r] = _short(e)
            continue
        if r == "ort":
            ref = out
        elif ref is not None:
            errs = [float(np.max(np.abs(a.astype(np.float64) - b)))
                    for a, b in zip(out, ref) if a.shape == b.shape]
            bad = [not np.allclose(a, b, rtol=RTOL, atol=ATOL)
                   for a, b in zip(out, ref) if a.shape == b.shape]
            if len(errs) != len(ref) or any(bad):
                res["mismatch"][r] = max(errs) if errs else float("nan")
        fns[r] = fn
        res["compile"][r] = comp
    times: dict[str, list[float]] = {r: [] for r in fns}
    now = CLOCKS[clock]
    for _ in range(repeat):
        for r, fn in fns.items():
            t0 = now()
            fn()
            times[r].append(now() - t0)
    res["ms"] = {r: statistics.median(t) * 1e3 for r, t in times.items()}
    del fns, model
    gc.collect()
    return res


# ---- the table -----------------------------------------------------------------------------------
def _f(x: float | None, fmt: str, width: int) -> str:
    return f"{'n/a':>{width}s}" if x is None else f"{x:{width}{fmt}}"


HEADER = (f"{'model':20s} {'MFLOP':>8s} | {'cpu ms':>8s} {'host ms':>8s} {'ort ms':>8s} | "
          f"{'cpu/ort':>7s} {'host/ort':>8s} | {'GF/s cpu':>8s} {'host':>6s} {'ort':>6s} | "
          f"{'%pk cpu':>7s} {'host':>5s} {'ort':>5s} | {'comp s cpu':>10s} {'host':>6s}")


def format_row(name: str, res: dict[str, Any], peak: float | None) -> str:
    """One table row for ``name`` from :func:`bench_model`'s result."""
    ms, flops = res["ms"], res["flops"]
    ort = ms.get("ort")

    def ratio(r: str) -> float | None:
        return ms[r] / ort if r in ms and ort else None

    def gf(r: str) -> float | None:
        return flops / (ms[r] * 1e6) if r in ms and flops else None

    def pk(r: str) -> float | None:
        g = gf(r)
        return 100.0 * g / peak if g is not None and peak else None

    return (f"{name:20s} {_f(flops / 1e6 if flops else None, '.1f', 8)} | "
            f"{_f(ms.get('cpu'), '.2f', 8)} {_f(ms.get('host'), '.2f', 8)} "
            f"{_f(ort, '.2f', 8)} | {_f(ratio('cpu'), '.2f', 7)} {_f(ratio('host'), '.2f', 8)} | "
            f"{_f(gf('cpu'), '.1f', 8)} {_f(gf('host'), '.1f', 6)} {_f(gf('ort'), '.1f', 6)} | "
            f"{_f(pk('cpu'), '.1f', 7)} {_f(pk('host'), '.1f', 5)} {_f(pk('ort'), '.1f', 5)} | "
            f"{_f(res['compile'].get('cpu'), '.2f', 10)} "
            f"{_f(res['compile'].get('host'), '.2f', 6)}")


def geomean(xs: list[float]) -> float:
    """The geometric mean of positive numbers."""
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure the peak, benchmark the models, print the table; returns 0."""
    from onnxcc.zoo import ZOO

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated names (default: all, or the quick set)")
    ap.add_argument("--repeat", type=int, default=None, help="timed rounds (default 10; quick 3)")
    ap.add_argument("--quick", action="store_true", help="small set, 3 rounds")
    ap.add_argument("--zoo", action="store_true", help="include the nine zoo models (default "
                    "unless --quick)")
    ap.add_argument("--verbose", action="store_true", help="print tracebacks of failing runners")
    ap.add_argument("--runners", default="cpu,host", help="onnxcc runners beside onnxruntime "
                    "(default cpu,host)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall time (default) or this thread's CPU time (steadier on a shared "
                    "machine: time other processes hold the core is left out)")
    args = ap.parse_args(argv)
    runners = tuple(r.strip() for r in args.runners.split(",") if r.strip())
    if set(runners) - {"cpu", "host"}:
        ap.error(f"--runners takes cpu and/or host, not {args.runners}")
    repeat = args.repeat or (3 if args.quick else 10)
    if args.models:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        unknown = [n for n in names if n not in M.BENCH_MODELS and n not in ZOO]
        if unknown:
            ap.error(f"unknown model(s) {', '.join(unknown)}; known: "
                     f"{', '.join([*M.BENCH_MODELS, *ZOO])}")
    elif args.quick:
        names = QUICK + ([z for z in ZOO if z not in QUICK] if args.zoo else [])
    else:
        names = OWN + list(ZOO)

    try:
        pk = fma_peak()
        peak = pk["gflops"]
        widths = ", ".join(f"{n} lanes {g:.1f}" for n, g in sorted(pk["by_lanes"].items()))
        print(f"FMA peak ({pk['cpu']}, 1 core, llvmlite loop): {peak:.1f} GFLOP/s ({widths})")
    except Exception as e:       # noqa: BLE001 - the table is still useful without the peak
        peak = None
        print(f"FMA peak: n/a ({_short(e)})")
    print(f"one thread, batch 1, median of {repeat} interleaved rounds ({args.clock} clock); "
          f"compare ratios within this run only")
    print(HEADER)
    print("-" * len(HEADER))
    results: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for name in names:
        try:
            res = bench_model(name, repeat, args.verbose, runners, args.clock)
        except Exception as e:   # noqa: BLE001 - building the model failed
            print(f"{name:20s} failed: {_short(e, 100)}", flush=True)
            continue
        results[name] = res
        print(format_row(name, res, peak), flush=True)
        for r, why in res["na"].items():
            notes.append(f"{name} {r}: n/a ({why})")
        for r, err in res["mismatch"].items():
            notes.append(f"{name} {r}: outputs differ from onnxruntime (max abs err {err:.3g})")
    print()
    for r in ("cpu", "host"):
        rs = [results[n]["ms"][r] / results[n]["ms"]["ort"] for n in GEOMEAN_SET
              if n in results and r in results[n]["ms"] and "ort" in results[n]["ms"]]
        got = [n for n in GEOMEAN_SET if n in results and r in results[n]["ms"]]
        text = f"{geomean(rs):.2f} over {', '.join(got)}" if rs else "n/a"
        if rs and len(rs) < len(GEOMEAN_SET):
            text += f" ({len(rs)} of {len(GEOMEAN_SET)})"
        print(f"geomean {r}/ort: {text}")
    if notes:
        print()
        for line in dict.fromkeys(notes):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
