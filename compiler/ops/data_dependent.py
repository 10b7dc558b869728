"""Ops whose output shape depends on the input values: NonZero, Unique, NonMaxSuppression.

onnxcc compiles static shapes (DESIGN.md), so these ops are accepted only where their inputs are
known at compile time (initializers, Constant outputs, or graph inputs bound with
``constant_inputs=`` / ``--constant-input``): the frontend then folds them into constants with
the ONNX reference implementation (``onnx.reference``, spec semantics of the node's opset). A
node whose inputs are not all known raises ShapeError naming the node, the op and the option that
binds them; no back end has a kernel for them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import OpDef, register_op

#: op -> (what its output length counts, input count range)
DATA_DEPENDENT = {
    "NonZero": ("the non-zero elements", 1, 1),
    "Unique": ("the distinct values", 1, 1),
    "NonMaxSuppression": ("the boxes kept", 2, 5),
}


class _FoldOnly(OpDef):
    """An op computed only at compile time, from constant inputs (see the module docstring)."""

    attrs: dict = {}

    def infer(self, node: Node) -> list[TensorType]:
        """Output types from the folded values. Raises ShapeError when an input is not a
        compile-time constant."""
        what = DATA_DEPENDENT[node.op][0]
        runtime = [v.name for v in node.inputs if v is not None and v.const is None]
        if runtime:
            raise ShapeError(
                f"its output length ({what}) depends on the values of {', '.join(map(repr, runtime))}"
                f", which are only known at run time, and onnxcc compiles static shapes",
                node=node.name, op=node.op,
                hint="bind those inputs at compile time with constant_inputs={...} "
                     "(CLI --constant-input NAME=VALUES) so the node folds into a constant")
        return [TensorType(np.shape(o), np.asarray(o).dtype)
                for o in self.reference(node, *[None if v is None else v.const
                                                for v in node.inputs])]

    def reference(self, node: Node, *inputs: np.ndarray | None) -> list[np.ndarray]:
        """The ONNX reference implementation of the node's opset (``onnx.reference``)."""
        from onnx.reference import ReferenceEvaluator

        names = [f"i{k}" if x is not None else "" for k, x in enumerate(inputs)]
        outs = [f"o{k}" for k in range(len(node.outputs))]
        attrs = {k: (v.encode() if isinstance(v, str) else v) for k, v in node.attrs.items()
                 if v is not None}
        proto = helper.make_node(node.op, names, outs, **attrs)
        graph = helper.make_graph(
            [proto], "fold",
            [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape)
             for n, x in zip(names, inputs) if x is not None],
            [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outs])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", node.version)])
        feeds = {n: x for n, x in zip(names, inputs) if x is not None}
        return [np.asarray(a) for a in ReferenceEvaluator(model).run(None, feeds)]


@register_op("NonZero")
class NonZero(_FoldOnly):
    """ONNX NonZero (opset 9, 13): int64 (rank, count) indices of x's non-zero elements in
    row-major order; folded at compile time (module docstring)."""


@register_op("Unique")
class Unique(_FoldOnly):
    """ONNX Unique (opset 11): y, indices, inverse_indices, counts of x (flattened, or along
    ``axis``; ``sorted`` default 1); folded at compile time (module docstring)."""

    attrs = {"sorted": 1, "axis": None}
    max_inputs = 1


@register_op("NonMaxSuppression")
class NonMaxSuppression(_FoldOnly):
    """ONNX NonMaxSuppression (opset 10, 11): int64 (kept, 3) rows [batch, class, box] of
    boxes (N,B,4) kept by scores (N,C,B); folded at compile time (module docstring)."""

    attrs = {"center_point_box": 0}
    min_inputs, max_inputs = 2, 5
