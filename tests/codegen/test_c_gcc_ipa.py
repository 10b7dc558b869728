"""A kernel call gcc 12.2 -O2 deleted on x86-64: com.microsoft.QGemm with uint8 weights (zero point
128) whose weight and bias lie in one weight blob. gcc cloned the kernel for the constant weight
pointers, addressed a weight row from a null base in the vectorized loop, took that load for a
NULL access, found the kernel "pure" and dropped its call, so the C build returned whatever was
in the output buffer. ``ONNXCC_NOINLINE`` (runtime/include/onnxcc_rt.h) carries ``noipa`` on gcc;
this checks the C build against onnxruntime and the LLVM build."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnxcc

from builders import IR_VERSION, ort_run


def _qgemm_model(seed: int) -> onnx.ModelProto:
    r = np.random.default_rng(seed)
    k, n = 16, 10
    inits = {"a_scale": np.array(0.009, np.float32), "a_zp": np.array(0, np.uint8),
             "w": r.integers(0, 256, (n, k)).astype(np.uint8), "w_scale": np.array(0.007,
                                                                                 np.float32),
             "w_zp": np.array(128, np.uint8), "bias": r.integers(-3000, 3000, n).astype(np.int32),
             "y_scale": np.array(0.012, np.float32), "y_zp": np.array(192, np.uint8)}
    node = helper.make_node("QGemm", ["a", "a_scale", "a_zp", "w", "w_scale", "w_zp", "bias",
                                      "y_scale", "y_zp"], ["y"], domain="com.microsoft",
                            transB=1, name="qgemm")
    g = helper.make_graph([node], "qgemm", [helper.make_tensor_value_info(
        "a", TensorProto.UINT8, [1, k])], [helper.make_tensor_value_info(
            "y", TensorProto.UINT8, [1, n])],
        [numpy_helper.from_array(v, name) for name, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                            helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = IR_VERSION
    return m


def test_qgemm_call_kept_by_gcc_and_equal_to_onnxruntime():
    m = _qgemm_model(0)
    r = np.random.default_rng(1)
    xs = [r.integers(0, 256, (1, 16)).astype(np.uint8) for _ in range(8)]
    want = [ort_run(m, {"a": x})["y"] for x in xs]
    c, ll = onnxcc.compile(m, "host"), onnxcc.compile(m, "cpu")
    for x, w in zip(xs, want):
        np.testing.assert_array_equal(c.run({"a": x})["y"], w)
        np.testing.assert_array_equal(ll.run({"a": x})["y"], w)
