"""Elementwise ops: one scalar function applied over the (numpy-broadcast) inputs.

x, y, ... are any shape; the output has the multidirectional broadcast shape of the inputs
(ONNX "Broadcasting in ONNX"), dtype of the first input unless stated (comparisons, logical ops,
IsNaN and IsInf give bool; Cast and CastLike give the target type).
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np

from ..errors import AttributeValueError, ShapeError
from ..ir import Node, TensorType
from . import REQUIRED, OpDef, attr, bad_attr, register_op
from ._util import const_input, onnx_dtype

try:  # scipy is a test dependency only; math.erf is the exact (slower) fallback
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover
    _erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, in x's float dtype."""
    return np.asarray(_erf(x)).astype(x.dtype, copy=False)


class Unary(OpDef):
    """An elementwise op of one input; subclasses give ``fn`` (``out_bool``: bool output)."""

    traits = frozenset({"elementwise"})
    out_bool = False

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        return [TensorType(x.shape, np.bool_ if self.out_bool else x.dtype)]

    def fn(self, node: Node, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reference(self, node: Node, x: np.ndarray, *rest) -> list[np.ndarray]:
        out_dtype = np.bool_ if self.out_bool else x.dtype
        return [np.asarray(self.fn(node, x)).astype(out_dtype, copy=False)]


class Binary(OpDef):
    """An elementwise op of two broadcast inputs; subclasses give ``fn`` (``out_bool``: bool)."""

    traits = frozenset({"elementwise"})
    min_inputs = max_inputs = 2
    out_bool = False

    def infer(self, node: Node) -> list[TensorType]:
        a, b = node.inputs
        return [TensorType(np.broadcast_shapes(a.shape, b.shape),
                           np.bool_ if self.out_bool else a.dtype)]

    def fn(self, node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reference(self, node: Node, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        out_dtype = np.bool_ if self.out_bool else a.dtype
        return [np.asarray(self.fn(node, a, b)).astype(out_dtype, copy=False)]


class Variadic(OpDef):
    """An elementwise op of 1..n broadcast inputs folded with ``fn`` (Sum, Max, Min, Mean)."""

    traits = frozenset({"elementwise"})
    min_inputs, max_inputs = 1, -1

    def infer(self, node: Node) -> list[TensorType]:
        shape = np.broadcast_shapes(*(v.shape for v in node.inputs))
        return [TensorType(shape, node.inputs[0].dtype)]

    def fn(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reference(self, node: Node, *xs: np.ndarray) -> list[np.ndarray]:
        shape = np.broadcast_shapes(*(x.shape for x in xs))
        y = np.broadcast_to(reduce(self.fn, xs), shape)
        return [np.array(y, dtype=xs[0].dtype)]


# ---- arithmetic ------------------------------------------------------------------------------
@register_op("Add")
class Add(Binary):
    """ONNX Add: c = a + b (broadcast)."""

    def fn(self, node, a, b):
        return a + b


@register_op("Sub")
class Sub(Binary):
    """ONNX Sub: c = a - b (broadcast)."""

    def fn(self, node, a, b):
        return a - b


@register_op("Mul")
class Mul(Binary):
    """ONNX Mul: c = a * b (broadcast)."""

    def fn(self, node, a, b):
        return a * b


def trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division rounding toward zero, as C does (numpy's // floors)."""
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


@register_op("Div")
class Div(Binary):
    """ONNX Div: c = a / b (broadcast); integer types truncate toward zero like C."""

    def fn(self, node, a, b):
        if np.issubdtype(a.dtype, np.integer):
            return trunc_div(a, b)
        return a / b


@register_op("Pow")
class Pow(Binary):
    """ONNX Pow: z = x ** y (broadcast). The exponent may have another type (opset 12+); the
    result has x's dtype. Integer powers are computed in float64 and cast back."""

    def fn(self, node, a, b):
        if np.issubdtype(a.dtype, np.integer) or np.issubdtype(b.dtype, np.floating):
            return np.power(a.astype(np.float64), b.astype(np.float64))
        return np.power(a, b.astype(a.dtype))


@register_op("Mod")
class Mod(Binary):
    """ONNX Mod: remainder of a / b. fmod=0: sign of the divisor (Python %; floats only from
    opset 28 on, ``a - floor(a / b) * b``); fmod=1: sign of the dividend (C fmod). Raises
    AttributeValueError for floats with fmod=0 before opset 28."""

    attrs = {"fmod": 0}

    def check(self, node):
        if attr(node, "fmod") not in (0, 1):
            raise bad_attr(node, f"fmod must be 0 or 1, got {attr(node, 'fmod')}")
        if attr(node, "fmod") == 0 and np.issubdtype(node.inputs[0].dtype, np.floating) \
                and node.version < 28:
            raise bad_attr(node, f"fmod must be 1 for floating-point inputs at opset "
                           f"{node.version} (fmod=0 on floats is defined from opset 28 on)")

    def fn(self, node, a, b):
        return np.fmod(a, b) if attr(node, "fmod") else np.mod(a, b)


@register_op("PRelu")
class PRelu(Binary):
    """ONNX PRelu: y = x if x >= 0 else slope * x; slope broadcasts to x (unidirectional)."""

    traits = frozenset({"elementwise", "fusable_epilogue"})

    def fn(self, node, x, slope):
        return np.where(x < 0, x * slope, x)


@register_op("Sum")
class Sum(Variadic):
    """ONNX Sum: y = x0 + x1 + ... (broadcast)."""

    def fn(self, a, b):
        return a + b


@register_op("Max")
class Max(Variadic):
    """ONNX Max: elementwise maximum of the inputs (NaN propagates)."""

    def fn(self, a, b):
        return np.maximum(a, b)


@register_op("Min")
class Min(Variadic):
    """ONNX Min: elementwise minimum of the inputs (NaN propagates)."""

    def fn(self, a, b):
        return np.minimum(a, b)


@register_op("Mean")
class Mean(Variadic):
    """ONNX Mean: (x0 + x1 + ...) / n (broadcast)."""

    def reference(self, node, *xs):
        shape = np.broadcast_shapes(*(x.shape for x in xs))
        total = reduce(np.add, xs)
        return [np.array(np.broadcast_to(total / len(xs), shape), dtype=xs[0].dtype)]


# ---- comparisons and logic (bool outputs) ---------------------------------------------------
def _binary(name: str, fn, doc: str, out_bool: bool = False) -> None:
    cls = type(name, (Binary,), {"fn": lambda self, node, a, b: fn(a, b), "out_bool": out_bool,
                                 "__doc__": f"ONNX {name}: {doc} (broadcast)."})
    register_op(name)(cls)
    globals()[name] = cls


for _name, _fn, _doc in [
    ("Equal", np.equal, "a == b -> bool"), ("Less", np.less, "a < b -> bool"),
    ("Greater", np.greater, "a > b -> bool"), ("LessOrEqual", np.less_equal, "a <= b -> bool"),
    ("GreaterOrEqual", np.greater_equal, "a >= b -> bool"),
    ("And", np.logical_and, "a and b, bool"), ("Or", np.logical_or, "a or b, bool"),
    ("Xor", np.logical_xor, "a xor b, bool"),
]:
    _binary(_name, _fn, _doc, out_bool=True)


@register_op("Where")
class Where(OpDef):
    """ONNX Where: y = cond ? x : z (three-way broadcast); dtype of x."""

    traits = frozenset({"elementwise"})
    min_inputs = max_inputs = 3

    def infer(self, node):
        c, x, z = node.inputs
        return [TensorType(np.broadcast_shapes(c.shape, x.shape, z.shape), x.dtype)]

    def reference(self, node, c, x, z):
        return [np.where(c.astype(bool), x, z).astype(x.dtype, copy=False)]


# ---- unary math -----------------------------------------------------------------------------
def _unary(name: str, fn, doc: str, traits: frozenset[str] = frozenset(),
           out_bool: bool = False) -> None:
    cls = type(name, (Unary,), {"fn": lambda self, node, x: fn(x), "out_bool": out_bool,
                                "__doc__": f"ONNX {name}: y = {doc}, elementwise."})
    register_op(name, traits=traits)(cls)
    globals()[name] = cls


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.zeros((), x.dtype), x)


EPILOGUE = frozenset({"fusable_epilogue"})
for _name, _fn, _doc, _traits in [
    ("Sigmoid", _sigmoid, "1 / (1 + exp(-x))", EPILOGUE),
    ("Tanh", np.tanh, "tanh(x)", EPILOGUE),
    ("Softplus", _softplus, "log(1 + exp(x))", EPILOGUE),
    ("Softsign", lambda x: x / (1 + np.abs(x)), "x / (1 + |x|)", frozenset()),
    ("HardSwish", lambda x: x * np.clip(x / 6 + 0.5, 0, 1), "x * max(0, min(1, x/6 + 1/2))",
     EPILOGUE),
    ("Mish", lambda x: x * np.tanh(_softplus(x)), "x * tanh(softplus(x))", frozenset()),
    ("Erf", erf, "erf(x)", frozenset()),
    ("Exp", np.exp, "exp(x)", frozenset()), ("Log", np.log, "log(x)", frozenset()),
    ("Sqrt", np.sqrt, "sqrt(x)", frozenset()),
    ("Reciprocal", lambda x: 1 / x, "1 / x", frozenset()),
    ("Neg", np.negative, "-x", frozenset()), ("Abs", np.abs, "|x|", frozenset()),
    ("Floor", np.floor, "floor(x)", frozenset()), ("Ceil", np.ceil, "ceil(x)", frozenset()),
    ("Round", np.round, "x rounded half to even", frozenset()),
    ("Sign", np.sign, "sign(x) in {-1, 0, 1}", frozenset()),
    ("Sin", np.sin, "sin(x)", frozenset()), ("Cos", np.cos, "cos(x)", frozenset()),
    ("Tan", np.tan, "tan(x)", frozenset()), ("Asin", np.arcsin, "asin(x)", frozenset()),
    ("Acos", np.arccos, "acos(x)", frozenset()), ("Atan", np.arctan, "atan(x)", frozenset()),
    ("Sinh", np.sinh, "sinh(x)", frozenset()), ("Cosh", np.cosh, "cosh(x)", frozenset()),
    ("Asinh", np.arcsinh, "asinh(x)", frozenset()), ("Acosh", np.arccosh, "acosh(x)", frozenset()),
    ("Atanh", np.arctanh, "atanh(x)", frozenset()),
]:
    _unary(_name, _fn, _doc, _traits)

_unary("Not", np.logical_not, "not x (bool)", out_bool=True)
_unary("IsNaN", np.isnan, "isnan(x) -> bool", out_bool=True)


@register_op("IsInf")
class IsInf(Unary):
    """ONNX IsInf: x is +inf (detect_positive) or -inf (detect_negative) -> bool."""

    attrs = {"detect_negative": 1, "detect_positive": 1}
    out_bool = True

    def fn(self, node, x):
        return ((np.isposinf(x) & bool(attr(node, "detect_positive")))
                | (np.isneginf(x) & bool(attr(node, "detect_negative"))))


# ---- activations with attributes --------------------------------------------------------------
@register_op("LeakyRelu", traits={"fusable_epilogue"})
class LeakyRelu(Unary):
    """ONNX LeakyRelu: y = x if x >= 0 else alpha * x."""

    attrs = {"alpha": 0.01}

    def fn(self, node, x):
        return np.where(x >= 0, x, x * x.dtype.type(attr(node, "alpha")))


@register_op("Relu", traits={"fusable_epilogue"})
class Relu(Unary):
    """ONNX Relu: y = max(x, 0)."""

    def fn(self, node, x):
        return np.maximum(x, 0)


@register_op("HardSigmoid", traits={"fusable_epilogue"})
class HardSigmoid(Unary):
    """ONNX HardSigmoid: y = max(0, min(1, alpha * x + beta))."""

    attrs = {"alpha": 0.2, "beta": 0.5}

    def fn(self, node, x):
        t = x.dtype.type
        return np.clip(x * t(attr(node, "alpha")) + t(attr(node, "beta")), 0, 1)


@register_op("Elu", traits={"fusable_epilogue"})
class Elu(Unary):
    """ONNX Elu: y = x if x >= 0 else alpha * (exp(x) - 1)."""

    attrs = {"alpha": 1.0}

    def fn(self, node, x):
        return np.where(x >= 0, x, x.dtype.type(attr(node, "alpha")) * np.expm1(x))


@register_op("Selu", traits={"fusable_epilogue"})
class Selu(Unary):
    """ONNX Selu: y = gamma * (x if x > 0 else alpha * (exp(x) - 1))."""

    attrs = {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}

    def fn(self, node, x):
        t = x.dtype.type
        return t(attr(node, "gamma")) * np.where(x > 0, x, t(attr(node, "alpha")) * np.expm1(x))


@register_op("Celu")
class Celu(Unary):
    """ONNX Celu: y = max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""

    attrs = {"alpha": 1.0}

    def check(self, node):
        if attr(node, "alpha") == 0:
            raise bad_attr(node, "alpha must be non-zero")

    def fn(self, node, x):
        a = x.dtype.type(attr(node, "alpha"))
        return np.maximum(x, 0) + np.minimum(0, a * np.expm1(x / a))


@register_op("Swish")
class Swish(Unary):
    """ONNX Swish (opset 24): y = x * sigmoid(alpha * x)."""

    attrs = {"alpha": 1.0}

    def fn(self, node, x):
        with np.errstate(over="ignore"):
            return x / (1 + np.exp(-x * x.dtype.type(attr(node, "alpha"))))


@register_op("SwiGLU")
class SwiGLU(Binary):
    """ONNX SwiGLU (opset 28): y = a * sigmoid(alpha * a) * b, for a and b of one shape and
    dtype (the spec applies no broadcasting)."""

    attrs = {"alpha": 1.0}

    def infer(self, node: Node) -> list[TensorType]:
        a, b = node.inputs
        if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
            raise ShapeError(f"A {a.dtype.name}{list(a.shape)} and B {b.dtype.name}"
                             f"{list(b.shape)} must have one shape and dtype (SwiGLU does not "
                             "broadcast)", node=node.name, op=node.op,
                             hint="expand or cast the inputs to match")
        return [TensorType(a.shape, a.dtype)]

    def fn(self, node, a, b):
        with np.errstate(over="ignore"):
            return a / (1 + np.exp(-a * a.dtype.type(attr(node, "alpha")))) * b


@register_op("ThresholdedRelu")
class ThresholdedRelu(Unary):
    """ONNX ThresholdedRelu: y = x if x > alpha else 0."""

    attrs = {"alpha": 1.0}

    def fn(self, node, x):
        return np.where(x > attr(node, "alpha"), x, 0)


@register_op("Gelu", traits={"fusable_epilogue"})
class Gelu(Unary):
    """ONNX Gelu (opset 20): approximate="none": x/2 * (1 + erf(x/sqrt(2)));
    "tanh": x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))."""

    attrs = {"approximate": "none"}

    def check(self, node):
        if attr(node, "approximate") not in ("none", "tanh"):
            raise bad_attr(node, f"approximate must be 'none' or 'tanh', got "
                           f"{attr(node, 'approximate')!r}")

    def fn(self, node, x):
        if attr(node, "approximate") == "tanh":
            c = x.dtype.type(math.sqrt(2 / math.pi))
            return 0.5 * x * (1 + np.tanh(c * (x + x.dtype.type(0.044715) * x ** 3)))
        return 0.5 * x * (1 + erf(x / x.dtype.type(math.sqrt(2))))


def clip_bounds(node: Node) -> tuple[float | int | None, float | int | None]:
    """The (lo, hi) bounds of a Clip node as Python scalars, None for an absent bound.

    Opset < 11: attributes ``min``/``max``; 11+: optional constant inputs 1 and 2.
    Raises ShapeError naming the node when a bound input is not a constant.
    """
    if node.version < 11:
        return node.attrs.get("min"), node.attrs.get("max")
    lo, hi = const_input(node, 1, "min"), const_input(node, 2, "max")
    return (None if lo is None else lo.reshape(-1)[0].item(),
            None if hi is None else hi.reshape(-1)[0].item())


@register_op("Clip", traits={"fusable_epilogue"})
class Clip(Unary):
    """ONNX Clip: y = min(max(x, lo), hi); lo > hi gives hi. Bounds: attributes (opset < 11) or
    optional inputs min, max (11+, runtime values accepted by the reference)."""

    attrs = {"min": None, "max": None}
    max_inputs = 3

    def check(self, node):
        super().check(node)
        for k, what in ((1, "min"), (2, "max")):
            v = node.inputs[k] if len(node.inputs) > k else None
            # one value, as a scalar (the spec) or a 1-element tensor of no higher rank than x
            # (onnxruntime accepts [1]); a [1] bound must not turn a scalar x into a [1] result
            if v is not None and (v.type.size != 1 or len(v.shape) > len(node.inputs[0].shape)):
                raise bad_attr(node, f"{what} must be a scalar, got shape {list(v.shape)}")
            # no defined result: onnxruntime ignores a NaN bound, numpy and onnx's reference
            # give NaN everywhere (and a NaN min/max attribute before opset 11 is refused too)
            if v is not None and v.const is not None and np.asarray(v.const).dtype.kind == "f" \
                    and np.isnan(v.const).any():
                raise AttributeValueError(
                    f"{what} is NaN: Clip with a NaN bound has no defined result",
                    node=node.name, op=node.op,
                    hint=f"omit the bound (an empty input name) or give {what} a number")

    def reference(self, node, x, lo=None, hi=None):
        if node.version < 11:
            lo, hi = node.attrs.get("min"), node.attrs.get("max")
        y = x
        if lo is not None:
            y = np.maximum(y, np.asarray(lo).astype(x.dtype))
        if hi is not None:
            y = np.minimum(y, np.asarray(hi).astype(x.dtype))
        return [np.array(y, dtype=x.dtype)]


# ---- type conversions -----------------------------------------------------------------------
@register_op("Cast", traits={"elementwise"})
class Cast(OpDef):
    """ONNX Cast: y = x converted to ONNX type ``to`` (numpy astype: floats to ints truncate).

    ``saturate`` (opset 19+) only concerns float8 types and ``round_mode`` (opset 24+) only
    float8e8m0, which are unsupported. Raises UnsupportedOpError for string, complex, bfloat16,
    float8 and 4-bit target types.
    """

    attrs = {"to": REQUIRED, "saturate": None, "round_mode": None}

    def check(self, node):
        onnx_dtype(node, attr(node, "to"))

    def infer(self, node):
        return [TensorType(node.inputs[0].shape, onnx_dtype(node, attr(node, "to")))]

    def reference(self, node, x):
        return [x.astype(onnx_dtype(node, attr(node, "to")))]


@register_op("BitCast")
class BitCast(OpDef):
    """ONNX BitCast (opset 26, operator spec "BitCast"): y = the bytes of x read as ONNX type
    ``to``, with no value conversion. x: any shape, any supported dtype; y: x's shape, dtype
    ``to``, which must have x's bit width (the spec: "The target data type must have the same
    bit-width as the input data type"); bytes are little endian.

    Not elementwise: the kernel copies bytes (``codegen.lower.elementwise``), never an alias.
    Raises AttributeValueError naming the node when the widths differ, UnsupportedOpError for a
    ``to`` numpy cannot hold (string, bfloat16, float8, 4-bit types).
    """

    attrs = {"to": REQUIRED}

    def _to(self, node: Node) -> np.dtype:
        to = onnx_dtype(node, attr(node, "to"))
        frm = node.inputs[0].dtype
        if to.itemsize != frm.itemsize:
            raise AttributeValueError(
                f"to={np.dtype(to).name} is {to.itemsize * 8} bits wide but the input is "
                f"{np.dtype(frm).name} ({frm.itemsize * 8} bits): BitCast keeps the bit width",
                node=node.name, op=node.op,
                hint="choose a 'to' type of the input's width, or use Cast to convert values")
        return to

    def check(self, node):
        self._to(node)

    def infer(self, node):
        return [TensorType(node.inputs[0].shape, self._to(node))]

    def reference(self, node, x):
        le = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("<"))
        return [le.view(self._to(node).newbyteorder("<")).astype(self._to(node)).reshape(x.shape)]


@register_op("CastLike", traits={"elementwise"})
class CastLike(OpDef):
    """ONNX CastLike (opset 15): y = x converted to the dtype of ``target_type`` (``saturate``
    and ``round_mode`` only concern float8 types, which are unsupported)."""

    attrs = {"saturate": None, "round_mode": None}
    min_inputs = max_inputs = 2

    def infer(self, node):
        return [TensorType(node.inputs[0].shape, node.inputs[1].dtype)]

    def reference(self, node, x, like):
        return [x.astype(like.dtype)]

