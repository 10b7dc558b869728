"""Random small valid ONNX graphs for differential fuzzing (onnxcc vs onnxruntime).

``generate(d)`` builds a chain of 1-6 nodes drawn from onnxcc's op registry with random legal
shapes and attributes; ``d`` is a :class:`Draw`: :class:`RandomDraw` (a seeded ``random.Random``,
used by ``benchmarks/fuzz.py``) or :class:`HypothesisDraw` (hypothesis' ``st.data()``, used by
``tests/test_fuzz.py``, which shrinks failures). Every intermediate shape comes from onnx's strict
shape inference, so a builder only has to choose legal attributes.

Inputs are multiples of 1/16 with an odd numerator (never 0, never a rounding tie), and ops
that are discontinuous (Floor, Round, comparisons, ArgMax, Cast to int...) only read tensors
known to be exact (graph inputs and what data movement makes of them), so float rounding
differences between onnxcc and onnxruntime can never flip a discrete result.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 10  # onnxruntime 1.31 reads IR <= 13 (see tests/builders.py)
F, I64, I32, I8, BOOL, F64 = (TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32,
                              TensorProto.INT8, TensorProto.BOOL, TensorProto.DOUBLE)
RTOL, ATOL = 1e-4, 1e-5   # the comparison tolerance of every generated graph, float32 outputs


class Reject(Exception):
    """The drawn choices do not make a legal node; the case is discarded (not a finding)."""


# ---- sources of choices ---------------------------------------------------------------------
class Draw:
    """A source of random choices; subclasses implement :meth:`int`."""

    def int(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``."""
        raise NotImplementedError

    def choice(self, seq: Sequence[Any]) -> Any:
        """One element of ``seq``."""
        return seq[self.int(0, len(seq) - 1)]

    def bool(self, p_true: float = 0.5) -> bool:
        """True with probability about ``p_true``."""
        return self.int(0, 99) < int(p_true * 100)

    def float(self, choices: Sequence[float]) -> float:
        """One of a few float values (shrinks toward the first)."""
        return float(self.choice(choices))

    def array(self, shape: Sequence[int], dtype: Any = np.float32, lo: int = -48,
              hi: int = 48) -> np.ndarray:
        """Values (2k+1)/16, k in [lo/2, hi/2): exact in float32, never 0. Ints when dtype is int."""
        n = math.prod(shape)
        seed = self.int(0, 2**31 - 1)
        rng = np.random.default_rng(seed)
        if np.dtype(dtype).kind in "iu":
            return rng.integers(lo // 16, hi // 16 + 1, size=n).astype(dtype).reshape(shape)
        k = rng.integers(lo // 2, hi // 2, size=n)
        return ((2 * k + 1) / 16).astype(dtype).reshape(shape)


class RandomDraw(Draw):
    """Choices from a seeded :class:`random.Random`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class HypothesisDraw(Draw):
    """Choices from hypothesis' ``st.data()`` object (failures shrink)."""

    def __init__(self, data: Any) -> None:
        from hypothesis import strategies as st

        self.data, self.st = data, st

    def int(self, lo: int, hi: int) -> int:
        return self.data.draw(self.st.integers(lo, hi))


# ---- the graph under construction -----------------------------------------------------------
@dataclass
class Tensor:
    """A value of the graph being built: name, static shape, ONNX elem type, and ``exact``
    (its values are exact, so discrete ops may read it)."""

    name: str
    shape: tuple[int, ...]
    dtype: int = F
    exact: bool = False


@dataclass
class Builder:
    """The graph being built: nodes, inputs, initializers, and the tensors available so far."""

    d: Draw
    opset: int
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inputs: list[Tensor] = field(default_factory=list)
    inits: dict[str, np.ndarray] = field(default_factory=dict)
    tensors: list[Tensor] = field(default_factory=list)
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    counter: int = 0

    def fresh(self, stem: str) -> str:
        """A new tensor name."""
        self.counter += 1
        return f"{stem}{self.counter}"

    def add_input(self, shape: Sequence[int], dtype: int = F) -> Tensor:
        """A new graph input with random exact data in ``feeds``."""
        t = Tensor(self.fresh("x"), tuple(shape), dtype, exact=True)
        np_dt = helper.tensor_dtype_to_np_dtype(dtype)
        self.feeds[t.name] = self.d.array(shape, np_dt) if dtype != BOOL else \
            (self.d.array(shape) > 0)
        self.inputs.append(t)
        self.tensors.append(t)
        return t

    def const(self, arr: np.ndarray, stem: str = "c") -> str:
        """A new initializer; returns its name."""
        name = self.fresh(stem)
        self.inits[name] = np.asarray(arr)
        return name

    def ints(self, values: Sequence[int]) -> str:
        """An int64 1-D initializer (Reshape shape, Slice starts, axes...)."""
        return self.const(np.array(list(values), np.int64), "i")

    def pick(self, pred: Callable[[Tensor], bool] = lambda t: True) -> Tensor:
        """An available tensor satisfying ``pred`` (recent ones are likelier); Reject if none."""
        cands = [t for t in self.tensors if pred(t)]
        if not cands:
            raise Reject("no operand")
        if self.d.bool(0.6):
            return cands[-1]
        return self.d.choice(cands)

    def node(self, op: str, ins: Sequence[str], n_out: int = 1, exact: bool = False,
             **attrs: Any) -> list[Tensor]:
        """Append a node; infer its outputs' shapes with onnx (strict) and return them."""
        outs = [self.fresh("t") for _ in range(n_out)]
        n = helper.make_node(op, list(ins), outs, name=f"n{len(self.nodes)}",
                             **{k: v for k, v in attrs.items() if v is not None})
        model = self.model([], extra=[n])
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        except Exception as e:
            raise Reject(f"{op}: {e}") from e
        types = {vi.name: vi.type.tensor_type for vi in inferred.graph.value_info}
        types.update({vi.name: vi.type.tensor_type for vi in inferred.graph.output})
        res = []
        for o in outs:
            tt = types.get(o)
            if tt is None or not tt.HasField("shape") or any(
                    not d.HasField("dim_value") for d in tt.shape.dim):
                raise Reject(f"{op}: no static shape for {o}")
            shape = tuple(d.dim_value for d in tt.shape.dim)
            if math.prod(shape) > 4096 or any(n < 1 for n in shape):
                raise Reject(f"{op}: output size {shape}")
            res.append(Tensor(o, shape, tt.elem_type, exact))
        self.nodes.append(n)
        self.used.update(i for i in ins if i)
        self.tensors.extend(res)
        return res

    def model(self, outputs: Sequence[Tensor], extra: Sequence[onnx.NodeProto] = ()) -> onnx.ModelProto:
        """The model so far with ``outputs`` as graph outputs (shapes given)."""
        g = helper.make_graph(
            [*self.nodes, *extra], "fuzz",
            [helper.make_tensor_value_info(t.name, t.dtype, t.shape) for t in self.inputs],
            [helper.make_tensor_value_info(t.name, t.dtype, t.shape) for t in outputs],
            [numpy_helper.from_array(v, k) for k, v in self.inits.items()])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)])
        m.ir_version = IR_VERSION
        return m


def is_float(t: Tensor) -> bool:
    """A float32 tensor."""
    return t.dtype == F


def is_exact_float(t: Tensor) -> bool:
    """A float32 tensor whose values are exact."""
    return t.dtype == F and t.exact


def rank_between(lo: int, hi: int) -> Callable[[Tensor], bool]:
    """Predicate: a float tensor of rank in ``[lo, hi]``."""
    return lambda t: t.dtype == F and lo <= len(t.shape) <= hi


def broadcast_partner(b: Builder, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A random shape that broadcasts with ``shape`` (fewer dims, 1s, or expanding its 1s)."""
    d = b.d
    r = d.int(0, min(len(shape) + 1, 4))
    out = []
    for k in range(r):
        i = len(shape) - r + k
        if i < 0:
            out.append(d.int(1, 3))
        elif shape[i] == 1:
            out.append(d.choice([1, 1, 2, 3]))
        else:
            out.append(d.choice([shape[i], shape[i], 1]))
    return tuple(out)


def operand(b: Builder, shape: tuple[int, ...], exact: bool = False) -> str:
    """A second operand broadcastable with ``shape``: an existing tensor, a new input or a constant."""
    kind = b.d.int(0, 2)
    if kind == 0:
        try:
            t = b.pick(lambda t: t.dtype == F and (t.exact or not exact) and _broadcasts(t.shape, shape))
            return t.name
        except Reject:
            pass
    s = broadcast_partner(b, shape)
    if kind == 1 and s:
        return b.add_input(s).name
    return b.const(b.d.array(s))


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    for x, y in zip(reversed(a), reversed(b)):
        if x != y and x != 1 and y != 1:
            return False
    return True


# ---- op builders: each appends one node (or a few) reading available tensors -----------------
UNARY = ["Abs", "Neg", "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Reciprocal", "Sin",
         "Cos", "Tan", "Atan", "Asin", "Acos", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Erf",
         "Softplus", "Softsign", "HardSwish", "Identity"]
UNARY_ATTR = {"Elu": {"alpha": [1.0, 0.5, 2.0]}, "LeakyRelu": {"alpha": [0.01, 0.2, 1.5]},
              "Selu": {}, "Celu": {"alpha": [1.0, 0.7]},
              "HardSigmoid": {"alpha": [0.2, 0.5], "beta": [0.5, 0.1]},
              "ThresholdedRelu": {"alpha": [1.0, 0.3]}}
DISCRETE_UNARY = ["Floor", "Ceil", "Round", "Sign"]
BINARY = ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"]
COMPARE = ["Greater", "Less", "Equal", "GreaterOrEqual", "LessOrEqual"]
REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
          "ReduceL2", "ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum"]


def b_unary(b: Builder) -> None:
    """A unary elementwise op (with its attributes, if any)."""
    d = b.d
    if d.bool(0.3):
        op = d.choice(sorted(UNARY_ATTR))
        attrs = {k: d.float(v) for k, v in UNARY_ATTR[op].items()}
    else:
        op, attrs = d.choice(UNARY), {}
    x = b.pick(is_float)
    b.node(op, [x.name], exact=x.exact and op in ("Abs", "Neg", "Relu", "Identity"), **attrs)


def b_discrete_unary(b: Builder) -> None:
    """Floor/Ceil/Round/Sign/IsNaN/IsInf on an exact tensor."""
    op = b.d.choice(DISCRETE_UNARY + ["IsNaN", "IsInf"])
    x = b.pick(is_exact_float)
    b.node(op, [x.name], exact=True)


def b_binary(b: Builder) -> None:
    """A binary (or variadic) elementwise op with broadcasting."""
    d = b.d
    x = b.pick(is_float)
    op = d.choice(BINARY + ["Sum", "Mean", "Mod", "PRelu"])
    if op in ("Sum", "Mean"):
        ins = [x.name] + [operand(b, x.shape) for _ in range(d.int(0, 2))]
        b.node(op, ins)
    elif op == "Mod":
        b.node(op, [x.name, operand(b, x.shape)], fmod=1)
    elif op == "PRelu":   # the slope broadcasts to x (unidirectional)
        s = tuple(1 if d.bool(0.5) else n for n in x.shape[d.int(0, len(x.shape)):])
        b.node(op, [x.name, b.const(d.array(s))])
    else:
        y = operand(b, x.shape)
        if d.bool(0.3):
            x, y = Tensor(y, ()), x
            b.node(op, [x.name, y.name])
        else:
            b.node(op, [x.name, y])


def b_compare_where(b: Builder) -> None:
    """A comparison of exact tensors, maybe a logical op, then Where (or Not/Cast)."""
    d = b.d
    x = b.pick(is_exact_float)
    cond = b.node(d.choice(COMPARE), [x.name, operand(b, x.shape, exact=True)], exact=True)[0]
    if d.bool(0.3):
        other = b.node(d.choice(COMPARE), [x.name, b.const(d.array(broadcast_partner(b, x.shape)))],
                       exact=True)[0]
        cond = b.node(d.choice(["And", "Or", "Xor"]), [cond.name, other.name], exact=True)[0]
    if d.bool(0.2):
        cond = b.node("Not", [cond.name], exact=True)[0]
    if d.bool(0.8):
        y = b.pick(is_float)
        b.node("Where", [cond.name, y.name, operand(b, cond.shape)])
    else:
        b.node("Cast", [cond.name], to=F, exact=True)


def b_clip(b: Builder) -> None:
    """Clip with min/max as attributes (opset < 11) or optional inputs."""
    d = b.d
    x = b.pick(is_float)
    lo, hi = d.choice([-1.0, -0.5, 0.0]), d.choice([0.5, 1.0, 6.0])
    mode = d.int(0, 3)
    ins = [x.name, b.const(np.float32(lo)) if mode in (0, 1) else "",
           b.const(np.float32(hi)) if mode in (0, 2) else ""]
    while ins and ins[-1] == "":
        ins.pop()
    b.node("Clip", ins, exact=x.exact)


def b_cast(b: Builder) -> None:
    """Cast an exact tensor to an int or float type (then maybe int arithmetic, then back)."""
    d = b.d
    x = b.pick(is_exact_float)
    to = d.choice([I32, I64, I8, F64, F, BOOL])
    t = b.node("Cast", [x.name], to=to, exact=True)[0]
    if to in (I32, I64) and d.bool(0.5):
        np_dt = helper.tensor_dtype_to_np_dtype(to)
        c = b.const(d.array(broadcast_partner(b, t.shape), np_dt, lo=-40, hi=40))
        ops = ["Add", "Sub", "Mul"] + (["Max", "Min"] if b.opset >= 12 else [])
        t = b.node(d.choice(ops), [t.name, c], exact=True)[0]
    if to != F:
        b.node("Cast", [t.name], to=F, exact=True)


def b_conv(b: Builder) -> None:
    """Conv (1-D or 2-D) with random kernel, stride, pads or auto_pad, dilation, group, bias."""
    d = b.d
    x = b.pick(rank_between(3, 4))
    c, spatial = x.shape[1], x.shape[2:]
    groups = [g for g in range(1, c + 1) if c % g == 0]
    g = d.choice(groups)
    # output channels per group: a few, or past a vector (8 lanes) so that the LLVM targets'
    # register tiles (full and partial) are exercised too
    m = g * (d.int(1, 3) if d.bool(0.6) else d.choice([8, 9, 17, 33]))
    ks = [d.int(1, min(3, s + 2)) for s in spatial]
    dil = [d.choice([1, 1, 2]) for _ in spatial]
    strides = [d.choice([1, 1, 2, 3]) for _ in spatial]
    attrs: dict[str, Any] = {"kernel_shape": ks if d.bool(0.7) else None, "group": g if g > 1 or d.bool(0.5) else None,
                             "strides": strides, "dilations": dil}
    if d.bool(0.25):
        attrs["auto_pad"] = d.choice(["SAME_UPPER", "SAME_LOWER", "VALID"])
        if attrs["auto_pad"] != "VALID":   # onnxruntime: no dilation with SAME; pads >= 0
            attrs["dilations"] = dil = [1] * len(spatial)
            _same_pads_ok(spatial, ks, strides)
    else:
        attrs["pads"] = [d.int(0, k * dl - 1 if k * dl > 1 else 0) for k, dl in zip(ks, dil)] * 2
        attrs["pads"] = [p if d.bool(0.7) else d.int(0, 2) for p in attrs["pads"]]
    _window_fits(spatial, ks, dil, attrs.get("pads"))
    w = b.const(d.array((m, c // g, *ks)), "w")
    ins = [x.name, w] + ([b.const(d.array((m,)), "b")] if d.bool(0.6) else [])
    b.node("Conv", ins, **attrs)


def b_conv_transpose(b: Builder) -> None:
    """ConvTranspose with random kernel, stride, pads, output_padding, dilation, group."""
    d = b.d
    x = b.pick(rank_between(3, 4))
    c, spatial = x.shape[1], x.shape[2:]
    g = d.choice([k for k in range(1, c + 1) if c % k == 0])
    m = d.int(1, 2)
    ks = [d.int(1, 3) for _ in spatial]
    strides = [d.choice([1, 2, 3]) for _ in spatial]
    dil = [d.choice([1, 1, 2]) for _ in spatial]
    pads = [d.int(0, k - 1) for k in ks] * 2
    outpad = [d.int(0, max(0, s - 1)) if d.bool(0.3) else 0 for s in strides]
    w = b.const(d.array((c, m, *ks)), "w")
    ins = [x.name, w] + ([b.const(d.array((m * g,)), "b")] if d.bool(0.5) else [])
    b.node("ConvTranspose", ins, kernel_shape=ks, strides=strides, dilations=dil, pads=pads,
           group=g, output_padding=outpad if any(outpad) else None)


def _window_fits(spatial: Sequence[int], ks: Sequence[int], dil: Sequence[int],
                 pads: Sequence[int] | None) -> None:
    r = len(spatial)
    for i, (n, k, dl) in enumerate(zip(spatial, ks, dil)):
        if n + (pads[i] + pads[i + r] if pads else 0) < (k - 1) * dl + 1:
            raise Reject("window larger than the padded input")


def _same_pads_ok(spatial: Sequence[int], ks: Sequence[int], strides: Sequence[int]) -> None:
    for n, k, s in zip(spatial, ks, strides):
        if (-(-n // s) - 1) * s + k - n < 0:
            raise Reject("SAME padding would be negative")


def b_pool(b: Builder) -> None:
    """MaxPool or AveragePool (kernel, strides, pads < kernel, ceil_mode, dilations, count_include_pad)."""
    d = b.d
    x = b.pick(rank_between(3, 4))
    op = d.choice(["MaxPool", "AveragePool"])
    spatial = x.shape[2:]
    ks = [d.int(1, min(3, s)) for s in spatial]
    dil = [d.choice([1, 1, 2]) for _ in spatial] if (op == "MaxPool" or b.opset >= 19) else None
    attrs: dict[str, Any] = {"kernel_shape": ks, "strides": [d.choice([1, 1, 2, 3]) for _ in spatial],
                             "ceil_mode": d.choice([0, 1]) if d.bool(0.5) else None,
                             "dilations": dil if dil and d.bool(0.5) else None}
    if d.bool(0.2):
        attrs["auto_pad"] = d.choice(["SAME_UPPER", "SAME_LOWER", "VALID"])
        attrs["ceil_mode"] = None   # undefined with auto_pad: onnx's reference and onnxcc refuse it
        if attrs["auto_pad"] != "VALID":
            attrs["dilations"] = None
            _same_pads_ok(spatial, ks, attrs["strides"])
    else:
        attrs["pads"] = [d.int(0, k - 1) for k in ks] * 2 if d.bool(0.6) else None
    _window_fits(spatial, ks, attrs["dilations"] or [1] * len(ks), attrs.get("pads"))
    if attrs["ceil_mode"] and attrs.get("auto_pad") is None:   # onnx's inference and onnxruntime
        r, pads = len(ks), attrs.get("pads") or [0] * (2 * len(ks))   # differ when the last window
        for i, (n, k, s) in enumerate(zip(spatial, ks, attrs["strides"])):   # starts in the padding
            dl = (attrs["dilations"] or [1] * r)[i]
            out = -(-(n + pads[i] + pads[i + r] - (k - 1) * dl - 1) // s) + 1
            if (out - 1) * s >= n + pads[i]:
                raise Reject("ceil_mode window starting in the padding")
    if op == "AveragePool":
        attrs["count_include_pad"] = d.choice([0, 1])
    b.node(op, [x.name], exact=x.exact and op == "MaxPool", **attrs)


def b_global_pool(b: Builder) -> None:
    """GlobalAveragePool / GlobalMaxPool."""
    x = b.pick(rank_between(3, 4))
    op = b.d.choice(["GlobalAveragePool", "GlobalMaxPool"])
    b.node(op, [x.name], exact=x.exact and op == "GlobalMaxPool")


def b_gemm(b: Builder) -> None:
    """Gemm on a rank-2 tensor (transA/transB, alpha, beta, bias broadcast) or MatMul (any rank)."""
    d = b.d
    if d.bool(0.5):
        x = b.pick(rank_between(2, 2))
        ta, tb = d.choice([0, 1]), d.choice([0, 1])
        mm, k = (x.shape[1], x.shape[0]) if ta else x.shape
        n = d.int(1, 5) if d.bool(0.6) else d.choice([8, 11, 17, 33])   # a register tile's width
        w = b.const(d.array((n, k) if tb else (k, n)), "w")
        ins = [x.name, w]
        if d.bool(0.7):
            ins.append(b.const(d.array(d.choice([(n,), (1, n), (mm, n), (mm, 1), ()])), "b"))
        b.node("Gemm", ins, transA=ta or None, transB=tb or None,
               alpha=d.float([1.0, 0.5, -2.0]) if d.bool(0.3) else None,
               beta=d.float([1.0, 0.25, 3.0]) if d.bool(0.3) and len(ins) > 2 else None)
    else:
        x = b.pick(rank_between(1, 4))
        k, n = x.shape[-1], d.int(1, 5) if d.bool(0.6) else d.choice([8, 11, 17, 33])
        wshape = (k, n) if d.bool(0.7) or len(x.shape) < 3 else (x.shape[-3], k, n)
        if d.bool(0.15):
            wshape = (k,)
        b.node("MatMul", [x.name, b.const(d.array(wshape), "w")])


def b_reduce(b: Builder) -> None:
    """A Reduce* op with random axes (attribute or input per opset), keepdims."""
    d = b.d
    x = b.pick(rank_between(1, 4))
    op = d.choice(REDUCE)
    r = len(x.shape)
    axes = sorted({d.int(0, r - 1) for _ in range(d.int(0, r))})
    axes = [a - r if d.bool(0.3) else a for a in axes]
    keep = d.choice([0, 1])
    as_input = b.opset >= 18 or (op == "ReduceSum" and b.opset >= 13)
    ins, attrs = [x.name], {"keepdims": keep}
    if axes:
        if as_input:
            ins.append(b.ints(axes))
        else:
            attrs["axes"] = axes
    b.node(op, ins, exact=x.exact and op in ("ReduceMax", "ReduceMin"), **attrs)


def b_argmax(b: Builder) -> None:
    """ArgMax/ArgMin of an exact tensor (ties pick the first, or the last index)."""
    d = b.d
    x = b.pick(lambda t: is_exact_float(t) and len(t.shape) >= 1)
    r = len(x.shape)
    t = b.node(d.choice(["ArgMax", "ArgMin"]), [x.name], exact=True, axis=d.int(-r, r - 1),
               keepdims=d.choice([0, 1]), select_last_index=d.choice([0, 1]) if d.bool(0.3) and b.opset >= 12 else None)[0]
    b.node("Cast", [t.name], to=F, exact=True)


def b_softmax(b: Builder) -> None:
    """Softmax / LogSoftmax (any axis), Hardmax of an exact tensor."""
    d = b.d
    if d.bool(0.2):
        x = b.pick(lambda t: is_exact_float(t) and len(t.shape) >= 1)
        op = "Hardmax"
    else:
        x = b.pick(rank_between(1, 4))
        op = d.choice(["Softmax", "LogSoftmax"])
    r = len(x.shape)
    b.node(op, [x.name], axis=d.int(-r, r - 1) if d.bool(0.8) else None, exact=op == "Hardmax")


def b_norm(b: Builder) -> None:
    """BatchNormalization, InstanceNormalization, LayerNormalization or LRN."""
    d = b.d
    op = d.choice(["BatchNormalization", "InstanceNormalization", "LayerNormalization", "LRN"])
    if op == "LRN":
        x = b.pick(rank_between(4, 4))
        b.node(op, [x.name], size=d.choice([1, 3, 5]), alpha=d.float([1e-4, 0.5]),
               beta=d.float([0.75, 0.5]), bias=d.float([1.0, 2.0]))
        return
    if op == "LayerNormalization":
        if b.opset < 17:
            raise Reject("LayerNormalization needs opset 17")
        x = b.pick(rank_between(1, 4))
        r = len(x.shape)
        axis = d.int(-r, r - 1)
        s = x.shape[axis:]
        ins = [x.name, b.const(d.array(s)), *([b.const(d.array(s))] if d.bool(0.5) else [])]
        b.node(op, ins, axis=axis, epsilon=d.float([1e-5, 0.1]))
        return
    x = b.pick(rank_between(3, 4) if op != "BatchNormalization" else rank_between(2, 4))
    c = x.shape[1]
    if op == "InstanceNormalization":
        b.node(op, [x.name, b.const(d.array((c,))), b.const(d.array((c,)))],
               epsilon=d.float([1e-5, 0.5]))
    else:
        var = np.abs(d.array((c,))) + np.float32(0.5)
        b.node(op, [x.name, b.const(d.array((c,))), b.const(d.array((c,))),
                    b.const(d.array((c,))), b.const(var)], epsilon=d.float([1e-5, 0.1]))


def b_transpose(b: Builder) -> None:
    """Transpose with a random permutation (or none: reversed)."""
    d = b.d
    x = b.pick(lambda t: t.dtype == F and len(t.shape) >= 1)
    perm = list(range(len(x.shape)))
    for i in range(len(perm) - 1, 0, -1):
        j = d.int(0, i)
        perm[i], perm[j] = perm[j], perm[i]
    b.node("Transpose", [x.name], perm=perm if d.bool(0.8) else None, exact=x.exact)


def _factor(d: Draw, n: int, rank: int) -> list[int]:
    out = []
    for _ in range(rank - 1):
        divs = [k for k in range(1, n + 1) if n % k == 0]
        f = d.choice(divs)
        out.append(f)
        n //= f
    return out + [n]


def b_reshape(b: Builder) -> None:
    """Reshape (with -1 or 0 entries), Flatten, Squeeze or Unsqueeze."""
    d = b.d
    x = b.pick(is_float)
    kind = d.int(0, 3)
    r = len(x.shape)
    if kind == 0:
        shape = _factor(d, math.prod(x.shape), d.int(1, 4))
        if d.bool(0.3):
            shape[d.int(0, len(shape) - 1)] = -1
        elif d.bool(0.3) and r:
            i = d.int(0, min(r, len(shape)) - 1)
            if shape[i] == x.shape[i]:
                shape[i] = 0
        b.node("Reshape", [x.name, b.ints(shape)], exact=x.exact)
    elif kind == 1:
        b.node("Flatten", [x.name], axis=d.int(-r, r) if r else 0, exact=x.exact)
    elif kind == 2:
        ones = [i for i, s in enumerate(x.shape) if s == 1]
        if not ones:
            raise Reject("nothing to squeeze")
        axes = sorted({d.choice(ones) for _ in range(d.int(1, len(ones)))})
        ins = [x.name] + ([b.ints(axes)] if b.opset >= 13 else [])
        b.node("Squeeze", ins, axes=axes if b.opset < 13 else None, exact=x.exact)
    else:
        if r >= 4:
            raise Reject("rank")
        axes = sorted({d.int(-(r + 1), r) % (r + 1)})
        ins = [x.name] + ([b.ints(axes)] if b.opset >= 13 else [])
        b.node("Unsqueeze", ins, axes=axes if b.opset < 13 else None, exact=x.exact)


def b_concat_split(b: Builder) -> None:
    """Concat along a random axis (of 1-3 tensors), or Split into 2-3 parts."""
    d = b.d
    x = b.pick(lambda t: t.dtype == F and len(t.shape) >= 1)
    r = len(x.shape)
    axis = d.int(-r, r - 1)
    if d.bool(0.6):
        ins = [x.name]
        for _ in range(d.int(0, 2)):
            s = list(x.shape)
            s[axis] = d.int(1, 3)
            ins.append(d.choice([x.name, b.const(d.array(s)), b.add_input(s).name]))
        b.node("Concat", ins, axis=axis, exact=x.exact)
    else:
        n = x.shape[axis]
        parts = d.int(1, min(3, n))
        cuts = sorted({d.int(1, n - 1) for _ in range(parts - 1)}) if n > 1 else []
        sizes = [e - s for s, e in zip([0, *cuts], [*cuts, n])]
        ins, attrs = [x.name], {"axis": axis}
        if d.bool(0.5) or b.opset < 18:
            if b.opset >= 13:
                ins.append(b.ints(sizes))
            else:
                attrs["split"] = sizes
        else:
            attrs["num_outputs"] = len(sizes)
            k = -(-n // len(sizes))
            if (len(sizes) - 1) * k >= n:
                raise Reject("uneven split")
            sizes = [k] * (len(sizes) - 1) + [n - k * (len(sizes) - 1)]
        b.node("Split", ins, n_out=len(sizes), exact=x.exact, **attrs)


def b_slice(b: Builder) -> None:
    """Slice with negative and out-of-range starts/ends, negative steps, a subset of axes."""
    d = b.d
    x = b.pick(lambda t: t.dtype == F and len(t.shape) >= 1)
    r = len(x.shape)
    axes = sorted({d.int(0, r - 1) for _ in range(d.int(1, r))})
    starts, ends, steps = [], [], []
    for a in axes:
        n = x.shape[a]
        step = d.choice([1, 1, 2, -1, -2])
        if step > 0:
            s, e = d.int(-n - 1, n - 1), d.choice([n, n + 5, 2**62, d.int(-n, n)])
        else:
            s, e = d.choice([n - 1, n + 3, d.int(-n, n - 1)]), d.choice([-n - 1, -(2**62), d.int(-n, n - 1)])
        starts.append(s), ends.append(e), steps.append(step)
    ins = [x.name, b.ints(starts), b.ints(ends)]
    if d.bool(0.7) or any(st != 1 for st in steps):
        ins.append(b.ints([a - r if d.bool(0.3) else a for a in axes]))
        if any(st != 1 for st in steps) or d.bool(0.5):
            ins.append(b.ints(steps))
    elif len(axes) != r:
        axes_all = list(range(len(axes)))
        ins.append(b.ints(axes_all))
    b.node("Slice", ins, exact=x.exact)


def b_pad(b: Builder) -> None:
    """Pad: constant (with value), reflect or edge; negative pads (crops) sometimes."""
    d = b.d
    x = b.pick(lambda t: t.dtype == F and len(t.shape) >= 1)
    mode = d.choice(["constant", "reflect", "edge"])
    pads = []
    for _ in range(2):
        for s in x.shape:
            hi = s - 1 if mode == "reflect" else 2
            p = d.int(0, max(0, min(2, hi)))
            if mode == "constant" and d.bool(0.1) and s > 1:
                p = -1
            pads.append(p)
    ins = [x.name, b.ints(pads)]
    if mode == "constant" and d.bool(0.5):
        ins.append(b.const(np.float32(d.float([0.0, 1.5, -2.0]))))
    b.node("Pad", ins, mode=mode, exact=x.exact)


def b_resize(b: Builder) -> None:
    """Resize of a rank-4 tensor: nearest (all nearest_modes) or linear, scales or sizes."""
    d = b.d
    if b.opset < 13:
        raise Reject("Resize with empty roi/scales needs opset 13")
    x = b.pick(rank_between(4, 4))
    mode = d.choice(["nearest", "linear", "cubic"])
    ctm = d.choice(["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"])
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
    if mode == "nearest":
        attrs["nearest_mode"] = d.choice(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
    if d.bool(0.5):
        scales = [1.0, 1.0] + [d.float([0.5, 1.0, 1.5, 2.0, 3.0]) for _ in range(2)]
        if any(int(s * n) == 0 for s, n in zip(scales, x.shape)):
            raise Reject("empty resize")
        ins = [x.name, "", b.const(np.array(scales, np.float32))]
    else:
        sizes = [x.shape[0], x.shape[1]] + [d.int(1, 2 * s + 1) for s in x.shape[2:]]
        ins = [x.name, "", "", b.ints(sizes)]
    b.node("Resize", ins, exact=x.exact and mode == "nearest", **attrs)


def b_movement(b: Builder) -> None:
    """Tile, Expand, Gather, DepthToSpace or SpaceToDepth."""
    d = b.d
    op = d.choice(["Tile", "Expand", "Gather", "DepthToSpace", "SpaceToDepth"])
    x = b.pick(lambda t: t.dtype == F and len(t.shape) >= (4 if "Depth" in op else 1))
    r = len(x.shape)
    if op == "Tile":
        b.node(op, [x.name, b.ints([d.int(1, 2) for _ in x.shape])], exact=x.exact)
    elif op == "Expand":
        s = [n if n != 1 else d.int(1, 3) for n in x.shape]
        if d.bool(0.3):
            s = [d.int(1, 2)] + s
        s = [1 if d.bool(0.2) else n for n in s]
        b.node(op, [x.name, b.ints(s)], exact=x.exact)
    elif op == "Gather":
        axis = d.int(-r, r - 1)
        n = x.shape[axis]
        idx_shape = d.choice([(), (2,), (2, 2)])
        idx = np.array([d.int(-n, n - 1) for _ in range(math.prod(idx_shape))], np.int64).reshape(idx_shape)
        b.node(op, [x.name, b.const(idx, "i")], axis=axis, exact=x.exact)
    elif op == "DepthToSpace":
        bs = d.choice([k for k in (1, 2, 3) if x.shape[1] % (k * k) == 0])
        b.node(op, [x.name], blocksize=bs, mode=d.choice(["DCR", "CRD"]), exact=x.exact)
    else:
        bs = d.choice([k for k in (1, 2, 3) if x.shape[2] % k == 0 and x.shape[3] % k == 0])
        b.node(op, [x.name], blocksize=bs, exact=x.exact)


BUILDERS: list[Callable[[Builder], None]] = [
    b_unary, b_unary, b_discrete_unary, b_binary, b_binary, b_compare_where, b_clip, b_cast,
    b_conv, b_conv, b_conv_transpose, b_pool, b_pool, b_global_pool, b_gemm, b_gemm, b_reduce,
    b_reduce, b_argmax, b_softmax, b_norm, b_transpose, b_reshape, b_reshape, b_concat_split,
    b_slice, b_pad, b_resize, b_movement]
OPSETS = [17, 13, 18, 11, 19]


@dataclass
class Case:
    """A generated model with its feeds and the builders used (for the report)."""

    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    steps: list[str]


def generate(d: Draw, max_nodes: int = 6, tries: int = 30) -> Case:
    """A random valid model of 1..``max_nodes`` builder steps; raises Reject if none was built."""
    b = Builder(d, opset=d.choice(OPSETS))
    rank = d.choice([4, 4, 3, 2, 1, 2, 4, 0])
    shape = [d.int(1, 3) if k < 2 else d.int(1, 7) for k in range(rank)] if rank >= 3 else \
        [d.int(1, 6) for _ in range(rank)]
    b.add_input(shape)
    want = d.int(1, max_nodes)
    steps: list[str] = []
    for _ in range(tries):
        if len(steps) >= want:
            break
        fn = d.choice(BUILDERS)
        saved = (len(b.nodes), len(b.inputs), dict(b.inits), list(b.tensors), dict(b.feeds), set(b.used))
        try:
            fn(b)
            steps.append(fn.__name__[2:])
        except Reject:
            n, ni, b.inits, b.tensors, b.feeds, b.used = saved
            del b.nodes[n:], b.inputs[ni:]
    if not steps:
        raise Reject("no step succeeded")
    outs = [t for t in b.tensors if t.name not in b.used and t not in b.inputs]
    inputs = {t.name for t in b.inputs}
    outs = [t for t in outs if t.name not in inputs and t.name not in b.inits]
    if not outs:
        raise Reject("no output")
    model = b.model(outs)
    return Case(model, dict(b.feeds), steps)


def compare(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> str | None:
    """None when every output agrees (dtype, shape, values within RTOL/ATOL, NaN where NaN);
    otherwise a short description of the first disagreement."""
    for name, ref in want.items():
        if name not in got:
            return f"output {name!r} missing"
        a = np.asarray(got[name])
        ref = np.asarray(ref)
        if a.shape != ref.shape:
            return f"{name}: shape {a.shape} != onnxruntime {ref.shape}"
        if a.dtype != ref.dtype:
            return f"{name}: dtype {a.dtype} != onnxruntime {ref.dtype}"
        if a.dtype.kind in "biu":
            if not np.array_equal(a, ref):
                return f"{name}: {np.count_nonzero(a != ref)} of {a.size} differ"
            continue
        try:
            np.testing.assert_allclose(a.astype(np.float64), ref.astype(np.float64), rtol=RTOL,
                                       atol=ATOL, equal_nan=True)
        except AssertionError as e:
            return f"{name}: " + " ".join(str(e).split("\n")[2:5])
    return None


def ort_run(model: onnx.ModelProto | bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime on the CPU, one thread; output name -> array."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    data = model if isinstance(model, bytes) else model.SerializeToString()
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, dict(feeds))))
