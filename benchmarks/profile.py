"""Per-kernel time of a model on an LLVM target, beside onnxruntime's per-node profile.

    python benchmarks/profile.py MODEL [--target cpu] [--repeat 200] [--top 25] [--int8]

MODEL is a name from ``benchmarks/models.py`` (``transformer``, ``mobilenet_v1_025``, the zoo
models with seeded random weights...) or a path to an ``.onnx`` file. Each kernel of the compiled
Program is JIT-compiled alone (a Program of that one kernel over the same arena, inputs and
outputs) and timed by calling its entry ``repeat`` times from a ctypes loop (median of 5 such
batches, in this thread's CPU time so that other processes' time on a shared core is left
out; the arena holds what earlier kernels left, so data-dependent kernels see real-looking
values, and an in-place kernel gets its input back before each call). onnxruntime's column comes from its own profiler (``enable_profiling``, one thread),
summed per node name; a fused onnxcc kernel is matched to the node it is named after. Times in
microseconds; shares are of the summed kernel time. Compare within one run only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))


def _model(name: str):
    import onnx

    import models as M

    if name.endswith(".onnx"):
        return onnx.load(name)
    return M.build(name)


def kernel_times(cm, feeds: dict, repeat: int) -> list[tuple]:
    """(kernel name, op, node, microseconds per call, output value names, kernel comment) for
    every kernel of ``cm.program``."""
    from onnxcc.codegen.llvm.jit import JITProgram
    from onnxcc.codegen.loops import Program
    from onnxcc.runtime.build import check_feeds

    p = cm.program
    ins = [np.ascontiguousarray(a) for a in check_feeds(cm.mmap, feeds)]
    outs = [np.empty(b.shape, b.dtype.np) for b in p.outputs]
    raw = np.zeros(max(p.arena_size, 1) + p.arena_align, np.uint8)
    base = raw.ctypes.data + (-raw.ctypes.data) % p.arena_align
    ptrs = [a.ctypes.data if a.size else raw.ctypes.data for a in ins + outs]
    views = {"arena": raw[base - raw.ctypes.data:], "input": ins, "output": outs}

    def region(b) -> np.ndarray:
        """The bytes of buffer ``b`` (arena, graph input or output) as a writable view."""
        mem = views[b.space] if b.space == "arena" else views[b.space][b.index].view(np.uint8).reshape(-1)
        return mem[b.offset: b.offset + b.nbytes]

    rows = []
    for k in p.kernels:
        jp = JITProgram(Program(p.name, [k], p.inputs, p.outputs, p.arena_size, p.arena_align))
        # an in-place kernel rewrites its input: run again and again, it would see its own
        # outputs (GELU shrinks them into subnormals); restore them before each call, and
        # take the restore's own time off
        saved = [(region(b), region(b).copy()) for b in k.outputs] if k.inplace else []

        def restore() -> None:
            for dst, src in saved:
                dst[...] = src

        def call() -> None:
            restore()
            jp.entry(base, p.arena_size, *ptrs)

        call()
        n = max(1, repeat)
        batches = []
        for _ in range(5):
            t = time.thread_time()
            for _ in range(n):
                call()
            t1 = time.thread_time()
            for _ in range(n if saved else 0):
                restore()
            batches.append(((t1 - t) - (time.thread_time() - t1)) / n)
        rows.append((k.name, k.op, k.node, statistics.median(batches) * 1e6,
                      [b.value for b in k.outputs], k.comment or ""))
    return rows


def ort_times(model, feeds: dict, repeat: int) -> dict[str, float]:
    """onnxruntime's microseconds per run by node name (its profiler, one thread): the median
    of the node's runs (times the node's runs per model run)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(d) / "ort")
        s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        for _ in range(repeat):
            s.run(None, feeds)
        events = json.loads(Path(s.end_profiling()).read_text())
    per: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per.setdefault(e["name"][: -len("_kernel_time")], []).append(float(e["dur"]))
    # the median run of each node (a shared machine preempts some runs for milliseconds)
    return {node: statistics.median(d) * len(d) / repeat for node, d in per.items()}


def ort_node_time(ort_us: dict[str, float], node: str, values: list[str]) -> float | None:
    """onnxruntime's microseconds for the node an onnxcc kernel is named after: by node name,
    else by the names onnxruntime gives its fused and NCHWc nodes (the name of the value they
    write, lower-cased, ``_nchwc`` appended); None when none matches."""
    if node in ort_us:
        return ort_us[node]
    for v in values:
        for cand in (v, v.lower(), f"{v.lower()}_nchwc"):
            if cand in ort_us:
                return ort_us[cand]
    return None


def main(argv: list[str] | None = None) -> int:
    """Profile one model; prints the table; returns 0."""
    import onnxcc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--target", default="cpu", help="an LLVM target (default cpu)")
    ap.add_argument("--repeat", type=int, default=200, help="calls per timing batch")
    ap.add_argument("--top", type=int, default=25, help="rows to print (slowest first)")
    ap.add_argument("--int8", action="store_true",
                    help="quantize to int8 first (calibrated on 4 seeded random inputs); the "
                    "onnxruntime column stays the float model's")
    ap.add_argument("--detail", action="store_true",
                    help="print each kernel's description (shapes, nest) under its row")
    a = ap.parse_args(argv)
    model = _model(a.model)
    quantize = None
    if a.int8:
        import models

        quantize = onnxcc.Int8(calibration=[models.random_feeds(model, seed=s)
                                            for s in range(4)])
    cm = onnxcc.compile(model, target=a.target, quantize=quantize)
    if cm.target.backend != "llvm":
        ap.error(f"{a.target} is not an LLVM target")
    rng = np.random.default_rng(0)
    feeds = {t["name"]: rng.standard_normal(t["shape"]).astype(t["dtype"])
             for t in cm.mmap["inputs"]}
    rows = kernel_times(cm, feeds, a.repeat)
    try:
        ort_us = ort_times(model, feeds, max(10, a.repeat // 10))
    except Exception as e:   # noqa: BLE001 - the onnxcc column is still useful
        print(f"onnxruntime profile: n/a ({str(e).splitlines()[0][:100]})")
        ort_us = {}
    total = sum(r[3] for r in rows)
    print(f"{a.model} on {a.target}: {len(rows)} kernels, {total:.0f} us summed; "
          f"onnxruntime {sum(ort_us.values()):.0f} us summed over {len(ort_us)} nodes")
    print(f"{'kernel':8s} {'op':24s} {'node':28s} {'us':>9s} {'share':>6s} {'ort us':>9s}")
    for name, op, node, us, values, comment in sorted(rows, key=lambda r: -r[3])[: a.top]:
        o = ort_node_time(ort_us, node, values)
        print(f"{name:8s} {op[:24]:24s} {node[:28]:28s} {us:9.1f} {us / total:6.1%} "
              f"{'' if o is None else f'{o:9.1f}'}")
        if a.detail and comment:
            print(f"         {comment[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
