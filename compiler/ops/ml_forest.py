"""Tree ensembles of ``ai.onnx.ml`` as compact tables (:class:`Forest`), built once from a
TreeEnsembleClassifier/Regressor (ml opsets 1 and 3) or TreeEnsemble (ml opset 5) node's
attributes; :mod:`onnxcc.ops.ml_trees` computes on them (the numpy reference) and
:mod:`onnxcc.codegen.lower.ml_trees` walks them in generated code. See ml_trees' docstring for
the semantics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Node
from . import bad_attr

ML = "ai.onnx.ml"
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
LEAF = 6
MEMBER = 7   # TreeEnsemble's BRANCH_MEMBER (its ONNX code is 6, onnxcc's LEAF)
AGGREGATES = ("AVERAGE", "SUM", "MIN", "MAX")   # TreeEnsemble's integer codes, in order
TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")

# the attributes TreeEnsembleClassifier and TreeEnsembleRegressor share, with spec defaults
NODE_ATTRS = {"nodes_falsenodeids": (), "nodes_featureids": (), "nodes_hitrates": (),
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
                raise bad_attr(node, f"a leaf votes for target/class {k}, outside "
                               f"0..{n_targets - 1}")
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
