"""Control flow at import time: ``If``, ``Loop`` and ``Scan`` are inlined into the main graph.

Spec: ONNX Operators.md, sections "If" (If-1/11/13/16/19/21), "Loop" (Loop-1/11/13/16/19/21) and
"Scan" (Scan-8, and Scan-9/11/16/19/21 with axes and directions); subgraph scoping rules in
IR.md, "Graphs" / "Names Within a Graph" (a subgraph may read any name visible in an enclosing
graph; its own names shadow them).

onnxcc compiles static graphs, so its frontend removes control flow while importing (the ops never
reach the graph IR, the passes or the back ends):

- ``If`` (ONNX operators, "If") with a condition known at compile time (a constant, folded, or a
  graph input bound with ``constant_inputs=``): the chosen branch is inlined. With a runtime
  condition, **both branches are inlined and computed**, and each output becomes
  ``Where(cond, then_output, else_output)``; the branches' outputs must then agree in shape and
  dtype.
- ``Loop`` ("Loop") whose trip count is known at compile time (``M`` constant, and the condition
  absent or constant before each iteration after folding) is unrolled: loop-carried values are
  threaded through the copies of the body, scan outputs are stacked along a new axis 0.
- ``Scan`` ("Scan", opset 9 and newer: ``scan_input_axes``, ``scan_input_directions``,
  ``scan_output_axes``, ``scan_output_directions``; opset 8's batched form with equal
  ``sequence_lens``) is unrolled likewise: its scan length is a static dim.

Subgraphs are inlined by recursion (an ``If`` inside a ``Loop`` body...), their initializers and
``Constant`` nodes become constants, every inlined tensor gets a fresh name
(``<node>/<branch or iteration>/<name>``), and an outer-scope name shadowed inside a subgraph
resolves to the inner value. Unrolling is capped at :data:`MAX_ITERATIONS` iterations per loop and
:data:`MAX_INLINED_NODES` inlined nodes per model.
"""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .errors import AttributeValueError, ModelLoadError, ShapeError
from .ir import TensorType, Value

OPS = ("If", "Loop", "Scan")
MAX_ITERATIONS = 4096
MAX_INLINED_NODES = 200_000

Scope = ChainMap   # original tensor name -> name in the main graph (absent: the main graph's own)


@dataclass
class Context:
    """What inlining needs from the importer: its table of values, the model opset, a way to
    import a node of any graph (``emit(node, k, scope, prefix)``; ``scope`` None: the main
    graph), one to import a generated node whose names are final (``add(node, k)``) and fresh
    tensor names."""

    values: dict[str, Value]
    version: int
    emit: Callable[[onnx.NodeProto, int, Scope | None, str], None]
    add: Callable[[onnx.NodeProto, int], None]
    fresh: Callable[[str], str]
    inlined: int = 0
    _k: list[int] = field(default_factory=lambda: [0])

    def const(self, arr: np.ndarray, base: str) -> str:
        """A new constant tensor holding ``arr``; returns its name."""
        name = self.fresh(base)
        self.values[name] = Value(name, TensorType(arr.shape, arr.dtype), const=arr)
        return name

    def node(self, op: str, inputs: list[str], output: str, name: str, **attrs) -> None:
        """Import a generated ``op`` node whose names are final."""
        self._k[0] += 1
        self.add(helper.make_node(op, inputs, [output], name=name, **attrs), self._k[0])


def subgraph_nodes(graph: onnx.GraphProto):
    """Every node of ``graph`` and of its subgraphs, depth first."""
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from subgraph_nodes(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sg in a.graphs:
                    yield from subgraph_nodes(sg)


def all_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name of ``graph`` and its subgraphs (fresh names avoid them)."""
    names = {t.name for t in graph.initializer} | {v.name for v in graph.input}
    names |= {v.name for v in graph.output}
    for n in subgraph_nodes(graph):
        names.update(n.output)
        names.update(n.input)
    for n in graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                names |= all_names(a.g)
    return names


def expand(node: onnx.NodeProto, nname: str, scope: Scope | None, ctx: Context) -> None:
    """Import control-flow ``node`` (named ``nname``) by inlining its subgraphs; ``scope`` maps
    the names of the graph it belongs to (None: the main graph).

    Spec: Operators.md "If", "Loop", "Scan". ``If`` with a runtime condition computes **both**
    branches and selects each output with ``Where``. Raises ShapeError (a runtime If's branch
    outputs differ; a trip count or condition not known at compile time, naming
    ``constant_inputs``; more than MAX_ITERATIONS iterations or MAX_INLINED_NODES nodes) and
    ModelLoadError (a malformed node or body), each naming the node and the op."""
    {"If": _if, "Loop": _loop, "Scan": _scan}[node.op_type](node, nname, scope, ctx)


GRAPH_ATTRS = {"If": ("then_branch", "else_branch"), "Loop": ("body",), "Scan": ("body",)}
INT_ATTRS = {"Scan": ("num_scan_inputs",)}


def _attrs(node: onnx.NodeProto, nname: str) -> dict:
    """The attributes of control-flow ``node`` by name. Raises ModelLoadError naming the node
    when a required subgraph (``then_branch``/``else_branch``, ``body``) or Scan's
    ``num_scan_inputs`` is missing or of another attribute type, or the node has no inputs
    where the spec requires one (If's condition)."""
    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    op = node.op_type
    for key in GRAPH_ATTRS.get(op, ()):
        if not isinstance(a.get(key), onnx.GraphProto):
            raise ModelLoadError(f"the required graph attribute {key!r} is "
                                 + ("missing" if key not in a else "not a graph")
                                 + "; re-export the model", node=nname, op=op)
    for key in INT_ATTRS.get(op, ()):
        if not isinstance(a.get(key), int):
            raise ModelLoadError(f"the required int attribute {key!r} is "
                                 + ("missing" if key not in a else "not an int")
                                 + "; re-export the model", node=nname, op=op)
    if op == "If" and not (node.input and node.input[0]):
        raise ModelLoadError("the condition input is missing", node=nname, op=op)
    return a


def _resolve(name: str, scope: Scope | None) -> str:
    return name if scope is None else scope.get(name, name)


def _value(name: str, scope: Scope | None, ctx: Context, nname: str, op: str) -> Value:
    real = _resolve(name, scope)
    if real not in ctx.values:
        raise ModelLoadError(f"input {name!r} is not produced by any earlier node", node=nname,
                             op=op, hint="the graph must be topologically sorted and complete")
    return ctx.values[real]


def _outputs(node: onnx.NodeProto, nname: str, scope: Scope | None, ctx: Context) -> list[str]:
    """The names ``node``'s outputs take in the main graph (registered in ``scope``)."""
    if scope is None:
        return list(node.output)
    names = []
    for o in node.output:
        real = ctx.fresh(f"{nname}/{o}") if o else ""
        if o:
            scope[o] = real
        names.append(real)
    return names


def inline(graph: onnx.GraphProto, bindings: dict[str, str], scope: Scope | None, prefix: str,
           ctx: Context, nname: str, op: str) -> list[str]:
    """Import the nodes of subgraph ``graph`` into the main graph, its inputs bound to the
    tensors ``bindings`` names; returns the main-graph names of its outputs.

    Spec: IR.md "Names Within a Graph": names of ``graph`` (its inputs, initializers and node
    outputs) shadow those of the enclosing scopes; other names resolve outward."""
    ctx.inlined += len(graph.node)
    if ctx.inlined > MAX_INLINED_NODES:
        raise ShapeError(f"inlining control flow exceeds {MAX_INLINED_NODES} nodes", node=nname,
                         op=op, hint="onnxcc unrolls Loop and Scan at compile time; compile a model "
                         "with fewer iterations (or export the loop unrolled)")
    child: Scope = scope.new_child() if scope is not None else ChainMap()
    child.update(bindings)
    for t in graph.initializer:
        child[t.name] = ctx.const(numpy_helper.to_array(t), prefix + t.name)
    for k, n in enumerate(graph.node):
        ctx.emit(n, k, child, prefix)
    outs = []
    for o in graph.output:
        real = child.get(o.name, o.name)
        if real not in ctx.values:
            raise ModelLoadError(f"subgraph output {o.name!r} is never produced", node=nname,
                                 op=op, hint="the model is malformed")
        outs.append(real)
    return outs


def _count(graph: onnx.GraphProto, n: int, what: str, nname: str, op: str) -> None:
    if len(graph.output) != n:
        raise ModelLoadError(f"{what} has {len(graph.output)} outputs, {n} expected", node=nname,
                             op=op, hint="the model is malformed")


def _if(node: onnx.NodeProto, nname: str, scope: Scope | None, ctx: Context) -> None:
    """ONNX If (opset 1+): the branch a constant condition selects, or, for a runtime condition,
    both branches computed and ``Where(cond, then, else)`` per output."""
    a = _attrs(node, nname)
    cond = _value(node.input[0], scope, ctx, nname, "If")
    for key in ("then_branch", "else_branch"):
        _count(a[key], len(node.output), key, nname, "If")
    if cond.type.size != 1:
        raise ShapeError(f"the condition has shape {list(cond.shape)}; it must hold one value",
                         node=nname, op="If", hint="the model is malformed")
    outs = _outputs(node, nname, scope, ctx)
    if cond.is_const:
        key = "then_branch" if bool(np.asarray(cond.const).reshape(-1)[0]) else "else_branch"
        got = inline(a[key], {}, scope, f"{nname}/{key[:-7]}/", ctx, nname, "If")
        for k, (src, dst) in enumerate(zip(got, outs)):
            if dst:
                ctx.node("Identity", [src], dst, f"{nname}/out{k}")
        return
    then = inline(a["then_branch"], {}, scope, f"{nname}/then/", ctx, nname, "If")
    other = inline(a["else_branch"], {}, scope, f"{nname}/else/", ctx, nname, "If")
    c = cond.name
    if cond.shape != ():   # a [1] condition must not broadcast the branch outputs to rank 1
        c = ctx.fresh(f"{nname}/cond")
        ctx.node("Reshape", [cond.name, ctx.const(np.zeros(0, np.int64), f"{nname}/scalar")], c,
                 f"{nname}/cond")
    for k, (t, e, dst) in enumerate(zip(then, other, outs)):
        tv, ev = ctx.values[t], ctx.values[e]
        if tv.shape != ev.shape or tv.dtype != ev.dtype:
            raise ShapeError(
                f"the condition is a runtime input and output {k} differs between the branches: "
                f"then {tv.dtype}{list(tv.shape)}, else {ev.dtype}{list(ev.shape)}",
                node=nname, op="If",
                hint="onnxcc computes both branches and selects; bind the graph input the "
                "condition comes from with constant_inputs={...} to compile one branch")
        if dst:
            ctx.node("Where", [c, t, e], dst, f"{nname}/select{k}")


def _check_trip(v: Value, what: str, nname: str) -> None:
    if not v.is_const:
        raise ShapeError(f"{what} {v.name!r} is not known at compile time", node=nname, op="Loop",
                         hint="onnxcc unrolls Loop at compile time: bind the graph input it comes "
                         "from with constant_inputs={...} (--constant-input on the command line)")


def _scalar(v: Value) -> np.generic:
    return np.asarray(v.const).reshape(-1)[0]


def _loop(node: onnx.NodeProto, nname: str, scope: Scope | None, ctx: Context) -> None:
    """ONNX Loop (opset 1+), unrolled: ``M`` and ``cond`` must be known at compile time, and
    the body's condition output too when ``cond`` is given (it is read before each iteration)."""
    body = _attrs(node, nname)["body"]
    ins = list(node.input) + [""] * (2 - len(node.input))
    init = ins[2:]
    n_carried = len(init)
    n_scan = len(body.output) - 1 - n_carried
    if len(body.input) != 2 + n_carried or n_scan < 0 or len(node.output) != n_carried + n_scan:
        raise ModelLoadError(f"the body takes {len(body.input)} inputs and gives "
                             f"{len(body.output)} outputs for {n_carried} loop-carried values "
                             f"and {len(node.output)} outputs", node=nname, op="Loop",
                             hint="the model is malformed")
    m = None
    if ins[0]:
        mv = _value(ins[0], scope, ctx, nname, "Loop")
        _check_trip(mv, "the trip count M", nname)
        m = int(_scalar(mv))
    cond = _value(ins[1], scope, ctx, nname, "Loop").name if ins[1] else None
    if m is None and cond is None:
        raise ShapeError("the loop has neither a trip count M nor a condition: it never ends",
                         node=nname, op="Loop", hint="the model is malformed")
    if m is not None and cond is None and m > MAX_ITERATIONS:
        raise ShapeError(f"the loop runs {m} iterations, more than {MAX_ITERATIONS}", node=nname,
                         op="Loop", hint="onnxcc unrolls Loop at compile time; compile a model "
                         "with fewer iterations (or bind a smaller trip count with "
                         "constant_inputs)")
    carried = [_value(x, scope, ctx, nname, "Loop").name for x in init]
    scans: list[list[str]] = [[] for _ in range(n_scan)]
    i = 0
    while m is None or i < m:
        if cond is not None:
            _check_trip(ctx.values[cond], "the loop condition" if i == 0 else
                        f"the condition after iteration {i - 1}", nname)
            if not bool(_scalar(ctx.values[cond])):
                break
        if i >= MAX_ITERATIONS:
            raise ShapeError(f"the loop runs more than {MAX_ITERATIONS} iterations", node=nname,
                             op="Loop", hint="onnxcc unrolls Loop at compile time; compile a model "
                             "with fewer iterations (or bind a smaller trip count with "
                             "constant_inputs)")
        it = ctx.const(np.array(i, np.int64), f"{nname}/iter{i}/i")
        c_in = cond if cond is not None else ctx.const(np.array(True), f"{nname}/iter{i}/cond")
        binds = {body.input[0].name: it, body.input[1].name: c_in}
        binds.update({vi.name: x for vi, x in zip(body.input[2:], carried)})
        outs = inline(body, binds, scope, f"{nname}/iter{i}/", ctx, nname, "Loop")
        if cond is not None:
            cond = outs[0]
        carried = outs[1:1 + n_carried]
        for j in range(n_scan):
            scans[j].append(outs[1 + n_carried + j])
        i += 1
    dsts = _outputs(node, nname, scope, ctx)
    for k, (src, dst) in enumerate(zip(carried, dsts)):
        if dst:
            ctx.node("Identity", [src], dst, f"{nname}/out{k}")
    for j, dst in enumerate(dsts[n_carried:]):
        if dst:
            if not scans[j]:
                raise ShapeError("the loop runs zero iterations, so the shape of its scan "
                                 f"output {j} is unknown", node=nname, op="Loop",
                                 hint="onnxcc unrolls Loop at compile time; give a trip count > 0")
            _stack(scans[j], 0, dst, f"{nname}/scan{j}", ctx, nname, "Loop")


def _stack(names: list[str], axis: int, dst: str, base: str, ctx: Context, nname: str,
           op: str) -> None:
    """``dst`` = the tensors ``names`` stacked along a new ``axis`` (Reshape + Concat)."""
    first = ctx.values[names[0]]
    for n in names[1:]:
        v = ctx.values[n]
        if v.shape != first.shape or v.dtype != first.dtype:
            raise ShapeError(f"scan output changes from {first.dtype}{list(first.shape)} to "
                             f"{v.dtype}{list(v.shape)} between iterations", node=nname, op=op,
                             hint="onnxcc stacks scan outputs statically; every iteration must "
                             "give the same shape")
    shape = list(first.shape[:axis]) + [1] + list(first.shape[axis:])
    if any(d == 0 for d in shape):
        raise ShapeError(f"scan output of shape {list(first.shape)} has a zero dim", node=nname,
                         op=op, hint="zero-size scan outputs are not supported")
    sh = ctx.const(np.array(shape, np.int64), f"{base}/shape")
    parts = []
    for k, n in enumerate(names):
        out = dst if len(names) == 1 else ctx.fresh(f"{base}/{k}")
        ctx.node("Reshape", [n, sh], out, f"{base}/reshape{k}")
        parts.append(out)
    if len(names) > 1:
        ctx.node("Concat", parts, dst, f"{base}/concat", axis=axis)


def _scan(node: onnx.NodeProto, nname: str, scope: Scope | None, ctx: Context) -> None:
    """ONNX Scan, unrolled: opset 9+ (axes and directions per scan input and output), and opset
    8's form (a batch axis 0, the scan axis 1) with ``sequence_lens`` absent or all full."""
    a = _attrs(node, nname)
    body, n_in = a["body"], a["num_scan_inputs"]
    if ctx.version < 9:
        lens, rest = (node.input[0] if node.input else ""), list(node.input[1:])
    else:
        lens, rest = "", list(node.input)
    n_state = len(rest) - n_in
    n_out = len(body.output) - n_state
    if n_state < 0 or n_out < 0 or len(body.input) != len(rest) \
            or len(node.output) != len(body.output):
        raise ModelLoadError(f"the body takes {len(body.input)} inputs and gives "
                             f"{len(body.output)} outputs for {len(rest)} inputs "
                             f"({n_in} scanned) and {len(node.output)} outputs", node=nname,
                             op="Scan", hint="the model is malformed")
    vals = [_value(x, scope, ctx, nname, "Scan") for x in rest]
    dsts = _outputs(node, nname, scope, ctx)
    if ctx.version >= 9:
        states, elems = _scan_core(body, vals[:n_state], vals[n_state:], a, nname, scope, ctx,
                                   f"{nname}/")
        for k, (src, dst) in enumerate(zip(states, dsts)):
            if dst:
                ctx.node("Identity", [src], dst, f"{nname}/out{k}")
        for j, dst in enumerate(dsts[n_state:]):
            if dst:
                _stack_scan(elems[j], j, a, dst, nname, ctx)
        return
    # opset 8: every input has a batch axis 0; each batch row is an opset-9 scan along axis 0
    batch = vals[0].shape[0] if vals and vals[0].shape else 0
    for v in vals:
        if not v.shape or v.shape[0] != batch:
            raise ShapeError(f"input {v.name!r} of shape {list(v.shape)} does not share the batch "
                             f"size {batch}", node=nname, op="Scan", hint="the model is malformed")
    if lens:
        lv = _value(lens, scope, ctx, nname, "Scan")
        full = n_in and vals[n_state].shape[1]
        if not lv.is_const or np.any(np.asarray(lv.const) != full):
            raise ShapeError("sequence_lens is not known at compile time or not every sequence "
                             "is full length", node=nname, op="Scan",
                             hint="bind it with constant_inputs, or export Scan at opset 9+")
    rows: list[tuple[list[str], list[list[str]]]] = []
    for b in range(batch):
        idx = ctx.const(np.array(b, np.int64), f"{nname}/batch{b}/index")
        picked = []
        for k, v in enumerate(vals):
            p = ctx.fresh(f"{nname}/batch{b}/in{k}")
            ctx.node("Gather", [v.name, idx], p, f"{nname}/batch{b}/gather{k}", axis=0)
            picked.append(ctx.values[p])
        rows.append(_scan_core(body, picked[:n_state], picked[n_state:], a, nname, scope, ctx,
                               f"{nname}/batch{b}/"))
    for k, dst in enumerate(dsts[:n_state]):
        if dst:
            _stack([r[0][k] for r in rows], 0, dst, f"{nname}/state{k}", ctx, nname, "Scan")
    for j, dst in enumerate(dsts[n_state:]):
        if dst:
            per_row = []
            for b, r in enumerate(rows):
                out = ctx.fresh(f"{nname}/batch{b}/scan{j}")
                _stack_scan(r[1][j], j, a, out, nname, ctx)
                per_row.append(out)
            _stack(per_row, 0, dst, f"{nname}/scan{j}", ctx, nname, "Scan")


def _scan_core(body: onnx.GraphProto, states: list[Value], xs: list[Value], a: dict, nname: str,
               scope: Scope | None, ctx: Context, prefix: str) -> tuple[list[str], list[list[str]]]:
    """Unroll an opset-9 scan; returns the final states and, per scan output, its elements in
    iteration order."""
    axes = list(a.get("scan_input_axes") or [0] * len(xs))
    dirs = list(a.get("scan_input_directions") or [0] * len(xs))
    if len(axes) != len(xs) or len(dirs) != len(xs):
        raise ModelLoadError(f"scan_input_axes/directions have {len(axes)}/{len(dirs)} entries "
                             f"for {len(xs)} scan inputs", node=nname, op="Scan",
                             hint="the model is malformed")
    lengths = set()
    for k, (x, ax) in enumerate(zip(xs, axes)):
        r = len(x.shape)
        if not -r <= ax < r:
            raise AttributeValueError(f"scan_input_axes[{k}] = {ax} is out of range for rank "
                                      f"{r}", node=nname, op="Scan", hint="the model is malformed")
        axes[k] = ax % r
        lengths.add(x.shape[axes[k]])
    if len(lengths) > 1:
        raise ShapeError(f"the scan inputs have different lengths {sorted(lengths)}", node=nname,
                         op="Scan", hint="the model is malformed")
    steps = lengths.pop() if lengths else 0
    if steps == 0 and len(body.output) > len(states):
        raise ShapeError("the scan has zero iterations, so the shape of its outputs is unknown",
                         node=nname, op="Scan", hint="zero-length scans are not supported")
    if steps > MAX_ITERATIONS:
        raise ShapeError(f"the scan runs {steps} iterations, more than {MAX_ITERATIONS}",
                         node=nname, op="Scan", hint="onnxcc unrolls Scan at compile time; "
                         "compile a shorter sequence (input_shapes)")
    cur = [s.name for s in states]
    elems: list[list[str]] = [[] for _ in range(len(body.output) - len(states))]
    for t in range(steps):
        binds = {vi.name: s for vi, s in zip(body.input, cur)}
        for k, (x, ax, d) in enumerate(zip(xs, axes, dirs)):
            idx = ctx.const(np.array(steps - 1 - t if d else t, np.int64), f"{prefix}iter{t}/i{k}")
            e = ctx.fresh(f"{prefix}iter{t}/x{k}")
            ctx.node("Gather", [x.name, idx], e, f"{prefix}iter{t}/gather{k}", axis=ax)
            binds[body.input[len(states) + k].name] = e
        outs = inline(body, binds, scope, f"{prefix}iter{t}/", ctx, nname, "Scan")
        cur = outs[:len(states)]
        for j, o in enumerate(outs[len(states):]):
            elems[j].append(o)
    return cur, elems


def _stack_scan(elems: list[str], j: int, a: dict, dst: str, nname: str, ctx: Context) -> None:
    """Scan output ``j`` from its elements: along ``scan_output_axes[j]``, in reverse order when
    ``scan_output_directions[j]`` is 1."""
    axes = list(a.get("scan_output_axes") or [])
    dirs = list(a.get("scan_output_directions") or [])
    ax = axes[j] if j < len(axes) else 0
    rank = len(ctx.values[elems[0]].shape) + 1
    if not -rank <= ax < rank:
        raise AttributeValueError(f"scan_output_axes[{j}] = {ax} is out of range for rank "
                                  f"{rank}", node=nname, op="Scan", hint="the model is malformed")
    order = elems[::-1] if j < len(dirs) and dirs[j] else elems
    _stack(order, ax % rank, dst, f"{nname}/scan{j}", ctx, nname, "Scan")

