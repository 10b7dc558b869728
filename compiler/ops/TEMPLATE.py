"""Starter for a new op: copy this class into the family file and fill it in (not imported).

Checklist: attrs with spec defaults; infer (override when reference is heavy or data dependent);
reference (the ONNX spec semantics for every opset we accept: read ``node.version``); a lowering
into the loop IR in ``codegen/lower/<family>.py``; a test in ``tests/ops`` and its node cases in the conformance run.
"""

from __future__ import annotations

import numpy as np

from ..ir import Node, TensorType
from . import OpDef, attr, register_op


@register_op("MyOp", traits={"elementwise"})
class MyOp(OpDef):
    """ONNX MyOp: y = f(x; alpha). x: any shape, float; y: same shape and dtype."""

    attrs = {"alpha": 1.0}

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        return [TensorType(x.shape, x.dtype)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        return [(x * attr(node, "alpha")).astype(x.dtype)]
