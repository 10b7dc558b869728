"""ai.onnx.ml ops (onnxcc.ops.ml, onnxcc.ops.ml_trees): seeded models built with onnx.helper
(ml opset 3, TreeEnsemble at 5), the reference interpreter and the host C / cpu LLVM builds
against onnxruntime, which implements ai.onnx.ml; one tree ensemble on the emulated Cortex-M4."""

from __future__ import annotations

import itertools
import shutil
import zlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import numpy_helper

import onnxcc
from onnxcc.errors import AttributeValueError, UnsupportedOpError
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret

from builders import ort_run
from ml_models import MODES, ml_model, random_trees, v3_attrs, v5_attrs

TARGETS = ("host", "cpu")
TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT")
N, F = 12, 5


def features(seed: int, nan: bool = True) -> np.ndarray:
    """(N, F) float32 with NaNs in column 1 (every third row) and column 4 on a 0.1 grid (so the
    EQ/NEQ thresholds, drawn on that grid, are hit)."""
    x = np.random.default_rng(seed).standard_normal((N, F)).astype(np.float32)
    if nan:
        x[::3, 1] = np.nan
    x[:, 4] = np.round(x[:, 4], 1)
    return x


def check(model: onnx.ModelProto, feeds: dict, targets=TARGETS, rtol=1e-4, atol=1e-5) -> None:
    """The reference interpreter and each target's build equal onnxruntime on every output."""
    want = ort_run(model, feeds)
    outs = {"reference": interpret(import_onnx(model), **feeds)}
    for t in targets:
        outs[t] = onnxcc.compile(model, t).run(feeds)
    for where, got in outs.items():
        assert set(got) == set(want), where
        for k, w in want.items():
            assert got[k].shape == w.shape and got[k].dtype == w.dtype, (where, k)
            np.testing.assert_allclose(got[k], w, rtol=rtol, atol=atol, err_msg=f"{where} {k}")


def regressor(seed: int, agg: str, post: str, K: int, base: bool = True, **kw) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    a = v3_attrs(random_trees(rng, 4, F, 4, K, modes=MODES, missing=True, **kw), "target")
    if post == "PROBIT":   # scores inside (0, 1)
        a["target_weights"] = list(np.abs(a["target_weights"]) / 10)
    extra = {"base_values": list(rng.standard_normal(K) / 10)} if base else {}
    return ml_model("TreeEnsembleRegressor", [N, F], [("y", TP.FLOAT, [N, K])],
                    dict(a, n_targets=K, aggregate_function=agg, post_transform=post, **extra))


@pytest.mark.parametrize("agg,post,K", itertools.product(("SUM", "AVERAGE", "MIN", "MAX"),
                                                         TRANSFORMS, (1, 3)))
def test_tree_regressor_reference(agg, post, K):
    """Every aggregate and post transform, every branch mode, missing-value tracks, base values
    (one target: PROBIT is the only transform onnxruntime applies, which the reference copies)."""
    m = regressor(zlib.crc32(repr((agg, post, K)).encode()) % 1000, agg, post, K)
    x = features(1)
    want = ort_run(m, {"x": x})["y"]
    np.testing.assert_allclose(interpret(import_onnx(m), x=x)["y"], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("agg,post,K", [("SUM", "NONE", 1), ("AVERAGE", "SOFTMAX", 3),
                                        ("MIN", "LOGISTIC", 3), ("MAX", "SOFTMAX_ZERO", 3),
                                        ("SUM", "PROBIT", 1), ("SUM", "NONE", 3)])
def test_tree_regressor_builds(agg, post, K):
    check(regressor(7, agg, post, K, votes_per_leaf=2 if K > 1 else 1), {"x": features(2)})


def test_tree_regressor_leaves_unvoted_targets_at_zero():
    """onnxruntime 1.31 gives a target no tree voted for 0, not its base value."""
    trees = [[dict(id=0, mode="BRANCH_LEQ", feature=0, threshold=0.0, missing=0, true=1, false=2),
              dict(id=1, mode="LEAF", votes=[(1, 1.0)]), dict(id=2, mode="LEAF", votes=[(2, 5.0)])]]
    m = ml_model("TreeEnsembleRegressor", [2, 1], [("y", TP.FLOAT, [2, 3])],
                 dict(v3_attrs(trees, "target"), n_targets=3, base_values=[10.0, 20.0, 30.0]))
    x = np.array([[-1.0], [1.0]], np.float32)
    got = onnxcc.compile(m, "host").run({"x": x})["y"]
    np.testing.assert_array_equal(got, [[0, 21, 0], [0, 0, 35]])
    check(m, {"x": x})


def classifier(seed: int, post: str, K: int, n_base: int, targets=None, positive=False,
               labels=None) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    a = v3_attrs(random_trees(rng, 3, F, 3, K, modes=MODES, missing=True, targets=targets),
                 "class")
    if positive or post == "PROBIT":
        a["class_weights"] = list(np.abs(a["class_weights"]) / 4)
    extra = {"base_values": list(rng.standard_normal(n_base) / 4)} if n_base else {}
    return ml_model("TreeEnsembleClassifier", [N, F],
                    [("label", TP.INT64, [N]), ("scores", TP.FLOAT, [N, K])],
                    dict(a, classlabels_int64s=labels or list(range(10, 10 + K)),
                         post_transform=post, **extra))


# (post, K, base values, voted classes, weights >= 0): onnxruntime's well-defined cases (it
# leaves the second score unwritten when class 1 has no votes, one base value and both classes
# appear in the ensemble)
CLASSIFIERS = [(p, 3, nb, None, False) for p in TRANSFORMS for nb in (0, 3)] + [
    ("LOGISTIC", 2, 1, [0], False),      # gradient boosting, binary: one score, log-odds
    ("NONE", 2, 0, [0], True),           # one score, probabilities
    ("NONE", 2, 1, [1], False),
    ("SOFTMAX", 2, 2, None, False),
    ("LOGISTIC", 2, 2, [0], True),
    ("NONE", 2, 0, None, True),          # random forest, binary: both classes voted
    ("SOFTMAX_ZERO", 2, 0, None, False),
]


@pytest.mark.parametrize("post,K,nb,targets,positive", CLASSIFIERS)
def test_tree_classifier(post, K, nb, targets, positive):
    seed = zlib.crc32(repr((post, K, nb, targets)).encode()) % 1000
    m = classifier(seed, post, K, nb, targets, positive)
    check(m, {"x": features(3)}, targets=TARGETS if post in ("NONE", "LOGISTIC") else ())


@pytest.mark.parametrize("agg,post,K", [(1, 0, 1), (0, 1, 3), (2, 2, 3), (3, 3, 3), (1, 4, 1)])
def test_tree_ensemble_opset5(agg, post, K):
    """TreeEnsemble (ml opset 5): the spec's post_transform codes (1 SOFTMAX, 2 LOGISTIC);
    onnxruntime 1.31 reads 1 as LOGISTIC and 2 as SOFTMAX, so its model gets the swapped code."""
    rng = np.random.default_rng(agg * 10 + post)
    trees = random_trees(rng, 4, F, 3, K, modes=MODES, missing=True)
    a = dict(v5_attrs(trees), n_targets=K, aggregate_function=agg)
    if post == 4:
        a["leaf_weights"] = numpy_helper.from_array(
            np.abs(numpy_helper.to_array(a["leaf_weights"])) / 10)
    ours = ml_model("TreeEnsemble", [N, F], [("y", TP.FLOAT, [N, K])],
                    dict(a, post_transform=post), ml_opset=5)
    theirs = ml_model("TreeEnsemble", [N, F], [("y", TP.FLOAT, [N, K])],
                      dict(a, post_transform={1: 2, 2: 1}.get(post, post)), ml_opset=5)
    x = features(4)
    want = ort_run(theirs, {"x": x})["y"]
    for got in [interpret(import_onnx(ours), x=x)["y"],
                *(onnxcc.compile(ours, t).run({"x": x})["y"] for t in TARGETS)]:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_tree_double_thresholds():
    """*_as_tensor double thresholds and weights (compared and summed in float64) on a double X
    (onnxruntime's regressor takes float and double inputs)."""
    rng = np.random.default_rng(5)
    a = v3_attrs(random_trees(rng, 3, F, 3, 2, modes=("BRANCH_LEQ", "BRANCH_GT")), "target")
    a["nodes_values_as_tensor"] = numpy_helper.from_array(
        np.array(a.pop("nodes_values"), np.float64) * 3)
    a["target_weights_as_tensor"] = numpy_helper.from_array(np.array(a.pop("target_weights")))
    m = ml_model("TreeEnsembleRegressor", [N, F], [("y", TP.FLOAT, [N, 2])],
                 dict(a, n_targets=2), x_type=TP.DOUBLE)
    check(m, {"x": rng.integers(-4, 5, (N, F)) + rng.standard_normal((N, F)) * 1e-9})


def test_tree_ensemble_opset5_double():
    """TreeEnsemble on float64: double splits and weights, a float64 output, equal to
    onnxruntime to 1e-12."""
    rng = np.random.default_rng(24)
    a = v5_attrs(random_trees(rng, 3, F, 3, 2, modes=MODES, missing=True))
    for k in ("nodes_splits", "leaf_weights"):
        a[k] = numpy_helper.from_array(numpy_helper.to_array(a[k]).astype(np.float64))
    m = ml_model("TreeEnsemble", [N, F], [("y", TP.DOUBLE, [N, 2])], dict(a, n_targets=2),
                 ml_opset=5, x_type=TP.DOUBLE)
    check(m, {"x": features(25).astype(np.float64)}, rtol=1e-12, atol=1e-12)


def test_tree_classifier_string_labels():
    """classlabels_strings: the scores compile; a string label output is refused by name."""
    m = classifier(8, "NONE", 3, 0, labels=None)
    node = m.graph.node[0]
    for at in list(node.attribute):
        if at.name == "classlabels_int64s":
            node.attribute.remove(at)
    node.attribute.append(onnx.helper.make_attribute("classlabels_strings", ["a", "b", "c"]))
    m.graph.output[0].type.tensor_type.elem_type = TP.STRING
    with pytest.raises(UnsupportedOpError, match="label.*string tensors are not supported"):
        onnxcc.compile(m, "host")
    m.graph.output.remove(m.graph.output[0])
    check(m, {"x": features(6)}, targets=("host",))


def test_tree_refusals():
    rng = np.random.default_rng(9)
    trees = random_trees(rng, 2, F, 2, 1)
    a = v5_attrs(trees)
    modes = numpy_helper.to_array(a["nodes_modes"]).copy()
    modes[0] = modes[1] = 6   # two BRANCH_MEMBER nodes, one set
    a["nodes_modes"] = numpy_helper.from_array(modes)
    m = ml_model("TreeEnsemble", [N, F], [("y", TP.FLOAT, [N, 1])],
                 dict(a, n_targets=1, membership_values=numpy_helper.from_array(
                     np.array([1.0, 2.0], np.float32))), ml_opset=5)
    with pytest.raises(AttributeValueError, match="ml0.*2 BRANCH_MEMBER nodes but 1 sets"):
        onnxcc.compile(m, "host")
    m = regressor(1, "SUM", "NONE", 1)
    m.opset_import[1].version = 5   # deprecated there: onnxruntime refuses it too
    with pytest.raises(UnsupportedOpError, match="ml0.*deprecated in ai.onnx.ml opset 5"):
        onnxcc.compile(m, "host")
    m = regressor(1, "SUM", "NONE", 1)
    feat = next(at for at in m.graph.node[0].attribute if at.name == "nodes_featureids")
    del feat.ints[-1]   # one entry short: malformed
    with pytest.raises(AttributeValueError, match="ml0.*one entry per node"):
        onnxcc.compile(m, "host")


def test_other_domains_and_dotted_names_are_refused():
    m = regressor(1, "SUM", "NONE", 1)
    m.graph.node[0].domain = "ai.onnx.training"
    with pytest.raises(UnsupportedOpError, match="domain 'ai.onnx.training' is not supported"):
        onnxcc.compile(m, "host")
    m.graph.node[0].domain = ""
    m.graph.node[0].op_type = "ai.onnx.ml.TreeEnsembleRegressor"   # a key, not an op type
    with pytest.raises(UnsupportedOpError, match="op not implemented"):
        onnxcc.compile(m, "host")
    m = regressor(1, "SUM", "NONE", 1)
    del m.opset_import[1]
    with pytest.raises(UnsupportedOpError, match="imports no ai.onnx.ml opset"):
        onnxcc.compile(m, "host")


# ---- linear models, SVM, preprocessing -----------------------------------------------------
RNG = np.random.default_rng(11)
C = 4


def rnd(*shape, scale=1.0):
    return list((RNG.standard_normal(shape) * scale).reshape(-1).astype(float))


@pytest.mark.parametrize("post,T", itertools.product(TRANSFORMS, (1, 3)))
def test_linear_regressor(post, T):
    m = ml_model("LinearRegressor", [N, C], [("y", TP.FLOAT, [N, T])],
                 dict(coefficients=rnd(T, C, scale=0.1), intercepts=rnd(T, scale=0.1),
                      targets=T, post_transform=post))
    check(m, {"x": features(12, nan=False)[:, :C].copy()})


@pytest.mark.parametrize("post,E,two", [(p, 3, True) for p in TRANSFORMS] + [
    ("NONE", 1, True), ("LOGISTIC", 1, True), ("LOGISTIC", 1, False), ("PROBIT", 1, False)])
def test_linear_classifier(post, E, two):
    labels = list(range(5, 5 + max(E, 2))) if two or E > 1 else []
    W = 2 if E == 1 and two else E
    m = ml_model("LinearClassifier", [N, C], [("y", TP.INT64, [N]), ("z", TP.FLOAT, [N, W])],
                 dict(coefficients=rnd(E, C, scale=0.1), intercepts=rnd(E, scale=0.1),
                      post_transform=post, **({"classlabels_ints": labels} if labels else {})))
    check(m, {"x": features(13, nan=False)[:, :C].copy()})


@pytest.mark.parametrize("kernel,S,one_class", [("LINEAR", 5, 0), ("POLY", 5, 0), ("RBF", 6, 1),
                                                ("SIGMOID", 5, 0), ("RBF", 0, 0)])
def test_svm_regressor(kernel, S, one_class):
    m = ml_model("SVMRegressor", [N, C], [("y", TP.FLOAT, [N, 1])],
                 dict(coefficients=rnd(S or C), kernel_params=[0.3, 0.5, 2.0], kernel_type=kernel,
                      n_supports=S, one_class=one_class, rho=[0.1],
                      **({"support_vectors": rnd(S, C)} if S else {})))
    check(m, {"x": features(14, nan=False)[:, :C].copy()})


@pytest.mark.parametrize("K,kernel,prob,post,linear", [
    (2, "RBF", 0, "NONE", 0), (2, "POLY", 0, "LOGISTIC", 0), (3, "RBF", 0, "SOFTMAX", 0),
    (3, "SIGMOID", 1, "NONE", 0), (4, "RBF", 1, "NONE", 0), (2, "LINEAR", 1, "NONE", 0),
    (3, "LINEAR", 0, "NONE", 1), (2, "LINEAR", 0, "LOGISTIC", 1), (3, "LINEAR", 1, "NONE", 1)])
def test_svm_classifier(K, kernel, prob, post, linear):
    """One-vs-one votes and pair scores, prob_a/prob_b with libsvm's pairwise coupling, and the
    linear (no support vector) mode."""
    rng = np.random.default_rng(K * 100 + prob * 10 + linear)
    P = K * (K - 1) // 2
    a = dict(classlabels_ints=list(range(3, 3 + K)), kernel_type=kernel,
             kernel_params=[0.4, 0.3, 2.0], post_transform=post)
    if linear:
        a.update(coefficients=rnd(K, C), rho=[0.2])
    else:
        vpc = [int(v) for v in rng.integers(1, 4, K)]
        a.update(vectors_per_class=vpc, support_vectors=rnd(sum(vpc), C),
                 coefficients=rnd(K - 1, sum(vpc)), rho=rnd(P, scale=0.1))
    if prob:
        n = K if linear else P
        a.update(prob_a=list(-np.abs(rnd(n))), prob_b=rnd(n, scale=0.1))
    W = K if (linear or prob) else (P if K > 2 else 2)
    m = ml_model("SVMClassifier", [N, C], [("y", TP.INT64, [N]), ("z", TP.FLOAT, [N, W])], a)
    check(m, {"x": features(22, nan=False)[:, :C].copy()})


def test_array_feature_extractor_with_computed_indices():
    """skl2onnx's label lookup: the indices are a graph input (an ArgMax in a pipeline)."""
    x = features(23, nan=False)[:, :C].copy()
    m = ml_model("ArrayFeatureExtractor", None, [("y", TP.FLOAT, [N, 3])], {},
                 inputs={"x": (TP.FLOAT, [N, C]), "i": (TP.INT64, [3])})
    check(m, {"x": x, "i": np.array([2, 0, 3], np.int64)})


def test_preprocessing_ops():
    x = features(15, nan=False)[:, :C].copy()
    xn = x.copy()
    xn[0, 1], xn[2, 3] = np.nan, 0.5
    FL = TP.FLOAT
    cases = [
        (ml_model("Scaler", [N, C], [("y", FL, [N, C])], dict(offset=rnd(C), scale=rnd(C))), x),
        *((ml_model("Normalizer", [N, C], [("y", FL, [N, C])], dict(norm=n)), x)
          for n in ("MAX", "L1", "L2")),
        (ml_model("Binarizer", [N, C], [("y", FL, [N, C])], dict(threshold=0.2)), x),
        (ml_model("Imputer", [N, C], [("y", FL, [N, C])],
                  dict(imputed_value_floats=rnd(C), replaced_value_float=float("nan"))), xn),
        (ml_model("Imputer", [N, C], [("y", FL, [N, C])],
                  dict(imputed_value_floats=[7.0], replaced_value_float=0.5)), xn),
        (ml_model("ArrayFeatureExtractor", [N, C], [("y", FL, [N, 3])], {},
                  inits={"idx": np.array([3, 0, 3], np.int64)}), x),
        (ml_model("ZipMap", [N, C], [("y", FL, [N, C])], dict(classlabels_int64s=[1, 2, 3, 4])),
         None),
    ]
    for m, feed in cases:
        if m.graph.node[0].op_type == "ZipMap":   # a list of {label: probability} dicts
            seq = onnx.helper.make_value_info("y", onnx.helper.make_sequence_type_proto(
                onnx.helper.make_map_type_proto(TP.INT64, onnx.helper.make_tensor_type_proto(
                    TP.FLOAT, []))))
            m.graph.output[0].CopyFrom(seq)
            want = ort_run(m, {"x": x})["y"]
            for t in TARGETS:
                got = onnxcc.compile(m, t).run({"x": x})["y"]
                assert [list(d) for d in got] == [list(d) for d in want] == [[1, 2, 3, 4]] * N
                np.testing.assert_allclose([list(d.values()) for d in got],
                                           [list(d.values()) for d in want], rtol=1e-6)
            assert onnxcc.compile(m, "host").run_arrays({"x": x})["y"].shape == (N, C)
            continue
        check(m, {"x": feed})


def test_feature_vectorizer_and_encoders():
    x = features(16, nan=False)[:, :C].copy()
    m = ml_model("FeatureVectorizer", None, [("y", TP.FLOAT, [N, 7])],
                 dict(inputdimensions=[3, 4]), inputs={"a": (TP.FLOAT, [N, 4]),
                                                       "b": (TP.FLOAT, [N, 2])})
    check(m, {"a": x, "b": x[:, :2].copy()})
    xi = np.random.default_rng(17).integers(0, 5, (N, 3)).astype(np.int64)
    check(ml_model("OneHotEncoder", [N, 3], [("y", TP.FLOAT, [N, 3, 3])],
                   dict(cats_int64s=[1, 3, 4]), x_type=TP.INT64), {"x": xi})
    check(ml_model("LabelEncoder", [N, 3], [("y", TP.INT64, [N, 3])],
                   dict(keys_int64s=[1, 3, 4], values_int64s=[10, 30, 40], default_int64=-5),
                   x_type=TP.INT64, ml_opset=2), {"x": xi})
    check(ml_model("LabelEncoder", [N, 3], [("y", TP.FLOAT, [N, 3])],
                   dict(keys_int64s=[1, 3, 4], values_floats=[0.1, 0.3, 0.4]),
                   x_type=TP.INT64, ml_opset=2), {"x": xi})
    xf = xi.astype(np.float32)
    xf[0, 0] = np.nan
    check(ml_model("LabelEncoder", [N, 3], [("y", TP.INT64, [N, 3])],
                   dict(keys_tensor=numpy_helper.from_array(np.array([1, 3, np.nan], np.float32)),
                        values_tensor=numpy_helper.from_array(np.array([10, 30, 99], np.int64))),
                   ml_opset=4), {"x": xf})
    m = ml_model("OneHotEncoder", [N, 3], [("y", TP.FLOAT, [N, 3, 3])],
                 dict(cats_int64s=[1, 3, 4], zeros=0), x_type=TP.INT64)
    with pytest.raises(AttributeValueError, match="ml0.*zeros=0"):
        onnxcc.compile(m, "host")


def test_scaler_tree_pipeline_with_zipmap():
    """Scaler -> TreeEnsembleClassifier -> ZipMap, as skl2onnx writes a pipeline: run() returns
    onnxruntime's list of {label: probability} dicts."""
    rng = np.random.default_rng(18)
    a = v3_attrs(random_trees(rng, 3, F, 3, 3), "class")
    a["class_weights"] = list(np.abs(a["class_weights"]))
    nodes = [onnx.helper.make_node("Scaler", ["x"], ["xs"], domain="ai.onnx.ml",
                                   offset=rnd(F), scale=rnd(F)),
             onnx.helper.make_node("TreeEnsembleClassifier", ["xs"], ["label", "p"],
                                   domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2],
                                   post_transform="SOFTMAX", **a),
             onnx.helper.make_node("ZipMap", ["p"], ["probs"], domain="ai.onnx.ml",
                                   classlabels_int64s=[0, 1, 2])]
    seq = onnx.helper.make_value_info("probs", onnx.helper.make_sequence_type_proto(
        onnx.helper.make_map_type_proto(TP.INT64, onnx.helper.make_tensor_type_proto(TP.FLOAT,
                                                                                      []))))
    g = onnx.helper.make_graph(nodes, "pipe",
                               [onnx.helper.make_tensor_value_info("x", TP.FLOAT, [N, F])],
                               [onnx.helper.make_tensor_value_info("label", TP.INT64, [N]), seq])
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17),
                                                 onnx.helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 10
    x = features(19, nan=False)
    want = ort_run(m, {"x": x})
    for t in TARGETS:
        got = onnxcc.compile(m, t).run({"x": x})
        np.testing.assert_array_equal(got["label"], want["label"])
        assert [sorted(d) for d in got["probs"]] == [[0, 1, 2]] * N
        np.testing.assert_allclose([[d[k] for k in (0, 1, 2)] for d in got["probs"]],
                                   [[d[k] for k in (0, 1, 2)] for d in want["probs"]],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or
                    shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
def test_tree_classifier_on_qemu():
    """The node tables walked on an emulated Cortex-M4 (mps2-an386) equal onnxruntime."""
    from onnxcc.runtime import qemu

    m = classifier(20, "SOFTMAX", 3, 3)
    x = features(21)
    out = qemu.run_on_qemu(onnxcc.compile(m, "cortex-m4"), {"x": x})
    want = ort_run(m, {"x": x})
    np.testing.assert_array_equal(out["label"], want["label"])
    np.testing.assert_allclose(out["scores"], want["scores"], rtol=1e-4, atol=1e-5)


def test_onnx_ml_node_cases():
    """The onnx wheel's ai.onnx.ml node cases (models that import no default-domain opset): the
    numeric ones (set membership included) pass on host and cpu; string label encoders are
    refused by name."""
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [c for c in collect_testcases()
                 if any(n.domain == "ai.onnx.ml" for n in c.model.graph.node)]
    passed = []
    for c in cases:
        m = c.model
        if "string" in c.name or any(vi.type.tensor_type.elem_type == TP.STRING
                                     for vi in m.graph.input):
            with pytest.raises(UnsupportedOpError, match="not supported"):
                onnxcc.compile(m, "host")
            continue
        for t in TARGETS:
            cm = onnxcc.compile(m, t)
            for ins, outs in c.data_sets:
                got = cm.run({vi.name: a for vi, a in zip(m.graph.input, ins)})
                for vi, want in zip(m.graph.output, outs):
                    np.testing.assert_allclose(got[vi.name], want, rtol=1e-5, atol=1e-6)
        passed.append(c.name)
    assert {"test_ai_onnx_ml_array_feature_extractor", "test_ai_onnx_ml_binarizer",
            "test_ai_onnx_ml_tree_ensemble_single_tree",
            "test_ai_onnx_ml_tree_ensemble_set_membership"} <= set(passed)
