"""Tree ensembles of the ONNX-ML domain (``ai.onnx.ml``): TreeEnsembleClassifier and
TreeEnsembleRegressor (ml opsets 1 and 3) and TreeEnsemble (ml opset 5).

Each op's attributes are read once into a :class:`onnxcc.ops.ml_forest.Forest`: compact node tables
(the arrays the generated code walks, also what the numpy reference walks) with every tree's nodes
at a global index, leaves pointing to themselves (so a walk of a fixed ``depth`` steps from every
root ends on a leaf), and a dense leaf table of weights per target (``weights[leaf, k]`` with
``has[leaf, k]`` saying whether the leaf votes for target ``k`` at all, as onnxruntime's
``has_score``).

A step at node ``n`` reading ``v = x[feature[n]]`` goes to ``true[n]`` when ``v MODE
threshold[n]`` (LEQ ``<=``, LT ``<``, GTE ``>=``, GT ``>``, EQ ``==``, NEQ ``!=``) or, for a node
with ``missing_value_tracks_true``, when ``v`` is NaN; else to ``false[n]``. Comparisons run in
the threshold type (float32, or float64 for ``*_as_tensor`` doubles; integer inputs are
converted), scores accumulate in it, and the outputs are float32 (TreeEnsemble: the input type).

Aggregation and the post transforms follow onnxruntime (``tree_ensemble_aggregator.h``,
``ml_common.h``), the numeric oracle, where the spec leaves cases open: SUM, AVERAGE (the sum over
the number of trees), MIN and MAX (over the trees whose leaf votes for the target; a target no
tree votes for scores 0) plus ``base_values``; post transforms NONE, SOFTMAX, LOGISTIC,
SOFTMAX_ZERO (softmax over the nonzero scores, zeros stay 0) and PROBIT (``sqrt(2) *
erfinv(2 p - 1)`` with onnxruntime's Winitzki approximation of erfinv). With a single target only
PROBIT applies, as in onnxruntime. The classifier's two-class rules are onnxruntime's (see
:func:`classify`); a classifier's label output is the class label (int64) or, for
``classlabels_strings``, its int64 index into that list (string tensors are not supported: the
frontend refuses a string graph output by name).

TreeEnsemble's BRANCH_MEMBER nodes go to the true child when ``v`` is one of the node's set of
``membership_values`` (the sets listed in node order, separated by NaN). Not supported (refused
by name): a classifier of a single class.
"""


from __future__ import annotations

import numpy as np

from ..ir import Node, TensorType
from . import REQUIRED, OpDef, bad_attr, register_op
from .ml_forest import LEAF, MEMBER, ML, NODE_ATTRS, Forest, forest


# ---- the numpy reference ------------------------------------------------------------------
def walk(f: Forest, x: np.ndarray) -> np.ndarray:
    """The leaf row (into ``f.weights``) each sample of x (N, F) reaches in each tree: (N, T)."""
    x = x.astype(f.dtype) if x.dtype != f.dtype else x
    n = np.broadcast_to(f.roots, (x.shape[0], len(f.roots))).copy()
    rows = np.arange(x.shape[0])[:, None]
    with np.errstate(invalid="ignore"):
        for _ in range(f.depth):
            v = x[rows, f.feature[n]]
            t = f.threshold[n]
            m = f.mode[n]
            inset = (f.members[f.member_row[n]] == v[..., None]).any(-1) \
                if f.members is not None else False
            c = np.select([m == 0, m == 1, m == 2, m == 3, m == 4, m == 5, m == MEMBER],
                          [v <= t, v < t, v >= t, v > t, v == t, v != t, inset], False)
            c |= f.missing[n] & np.isnan(v)
            n = np.where(c, f.true[n], f.false[n])
    return f.leaf[n]


def aggregate(f: Forest, leaves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores (N, K), has (N, K)) over the trees, before base values and transforms."""
    w, h = f.weights[leaves], f.has[leaves]          # (N, T, K)
    has = h.any(axis=1)
    if f.aggregate in ("SUM", "AVERAGE"):
        s = np.zeros(has.shape, f.dtype)
        for t in range(w.shape[1]):                   # tree order, as onnxruntime adds
            s = s + w[:, t]
        return s, has
    big = np.inf if f.aggregate == "MIN" else -np.inf
    red = np.min if f.aggregate == "MIN" else np.max
    s = red(np.where(h, w, big), axis=1)
    return np.where(has, s, 0).astype(f.dtype), has


def logistic(v: np.ndarray) -> np.ndarray:
    """onnxruntime's ComputeLogistic: 1 / (1 + exp(-|v|)), mirrored for v < 0."""
    e = 1 / (1 + np.exp(-np.abs(v)))
    return np.where(v < 0, 1 - e, e)


def probit(p: np.ndarray) -> np.ndarray:
    """onnxruntime's ComputeProbit: sqrt(2) * erfinv(2 p - 1), erfinv by Winitzki's
    approximation (a = 0.147) in float32, as onnxruntime computes it: with x = 2 p - 1,
    l = log((1 - x)(1 + x)), v = 2 / (pi a) + l / 2: sign(x) * sqrt(sqrt(v^2 - l / a) - v)."""
    x = (2 * p.astype(np.float32) - 1).astype(np.float32)
    sgn = np.where(x < 0, np.float32(-1), np.float32(1))
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log((1 - x) * (1 + x))
        v = np.float32(2 / (np.pi * 0.147)) + np.float32(0.5) * lg
        v3 = -v + np.sqrt(v * v - np.float32(1 / 0.147) * lg)
        return (np.float32(np.sqrt(2)) * sgn * np.sqrt(v3)).astype(np.float32)


def transform(name: str, s: np.ndarray) -> np.ndarray:
    """A post transform of scores s (N, K) for K >= 2 (onnxruntime's write_scores, in float32;
    NONE keeps s's type)."""
    if name == "NONE":
        return s
    s = s.astype(np.float32)
    if name == "LOGISTIC":
        return logistic(s)
    if name == "PROBIT":
        return probit(s)
    if name in ("SOFTMAX", "SOFTMAX_ZERO"):
        e = np.exp(s - s.max(axis=1, keepdims=True))
        if name == "SOFTMAX_ZERO":
            e = np.where(np.abs(s) > 1e-7, e, 0)
        return e / e.sum(axis=1, keepdims=True)
    return s


def regress(f: Forest, x: np.ndarray) -> np.ndarray:
    """TreeEnsembleRegressor / TreeEnsemble scores (N, K) (see the module docstring)."""
    s, has = aggregate(f, walk(f, x))
    K = s.shape[1]
    if f.aggregate == "AVERAGE":
        s = s / np.asarray(len(f.roots), f.dtype)
    if K == 1:
        s = s + (f.base[0] if len(f.base) == 1 else 0)
        return probit(s) if f.transform == "PROBIT" else s
    if len(f.base) == K:
        s = s + f.base
    # onnxruntime 1.31 leaves a target that no tree voted for at 0 (its base value unused)
    return transform(f.transform, np.where(has, s, 0).astype(s.dtype))


def classify(f: Forest, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TreeEnsembleClassifier (labels (N,) int64, scores (N, K) float32), as onnxruntime 1.31
    computes it (the spec leaves the two-class case open). Per sample, with s the summed votes
    and h whether any tree voted for the class:

    - K > 2: ``base_values`` added (a class with a base value counts as voted); the label is the
      first class of greatest score among the voted ones; Z the post transform of s.
    - K == 2: two base values: if h1, s1 = base1 + s0 and s0 = -s1, else each adds its base
      (and the sample keeps two scores); one base value: s0 += base0. With p = s1 if two
      scores and h1, else s0 if h0, else 0: when only one class id has votes in the whole
      ensemble (``binary_case``) the label is class 1 if p > 0.5 (every weight >= 0) or p > 0
      (some weight < 0), else class 0; otherwise the label is the literal 1 if p > 0, else 0.
      Two scores (h1, or two base values): Z = the post transform of (h0 ? s0 : 0, h1 ? s1 :
      0). One score (not h1, fewer than two base values): LOGISTIC: Z = (1 - L(s0), L(s0));
      PROBIT: (probit(s0), 0); else (1 - s0, s0) in the binary case with weights >= 0, (-s0, s0)
      in the binary case with a negative weight or with no base values, and (s0, 0) otherwise
      (onnxruntime leaves Z[1] unwritten there).
    """
    s, has = aggregate(f, walk(f, x))
    N, K = s.shape
    base = f.base.astype(f.dtype)
    if K > 2:
        nb = len(base)
        s[:, :nb] = s[:, :nb] + base
        has[:, :nb] = True
        best = np.argmax(np.where(has, s, -np.inf), axis=1)
        return f.classes[best], transform(f.transform, s).astype(np.float32)
    labels = np.zeros(N, np.int64)
    z = np.zeros((N, 2), np.float32)
    for r in range(N):
        s0, s1 = s[r]
        h0, h1 = has[r]
        two = bool(h1) or len(base) == 2
        if len(base) == 2 and h1:
            s1 = base[1] + s0
            s0 = -s1
        elif len(base) == 2:
            s0, s1 = s0 + base[0], s1 + base[1]
        elif len(base) == 1:
            s0 = s0 + base[0]
        pos = s1 if (two and h1) else (s0 if h0 else 0)
        if f.binary_case:
            win = pos > 0.5 if f.all_positive else pos > 0
            labels[r] = f.classes[1] if win else f.classes[0]
        else:
            labels[r] = 1 if pos > 0 else 0
        if two:
            z[r] = transform(f.transform, np.array([[s0 if h0 else 0, s1 if h1 else 0]],
                                                   f.dtype))[0]
        elif f.transform == "LOGISTIC":
            v = logistic(np.array([s0], np.float32))[0]
            z[r] = (1 - v, v)
        elif f.transform == "PROBIT":
            z[r, 0] = probit(np.array([s0]))[0]
        elif f.binary_case and f.all_positive:
            z[r] = (1 - s0, s0)
        elif f.binary_case or len(base) == 0:
            z[r] = (-s0, s0)
        else:
            z[r, 0] = s0
    return labels, z


def _rows(x: np.ndarray) -> np.ndarray:
    """x as (N, F): a 1-D input is one sample."""
    return x.reshape(1, -1) if x.ndim == 1 else x.reshape(x.shape[0], -1)


def _check_input(node: Node, f: Forest) -> None:
    x = node.inputs[0]
    if x.dtype.kind not in "fi" or len(x.shape) not in (1, 2):
        raise bad_attr(node, f"X must be a 1-D or 2-D float or integer tensor, got "
                       f"{x.dtype} {list(x.shape)}")
    F = x.shape[-1]
    used = f.feature[f.mode != LEAF]
    if used.size and (used.min() < 0 or used.max() >= F):
        raise bad_attr(node, f"a tree node reads feature {int(used.max())}, but X has {F}")


@register_op("TreeEnsembleRegressor", domain=ML)
class TreeEnsembleRegressor(OpDef):
    """ai.onnx.ml TreeEnsembleRegressor: X (N, F) or (F,) float/double/int32/int64 -> Y (N,
    n_targets) float32. See the module docstring."""

    attrs = {**NODE_ATTRS, "aggregate_function": "SUM", "n_targets": REQUIRED, "target_ids": (),
             "target_nodeids": (), "target_treeids": (), "target_weights": (),
             "target_weights_as_tensor": None}

    def check(self, node: Node) -> None:
        _check_input(node, forest(node))

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        n = 1 if len(x.shape) == 1 else x.shape[0]
        return [TensorType((n, int(node.attrs["n_targets"])), np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        return [regress(forest(node), _rows(x)).astype(np.float32)]


@register_op("TreeEnsembleClassifier", domain=ML)
class TreeEnsembleClassifier(OpDef):
    """ai.onnx.ml TreeEnsembleClassifier: X (N, F) or (F,) -> Y (N,) int64 labels (label
    indices for ``classlabels_strings``), Z (N, K) float32 scores. See :func:`classify`."""

    attrs = {**NODE_ATTRS, "class_ids": (), "class_nodeids": (), "class_treeids": (),
             "class_weights": (), "class_weights_as_tensor": None, "classlabels_int64s": (),
             "classlabels_strings": ()}

    def check(self, node: Node) -> None:
        _check_input(node, forest(node))

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        n = 1 if len(x.shape) == 1 else x.shape[0]
        K = len(node.attrs["classlabels_int64s"] or node.attrs["classlabels_strings"])
        return [TensorType((n,), np.int64), TensorType((n, K), np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        return list(classify(forest(node), _rows(x)))


@register_op("TreeEnsemble", domain=ML)
class TreeEnsemble(OpDef):
    """ai.onnx.ml TreeEnsemble (ml opset 5): X (N, F) float/double -> Y (N, n_targets) of X's
    type. Integer-coded aggregate_function (0 AVERAGE, 1 SUM, 2 MIN, 3 MAX) and post_transform
    (0 NONE, 1 SOFTMAX, 2 LOGISTIC, 3 SOFTMAX_ZERO, 4 PROBIT); see the module docstring."""

    attrs = {"aggregate_function": 1, "leaf_targetids": REQUIRED, "leaf_weights": REQUIRED,
             "membership_values": None, "n_targets": REQUIRED, "nodes_falseleafs": REQUIRED,
             "nodes_falsenodeids": REQUIRED, "nodes_featureids": REQUIRED,
             "nodes_hitrates": None, "nodes_missing_value_tracks_true": (),
             "nodes_modes": REQUIRED, "nodes_splits": REQUIRED, "nodes_trueleafs": REQUIRED,
             "nodes_truenodeids": REQUIRED, "post_transform": 0, "tree_roots": REQUIRED}

    def check(self, node: Node) -> None:
        _check_input(node, forest(node))
        if node.inputs[0].dtype.kind != "f":
            raise bad_attr(node, "X must be float or double")

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        n = 1 if len(x.shape) == 1 else x.shape[0]
        return [TensorType((n, int(node.attrs["n_targets"])), x.dtype)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        return [regress(forest(node), _rows(x)).astype(x.dtype)]
