"""onnxruntime's contrib ops (domain ``com.microsoft``) that quantized models use.

onnxruntime's quantizer writes QOperator models with ops of its own domain. onnxcc imports:

- ``QGemm``, ``QLinearAdd``, ``QLinearMul`` and ``QLinearConcat`` as ops of the registry (``com.microsoft.QGemm``...,
  ``onnxcc.ops.quant``): integer tensors in and out;
- ``QLinearSigmoid``, ``QLinearLeakyRelu``, ``QLinearSoftmax``,
  ``QLinearGlobalAveragePool`` and ``QLinearAveragePool`` as their float
  op between DequantizeLinear and QuantizeLinear (:func:`expand`); ``fuse_qdq`` then makes
  Softmax and the average pools integer kernels (``onnxcc.ops.quant_int``: within 1 LSB of
  onnxruntime) and Sigmoid and LeakyRelu 256-entry lookup tables.

Its ``QuantizeLinear``/``DequantizeLinear`` (``UseQDQContribOps``, 16-bit QDQ below opset 21) are
refused by name, pointing at the opset-21 default-domain form, which onnxcc imports.

QONNX's ``Quant``, ``BipolarQuant`` and ``Trunc`` (v1 and v2) become the default-domain float ops
of their definitions (:func:`expand_quant`, :func:`expand_bipolar_quant`, :func:`expand_trunc`).

Semantics follow onnxruntime's contrib op documentation (docs/ContribOperators.md): every
QLinear op's inputs are ``(X, X_scale, X_zero_point)`` triples and its output is quantized with
``(Y_scale, Y_zero_point)``. Only NCHW layouts are accepted (``channels_last=0``).
"""

from __future__ import annotations

import numpy as np
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


# QONNX (github.com/fastmachinelearning/qonnx): the domains its exporters (Brevitas, QKeras via
# qonnx, FINN) write its Quant op under
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
QONNX_ROUNDING = {"ROUND": "Round", "FLOOR": "Floor", "CEIL": "Ceil"}
QONNX_OPS = ("Quant", "BipolarQuant", "Trunc")
DOMAINS = (DOMAIN, *QONNX_DOMAINS)   # the domains this module imports


def registry_name(n: onnx.NodeProto) -> str:
    """The op registry's key of a node (:func:`onnxcc.ops.registry_key`): its op type in the
    default domain, else ``<domain>.<op type>``."""
    return registry_key(n.domain, n.op_type)


def problem(n: onnx.NodeProto) -> str | None:
    """Why a node of :data:`DOMAINS` (com.microsoft, QONNX) cannot be imported, or None."""
    if n.domain in QONNX_DOMAINS:
        if n.op_type not in QONNX_OPS:
            return (f"QONNX op {n.op_type} is not implemented ({', '.join(QONNX_OPS)} are)")
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        mode = attrs.get("rounding_mode", b"FLOOR" if n.op_type == "Trunc" else b"ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if mode.upper() not in QONNX_ROUNDING:
            return (f"rounding_mode {mode!r} is not supported "
                    f"({', '.join(QONNX_ROUNDING)} are)")
        return None
    if n.domain != DOMAIN:
        return (f"domain {n.domain!r} is not supported (the default ONNX domain, "
                f"{DOMAIN}'s quantized ops and QONNX's Quant, BipolarQuant and Trunc are)")
    if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
        # onnxruntime's quantize_static(extra_options={"UseQDQContribOps": True}) writes these
        # for 16-bit activations below opset 21; without the option it writes opset-21 ones
        return (f"{DOMAIN} op {n.op_type} is not implemented: quantize the model without "
                "UseQDQContribOps (onnxruntime then writes the opset-21 QuantizeLinear/"
                "DequantizeLinear, which take int16, and onnxcc imports)")
    if n.op_type not in SUPPORTED:
        return f"{DOMAIN} op {n.op_type} is not implemented (supported: {sorted(SUPPORTED)})"
    return None


def expanded_op(op_name: str, q_name: str) -> bool:
    """Whether a float op named ``op_name`` read by the QuantizeLinear ``q_name`` is the middle
    of a contrib node :func:`expand` split (its names: ``<node>__op``, then ``<node>``), so that a
    rewrite back to an integer op keeps the contrib op's own semantics."""
    return op_name == f"{q_name}__op"


def expand(n: onnx.NodeProto, name: str) -> list[onnx.NodeProto]:
    """A contrib node as default-domain nodes (DequantizeLinear -> float op -> QuantizeLinear),
    or ``[n]`` for a native one. Raises UnsupportedOpError naming the node for a layout or an
    input arity onnxcc does not take."""
    if n.domain in QONNX_DOMAINS:
        if n.op_type == "BipolarQuant":
            return expand_bipolar_quant(n, name)
        if n.op_type == "Trunc":
            return expand_trunc(n, name)
        return expand_quant(n, name)
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


def expand_quant(n: onnx.NodeProto, name: str) -> list[onnx.NodeProto]:
    """QONNX ``Quant(x, scale, zeropt, bitwidth)`` as default-domain float ops, exactly its
    definition (QONNX docs/qonnx-custom-ops/quant_op.md):

        q = clip(round(x / scale + zeropt), qmin, qmax);  y = (q - zeropt) * scale

    with ``qmin, qmax`` = ``-2**(b-1) + narrow, 2**(b-1) - 1`` (signed) or ``0, 2**b - 1 -
    narrow`` (unsigned), computed from ``bitwidth`` by nodes that fold at import; ``round`` is
    the rounding mode (ROUND: half to even, as ONNX Round; FLOOR; CEIL). Scale and zero point
    broadcast (per-channel scales are ``(C, 1, 1)``-shaped). On FPGA targets ``qdq_fixed``
    turns the chain into the tensor's ap_fixed type; elsewhere it runs as float ops (the same
    numbers). Raises UnsupportedOpError naming the node for a malformed arity."""
    if len(n.input) != 4 or "" in n.input:
        raise UnsupportedOpError([(name, f"{n.domain}.Quant",
                                   f"takes 4 inputs (x, scale, zeropt, bitwidth), got "
                                   f"{len(n.input)}")])
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    signed, narrow = int(attrs.get("signed", 1)), int(attrs.get("narrow", 0))
    mode = attrs.get("rounding_mode", b"ROUND")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
    x, scale, zp, bits = n.input
    tmp = lambda s: f"{name}__{s}"   # noqa: E731 - names private to this expansion
    F = onnx.TensorProto.FLOAT
    c = lambda nm, v: helper.make_node("Constant", [], [tmp(nm)], name=tmp(nm),  # noqa: E731
                                       value=helper.make_tensor(tmp(nm), F, [], [float(v)]))
    nodes = [c("one", 1.0), c("two", 2.0), c("narrow", float(narrow)),
             helper.make_node("Cast", [bits], [tmp("b")], to=F, name=tmp("b")),
             helper.make_node("Sub" if signed else "Identity",
                              [tmp("b"), tmp("one")] if signed else [tmp("b")], [tmp("e")],
                              name=tmp("e")),
             helper.make_node("Pow", [tmp("two"), tmp("e")], [tmp("half")], name=tmp("half"))]
    if signed:   # [-2**(b-1) + narrow, 2**(b-1) - 1]
        nodes += [helper.make_node("Neg", [tmp("half")], [tmp("nh")], name=tmp("nh")),
                  helper.make_node("Add", [tmp("nh"), tmp("narrow")], [tmp("qmin")],
                                   name=tmp("qmin")),
                  helper.make_node("Sub", [tmp("half"), tmp("one")], [tmp("qmax")],
                                   name=tmp("qmax"))]
    else:        # [0, 2**b - 1 - narrow]
        nodes += [c("qmin", 0.0),
                  helper.make_node("Sub", [tmp("half"), tmp("one")], [tmp("m1")], name=tmp("m1")),
                  helper.make_node("Sub", [tmp("m1"), tmp("narrow")], [tmp("qmax")],
                                   name=tmp("qmax"))]
    nodes += [helper.make_node("Div", [x, scale], [tmp("xs")], name=tmp("div")),
              helper.make_node("Add", [tmp("xs"), zp], [tmp("xz")], name=tmp("add")),
              helper.make_node(QONNX_ROUNDING[mode], [tmp("xz")], [tmp("r")], name=tmp("round")),
              helper.make_node("Clip", [tmp("r"), tmp("qmin"), tmp("qmax")], [tmp("q")],
                               name=tmp("clip")),
              helper.make_node("Sub", [tmp("q"), zp], [tmp("qz")], name=tmp("sub")),
              helper.make_node("Mul", [tmp("qz"), scale], [n.output[0]], name=name)]
    return nodes


def expand_bipolar_quant(n: onnx.NodeProto, name: str) -> list[onnx.NodeProto]:
    """QONNX ``BipolarQuant(x, scale)`` as default-domain float ops, its definition (QONNX
    docs/qonnx-custom-ops/bipolarquant_v1.md): ``y = where(x >= 0, 1, -1) * scale`` (a NaN is
    not >= 0: -scale), the scale broadcast. Raises UnsupportedOpError naming the node for a
    malformed arity."""
    if len(n.input) != 2 or "" in n.input:
        raise UnsupportedOpError([(name, f"{n.domain}.BipolarQuant",
                                   f"takes 2 inputs (x, scale), got {len(n.input)}")])
    x, scale = n.input
    tmp = lambda s: f"{name}__{s}"   # noqa: E731 - names private to this expansion
    F = onnx.TensorProto.FLOAT
    c = lambda nm, v: helper.make_node("Constant", [], [tmp(nm)], name=tmp(nm),  # noqa: E731
                                       value=helper.make_tensor(tmp(nm), F, [], [float(v)]))
    return [c("zero", 0.0), c("one", 1.0), c("minus", -1.0),
            helper.make_node("GreaterOrEqual", [x, tmp("zero")], [tmp("ge")], name=tmp("ge")),
            helper.make_node("Where", [tmp("ge"), tmp("one"), tmp("minus")], [tmp("sign")],
                             name=tmp("sign")),
            helper.make_node("Mul", [tmp("sign"), scale], [n.output[0]], name=name)]


def expand_trunc(n: onnx.NodeProto, name: str) -> list[onnx.NodeProto]:
    """QONNX ``Trunc`` as default-domain float ops, its definition in either version (QONNX
    docs/qonnx-custom-ops/trunc_v1.md and trunc_v2.md; ``rounding_mode`` FLOOR by default):

    - v1, ``Trunc(x, scale, zeropt, in_bitwidth, out_bitwidth)`` (Brevitas' TruncIntQuant):
      ``q = round(x / scale + zeropt) / 2**(in_bitwidth - out_bitwidth)``,
      ``y = (rnd(q) - zeropt) * scale``;
    - v2, ``Trunc(x, scale, zeropt, in_bitwidth, out_scale, out_bitwidth)`` with ``signed``
      and ``narrow``: ``t = 2**round(log2(out_scale / scale))``, ``q = clip(round(x / scale +
      zeropt) / t, qmin, qmax)`` (the output's ``out_bitwidth`` range, as Quant's),
      ``y = (rnd(q) - zeropt / t) * out_scale``;

    ``round`` half to even (numpy's, ONNX Round), ``rnd`` the rounding mode. The version is read
    from the number of inputs (5 or 6). Raises UnsupportedOpError naming the node for another
    arity."""
    if len(n.input) not in (5, 6) or "" in n.input:
        raise UnsupportedOpError([(name, f"{n.domain}.Trunc",
                                   f"takes 5 inputs (x, scale, zeropt, in_bitwidth, out_bitwidth) "
                                   f"or 6 (..., in_bitwidth, out_scale, out_bitwidth), got "
                                   f"{len(n.input)}")])
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    mode = attrs.get("rounding_mode", b"FLOOR")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
    signed, narrow = int(attrs.get("signed", 1)), int(attrs.get("narrow", 0))
    tmp = lambda s: f"{name}__{s}"   # noqa: E731 - names private to this expansion
    F = onnx.TensorProto.FLOAT
    c = lambda nm, v: helper.make_node("Constant", [], [tmp(nm)], name=tmp(nm),  # noqa: E731
                                       value=helper.make_tensor(tmp(nm), F, [], [float(v)]))
    mk = lambda op, ins, out, **kw: helper.make_node(op, ins, [tmp(out)], name=tmp(out),  # noqa: E731
                                                     **kw)
    x, scale, zp, in_bits = n.input[:4]
    nodes = [c("one", 1.0), c("two", 2.0),
             mk("Div", [x, scale], "xs"), mk("Add", [tmp("xs"), zp], "xz"),
             mk("Round", [tmp("xz")], "r")]
    if len(n.input) == 5:
        out_bits = n.input[4]
        nodes += [mk("Cast", [in_bits], "ib", to=F), mk("Cast", [out_bits], "ob", to=F),
                  mk("Sub", [tmp("ib"), tmp("ob")], "tb"), mk("Pow", [tmp("two"), tmp("tb")], "t"),
                  mk("Div", [tmp("r"), tmp("t")], "q"),
                  mk(QONNX_ROUNDING[mode], [tmp("q")], "qi"),
                  mk("Sub", [tmp("qi"), zp], "qz"),
                  helper.make_node("Mul", [tmp("qz"), scale], [n.output[0]], name=name)]
        return nodes
    out_scale, out_bits = n.input[4], n.input[5]
    nodes += [c("ln2", float(np.float32(np.log(2.0)))), c("narrow", float(narrow)),
              mk("Div", [out_scale, scale], "ratio"), mk("Log", [tmp("ratio")], "lr"),
              mk("Div", [tmp("lr"), tmp("ln2")], "l2"), mk("Round", [tmp("l2")], "e"),
              mk("Pow", [tmp("two"), tmp("e")], "t"),
              mk("Cast", [out_bits], "b", to=F)]
    if signed:   # [-2**(b-1) + narrow, 2**(b-1) - 1]
        nodes += [mk("Sub", [tmp("b"), tmp("one")], "bm"), mk("Pow", [tmp("two"), tmp("bm")], "h"),
                  mk("Neg", [tmp("h")], "nh"), mk("Add", [tmp("nh"), tmp("narrow")], "qmin"),
                  mk("Sub", [tmp("h"), tmp("one")], "qmax")]
    else:        # [0, 2**b - 1 - narrow]
        nodes += [c("qmin", 0.0), mk("Pow", [tmp("two"), tmp("b")], "h"),
                  mk("Sub", [tmp("h"), tmp("one")], "hm"),
                  mk("Sub", [tmp("hm"), tmp("narrow")], "qmax")]
    nodes += [mk("Div", [tmp("r"), tmp("t")], "q"),
              mk("Clip", [tmp("q"), tmp("qmin"), tmp("qmax")], "qc"),
              mk(QONNX_ROUNDING[mode], [tmp("qc")], "qi"),
              mk("Div", [zp, tmp("t")], "zt"),
              mk("Sub", [tmp("qi"), tmp("zt")], "qz"),
              helper.make_node("Mul", [tmp("qz"), out_scale], [n.output[0]], name=name)]
    return nodes
