"""onnxruntime's contrib ops (domain ``com.microsoft``) that quantized models use.

onnxruntime's quantizer writes QOperator models with ops of its own domain. onnxcc imports:

- ``QGemm``, ``QLinearAdd``, ``QLinearMul`` and ``QLinearConcat`` as ops of the registry (``com.microsoft.QGemm``...,
  ``onnxcc.ops.quant``): integer tensors in and out;
- ``QLinearSigmoid``, ``QLinearLeakyRelu``, ``QLinearSoftmax``,
  ``QLinearGlobalAveragePool`` and ``QLinearAveragePool`` as their float
  op between DequantizeLinear and QuantizeLinear (:func:`expand`): the same numbers within the
  rounding of the float op, with integer tensors on both sides; ``fuse_qdq`` warns that the float
  op stays float.

Semantics follow onnxruntime's contrib op documentation (docs/ContribOperators.md): every
QLinear op's inputs are ``(X, X_scale, X_zero_point)`` triples and its output is quantized with
``(Y_scale, Y_zero_point)``. Only NCHW layouts are accepted (``channels_last=0``).
"""

from __future__ import annotations

import onnx
from onnx import helper

from .errors import UnsupportedOpError
from .ops import registry_key

DOMAIN = "com.microsoft"
NATIVE = {"QGemm", "QLinearAdd", "QLinearMul", "QLinearConcat"}      # registry ops
# op -> (float op, number of quantized inputs, attributes the float op keeps)
EXPANDED = {
    "QLinearSigmoid": ("Sigmoid", 1, ()),
    "QLinearLeakyRelu": ("LeakyRelu", 1, ("alpha",)),
    "QLinearSoftmax": ("Softmax", 1, ("axis",)),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", 1, ()),
    "QLinearAveragePool": ("AveragePool", 1, ("auto_pad", "ceil_mode", "count_include_pad",
                                              "kernel_shape", "pads", "strides")),
}
SUPPORTED = NATIVE | set(EXPANDED)


def registry_name(n: onnx.NodeProto) -> str:
    """The op registry's key of a node (:func:`onnxcc.ops.registry_key`): its op type in the
    default domain, else ``<domain>.<op type>``."""
    return registry_key(n.domain, n.op_type)


def problem(n: onnx.NodeProto) -> str | None:
    """Why a node of domain com.microsoft cannot be imported, or None."""
    if n.op_type not in SUPPORTED:
        return f"{DOMAIN} op {n.op_type} is not implemented (supported: {sorted(SUPPORTED)})"
    return None


def expand(n: onnx.NodeProto, name: str) -> list[onnx.NodeProto]:
    """A contrib node as default-domain nodes (DequantizeLinear -> float op -> QuantizeLinear),
    or ``[n]`` for a native one. Raises UnsupportedOpError naming the node for a layout or an
    input arity onnxcc does not take."""
    if n.op_type in NATIVE:
        return [n]
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    if attrs.get("channels_last"):
        raise UnsupportedOpError([(name, f"{DOMAIN}.{n.op_type}",
                                   "channels_last=1 is not supported (NCHW only)")])
    ins = list(n.input)
    tmp = lambda s: f"{name}__{s}"   # noqa: E731 - names private to this expansion
    nodes: list[onnx.NodeProto] = []
    op, n_in, keep = EXPANDED[n.op_type]
    need = 3 * n_in + 2
    if len(ins) < need - 1 or len(ins) > need:
        raise UnsupportedOpError([(name, f"{DOMAIN}.{n.op_type}",
                                   f"takes {need} inputs, got {len(ins)}")])
    ins += [""] * (need - len(ins))
    floats = []
    for k in range(n_in):
        f = tmp(f"x{k}")
        trip = ins[3 * k: 3 * k + 3]
        while trip and trip[-1] == "":
            trip.pop()
        nodes.append(helper.make_node("DequantizeLinear", trip, [f], name=tmp(f"dq{k}")))
        floats.append(f)
    y_scale, y_zp = ins[3 * n_in], ins[3 * n_in + 1]
    kept = {k: v for k, v in attrs.items() if k in keep}
    if n.op_type == "QLinearSoftmax" and int(attrs.get("opset", 13)) < 13:
        raise UnsupportedOpError([(name, f"{DOMAIN}.{n.op_type}",
                                   "the opset<13 (2-D coerced) Softmax form is not "
                                   "supported; re-quantize the model at opset 13 or newer")])
    nodes.append(helper.make_node(op, floats, [tmp("y")], name=tmp("op"), **kept))
    q_in = [tmp("y"), y_scale] + ([y_zp] if y_zp else [])
    nodes.append(helper.make_node("QuantizeLinear", q_in, [n.output[0]], name=name))
    return nodes
