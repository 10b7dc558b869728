"""C lowering of elementwise ops: one loop nest over the output, a scalar expression per element.

Operands are read through broadcast strides (0 on broadcast dims and for splat constants);
adjacent dims that every operand walks contiguously are merged, so a plain ``y = x + b`` on
equal shapes is one loop. View ops (Reshape, Flatten, ...) lower to a copy when the memory plan
could not alias their output onto their input.
"""

from __future__ import annotations

import re

from typing import Any, Callable, Sequence

import numpy as np

from onnxcc.ir import Node
from . import (KernelDesc, LowerCtx, Operand, broadcast_strides, c_literal, ctype, index_expr,
               lower, merge_dims)

ScalarFn = Callable[[Sequence[str], dict[str, Any], str], str]


def _f(ct: str, name: str) -> str:
    """The libm function ``name`` for element type ``ct`` (expf for float, exp for double)."""
    return name + "f" if ct == "float" else name


def _lit(ct: str, v: float) -> str:
    return c_literal(v, ct)


def _relu(a, at, ct):
    return f"({a[0]} < {_lit(ct, 0)} ? {_lit(ct, 0)} : {a[0]})"


def _max(a, at, ct):   # NaN-propagating like numpy.maximum
    x, y = a
    return f"(({x} != {x} || {x} > {y}) ? {x} : {y})"


def _min(a, at, ct):
    x, y = a
    return f"(({x} != {x} || {x} < {y}) ? {x} : {y})"


def _mod(a, at, ct):
    x, y = a
    if ct in ("float", "double"):
        if at.get("fmod", 0):
            return f"{_f(ct, 'fmod')}({x}, {y})"
        r = f"{_f(ct, 'fmod')}({x}, {y})"
        return f"(({r} != 0 && (({r} < 0) != ({y} < 0))) ? {r} + {y} : {r})"
    if at.get("fmod", 0):
        return f"({y} == 0 ? 0 : {x} % {y})"
    return f"({y} == 0 ? 0 : ((({x} % {y}) != 0 && ((({x} % {y}) < 0) != ({y} < 0))) ? ({x} % {y}) + {y} : ({x} % {y})))"


def _div(a, at, ct):
    x, y = a
    if ct in ("float", "double"):
        return f"({x} / {y})"
    return f"({y} == 0 ? 0 : {x} / {y})"  # ONNX leaves integer division by zero undefined


def _sign(a, at, ct):
    x = a[0]
    return f"(({x} > 0) - ({x} < 0))" if ct not in ("float", "double") else \
        f"({x} > 0 ? {_lit(ct, 1)} : ({x} < 0 ? {_lit(ct, -1)} : {x}))"


def _abs(a, at, ct):
    x = a[0]
    return f"{_f(ct, 'fabs')}({x})" if ct in ("float", "double") else f"({x} < 0 ? -{x} : {x})"


def _pow(a, at, ct):
    x, y = a
    if ct in ("float", "double"):
        return f"{_f(ct, 'pow')}({x}, ({ct}){y})"
    return f"({ct})pow((double){x}, (double){y})"


def _gelu(a, at, ct):
    x = a[0]
    if at.get("approximate", "none") == "tanh":
        k = _lit(ct, np.sqrt(2.0 / np.pi))
        return (f"({_lit(ct, 0.5)} * {x} * ({_lit(ct, 1)} + {_f(ct, 'tanh')}({k} * ({x} + "
                f"{_lit(ct, 0.044715)} * {x} * {x} * {x}))))")
    return f"({_lit(ct, 0.5)} * {x} * ({_lit(ct, 1)} + {_f(ct, 'erf')}({x} * {_lit(ct, 1 / np.sqrt(2.0))})))"


def _unary_libm(name: str) -> ScalarFn:
    return lambda a, at, ct: f"{_f(ct, name)}({a[0]})"


def _binop(sym: str) -> ScalarFn:
    return lambda a, at, ct: f"({a[0]} {sym} {a[1]})"


def _cmp(sym: str) -> ScalarFn:
    return lambda a, at, ct: f"(uint8_t)({a[0]} {sym} {a[1]})"


SCALAR: dict[str, ScalarFn] = {
    "Identity": lambda a, at, ct: a[0],
    "Relu": _relu,
    "LeakyRelu": lambda a, at, ct: f"({a[0]} < {_lit(ct, 0)} ? {a[0]} * {_lit(ct, at['alpha'])} : {a[0]})",
    "PRelu": lambda a, at, ct: f"({a[0]} < {_lit(ct, 0)} ? {a[0]} * {a[1]} : {a[0]})",
    "Sigmoid": lambda a, at, ct: f"({_lit(ct, 1)} / ({_lit(ct, 1)} + {_f(ct, 'exp')}(-{a[0]})))",
    "HardSigmoid": lambda a, at, ct: _min([_max([f"({_lit(ct, at['alpha'])} * {a[0]} + {_lit(ct, at['beta'])})", _lit(ct, 0)], at, ct), _lit(ct, 1)], at, ct),
    "HardSwish": lambda a, at, ct: f"({a[0]} * " + _min([_max([f"({a[0]} * {_lit(ct, 1 / 6)} + {_lit(ct, 0.5)})", _lit(ct, 0)], at, ct), _lit(ct, 1)], at, ct) + ")",
    "Tanh": _unary_libm("tanh"),
    "Elu": lambda a, at, ct: f"({a[0]} < {_lit(ct, 0)} ? {_lit(ct, at['alpha'])} * ({_f(ct, 'exp')}({a[0]}) - {_lit(ct, 1)}) : {a[0]})",
    "Selu": lambda a, at, ct: f"({_lit(ct, at['gamma'])} * ({a[0]} <= {_lit(ct, 0)} ? {_lit(ct, at['alpha'])} * {_f(ct, 'exp')}({a[0]}) - {_lit(ct, at['alpha'])} : {a[0]}))",
    # max(0, x) + min(0, ...) as a select: fmax/fmin would turn a NaN into 0
    "Celu": lambda a, at, ct: f"({a[0]} >= {_lit(ct, 0)} ? {a[0]} : {_lit(ct, at['alpha'])} * ({_f(ct, 'exp')}({a[0]} / {_lit(ct, at['alpha'])}) - {_lit(ct, 1)}))",
    "ThresholdedRelu": lambda a, at, ct: f"({a[0]} > {_lit(ct, at['alpha'])} ? {a[0]} : {_lit(ct, 0)})",
    "Softplus": lambda a, at, ct: f"{_f(ct, 'log')}({_f(ct, 'exp')}({a[0]}) + {_lit(ct, 1)})",
    "Softsign": lambda a, at, ct: f"({a[0]} / ({_lit(ct, 1)} + {_f(ct, 'fabs')}({a[0]})))",
    "Mish": lambda a, at, ct: f"({a[0]} * {_f(ct, 'tanh')}({_f(ct, 'log1p')}({_f(ct, 'exp')}({a[0]}))))",
    "Gelu": _gelu,
    "Erf": _unary_libm("erf"), "Exp": _unary_libm("exp"), "Log": _unary_libm("log"),
    "Sqrt": _unary_libm("sqrt"), "Floor": _unary_libm("floor"), "Ceil": _unary_libm("ceil"),
    "Round": _unary_libm("rint"), "Sin": _unary_libm("sin"), "Cos": _unary_libm("cos"),
    "Tan": _unary_libm("tan"), "Asin": _unary_libm("asin"), "Acos": _unary_libm("acos"),
    "Atan": _unary_libm("atan"), "Sinh": _unary_libm("sinh"), "Cosh": _unary_libm("cosh"),
    "Asinh": _unary_libm("asinh"), "Acosh": _unary_libm("acosh"), "Atanh": _unary_libm("atanh"),
    "Reciprocal": lambda a, at, ct: f"({_lit(ct, 1)} / {a[0]})",
    "Neg": lambda a, at, ct: f"(-{a[0]})",
    "Abs": _abs, "Sign": _sign,
    "Add": _binop("+"), "Sub": _binop("-"), "Mul": _binop("*"), "Div": _div, "Pow": _pow,
    "Mod": _mod, "Max": _max, "Min": _min,
    "Equal": _cmp("=="), "Less": _cmp("<"), "Greater": _cmp(">"), "LessOrEqual": _cmp("<="),
    "GreaterOrEqual": _cmp(">="),
    "Not": lambda a, at, ct: f"(uint8_t)!{a[0]}",
    "And": lambda a, at, ct: f"(uint8_t)({a[0]} && {a[1]})",
    "Or": lambda a, at, ct: f"(uint8_t)({a[0]} || {a[1]})",
    "Xor": lambda a, at, ct: f"(uint8_t)(!{a[0]} != !{a[1]})",
    "Where": lambda a, at, ct: f"({a[0]} ? {a[1]} : {a[2]})",
    "IsNaN": lambda a, at, ct: f"(uint8_t)({a[0]} != {a[0]})",
    "IsInf": lambda a, at, ct: "(uint8_t)(" + " || ".join(
        ([f"{a[0]} == INFINITY"] if at.get("detect_positive", 1) else [])
        + ([f"{a[0]} == -INFINITY"] if at.get("detect_negative", 1) else []) or ["0"]) + ")",
}
VARIADIC = {"Sum": "Add", "Max": "Max", "Min": "Min", "Mean": "Add"}
NEEDS_ATTRS = {"Clip", "Cast", "CastLike"}


def scalar_statement(op: str, attrs: dict[str, Any], args: Sequence[str], arg_cts: Sequence[str],
                     out_ct: str, node: Node) -> str:
    """The C expression computing one output element of ``op`` from scalar ``args``."""
    ct = arg_cts[0] if arg_cts else out_ct
    if op in VARIADIC:
        expr = args[0]
        for a in args[1:]:
            expr = SCALAR[VARIADIC[op]]([expr, a], attrs, ct)
        if op == "Mean":
            expr = f"({expr} / {_lit(ct, len(args))})"
        return expr
    if op == "Clip":
        from onnxcc.ops.elementwise import clip_bounds

        lo, hi = clip_bounds(node)
        expr = args[0]
        if lo is not None:
            expr = _max([expr, _lit(ct, lo)], attrs, ct) if not np.isnan(lo) else expr
        if hi is not None:
            expr = _min([expr, _lit(ct, hi)], attrs, ct) if not np.isnan(hi) else expr
        return expr
    if op in ("Cast", "CastLike"):
        if out_ct == "uint8_t" and node.outputs[0].dtype == np.bool_:
            return f"(uint8_t)({args[0]} != 0)"
        return f"({out_ct})({args[0]})"
    if op == "Where":
        ct = arg_cts[1]
    return SCALAR[op](list(args), attrs, ct)


def elementwise_desc(ctx: LowerCtx, lines_fn: Callable[[list[str]], tuple[list[str], str]],
                     inputs: Sequence[Operand | None] | None = None, inplace: bool = False
                     ) -> KernelDesc:
    """A KernelDesc for a loop nest over the node's output; ``lines_fn(loaded)`` maps the
    names of the loaded scalars to (statements, result expression)."""
    out = ctx.outs()[0]
    ins = [i for i in (ctx.ins() if inputs is None else inputs)]
    present = [i for i in ins if i is not None]
    bstrides = [broadcast_strides(i.shape, i.strides, out.shape) for i in present]
    shp, sts = merge_dims(out.shape, [out.strides] + bstrides)
    loops = [(f"i{k}", n) for k, n in enumerate(shp)]
    ivars = [v for v, _ in loops]
    loads, names = [], []
    for k, (op_, st) in enumerate(zip(present, sts[1:])):
        loads.append(f"const {op_.ctype} a{k} = {op_.ptr}[{index_expr(ivars, st)}];")
        names.append(f"a{k}")
    body, result = lines_fn(names)
    store = f"{out.ptr}[{index_expr(ivars, sts[0])}] = {result};"
    # A scalar the expression never reads (a fused Clip's bound folded to a literal) is not
    # loaded: an unread load is dead code and fails -Werror=unused-variable.
    used = "\n".join(body + [store])
    unread = {id(op_) for op_, n in zip(present, names) if not re.search(rf"\b{n}\b", used)}
    loads = [ld for ld, op_ in zip(loads, present) if id(op_) not in unread]
    ins = [None if i is not None and id(i) in unread else i for i in ins]
    return ctx.desc("elementwise", "loop_nest", inputs=tuple(ins), inplace=inplace,
                    loops=tuple(loops), lines=tuple(loads + body + [store]),
                    shape=tuple(out.shape))


def _supports_elementwise(node: Node) -> str | None:
    if node.op in ("Cast", "CastLike"):
        return None
    dt = node.inputs[0].dtype if node.inputs and node.inputs[0] is not None else None
    if dt is not None and dt.kind == "f" and node.op in ("Not", "And", "Or", "Xor"):
        return "logical ops take bool inputs"
    if dt is not None and dt.kind in "iu" and node.op in {
            "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Erf", "Softplus", "Gelu", "Elu", "Selu",
            "HardSigmoid", "HardSwish", "Sin", "Cos", "Tan", "Reciprocal"}:
        return f"integer {node.op} is not supported by the C target"
    return None


def _lower_elementwise(node: Node, ctx: LowerCtx) -> KernelDesc:
    present = [v for v in node.inputs if v is not None]
    cts = [ctype(v.dtype) for v in present]
    out_ct = ctype(node.outputs[0].dtype)

    def lines(names: list[str]) -> tuple[list[str], str]:
        args = names
        if node.op == "Clip" or node.op == "CastLike":
            args = names[:1]
        return [], scalar_statement(node.op, node.attrs, args, cts, out_ct, node)

    inputs = ctx.ins()
    if node.op in ("Clip", "CastLike"):
        inputs = inputs[:1]
    out_b = ctx.storage.get(node.outputs[0].name)
    inplace = any(v is not None and out_b is not None and ctx.storage.get(v.name) == out_b
                  for v in node.inputs)
    return elementwise_desc(ctx, lines, inputs, inplace)


lower(*SCALAR, *VARIADIC, *NEEDS_ATTRS, supports=_supports_elementwise)(_lower_elementwise)


def _supports_view(node: Node) -> str | None:
    if node.op == "Dropout" and len(node.inputs) > 2 and node.inputs[2] is not None:
        ratio, training = node.inputs[1], node.inputs[2]
        if training.const is None or (bool(training.const.reshape(-1)[0])
                                      and (ratio is None or ratio.const is None)):
            return "training_mode with a ratio known only at run time: inference graphs only"
    return None


@lower("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Dropout", "Identity", supports=_supports_view)
def _lower_view(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """A view op: nothing to do when the plan aliased it, else a strided copy. Dropout's
    optional mask output (inference: all true) is filled in the same loop."""
    x, y = node.inputs[0], node.outputs[0]
    mask = node.outputs[1] if len(node.outputs) > 1 else None
    aliased = ctx.same_storage(x, y)
    if aliased and mask is None:
        return None
    xs = ctx.strides(x)
    src = Operand("x0", ctype(x.dtype), y.shape,
                  (0,) * len(y.shape) if all(s == 0 for s in xs) else ctx.strides(y))
    if mask is None:
        return elementwise_desc(ctx, lambda n: ([], n[0]), (src,))
    outs = ctx.outs()

    def lines(names: list[str]) -> tuple[list[str], str]:
        # y1 has y0's shape and contiguous strides, so y0's index expression serves both.
        return [], names[0]

    d = elementwise_desc(ctx, lines, (src,), inplace=aliased)
    p = dict(d.params)
    store = p["lines"][-1]
    p["lines"] = p["lines"] + (store.replace(f"{outs[0].ptr}[", f"{outs[1].ptr}[", 1)
                               .split(" = ")[0] + " = 1;",)
    return KernelDesc(d.family, d.macro, d.op, d.node, d.outputs, d.inputs,
                      tuple(sorted(p.items())), d.inplace, d.scratch_bytes)


@lower("onnxcc.FusedElementwise")
def _lower_fused(node: Node, ctx: LowerCtx) -> KernelDesc:
    """A chain of elementwise steps in one loop: one temporary per step."""
    steps = node.attrs["body"]
    in_cts = [ctype(v.dtype) for v in node.inputs]
    out_ct = ctype(node.outputs[0].dtype)
    in_ops = ctx.ins()
    # Which loaded scalar belongs to input k (inputs are all present for fused nodes).
    step_ct: list[str] = []

    def lines(names: list[str]) -> tuple[list[str], str]:
        body = []
        for s, (op, attrs_t, args) in enumerate(steps):
            vals = [names[a] if a >= 0 else f"t{-a - 1}" for a in args]
            cts = [in_cts[a] if a >= 0 else step_ct[-a - 1] for a in args]
            attrs = dict(attrs_t)
            sub = _sub_node(op, attrs, node, args)
            res_ct = _result_ct(op, cts, out_ct if s == len(steps) - 1 else None, attrs)
            step_ct.append(res_ct)
            expr = scalar_statement(op, attrs, vals, cts, res_ct, sub)
            body.append(f"const {res_ct} t{s} = {expr};")
        return body, f"t{len(steps) - 1}"

    out_b = ctx.storage.get(node.outputs[0].name)
    inplace = any(out_b is not None and ctx.storage.get(v.name) == out_b for v in node.inputs)
    return elementwise_desc(ctx, lines, in_ops, inplace)


_BOOL_OPS = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or",
             "Xor", "IsNaN", "IsInf"}


def _result_ct(op: str, cts: list[str], final: str | None, attrs: dict[str, Any]) -> str:
    if final is not None:
        return final
    if op in _BOOL_OPS:
        return "uint8_t"
    if op in ("Cast",):
        return ctype(np.dtype(__import__("onnx").helper.tensor_dtype_to_np_dtype(attrs["to"])))
    if op == "Where":
        return cts[1]
    return cts[0]


def _sub_node(op: str, attrs: dict[str, Any], node: Node, args: tuple[int, ...]) -> Node:
    """A stand-in Node for a fused step (Clip reads its bounds from constant inputs)."""
    ins = [node.inputs[a] if a >= 0 else None for a in args]
    return Node(op, ins, [node.outputs[0]], attrs, node.name, node.version)


def elementwise_ops() -> list[str]:
    """Ops this module lowers as a scalar expression (for FusedElementwise legality)."""
    return sorted(set(SCALAR) | set(VARIADIC) | NEEDS_ATTRS)
