"""C lowering of normalizations (inference form) and the softmax family: BatchNormalization,
InstanceNormalization, LayerNormalization, LRN, Softmax and LogSoftmax.

Each kernel is a loop nest over the independent positions (``outer``) holding a few
``sections``: passes over the normalized axes (a mean, a variance, the write), each a loop nest of
its own. Axes come from the op declarations (``softmax_axes``, LayerNormalization's ``axis``);
adjacent axes are merged when every operand walks them contiguously, so a contiguous tensor gets
one loop per group. Parameters (scale, bias, mean, var) are read through their strides: splat or
broadcast parameters are never expanded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from onnxcc.ir import Node
from onnxcc.ops.norm import softmax_axes

from . import KernelDesc, LowerCtx, Operand, broadcast_strides, c_literal, ctype, lower
from . import merge_dims
from .nn import Aff, Nest, dot, float_only, for_loop, libm, shape_text

Loops = list[tuple[str, tuple[str, ...]]]
Section = tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...], tuple[str, ...],
                tuple[str, ...]]


def _group(nest_vars: str, shape: Sequence[int], strides: Sequence[Sequence[int]]
           ) -> tuple[list[str], list[int], list[list[int]]]:
    """Merge the axes of one group; returns (loop vars, extents, per-operand strides)."""
    shp, sts = merge_dims(shape, strides)
    return [f"{nest_vars}{k}" for k in range(len(shp))], shp, sts


def _loops(nest: Nest, vars_: Sequence[str], extents: Sequence[int]) -> tuple:
    return tuple(t for v, n in zip(vars_, extents) for t in nest.loop(v, n))


def _at(op: Operand, vars_: Sequence[str], strides: Sequence[int], nest: Nest) -> str:
    return f"{op.ptr}[{nest.c(dot([Aff.of(v) for v in vars_], strides))}]"


def _desc(ctx: LowerCtx, comment: str, outer: tuple, sections: Sequence[Section]) -> KernelDesc:
    return ctx.desc("norm", "sections", comment=comment, outer=outer, sections=tuple(sections))


def _supports_norm(node: Node) -> str | None:
    why = float_only(node)
    if why:
        return why
    x = node.inputs[0]
    if any(v is not None and v.dtype != x.dtype for v in node.inputs[1:]):
        return f"{node.op} with parameters of another dtype than x is not supported"
    if node.op == "BatchNormalization":
        if len(x.shape) < 2:
            return "BatchNormalization needs an (N, C, ...) input"
        if any(v.shape != (x.shape[1],) for v in node.inputs[1:]):
            return "BatchNormalization with per-position parameters (spatial=0) is not supported"
    if node.op == "InstanceNormalization" and len(x.shape) < 3:
        return "InstanceNormalization needs an (N, C, spatial...) input"
    return None


# ---- BatchNormalization / InstanceNormalization ----------------------------------------------
def _per_channel(node: Node, ctx: LowerCtx) -> tuple:
    """(x, y, nest, outer loops over n and c, spatial vars, x and y spatial strides)."""
    x = node.inputs[0]
    X, Y = ctx.ins()[0], ctx.outs()[0]
    assert X is not None
    pv, shp, (xs, ys) = _group("p", x.shape[2:], [X.strides[2:], Y.strides[2:]])
    nest = Nest(n=x.shape[0], c=x.shape[1], **dict(zip(pv, shp)))
    return X, Y, nest, pv, shp, xs, ys


@lower("BatchNormalization", supports=_supports_norm)
def _lower_batchnorm(node: Node, ctx: LowerCtx) -> KernelDesc:
    """y = (x - mean[c]) * (scale[c] / sqrt(var[c] + eps)) + B[c], per channel."""
    x = node.inputs[0]
    X, Y, nest, pv, shp, xs, ys = _per_channel(node, ctx)
    S, Bb, Mn, Vr = ctx.ins()[1:5]
    assert S and Bb and Mn and Vr
    ct = Y.ctype
    eps = c_literal(float(np.dtype(x.dtype).type(node.attrs.get("epsilon", 1e-5))), ct)
    var = f"{Vr.ptr}[{nest.c(Aff.of('c') * Vr.strides[0])}]"
    pre = (f"const {ct} a = {S.ptr}[{nest.c(Aff.of('c') * S.strides[0])}] / "
           + f"{libm(ct, 'sqrt')}({var} + {eps});",
           f"const {ct} m = {Mn.ptr}[{nest.c(Aff.of('c') * Mn.strides[0])}];",
           f"const {ct} b = {Bb.ptr}[{nest.c(Aff.of('c') * Bb.strides[0])}];")
    outer = tuple(nest.loop("n", x.shape[0]) + nest.loop("c", x.shape[1], pre))
    xa = _at(X, ["n", "c", *pv], [*X.strides[:2], *xs], nest)
    ya = _at(Y, ["n", "c", *pv], [*Y.strides[:2], *ys], nest)
    sec = ((), _loops(nest, pv, shp), (f"{ya} = ({xa} - m) * a + b;",), ())
    return _desc(ctx, f"BatchNormalization (inference): x {shape_text(x.shape)} is (N,C,...)",
                 outer, [sec])


@lower("InstanceNormalization", supports=_supports_norm)
def _lower_instancenorm(node: Node, ctx: LowerCtx) -> KernelDesc:
    """Per (n, c): mean and variance over the spatial axes, then scale and shift."""
    x = node.inputs[0]
    X, Y, nest, pv, shp, xs, ys = _per_channel(node, ctx)
    S, Bb = ctx.ins()[1:3]
    assert S and Bb
    ct = Y.ctype
    n_sp = c_literal(math.prod(x.shape[2:]), ct)
    eps = c_literal(float(np.dtype(x.dtype).type(node.attrs.get("epsilon", 1e-5))), ct)
    outer = tuple(nest.loop("n", x.shape[0]) + nest.loop("c", x.shape[1]))
    xa = _at(X, ["n", "c", *pv], [*X.strides[:2], *xs], nest)
    ya = _at(Y, ["n", "c", *pv], [*Y.strides[:2], *ys], nest)
    sp = _loops(nest, pv, shp)
    secs = [((f"{ct} sum = {c_literal(0, ct)};",), sp, (f"sum += {xa};",),
             (f"const {ct} mean = sum / {n_sp};", f"{ct} sq = {c_literal(0, ct)};")),
            ((), sp, (f"const {ct} d = {xa} - mean;", "sq += d * d;"),
             (f"const {ct} a = {S.ptr}[{nest.c(Aff.of('c') * S.strides[0])}] / "
              + f"{libm(ct, 'sqrt')}(sq / {n_sp} + {eps});",
              f"const {ct} b = {Bb.ptr}[{nest.c(Aff.of('c') * Bb.strides[0])}];")),
            ((), sp, (f"{ya} = ({xa} - mean) * a + b;",), ())]
    return _desc(ctx, f"InstanceNormalization: x {shape_text(x.shape)} is (N,C,spatial...)",
                 outer, secs)


# ---- LayerNormalization ----------------------------------------------------------------------
def _supports_layernorm(node: Node) -> str | None:
    why = float_only(node)
    if why:
        return why
    if any(v is not None and v.dtype != node.inputs[0].dtype for v in node.inputs[1:]):
        return "LayerNormalization with Scale/B of another dtype than x is not supported"
    return None


@lower("LayerNormalization", supports=_supports_layernorm)
def _lower_layernorm(node: Node, ctx: LowerCtx) -> KernelDesc:
    """Per outer position: mean and variance over axes [axis, rank), then
    y = (x - mean) * inv_std * Scale + B; optional Mean and InvStdDev outputs."""
    from onnxcc.ops._util import norm_axis

    x = node.inputs[0]
    rank = len(x.shape)
    axis = norm_axis(node, node.attrs.get("axis", -1), rank)
    ins, outs = ctx.ins(), ctx.outs()
    X, S = ins[0], ins[1]
    Bb = ins[2] if len(ins) > 2 else None
    assert X is not None and S is not None
    Y, stats = outs[0], outs[1:]
    ct = Y.ctype
    inner = x.shape[axis:]
    params = [p for p in (S, Bb) if p is not None]
    pst = [broadcast_strides(p.shape, p.strides, inner) for p in params]
    iv, ishp, ists = _group("i", inner, [X.strides[axis:], Y.strides[axis:], *pst])
    ov, oshp, osts = _group("o", x.shape[:axis], [X.strides[:axis], Y.strides[:axis],
                                                  *(s.strides[:axis] for s in stats)])
    nest = Nest(**dict(zip(ov, oshp)), **dict(zip(iv, ishp)))
    outer = _loops(nest, ov, oshp)
    xa = nest.c(dot([Aff.of(v) for v in ov], osts[0]) + dot([Aff.of(v) for v in iv], ists[0]))
    ya = nest.c(dot([Aff.of(v) for v in ov], osts[1]) + dot([Aff.of(v) for v in iv], ists[1]))
    sa = _at(S, iv, ists[2], nest)
    n_in = c_literal(math.prod(inner), ct)
    eps = c_literal(float(np.dtype(x.dtype).type(node.attrs.get("epsilon", 1e-5))), ct)
    sp = _loops(nest, iv, ishp)
    write = f"{Y.ptr}[{ya}] = ({X.ptr}[{xa}] - mean) * inv * {sa}"
    if Bb is not None:
        write += f" + {_at(Bb, iv, ists[3], nest)}"
    post = []
    for k, st in enumerate(stats):
        val = "mean" if k == 0 else "inv"
        post.append(f"{st.ptr}[{nest.c(dot([Aff.of(v) for v in ov], osts[2 + k]))}] = "
                    f"({st.ctype}){val};")
    secs = [((f"{ct} sum = {c_literal(0, ct)};",), sp, (f"sum += {X.ptr}[{xa}];",),
             (f"const {ct} mean = sum / {n_in};", f"{ct} sq = {c_literal(0, ct)};")),
            ((), sp, (f"const {ct} d = {X.ptr}[{xa}] - mean;", "sq += d * d;"),
             (f"const {ct} inv = {c_literal(1, ct)} / {libm(ct, 'sqrt')}(sq / {n_in} + {eps});",
              *post)),
            ((), sp, (write + ";",), ())]
    return _desc(ctx, f"LayerNormalization: x {shape_text(x.shape)} normalized over axes "
                 f"[{axis}, {rank})", outer, secs)


# ---- LRN -------------------------------------------------------------------------------------
@lower("LRN", supports=lambda n: float_only(n) or (
        None if len(n.inputs[0].shape) >= 3 else "LRN needs an (N, C, spatial...) input"))
def _lower_lrn(node: Node, ctx: LowerCtx) -> KernelDesc:
    """y = x / (bias + alpha/size * sum of x^2 over the channel window)^beta; the window of
    channel c is [c - (size-1)//2, c + size-1 - (size-1)//2], cut to [0, C)."""
    x = node.inputs[0]
    X, Y, nest, pv, shp, xs, ys = _per_channel(node, ctx)
    ct = Y.ctype
    N, C = x.shape[:2]
    size = int(node.attrs["size"])
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    c = "c" if C > 1 else "0"
    q0 = f"{c} > {lo} ? {c} - {lo} : 0" if lo and C > 1 else c
    q1 = f"{c} + {hi + 1} < {C} ? {c} + {hi + 1} : {C}" if C > 1 else "1"
    outer = tuple(nest.loop("n", N) + nest.loop("c", C)) + _loops(nest, pv, shp)
    xq = _at(X, ["n", "q", *pv], [*X.strides[:2], *xs], nest)
    xa = _at(X, ["n", "c", *pv], [*X.strides[:2], *xs], nest)
    ya = _at(Y, ["n", "c", *pv], [*Y.strides[:2], *ys], nest)
    f = np.float32 if ct == "float" else np.float64
    k = c_literal(float(f(node.attrs.get("alpha", 1e-4)) / f(size)), ct)
    bias = c_literal(float(node.attrs.get("bias", 1.0)), ct)
    beta = c_literal(float(node.attrs.get("beta", 0.75)), ct)
    lines = (f"{ct} acc = {c_literal(0, ct)};",
             f"{for_loop('q', q0, q1)} {{ const {ct} v = {xq}; acc += v * v; }}",
             f"{ya} = {xa} / {libm(ct, 'pow')}({bias} + {k} * acc, {beta});")
    return _desc(ctx, f"LRN: x {shape_text(x.shape)} is (N,C,spatial...), size {size} across "
                 "channels", outer, [(lines, (), (), ())])


# ---- Softmax / LogSoftmax --------------------------------------------------------------------
@lower("Softmax", "LogSoftmax", supports=float_only)
def _lower_softmax(node: Node, ctx: LowerCtx) -> KernelDesc:
    """Along :func:`softmax_axes` (opset < 13: every axis from ``axis``; 13+: one axis):
    m = max, s = sum exp(x - m); Softmax y = exp(x - m) / s, LogSoftmax y = x - m - log(s)."""
    x = node.inputs[0]
    X, Y = ctx.ins()[0], ctx.outs()[0]
    assert X is not None
    ct = Y.ctype
    axes = softmax_axes(node)
    a0, a1 = (axes[0], axes[-1] + 1) if axes else (len(x.shape), len(x.shape))
    sts = [X.strides, Y.strides]
    ov, oshp, osts = _group("o", x.shape[:a0], [s[:a0] for s in sts])
    iv, ishp, ists = _group("i", x.shape[a1:], [s[a1:] for s in sts])
    kv, kshp, ksts = _group("k", x.shape[a0:a1], [s[a0:a1] for s in sts])
    nest = Nest(**dict(zip(ov, oshp)), **dict(zip(iv, ishp)), **dict(zip(kv, kshp)))
    outer = _loops(nest, ov, oshp) + _loops(nest, iv, ishp)

    def at(k: int) -> str:
        a = (dot([Aff.of(v) for v in ov], osts[k]) + dot([Aff.of(v) for v in iv], ists[k])
             + dot([Aff.of(v) for v in kv], ksts[k]))
        return f"{(X, Y)[k].ptr}[{nest.c(a)}]"

    xa, ya = at(0), at(1)
    red = _loops(nest, kv, kshp)
    inf = c_literal(float("inf"), ct)
    exp, log = libm(ct, "exp"), libm(ct, "log")
    zero = c_literal(0, ct)
    first = ((f"{ct} mx = -{inf};",), red,
             (f"const {ct} v = {xa};", "mx = v > mx ? v : mx;"),
             # as the reference: an infinite max shifts by 0 (the result is then NaN or 0/inf)
             (f"if (mx == {inf} || mx == -{inf}) mx = {zero};", f"{ct} sum = {zero};"))
    if node.op == "Softmax":
        secs = [first,
                ((), red, (f"const {ct} e = {exp}({xa} - mx);", f"{ya} = e;", "sum += e;"), ()),
                ((), red, (f"{ya} = {ya} / sum;",), ())]
    else:
        secs = [first,
                ((), red, (f"sum += {exp}({xa} - mx);",), (f"const {ct} ls = {log}(sum);",)),
                ((), red, (f"{ya} = ({xa} - mx) - ls;",), ())]
    return _desc(ctx, f"{node.op}: x {shape_text(x.shape)} along axes {list(axes)}", outer, secs)


def _supports_hardmax(node: Node) -> str | None:
    x = node.inputs[0]
    if x.const is not None:
        return "a constant Hardmax should have been folded"
    return None if x.dtype.kind == "f" else f"Hardmax on {x.dtype.name} is not supported"


@lower("Hardmax", supports=_supports_hardmax)
def _lower_hardmax(node: Node, ctx: LowerCtx) -> KernelDesc:
    """y = one-hot of the first maximum (NaN counts as the maximum, like numpy.argmax).

    x is contiguous; the axes of softmax_axes are one contiguous block, so x is viewed as
    (outer, n, inner) and each (outer, inner) column is scanned along n."""
    x = node.inputs[0]
    axes = softmax_axes(node)
    shape = x.shape
    a, b = (axes[0], axes[-1] + 1) if axes else (len(shape), len(shape))
    outer, n, inner = math.prod(shape[:a]), math.prod(shape[a:b]), math.prod(shape[b:])
    ct = ctype(x.dtype)
    one, zero = c_literal(1, ct), c_literal(0, ct)
    base = f"o*{n * inner} + i"
    lines = ("int32_t best = 0;",
             f"{ct} bv = x0[{base}];",
             f"for (int32_t k = 1; k < {n}; ++k) {{",
             f"    const {ct} v = x0[{base} + k*{inner}];",
             "    if (v > bv || (v != v && bv == bv)) { bv = v; best = k; }",
             "}",
             f"for (int32_t k = 0; k < {n}; ++k) y0[{base} + k*{inner}] = (k == best) ? {one} : {zero};")
    if n == 0 or outer * inner == 0:
        lines = ("(void)x0; (void)y0;",)
        return ctx.desc("elementwise", "loop_nest", loops=(), lines=lines, shape=tuple(shape))
    return ctx.desc("elementwise", "loop_nest", loops=(("o", outer), ("i", inner)), lines=lines,
                    shape=tuple(shape))
