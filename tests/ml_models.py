"""Seeded ONNX-ML models built with onnx.helper (ai.onnx.ml opset 3, TreeEnsemble at 5), for
tests/ops/test_ml_ops.py."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from builders import IR_VERSION

ML = "ai.onnx.ml"
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")


def random_trees(rng: np.random.Generator, n_trees: int, n_features: int, depth: int,
                 n_targets: int, modes=("BRANCH_LEQ",), missing: bool = False,
                 votes_per_leaf: int = 1, targets=None) -> list[dict]:
    """Random binary trees: each a list of node dicts (id, feature, threshold, mode, true,
    false, missing, votes [(target, weight)]), node ids 0.. in preorder; a branch becomes a leaf
    with probability 0.25 below depth 1, always at ``depth``. ``targets`` limits the voted
    targets."""
    targets = list(range(n_targets)) if targets is None else list(targets)
    trees = []
    for _ in range(n_trees):
        nodes: list[dict] = []

        def build(d: int) -> int:
            i = len(nodes)
            nd: dict = {"id": i}
            nodes.append(nd)
            if d == depth or (d > 0 and rng.random() < 0.25):
                k = rng.choice(targets, size=votes_per_leaf)
                nd.update(mode="LEAF", votes=[(int(t), float(rng.standard_normal()))
                                              for t in k])
                return i
            m = modes[rng.integers(len(modes))]
            thr = float(np.round(rng.standard_normal(), 1)) if m in MODES[4:] else \
                float(rng.standard_normal())
            nd.update(mode=m, feature=int(rng.integers(n_features)), threshold=thr,
                      missing=int(missing and rng.random() < 0.5))
            nd["true"] = build(d + 1)
            nd["false"] = build(d + 1)
            return i

        build(0)
        trees.append(nodes)
    return trees


def v3_attrs(trees: list[dict], prefix: str) -> dict:
    """TreeEnsembleClassifier/Regressor attributes of ``trees`` (``prefix`` class or target)."""
    a: dict = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes",
                               "nodes_values", "nodes_truenodeids", "nodes_falsenodeids",
                               "nodes_missing_value_tracks_true", f"{prefix}_treeids",
                               f"{prefix}_nodeids", f"{prefix}_ids", f"{prefix}_weights")}
    for t, nodes in enumerate(trees):
        for nd in nodes:
            leaf = nd["mode"] == "LEAF"
            a["nodes_treeids"].append(t)
            a["nodes_nodeids"].append(nd["id"])
            a["nodes_featureids"].append(0 if leaf else nd["feature"])
            a["nodes_modes"].append(nd["mode"])
            a["nodes_values"].append(0.0 if leaf else nd["threshold"])
            a["nodes_truenodeids"].append(0 if leaf else nd["true"])
            a["nodes_falsenodeids"].append(0 if leaf else nd["false"])
            a["nodes_missing_value_tracks_true"].append(0 if leaf else nd["missing"])
            for k, w in nd.get("votes", ()):
                a[f"{prefix}_treeids"].append(t)
                a[f"{prefix}_nodeids"].append(nd["id"])
                a[f"{prefix}_ids"].append(k)
                a[f"{prefix}_weights"].append(w)
    return a


def v5_attrs(trees: list[dict]) -> dict:
    """TreeEnsemble (ml opset 5) attributes of ``trees`` (one vote per leaf)."""
    a: dict = {k: [] for k in ("nodes_featureids", "nodes_splits", "nodes_modes",
                               "nodes_truenodeids",
                               "nodes_falsenodeids", "nodes_trueleafs", "nodes_falseleafs",
                               "nodes_missing_value_tracks_true", "leaf_targetids",
                               "leaf_weights", "tree_roots")}
    for nodes in trees:
        branch = {nd["id"]: None for nd in nodes if nd["mode"] != "LEAF"}
        leaves = {nd["id"]: None for nd in nodes if nd["mode"] == "LEAF"}
        for nid in branch:
            branch[nid] = len(a["nodes_splits"]) + list(branch).index(nid)
        for j, nid in enumerate(leaves):
            leaves[nid] = len(a["leaf_weights"]) + j
        a["tree_roots"].append(branch[0])
        for nd in nodes:
            if nd["mode"] == "LEAF":
                continue
            a["nodes_featureids"].append(nd["feature"])
            a["nodes_splits"].append(nd["threshold"])
            a["nodes_modes"].append(MODES.index(nd["mode"]))
            a["nodes_missing_value_tracks_true"].append(nd["missing"])
            for side in ("true", "false"):
                c = nd[side]
                isleaf = c in leaves
                a[f"nodes_{side}nodeids"].append(leaves[c] if isleaf else branch[c])
                a[f"nodes_{side}leafs"].append(int(isleaf))
        for nd in nodes:
            if nd["mode"] == "LEAF":
                (k, w), = nd["votes"]
                a["leaf_targetids"].append(k)
                a["leaf_weights"].append(w)
    out = {k: v for k, v in a.items() if k not in ("nodes_splits", "nodes_modes", "leaf_weights")}
    out["nodes_splits"] = numpy_helper.from_array(np.array(a["nodes_splits"], np.float32))
    out["nodes_modes"] = numpy_helper.from_array(np.array(a["nodes_modes"], np.uint8))
    out["leaf_weights"] = numpy_helper.from_array(np.array(a["leaf_weights"], np.float32))
    return out


def ml_model(op: str, x_shape, outputs: list[tuple], attrs: dict, ml_opset: int = 3,
             x_type: int = TensorProto.FLOAT, extra_nodes=(), inputs=None,
             inits=None) -> onnx.ModelProto:
    """One ai.onnx.ml node ``ml0`` reading graph input ``x`` (or ``inputs``: name -> (type,
    shape)) and the initializers ``inits``; ``outputs`` are (name, ONNX type, shape), a name
    starting with ``_`` being a node output that is not a graph output; ``extra_nodes``
    follow it."""
    ins = inputs or {"x": (x_type, x_shape)}
    node = helper.make_node(op, list(ins) + list(inits or {}), [o[0].lstrip("_") for o in outputs],
                            name="ml0", domain=ML, **attrs)
    g = helper.make_graph(
        [node, *extra_nodes], "ml",
        [helper.make_tensor_value_info(k, t, s) for k, (t, s) in ins.items()],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs if not n.startswith("_")],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid(ML, ml_opset)])
    m.ir_version = IR_VERSION
    return m
