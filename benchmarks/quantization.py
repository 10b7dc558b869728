"""int8 against float on the shipped digits CNN: accuracy, weight and arena bytes, per-layer SQNR.

    python benchmarks/quantization.py [--samples 200] [--target host]

Rows (every one compiled by onnxcc for ``--target`` and run over the 450-image test split):
- ``float``: the float model;
- ``onnxcc int8 <method>``: onnxcc's post-training quantization (``quantize=onnxcc.Int8``),
  minmax, percentile (99.99) and entropy, calibrated on the first ``--samples`` test images;
- ``onnxcc int16x8 minmax``: the same with int16 activations and int8 weights
  (``onnxcc.Int8(..., activations="int16")``, TFLite's 16x8 mode; the Softmax stays float);
- ``ORT QDQ per-channel``: the model quantized by ``onnxruntime.quantization.quantize_static``
  after its ``quant_pre_process`` (QDQ format, int8 weights per channel, int8 activations, the
  same calibration images), which
  onnxcc imports through ``fuse_qdq``; "vs ORT" is the share of output elements within 1 LSB
  of onnxruntime running the same quantized model, and of equal argmax;
- ``ORT QOperator``: the same in the QOperator format (QLinearConv, com.microsoft QGemm and
  QLinearSoftmax), when onnxcc imports it; else the row says why not;
- ``ORT QDQ int16x8``: ``quantize_static`` with ``activation_type=QInt16`` (QDQ, opset 21, int8
  weights per channel), which onnxcc imports as int16 integer kernels; its reference is the QDQ
  graph as written, whose float32 Conv/Gemm of int16 values rounds differently from the exact
  integer sums near a rounding boundary of the int16 output.

The onnxruntime reference ("ref"): for QDQ, onnxruntime with graph optimizations disabled, which
runs the graph as written (DequantizeLinear, the float op, QuantizeLinear: the ONNX semantics of
a QDQ model); for QOperator, onnxruntime on the same model with its int8 weights written as
uint8 (w + 128, zero point + 128: the same integer products). "default" is onnxruntime's
default session: on an x86-64 CPU without AVX-VNNI its fused u8 x s8 kernels (MLAS, VPMADDUBSW)
add pairs of u8 * s8 products in saturating int16, so where two neighbouring products exceed
32767 (activations near 255 times weights near 127) its result is not the quantized model's;
its u8 x u8 kernels do not saturate. onnxruntime's quantization docs name the issue and advise
``reduce_range`` (7-bit weights) on such CPUs. With AVX-VNNI, AVX512-VNNI or on ARM64 "default"
and "ref" agree but for onnxruntime's fused QLinearSoftmax, which rounds the probabilities of a
QDQ Softmax differently from its float Softmax by up to 1 LSB.

Then the per-layer tables (scale, zero point, SQNR in dB of the quantized tensor against the
float model's) of onnxcc's minmax int8 and int16x8 quantizations.
Calibrating on test images flatters every row equally; the point is the comparison.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "compiler" / "models"


def _predict(cm, x: np.ndarray) -> np.ndarray:
    out = cm.graph.outputs[0].name
    return np.concatenate([cm.run({"input": x[i:i + 1]})[out] for i in range(len(x))])


def _ort(path: Path, x: np.ndarray, optimize: bool = True) -> np.ndarray:
    """onnxruntime on the CPU over the images one at a time; ``optimize`` False disables every
    graph optimization (no QDQ fusion: the graph as written)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


def _u8_weights(src: Path, dst: Path) -> None:
    """``src`` with the int8 weights of its QLinearConv/QGemm/QLinearMatMul nodes written as
    uint8 with zero point + 128: the same integer products, which onnxruntime computes with its
    exact u8 x u8 kernels instead of the u8 x s8 ones that saturate on x86 without VNNI."""
    m = onnx.load(str(src))
    inits = {t.name: t for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type not in ("QLinearConv", "QGemm", "QLinearMatMul"):
            continue
        w, z = inits.get(n.input[3]), inits.get(n.input[5])
        if w is None or z is None or w.data_type != onnx.TensorProto.INT8:
            continue
        for t in (w, z):
            a = numpy_helper.to_array(t).astype(np.int16) + 128
            t.CopyFrom(numpy_helper.from_array(a.astype(np.uint8), t.name))
    onnx.save(m, str(dst))


def _ort_quantized(src: Path, dst: Path, x: np.ndarray, qoperator: bool,
                   int16: bool = False) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre))    # BatchNormalization folded, as ORT's docs advise

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(pre), str(dst), Reader(),
                    quant_format=QuantFormat.QOperator if qoperator else QuantFormat.QDQ,
                    per_channel=not qoperator,
                    activation_type=QuantType.QUInt8 if qoperator else
                    QuantType.QInt16 if int16 else QuantType.QInt8,
                    weight_type=QuantType.QInt8)


def main(argv: list[str] | None = None) -> int:
    import onnxcc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200, help="calibration images")
    ap.add_argument("--target", default="host")
    args = ap.parse_args(argv)
    with np.load(MODELS / "digits_test.npz", allow_pickle=False) as z:
        x, y = z["x"].astype(np.float32), z["y"]
    cal = x[:args.samples]
    shapes = {"input": (1, 1, 8, 8)}
    rows = []
    fp = onnxcc.compile(str(MODELS / "digits.onnx"), args.target, input_shapes=shapes)
    pf = _predict(fp, x)
    rows.append(("float", (pf.argmax(1) == y).mean(), fp.weights_size, fp.arena_size, "", ""))
    reports = {}
    for method in ("minmax", "percentile", "entropy"):
        q = onnxcc.compile(str(MODELS / "digits.onnx"), args.target, input_shapes=shapes,
                           quantize=onnxcc.Int8(calibration={"input": cal}, method=method))
        pq = _predict(q, x)
        reports[method] = q.graph.meta["quantization"]
        rows.append((f"onnxcc int8 {method}", (pq.argmax(1) == y).mean(), q.weights_size,
                     q.arena_size, "", ""))
    q = onnxcc.compile(str(MODELS / "digits.onnx"), args.target, input_shapes=shapes,
                       quantize=onnxcc.Int8(calibration={"input": cal}, activations="int16"))
    pq = _predict(q, x)
    reports["int16x8"] = q.graph.meta["quantization"]
    rows.append(("onnxcc int16x8 minmax", (pq.argmax(1) == y).mean(), q.weights_size,
                 q.arena_size, "", ""))
    with tempfile.TemporaryDirectory() as d:
        m = onnx.load(str(MODELS / "digits.onnx"))
        m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
        src = Path(d) / "digits_b1.onnx"
        onnx.save(m, str(src))
        for label, qop, i16 in (("ORT QDQ per-channel", False, False),
                                ("ORT QOperator", True, False),
                                ("ORT QDQ int16x8", False, True)):
            dst = Path(d) / f"q{int(qop)}{int(i16)}.onnx"
            try:
                _ort_quantized(src, dst, cal, qop, i16)
                default = _ort(dst, x)
                if qop:
                    _u8_weights(dst, dst.with_suffix(".u8.onnx"))
                    want = _ort(dst.with_suffix(".u8.onnx"), x)
                else:
                    want = _ort(dst, x, optimize=False)
                q = onnxcc.compile(str(dst), args.target)
                got = _predict(q, x)
            except onnxcc.OnnxccError as e:
                rows.append((label, float("nan"), 0, 0, "not imported: "
                             + str(e).splitlines()[0][:60], ""))
                continue
            scale = float(numpy_helper.to_array(next(
                t for t in onnx.load(str(dst)).graph.initializer
                if t.name == "probabilities_scale")))
            ref = np.abs(got.astype(np.float64) - want) / scale
            dflt = np.abs(got.astype(np.float64) - default) / scale
            rows.append((label, (got.argmax(1) == y).mean(), q.weights_size, q.arena_size,
                         f"ref: {(ref <= 1.001).mean():.2%} within 1 LSB "
                         f"({(ref < 1e-3).mean():.2%} equal), argmax "
                         f"{(got.argmax(1) == want.argmax(1)).mean():.2%};",
                         f"default: {(dflt <= 1.001).mean():.2%} within 1 LSB, argmax "
                         f"{(got.argmax(1) == default.argmax(1)).mean():.2%}"))
    print(f"digits CNN, target {args.target}, {len(x)} test images, {args.samples} calibration")
    print(f"{'model':24} {'accuracy':>9} {'weights B':>10} {'arena B':>8}  vs onnxruntime")
    for name, acc, wb, ab, v1, v2 in rows:
        print(f"{name:24} {acc:9.4f} {wb:10,} {ab:8,}  {v1} {v2}")
    print()
    print(reports["minmax"].table())
    print()
    print(reports["int16x8"].table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
