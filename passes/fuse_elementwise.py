"""fuse_elementwise: trees of single-use elementwise ops -> one onnxcc.FusedElementwise.

    %a = Add(%x, %r); %y = Relu(%a)
        ==>  %y = onnxcc.FusedElementwise(%x, %r) {body=[[Add,[],[0,1]],[Relu,[],[-1]]]}
    %m = Mul(%x, %k*); %a = Add(%m, %t*); %y = Relu(%a)
        ==>  %y = onnxcc.FusedElementwise(%x, %k*, %t*)
                 {body=[[Mul,[],[0,1]],[Add,[],[-1,2]],[Relu,[],[-2]]]}

A producer joins its reader when both have the ``elementwise`` trait and one output, the
producer's output has exactly one use (the reader; not a graph output), both outputs have the same
shape (the fused loop runs over it) and a float dtype, no input is omitted, and each op's output
shape is the broadcast of its inputs' (CastLike's second input only lends its dtype: a larger one
would grow the fused loop). Each body step is
``(op, attrs, args)``: ``attrs`` a tuple of (name, value) pairs sorted by name, ``args`` input
indices (k >= 0) or step results (k < 0 is step -k-1). Inputs are deduplicated and keep the
reader's order, the producer's inputs taking the place of its output. A lone elementwise op
stays as it is.
Preconditions: none. Ordering: after fuse_conv_activation (so activations go to Conv/Gemm
first), before schedule and plan_memory (a fused op may then run in place).
"""

from __future__ import annotations

from typing import Any as AnyT

import numpy as np
from onnxcc.ir import Graph, Node, Value
from onnxcc.ops import get_op

from .manager import graph_pass
from .pattern import Match, Op, rewrite

FUSED = "onnxcc.FusedElementwise"


def _freeze(v: AnyT) -> AnyT:
    return tuple(_freeze(x) for x in v) if isinstance(v, (list, tuple)) else v


def _candidate(n: Node) -> bool:
    return (len(n.outputs) == 1 and n.outputs[0].dtype.kind == "f"
            and all(i is not None for i in n.inputs) and "elementwise" in get_op(n).traits
            and _output_is_broadcast(n))


def _output_is_broadcast(n: Node) -> bool:
    """Whether ``n``'s output shape is the broadcast of its inputs' shapes (the fused loop
    runs over the broadcast of every input)."""
    try:
        return np.broadcast_shapes(*(i.shape for i in n.inputs)) == n.outputs[0].shape
    except ValueError:
        return False


def _as_body(n: Node) -> tuple[list[Value], tuple]:
    if n.op == FUSED:
        return list(n.inputs), n.attrs["body"]  # type: ignore[arg-type]
    attrs = tuple(sorted((k, _freeze(v)) for k, v in n.attrs.items()))
    return list(n.inputs), ((n.op, attrs, tuple(range(len(n.inputs)))),)  # type: ignore[arg-type]


def merge(producer: Node, reader: Node) -> tuple[list[Value], tuple]:
    """Inputs and body of one FusedElementwise computing ``reader`` with ``producer`` inlined."""
    p_ins, p_body = _as_body(producer)
    c_ins, c_body = _as_body(reader)
    inputs: list[Value] = []
    index: dict[int, int] = {}

    def slot(v: Value) -> int:
        if id(v) not in index:
            index[id(v)] = len(inputs)
            inputs.append(v)
        return index[id(v)]

    pv = producer.outputs[0]
    for v in c_ins:  # the reader's input order, the producer's inputs where it stood
        for w in (p_ins if v is pv else [v]):
            slot(w)
    pmap = [slot(v) for v in p_ins]
    body = [(op, at, tuple(pmap[a] if a >= 0 else a for a in args)) for op, at, args in p_body]
    off = len(p_body)
    cmap = [-off if v is pv else slot(v) for v in c_ins]  # -off: the producer's last step
    body += [(op, at, tuple(cmap[a] if a >= 0 else a - off for a in args))
             for op, at, args in c_body]
    return inputs, tuple(body)


def fuse_producer(m: Match) -> Node | None:
    """Inline the first input's producer that may join ``m.root``."""
    root = m.root
    out = root.outputs[0]
    for v in root.inputs:
        p = v.producer if v is not None else None
        if (p is None or v.is_const or not m.alive(p) or m.uses(v) != 1
                or not _candidate(p) or v.shape != out.shape):
            continue
        inputs, body = merge(p, root)
        return Node(FUSED, inputs, [out], {"body": body}, root.name, root.version)
    return None


FUSE_ELEMENTWISE_PATTERNS = [(Op(None, where=_candidate), fuse_producer)]


@graph_pass("fuse_elementwise")
def fuse_elementwise(g: Graph) -> Graph:
    """Single-use chains (trees) of float elementwise ops of one shape -> FusedElementwise.

    Ordering: after fuse_conv_activation, before schedule/plan_memory.
    """
    return rewrite(g, FUSE_ELEMENTWISE_PATTERNS)
