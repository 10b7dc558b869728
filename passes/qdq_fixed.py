"""qdq_fixed: QuantizeLinear -> DequantizeLinear pairs on activations become fixed-point types
(FPGA targets).

    %q = QuantizeLinear(%x, s, zp)  %y = DequantizeLinear(%q, s, zp)
        ==>  %x, typed ap_fixed<B, B + log2(s)> (zp = 0, or the zero point that centers the
             integer range) or ap_ufixed<B, B + log2(s)> (zp = qmin), AP_RND_CONV, AP_SAT

DequantizeLinear(QuantizeLinear(x)) = s * (saturate(round_half_even(x / s) + zp) - zp). With a
power-of-two scale s = 2**-F and a zero point that puts the B-bit integer range at
[-2**(B-1), 2**(B-1) - 1] (signed) or [0, 2**B - 1] (unsigned), that is exactly the value of
``ap_fixed<B, B-F, AP_RND_CONV, AP_SAT>`` (or ``ap_ufixed``) assigned from x: the same grid, the
same round-half-to-even (ONNX QuantizeLinear, opset 10+), the same saturation. So the pair is
removed and the tensor ``x`` is stored in that type (``Graph.meta["fixed_types"]``, which
``onnxcc.codegen.hls.fixed.assign_types`` takes after the user's per-layer overrides): the layer
producing x rounds its exact sum once to the grid, as a Brevitas or QONNX model trained with
power-of-two scales means (hls4ml and FINN read such models the same way).

A scale that is not a power of two, or a zero point that shifts the range, has no ap_fixed type
of the same grid: the pair becomes ``Clip(x, lo, hi)`` over the pair's range
``[(qmin - zp) * s, (qmax - zp) * s]``, and x and the Clip's output get ``ap_fixed<W, I>`` with I
from the larger bound's magnitude and W = max(16, B + 2) (a grid at least twice as fine as the
pair's), with a warning naming the QuantizeLinear node: results are then close to the QDQ
model's, not bit-equal. The Clip keeps the pair's saturation, which the symmetric type alone
would lose: a quantizer folds a Relu into a pair whose range starts at 0 (onnxruntime's
``quantize_static`` removes the Relu), and without the Clip the negative values would pass.
Per-axis scales on activations clip to the union of the channels' ranges (the warning says so).
An op that only moves or selects values (MaxPool, Transpose, Concat of equal types, nearest
Resize, Relu...) without a pair of its own keeps its input's type.

QONNX's Quant (imported as Div -> Add -> Round -> Clip -> Sub -> Mul by
``onnxcc.contrib.expand_quant``) is read the same way: ``ap_fixed<B, B-F>`` for a power-of-two
scale, zero point 0 and a B-bit range (``ap_ufixed`` when unsigned), AP_RND_CONV for ROUND and
AP_TRN for FLOOR. A tensor also read by another node than the pair keeps its float form (the
FPGA check then names the QuantizeLinear or Round node).

Preconditions: the graph as imported (DequantizeLinear on constants is left to canonicalize,
which folds it into float weights). Ordering: first in the FPGA pipeline, before canonicalize and
the fusions.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from onnxcc.ir import Graph, Node

from .manager import graph_pass

log = logging.getLogger("onnxcc.passes")
APPROX_WIDTH = 16   # the width given to a pair whose grid no ap_fixed type matches
# ops whose outputs are values of their (first) input: they keep its type
PRESERVING = {"MaxPool", "GlobalMaxPool", "Transpose", "Concat", "Slice", "Gather", "Split",
              "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Resize", "Upsample",
              "SpaceToDepth", "DepthToSpace", "Max", "Min", "Relu"}
SELECT_FIRST = {"Slice", "Gather", "Reshape", "Resize", "Upsample", "Squeeze", "Unsqueeze"}


def _params(n: Node) -> tuple[np.ndarray, np.ndarray, np.dtype, int] | None:
    """(scale, zero point, integer dtype, axis) of a Q or DQ node with constant parameters."""
    s = n.inputs[1].const if len(n.inputs) > 1 and n.inputs[1] is not None else None
    if s is None:
        return None
    z = n.inputs[2] if len(n.inputs) > 2 else None
    if z is not None and z.const is None:
        return None
    if n.op == "QuantizeLinear":
        qt = z.dtype if z is not None else np.dtype(np.uint8)
        to = n.attrs.get("output_dtype")
        if z is None and to:
            import onnx
            qt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(to)))
    else:
        qt = n.inputs[0].dtype
    zp = z.const if z is not None else np.zeros((), qt)
    return (np.asarray(s, np.float64), np.asarray(zp, np.int64), np.dtype(qt),
            int(n.attrs["axis"]) if n.attrs.get("axis") is not None else 1)


def grid_type(scale: np.ndarray, zero_point: np.ndarray, qtype: np.dtype):
    """The FixedType whose values are exactly DequantizeLinear(QuantizeLinear(x)) for per-tensor
    ``scale`` (a power of two), ``zero_point`` and integer type ``qtype`` (int8, uint8, int16,
    uint16), or None when no ap_fixed type has that grid and range."""
    from onnxcc.codegen.hls.fixed import FixedType

    if scale.size != 1 or zero_point.size > 1 or qtype.kind not in "iu":
        return None
    s = float(scale.reshape(-1)[0])
    m, e = math.frexp(s)
    if not (s > 0 and math.isfinite(s) and m == 0.5):
        return None
    frac = 1 - e                                  # s = 2**-frac
    info = np.iinfo(qtype)
    bits = info.bits
    lo = int(info.min) - int(zero_point.reshape(-1)[0] if zero_point.size else 0)
    if lo == -(1 << (bits - 1)):
        return FixedType(bits, bits - frac, True, "AP_RND_CONV", "AP_SAT")
    if lo == 0:
        return FixedType(bits, bits - frac, False, "AP_RND_CONV", "AP_SAT")
    return None


def _pair_range(scale: np.ndarray, zero_point: np.ndarray, qtype: np.dtype
                ) -> tuple[float, float]:
    """``(lo, hi)``: the smallest and largest value DequantizeLinear(QuantizeLinear(x)) can take,
    ``(qmin - zp) * s`` and ``(qmax - zp) * s`` (per-axis: over all channels)."""
    info = np.iinfo(qtype)
    zp = zero_point.astype(np.float64)
    return (float(np.min((info.min - zp) * scale)), float(np.max((info.max - zp) * scale)))


def _approx_type(lo: float, hi: float, bits: int):
    """Signed ``ap_fixed<max(16, bits + 2), I>`` holding every value of ``[lo, hi]``."""
    from onnxcc.codegen.hls.fixed import FixedType, integer_bits

    return FixedType(max(APPROX_WIDTH, bits + 2), integer_bits(max(abs(lo), abs(hi))), True,
                     "AP_RND_CONV", "AP_SAT")


def _clip_in_place_of(g: Graph, x, old: list[Node], y, lo: float, hi: float, t, types: dict
                      ) -> None:
    """Replace the nodes ``old`` (a QDQ pair or a QONNX Quant chain from ``x`` to ``y``) by
    ``y = Clip(x, lo, hi)``, x and y typed ``t``: the approximated grid keeps the range's
    saturation."""
    clip = Node("Clip", [x, g.constant("clip_lo", np.float32(lo)),
                         g.constant("clip_hi", np.float32(hi))], [y],
                name=g.fresh_name("qdq_clip"), version=13)
    g.replace(old, [clip])
    types[x.name] = t
    types[y.name] = t


def _shared(g: Graph, x, reader: Node) -> bool:
    """Whether ``x`` is read by another node than ``reader`` or is a graph output: typing it
    with ``reader``'s grid would round what the others read."""
    return any(o is x for o in g.outputs) or any(n is not reader for n in g.users(x))


def _only_reader(g: Graph, v, op: str | tuple[str, ...]) -> Node | None:
    users = g.users(v)
    if len(users) != 1 or any(o is v for o in g.outputs):
        return None
    n = users[0]
    return n if n.op in ((op,) if isinstance(op, str) else op) and n.inputs[0] is v else None


def _const(v) -> np.ndarray | None:
    return None if v is None or v.const is None else np.asarray(v.const, np.float64)


def _quant_chain(g: Graph, div: Node, types: dict) -> None:
    """QONNX Quant as imported (``onnxcc.contrib.expand_quant``): Div(x, s) -> Add(zp) ->
    Round|Floor|Ceil -> Clip(qmin, qmax) -> Sub(zp) -> Mul(s) becomes x's type: with a
    power-of-two scalar s, zp 0 and [qmin, qmax] a B-bit range (signed or unsigned), exactly
    ``ap_fixed<B, B-F>`` (Round: AP_RND_CONV; Floor: AP_TRN); otherwise a covering
    ``ap_fixed<max(16, B + 2), I>`` and a Clip to the range, with a warning naming the node."""
    from onnxcc.codegen.hls.fixed import FixedType

    chain = [div]
    for op in ("Add", ("Round", "Floor", "Ceil"), "Clip", "Sub", "Mul"):
        nxt = _only_reader(g, chain[-1].outputs[0], op)
        if nxt is None:
            return
        chain.append(nxt)
    _, add, rnd, clip, sub, mul = chain
    s, zp = _const(div.inputs[1]), _const(add.inputs[1])
    lo, hi = _const(clip.inputs[1]), _const(clip.inputs[2] if len(clip.inputs) > 2 else None)
    x = div.inputs[0]
    if (s is None or zp is None or lo is None or hi is None or x.is_const or _shared(g, x, div)
            or not np.array_equal(_const(sub.inputs[1]), zp) or lo.size != 1 or hi.size != 1
            or not np.array_equal(_const(mul.inputs[1]), s)):
        return
    qmin, qmax = float(lo.reshape(-1)[0]), float(hi.reshape(-1)[0])
    t = None
    if s.size == 1 and zp.size == 1 and float(zp.reshape(-1)[0]) == 0 and rnd.op != "Ceil":
        sv = float(s.reshape(-1)[0])
        m, e = math.frexp(sv)
        span = qmax - qmin + 1
        bits = int(round(math.log2(span))) if span >= 2 else 0
        if sv > 0 and m == 0.5 and bits >= 1 and 2.0 ** bits == span:
            signed = qmin == -(2.0 ** (bits - 1))
            if signed or qmin == 0:
                t = FixedType(bits, bits - (1 - e), signed,
                              "AP_RND_CONV" if rnd.op == "Round" else "AP_TRN", "AP_SAT")
    if t is None:
        lo_v = float(np.min((qmin - zp) * s))
        hi_v = float(np.max((qmax - zp) * s))
        bits = max(1, int(math.ceil(math.log2(max(qmax - qmin + 1, 2)))))
        t = _approx_type(lo_v, hi_v, bits)
        log.warning("node %r (QONNX Quant): scale %s, zero point %s, range [%g, %g], %s have "
                    "no ap_fixed type of the same grid (exact for a power-of-two scalar scale, "
                    "zero point 0, a full or unsigned range, ROUND or FLOOR): %r is stored as "
                    "%s and clipped to [%g, %g], close to but not bit-equal with the model",
                    mul.name, np.array2string(s.reshape(-1)[:4]), zp.reshape(-1)[:4].tolist(),
                    qmin, qmax, rnd.op, x.name, t.cpp(), lo_v, hi_v)
        _clip_in_place_of(g, x, chain, mul.outputs[0], lo_v, hi_v, t, types)
        return
    g.replace_all_uses(mul.outputs[0], x)
    g.nodes = [n for n in g.nodes if not any(n is c for c in chain)]
    types[x.name] = t


def _pow2_exponents(a: np.ndarray | None) -> np.ndarray | None:
    """The integer exponents ``e`` with ``a == 2**e`` elementwise (``a`` positive, finite), or
    None when some element is not such a power of two."""
    if a is None or a.size == 0 or not np.all(np.isfinite(a)) or not np.all(a > 0):
        return None
    m, e = np.frexp(a)
    return (e - 1).astype(np.int64) if np.all(m == 0.5) else None


def _scalar_exp(v) -> int | None:
    e = _pow2_exponents(_const(v))
    return int(e.reshape(-1)[0]) if e is not None and e.size == 1 else None


def _is_scalar(v, value: float) -> bool:
    c = _const(v)
    return c is not None and c.size >= 1 and bool(np.all(c == value))


def _trunc_chain(g: Graph, div: Node, types: dict) -> None:
    """QONNX Trunc as imported (``onnxcc.contrib.expand_trunc``) on an input ``x`` already
    typed on the grid of its ``scale`` (a preceding Quant: at most ``F`` fraction bits for
    ``scale = 2**-F``), with power-of-two scalar scales, zero point 0 and ROUND or FLOOR,
    becomes one exact ap_fixed step:

        v1  Div(x, s) -> Add(0) -> Round -> Div(2**j) -> Floor|Round -> Sub(0) -> Mul(s)
            ==>  %y = Mul(x, 2**-j), y typed ap_fixed<I - j + 1, I - j> with F fraction bits
                 (the raw integer shifted right by j, AP_TRN for FLOOR, AP_RND_CONV for ROUND)
        v2  ... Div(2**j) -> Clip(qmin, qmax) -> Floor|Round -> Sub(0) -> Mul(out_scale)
            ==>  %y = Mul(x, 1), y typed ap_fixed<B, B - G> (out_scale = 2**-G = s * 2**j,
                 [qmin, qmax] the full B-bit range; ap_ufixed when unsigned)

    Anything else (another scale or zero point, CEIL, a narrow range, an untyped input) is left
    as float ops, which the FPGA check names."""
    from onnxcc.codegen.hls.fixed import FixedType

    chain = [div]
    for op in ("Add", "Round", "Div"):
        nxt = _only_reader(g, chain[-1].outputs[0], op)
        if nxt is None:
            return
        chain.append(nxt)
    clip = _only_reader(g, chain[-1].outputs[0], "Clip")
    if clip is not None:
        chain.append(clip)
    for op in (("Floor", "Round"), "Sub", "Mul"):
        nxt = _only_reader(g, chain[-1].outputs[0], op)
        if nxt is None:
            return
        chain.append(nxt)
    add, div2, rnd, sub, mul = chain[1], chain[3], chain[-3], chain[-2], chain[-1]
    x = div.inputs[0]
    tx = types.get(x.name)
    fs, j = _scalar_exp(div.inputs[1]), _scalar_exp(div2.inputs[1])
    if (tx is None or tx.int_only or x.is_const or fs is None
            or j is None or j < 0 or tx.frac > -fs or not _is_scalar(add.inputs[1], 0.0)
            or not _is_scalar(sub.inputs[1], 0.0)):
        return
    mode = "AP_TRN" if rnd.op == "Floor" else "AP_RND_CONV"
    if clip is None:    # v1: y = rnd(raw(x) / 2**j) * s
        if _scalar_exp(mul.inputs[1]) != fs:
            return
        i = tx.integer - j + (1 if rnd.op == "Round" else 0)   # ROUND may carry into a bit
        if i - fs < 1:
            return
        t, factor = FixedType(i - fs, i, tx.signed, mode, "AP_SAT"), 2.0 ** -j
    else:               # v2: y = rnd(clip(x / out_scale)) * out_scale
        lo, hi = _const(clip.inputs[1]), _const(clip.inputs[2] if len(clip.inputs) > 2 else None)
        fo = _scalar_exp(mul.inputs[1])
        if lo is None or hi is None or lo.size != 1 or hi.size != 1 or fo != fs + j:
            return
        qmin, qmax = float(lo.reshape(-1)[0]), float(hi.reshape(-1)[0])
        bits = int(round(math.log2(qmax - qmin + 1))) if qmax > qmin else 0
        signed = qmin < 0
        if bits < 1 or 2.0 ** bits != qmax - qmin + 1 or \
                qmin != (-(2.0 ** (bits - 1)) if signed else 0.0):
            return
        t, factor = FixedType(bits, bits + fo, signed, mode, "AP_SAT"), 1.0
    y = mul.outputs[0]
    k = g.constant(f"{mul.name}_shift", np.asarray(factor, np.float32))
    g.replace(chain, [Node("Mul", [x, k], [y], {}, mul.name, mul.version)])
    types[y.name] = t


def _bipolar_chain(g: Graph, ge: Node, types: dict) -> None:
    """QONNX BipolarQuant as imported (``onnxcc.contrib.expand_bipolar_quant``):

        GreaterOrEqual(x, 0) -> Where(ge, 1, -1) -> Mul(sign, s)
            ==>  %y = Where(GreaterOrEqual(x, 0), s, -s), y typed ap_fixed<I + F, I> holding
                 every +-s exactly (s powers of two, per tensor or broadcast per channel:
                 F fraction bits for the smallest, I integer bits for the largest)

    A scale that is not a power of two gets a covering ap_fixed<16, I> with a warning naming
    the node."""
    from onnxcc.codegen.hls.fixed import FixedType, integer_bits

    if not _is_scalar(ge.inputs[1], 0.0) or _const(ge.inputs[1]).size != 1:
        return
    where = _only_reader(g, ge.outputs[0], "Where")
    if where is None or not _is_scalar(where.inputs[1], 1.0) or \
            not _is_scalar(where.inputs[2], -1.0):
        return
    users = g.users(where.outputs[0])
    if len(users) != 1 or users[0].op != "Mul" or any(o is where.outputs[0] for o in g.outputs):
        return
    mul = users[0]
    sv = mul.inputs[1] if mul.inputs[0] is where.outputs[0] else mul.inputs[0]
    s = _const(sv)
    if s is None or not np.all(s > 0) or mul.outputs[0].shape != \
            np.broadcast_shapes(ge.inputs[0].shape, s.shape):
        return
    e = _pow2_exponents(s)
    if e is not None:
        i = int(e.max()) + 2                 # +-2**e_max: e_max + 1 bits and the sign
        t = FixedType(i - int(e.min()), i, True, "AP_RND_CONV", "AP_SAT")
    else:
        t = FixedType(APPROX_WIDTH, integer_bits(float(s.max())), True, "AP_RND_CONV", "AP_SAT")
        log.warning("node %r (QONNX BipolarQuant): scale %s is not a power of two: %r is "
                    "stored as %s, close to but not bit-equal with the model", mul.name,
                    np.array2string(s.reshape(-1)[:4]), mul.outputs[0].name, t.cpp())
    pos = g.constant(f"{mul.name}_pos", s.astype(np.float32))
    neg = g.constant(f"{mul.name}_neg", (-s).astype(np.float32))
    g.replace([where, mul], [Node("Where", [ge.outputs[0], pos, neg], [mul.outputs[0]], {},
                                  mul.name, where.version)])
    types[mul.outputs[0].name] = t


def _keep_types(g: Graph, types: dict) -> None:
    """Ops that only move or select values keep their input's grid (a QDQ model leaves
    MaxPool between two quantized tensors unpaired, its output on its input's grid)."""
    for n in g.nodes:
        ins = [v for v in n.inputs[:1 if n.op in SELECT_FIRST else None]
               if v is not None and not v.is_const]
        got = {types.get(v.name) for v in ins}
        nearest = (n.attrs.get("mode") or "nearest") in ("nearest", b"nearest")
        if n.op in PRESERVING and ins and len(got) == 1 and None not in got and nearest:
            for o in n.outputs[:1]:
                if o is not None and o.name not in types and o.dtype == np.float32:
                    types[o.name] = got.pop()


@graph_pass("qdq_fixed")
def qdq_fixed(g: Graph) -> Graph:
    """Remove each QuantizeLinear -> DequantizeLinear pair on a non-constant tensor, typing the
    tensor with the pair's grid (module docstring). A QuantizeLinear whose readers are not all
    DequantizeLinear nodes of the same parameters is left in place (the FPGA check then names
    it)."""
    types = g.meta.setdefault("fixed_types", {})
    for q in list(g.nodes):
        if q.op != "QuantizeLinear" or q.inputs[0].is_const or q not in g.nodes:
            continue
        pq = _params(q)
        readers = g.users(q.outputs[0])
        if pq is None or not readers or any(o is q.outputs[0] for o in g.outputs):
            continue
        same = all(d.op == "DequantizeLinear" and (pd := _params(d)) is not None
                   and np.array_equal(pd[0], pq[0]) and np.array_equal(pd[1], pq[1])
                   and (pq[0].size == 1 or pd[3] == pq[3]) for d in readers)
        if not same:
            continue
        x = q.inputs[0]
        if _shared(g, x, q):
            continue
        t = grid_type(pq[0], pq[1], pq[2])
        if t is None:
            lo, hi = _pair_range(pq[0], pq[1], pq[2])
            t = _approx_type(lo, hi, np.iinfo(pq[2]).bits)
            log.warning("node %r (QuantizeLinear): scale %s, zero point %s of %s have no "
                        "ap_fixed type of the same grid (exact for a power-of-two scale and a "
                        "zero point at the middle or the bottom of the integer range): %r is "
                        "stored as %s and clipped to the pair's range [%g, %g]%s, close to but "
                        "not bit-equal with the QDQ model", q.name,
                        np.array2string(pq[0].reshape(-1)[:4]), pq[1].reshape(-1)[:4].tolist(),
                        pq[2].name, x.name, t.cpp(), lo, hi,
                        " (the union of its channels' ranges)" if pq[0].size > 1 else "")
            y = readers[0].outputs[0]
            for d in readers[1:]:
                g.replace_all_uses(d.outputs[0], y)
            _clip_in_place_of(g, x, [q, *readers], y, lo, hi, t, types)
            continue
        for d in readers:
            g.replace_all_uses(d.outputs[0], x)
        g.nodes = [n for n in g.nodes if n is not q and n not in readers]
        types[x.name] = t
    for div in list(g.nodes):
        if div.op == "Div" and div in g.nodes:
            _quant_chain(g, div, types)
    _keep_types(g, types)
    for n in list(g.nodes):   # Trunc reads a tensor typed above; BipolarQuant any tensor
        if n.op == "Div" and n in g.nodes:
            _trunc_chain(g, n, types)
        elif n.op == "GreaterOrEqual" and n in g.nodes:
            _bipolar_chain(g, n, types)
    _keep_types(g, types)
    return g
