"""Spatial sampling by coordinates: AffineGrid (opset 20), GridSample (opsets 16 and 20),
DeformConv (opsets 19 and 22), RoiAlign (opsets 10, 16 and 22), Col2Im (opset 18) and MaxUnpool
(opsets 9, 11 and 22); the last three in the comments above them.

AffineGrid(theta, size; align_corners): theta (N, 2, 3) for 2-D or (N, 3, 4) for 3-D, size the
int64 constant [N, C, H, W] or [N, C, D, H, W] (it sets the output shape, so it must be known at
compile time: a constant, or a graph input bound with ``constant_inputs``). The output grid
(N, H, W, 2) or (N, D, H, W, 3), in theta's dtype, is ``theta[n] @ (x, y, [z], 1)`` at every
position of the base grid, whose coordinate along an axis of length L at index i is
``-1 + 2 i / (L - 1)`` with align_corners, else ``-1 + (2 i + 1) / L`` (onnx's reference,
onnx/reference/ops/op_affine_grid.py). x is the last axis (W). An axis of length 1 with
align_corners has the coordinate -1 as in onnx's reference (PyTorch's affine_grid gives 0,
onnxruntime 1.31 gives 1: the spec does not say).

GridSample(X, grid; mode, padding_mode, align_corners): X (N, C, D1..Dr), grid (N, O1..Or', r)
of normalized coordinates in [-1, 1], the last entry of a grid vector indexing D1 (reversed
order, as in PyTorch); Y (N, C, O1..Or'). Opset 16 is 4-D only and names the modes bilinear /
bicubic, opset 20 linear / cubic (read here as the same). Per output position and spatial axis
of length L (PyTorch's GridSampler.h, as onnx/reference/ops/op_grid_sample.py):

1. x = (g + 1) / 2 (L - 1) with align_corners, else ((g + 1) L - 1) / 2;
2. nearest: x = round half to even (x);
3. outside the borders [lo, hi] = [0, L-1] (align_corners) or [-0.5, L-0.5]: padding border clamps
   x to [0, L - 1] (not for cubic: below), reflection reflects it off the borders until inside
   (:func:`reflect`);
4. taps: nearest reads trunc(x); linear the 2 taps floor(x) + {0, 1} with weights (1 - t, t),
   t = x - floor(x); cubic the 4 taps floor(x) + {-1, 0, 1, 2} with Keys' weights (A = -0.75,
   :func:`cubic_weights`). A tap outside [0, L) reads 0 (zeros), the clamped index (border) or
   the index reflected off the borders and truncated (reflection). The weights of the axes
   multiply (separable interpolation).

Cubic with border padding follows PyTorch and onnxruntime (1.31), not onnx's reference: the
point is not moved to the border, each of its 4 taps is clamped (onnx's reference clamps the
point first, which drops interior taps near the border: onnxruntime issue 10607 reported the
same in its kernel as a bug, since fixed there). For linear and nearest both orders give the
same result, and the node suite's cases pass either way.

DeformConv(X, W, offset, B, mask; dilations, group, kernel_shape, offset_group, pads, strides):
X (N, C, D1..Dr), W (M, C / group, k1..kr), offset (N, offset_group * r * prod(k), O1..Or), B
(M,), mask (N, offset_group * prod(k), O1..Or), Y (N, M, O1..Or) with O the convolution's output
size (the offset's spatial shape must equal it). Each kernel tap k of output o reads input
channel c at the point ``p_a = o_a stride_a - pad_begin_a + k_a dilation_a + offset[n, g, k, a,
o]`` (g = c // (C / offset_group); offset viewed as (N, offset_group, k1..kr, r, O...)),
interpolated linearly from its 2^r neighbours with 0 outside the input (GridSample linear, zeros
padding, align_corners at pixel coordinates, as onnx's reference), times ``mask[n, g, k, o]``
(1 when omitted); Y = B + the grouped convolution of these samples with W.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import REQUIRED, OpDef, attr, bad_attr, register_op
from ._util import const_input, ints

CUBIC_A = -0.75


def _err(node: Node, msg: str, hint: str) -> ShapeError:
    return ShapeError(msg, node=node.name, op=node.op, hint=hint)


# ---- AffineGrid --------------------------------------------------------------------------------
def affine_grid_size(node: Node) -> tuple[int, ...]:
    """The spatial sizes (H, W) or (D, H, W) from the constant size input. Raises ShapeError when
    size is not a constant of 4 or 5 entries matching theta's (N, r, r + 1) shape."""
    theta = node.inputs[0]
    size = ints(const_input(node, 1, "size"))
    if len(size) not in (4, 5):
        raise _err(node, f"size {list(size)} must have 4 (2-D) or 5 (3-D) entries",
                   "give size as [N, C, H, W] or [N, C, D, H, W]")
    r = len(size) - 2
    if tuple(theta.shape) != (size[0], r, r + 1):
        raise _err(node, f"theta shape {list(theta.shape)} does not match size {list(size)}: "
                   f"expected [{size[0]}, {r}, {r + 1}]", "give theta as (N, 2, 3) or (N, 3, 4)")
    if any(d < 0 for d in size):
        raise _err(node, f"size {list(size)} has a negative entry", "give sizes >= 0")
    return tuple(size[2:])


def base_grid(spatial: tuple[int, ...], align_corners: bool) -> np.ndarray:
    """The float64 homogeneous base grid (prod(spatial), r + 1): per position (x, y, [z], 1) with
    x along the last axis (module docstring)."""
    axes = []
    for L in spatial:
        i = np.arange(L, dtype=np.float64)
        axes.append(-1 + 2 * i / (L - 1) if align_corners and L > 1 else
                    np.zeros(L) - 1 if align_corners else -1 + (2 * i + 1) / L)
    mesh = np.meshgrid(*axes, indexing="ij") if spatial else []
    cols = [m.reshape(-1) for m in reversed(mesh)]
    n = int(np.prod(spatial)) if spatial else 1
    return np.stack(cols + [np.ones(n)], axis=1)


@register_op("AffineGrid")
class AffineGrid(OpDef):
    """ONNX AffineGrid(theta, size; align_corners) -> grid (module docstring)."""

    attrs = {"align_corners": 0}
    min_inputs = max_inputs = 2

    def infer(self, node: Node) -> list[TensorType]:
        theta = node.inputs[0]
        if theta.dtype.kind != "f":
            raise _err(node, f"theta of dtype {theta.dtype.name} is not a float",
                       "give theta as float32 or float64")
        sp = affine_grid_size(node)
        return [TensorType((theta.shape[0], *sp, len(sp)), theta.dtype)]

    def reference(self, node: Node, theta, size) -> list[np.ndarray]:
        sp = affine_grid_size(node)
        base = base_grid(sp, bool(attr(node, "align_corners")))           # (S, r + 1)
        g = np.einsum("njk,sk->nsj", theta.astype(np.float64), base)
        return [g.reshape((theta.shape[0], *sp, len(sp))).astype(theta.dtype)]


# ---- GridSample --------------------------------------------------------------------------------
def grid_sample_params(node: Node) -> tuple[str, str, bool]:
    """(mode in nearest/linear/cubic, padding_mode, align_corners) of a GridSample node, the
    opset-16 names bilinear/bicubic read as linear/cubic. Raises AttributeValueError for other
    values, and ShapeError when X and grid do not fit (N, C, D1..Dr) / (N, O1..Or', r)."""
    mode = str(attr(node, "mode"))
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    pad = str(attr(node, "padding_mode"))
    if mode not in ("nearest", "linear", "cubic"):
        raise bad_attr(node, f"mode {mode!r} is not nearest, linear or cubic")
    if pad not in ("zeros", "border", "reflection"):
        raise bad_attr(node, f"padding_mode {pad!r} is not zeros, border or reflection")
    x, g = node.inputs
    r = len(x.shape) - 2
    if r < 1 or len(g.shape) < 2 or g.shape[0] != x.shape[0] or g.shape[-1] != r:
        raise _err(node, f"X {list(x.shape)} and grid {list(g.shape)} do not fit: X is "
                   "(N, C, D1..Dr), grid (N, O1..., r)", "give grid one r-vector per output "
                   "position and the batch of X")
    return mode, pad, bool(attr(node, "align_corners"))


def borders(L: int, align: bool) -> tuple[float, float]:
    """The reflection borders (lo, hi) of an axis of length L."""
    return (0.0, L - 1.0) if align else (-0.5, L - 0.5)


def reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``x`` reflected off ``lo`` and ``hi`` until inside (GridSampler.h's reflect; a zero-width
    range maps to lo)."""
    rng = hi - lo
    if rng <= 0:
        return np.full_like(x, lo)
    below, above = x < lo, x > hi
    dx = np.where(below, lo - x, x - hi)
    n = np.floor(dx / rng)
    r = dx - n * rng
    even = np.fmod(n, 2) == 0
    return np.where(below, np.where(even, lo + r, hi - r),
                    np.where(above, np.where(even, hi - r, lo + r), x))


def cubic_weights(t):
    """Keys' cubic convolution weights (A = -0.75) of the taps at -1, 0, 1, 2 for a fraction
    ``t`` in [0, 1) (numpy arrays or loop-IR expressions)."""
    A = CUBIC_A
    s, u, v = t + 1, 1 - t, 2 - t
    return [((A * s - 5 * A) * s + 8 * A) * s - 4 * A,
            ((A + 2) * t - (A + 3)) * t * t + 1,
            ((A + 2) * u - (A + 3)) * u * u + 1,
            ((A * v - 5 * A) * v + 8 * A) * v - 4 * A]


def _taps(x: np.ndarray, L: int, mode: str, pad: str, align: bool
          ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per tap of one axis: (index in [0, L), weight, valid) for coordinates ``x`` (step 4)."""
    lo, hi = borders(L, align)

    def at(j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if pad == "zeros":
            return np.clip(j, 0, L - 1), (j >= 0) & (j < L)
        if pad == "border":
            return np.clip(j, 0, L - 1), np.ones(j.shape, bool)
        return np.clip(np.trunc(reflect(j.astype(x.dtype), lo, hi)), 0, L - 1).astype(np.int64), \
            np.ones(j.shape, bool)

    if mode == "nearest":
        j = np.trunc(np.clip(x, -8.0, L + 8.0)).astype(np.int64)
        i, ok = at(j)
        return [(i, np.ones_like(x), ok)]
    f = np.floor(x)
    t = x - f
    b = np.clip(f, -8.0, L + 8.0).astype(np.int64)
    if mode == "linear":
        (i0, ok0), (i1, ok1) = at(b), at(b + 1)
        return [(i0, 1 - t, ok0), (i1, t, ok1)]
    w = cubic_weights(t)
    return [(at(b + k - 1)[0], w[k], at(b + k - 1)[1]) for k in range(4)]


def coordinates(g: np.ndarray, L: int, mode: str, pad: str, align: bool) -> np.ndarray:
    """Steps 1-3 of the module docstring on normalized coordinates ``g`` for an axis of L."""
    x = (g + 1) / 2 * (L - 1) if align else ((g + 1) * L - 1) / 2
    if mode == "nearest":
        x = np.rint(x)
    lo, hi = borders(L, align)
    out = (x < lo) | (x > hi)
    if pad == "border" and mode != "cubic":
        x = np.where(out, np.clip(x, 0, L - 1), x)
    elif pad == "reflection":
        x = np.where(out, reflect(x, lo, hi), x)
    return x


@register_op("GridSample")
class GridSample(OpDef):
    """ONNX GridSample(X, grid; mode, padding_mode, align_corners) -> Y (module docstring)."""

    attrs = {"mode": "linear", "padding_mode": "zeros", "align_corners": 0}
    min_inputs = max_inputs = 2

    def infer(self, node: Node) -> list[TensorType]:
        grid_sample_params(node)
        x, g = node.inputs
        return [TensorType((x.shape[0], x.shape[1], *g.shape[1:-1]), x.dtype)]

    def reference(self, node: Node, X, grid) -> list[np.ndarray]:
        mode, pad, align = grid_sample_params(node)
        N, C, *S = X.shape
        r = len(S)
        ft = np.float64 if np.float64 in (X.dtype, grid.dtype) else np.float32
        taps = [_taps(coordinates(grid[..., r - 1 - a].astype(ft), S[a], mode, pad, align),
                      S[a], mode, pad, align) for a in range(r)]
        out_sp = grid.shape[1:-1]
        xt = np.moveaxis(X, 1, -1).astype(ft)                              # (N, *S, C)
        nidx = np.arange(N).reshape((N,) + (1,) * len(out_sp))
        y = np.zeros((N, *out_sp, C), ft)
        for combo in np.ndindex(*[len(t) for t in taps]):
            idx = [taps[a][k][0] for a, k in enumerate(combo)]
            w = np.ones((N, *out_sp), ft)
            ok = np.ones((N, *out_sp), bool)
            for a, k in enumerate(combo):
                w = w * taps[a][k][1]
                ok &= taps[a][k][2]
            v = xt[(nidx, *idx)]
            y += np.where(ok[..., None], v, 0) * w[..., None]
        return [np.moveaxis(y, -1, 1).astype(X.dtype)]


# ---- DeformConv --------------------------------------------------------------------------------
def deform_conv_params(node: Node) -> dict:
    """The resolved parameters of a DeformConv node: ``r`` spatial axes, ``kernel``, ``strides``,
    ``dilations``, ``pads`` (begins then ends), ``group``, ``offset_group``, output spatial
    ``out``. Raises ShapeError when the shapes of X, W, offset, B and mask do not fit
    (module docstring) and AttributeValueError for a non-positive group."""
    X, W, off = node.inputs[:3]
    r = len(X.shape) - 2
    hint = "give X (N, C, D...), W (M, C/group, k...), offset (N, offset_group*r*prod(k), O...)"
    if r < 1 or len(W.shape) != r + 2 or len(off.shape) != r + 2:
        raise _err(node, f"X {list(X.shape)}, W {list(W.shape)} and offset {list(off.shape)} "
                   "must all have rank >= 3 and the same rank", hint)
    group, og = int(attr(node, "group")), int(attr(node, "offset_group"))
    if group < 1 or og < 1:
        raise bad_attr(node, f"group {group} and offset_group {og} must be >= 1")
    kernel = tuple(ints(node.attrs.get("kernel_shape") or W.shape[2:]))
    st = tuple(ints(node.attrs.get("strides") or [1] * r))
    dil = tuple(ints(node.attrs.get("dilations") or [1] * r))
    pads = tuple(ints(node.attrs.get("pads") or [0] * 2 * r))
    if len(kernel) != r or len(st) != r or len(dil) != r or len(pads) != 2 * r:
        raise bad_attr(node, "kernel_shape, strides and dilations need one value per spatial "
                       "axis, pads two")
    N, C = X.shape[:2]
    M = W.shape[0]
    if (tuple(W.shape[2:]) != kernel or C != W.shape[1] * group or M % group or C % og
            or off.shape[0] != N):
        raise _err(node, f"X {list(X.shape)} and W {list(W.shape)} do not fit group {group}, "
                   f"offset_group {og} and kernel {list(kernel)}", hint)
    out = tuple((X.shape[2 + a] + pads[a] + pads[r + a] - (kernel[a] - 1) * dil[a] - 1)
                // st[a] + 1 for a in range(r))
    K = int(np.prod(kernel))
    if tuple(off.shape[1:]) != (og * r * K, *out):
        raise _err(node, f"offset shape {list(off.shape)} should be "
                   f"{[N, og * r * K, *out]}", hint)
    if len(node.inputs) > 3 and node.inputs[3] is not None and tuple(node.inputs[3].shape) != (M,):
        raise _err(node, f"B shape {list(node.inputs[3].shape)} should be [{M}]", hint)
    if len(node.inputs) > 4 and node.inputs[4] is not None and \
            tuple(node.inputs[4].shape) != (N, og * K, *out):
        raise _err(node, f"mask shape {list(node.inputs[4].shape)} should be "
                   f"{[N, og * K, *out]}", hint)
    return {"r": r, "kernel": kernel, "strides": st, "dilations": dil, "pads": pads,
            "group": group, "offset_group": og, "out": out}


@register_op("DeformConv")
class DeformConv(OpDef):
    """ONNX DeformConv(X, W, offset, B, mask) -> Y (module docstring)."""

    attrs = {"dilations": None, "group": 1, "kernel_shape": None, "offset_group": 1,
             "pads": None, "strides": None}
    min_inputs, max_inputs = 3, 5

    def infer(self, node: Node) -> list[TensorType]:
        X, W = node.inputs[:2]
        if X.dtype.kind != "f":
            raise _err(node, f"X of dtype {X.dtype.name} is not a float", "give float data")
        p = deform_conv_params(node)
        return [TensorType((X.shape[0], W.shape[0], *p["out"]), X.dtype)]

    def reference(self, node: Node, X, W, offset, B=None, mask=None) -> list[np.ndarray]:
        p = deform_conv_params(node)
        r, kernel, out, og, G = p["r"], p["kernel"], p["out"], p["offset_group"], p["group"]
        N, C, *S = X.shape
        M, cg = W.shape[:2]
        ft = np.float64 if X.dtype == np.float64 else np.float32
        off = offset.astype(ft).reshape((N, og, *kernel, r, *out))
        msk = np.ones((N, og, *kernel, *out), ft) if mask is None else \
            mask.astype(ft).reshape((N, og, *kernel, *out))
        y = np.zeros((N, M, *out), ft)
        if B is not None:
            y += B.astype(ft).reshape((1, M) + (1,) * r)
        gof = np.arange(C) // (C // og)                                   # offset group of c
        nidx = np.arange(N).reshape((N, 1) + (1,) * r)
        cidx = np.arange(C).reshape((1, C) + (1,) * r)
        for k in np.ndindex(*kernel):
            taps = []
            for a in range(r):
                pos = (np.arange(out[a]) * p["strides"][a] - p["pads"][a]
                       + k[a] * p["dilations"][a]).reshape((1,) * (a + 1) + (-1,)
                                                            + (1,) * (r - a - 1))
                pt = pos + off[(slice(None), slice(None), *k, a)]          # (N, og, *out)
                f = np.floor(pt)
                t = pt - f
                b = np.clip(f, -8, S[a] + 8).astype(np.int64)[:, gof]      # (N, C, *out)
                t = t[:, gof]
                taps.append([(b + d, w) for d, w in ((0, 1 - t), (1, t))])
            val = np.zeros((N, C, *out), ft)
            for combo in np.ndindex(*([2] * r)):
                w = np.ones((N, C, *out), ft)
                ok = np.ones((N, C, *out), bool)
                idx = []
                for a, d in enumerate(combo):
                    j, wa = taps[a][d]
                    w = w * wa
                    ok &= (j >= 0) & (j < S[a])
                    idx.append(np.clip(j, 0, S[a] - 1))
                val += np.where(ok, X.astype(ft)[(nidx, cidx, *idx)], 0) * w
            val *= msk[(slice(None), gof, *k)]
            vg = val.reshape((N, G, cg, *out))
            wk = W.astype(ft)[(slice(None), slice(None), *k)].reshape((G, M // G, cg))
            y += np.einsum("gpc,ngc...->ngp...", wk, vg).reshape((N, M, *out))
        return [y.astype(X.dtype)]


# ---- RoiAlign ----------------------------------------------------------------------------------
# RoiAlign(X, rois, batch_indices; coordinate_transformation_mode, mode, output_height,
# output_width, sampling_ratio, spatial_scale) (opsets 10, 16): X (N, C, H, W), rois (R, 4) as
# (x1, y1, x2, y2) in X's dtype, batch_indices (R,) int64; Y (R, C, output_height, output_width).
# Per roi (onnx's reference, op_roi_align.py, as onnxruntime): start = x1 * scale - o with o = 0.5
# for half_pixel (opset 16's default), else 0 (output_half_pixel; opset 10 has no attribute), and
# the size x2 * scale - o - start at least 1 unless half_pixel; each output bin averages (avg) or
# takes the max of (max) sampling_ratio^2 points (ceil(roi size / output size) per axis when 0)
# at ``start + bin * size / out + (i + 0.5) size / out / grid``. A point outside [-1, H] x [-1, W]
# gives 0; else it is clamped to >= 0 and read bilinearly from its 4 neighbours (the last row or
# column when past it). max mode takes the largest of the 4 weighted neighbours (w_i X_i), as
# onnxruntime does, and the avg the sum over the count.

def roi_align_params(node: Node) -> tuple[str, bool, int, int, int, float]:
    """(mode, half_pixel, output_height, output_width, sampling_ratio, spatial_scale) of a
    RoiAlign node. Raises AttributeValueError for other modes and ShapeError for shapes that do
    not fit (comment above)."""
    mode = str(attr(node, "mode"))
    if mode not in ("avg", "max"):
        raise bad_attr(node, f"mode {mode!r} is not avg or max")
    ctm = "output_half_pixel" if node.version < 16 else \
        str(node.attrs.get("coordinate_transformation_mode") or "half_pixel")
    if ctm not in ("half_pixel", "output_half_pixel"):
        raise bad_attr(node, f"coordinate_transformation_mode {ctm!r} is not half_pixel or "
                       "output_half_pixel")
    X, rois, bi = node.inputs
    if len(X.shape) != 4 or len(rois.shape) != 2 or rois.shape[1] != 4 or \
            tuple(bi.shape) != (rois.shape[0],):
        raise _err(node, f"X {list(X.shape)}, rois {list(rois.shape)} and batch_indices "
                   f"{list(bi.shape)} do not fit (N, C, H, W), (R, 4), (R,)",
                   "give one (x1, y1, x2, y2) row and one batch index per roi")
    oh, ow, sr = int(attr(node, "output_height")), int(attr(node, "output_width")), \
        int(attr(node, "sampling_ratio"))
    if oh < 1 or ow < 1 or sr < 0:
        raise bad_attr(node, f"output {oh}x{ow} must be positive and sampling_ratio {sr} >= 0")
    return mode, ctm == "half_pixel", oh, ow, sr, float(attr(node, "spatial_scale"))


def roi_axis_points(start, size, out: int, grid: int, half: bool):
    """The sampling coordinates (out, grid) along one axis of one roi (comment above)."""
    if not half:
        size = max(size, 1.0)
    b = size / out
    return start + np.arange(out)[:, None] * b + (np.arange(grid)[None, :] + 0.5) * b / grid


@register_op("RoiAlign")
class RoiAlign(OpDef):
    """ONNX RoiAlign(X, rois, batch_indices) -> Y (comment above)."""

    attrs = {"coordinate_transformation_mode": "half_pixel", "mode": "avg", "output_height": 1,
             "output_width": 1, "sampling_ratio": 0, "spatial_scale": 1.0}
    min_inputs = max_inputs = 3

    def infer(self, node: Node) -> list[TensorType]:
        X, rois = node.inputs[:2]
        if X.dtype.kind != "f":
            raise _err(node, f"X of dtype {X.dtype.name} is not a float", "give float data")
        _, _, oh, ow, _, _ = roi_align_params(node)
        return [TensorType((rois.shape[0], X.shape[1], oh, ow), X.dtype)]

    def reference(self, node: Node, X, rois, bi) -> list[np.ndarray]:
        mode, half, oh, ow, sr, scale = roi_align_params(node)
        N, C, H, W = X.shape
        R = rois.shape[0]
        y = np.zeros((R, C, oh, ow), X.dtype)
        o = 0.5 if half else 0.0
        for r in range(R):
            x1, y1, x2, y2 = (float(v) * scale - o for v in rois[r])
            gh = sr or int(np.ceil(max(y2 - y1, 0 if half else 1.0) / oh))
            gw = sr or int(np.ceil(max(x2 - x1, 0 if half else 1.0) / ow))
            ys = roi_axis_points(y1, y2 - y1, oh, gh, half)                  # (oh, gh)
            xs = roi_axis_points(x1, x2 - x1, ow, gw, half)                  # (ow, gw)
            yy = ys[:, :, None, None]
            xx = xs[None, None, :, :]
            yy, xx = np.broadcast_arrays(yy, xx)                              # (oh, gh, ow, gw)
            out = (yy < -1) | (yy > H) | (xx < -1) | (xx > W)

            def axis(v, L):
                v = np.clip(v, 0, L)
                lo = np.minimum(np.trunc(v), L - 1).astype(np.int64)
                last = np.trunc(v) >= L - 1
                frac = np.where(last, 0.0, v - lo)
                return lo, np.where(last, lo, lo + 1), frac

            yl, yh, ly = axis(yy, H)
            xl, xh, lx = axis(xx, W)
            img = X[int(np.clip(bi[r], 0, N - 1))].astype(np.float64)        # (C, H, W)
            terms = [(1 - ly) * (1 - lx) * img[:, yl, xl], (1 - ly) * lx * img[:, yl, xh],
                     ly * (1 - lx) * img[:, yh, xl], ly * lx * img[:, yh, xh]]
            terms = [np.where(out, 0.0, t) for t in terms]                    # (C, oh, gh, ow, gw)
            if mode == "avg":
                v = sum(terms).sum(axis=(2, 4)) / max(gh * gw, 1)
            else:
                v = np.max(np.stack(terms), axis=0).max(axis=(2, 4))
            y[r] = v
        return [y]


# ---- Col2Im ------------------------------------------------------------------------------------
# Col2Im(input, image_shape, block_shape; dilations, pads, strides) (opset 18): the inverse of
# im2col, summing overlaps. input (N, C * prod(block), L) with L = prod(n_a) sliding positions,
# n_a = (image_a + pad_begin_a + pad_end_a - dilation_a (block_a - 1) - 1) // stride_a + 1;
# output (N, C, *image): y[n, c, p] = sum over block offsets k and positions l with p_a = l_a
# stride_a - pad_begin_a + k_a dilation_a of input[n, c * prod(block) + flat(k), flat(l)].
# image_shape and block_shape set shapes, so they must be known at compile time.

def col2im_params(node: Node) -> dict:
    """image, block, strides, dilations, pads and positions ``n`` of a Col2Im node. Raises
    ShapeError when image_shape / block_shape are not constants or do not fit the input."""
    x = node.inputs[0]
    image = ints(const_input(node, 1, "image_shape"))
    block = ints(const_input(node, 2, "block_shape"))
    r = len(image)
    st = tuple(ints(node.attrs.get("strides") or [1] * r))
    dil = tuple(ints(node.attrs.get("dilations") or [1] * r))
    pads = tuple(ints(node.attrs.get("pads") or [0] * 2 * r))
    if len(block) != r or len(st) != r or len(dil) != r or len(pads) != 2 * r:
        raise bad_attr(node, "block_shape, strides, dilations need one value per image axis, "
                       "pads two")
    n = tuple((image[a] + pads[a] + pads[r + a] - dil[a] * (block[a] - 1) - 1) // st[a] + 1
              for a in range(r))
    B = int(np.prod(block))
    if len(x.shape) != 3 or x.shape[1] % max(B, 1) or x.shape[2] != int(np.prod(n)) or \
            min(n, default=1) < 1:
        raise _err(node, f"input {list(x.shape)} does not fit image {list(image)}, block "
                   f"{list(block)}: expected (N, C * {B}, {int(np.prod(n))})",
                   "check image_shape, block_shape, strides, pads and dilations")
    return {"image": image, "block": block, "strides": st, "dilations": dil, "pads": pads,
            "n": n}


@register_op("Col2Im")
class Col2Im(OpDef):
    """ONNX Col2Im(input, image_shape, block_shape) -> image (comment above)."""

    attrs = {"dilations": None, "pads": None, "strides": None}
    min_inputs = max_inputs = 3

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        p = col2im_params(node)
        B = int(np.prod(p["block"]))
        return [TensorType((x.shape[0], x.shape[1] // B, *p["image"]), x.dtype)]

    def reference(self, node: Node, x, *rest) -> list[np.ndarray]:
        p = col2im_params(node)
        image, block, n = p["image"], p["block"], p["n"]
        r = len(image)
        N = x.shape[0]
        B = int(np.prod(block))
        C = x.shape[1] // B
        pad_b = p["pads"][:r]
        y = np.zeros((N, C, *[image[a] + pad_b[a] + p["pads"][r + a] for a in range(r)]),
                     x.dtype)
        cols = x.reshape((N, C, *block, *n))
        for k in np.ndindex(*block):
            sl = tuple(slice(k[a] * p["dilations"][a],
                             k[a] * p["dilations"][a] + (n[a] - 1) * p["strides"][a] + 1,
                             p["strides"][a]) for a in range(r))
            y[(slice(None), slice(None), *sl)] += cols[(slice(None), slice(None), *k)]
        crop = tuple(slice(pad_b[a], pad_b[a] + image[a]) for a in range(r))
        return [y[(slice(None), slice(None), *crop)]]


# ---- MaxUnpool ---------------------------------------------------------------------------------
# MaxUnpool(X, I, output_shape; kernel_shape, pads, strides) (opsets 9, 11, 22): the inverse of
# MaxPool with indices. The unpooled shape is (N, C, (in_a - 1) stride_a - pad_begin_a - pad_end_a
# + kernel_a); every element of X is written at the flat index I holds into a zero tensor of that
# shape (the last of repeated indices wins), which is then placed at the origin of an all-zero
# output of output_shape when that input is given (onnx's reference; output_shape must cover the
# unpooled shape, and sets the output shape, so it must be known at compile time; onnxruntime 1.31
# reads the indices in output_shape's layout instead, as PyTorch's max_unpool does). An index
# outside the unpooled tensor (an error in the spec) is clamped into it.

def max_unpool_shapes(node: Node) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(unpooled shape, output shape) of a MaxUnpool node. Raises ShapeError when X and I differ
    in shape or output_shape does not cover the unpooled shape."""
    X, I = node.inputs[:2]
    r = len(X.shape) - 2
    kernel = ints(attr(node, "kernel_shape"))
    st = tuple(ints(node.attrs.get("strides") or [1] * r))
    pads = tuple(ints(node.attrs.get("pads") or [0] * 2 * r))
    if r < 1 or len(kernel) != r or len(st) != r or len(pads) != 2 * r or \
            tuple(I.shape) != tuple(X.shape):
        raise _err(node, f"X {list(X.shape)} and I {list(I.shape)} must have one shape, "
                   f"with kernel_shape, strides and pads per spatial axis",
                   "give the Indices output of the MaxPool this node inverts")
    inferred = (*X.shape[:2], *[(X.shape[2 + a] - 1) * st[a] - pads[a] - pads[r + a]
                                + kernel[a] for a in range(r)])
    out = const_input(node, 2, "output_shape") if len(node.inputs) > 2 else None
    shape = inferred if out is None else ints(out)
    if len(shape) != len(inferred) or any(s < i for s, i in zip(shape, inferred)):
        raise _err(node, f"output_shape {list(shape)} does not cover the unpooled shape "
                   f"{list(inferred)}", "give an output_shape at least the unpooled shape")
    return tuple(inferred), tuple(shape)


@register_op("MaxUnpool")
class MaxUnpool(OpDef):
    """ONNX MaxUnpool(X, I, output_shape) -> Y (comment above)."""

    attrs = {"kernel_shape": REQUIRED, "pads": None, "strides": None}
    min_inputs, max_inputs = 2, 3

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(max_unpool_shapes(node)[1], node.inputs[0].dtype)]

    def reference(self, node: Node, X, I, *rest) -> list[np.ndarray]:
        inferred, shape = max_unpool_shapes(node)
        T = int(np.prod(inferred))
        flat = np.zeros(T, X.dtype)
        if T:
            flat[np.clip(I.reshape(-1), 0, T - 1)] = X.reshape(-1)
        y = np.zeros(shape, X.dtype)
        y[tuple(slice(0, d) for d in inferred)] = flat.reshape(inferred)
        return [y]
