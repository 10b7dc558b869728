"""qdq_integer and integer_ports: the integer (``ap_int``) path of quantized models on FPGA targets.

A QDQ model whose activation grids are all powers of two is read by ``qdq_fixed`` as ap_fixed
types, exactly. A scale that is not a power of two (what onnxruntime's ``quantize_static``
writes) has no ap_fixed type of the same grid; for such a model ``qdq_integer`` instead runs
``fuse_qdq``, the pass the C and LLVM targets run, so the FPGA design computes what the host
int8 build computes: int8/uint8 activations and weights (``ap_int<8>``/``ap_uint<8>`` in the
design), int32 accumulators, and an explicit requantization of each accumulator by an int32
multiplier and a right shift (``onnxcc.codegen.requantize``: single rounding, half to even,
exact in 64 bits). ``onnxcc.compile(..., quantize=onnxcc.Int8(...))`` on an FPGA target reaches
the same integer graph through ``quantize_int8``.

``integer_ports`` then moves the float boundary out of the design:

    %xq = QuantizeLinear(%x, s, zp)      (x a graph input read only here)
        ==>  %x is the int8 tensor xq: the top function's port is ap_int<8>
    %y = DequantizeLinear(%yq, s, zp)     (y a graph output)
        ==>  %y is the int8 tensor yq

(a graph output made by float ops after a DequantizeLinear, a float tail, stays a fixed-point
port: ``qdq_integer`` keeps such DequantizeLinear nodes in the design, where they compute
``(q - zp) * scale`` in C float as the host build does and store it in their output's
``ap_fixed<16, I>``; the float layers after them are the float path's),
and records each moved conversion in ``Graph.meta["port_scales"]`` (tensor name ->
``{"scale", "zero_point", "dtype", "quantize"}``). ``CompiledModel.run()`` applies them in numpy
with the C build's float32 arithmetic (``x / s`` rounded half to even, plus zp, saturated;
``(q - zp) * s``), so its outputs equal the host int8 build's bit for bit; on the board the
host (or a preceding IP) does the same conversions, as with FINN's integer designs.

Preconditions: ``qdq_integer`` runs first in the FPGA pipeline (before ``qdq_fixed``);
``integer_ports`` after quantization and fusion, before ``schedule``.
"""

from __future__ import annotations

import logging

import numpy as np

from onnxcc.ir import Graph, Node

from .fuse_qdq import fuse_qdq
from .manager import graph_pass
from .qdq_fixed import _approx_type, _pair_range, _params, grid_type

log = logging.getLogger("onnxcc.passes")
INT8 = (np.dtype(np.int8), np.dtype(np.uint8))


def _needs_integers(g: Graph) -> bool:
    """Whether ``g`` holds a QuantizeLinear of int8/uint8 activations whose grid has no exact
    ap_fixed type (a scale other than a power of two, or a shifting zero point)."""
    for q in g.nodes:
        if q.op != "QuantizeLinear" or q.inputs[0].is_const:
            continue
        p = _params(q)
        if p is not None and p[2] in INT8 and grid_type(p[0], p[1], p[2]) is None:
            return True
    return False


def _float_islands(g: Graph) -> list[str]:
    """The QuantizeLinear/DequantizeLinear nodes of activations that ``fuse_qdq`` left inside
    ``g`` (a float op between them), other than the input's QuantizeLinear and the outputs'
    DequantizeLinear."""
    ins, outs = {id(v) for v in g.inputs}, {id(v) for v in g.outputs}
    return [n.name for n in g.nodes if n.op in ("QuantizeLinear", "DequantizeLinear")
            and not n.inputs[0].is_const
            and not (n.op == "QuantizeLinear" and id(n.inputs[0]) in ins)
            and not (n.op == "DequantizeLinear" and id(n.outputs[0]) in outs)]


def float_tail(g: Graph, names: list[str]) -> list[Node] | None:
    """The DequantizeLinear nodes named in ``names`` when they start a float tail: each
    dequantizes a non-constant int8/uint8 tensor with constant per-tensor parameters, and no
    QuantizeLinear reads anything computed from them (the float ops after them run to the
    graph's outputs); else None."""
    nodes = {n.name: n for n in g.nodes}
    tail = [nodes[x] for x in names]
    for d in tail:
        p = _params(d) if d.op == "DequantizeLinear" else None
        if p is None or d.inputs[0].dtype not in INT8 or p[0].size != 1 or p[1].size > 1:
            return None
    seen, todo = set(), [d.outputs[0] for d in tail]
    while todo:
        v = todo.pop()
        for n in g.users(v):
            if n.op == "QuantizeLinear":
                return None
            if id(n) not in seen:
                seen.add(id(n))
                todo += [o for o in n.outputs if o is not None]
    return tail


@graph_pass("qdq_integer")
def qdq_integer(g: Graph) -> Graph:
    """Run ``fuse_qdq`` on a QDQ model that has an activation grid no ap_fixed type matches
    (module docstring), marking it ``meta["integer_path"] = True``. When ``fuse_qdq`` leaves
    DequantizeLinear nodes whose float results never reach a QuantizeLinear (a float tail:
    the model's last layers, a Softmax or a Gemm, kept float), those stay in the design,
    each output typed ``ap_fixed<16, I>`` covering its integer range (``meta["fixed_types"]``;
    the tail then computes in ap_fixed as the float path does). When a float op stays between
    a DequantizeLinear and a QuantizeLinear, the graph is left as it was, with a warning naming
    those nodes, and ``qdq_fixed`` gives it covering ap_fixed types (close to the model, not
    bit-equal). Any other graph is unchanged."""
    if not _needs_integers(g):
        return g
    fused = fuse_qdq(g.copy())
    left = _float_islands(fused)
    tail = float_tail(fused, left) if left else []
    if tail is None:
        log.warning("quantized model %r: no integer (ap_int) FPGA path, as float ops stay "
                    "between DequantizeLinear and QuantizeLinear (%s); its grids become "
                    "ap_fixed types instead", g.name, ", ".join(repr(x) for x in left[:6]))
        return g
    types = fused.meta.setdefault("fixed_types", {})
    for d in tail:
        p = _params(d)
        # a DequantizeLinear's values lie in its range: a covering type, no Clip needed
        types.setdefault(d.outputs[0].name,
                         _approx_type(*_pair_range(p[0], p[1], p[2]), np.iinfo(p[2]).bits))
    if tail:
        log.info("quantized model %r: integer (ap_int) FPGA path up to %s, then a float "
                 "(ap_fixed) tail", g.name, ", ".join(repr(d.name) for d in tail))
    fused.meta["integer_path"] = True
    return fused


def _scalar(v) -> np.ndarray | None:
    return None if v is None or v.const is None or np.asarray(v.const).size != 1 else \
        np.asarray(v.const).reshape(())


@graph_pass("integer_ports")
def integer_ports(g: Graph) -> Graph:
    """Make int8/uint8 tensors the design's ports: a graph input read only by a per-tensor
    QuantizeLinear becomes that QuantizeLinear's output (renamed to the input's name), and a
    graph output made by a per-tensor DequantizeLinear of an int8/uint8 tensor becomes that
    tensor (renamed to the output's name). Each removed conversion is recorded in
    ``meta["port_scales"]`` (module docstring). A graph without integer tensors is unchanged."""
    scales = g.meta.setdefault("port_scales", {})
    for k, x in enumerate(list(g.inputs)):
        users = g.users(x)
        if len(users) != 1 or users[0].op != "QuantizeLinear" or any(o is x for o in g.outputs):
            continue
        q = users[0]
        s, z = _scalar(q.inputs[1]), _scalar(q.inputs[2] if len(q.inputs) > 2 else None)
        out = q.outputs[0]
        if q.inputs[0] is not x or s is None or z is None or out.dtype not in INT8:
            continue
        g.nodes = [n for n in g.nodes if n is not q]
        name = x.name
        out.name, out.producer = name, None
        g.inputs[k] = out
        scales[name] = {"quantize": True, "scale": float(np.float32(s)),
                        "zero_point": int(z), "dtype": out.dtype.name}
    for k, y in enumerate(list(g.outputs)):
        d = y.producer
        if d is None or d.op != "DequantizeLinear" or d.inputs[0].dtype not in INT8:
            continue
        s, z = _scalar(d.inputs[1]), _scalar(d.inputs[2] if len(d.inputs) > 2 else None)
        q = d.inputs[0]
        if s is None or q.is_const or any(o is q for o in g.outputs) or \
                any(u is not d for u in g.users(q)) or any(q is v for v in g.inputs):
            continue
        g.nodes = [n for n in g.nodes if n is not d]
        name = y.name
        q.name = name
        g.outputs[k] = q
        scales[name] = {"quantize": False, "scale": float(np.float32(s)),
                        "zero_point": int(z) if z is not None else 0, "dtype": q.dtype.name}
    g._used = None   # names changed: fresh_name collects them again
    return g
