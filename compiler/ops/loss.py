"""Loss functions: NegativeLogLikelihoodLoss (opsets 12, 13, 22) and SoftmaxCrossEntropyLoss
(opsets 12, 13).

input/scores: float (N, C) or (N, C, d1, ..., dk); target/labels: int32 or int64 (N) or
(N, d1, ..., dk) with values in [0, C) or ``ignore_index``; weight: optional float (C). With
``reduction`` ``none`` the loss has target's shape, with ``sum`` or ``mean`` it is a scalar.
Semantics as the spec and its reference (``onnx.reference.ops.op_negative_log_likelihood_loss``):
``loss[n, d] = -input[n, target[n, d], d] * weight[target[n, d]]`` (weight 1 without the input),
0 where ``target == ignore_index``; ``mean`` divides the sum by the sum of the weights of the
targets not ignored (the count when there is no weight). SoftmaxCrossEntropyLoss applies it to
``log_prob = log(softmax(scores, axis=1))``, its optional second output.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import OpDef, bad_attr, register_op

REDUCTIONS = ("none", "sum", "mean")


def loss_params(node: Node) -> tuple[str, int | None]:
    """(reduction, ignore_index or None) of a loss node. Raises AttributeValueError for a
    reduction outside none/sum/mean."""
    red = node.attrs.get("reduction") or "mean"
    if isinstance(red, bytes):
        red = red.decode()
    if red not in REDUCTIONS:
        raise bad_attr(node, f"reduction {red!r} is not one of {', '.join(REDUCTIONS)}")
    ii = node.attrs.get("ignore_index")
    return red, None if ii is None else int(ii)


def _check_shapes(node: Node, x_shape: tuple, t_shape: tuple, w_shape: tuple | None) -> None:
    what = "scores" if node.op == "SoftmaxCrossEntropyLoss" else "input"
    if len(x_shape) < 2:
        raise ShapeError(f"{what} must be (N, C, d1, ...), got shape {list(x_shape)}",
                         node=node.name, op=node.op, hint="give the class scores a batch axis")
    if tuple(t_shape) != (x_shape[0],) + tuple(x_shape[2:]):
        raise ShapeError(f"target shape {list(t_shape)} must be {what} shape {list(x_shape)} "
                         "without axis 1", node=node.name, op=node.op,
                         hint="one class index per (n, d1, ...) position")
    if w_shape is not None and tuple(w_shape) != (x_shape[1],):
        raise ShapeError(f"weight shape {list(w_shape)} must be [C] = [{x_shape[1]}]",
                         node=node.name, op=node.op, hint="one weight per class")


def _loss_type(node: Node) -> TensorType:
    x, t = node.inputs[0], node.inputs[1]
    w = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else None
    _check_shapes(node, x.shape, t.shape, None if w is None else w.shape)
    if t.dtype.kind not in "iu":
        raise ShapeError(f"target must be int32 or int64, got {t.dtype.name}", node=node.name,
                         op=node.op, hint="cast the class indices to int64")
    red, _ = loss_params(node)
    return TensorType(t.shape if red == "none" else (), x.dtype)


def nll_loss(node: Node, logp: np.ndarray, target: np.ndarray,
             weight: np.ndarray | None) -> np.ndarray:
    """The NegativeLogLikelihoodLoss of ``logp`` (N, C, ...) at ``target`` (N, ...) with the
    node's reduction and ignore_index (module docstring). Raises IndexError for a target
    outside [0, C) that is not ignore_index (the spec calls it an error)."""
    red, ii = loss_params(node)
    n, c = logp.shape[:2]
    x3 = logp.reshape(n, c, -1)
    t2 = target.reshape(n, -1).astype(np.int64)
    keep = np.ones(t2.shape, bool) if ii is None else t2 != ii
    bad = keep & ((t2 < 0) | (t2 >= c))
    if bad.any():
        raise IndexError(f"node {node.name!r} ({node.op}): target value {int(t2[bad][0])} is "
                         f"outside [0, {c})")
    tc = np.where(keep, t2, 0)
    picked = np.take_along_axis(x3, tc[:, None, :], axis=1)[:, 0, :]
    w = np.ones(c, logp.dtype) if weight is None else weight.astype(logp.dtype)
    wt = np.where(keep, w[tc], 0).astype(logp.dtype)
    loss = np.where(keep, -picked * wt, 0).astype(logp.dtype)
    if red == "none":
        return loss.reshape(target.shape)
    if red == "sum":
        return np.asarray(loss.sum(dtype=logp.dtype), logp.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(loss.sum(dtype=logp.dtype) / wt.sum(dtype=logp.dtype), logp.dtype)


@register_op("NegativeLogLikelihoodLoss")
class NegativeLogLikelihoodLoss(OpDef):
    """ONNX NegativeLogLikelihoodLoss(input, target, weight?) -> loss (module docstring)."""

    attrs = {"reduction": "mean", "ignore_index": None}
    min_inputs, max_inputs = 2, 3

    def check(self, node: Node) -> None:
        loss_params(node)

    def infer(self, node: Node) -> list[TensorType]:
        return [_loss_type(node)]

    def reference(self, node: Node, x, target, weight=None) -> list[np.ndarray]:
        return [nll_loss(node, x, target, weight)]


def log_softmax_axis1(x: np.ndarray) -> np.ndarray:
    """log(softmax(x, axis=1)) as ``(x - max) - log(sum(exp(x - max)))``, in x's dtype."""
    m = np.max(x, axis=1, keepdims=True)
    s = x - m
    return (s - np.log(np.sum(np.exp(s), axis=1, keepdims=True))).astype(x.dtype)


@register_op("SoftmaxCrossEntropyLoss")
class SoftmaxCrossEntropyLoss(OpDef):
    """ONNX SoftmaxCrossEntropyLoss(scores, labels, weights?) -> (output, log_prob?): the
    NegativeLogLikelihoodLoss of ``log_prob = log_softmax(scores, axis=1)`` (module docstring);
    log_prob has the scores' shape."""

    attrs = {"reduction": "mean", "ignore_index": None}
    min_inputs, max_inputs = 2, 3

    def check(self, node: Node) -> None:
        loss_params(node)

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        return [_loss_type(node), TensorType(x.shape, x.dtype)][:len(node.outputs)]

    def reference(self, node: Node, x, target, weight=None) -> list[np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = log_softmax_axis1(x)
        return [nll_loss(node, lp, target, weight), lp][:len(node.outputs)]
