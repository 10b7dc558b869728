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
from onnx import TensorProto, helper, numpy_helper

import onnxcc
from onnxcc.errors import UnsupportedOpError
from onnxcc.quantize import CalibrationError, sqnr_db

from builders import IR_VERSION, make_model

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


def _wide_range_model(rng) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """Conv (n0) -> Relu -> Conv (n2) -> Relu -> Flatten -> Gemm (n5) and calibration inputs
    whose second channel has rare outliers (20x the typical values) that set the ranges, and
    typical test inputs."""
    w1 = (rng.standard_normal((4, 2, 3, 3)) * 0.5).astype(np.float32)
    w2 = (rng.standard_normal((4, 4, 3, 3)) * 0.3).astype(np.float32)
    w3 = (rng.standard_normal((4 * 36, 3)) * 0.2).astype(np.float32)
    m = make_model([("Conv", ["x", "w1"], ["c"], {"pads": [1, 1, 1, 1]}), ("Relu", ["c"], ["r"]),
                    ("Conv", ["r", "w2"], ["c2"], {"pads": [1, 1, 1, 1]}),
                    ("Relu", ["c2"], ["r2"]), ("Flatten", ["r2"], ["f"]),
                    ("Gemm", ["f", "w3"], ["y"])],
                   inputs={"x": X_SHAPE}, outputs={"y": (1, 3)},
                   inits={"w1": w1, "w2": w2, "w3": w3})
    cal = (rng.standard_normal((32,) + X_SHAPE[1:]) * 0.05).astype(np.float32)
    cal[:4, 1, 2, 2] = [20, -20, 15, -18]
    test = (rng.standard_normal((32,) + X_SHAPE[1:]) * 0.05).astype(np.float32)
    return m, cal, test


def test_int16_activations_keep_the_signal_that_int8_loses_to_outliers():
    """Outliers in calibration stretch every range: int8's 256 levels leave the typical values
    a level or two (measured: output SQNR 0.7 dB), int16's 65536 keep them (41.5 dB)."""
    from builders import ort_run

    m, cal, test = _wide_range_model(np.random.default_rng(0))
    ref = np.concatenate([ort_run(m, {"x": test[i:i + 1]})["y"] for i in range(len(test))])
    sq = {}
    for acts in ("int8", "int16"):
        cm = onnxcc.compile(m, "host", quantize=onnxcc.Int8(calibration={"x": cal},
                                                            activations=acts))
        got = np.concatenate([cm.run({"x": test[i:i + 1]})["y"] for i in range(len(test))])
        sq[acts] = sqnr_db(ref, got)
        ops = [(n.op, n.inputs[0].dtype, n.outputs[0].dtype) for n in cm.graph.nodes]
        want = np.dtype(np.int16 if acts == "int16" else np.int8)
        assert [o for o in ops if o[0] in ("QLinearConv", "com.microsoft.QGemm")] == [
            ("QLinearConv", want, want)] * 2 + [("com.microsoft.QGemm", want, want)], ops
        assert not {"Conv", "Gemm", "onnxcc.FusedConv", "onnxcc.FusedGemm"} & {o[0] for o in ops}
        # int8 weights either way
        assert {n.inputs[3].dtype for n in cm.graph.nodes if n.op in (
            "QLinearConv", "com.microsoft.QGemm")} == {np.dtype(np.int8)}
        if acts == "int16":
            rep = cm.graph.meta["quantization"]
            assert rep.kind == "int16x8" and {r.zero_point for r in rep.layers} == {0}
    assert sq["int16"] > sq["int8"] + 20, sq


def test_int16_layers_names_the_layers_that_get_int16():
    """int16_layers={"n2"}: the second Conv's input (the first Conv's output) and output (the
    Gemm's input, through Flatten) are int16, the rest int8; the cpu build equals the host
    build bit for bit."""
    m, cal, test = _wide_range_model(np.random.default_rng(0))
    q = onnxcc.Int8(calibration={"x": cal}, int16_layers={"n2"})
    outs = []
    for target in ("host", "cpu"):
        cm = onnxcc.compile(m, target, quantize=q)
        ops = [(n.name, n.inputs[0].dtype.name, n.outputs[0].dtype.name) for n in cm.graph.nodes
               if n.op in ("QLinearConv", "com.microsoft.QGemm")]
        assert ops == [("n0", "int8", "int16"), ("n2", "int16", "int16"),
                       ("n5", "int16", "int8")], ops
        assert cm.graph.meta["quantization"].kind == "int8 + int16x8"
        outs.append(np.concatenate([cm.run({"x": x[None]})["y"] for x in test[:8]]))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_bad_16x8_settings_are_refused_by_name():
    m, cal, _ = _wide_range_model(np.random.default_rng(0))
    with pytest.raises(CalibrationError, match="unknown activation type 'int4'"):
        onnxcc.Int8(calibration={}, activations="int4")
    with pytest.raises(CalibrationError, match="one string"):
        onnxcc.Int8(calibration={}, int16_layers="n0")
    with pytest.raises(CalibrationError, match=r"int16_layers names \['conv9'\], which are "
                       "not quantized layers"):
        onnxcc.compile(m, "host", quantize=onnxcc.Int8(calibration={"x": cal},
                                                       int16_layers={"n0", "conv9"}))


def _int16_gemm_qdq(K: int, w: int) -> onnx.ModelProto:
    """Q(x, int16) -> DQ -> Gemm(DQ(int8 weights all ``w``, (K, 2))) -> Q(int16) -> DQ."""
    def c(name, a):
        return numpy_helper.from_array(np.asarray(a), name)

    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dqx"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dqw"),
             helper.make_node("Gemm", ["xd", "wd"], ["g"], name="dense"),
             helper.make_node("QuantizeLinear", ["g", "ys", "yz"], ["yq"], name="qy"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"], name="dqy")]
    inits = [c("xs", np.float32(1e-3)), c("xz", np.int16(0)),
             c("wq", np.full((K, 2), w, np.int8)), c("ws", np.float32(1e-2)), c("wz", np.int8(0)),
             c("ys", np.float32(0.05)), c("yz", np.int16(0))]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     (1, K))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 2))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = IR_VERSION
    return m


def test_int16_product_that_could_overflow_int32_stays_float_by_name(caplog):
    """K 1024 x 32767 x 127 > 2**31 - 1: the Gemm stays float with a warning naming it; K 256
    fits, and becomes an int16 QGemm equal to onnxruntime's float32 graph within 1 LSB."""
    big = _int16_gemm_qdq(1024, 127)
    with caplog.at_level(logging.WARNING, logger="onnxcc.passes"):
        cm = onnxcc.compile(big, "host")
    assert "Gemm" in [n.op for n in cm.graph.nodes]
    assert "'dense' (Gemm): 16-bit activations 'xq'" in caplog.text
    assert "over the int32 accumulator's range" in caplog.text
    small = _int16_gemm_qdq(256, 127)
    cm = onnxcc.compile(small, "host")
    assert "com.microsoft.QGemm" in [n.op for n in cm.graph.nodes]
    x = np.random.default_rng(1).uniform(-30, 30, (1, 256)).astype(np.float32)
    ref = _ort_as_written(small, [x])
    assert np.abs(cm.run({"x": x})["y"] - ref).max() <= 0.05 + 1e-6


def test_qlinearconv_on_int16_is_refused_by_name_when_int32_could_overflow():
    """A QLinearConv node with an int16 x (onnxcc's 16x8 extension of the op, which only
    fuse_qdq makes: the ONNX checker refuses it in a model) whose weights could overflow the
    int32 accumulator is refused by the op's check, naming the node and the tensors; 64 x 3 x 3
    taps of 127 times 32768 plus the bias 1000 is 2,397,045,736."""
    from onnxcc.ir import Node, TensorType, Value
    from onnxcc.ops import get_op

    def v(name, a=None, shape=(), dt=np.int16):
        a = None if a is None else np.asarray(a)
        return Value(name, TensorType(a.shape if a is not None else shape,
                                      np.dtype(a.dtype if a is not None else dt)), a)

    def node(w):
        ins = [v("x", shape=(1, 64, 4, 4)), v("xs", np.float32(1e-3)), v("xz", np.int16(0)),
               v("w", w), v("ws", np.float32(1e-2)), v("wz", np.int8(0)),
               v("ys", np.float32(0.05)), v("yz", np.int16(0)), v("b", np.full(2, 1000, np.int32))]
        attrs = {"auto_pad": "NOTSET", "dilations": [1, 1], "group": 1,
                 "kernel_shape": [3, 3], "pads": [0, 0, 0, 0], "strides": [1, 1]}
        return Node("QLinearConv", ins, [v("y", shape=(1, 2, 2, 2))], attrs, "qconv", 10)

    big = node(np.full((2, 64, 3, 3), 127, np.int8))
    with pytest.raises(UnsupportedOpError, match=r"'qconv' \(QLinearConv\): 16-bit 'x' times "
                       r"weights 'w' may reach 2397045736 in the int32 accumulator"):
        get_op(big).check(big)
    fits = node(np.full((2, 64, 3, 3), 63, np.int8))     # 1,189,086,184: accepted
    get_op(fits).check(fits)


def test_blocked_int8_kernels_refuse_int16_by_name():
    from onnxcc.codegen.loops import Buffer, DType, Load, const
    from onnxcc.codegen.lower import int_blocked

    x = Buffer("x", DType("int16"), (4,), space="arena", value="act16")
    with pytest.raises(UnsupportedOpError, match="act16.*int16 activations"):
        int_blocked.widened(Load(x, (const(0, DType("int32")),)), const(0, DType("int32")))
