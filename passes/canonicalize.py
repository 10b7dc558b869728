"""canonicalize: constant folding, dead code, Identity/Dropout removal, Sum -> Add, reshape chains.

    %c = Unsqueeze(%w*) {axes=[1,2]}         ==>  (%c becomes a constant)
    %y = Identity(%x); %z = Dropout(%y)      ==>  readers of %z read %x
    %s = Sum(%a, %b, %c)                     ==>  %t = Add(%a, %b); %s = Add(%t, %c)
    %f = Flatten(%x); %r = Reshape(%f, %k*)  ==>  %r = Reshape(%x, %shape*)   (shape: exact dims)
    %r = Squeeze(%x) with r.shape == x.shape ==>  readers of %r read %x

Every Flatten/Squeeze/Unsqueeze becomes a Reshape whose shape input is a constant int64 vector of
the exact output dims, so later stages meet one view op. Graph outputs keep their names and stay
produced by a node (a node whose output is a graph output is not folded into a constant).
Preconditions: none; run it first and again after passes that leave constant subgraphs (after
fold_batchnorm). It converges and no later pass relies on it for correctness.
"""

from __future__ import annotations

import numpy as np
from onnxcc.ir import Graph, Node, TensorType, Value
from onnxcc.ops import REQUIRED, get_op, run_node

from .manager import graph_pass
from .pattern import Any, Match, Op, can_forward, rewrite

# Outputs bigger than this (elements) are folded only when the result is a splat (a 0-stride
# broadcast view costs nothing); otherwise the node stays and computes at run time.
MAX_FOLD_ELEMENTS = 1 << 26
RESHAPE_LIKE = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def is_splat(a: np.ndarray) -> bool:
    """One value repeated: at most one element, or stride 0 along every dim longer than 1."""
    return a.size <= 1 or all(s == 0 for s, d in zip(a.strides, a.shape) if d > 1)


def _shape_like(a: np.ndarray) -> bool:
    return a.ndim == 1 and a.size <= 8 and a.dtype.kind in "iu"


def _is_output(g: Graph, v: Value) -> bool:
    return any(o is v for o in g.outputs)


def _evaluate(n: Node) -> list[np.ndarray] | None:
    """The node's outputs on its constant inputs, or None when too big to keep."""
    args = [None if i is None else i.const for i in n.inputs]
    small = sum(o.type.size for o in n.outputs) <= MAX_FOLD_ELEMENTS
    consts = [a for a in args if a is not None]
    if small:
        with np.errstate(all="ignore"):
            return run_node(n, *args)
    if not all(is_splat(a) or _shape_like(a) for a in consts) or len(n.outputs) != 1:
        return None
    shape = n.outputs[0].shape
    if "elementwise" in get_op(n).traits:  # evaluate one element, broadcast it back
        one = [None if a is None else a[tuple(slice(0, 1) for _ in a.shape)] for a in args]
        with np.errstate(all="ignore"):
            (r,) = run_node(n, *one)
        return [np.broadcast_to(r, shape)]
    with np.errstate(all="ignore"):  # shape-driven ops (ConstantOfShape, Expand) return views
        outs = run_node(n, *args)
    return outs if all(is_splat(o) for o in outs) else None


def fold_constant(m: Match) -> list[Value] | None:
    """A node whose inputs are all constant becomes constants (kept as splat views if so)."""
    n, g = m.root, m.graph
    if any(_is_output(g, o) for o in n.outputs):
        return None
    outs = _evaluate(n)
    if outs is None:
        return None
    return [Value(o.name, TensorType(a.shape, a.dtype), const=a) for o, a in zip(n.outputs, outs)]


def _all_const(n: Node) -> bool:
    return all(i is None or i.is_const for i in n.inputs)


def forward_input(m: Match) -> Value | None:
    """Identity, and Dropout in inference mode whose mask is unused: readers read the input."""
    n, g = m.root, m.graph
    x = n.inputs[0]
    if len(n.outputs) > 1 and any(m.uses(o) for o in n.outputs[1:]):
        return None
    training = n.inputs[2] if len(n.inputs) > 2 else None  # Dropout opset >= 12
    if training is not None and (not training.is_const or bool(np.asarray(training.const).any())):
        return None
    if x is None or not can_forward(g, n.outputs[0], x):
        return None
    return x


def sum_to_add(m: Match) -> Value | list[Node] | None:
    """Sum(a) -> a; Sum(a, b, ...) -> a chain of Adds (left to right)."""
    n, g = m.root, m.graph
    ins = [i for i in n.inputs if i is not None]
    out = n.outputs[0]
    if len(ins) == 1:
        return ins[0] if can_forward(g, out, ins[0]) else None
    nodes: list[Node] = []
    acc = ins[0]
    for k, b in enumerate(ins[1:]):
        last = k == len(ins) - 2
        shape = np.broadcast_shapes(acc.shape, b.shape)
        res = out if last else Value(g.fresh_name(f"{out.name}_sum"), TensorType(shape, out.dtype))
        name = n.name if last else g.fresh_name(f"{n.name}_add")
        nodes.append(Node("Add", [acc, b], [res], {}, name, n.version))
        acc = res
    return nodes


def _reshape_to(g: Graph, like: Node, x: Value, out: Value) -> Node | None:
    """``Reshape(x, <exact dims of out>)`` producing ``out``, in ``like``'s place."""
    shape = out.shape
    attrs = {k: v for k, v in get_op("Reshape").attrs.items() if v is not REQUIRED}
    if 0 in shape:
        if "allowzero" not in attrs:
            return None  # a literal 0 would mean "copy the input dim" before opset 14
        attrs["allowzero"] = 1
    k = Value(g.fresh_name(f"{like.name}_shape"), TensorType((len(shape),), np.int64),
              const=np.array(shape, np.int64))
    return Node("Reshape", [x, k], [out], attrs, like.name, like.version)


def collapse_reshapes(m: Match) -> Node | None:
    """Two chained reshape-like ops become one Reshape to the outer one's exact shape."""
    return _reshape_to(m.graph, m.root, m["x"], m.root.outputs[0])


def canonical_reshape(m: Match) -> Value | Node | None:
    """A reshape-like op to the same shape goes away; others become Reshape(x, exact dims)."""
    n, g, x = m.root, m.graph, m["x"]
    out = n.outputs[0]
    if x.shape == out.shape and can_forward(g, out, x):
        return x
    k = n.inputs[1] if len(n.inputs) > 1 else None
    if n.op == "Reshape" and k is not None and k.is_const and k.const.dtype == np.int64 \
            and tuple(k.const.tolist()) == out.shape:
        return None  # already canonical
    return _reshape_to(g, n, x, out)


X = Any("x")
CANONICALIZE_PATTERNS = [
    (Op(None, where=_all_const), fold_constant),
    (Op(("Identity", "Dropout"), ...), forward_input),
    (Op("Sum"), sum_to_add),
    (Op(RESHAPE_LIKE, Op(RESHAPE_LIKE, X, ..., name="inner"), ...), collapse_reshapes),
    (Op(RESHAPE_LIKE, X, ...), canonical_reshape),
]


@graph_pass("canonicalize")
def canonicalize(g: Graph) -> Graph:
    """Constant folding, DCE, Identity/Dropout removal, Sum -> Add, canonical reshapes.

    See the module docstring for the before => after forms. Converges; keeps graph outputs.
    """
    g.remove_dead()
    rewrite(g, CANONICALIZE_PATTERNS)
    g.remove_dead()
    return g
