"""fuse_qdq: QDQ patterns (QuantizeLinear/DequantizeLinear around float ops) -> integer ops.

The QDQ format (onnxruntime's ``quantize_static``, PyTorch, Brevitas) writes a quantized model
as float ops whose inputs are dequantized and whose outputs are quantized again. onnxruntime
executes such models by fusing these patterns into integer kernels; so does this pass:

    %xf = DQ(%xq, %xs*, %xz*); %wf = DQ(%wq*, %ws*, %wz*); %bf = DQ(%bq*, %bs*)
    %yf = Conv(%xf, %wf, %bf); [%yf = Relu(%yf)]; %yq = Q(%yf, %ys*, %yz*)
        ==>  %yq = QLinearConv(%xq, %xs, %xz, %wq, %ws, %wz, %ys, %yz, %bq)
             [%yq = Max(%yq, Q(lo)); Min(%yq, Q(hi))]      (Relu or constant Clip: a clamp in the
                                                           quantized domain, Q being monotonic)
    Gemm (alpha 1, B constant) and 2-D MatMul likewise ==> com.microsoft.QGemm
    %yq = Q(Add|Mul(DQ(%aq), DQ(%bq))) [Relu/Clip]  ==>  com.microsoft.QLinearAdd|Mul [clamp]
    %yq = Q(Concat(DQ(%x0q), DQ(%x1q), ...))  ==>  com.microsoft.QLinearConcat (requantizing)
    %yq = Q(MaxPool | Reshape | Flatten | Squeeze | Unsqueeze | Transpose (DQ(%xq)))
        with the same scale and zero point on both sides   ==>  the op on %xq (int8 values:
                                                               max and moves commute with
                                                               the monotonic dequantization)
    %yq = Q(f(DQ(%xq))) for an elementwise f (Sigmoid, Tanh, HardSwish, Gelu, LeakyRelu, an Add
        or Mul of a scalar...)  ==>  %yq = onnxcc.LookupTable(%xq, table*)   (256 entries:
                                     the float chain evaluated at compile time on every int8)
    %yq = Q(DQ(%xq)) with the same scale, zero point and type  ==>  %xq
    Softmax, AveragePool, GlobalAveragePool  ==>  onnxcc.QSoftmax, com.microsoft.QLinear*Pool
                                                  (``qdq_int``)

16x8 (TFLite's 16-bit activation mode, onnxruntime's ``quantize_static(activation_type=QInt16,
weight_type=QInt8)``): int16/uint16 activations take the Conv, Gemm/MatMul, Add/Mul, Concat,
Relu/Clip and move patterns too (int8 weights), into the same ops on 16-bit tensors, whose
accumulator is int32 where it provably cannot overflow, else int64
(``onnxcc.ops.quant.check_wide_accumulator`` from the constant weights and bias; past 2**47 the
op stays float with a warning naming it). The lookup table,
Softmax and average-pool rewrites stay int8/uint8.

Conditions: activations per tensor; weights per tensor or per output channel (Conv axis 0,
Gemm's N axis); scales and zero points constant; a bias either quantized int32 with scale
x_scale * w_scale (zero point 0) or float (then quantized here, round half to even, as
onnxruntime's quantizer does). Anything else stays float: the DQ -> op -> Q chain computes the
same numbers in float, and a warning names each float op left between them.
Preconditions: none (runs first; the frontend leaves DequantizeLinear unfolded for it, and
canonicalize folds the DequantizeLinear nodes on constants that no pattern took).

Reference: a QDQ model means what its graph says (DequantizeLinear, the float op, QuantizeLinear);
the integer kernels compute that in exact integer arithmetic (the conv/gemm requantization of
QLinearConv's spec, round half to even), so the oracle is onnxruntime with graph optimizations
disabled, which runs the graph as written. onnxruntime's default session instead fuses the
patterns into its own kernels, which are not the model's arithmetic in two places: on x86-64
without AVX-VNNI its u8 x s8 GEMM (MLAS, VPMADDUBSW) adds pairs of products in saturating int16,
so a layer whose activations near 255 meet weights near 127 comes out wrong, by up to 84 LSB on
the digits CNN's first conv (``quantize_static``'s docstring advises ``reduce_range``, 7-bit
weights, on such CPUs); and its fused QLinearSoftmax rounds up to 1 LSB away from
Q(Softmax(DQ(x))). For the QOperator ops (whose definition is the integer kernel) the oracle is
onnxruntime on the same model with the int8 weights written as uint8 with zero point + 128: the
same products, through its exact u8 x u8 kernels. ``benchmarks/quantization.py`` prints both;
onnxcc equals the references on every output of the digits CNN quantized by ``quantize_static``
in both formats.
"""

from __future__ import annotations

import logging

import numpy as np
from onnxcc.ir import Graph, Node, Value
from onnxcc.ops import attr, get_op, run_node
from onnxcc.errors import UnsupportedOpError

from .manager import graph_pass
from .pattern import Match, Op, rewrite
from .qdq_int import pool_to_qlinear, softmax_to_int

log = logging.getLogger("onnxcc.passes")
INT8 = (np.dtype(np.int8), np.dtype(np.uint8))
INT16 = (np.dtype(np.int16), np.dtype(np.uint16))   # "16x8": 16-bit activations, 8-bit weights
GEMMS = ("Gemm", "onnxcc.FusedGemm", "MatMul")   # FusedGemm without an activation
MOVES = ("MaxPool", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose")


class _Dq:
    """A DequantizeLinear feeding a matched op: its quantized value, scale and zero point
    (constants; zp None when absent) and the axis along which they vary (None: per tensor)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.q = node.inputs[0]
        self.scale = node.inputs[1]
        self.zp = node.inputs[2] if len(node.inputs) > 2 else None
        n = self.scale.const.size if self.scale.const is not None else 0
        self.axis: int | None = None
        if n > 1:
            self.axis = int(attr(node, "axis")) % max(len(self.q.shape), 1)


def _dq(v: Value | None) -> _Dq | None:
    """The DequantizeLinear producing ``v`` when its scale and zero point are constants, its
    input int8/uint8 (int32 for a bias) and it is not blocked; else None."""
    n = v.producer if v is not None else None
    if n is None or n.op != "DequantizeLinear" or (n.attrs.get("block_size") or 0):
        return None
    d = _Dq(n)
    if d.scale.const is None or (d.zp is not None and d.zp.const is None):
        return None
    return d


def _q_params(q: Node, wide: bool = False) -> tuple[Value, Value | None] | None:
    """Scale and zero point of the QuantizeLinear ``q`` when constant, per tensor, and the
    output int8/uint8 (or int16/uint16 when ``wide``: a rewrite whose integer op takes 16-bit
    activations); else None."""
    s = q.inputs[1]
    z = q.inputs[2] if len(q.inputs) > 2 else None
    if s.const is None or s.const.size != 1 or (z is not None and z.const is None):
        return None
    if q.outputs[0].dtype not in INT8 + (INT16 if wide else ()) or \
            (q.attrs.get("block_size") or 0):
        return None
    return s, z


def _zp(g: Graph, z: Value | None, dtype: np.dtype, hint: str) -> Value:
    """``z``, or a zero point of 0 in ``dtype`` where the model omitted it."""
    return z if z is not None else g.constant(hint, np.zeros((), dtype))


def _scalar(v: Value | None) -> float | int | None:
    return None if v is None else np.asarray(v.const).reshape(-1)[0].item()


def _same_params(d: _Dq, s: Value, z: Value | None, out_dtype: np.dtype) -> bool:
    return (d.axis is None and d.q.dtype == out_dtype
            and np.float32(_scalar(d.scale)) == np.float32(_scalar(s))
            and int(_scalar(d.zp) or 0) == int(_scalar(z) or 0))


def _bias(g: Graph, b: Value | None, x: _Dq, w: _Dq, name: str) -> Value | None | bool:
    """The int32 bias for an integer conv/gemm from the float op's bias ``b``: a DQ of int32
    with scale x_scale * w_scale is taken as is; a float constant is quantized with that scale.
    None when there is no bias; False when it cannot be an integer bias."""
    if b is None:
        return None
    acc_scale = (np.asarray(x.scale.const, np.float32).reshape(-1)
                 * np.asarray(w.scale.const, np.float32).reshape(-1)).astype(np.float32)
    d = _dq(b)
    if d is not None:
        if d.q.dtype != np.int32 or d.q.const is None or (d.zp is not None
                                                           and np.any(d.zp.const)):
            return False
        bs = np.asarray(d.scale.const, np.float32).reshape(-1)
        if not np.allclose(bs, acc_scale, rtol=1e-5, atol=0):
            return False
        q = np.broadcast_to(np.asarray(d.q.const, np.int32).reshape(-1), (max(bs.size,
                                                                             acc_scale.size,
                                                                             d.q.const.size),))
        return g.constant(f"{name}_bias_q", np.ascontiguousarray(q))
    if b.const is None or b.dtype != np.float32:
        return False
    with np.errstate(all="ignore"):
        q = np.rint(np.asarray(b.const, np.float64).reshape(-1) / acc_scale.astype(np.float64))
    if not np.isfinite(q).all() or np.abs(q).max(initial=0) >= 2 ** 31:
        return False
    return g.constant(f"{name}_bias_q", q.astype(np.int32))


def _operands(lin: Node, w_axis: int) -> tuple[_Dq, _Dq] | None:
    """(x, w) DequantizeLinear sources of a conv/gemm: x per tensor int8/uint8 or int16/uint16
    ("16x8"), w a constant int8/uint8 per tensor or along ``w_axis``."""
    x, w = _dq(lin.inputs[0]), _dq(lin.inputs[1])
    if x is None or w is None or x.axis is not None or x.q.dtype not in INT8 + INT16:
        return None
    if w.q.const is None or w.q.dtype not in INT8 or w.axis not in (None, w_axis):
        return None
    return x, w


def _act_bounds(m: Match) -> tuple[float, float] | None:
    """(lo, hi) of the matched Relu or Clip between the float op and Q ((-inf, inf) when none
    matched); None for a Clip whose bounds are not constants."""
    if "act" not in m:
        return -np.inf, np.inf
    act = m["act"]
    if act.op == "Relu":
        return 0.0, np.inf
    b = []
    for k, default in ((1, -np.inf), (2, np.inf)):
        v = act.inputs[k] if len(act.inputs) > k else None
        if v is not None and (v.const is None or v.const.size != 1):
            return None
        b.append(default if v is None else float(np.asarray(v.const).reshape(-1)[0]))
    return b[0], b[1]


def _finish(m: Match, node: Node, ys: Value, yz: Value) -> list[Node] | None:
    """``node`` writing the Q's output, followed by the clamp of a matched Relu/Clip in the
    quantized domain: Q(clip(x, lo, hi)) = clip(Q(x), Q(lo), Q(hi)) as Q is monotonic; a bound
    at or past the type's limit needs no clamp. None when the Clip's bounds are not constant."""
    bounds = _act_bounds(m)
    if bounds is None:
        return None
    out = m.root.outputs[0]
    info = np.iinfo(out.dtype)
    s, z = np.float32(_scalar(ys)), int(_scalar(yz) or 0)

    def q(v: float) -> int:
        if np.isinf(v):
            return info.min if v < 0 else info.max
        with np.errstate(all="ignore"):
            return int(np.clip(np.rint(np.float32(v) / s) + z, info.min, info.max))

    lo, hi = q(bounds[0]), q(bounds[1])
    nodes, cur = [node], None
    for op, bound, limit in (("Max", lo, info.min), ("Min", hi, info.max)):
        if bound == limit:
            continue
        mid = Value(m.graph.fresh_name(f"{node.name}_q"), out.type)
        if cur is None:
            node.outputs = [mid]
        else:
            nodes[-1].outputs = [mid]
        cur = mid
        c = m.graph.constant(f"{node.name}_{op.lower()}", np.array(bound, out.dtype))
        nodes.append(Node(op, [mid, c], [], {}, f"{node.name}_{op.lower()}", 13))
    nodes[-1].outputs = [out]
    return nodes


def _wide_ok(node: Node, lin: Node) -> bool:
    """Whether the integer op ``node`` made for a 16-bit x passes its check (an accumulator
    that cannot overflow: ``onnxcc.ops.quant.check_wide_accumulator``); False, with a warning
    naming the float node ``lin`` and why, when not. True for an 8-bit x."""
    if node.inputs[0].dtype not in INT16:
        return True
    try:
        get_op(node).check(node)
    except UnsupportedOpError as e:
        log.warning("node %r (%s) stays float: %s", lin.name, lin.op, e.problems[0][2])
        return False
    return True


def conv_to_qlinear(m: Match) -> list[Node] | None:
    """Q(Conv(DQ(x), DQ(w), DQ(b)?)) -> QLinearConv (module docstring)."""
    conv, q, g = m["lin"], m.root, m.graph
    qp = _q_params(q, wide=True)
    ops = _operands(conv, 0)
    if qp is None or ops is None:
        return None
    x, w = ops
    ys, yz = qp
    b = _bias(g, conv.inputs[2] if len(conv.inputs) > 2 else None, x, w, conv.name)
    if b is False:
        return None
    yzv = _zp(g, yz, q.outputs[0].dtype, f"{conv.name}_yz")
    ins = [x.q, x.scale, _zp(g, x.zp, x.q.dtype, f"{conv.name}_xz"), w.q, w.scale,
           _zp(g, w.zp, w.q.dtype, f"{conv.name}_wz"), ys, yzv] + ([b] if b is not None else [])
    node = Node("QLinearConv", ins, [], dict(conv.attrs), conv.name, 10)
    if not _wide_ok(node, conv):
        return None
    return _finish(m, node, ys, yzv)


def gemm_to_qgemm(m: Match) -> list[Node] | None:
    """Q(Gemm(DQ(a), DQ(B*), C?) | MatMul(DQ(a) 2-D, DQ(B*) 2-D)) -> com.microsoft.QGemm."""
    lin, q, g = m["lin"], m.root, m.graph
    if len(lin.inputs[0].shape) != 2 or len(lin.inputs[1].shape) != 2:
        return None
    gemm = lin.op != "MatMul"
    if lin.attrs.get("activation"):
        return None
    trans_b = int(attr(lin, "transB")) if gemm else 0
    if gemm and float(attr(lin, "alpha")) != 1.0:
        return None
    qp = _q_params(q, wide=True)
    ops = _operands(lin, 0 if trans_b else 1)
    if qp is None or ops is None:
        return None
    a, b = ops
    ys, yz = qp
    c_in = lin.inputs[2] if gemm and len(lin.inputs) > 2 else None
    if c_in is not None and float(attr(lin, "beta")) != 1.0:
        return None
    if c_in is not None and len(c_in.shape) > 1 and c_in.shape[0] != 1:
        return None       # per-row C: not a bias
    c = _bias(g, c_in, a, b, lin.name)
    if c is False:
        return None
    yzv = _zp(g, yz, q.outputs[0].dtype, f"{lin.name}_yz")
    ins = [a.q, a.scale, _zp(g, a.zp, a.q.dtype, f"{lin.name}_az"), b.q, b.scale,
           _zp(g, b.zp, b.q.dtype, f"{lin.name}_bz"), c, ys, yzv]
    attrs = {"alpha": 1.0, "transA": int(attr(lin, "transA")) if gemm else 0, "transB": trans_b}
    node = Node("com.microsoft.QGemm", ins, [], attrs, lin.name, 1)
    if not _wide_ok(node, lin):
        return None
    return _finish(m, node, ys, yzv)


def binary_to_qlinear(m: Match) -> list[Node] | None:
    """Q(Add|Mul(DQ(a), DQ(b))) with per-tensor parameters and one int8/uint8 type ->
    com.microsoft.QLinearAdd|QLinearMul (int8 in and out; the rescale is float32)."""
    op, q, g = m["lin"], m.root, m.graph
    qp = _q_params(q, wide=True)
    if qp is None or len(op.inputs) != 2:
        return None
    da, db = _dq(op.inputs[0]), _dq(op.inputs[1])
    out_t = q.outputs[0].dtype
    if da is None or db is None or da.axis is not None or db.axis is not None or \
            not (da.q.dtype == db.q.dtype == out_t) or da.q.is_const or db.q.is_const:
        return None
    ys, yz = qp
    yzv = _zp(g, yz, out_t, f"{op.name}_yz")
    ins = [da.q, da.scale, _zp(g, da.zp, out_t, f"{op.name}_az"), db.q, db.scale,
           _zp(g, db.zp, out_t, f"{op.name}_bz"), ys, yzv]
    node = Node(f"com.microsoft.QLinear{op.op}", ins, [], {}, op.name, 1)
    return _finish(m, node, ys, yzv)


def concat_to_qlinear(m: Match) -> list[Node] | None:
    """Q(Concat(DQ(x0), DQ(x1), ...)) with per-tensor parameters of one int8/uint8 type ->
    com.microsoft.QLinearConcat (each input requantized to the output's parameters)."""
    op, q, g = m["lin"], m.root, m.graph
    qp = _q_params(q, wide=True)
    if qp is None:
        return None
    out_t = q.outputs[0].dtype
    ds = [_dq(v) for v in op.inputs]
    if any(d is None or d.axis is not None or d.q.dtype != out_t or d.q.is_const for d in ds):
        return None
    ys, yz = qp
    ins = [ys, _zp(g, yz, out_t, f"{op.name}_yz")]
    for k, d in enumerate(ds):
        ins += [d.q, d.scale, _zp(g, d.zp, out_t, f"{op.name}_z{k}")]
    return [Node("com.microsoft.QLinearConcat", ins, [q.outputs[0]],
                 {"axis": int(attr(op, "axis"))}, op.name, 1)]


def move_quantized(m: Match) -> list[Node] | None:
    """Q(op(DQ(x), ...)) with equal parameters on both sides -> op(x, ...) for max and data
    movement ops, which commute with the (monotonic, per-tensor) dequantization."""
    op, q = m["lin"], m.root
    qp = _q_params(q, wide=True)
    d = _dq(op.inputs[0])
    if qp is None or d is None or not _same_params(d, *qp, q.outputs[0].dtype):
        return None
    if op.op == "MaxPool" and len(op.outputs) > 1:
        return None
    return [Node(op.op, [d.q] + list(op.inputs[1:]), [q.outputs[0]], dict(op.attrs), op.name,
                 op.version)]


def _unary_elementwise(n: Node) -> bool:
    """An elementwise op of one runtime input whose other inputs are scalar constants."""
    if n.op in ("QuantizeLinear", "DequantizeLinear") or len(n.outputs) != 1 or \
            "elementwise" not in get_op(n).traits:
        return False
    rest = [v for v in n.inputs[1:] if v is not None]
    return (n.inputs[0] is not None and not n.inputs[0].is_const
            and all(v.is_const and v.const.size == 1 for v in rest))


def lookup_table(m: Match) -> list[Node] | None:
    """Q(f(DQ(x))) for an elementwise f of int8/uint8 x -> onnxcc.LookupTable(x, table) with
    table = Q(f(DQ(every value of x's type))), computed by the references of the nodes it
    replaces (so the table holds exactly what the float chain computes)."""
    f, q, g = m["lin"], m.root, m.graph
    qp = _q_params(q)
    d = _dq(f.inputs[0])
    if qp is None or d is None or d.axis is not None or d.q.dtype not in INT8:
        return None
    info = np.iinfo(d.q.dtype)
    xs = np.arange(info.min, info.max + 1).astype(d.q.dtype)
    with np.errstate(all="ignore"):
        (fx,) = run_node(d.node, xs, d.scale.const, None if d.zp is None else d.zp.const)
        rest = [None if v is None else v.const for v in f.inputs[1:]]
        (fy,) = run_node(f, fx, *rest)
        (table,) = run_node(q, np.asarray(fy, np.float32).reshape(-1), *[
            None if v is None else v.const for v in q.inputs[1:]])
    table = np.asarray(table).reshape(-1)
    if table.shape != (256,):
        return None
    tv = g.constant(f"{f.name}_table", table.astype(q.outputs[0].dtype))
    return [Node("onnxcc.LookupTable", [d.q, tv], [q.outputs[0]], {}, f.name, 1)]


def requantize_identity(m: Match) -> list[Value] | None:
    """Q(DQ(x)) with the same parameters and type -> x."""
    q = m.root
    qp = _q_params(q, wide=True)
    d = _dq(q.inputs[0])
    if qp is None or d is None or not _same_params(d, *qp, q.outputs[0].dtype):
        return None
    if any(o is q.outputs[0] for o in m.graph.outputs) and d.q.producer is None:
        return None       # a graph output stays produced by a node
    return [d.q]


def _lin(ops: tuple[str, ...]) -> Op:
    return Op(ops, name="lin")


Q = "QuantizeLinear"
FUSE_QDQ_PATTERNS = [
    (Op(Q, _lin(("Conv",)), ...), conv_to_qlinear),
    (Op(Q, Op(("Relu", "Clip"), _lin(("Conv",)), ..., name="act"), ...), conv_to_qlinear),
    (Op(Q, _lin(GEMMS), ...), gemm_to_qgemm),
    (Op(Q, Op(("Relu", "Clip"), _lin(GEMMS), ..., name="act"), ...),
     gemm_to_qgemm),
    (Op(Q, _lin(("Add", "Mul")), ...), binary_to_qlinear),
    (Op(Q, Op(("Relu", "Clip"), _lin(("Add",)), ..., name="act"), ...), binary_to_qlinear),
    (Op(Q, _lin(("Concat",)), ...), concat_to_qlinear),
    (Op(Q, _lin(("Softmax",)), ...), softmax_to_int),
    (Op(Q, _lin(("AveragePool", "GlobalAveragePool")), ...), pool_to_qlinear),
    (Op(Q, _lin(MOVES), ...), move_quantized),
    (Op(Q, Op(None, name="lin", where=_unary_elementwise), ...), lookup_table),
    (Op(Q, Op("DequantizeLinear", one_use=False), ...), requantize_identity),
]


@graph_pass("fuse_qdq")
def fuse_qdq(g: Graph) -> Graph:
    """QDQ patterns -> QLinearConv, com.microsoft.QGemm and int8 data movement (module
    docstring); warns, naming each float op still between DequantizeLinear and QuantizeLinear.

    Preconditions: none; runs first in the pipelines."""
    g = rewrite(g, FUSE_QDQ_PATTERNS)
    for n in g.nodes:
        if n.op in ("QuantizeLinear", "DequantizeLinear") or not n.outputs:
            continue
        fed = any(v is not None and v.producer is not None and v.producer.op == "DequantizeLinear"
                  for v in n.inputs)
        feeds = any(u.op == "QuantizeLinear" for o in n.outputs for u in g.users(o))
        if fed and feeds:
            log.warning("node %r (%s) stays float between DequantizeLinear and QuantizeLinear: "
                        "onnxcc has no integer kernel for this pattern", n.name, n.op)
    return g

