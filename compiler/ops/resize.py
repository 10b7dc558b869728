"""Resize (opsets 10, 11, 13, 18, 19) and Upsample (opsets 7-9), part of the shape family.

Resizing is separable: each resized axis maps output index ``o`` to a source coordinate
(``coordinate_transformation_mode``), then reads ``T`` input taps with weights (nearest: 1 live
tap, linear: 2, cubic: 4, more with ``antialias`` when downsampling). :func:`resize_taps` gives
those index/weight tables per axis, so codegen can bake them into constant arrays; the
reference applies them axis by axis (gather + weighted sum) in float64, as onnx's reference does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir import Node, TensorType
from . import OpDef, bad_attr, register_op
from ._util import const_input, has_input, ints, norm_axes

MODES = ("nearest", "linear", "cubic")
COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
               "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
ASPECT_POLICIES = ("stretch", "not_larger", "not_smaller")


@dataclass(frozen=True)
class ResizeParams:
    """Normalized parameters of a Resize/Upsample node.

    out_shape: output shape (all axes). scales: per-axis scale used by the coordinate transform
    (``out/in`` when sizes were given). roi: per-axis ``(start, end)`` in normalized coordinates
    (only read by tf_crop_and_resize). mode: nearest | linear | cubic. The rest mirror the ONNX
    attributes with their defaults resolved for the node's opset (nearest_mode may also be
    ``"simple"`` for the legacy ops, see :func:`resize_params`). ``roi_runtime``: roi is a
    tensor known only at run time (tf_crop_and_resize), so ``roi`` holds (0, 1) placeholders and
    ``roi_axes`` the axes roi covers, in roi's order (the code computes their coordinates from
    roi when it runs; :func:`resize_taps` refuses them).
    """

    out_shape: tuple[int, ...]
    scales: tuple[float, ...]
    roi: tuple[tuple[float, float], ...]
    mode: str
    coordinate_transformation_mode: str
    nearest_mode: str
    cubic_coeff_a: float
    exclude_outside: bool
    extrapolation_value: float
    antialias: bool
    roi_runtime: bool = False
    roi_axes: tuple[int, ...] = ()


def _get(node: Node, name: str, default):
    v = node.attrs.get(name)
    return default if v is None else v


def resize_params(node: Node, roi_value: np.ndarray | None = None) -> ResizeParams:
    """The :class:`ResizeParams` of a Resize or Upsample node (input x is (N, C, ...) or any rank).

    Upsample (7-9) and Resize-10 use ``asymmetric`` coordinates and nearest_mode ``"simple"``
    (onnxruntime's legacy rule: floor on upsampled axes, ceil on downsampled ones); Resize
    11+ reads roi/scales/sizes inputs (13+: each optional), 18+ ``axes`` and
    ``keep_aspect_ratio_policy``. roi is read only by tf_crop_and_resize (the spec: it "only
    takes effect when coordinate_transformation_mode is tf_crop_and_resize"): its value
    ``roi_value`` when given (the reference at run time), else the constant, else a runtime roi
    (``ResizeParams.roi_runtime``). Raises ShapeError when scales/sizes are not constants,
    AttributeValueError on bad values.
    """
    in_shape = node.inputs[0].shape
    r = len(in_shape)
    mode = _get(node, "mode", "nearest")
    mode = "linear" if mode in ("bilinear", "trilinear") else mode
    legacy = node.op == "Upsample" or node.version < 11
    roi_runtime = False
    if legacy:
        if node.op == "Upsample" and node.version < 9:
            scales, sizes, roi_in = node.attrs.get("scales"), None, None
        else:
            scales, sizes, roi_in = const_input(node, 1, "scales"), None, None
        coord, nearest = "asymmetric", "simple"
    else:
        scales = const_input(node, 2, "scales")
        sizes = const_input(node, 3, "sizes")
        coord = _get(node, "coordinate_transformation_mode", "half_pixel")
        nearest = _get(node, "nearest_mode", "round_prefer_floor")
        roi_in = None
        if coord == "tf_crop_and_resize" and has_input(node, 1):
            if roi_value is not None:
                roi_in = np.asarray(roi_value)
            elif node.inputs[1].const is not None:
                roi_in = np.asarray(node.inputs[1].const)
            else:
                roi_runtime = True
    for what, v in (("roi", roi_in), ("scales", scales), ("sizes", sizes)):
        if isinstance(v, np.ndarray) and v.ndim != 1:   # flattening would guess the meaning
            raise bad_attr(node, f"{what} must be a 1-D tensor, got shape {list(v.shape)}")
    axes = node.attrs.get("axes")
    axes = tuple(range(r)) if axes is None else norm_axes(node, ints(axes), r)
    out = list(in_shape)
    sc = [1.0] * r
    if sizes is not None and sizes.size:
        sizes = ints(sizes)
        if len(sizes) != len(axes):
            raise bad_attr(node, f"sizes has {len(sizes)} values for {len(axes)} axes")
        for a, s in zip(axes, sizes):
            out[a], sc[a] = s, s / in_shape[a]
        policy = _get(node, "keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            s = (min if policy == "not_larger" else max)(sc[a] for a in axes)
            for a in axes:
                sc[a], out[a] = s, int(s * in_shape[a] + 0.5)
    elif scales is not None and np.size(scales):
        scales = np.asarray(scales).astype(np.float64).reshape(-1)
        if len(scales) != len(axes):
            raise bad_attr(node, f"scales has {len(scales)} values for {len(axes)} axes")
        if any(s <= 0 for s in scales):
            raise bad_attr(node, f"scales must be positive, got {scales.tolist()}")
        for a, s in zip(axes, scales):
            sc[a], out[a] = float(s), math.floor(s * in_shape[a])
    else:
        raise bad_attr(node, "one of scales or sizes is required")
    roi = [(0.0, 1.0)] * r
    if roi_in is not None and roi_in.size and coord == "tf_crop_and_resize":
        rv = np.asarray(roi_in, np.float64).reshape(-1)
        if len(rv) != 2 * len(axes):
            raise bad_attr(node, f"roi has {len(rv)} values, expected {2 * len(axes)}")
        for k, a in enumerate(axes):
            roi[a] = (float(rv[k]), float(rv[len(axes) + k]))
    if roi_runtime and node.inputs[1].shape != (2 * len(axes),):
        raise bad_attr(node, f"roi has shape {list(node.inputs[1].shape)}, expected "
                       f"[{2 * len(axes)}] (starts, then ends, of {len(axes)} axes)")
    return ResizeParams(tuple(out), tuple(sc), tuple(roi), mode, coord, nearest,
                        float(_get(node, "cubic_coeff_a", -0.75)),
                        bool(_get(node, "exclude_outside", 0)),
                        float(_get(node, "extrapolation_value", 0.0)),
                        bool(_get(node, "antialias", 0)), roi_runtime,
                        tuple(axes) if roi_runtime else ())


def _source_coords(p: ResizeParams, axis: int, in_len: int, out_len: int) -> np.ndarray:
    """x_original (float64, shape (out_len,)) of every output index along ``axis``."""
    scale = p.scales[axis]
    y = np.arange(out_len, dtype=np.float64)
    out_f = scale * in_len  # the (possibly fractional) output length the transforms use
    m = p.coordinate_transformation_mode
    if m == "align_corners":
        return np.zeros(out_len) if out_f == 1 else y * (in_len - 1) / (out_f - 1)
    if m == "asymmetric":
        return y / scale
    if m == "tf_crop_and_resize":
        s, e = p.roi[axis]
        if out_f == 1:
            return np.full(out_len, (e - s) * (in_len - 1) / 2 + s * (in_len - 1))
        return y * (e - s) * (in_len - 1) / (out_f - 1) + s * (in_len - 1)
    if m == "pytorch_half_pixel":
        return np.full(out_len, -0.5) if out_f == 1 else (y + 0.5) / scale - 0.5
    if m == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if m == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / out_f)
        return offset + (y + 0.5) / scale - 0.5
    if m == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale
    raise ValueError(m)


def _coeffs(p: ResizeParams, ratio: np.ndarray, scale: float) -> np.ndarray:
    """(out_len, T) tap weights for ratios in (0, 1] (1 when the coordinate is an integer)."""
    r = ratio[:, None]
    if p.mode == "nearest":
        if p.nearest_mode == "round_prefer_floor":
            right = r > 0.5
        elif p.nearest_mode == "round_prefer_ceil":
            right = r >= 0.5
        elif p.nearest_mode == "simple":  # legacy: floor when upsampling, ceil when downsampling
            right = np.full(r.shape, scale < 1)
        else:
            right = np.full(r.shape, p.nearest_mode == "ceil")
        right = right | (r == 1)
        return np.concatenate([~right, right], axis=1).astype(np.float64)
    a = p.cubic_coeff_a
    if not p.antialias:
        if p.mode == "linear":
            return np.concatenate([1 - r, r], axis=1)
        t = np.concatenate([r + 1, r, 1 - r, 2 - r], axis=1)
    else:
        s = min(scale, 1.0)
        if p.mode == "linear":
            start = int(np.floor(-1 / s) + 1)
            args = (np.arange(start, 2 - start)[None, :] - r) * s
            c = np.clip(1 - np.abs(args), 0, 1)
            return c / c.sum(axis=1, keepdims=True)
        start = int(np.floor(-2 / s) + 1)
        t = np.abs(s * (np.arange(start, 2 - start)[None, :] - r))
    c = np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                 np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))
    return c / c.sum(axis=1, keepdims=True) if p.antialias else c



def resize_taps(p: ResizeParams, axis: int, in_len: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Tap tables of one resized axis: ``(idx, w, outside)``.

    idx (out_len, T) int64 input indices, already clamped to [0, in_len) (edge padding);
    w (out_len, T) float64 weights (rows sum to 1; one-hot for nearest); outside (out_len,) bool
    marks outputs replaced by extrapolation_value (tf_crop_and_resize), else None.
    y[o] = sum_t w[o, t] * x[idx[o, t]] along the axis. Raises ValueError for an axis whose
    roi is known only at run time (``p.roi_runtime``).
    """
    if p.roi_runtime and axis in p.roi_axes:
        raise ValueError(f"resize_taps: the roi of axis {axis} is known only at run time")
    out_len = p.out_shape[axis]
    x = _source_coords(p, axis, in_len, out_len)
    outside = None
    if p.coordinate_transformation_mode == "tf_crop_and_resize":
        outside = (x < 0) | (x > in_len - 1)
    xi = np.floor(x)
    ratio = np.where(x == xi, 1.0, x - xi)
    w = _coeffs(p, ratio, p.scales[axis])
    n = w.shape[1]
    # the n taps nearest to x, ties to the smaller index (as onnx's reference picks them)
    pad = (n + 1) // 2
    xp = x + pad
    base = np.floor(xp)
    frac = xp - base
    if n % 2 == 0:
        off = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        off = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    idx = (base.astype(np.int64) + off)[:, None] + np.arange(n)[None, :] - pad
    if p.exclude_outside:
        w = np.where((idx < 0) | (idx >= in_len), 0.0, w)
        s = w.sum(axis=1, keepdims=True)
        w = w / np.where(s == 0, 1.0, s)
    return np.clip(idx, 0, in_len - 1), w, outside


def resize_nd(x: np.ndarray, p: ResizeParams) -> np.ndarray:
    """Apply ``p`` to x axis by axis; result has x's dtype (ints rounded and saturated)."""
    y = x
    for axis in range(x.ndim):
        if (math.isclose(p.scales[axis], 1.0) and p.out_shape[axis] == y.shape[axis]
                and p.roi[axis] == (0.0, 1.0)):
            continue
        idx, w, outside = resize_taps(p, axis, y.shape[axis])
        if p.mode == "nearest":
            y = np.take(y, idx[np.arange(len(idx)), w.argmax(axis=1)], axis=axis)
        else:
            g = np.take(y.astype(np.float64, copy=False), idx, axis=axis)
            y = (g * w.reshape((1,) * axis + w.shape + (1,) * (y.ndim - axis - 1))).sum(axis + 1)
        if outside is not None and outside.any():
            mask = outside.reshape((1,) * axis + (-1,) + (1,) * (y.ndim - axis - 1))
            y = np.where(mask, p.extrapolation_value, y)
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        y = np.clip(np.round(y), info.min, info.max)
    return np.asarray(y).astype(x.dtype)


class _ResizeBase(OpDef):
    """Checks and inference shared by Resize and Upsample."""

    def check(self, node):
        mode = _get(node, "mode", "nearest")
        if mode not in MODES + (("bilinear", "trilinear") if node.op == "Upsample" else ()):
            raise bad_attr(node, f"mode must be one of {MODES}, got {mode!r}")
        for name, allowed in (("coordinate_transformation_mode", COORD_MODES),
                              ("nearest_mode", NEAREST_MODES),
                              ("keep_aspect_ratio_policy", ASPECT_POLICIES)):
            if node.attrs.get(name) is not None and node.attrs[name] not in allowed:
                raise bad_attr(node, f"{name} must be one of {allowed}, got {node.attrs[name]!r}")
        if node.attrs.get("antialias") and mode == "nearest":
            raise bad_attr(node, "antialias applies to linear and cubic modes only")

    def infer(self, node):
        return [TensorType(resize_params(node).out_shape, node.inputs[0].dtype)]

    def reference(self, node, x, *rest):
        roi = rest[0] if node.op == "Resize" and node.version >= 11 and rest else None
        return [resize_nd(x, resize_params(node, roi))]


@register_op("Resize")
class Resize(_ResizeBase):
    """ONNX Resize: x (any rank, usually N, C, H, W) resized by scales or to sizes; nearest,
    (n-)linear and cubic modes, every coordinate_transformation_mode, antialias, axes and
    keep_aspect_ratio_policy (see :func:`resize_params`)."""

    attrs = {"mode": "nearest", "coordinate_transformation_mode": None, "cubic_coeff_a": None,
             "exclude_outside": None, "extrapolation_value": None, "nearest_mode": None,
             "antialias": None, "axes": None, "keep_aspect_ratio_policy": None}
    max_inputs = 4


@register_op("Upsample")
class Upsample(_ResizeBase):
    """ONNX Upsample (opsets 7-9): nearest or linear, asymmetric coordinates (as Resize-10);
    scales an attribute (7-8) or a constant input (9)."""

    attrs = {"mode": "nearest", "scales": None}
    max_inputs = 2
