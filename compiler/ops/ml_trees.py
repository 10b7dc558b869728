"""Tree ensembles of the ONNX-ML domain (``ai.onnx.ml``): TreeEnsembleClassifier and
TreeEnsembleRegressor (ml opsets 1 and 3) and TreeEnsemble (ml opset 5).

Each op's attributes are read once into a :class:`Forest`: compact node tables (the arrays the
generated code walks, also what the numpy reference walks) with every tree's nodes at a global
index, leaves pointing to themselves (so a walk of a fixed ``depth`` steps from every root ends on
a leaf), and a dense leaf table of weights per target (``weights[leaf, k]`` with ``has[leaf, k]``
saying whether the leaf votes for target ``k`` at all, as onnxruntime's ``has_score``).

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

from dataclasses import dataclass

import numpy as np

from ..ir import Node, TensorType
from . import REQUIRED, OpDef, bad_attr, register_op

ML = "ai.onnx.ml"
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
LEAF = 6
MEMBER = 7   # TreeEnsemble's BRANCH_MEMBER (its ONNX code is 6, onnxcc's LEAF)
AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")   # TreeEnsemble's integer codes, in order
TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")

_NODES = {"nodes_falsenodeids": (), "nodes_featureids": (), "nodes_hitrates": (),
          "nodes_hitrates_as_tensor": None, "nodes_missing_value_tracks_true": (),
          "nodes_modes": (), "nodes_nodeids": (), "nodes_treeids": (), "nodes_truenodeids": (),
          "nodes_values": (), "nodes_values_as_tensor": None, "post_transform": "NONE",
          "base_values": (), "base_values_as_tensor": None}


@dataclass
class Forest:
    """A tree ensemble as tables. M nodes (leaves included), T trees, L leaves, K targets.

    feature (M,) int32, threshold (M,) ``dtype``, true/false (M,) int32 (global node indices;
    a leaf points to itself), mode (M,) int8 (index into MODES, LEAF for leaves), missing (M,)
    bool, roots (T,) int32, leaf (M,) int32 (row of a leaf in ``weights``, 0 for a branch),
    weights (L, K) ``dtype`` (a leaf's summed votes, or for MIN/MAX the least/greatest), has
    (L, K) bool; depth: the most branch nodes on a path from a root; aggregate, transform: the
    names above; base (K or 0 values, ``dtype``), classes: the classifier's int64 labels (or
    label indices), None for a regressor; binary_case/all_positive: onnxruntime's two-class
    flags."""

    feature: np.ndarray
    threshold: np.ndarray
    true: np.ndarray
    false: np.ndarray
    mode: np.ndarray
    missing: np.ndarray
    roots: np.ndarray
    leaf: np.ndarray
    weights: np.ndarray
    has: np.ndarray
    depth: int
    aggregate: str
    transform: str
    base: np.ndarray
    classes: np.ndarray | None = None
    binary_case: bool = False
    all_positive: bool = False
    member_row: np.ndarray | None = None   # (M,) row of a MEMBER node's set in ``members``
    members: np.ndarray | None = None      # (R, S) the sets, NaN-padded, ``dtype``

    @property
    def dtype(self) -> np.dtype:
        return self.threshold.dtype

    @property
    def modes_used(self) -> list[int]:
        """The branch modes some node uses, ascending."""
        return sorted({int(m) for m in self.mode if m != LEAF})


def _floats(node: Node, name: str) -> np.ndarray:
    """Attribute ``name`` as an array: its ``_as_tensor`` (double) form when given, else the
    float32 list."""
    t = node.attrs.get(f"{name}_as_tensor")
    if t is not None:
        return np.asarray(t).reshape(-1)
    return np.asarray(node.attrs.get(name, ()), np.float32).reshape(-1)


def _finish(node: Node, feature, threshold, true, false, mode, missing, roots, leaf_targets,
            n_targets: int, aggregate: str, transform: str, base) -> Forest:
    """The Forest of tables whose leaves are ``mode == LEAF``; ``leaf_targets[global node]`` is
    a list of (target, weight) votes. Checks children, cycles and targets, by node name."""
    M = len(feature)
    dt = np.float64 if threshold.dtype == np.float64 or \
        any(np.asarray(w).dtype == np.float64 for w in (base,)) else np.float32
    for arr, what in ((true, "true"), (false, "false")):
        bad = [i for i in range(M) if mode[i] != LEAF and not 0 <= arr[i] < M]
        if bad:
            raise bad_attr(node, f"a {what} child of tree node {bad[0]} is not a node of its tree")
    leaves = [i for i in range(M) if mode[i] == LEAF]
    leaf = np.zeros(M, np.int32)
    for r, i in enumerate(leaves):
        leaf[i] = r
        true[i] = false[i] = i
    L = max(len(leaves), 1)
    weights = np.zeros((L, n_targets), dt)
    has = np.zeros((L, n_targets), bool)
    for i in leaves:
        for k, w in leaf_targets.get(i, ()):
            if not 0 <= k < n_targets:
                raise bad_attr(node, f"a leaf votes for target/class {k}, outside 0..{n_targets - 1}")
            r = leaf[i]
            if not has[r, k]:
                weights[r, k] = w
            elif aggregate == "MIN":
                weights[r, k] = min(weights[r, k], w)
            elif aggregate == "MAX":
                weights[r, k] = max(weights[r, k], w)
            else:
                weights[r, k] += w
            has[r, k] = True
    # depth: the longest chain of branch nodes from a root (a cycle is malformed)
    depth = 0
    memo: dict[int, int] = {}
    for root in roots:
        stack = [(int(root), 0)]
        while stack:
            i, d = stack.pop()
            if d > M:
                raise bad_attr(node, "the trees have a cycle")
            if mode[i] == LEAF:
                depth = max(depth, d)
                continue
            if memo.get(i, -1) >= d:
                continue
            memo[i] = d
            stack += [(int(true[i]), d + 1), (int(false[i]), d + 1)]
    return Forest(np.asarray(feature, np.int32), threshold.astype(dt), np.asarray(true, np.int32),
                  np.asarray(false, np.int32), np.asarray(mode, np.int8),
                  np.asarray(missing, bool), np.asarray(roots, np.int32), leaf, weights, has,
                  depth, aggregate, transform, np.asarray(base, dt).reshape(-1))


def forest_v3(node: Node, classifier: bool) -> Forest:
    """The Forest of a TreeEnsembleClassifier/Regressor node (ml opsets 1 and 3): nodes keyed
    by (tree id, node id), votes by (tree id, node id, class/target id)."""
    a = node.attrs
    tids, nids = list(a["nodes_treeids"]), list(a["nodes_nodeids"])
    M = len(nids)
    fields = {k: list(a[k]) for k in ("nodes_featureids", "nodes_modes", "nodes_truenodeids",
                                      "nodes_falsenodeids")}
    values = _floats(node, "nodes_values")
    missing = list(a["nodes_missing_value_tracks_true"]) or [0] * M
    if any(len(v) != M for v in (tids, *fields.values(), missing)) or len(values) not in (M,):
        raise bad_attr(node, "the nodes_* attributes must all have one entry per node")
    index = {}
    for i, key in enumerate(zip(tids, nids)):
        if key in index:
            raise bad_attr(node, f"tree {key[0]} has two nodes {key[1]}")
        index[key] = i
    mode = []
    for m in fields["nodes_modes"]:
        if m == "LEAF":
            mode.append(LEAF)
        elif m in MODES:
            mode.append(MODES.index(m))
        else:
            raise bad_attr(node, f"node mode {m!r} is not supported (one of {MODES + ('LEAF',)})")

    def child(ids: list[int]) -> list[int]:
        return [index.get((t, c), -1) if mode[i] != LEAF else i
                for i, (t, c) in enumerate(zip(tids, ids))]

    true, false = child(fields["nodes_truenodeids"]), child(fields["nodes_falsenodeids"])
    children = {c for i in range(M) if mode[i] != LEAF for c in (true[i], false[i])}
    roots, seen = [], set()
    for i, t in enumerate(tids):   # trees in order of first appearance, each its one root
        if t not in seen and i not in children:
            seen.add(t)
            roots.append(i)
    p = "class" if classifier else "target"
    vt, vn, vk = (list(a[f"{p}_treeids"]), list(a[f"{p}_nodeids"]), list(a[f"{p}_ids"]))
    vw = _floats(node, f"{p}_weights")
    if not len(vt) == len(vn) == len(vk) == len(vw):
        raise bad_attr(node, f"the {p}_* attributes must all have one entry per vote")
    votes: dict[int, list] = {}
    for t, n, k, w in zip(vt, vn, vk, vw):
        if (t, n) not in index or mode[index[(t, n)]] != LEAF:
            raise bad_attr(node, f"a {p} weight names tree {t} node {n}, which is not a leaf")
        votes.setdefault(index[(t, n)], []).append((int(k), float(w)))
    base = _floats(node, "base_values")
    if classifier:
        labels = a["classlabels_int64s"] or a["classlabels_strings"]
        K = len(labels)
        if K < 2:
            raise bad_attr(node, f"a classifier needs 2 or more class labels, got {K}")
        aggregate = "SUM"
    else:
        K, aggregate = int(a["n_targets"]), a["aggregate_function"]
        if aggregate not in AGGREGATES:
            raise bad_attr(node, f"aggregate_function {aggregate!r} is not one of {AGGREGATES}")
    if a["post_transform"] not in TRANSFORMS:
        raise bad_attr(node, f"post_transform {a['post_transform']!r} is not one of {TRANSFORMS}")
    thr = values.astype(np.float64 if values.dtype == np.float64 else np.float32)
    f = _finish(node, fields["nodes_featureids"], thr, np.array(true), np.array(false),
                np.array(mode), [bool(m) for m in missing], roots, votes, K, aggregate,
                a["post_transform"], base)
    if classifier:
        f.classes = (np.asarray(a["classlabels_int64s"], np.int64) if a["classlabels_int64s"]
                     else np.arange(K, dtype=np.int64))
        f.binary_case = K == 2 and len(set(vk)) == 1
        f.all_positive = bool(np.all(vw >= 0))
    return f


def forest_v5(node: Node) -> Forest:
    """The Forest of a TreeEnsemble node (ml opset 5): branch nodes by index, each child either
    a node index or (``nodes_trueleafs``/``nodes_falseleafs``) a leaf index; leaves at global
    indices M.. after the branch nodes."""
    a = node.attrs
    splits = np.asarray(a["nodes_splits"]).reshape(-1)
    feat = list(a["nodes_featureids"])
    modes = np.asarray(a["nodes_modes"]).reshape(-1).astype(int)
    tn, fn = list(a["nodes_truenodeids"]), list(a["nodes_falsenodeids"])
    tl, fl = list(a["nodes_trueleafs"]), list(a["nodes_falseleafs"])
    M = len(splits)
    missing = list(a["nodes_missing_value_tracks_true"]) or [0] * M
    if any(len(v) != M for v in (feat, modes, tn, fn, tl, fl, missing)):
        raise bad_attr(node, "the nodes_* attributes must all have one entry per node")
    if any(not 0 <= m <= 6 for m in modes):
        raise bad_attr(node, f"nodes_modes holds {sorted(set(modes.tolist()))}, not modes 0..6")
    sets: list[list[float]] = [[]]
    mv = a.get("membership_values")
    for v in (np.asarray(mv).reshape(-1) if mv is not None else ()):
        if np.isnan(v):
            sets.append([])
        else:
            sets[-1].append(float(v))
    if sets and not sets[-1]:
        sets.pop()
    n_member = int(np.sum(modes == 6))
    if n_member and len(sets) != n_member:
        raise bad_attr(node, f"{n_member} BRANCH_MEMBER nodes but {len(sets)} sets in "
                       "membership_values (NaN-separated)")
    targets = list(a["leaf_targetids"])
    lw = np.asarray(a["leaf_weights"]).reshape(-1)
    if len(targets) != len(lw):
        raise bad_attr(node, "leaf_targetids and leaf_weights must have one entry per leaf")
    nL = len(lw)

    def child(ids, leafy):
        out = []
        for i, (c, isl) in enumerate(zip(ids, leafy)):
            if isl and not 0 <= c < nL:
                raise bad_attr(node, f"node {i} names leaf {c}, outside 0..{nL - 1}")
            out.append(M + c if isl else c)
        return out

    dt = np.float64 if splits.dtype == np.float64 else np.float32
    feature = feat + [0] * nL
    threshold = np.concatenate([splits.astype(dt), np.zeros(nL, dt)])
    true = np.array(child(tn, tl) + list(range(M, M + nL)))
    false = np.array(child(fn, fl) + list(range(M, M + nL)))
    mode = np.array([MEMBER if m == 6 else m for m in modes] + [LEAF] * nL)
    votes = {M + j: [(int(targets[j]), float(lw[j]))] for j in range(nL)}
    agg, post = int(a["aggregate_function"]), int(a["post_transform"])
    if not 0 <= agg < 4 or not 0 <= post < 5:
        raise bad_attr(node, f"aggregate_function {agg} / post_transform {post} out of range")
    roots = list(a["tree_roots"])
    if any(not 0 <= r < M for r in roots):
        raise bad_attr(node, "tree_roots must index nodes")
    f = _finish(node, feature, threshold, true, false, mode,
                [bool(m) for m in missing] + [False] * nL, roots, votes, int(a["n_targets"]),
                AGGREGATES[agg], TRANSFORMS[post], ())
    if n_member:
        S = max(len(x) for x in sets)
        f.members = np.full((n_member, S), np.nan, f.dtype)
        for r, x in enumerate(sets):
            f.members[r, :len(x)] = x
        f.member_row = np.zeros(len(mode), np.int32)
        f.member_row[np.flatnonzero(mode == MEMBER)] = np.arange(n_member)
    return f


def forest(node: Node) -> Forest:
    """The Forest of any tree-ensemble node (built from its attributes on each call)."""
    if node.op.endswith(".TreeEnsemble"):
        return forest_v5(node)
    return forest_v3(node, node.op.endswith("Classifier"))


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

    attrs = {**_NODES, "aggregate_function": "SUM", "n_targets": REQUIRED, "target_ids": (),
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

    attrs = {**_NODES, "class_ids": (), "class_nodeids": (), "class_treeids": (),
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
