"""float16_compute: float16 is a storage type; every op computes in float32 and rounds once.

    %y:f16 = Conv(%x:f16, %w:f16*, %b:f16*)
        ==>  %x32:f32 = Cast(%x) {to=FLOAT}
             %y32:f32 = Conv(%x32, %w32:f32*, %b32:f32*)      (constants converted here, exact)
             %y:f16   = Cast(%y32) {to=FLOAT16}

This is what onnxruntime's CPU kernels do for most float16 ops (they upcast, compute in float32,
round the result to float16 when they store it) and what onnx's reference does for the ops it
computes in a wider type. After this pass a float16 tensor is only read or written by Cast and
CastLike (either direction), by the view ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity,
Dropout), and by graph inputs and outputs; the loop IR and the renderers know float16 as a
storage type only (``onnxcc.codegen.loops``). A float16 value read by several nodes is cast once.
float16 constants read by computing nodes become float32 constants here (exact), so that
folding and the lowerings see float32 weights; their names go to ``graph.meta[FLOAT16_WEIGHTS]``
and the lowering stores them as float16 again, widening each load (2 bytes per weight, as in
the model). Graph outputs and their names are untouched.

A node whose op cannot take float32 in place of float16 (its output types, re-inferred on float32
inputs, are not the float16 ones made float32, e.g. an attribute fixes a float16 output) is left
as it is; the legality check then names it. Ordering: after canonicalize and fold_batchnorm (which
fold and merge float16 constants in float16, as onnxruntime's graph optimizers do), before the
fuse passes, which merge the casts into the elementwise chains and the Conv/MatMul epilogues.
"""

from __future__ import annotations

import numpy as np
from onnxcc.ir import Graph, Node, TensorType, Value
from onnxcc.ops import infer_node

from .manager import graph_pass

F16, F32 = np.dtype(np.float16), np.dtype(np.float32)
#: Ops that read and write float16 themselves: casts and views (which move bytes, not numbers).
KEEPS_FLOAT16 = frozenset({"Cast", "CastLike", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
                           "Identity", "Dropout"})
_ONNX_FLOAT, _ONNX_FLOAT16 = 1, 10
#: ``graph.meta`` key: names of the float32 constants made from float16 ones, which the lowering
#: stores as float16 again (2 bytes) and widens where kernels load them
#: (``onnxcc.codegen.lower.float16_weights``).
FLOAT16_WEIGHTS = "float16_weights"
_DTYPE_ATTRS = ("dtype", "output_dtype")   # EyeLike/Random*: dtype; DequantizeLinear-25


def _is_f16(v: Value | None) -> bool:
    return v is not None and v.dtype == F16


def _as_f32(t: TensorType) -> TensorType:
    return TensorType(t.shape, F32) if t.dtype == F16 else t


def _float32_node(g: Graph, n: Node, read32) -> Node | None:
    """``n`` reading float32 in place of its float16 inputs (``read32(value)``) and writing
    float32 values in place of its float16 outputs, or None when its op does not allow it."""
    attrs = dict(n.attrs)
    for a in _DTYPE_ATTRS:
        if attrs.get(a) == _ONNX_FLOAT16:
            attrs[a] = _ONNX_FLOAT
    ins = [read32(v) if _is_f16(v) else v for v in n.inputs]
    outs = [Value(g.fresh_name(f"{o.name}_f32"), _as_f32(o.type)) if _is_f16(o) else o
            for o in n.outputs]
    m = Node(n.op, ins, outs, attrs, n.name, n.version)
    try:
        types = infer_node(m)
    except Exception:
        return None
    want = [_as_f32(o.type) for o in n.outputs]
    if len(types) != len(want) or any(t.shape != w.shape or t.dtype != w.dtype
                                      for t, w in zip(types, want)):
        return None
    return m


@graph_pass("float16_compute")
def float16_compute(g: Graph) -> Graph:
    """Rewrite every node that computes on float16 tensors (any op but :data:`KEEPS_FLOAT16`)
    to compute in float32 between casts, as the module docstring shows. Returns ``g``."""
    if not any(_is_f16(v) for v in g.values()):
        return g
    up: dict[int, Value] = {}   # id(float16 value) -> its float32 version (cast or constant)
    narrow: set[str] = g.meta.setdefault(FLOAT16_WEIGHTS, set())
    out_nodes: list[Node] = []
    for n in g.nodes:
        if n.op in KEEPS_FLOAT16 or not any(_is_f16(v) for v in [*n.inputs, *n.outputs]):
            out_nodes.append(n)
            continue
        casts: list[Node] = []
        fresh: dict[int, Value] = {}

        def read32(v: Value) -> Value:
            if id(v) in up or id(v) in fresh:
                return up.get(id(v)) or fresh[id(v)]
            if v.const is not None:
                fresh[id(v)] = g.constant(f"{v.name}_f32", np.asarray(v.const).astype(F32))
                narrow.add(fresh[id(v)].name)
            else:
                v32 = Value(g.fresh_name(f"{v.name}_f32"), _as_f32(v.type))
                cast = Node("Cast", [v], [v32], {"to": _ONNX_FLOAT}, g.fresh_name("to_float32"))
                v32.producer = cast
                casts.append(cast)
                fresh[id(v)] = v32
            return fresh[id(v)]

        m = _float32_node(g, n, read32)
        if m is None:
            out_nodes.append(n)
            continue
        up.update(fresh)
        out_nodes += casts + [m]
        for o, o32 in zip(n.outputs, m.outputs):
            o32.producer = m
            if o is not o32:   # the float16 value, rounded once from the float32 result
                cast = Node("Cast", [o32], [o], {"to": _ONNX_FLOAT16}, g.fresh_name("to_float16"))
                o.producer = cast
                out_nodes.append(cast)
    g.nodes = out_nodes
    return g
