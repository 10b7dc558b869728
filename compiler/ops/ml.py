"""Linear models and the preprocessing ops of the ONNX-ML domain (``ai.onnx.ml``).

Semantics follow the ONNX-ML spec and, where the spec leaves a case open, onnxruntime (the
numeric oracle; ``onnxruntime/core/providers/cpu/ml``). Inputs are (N, C) or (C,) (one sample);
float outputs are float32 unless said otherwise. Registered under ``ai.onnx.ml.<op>``
(:func:`onnxcc.ops.registry_key`).

- LinearRegressor: y = x @ coefficients(T, C)^T + intercepts, then PROBIT when T == 1 (as
  onnxruntime) or the post transform of each row when T > 1.
- LinearClassifier: scores = x @ coefficients(E, C)^T + intercepts (E = len(intercepts)); labels:
  E == 1: class_labels[1] if score > 0 else class_labels[0] (1/0 without two labels); else the
  first class of greatest score; post transform of each row (E == 1 with two labels: Z = (1 -
  s, s), s after LOGISTIC when asked, PROBIT refused; E == 1 without: PROBIT only).
  ``classlabels_strings``: the label output is the int64 index.
- SVMRegressor and SVMClassifier: :mod:`onnxcc.ops.ml_svm`.
- Scaler: y = (x - offset) * scale (one value or one per column). Normalizer: rows divided by
  their MAX (the largest value), L1 or L2 norm (a zero norm leaves the row). Binarizer: y = 1 if
  x > threshold else 0 (x's type). Imputer: x == replaced value (or NaN when that is NaN) ->
  imputed value of the column.
- ArrayFeatureExtractor: y = x[..., indices] (int64 indices, constant or computed; a 1-D x
  gives (1, k)).
  FeatureVectorizer: the inputs' rows side by side, each cut or zero-padded to
  ``inputdimensions``.
- OneHotEncoder (int64 categories; ``zeros=1``): y[..., j] = (x == cats[j]). LabelEncoder (numeric
  keys and values, ml opsets 2 and 4): y = values[j] where x == keys[j] (NaN matches NaN), else the
  default.
- ZipMap: the probability tensor itself (N, C) float32 in the generated code (the class labels
  stay in the node's attributes); ``CompiledModel.run`` returns onnxruntime's list of
  {label: probability} dicts (``ZipMap.to_python``).
"""

from __future__ import annotations

import numpy as np

from ..ir import Node, TensorType
from . import REQUIRED, OpDef, bad_attr, register_op
from .ml_forest import ML, TRANSFORMS
from .ml_trees import logistic, probit, transform

def rows(x: np.ndarray) -> np.ndarray:
    """x as (N, C): a 1-D x is one sample."""
    return x.reshape(1, -1) if x.ndim == 1 else x.reshape(x.shape[0], -1)


def n_rows(node: Node) -> int:
    """Samples N of the node's X ((N, C), or 1 for a 1-D X)."""
    x = node.inputs[0]
    return 1 if len(x.shape) <= 1 else x.shape[0]


def n_columns(node: Node) -> int:
    """Features C of the node's X (its last dim)."""
    x = node.inputs[0]
    return x.shape[-1] if x.shape else 1


def need_rank(node: Node, ranks=(1, 2)) -> None:
    """Raise AttributeValueError naming the node unless X is a float or integer tensor of one
    of ``ranks``."""
    x = node.inputs[0]
    if len(x.shape) not in ranks or x.dtype.kind not in "fi":
        raise bad_attr(node, f"X must be a {' or '.join(f'{r}-D' for r in ranks)} float or "
                       f"integer tensor, got {x.dtype} {list(x.shape)}")


def post_transform(node: Node) -> str:
    """The node's post_transform, checked against the spec's names."""
    p = node.attrs["post_transform"]
    if p not in TRANSFORMS:
        raise bad_attr(node, f"post_transform {p!r} is not one of {TRANSFORMS}")
    return p


def _per_column(node: Node, name: str, values, C: int) -> np.ndarray:
    v = np.asarray(values, np.float32).reshape(-1)
    if v.size not in (1, C):
        raise bad_attr(node, f"{name} has {v.size} values; it needs 1 or one per column ({C})")
    return np.broadcast_to(v, (C,))


def linear_scores(node: Node, x: np.ndarray, n_out: int) -> np.ndarray:
    """x (N, C) @ coefficients(n_out, C)^T + intercepts, in float32."""
    C = x.shape[1]
    w = np.asarray(node.attrs["coefficients"], np.float32).reshape(n_out, C)
    b = np.asarray(node.attrs["intercepts"] or [0.0] * n_out, np.float32)
    return (x.astype(np.float32) @ w.T + b).astype(np.float32)


@register_op("LinearRegressor", domain=ML)
class LinearRegressor(OpDef):
    """ai.onnx.ml LinearRegressor: X (N, C) or (C,) -> Y (N, targets) float32."""

    attrs = {"coefficients": (), "intercepts": (), "post_transform": "NONE", "targets": 1}

    def check(self, node: Node) -> None:
        need_rank(node)
        post_transform(node)
        T, C = int(node.attrs["targets"]), n_columns(node)
        if len(node.attrs["coefficients"]) != T * C or len(node.attrs["intercepts"]) not in (0, T):
            raise bad_attr(node, f"coefficients must have targets x C = {T * C} values and "
                           f"intercepts 0 or {T}")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType((n_rows(node), int(node.attrs["targets"])), np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        T = int(node.attrs["targets"])
        s = linear_scores(node, rows(x), T)
        post = post_transform(node)
        if T == 1:
            return [probit(s) if post == "PROBIT" else s]
        return [transform(post, s).astype(np.float32)]


def class_labels(node: Node) -> tuple[np.ndarray, bool]:
    """(class labels as int64 (indices for strings), strings?)."""
    if node.attrs.get("classlabels_strings"):
        return np.arange(len(node.attrs["classlabels_strings"]), dtype=np.int64), True
    return np.asarray(node.attrs.get("classlabels_ints") or (), np.int64), False


@register_op("LinearClassifier", domain=ML)
class LinearClassifier(OpDef):
    """ai.onnx.ml LinearClassifier: X (N, C) or (C,) -> Y (N,) int64 labels, Z (N, E') float32
    (E' = 2 when one score and two labels, else E = len(intercepts))."""

    attrs = {"classlabels_ints": (), "classlabels_strings": (), "coefficients": REQUIRED,
             "intercepts": (), "multi_class": 0, "post_transform": "NONE"}

    def check(self, node: Node) -> None:
        need_rank(node)
        post_transform(node)
        E = len(node.attrs["intercepts"])
        if E == 0 or len(node.attrs["coefficients"]) != E * n_columns(node):
            raise bad_attr(node, f"needs one intercept per class and classes x C coefficients "
                           f"(got {E} intercepts, {len(node.attrs['coefficients'])} coefficients)")
        if E == 1 and len(class_labels(node)[0]) == 2 and post_transform(node) == "PROBIT":
            raise bad_attr(node, "PROBIT with one score and two class labels is not supported "
                           "(onnxruntime leaves the second column undefined)")
        if E > 1 and len(class_labels(node)[0]) != E:
            raise bad_attr(node, f"{E} classes need {E} class labels")

    def _width(self, node: Node) -> int:
        E = len(node.attrs["intercepts"])
        return 2 if E == 1 and len(class_labels(node)[0]) == 2 else E

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType((n_rows(node),), np.int64),
                TensorType((n_rows(node), self._width(node)), np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        E = len(node.attrs["intercepts"])
        s = linear_scores(node, rows(x), E)
        labels, _ = class_labels(node)
        post = post_transform(node)
        if E == 1:
            two = len(labels) == 2
            pos, neg = (labels[1], labels[0]) if two else (1, 0)
            y = np.where(s[:, 0] > 0, pos, neg).astype(np.int64)
            if post == "LOGISTIC" and two:
                s = logistic(s)
            if two:
                z = np.concatenate([1 - s, s], axis=1)
            else:
                z = probit(s) if post == "PROBIT" else s
            return [y, z.astype(np.float32)]
        y = labels[np.argmax(s, axis=1)] if len(labels) else np.argmax(s, axis=1)
        return [y.astype(np.int64), transform(post, s).astype(np.float32)]


@register_op("Scaler", domain=ML)
class Scaler(OpDef):
    """ai.onnx.ml Scaler: y = (x - offset) * scale, float32, x's shape (rank 1 or 2)."""

    attrs = {"offset": (), "scale": ()}

    def check(self, node: Node) -> None:
        need_rank(node)

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        C = x.shape[-1]
        off = _per_column(node, "offset", node.attrs["offset"] or [0.0], C)
        sc = _per_column(node, "scale", node.attrs["scale"] or [1.0], C)
        return [((x.astype(np.float32) - off) * sc).astype(np.float32)]


NORMS = ("MAX", "L1", "L2")


@register_op("Normalizer", domain=ML)
class Normalizer(OpDef):
    """ai.onnx.ml Normalizer: each row divided by its MAX / L1 / L2 norm, float32."""

    attrs = {"norm": "MAX"}

    def check(self, node: Node) -> None:
        need_rank(node)
        if node.attrs["norm"] not in NORMS:
            raise bad_attr(node, f"norm {node.attrs['norm']!r} is not one of {NORMS}")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        r = rows(x).astype(np.float32)
        norm = node.attrs["norm"]
        if norm == "MAX":
            d = r.max(axis=1, keepdims=True)
        elif norm == "L1":
            d = np.abs(r).sum(axis=1, keepdims=True, dtype=np.float32)
        else:
            d = np.sqrt((r * r).sum(axis=1, keepdims=True, dtype=np.float32))
        with np.errstate(all="ignore"):
            y = np.where(d != 0, r / np.where(d != 0, d, 1), r)
        return [y.astype(np.float32).reshape(x.shape)]


@register_op("Binarizer", domain=ML)
class Binarizer(OpDef):
    """ai.onnx.ml Binarizer: y = 1 if x > threshold else 0, x's type and shape (a NaN gives 0;
    onnxruntime raises an error for it)."""

    attrs = {"threshold": 0.0}
    traits = frozenset({"elementwise"})

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, node.inputs[0].dtype)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        return [(x > np.asarray(node.attrs["threshold"], x.dtype)).astype(x.dtype)]


@register_op("Imputer", domain=ML)
class Imputer(OpDef):
    """ai.onnx.ml Imputer: x (N, C) or (C,); an element equal to the replaced value (NaN when
    that is NaN) becomes its column's imputed value; x's type."""

    attrs = {"imputed_value_floats": (), "imputed_value_int64s": (),
             "replaced_value_float": 0.0, "replaced_value_int64": 0}

    def check(self, node: Node) -> None:
        need_rank(node)
        self.parts(node)

    def parts(self, node: Node) -> tuple[np.ndarray, float | int]:
        """(imputed values per column, replaced value) in x's type."""
        x = node.inputs[0]
        a = node.attrs
        if x.dtype.kind == "f":
            vals, rep = a["imputed_value_floats"], float(a["replaced_value_float"])
        else:
            vals, rep = a["imputed_value_int64s"], int(a["replaced_value_int64"])
        C = x.shape[-1]
        v = np.asarray(vals, x.dtype).reshape(-1)
        if v.size not in (1, C):
            raise bad_attr(node, f"imputed values: {v.size}; needs 1 or one per column ({C}) "
                           f"for a {x.dtype} input")
        return np.broadcast_to(v, (C,)), rep

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, node.inputs[0].dtype)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        v, rep = self.parts(node)
        hit = np.isnan(x) if isinstance(rep, float) and np.isnan(rep) else x == rep
        return [np.where(hit, v, x).astype(x.dtype)]


@register_op("ArrayFeatureExtractor", domain=ML)
class ArrayFeatureExtractor(OpDef):
    """ai.onnx.ml ArrayFeatureExtractor: y = x[..., indices] (int64 indices of any shape, taken
    flat; a 1-D x gives (1, k)). Constant indices are checked against 0..C-1 at compile time;
    runtime ones (skl2onnx's label lookup after ArgMax) are clamped into it by the generated
    code (onnxruntime raises an error for an index outside)."""

    attrs: dict = {}
    min_inputs, max_inputs = 2, 2

    def check(self, node: Node) -> None:
        x, i = node.inputs
        C = x.shape[-1] if x.shape else 0
        if i.dtype != np.int64 or C == 0:
            raise bad_attr(node, f"needs int64 indices into a non-empty last axis, got "
                           f"{i.dtype} indices, x {list(x.shape)}")
        if i.const is not None and i.const.size and (i.const.min() < 0 or i.const.max() >= C):
            raise bad_attr(node, f"indices {i.const.reshape(-1).tolist()} are outside "
                           f"0..{C - 1}")

    def infer(self, node: Node) -> list[TensorType]:
        x, i = node.inputs
        k = int(np.prod(i.shape)) if i.shape else 1
        shape = (1, k) if len(x.shape) == 1 else (*x.shape[:-1], k)
        return [TensorType(shape, x.dtype)]

    def reference(self, node: Node, x: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
        i = np.clip(np.asarray(idx, np.int64).reshape(-1), 0, x.shape[-1] - 1)
        y = x[..., i]
        return [y.reshape(1, -1) if x.ndim == 1 else y]


@register_op("FeatureVectorizer", domain=ML)
class FeatureVectorizer(OpDef):
    """ai.onnx.ml FeatureVectorizer: inputs (N, C_i) (or (C_i,)) side by side, each cut or
    zero-padded to ``inputdimensions[i]`` columns -> (N, sum) float32."""

    attrs = {"inputdimensions": ()}
    min_inputs, max_inputs = 1, -1

    def check(self, node: Node) -> None:
        if len(node.attrs["inputdimensions"]) != len(node.inputs):
            raise bad_attr(node, "inputdimensions needs one entry per input")
        if len({1 if len(v.shape) <= 1 else v.shape[0] for v in node.inputs}) != 1:
            raise bad_attr(node, "every input must have the same number of rows")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType((n_rows(node), int(sum(node.attrs["inputdimensions"]))), np.float32)]

    def reference(self, node: Node, *xs: np.ndarray) -> list[np.ndarray]:
        N = n_rows(node)
        out = []
        for x, d in zip(xs, node.attrs["inputdimensions"]):
            r = x.reshape(N, -1).astype(np.float32)[:, :d]
            out.append(np.pad(r, ((0, 0), (0, int(d) - r.shape[1]))))
        return [np.concatenate(out, axis=1)]


@register_op("OneHotEncoder", domain=ML)
class OneHotEncoder(OpDef):
    """ai.onnx.ml OneHotEncoder with int64 categories: y (x's shape + (K,)) float32, y[..., j] =
    1 where x == cats_int64s[j]. ``zeros=0`` (an error for an unknown value at run time) and
    string categories are refused."""

    attrs = {"cats_int64s": (), "cats_strings": (), "zeros": 1}

    def check(self, node: Node) -> None:
        if node.attrs["cats_strings"] or not node.attrs["cats_int64s"]:
            raise bad_attr(node, "only int64 categories (cats_int64s) are supported")
        if not node.attrs["zeros"]:
            raise bad_attr(node, "zeros=0 (fail on an unknown category) is not supported: "
                           "generated code has no run-time errors; export with zeros=1")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType((*node.inputs[0].shape, len(node.attrs["cats_int64s"])), np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        cats = np.asarray(node.attrs["cats_int64s"], np.int64)
        xv = x.astype(np.int64) if x.dtype.kind != "f" else np.trunc(x)
        return [(xv[..., None] == cats).astype(np.float32)]


def label_table(node: Node) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, values, default) of a numeric LabelEncoder (ml opset 2 lists or opset 4
    tensors), in their ONNX types (int64 or float32). Raises for string keys or values."""
    a = node.attrs
    if a.get("keys_strings") or a.get("values_strings"):
        raise bad_attr(node, "string keys or values are not supported (numeric only)")
    keys = a.get("keys_tensor")
    if keys is None:
        keys = np.asarray(a["keys_int64s"], np.int64) if a["keys_int64s"] else \
            np.asarray(a["keys_floats"], np.float32)
    vals = a.get("values_tensor")
    if vals is None:
        vals = np.asarray(a["values_int64s"], np.int64) if a["values_int64s"] else \
            np.asarray(a["values_floats"], np.float32)
    keys, vals = np.asarray(keys).reshape(-1), np.asarray(vals).reshape(-1)
    if keys.dtype.kind not in "fi" or vals.dtype.kind not in "fi":
        raise bad_attr(node, "string keys or values are not supported (numeric only)")
    if keys.size != vals.size:
        raise bad_attr(node, f"{keys.size} keys but {vals.size} values")
    d = a.get("default_tensor")
    if d is None:
        d = a["default_int64"] if vals.dtype.kind == "i" else a["default_float"]
    return keys, vals, np.asarray(d, vals.dtype).reshape(-1)[:1]


@register_op("LabelEncoder", domain=ML)
class LabelEncoder(OpDef):
    """ai.onnx.ml LabelEncoder with numeric keys and values: y = values[j] where x == keys[j]
    (NaN matches a NaN key), else the default; x's shape, the values' type."""

    attrs = {"default_float": -0.0, "default_int64": -1, "default_string": "_Unused",
             "default_tensor": None, "keys_floats": (), "keys_int64s": (), "keys_strings": (),
             "keys_tensor": None, "values_floats": (), "values_int64s": (), "values_strings": (),
             "values_tensor": None}

    def check(self, node: Node) -> None:
        keys, _, _ = label_table(node)
        if node.inputs[0].dtype.kind != keys.dtype.kind:
            raise bad_attr(node, f"x is {node.inputs[0].dtype} but the keys are {keys.dtype}")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, label_table(node)[1].dtype)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        keys, vals, d = label_table(node)
        y = np.full(x.shape, d[0], vals.dtype)
        for k, v in zip(keys[::-1], vals[::-1]):   # the first matching key wins
            hit = (x == k) | (np.isnan(x) & np.isnan(k)) if keys.dtype.kind == "f" else x == k
            y[hit] = v
        return [y]


@register_op("ZipMap", domain=ML)
class ZipMap(OpDef):
    """ai.onnx.ml ZipMap: the generated code keeps the probability tensor X (N, C) float32 as the
    output (the labels are the node's classlabels_int64s / classlabels_strings); run() turns it
    into onnxruntime's list of dicts (:meth:`to_python`)."""

    attrs = {"classlabels_int64s": (), "classlabels_strings": ()}

    def check(self, node: Node) -> None:
        x = node.inputs[0]
        K = len(node.attrs["classlabels_int64s"] or node.attrs["classlabels_strings"])
        if len(x.shape) != 2 or x.shape[1] != K or x.dtype != np.float32:
            raise bad_attr(node, f"X must be float32 (N, {K}) (one column per class label), "
                           f"got {x.dtype} {list(x.shape)}")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        return [x.copy()]

    def to_python(self, node: Node, value: np.ndarray) -> list[dict]:
        """onnxruntime's form: one {label: probability} dict per row (labels int or str)."""
        labels = list(node.attrs["classlabels_int64s"] or node.attrs["classlabels_strings"])
        return [dict(zip(labels, (float(p) for p in row))) for row in np.asarray(value)]


