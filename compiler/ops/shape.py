"""Shape and data-movement ops: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split,
Slice, Gather, Pad, Identity, Dropout, Shape, Size, ConstantOfShape, Expand, Tile, Range,
DepthToSpace, SpaceToDepth (Resize and Upsample live in :mod:`.resize`, re-exported here).

Parameters that moved from attributes to inputs across opsets (Slice, Pad, Split, Squeeze,
Unsqueeze, Dropout) are read by the public ``*_params``/``*_axes``/``split_sizes`` functions,
which codegen reuses; shape-determining inputs must be constants (ShapeError otherwise).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, UnsupportedOpError
from ..ir import Node, TensorType
from . import REQUIRED, OpDef, attr, bad_attr, register_op
from ._util import const_input, has_input, ints, norm_axes, norm_axis
from .resize import Resize, Upsample, resize_params, resize_taps  # noqa: F401  (registers them)


def _shape_error(node: Node, msg: str) -> ShapeError:
    return ShapeError(msg, node=node.name, op=node.op)


# ---- Reshape, Flatten, Squeeze, Unsqueeze, Identity: views ---------------------------------
def reshape_shape(node: Node) -> tuple[int, ...]:
    """Output shape of a Reshape node: 0 copies the input dim (unless allowzero=1), -1 is
    inferred. Raises ShapeError when the shape input is not constant or sizes disagree."""
    x_shape = node.inputs[0].shape
    if len(node.inputs[1].shape) != 1:   # the spec: a 1-D int64 tensor
        raise _shape_error(node, f"shape must be a 1-D tensor, got shape {list(node.inputs[1].shape)}")
    spec = ints(const_input(node, 1, "shape"))
    allowzero = node.attrs.get("allowzero") or 0
    out = []
    for i, s in enumerate(spec):
        if s == 0 and not allowzero:
            if i >= len(x_shape):
                raise _shape_error(node, f"shape {list(spec)}: 0 at position {i} has no input dim")
            out.append(x_shape[i])
        else:
            out.append(s)
    if out.count(-1) > 1 or any(s < -1 for s in out):
        raise _shape_error(node, f"invalid shape {list(spec)}")
    total = math.prod(x_shape)
    if -1 in out:
        known = math.prod(s for s in out if s != -1)
        if known == 0 or total % known:
            raise _shape_error(node, f"cannot reshape {x_shape} to {list(spec)}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total:
        raise _shape_error(node, f"cannot reshape {x_shape} ({total} elements) to {out}")
    return tuple(out)


class _View(OpDef):
    """An op whose output has exactly the input's bytes in a new shape; subclasses give
    ``out_shape(node)``."""

    traits = frozenset({"view"})

    def out_shape(self, node: Node) -> tuple[int, ...]:
        raise NotImplementedError

    def infer(self, node):
        return [TensorType(self.out_shape(node), node.inputs[0].dtype)]

    def reference(self, node, x, *rest):
        return [x.reshape(self.out_shape(node))]


@register_op("Reshape")
class Reshape(_View):
    """ONNX Reshape: same data, shape from the constant input (see :func:`reshape_shape`)."""

    attrs = {"allowzero": None}
    min_inputs = max_inputs = 2

    def out_shape(self, node):
        return reshape_shape(node)


@register_op("Flatten")
class Flatten(_View):
    """ONNX Flatten: x -> (prod(shape[:axis]), prod(shape[axis:])), axis in [-r, r]."""

    attrs = {"axis": 1}

    def out_shape(self, node):
        s = node.inputs[0].shape
        a = attr(node, "axis")
        if not -len(s) <= a <= len(s):
            raise bad_attr(node, f"axis {a} is out of range for rank {len(s)}")
        a = a + len(s) if a < 0 else a
        return (math.prod(s[:a]), math.prod(s[a:]))


def squeeze_axes(node: Node) -> tuple[int, ...]:
    """Axes (non-negative, ascending) a Squeeze node removes: attribute ``axes`` (opset < 13) or
    constant input 1 (13+); none given = every size-1 dim. Raises ShapeError when an axis is not
    of size 1 or the axes input is not constant."""
    shape = node.inputs[0].shape
    axes = node.attrs.get("axes") if node.version < 13 else const_input(node, 1, "axes")
    if axes is None or len(axes) == 0:
        return tuple(i for i, d in enumerate(shape) if d == 1)
    axes = tuple(sorted(norm_axes(node, ints(axes), len(shape))))
    if any(shape[a] != 1 for a in axes):
        raise _shape_error(node, f"cannot squeeze axes {list(axes)} of shape {shape}")
    return axes


@register_op("Squeeze")
class Squeeze(_View):
    """ONNX Squeeze: remove the size-1 dims given by :func:`squeeze_axes`."""

    attrs = {"axes": None}
    max_inputs = 2

    def out_shape(self, node):
        axes = squeeze_axes(node)
        return tuple(d for i, d in enumerate(node.inputs[0].shape) if i not in axes)


def unsqueeze_axes(node: Node) -> tuple[int, ...]:
    """Positions (non-negative, ascending, in the output) of the size-1 dims an Unsqueeze node
    inserts: attribute ``axes`` (opset < 13) or constant input 1 (13+)."""
    axes = node.attrs.get("axes") if node.version < 13 else const_input(node, 1, "axes")
    if axes is None:
        raise bad_attr(node, "axes are required")
    axes = ints(axes)
    return tuple(sorted(norm_axes(node, axes, len(node.inputs[0].shape) + len(axes))))


@register_op("Unsqueeze")
class Unsqueeze(_View):
    """ONNX Unsqueeze: insert size-1 dims at :func:`unsqueeze_axes`."""

    attrs = {"axes": None}
    max_inputs = 2

    def out_shape(self, node):
        axes = unsqueeze_axes(node)
        it = iter(node.inputs[0].shape)
        return tuple(1 if i in axes else next(it)
                     for i in range(len(node.inputs[0].shape) + len(axes)))


@register_op("Identity")
class Identity(_View):
    """ONNX Identity: y = x."""

    def out_shape(self, node):
        return node.inputs[0].shape


def dropout_ratio(node: Node) -> float:
    """The ratio of a Dropout node: attribute (opset < 12, default 0.5) or constant input 1."""
    if node.version < 12:
        r = node.attrs.get("ratio")
        return 0.5 if r is None else float(r)
    r = const_input(node, 1, "ratio")
    return 0.5 if r is None else float(r.reshape(-1)[0])


@register_op("Dropout")
class Dropout(_View):
    """ONNX Dropout in inference mode: output = data; optional mask all True (bool; in opsets
    7-9 the mask has data's dtype, all ones). Training (training_mode true, ratio > 0) raises
    UnsupportedOpError naming the node."""

    attrs = {"ratio": None, "seed": None}
    max_inputs = 3

    def out_shape(self, node):
        return node.inputs[0].shape

    def _mask_dtype(self, node):
        return node.inputs[0].dtype if node.version < 10 else np.dtype(np.bool_)

    def infer(self, node):
        x = node.inputs[0]
        return [x.type, TensorType(x.shape, self._mask_dtype(node))][:len(node.outputs)]

    def check(self, node):
        ins = list(node.inputs) + [None, None]
        ratio, training = ins[1], ins[2]
        if training is None:
            return
        if training.const is None or (ratio is not None and ratio.const is None):
            return  # known only at run time: the reference checks it; code generators refuse it
        self.reference(node, np.zeros((0,), node.inputs[0].dtype),
                       None if ratio is None else ratio.const, training.const)

    def reference(self, node, x, ratio=None, training=None):
        if training is not None and bool(np.asarray(training).reshape(-1)[0]) and \
                (ratio is None or float(np.asarray(ratio).reshape(-1)[0]) != 0):
            why = "training mode dropout is random; only inference (or ratio 0) is supported"
            raise UnsupportedOpError([(node.name, node.op, why)])
        return [x, np.ones(x.shape, self._mask_dtype(node))][:len(node.outputs)]


# ---- Transpose, Concat, Split, Slice, Gather ------------------------------------------------
def transpose_perm(node: Node) -> tuple[int, ...]:
    """The permutation of a Transpose node (default: reversed axes). Raises AttributeValueError
    when ``perm`` is not a permutation of the input's axes."""
    r = len(node.inputs[0].shape)
    perm = node.attrs.get("perm")
    perm = tuple(range(r))[::-1] if perm is None else ints(perm)
    if sorted(p + r if p < 0 else p for p in perm) != list(range(r)):
        raise bad_attr(node, f"perm {list(perm)} is not a permutation of {r} axes")
    return tuple(p + r if p < 0 else p for p in perm)


@register_op("Transpose")
class Transpose(OpDef):
    """ONNX Transpose: y = x.transpose(perm) (:func:`transpose_perm`)."""

    attrs = {"perm": None}

    def infer(self, node):
        x = node.inputs[0]
        return [TensorType(tuple(x.shape[p] for p in transpose_perm(node)), x.dtype)]

    def reference(self, node, x):
        return [np.transpose(x, transpose_perm(node))]


@register_op("Concat")
class Concat(OpDef):
    """ONNX Concat: inputs of equal shape except along ``axis`` (negative from opset 11)."""

    attrs = {"axis": REQUIRED}
    min_inputs, max_inputs = 1, -1

    def infer(self, node):
        shapes = [v.shape for v in node.inputs]
        a = norm_axis(node, attr(node, "axis"), len(shapes[0]))
        for s in shapes[1:]:
            if len(s) != len(shapes[0]) or s[:a] + s[a + 1:] != shapes[0][:a] + shapes[0][a + 1:]:
                raise _shape_error(node, f"input shapes {shapes} differ off axis {a}")
        out = list(shapes[0])
        out[a] = sum(s[a] for s in shapes)
        return [TensorType(tuple(out), node.inputs[0].dtype)]

    def reference(self, node, *xs):
        return [np.concatenate(xs, axis=norm_axis(node, attr(node, "axis"), xs[0].ndim))]


def split_sizes(node: Node) -> tuple[int, tuple[int, ...]]:
    """``(axis, sizes)`` of a Split node: axis non-negative; sizes per output along it, from
    attribute ``split`` (opset < 13), constant input 1 (13+), or else equal parts (the last one
    smaller with ``num_outputs``, opset 18+). Raises ShapeError when they do not add up."""
    shape = node.inputs[0].shape
    axis = norm_axis(node, attr(node, "axis"), len(shape))
    d = shape[axis]
    split = node.attrs.get("split") if node.version < 13 else const_input(node, 1, "split")
    if split is not None and len(split):
        sizes = ints(split)
    else:
        k = node.attrs.get("num_outputs") or len(node.outputs)
        if k != len(node.outputs):
            raise _shape_error(node, f"num_outputs is {k} but the node has "
                               f"{len(node.outputs)} outputs")
        chunk = -(-d // k)
        sizes = tuple(min(chunk, max(0, d - chunk * i)) for i in range(k))
    if sum(sizes) != d or len(sizes) != len(node.outputs) or any(s < 0 for s in sizes):
        raise _shape_error(node, f"split {list(sizes)} does not cut dim {d} into "
                           f"{len(node.outputs)} outputs")
    return axis, sizes


@register_op("Split")
class Split(OpDef):
    """ONNX Split: x cut along ``axis`` into the sizes of :func:`split_sizes`."""

    attrs = {"axis": 0, "split": None, "num_outputs": None}
    max_inputs = 2

    def infer(self, node):
        axis, sizes = split_sizes(node)
        x = node.inputs[0]
        return [TensorType(x.shape[:axis] + (s,) + x.shape[axis + 1:], x.dtype) for s in sizes]

    def reference(self, node, x, *rest):
        axis, sizes = split_sizes(node)
        return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def slice_params(node: Node) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...],
                                      tuple[int, ...]]:
    """``(starts, ends, axes, steps)`` of a Slice node, normalized over every axis of the input.

    ``axes`` is ``(0, 1, ..., rank-1)``; untouched axes get ``(0, dim, 1)``. Starts and ends are
    clamped as the spec says: step > 0 in [0, dim]; step < 0: start in [0, dim-1] and end in
    [-1, dim-1], where end -1 means "through index 0". Parameters come from attributes
    (opset < 10) or constant inputs 1..4 (10+). Raises ShapeError for a non-constant parameter,
    AttributeValueError for a zero step or a repeated axis.
    """
    shape = node.inputs[0].shape
    r = len(shape)
    if node.version < 10:
        starts, ends = ints(attr(node, "starts")), ints(attr(node, "ends"))
        axes = node.attrs.get("axes")
        steps = None
    else:
        starts = ints(const_input(node, 1, "starts"))
        ends = ints(const_input(node, 2, "ends"))
        axes = const_input(node, 3, "axes")
        steps = const_input(node, 4, "steps")
    axes = tuple(range(len(starts))) if axes is None else ints(axes)
    steps = (1,) * len(starts) if steps is None else ints(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise bad_attr(node, "starts, ends, axes and steps must have the same length")
    axes = norm_axes(node, axes, r)
    st, en, sp = [0] * r, list(shape), [1] * r
    for a, s, e, k in zip(axes, starts, ends, steps):
        d = shape[a]
        if k == 0:
            raise bad_attr(node, "steps must be non-zero")
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if k > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
        else:
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
        st[a], en[a], sp[a] = s, e, k
    return tuple(st), tuple(en), tuple(range(r)), tuple(sp)


def _slices(node: Node) -> tuple[slice, ...]:
    st, en, _, sp = slice_params(node)
    return tuple(slice(s, None if e < 0 else e, k) for s, e, k in zip(st, en, sp))


@register_op("Slice")
class Slice(OpDef):
    """ONNX Slice: x[starts:ends:steps] along axes (see :func:`slice_params`)."""

    attrs = {"starts": None, "ends": None, "axes": None}
    max_inputs = 5

    def check(self, node):
        if node.version < 10 and (node.attrs.get("starts") is None or node.attrs.get("ends") is None):
            raise bad_attr(node, "starts and ends are required (opset < 10)")

    def infer(self, node):
        x = node.inputs[0]
        shape = tuple(len(range(*sl.indices(d))) for sl, d in zip(_slices(node), x.shape))
        return [TensorType(shape, x.dtype)]

    def reference(self, node, x, *rest):
        return [x[_slices(node)]]


@register_op("onnxcc.InsertSlice", traits={"inplace"})
class InsertSlice(OpDef):
    """onnxcc's InsertSlice (MLIR's ``tensor.insert_slice``), made by the patch pass:
    y = dest with ``y[offsets[k] : offsets[k] + source.shape[k]]`` (every axis k) = source.

    dest (optional) has y's shape; without it y is ``shape`` (an attribute) of source's dtype,
    zeros outside the source's window. source has y's rank and fits inside y at ``offsets``.
    Trait ``inplace``: y may take dest's storage when nothing reads dest afterwards, so a chain
    of InsertSlice nodes writes its windows into one buffer.
    """

    attrs = {"offsets": REQUIRED, "shape": None}
    min_inputs, max_inputs = 2, 2

    def check(self, node):
        d, s = node.inputs
        shape = d.shape if d is not None else node.attrs.get("shape")
        if shape is None:
            raise bad_attr(node, "shape is required when dest is omitted")
        off = ints(attr(node, "offsets"))
        if len(off) != len(shape) or len(s.shape) != len(shape) or any(
                o < 0 or o + n > m for o, n, m in zip(off, s.shape, shape)):
            raise bad_attr(node, f"source {list(s.shape)} at offsets {list(off)} does not fit "
                           f"inside {list(shape)}")
        if d is not None and d.dtype != s.dtype:
            raise bad_attr(node, f"dest {d.dtype} and source {s.dtype} differ in dtype")

    def infer(self, node):
        self.check(node)
        d, s = node.inputs
        shape = d.shape if d is not None else tuple(ints(attr(node, "shape")))
        return [TensorType(shape, s.dtype)]

    def reference(self, node, dest, source):
        shape = dest.shape if dest is not None else tuple(ints(attr(node, "shape")))
        y = np.zeros(shape, source.dtype) if dest is None else np.array(dest, copy=True)
        y[tuple(slice(o, o + n) for o, n in zip(ints(attr(node, "offsets")), source.shape))] = source
        return [y]


@register_op("Gather")
class Gather(OpDef):
    """ONNX Gather: y = take(data, indices, axis); negative indices count from the end.
    y shape: data.shape[:axis] + indices.shape + data.shape[axis+1:]. Raises IndexError (at run
    time) for an out-of-range index."""

    attrs = {"axis": 0}
    min_inputs = max_inputs = 2

    def infer(self, node):
        d, i = node.inputs
        a = norm_axis(node, attr(node, "axis"), len(d.shape))
        if i.const is not None and i.const.size:
            lo, hi = int(i.const.min()), int(i.const.max())
            if lo < -d.shape[a] or hi >= d.shape[a]:
                raise _shape_error(node, f"indices [{lo}, {hi}] are outside [-{d.shape[a]}, "
                                   f"{d.shape[a] - 1}] on axis {a}")
        return [TensorType(d.shape[:a] + i.shape + d.shape[a + 1:], d.dtype)]

    def reference(self, node, data, idx):
        a = norm_axis(node, attr(node, "axis"), data.ndim)
        idx = idx.astype(np.int64)
        idx = np.where(idx < 0, idx + data.shape[a], idx)
        return [np.take(data, idx, axis=a)]


# ---- Pad ------------------------------------------------------------------------------------
PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _pad_widths(node: Node) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(pads_begin, pads_end) over every axis (attribute before opset 11, then inputs 1 and 3)."""
    r = len(node.inputs[0].shape)
    if node.version < 11:
        pads, axes = ints(attr(node, "pads")), tuple(range(r))
    else:
        pads = ints(const_input(node, 1, "pads"))
        a = const_input(node, 3, "axes")
        axes = tuple(range(r)) if a is None else norm_axes(node, ints(a), r)
    if len(pads) != 2 * len(axes):
        raise bad_attr(node, f"pads has {len(pads)} values, expected {2 * len(axes)}")
    pb, pe = [0] * r, [0] * r
    for k, a in enumerate(axes):
        pb[a], pe[a] = pads[k], pads[len(axes) + k]
    return tuple(pb), tuple(pe)


def pad_params(node: Node, runtime_value: bool = False
               ) -> tuple[tuple[int, ...], tuple[int, ...], str, float | int | bool | None]:
    """``(pads_begin, pads_end, mode, value)`` of a Pad node over every input axis.

    Opset < 11: attributes ``pads``/``value``; 11+: constant inputs pads, constant_value
    (default 0) and, from 18, axes. Pads may be negative (cropping). ``value`` is a Python scalar
    of the input's kind; with ``runtime_value`` it is None when constant_value is a runtime
    input (the kernel loads it). Raises ShapeError for other non-constant parameters.
    """
    pb, pe = _pad_widths(node)
    if node.version < 11:
        value = node.attrs.get("value")
        value = 0.0 if value is None else value
    elif runtime_value and has_input(node, 2) and node.inputs[2].const is None:
        return pb, pe, attr(node, "mode"), None
    else:
        v = const_input(node, 2, "constant_value")
        value = 0 if v is None or v.size == 0 else v.reshape(-1)[0].item()
    return pb, pe, attr(node, "mode"), np.asarray(value).astype(node.inputs[0].dtype).item()


@register_op("Pad")
class Pad(OpDef):
    """ONNX Pad: modes constant, reflect (mirror without the edge), edge and wrap; negative pads
    crop. See :func:`pad_params` (the reference also accepts a runtime constant_value)."""

    attrs = {"mode": "constant", "pads": None, "value": None}
    min_inputs, max_inputs = 1, 4

    def check(self, node):
        if attr(node, "mode") not in PAD_MODES:
            raise bad_attr(node, f"mode must be one of {PAD_MODES}, got {attr(node, 'mode')!r}")
        if node.version < 11 and node.attrs.get("pads") is None:
            raise bad_attr(node, "pads is required (opset < 11)")

    def infer(self, node):
        pb, pe = _pad_widths(node)
        x = node.inputs[0]
        shape = tuple(d + b + e for d, b, e in zip(x.shape, pb, pe))
        if any(s < 0 for s in shape):
            raise _shape_error(node, f"pads {pb}+{pe} crop {x.shape} below zero")
        return [TensorType(shape, x.dtype)]

    def reference(self, node, x, pads=None, value=None, axes=None):
        pb, pe = _pad_widths(node)
        value = node.attrs.get("value") if node.version < 11 else value
        value = 0 if value is None or np.size(value) == 0 else np.asarray(value).reshape(-1)[0]
        width = [(max(b, 0), max(e, 0)) for b, e in zip(pb, pe)]
        if attr(node, "mode") == "constant":
            # pad, then remove (a negative pad may remove padding: a 0-wide axis padded by 2
            # before and -1 after keeps 1 element)
            y = np.pad(x, width, constant_values=np.asarray(value).astype(x.dtype))
            return [y[tuple(slice(max(-b, 0), d - max(-e, 0))
                            for d, b, e in zip(y.shape, pb, pe))]]
        x = x[tuple(slice(max(-b, 0), d - max(-e, 0)) for d, b, e in zip(x.shape, pb, pe))]
        return [np.pad(x, width, mode=attr(node, "mode"))]


# ---- Shape, Size, ConstantOfShape, Expand, Tile, Range --------------------------------------
def shape_range(node: Node) -> tuple[int, int]:
    """``(start, end)`` of a Shape node (opset 15+ attributes), clamped to [0, rank]."""
    r = len(node.inputs[0].shape)
    start = node.attrs.get("start") or 0
    end = node.attrs.get("end")
    return slice(start, end).indices(r)[:2]


@register_op("Shape")
class Shape(OpDef):
    """ONNX Shape: int64 1-D tensor of x's dims [start:end]."""

    attrs = {"start": None, "end": None}

    def infer(self, node):
        s, e = shape_range(node)
        return [TensorType((max(e - s, 0),), np.int64)]

    def reference(self, node, x):
        s, e = shape_range(node)
        return [np.array(x.shape[s:e], np.int64)]


@register_op("Size")
class Size(OpDef):
    """ONNX Size: int64 scalar, the number of elements of x."""

    def infer(self, node):
        return [TensorType((), np.int64)]

    def reference(self, node, x):
        return [np.array(x.size, np.int64)]


def _const_shape(node: Node, k: int, what: str) -> tuple[int, ...]:
    """Input ``k`` of ``node``, a constant 1-D int64 tensor of sizes (Expand's shape, Tile's
    repeats...); ShapeError naming ``what`` when it has another rank or a negative size."""
    if len(node.inputs[k].shape) != 1:   # the spec says 1-D; flattening would guess the meaning
        raise _shape_error(node, f"{what} must be a 1-D tensor, got shape {list(node.inputs[k].shape)}")
    s = ints(const_input(node, k, what))
    if any(d < 0 for d in s):
        raise _shape_error(node, f"{what} {list(s)} has a negative size")
    return s


@register_op("ConstantOfShape")
class ConstantOfShape(OpDef):
    """ONNX ConstantOfShape: a tensor of the constant shape input filled with ``value`` (a
    1-element tensor, default float32 0). Returns a read-only 0-stride view (no memory)."""

    attrs = {"value": None}

    def _fill(self, node):
        v = node.attrs.get("value")
        return np.zeros((), np.float32) if v is None else np.asarray(v).reshape(-1)[0]

    def infer(self, node):
        return [TensorType(_const_shape(node, 0, "shape"), self._fill(node).dtype)]

    def reference(self, node, shape):
        return [np.broadcast_to(self._fill(node), ints(shape))]


@register_op("Expand")
class Expand(OpDef):
    """ONNX Expand: x broadcast (bidirectionally) with the constant shape input; a read-only
    view (0-stride along expanded dims)."""

    min_inputs = max_inputs = 2

    def _shape(self, node):
        try:
            return np.broadcast_shapes(node.inputs[0].shape, _const_shape(node, 1, "shape"))
        except ValueError as e:
            raise _shape_error(node, str(e)) from None

    def infer(self, node):
        return [TensorType(self._shape(node), node.inputs[0].dtype)]

    def reference(self, node, x, shape):
        return [np.broadcast_to(x, np.broadcast_shapes(x.shape, ints(shape)))]


@register_op("Tile")
class Tile(OpDef):
    """ONNX Tile: x repeated ``repeats[i]`` times along axis i (constant input)."""

    min_inputs = max_inputs = 2

    def infer(self, node):
        x = node.inputs[0]
        reps = _const_shape(node, 1, "repeats")
        if len(reps) != len(x.shape):
            raise _shape_error(node, f"repeats {list(reps)} must have one value per axis")
        return [TensorType(tuple(d * k for d, k in zip(x.shape, reps)), x.dtype)]

    def reference(self, node, x, reps):
        return [np.tile(x, ints(reps))]


@register_op("Range")
class Range(OpDef):
    """ONNX Range: [start, start + delta, ...) below limit (above it for delta < 0); scalars of
    one numeric type, all constant. ``stash_type`` (opset 27+, default 1) only concerns float16:
    with 1 the values are computed in float32 and rounded once."""

    attrs = {"stash_type": None}
    min_inputs = max_inputs = 3

    def _values(self, node, start, limit, delta):
        start, limit, delta = (np.asarray(v).reshape(()) for v in (start, limit, delta))
        if delta == 0:
            raise bad_attr(node, "delta must be non-zero")
        if np.issubdtype(start.dtype, np.integer):
            n = max(0, -((int(start) - int(limit)) // int(delta)))
        else:
            n = max(0, math.ceil((float(limit) - float(start)) / float(delta)))
        stash = start.dtype
        if stash == np.float16 and node.version >= 27 and node.attrs.get("stash_type", 1) != 0:
            stash = np.dtype(np.float32)
        step = np.asarray(delta, stash)
        return (np.asarray(start, stash) + np.arange(n, dtype=stash) * step).astype(start.dtype)

    def infer(self, node):
        args = [const_input(node, k, n) for k, n in enumerate(("start", "limit", "delta"))]
        return [TensorType(self._values(node, *args).shape, node.inputs[0].dtype)]

    def reference(self, node, start, limit, delta):
        return [self._values(node, start, limit, delta)]


# ---- DepthToSpace, SpaceToDepth -------------------------------------------------------------
@register_op("DepthToSpace")
class DepthToSpace(OpDef):
    """ONNX DepthToSpace: x (N, C, H, W) -> (N, C/b^2, H*b, W*b); mode DCR (depth-column-row,
    default) or CRD (opset 11+)."""

    attrs = {"blocksize": REQUIRED, "mode": None}

    def check(self, node):
        b, s = attr(node, "blocksize"), node.inputs[0].shape
        if (node.attrs.get("mode") or "DCR") not in ("DCR", "CRD"):
            raise bad_attr(node, f"mode must be DCR or CRD, got {node.attrs['mode']!r}")
        if b < 1 or len(s) != 4 or s[1] % (b * b):
            raise bad_attr(node, f"blocksize {b} does not fit input {s} (N, C, H, W)")

    def infer(self, node):
        b, (n, c, h, w) = attr(node, "blocksize"), node.inputs[0].shape
        return [TensorType((n, c // (b * b), h * b, w * b), node.inputs[0].dtype)]

    def reference(self, node, x):
        b, (n, c, h, w) = attr(node, "blocksize"), x.shape
        if (node.attrs.get("mode") or "DCR") == "DCR":
            t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return [t.reshape(n, c // (b * b), h * b, w * b)]


@register_op("SpaceToDepth")
class SpaceToDepth(OpDef):
    """ONNX SpaceToDepth: x (N, C, H, W) -> (N, C*b^2, H/b, W/b), blocks moved to depth in
    mode DCR (depth-column-row, the default) or CRD (opset 28+)."""

    attrs = {"blocksize": REQUIRED, "mode": None}

    def check(self, node):
        b, s = attr(node, "blocksize"), node.inputs[0].shape
        if (node.attrs.get("mode") or "DCR") not in ("DCR", "CRD"):
            raise bad_attr(node, f"mode must be DCR or CRD, got {node.attrs['mode']!r}")
        if b < 1 or len(s) != 4 or s[2] % b or s[3] % b:
            raise bad_attr(node, f"blocksize {b} does not fit input {s} (N, C, H, W)")

    def infer(self, node):
        b, (n, c, h, w) = attr(node, "blocksize"), node.inputs[0].shape
        return [TensorType((n, c * b * b, h // b, w // b), node.inputs[0].dtype)]

    def reference(self, node, x):
        b, (n, c, h, w) = attr(node, "blocksize"), x.shape
        perm = (0, 3, 5, 1, 2, 4) if (node.attrs.get("mode") or "DCR") == "DCR" else (0, 1, 3, 5, 2, 4)
        t = x.reshape(n, c, h // b, b, w // b, b).transpose(perm)
        return [t.reshape(n, c * b * b, h // b, w // b)]
