"""Attention, RMSNormalization, RotaryEmbedding, Swish, SwiGLU, LpNormalization,
GroupNormalization, LpPool and MeanVarianceNormalization through the public API on host and
cortex-m4 C and cpu LLVM, against onnxruntime (onnx.reference where onnxruntime lacks the op or
the form); the errors a user can cause."""

from __future__ import annotations

import numpy as np
import onnx
import onnxcc
import pytest
from builders import IR_VERSION, ort_run
from onnx import TensorProto, helper
from onnxcc.errors import AttributeValueError

TARGETS = ("host", "cortex-m4", "cpu")


def model(op: str, inputs: dict, outputs: list[str], opset: int, **attrs) -> onnx.ModelProto:
    """One ``op`` node over graph inputs (name -> array, '' for an omitted input)."""
    names = list(inputs)
    node = helper.make_node(op, [n if inputs[n] is not None else "" for n in names], outputs,
                            name="n0", **attrs)
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for k, v in inputs.items() if v is not None]
    outs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, None) for k in outputs]
    g = helper.make_graph([node], "g", ins, outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m


def check(m: onnx.ModelProto, feeds: dict, oracle: str = "onnxruntime", rtol=1e-4, atol=1e-5):
    """Every output on every target against onnxruntime (or onnx.reference)."""
    if oracle == "onnxruntime":
        want = ort_run(m, feeds)
    else:
        from onnx.reference import ReferenceEvaluator

        names = [o.name for o in m.graph.output]
        want = dict(zip(names, ReferenceEvaluator(m).run(None, feeds)))
    for t in TARGETS:
        got = onnxcc.compile(m, t).run(feeds)
        for k, w in want.items():
            assert got[k].shape == w.shape and got[k].dtype == w.dtype, (t, k)
            np.testing.assert_allclose(got[k], w, rtol=rtol, atol=atol, err_msg=f"{t} {k}")


def _attention_feeds(rng, B=2, Hq=4, Hkv=2, S=3, T=5, P=0, D=8, Dv=6, rank3=False,
                     mask=None):
    def t(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    if rank3:
        f = {"Q": t(B, S, Hq * D), "K": t(B, T, Hkv * D), "V": t(B, T, Hkv * Dv)}
    else:
        f = {"Q": t(B, Hq, S, D), "K": t(B, Hkv, T, D), "V": t(B, Hkv, T, Dv)}
    L = P + T
    f["attn_mask"] = (None if mask is None else rng.random((S, L)) > 0.3 if mask == "bool"
                      else t(1, Hq, S, L - (mask == "padded")))   # padded: -inf past it
    f["past_key"] = t(B, Hkv, P, D) if P else None
    f["past_value"] = t(B, Hkv, P, Dv) if P else None
    return f


@pytest.mark.parametrize("kw, attrs", [
    ({}, {}),                                                       # GQA, default scale
    ({"P": 4, "mask": "float"}, {"is_causal": 1}),                  # past + padded float mask
    ({"mask": "bool"}, {"scale": 0.3, "softcap": 2.5}),
    ({"rank3": True, "P": 2}, {"q_num_heads": 4, "kv_num_heads": 2, "is_causal": 1}),
])
def test_attention_vs_ort(rng, kw, attrs):
    feeds = _attention_feeds(rng, **kw)
    outs = ["Y"] + (["present_key", "present_value"] if kw.get("P") else [])
    m = model("Attention", feeds, outs, 23, **attrs)
    check(m, {k: v for k, v in feeds.items() if v is not None})


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_qk_matmul_output(rng, mode):
    # onnxruntime 1.31 computes modes 1 and 2 otherwise than onnx's reference (which the node
    # cases follow): checked against onnx.reference
    feeds = _attention_feeds(rng, Hq=2, Hkv=2, P=2, mask="padded")
    m = model("Attention", feeds, ["Y", "present_key", "present_value", "qk"], 23,
              qk_matmul_output_mode=mode, softcap=3.0)
    check(m, {k: v for k, v in feeds.items() if v is not None}, oracle="reference")


def test_attention_nonpad_and_window(rng):
    feeds = _attention_feeds(rng, B=2, Hq=2, Hkv=1, S=2, T=6)
    feeds["nonpad_kv_seqlen"] = np.array([6, 3], np.int64)
    m = model("Attention", feeds, ["Y"], 25, is_causal=1, left_window_size=2)
    check(m, {k: v for k, v in feeds.items() if v is not None}, oracle="reference")


def test_attention_bad_heads_names_the_node(rng):
    feeds = _attention_feeds(rng, rank3=True)
    m = model("Attention", feeds, ["Y"], 23, q_num_heads=3, kv_num_heads=2)
    with pytest.raises(AttributeValueError, match="n0"):
        onnxcc.compile(m, "host")


@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_rms_normalization_vs_ort(rng, axis):
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    w = rng.standard_normal(x.shape[axis % 3:]).astype(np.float32)
    check(model("RMSNormalization", {"x": x, "w": w}, ["y"], 23, axis=axis, epsilon=1e-3),
          {"x": x, "w": w})


@pytest.mark.parametrize("attrs, rank3, pos", [
    ({}, False, True), ({"interleaved": 1}, False, True),
    ({"rotary_embedding_dim": 4, "num_heads": 2}, True, True), ({"interleaved": 1}, False, False),
])
def test_rotary_embedding_vs_ort(rng, attrs, rank3, pos):
    B, H, S, D = 2, 2, 3, 8
    R = attrs.get("rotary_embedding_dim", D)
    x = rng.standard_normal((B, S, H * D) if rank3 else (B, H, S, D)).astype(np.float32)
    cache = (10, R // 2) if pos else (B, S, R // 2)
    feeds = {"x": x, "cos": rng.standard_normal(cache).astype(np.float32),
             "sin": rng.standard_normal(cache).astype(np.float32)}
    if pos:
        feeds["pos"] = rng.integers(0, 10, (B, S)).astype(np.int64)
    check(model("RotaryEmbedding", feeds, ["y"], 23, **attrs), feeds)


def test_swish_vs_reference(rng):
    x = (rng.standard_normal((3, 7)) * 20).astype(np.float32)
    check(model("Swish", {"x": x}, ["y"], 24, alpha=0.7), {"x": x}, oracle="reference")


def test_swiglu_vs_reference(rng):
    a = (rng.standard_normal((3, 7)) * 20).astype(np.float32)
    b = rng.standard_normal((3, 7)).astype(np.float32)
    check(model("SwiGLU", {"a": a, "b": b}, ["y"], 28, alpha=1.3), {"a": a, "b": b},
          oracle="reference")


@pytest.mark.parametrize("p, axis", [(1, 1), (2, -1), (2, 0)])
def test_lp_normalization_vs_ort(rng, p, axis):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x[0, :, 0] = 0     # a zero norm along axis 1
    check(model("LpNormalization", {"x": x}, ["y"], 13, p=p, axis=axis), {"x": x})


@pytest.mark.parametrize("opset, per_group", [(21, False), (18, True)])
def test_group_normalization(rng, opset, per_group):
    x = rng.standard_normal((2, 6, 3, 4)).astype(np.float32)
    n = 3 if per_group else 6
    feeds = {"x": x, "scale": rng.standard_normal(n).astype(np.float32),
             "bias": rng.standard_normal(n).astype(np.float32)}
    # onnxruntime 1.31 has GroupNormalization 21 only; opset 18's per-group form: onnx.reference
    check(model("GroupNormalization", feeds, ["y"], opset, num_groups=3, epsilon=1e-3), feeds,
          oracle="reference" if per_group else "onnxruntime")


@pytest.mark.parametrize("p, attrs", [
    (2, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]}),
    (3, {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"}),
    (1, {"kernel_shape": [2], "dilations": [2]}),
])
def test_lp_pool_vs_ort(rng, p, attrs):
    shape = (1, 3, 9) if len(attrs["kernel_shape"]) == 1 else (1, 3, 7, 8)
    x = rng.standard_normal(shape).astype(np.float32)
    check(model("LpPool", {"x": x}, ["y"], 18, p=p, **attrs), {"x": x})


@pytest.mark.parametrize("axes", [[0, 2, 3], [1], [2, 3]])
def test_mean_variance_normalization_vs_ort(rng, axes):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    check(model("MeanVarianceNormalization", {"x": x}, ["y"], 13, axes=axes), {"x": x},
          rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("offset, sd", [(1000.0, 0.1), (1e4, 1.0)])
def test_mean_variance_normalization_of_data_with_an_offset(rng, offset, sd):
    """x = offset + sd * N(0, 1) (a sensor's DC level): the variance is the mean of squared
    deviations (two passes, as onnxruntime), not the function body's mean(x^2) - mean^2, which
    cancels in float32: every output was NaN at 1000 + 0.1 N(0, 1), and 1e9 off (with NaNs) at
    1e4 + N(0, 1). Measured now: within 3e-3 of the float64 result (onnxruntime: 1e-3)."""
    x = (offset + sd * rng.standard_normal((1, 3, 8, 8))).astype(np.float32)
    m = model("MeanVarianceNormalization", {"x": x}, ["y"], 13)
    check(m, {"x": x}, rtol=0, atol=5e-3)
    a = x.astype(np.float64)
    exact = (a - a.mean((0, 2, 3), keepdims=True)) / a.std((0, 2, 3), keepdims=True)
    from onnxcc.interpreter import interpret

    y = interpret(onnxcc.compile(m, "host").graph, {"x": x})["y"]
    np.testing.assert_allclose(y, exact, rtol=0, atol=5e-3)
