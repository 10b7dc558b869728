"""Normalizations (inference form) and the softmax family.

x is (N, C, *S) for BatchNormalization and InstanceNormalization (per-channel parameters of shape
(C,)); LayerNormalization normalizes over the trailing axes from ``axis``. Softmax, LogSoftmax and
Hardmax work along the axes :func:`softmax_axes` returns (opset < 13: the input coerced to 2-D at
``axis``; 13+: the single ``axis``).
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Node, TensorType
from . import REQUIRED, OpDef, attr, bad_attr, register_op
from ._util import norm_axes, norm_axis


def _ct(x: np.ndarray) -> np.dtype:
    """Compute type: float64 stays, everything else (float16 included) runs in float32."""
    return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)


def _per_channel(p: np.ndarray, rank: int, ct) -> np.ndarray:
    """A parameter of shape (C, ...) reshaped to broadcast against (N, C, *S)."""
    p = np.asarray(p, ct)
    return p.reshape((1,) + p.shape + (1,) * (rank - 1 - p.ndim))


@register_op("BatchNormalization")
class BatchNormalization(OpDef):
    """ONNX BatchNormalization, inference form: y = (x - mean) / sqrt(var + epsilon) * scale + B.

    x (N, C, *S); scale, B, mean, var (C,) (or (C, *S) with ``spatial=0`` in opsets 7-8).
    Raises UnsupportedOpError for training (training_mode=1 or the running-statistics outputs).
    """

    attrs = {"epsilon": 1e-5, "momentum": 0.9, "spatial": None, "training_mode": None}
    min_inputs = max_inputs = 5

    def check(self, node):
        if node.attrs.get("training_mode") or len(node.outputs) > 1:
            why = "training mode (training_mode=1 or running mean/var outputs) is not supported"
            raise UnsupportedOpError([(node.name, node.op, why)])
        if len(node.inputs[0].shape) < 2:
            raise bad_attr(node, "input must be (N, C, ...)")
        if node.attrs.get("spatial") not in (None, 0, 1):
            raise bad_attr(node, "spatial must be 0 or 1")
        x = node.inputs[0].shape
        want = [(x[1],)] if node.attrs.get("spatial", 1) in (None, 1) else [(x[1],), tuple(x[1:])]
        for k, what in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")):
            if node.inputs[k].shape not in want:
                raise bad_attr(node, f"{what} has shape {list(node.inputs[k].shape)}, "
                               f"the input's channels need {list(want[0])}")

    def infer(self, node):
        return [node.inputs[0].type]

    def reference(self, node, x, scale, b, mean, var):
        ct = _ct(x)
        r = x.ndim
        inv = 1 / np.sqrt(_per_channel(var, r, ct) + ct.type(attr(node, "epsilon")))
        y = (x.astype(ct) - _per_channel(mean, r, ct)) * (inv * _per_channel(scale, r, ct))
        return [(y + _per_channel(b, r, ct)).astype(x.dtype, copy=False)]


@register_op("InstanceNormalization")
class InstanceNormalization(OpDef):
    """ONNX InstanceNormalization: x (N, C, *S); per (n, c) mean/var over S;
    y = scale[c] * (x - mean) / sqrt(var + epsilon) + B[c]."""

    attrs = {"epsilon": 1e-5}
    min_inputs = max_inputs = 3

    def check(self, node):
        if len(node.inputs[0].shape) < 3:
            raise bad_attr(node, "input must be (N, C, spatial...)")
        c = node.inputs[0].shape[1]
        for k, what in ((1, "scale"), (2, "B")):
            if node.inputs[k].shape != (c,):
                raise bad_attr(node, f"{what} has shape {list(node.inputs[k].shape)}, "
                               f"the input's channels need [{c}]")

    def infer(self, node):
        return [node.inputs[0].type]

    def reference(self, node, x, scale, b):
        ct = _ct(x)
        xc = x.astype(ct)
        axes = tuple(range(2, x.ndim))
        mean = xc.mean(axis=axes, keepdims=True)
        var = np.square(xc - mean).mean(axis=axes, keepdims=True)
        y = (xc - mean) / np.sqrt(var + ct.type(attr(node, "epsilon")))
        y = y * _per_channel(scale, x.ndim, ct) + _per_channel(b, x.ndim, ct)
        return [y.astype(x.dtype, copy=False)]


@register_op("LayerNormalization")
class LayerNormalization(OpDef):
    """ONNX LayerNormalization (opset 17): normalize x over axes [axis, rank); Scale and B
    broadcast to x.shape[axis:]. Outputs Y (x's dtype) and optional Mean, InvStdDev of shape
    x.shape[:axis] + (1,) * (rank - axis), float32 when stash_type=1 (else x's dtype)."""

    attrs = {"axis": -1, "epsilon": 1e-5, "stash_type": 1}
    min_inputs, max_inputs = 2, 3

    def check(self, node):
        x = node.inputs[0].shape
        axis = norm_axis(node, attr(node, "axis"), len(x))
        inner = tuple(x[axis:])
        for k, what in ((1, "Scale"), (2, "B")):
            v = node.inputs[k] if k < len(node.inputs) else None
            if v is None:
                continue
            shp = tuple(v.shape)
            if len(shp) > len(inner) or any(d not in (1, e) for d, e in
                                            zip(reversed(shp), reversed(inner))):
                raise bad_attr(node, f"{what} has shape {list(shp)}, which does not broadcast "
                               f"to the normalized shape {list(inner)}")

    def _stats_dtype(self, node):
        return np.dtype(np.float32) if attr(node, "stash_type") == 1 else node.inputs[0].dtype

    def infer(self, node):
        x = node.inputs[0]
        axis = norm_axis(node, attr(node, "axis"), len(x.shape))
        stat = TensorType(tuple(x.shape[:axis]) + (1,) * (len(x.shape) - axis),
                          self._stats_dtype(node))
        return [x.type, stat, stat][:len(node.outputs)]

    def reference(self, node, x, scale, b=None):
        axis = norm_axis(node, attr(node, "axis"), x.ndim)
        ct = _ct(x) if attr(node, "stash_type") == 1 else x.dtype
        axes = tuple(range(axis, x.ndim))
        xc = x.astype(ct)
        mean = xc.mean(axis=axes, keepdims=True)
        diff = xc - mean
        inv = 1 / np.sqrt(np.square(diff).mean(axis=axes, keepdims=True)
                          + np.dtype(ct).type(attr(node, "epsilon")))
        y = diff * inv * scale.astype(ct)
        if b is not None:
            y = y + b.astype(ct)
        sd = self._stats_dtype(node)
        return [y.astype(x.dtype), mean.astype(sd), inv.astype(sd)][:len(node.outputs)]


def softmax_axes(node: Node) -> tuple[int, ...]:
    """The axes (non-negative, ascending) a Softmax/LogSoftmax/Hardmax node works along.

    Opset < 13: ``axis`` (default 1) coerces x to 2-D, so the op runs over all axes from ``axis``;
    13+: the single ``axis`` (default -1). Raises AttributeValueError on an out-of-range axis.
    """
    rank = len(node.inputs[0].shape)
    a = node.attrs.get("axis")
    if a is None:
        a = 1 if node.version < 13 else -1
    if rank == 0:
        return ()
    axis = norm_axis(node, a, rank)
    return tuple(range(axis, rank)) if node.version < 13 else (axis,)


class _SoftmaxFamily(OpDef):
    """Shared axis handling; ``axis`` default depends on the opset (1 before 13, then -1)."""

    attrs = {"axis": None}

    def check(self, node):
        softmax_axes(node)

    def infer(self, node):
        return [node.inputs[0].type]


def _softmax(x: np.ndarray, axes: tuple[int, ...], log: bool) -> np.ndarray:
    ct = _ct(x)
    if x.size == 0:   # nothing to normalize (a zero-size axis has no max)
        return x.copy()
    xc = x.astype(ct)
    m = xc.max(axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    z = xc - m
    s = np.exp(z).sum(axis=axes, keepdims=True)
    return (z - np.log(s) if log else np.exp(z) / s).astype(x.dtype, copy=False)


@register_op("Softmax")
class Softmax(_SoftmaxFamily):
    """ONNX Softmax: y = exp(x - max) / sum(exp(x - max)) over :func:`softmax_axes`."""

    def reference(self, node, x):
        return [_softmax(x, softmax_axes(node), log=False)]


@register_op("LogSoftmax")
class LogSoftmax(_SoftmaxFamily):
    """ONNX LogSoftmax: y = x - max - log(sum(exp(x - max))) over :func:`softmax_axes`."""

    def reference(self, node, x):
        return [_softmax(x, softmax_axes(node), log=True)]


@register_op("Hardmax")
class Hardmax(_SoftmaxFamily):
    """ONNX Hardmax: 1 at the first maximum over :func:`softmax_axes`, 0 elsewhere."""

    def reference(self, node, x):
        axes = softmax_axes(node)
        if not axes or x.size == 0:
            return [np.ones_like(x) if x.size else x]
        # move the (contiguous) axes last and flatten them: (..., K)
        xm = np.moveaxis(x, axes[0], -1) if len(axes) == 1 else x
        flat = xm.reshape(xm.shape[:xm.ndim - len(axes)] + (-1,))
        y = np.zeros_like(flat)
        np.put_along_axis(y, flat.argmax(axis=-1)[..., None], 1, axis=-1)
        y = y.reshape(xm.shape)
        return [np.moveaxis(y, -1, axes[0]) if len(axes) == 1 else y]


@register_op("LpNormalization")
class LpNormalization(OpDef):
    """ONNX LpNormalization: y = x / ||x||_p along ``axis``, p = 1 (sum |x|) or 2
    (sqrt(sum x^2)); 0 where the norm is 0 (as onnx's reference)."""

    attrs = {"axis": -1, "p": 2}

    def check(self, node):
        norm_axis(node, attr(node, "axis"), max(len(node.inputs[0].shape), 1))
        if attr(node, "p") not in (1, 2):
            raise bad_attr(node, f"p must be 1 or 2, got {attr(node, 'p')}")

    def infer(self, node):
        return [node.inputs[0].type]

    def reference(self, node, x):
        axis = norm_axis(node, attr(node, "axis"), x.ndim)
        xc = x.astype(_ct(x))
        if attr(node, "p") == 1:
            n = np.abs(xc).sum(axis=axis, keepdims=True)
        else:
            n = np.sqrt(np.square(xc).sum(axis=axis, keepdims=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            return [np.where(n == 0, 0, xc / n).astype(x.dtype)]


@register_op("GroupNormalization")
class GroupNormalization(OpDef):
    """ONNX GroupNormalization (opsets 18, 21): x (N, C, *S) split into ``num_groups`` groups of
    C/G channels; per (n, group) mean and variance over its channels and S, then
    y = (x - mean) / sqrt(var + epsilon) * scale + bias, scale and bias per channel (C,) (opset
    21) or per group (G,) (opset 18). Statistics in float32 (``stash_type`` 1)."""

    attrs = {"epsilon": 1e-5, "num_groups": REQUIRED, "stash_type": 1}
    min_inputs = max_inputs = 3

    def check(self, node):
        x = node.inputs[0].shape
        g = attr(node, "num_groups")
        if len(x) < 2 or not isinstance(g, int) or g <= 0 or x[1] % g:
            raise bad_attr(node, f"num_groups {g} must divide the channels of (N, C, ...) {list(x)}")
        want = {(x[1],)} | ({(g,)} if node.version < 21 else set())
        for k, what in ((1, "scale"), (2, "bias")):
            if node.inputs[k].shape not in want:
                raise bad_attr(node, f"{what} has shape {list(node.inputs[k].shape)}, expected "
                               f"{' or '.join(str(list(w)) for w in sorted(want))}")
        if attr(node, "stash_type") != 1:
            why = "stash_type other than 1 (float32 statistics) is not supported"
            raise UnsupportedOpError([(node.name, node.op, why)])

    def infer(self, node):
        return [node.inputs[0].type]

    def reference(self, node, x, scale, bias):
        g = attr(node, "num_groups")
        ct = _ct(x)
        n, c = x.shape[:2]
        xg = x.astype(ct).reshape(n, g, -1)
        mean = xg.mean(axis=2, keepdims=True)
        var = np.square(xg - mean).mean(axis=2, keepdims=True)
        y = ((xg - mean) / np.sqrt(var + ct.type(attr(node, "epsilon")))).reshape(x.shape)
        if scale.shape[0] != c:     # opset 18: one value per group
            scale, bias = np.repeat(scale, c // g), np.repeat(bias, c // g)
        y = y * _per_channel(scale, x.ndim, ct) + _per_channel(bias, x.ndim, ct)
        return [y.astype(x.dtype)]


@register_op("MeanVarianceNormalization")
class MeanVarianceNormalization(OpDef):
    """ONNX MeanVarianceNormalization: over ``axes`` (default [0, 2, 3]),
    y = (x - mean) / (sqrt(mean((x - mean)^2)) + 1e-9): the spec's function body's
    sqrt(mean(x^2) - mean^2) in exact arithmetic, computed in two passes as onnxruntime does
    (the one-pass form cancels catastrophically in float32: NaN for x = 1000 + 0.1 N(0, 1))."""

    attrs = {"axes": [0, 2, 3]}

    def check(self, node):
        norm_axes(node, attr(node, "axes"), len(node.inputs[0].shape))

    def infer(self, node):
        return [node.inputs[0].type]

    def reference(self, node, x):
        axes = norm_axes(node, attr(node, "axes"), x.ndim)
        ct = _ct(x)
        xc = x.astype(ct)
        mean = xc.mean(axis=axes, keepdims=True)
        std = np.sqrt(np.square(xc - mean).mean(axis=axes, keepdims=True))
        return [((xc - mean) / (std + ct.type(1e-9))).astype(x.dtype)]
