"""Arena size beside its lower bound and the naive sum, for every light zoo model.

    python benchmarks/memory.py [--target host]

Columns (bytes): naive = sum of all intermediate tensors (no reuse); arena = what onnxcc's
memory planner asks for; lower bound = the largest set of arena tensors live at once in the
chosen schedule; ratio = arena / lower bound.
"""

from __future__ import annotations

import argparse
import sys
import time

from onnxcc.frontend import import_onnx
from onnxcc.passes import run_pipeline
from onnxcc.targets import get_target
from onnxcc.zoo import ZOO


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="host")
    ap.add_argument("models", nargs="*", default=list(ZOO))
    args = ap.parse_args(argv)
    tgt = get_target(args.target)
    print(f"{'model':14s} {'naive':>14s} {'arena':>14s} {'lower bound':>14s} {'ratio':>6s} {'reduction':>9s} {'import+passes s':>15s}")
    worst = 0.0
    for name in args.models:
        t0 = time.perf_counter()
        g = run_pipeline(import_onnx(f"zoo:{name}"), tgt.pipeline, verify=False)
        dt = time.perf_counter() - t0
        p = g.meta["memory_plan"]
        ratio = p.arena_size / p.lower_bound if p.lower_bound else 1.0
        worst = max(worst, ratio)
        print(f"{name:14s} {p.naive:14,d} {p.arena_size:14,d} {p.lower_bound:14,d} {ratio:6.3f} "
              f"{p.naive / max(p.arena_size, 1):8.1f}x {dt:15.2f}")
    print(f"worst ratio {worst:.3f} (goal <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
