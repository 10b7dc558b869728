"""QDQ patterns of Softmax and the average pools -> integer ops (rewrites of ``fuse_qdq``'s table):

    %yq = Q(Softmax(DQ(%xq, %xs*, %xz*)), %ys*, %yz*)
        ==>  %yq = onnxcc.QSoftmax(%xq) {TFLite's multiplier, left_shift, diff_min; the output's
                                          fixed-point multiplier and zero point}
    %yq = Q(AveragePool(DQ(%xq, %xs*, %xz*)), %ys*, %yz*)
        ==>  %yq = com.microsoft.QLinearAveragePool(%xq, %xs, %xz, %ys, %yz) {AveragePool's,
                   round_before_zero_point=1 unless the pattern is an imported QLinear pool}
    %yq = Q(GlobalAveragePool(DQ(%xq, ...)), ...)  ==>  com.microsoft.QLinearGlobalAveragePool

Conditions: x and y int8/uint8 of one type, per-tensor constant parameters; Softmax rows of at
most ``SOFTMAX_MAX_ROW`` elements and ``x_scale * 2**26 > 1`` (TFLite's limits). The integer
semantics (TFLite's softmax and AveragePool) are in ``onnxcc.ops.quant_int``. Anything else
stays float (fuse_qdq warns).
"""

from __future__ import annotations

import numpy as np
from onnxcc.codegen.requantize import quantize_multiplier
from onnxcc.ir import Node
from onnxcc.ops.norm import softmax_axes
from onnxcc.ops.quant_int import SOFTMAX_MAX_ROW, row_view, softmax_params

from .pattern import Match

INT8 = (np.dtype(np.int8), np.dtype(np.uint8))


def softmax_to_int(m: Match) -> list[Node] | None:
    """Q(Softmax(DQ(x))) -> onnxcc.QSoftmax (module docstring)."""
    from .fuse_qdq import _dq, _q_params, _scalar

    sm, q = m["lin"], m.root
    qp = _q_params(q)
    d = _dq(sm.inputs[0])
    if qp is None or d is None or d.axis is not None or d.q.dtype not in INT8 or d.q.is_const:
        return None
    x = d.q
    axes = softmax_axes(sm)
    if not axes or row_view(x.shape, axes[0], len(axes))[1] > SOFTMAX_MAX_ROW:
        return None
    p = softmax_params(float(np.float32(_scalar(d.scale))))
    ys = float(np.float32(_scalar(qp[0])))
    if p is None or not ys > 0:
        return None
    om, osh = quantize_multiplier(float(np.float32(2.0 ** -31 / ys)))
    attrs = {"axis": axes[0], "count": len(axes), "multiplier": p[0], "left_shift": p[1],
             "diff_min": p[2], "out_multiplier": om, "out_shift": osh,
             "zero_point": int(_scalar(qp[1]) or 0), "to": q.outputs[0].dtype.name}
    return [Node("onnxcc.QSoftmax", [x], [q.outputs[0]], attrs, sm.name, 1)]


def pool_to_qlinear(m: Match) -> list[Node] | None:
    """Q(AveragePool | GlobalAveragePool(DQ(x))) -> com.microsoft.QLinearAveragePool |
    QLinearGlobalAveragePool (module docstring)."""
    from .fuse_qdq import _dq, _q_params, _zp

    op, q, g = m["lin"], m.root, m.graph
    qp = _q_params(q)
    d = _dq(op.inputs[0])
    if qp is None or d is None or d.axis is not None or d.q.dtype not in INT8 or \
            q.outputs[0].dtype != d.q.dtype or d.q.is_const or len(d.q.shape) < 3:
        return None
    ys, yz = qp
    t = d.q.dtype
    ins = [d.q, d.scale, _zp(g, d.zp, t, f"{op.name}_xz"), ys, _zp(g, yz, t, f"{op.name}_yz")]
    attrs = dict(op.attrs) if op.op == "AveragePool" else {}
    attrs["channels_last"] = 0
    # QuantizeLinear rounds the mean before adding the zero point, onnxruntime's QLinear pools
    # (imported by onnxcc.contrib.expand as this very pattern) after it: they differ on ties
    # when the zero point is odd
    from onnxcc.contrib import expanded_op
    if not expanded_op(op.name, q.name):
        attrs["round_before_zero_point"] = 1
    return [Node(f"com.microsoft.QLinear{op.op}", ins, [q.outputs[0]], attrs, op.name, 1)]
