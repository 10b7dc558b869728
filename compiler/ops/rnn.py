"""Recurrent layers: LSTM, GRU and RNN (ONNX opsets 7, 14 and 22; 14 added ``layout``, 22 only
bfloat16, which onnxcc refuses by dtype).

Shapes (``layout`` 0; ``layout`` 1 puts the batch first: X (N, T, I), Y (N, T, D, H),
initial_h/c and Y_h/Y_c (N, D, H)): X (T, N, I); W (D, G*H, I); R (D, G*H, H); B (D, 2*G*H) (Wb then Rb); sequence_lens (N,) int32;
initial_h, initial_c (D, N, H); P (D, 3*H) (LSTM peepholes i, o, f);
Y (T, D, N, H); Y_h, Y_c (D, N, H). D is 2 for ``bidirectional``, else 1; G the gate count
(LSTM 4, gates i o f c; GRU 3, gates z r h; RNN 1). float32 or float64, computed in that type.

``clip`` bounds the input of every activation but h (LSTM's h(Ct) takes Ct unclipped), as
onnxruntime computes it.

Sequence lengths: a batch entry with length L is run over its first L steps (the reverse direction
from step L-1 down to 0); Y is zero at steps L and later, and Y_h/Y_c hold the last state computed,
as the spec and onnxruntime do (an entry of length 0 gets zeros in Y_h/Y_c too, not its initial
state, as onnxruntime computes it). :func:`rnn_spec` reads and checks a node once, for the reference
here and the loop-IR lowering (``onnxcc.codegen.lower.rnn``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import AttributeValueError, ShapeError
from ..ir import Node, TensorType
from . import OpDef, register_op
from ._util import has_input

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
PER_DIRECTION = {"LSTM": 3, "GRU": 2, "RNN": 1}   # activations per direction: f, g, h
DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"),
                       "RNN": ("Tanh",)}
# activation (lowercase; names match case-insensitively, as in onnxruntime) -> (spec name, takes
# alpha, takes beta, default alpha, default beta). activation_alpha/activation_beta are consumed in
# order by the activations that take them; past their end, onnxruntime's defaults (0 for Affine,
# ScaledTanh and ThresholdedRelu) apply.
ACTIVATIONS = {
    "sigmoid": ("Sigmoid", False, False, 0.0, 0.0), "tanh": ("Tanh", False, False, 0.0, 0.0),
    "relu": ("Relu", False, False, 0.0, 0.0), "softsign": ("Softsign", False, False, 0.0, 0.0),
    "softplus": ("Softplus", False, False, 0.0, 0.0),
    "affine": ("Affine", True, True, 0.0, 0.0), "leakyrelu": ("LeakyRelu", True, False, 0.01, 0.0),
    "thresholdedrelu": ("ThresholdedRelu", True, False, 0.0, 0.0),
    "scaledtanh": ("ScaledTanh", True, True, 0.0, 0.0),
    "hardsigmoid": ("HardSigmoid", True, True, 0.2, 0.5), "elu": ("Elu", True, False, 1.0, 0.0),
}


@dataclasses.dataclass(frozen=True)
class Activation:
    """One activation function with its alpha and beta (unused ones are 0)."""

    name: str
    alpha: float = 0.0
    beta: float = 0.0


@dataclasses.dataclass(frozen=True)
class RNNSpec:
    """A recurrent node, read and checked: the op, sizes (T steps, N batch, I inputs, H hidden,
    D directions, G gates), ``reverse[d]`` per direction, ``acts[d]`` (f, g, h as the op uses
    them), ``clip`` (None: no clipping), LSTM's ``input_forget``, GRU's
    ``linear_before_reset``, ``layout`` and which optional inputs are present
    (``has_b``, ``has_lens``, ``has_h0``, ``has_c0``, ``has_p``)."""

    op: str
    T: int
    N: int
    I: int
    H: int
    D: int
    G: int
    reverse: tuple[bool, ...]
    acts: tuple[tuple[Activation, ...], ...]
    clip: float | None
    input_forget: bool
    linear_before_reset: bool
    layout: int
    has_b: bool
    has_lens: bool
    has_h0: bool
    has_c0: bool
    has_p: bool


def _bad(node: Node, message: str, hint: str) -> AttributeValueError:
    return AttributeValueError(message, node=node.name, op=node.op, hint=hint)


def _activations(node: Node, D: int) -> tuple[tuple[Activation, ...], ...]:
    """Per direction, the op's activations with their alpha/beta (spec section "activations",
    "activation_alpha", "activation_beta"). A list of one direction's functions serves both
    directions of a bidirectional node. Raises AttributeValueError naming a function onnxcc
    does not know."""
    n = PER_DIRECTION[node.op]
    names = node.attrs.get("activations")
    names = list(DEFAULT_ACTIVATIONS[node.op] * D if not names else names)
    if len(names) == n and D == 2:
        names = names * 2
    if len(names) < n * D:
        raise _bad(node, f"activations lists {len(names)} function(s); {node.op} with "
                   f"{D} direction(s) needs {n * D}",
                   f"give {n} activation(s) per direction ({'/'.join(DEFAULT_ACTIVATIONS[node.op])}"
                   " by default), forward direction first")
    alphas = list(node.attrs.get("activation_alpha") or ())
    betas = list(node.attrs.get("activation_beta") or ())
    out: list[Activation] = []
    for name in names[:n * D]:
        key = str(name).lower()
        if key not in ACTIVATIONS:
            known = ", ".join(v[0] for v in ACTIVATIONS.values())
            raise _bad(node, f"activation {name!r} is not one the ONNX spec lists for {node.op}",
                       f"use one of {known}")
        spec, takes_a, takes_b, da, db = ACTIVATIONS[key]
        a = float(alphas.pop(0)) if takes_a and alphas else da
        b = float(betas.pop(0)) if takes_b and betas else db
        out.append(Activation(spec, a if takes_a else 0.0, b if takes_b else 0.0))
    return tuple(tuple(out[d * n:(d + 1) * n]) for d in range(D))


def rnn_spec(node: Node) -> RNNSpec:
    """Read and check a LSTM/GRU/RNN node (shapes as the module docstring gives them).

    Raises AttributeValueError for an unknown direction, layout or activation, or a hidden_size
    that disagrees with R; ShapeError naming the input whose shape is wrong.
    """
    op, a = node.op, node.attrs
    G = GATES[op]
    direction = a.get("direction") or "forward"
    if direction not in ("forward", "reverse", "bidirectional"):
        raise _bad(node, f"direction {direction!r} is not forward, reverse or bidirectional",
                   "set direction to forward, reverse or bidirectional")
    D = 2 if direction == "bidirectional" else 1
    layout = int(a.get("layout") or 0)
    if layout not in (0, 1):
        raise _bad(node, f"layout {layout} is not 0 or 1",
                   "layout 0 is (seq, batch, ...), layout 1 is (batch, seq, ...)")
    x, w, r = node.inputs[0].shape, node.inputs[1].shape, node.inputs[2].shape

    def shape_error(what: str, got, want) -> ShapeError:
        want = "[" + ", ".join(map(str, want)) + "]"
        return ShapeError(f"{what} has shape {list(got)}, expected {want}", node=node.name,
                          op=op, hint=f"{op} takes X (seq, batch, input) (layout 0) or (batch, "
                          "seq, input) (layout 1), W (directions, gates*hidden, input), R "
                          "(directions, gates*hidden, hidden); check the exported weights")

    if len(x) != 3:
        raise shape_error("X", x, ("seq_length", "batch_size", "input_size"))
    if len(r) != 3:
        if a.get("hidden_size") is None:
            raise _bad(node, f"hidden_size is missing and R {list(r)} does not state it (R is "
                       f"(directions, {G}*hidden_size, hidden_size))",
                       "set hidden_size, or export R with its three axes")
        raise shape_error("R", r, (D, f"{G}*hidden_size", "hidden_size"))
    H = a.get("hidden_size")
    if H is None:
        H = r[2]   # not given: R (D, G*H, H) states it
    H = int(H)
    if H <= 0:
        raise _bad(node, f"hidden_size is {H}", "hidden_size must be positive; re-export the model")
    if r[2] != H and a.get("hidden_size") is not None:
        raise _bad(node, f"hidden_size is {H} but R {list(r)} has hidden size {r[2]}",
                   "set hidden_size to R's last dim or fix R's shape")
    T, N = (x[0], x[1]) if layout == 0 else (x[1], x[0])
    I = x[2]
    if tuple(w) != (D, G * H, I):
        raise shape_error("W", w, (D, G * H, I))
    if tuple(r) != (D, G * H, H):
        raise shape_error("R", r, (D, G * H, H))
    state = (D, N, H) if layout == 0 else (N, D, H)
    want = {3: ("B", (D, 2 * G * H)), 4: ("sequence_lens", (N,)), 5: ("initial_h", state)}
    if op == "LSTM":
        want.update({6: ("initial_c", state), 7: ("P", (D, 3 * H))})
    for k in range(3, len(node.inputs)):
        if has_input(node, k) and k in want and tuple(node.inputs[k].shape) != want[k][1]:
            raise shape_error(want[k][0], node.inputs[k].shape, want[k][1])
    if has_input(node, 4) and node.inputs[4].dtype != np.int32:
        raise ShapeError(f"sequence_lens is {node.inputs[4].dtype}, not int32", node=node.name,
                         op=op, hint="the ONNX spec types sequence_lens as int32")
    clip = a.get("clip")
    if clip is not None and not float(clip) > 0:
        raise _bad(node, f"clip is {clip}", "clip is a positive threshold; leave it out for none")
    reverse = (direction == "reverse",) if D == 1 else (False, True)
    return RNNSpec(op, int(T), int(N), int(I), H, D, G, reverse, _activations(node, D),
                   None if clip is None else float(clip), bool(a.get("input_forget") or 0),
                   bool(a.get("linear_before_reset") or 0), layout, has_input(node, 3),
                   has_input(node, 4), has_input(node, 5), has_input(node, 6), has_input(node, 7))


def activate(act: Activation, x: np.ndarray) -> np.ndarray:
    """numpy of one activation at ``x`` (any shape, float32/float64; the formulas of the
    spec's "Activation functions" list), in x's dtype."""
    t = x.dtype.type
    al, be = t(act.alpha), t(act.beta)
    one, zero = t(1), t(0)
    with np.errstate(over="ignore"):
        f = {
            "Sigmoid": lambda: one / (one + np.exp(-x)), "Tanh": lambda: np.tanh(x),
            "Relu": lambda: np.maximum(x, zero), "Affine": lambda: al * x + be,
            "LeakyRelu": lambda: np.where(x < 0, al * x, x),
            "ThresholdedRelu": lambda: np.where(x > al, x, zero),
            "ScaledTanh": lambda: al * np.tanh(be * x),
            "HardSigmoid": lambda: np.clip(al * x + be, zero, one),
            "Elu": lambda: np.where(x < 0, al * (np.exp(x) - one), x),
            "Softsign": lambda: x / (one + np.abs(x)),
            "Softplus": lambda: np.where(x > 0, x + np.log1p(np.exp(-x)), np.log1p(np.exp(x))),
        }[act.name]
        return f().astype(x.dtype)


class _Recurrent(OpDef):
    """Shared declaration of LSTM, GRU and RNN (see the module docstring)."""

    attrs = {"activation_alpha": None, "activation_beta": None, "activations": None,
             "clip": None, "direction": "forward", "hidden_size": None, "layout": 0}
    min_inputs, max_inputs = 3, 6

    def check(self, node: Node) -> None:
        rnn_spec(node)

    def infer(self, node: Node) -> list[TensorType]:
        s = rnn_spec(node)
        dt = node.inputs[0].dtype
        y = (s.T, s.D, s.N, s.H) if s.layout == 0 else (s.N, s.T, s.D, s.H)
        st = (s.D, s.N, s.H) if s.layout == 0 else (s.N, s.D, s.H)
        return [TensorType(y, dt), TensorType(st, dt), TensorType(st, dt)][:len(node.outputs)]

    def reference(self, node: Node, *inputs: np.ndarray | None) -> list[np.ndarray]:
        s = rnn_spec(node)
        ins = list(inputs) + [None] * (8 - len(inputs))
        x, w, r, b, lens, h0, c0, p = ins
        dt = x.dtype
        if s.layout == 1:
            x = x.transpose(1, 0, 2)
            h0 = None if h0 is None else h0.transpose(1, 0, 2)
            c0 = None if c0 is None else c0.transpose(1, 0, 2)
        GH, H = s.G * s.H, s.H
        lens = np.full(s.N, s.T, np.int64) if lens is None else lens.astype(np.int64)
        Y = np.zeros((s.T, s.D, s.N, H), dt)
        Yh = np.zeros((s.D, s.N, H), dt)
        Yc = np.zeros((s.D, s.N, H), dt)
        clip = (lambda v: v) if s.clip is None else \
            (lambda v: np.clip(v, dt.type(-s.clip), dt.type(s.clip)))
        for d in range(s.D):
            f = [lambda v, a=a: activate(a, clip(v)) for a in s.acts[d]]
            wb = b[d, :GH] if b is not None else np.zeros(GH, dt)
            rb = b[d, GH:] if b is not None else np.zeros(GH, dt)
            pd = p[d] if p is not None else np.zeros(3 * H, dt)
            h = h0[d].copy() if h0 is not None else np.zeros((s.N, H), dt)
            c = c0[d].copy() if c0 is not None else np.zeros((s.N, H), dt)
            for step in range(s.T):
                t = s.T - 1 - step if s.reverse[d] else step
                valid = (t < lens)[:, None]
                xw = x[t] @ w[d].T + wb
                if s.op == "LSTM":
                    g = xw + h @ r[d].T + rb
                    gi, go, gf, gc = (g[:, k * H:(k + 1) * H] for k in range(4))
                    i = f[0](gi + pd[:H] * c)
                    fg = (dt.type(1) - i) if s.input_forget else f[0](gf + pd[2 * H:] * c)
                    cn = fg * c + i * f[1](gc)
                    o = f[0](go + pd[H:2 * H] * cn)
                    hn = o * activate(s.acts[d][2], cn)   # h's input is not clipped (ORT)
                    c = np.where(valid, cn, c)
                elif s.op == "GRU":
                    hr = h @ r[d, :2 * H].T + rb[:2 * H]
                    z = f[0](xw[:, :H] + hr[:, :H])
                    rr = f[0](xw[:, H:2 * H] + hr[:, H:])
                    rh = r[d, 2 * H:]
                    if s.linear_before_reset:
                        hh = f[1](xw[:, 2 * H:] + rr * (h @ rh.T + rb[2 * H:]))
                    else:
                        hh = f[1](xw[:, 2 * H:] + (rr * h) @ rh.T + rb[2 * H:])
                    hn = (dt.type(1) - z) * hh + z * h
                else:
                    hn = f[0](xw + h @ r[d].T + rb)
                h = np.where(valid, hn, h).astype(dt)
                Y[t, d] = np.where(valid, hn, dt.type(0))
            empty = (lens <= 0)[:, None]   # onnxruntime: a zero-length entry's state is 0
            Yh[d], Yc[d] = np.where(empty, dt.type(0), h), np.where(empty, dt.type(0), c)
        if s.layout == 1:
            Y, Yh, Yc = Y.transpose(2, 0, 1, 3), Yh.transpose(1, 0, 2), Yc.transpose(1, 0, 2)
        return [Y, Yh, Yc][:len(node.outputs)]


@register_op("LSTM")
class LSTM(_Recurrent):
    """ONNX LSTM (Operators.md#LSTM, opsets 7, 14, 22; default activations f=Sigmoid,
    g=Tanh, h=Tanh): gates i, o, f, c; i = f(Xt Wi + Ht-1 Ri + Wbi + Rbi + Pi (.) Ct-1),
    f likewise (or 1 - i with ``input_forget``), c~ = g(...), Ct = f (.) Ct-1 + i (.) c~,
    o = f(... + Po (.) Ct), Ht = o (.) h(Ct). Inputs X, W (D, 4H, I), R (D, 4H, H), B (D, 8H),
    sequence_lens, initial_h, initial_c, P (D, 3H); outputs Y, Y_h, Y_c (shapes in the module
    docstring)."""

    attrs = {**_Recurrent.attrs, "input_forget": 0}
    max_inputs = 8


@register_op("GRU")
class GRU(_Recurrent):
    """ONNX GRU (Operators.md#GRU, opsets 7, 14, 22; default activations f=Sigmoid, g=Tanh):
    gates z, r, h; z = f(Xt Wz + Ht-1 Rz + Wbz + Rbz), r likewise,
    h~ = g(Xt Wh + (r (.) Ht-1) Rh + Rbh + Wbh) (``linear_before_reset`` 1:
    g(Xt Wh + r (.) (Ht-1 Rh + Rbh) + Wbh)), Ht = (1 - z) (.) h~ + z (.) Ht-1. Inputs X,
    W (D, 3H, I), R (D, 3H, H), B (D, 6H), sequence_lens, initial_h; outputs Y, Y_h."""

    attrs = {**_Recurrent.attrs, "linear_before_reset": 0}


@register_op("RNN")
class RNN(_Recurrent):
    """ONNX RNN (Operators.md#RNN, opsets 7, 14, 22; default activation f=Tanh):
    Ht = f(Xt Wi + Ht-1 Ri + Wbi + Rbi). Inputs X, W (D, H, I), R (D, H, H), B (D, 2H),
    sequence_lens, initial_h; outputs Y, Y_h."""
