"""quantize_int8: post-training static quantization of a float graph into integer kernels.

    (calibrate)  %y = Conv(%x, %w*, %b*); %r = Relu(%y)
        ==>  %xq = Q(%x, sx, zx); %xd = DQ(%xq, sx, zx)
             %y = Conv(%xd, DQ(%wq*, sw*, 0, axis=0), %b*); %r = Relu(%y)
             %rq = Q(%r, sr, zr); (readers of %r read) DQ(%rq, sr, zr)
        ==>  (fuse_qdq)  QLinearConv + Max(zero point), int8 between layers

Every Conv (1 to 3 spatial axes), Gemm (2-D, constant B, alpha 1, beta 1) and 2-D MatMul with a
constant B is quantized: its float input and its output (a single following Relu folded in:
the Relu's or constant Clip's output range is quantized) get a QuantizeLinear/DequantizeLinear pair with parameters
from the calibrated range, its weights become int8 behind a DequantizeLinear, its bias stays
float (fuse_qdq quantizes it to int32 with scale x_scale * w_scale). An Add or Mul of two quantized
tensors of the output's shape (a residual connection) is quantized too, a following Relu folded
in; so is a Concat of quantized tensors (each requantized to the output's parameters). MaxPool, Reshape, Flatten, Transpose, Squeeze and Unsqueeze of a quantized tensor pass its
parameters to their output; so do AveragePool and GlobalAveragePool (TFLite's integer average,
``onnxcc.ops.quant_int``). A Softmax of a quantized tensor becomes TFLite's integer softmax
with its output range calibrated by min-max whatever the method: not TFLite's fixed scale 1/256
(over 1000 classes of probabilities near 1e-3 it rounds every one to 0; the kernel takes any
scale), and not a clipped range (probabilities saturating together make argmax ties).
With ``activations="int16"`` (or for the ``int16_layers``) the pairs quantize to symmetric int16
instead ("16x8", ``onnxcc.quantize``): the same integer ops on int16 tensors, int8 weights; a
Softmax whose input is int16 stays float (no pair after it; its integer kernel is int8).
Then ``fuse_qdq`` and ``canonicalize`` run, so the graph leaves with integer ops and the float
ops without an integer kernel between DequantizeLinear and QuantizeLinear. Graph inputs and
outputs keep their float types (a QuantizeLinear kernel enters the int8 domain).

The scheme and the calibration methods are in ``onnxcc.quantize``; the pass leaves a
``QuantReport`` (per tensor: scale, zero point, SQNR against the float model over up to
``REPORT_SAMPLES`` calibration samples) in ``g.meta["quantization"]``.
Preconditions: after fold_batchnorm and canonicalize (BatchNormalization folded into the
weights, views canonical). Ordering: before fuse_conv_activation and fuse_elementwise.
"""

from __future__ import annotations

import logging
import sys

import numpy as np
from onnxcc.interpreter import interpret_values
from onnxcc.ir import Graph, Node, TensorType, Value
from onnxcc.ops import attr
from onnxcc.quantize import (CalibrationError, Int8, LayerReport, QuantReport, Range,
                             activation_params, graph_inputs_check, load_calibration, sqnr_db,
                             weight_params)

from .canonicalize import canonicalize
from .fuse_qdq import GEMMS, MOVES, fuse_qdq
from .manager import GraphPass
from .fuse_conv_activation import MATMUL, K, matmul_bias
from .pattern import Op, rewrite

log = logging.getLogger("onnxcc.passes")
REPORT_SAMPLES = 32
AVG_POOLS = ("AveragePool", "GlobalAveragePool")   # int8 in and out with the input's parameters


def _conv_ok(n: Node) -> bool:
    x, w = n.inputs[0], n.inputs[1]
    b = n.inputs[2] if len(n.inputs) > 2 else None
    return (x.dtype == np.float32 and not x.is_const and w.is_const and 3 <= len(x.shape) <= 5
            and (b is None or b.is_const))


def _gemm_ok(n: Node) -> bool:
    a, b = n.inputs[0], n.inputs[1]
    if a.dtype != np.float32 or a.is_const or not b.is_const or len(a.shape) != 2 \
            or len(b.shape) != 2:
        return False
    if n.op == "MatMul":
        return True
    if n.attrs.get("activation"):
        return False
    c = n.inputs[2] if len(n.inputs) > 2 else None
    if float(attr(n, "alpha")) != 1.0:
        return False
    if c is not None and (not c.is_const or float(attr(n, "beta")) != 1.0
                          or (len(c.shape) == 2 and c.shape[0] != 1)):
        return False
    return True


def _weight_axis(n: Node) -> int:
    if n.op == "Conv":
        return 0
    if n.op != "MatMul" and int(attr(n, "transB")):
        return 0
    return 1


def _plan(g: Graph) -> tuple[list[Node], dict[str, Value], dict[str, str], set[str],
                            dict[str, list[str]]]:
    """The layers to quantize, the float tensors to quantize (name -> value, with their
    calibrated range), the move and average-pool outputs that copy an input's parameters
    (out -> in), the tensors calibrated by min-max whatever the method (Softmax outputs), and
    per quantized node its quantized tensors (a layer: input, output; an Add, Mul or Concat:
    inputs, output; a Softmax: input)."""
    layers: list[Node] = []
    tensors: dict[str, Value] = {}
    same: dict[str, str] = {}
    minmax: set[str] = set()
    links: dict[str, list[str]] = {}
    outputs = {id(v) for v in g.outputs}
    for n in g.nodes:
        if (n.op == "Conv" and _conv_ok(n)) or (n.op in GEMMS and _gemm_ok(n)):
            layers.append(n)
            tensors[n.inputs[0].name] = n.inputs[0]
            out = n.outputs[0]
            users = g.users(out)
            if len(users) == 1 and id(out) not in outputs and (
                    users[0].op == "Relu" or (users[0].op == "Clip" and all(
                        v is None or (v.is_const and v.const.size == 1)
                        for v in users[0].inputs[1:]))):
                out = users[0].outputs[0]
            tensors[out.name] = out
            links[n.name] = [n.inputs[0].name, out.name]
    for n in g.nodes:   # residual Add (and Mul) of two quantized tensors: int8 in and out
        if n.op in ("Add", "Mul") and len(n.inputs) == 2 and all(
                v is not None and not v.is_const and v.dtype == np.float32
                and v.shape == n.outputs[0].shape and v.name in tensors for v in n.inputs):
            out = n.outputs[0]
            users = g.users(out)
            if len(users) == 1 and users[0].op == "Relu" and id(out) not in outputs:
                out = users[0].outputs[0]
            tensors.setdefault(out.name, out)
            links[n.name] = [v.name for v in n.inputs] + [out.name]
        elif n.op == "Concat" and n.outputs[0].dtype == np.float32 and all(
                v is not None and not v.is_const and v.name in tensors for v in n.inputs):
            tensors.setdefault(n.outputs[0].name, n.outputs[0])
            links[n.name] = [v.name for v in n.inputs] + [n.outputs[0].name]
    for n in g.nodes:
        if n.op in MOVES + AVG_POOLS + ("Softmax",) and n.inputs[0] is not None and \
                len(n.outputs) == 1 and (n.inputs[0].name in tensors or n.inputs[0].name in same) \
                and n.outputs[0].dtype == np.float32:
            src = n.inputs[0].name
            if n.op == "Softmax":          # a Softmax's output is calibrated (min-max)
                minmax.add(n.outputs[0].name)
                links[n.name] = [src]
            else:
                same[n.outputs[0].name] = same.get(src, src)
            tensors.setdefault(n.outputs[0].name, n.outputs[0])
    for k in same:
        tensors.pop(k, None)
    return layers, tensors, same, minmax, links


def _wide(g: Graph, cfg: Int8, tensors: dict[str, Value], same: dict[str, str],
          minmax: set[str], links: dict[str, list[str]]) -> set[str]:
    """The tensors quantized to int16 ("16x8"): every one for ``activations="int16"``, else
    the inputs and outputs of ``cfg.int16_layers``; then every tensor of an Add, Mul or Concat
    that has one (their integer kernels take one type). A move's output has its source's type.
    A Softmax output whose input is int16 is dropped from ``tensors`` (the Softmax stays float:
    its integer kernel is int8). Raises CalibrationError naming the layers that are not
    quantized nodes of the graph."""
    root = lambda t: same.get(t, t)   # noqa: E731
    ops = {n.name: n.op for n in g.nodes}
    if cfg.activations == "int16":
        wide = {root(t) for t in list(tensors) + list(same)}
    else:
        layers = {k for k in links if ops[k] != "Softmax"}
        unknown = sorted(set(cfg.int16_layers) - layers)
        if unknown:
            raise CalibrationError(f"int16_layers names {unknown}, which are not quantized "
                                   "layers of the model",
                                   hint=f"the quantized layers are {sorted(layers)}")
        wide = {root(t) for k in cfg.int16_layers for t in links[k]}
    joint = [[root(t) for t in ts] for k, ts in links.items()
             if ops[k] in ("Add", "Mul", "Concat")]
    grown = True
    while grown:
        grown = False
        for ts in joint:
            if any(t in wide for t in ts) and not all(t in wide for t in ts):
                wide.update(ts)
                grown = True
    inputs = {root(t) for k, ts in links.items() if ops[k] != "Softmax" for t in ts[:-1]}
    for k, ts in links.items():
        if ops[k] != "Softmax" or root(ts[0]) not in wide:
            continue
        out = next(o.name for n in g.nodes if n.name == k for o in n.outputs)
        if out not in inputs:     # (a Softmax feeding a layer keeps its int8 output)
            tensors.pop(out, None)
            minmax.discard(out)
            for m in [m for m, src in same.items() if src == out]:
                del same[m]
    return wide


def _progress(total: int, what: str):
    """A rich progress bar on a terminal (nothing otherwise): a callable advance()."""
    try:
        from rich.progress import Progress
    except ImportError:   # pragma: no cover - rich is a dependency
        return None
    if not sys.stderr.isatty():
        return None
    p = Progress(transient=True)
    p.start()
    task = p.add_task(what, total=total)
    return p, task


def _calibrate(g: Graph, samples: list[dict], names: list[str], cfg: Int8
               ) -> tuple[dict[str, Range], dict[str, list[np.ndarray]]]:
    """Ranges of ``names`` over ``samples`` (two passes for the histogram methods), and the
    float values of the first REPORT_SAMPLES samples for the report."""
    ranges = {k: Range() for k in names}
    keep: dict[str, list[np.ndarray]] = {k: [] for k in names}
    passes = 1 if cfg.method == "minmax" else 2
    bar = _progress(len(samples) * passes, f"calibrating ({cfg.method})")
    try:
        for pas in range(passes):
            for i, feeds in enumerate(samples):
                vals = interpret_values(g, feeds, names)
                for k in names:
                    if pas == 0:
                        ranges[k].update(vals[k])
                        if i < REPORT_SAMPLES:
                            keep[k].append(vals[k])
                    else:
                        ranges[k].add_hist(vals[k])
                if bar:
                    bar[0].advance(bar[1])
    finally:
        if bar:
            bar[0].stop()
    return ranges, keep


def quantize_int8(cfg: Int8) -> GraphPass:
    """The pass quantizing a float graph with ``cfg`` (module docstring). Raises
    CalibrationError for calibration data that does not fit the model or a tensor whose range
    is zero or not finite."""

    def run(g: Graph) -> Graph:
        graph_inputs_check(g)
        samples = load_calibration(cfg.calibration, g.inputs)
        # MatMul + bias Add -> FusedGemm (fuse_conv_activation's rewrite), so the bias joins the
        # dense layer as its int32 bias
        g = rewrite(g, [(Op("Add", MATMUL, K, commute=True), matmul_bias)])
        layers, tensors, same, minmax, links = _plan(g)
        if not layers:
            log.warning("quantize: no Conv, Gemm or MatMul with constant weights to quantize")
            return g
        wide = _wide(g, cfg, tensors, same, minmax, links)
        names = list(tensors)
        ranges, floats = _calibrate(g, samples, names, cfg)
        params: dict[str, tuple[np.float32, np.integer]] = {
            k: activation_params(k, ranges[k], "minmax" if k in minmax else cfg.method,
                                 cfg.percentile, 16 if k in wide else 8) for k in names}
        for out, src in same.items():
            params[out] = params[src]
        producers = {o.name: n for n in g.nodes for o in n.outputs}
        # weights: int8 behind a DequantizeLinear
        new_nodes: dict[int, list[Node]] = {}
        for n in layers:
            w = n.inputs[1]
            axis = _weight_axis(n)
            wq, ws = weight_params(w.const, cfg.per_channel, axis)
            wd = Value(g.fresh_name(f"{n.name}_w"), w.type)
            dq = Node("DequantizeLinear",
                      [g.constant(f"{n.name}_wq", wq), g.constant(f"{n.name}_ws", ws),
                       g.constant(f"{n.name}_wz", np.zeros(ws.shape, np.int8))],
                      [wd], {"axis": axis, "block_size": 0, "output_dtype": 0},
                      g.fresh_name(f"{n.name}_dqw"), 21)
            wd.producer = dq
            n.inputs[1] = wd
            new_nodes.setdefault(id(n), []).append(dq)
        # activations: Q/DQ after the producer (or at the start for graph inputs)
        head: list[Node] = []
        after: dict[int, list[Node]] = {}
        replace: dict[int, Value] = {}
        report = QuantReport(cfg.method, len(samples), kind="int16x8" if cfg.activations == "int16"
                             else "int8 + int16x8" if wide else "int8")
        by_name = {v.name: v for v in g.values()}
        outputs = {id(v) for v in g.outputs}
        for name, (s, z) in params.items():
            v = by_name[name]
            sv, zv = g.constant(f"{name}_scale", np.array(s)), g.constant(f"{name}_zp",
                                                                      np.array(z))
            prod = producers.get(name)
            vq = Value(g.fresh_name(f"{name}_q"), TensorType(v.shape, np.asarray(z).dtype))
            src = v
            if prod is not None and id(v) in outputs:
                # a graph output keeps its Value (name, float type): the producer writes a
                # fresh value and the DequantizeLinear writes the output
                src = Value(g.fresh_name(f"{name}_f"), v.type)
                prod.outputs = [src if o is v else o for o in prod.outputs]
                src.producer = prod
                vd = v
            else:
                vd = Value(g.fresh_name(f"{name}_dq"), v.type)
                replace[id(v)] = vd
            q = Node("QuantizeLinear", [src, sv, zv], [vq], {"axis": 1, "block_size": 0,
                                                           "output_dtype": 0, "precision": 0,
                                                           "saturate": 1},
                     g.fresh_name(f"{name}_quantize"), 21)
            d = Node("DequantizeLinear", [vq, sv, zv], [vd], {"axis": 1, "block_size": 0,
                                                              "output_dtype": 0},
                     g.fresh_name(f"{name}_dequantize"), 21)
            vq.producer, vd.producer = q, d
            (after.setdefault(id(prod), []) if prod is not None else head).extend([q, d])
            if name not in same:
                report.layers.append(LayerReport(name, prod.name if prod else "(input)",
                                                 prod.op if prod else "input", float(s), int(z)))
        order: list[Node] = list(head)
        for n in g.nodes:
            n.inputs = [replace.get(id(i), i) if i is not None else None for i in n.inputs]
            order.extend(new_nodes.get(id(n), []))
            order.append(n)
            order.extend(after.get(id(n), []))
        g.nodes = order
        g.toposort()
        g = canonicalize(fuse_qdq(g))
        _measure(g, report, samples[:REPORT_SAMPLES], floats, params)
        g.meta["quantization"] = report
        return g

    return GraphPass(f"quantize_int8[{cfg.method}]", run, quantize_int8.__doc__)


def _measure(g: Graph, report: QuantReport, samples: list[dict],
             floats: dict[str, list[np.ndarray]], params: dict) -> None:
    """SQNR of each reported tensor: the quantized graph's int8 value, dequantized, against the
    float graph's value on the same samples."""
    qnames = {}
    for r in report.layers:
        for v in g.values():
            if v.name.startswith(f"{r.tensor}_q_") and v.dtype in (np.int8, np.int16):
                qnames[r.tensor] = v.name
                break
    if not samples:
        return
    acc: dict[str, tuple[list, list]] = {k: ([], []) for k in qnames}
    for i, feeds in enumerate(samples):
        vals = interpret_values(g, feeds, qnames.values())
        for t, qn in qnames.items():
            if qn in vals and i < len(floats.get(t, [])):
                s, z = params[t]
                acc[t][0].append(floats[t][i].reshape(-1))
                acc[t][1].append((vals[qn].astype(np.float32) - np.float32(z)).reshape(-1) * s)
    for r in report.layers:
        ref, got = acc.get(r.tensor, ([], []))
        if ref:
            r.sqnr_db = sqnr_db(np.concatenate(ref), np.concatenate(got))


def with_quantization(pipeline: list[GraphPass], cfg: Int8 | None) -> list[GraphPass]:
    """``pipeline`` with :func:`quantize_int8` inserted before ``fuse_conv_activation`` (after
    fold_batchnorm and canonicalize), or before ``schedule`` when the pipeline has no
    fuse_conv_activation; ``pipeline`` itself when ``cfg`` is None. Raises CalibrationError
    when ``cfg`` is not an :class:`Int8`."""
    if cfg is None:
        return list(pipeline)
    if not isinstance(cfg, Int8):
        from onnxcc.quantize import CalibrationError

        raise CalibrationError(f"quantize={cfg!r} is not an onnxcc.Int8(...)",
                               hint="onnxcc.compile(model, target, quantize=onnxcc.Int8("
                               "calibration=samples))")
    names = [p.name for p in pipeline]
    at = names.index("fuse_conv_activation") if "fuse_conv_activation" in names else (
        names.index("schedule") if "schedule" in names else len(names))
    return list(pipeline[:at]) + [quantize_int8(cfg)] + list(pipeline[at:])
