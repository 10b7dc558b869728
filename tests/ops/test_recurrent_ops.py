"""LSTM, GRU and RNN through the public API on every target (host and cortex-m4 C, cpu LLVM),
against onnxruntime: directions, activations with alpha/beta, clip, input_forget,
linear_before_reset, optional B, runtime sequence_lens, initial states, peepholes, layouts and
every combination of optional outputs; the errors a user can cause; and the graph torch.onnx
writes around a bidirectional LSTM and a GRU.

onnxruntime refuses ``layout`` 1 (batch first); those cases are compared with the layout-0
model run by onnxruntime, transposed.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import onnx
import onnxcc
import pytest
from builders import IR_VERSION, ort_run, rnn_model
from onnx import helper, numpy_helper
from onnxcc.errors import AttributeValueError, ShapeError
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret
from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS

TARGETS = ("host", "cortex-m4", "cpu")
ACTIVATIONS = ["Sigmoid", "Tanh", "Relu", "HardSigmoid", "ScaledTanh", "Affine", "LeakyRelu",
               "ThresholdedRelu", "Elu", "Softsign", "Softplus"]


def check(m: onnx.ModelProto, feeds: dict, want: dict | None = None, targets=TARGETS,
          rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Every output on every target against ``want`` (default: onnxruntime on ``m``)."""
    want = ort_run(m, feeds) if want is None else want
    for t in targets:
        got = onnxcc.compile(m, t).run(feeds)
        assert sorted(got) == sorted(want), t
        for k in want:
            assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, (t, k)
            np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=f"{t} {k}")


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_directions(op, direction):
    check(*rnn_model(op, direction=direction))


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_sequence_lens_and_initial_state(op, direction):
    # entry 1 stops after one step: zeros in Y from step 1, its last state in Y_h / Y_c
    m, feeds = rnn_model(op, T=4, N=3, direction=direction, lens=[4, 1, 3], h0=True,
                         c0=op == "LSTM")
    want = ort_run(m, feeds)
    assert not want["Y"][1:, :, 1].any()
    check(m, feeds, want)


@pytest.mark.parametrize("opset", [7, 22])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_opsets_7_and_22(op, opset):
    check(*rnn_model(op, direction="bidirectional", lens=[3, 2], opset=opset), targets=("host",))


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_zero_length_entry(op):
    # onnxruntime: zeros in Y and in Y_h / Y_c (not the initial state) for a length of 0
    m, feeds = rnn_model(op, direction="bidirectional", lens=[0, 3], h0=True, c0=op == "LSTM")
    want = ort_run(m, feeds)
    assert not want["Y_h"][:, 0].any()
    check(m, feeds, want)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_clip_without_bias(op):
    check(*rnn_model(op, T=6, bias=False, clip=0.6, direction="bidirectional"))


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("op", ["GRU", "RNN"])
def test_each_activation(op, act):
    # the activation under test where it decides the state (RNN's f, GRU's g); alpha and beta
    # given to the ones that take them, default values for the others
    acts = [act] if op == "RNN" else ["Sigmoid", act]
    check(*rnn_model(op, activations=acts, activation_alpha=[0.3], activation_beta=[0.6]))


def test_activation_defaults_and_order():
    # alpha/beta consumed in order by the functions that take them; past the list, defaults
    acts = ["HardSigmoid", "ScaledTanh", "Affine", "Sigmoid", "LeakyRelu", "Elu"]
    check(*rnn_model("LSTM", direction="bidirectional", activations=acts,
                     activation_alpha=[0.3, 0.8, 0.5], activation_beta=[0.4, 1.5]))


def test_lstm_peepholes_input_forget_clip():
    check(*rnn_model("LSTM", T=5, peep=True, h0=True, c0=True, input_forget=1, clip=0.8,
                     direction="bidirectional", lens=[5, 2]))


@pytest.mark.parametrize("lbr", [0, 1])
def test_gru_linear_before_reset(lbr):
    check(*rnn_model("GRU", direction="bidirectional", linear_before_reset=lbr, h0=True))


@pytest.mark.parametrize("outputs", [("Y",), ("Y_h",), ("Y_c",), ("Y", "Y_h"), ("Y", "Y_c"),
                                     ("Y_h", "Y_c"), ("Y", "Y_h", "Y_c")])
def test_lstm_optional_outputs(outputs):
    m, feeds = rnn_model("LSTM", outputs=outputs, lens=[3, 2])
    assert [o.name for o in m.graph.output] == list(outputs)
    check(m, feeds)


@pytest.mark.parametrize("op", ["GRU", "RNN"])
@pytest.mark.parametrize("outputs", [("Y",), ("Y_h",)])
def test_optional_outputs(op, outputs):
    check(*rnn_model(op, outputs=outputs, direction="reverse"))


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_layout_1(op):
    # batch first; onnxruntime runs only layout 0: the same node at layout 0 on transposed data
    m1, feeds = rnn_model(op, layout=1, T=4, N=3, direction="bidirectional", lens=[4, 2, 1],
                          h0=True, c0=op == "LSTM")
    m0 = onnx.ModelProto()
    m0.CopyFrom(m1)
    next(a for a in m0.graph.node[0].attribute if a.name == "layout").i = 0
    for t in m0.graph.initializer:
        if t.name in ("initial_h", "initial_c"):
            a = numpy_helper.to_array(t).transpose(1, 0, 2)
            t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(a), t.name))
    x0 = np.ascontiguousarray(feeds["X"].transpose(1, 0, 2))
    m0.graph.input[0].CopyFrom(helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT,
                                                             x0.shape))
    want0 = ort_run(m0, {**feeds, "X": x0})
    want = {k: v.transpose(2, 0, 1, 3) if k == "Y" else v.transpose(1, 0, 2)
            for k, v in want0.items()}
    check(m1, feeds, want)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_float64_and_runtime_weights(op):
    # onnxruntime runs LSTM/GRU only in float32: the float64 run against the same model in
    # float32 (to float32 precision) and against onnxcc's float64 reference (to float64's)
    kw = dict(direction="bidirectional", lens=[2, 3], h0=True, runtime_weights=True)
    m64, feeds64 = rnn_model(op, dtype=np.float64, **kw)
    m32, feeds32 = rnn_model(op, dtype=np.float32, **kw)
    want32 = ort_run(m32, feeds32)
    ref = interpret(import_onnx(m64), feeds64)
    for k in want32:
        np.testing.assert_allclose(ref[k], want32[k], rtol=1e-4, atol=1e-5, err_msg=k)
    check(m64, feeds64, ref, rtol=1e-10, atol=1e-12)


def test_hidden_size_inferred_from_r():
    m, feeds = rnn_model("GRU")
    want = ort_run(m, feeds)
    del m.graph.node[0].attribute[:]     # no hidden_size: R (1, 3*5, 5) states it
    check(m, feeds, want)


# ---- errors a user can cause ------------------------------------------------------------------
@pytest.mark.parametrize("change,error,words", [
    (lambda n: n.attribute.append(helper.make_attribute("activations", ["Gelu", "Tanh"])),
     AttributeValueError, ["'rnn0'", "GRU", "'Gelu'", "use one of"]),
    (lambda n: n.attribute.append(helper.make_attribute("activations", ["Sigmoid"])),
     AttributeValueError, ["'rnn0'", "needs 2", "per direction"]),
    (lambda n: n.attribute.append(helper.make_attribute("direction", "sideways")),
     AttributeValueError, ["'rnn0'", "'sideways'", "bidirectional"]),
])
def test_attribute_errors(change, error, words):
    m, _ = rnn_model("GRU")
    change(m.graph.node[0])
    with pytest.raises(error) as e:
        onnxcc.compile(m, "host")
    assert all(w in str(e.value) for w in words), str(e.value)
    assert "hint:" in str(e.value)


def test_hidden_size_disagreeing_with_r():
    m, _ = rnn_model("LSTM")
    for a in m.graph.node[0].attribute:
        if a.name == "hidden_size":
            a.i = 7
    with pytest.raises(AttributeValueError, match=r"'rnn0' \(LSTM\): hidden_size is 7 but R"):
        onnxcc.compile(m, "host")


def test_wrong_weight_shape():
    m, _ = rnn_model("LSTM")
    w = next(i for i in m.graph.initializer if i.name == "W")
    w.CopyFrom(numpy_helper.from_array(np.zeros((1, 12, 4), np.float32), "W"))
    with pytest.raises(ShapeError, match=r"'rnn0' \(LSTM\): W has shape \[1, 12, 4\], "
                                         r"expected \[1, 20, 4\]") as e:
        onnxcc.compile(m, "host")
    assert "hint:" in str(e.value)


# ---- the C library under the MCU compiler and the sanitizers ----------------------------------
def test_cortex_m4_library_compiles_warning_free():
    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc not installed")
    m, _ = rnn_model("LSTM", direction="bidirectional", lens=[3, 2], peep=True, clip=1.0)
    cm = onnxcc.compile(m, "cortex-m4")
    p = cm.mmap["c_prefix"]
    subprocess.run(["arm-none-eabi-gcc", *WARN_FLAGS, *CORTEX_M4_FLAGS, "-O2", f"-I{cm.lib_dir}",
                    "-c", str(cm.lib_dir / f"{p}.c"), "-o", "/dev/null"], check=True)


@pytest.mark.slow
def test_sanitizers_clean():
    m, feeds = rnn_model("GRU", direction="bidirectional", lens=[1, 3], h0=True)
    got, want = onnxcc.compile(m, "host").run(feeds, sanitize=True), ort_run(m, feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)


# ---- the graph torch.onnx writes ----------------------------------------------------------------
def _torch_lstm(x, p, h0, c0):
    """numpy of torch.nn.LSTM(batch_first=True, bidirectional=True), one layer: gates i, f, g,
    o; x (N, T, I) -> (N, T, 2H), h_n, c_n (2, N, H)."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    out, hn, cn = [], [], []
    for d in range(2):
        W, R, bw, br = p[d]
        h, c = h0[d], c0[d]
        ys = [None] * x.shape[1]
        steps = range(x.shape[1])[::-1] if d else range(x.shape[1])
        for t in steps:
            i, f, g, o = np.split(x[:, t] @ W.T + bw + h @ R.T + br, 4, axis=1)
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
            ys[t] = h
        out.append(np.stack(ys, 1))
        hn.append(h)
        cn.append(c)
    return np.concatenate(out, -1), np.stack(hn), np.stack(cn)


def _torch_gru(x, W, R, bw, br):
    """numpy of torch.nn.GRU (seq first), one direction: gates r, z, n;
    n = tanh(W_n x + b_wn + r * (R_n h + b_rn)); x (T, N, I) -> (T, N, H)."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h, ys = np.zeros((x.shape[1], R.shape[1]), x.dtype), []
    for t in range(x.shape[0]):
        xr, xz, xn = np.split(x[t] @ W.T + bw, 3, axis=1)
        hr, hz, hn = np.split(h @ R.T + br, 3, axis=1)
        r, z = sig(xr + hr), sig(xz + hz)
        h = (1 - z) * np.tanh(xn + r * hn) + z * h
        ys.append(h)
    return np.stack(ys)


def _reorder(a, order, H):
    """Gate blocks of ``a`` (rows of H) taken in ``order`` (torch's to ONNX's)."""
    return np.concatenate([a[k * H:(k + 1) * H] for k in order])


def test_torch_exported_bidirectional_lstm():
    # nn.LSTM(4, 5, batch_first=True, bidirectional=True) as torch.onnx (opset 14) writes it:
    # Transpose to seq first, LSTM with gates reordered ifgo -> iofc and biases concatenated,
    # Y (T, 2, N, H) -> Transpose (T, N, 2, H) -> Reshape (T, N, 2H) -> Transpose batch first
    rng = np.random.default_rng(3)
    N, T, I, H = 2, 6, 4, 5  # noqa: E741
    params = [tuple(rng.uniform(-0.45, 0.45, s).astype(np.float32)
                    for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))) for _ in range(2)]
    iofc = (0, 3, 1, 2)
    W = np.stack([_reorder(p[0], iofc, H) for p in params])
    R = np.stack([_reorder(p[1], iofc, H) for p in params])
    B = np.stack([np.concatenate([_reorder(p[2], iofc, H), _reorder(p[3], iofc, H)])
                  for p in params])
    nodes = [
        helper.make_node("Transpose", ["input"], ["x_t"], name="/lstm/Transpose", perm=[1, 0, 2]),
        helper.make_node("LSTM", ["x_t", "W", "R", "B", "", "h0", "c0"], ["y", "hn", "cn"],
                         name="/lstm/LSTM", hidden_size=H, direction="bidirectional"),
        helper.make_node("Transpose", ["y"], ["y_t"], name="/lstm/Transpose_1", perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["y_t", "shape"], ["y_r"], name="/lstm/Reshape"),
        helper.make_node("Transpose", ["y_r"], ["output"], name="/lstm/Transpose_2",
                         perm=[1, 0, 2]),
    ]
    inits = {"W": W, "R": R, "B": B, "shape": np.array([0, 0, -1], np.int64)}
    f32 = onnx.TensorProto.FLOAT
    g = helper.make_graph(
        nodes, "main_graph",
        [helper.make_tensor_value_info("input", f32, ["batch", T, I]),
         helper.make_tensor_value_info("h0", f32, [2, "batch", H]),
         helper.make_tensor_value_info("c0", f32, [2, "batch", H])],
        [helper.make_tensor_value_info("output", f32, ["batch", T, 2 * H]),
         helper.make_tensor_value_info("hn", f32, [2, "batch", H]),
         helper.make_tensor_value_info("cn", f32, [2, "batch", H])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)],
                          producer_name="pytorch")
    m.ir_version = IR_VERSION
    feeds = {"input": rng.standard_normal((N, T, I)).astype(np.float32),
             "h0": rng.standard_normal((2, N, H)).astype(np.float32),
             "c0": rng.standard_normal((2, N, H)).astype(np.float32)}
    y, hn, cn = _torch_lstm(feeds["input"], params, feeds["h0"], feeds["c0"])
    want = ort_run(m, feeds)
    np.testing.assert_allclose(want["output"], y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(want["cn"], cn, rtol=1e-5, atol=1e-5)
    for t in TARGETS:
        got = onnxcc.compile(m, t, input_shapes={"input": (N, T, I)}).run(feeds)
        for k, v in (("output", y), ("hn", hn), ("cn", cn)):
            np.testing.assert_allclose(got[k], v, rtol=1e-4, atol=1e-5, err_msg=f"{t} {k}")


def test_torch_exported_gru_with_squeeze():
    # nn.GRU(3, 4) (seq first, one direction): gates rzn -> zrh, linear_before_reset=1, and
    # Squeeze(Y, axes=[1]) dropping the direction axis
    rng = np.random.default_rng(4)
    T, N, I, H = 5, 2, 3, 4  # noqa: E741
    W, R = (rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in ((3 * H, I), (3 * H, H)))
    bw, br = (rng.uniform(-0.5, 0.5, 3 * H).astype(np.float32) for _ in range(2))
    zrh = (1, 0, 2)
    inits = {"W": _reorder(W, zrh, H)[None], "R": _reorder(R, zrh, H)[None],
             "B": np.concatenate([_reorder(bw, zrh, H), _reorder(br, zrh, H)])[None],
             "axes": np.array([1], np.int64)}
    nodes = [helper.make_node("GRU", ["input", "W", "R", "B"], ["y", "hn"], name="/gru/GRU",
                              hidden_size=H, linear_before_reset=1),
             helper.make_node("Squeeze", ["y", "axes"], ["output"], name="/gru/Squeeze")]
    f32 = onnx.TensorProto.FLOAT
    g = helper.make_graph(
        nodes, "main_graph", [helper.make_tensor_value_info("input", f32, [T, N, I])],
        [helper.make_tensor_value_info("output", f32, [T, N, H]),
         helper.make_tensor_value_info("hn", f32, [1, N, H])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = IR_VERSION
    feeds = {"input": rng.standard_normal((T, N, I)).astype(np.float32)}
    y = _torch_gru(feeds["input"], W, R, bw, br)
    want = {"output": y, "hn": y[-1:]}
    np.testing.assert_allclose(ort_run(m, feeds)["output"], y, rtol=1e-5, atol=1e-5)
    check(m, feeds, want)


def test_report_counts_gate_macs():
    from onnxcc.report import macs

    m, _ = rnn_model("LSTM", T=3, N=2, I=4, H=5, direction="bidirectional")
    cm = onnxcc.compile(m, "host")
    # T * N steps, each W (2, 20, 4) and R (2, 20, 5) once
    assert macs(cm.graph.nodes[0]) == 3 * 2 * (2 * 20 * 4 + 2 * 20 * 5)
    assert "LSTM" in cm.report()


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_opset_6_output_sequence(op):
    # opsets 1-6 carry output_sequence (whether Y may be left out): dropped on import
    m, feeds = rnn_model(op, direction="bidirectional")
    want = ort_run(m, feeds)
    m.graph.node[0].attribute.append(helper.make_attribute("output_sequence", 1))
    m.opset_import[0].version = 6
    check(m, feeds, want, targets=("host",))


def test_hidden_size_missing_and_not_inferable():
    m, _ = rnn_model("RNN")
    m.graph.node[0].ClearField("attribute")
    r = next(i for i in m.graph.initializer if i.name == "R")
    r.CopyFrom(numpy_helper.from_array(np.zeros((5, 5), np.float32), "R"))
    with pytest.raises(AttributeValueError, match=r"'rnn0' \(RNN\): hidden_size is missing and "
                                                  r"R \[5, 5\] does not state it") as e:
        onnxcc.compile(m, "host")
    assert "hint: set hidden_size" in str(e.value)
