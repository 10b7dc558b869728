"""Inference time of onnxcc's generated C (host, gcc -O2, one thread) beside onnxruntime (CPU, one
thread), on the light zoo models and the bundled digits CNN, measured in one run.

    python benchmarks/speed.py [MODEL ...] [--repeat 5]

Median wall time of ``repeat`` runs after one warm-up, in milliseconds; ratio = onnxcc / onnxruntime
(lower is better). The machines here are shared and noisy: compare ratios from one run, never
absolute times across runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import onnx

import onnxcc
from onnxcc.zoo import ZOO, zoo_input, zoo_path

DIGITS = Path(onnxcc.__file__).parent / "models" / "digits.onnx"


def _median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["digits", *ZOO])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"{'model':14s} {'onnxcc ms':>10s} {'onnxruntime ms':>15s} {'ratio':>6s}")
    for name in args.models:
        path = DIGITS if name == "digits" else zoo_path(name)
        cm = onnxcc.compile(path, "host", input_shapes={"input": (1, 1, 8, 8)} if name == "digits" else None)
        x = zoo_input(cm.graph.inputs[0].shape)
        feeds = {cm.graph.inputs[0].name: x}
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        proto = onnx.load(path)
        proto.ir_version = min(proto.ir_version, 10)
        sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        t_c = _median_ms(lambda: cm.run(feeds), args.repeat)
        t_o = _median_ms(lambda: sess.run(None, feeds), args.repeat)
        print(f"{name:14s} {t_c:10.2f} {t_o:15.2f} {t_c / t_o:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
