"""Small ONNX models in a few lines, and onnxruntime as the oracle."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13; onnx 1.23's make_model writes 14
#: int8 weights drawn from [-64, 64) ("reduce range", 7 bits) in tests against onnxruntime: its
#: 8-bit x int8 kernels on x86 CPUs without VNNI (AVX2's vpmaddubsw) saturate the sum of two
#: products at int16, so with full 8-bit weights its results depend on the machine (measured:
#: off by up to 198 LSB on an AVX2 machine). onnxruntime's quantizer has reduce_range for the
#: same reason. onnx.reference checks the full range exactly.
W7 = (-64, 64)


def make_model(nodes: Sequence[tuple], inputs: Mapping[str, tuple], outputs: Mapping[str, tuple],
               inits: Mapping[str, np.ndarray] | None = None, opset: int = 17,
               dtype: int = TensorProto.FLOAT, name: str = "g") -> onnx.ModelProto:
    """``nodes`` are ``(op, inputs, outputs)`` or ``(op, inputs, outputs, attrs)`` (node names
    n0, n1, ...); inputs/outputs map names to shapes (None: unknown shape)."""
    ns = [helper.make_node(t[0], list(t[1]), list(t[2]), name=f"n{k}", **(t[3] if len(t) > 3 else {}))
          for k, t in enumerate(nodes)]
    g = helper.make_graph(
        ns, name,
        [helper.make_tensor_value_info(k, dtype, s) for k, s in inputs.items()],
        [helper.make_tensor_value_info(k, dtype, s) for k, s in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m


def ort_run(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``model`` with onnxruntime on the CPU; returns output name -> array."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, dict(feeds))))
