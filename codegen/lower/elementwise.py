"""Elementwise ops as loop IR: one loop nest over the output, one scalar expression per element.

Operands are read through broadcast views (stride 0 on broadcast dims, and everywhere for a
splat constant); dims that every operand walks contiguously are merged, so ``y = x + b`` on equal
shapes is one loop. ``SCALAR`` maps each ONNX op to a function of its loaded scalars and the
node's attributes, with the ONNX semantics (NaN-propagating Max/Min as numpy, ``Mod`` with the
divisor's sign unless ``fmod``, integer division by zero giving 0). The same table serves fused
chains (``onnxcc.FusedElementwise``) and the activation epilogues of fused Conv/Gemm.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from onnxcc.codegen.loops import (BOOL, Binary, Buffer, Cast, Const, Decl, DType, Expr, Select,
                                  Stmt, Store, Unary, Var, const, maximum, minimum)
from onnxcc.ir import Node

from . import LowerCtx, broadcast_view, lower, merged_views, nest

Scalar = Callable[[Sequence[Expr], dict[str, Any]], Expr]


def _c(x: Expr, v: float) -> Expr:
    """A literal ``v`` of ``x``'s dtype."""
    return const(v, x.dtype)


def _unsigned(x: Expr) -> bool:
    return x.dtype.is_int and not x.dtype.signed


def _relu(a, at):
    x = a[0]
    if _unsigned(x):
        return x
    return Select(Binary("lt", x, _c(x, 0)), _c(x, 0), x)


def _sign(a, at):
    x = a[0]
    if _unsigned(x):
        return Select(Binary("gt", x, _c(x, 0)), _c(x, 1), _c(x, 0))
    return Select(Binary("gt", x, _c(x, 0)), _c(x, 1),
                  Select(Binary("lt", x, _c(x, 0)), _c(x, -1), x if x.dtype.is_float else _c(x, 0)))


def _mod(a, at):
    x, y = a
    r = Binary("mod", x, y)
    if at.get("fmod", 0) or _unsigned(x):
        return r
    # Python-style modulo: the result takes the divisor's sign.
    fix = Binary("and", Binary("ne", r, _c(r, 0)),
                 Binary("ne", Binary("lt", r, _c(r, 0)), Binary("lt", y, _c(y, 0))))
    return Select(fix, Binary("add", r, y), r)


def _pow(a, at):
    x, y = a
    if x.dtype.is_float:
        return Binary("pow", x, y if y.dtype == x.dtype else Cast(y, x.dtype))
    f = DType("float64")
    return Cast(Binary("pow", Cast(x, f), Cast(y, f)), x.dtype)


def _gelu(a, at):
    x = a[0]
    if at.get("approximate", "none") == "tanh":
        inner = _c(x, np.sqrt(2.0 / np.pi)) * (x + _c(x, 0.044715) * x * x * x)
        return _c(x, 0.5) * x * (_c(x, 1) + Unary("tanh", inner))
    return _c(x, 0.5) * x * (_c(x, 1) + Unary("erf", x * _c(x, 1 / np.sqrt(2.0))))


def _hard_sigmoid(x: Expr, alpha: float, beta: float) -> Expr:
    return minimum(maximum(_c(x, alpha) * x + _c(x, beta), _c(x, 0)), _c(x, 1))


def _unary(fn: str) -> Scalar:
    return lambda a, at: Unary(fn, a[0])


def _binary(op: str) -> Scalar:
    return lambda a, at: Binary(op, a[0], a[1])


def _cmp(op: str) -> Scalar:
    return lambda a, at: Binary(op, a[0], a[1])


def _div(a, at):
    return Binary("div", a[0], a[1])


def _isinf(a, at):
    x = a[0]
    pos, neg = at.get("detect_positive", 1), at.get("detect_negative", 1)
    inf = _c(x, np.inf)
    terms = ([Binary("eq", x, inf)] if pos else []) + ([Binary("eq", x, -inf)] if neg else [])
    if not terms:
        return Const(False, BOOL)
    return terms[0] if len(terms) == 1 else Binary("or", terms[0], terms[1])


SCALAR: dict[str, Scalar] = {
    "Identity": lambda a, at: a[0],
    "Relu": _relu,
    "LeakyRelu": lambda a, at: Select(Binary("lt", a[0], _c(a[0], 0)), a[0] * _c(a[0], at["alpha"]), a[0]),
    "PRelu": lambda a, at: Select(Binary("lt", a[0], _c(a[0], 0)), a[0] * a[1], a[0]),
    "Sigmoid": lambda a, at: _c(a[0], 1) / (_c(a[0], 1) + Unary("exp", -a[0])),
    "HardSigmoid": lambda a, at: _hard_sigmoid(a[0], at["alpha"], at["beta"]),
    "HardSwish": lambda a, at: a[0] * _hard_sigmoid(a[0], 1 / 6, 0.5),
    "Tanh": _unary("tanh"),
    "Elu": lambda a, at: Select(Binary("lt", a[0], _c(a[0], 0)),
                                _c(a[0], at["alpha"]) * (Unary("exp", a[0]) - _c(a[0], 1)), a[0]),
    "Selu": lambda a, at: _c(a[0], at["gamma"]) * Select(
        Binary("le", a[0], _c(a[0], 0)),
        _c(a[0], at["alpha"]) * Unary("exp", a[0]) - _c(a[0], at["alpha"]), a[0]),
    # max(0, x) + min(0, alpha * (exp(x / alpha) - 1)) as a select, so a NaN stays NaN (fmax
    # and fmin would drop it)
    "Celu": lambda a, at: Select(Binary("ge", a[0], _c(a[0], 0)), a[0], _c(a[0], at["alpha"]) * (
        Unary("exp", a[0] / _c(a[0], at["alpha"])) - _c(a[0], 1))),
    "ThresholdedRelu": lambda a, at: Select(Binary("gt", a[0], _c(a[0], at["alpha"])), a[0], _c(a[0], 0)),
    # log(1 + exp(x)) as x + log1p(exp(-x)) for x > 0: exp(x) overflows to inf from x = 89
    # (float32) where the result is still x; a NaN takes the other arm and stays NaN
    "Softplus": lambda a, at: Select(Binary("gt", a[0], _c(a[0], 0)),
                                     a[0] + Unary("log1p", Unary("exp", -a[0])),
                                     Unary("log1p", Unary("exp", a[0]))),
    "Softsign": lambda a, at: a[0] / (_c(a[0], 1) + Unary("abs", a[0])),
    "Swish": lambda a, at: a[0] / (_c(a[0], 1) + Unary("exp", -(a[0] * _c(a[0], at["alpha"])))),
    "SwiGLU": lambda a, at: a[0] / (_c(a[0], 1) + Unary("exp", -(a[0] * _c(a[0], at["alpha"]))))
    * a[1],
    "Mish": lambda a, at: a[0] * Unary("tanh", Unary("log1p", Unary("exp", a[0]))),
    "Gelu": _gelu,
    "Erf": _unary("erf"), "Exp": _unary("exp"), "Log": _unary("log"), "Sqrt": _unary("sqrt"),
    "Floor": _unary("floor"), "Ceil": _unary("ceil"), "Round": _unary("round"),
    "Sin": _unary("sin"), "Cos": _unary("cos"), "Tan": _unary("tan"), "Asin": _unary("asin"),
    "Acos": _unary("acos"), "Atan": _unary("atan"), "Sinh": _unary("sinh"),
    "Cosh": _unary("cosh"), "Asinh": _unary("asinh"), "Acosh": _unary("acosh"),
    "Atanh": _unary("atanh"),
    "Reciprocal": lambda a, at: _c(a[0], 1) / a[0],
    "Neg": _unary("neg"), "Abs": lambda a, at: a[0] if _unsigned(a[0]) else Unary("abs", a[0]), "Sign": _sign,
    "Add": _binary("add"), "Sub": _binary("sub"), "Mul": _binary("mul"), "Div": _div,
    "Pow": _pow, "Mod": _mod, "Max": _binary("max"), "Min": _binary("min"),
    "Equal": _cmp("eq"), "Less": _cmp("lt"), "Greater": _cmp("gt"),
    "LessOrEqual": _cmp("le"), "GreaterOrEqual": _cmp("ge"),
    "Not": lambda a, at: Unary("not", a[0]),
    "And": _binary("and"), "Or": _binary("or"),
    "Xor": lambda a, at: Binary("ne", a[0], a[1]),
    "Where": lambda a, at: Select(a[0], a[1], a[2]),
    "IsNaN": lambda a, at: Unary("isnan", a[0]),
    "IsInf": _isinf,
}
VARIADIC = {"Sum": "Add", "Max": "Max", "Min": "Min", "Mean": "Add"}
NEEDS_ATTRS = {"Clip", "Cast", "CastLike"}
FLOAT_ONLY = {"Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Erf", "Softplus", "Gelu", "Elu", "Selu",
              "HardSigmoid", "HardSwish", "Sin", "Cos", "Tan", "Reciprocal", "Asin", "Acos",
              "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Mish", "Softsign", "Celu",
              "Floor", "Ceil", "Round", "IsNaN", "IsInf", "Swish", "SwiGLU"}


def scalar_expr(op: str, attrs: dict[str, Any], args: Sequence[Expr], out: DType,
                node: Node) -> Expr:
    """The loop-IR expression of one output element of ``op`` from scalar ``args`` (``out`` is
    the result dtype, for Cast)."""
    if op in VARIADIC:
        e = args[0]
        for a in args[1:]:
            e = SCALAR[VARIADIC[op]]([e, a], attrs)
        if op == "Mean":
            e = e / const(len(args), e.dtype)
        return e
    if op == "Clip":
        e = args[0]
        for bound, pick in zip(_clip_limits(node, args), (maximum, minimum)):
            if bound is not None:
                e = pick(e, bound)
        return e
    if op in ("Cast", "CastLike"):
        return args[0] if args[0].dtype == out else Cast(args[0], out)
    return SCALAR[op](list(args), attrs)


def _clip_runtime_bounds(node: Node) -> list[int]:
    """Positions of Clip's bound inputs (opset 11+) known only at run time: the kernel loads
    them (a scalar, broadcast) after x."""
    if node.version < 11:
        return []
    return [k for k in (1, 2) if len(node.inputs) > k and node.inputs[k] is not None
            and node.inputs[k].const is None]


def _clip_limits(node: Node, args: Sequence[Expr]) -> list[Expr | None]:
    """Clip's (lo, hi) as expressions: constants (attributes before opset 11, constant inputs
    after; a NaN bound is left out), or the loaded runtime bounds ``args[1:]``; None when
    absent."""
    from onnxcc.ops.elementwise import clip_bounds

    dt = args[0].dtype
    runtime = _clip_runtime_bounds(node)
    if not runtime:
        return [None if b is None or (isinstance(b, float) and np.isnan(b)) else const(b, dt)
                for b in clip_bounds(node)]
    loaded = dict(zip(runtime, args[1:]))
    out: list[Expr | None] = []
    for k in (1, 2):
        v = node.inputs[k] if len(node.inputs) > k else None
        if k in loaded:
            out.append(loaded[k])
        elif v is None or np.isnan(np.asarray(v.const, np.float64)).any():
            out.append(None)
        else:
            out.append(const(np.asarray(v.const).reshape(-1)[0].item(), dt))
    return out


def _supports(node: Node) -> str | None:
    if node.op in ("Cast", "CastLike"):
        return None
    dt = node.inputs[0].dtype if node.inputs and node.inputs[0] is not None else None
    if dt is not None and dt.kind == "f" and node.op in ("Not", "And", "Or", "Xor"):
        return "logical ops take bool inputs"
    if dt is not None and dt.kind in "iub" and node.op in FLOAT_ONLY:
        return f"integer {node.op} is not supported"
    return None


def elementwise_kernel(ctx: LowerCtx, inputs: Sequence[int],
                       fn: Callable[[list[Expr]], Expr | tuple[list[Stmt], Expr]]):
    """A kernel over the node's output 0 whose element is ``fn(loaded inputs)`` (an Expr, or
    ``(statements, Expr)`` when it binds locals first); ``inputs`` are the node's input
    positions read (broadcast to the output)."""
    node = ctx.node
    y = ctx.output(0)
    xs = [broadcast_view(ctx.input(k), y.shape) for k in inputs]
    views = merged_views([y] + xs)
    yv, xvs = views[0], views[1:]
    out_b = ctx.storage.get(node.outputs[0].name)
    inplace = any(out_b is not None and ctx.storage.get(node.inputs[k].name) == out_b
                  for k in inputs)

    def body(i: list[Var]) -> list[Stmt]:
        idx = tuple(i)
        loads: list[Stmt] = []
        vals: list[Expr] = []
        for k, xv in enumerate(xvs):
            t = Var(f"a{k}", xv.dtype)
            loads.append(Decl(t, xv[idx]))
            vals.append(t)
        res = fn(vals)
        pre, e = res if isinstance(res, tuple) else ([], res)
        return loads + pre + [Store(yv, idx, e)]

    return ctx.kernel(node.op.split(".")[-1].lower(), [yv], xvs, nest(ctx, yv.shape, body),
                      inplace=inplace)


@lower(*SCALAR, *VARIADIC, *NEEDS_ATTRS, supports=_supports)
def _lower_elementwise(node: Node, ctx: LowerCtx):
    present = [k for k, v in enumerate(node.inputs) if v is not None]
    if node.op in ("Clip", "CastLike"):   # Clip's constant bounds are literals in the code
        present = present[:1] + (_clip_runtime_bounds(node) if node.op == "Clip" else [])
    out = DType.of(node.outputs[0].dtype)
    return elementwise_kernel(ctx, present,
                              lambda vals: scalar_expr(node.op, node.attrs, vals, out, node))


_BOOL_OPS = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or",
             "Xor", "IsNaN", "IsInf"}


@lower("onnxcc.FusedElementwise")
def _lower_fused(node: Node, ctx: LowerCtx):
    """A chain of elementwise steps in one loop: one local per step. ``attrs["body"]`` lists
    ``(op, attrs, args)`` with ``args[k] >= 0`` an input position, ``< 0`` step ``-a - 1``."""
    import onnx

    steps = node.attrs["body"]
    final = DType.of(node.outputs[0].dtype)

    def fn(vals: list[Expr]) -> tuple[list[Stmt], Expr]:
        temps: list[Expr] = []
        decls: list[Stmt] = []
        for s, (op, attrs_t, args) in enumerate(steps):
            attrs = dict(attrs_t)
            a = [vals[k] if k >= 0 else temps[-k - 1] for k in args]
            if s == len(steps) - 1:
                out = final
            elif op in _BOOL_OPS:
                out = BOOL
            elif op == "Cast":
                out = DType.of(onnx.helper.tensor_dtype_to_np_dtype(attrs["to"]))
            elif op == "CastLike":   # the dtype of its second input
                out = a[1].dtype
            else:
                out = a[1].dtype if op == "Where" else a[0].dtype
            sub = Node(op, [node.inputs[k] if k >= 0 else None for k in args], [node.outputs[0]],
                       attrs, node.name, node.version)
            if op in ("Clip", "CastLike"):
                a = a[:1]
            e = scalar_expr(op, attrs, a, out, sub)
            if s < len(steps) - 1:
                t = Var(f"t{s}", e.dtype)
                decls.append(Decl(t, e))
                e = t
            temps.append(e)
        return decls, temps[-1]

    return elementwise_kernel(ctx, list(range(len(node.inputs))), fn)


def _supports_view(node: Node) -> str | None:
    if node.op == "Dropout" and len(node.inputs) > 2 and node.inputs[2] is not None:
        ratio, training = node.inputs[1], node.inputs[2]
        if training.const is None or (bool(training.const.reshape(-1)[0])
                                      and (ratio is None or ratio.const is None)):
            return (f"training_mode (and ratio) known only at run time: onnxcc compiles inference "
                    f"graphs; bind them with constant_inputs={{{training.name!r}: False}} "
                    f"(CLI: --constant-input {training.name}=0)")
    return None


@lower("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Dropout", "Identity", supports=_supports_view)
def _lower_view(node: Node, ctx: LowerCtx):
    """A view op: no code when the plan aliased output and input, else a copy in row-major
    order. Dropout's optional mask output (inference: all true) is filled in the same loop."""
    x, y = node.inputs[0], node.outputs[0]
    mask = node.outputs[1] if len(node.outputs) > 1 else None
    if ctx.same_storage(x, y) and mask is None:
        return None
    src = ctx.input(0)
    yb = ctx.output(0)
    # Read x in y's shape: same element order (row-major), or a splat read at stride 0.
    xv = Buffer(src.name, src.dtype, yb.shape, (0,) * len(yb.shape) if all(
        s == 0 for s in src.strides) else None, src.space, src.offset, src.index, src.data,
        src.value)
    bufs = [yb, xv] + ([ctx.output(1)] if mask is not None else [])
    views = merged_views(bufs)

    def body(i: list[Var]) -> list[Stmt]:
        idx = tuple(i)
        out: list[Stmt] = [Store(views[0], idx, views[1][idx])]
        if mask is not None:
            out.append(Store(views[2], idx, Const(True, BOOL)))
        return out

    outs = [views[0]] + ([views[2]] if mask is not None else [])
    return ctx.kernel("copy", outs, [views[1]], nest(ctx, views[0].shape, body),
                      inplace=ctx.same_storage(x, y))


def _byte_view(b: Buffer) -> Buffer:
    """``b`` (any shape, strides and space) as its bytes: a uint8 buffer of shape
    ``b.shape + (itemsize,)`` with byte strides, at the same place. A weight's data is
    reinterpreted as its little-endian bytes (a splat keeps its stride-0 dims)."""
    n = b.dtype.np.itemsize
    data = None
    if b.data is not None:
        le = b.data.dtype.newbyteorder("<")
        data = np.ascontiguousarray(b.data, le).reshape(-1).view(np.uint8)
    return Buffer(b.name, DType("uint8"), b.shape + (n,), tuple(s * n for s in b.strides) + (1,),
                  b.space, b.offset, b.index, data, b.value)


@lower("BitCast")
def _lower_bitcast(node: Node, ctx: LowerCtx):
    """BitCast (``onnxcc.ops.elementwise.BitCast``) as a byte copy: output and input both read
    through uint8 views of their storage (``_byte_view``), y_bytes[i, b] = x_bytes[i, b], so no
    back end reads one type's memory through another type's pointer (C's strict aliasing: only
    character types may) and LLVM sees plain i8 loads and stores. Little-endian targets only,
    as every onnxcc target is."""
    views = merged_views([_byte_view(ctx.output(0)), _byte_view(ctx.input(0))])

    def body(i: list[Var]) -> list[Stmt]:
        return [Store(views[0], tuple(i), views[1][tuple(i)])]

    return ctx.kernel("bitcast", [views[0]], [views[1]], nest(ctx, views[0].shape, body))
