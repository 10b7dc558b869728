"""onnxcc's fused ops, made by the fuse passes (never read from an ONNX file).

Their references reuse the ONNX ops' references, so a fused node computes exactly what the nodes
it replaced computed.

- ``onnxcc.FusedConv(X, W[, B])``: Conv's attributes, then ``activation`` applied to the result.
- ``onnxcc.FusedGemm(A, B[, C])``: Gemm's attributes (alpha, beta, transA, transB), then
  ``activation``. MatMul(2-D A, constant 2-D B) + Add(bias) becomes FusedGemm(A, B, bias).
- ``onnxcc.FusedElementwise(x0, x1, ...)``: a ``body`` of elementwise steps over the broadcast
  inputs.

The epilogue of FusedConv/FusedGemm: ``activation`` is the ONNX op name of an op with the
``fusable_epilogue`` trait, or ``""`` for none; ``activation_attrs`` is a tuple of
``(name, value)`` pairs sorted by name: the activation's attributes, plus, for an activation whose
extra inputs are scalar constants (:data:`EPILOGUE_INPUTS`: Clip's ``min``/``max``), those scalars
under their ONNX input names (an absent bound is left out).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Node, TensorType, Value
from . import REGISTRY, REQUIRED, OpDef, attr, get_op, register_op

# Activations whose inputs after the first may be fused when they are scalar constants: the ONNX
# input names, in input order. They are stored in ``activation_attrs`` under these names.
EPILOGUE_INPUTS: dict[str, tuple[str, ...]] = {"Clip": ("min", "max"), "PRelu": ("slope",)}


class _BaseAttrs:
    """``attrs`` of a fused op: the base ONNX op's schema (looked up when read, so the base op's
    family may load after this one) plus the epilogue attributes."""

    def __init__(self, base: str, extra: dict[str, Any]) -> None:
        self.base, self.extra = base, extra

    def __get__(self, obj: object, cls: type) -> dict[str, Any]:
        base = REGISTRY.get(self.base)
        return {**(base.attrs if base is not None else {}), **self.extra}


EPILOGUE_ATTRS = {"activation": "", "activation_attrs": ()}


def _as_node(node: Node, op: str, inputs: list[Value | None], attrs: dict[str, Any]) -> Node:
    return Node(op, inputs, list(node.outputs[:1]), attrs, node.name, node.version)


def _base_attrs(node: Node) -> dict[str, Any]:
    return {k: v for k, v in node.attrs.items() if k not in EPILOGUE_ATTRS}


def apply_activation(node: Node, y: np.ndarray) -> np.ndarray:
    """The epilogue of a FusedConv/FusedGemm ``node`` applied to ``y`` (same shape and dtype)."""
    act = attr(node, "activation")
    if not act:
        return y
    opdef = get_op(act)
    given = dict(attr(node, "activation_attrs"))
    attrs = {k: v for k, v in opdef.attrs.items() if v is not REQUIRED}
    attrs.update({k: v for k, v in given.items() if k in opdef.attrs})
    extra = [None if given.get(k) is None else np.asarray(given[k], y.dtype)
             for k in EPILOGUE_INPUTS.get(act, ())]
    while extra and extra[-1] is None:
        extra.pop()
    act_node = Node(act, [], list(node.outputs[:1]), attrs, node.name, node.version)
    (out,) = opdef.reference(act_node, y, *extra)
    return np.asarray(out).astype(y.dtype, copy=False)


class _FusedLinear(OpDef):
    base = ""
    min_inputs, max_inputs = 2, 3

    def infer(self, node: Node) -> list[TensorType]:
        return get_op(self.base).infer(_as_node(node, self.base, node.inputs, _base_attrs(node)))

    def reference(self, node: Node, *inputs: np.ndarray | None) -> list[np.ndarray]:
        base = _as_node(node, self.base, node.inputs, _base_attrs(node))
        (y,) = get_op(self.base).reference(base, *inputs)
        return [apply_activation(node, np.asarray(y))]


@register_op("onnxcc.FusedConv")
class FusedConv(_FusedLinear):
    """Conv then an activation. X is (N,C,H,W...), W is (M,C/group,kH,kW...), B is (M,);
    Y is (N,M,oH,oW...) = activation(Conv(X, W, B))."""

    base = "Conv"
    attrs = _BaseAttrs("Conv", EPILOGUE_ATTRS)  # type: ignore[assignment]


@register_op("onnxcc.FusedGemm")
class FusedGemm(_FusedLinear):
    """Gemm then an activation. A is (M,K) or (K,M) if transA, B is (K,N) or (N,K) if transB,
    C broadcasts to (M,N); Y is (M,N) = activation(alpha * A'B' + beta * C)."""

    base = "Gemm"
    attrs = _BaseAttrs("Gemm", EPILOGUE_ATTRS)  # type: ignore[assignment]


def run_body(node: Node, body: tuple, inputs: list[np.ndarray]) -> np.ndarray:
    """Evaluate a FusedElementwise ``body`` on ``inputs``; the last step's result (unbroadcast)."""
    results: list[np.ndarray] = []
    for k, (op, attrs, args) in enumerate(body):
        xs = [inputs[a] if a >= 0 else results[-a - 1] for a in args]
        vals: list[Value | None] = [Value(f"{node.name}/{k}/{j}", TensorType(np.shape(x), np.asarray(x).dtype))
                for j, x in enumerate(xs)]
        step = Node(op, vals, [], dict(attrs), f"{node.name}/{k}", node.version)
        (y,) = get_op(op).reference(step, *xs)[:1]
        results.append(np.asarray(y))
    return results[-1]


@register_op("onnxcc.FusedElementwise", traits={"elementwise"})
class FusedElementwise(OpDef):
    """Several elementwise ops in one loop nest. Inputs: any shapes broadcasting (numpy rules)
    to the output shape; output: that shape, dtype of the last step.

    ``body`` is a tuple of steps ``(op, attrs, args)``: ``op`` an ONNX elementwise op, ``attrs`` a
    tuple of (name, value) pairs sorted by name, ``args`` a tuple of ints: k >= 0 is node input k,
    k < 0 the result of step -k-1. The last step's result is the output.
    """

    attrs = {"body": REQUIRED}
    min_inputs, max_inputs = 1, -1

    def infer(self, node: Node) -> list[TensorType]:
        ins = [v for v in node.inputs if v is not None]  # the fuse pass never omits an input
        shape = np.broadcast_shapes(*(v.shape for v in ins))
        zeros = [np.zeros((), v.dtype) for v in ins]  # the dtype is all we need here
        with np.errstate(all="ignore"):
            y = run_body(node, attr(node, "body"), zeros)
        return [TensorType(shape, y.dtype)]

    def reference(self, node: Node, *inputs: np.ndarray | None) -> list[np.ndarray]:
        xs = [np.asarray(x) for x in inputs]
        shape = np.broadcast_shapes(*(x.shape for x in xs))
        y = run_body(node, attr(node, "body"), xs)
        return [np.array(np.broadcast_to(y, shape), order="C")]  # ascontiguousarray makes 0-d 1-d
