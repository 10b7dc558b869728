"""Support vector machines of the ONNX-ML domain (``ai.onnx.ml``): SVMRegressor and
SVMClassifier, as onnxruntime computes them (``svmregressor.cc``, ``svmclassifier.cc``,
``ml_common.h``; the spec leaves the scores' layout open). X is (N, C) or (C,), converted to
float32.

Kernels (kernel_params = gamma, coef0, degree): LINEAR x.s, POLY (gamma x.s + coef0)^degree, RBF
exp(-gamma |x - s|^2), SIGMOID tanh(gamma x.s + coef0).

- SVMRegressor: y = sum_j coefficients[j] K(x, sv_j) + rho[0]; without support vectors x .
  coefficients + rho[0] (onnxruntime's linear mode, whatever the kernel); one_class: y = 1 if y > 0
  else -1; then PROBIT when asked.
- SVMClassifier with support vectors (``vectors_per_class``, K classes, P = K (K - 1) / 2 pairs
  i < j in order): k_v = K(x, sv_v); the pair's score s = sum over class i's vectors of
  coefficients[j - 1, v] k_v + sum over class j's of coefficients[i, v] k_v + rho[pair] (summed in
  float64), a vote for i when s > 0 else for j; the label is the class of most votes (the
  first). Scores: with prob_a/prob_b, the pairwise probabilities r_ij = clip(1 - L(s A + B),
  1e-7, 1 - 1e-7) coupled into K class probabilities by Wu, Lin and Weng's method
  (libsvm's multiclass_probability, at most 100 iterations, stopping when the error is under
  0.005 / K), then the post transform; without, the P pair scores and their post transform,
  and for two classes (-s, s) (NONE) or (1 - s, s).
- SVMClassifier without support vectors (linear): scores = x @ coefficients(K, C)^T + rho[0], the
  label of the greatest (two classes without probabilities: class 1 when that score >= 0.5 with
  all coefficients >= 0 or > 0 otherwise), then the post transform.

``classlabels_strings``: the label output is the int64 index into the labels.
"""

from __future__ import annotations

import numpy as np

from ..ir import Node, TensorType
from . import OpDef, bad_attr, register_op
from .ml import class_labels, n_columns, n_rows, need_rank, post_transform, rows
from .ml_forest import ML
from .ml_trees import logistic, probit, transform

KERNELS = ("LINEAR", "POLY", "RBF", "SIGMOID")


def kernel(name: str, params, x: np.ndarray, sv: np.ndarray) -> np.ndarray:
    """K(x_i, sv_j) (N, S) for x (N, C), sv (S, C), in float32 (onnxruntime's kernel_dot)."""
    gamma, coef0, degree = (list(params) + [0.0, 0.0, 0.0])[:3]
    x, sv = x.astype(np.float32), sv.astype(np.float32)
    if name == "RBF":
        d = ((x[:, None, :] - sv[None, :, :]) ** 2).sum(axis=2, dtype=np.float32)
        return np.exp(np.float32(-gamma) * d).astype(np.float32)
    dot = (x @ sv.T).astype(np.float32)
    if name == "POLY":
        return np.power(np.float32(gamma) * dot + np.float32(coef0), np.float32(degree))
    if name == "SIGMOID":
        return np.tanh(np.float32(gamma) * dot + np.float32(coef0))
    return dot


def svm_parts(node: Node) -> tuple[str, list, np.ndarray, np.ndarray, float]:
    """(kernel, kernel_params, support vectors (S, C) or the coefficients as one (1, C) vector,
    their weights (S,), rho) of an SVMRegressor."""
    a = node.attrs
    C = n_columns(node)
    k = a["kernel_type"]
    if k not in KERNELS:
        raise bad_attr(node, f"kernel_type {k!r} is not one of {KERNELS}")
    S = int(a["n_supports"])
    coef = np.asarray(a["coefficients"], np.float32)
    rho = list(a["rho"]) or [0.0]
    if S > 0:
        sv = np.asarray(a["support_vectors"], np.float32)
        if sv.size != S * C or coef.size != S:
            raise bad_attr(node, f"needs n_supports x C = {S * C} support vector values and "
                           f"{S} coefficients")
        return k, list(a["kernel_params"]), sv.reshape(S, C), coef, float(rho[0])
    if coef.size != C:
        raise bad_attr(node, f"a linear SVM (n_supports = 0) needs C = {C} coefficients")
    # onnxruntime's linear mode: x . coefficients + rho, whatever kernel_type says
    return "LINEAR", [], coef.reshape(1, C), np.ones(1, np.float32), float(rho[0])


@register_op("SVMRegressor", domain=ML)
class SVMRegressor(OpDef):
    """ai.onnx.ml SVMRegressor: X (N, C) or (C,) -> Y (N, 1) float32 (module docstring)."""

    attrs = {"coefficients": (), "kernel_params": (), "kernel_type": "LINEAR", "n_supports": 0,
             "one_class": 0, "post_transform": "NONE", "rho": (), "support_vectors": ()}

    def check(self, node: Node) -> None:
        need_rank(node)
        post_transform(node)
        svm_parts(node)

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType((n_rows(node), 1), np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        k, params, sv, coef, rho = svm_parts(node)
        y = (kernel(k, params, rows(x), sv) @ coef + np.float32(rho)).astype(np.float32)
        if node.attrs["one_class"]:
            y = np.where(y > 0, 1, -1).astype(np.float32)
        if post_transform(node) == "PROBIT":
            y = probit(y)
        return [y.reshape(-1, 1)]




def multiclass_probability(r: np.ndarray) -> np.ndarray:
    """libsvm's multiclass_probability (Wu, Lin and Weng 2004, method 2) as onnxruntime computes
    it in float32: r (K, K) pairwise probabilities (r[i, j] = P(i | i or j)) -> p (K,)."""
    f = np.float32
    K = r.shape[0]
    Q = np.zeros((K, K), f)
    p = np.full(K, f(1) / f(K), f)
    for i in range(K):
        for j in range(i):
            Q[i, i] += r[j, i] * r[j, i]
            Q[i, j] = Q[j, i]
        for j in range(i + 1, K):
            Q[i, i] += r[j, i] * r[j, i]
            Q[i, j] = -r[j, i] * r[i, j]
    eps = f(0.005) / f(K)
    Qp = np.zeros(K, f)
    for _ in range(100):
        pQp = f(0)
        for i in range(K):
            Qp[i] = f(0)
            for j in range(K):
                Qp[i] += Q[i, j] * p[j]
            pQp += p[i] * Qp[i]
        if max(abs(Qp[i] - pQp) for i in range(K)) < eps:
            break
        for i in range(K):
            diff = (-Qp[i] + pQp) / Q[i, i]
            p[i] += diff
            pQp = (pQp + diff * (diff * Q[i, i] + f(2) * Qp[i])) / (f(1) + diff) / (f(1) + diff)
            for j in range(K):
                Qp[j] = (Qp[j] + diff * Q[i, j]) / (f(1) + diff)
                p[j] /= (f(1) + diff)
    return p


class SVC:
    """An SVMClassifier's parameters: K labels (int64, or indices of string labels), the support
    vectors sv (V, C) with per-class counts and starts, coefficients (K - 1, V) (linear mode:
    (K, C)), rho, prob_a/prob_b (empty without probabilities), kernel and its parameters."""

    def __init__(self, node: Node) -> None:
        a = node.attrs
        self.labels, _ = class_labels(node)
        self.K = K = len(self.labels)
        C = n_columns(node)
        if K < 2:
            raise bad_attr(node, "an SVMClassifier needs 2 or more class labels")
        self.kernel = a["kernel_type"]
        if self.kernel not in KERNELS:
            raise bad_attr(node, f"kernel_type {self.kernel!r} is not one of {KERNELS}")
        self.params = (list(a["kernel_params"]) + [0.0, 0.0, 0.0])[:3]
        self.vpc = [int(v) for v in a["vectors_per_class"]]
        V = sum(self.vpc)
        self.starts = list(np.cumsum([0] + self.vpc[:-1]))
        coef = np.asarray(a["coefficients"], np.float32)
        self.rho = np.asarray(a["rho"], np.float32)
        self.prob_a = np.asarray(a["prob_a"], np.float32)
        self.prob_b = np.asarray(a["prob_b"], np.float32)
        if self.prob_a.size != self.prob_b.size:
            raise bad_attr(node, "prob_a and prob_b must have as many values")
        self.all_positive = bool(np.all(coef >= 0))
        self.P = K * (K - 1) // 2
        if V > 0:
            sv = np.asarray(a["support_vectors"], np.float32)
            if len(self.vpc) != K or sv.size != V * C or coef.size != (K - 1) * V \
                    or self.rho.size < self.P:
                raise bad_attr(node, f"needs vectors_per_class for {K} classes, {V} x {C} "
                               f"support vector values, {K - 1} x {V} coefficients and {self.P} "
                               "rho values")
            if self.prob_a.size and self.prob_a.size < self.P:
                raise bad_attr(node, f"prob_a/prob_b need one value per pair ({self.P})")
            self.sv, self.coef = sv.reshape(V, C), coef.reshape(K - 1, V)
        else:
            if coef.size != K * C or self.rho.size < 1:
                raise bad_attr(node, f"a linear SVMClassifier needs {K} x {C} coefficients "
                               "and rho")
            self.sv, self.coef = None, coef.reshape(K, C)

    @property
    def width(self) -> int:
        """Columns of the scores output."""
        if self.sv is not None and not self.prob_a.size:
            return self.P if self.K > 2 else 2
        return self.K

    def pair_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores (N, P) float32, votes (N, K)) of the support-vector mode."""
        k = kernel(self.kernel, self.params, x, self.sv).astype(np.float64)
        N = x.shape[0]
        s = np.zeros((N, self.P), np.float32)
        votes = np.zeros((N, self.K), np.int64)
        idx = 0
        for i in range(self.K - 1):
            si, ni = self.starts[i], self.vpc[i]
            for j in range(i + 1, self.K):
                sj, nj = self.starts[j], self.vpc[j]
                tot = (k[:, si:si + ni] @ self.coef[j - 1, si:si + ni].astype(np.float64)
                       + k[:, sj:sj + nj] @ self.coef[i, sj:sj + nj].astype(np.float64)
                       + float(self.rho[idx]))
                s[:, idx] = tot
                votes[np.arange(N), np.where(tot > 0, i, j)] += 1
                idx += 1
        return s, votes


@register_op("SVMClassifier", domain=ML)
class SVMClassifier(OpDef):
    """ai.onnx.ml SVMClassifier: X (N, C) or (C,) -> Y (N,) int64 labels, Z (N, W) float32 (W:
    K, the P pair scores, or 2; module docstring)."""

    attrs = {"classlabels_ints": (), "classlabels_strings": (), "coefficients": (),
             "kernel_params": (), "kernel_type": "LINEAR", "post_transform": "NONE",
             "prob_a": (), "prob_b": (), "rho": (), "support_vectors": (),
             "vectors_per_class": ()}

    def check(self, node: Node) -> None:
        need_rank(node)
        m = SVC(node)
        if m.sv is not None and not m.prob_a.size and m.K == 2 and post_transform(node) == "PROBIT":
            raise bad_attr(node, "PROBIT on two classes without probabilities is not supported "
                           "(onnxruntime leaves the second score undefined)")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType((n_rows(node),), np.int64), TensorType((n_rows(node), SVC(node).width),
                                                              np.float32)]

    def reference(self, node: Node, x: np.ndarray) -> list[np.ndarray]:
        m = SVC(node)
        x = rows(x).astype(np.float32)
        post = post_transform(node)
        if m.sv is None:   # linear mode
            z = (x @ m.coef.T + m.rho[0]).astype(np.float32)
            best = np.argmax(z, axis=1)
            lab = m.labels[best]
            if m.K == 2 and not m.prob_a.size:
                w = z[np.arange(len(z)), best]
                win = (w >= 0.5) if m.all_positive else (w > 0)
                lab = np.where(win, m.labels[1], lab)
            return [lab.astype(np.int64), transform(post, z).astype(np.float32)]
        s, votes = m.pair_scores(x)
        lab = m.labels[np.argmax(votes, axis=1)].astype(np.int64)
        if m.prob_a.size:
            z = np.zeros((len(x), m.K), np.float32)
            for n in range(len(x)):
                r = np.zeros((m.K, m.K), np.float32)
                idx = 0
                for i in range(m.K - 1):
                    for j in range(i + 1, m.K):
                        v = 1 - logistic(np.float32(s[n, idx] * m.prob_a[idx] + m.prob_b[idx]))
                        v = min(max(np.float32(v), np.float32(1e-7)), np.float32(1 - 1e-7))
                        r[i, j], r[j, i] = v, np.float32(1) - v
                        idx += 1
                z[n] = multiclass_probability(r)
            return [lab, transform(post, z).astype(np.float32)]
        if m.K > 2:
            return [lab, transform(post, s).astype(np.float32)]
        v = logistic(s) if post == "LOGISTIC" else s
        z = np.concatenate([-v, v] if post == "NONE" else [1 - v, v], axis=1)
        return [lab, z.astype(np.float32)]
