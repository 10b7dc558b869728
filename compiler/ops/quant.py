"""Quantization ops of the ONNX spec: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv.

Integer semantics (ONNX operator spec, opsets 10 to 28; the references match
``onnx.reference`` bit for bit):

- quantize: ``y = saturate(round(x / scale) + zero_point)``, division in float32, rounding half
  to even, saturation to the output type's range (int8, uint8, int16, uint16). A NaN quotient
  saturates to the type's minimum (onnxcc's rule; the spec leaves it open).
- dequantize: ``y = (float(x) - float(zero_point)) * scale`` in float32.
- scales and zero points are per tensor (a scalar or one element), per axis (1-D along
  ``axis``) or blocked (``block_size`` > 0: same rank as x, ``ceil(x.shape[axis]/block_size)``
  along ``axis``). Zero points have the quantized type; a missing one is 0.
- integer products accumulate ``(x - x_zero_point) * (w - w_zero_point)`` in int32 (wrapping),
  as ``ConvInteger``/``MatMulInteger`` return it; ``QLinearConv``/``QLinearMatMul`` then
  requantize: ``y = saturate(round(acc * m) + y_zero_point)`` with the float32 multiplier
  ``m = float32(x_scale * w_scale) / y_scale`` (per output channel when w_scale is), rounded half
  to even. The compiled kernels do the same arithmetic in integers (``onnxcc.codegen.requantize``).
- "16x8" (TFLite's 16-bit activation mode): QLinearConv, QLinearMatMul and QGemm also take an
  int16/uint16 first operand and output (the weights stay int8/uint8), and QLinearAdd/Mul and
  QLinearConcat int16/uint16 throughout: onnxcc's extension of the ops fuse_qdq produces, not
  the ONNX spec's. The products accumulate in int32 where :func:`check_wide_accumulator`
  proves that exact from the constant weights, else in int64 (TFLite's 16x8 accumulator), and
  requantize in exact integer arithmetic (:func:`requantize_exact`).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, UnsupportedOpError
from ..ir import Node, TensorType
from . import OpDef, attr, bad_attr, register_op
from ._util import has_input, norm_axis, onnx_dtype
from .matmul import gemm_dims, matmul_shape
from .nn import Conv, conv_geometry, conv_nd

QTYPES = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
          for t in (np.int8, np.uint8, np.int16, np.uint16)}
ACC_TYPES = (np.dtype(np.int8), np.dtype(np.uint8))    # operands of the integer products
WIDE_TYPES = (np.dtype(np.int16), np.dtype(np.uint16))  # 16x8: 16-bit activations, 8-bit weights
INT32_MAX = (1 << 31) - 1
ACC64_MAX = (1 << 47) - 1      # the int64 accumulator's bound (onnxcc.codegen.requantize)


def unsupported(node: Node, why: str) -> UnsupportedOpError:
    """An UnsupportedOpError for ``node`` (a dtype or layout onnxcc does not compile)."""
    return UnsupportedOpError([(node.name, node.op, why)])


def qrange(dt: np.dtype) -> tuple[int, int]:
    """(min, max) of the quantized type ``dt``."""
    return QTYPES[np.dtype(dt)]


def param_layout(node: Node, k: int, x_shape: tuple[int, ...], axis: int, block: int,
                 what: str) -> str:
    """How input ``k`` (a scale or zero point) maps onto x: ``tensor`` (one value), ``axis``
    (1-D along ``axis``) or ``block`` (blocked along ``axis``). Raises ShapeError naming the
    node when its shape fits none of them."""
    shape = node.inputs[k].shape
    n = math.prod(shape)
    if n == 1 and len(shape) <= 1 and not block:
        return "tensor"
    if block:
        want = tuple(-(-d // block) if a == axis else d for a, d in enumerate(x_shape))
        if tuple(shape) == want:
            return "block"
        raise ShapeError(f"{what} shape {list(shape)} does not fit blocked quantization of "
                         f"{list(x_shape)} along axis {axis} by {block} (expected {list(want)})",
                         node=node.name, op=node.op,
                         hint="give one value per block along the axis, other dims as x")
    if len(shape) == 1 and shape[0] == x_shape[axis]:
        return "axis"
    raise ShapeError(f"{what} shape {list(shape)} fits neither per-tensor (one value) nor "
                     f"per-axis ({x_shape[axis]} values along axis {axis}) quantization of "
                     f"{list(x_shape)}", node=node.name, op=node.op,
                     hint="set the node's axis attribute, or give one value per channel")


def broadcast_param(p: np.ndarray, x_shape: tuple[int, ...], axis: int, block: int) -> np.ndarray:
    """A scale or zero point broadcastable to ``x_shape`` (per tensor, axis or block)."""
    p = np.asarray(p)
    if p.size == 1 and not block:
        return p.reshape(())
    if block:
        return np.repeat(p, block, axis=axis).take(range(x_shape[axis]), axis=axis)
    dims = [1] * len(x_shape)
    dims[axis] = p.size
    return p.reshape(dims)


class _Linear(OpDef):
    """What QuantizeLinear and DequantizeLinear share: axis, block_size and their checks."""

    min_inputs, max_inputs = 2, 3

    def axis(self, node: Node) -> int:
        """The quantization axis, made non-negative; 0 for per-tensor parameters (whose axis
        the spec ignores, so it need not fit x's rank)."""
        if self.per_tensor(node):
            return 0
        return norm_axis(node, attr(node, "axis"), max(len(node.inputs[0].shape), 1))

    def per_tensor(self, node: Node) -> bool:
        s = node.inputs[1].shape
        return not self.block(node) and len(s) <= 1 and math.prod(s) == 1

    def block(self, node: Node) -> int:
        return int(node.attrs.get("block_size") or 0)

    def check(self, node: Node) -> None:
        x = node.inputs[0]
        if self.block(node) < 0:
            raise bad_attr(node, f"block_size {self.block(node)} is negative")
        if not x.shape and (self.block(node) or node.inputs[1].shape not in ((), (1,))):
            raise bad_attr(node, "a scalar x takes a scalar scale")
        axis = self.axis(node) if x.shape else 0
        for k, what in ((1, "scale"), (2, "zero point")):
            if has_input(node, k) and x.shape:
                param_layout(node, k, x.shape, axis, self.block(node), what)
        sc = node.inputs[1].const
        if sc is not None:
            c = np.asarray(sc, np.float64)
            bad = ~np.isfinite(c) | ((c <= 0) if node.op == "QuantizeLinear" else False)
            if bad.any():
                raise bad_attr(node, f"scale {c.reshape(-1)[np.argmax(bad.reshape(-1))]} of "
                               f"{node.inputs[1].name!r} must be "
                               + ("positive and finite" if node.op == "QuantizeLinear"
                                  else "finite"))
        if has_input(node, 2) and has_input(node, 1) and \
                node.inputs[2].shape != node.inputs[1].shape and \
                math.prod(node.inputs[2].shape) != math.prod(node.inputs[1].shape):
            raise bad_attr(node, f"zero point shape {list(node.inputs[2].shape)} differs from "
                           f"scale shape {list(node.inputs[1].shape)}")

    def params(self, node: Node, x: np.ndarray, scale: np.ndarray, zp: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
        axis = self.axis(node) if x.ndim else 0
        block = self.block(node)
        s = broadcast_param(scale, x.shape, axis, block)
        z = broadcast_param(zp, x.shape, axis, block) if zp is not None else np.zeros((), np.int32)
        return s, z


@register_op("QuantizeLinear")
class QuantizeLinear(_Linear):
    """ONNX QuantizeLinear: y = saturate(round(x / y_scale) + y_zero_point). x float32 (any
    shape); y_scale float32 per tensor, per axis or blocked; y_zero_point and y int8, uint8,
    int16 or uint16 (uint8 when neither the zero point nor ``output_dtype`` says)."""

    attrs = {"axis": 1, "block_size": 0, "output_dtype": 0, "precision": 0, "saturate": 1}

    def out_dtype(self, node: Node) -> np.dtype:
        code = int(node.attrs.get("output_dtype") or 0)
        if has_input(node, 2):
            dt = node.inputs[2].dtype
            if code and onnx_dtype(node, code) != dt:
                raise bad_attr(node, f"output_dtype {onnx_dtype(node, code)} differs from the "
                               f"zero point's type {dt}")
        else:
            dt = onnx_dtype(node, code) if code else np.dtype(np.uint8)
        if dt not in QTYPES:
            raise unsupported(node, f"quantized type {dt} is not supported (int8, uint8, "
                              "int16, uint16)")
        return dt

    def check(self, node: Node) -> None:
        super().check(node)
        self.out_dtype(node)
        p = int(node.attrs.get("precision") or 0)
        if p and onnx_dtype(node, p) != np.float32:
            raise unsupported(node, f"precision {onnx_dtype(node, p)} is not supported (float32)")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, self.out_dtype(node))]

    def reference(self, node, x, scale, zp=None):
        dt = self.out_dtype(node)
        s, z = self.params(node, x, scale, zp)
        lo, hi = qrange(dt)
        with np.errstate(all="ignore"):
            q = np.rint(x.astype(np.float32) / s.astype(np.float32)) + z.astype(np.float32)
            q = np.where(np.isnan(q), lo, np.clip(q, lo, hi))
        return [q.astype(dt)]


@register_op("DequantizeLinear")
class DequantizeLinear(_Linear):
    """ONNX DequantizeLinear: y = (x - x_zero_point) * x_scale. x int8, uint8, int16, uint16 or
    int32 (whose zero point must be 0); x_scale float32 (or float16, computed in float32 and
    rounded) per tensor, per axis or blocked; y of x's shape and x_scale's type."""

    attrs = {"axis": 1, "block_size": 0, "output_dtype": 0}

    def check(self, node: Node) -> None:
        super().check(node)
        x, s = node.inputs[0], node.inputs[1]
        if x.dtype not in QTYPES and x.dtype != np.int32:
            raise unsupported(node, f"x of type {x.dtype} is not supported (int8, uint8, "
                              "int16, uint16, int32)")
        if has_input(node, 2) and node.inputs[2].dtype != x.dtype:
            raise bad_attr(node, f"zero point type {node.inputs[2].dtype} differs from x's "
                           f"{x.dtype}")
        out = self.out_dtype(node)
        if out != s.dtype or s.dtype not in (np.float32, np.float16):
            raise unsupported(node, f"scale {s.dtype} / output {out} is not supported (float32, "
                              "or float16 computed in float32)")

    def out_dtype(self, node: Node) -> np.dtype:
        code = int(node.attrs.get("output_dtype") or 0)
        return onnx_dtype(node, code) if code else node.inputs[1].dtype

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, self.out_dtype(node))]

    def reference(self, node, x, scale, zp=None):
        s, z = self.params(node, x, scale, zp)
        with np.errstate(all="ignore"):
            y = (x.astype(np.float32) - z.astype(np.float32)) * s.astype(np.float32)
        return [y.astype(self.out_dtype(node))]


@register_op("DynamicQuantizeLinear")
class DynamicQuantizeLinear(OpDef):
    """ONNX DynamicQuantizeLinear (opset 11): uint8 quantization of float32 x with a scale and
    zero point computed from x's range: scale = (max(x, 0) - min(x, 0)) / 255 (1/255 when x is
    all zeros), zero_point = round(saturate(-min(x, 0) / scale)), y = saturate(round(x / scale)
    + zero_point). Outputs y (uint8, x's shape), y_scale (float32 scalar), y_zero_point (uint8
    scalar). A NaN in x propagates into the scale (as onnxruntime); x must not be empty."""

    attrs: dict = {}
    min_inputs, max_inputs = 1, 1

    def check(self, node: Node) -> None:
        x = node.inputs[0]
        if x.dtype != np.float32:
            raise unsupported(node, f"x of type {x.dtype} is not supported (float32)")
        if math.prod(x.shape) == 0:
            raise ShapeError("x is empty: its range, and so the scale, is undefined",
                             node=node.name, op=node.op, hint="give a non-empty input")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, np.dtype(np.uint8)),
                TensorType((), np.dtype(np.float32)), TensorType((), np.dtype(np.uint8))]

    def reference(self, node, x):
        x = x.astype(np.float32)
        with np.errstate(all="ignore"):
            hi = np.float32(max(np.float32(0), np.max(x))) if not np.isnan(x).any() else np.nan
            lo = np.float32(min(np.float32(0), np.min(x))) if not np.isnan(x).any() else np.nan
            rng = np.float32(1.0) if hi == lo else np.float32(hi - lo)
            scale = np.float32(rng / np.float32(255))
            zp = np.float32(np.clip(np.float32(0) - lo / scale, 0, 255))
            zpi = np.rint(zp)
            q = np.rint(x / scale) + zpi
            q = np.where(np.isnan(q), 0, np.clip(q, 0, 255))
            zpi = 0 if np.isnan(zpi) else zpi
        return [q.astype(np.uint8), np.array(scale, np.float32), np.array(zpi, np.uint8)]


def _operand_dtype(node: Node, k: int, what: str, wide: bool = False) -> None:
    v = node.inputs[k]
    if v.dtype not in ACC_TYPES + (WIDE_TYPES if wide else ()):
        raise unsupported(node, f"{what} of type {v.dtype} is not supported (int8 or uint8"
                          + (", int16 or uint16)" if wide else ")"))


def _zero_point(node: Node, k: int, of: int, what: str, sizes: tuple[int, ...]) -> None:
    """Zero point input ``k`` of operand ``of``: its type, and one value or one per ``sizes``."""
    if not has_input(node, k):
        return
    v = node.inputs[k]
    if v.dtype != node.inputs[of].dtype:
        raise bad_attr(node, f"{what} of type {v.dtype} differs from its operand's "
                       f"{node.inputs[of].dtype}")
    n = math.prod(v.shape)
    if not (n == 1 and len(v.shape) <= 1) and not (len(v.shape) == 1 and n in sizes):
        raise ShapeError(f"{what} shape {list(v.shape)} is neither one value nor one per "
                         f"{'/'.join(map(str, sizes))}", node=node.name, op=node.op,
                         hint="per-tensor or per-channel zero points only")


def _scale(node: Node, k: int, what: str, sizes: tuple[int, ...] = ()) -> None:
    v = node.inputs[k]
    if v.dtype not in (np.float32, np.float16):   # float16: computed in float32 (float16_compute)
        raise unsupported(node, f"{what} of type {v.dtype} is not supported (float32, float16)")
    n = math.prod(v.shape)
    if not (n == 1 and len(v.shape) <= 1) and not (len(v.shape) == 1 and n in sizes):
        raise ShapeError(f"{what} shape {list(v.shape)} is neither one value nor one per "
                         f"{'/'.join(map(str, sizes)) or 'tensor'}", node=node.name,
                         op=node.op, hint="per-tensor or per-channel scales only")
    if v.const is not None:
        c = np.asarray(v.const, np.float32)
        if not (np.isfinite(c).all() and (c > 0).all()):
            raise bad_attr(node, f"{what} {c.reshape(-1)[:4].tolist()} must be positive and "
                           "finite")


def _check_requantized(node: Node, names: tuple[str, str], channels: int, y: tuple[int, int],
                       y_zp_typed: bool = True, wide_b: bool = False) -> None:
    """The checks every requantized product shares: operands ``names`` at inputs 0 and 3 (int8/
    uint8, zero points at 2 and 5, scales at 1 and 4; the second operand's scale and zero point
    may be one per ``channels``) and the output's scale and zero point at inputs ``y``. Raises
    UnsupportedOpError or AttributeValueError/ShapeError naming the node and the tensor.
    The first operand and the output may be 16-bit (int16/uint16: "16x8"), the second only
    when ``wide_b`` (an elementwise op of two activations), never for weights."""
    a, b = names
    _operand_dtype(node, 0, a, wide=True)
    _operand_dtype(node, 3, b, wide=wide_b)
    if y_zp_typed:
        _operand_dtype(node, y[1], "y_zero_point", wide=True)
    _zero_point(node, 2, 0, f"{a}_zero_point", ())
    _zero_point(node, 5, 3, f"{b}_zero_point", (channels,) if channels > 1 else ())
    _scale(node, 1, f"{a}_scale")
    _scale(node, 4, f"{b}_scale", (channels,) if channels > 1 else ())
    _scale(node, y[0], "y_scale")


def accumulator_bound(x, xz, w, wz, w_axis: int, bias) -> int:
    """An upper bound of |acc| over every input, for every partial sum of an integer product
    whose first operand ``x`` (a Value: its dtype; ``xz`` its zero point Value or None) meets the
    constant weights ``w`` (an int array whose output channels lie along ``w_axis``; ``wz`` its
    zero point array or None, one value or one per channel), starting at the int32 ``bias``
    (an array or None): ``max_c |bias_c| + max|x - xz| * sum_k |w_ck - wz_c|``. Every partial
    sum of the reduction, in any order and with the x zero point folded into the start value or
    not, stays within it (each is a sum of a subset of the terms, ``|x * w'| <= (|x - xz| +
    |xz|) |w'|`` bounding the folded form too), so the int32 accumulator is exact when the
    bound is at most 2**31 - 1. A runtime ``xz`` counts as the type's whole span."""
    lo, hi = qrange(x.dtype)
    if xz is not None and xz.const is not None:
        z = int(np.asarray(xz.const).reshape(-1)[0])
        span = max(hi - z, z - lo) + abs(z)
    else:
        span = 2 * (hi - lo)
    wc = np.moveaxis(np.asarray(w, np.int64), w_axis, 0)
    wc = wc.reshape(wc.shape[0], -1)
    if wz is not None:
        wc = wc - np.asarray(wz, np.int64).reshape(-1, 1)
    b = 0 if bias is None or np.size(bias) == 0 else int(np.max(np.abs(np.asarray(bias,
                                                                                   np.int64))))
    return b + span * int(np.abs(wc).sum(axis=1).max(initial=0))


def check_wide_accumulator(node: Node, x: int, w: int, wz: int, w_axis: int, bias: int | None,
                           scales: tuple[int, int, int]) -> np.dtype:
    """The accumulator type of an integer product whose first operand is input ``x``: int32
    for an 8-bit one; for a 16-bit one ("16x8") int32 when :func:`accumulator_bound` (weights
    input ``w``, zero point input ``wz``, channels along ``w_axis``, int32 bias input ``bias``)
    is at most 2**31 - 1, else int64 (TFLite's 16x8 accumulator) when the bound is under 2**47
    and every requantization multiplier (scale inputs ``scales``: a, b, y) is under 64
    (``onnxcc.codegen.requantize.requantize64``'s domain). Raises UnsupportedOpError naming
    the node and the tensors when the weights, zero points, bias or scales are not constants
    or the bound exceeds that."""
    xv = node.inputs[x]
    if xv.dtype not in WIDE_TYPES:
        return np.dtype(np.int32)
    wv = node.inputs[w]
    wzv = node.inputs[wz] if has_input(node, wz) else None
    bv = node.inputs[bias] if bias is not None and has_input(node, bias) else None
    xz = node.inputs[2] if has_input(node, 2) else None
    if wv.const is None or any(v is not None and v.const is None for v in (wzv, bv, xz)):
        raise unsupported(node, f"16-bit {xv.name!r} needs constant weights {wv.name!r}, zero "
                          "points and bias to bound its accumulator")
    bound = accumulator_bound(xv, xz, wv.const, None if wzv is None else wzv.const, w_axis,
                              None if bv is None else bv.const)
    if bound <= INT32_MAX:
        return np.dtype(np.int32)
    if bound > ACC64_MAX:
        raise unsupported(node, f"16-bit {xv.name!r} times weights {wv.name!r} may reach "
                          f"{bound} in the accumulator (over 2**47 - 1): quantize this layer's "
                          "activations to int8")
    sv = [node.inputs[k] for k in scales]
    if any(v.const is None for v in sv):
        raise unsupported(node, f"16-bit {xv.name!r} with an int64 accumulator needs constant "
                          "scales")
    m = real_multiplier(*(np.asarray(v.const, np.float32) for v in sv))
    if not np.all(m < 64.0):
        raise unsupported(node, f"16-bit {xv.name!r}: a requantization multiplier of "
                          f"{float(np.max(m))} (64 or more) with an int64 accumulator")
    return np.dtype(np.int64)


def requantize_exact(acc: np.ndarray, multiplier: np.ndarray, zp, dt: np.dtype) -> np.ndarray:
    """saturate(round_half_even(acc * multiplier) + zp) in exact integer arithmetic (the
    float32 ``multiplier``, one value or broadcastable to ``acc``, is a dyadic rational:
    ``onnxcc.codegen.requantize``) for int64 ``acc``: the compiled 16x8 kernels' numbers
    (``requantize`` below 2**31, ``requantize64`` above), which a float64 product would round.
    """
    from onnxcc.codegen.requantize import quantize_multiplier, requantize, requantize64

    lo, hi = qrange(dt)
    acc = np.asarray(acc, np.int64)
    mult = np.asarray(multiplier, np.float32)
    pairs = [quantize_multiplier(float(r)) for r in mult.reshape(-1)]
    m = np.array([p[0] for p in pairs], np.int64).reshape(mult.shape)
    sh = np.array([p[1] for p in pairs], np.int64).reshape(mult.shape)
    sh = np.where(m == 0, 62, sh)     # (a multiplier under 2**-32: 0 whatever the shift)
    fn = requantize if np.abs(acc).max(initial=0) <= INT32_MAX else requantize64
    r = fn(acc, m, sh).astype(np.int64)
    z = 0 if zp is None else int(np.asarray(zp).reshape(-1)[0])
    return np.clip(r + z, lo, hi).astype(dt)


def _centered(a: np.ndarray, zp: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``a - zp`` in int64, zp broadcast as ``shape`` (zp one value or a vector)."""
    out = a.astype(np.int64)
    if zp is not None:
        out = out - np.asarray(zp, np.int64).reshape(shape if np.size(zp) > 1 else ())
    return out


def requantize_float(acc: np.ndarray, multiplier: np.ndarray, zp: np.ndarray | None,
                     dt: np.dtype) -> np.ndarray:
    """The spec's requantization: saturate(round_half_even(acc * multiplier) + zp), computed in
    float64 from the float32 multiplier (as onnx.reference does)."""
    lo, hi = qrange(dt)
    r = np.rint(acc.astype(np.float64) * np.asarray(multiplier, np.float64))
    if zp is not None:
        r = r + np.asarray(zp, np.float64)
    return np.clip(r, lo, hi).astype(dt)


def real_multiplier(a_scale: np.ndarray, b_scale: np.ndarray, y_scale: np.ndarray) -> np.ndarray:
    """float32(a_scale * b_scale) / y_scale in float32, as the spec's references compute it."""
    with np.errstate(all="ignore"):
        return (np.asarray(a_scale, np.float32).reshape(-1) * np.asarray(b_scale, np.float32)
                .reshape(-1)).astype(np.float32) / np.float32(np.asarray(y_scale).reshape(-1)[0])


@register_op("MatMulInteger")
class MatMulInteger(OpDef):
    """ONNX MatMulInteger: y (int32) = (a - a_zero_point) @ (b - b_zero_point), numpy matmul
    shapes. a, b int8/uint8; a_zero_point one value or one per row of a (M); b_zero_point one
    value or one per column of b (N). Accumulates in int32, wrapping."""

    attrs: dict = {}
    min_inputs, max_inputs = 2, 4

    def check(self, node: Node) -> None:
        a, b = node.inputs[0], node.inputs[1]
        _operand_dtype(node, 0, "a")
        _operand_dtype(node, 1, "b")
        _zero_point(node, 2, 0, "a_zero_point", (a.shape[-2] if len(a.shape) > 1 else 1,))
        _zero_point(node, 3, 1, "b_zero_point", (b.shape[-1] if len(b.shape) > 1 else 1,))

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(matmul_shape(node, node.inputs[0].shape, node.inputs[1].shape),
                           np.dtype(np.int32))]

    def reference(self, node, a, b, az=None, bz=None):
        A = _centered(a, az, (-1, 1))
        B = _centered(b, bz, (-1,))
        return [np.matmul(A, B).astype(np.int32)]


@register_op("QLinearMatMul")
class QLinearMatMul(OpDef):
    """ONNX QLinearMatMul: y = requantize((a - a_zp) @ (b - b_zp)) with multiplier
    a_scale * b_scale / y_scale. a, b, y int8/uint8 (y takes y_zero_point's type); scales
    float32, one value (b's scale and zero point may be one per column N)."""

    attrs: dict = {}
    min_inputs, max_inputs = 8, 8

    def check(self, node: Node) -> None:
        b = node.inputs[3]
        n = b.shape[-1] if len(b.shape) > 1 else 1
        _check_requantized(node, ("a", "b"), n, (6, 7))
        self.acc_dtype(node)

    def acc_dtype(self, node: Node) -> np.dtype:
        """int32, or int64 for a 16-bit a whose sums may outgrow int32
        (:func:`check_wide_accumulator`, which raises for a product it cannot bound)."""
        b = node.inputs[3]
        return check_wide_accumulator(node, 0, 3, 5, len(b.shape) - 1, None, (1, 4, 6))

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(matmul_shape(node, node.inputs[0].shape, node.inputs[3].shape),
                           node.inputs[7].dtype)]

    def reference(self, node, a, a_s, az, b, b_s, bz, y_s, yz):
        acc = np.matmul(_centered(a, az, ()), _centered(b, bz, (-1,)))
        m = real_multiplier(a_s, b_s, y_s)
        if a.dtype in WIDE_TYPES:      # 16x8: no wrap (the bound is checked), exact rounding
            return [requantize_exact(acc, m if m.size > 1 else m[0], yz, node.inputs[7].dtype)]
        return [requantize_float(acc.astype(np.int32), m if m.size > 1 else m[0],
                                 np.asarray(yz).reshape(-1)[0], node.inputs[7].dtype)]


class _ConvQ(OpDef):
    """What ConvInteger and QLinearConv share with Conv: attributes, geometry and checks."""

    attrs = dict(Conv.attrs)
    W = 1    # index of the weights input

    def check_conv(self, node: Node) -> None:
        x, w = node.inputs[0], node.inputs[self.W]
        fake = Node("Conv", [x, w], node.outputs, node.attrs, node.name, node.version)
        Conv().check(fake)

    def acc(self, node: Node, x, w, xz, wz) -> np.ndarray:
        pb, pe, s, d, out = conv_geometry(node, x.shape, w.shape)
        X = _centered(x, xz, ())
        W = _centered(w, wz, (-1,) + (1,) * (w.ndim - 1))
        return conv_nd(X, W, pb, pe, s, d, out, attr(node, "group")).astype(np.int64)

    def out_shape(self, node: Node) -> tuple[int, ...]:
        x, w = node.inputs[0], node.inputs[self.W]
        return (x.shape[0], w.shape[0]) + conv_geometry(node, x.shape, w.shape)[4]


@register_op("ConvInteger")
class ConvInteger(_ConvQ):
    """ONNX ConvInteger: y (int32) = conv(x - x_zero_point, w - w_zero_point), Conv's
    attributes and layouts (x NCHW, w (M, C/group, *K)); padding adds 0 to the centered input.
    x, w int8/uint8; x_zero_point one value; w_zero_point one value or one per output channel."""

    min_inputs, max_inputs = 2, 4

    def check(self, node: Node) -> None:
        self.check_conv(node)
        _operand_dtype(node, 0, "x")
        _operand_dtype(node, 1, "w")
        _zero_point(node, 2, 0, "x_zero_point", ())
        _zero_point(node, 3, 1, "w_zero_point", (node.inputs[1].shape[0],))

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(self.out_shape(node), np.dtype(np.int32))]

    def reference(self, node, x, w, xz=None, wz=None):
        return [self.acc(node, x, w, xz, wz).astype(np.int32)]


@register_op("QLinearConv")
class QLinearConv(_ConvQ):
    """ONNX QLinearConv: y = requantize(conv(x - x_zp, w - w_zp) + B) with multiplier
    x_scale * w_scale / y_scale (per output channel when w_scale is). x, w, y int8/uint8 (y takes
    y_zero_point's type), B int32 (M,); Conv's attributes and layouts (x NCHW)."""

    min_inputs, max_inputs = 8, 9
    W = 3

    def check(self, node: Node) -> None:
        self.check_conv(node)
        m = node.inputs[3].shape[0]
        _check_requantized(node, ("x", "w"), m, (6, 7))
        if has_input(node, 8):
            b = node.inputs[8]
            if b.dtype != np.int32 or b.shape != (m,):
                raise bad_attr(node, f"bias {b.dtype} {list(b.shape)} must be int32 ({m},)")
        self.acc_dtype(node)

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(self.out_shape(node), node.inputs[7].dtype)]

    def acc_dtype(self, node: Node) -> np.dtype:
        """int32, or int64 for a 16-bit x whose sums may outgrow int32
        (:func:`check_wide_accumulator`, which raises for a product it cannot bound)."""
        return check_wide_accumulator(node, 0, 3, 5, 0, 8, (1, 4, 6))

    def reference(self, node, x, x_s, xz, w, w_s, wz, y_s, yz, b=None):
        acc = self.acc(node, x, w, xz, wz)
        if b is not None:
            acc = acc + b.astype(np.int64).reshape((1, -1) + (1,) * (acc.ndim - 2))
        m = real_multiplier(x_s, w_s, y_s)
        mb = m.reshape((1, -1) + (1,) * (acc.ndim - 2)) if m.size > 1 else m[0]
        if x.dtype in WIDE_TYPES:      # 16x8: no wrap (the bound is checked), exact rounding
            return [requantize_exact(acc, mb, yz, node.inputs[7].dtype)]
        return [requantize_float(acc.astype(np.int32), mb, np.asarray(yz).reshape(-1)[0],
                                 node.inputs[7].dtype)]


@register_op("QGemm", domain="com.microsoft")
class QGemm(OpDef):
    """onnxruntime's contrib op QGemm (domain com.microsoft): y = requantize(A' @ B' + C) with
    multiplier alpha * a_scale * b_scale / y_scale, where A' = A (M, K) or A^T (transA), B' =
    (B - b_zp) (K, N) or its transpose (transB), A' centered by a_zp. A, B int8/uint8; a_scale
    and a_zp one value; b_scale and b_zp one value or one per column N; C int32 broadcasting to
    (M, N), in the accumulator's scale (a_scale * b_scale); y takes y_zero_point's type.
    The float-output form (no y_scale) is not supported."""

    attrs = {"alpha": 1.0, "transA": 0, "transB": 0}
    min_inputs, max_inputs = 6, 9

    def dims(self, node: Node) -> tuple[int, int, int]:
        """(M, K, N) from A (input 0), B (input 3), transA and transB."""
        return gemm_dims(node, 3)

    def check(self, node: Node) -> None:
        m, _, n = self.dims(node)
        if not (has_input(node, 7) and has_input(node, 8)):
            raise unsupported(node, "QGemm without y_scale and y_zero_point (float output) is "
                              "not supported")
        _check_requantized(node, ("a", "b"), n, (7, 8))
        if has_input(node, 6):
            c = node.inputs[6]
            if c.dtype != np.int32 or len(c.shape) > 2 or \
                    any(d not in (1, t) for d, t in zip(c.shape[::-1], (n, m))):
                raise bad_attr(node, f"C {c.dtype} {list(c.shape)} must be int32 broadcasting "
                               f"to ({m}, {n})")
        self.acc_dtype(node)

    def acc_dtype(self, node: Node) -> np.dtype:
        """int32, or int64 for a 16-bit a whose sums may outgrow int32
        (:func:`check_wide_accumulator`, which raises for a product it cannot bound)."""
        return check_wide_accumulator(node, 0, 3, 5, 0 if attr(node, "transB") else 1, 6,
                                      (1, 4, 7))

    def infer(self, node: Node) -> list[TensorType]:
        m, _, n = self.dims(node)
        return [TensorType((m, n), node.inputs[8].dtype)]

    def multiplier(self, node: Node, a_s, b_s, y_s) -> np.ndarray:
        """float32: ((alpha * a_scale) * b_scale) / y_scale, per column when b_scale is."""
        alpha = np.float32(attr(node, "alpha"))
        with np.errstate(all="ignore"):
            ab = (alpha * np.asarray(a_s, np.float32).reshape(-1)).astype(np.float32)
            return real_multiplier(ab, b_s, y_s)

    def reference(self, node, a, a_s, az, b, b_s, bz, c=None, y_s=None, yz=None):
        A = _centered(a, az, ())
        B = _centered(b, bz, (-1, 1) if attr(node, "transB") else (-1,))
        A = A.T if attr(node, "transA") else A
        B = B.T if attr(node, "transB") else B
        acc = (A @ B)
        if c is not None:
            acc = acc + np.asarray(c, np.int64)
        m = self.multiplier(node, a_s, b_s, y_s)
        if a.dtype in WIDE_TYPES:      # 16x8: no wrap (the bound is checked), exact rounding
            return [requantize_exact(acc, m if m.size > 1 else m[0], yz, node.inputs[8].dtype)]
        return [requantize_float(acc.astype(np.int32), m if m.size > 1 else m[0],
                                 np.asarray(yz).reshape(-1)[0], node.inputs[8].dtype)]


@register_op("onnxcc.LookupTable")
class LookupTable(OpDef):
    """onnxcc's 256-entry lookup table, made by fuse_qdq from QuantizeLinear(f(DequantizeLinear
    (x))) for an elementwise f (Sigmoid, Tanh, HardSwish, Gelu, LeakyRelu...):
    ``y[i] = table[x[i] - min(x's type)]``. x int8/uint8 of any shape; table (256,) constant of
    y's type (int8/uint8), computed at compile time with the very ops it replaces."""

    attrs: dict = {}
    min_inputs, max_inputs = 2, 2

    def check(self, node: Node) -> None:
        x, t = node.inputs
        if x.dtype not in ACC_TYPES or t.shape != (256,) or t.dtype not in ACC_TYPES:
            raise bad_attr(node, f"needs int8/uint8 x and a (256,) int8/uint8 table, got "
                           f"{x.dtype} and {t.dtype} {list(t.shape)}")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, node.inputs[1].dtype)]

    def reference(self, node, x, table):
        lo = np.iinfo(x.dtype).min
        return [np.asarray(table)[x.astype(np.int32) - lo]]


class _QLinearBinary(OpDef):
    """onnxruntime's QLinearAdd / QLinearMul (domain com.microsoft): A, B and C (the output)
    quantized per tensor, numpy broadcasting: c = saturate(round(f(a', b') / C_scale) + C_zp)
    with a' = (float(A) - A_zp) * A_scale, b' likewise, f = + or *, all in float32 (the
    numbers of DequantizeLinear -> Add/Mul -> QuantizeLinear, in one integer-to-integer
    kernel). A, B and C int8/uint8 of one type."""

    attrs: dict = {}
    min_inputs, max_inputs = 7, 8
    fn = staticmethod(np.add)

    def check(self, node: Node) -> None:
        _check_requantized(node, ("A", "B"), 1, (6, 7), y_zp_typed=False, wide_b=True)
        if node.inputs[3].dtype != node.inputs[0].dtype:
            raise bad_attr(node, "A and B must have one type")
        if has_input(node, 7) and node.inputs[7].dtype != node.inputs[0].dtype:
            raise bad_attr(node, "C_zero_point must have A's type")
        try:
            np.broadcast_shapes(node.inputs[0].shape, node.inputs[3].shape)
        except ValueError:
            raise ShapeError(f"A {list(node.inputs[0].shape)} and B "
                             f"{list(node.inputs[3].shape)} do not broadcast", node=node.name,
                             op=node.op, hint="the model is malformed; re-export it") from None

    def infer(self, node: Node) -> list[TensorType]:
        shape = np.broadcast_shapes(node.inputs[0].shape, node.inputs[3].shape)
        return [TensorType(tuple(shape), node.inputs[0].dtype)]

    def reference(self, node, a, a_s, az, b, b_s, bz, c_s, cz=None):
        f32 = np.float32
        z = lambda v: f32(0) if v is None else f32(np.asarray(v).reshape(-1)[0])   # noqa: E731
        s = lambda v: f32(np.asarray(v).reshape(-1)[0])   # noqa: E731
        with np.errstate(all="ignore"):
            va = (a.astype(f32) - z(az)) * s(a_s)
            vb = (b.astype(f32) - z(bz)) * s(b_s)
            r = np.rint(self.fn(va, vb).astype(f32) / s(c_s)) + z(cz)
        lo, hi = qrange(node.inputs[0].dtype)
        return [np.clip(r, lo, hi).astype(node.inputs[0].dtype)]


@register_op("QLinearAdd", domain="com.microsoft")
class QLinearAdd(_QLinearBinary):
    __doc__ = _QLinearBinary.__doc__
    fn = staticmethod(np.add)


@register_op("QLinearMul", domain="com.microsoft")
class QLinearMul(_QLinearBinary):
    __doc__ = _QLinearBinary.__doc__
    fn = staticmethod(np.multiply)


@register_op("QLinearConcat", domain="com.microsoft")
class QLinearConcat(OpDef):
    """onnxruntime's QLinearConcat (domain com.microsoft): inputs Y_scale, Y_zero_point, then
    (X, X_scale, X_zero_point) per input; attribute axis. y = Concat of each input requantized
    to Y's parameters: saturate(round((float(x) - X_zp) * X_scale / Y_scale) + Y_zp) in float32
    (DequantizeLinear then QuantizeLinear), a plain copy where the parameters are equal. All
    int8 or all uint8, per-tensor parameters."""

    attrs = {"axis": 0}
    min_inputs, max_inputs = 5, -1

    def triples(self, node: Node) -> list[tuple[int, int, int]]:
        n = len(node.inputs) - 2
        if n < 3 or n % 3:
            raise bad_attr(node, f"takes Y_scale, Y_zero_point and (X, scale, zero point) "
                           f"triples, got {len(node.inputs)} inputs")
        return [(k, k + 1, k + 2) for k in range(2, len(node.inputs), 3)]

    def axis(self, node: Node) -> int:
        return norm_axis(node, attr(node, "axis"), len(node.inputs[2].shape))

    def check(self, node: Node) -> None:
        t = node.inputs[1].dtype
        _scale(node, 0, "Y_scale")
        for x, s, z in self.triples(node):
            if node.inputs[x].dtype != t or t not in ACC_TYPES + WIDE_TYPES:
                raise unsupported(node, f"input {node.inputs[x].name!r} of type "
                                  f"{node.inputs[x].dtype} differs from Y_zero_point's {t} "
                                  "(int8, uint8, int16 or uint16, one type)")
            _scale(node, s, "X_scale")
            _zero_point(node, z, x, "X_zero_point", ())
        self.infer(node)

    def infer(self, node: Node) -> list[TensorType]:
        shapes = [node.inputs[x].shape for x, _, _ in self.triples(node)]
        a = self.axis(node)
        first = list(shapes[0])
        for sh in shapes[1:]:
            if len(sh) != len(first) or any(d != e for i, (d, e) in enumerate(zip(sh, first))
                                            if i != a):
                raise ShapeError(f"inputs {shapes} cannot be concatenated on axis {a}",
                                 node=node.name, op=node.op)
        first[a] = sum(sh[a] for sh in shapes)
        return [TensorType(tuple(first), node.inputs[1].dtype)]

    def reference(self, node, y_s, y_z, *rest):
        f32 = np.float32
        lo, hi = qrange(node.inputs[1].dtype)
        parts = []
        for k in range(0, len(rest), 3):
            x, s, z = rest[k:k + 3]
            with np.errstate(all="ignore"):
                v = (x.astype(f32) - f32(np.asarray(z).reshape(-1)[0])) * \
                    f32(np.asarray(s).reshape(-1)[0])
                r = np.rint(v / f32(np.asarray(y_s).reshape(-1)[0])) + \
                    f32(np.asarray(y_z).reshape(-1)[0])
            parts.append(np.clip(r, lo, hi).astype(node.inputs[1].dtype))
        return [np.concatenate(parts, axis=self.axis(node))]
