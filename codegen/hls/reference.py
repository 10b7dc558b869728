"""The fixed-point reference: the planned graph evaluated in numpy with the HLS types, bit for bit.

Each node computes in exact arithmetic what its HLS kernel computes, then quantizes its output
to the output's type (rounding and saturation as the type states). Exact arithmetic is float64:
values of a fixed-point type with at most 53 significant bits are float64 numbers, and the
accumulators of ``onnxcc.codegen.hls.fixed`` are sized so that every product and sum of a layer
is exact (checked here: a type over 53 bits raises). What the kernels round besides the output
is reproduced as they do it:

- float literals (Clip bounds, LeakyRelu's alpha) have 16 fraction bits (``const_type``), and
  LeakyRelu's product is converted to the accumulator before the output (as rendered);
- average pooling divides the exact window sum by the count with the quotient truncated toward
  zero at the accumulator's fraction bits (ap_fixed division);
- TableSoftmax looks up its tables (converted to their weight types) at truncated indices.

Nodes of the integer path (int8/uint8 tensors: ``passes/qdq_integer.py``) compute with their
op's own numpy reference on integers, as the C int8 build does; the DequantizeLinear that starts
a float tail computes ``(x - zp) * scale`` in float32 (the design's C float) and its output is
then converted to its ap_fixed type like any other.

C-simulation of the generated project equals this reference exactly (tests), and the project's
own test bench compares against outputs written by it.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from onnxcc.ir import Graph, Node
from onnxcc.ops import get_op

from .fixed import BOOL_TYPE, FixedType, Precision, PrecisionError, const_type

SUPPORTED = frozenset({
    "Conv", "onnxcc.FusedConv", "Gemm", "onnxcc.FusedGemm", "MatMul", "MaxPool",
    "GlobalMaxPool", "AveragePool", "GlobalAveragePool", "Add", "Sub", "Mul", "Relu", "Clip",
    "LeakyRelu",
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Concat", "Transpose",
    "onnxcc.TableSoftmax", "Softmax", "onnxcc.TableActivation", "Sigmoid", "Tanh", "Pad",
    "Resize", "HardSigmoid", "PRelu", "Div", "Where", "GreaterOrEqual"})
ACTIVATIONS = ("", "Relu", "Clip", "LeakyRelu")
VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
# ops of the integer path (passes/qdq_integer.py): int8/uint8 in and out, int32 inside, the
# kernels of the C and LLVM targets' int8 builds rendered with ap_int storage
INTEGER_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "com.microsoft.QGemm", "com.microsoft.QLinearAdd",
    "com.microsoft.QLinearMul", "com.microsoft.QLinearConcat", "onnxcc.LookupTable", "MaxPool",
    "GlobalMaxPool", "Max", "Min", "Concat", "Transpose", "onnxcc.QSoftmax",
    "com.microsoft.QLinearAveragePool", "com.microsoft.QLinearGlobalAveragePool",
    "DequantizeLinear"}) | frozenset(VIEWS)


def integer_node(n: Node) -> bool:
    """Whether ``n`` computes on int8/uint8 tensors (the integer path)."""
    return any(v is not None and v.const is None and v.dtype in (np.int8, np.uint8)
               for v in list(n.inputs) + list(n.outputs))


def _tail_dequantize(n: Node) -> bool:
    """Whether DequantizeLinear ``n`` starts a float tail: a non-constant int8/uint8 tensor,
    constant per-tensor scale and zero point, a float32 output."""
    sz = [v for v in n.inputs[1:3] if v is not None]
    return (n.inputs[0].const is None and n.inputs[0].dtype in (np.int8, np.uint8)
            and n.outputs[0].dtype == np.float32
            and all(v.const is not None and np.asarray(v.const).size == 1 for v in sz))


def unsupported_reason(n: Node) -> str | None:
    """Why node ``n`` has no FPGA kernel, or None."""
    if n.op in ("QuantizeLinear", "DynamicQuantizeLinear") or (
            n.op == "DequantizeLinear" and not _tail_dequantize(n)):
        return ("a float <-> integer conversion inside the design: the FPGA integer path needs "
                "every op between the model's input QuantizeLinear and output DequantizeLinear "
                "fused into an integer kernel (QLinearConv, QGemm, QLinearAdd...), or float ops "
                "only after a per-tensor DequantizeLinear of int8/uint8 (a float tail)")
    if integer_node(n):
        return None if n.op in INTEGER_OPS else "no integer (ap_int) HLS kernel for this op yet"
    if n.op in ("Round", "Floor", "Ceil"):
        return (f"float {n.op} has no fixed-point form: a QONNX Quant or Trunc becomes an "
                "ap_fixed type only with power-of-two scalar scales, zero point 0, ROUND or FLOOR "
                "and (Trunc) an input already on its scale's grid, a full bit range (Trunc v2: "
                "narrow=0)")
    if n.op not in SUPPORTED:
        return "no HLS kernel for this op yet"
    if n.op in ("Sigmoid", "Tanh"):   # left by table_activation
        return f"only a float32 {n.op} has an FPGA kernel (a lookup table)"
    if n.op == "Softmax":   # left by table_softmax
        return "only a float32 Softmax over the last axis has an FPGA kernel (a lookup table)"
    bool_ok = n.op == "Where" or (n.op in VIEWS and n.inputs[0].dtype.kind == "b")
    if any(v is not None and v.dtype.kind != "f" and v.const is None and
           not (v.dtype.kind == "b" and bool_ok) for v in n.inputs):
        return "integer tensors are not supported on FPGA targets yet"
    if n.op.startswith("onnxcc.Fused") and (n.attrs.get("activation") or "") not in ACTIVATIONS:
        return f"fused activation {n.attrs.get('activation')} is not supported on FPGA targets yet"
    if n.op == "AveragePool" and int(n.attrs.get("ceil_mode") or 0):
        return "AveragePool with ceil_mode=1 is not supported on FPGA targets yet"
    if n.op == "Resize" and (n.attrs.get("mode") or "nearest") != "nearest":
        return "only nearest Resize has an FPGA kernel (linear interpolation is not exact yet)"
    if n.op == "Div" and (n.inputs[1].const is None or not np.all(np.asarray(n.inputs[1].const))
                          or n.inputs[0].const is not None):
        return "Div on FPGA targets needs a constant divisor without zeros"
    if n.op == "Pad" and len(n.inputs) > 3 and n.inputs[3] is not None:
        return "Pad with axes is not supported on FPGA targets yet"
    if n.op == "MatMul" and (len(n.inputs[0].shape) != 2 or n.inputs[1].const is None):
        return "only a 2-D MatMul with constant weights has an FPGA kernel"
    return None


def _exact(t: FixedType, what: str) -> None:
    if t.width > 53:
        raise PrecisionError(f"{what}: the {t} accumulator is wider than the float64 reference "
                             "computes exactly", hint="use narrower types")


def _literal(v: float) -> float:
    """A float literal as the kernel holds it (``const_type``: 16 fraction bits)."""
    return float(const_type([v]).quantize(np.float64(v)))


def _leaky(y: np.ndarray, alpha: float, acc: FixedType) -> np.ndarray:
    """LeakyRelu as rendered: ``x < 0 ? acc_t(x * alpha) : x`` with the literal alpha, the
    product exact in integers (it may pass float64's 53 bits) and converted to ``acc``."""
    a = const_type([alpha])
    a_raw = int(a.raw(np.float64(alpha)))
    x_raw = acc.raw(y)                                 # exact: y is a value of acc's grid
    prod = acc.quantize(x_raw.astype(object) * a_raw, frac=acc.frac + a.frac)
    return np.where(y < 0, prod, y)


def _activation(n: Node, y: np.ndarray, acc: FixedType) -> np.ndarray:
    act = n.attrs.get("activation") or ""
    a = dict(n.attrs.get("activation_attrs") or ())
    if act == "Relu":
        return np.maximum(y, 0.0)
    if act == "Clip":
        lo = _literal(a["min"]) if a.get("min") is not None else -np.inf
        hi = _literal(a["max"]) if a.get("max") is not None else np.inf
        return np.minimum(np.maximum(y, lo), hi)
    if act == "LeakyRelu":
        return _leaky(y, float(a.get("alpha", 0.01)), acc)
    return y


def _base(n: Node) -> Node:
    """The ONNX node a fused node extends (same inputs and attributes, no activation)."""
    attrs = {k: v for k, v in n.attrs.items() if k not in ("activation", "activation_attrs")}
    return Node(n.op.split(".")[-1].replace("Fused", ""), n.inputs, n.outputs, attrs, n.name)


def _window_sum(n: Node, x: np.ndarray) -> np.ndarray:
    """The exact sum over each pooling window (padding adds nothing): a depthwise Conv with a
    kernel of ones, in float64."""
    C = x.shape[1]
    if n.op == "GlobalAveragePool":
        return x.sum(axis=tuple(range(2, x.ndim)), keepdims=True)
    k = list(n.attrs["kernel_shape"])
    w = np.ones([C, 1] + k, np.float64)
    attrs = {a: n.attrs[a] for a in ("pads", "strides", "dilations", "auto_pad")
             if n.attrs.get(a) is not None}
    attrs["group"] = C
    conv = Node("Conv", list(n.inputs), list(n.outputs), attrs, n.name)
    return np.asarray(get_op("Conv").reference(conv, x, w, None)[0], np.float64)


def _counts(n: Node, x_shape: tuple[int, ...]) -> np.ndarray:
    from onnxcc.ops.nn import pool_counts

    if n.op == "GlobalAveragePool":
        return np.full((1,) * (len(x_shape) - 2), math.prod(x_shape[2:]), np.int64)
    from onnxcc.ops.nn import conv_geometry

    k = list(n.attrs["kernel_shape"])
    pb, pe, s, d, out = conv_geometry(n, x_shape, (1, 1, *k))
    return pool_counts(x_shape[2:], pb, pe, s, d, k, out,
                       bool(n.attrs.get("count_include_pad") or 0))


def _node(n: Node, args: list[np.ndarray | None], prec: Precision) -> np.ndarray:
    acc = prec.accum[n.name]
    op = n.op
    if op in ("Conv", "onnxcc.FusedConv", "Gemm", "onnxcc.FusedGemm", "MatMul"):
        _exact(acc, f"node {n.name!r}")
        base = _base(n)
        y = np.asarray(get_op(base).reference(base, *args)[0], np.float64)
        return _activation(n, y, acc)
    if op in ("AveragePool", "GlobalAveragePool"):
        _exact(acc, f"node {n.name!r}")
        s = _window_sum(n, args[0])
        cnt = _counts(n, args[0].shape).astype(np.float64)
        raw = acc.raw(s)   # exact: the sum has at most the input's fraction bits
        q = np.trunc(raw.astype(np.float64) / cnt)   # ap_fixed division: toward zero
        return np.ldexp(q, -acc.frac)
    if op == "Relu":
        return np.maximum(args[0], 0.0)
    if op == "Clip":
        lo = _literal(float(np.asarray(args[1]).reshape(-1)[0])) \
            if len(args) > 1 and args[1] is not None else -np.inf
        hi = _literal(float(np.asarray(args[2]).reshape(-1)[0])) \
            if len(args) > 2 and args[2] is not None else np.inf
        return np.minimum(np.maximum(args[0], lo), hi)
    if op == "LeakyRelu":
        return _leaky(args[0], float(n.attrs.get("alpha", 0.01)), acc)
    if op == "onnxcc.TableSoftmax":
        x, et, it = args
        shape = x.shape
        axis = int(n.attrs.get("axis", -1)) % x.ndim
        x = x.reshape(int(np.prod(shape[:axis], dtype=np.int64)), shape[axis])
        es, ins = float(n.attrs["exp_scale"]), float(n.attrs["inv_scale"])
        m = x.max(axis=-1, keepdims=True)
        idx = np.clip(np.trunc(np.minimum((m - x) * es, len(et) - 1)), 0, len(et) - 1)
        e = et[idx.astype(np.int64)]
        s = e.sum(axis=-1, keepdims=True)
        k = np.clip(np.trunc(np.minimum(s * ins, len(it) - 1)), 0, len(it) - 1)
        return (e * it[k.astype(np.int64)]).reshape(shape)
    if op == "Pad":
        vals = list(args)
        if len(vals) > 2 and vals[2] is not None:   # the pad value, a literal in the kernel
            vals[2] = np.asarray(_literal(float(np.asarray(vals[2]).reshape(-1)[0])))
        return np.asarray(get_op(n).reference(n, *vals)[0], np.float64)
    if op == "HardSigmoid":
        alpha, beta = float(n.attrs.get("alpha", 0.2)), float(n.attrs.get("beta", 0.5))
        return np.clip(args[0] * _literal(alpha) + _literal(beta), 0.0, 1.0)
    if op == "Div":   # ap_fixed division: the quotient truncated at the dividend's fraction bits
        xt = prec.values[n.inputs[0].name]
        wt = prec.weight(np.asarray(n.inputs[1].const))
        a = np.broadcast_to(xt.raw(args[0]), np.broadcast_shapes(args[0].shape, args[1].shape))
        b = np.broadcast_to(wt.raw(args[1]), a.shape).astype(np.int64)
        num = a.astype(np.int64) * (1 << wt.frac)
        q = np.sign(num) * np.sign(b) * (np.abs(num) // np.abs(b))
        return np.ldexp(q.astype(np.float64), -xt.frac)
    if op == "onnxcc.TableActivation":
        lo, sc = float(n.attrs["lo"]), float(n.attrs["scale"])
        pos = np.maximum((args[0] - lo) * sc, 0.0)          # exact: dyadic literals
        idx = np.clip(np.trunc(np.minimum(pos, len(args[1]) - 1)), 0, len(args[1]) - 1)
        return args[1][idx.astype(np.int64)]
    with np.errstate(all="ignore"):
        return np.asarray(get_op(n).reference(n, *args)[0], np.float64)


def reference(g: Graph, prec: Precision, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the planned graph ``g`` with the fixed-point types ``prec`` on ``inputs`` (name ->
    float array; converted to the inputs' types as the C-sim bridge converts them). Returns
    each graph output (name -> float64 array of exact fixed-point values)."""
    env: dict[str, np.ndarray] = {}
    for v in g.inputs:
        a = np.asarray(inputs[v.name], np.float64)
        t = prec.values[v.name]
        env[v.name] = (a != 0).astype(np.float64) if t is BOOL_TYPE else t.quantize(a)
    for n in g.nodes:
        args: list[np.ndarray | None] = []
        native = integer_node(n)   # the integer path: the op's own numpy semantics
        for v in n.inputs:
            if v is None:
                args.append(None)
            elif v.const is not None:
                c = np.asarray(v.const)
                args.append(prec.weight(c).quantize(c) if c.dtype.kind == "f" and not native
                            else c)
            else:
                args.append(env[v.name].astype(v.dtype) if native else env[v.name])
        if native:   # integer kernels; a tail's DequantizeLinear in float32 (C float)
            y = np.asarray(get_op(n).reference(n, *args)[0], np.float64)
        else:
            y = _node(n, args, prec)
        o = n.outputs[0]
        env[o.name] = prec.values[o.name].quantize(np.asarray(y, np.float64).reshape(o.shape))
    return {v.name: env[v.name] for v in g.outputs}
