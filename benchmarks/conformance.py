"""ONNX node-suite conformance: per-op pass counts of onnxcc ``host`` and ``cpu`` beside
onnxruntime's, on the same cases, in one process.

    python benchmarks/conformance.py [--targets host,cpu,onnxruntime] [--ops Attention,Conv]
                                     [--issue-count] [--failures]

The cases are the conformance run's (tests/conformance/cases.py: every node case in scope, then
the onnx wheel's pytorch-converted, pytorch-operator and simple cases). onnxcc runs each through
the public API as the test does (``onnxcc.compile`` + ``run``, shape-deciding inputs bound with
``constant_inputs``). onnxruntime runs the model as written, except that an IR version newer than
it reads (onnx writes 14, onnxruntime 1.31 reads up to 13) is lowered to 13, and it gets every
input. A case passes when every output matches the expected one within the case's rtol/atol.
Rows: a node case counts under its op (the first node that is not a Constant); the ``_expanded``
cases (an op's function body in primitive ops) under ``(function bodies)``; on-disk cases under
their kind. ``--issue-count`` keeps the 1,158 cases issue 8 counts (no ``_expanded``, no float16,
no on-disk case).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conformance.cases import (FileCase, as_array, compare, in_issue_count,  # noqa: E402
                                     node_cases, run_case)

ORT_MAX_IR = 13


def row_of(case) -> str:
    """The table row a case counts under."""
    if isinstance(case, FileCase):
        return f"({case.kind})"
    if "_expanded" in case.name:
        return "(function bodies)"
    return next((n.op_type for n in case.model.graph.node if n.op_type != "Constant"),
                "Constant")


def run_ort(case) -> None:
    """Run ``case`` with onnxruntime on the CPU and compare like the onnxcc run (raises on a
    refusal or a mismatch)."""
    import onnxruntime as ort

    model = case.model
    if model.ir_version > ORT_MAX_IR:
        model = type(model)()
        model.CopyFrom(case.model)
        model.ir_version = ORT_MAX_IR
    so = ort.SessionOptions()
    so.log_severity_level = 4
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    outs = [o.name for o in model.graph.output]
    for inputs, outputs in case.data_sets:
        feeds = {k: as_array(v) for k, v in zip(names, inputs)}
        got = sess.run(outs, feeds)
        for name, g, want in zip(outs, got, outputs):
            compare(g, as_array(want), case.rtol, case.atol, name)


def passes(fn, case, *args) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(case, *args)
        return True
    except Exception:  # noqa: BLE001  (any refusal or mismatch is a failure)
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="host,cpu,onnxruntime",
                    help="comma-separated: host, cpu (onnxcc targets), onnxruntime")
    ap.add_argument("--ops", default="", help="only the rows of these ops (comma-separated)")
    ap.add_argument("--issue-count", action="store_true",
                    help="only the 1,158 cases issue 8 counts")
    ap.add_argument("--failures", action="store_true", help="list each failing case")
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    cases = node_cases()
    if args.issue_count:
        cases = [c for c in cases if in_issue_count(c)]
    if args.ops:
        want = set(args.ops.split(","))
        cases = [c for c in cases if row_of(c) in want]
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    seconds: collections.Counter = collections.Counter()
    failed: dict[str, list[str]] = collections.defaultdict(list)
    for c in cases:
        row = counts[row_of(c)]
        row["cases"] += 1
        for t in targets:
            t0 = time.perf_counter()
            ok = passes(run_ort, c) if t == "onnxruntime" else passes(run_case, c, t)
            seconds[t] += time.perf_counter() - t0
            row[t] += ok
            if not ok:
                failed[t].append(c.name)
    width = max([len(r) for r in counts] + [10])
    print(f"{'op':{width}s} {'cases':>6s} " + " ".join(f"{t:>11s}" for t in targets))
    for op in sorted(counts):
        r = counts[op]
        print(f"{op:{width}s} {r['cases']:6d} " + " ".join(f"{r[t]:11d}" for t in targets))
    total = sum(r["cases"] for r in counts.values())
    print(f"{'total':{width}s} {total:6d} " + " ".join(
        f"{sum(r[t] for r in counts.values()):11d}" for t in targets))
    for t in targets:
        n = sum(r[t] for r in counts.values())
        print(f"{t}: {n} of {total} pass ({100 * n / max(total, 1):.1f}%), "
              f"{seconds[t] / max(total, 1):.3f} s per case")
    if args.failures:
        for t in targets:
            print(f"\nfailing on {t}: " + " ".join(sorted(failed[t])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
