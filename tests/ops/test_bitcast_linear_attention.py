"""BitCast, LinearAttention, Resize with a runtime roi, FlexAttention (ai.onnx.preview) and
MelWeightMatrix through the public API on host and cortex-m4 C and cpu LLVM, against
onnxruntime (BitCast, linear Resize) or onnx.reference (LinearAttention and FlexAttention,
which onnxruntime lacks; MelWeightMatrix, whose triangle corners the spec's reference defines;
bool BitCast; nearest Resize, whose roi onnxruntime ignores on an axis of unchanged length);
the errors a user can cause."""

from __future__ import annotations

import numpy as np
import onnx
import onnxcc
import pytest
from builders import IR_VERSION, ort_run
from onnx import TensorProto, helper, numpy_helper
from onnxcc.errors import AttributeValueError, ShapeError, UnsupportedOpError

TARGETS = ("host", "cortex-m4", "cpu")


def _model(nodes, inputs: dict, outputs: dict, opset: int, inits: dict | None = None):
    """``nodes`` of helper.make_node; inputs/outputs map names to (numpy dtype, shape)."""
    def vi(k, dt, shape):
        return helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(np.dtype(dt)), shape)

    g = helper.make_graph(nodes, "g", [vi(k, *v) for k, v in inputs.items()],
                          [vi(k, *v) for k, v in outputs.items()],
                          [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m


def _bytes(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _reference(m: onnx.ModelProto, feeds: dict) -> dict:
    from onnx.reference import ReferenceEvaluator

    names = [o.name for o in m.graph.output]
    return dict(zip(names, ReferenceEvaluator(m).run(None, feeds)))


def _check_exact(m: onnx.ModelProto, feeds: dict, want: dict, targets=TARGETS):
    for t in targets:
        got = onnxcc.compile(m, t).run(feeds)
        for k, w in want.items():
            assert got[k].dtype == w.dtype and got[k].shape == w.shape, (t, k)
            # compare bits: NaN payloads and -0.0 must survive
            np.testing.assert_array_equal(_bytes(got[k]), _bytes(w), err_msg=f"{t} {k}")


# ---- BitCast ------------------------------------------------------------------------------------
def _special_floats(rng, shape, dt):
    x = rng.standard_normal(shape).astype(dt).reshape(-1)
    x[:4] = [np.nan, -0.0, np.inf, -np.inf][:x.size]
    return x.reshape(shape)


@pytest.mark.parametrize("src, dst, shape", [
    (np.float32, np.int32, (2, 3, 4)),
    (np.int32, np.float32, (5,)),
    (np.float64, np.int64, (3, 2)),
    (np.uint64, np.float64, (4,)),
    (np.int8, np.uint8, (7,)),
    (np.uint16, np.int16, (2, 2)),
    (np.bool_, np.uint8, (6,)),
    (np.float32, np.uint32, ()),
])
def test_bitcast_graph_input_vs_ort(rng, src, dst, shape):
    if np.dtype(src).kind == "f":
        x = _special_floats(rng, shape, src) if shape else np.array(-1.5, src)
    elif src is np.bool_:
        x = rng.random(shape) > 0.5
    else:
        x = rng.integers(np.iinfo(src).min, np.iinfo(src).max, shape, dtype=src, endpoint=True)
    to = helper.np_dtype_to_tensor_dtype(np.dtype(dst))
    m = _model([helper.make_node("BitCast", ["x"], ["y"], name="n0", to=to)],
               {"x": (src, shape)}, {"y": (dst, shape)}, 26)
    # onnxruntime 1.31 has no bool BitCast kernel
    want = _reference(m, {"x": x}) if src is np.bool_ else ort_run(m, {"x": x})
    np.testing.assert_array_equal(_bytes(want["y"]), _bytes(x))
    _check_exact(m, {"x": x}, want)


def test_bitcast_between_kernels_vs_ort(rng):
    """BitCast between two arena tensors: float sign bit cleared in the integer domain (|x|)."""
    x = _special_floats(rng, (3, 8), np.float32)
    nodes = [helper.make_node("Neg", ["x"], ["n"], name="n0"),
             helper.make_node("BitCast", ["n"], ["b"], name="n1", to=TensorProto.INT32),
             helper.make_node("BitwiseAnd", ["b", "mask"], ["c"], name="n2"),
             helper.make_node("BitCast", ["c"], ["f"], name="n3", to=TensorProto.FLOAT),
             helper.make_node("Add", ["f", "f"], ["y"], name="n4")]
    m = _model(nodes, {"x": (np.float32, [3, 8])}, {"y": (np.float32, [3, 8])}, 26,
               {"mask": np.array(0x7FFFFFFF, np.int32)})
    want = ort_run(m, {"x": x})
    _check_exact(m, {"x": x}, want)


@pytest.mark.parametrize("splat", [False, True])
def test_bitcast_constant_input_vs_ort(rng, splat):
    """A constant BitCast straight into a graph output stays a kernel (a weight read as bytes)."""
    c = np.full((4, 3), -2.75, np.float64) if splat else rng.standard_normal((4, 3))
    nodes = [helper.make_node("BitCast", ["c"], ["y"], name="n0", to=TensorProto.UINT64),
             helper.make_node("Identity", ["x"], ["z"], name="n1")]
    m = _model(nodes, {"x": (np.float32, [2])}, {"y": (np.uint64, [4, 3]), "z": (np.float32, [2])},
               26, {"c": c})
    feeds = {"x": np.ones(2, np.float32)}
    want = ort_run(m, feeds)
    _check_exact(m, feeds, want)


def test_bitcast_float16_on_host(rng):
    x = rng.standard_normal((2, 5)).astype(np.float16)
    m = _model([helper.make_node("BitCast", ["x"], ["y"], name="n0", to=TensorProto.INT16)],
               {"x": (np.float16, [2, 5])}, {"y": (np.int16, [2, 5])}, 26)
    _check_exact(m, {"x": x}, ort_run(m, {"x": x}), targets=("host",))


def test_bitcast_width_mismatch_names_the_node():
    m = _model([helper.make_node("BitCast", ["x"], ["y"], name="widen", to=TensorProto.INT64)],
               {"x": (np.float32, [3])}, {"y": (np.int64, [3])}, 26)
    with pytest.raises(AttributeValueError) as e:
        onnxcc.compile(m, "host")
    assert "widen" in str(e.value) and "BitCast" in str(e.value) and "bit" in str(e.value)


# ---- LinearAttention ----------------------------------------------------------------------------
def _la_model(feeds: dict, outputs: list[str], **attrs) -> onnx.ModelProto:
    """One LinearAttention node ``la`` over query, key, value, past_state, decay, beta (absent
    ones omitted), opset 27."""
    order = ["query", "key", "value", "past_state", "decay", "beta"]
    names = [k if k in feeds else "" for k in order]
    while names[-1] == "":
        names.pop()
    node = helper.make_node("LinearAttention", names, outputs, name="la", **attrs)
    return _model([node], {k: (v.dtype, v.shape) for k, v in feeds.items()},
                  {k: (np.float32, None) for k in outputs if k}, 27)


def _la_feeds(rng, B=2, T=3, Hq=4, Hkv=2, Dk=4, Dv=5, past=False, decay=None, beta=None):
    def t(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    k = t(B, T, Hkv, Dk)
    k /= np.linalg.norm(k, axis=-1, keepdims=True)   # unit keys, as the delta rules expect
    f = {"query": t(B, T, Hq * Dk), "key": k.reshape(B, T, Hkv * Dk), "value": t(B, T, Hkv * Dv)}
    if past:
        f["past_state"] = t(B, Hkv, Dk, Dv)
    if decay:   # log-space decay, negative
        f["decay"] = -np.abs(t(B, T, Hkv * Dk if decay == "key" else Hkv))
    if beta:
        f["beta"] = 1 / (1 + np.exp(-t(B, T, Hkv if beta == "head" else 1)))
    return f


@pytest.mark.parametrize("rule, kw, attrs", [
    ("linear", {}, {}),
    ("linear", {"T": 1, "Hq": 2, "Hkv": 2}, {}),                            # decode, no GQA
    ("gated", {"decay": "key", "past": True}, {}),
    ("gated", {"decay": "head"}, {"scale": 0.3}),
    ("delta", {"beta": "head", "past": True}, {}),
    ("gated_delta", {"decay": "key", "beta": "one", "Hkv": 1}, {}),         # multi-query
    ("gated_delta", {"decay": "head", "beta": "head", "past": True, "T": 5}, {"chunk_size": 2}),
])
def test_linear_attention_vs_reference(rng, rule, kw, attrs):
    feeds = _la_feeds(rng, **kw)
    hq, hkv = kw.get("Hq", 4), kw.get("Hkv", 2)
    m = _la_model(feeds, ["y", "present"], q_num_heads=hq, kv_num_heads=hkv, update_rule=rule,
                  **attrs)
    want = _reference(m, feeds)
    for t in TARGETS:
        got = onnxcc.compile(m, t).run(feeds)
        for k, w in want.items():
            assert got[k].shape == w.shape and got[k].dtype == w.dtype, (t, k)
            np.testing.assert_allclose(got[k], w, rtol=1e-4, atol=1e-5, err_msg=f"{t} {k}")


def test_linear_attention_without_present_state_output(rng):
    """present_state omitted: the state lives in the kernel's own array (the arena's on MCUs)."""
    feeds = _la_feeds(rng, T=4, Dk=6, Dv=6, decay="key", beta="head")
    m = _la_model(feeds, ["y"], q_num_heads=4, kv_num_heads=2)
    full = _la_model(feeds, ["y", "present"], q_num_heads=4, kv_num_heads=2)
    want = _reference(full, feeds)["y"]
    for t in TARGETS:
        got = onnxcc.compile(m, t).run(feeds)["y"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=t)


@pytest.mark.parametrize("kw, attrs, words", [
    ({}, {"update_rule": "gated"}, ["requires", "decay"]),
    ({"decay": "key"}, {"update_rule": "linear"}, ["forbids", "decay"]),
    ({"decay": "key", "beta": "head"}, {"q_num_heads": 3}, ["q_num_heads=3", "multiple"]),
    ({"decay": "key", "beta": "head"}, {"update_rule": "fast"}, ["update_rule", "fast"]),
])
def test_linear_attention_bad_inputs_name_the_node(rng, kw, attrs, words):
    feeds = _la_feeds(rng, **kw)
    a = {"q_num_heads": 4, "kv_num_heads": 2, **attrs}
    m = _la_model(feeds, ["y", "present"], **a)
    with pytest.raises(AttributeValueError) as e:
        onnxcc.compile(m, "host")
    msg = str(e.value)
    assert "la" in msg and "LinearAttention" in msg and all(w in msg for w in words), msg


# ---- Resize with a roi known only at run time ---------------------------------------------------
def _resize_model(x_shape, roi_len, sizes=None, scales=None, **attrs) -> onnx.ModelProto:
    """Resize ``rz`` of graph inputs X and roi (float32, runtime), constant scales or sizes."""
    inits = {}
    names = ["X", "roi", "", ""]
    if sizes is not None:
        inits["sizes"], names[3] = np.array(sizes, np.int64), "sizes"
    else:
        inits["scales"], names[2] = np.array(scales, np.float32), "scales"
    node = helper.make_node("Resize", names[:4 if sizes is not None else 3], ["Y"], name="rz",
                            coordinate_transformation_mode="tf_crop_and_resize", **attrs)
    return _model([node], {"X": (np.float32, list(x_shape)), "roi": (np.float32, [roi_len])},
                  {"Y": (np.float32, None)}, 19, inits)


@pytest.mark.parametrize("shape, roi, kw", [
    ((1, 1, 5, 6), [0, 0, 0.2, 0.1, 1, 1, 0.9, 0.7], {"sizes": [1, 1, 4, 5], "mode": "linear"}),
    ((1, 1, 5, 6), [0, 0, -0.3, 0.4, 1, 1, 1.2, 0.6], {"sizes": [1, 1, 7, 3], "mode": "linear",
                                                      "extrapolation_value": 2.5}),
    ((2, 3, 4, 4), [0.6, 0.0, 0.8, 1.0], {"sizes": [3, 1], "mode": "linear", "axes": [3, 2]}),
    ((1, 2, 6, 5), [0.1, 0.25, 0.9, 0.75], {"scales": [1.5, 0.8], "mode": "linear",
                                            "axes": [2, 3]}),
    ((1, 1, 5, 6), [0, 0, 0.1, 0.37, 1, 1, 0.8, 1.1], {"sizes": [1, 1, 4, 6], "mode": "nearest"}),
    ((1, 1, 5, 6), [0, 0, 0.1, 0.37, 1, 1, 0.8, 1.1], {"sizes": [1, 1, 4, 6], "mode": "nearest",
                                                       "nearest_mode": "ceil"}),
])
def test_resize_runtime_roi_vs_ort(rng, shape, roi, kw):
    m = _resize_model(shape, len(roi), **kw)
    feeds = {"X": rng.standard_normal(shape).astype(np.float32),
             "roi": np.array(roi, np.float32)}
    # onnxruntime 1.31 ignores roi in nearest mode on an axis whose length does not change
    oracle = _reference if kw["mode"] == "nearest" else ort_run
    rois = (feeds["roi"], feeds["roi"][::-1].copy())   # the same code, another roi
    wants = [oracle(m, {"X": feeds["X"], "roi": r}) for r in rois]
    for t in TARGETS:
        cm = onnxcc.compile(m, t)
        for r, w in zip(rois, wants):
            f = {"X": feeds["X"], "roi": r}
            np.testing.assert_allclose(cm.run(f)["Y"], w["Y"], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{t} roi={r.tolist()}")


def test_resize_runtime_roi_cubic_is_refused_naming_the_node():
    m = _resize_model((1, 1, 4, 4), 8, sizes=[1, 1, 3, 3], mode="cubic")
    with pytest.raises(UnsupportedOpError) as e:
        onnxcc.compile(m, "host")
    msg = str(e.value)
    assert "rz" in msg and "Resize" in msg and "constant_inputs" in msg and "'roi'" in msg, msg


# ---- FlexAttention (ai.onnx.preview 1): its ONNX function body ---------------------------------
def _flex_model(q, k, v, score_mod=None, prob_mod=None, preview=True, **attrs):
    """One FlexAttention node ``fa`` over graph inputs Q, K, V (default opset 26)."""
    dt = q.dtype
    node = helper.make_node("FlexAttention", ["Q", "K", "V"], ["Y"], name="fa",
                            domain="ai.onnx.preview", **attrs)
    for key, g in (("score_mod", score_mod), ("prob_mod", prob_mod)):
        if g is not None:
            node.attribute.append(helper.make_attribute(key, g))
    m = _model([node], {"Q": (dt, q.shape), "K": (dt, k.shape), "V": (dt, v.shape)},
               {"Y": (dt, None)}, 26)
    if preview:
        m.opset_import.append(helper.make_opsetid("ai.onnx.preview", 1))
    return m


def _modifier(name: str, nodes, inits=()):
    """A score_mod/prob_mod subgraph: float32 ``s`` (B, H, S, L) -> ``t``."""
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", "H", "S", "L"])
          for n in ("s", "t")]
    return helper.make_graph(nodes, name, [vi[0]], [vi[1]], list(inits))


@pytest.mark.parametrize("kw", [
    {},
    {"gqa": True, "scale": 0.2},
    {"score_mod": "softcap"},
    {"score_mod": "causal", "gqa": True},
    {"prob_mod": "scale_half"},
    {"double": True},
])
def test_flex_attention_vs_reference(rng, kw):
    B, Hq, Hkv, S, L, D, Dv = 2, 4, (2 if kw.get("gqa") else 4), 3, 5, 8, 6
    dt = np.float64 if kw.get("double") else np.float32
    q = rng.standard_normal((B, Hq, S, D)).astype(dt)
    k = rng.standard_normal((B, Hkv, L, D)).astype(dt)
    v = rng.standard_normal((B, Hkv, L, Dv)).astype(dt)
    mods = {}
    if kw.get("score_mod") == "softcap":   # 2 * tanh(s / 2)
        c = numpy_helper.from_array(np.array(2.0, np.float32), "c")
        mods["score_mod"] = _modifier("softcap", [
            helper.make_node("Div", ["s", "c"], ["a"]), helper.make_node("Tanh", ["a"], ["b"]),
            helper.make_node("Mul", ["b", "c"], ["t"])], [c])
    elif kw.get("score_mod") == "causal":   # key j > query i gets -inf
        mask = np.where(np.arange(L)[None, :] > np.arange(S)[:, None], -np.inf, 0)
        mods["score_mod"] = _modifier("causal", [helper.make_node("Add", ["s", "m"], ["t"])],
                                      [numpy_helper.from_array(mask.astype(np.float32), "m")])
    if kw.get("prob_mod") == "scale_half":
        h = numpy_helper.from_array(np.array(0.5, np.float32), "h")
        mods["prob_mod"] = _modifier("half", [helper.make_node("Mul", ["s", "h"], ["t"])], [h])
    attrs = {"scale": kw["scale"]} if "scale" in kw else {}
    m = _flex_model(q, k, v, **mods, **attrs)
    feeds = {"Q": q, "K": k, "V": v}
    want = _reference(m, feeds)
    for t in TARGETS:
        got = onnxcc.compile(m, t).run(feeds)["Y"]
        assert got.dtype == want["Y"].dtype and got.shape == want["Y"].shape, t
        np.testing.assert_allclose(got, want["Y"], rtol=1e-4, atol=1e-5, err_msg=t)


def test_flex_attention_without_preview_opset_names_the_node(rng):
    q = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    m = _flex_model(q, q, q, preview=False)
    with pytest.raises(UnsupportedOpError) as e:
        onnxcc.compile(m, "host")
    msg = str(e.value)
    assert "fa" in msg and "FlexAttention" in msg and "ai.onnx.preview" in msg, msg


# ---- MelWeightMatrix ----------------------------------------------------------------------------
def _mel_model(M: int, n: int, edge_dt=np.float32, sr_dt=np.int64, **attrs):
    """MelWeightMatrix ``mel``: num_mel_bins and dft_length constants, sample_rate and the two
    edges graph inputs."""
    node = helper.make_node("MelWeightMatrix", ["M", "n", "sr", "lo", "hi"], ["W"], name="mel",
                            **attrs)
    out = helper.tensor_dtype_to_np_dtype(attrs.get("output_datatype", TensorProto.FLOAT))
    return _model([node], {"sr": (sr_dt, []), "lo": (edge_dt, []), "hi": (edge_dt, [])},
                  {"W": (out, None)}, 17,
                  {"M": np.array(M, sr_dt), "n": np.array(n, sr_dt)})


@pytest.mark.parametrize("M, n, sr, lo, hi, kw", [
    (8, 64, 16000, 20.0, 7000.0, {}),
    (5, 31, 8000, 300.0, 3000.0, {"sr_dt": np.int32}),
    (10, 16, 8000, 0.0, 4000.0, {"edge_dt": np.float64}),          # narrow triangles: l == c
    (6, 40, 22050, 100.0, 9000.0, {"output_datatype": TensorProto.DOUBLE}),
    (4, 32, 16000, 50.0, 7000.0, {"output_datatype": TensorProto.INT32}),
])
def test_mel_weight_matrix_vs_reference(M, n, sr, lo, hi, kw):
    kw = dict(kw)
    edt, sdt = kw.pop("edge_dt", np.float32), kw.pop("sr_dt", np.int64)
    m = _mel_model(M, n, edt, sdt, **kw)
    feeds = {"sr": np.array(sr, sdt), "lo": np.array(lo, edt), "hi": np.array(hi, edt)}
    want = _reference(m, feeds)["W"]
    assert want.any()
    for t in TARGETS:
        cm = onnxcc.compile(m, t)
        got = cm.run(feeds)["W"]
        assert got.dtype == want.dtype and got.shape == want.shape, t
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=t)
        f2 = {"sr": np.array(sr * 2, sdt), "lo": np.array(lo * 2, edt), "hi": feeds["hi"]}
        np.testing.assert_allclose(cm.run(f2)["W"], _reference(m, f2)["W"], rtol=1e-6,
                                   atol=1e-7, err_msg=f"{t}: other runtime values")


def test_mel_weight_matrix_runtime_size_names_the_node():
    node = helper.make_node("MelWeightMatrix", ["M", "n", "sr", "lo", "hi"], ["W"], name="mel")
    m = _model([node], {"M": (np.int64, []), "n": (np.int64, []), "sr": (np.int64, []),
                        "lo": (np.float32, []), "hi": (np.float32, [])},
               {"W": (np.float32, None)}, 17)
    with pytest.raises(ShapeError) as e:
        onnxcc.compile(m, "host")
    msg = str(e.value)
    assert "mel" in msg and "MelWeightMatrix" in msg and "constant_inputs" in msg, msg
