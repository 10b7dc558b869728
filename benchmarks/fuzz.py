"""Fuzz onnxcc: mutated models (``--kind mutate``) or random valid graphs (``--kind generate``).

    python benchmarks/fuzz.py --budget 1000 --kind mutate --seed 0 [--out fuzz_failures]

Every case runs in a worker process with a timeout (see ``tests/fuzzing.py``). Prints the counts
by outcome (ok / onnxcc error by type / mismatch / uncaught exception / crash / hang / folder)
and saves each failing case (model + feeds + what happened) under ``--out`` for reproduction:
``python benchmarks/fuzz.py --replay fuzz_failures/<case>.onnx``.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import fuzz_graphs as fg  # noqa: E402
import fuzzing  # noqa: E402


def save_case(out: Path, tag: str, data: bytes, info: dict, feeds: dict | None = None) -> Path:
    """Write a failing case: ``<tag>.onnx``, ``<tag>.json`` (outcome, detail, mutations) and
    ``<tag>.npz`` (feeds of a generated case)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{tag}.onnx").write_bytes(data)
    (out / f"{tag}.json").write_text(json.dumps(info, indent=1, default=str))
    if feeds:
        np.savez(out / f"{tag}.npz", **feeds)
    return out / f"{tag}.onnx"


def fuzz(budget: int, kind: str, seed: int, out: Path, build_every: int = 20,
         cli_every: int = 10, timeout: float = 30.0, progress: int = 0,
         targets: tuple[str, ...] = ("host", "cpu")) -> collections.Counter:
    """Run ``budget`` cases of ``kind``; returns outcome -> count, saving failures under ``out``.

    Mutate cases build and run the C library for one case in ``build_every`` that compiles
    (the rest compare the reference interpreter on the compiled graph), and check the CLI's
    folder rules for one in ``cli_every``. Generated cases are compiled and run for every
    target of ``targets`` (the C back end and the LLVM one by default).
    """
    counts: collections.Counter = collections.Counter()
    examples: dict[str, str] = {}
    r = random.Random(seed)
    seeds = fuzzing.seed_models(64, seed) if kind == "mutate" else []
    t0 = time.time()
    with fuzzing.Sandbox() as box:
        done = 0
        k = 0
        while done < budget:
            k += 1
            tag = f"{kind}_s{seed}_{k}"
            if kind == "mutate":
                data, desc = fuzzing.mutate(r.choice(seeds), r)
                args = (data, k % build_every == 0, k % cli_every == 0, k)
                outcome, detail = box.run("mutated", args, timeout * (4 if args[1] else 1))
                feeds = None
            else:
                try:
                    case = fg.generate(fg.RandomDraw(seed * 1_000_003 + k))
                except fg.Reject:
                    continue
                data, desc, feeds = case.model.SerializeToString(), case.steps, case.feeds
                outcome, detail = box.run("generated", (data, feeds, True, targets),
                                          timeout * 4 * len(targets))
            done += 1
            counts[outcome] += 1
            examples.setdefault(outcome, f"{tag}: {desc}: {detail.splitlines()[0] if detail else ''}"[:300])
            if fuzzing.is_failure(outcome) or outcome in ("ok:ort-rejects",):
                save_case(out / outcome.replace(":", "_"), tag, data,
                          {"outcome": outcome, "detail": detail, "mutations": desc}, feeds)
            if progress and done % progress == 0:
                print(f"[{time.time() - t0:7.0f} s] {done} cases: {dict(sorted(counts.items()))}",
                      flush=True)
    print(f"{kind}: {budget} cases, seed {seed}, {time.time() - t0:.0f} s")
    for key, n in sorted(counts.items(), key=lambda kv: (fuzzing.is_failure(kv[0]), kv[0])):
        flag = "  FAIL" if fuzzing.is_failure(key) else ""
        print(f"  {key:40s} {n:8d}{flag}   e.g. {examples[key][:150]}")
    return counts


def replay(path: Path) -> None:
    """Run one saved case again, in this process (tracebacks visible)."""
    data = path.read_bytes()
    feeds_path = path.with_suffix(".npz")
    if feeds_path.exists():
        feeds = dict(np.load(feeds_path))
        print(fuzzing.run_generated(data, feeds, True, ("host", "cpu")))
    else:
        print(fuzzing.run_mutated(data, build=True, check_cli=True))


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=int, default=1000, help="number of cases")
    p.add_argument("--kind", choices=["mutate", "generate"], default="mutate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("fuzz_failures"), help="folder for failing cases")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case (x4 with a C build)")
    p.add_argument("--build-every", type=int, default=20, help="mutate: build+run C every N-th case")
    p.add_argument("--progress", type=int, default=0, help="print counts every N cases")
    p.add_argument("--replay", type=Path, help="run one saved .onnx case again, in-process")
    p.add_argument("--targets", default="host,cpu",
                   help="generate: comma-separated targets to compile each graph for; "
                   "TARGET/size compiles with optimize='size' (e.g. host/size,cpu/size)")
    a = p.parse_args(argv)
    if a.replay:
        replay(a.replay)
        return 0
    counts = fuzz(a.budget, a.kind, a.seed, a.out, build_every=a.build_every, timeout=a.timeout,
                  progress=a.progress, targets=tuple(t for t in a.targets.split(",") if t))
    return 1 if any(fuzzing.is_failure(k) for k in counts) else 0


if __name__ == "__main__":
    sys.exit(main())
