"""ONNX-ML linear models and preprocessing (``onnxcc.ops.ml``) as loops, for
every target. Parameters from the node's attributes become weight tables; each kernel is a
loop over the rows (samples) of x, with the arithmetic of the numpy reference (float32, and
onnxruntime's post transforms from :mod:`onnxcc.codegen.lower.ml_trees`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onnxcc.codegen.loops import (BOOL, F32, I32, Assign, Binary, Buffer, Cast, Const,
                                  Decl, DType, Expr, Loop, MulAdd, Select, Store, Unary, Var,
                                  const, maximum, minimum)
from onnxcc.ir import Node
from onnxcc.ops.ml import NORMS, Imputer, label_table

from . import LowerCtx, lower, nest
from .ml_trees import I64, clamp, logistic, probit, rows, table, transform_row


def as_f32(e: Expr) -> Expr:
    """``e`` as float32 (a cast unless it already is)."""
    return e if e.dtype == F32 else Cast(e, F32)


def x_rows(ctx: LowerCtx) -> tuple[Buffer, int, int]:
    """Input 0 viewed as (N, C) (a 1-D x is one row)."""
    x = ctx.input(0, "x")
    N = 1 if len(x.shape) <= 1 else x.shape[0]
    C = x.shape[-1] if x.shape else 1
    return rows(x, N, C), N, C


def _scores(ctx: LowerCtx, node: Node, X: Buffer, b: Var, C: int, E: int, ins: list,
            S: Buffer) -> list:
    """S[e] = x[b] . coefficients[e] + intercepts[e] for e < E (float32)."""
    W = table("coefficients", np.asarray(node.attrs["coefficients"], np.float32).reshape(E, C),
              F32)
    B = table("intercepts", np.asarray(node.attrs["intercepts"] or [0.0] * E, np.float32), F32)
    ins += [W, B]
    e, c = ctx.var("e"), ctx.var("c")
    acc = Var("acc", F32)
    return [Loop(e, 0, E, [Decl(acc, B[(e,)]),
                           Loop(c, 0, C, [Assign(acc, MulAdd(as_f32(X[(b, c)]), W[(e, c)], acc))]),
                           Store(S, (e,), acc)])]


@lower("ai.onnx.ml.LinearRegressor")
def _lower_linear_regressor(node: Node, ctx: LowerCtx) -> Any:
    """y[b] = post_transform(x[b] @ W^T + intercepts) (PROBIT only when one target)."""
    X, N, C = x_rows(ctx)
    y = ctx.output(0, "y")
    T = int(node.attrs["targets"])
    S = Buffer("s", F32, (T,), space="local")
    ins = [X]
    b = ctx.var("b")
    body = _scores(ctx, node, X, b, C, T, ins, S)
    post = node.attrs["post_transform"]
    if T == 1:
        v = S[(Const(0),)]
        body.append(Store(y, (b, Const(0)), probit(v) if post == "PROBIT" else v))
    else:
        body += transform_row(ctx, post, S, y, b, T)
    return ctx.kernel("linear_regressor", [y], ins, [Loop(b, 0, N, body)], locals=[S],
                      comment=f"LinearRegressor: x {N}x{C}, {T} targets, {post}")


@lower("ai.onnx.ml.LinearClassifier")
def _lower_linear_classifier(node: Node, ctx: LowerCtx) -> Any:
    """Scores as LinearRegressor; labels and the one-score rules of onnxcc.ops.ml."""
    from onnxcc.ops.ml import class_labels

    X, N, C = x_rows(ctx)
    lab, z = ctx.output(0, "label"), ctx.output(1, "scores")
    E = len(node.attrs["intercepts"])
    labels, _ = class_labels(node)
    post = node.attrs["post_transform"]
    S = Buffer("s", F32, (E,), space="local")
    ins = [X]
    b = ctx.var("b")
    body = _scores(ctx, node, X, b, C, E, ins, S)
    if E == 1:
        two = len(labels) == 2
        pos, neg = (int(labels[1]), int(labels[0])) if two else (1, 0)
        s = S[(Const(0),)]
        body.append(Store(lab, (b,), Select(s > const(0, F32), const(pos, I64),
                                            const(neg, I64))))
        if two:
            v = logistic(s) if post == "LOGISTIC" else s
            body += [Store(z, (b, Const(0)), const(1, F32) - v), Store(z, (b, Const(1)), v)]
        else:
            body.append(Store(z, (b, Const(0)), probit(s) if post == "PROBIT" else s))
    else:
        CL = table("class_labels", labels, I64)
        ins.append(CL)
        k = ctx.var("k")
        best, bw, u = Var("best", I32), Var("bw", F32), Var("better", BOOL)
        body += [Decl(best, Const(0)), Decl(bw, S[(Const(0),)]),
                 Loop(k, 1, E, [Decl(u, S[(k,)] > bw), Assign(bw, Select(u, S[(k,)], bw)),
                                Assign(best, Select(u, k, best))]),
                 Store(lab, (b,), CL[(clamp(best, E),)])]
        body += transform_row(ctx, post, S, z, b, E)
    return ctx.kernel("linear_classifier", [lab, z], ins, [Loop(b, 0, N, body)], locals=[S],
                      comment=f"LinearClassifier: x {N}x{C}, {E} scores, {post}")


def _columnwise(ctx: LowerCtx, name: str, fn, tables: list[Buffer]) -> Any:
    """A kernel y[..., c] = fn(x[..., c], c) over x's shape (output 0, input 0)."""
    x, y = ctx.input(0, "x"), ctx.output(0, "y")
    shape = x.shape or (1,)
    X = Buffer(x.name, x.dtype, shape, None, x.space, x.offset, x.index, x.data, x.value)
    Y = Buffer(y.name, y.dtype, shape, None, y.space, y.offset, y.index, y.data, y.value)
    body = nest(ctx, shape, lambda i: [Store(Y, tuple(i), fn(X[tuple(i)], i[-1]))])
    return ctx.kernel(name, [Y], [X, *tables], body)


@lower("ai.onnx.ml.Scaler")
def _lower_scaler(node: Node, ctx: LowerCtx) -> Any:
    """y = (x - offset[c]) * scale[c] in float32."""
    C = ctx.node.inputs[0].shape[-1]
    off = np.broadcast_to(np.asarray(node.attrs["offset"] or [0.0], np.float32), (C,))
    sc = np.broadcast_to(np.asarray(node.attrs["scale"] or [1.0], np.float32), (C,))
    OFF, SC = table("offset", off, F32), table("scale", sc, F32)
    return _columnwise(ctx, "scaler", lambda v, c: (as_f32(v) - OFF[(c,)]) * SC[(c,)], [OFF, SC])


@lower("ai.onnx.ml.Binarizer")
def _lower_binarizer(node: Node, ctx: LowerCtx) -> Any:
    """y = x > threshold ? 1 : 0 (x's type)."""
    dt = DType.of(node.inputs[0].dtype)
    t = const(node.attrs["threshold"], dt)
    return _columnwise(ctx, "binarizer", lambda v, c: Select(v > t, const(1, dt), const(0, dt)),
                       [])


@lower("ai.onnx.ml.Imputer")
def _lower_imputer(node: Node, ctx: LowerCtx) -> Any:
    """y = (x is the replaced value) ? imputed[c] : x."""
    vals, rep = Imputer().parts(node)
    dt = DType.of(node.inputs[0].dtype)
    V = table("imputed", vals, dt)
    if isinstance(rep, float) and math.isnan(rep):
        def hit(v):
            return Unary("isnan", v)
    else:
        def hit(v):
            return Binary("eq", v, const(rep, dt))
    return _columnwise(ctx, "imputer", lambda v, c: Select(hit(v), V[(c,)], v), [V])


@lower("ai.onnx.ml.Normalizer")
def _lower_normalizer(node: Node, ctx: LowerCtx) -> Any:
    """Per row: d = max / sum |x| / sqrt(sum x^2); y = d != 0 ? x / d : x (float32)."""
    X, N, C = x_rows(ctx)
    y = ctx.output(0, "y")
    Y = rows(y, N, C)
    norm = node.attrs["norm"]
    assert norm in NORMS
    b, c, c2 = ctx.var("b"), ctx.var("c"), ctx.var("c")
    d = Var("d", F32)
    v = as_f32(X[(b, c)])
    if norm == "MAX":
        init, upd = as_f32(X[(b, Const(0))]), Select(v > d, v, d)
    elif norm == "L1":
        init, upd = const(0, F32), d + Unary("abs", v)
    else:
        init, upd = const(0, F32), MulAdd(v, v, d)
    fin = [Assign(d, Unary("sqrt", d))] if norm == "L2" else []
    v2 = as_f32(X[(b, c2)])
    body = [Decl(d, init), Loop(c, 0, C, [Assign(d, upd)]), *fin,
            Loop(c2, 0, C, [Store(Y, (b, c2), Select(Binary("ne", d, const(0, F32)), v2 / d,
                                                     v2))])]
    return ctx.kernel("normalizer", [Y], [X], [Loop(b, 0, N, body)],
                      comment=f"Normalizer {norm}: x {N}x{C}")


@lower("ai.onnx.ml.ArrayFeatureExtractor")
def _lower_array_feature_extractor(node: Node, ctx: LowerCtx) -> Any:
    """y[r, j] = x[r, clamp(indices[j], 0, C - 1)] over the rows r of x's leading dims."""
    x, y, i = ctx.input(0, "x"), ctx.output(0, "y"), ctx.input(1, "indices")
    C = x.shape[-1]
    K = max(int(np.prod(i.shape)), 1)
    R = int(np.prod(x.shape[:-1])) if len(x.shape) > 1 else 1
    X, Y, IDX = rows(x, R, C), rows(y, R, K), rows(i, 1, K)
    r, j = ctx.var("r"), ctx.var("j")
    at = clamp(Cast(maximum(minimum(IDX[(Const(0), j)], const(C - 1, I64)), const(0, I64)),
                    I32), C)
    body = [Loop(r, 0, R, [Loop(j, 0, K, [Store(Y, (r, j), X[(r, at)])])])]
    return ctx.kernel("array_feature_extractor", [Y], [X, IDX], body)


@lower("ai.onnx.ml.FeatureVectorizer")
def _lower_feature_vectorizer(node: Node, ctx: LowerCtx) -> Any:
    """y[b, off_i + c] = x_i[b, c] for c < min(C_i, d_i), 0 for C_i <= c < d_i."""
    y = ctx.output(0, "y")
    N = y.shape[0]
    ins, body, off = [], [], 0
    for i, d in enumerate(node.attrs["inputdimensions"]):
        x = ctx.input(i, f"x{i}")
        Ci = int(np.prod(x.shape)) // N if x.shape else 1
        X = rows(x, N, Ci)
        ins.append(X)
        b, c, c2 = ctx.var("b"), ctx.var("c"), ctx.var("c")
        n = min(Ci, int(d))
        body.append(Loop(b, 0, N, [
            Loop(c, 0, n, [Store(y, (b, c + Const(off)), as_f32(X[(b, c)]))]),
            Loop(c2, n, int(d), [Store(y, (b, c2 + Const(off)), const(0, F32))])]))
        off += int(d)
    return ctx.kernel("feature_vectorizer", [y], ins, body)


@lower("ai.onnx.ml.OneHotEncoder")
def _lower_one_hot_encoder(node: Node, ctx: LowerCtx) -> Any:
    """y[r, j] = (x[r] == cats[j]) ? 1 : 0 (a float x compared after truncation)."""
    x, y = ctx.input(0, "x"), ctx.output(0, "y")
    cats = np.asarray(node.attrs["cats_int64s"], np.int64)
    R, K = max(int(np.prod(x.shape)), 1), cats.size
    X, Y = rows(x, 1, R), rows(y, R, K)
    r, j = ctx.var("r"), ctx.var("j")
    xv = X[(Const(0), r)]
    if x.dtype.is_float:   # trunc(x) == cat, compared in x's type (no float -> int cast of NaN)
        CAT = table("categories", cats, x.dtype)
        key: Expr = Select(xv < const(0, x.dtype), Unary("ceil", xv), Unary("floor", xv))
    else:
        CAT = table("categories", cats, I64)
        key = xv if x.dtype == I64 else Cast(xv, I64)
    body = [Loop(r, 0, R, [Loop(j, 0, K, [Store(Y, (r, j), Select(
        Binary("eq", key, CAT[(j,)]), const(1, F32), const(0, F32)))])])]
    return ctx.kernel("one_hot_encoder", [Y], [X, CAT], body)


@lower("ai.onnx.ml.LabelEncoder")
def _lower_label_encoder(node: Node, ctx: LowerCtx) -> Any:
    """y = values[j] for the first j with x == keys[j] (NaN matches NaN), else the default:
    keys scanned from the last to the first, each match overwriting."""
    keys, vals, d = label_table(node)
    x, y = ctx.input(0, "x"), ctx.output(0, "y")
    R = max(int(np.prod(x.shape)), 1)
    X, Y = rows(x, 1, R), rows(y, 1, R)
    kd, vd = DType.of(keys.dtype), DType.of(vals.dtype)
    KEY, VAL = table("keys", keys[::-1], kd), table("values", vals[::-1], vd)
    r, j = ctx.var("r"), ctx.var("j")
    out, xv = Var("out", vd), Var("xv", kd)
    k = KEY[(j,)]
    match: Expr = Binary("eq", xv, k)
    if kd.is_float:
        match = match | (Unary("isnan", xv) & Unary("isnan", k))
    body = [Loop(r, 0, R, [Decl(xv, X[(Const(0), r)]), Decl(out, const(d[0], vd)),
                           Loop(j, 0, keys.size, [Assign(out, Select(match, VAL[(j,)], out))]),
                           Store(Y, (Const(0), r), out)])]
    return ctx.kernel("label_encoder", [Y], [X, KEY, VAL], body)


@lower("ai.onnx.ml.ZipMap")
def _lower_zipmap(node: Node, ctx: LowerCtx) -> Any:
    """The probabilities themselves: y = x."""
    return _columnwise(ctx, "zipmap", lambda v, c: v, [])
