"""The C renderer's inline round-half-to-even (``onnxcc_roundevenf``) and the inline clamps
of QuantizeLinear, bit for bit against numpy on ties, signed zeros, 2^23 and beyond, inf and
NaN."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from builders import make_model
import onnxcc

EDGES = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, -0.3, 0.3, -0.0, 0.0, 0.49999997,
                  -0.49999997, 8388607.5, -8388607.5, 8388608.0, 8388609.0, 1e30, -1e30,
                  np.inf, -np.inf, np.nan, 126.5, 127.5, -128.5, -129.5, 3.4e38, 1e-45],
                 np.float32)


def test_round_is_half_to_even_with_the_sign_of_zero_kept(rng):
    x = np.concatenate([EDGES, (rng.standard_normal(200) * 300).astype(np.float32),
                        np.arange(-40, 40, dtype=np.float32) / 4]).reshape(1, -1)
    m = make_model([("Round", ["x"], ["y"])], {"x": x.shape}, {"y": x.shape}, opset=13)
    cm = onnxcc.compile(m, "host")
    assert "onnxcc_roundevenf" in (cm.lib_dir / f"{cm.mmap['c_prefix']}.c").read_text()
    y = cm.run({"x": x})["y"]
    np.testing.assert_array_equal(y.view(np.uint32)[~np.isnan(x)],
                                  np.rint(x).view(np.uint32)[~np.isnan(x)])
    assert np.isnan(y[np.isnan(x)]).all()


def test_quantize_linear_clamps_inline_and_matches_numpy(rng):
    x = np.concatenate([EDGES[~np.isnan(EDGES)],
                        (rng.standard_normal(200) * 3).astype(np.float32)]).reshape(1, -1)
    scale, zp = np.float32(0.02), np.int8(-3)
    g = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.INT8, x.shape)],
        [numpy_helper.from_array(np.array(scale), "s"), numpy_helper.from_array(np.array(zp), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 10
    cm = onnxcc.compile(m, "host")
    src = (cm.lib_dir / f"{cm.mmap['c_prefix']}.c").read_text()
    assert "onnxcc_fmax_boundf" in src and "fmaxf(" not in src.replace("onnxcc_fmax_boundf", "")
    with np.errstate(over="ignore"):
        want = np.clip(np.rint(x / scale) + zp, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(cm.run({"x": x})["y"], want)
