"""fold_batchnorm: BatchNormalization, and Mul/Add by per-channel constants, into Conv/Gemm.

    %c = Conv(%x, %w*, %b*); %y = BatchNormalization(%c, %s*, %t*, %m*, %v*)
        ==>  %y = Conv(%x, %w'*, %b'*)        w' = w * k[:,None,..], b' = (b - m) * k + t,
                                              k = s / sqrt(v + eps)
    %c = Conv(...); %d = Mul(%c, %k*); %y = Add(%d, %t*)   (k, t per output channel: shape
        (C,1,1), (1,C,1,1) or a scalar)   ==>  %y = Conv(%x, %w'*, %b'*)
    %g = Gemm(%a, %w*, %c*); %y = BatchNormalization(%g, ...)  ==>  %y = Gemm(%a, %w'*, %c'*)
    %y = BatchNormalization(%x, ...)   (nothing to fold into)  ==>  %y = Add(Mul(%x, %k*), %t*)
    %y = Mul(Add(%x, %a*), %b*)  ==>  Add(Mul(%x, %b*), %(a*b)*)   and  Mul(Mul(..)), Add(Add(..))
         merge their constants, so BN -> Mul -> Add chains end as one Mul and one Add.

New constants are new values (existing arrays are never written; they may be read-only broadcast
views). Nothing folds across a tensor a quantized model typed (``meta["fixed_types"]`` on FPGA
targets). Preconditions: weights are constants (after canonicalize); the Conv/Gemm output has a
single user. Ordering: before the fuse passes; run canonicalize after it.
"""

from __future__ import annotations

import numpy as np
from onnxcc.ir import Graph, Node, TensorType, Value
from onnxcc.ops import attr

from .canonicalize import is_splat
from .manager import graph_pass
from .pattern import Any, Const, Match, Op, rewrite


def channel_vector(c: np.ndarray, out_shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """``c`` as a float64 vector along ``axis`` of ``out_shape``, when ``c`` broadcasts to
    ``out_shape`` without growing it and varies along ``axis`` only; else None."""
    r = len(out_shape)
    if c.ndim > r:
        return None
    padded = (1,) * (r - c.ndim) + c.shape
    if any(d != 1 and (k != axis or d != out_shape[k]) for k, d in enumerate(padded)):
        return None
    return np.broadcast_to(np.asarray(c, np.float64).reshape(-1), (out_shape[axis],)).copy() \
        if c.size > 1 else np.full(out_shape[axis], float(np.asarray(c).reshape(-1)[0]))


def _scaled(g: Graph, hint: str, w: Value, k: np.ndarray) -> Value:
    """``w * k`` as a new constant (``w`` itself when k is all ones: an Add folds no scale). A
    splat ``w`` stays a broadcast view (stride 0 except along k's axis)."""
    if np.all(k == 1):
        return w
    if is_splat(w.const):
        one = float(w.const[(0,) * w.const.ndim]) if w.const.size else 0.0
        return g.constant(hint, np.broadcast_to((one * k).astype(w.dtype), w.shape))
    return g.constant(hint, (np.asarray(w.const, np.float64) * k).astype(w.dtype))


def _float(v: Value) -> bool:
    return v.dtype.kind == "f"


def _bias(n: Node) -> Value | None:
    return n.inputs[2] if len(n.inputs) > 2 else None


def _foldable(n: Node) -> bool:
    """Weights constant float; bias absent or constant."""
    b = _bias(n)
    return n.inputs[1].is_const and _float(n.inputs[1]) and (b is None or b.is_const)


def _typed(g: Graph, v: Value) -> bool:
    """Whether a quantized model gave ``v`` a fixed-point type of its own
    (``Graph.meta["fixed_types"]``, qdq_fixed on FPGA targets): folding the step after it into
    its producer would skip the rounding the type states, so nothing folds across it."""
    return v.name in (g.meta.get("fixed_types") or {})


def _bn_scale_shift(bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    s, t, m, v = (np.asarray(i.const, np.float64) for i in bn.inputs[1:5])
    if any(p.ndim != 1 for p in (s, t, m, v)):
        return None  # spatial=0 parameters (C, *S): not per channel
    k = s / np.sqrt(v + float(attr(bn, "epsilon")))
    return k, t - m * k


def _conv(g: Graph, conv: Node, out: Value, k: np.ndarray, t: np.ndarray) -> Node:
    """conv with its output channels scaled by k then shifted by t, producing ``out``."""
    w = conv.inputs[1]
    b = _bias(conv)
    b0 = np.zeros(w.shape[0]) if b is None else np.asarray(b.const, np.float64)
    b2 = b0 * k + t
    k_w = k.reshape((-1,) + (1,) * (w.const.ndim - 1))  # along W's output channels (dim 0)
    ins = [conv.inputs[0], _scaled(g, f"{conv.name}_w", w, k_w),
           g.constant(f"{conv.name}_b", b2.astype(w.dtype))]
    return Node(conv.op, ins, [out], dict(conv.attrs), conv.name, conv.version)


def _gemm(g: Graph, gemm: Node, out: Value, k: np.ndarray, t: np.ndarray) -> Node:
    """gemm with output columns scaled by k, then t (broadcasting to (M, N)) added."""
    w, c = gemm.inputs[1], _bias(gemm)
    c0 = 0.0 if c is None else np.asarray(c.const, np.float64) * float(attr(gemm, "beta"))
    c2 = np.asarray(c0 * k + t)
    attrs = dict(gemm.attrs, beta=1.0)
    ins = [gemm.inputs[0],
           _scaled(g, f"{gemm.name}_w", w, k[:, None] if attr(gemm, "transB") else k[None, :]),
           g.constant(f"{gemm.name}_c", c2.astype(w.dtype))]
    return Node(gemm.op, ins, [out], attrs, gemm.name, gemm.version)


def bn_into_conv(m: Match) -> Node | None:
    """Rewrite of ``BatchNormalization(Conv(x, w, b))``: one Conv with w scaled per output
    channel (axis 0 of w (M, C/group, k...)) by k = scale / sqrt(var + epsilon) and bias
    b*k + (B - mean*k). None (no rewrite) when the Conv has other readers or is not float, or
    the statistics are not per-channel constants of length M."""
    conv, bn = m["conv"], m.root
    st = _bn_scale_shift(bn) if _foldable(conv) and not _typed(m.graph, conv.outputs[0]) \
        else None
    if st is None or st[0].shape != (conv.outputs[0].shape[1],):
        return None
    return _conv(m.graph, conv, bn.outputs[0], *st)


def bn_into_gemm(m: Match) -> Node | None:
    """Rewrite of ``BatchNormalization(Gemm(a, w, c))`` over the Gemm's N output columns:
    w's columns (rows when transB) scaled by k, C = c*k + shift. None when not foldable."""
    gemm, bn = m["gemm"], m.root
    st = _bn_scale_shift(bn) if _foldable(gemm) and not _typed(m.graph, gemm.outputs[0]) \
        else None
    if st is None or st[0].shape != (gemm.outputs[0].shape[1],):
        return None
    return _gemm(m.graph, gemm, bn.outputs[0], *st)


def _scale_or_shift(m: Match, key: str, fold, shift: bool) -> Node | None:
    n, c = m[key], m["c"].const
    out = n.outputs[0]
    if not _foldable(n) or not _float(m["c"]) or _typed(m.graph, out):
        return None
    if shift and key == "gemm":  # Gemm's C takes any shape broadcasting to (M, N)
        if np.broadcast_shapes(c.shape, out.shape) != out.shape:
            return None
        return fold(m.graph, n, m.root.outputs[0], np.ones(out.shape[1]), np.asarray(c, np.float64))
    v = channel_vector(c, out.shape, 1)
    if v is None:
        return None
    k, t = (np.ones_like(v), v) if shift else (v, np.zeros_like(v))
    return fold(m.graph, n, m.root.outputs[0], k, t)


def mul_into_conv(m: Match) -> Node | None:
    """Rewrite of ``Mul(Conv(...), k)`` with a constant k broadcasting per output channel
    ((M,1,1), (1,M,1,1) or a scalar): the Conv's weights and bias scaled by k."""
    return _scale_or_shift(m, "conv", _conv, shift=False)


def add_into_conv(m: Match) -> Node | None:
    """Rewrite of ``Add(Conv(...), t)`` with a constant t broadcasting per output channel:
    t added to the Conv's bias."""
    return _scale_or_shift(m, "conv", _conv, shift=True)


def mul_into_gemm(m: Match) -> Node | None:
    """Rewrite of ``Mul(Gemm(...), k)`` with a constant k per output column (N,) or a
    scalar: the Gemm's B columns and C scaled by k."""
    return _scale_or_shift(m, "gemm", _gemm, shift=False)


def add_into_gemm(m: Match) -> Node | None:
    """Rewrite of ``Add(Gemm(...), t)`` with a constant t that broadcasts to the Gemm's
    output (M, N): t added to C."""
    return _scale_or_shift(m, "gemm", _gemm, shift=True)


def bn_to_mul_add(m: Match) -> list[Node] | None:
    """A BatchNormalization with nothing to fold into: x * k + t with constant k, t."""
    bn, g = m.root, m.graph
    x, out = bn.inputs[0], bn.outputs[0]
    if not _float(x) or x.dtype == np.float16:   # float16: k, t would round to float16 (onnx-
        return None                                # runtime computes BN in float32, float16_compute too)
    s, t, mean, v = (np.asarray(i.const, np.float64) for i in bn.inputs[1:5])
    k = s / np.sqrt(v + float(attr(bn, "epsilon")))
    shift = t - mean * k
    trail = (1,) * (len(x.shape) - 1 - k.ndim)  # (C,) -> (C,1,1); (C,*S) stays
    k_v = g.constant(f"{bn.name}_scale", k.reshape(k.shape + trail).astype(x.dtype))
    t_v = g.constant(f"{bn.name}_shift", shift.reshape(shift.shape + trail).astype(x.dtype))
    mid = Value(g.fresh_name(f"{bn.name}_mul"), TensorType(np.broadcast_shapes(x.shape, k_v.shape),
                                                            x.dtype))
    return [Node("Mul", [x, k_v], [mid], {}, g.fresh_name(f"{bn.name}_mul"), bn.version),
            Node("Add", [mid, t_v], [out], {}, bn.name, bn.version)]


def _affine(m: Match, inner_op: str, outer_op: str) -> Node | list[Node] | None:
    """Merge two constant Mul/Add steps: (x*a)*b, (x+a)+b, (x+a)*b = x*b + a*b."""
    g, root, x = m.graph, m.root, m["x"]
    a, b = m["a"], m["b"]
    if x.is_const or not (_float(a) and _float(b) and _float(root.outputs[0])):
        return None
    if any(_typed(g, v) for v in root.inputs if v is not None and not v.is_const):
        return None
    if root.outputs[0].dtype == np.float16:   # each float16 step rounds: merging changes results
        return None
    a64, b64 = np.asarray(a.const, np.float64), np.asarray(b.const, np.float64)
    dt = root.outputs[0].dtype
    if inner_op == outer_op:
        merged = a64 * b64 if inner_op == "Mul" else a64 + b64
        return Node(inner_op, [x, g.constant(f"{root.name}_c", merged.astype(dt))], root.outputs,
                    {}, root.name, root.version)
    bv = g.constant(f"{root.name}_k", b64.astype(dt))
    ab = g.constant(f"{root.name}_t", (a64 * b64).astype(dt))
    mid = Value(g.fresh_name(f"{root.name}_mul"), TensorType(np.broadcast_shapes(x.shape, bv.shape),
                                                              dt))
    return [Node("Mul", [x, bv], [mid], {}, g.fresh_name(f"{root.name}_mul"), root.version),
            Node("Add", [mid, ab], root.outputs, {}, root.name, root.version)]


X, C = Any("x"), Const("c")
CONV = Op("Conv", X, Const("w"), ..., name="conv")
GEMM = Op("Gemm", X, Const("w"), ..., name="gemm")
BN_PARAMS = (Const("scale"), Const("shift"), Const("mean"), Const("var"))
A, B = Const("a"), Const("b")
FOLD_BATCHNORM_PATTERNS = [
    (Op("BatchNormalization", CONV, *BN_PARAMS), bn_into_conv),
    (Op("BatchNormalization", GEMM, *BN_PARAMS), bn_into_gemm),
    (Op("Mul", CONV, C, commute=True), mul_into_conv),
    (Op("Add", CONV, C, commute=True), add_into_conv),
    (Op("Mul", GEMM, C, commute=True), mul_into_gemm),
    (Op("Add", GEMM, C, commute=True), add_into_gemm),
    (Op("BatchNormalization", X, *BN_PARAMS), bn_to_mul_add),
    (Op("Mul", Op("Mul", X, A, commute=True), B, commute=True), lambda m: _affine(m, "Mul", "Mul")),
    (Op("Add", Op("Add", X, A, commute=True), B, commute=True), lambda m: _affine(m, "Add", "Add")),
    (Op("Mul", Op("Add", X, A, commute=True), B, commute=True), lambda m: _affine(m, "Add", "Mul")),
]


@graph_pass("fold_batchnorm")
def fold_batchnorm(g: Graph) -> Graph:
    """Fold BatchNormalization and per-channel constant Mul/Add into the preceding Conv/Gemm;
    turn a standalone BatchNormalization into Mul + Add; merge chained constant Mul/Add.

    See the module docstring for the forms. Preconditions: constant weights (canonicalize
    first). Run canonicalize after it and before the fuse passes.
    """
    return rewrite(g, FOLD_BATCHNORM_PATTERNS)
