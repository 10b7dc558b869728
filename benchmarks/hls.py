"""FPGA back end beside hls4ml: C-simulation build time, agreement with the float model, and
onnxcc's latency/resource estimates, for the digits CNN (its test split) and the jet-tagging MLP
16-64-32-32-5 (seeded random inputs), both at ap_fixed<16,6> on the xczu7ev.

    python benchmarks/hls.py [--target xczu7ev] [--samples 450]

hls4ml is run through its ONNX front end (``hls4ml.converters.convert_from_onnx_model`` after
qonnx's cleanup, channels-last conversion and Gemm -> MatMul, with the attributes its parsers
require filled in with their ONNX defaults) when both ``hls4ml`` and ``qonnx`` import
(``pip install qonnx``; not a test dependency); otherwise its rows say why. It runs twice: with
``granularity="model"`` (fixed<16,6> everywhere, as onnxcc) and ``granularity="name"`` (a type
per layer from its 'auto' precision inference). hls4ml gives no estimates without Vivado/Vitis, so its resource columns stay
empty. Timings are of one run on a shared machine: compare them within the run.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _models_module():
    spec = importlib.util.spec_from_file_location("onnxcc_bench_models_hlsb", HERE / "models.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def workloads(samples: int) -> list[tuple[str, onnx.ModelProto, str, np.ndarray]]:
    """(name, model, input name, inputs (n, 1, ...)) for each benchmark model."""
    d = np.load(ROOT / "compiler" / "models" / "digits_test.npz")
    digits = onnx.load(str(ROOT / "compiler" / "models" / "digits.onnx"))
    digits.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    x = d["x"][:samples].astype(np.float32)
    jet = _models_module().jet_mlp()
    xj = np.random.default_rng(0).normal(0, 1, (min(samples, 500), 1, 16)).astype(np.float32)
    return [("digits CNN", digits, "input", x[:, None]), ("jet MLP 16-64-32-32-5", jet, "input", xj)]


def float_argmax(model: onnx.ModelProto, name: str, xs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.array([sess.run(None, {name: x})[0].argmax() for x in xs])


def run_onnxcc(model: onnx.ModelProto, name: str, xs: np.ndarray, target: str) -> dict:
    import onnxcc
    from onnxcc.codegen.hls.reference import reference

    t0 = time.perf_counter()
    m = onnxcc.compile(model, target)
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    m.run({name: xs[0]})
    t_build = time.perf_counter() - t0
    out = m.graph.outputs[0].name
    preds, exact = [], 0
    for k, x in enumerate(xs):
        y = m.run({name: x})[out]
        preds.append(y.argmax())
        if k < 20:
            exact += int(np.array_equal(y.astype(np.float64), reference(m.graph, m.precision,
                                                                        {name: x})[out]))
    est = m.mmap["estimates"]["total"]
    return {"compile_s": t_compile, "build_s": t_build, "preds": np.array(preds),
            "exact": f"{exact}/{min(len(xs), 20)}", "latency": est["latency"],
            "latency_us": est["latency"] * m.mmap["clock_ns"] / 1000, "dsp": est["dsp"],
            "lut": est["lut"], "ff": est["ff"], "bram18": est["bram18"]}


def run_hls4ml(model: onnx.ModelProto, xs: np.ndarray, granularity: str) -> dict | str:
    """hls4ml's C-simulation of ``model`` (or why it could not run) with its configuration at
    ``granularity``: ``model`` (fixed<16,6> everywhere) or ``name`` (a type per layer, which
    hls4ml's ONNX front end sets to its 'auto' precision inference)."""
    try:
        import hls4ml
        from onnx import helper
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
        from qonnx.transformation.gemm_to_matmul import GemmToMatMul
        from qonnx.util.cleanup import cleanup_model
    except ImportError as e:
        return f"not run: {e.name} is not installed (pip install hls4ml qonnx)"
    m = onnx.ModelProto()
    m.CopyFrom(model)
    defaults = {"Conv": {"group": 1, "dilations": [1, 1], "strides": [1, 1]},
                "MaxPool": {"pads": [0, 0, 0, 0], "dilations": [1, 1], "strides": [1, 1]}}
    for n in m.graph.node:
        have = {a.name for a in n.attribute}
        for k, v in defaults.get(n.op_type, {}).items():
            if k not in have:
                n.attribute.append(helper.make_attribute(k, v))
    try:
        t0 = time.perf_counter()
        mw = cleanup_model(ModelWrapper(m))
        mw = cleanup_model(mw.transform(ConvertToChannelsLastAndClean()).transform(GemmToMatMul()))
        cfg = hls4ml.utils.config.config_from_onnx_model(mw, granularity=granularity, backend="Vitis",
                                                         default_precision="fixed<16,6>")
        with tempfile.TemporaryDirectory() as tmp:
            hm = hls4ml.converters.convert_from_onnx_model(mw, output_dir=tmp, io_type="io_parallel",
                                                           backend="Vitis", hls_config=cfg)
            hm.compile()
            t_build = time.perf_counter() - t0
            x = xs[:, 0]
            if x.ndim == 4:
                x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))   # channels last
            y = np.asarray(hm.predict(np.ascontiguousarray(x))).reshape(len(xs), -1)
    except Exception as e:   # noqa: BLE001 - report whatever stopped it
        return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
    return {"build_s": t_build, "preds": y.argmax(1), "constant": bool(np.ptp(y, axis=0).max() == 0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="xczu7ev")
    p.add_argument("--samples", type=int, default=450)
    args = p.parse_args(argv)
    rows = []
    for label, model, name, xs in workloads(args.samples):
        ref = float_argmax(model, name, xs)
        o = run_onnxcc(model, name, xs, args.target)
        rows.append((label, "onnxcc", f"{o['compile_s']:.1f} + {o['build_s']:.1f}",
                     f"{(o['preds'] == ref).mean():.2%}", o["exact"],
                     f"{o['latency']:,} ({o['latency_us']:.2f} us)", f"{o['dsp']:,}",
                     f"{o['lut']:,}", f"{o['ff']:,}"))
        for gran in ("model", "name"):
            h = run_hls4ml(model, xs, gran)
            tool = f"hls4ml ({gran})"
            if isinstance(h, str):
                rows.append((label, tool, h, "", "", "", "", "", ""))
                break
            note = " (outputs constant)" if h["constant"] else ""
            rows.append((label, tool, f"{h['build_s']:.1f}",
                         f"{(h['preds'] == ref).mean():.2%}{note}", "-", "needs Vitis", "-", "-",
                         "-"))
    head = ("model", "tool", "compile + C-sim build s", "argmax = float", "C-sim = reference",
            "est. latency cycles", "est. DSP", "est. LUT", "est. FF")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print(f"ap_fixed<16,6>, io_parallel, reuse factor 1, target {args.target}, {len(xs)} samples")
    for r in [head, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
