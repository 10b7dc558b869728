"""16x8 quantization (TFLite's 16-bit activation mode): int16 activations, int8 weights.

- import: a Conv/Relu/depthwise Conv/Add/Gemm model quantized by onnxruntime's
  ``quantize_static(activation_type=QInt16, weight_type=QInt8)`` (QDQ, opset 21) becomes
  integer kernels on int16 (no float Conv/Gemm left), and the host C build and the LLVM build
  give onnxruntime's outputs (graph optimizations off: the QDQ graph as written) bit for bit;
- ``onnxcc.Int8(activations="int16")`` on a model whose activations span a wide range gives a
  higher output SQNR than int8; ``int16_layers`` makes only the named layers int16;
- the MCU build takes the portable kernels (no SMLAD) for int16 and equals the host build;
- an int16 product whose sums may pass int32 accumulates in int64; one outside that path's
  domain stays float with a warning naming the node (QDQ import) or is refused by name (the
  op's check); bad settings are refused by name.
"""

from __future__ import annotations

import logging
import shutil
from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxcc
from onnxcc.errors import UnsupportedOpError
from onnxcc.quantize import CalibrationError, sqnr_db

from builders import IR_VERSION, make_model, ort_run, run_c_requantize

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
    """(float model, {"int16": the QDQ model onnxruntime's quantizer writes with QInt16
    activations, "uint16": with QUInt16}, test inputs)."""
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
    models = {}
    for name, t in (("int16", QuantType.QInt16), ("uint16", QuantType.QUInt16)):
        quantize_static(str(d / "f.onnx"), str(d / f"{name}.onnx"), Reader(),
                        quant_format=QuantFormat.QDQ, activation_type=t,
                        weight_type=QuantType.QInt8, per_channel=True)
        models[name] = onnx.load(d / f"{name}.onnx")
    xs = [rng.standard_normal(X_SHAPE).astype(np.float32) * 1.5 for _ in range(40)]
    return fm, models, xs


def _ort_as_written(model: onnx.ModelProto, xs) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"x": x})[0] for x in xs])


@pytest.mark.parametrize("act", ["int16", "uint16"])
def test_ort_int16_qdq_model_runs_as_int16_kernels_equal_to_onnxruntime(ort_int16, act):
    _, models, xs = ort_int16
    qm = models[act]
    assert {t.data_type for t in qm.graph.initializer if t.name.endswith("_zero_point")} >= {
        TensorProto.INT16 if act == "int16" else TensorProto.UINT16, TensorProto.INT8}
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
        assert all(dt == np.dtype(act) for o, dt in ops[1:]), ops
        outs[target] = np.concatenate([cm.run({"x": x})["y"] for x in xs])
    # onnxruntime (optimizations off) runs the QDQ graph as written: a float32 Conv/Gemm of the
    # dequantized int16 values, whose rounding (24-bit significands against sums of ~2**30
    # products' magnitude) moves some results across a rounding boundary of the int16 output;
    # onnxcc's int32 sums are exact. Measured (40 inputs, 200 outputs): every element within
    # 1 LSB, 96% equal, for int16 and uint16 alike.
    lsb = np.rint(np.abs(outs["host"].astype(np.float64) - ref) / y_scale)
    assert lsb.max() <= 1 and np.mean(lsb == 0) >= 0.9, (lsb.max(), np.mean(lsb == 0))
    # the C and LLVM builds agree bit for bit
    np.testing.assert_array_equal(outs["host"], outs["cpu"])


def test_mcu_build_takes_the_portable_int16_kernels(ort_int16):
    """cortex-m4 (DSP): no SMLAD/blocked kernel for int16 x (its int16 scratch of x - zp would
    overflow); the host run of the MCU C build equals the host target's."""
    _, models, xs = ort_int16
    qm = models["int16"]
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
    a level or two (measured: output SQNR 2.3 dB), int16's 65536 keep them (40.7 dB)."""
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


def _int16_gemm_qdq(K: int, w: int, ys: float) -> onnx.ModelProto:
    """Q(x, int16, scale 1e-3) -> DQ -> Gemm(DQ(int8 weights all ``w``, (K, 2), scale 1e-2))
    -> Q(int16, scale ``ys``) -> DQ."""
    def c(name, a):
        return numpy_helper.from_array(np.asarray(a), name)

    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dqx"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dqw"),
             helper.make_node("Gemm", ["xd", "wd"], ["g"], name="dense"),
             helper.make_node("QuantizeLinear", ["g", "ys", "yz"], ["yq"], name="qy"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"], name="dqy")]
    wq = np.full((K, 2), w, np.int8)
    wq[::2, 1] = -w // 2
    inits = [c("xs", np.float32(1e-3)), c("xz", np.int16(0)), c("wq", wq),
             c("ws", np.float32(1e-2)), c("wz", np.int8(0)), c("ys", np.float32(ys)),
             c("yz", np.int16(0))]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     (1, K))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 2))], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = IR_VERSION
    return m


def test_int16_sums_past_int32_take_an_int64_accumulator():
    """K 1024 x 32767 x 127 > 2**31 - 1: the QGemm sums in int64 (inputs near 32 make the sums
    reach ~4.2e9, which int32 would wrap) and requantizes with ``requantize64``; host and cpu
    builds give onnxruntime's outputs (graph as written) within 1 LSB, and equal each other."""
    model = _int16_gemm_qdq(1024, 127, 2.0)
    xs = [np.random.default_rng(k).uniform(20, 32.7, (1, 1024)).astype(np.float32)
          for k in range(4)]
    ref = _ort_as_written(model, xs)
    outs = []
    for target in ("host", "cpu"):
        cm = onnxcc.compile(model, target)
        assert [n.op for n in cm.graph.nodes] == ["QuantizeLinear", "com.microsoft.QGemm",
                                                  "DequantizeLinear"]
        assert "int64 accumulator" in " ".join(k.comment for k in cm.program.kernels)
        outs.append(np.concatenate([cm.run({"x": x})["y"] for x in xs]))
    assert np.abs(ref).max() > 2 ** 31 * 1e-5 / 2.0 * 0.9     # sums near int32's limit or past
    assert np.abs(outs[0] - ref).max() <= 2.0 + 1e-3
    np.testing.assert_array_equal(outs[0], outs[1])


def test_int16_product_without_an_accumulator_stays_float_by_name(caplog):
    """A requantization multiplier of 64 or more (y scale 1e-7) is outside the int64 path's
    domain: the Gemm stays float with a warning naming it and why."""
    with caplog.at_level(logging.WARNING, logger="onnxcc.passes"):
        cm = onnxcc.compile(_int16_gemm_qdq(1024, 127, 1e-7), "host")
    assert "Gemm" in [n.op for n in cm.graph.nodes]
    assert "node 'dense' (Gemm) stays float: 16-bit 'xq': a requantization multiplier" in \
        caplog.text


def test_qlinearconv_on_int16_picks_its_accumulator_or_is_refused_by_name():
    """A QLinearConv node with an int16 x (onnxcc's 16x8 extension of the op, which only
    fuse_qdq makes: the ONNX checker refuses it in a model): 64 x 3 x 3 taps of 63 times 32768
    plus the bias 1000 is 1,189,086,184: int32; of 127, 2,397,045,736: int64; with a y scale
    making the multiplier 200, refused naming the node and the tensor."""
    from onnxcc.ir import Node, TensorType, Value
    from onnxcc.ops import get_op

    def v(name, a=None, shape=(), dt=np.int16):
        a = None if a is None else np.asarray(a)
        return Value(name, TensorType(a.shape if a is not None else shape,
                                      np.dtype(a.dtype if a is not None else dt)), a)

    def node(w, ys=0.05):
        ins = [v("x", shape=(1, 64, 4, 4)), v("xs", np.float32(1e-3)), v("xz", np.int16(0)),
               v("w", np.full((2, 64, 3, 3), w, np.int8)), v("ws", np.float32(1e-2)),
               v("wz", np.int8(0)), v("ys", np.float32(ys)), v("yz", np.int16(0)),
               v("b", np.full(2, 1000, np.int32))]
        attrs = {"auto_pad": "NOTSET", "dilations": [1, 1], "group": 1,
                 "kernel_shape": [3, 3], "pads": [0, 0, 0, 0], "strides": [1, 1]}
        return Node("QLinearConv", ins, [v("y", shape=(1, 2, 2, 2))], attrs, "qconv", 10)

    for w, want in ((63, np.int32), (127, np.int64)):
        n = node(w)
        get_op(n).check(n)
        assert get_op(n).acc_dtype(n) == want
    bad = node(127, ys=5e-8)
    with pytest.raises(UnsupportedOpError, match=r"'qconv' \(QLinearConv\): 16-bit 'x': a "
                       r"requantization multiplier of 200"):
        get_op(bad).check(bad)


def test_blocked_int8_kernels_refuse_int16_by_name():
    from onnxcc.codegen.loops import Buffer, DType, Load, const
    from onnxcc.codegen.lower import int_blocked

    x = Buffer("x", DType("int16"), (4,), space="arena", value="act16")
    with pytest.raises(UnsupportedOpError, match="act16.*int16 activations"):
        int_blocked.widened(Load(x, (const(0, DType("int32")),)), const(0, DType("int32")))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_requantize64_is_round_half_even_of_the_exact_product(tmp_path):
    """The C helper (64-bit words only) and the numpy reference equal Python's exact
    round-half-to-even of acc * m / 2**shift over |acc| < 2**47, every shift 25..62, ties
    included, without undefined behaviour."""
    from onnxcc.codegen.requantize import C_HELPER_64, requantize64

    rng = np.random.default_rng(7)
    n = 3000
    xs = np.concatenate([rng.integers(-2**47 + 1, 2**47, n), rng.integers(-3000, 3000, n),
                         [2**47 - 1, -2**47 + 1, 0, 1, -1] * 38])
    ms = np.concatenate([rng.integers(2**30, 2**31, 2 * n), np.full(190, 2**31 - 1)])
    ss = np.concatenate([rng.integers(25, 63, 2 * n), np.repeat(np.arange(25, 63), 5)])
    k = rng.integers(-2**20, 2**20, 400) * 2 + 1          # ties: m = 2**30, acc = k 2**(s-31)
    s = rng.integers(31, 50, 400)
    xs, ms, ss = (np.concatenate([xs, k * 2 ** (s - 31)]), np.concatenate([ms,
                  np.full(400, 2**30)]), np.concatenate([ss, s]))
    want = [max(min(round(Fraction(int(a) * int(m), 2 ** int(t))), 2**31 - 1), -2**31)
            for a, m, t in zip(xs, ms, ss)]
    np.testing.assert_array_equal(requantize64(xs, ms, ss), want)

    got = run_c_requantize(tmp_path, C_HELPER_64, "onnxcc_requantize64", xs, ms, ss,
                           acc="int64_t")
    np.testing.assert_array_equal(got, want)


def test_int16_conv_with_int64_sums_on_every_build():
    """A 3x3 Conv over 128 int16 channels of large weights (sums past int32) quantized with
    onnxcc's 16x8 quantizer: int64 accumulator in the generic nest; host, cpu, cortex-m4 (run
    on the host) and size mode equal the numpy reference of the integer graph."""
    from onnxcc.interpreter import interpret_values

    rng = np.random.default_rng(3)
    w = (np.abs(rng.standard_normal((4, 128, 3, 3))) * 0.1 + 1.0).astype(np.float32)
    m = make_model([("Conv", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1]})],
                   inputs={"x": (1, 128, 4, 4)}, outputs={"y": (1, 4, 4, 4)}, inits={"w": w})
    cal = np.abs(rng.standard_normal((8, 128, 4, 4))).astype(np.float32)
    cal[0] = cal.max()        # every input at the top of the range: the largest sums (~4e9)
    q = onnxcc.Int8(calibration={"x": cal}, activations="int16")
    x = cal[:1]
    outs = {}
    for target, kw in (("host", {}), ("cpu", {}), ("cortex-m4", {}), ("host", {"optimize":
                                                                               "size"})):
        cm = onnxcc.compile(m, target, quantize=q, **kw)
        conv = [k.comment for k in cm.program.kernels if "QLinearConv" in k.comment]
        assert conv and "int64 accumulator" in conv[0] and "SMLAD" not in conv[0]
        outs[target + str(kw)] = cm.run({"x": x})["y"]
        ref = interpret_values(cm.graph, {"x": x}, ["y"])["y"]
    first = next(iter(outs.values()))
    for k, v in outs.items():
        np.testing.assert_array_equal(v, first, err_msg=k)
    np.testing.assert_array_equal(first, ref)
    # and the float model's numbers (int32 sums would have wrapped to nonsense)
    want = ort_run(m, {"x": x})["y"]
    np.testing.assert_allclose(first, want, rtol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or
                    shutil.which("arm-none-eabi-gcc") is None, reason="needs qemu-system-arm")
def test_int64_sums_on_emulated_cortex_m4():
    """The int64-accumulator Conv built by arm-none-eabi-gcc runs on the emulated Cortex-M4 and
    gives the host build's outputs bit for bit."""
    from onnxcc.runtime import qemu

    rng = np.random.default_rng(3)
    w = (np.abs(rng.standard_normal((4, 128, 3, 3))) * 0.1 + 1.0).astype(np.float32)
    m = make_model([("Conv", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1]})],
                   inputs={"x": (1, 128, 4, 4)}, outputs={"y": (1, 4, 4, 4)}, inits={"w": w})
    cal = np.abs(rng.standard_normal((8, 128, 4, 4))).astype(np.float32)
    cal[0] = cal.max()
    q = onnxcc.Int8(calibration={"x": cal}, activations="int16")
    host = onnxcc.compile(m, "host", quantize=q)
    m4 = onnxcc.compile(m, "cortex-m4", quantize=q, name="conv64")
    for x in (cal[:1], cal[1:2]):
        np.testing.assert_array_equal(qemu.run_on_qemu(m4, {"x": x})["y"],
                                      host.run({"x": x})["y"])


def test_contrib_qdq_ops_are_refused_with_the_plain_form_named():
    """onnxruntime's com.microsoft QuantizeLinear/DequantizeLinear (UseQDQContribOps) are
    refused by name, pointing at the opset-21 form onnxcc imports."""
    from onnxcc.errors import OnnxccError

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="qx",
                              domain="com.microsoft"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dqx",
                              domain="com.microsoft")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     (1, 4))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 4))],
                          [numpy_helper.from_array(np.float32(0.1), "s"),
                           numpy_helper.from_array(np.int16(0), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = IR_VERSION
    with pytest.raises(OnnxccError, match=r"node 'qx' \(com.microsoft.QuantizeLinear\).*"
                       r"without UseQDQContribOps"):
        onnxcc.compile(m, "host")


def test_int16_pattern_without_an_integer_kernel_stays_float_with_the_warning(caplog):
    """Q(Sigmoid(DQ(x int16))): the lookup table is int8 only (65536 entries would not fit an
    MCU), so the Sigmoid stays float between the pair, named by fuse_qdq's warning, and the
    result is the QDQ graph's (onnxruntime, optimizations off) within 1 LSB: its expf and
    onnxcc's differ in the last bit now and then (measured over 12,800 values: 99.93% equal)."""
    def c(name, a):
        return numpy_helper.from_array(np.asarray(a), name)

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="qx"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"], name="dqx"),
             helper.make_node("Sigmoid", ["d"], ["sg"], name="sig"),
             helper.make_node("QuantizeLinear", ["sg", "ys", "z"], ["yq"], name="qy"),
             helper.make_node("DequantizeLinear", ["yq", "ys", "z"], ["y"], name="dqy")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     (1, 64))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, (1, 64))],
                          [c("s", np.float32(3e-4)), c("z", np.int16(0)),
                           c("ys", np.float32(1 / 32767))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = IR_VERSION
    with caplog.at_level(logging.WARNING, logger="onnxcc.passes"):
        cm = onnxcc.compile(m, "host")
    assert "node 'sig' (Sigmoid) stays float between DequantizeLinear and QuantizeLinear" in \
        caplog.text
    assert [n.op for n in cm.graph.nodes] == ["QuantizeLinear", "DequantizeLinear", "Sigmoid",
                                              "QuantizeLinear", "DequantizeLinear"]
    x = np.linspace(-9, 9, 64, dtype=np.float32)[None]
    got = cm.run({"x": x})["y"]
    ref = _ort_as_written(m, [x])
    assert np.abs(got - ref).max() <= 1 / 32767 + 1e-7     # float Sigmoid: within 1 LSB
