"""Convolution and pooling ops on NC(D)HW tensors, 1-D to 3-D spatial.

Layouts: x is (N, C, *S) with S the spatial sizes; Conv weights are (M, C/group, *K);
ConvTranspose weights are (C, M/group, *K); y is (N, M, *O). Pads are ONNX-ordered
``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``; the geometry helpers return them split into
``pads_begin`` and ``pads_end`` with ``auto_pad`` already resolved, for codegen to reuse.

The references are vectorized for 224x224 models: convolutions are im2col (strided views) plus
one batched BLAS matmul per layer; pools loop over the kernel taps only. Inputs are never written
(weights may be read-only 0-stride views).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import AttributeValueError, ShapeError
from ..ir import Node, TensorType
from . import REQUIRED, OpDef, attr, bad_attr, register_op
from ._util import ints, spatial_attr

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
Geometry = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]


def _resolve_pads(node: Node, in_sp, k_eff, strides, ceil_mode: bool = False):
    """(pads_begin, pads_end, out_spatial) for ``auto_pad``/``pads``; k_eff is the dilated kernel."""
    n = len(in_sp)
    auto_pad = node.attrs.get("auto_pad") or "NOTSET"
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = tuple(-(-i // s) for i, s in zip(in_sp, strides))
        total = [max(0, (o - 1) * s + k - i) for o, s, k, i in zip(out, strides, k_eff, in_sp)]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        pb, pe = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pb = pe = [0] * n
        out = tuple((i - k) // s + 1 for i, k, s in zip(in_sp, k_eff, strides))
    else:
        pads = spatial_attr(node, "pads", 2 * n, 0)
        pb, pe = list(pads[:n]), list(pads[n:])
        out_l = []
        for i, k, s, b, e in zip(in_sp, k_eff, strides, pb, pe):
            if ceil_mode:
                o = -(-(i + b + e - k) // s) + 1
                if (o - 1) * s >= i + b:  # the last window would start in the right padding
                    o -= 1
            else:
                o = (i + b + e - k) // s + 1
            out_l.append(o)
        out = tuple(out_l)
    if any(o <= 0 for o in out):
        raise ShapeError(f"output spatial size {out} is empty for input {tuple(in_sp)}, "
                         f"kernel {tuple(k_eff)} (dilated), strides {tuple(strides)}",
                         node=node.name, op=node.op)
    return tuple(pb), tuple(pe), out


def conv_geometry(node: Node, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> Geometry:
    """Geometry of a Conv: ``(pads_begin, pads_end, strides, dilations, out_spatial)``.

    x is (N, C, *S), w is (M, C/group, *K); kernel sizes come from w. ``auto_pad`` is resolved
    (SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning); the stride of an axis
    with one output position is cut to the padded input. Raises ShapeError when the output would
    be empty, AttributeValueError on attribute lengths that do not match or positions past int32.
    """
    n = len(x_shape) - 2
    strides = spatial_attr(node, "strides", n, 1)
    dil = spatial_attr(node, "dilations", n, 1)
    k_eff = [(k - 1) * d + 1 for k, d in zip(w_shape[2:], dil)]
    pb, pe, out = _resolve_pads(node, x_shape[2:], k_eff, strides)
    strides = _clamp_strides(strides, out, [i + b + e for i, b, e in zip(x_shape[2:], pb, pe)])
    _check_index_range(node, x_shape[2:], out, pb, pe, strides, k_eff)
    return pb, pe, strides, dil, out


INDEX_MAX = 2**31 - 1   # the generated code computes positions in 32-bit integers


def _clamp_strides(strides, positions, extents) -> tuple[int, ...]:
    """``strides`` cut to ``extents`` (at least 1) along each axis that has a single position,
    where ``p * stride`` is 0 whatever the stride: a stride of 2**31 - 1 over one output
    position then adds nothing to the generated index arithmetic (the per-tap loop bounds add a
    stride), and a stride within the extent is left as it is."""
    return tuple(min(s, max(1, e)) if p == 1 else s
                 for s, p, e in zip(strides, positions, extents))


def _check_index_range(node: Node, in_sp, out, pb, pe, strides, k_eff) -> None:
    """Raise AttributeValueError when the positions a Conv or ConvTranspose computes along a
    spatial axis may leave int32, the index type of the generated code.

    Every index expression of the lowering (``o*stride + k*dilation - pads_begin`` and the
    per-tap loop bounds) stays within ``in + out + stride + dilated kernel + 2*(|pads_begin| +
    |pads_end|)``, so that sum must not pass 2**31 - 1. Only pads or strides near 2**31 reach it:
    onnxruntime then fails to allocate the output, or overflows."""
    for a, (i, o, b, e, s, k) in enumerate(zip(in_sp, out, pb, pe, strides, k_eff)):
        if i + o + s + k + 2 * (abs(b) + abs(e)) > INDEX_MAX:
            raise AttributeValueError(
                f"spatial axis {a}: input {i}, output {o}, pads ({b}, {e}), stride {s} and "
                f"dilated kernel {k} reach positions past 2**31 - 1, which the generated code "
                "cannot index (32-bit)", node=node.name, op=node.op,
                hint="use pads, strides, dilations (and output_shape) that keep every position "
                "of the padded input and of the output below 2**31")


def pool_geometry(node: Node, x_shape: tuple[int, ...]) -> tuple[
        tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...],
        tuple[int, ...]]:
    """Geometry of MaxPool/AveragePool:
    ``(pads_begin, pads_end, strides, dilations, kernel, out_spatial)``.

    Window ``o`` along an axis covers input positions ``o*stride - pads_begin + t*dilation`` for
    ``t < kernel``. With ceil_mode the last window may reach past ``in + pads_end``; those positions
    are padding that no average counts. Raises ShapeError when the output would be empty.
    """
    n = len(x_shape) - 2
    kernel = spatial_attr(node, "kernel_shape", n, 1)
    strides = spatial_attr(node, "strides", n, 1)
    dil = spatial_attr(node, "dilations", n, 1)
    k_eff = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    pb, pe, out = _resolve_pads(node, x_shape[2:], k_eff, strides,
                                ceil_mode=bool(node.attrs.get("ceil_mode") or 0))
    return pb, pe, strides, dil, kernel, out


def _check_window(node: Node, rank: int, kernel=None) -> None:
    """Shared checks of Conv/ConvTranspose/pools: auto_pad, pads >= 0, strides/dilations >= 1."""
    if rank < 3:
        raise bad_attr(node, f"input must be (N, C, spatial...), got rank {rank}")
    n = rank - 2
    if (node.attrs.get("auto_pad") or "NOTSET") not in AUTO_PADS:
        raise bad_attr(node, f"auto_pad must be one of {AUTO_PADS}, got {node.attrs['auto_pad']!r}")
    if any(p < 0 for p in spatial_attr(node, "pads", 2 * n, 0)):
        raise bad_attr(node, f"pads must be non-negative, got {list(node.attrs['pads'])}")
    for name in ("strides", "dilations"):
        if any(v < 1 for v in spatial_attr(node, name, n, 1)):
            raise bad_attr(node, f"{name} must be >= 1, got {list(node.attrs[name])}")
        if any(v >= 2**31 for v in spatial_attr(node, name, n, 1)):   # generated index math is 32-bit
            raise bad_attr(node, f"{name} {list(node.attrs[name])}: values of 2**31 or more are "
                           "not supported")
    if kernel is not None and node.attrs.get("kernel_shape") is not None:
        ks = ints(node.attrs["kernel_shape"])
        if ks != tuple(kernel):
            raise bad_attr(node, f"kernel_shape {list(ks)} does not match the weights {list(kernel)}")


def _pad_spatial(x: np.ndarray, pb, pe, value=0) -> np.ndarray:
    """x padded by (pb, pe) on each spatial axis (negative pe trims); x itself when no pad."""
    if any(pb) or any(p > 0 for p in pe):
        x = np.pad(x, [(0, 0), (0, 0)] + [(b, max(e, 0)) for b, e in zip(pb, pe)],
                   constant_values=value)
    return x


# ---- Conv ------------------------------------------------------------------------------------
def conv_nd(x: np.ndarray, w: np.ndarray, pb, pe, strides, dil, out, group: int) -> np.ndarray:
    """y (N, M, *O) = conv(x (N, C, *S), w (M, C/group, *K)) without bias, im2col + matmul."""
    n = x.shape[0]
    m, cg = w.shape[:2]
    kernel = w.shape[2:]
    nd = len(kernel)
    g = group
    if w.size > 1 and all(st == 0 for st in w.strides):
        # splat weights (a ConstantOfShape fill): sum the group's channels, box-filter once
        xs = x.reshape((n, g, cg) + x.shape[2:]).sum(axis=2)
        box = conv_nd(xs, np.ones((g, 1) + tuple(kernel), x.dtype), pb, pe, strides, dil, out, g)
        return np.repeat(box * w.reshape(-1)[0], m // g, axis=1)
    wg = w.reshape(g, m // g, cg * math.prod(kernel))
    if all(k == 1 for k in kernel) and not any(pb) and not any(pe):
        xs = x[(slice(None), slice(None)) + tuple(slice(0, (o - 1) * s + 1, s)
                                                   for o, s in zip(out, strides))]
        cols = xs.reshape(n, g, cg, math.prod(out))
    else:
        xp = _pad_spatial(x, pb, pe)
        k_eff = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
        win = sliding_window_view(xp, k_eff, axis=tuple(range(2, 2 + nd)))
        win = win[(slice(None), slice(None))
                  + tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, strides))
                  + tuple(slice(None, None, d) for d in dil)]
        # (N, C, *O, *K) -> (N, C, *K, *O) -> (N, G, Cg*prod(K), prod(O)) (this copies once)
        perm = (0, 1) + tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(2, 2 + nd))
        cols = win.transpose(perm).reshape(n, g, cg * math.prod(kernel), math.prod(out))
    y = np.matmul(wg, cols)                       # (N, G, M/G, prod(O))
    return y.reshape((n, m) + tuple(out))


@register_op("Conv", traits={"quantizable"})
class Conv(OpDef):
    """ONNX Conv: y = conv(x, w) + b. x (N, C, *S), w (M, C/group, *K), b (M,), y (N, M, *O);
    1-D to 3-D; groups, dilations, strides, pads and auto_pad. Float types."""

    attrs = {"auto_pad": "NOTSET", "dilations": None, "group": 1, "kernel_shape": None,
             "pads": None, "strides": None}
    min_inputs, max_inputs = 2, 3

    def check(self, node):
        x, w = node.inputs[0], node.inputs[1]
        _check_window(node, len(x.shape), w.shape[2:])
        g = attr(node, "group")
        if len(w.shape) != len(x.shape):
            raise bad_attr(node, f"weights rank {len(w.shape)} differs from input rank {len(x.shape)}")
        if g < 1 or x.shape[1] != w.shape[1] * g or w.shape[0] % g:
            raise bad_attr(node, f"group={g} does not fit input channels {x.shape[1]}, weights "
                           f"{w.shape}: need C == W.shape[1] * group and M % group == 0")
        if len(node.inputs) > 2 and node.inputs[2] is not None and \
                node.inputs[2].shape != (w.shape[0],):
            raise bad_attr(node, f"bias shape {node.inputs[2].shape} is not ({w.shape[0]},)")

    def infer(self, node):
        x, w = node.inputs[0], node.inputs[1]
        out = conv_geometry(node, x.shape, w.shape)[4]
        return [TensorType((x.shape[0], w.shape[0]) + out, x.dtype)]

    def reference(self, node, x, w, b=None):
        pb, pe, s, d, out = conv_geometry(node, x.shape, w.shape)
        ct = np.float32 if x.dtype == np.float16 else x.dtype
        y = conv_nd(x.astype(ct, copy=False), w.astype(ct, copy=False), pb, pe, s, d, out,
                    attr(node, "group"))
        if b is not None:
            y += b.astype(ct).reshape((1, -1) + (1,) * len(out))
        return [y.astype(x.dtype, copy=False)]


# ---- ConvTranspose ---------------------------------------------------------------------------
def conv_transpose_geometry(node: Node, x_shape: tuple[int, ...], w_shape: tuple[int, ...]
                            ) -> tuple[tuple[int, ...], ...]:
    """Geometry of a ConvTranspose:
    ``(pads_begin, pads_end, strides, dilations, output_padding, out_spatial)``.

    Output position ``o`` reads the full (uncropped) transposed-conv result at ``o + pads_begin``
    (full length ``(in-1)*stride + (k-1)*dilation + 1``; outside it the value is 0 plus bias).
    ``output_shape`` (pads auto-generated) and SAME_* (output = in * stride) resolve as the ONNX
    reference: SAME_UPPER puts the odd pad at the end. pads_begin may be negative. The stride of
    an axis with one input position is cut to the output size. Raises ShapeError when the output
    would be empty, AttributeValueError on an output_shape not of one value per spatial axis or
    positions past int32.
    """
    n = len(x_shape) - 2
    strides = spatial_attr(node, "strides", n, 1)
    dil = spatial_attr(node, "dilations", n, 1)
    opad = spatial_attr(node, "output_padding", n, 0)
    in_sp, kernel = x_shape[2:], w_shape[2:]
    full = [(i - 1) * s + (k - 1) * d + 1 + op
            for i, s, k, d, op in zip(in_sp, strides, kernel, dil, opad)]
    auto_pad = node.attrs.get("auto_pad") or "NOTSET"
    out_shape = node.attrs.get("output_shape")
    if out_shape is not None and len(out_shape) or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if out_shape is not None and len(out_shape):
            out = ints(out_shape)
            if len(out) != n:   # as onnx's shape inference and onnxruntime require
                raise bad_attr(node, f"output_shape {list(out)} has {len(out)} values, expected "
                               f"{n} (one per spatial axis)")
        else:
            out = tuple(i * s for i, s in zip(in_sp, strides))
        total = [f - o for f, o in zip(full, out)]
        if auto_pad == "SAME_UPPER":
            pb = tuple(t // 2 for t in total)
        else:
            pb = tuple(t - t // 2 for t in total)
        pe = tuple(t - b for t, b in zip(total, pb))
    elif auto_pad == "VALID":
        pb = pe = (0,) * n
        out = tuple(full)
    else:
        pads = spatial_attr(node, "pads", 2 * n, 0)
        pb, pe = pads[:n], pads[n:]
        out = tuple(f - b - e for f, b, e in zip(full, pb, pe))
    if any(o <= 0 for o in out):
        raise ShapeError(f"output spatial size {out} is empty", node=node.name, op=node.op)
    strides = _clamp_strides(strides, in_sp, out)
    _check_index_range(node, in_sp, out, pb, pe, strides,
                       [(k - 1) * d + 1 for k, d in zip(kernel, dil)])
    return tuple(pb), tuple(pe), strides, dil, opad, tuple(out)


@register_op("ConvTranspose")
class ConvTranspose(OpDef):
    """ONNX ConvTranspose: x (N, C, *S), w (C, M/group, *K), b (M,), y (N, M, *O); strides,
    dilations, pads, output_padding, output_shape, auto_pad and groups. Float types."""

    attrs = {"auto_pad": "NOTSET", "dilations": None, "group": 1, "kernel_shape": None,
             "output_padding": None, "output_shape": None, "pads": None, "strides": None}
    min_inputs, max_inputs = 2, 3

    def check(self, node):
        x, w = node.inputs[0], node.inputs[1]
        if len(x.shape) < 3 or len(w.shape) != len(x.shape):
            raise bad_attr(node, f"x {list(x.shape)} must be (N, C, spatial...) and w "
                           f"{list(w.shape)} (C, M/group, kernel...) of the same rank")
        _check_window(node, len(x.shape), w.shape[2:])
        g = attr(node, "group")
        if g < 1 or x.shape[1] != w.shape[0] or w.shape[0] % g:
            raise bad_attr(node, f"group={g} does not fit input channels {x.shape[1]}, weights "
                           f"{w.shape}: need C == W.shape[0] and C % group == 0")
        m = w.shape[1] * g
        if len(node.inputs) > 2 and node.inputs[2] is not None and node.inputs[2].shape != (m,):
            raise bad_attr(node, f"bias shape {node.inputs[2].shape} is not ({m},)")
        n = len(x.shape) - 2
        for op, s, d in zip(spatial_attr(node, "output_padding", n, 0),
                            spatial_attr(node, "strides", n, 1), spatial_attr(node, "dilations", n, 1)):
            if op < 0 or op >= max(s, d):
                raise bad_attr(node, "output_padding must be in [0, max(stride, dilation))")

    def infer(self, node):
        x, w = node.inputs[0], node.inputs[1]
        out = conv_transpose_geometry(node, x.shape, w.shape)[5]
        return [TensorType((x.shape[0], w.shape[1] * attr(node, "group")) + out, x.dtype)]

    def reference(self, node, x, w, b=None):
        pb, _, strides, dil, _, out = conv_transpose_geometry(node, x.shape, w.shape)
        g = attr(node, "group")
        n, c = x.shape[:2]
        cg, mg = c // g, w.shape[1]
        kernel, sp = w.shape[2:], x.shape[2:]
        nd = len(kernel)
        ct = np.float32 if x.dtype == np.float16 else x.dtype
        # cols (N, G, Mg, *K, *S) = w_g^T @ x_g per group
        wt = w.astype(ct).reshape(g, cg, mg * math.prod(kernel)).transpose(0, 2, 1)
        cols = np.matmul(wt, x.astype(ct).reshape(n, g, cg, math.prod(sp)))
        cols = cols.reshape((n, g, mg) + tuple(kernel) + tuple(sp))
        full_len = [(i - 1) * s + (k - 1) * d + 1 for i, s, k, d in zip(sp, strides, kernel, dil)]
        full = np.zeros((n, g, mg) + tuple(full_len), ct)
        for taps in itertools.product(*(range(k) for k in kernel)):
            sl = tuple(slice(t * d, t * d + (i - 1) * s + 1, s)
                       for t, d, i, s in zip(taps, dil, sp, strides))
            full[(slice(None),) * 3 + sl] += cols[(slice(None),) * 3 + taps]
        full = full.reshape((n, g * mg) + tuple(full_len))
        y = np.zeros((n, g * mg) + out, ct)
        dst, src = [], []
        for o, b_, f in zip(out, pb, full_len):
            lo, hi = max(0, -b_), min(o, f - b_)
            dst.append(slice(lo, max(lo, hi)))
            src.append(slice(lo + b_, max(lo, hi) + b_))
        y[(slice(None), slice(None)) + tuple(dst)] = full[(slice(None), slice(None)) + tuple(src)]
        if b is not None:
            y += b.astype(ct).reshape((1, -1) + (1,) * nd)
        return [y.astype(x.dtype, copy=False)]


# ---- pools -----------------------------------------------------------------------------------
def _taps(xp: np.ndarray, kernel, strides, dil, out):
    """Yield (tap index tuple, view (N, C, *O) of the padded input at that kernel tap)."""
    for taps in itertools.product(*(range(k) for k in kernel)):
        sl = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                   for t, d, o, s in zip(taps, dil, out, strides))
        yield taps, xp[(slice(None), slice(None)) + sl]


def _ceil_pad_end(in_sp, pb, strides, dil, kernel, out):
    """End padding that makes every window fit inside the padded input."""
    return [max(0, (o - 1) * s + (k - 1) * d + 1 - i - b)
            for i, b, s, d, k, o in zip(in_sp, pb, strides, dil, kernel, out)]


class _Pool(OpDef):
    """Shared checks and shape inference of MaxPool and AveragePool."""

    def check(self, node):
        x = node.inputs[0]
        _check_window(node, len(x.shape))
        ks = node.attrs.get("kernel_shape")
        if ks is None or len(ks) != len(x.shape) - 2 or any(k < 1 for k in ks):
            raise bad_attr(node, f"kernel_shape must hold {len(x.shape) - 2} positive sizes, got {ks}")
        if (node.attrs.get("ceil_mode") or 0) not in (0, 1):
            raise bad_attr(node, f"ceil_mode must be 0 or 1, got {node.attrs['ceil_mode']}")
        if node.attrs.get("ceil_mode") and (node.attrs.get("auto_pad") or "NOTSET") != "NOTSET":
            # the spec's two output-size formulas disagree; onnx's reference refuses the pair
            # and onnxruntime picks one: an error, not a guess
            raise bad_attr(node, f"ceil_mode=1 with auto_pad={node.attrs['auto_pad']} has no "
                           "defined output size; use explicit pads")
        n = len(x.shape) - 2
        pads = spatial_attr(node, "pads", 2 * n, 0)
        if any(p >= ks[a % n] for a, p in enumerate(pads)):   # as onnxruntime requires
            raise bad_attr(node, f"pads {list(pads)} must be smaller than kernel_shape {list(ks)}")

    def infer(self, node):
        x = node.inputs[0]
        out = pool_geometry(node, x.shape)[5]
        shape = tuple(x.shape[:2]) + out
        return [TensorType(shape, x.dtype), TensorType(shape, np.int64)][:len(node.outputs)]


@register_op("MaxPool", traits={"quantizable"})
class MaxPool(_Pool):
    """ONNX MaxPool: y (N, C, *O) = max over each window of x (N, C, *S); padding never wins.
    Optional Indices output (int64): flat index into x, row-major (storage_order=0) or with the
    spatial axes column-major (storage_order=1)."""

    attrs = {"auto_pad": "NOTSET", "ceil_mode": None, "dilations": None,
             "kernel_shape": REQUIRED, "pads": None, "storage_order": None, "strides": None}

    def check(self, node):
        super().check(node)
        if (node.attrs.get("storage_order") or 0) not in (0, 1):
            raise bad_attr(node, f"storage_order must be 0 or 1, got {node.attrs['storage_order']}")

    def reference(self, node, x):
        pb, _, strides, dil, kernel, out = pool_geometry(node, x.shape)
        fill = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
        xp = _pad_spatial(x, pb, _ceil_pad_end(x.shape[2:], pb, strides, dil, kernel, out), fill)
        want_idx = len(node.outputs) > 1
        y = idx = None
        for taps, v in _taps(xp, kernel, strides, dil, out):
            if y is None:
                y = v.copy()
                if want_idx:
                    idx = np.array(np.broadcast_to(
                        _flat_index(node, x.shape, taps, pb, strides, dil, out), v.shape))
                continue
            if want_idx:  # strict: the first maximum in window order wins (a NaN: the first NaN)
                take = v > y
                if np.issubdtype(v.dtype, np.floating):
                    take |= np.isnan(v) & ~np.isnan(y)
                idx = np.where(take, _flat_index(node, x.shape, taps, pb, strides, dil, out), idx)
            np.maximum(y, v, out=y)
        return [y, idx] if want_idx else [y]


def _flat_index(node, x_shape, taps, pb, strides, dil, out) -> np.ndarray:
    """Flat index into x of kernel tap ``taps`` for every output position, (N, C, *O)."""
    n, c = x_shape[:2]
    sp = x_shape[2:]
    order = node.attrs.get("storage_order") or 0
    coords = [np.arange(o) * s - b + t * d for o, s, b, t, d in zip(out, strides, pb, taps, dil)]
    nd = len(sp)
    # spatial element strides: row-major, or reversed (column-major) for storage_order=1
    axes = list(range(nd)) if order == 0 else list(range(nd))[::-1]
    stride = [0] * nd
    acc = 1
    for a in reversed(axes):
        stride[a] = acc
        acc *= sp[a]
    flat = np.zeros(tuple(out), np.int64)
    for a in range(nd):
        shape = [1] * nd
        shape[a] = out[a]
        flat = flat + (coords[a] * stride[a]).reshape(shape)
    base = (np.arange(n * c, dtype=np.int64) * math.prod(sp)).reshape((n, c) + (1,) * nd)
    return base + flat


@register_op("AveragePool", traits={"quantizable"})
class AveragePool(_Pool):
    """ONNX AveragePool: y (N, C, *O) = mean over each window of x (N, C, *S).

    count_include_pad=0 divides by the input positions in the window; 1 also counts the explicit
    pads (never the extra ceil_mode positions past ``in + pads_end``). With ceil_mode a window
    that would start in the right padding is dropped (pool_geometry).
    """

    attrs = {"auto_pad": "NOTSET", "ceil_mode": None, "count_include_pad": 0, "dilations": None,
             "kernel_shape": REQUIRED, "pads": None, "strides": None}

    def check(self, node):
        super().check(node)
        if attr(node, "count_include_pad") not in (0, 1):
            raise bad_attr(node, "count_include_pad must be 0 or 1")

    def reference(self, node, x):
        pb, pe, strides, dil, kernel, out = pool_geometry(node, x.shape)
        ct = np.float32 if x.dtype == np.float16 else x.dtype
        xp = _pad_spatial(x.astype(ct, copy=False), pb,
                          _ceil_pad_end(x.shape[2:], pb, strides, dil, kernel, out))
        acc = None   # float64 accumulator: a large window's sum stays accurate in float32
        for _, v in _taps(xp, kernel, strides, dil, out):
            acc = v.astype(np.float64) if acc is None else np.add(acc, v, out=acc)
        count = pool_counts(x.shape[2:], pb, pe, strides, dil, kernel, out,
                            bool(attr(node, "count_include_pad")))
        return [(acc / count).astype(x.dtype, copy=False)]


@register_op("LpPool")
class LpPool(_Pool):
    """ONNX LpPool: y (N, C, *O) = (sum of |x|^p over each window of x (N, C, *S))^(1/p);
    padding adds 0. ``p`` a positive integer (default 2)."""

    attrs = {"auto_pad": "NOTSET", "ceil_mode": None, "dilations": None,
             "kernel_shape": REQUIRED, "p": 2, "pads": None, "strides": None}

    def check(self, node):
        super().check(node)
        if not isinstance(attr(node, "p"), int) or attr(node, "p") < 1:
            raise bad_attr(node, f"p must be a positive integer, got {attr(node, 'p')}")

    def reference(self, node, x):
        pb, _, strides, dil, kernel, out = pool_geometry(node, x.shape)
        p = attr(node, "p")
        ct = np.float32 if x.dtype == np.float16 else x.dtype
        xp = _pad_spatial(np.abs(x.astype(ct, copy=False)), pb,
                          _ceil_pad_end(x.shape[2:], pb, strides, dil, kernel, out))
        acc = None
        for _, v in _taps(xp, kernel, strides, dil, out):
            t = v.astype(np.float64) ** p
            acc = t if acc is None else acc + t
        return [(acc ** (1.0 / p)).astype(x.dtype, copy=False)]


def pool_counts(in_sp, pb, pe, strides, dil, kernel, out, include_pad: bool) -> np.ndarray:
    """Divisor of AveragePool per output position, shape ``out``: the window positions inside
    the input (or inside input + explicit pads when ``include_pad``)."""
    count = np.ones((), np.int64)
    for a, (i, b, e, s, d, k, o) in enumerate(zip(in_sp, pb, pe, strides, dil, kernel, out)):
        pos = (np.arange(o) * s - b)[:, None] + np.arange(k)[None, :] * d
        lo, hi = (-b, i + e) if include_pad else (0, i)
        c = ((pos >= lo) & (pos < hi)).sum(axis=1)
        count = np.multiply.outer(count, c)
    return count


class _Global(OpDef):
    """Global pools: y (N, C, 1, ..., 1) reduces x (N, C, *S) over all spatial axes."""

    traits = frozenset({"quantizable"})

    def check(self, node):
        if len(node.inputs[0].shape) < 3:
            raise bad_attr(node, "input must be (N, C, spatial...)")

    def infer(self, node):
        x = node.inputs[0]
        return [TensorType(tuple(x.shape[:2]) + (1,) * (len(x.shape) - 2), x.dtype)]


@register_op("GlobalAveragePool")
class GlobalAveragePool(_Global):
    """ONNX GlobalAveragePool: y (N, C, 1, ...) = mean of x (N, C, *S) over S."""

    def reference(self, node, x):
        from .reduce import accurate_sum   # pairwise / float64 accumulation (Higham 1993)

        axes = tuple(range(2, x.ndim))
        count = int(np.prod(x.shape[2:], dtype=np.int64))
        return [(accurate_sum(x, axes, keepdims=True) / count).astype(x.dtype)]


@register_op("GlobalMaxPool")
class GlobalMaxPool(_Global):
    """ONNX GlobalMaxPool: y (N, C, 1, ...) = max of x (N, C, *S) over S."""

    def reference(self, node, x):
        return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


@register_op("LRN")
class LRN(OpDef):
    """ONNX LRN across channels: x (N, C, ...);
    y = x / (bias + alpha / size * sum_{c' in [c - (size-1)//2, c + ceil((size-1)/2)]} x[c']^2)^beta.
    """

    attrs = {"alpha": 0.0001, "beta": 0.75, "bias": 1.0, "size": REQUIRED}

    def check(self, node):
        if attr(node, "size") < 1:
            raise bad_attr(node, f"size must be >= 1, got {attr(node, 'size')}")
        if len(node.inputs[0].shape) < 3:
            raise bad_attr(node, "input must be (N, C, spatial...)")

    def infer(self, node):
        return [node.inputs[0].type]

    def reference(self, node, x):
        size = attr(node, "size")
        ct = np.float32 if x.dtype == np.float16 else x.dtype
        sq = np.square(x.astype(ct, copy=False))
        c = x.shape[1]
        # the window cut to the C channels: a size far past C (2**63 - 1) pads by C at most
        lo, hi = min((size - 1) // 2, c), min(size - 1 - (size - 1) // 2, c)
        sqp = np.pad(sq, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
        acc = np.zeros_like(sq)
        for t in range(lo + hi + 1):
            acc += sqp[:, t:t + c]
        t = np.dtype(ct).type
        base = t(attr(node, "bias")) + t(attr(node, "alpha")) / t(size) * acc
        return [(x / base ** t(attr(node, "beta"))).astype(x.dtype, copy=False)]
