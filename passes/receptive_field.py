"""Receptive fields of spatially local nodes on (N, C, H, W) tensors, for the patch pass.

:func:`window` says how a node reads its spatial input (dilated kernel extent, stride and begin
pads per spatial axis; 1, 1, 0 for a pointwise node), or None when it is not spatially local;
:func:`input_box` maps a box of a node's output back to the box of its input it reads, clipped
to the input, and the pads that remain where the receptive field leaves the image. Boxes are
``[begin, end)`` per spatial axis (H, W), in elements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from onnxcc.ir import Node, Value
from onnxcc.ops import get_op
from onnxcc.ops.nn import conv_geometry, pool_geometry
from onnxcc.ops.shape import pad_params

CONV_OPS = {"Conv": 1, "onnxcc.FusedConv": 1, "QLinearConv": 3, "ConvInteger": 1}  # op -> W input
POOL_OPS = ("MaxPool", "AveragePool")
QUANT_OPS = ("QuantizeLinear", "DequantizeLinear")
QLINEAR_BINARY = ("com.microsoft.QLinearAdd", "com.microsoft.QLinearMul")

Box = tuple[tuple[int, int], ...]   # [begin, end) per spatial axis


@dataclass(frozen=True)
class Window:
    """How a node reads its spatial input(s): per spatial axis the dilated kernel extent, the
    stride and the begin pads (all 1, 1, 0 for a pointwise node); ``spatial`` lists the input
    positions read through the window (the others are constants)."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    spatial: tuple[int, ...]
    kind: str   # "conv" (Conv-like and pools: a pads attribute), "pad" (Pad) or "pointwise"


def _no_spatial_extent(v: Value) -> bool:
    """A constant operand that broadcasts the same over every spatial position of a 4-D tensor:
    its dims aligned with H and W (numpy broadcasting: its last two) are 1. A rank-1 constant
    of W values varies along W (``Where(c, x, w)`` with w of shape (7,) was taken for
    pointwise, and the patch's Where computed the full width: VerifyError on cortex-m4)."""
    return v.is_const and all(d == 1 for d in v.shape[-2:])


def window(n: Node) -> Window | None:
    """The :class:`Window` of a spatially local node on (N, C, H, W) tensors, or None when ``n``
    is not one the patch pass can split (not local, several outputs, ceil_mode that adds a
    window, a non-constant Pad mode...)."""
    if len(n.outputs) != 1 or not n.inputs or n.inputs[0] is None:
        return None
    x, y = n.inputs[0], n.outputs[0]
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[0] != y.shape[0] or x.is_const:
        return None
    rest = [v for k, v in enumerate(n.inputs) if k and v is not None]
    if n.op in CONV_OPS:
        w = n.inputs[CONV_OPS[n.op]]
        if any(not v.is_const for v in rest):
            return None
        pb, _, s, d, _ = conv_geometry(n, x.shape, w.shape)
        k = tuple((kk - 1) * dd + 1 for kk, dd in zip(w.shape[2:], d))
        return Window(k, tuple(s), tuple(pb), (0,), "conv")
    if n.op in POOL_OPS:
        pb, pe, s, d, kern, out = pool_geometry(n, x.shape)
        k = tuple((kk - 1) * dd + 1 for kk, dd in zip(kern, d))
        floor = tuple((i + b + e - kk) // ss + 1 for i, b, e, kk, ss in zip(x.shape[2:], pb, pe, k, s))
        if floor != tuple(out):
            return None   # ceil_mode adds a window past the pads: not a plain window
        return Window(k, tuple(s), tuple(pb), (0,), "conv")
    if n.op == "Pad":
        if any(not v.is_const for v in rest):
            return None
        pb, pe, mode, _ = pad_params(n)
        if mode != "constant" or any(pb[:2]) or any(pe[:2]) or min(pb + pe) < 0:
            return None
        return Window((1, 1), (1, 1), tuple(pb[2:]), (0,), "pad")
    if n.op == "onnxcc.LookupTable" or n.op in QUANT_OPS:
        per_channel = n.op in QUANT_OPS and int(n.attrs.get("axis", 1)) in (1, -3) \
            and not int(n.attrs.get("block_size") or 0)
        if any(not v.is_const for v in rest) or n.op in QUANT_OPS and not per_channel and any(
                v.const.size != 1 for v in rest):
            return None
        return Window((1, 1), (1, 1), (0, 0), (0,), "pointwise")
    if n.op in QLINEAR_BINARY:   # A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp
        if any(not v.is_const for k, v in enumerate(n.inputs) if v is not None and k not in (0, 3)) \
                or any(n.inputs[k].shape != y.shape for k in (0, 3)):
            return None
        return Window((1, 1), (1, 1), (0, 0), (0, 3), "pointwise")
    traits = get_op(n).traits
    if "elementwise" in traits:
        spatial = []
        for k, v in enumerate(n.inputs):
            if v is None:
                continue
            if v.is_const:
                if not _no_spatial_extent(v):
                    return None
            elif v.shape == y.shape:
                spatial.append(k)
            else:
                return None
        return Window((1, 1), (1, 1), (0, 0), tuple(spatial), "pointwise")
    return None


def input_box(win: Window, out: Box, in_sp: Sequence[int]
              ) -> tuple[Box, tuple[int, ...], tuple[int, ...]]:
    """(the box of a node's input (spatial sizes ``in_sp``) that its output box ``out`` reads,
    clipped to the input; the pads before and after that box: where the receptive field leaves
    the image, zero where it stays inside). ``win`` is the node's :func:`window`."""
    box, pb, pe = [], [], []
    for (o0, o1), k, s, p, size in zip(out, win.kernel, win.strides, win.pads, in_sp):
        a, b = o0 * s - p, (o1 - 1) * s - p + k
        lo, hi = max(a, 0), min(b, size)
        box.append((lo, hi))
        pb.append(lo - a)
        pe.append(b - hi)
    return tuple(box), tuple(pb), tuple(pe)
