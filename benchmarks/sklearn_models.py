"""scikit-learn pipelines exported with skl2onnx (ai.onnx.ml), compiled by onnxcc for the host
(C) and cpu (LLVM) targets and checked against onnxruntime, as emlearn and m2cgen do from
scikit-learn directly.

    python benchmarks/sklearn_models.py [--rows 64]

scikit-learn and skl2onnx are optional dependencies of this script only (``pip install
scikit-learn skl2onnx``), not of onnxcc or its tests. The data sets ship with scikit-learn (iris,
breast cancer, diabetes: no download). Each row: the ops of the exported graph, the largest
absolute difference from onnxruntime of the probabilities / predictions on host and cpu, the
share of labels equal to onnxruntime's, and the C library's weight bytes.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def pipelines():
    """(name, estimator, data set name, skl2onnx options) for each benchmarked pipeline."""
    from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    nozip = {"zipmap": False}
    return [
        ("scaler+logreg (iris)", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
         "iris", nozip),
        ("scaler+logreg (cancer, zipmap)",
         make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), "cancer", {}),
        ("scaler+linreg (diabetes)", make_pipeline(StandardScaler(), LinearRegression()),
         "diabetes", None),
        ("random forest (iris)", RandomForestClassifier(20, max_depth=6, random_state=0), "iris",
         nozip),
        ("random forest (diabetes)", RandomForestRegressor(20, max_depth=6, random_state=0),
         "diabetes", None),
        ("gradient boosting (cancer)", GradientBoostingClassifier(n_estimators=30,
                                                                  random_state=0), "cancer",
         nozip),
        ("gradient boosting (iris)", GradientBoostingClassifier(n_estimators=20, random_state=0),
         "iris", nozip),
        ("gradient boosting (diabetes)", GradientBoostingRegressor(n_estimators=30,
                                                                   random_state=0), "diabetes",
         None),
        ("scaler+SVR rbf (diabetes)", make_pipeline(StandardScaler(), SVR(kernel="rbf")),
         "diabetes", None),
        ("scaler+SVC rbf (iris)", make_pipeline(StandardScaler(), SVC(kernel="rbf")), "iris",
         nozip),
        ("scaler+SVC linear, prob (cancer)",
         make_pipeline(StandardScaler(), SVC(kernel="linear", probability=True, random_state=0)),
         "cancer", nozip),
        ("scaler+MLP (iris)", make_pipeline(StandardScaler(), MLPClassifier(
            (16,), max_iter=800, random_state=0)), "iris", nozip),
    ]


def dataset(name: str):
    from sklearn import datasets

    d = {"iris": datasets.load_iris, "cancer": datasets.load_breast_cancer,
         "diabetes": datasets.load_diabetes}[name]()
    return d.data.astype(np.float32), d.target


def export(est, X, options):
    from skl2onnx import to_onnx

    m = to_onnx(est, X[:1], target_opset={"": 17, "ai.onnx.ml": 3},
                options={id(est): options} if options else None)
    m.ir_version = 10   # onnxruntime 1.31 reads IR versions up to 13
    return m


def as_array(v) -> np.ndarray:
    """onnxruntime's output as an array (ZipMap's list of dicts -> (N, C) in key order)."""
    if isinstance(v, list) and v and isinstance(v[0], dict):
        keys = list(v[0])
        return np.array([[d[k] for k in keys] for d in v], np.float32)
    return np.asarray(v)


def run(rows: int) -> list[dict]:
    import onnxruntime as ort

    import onnxcc

    out = []
    for name, est, data, options in pipelines():
        X, y = dataset(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y)
        m = export(est, X, options)
        x = X[:rows]
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        want = dict(zip(names, (as_array(v) for v in sess.run(None, {"X": x}))))
        ops = sorted({n.op_type for n in m.graph.node})
        row = {"model": name, "ops": " ".join(ops), "host": "-", "cpu": "-", "labels": "-",
               "weights": "-", "compile_s": "-"}
        for t in ("host", "cpu"):
            try:
                t0 = time.perf_counter()
                cm = onnxcc.compile(m, t, input_shapes={"X": x.shape})
                if t == "host":
                    row["compile_s"] = f"{time.perf_counter() - t0:.2f}"
                got = cm.run({"X": x})
            except Exception as e:   # report, do not hide: the row says what failed
                row[t] = f"{type(e).__name__}: {str(e).splitlines()[0][:70]}"
                continue
            errs, agree = [], []
            for k, w in want.items():
                g = as_array(got[k])
                if w.dtype.kind in "iu":
                    agree.append(float(np.mean(g.reshape(w.shape) == w)))
                else:
                    errs.append(float(np.max(np.abs(g.reshape(w.shape).astype(np.float64) - w),
                                          initial=0)))
            row[t] = f"{max(errs, default=0):.2e}"
            if agree:
                row["labels"] = f"{min(agree) * 100:.0f}%"
            if t == "host":
                row["weights"] = str(sum(b.data.nbytes for b in cm.program.weights()))
        out.append(row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=64, help="samples per run (default 64)")
    args = p.parse_args()
    rows = run(args.rows)
    cols = ["model", "ops", "host", "cpu", "labels", "weights", "compile_s"]
    head = {"host": "host max |err|", "cpu": "cpu max |err|", "labels": "labels = ORT",
            "weights": "weight bytes", "compile_s": "compile s (host)"}
    print("| " + " | ".join(head.get(c, c) for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
