"""fuse_conv_activation: Conv/Gemm/MatMul + bias Add + activation -> onnxcc.FusedConv/FusedGemm.

    %c = Conv(%x, %w, %b*); %d = Add(%c, %k*); %y = Relu(%d)
        ==>  %y = onnxcc.FusedConv(%x, %w, %b'*) {..Conv attrs.., activation='Relu',
                                                  activation_attrs=[]}          b' = b + k
    %m = MatMul(%a, %w*); %d = Add(%m, %k*); %y = Clip(%d, %lo*, %hi*)     (a, w 2-D)
        ==>  %y = onnxcc.FusedGemm(%a, %w*, %k*) {alpha=1.0, beta=1.0, transA=0, transB=0,
                                                  activation='Clip',
                                                  activation_attrs=[[max,6.0],[min,0.0]]}
    %g = Gemm(%a, %w, %c*); %y = Add(%g, %k*)  ==>  %y = Gemm(%a, %w, %c'*) {beta=1.0}

The bias Add folds into Conv/Gemm's bias when its constant is per output channel (Conv: (C,1,1),
(1,C,1,1), scalar) or broadcasts to (M, N) (Gemm); a Conv/Gemm without an activation stays a
Conv/Gemm. The activation is any op with the ``fusable_epilogue`` trait whose further inputs are
absent or scalar constants (see ``onnxcc.ops.fused.EPILOGUE_INPUTS``).
Preconditions: after fold_batchnorm (so BN is already in the weights) and canonicalize.
Ordering: before fuse_elementwise, which would otherwise absorb the activations.
"""

from __future__ import annotations

from typing import Any as AnyT

import numpy as np
from onnxcc.ir import Graph, Node, Value
from onnxcc.ops import attr, get_op
from onnxcc.ops.fused import EPILOGUE_INPUTS

from .fold_batchnorm import channel_vector
from .manager import graph_pass
from .pattern import Any, Const, Match, Op, rewrite


def _no_activation(n: Node) -> bool:
    return not n.attrs.get("activation")


def _matmul_2d(n: Node) -> bool:
    return len(n.inputs[0].shape) == 2 and len(n.inputs[1].shape) == 2


def _is_epilogue(n: Node) -> bool:
    return len(n.outputs) == 1 and "fusable_epilogue" in get_op(n).traits


def _bias(n: Node) -> Value | None:
    return n.inputs[2] if len(n.inputs) > 2 else None


def conv_bias(m: Match) -> Node | None:
    """Conv + Add(per-channel constant) -> Conv with the constant added to its bias."""
    conv, k, out = m["conv"], m["k"], m.root.outputs[0]
    b = _bias(conv)
    v = channel_vector(k.const, out.shape, 1)
    if v is None or out.dtype.kind != "f" or (b is not None and not b.is_const) \
            or typed_apart(m, conv, m.root):
        return None
    b2 = (v if b is None else np.asarray(b.const, np.float64) + v).astype(out.dtype)
    ins = [conv.inputs[0], conv.inputs[1], m.graph.constant(f"{conv.name}_b", b2)]
    return Node(conv.op, ins, [out], dict(conv.attrs), conv.name, conv.version)


def _gemm_c(m: Match, lin: Node) -> np.ndarray | None:
    """The new C (beta folded in) of ``lin`` + Add(constant k), or None."""
    k, out = m["k"].const, m.root.outputs[0]
    c = _bias(lin)
    # k must broadcast to the product's (M, N): an Add whose k has more dims (or larger ones)
    # makes a bigger tensor than the Gemm can produce
    if (out.dtype.kind != "f" or out.shape != lin.outputs[0].shape
            or np.broadcast_shapes(k.shape, out.shape) != out.shape):
        return None
    if c is None:
        return np.asarray(k).astype(out.dtype)
    if not c.is_const:
        return None
    beta = float(attr(lin, "beta")) if lin.op != "MatMul" else 1.0
    return (np.asarray(c.const, np.float64) * beta + np.asarray(k, np.float64)).astype(out.dtype)


def gemm_bias(m: Match) -> Node | None:
    """Gemm + Add(constant broadcasting to (M, N)) -> Gemm with beta 1 and the sum as C."""
    gemm = m["gemm"]
    c2 = _gemm_c(m, gemm)
    if c2 is None or typed_apart(m, gemm, m.root):
        return None
    ins = [gemm.inputs[0], gemm.inputs[1], m.graph.constant(f"{gemm.name}_c", c2)]
    return Node(gemm.op, ins, m.root.outputs, dict(gemm.attrs, beta=1.0), gemm.name, gemm.version)


GEMM_DEFAULTS = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0}


def matmul_bias(m: Match) -> Node | None:
    """MatMul(2-D A, constant 2-D B) + Add(bias) -> FusedGemm(A, B, bias), no activation."""
    mm = m["mm"]
    c2 = _gemm_c(m, mm)
    if c2 is None or typed_apart(m, mm, m.root):
        return None
    ins = [mm.inputs[0], mm.inputs[1], m.graph.constant(f"{mm.name}_c", c2)]
    attrs = dict(GEMM_DEFAULTS, activation="", activation_attrs=())
    return Node("onnxcc.FusedGemm", ins, m.root.outputs, attrs, mm.name, mm.version)


def activation_attrs(act: Node) -> tuple[tuple[str, AnyT], ...] | None:
    """The ``activation_attrs`` of a fused epilogue ``act``, or None when it cannot fuse."""
    attrs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in act.attrs.items()
             if v is not None}
    names = EPILOGUE_INPUTS.get(act.op, ())
    extra = act.inputs[1:]
    if len(extra) > len(names):
        return None
    for name, v in zip(names, extra):
        if v is None:
            continue
        if not v.is_const or v.const.size != 1:
            return None
        attrs[name] = np.asarray(v.const).reshape(-1)[0].item()
    return tuple(sorted(attrs.items()))


def typed_apart(m: Match, inner: Node, outer: Node) -> bool:
    """Whether a quantized model gave ``inner``'s output a fixed-point type of its own
    (``Graph.meta["fixed_types"]``, from qdq_fixed on FPGA targets) that fusing ``outer`` into
    it would skip: the tensor's rounding and saturation happen before ``outer`` (a Conv
    saturated at 15.875 before a Relu whose output type reaches 31.875; a bias added after the
    rounding). Only a Relu into the same type commutes with rounding, so only it still fuses."""
    types = m.graph.meta.get("fixed_types") or {}
    a, b = inner.outputs[0].name, outer.outputs[0].name
    return a in types and not (outer.op == "Relu" and types.get(a) == types.get(b))


def _fuse(m: Match, key: str, fused_op: str, defaults: dict[str, AnyT]) -> Node | None:
    lin, act = m[key], m.root
    pairs = activation_attrs(act)
    if pairs is None or act.outputs[0].dtype != lin.outputs[0].dtype or typed_apart(m, lin, act):
        return None
    attrs = {**defaults, **lin.attrs, "activation": act.op, "activation_attrs": pairs}
    return Node(fused_op, list(lin.inputs), act.outputs, attrs, lin.name, lin.version)


def conv_activation(m: Match) -> Node | None:
    """Rewrite of ``act(Conv(...))`` (act one of ``activation_attrs``'s ops, same dtype, no
    other reader of the Conv) into one ``onnxcc.FusedConv`` applying act to each output."""
    return _fuse(m, "conv", "onnxcc.FusedConv", {})


def gemm_activation(m: Match) -> Node | None:
    """Rewrite of ``act(Gemm(...))`` into one ``onnxcc.FusedGemm`` (see conv_activation)."""
    return _fuse(m, "gemm", "onnxcc.FusedGemm", {})


def matmul_activation(m: Match) -> Node | None:
    """Rewrite of ``act(MatMul(a, w))`` (2-D a, constant 2-D w) into one ``onnxcc.FusedGemm``
    with Gemm's defaults (alpha 1, beta 1, no transposes, no C)."""
    return _fuse(m, "mm", "onnxcc.FusedGemm", GEMM_DEFAULTS)


X, K = Any("x"), Const("k")
CONV = Op(("Conv", "onnxcc.FusedConv"), X, Any("w"), ..., name="conv", where=_no_activation)
GEMM = Op(("Gemm", "onnxcc.FusedGemm"), X, Any("w"), ..., name="gemm", where=_no_activation)
MATMUL = Op("MatMul", X, Const("w"), name="mm", where=_matmul_2d)
FUSE_CONV_ACTIVATION_PATTERNS = [
    (Op("Add", CONV, K, commute=True), conv_bias),
    (Op("Add", GEMM, K, commute=True), gemm_bias),
    (Op("Add", MATMUL, K, commute=True), matmul_bias),
    (Op(None, CONV, ..., where=_is_epilogue), conv_activation),
    (Op(None, GEMM, ..., where=_is_epilogue), gemm_activation),
    (Op(None, MATMUL, ..., where=_is_epilogue), matmul_activation),
]


@graph_pass("fuse_conv_activation")
def fuse_conv_activation(g: Graph) -> Graph:
    """Conv/Gemm/MatMul + bias Add + activation -> FusedConv/FusedGemm (module docstring).

    Preconditions: after fold_batchnorm and canonicalize. Ordering: before fuse_elementwise.
    """
    return rewrite(g, FUSE_CONV_ACTIVATION_PATTERNS)
