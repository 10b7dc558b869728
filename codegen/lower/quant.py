"""Quantization ops as loop IR: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv (semantics: ``onnxcc.ops.quant``).

- Quantize and dequantize are one nest over x reading the scale and zero point per tensor, per
  axis or per block (``x[i] -> scale[i_axis // block_size]``), in float32 as the spec says.
- Integer products accumulate ``(x - x_zero_point) * (w - w_zero_point)`` in int32 (operands
  widened; a zero point that is a constant 0 costs nothing), starting at the int32 bias. "16x8"
  products (int16/uint16 x, int8 w) take the same nests, never the SMLAD/blocked ones (whose
  int16 scratch holds int8 x minus its zero point); those whose sums may pass int32
  (``onnxcc.ops.quant.check_wide_accumulator``) accumulate in int64 in the generic nests (no
  row-stationary, scalar-depthwise or folded-zero-point form) and requantize with
  ``requantize64``, as TFLite's ``reference_integer_ops`` 16x8 kernels accumulate in int64.
  MatMul/Gemm and Conv in general are output-stationary (one accumulator per output element;
  Conv's interior positions unguarded, a padded tap selected away, never read). A 2-D Conv
  with constant weights and output rows of ``ROW_MIN`` or more is row-stationary: a row of
  accumulators, one scalar weight per tap over a contiguous run of the input row, which both
  back ends vectorize. Constant weights are centered at compile time. On a microcontroller, a
  group-1 2-D Conv and a MatMul/Gemm with constant weights are blocked products instead
  (``int_blocked``: im2col scratch of int16, weights packed at compile time, 3 pixels x
  2 channels of int32 accumulators, the ``smlad`` intrinsic on cores with the DSP extension).
- Requantization (QLinear*): with constant scales, the float32 multiplier of the spec becomes an
  exact fixed-point ``(m, shift)`` per tensor or per output channel at compile time and the
  kernel calls the ``requantize`` intrinsic (``onnxcc.codegen.requantize``: integer only, round
  half to even), then adds the output zero point and saturates. With scales that are runtime
  inputs, the kernel computes the same float32 multiplier and rounds ``acc * m`` in float64,
  which is what the spec's reference computes. Both give ``round_half_even(acc * m)`` exactly
  (float64 holds ``acc * m`` exactly while ``|acc| < 2**29``). On a microcontroller, when the
  constant weights, bias and zero points bound every accumulator so that none can be a tie and
  the channels share one shift (``_acc_bound``, ``requantize.mla_form``), the epilogue is
  ``sat(smmla(acc, m', ra) >> t)`` instead, with the half and the output zero point folded into
  ``ra``: SMMLA and an SSAT/USAT with a shift, 2 Cortex-M4 instructions where the exact form
  takes about 8, equal to it bit for bit on every such accumulator.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from onnxcc.codegen.loops import (F32, F64, I32, I64, Assign, Binary, Buffer, Call, Cast,
                                  Comment, Const, Decl, DType, Expr, If, Load, Loop, Select, Stmt,
                                  Store, Unary, Var, all_of, const, contiguous_strides, maximum,
                                  minimum, substitute, substitute_stmts)
from onnxcc.codegen.requantize import REQUANTIZE64_MIN_SHIFT, mla_form, quantize_multiplier
from onnxcc.errors import UnsupportedOpError
from onnxcc.ir import Node, Value
from onnxcc.ops import attr, get_op
from onnxcc.ops._util import has_input
from onnxcc.ops.nn import conv_geometry
from onnxcc.ops.quant import QTYPES, WIDE_TYPES, param_layout, qrange, real_multiplier

from . import LowerCtx, broadcast_view, lower, merged_views, nest
from . import int_blocked as blk
from .int_depthwise import depthwise_smlad
from .matmul import matmul_views
from .nn import (LABELS, SCALAR_TAPS, _tap_bounds, axis_var, in_place_plane,
                 in_range, lin, loops, read_buffers, refuse_in_place, scalar_depthwise_nest,
                 segments, shape_text, size_taps, split_positions)


def _param_index(b: Buffer, layout: str, idx: Sequence[Expr], axis: int, block: int
                 ) -> tuple[Expr, ...]:
    """The index into a scale/zero-point buffer ``b`` for x's element ``idx``."""
    if layout == "tensor":
        return (Const(0),) * len(b.shape)
    if layout == "axis":
        return (idx[axis],)
    # the loop IR's division truncates, which is floor for these non-negative indices
    return tuple((i // Const(block) if block > 1 else i) if a == axis else i
                 for a, i in enumerate(idx))


def _fmin_fmax(v: Expr, lo: float, hi: float) -> Expr:
    """``v`` clamped to [lo, hi] with NaN going to ``lo`` (fmax returns the number)."""
    return Binary("fmin", Binary("fmax", v, const(lo, v.dtype)), const(hi, v.dtype))


# ---- QuantizeLinear / DequantizeLinear ------------------------------------------------------------
def _supports_qdq(node: Node) -> str | None:
    x = node.inputs[0]
    if node.op == "QuantizeLinear" and x.dtype != np.float32:
        return f"QuantizeLinear of {x.dtype} is not supported (float32)"
    return None


@lower("QuantizeLinear", "DequantizeLinear", supports=_supports_qdq)
def _lower_qdq(node: Node, ctx: LowerCtx) -> Any:
    """QuantizeLinear: y = saturate(round(x / scale) + zp) (float32 division, round half to
    even, NaN to the type's minimum); DequantizeLinear: y = (float(x) - float(zp)) * scale.
    One loop nest over x (any rank, any layout the plan gave it). On a microcontroller with a
    constant zero point and an 8/16-bit y, x / scale is rounded by adding 1.5 * 2**23 and the
    sum's bits saturated (the ``quantize_*`` intrinsics; the same y: see ``body``)."""
    x = node.inputs[0]
    X, S, Y = ctx.input(0, "x"), ctx.input(1, "scale"), ctx.output(0, "y")
    Z = ctx.input(2, "zp") if has_input(node, 2) else None
    rank = len(x.shape)
    axis = get_op(node).axis(node) if rank else 0
    block = int(node.attrs.get("block_size") or 0)
    s_lay = param_layout(node, 1, x.shape, axis, block, "scale") if rank else "tensor"
    z_lay = param_layout(node, 2, x.shape, axis, block, "zero point") if Z is not None and rank \
        else "tensor"
    shape = x.shape if rank else (1,)
    if not rank:
        X = dataclasses.replace(X, shape=(1,), strides=(0,))
        Y = dataclasses.replace(Y, shape=(1,), strides=(0,))
    elif ctx.size and s_lay == z_lay == "tensor":
        # size mode: one loop over the elements when the plan lets x and y merge their dims, so
        # every per-tensor (de)quantize of a model differs only in its count (one function)
        X, Y = merged_views([X, Y])
        shape, rank = X.shape, len(X.shape)

    zc: int | None = None     # a constant zero point (per tensor, or the same for all)
    if node.op == "QuantizeLinear" and getattr(ctx.target, "family", None) == "mcu" and \
            Y.dtype.name in ("int8", "uint8", "int16", "uint16"):
        zv = node.inputs[2].const if Z is not None else np.zeros(1, np.int64)
        if zv is not None and np.asarray(zv).size and np.all(np.asarray(zv) ==
                                                             np.asarray(zv).reshape(-1)[0]):
            zc = int(np.asarray(zv).reshape(-1)[0])

    def body(i: list[Var]) -> list[Stmt]:
        idx = tuple(i) if rank else ()
        s = S[_param_index(S, s_lay, idx, axis, block)]
        z: Expr = Cast(Z[_param_index(Z, z_lay, idx, axis, block)], F32) if Z is not None \
            else const(0, F32)
        xv = X[tuple(i)]
        if node.op == "DequantizeLinear":
            return [Store(Y, tuple(i), (Cast(xv, F32) - z) * s)]
        lo, hi = qrange(Y.dtype.np)
        if zc is not None:
            # on a microcontroller with a constant zero point: the ``quantize_*`` intrinsic
            # (codegen/requantize.py QUANTIZE) rounds x / scale half to even by adding
            # 1.5 * 2**23 and saturates the sum's bits, NaN to the minimum: no rintf, which a
            # core without VRINT computes in software, no float compare (cortex-m4 -Os, int8: 36
            # instructions per value with rintf, 17 clamping in float, 12), and no sum a
            # -ffast-math build could fold away; a constant per-tensor scale as a literal (y's
            # int8 stores may alias the scale for gcc, which reloaded it)
            sc = node.inputs[1].const
            if sc is not None and np.size(sc) == 1:
                s = const(float(np.float32(np.asarray(sc).reshape(-1)[0])), F32)
            fn = {"int8": "quantize_i8", "uint8": "quantize_u8", "int16": "quantize_i16",
                  "uint16": "quantize_u16"}[Y.dtype.name]
            return [Store(Y, tuple(i), Cast(Call(fn, (xv, s, const(zc, I32)), I32), Y.dtype))]
        q = Unary("round", xv / s) + z
        return [Store(Y, tuple(i), Cast(_fmin_fmax(q, lo, hi), Y.dtype))]

    how = {"tensor": "per tensor", "axis": f"per axis {axis}",
           "block": f"per block of {block} along axis {axis}"}[s_lay]
    text = (f"{node.op}: y {shape_text(Y.shape)} {Y.dtype} from x {shape_text(X.shape)} "
            f"{X.dtype}, scale {how}" + (", zero point" if Z is not None else ""))
    st = nest(ctx, shape, body)
    ins = read_buffers(st, [X, S] + ([Z] if Z is not None else []))
    return ctx.kernel(node.op.lower(), [Y], ins, [Comment(text)] + st, comment=text)


@lower("DynamicQuantizeLinear")
def _lower_dynamic_quantize(node: Node, ctx: LowerCtx) -> Any:
    """DynamicQuantizeLinear: one pass for min(x, 0) and max(x, 0) (NaN propagates), then the
    scale ((max - min) / 255, 1/255 when both are 0) and zero point (round(saturate(-min /
    scale))), then y = saturate(round(x / scale) + zero point) over x; all in float32 as the
    spec's reference computes them."""
    X, Y = ctx.input(0, "x"), ctx.output(0, "y")
    YS, YZ = ctx.output(1, "y_scale"), ctx.output(2, "y_zero_point")
    n = math.prod(X.shape)
    flat = X.strides == contiguous_strides(X.shape) and Y.strides == contiguous_strides(Y.shape)
    if flat:
        X = dataclasses.replace(X, shape=(n,), strides=(1,))
        Y = dataclasses.replace(Y, shape=(n,), strides=(1,))

    hi, lo = Var("hi", F32), Var("lo", F32)
    scale, zp = Var("scale", F32), Var("zp", F32)
    stats = nest(ctx, X.shape, lambda i: [
        Assign(hi, Binary("max", hi, X[tuple(i)])),
        Assign(lo, Binary("min", lo, X[tuple(i)]))])
    quant = nest(ctx, X.shape, lambda i: [
        Store(Y, tuple(i), Cast(_fmin_fmax(Unary("round", X[tuple(i)] / scale) + zp, 0, 255),
                                Y.dtype))])
    rng = Select(Binary("eq", hi, lo), const(1.0, F32), hi - lo)
    sc, zc = (Const(0),) * len(YS.shape), (Const(0),) * len(YZ.shape)
    body: list[Stmt] = [
        Decl(hi, const(0.0, F32)), Decl(lo, const(0.0, F32)), *stats,
        Decl(scale, rng / const(255.0, F32)),
        Decl(zp, Unary("round", _fmin_fmax(const(0.0, F32) - lo / scale, 0, 255))),
        *quant,
        Store(YS, sc, scale), Store(YZ, zc, Cast(zp, YZ.dtype))]
    text = f"DynamicQuantizeLinear: x {shape_text(X.shape)} float32 -> uint8, scale, zero point"
    return ctx.kernel("dynamicquantizelinear", [Y, YS, YZ], [X], [Comment(text)] + body,
                      comment=text)


# ---- integer products -----------------------------------------------------------------------------
def _zero_point_expr(ctx: LowerCtx, k: int, name: str, ch: Expr) -> tuple[Expr, Buffer | None]:
    """The int32 zero point of input ``k`` at channel ``ch`` (one value, or one per channel):
    ``(expr, buffer read)``; a constant folds into a literal (0 when absent)."""
    node = ctx.node
    if not has_input(node, k):
        return const(0, I32), None
    v = node.inputs[k]
    if v.const is not None:
        c = np.asarray(v.const).reshape(-1).astype(np.int64)
        if c.size == 1 or (c == c[0]).all():
            return const(int(c[0]), I32), None
    b = ctx.input(k, name)
    idx = (ch,) if math.prod(v.shape) > 1 else (Const(0),) * len(v.shape)
    return Cast(b[idx], I32), b


def acc_type(node: Node) -> DType:
    """The accumulator type of the integer product ``node``: int64 for the 16x8 layers whose
    sums may outgrow int32 (``onnxcc.ops.quant.check_wide_accumulator``), else int32."""
    fn = getattr(get_op(node), "acc_dtype", None)
    return I64 if fn is not None and fn(node) == np.int64 else I32


def _widen(e: Expr, at: DType) -> Expr:
    """``e`` (an int32 product or bias) as the accumulator type ``at``."""
    return e if at == I32 else Cast(e, at)


def _centered(v: Expr, zp: Expr) -> Expr:
    """``int32(v) - zp`` (no subtraction for a literal zero point of 0)."""
    w = Cast(v, I32)
    return w if isinstance(zp, Const) and zp.value == 0 else w - zp


class _Requant:
    """The QLinear epilogue: int32 accumulator (int64 for the 16x8 products that need it:
    ``requantize64``) -> y's quantized type (see the module docstring).
    ``scales`` are the node's (a_scale, b_scale, y_scale) input positions; b's scale and the
    result may be per output channel."""

    def __init__(self, ctx: LowerCtx, scales: tuple[int, int, int], y_zp: int, channels: int,
                 alpha: float = 1.0) -> None:
        node = ctx.node
        self.mla: tuple[list[int], int, int] | None = None    # (m' per pair, t, ra): mla_form
        self.acc64 = acc_type(node) == I64    # a 16x8 product whose sums outgrow int32
        self.out = DType.of(node.outputs[0].dtype)
        self.lo, self.hi = qrange(self.out.np)
        self.reads: list[Buffer] = []
        self.weights: list[Buffer] = []
        self.yz, b = _zero_point_expr(ctx, y_zp, "y_zp", Const(0))
        self.reads += [b] if b is not None else []
        vals = [node.inputs[k] for k in scales]
        self.const = all(v.const is not None for v in vals)
        if self.const:
            a_s, b_s, y_s = (np.asarray(v.const, np.float32) for v in vals)
            if alpha != 1.0:    # onnxruntime's QGemm: ((alpha * a_scale) * b_scale) / y_scale
                a_s = (np.float32(alpha) * a_s).astype(np.float32)
            m = real_multiplier(a_s, b_s, y_s)
            pairs = [quantize_multiplier(float(r)) for r in m]
            if self.acc64:
                # requantize64's domain: shift >= 25 (a multiplier of 0 rounds every sum to 0
                # whatever the shift)
                pairs = [(p[0], 62) if p[0] == 0 else p for p in pairs]
                if any(p[1] < REQUANTIZE64_MIN_SHIFT for p in pairs):
                    raise UnsupportedOpError([(node.name, node.op, "a requantization multiplier "
                                               "of 64 or more with an int64 accumulator")])
            # every shift >= 32: |requantize(acc)| < 2**30, so adding the zero point first
            # cannot wrap and one clamp to the type's range follows (SSAT/USAT on Arm)
            self.narrow = all(p[1] >= 32 for p in pairs) and not self.acc64
            self.note = (f"requantize by fixed-point multiplier {pairs[0][0]} >> {pairs[0][1]}"
                         if len(pairs) == 1 else f"requantize per channel ({len(pairs)} "
                         "fixed-point multipliers)")
            # on a microcontroller (not in size mode) the shorter, inlined form of the
            # intrinsic for shifts of 32 or more
            self.mcu = not ctx.size and blk.lanes_for(ctx.target) is not None
            self.fn = "requantize64" if self.acc64 else "requantize_hi" \
                if self.mcu and all(p[1] >= 33 for p in pairs) else "requantize"
            # on a microcontroller (not in size mode) with the output zero point a constant:
            # the 2-instruction form of the epilogue (SMMLA, then SSAT/USAT with a shift) when
            # it is exact for every accumulator the node can produce (``mla_form``). Size mode
            # keeps the exact form: its shift is an argument there, so layers that differ only
            # in their constants share one kernel function (MobileNetV1-0.25 int8 size-mode
            # code 3,609 B; 3,957 B with this form, each layer's shift an SSAT immediate)
            bound = _acc_bound(node) if blk.lanes_for(ctx.target) is not None and \
                not ctx.size and not self.acc64 and isinstance(self.yz, Const) else None
            self.mla = None if bound is None else \
                mla_form(pairs, bound, int(self.yz.value), self.lo, self.hi)
            if self.mla is not None:
                mm, t, _ = self.mla
                self.note = (f"requantize as smmla(acc, {mm[0]}, ra) >> {t}" if len(set(mm)) == 1
                             else f"requantize per channel as smmla(acc, m, ra) >> {t}")
                pairs = [(v, 32 + t) for v in mm]
            if len({p[0] for p in pairs}) == 1:
                self.m: Any = const(pairs[0][0], I32)
            else:
                self.m = Buffer("rq_m", I32, (channels,), space="weight",
                                data=np.array([p[0] for p in pairs], np.int32), value="")
                self.weights.append(self.m)
            if len({p[1] for p in pairs}) == 1:
                self.s: Any = const(pairs[0][1], I32)
            else:
                self.s = Buffer("rq_shift", DType("int8"), (channels,), space="weight",
                                data=np.array([p[1] for p in pairs], np.int8), value="")
                self.weights.append(self.s)
        else:
            self.note = "requantize by the float32 multiplier of runtime scales"
            assert not self.acc64    # (the op's check wants constant scales for int64 sums)
            self.bufs = [ctx.input(k, nm) for k, nm in zip(scales, ("a_scale", "b_scale",
                                                                     "y_scale"))]
            self.reads += self.bufs
            self.per_channel = math.prod(vals[1].shape) > 1
            self.alpha = alpha

    def per_channel_m(self) -> np.ndarray | None:
        """The int32 multiplier of each output channel when the epilogue reads one per channel
        from a weight buffer (the SMMLA form), else None."""
        if self.mla is None or isinstance(self.m, Const):
            return None
        return np.asarray(self.m.data, np.int32)

    def __call__(self, acc: Expr, ch: Expr, m: Expr | None = None) -> Expr:
        """The epilogue of accumulator ``acc`` of output channel ``ch``; ``m`` the channel's
        multiplier (int32) when the caller has read it (``per_channel_m``), else read here."""
        if self.const:
            if m is None:
                m = self.m if isinstance(self.m, Const) else self.m[(ch,)]
            if self.mla is not None:
                _, t, ra = self.mla
                r = Binary("shr", Call("smmla", (acc, m, const(ra, I32)), I32), const(t, I32))
                return Cast(Call("sat_i8" if self.lo < 0 else "sat_u8", (r,), I32), self.out)
            s = self.s if isinstance(self.s, Const) else Cast(self.s[(ch,)], I32)
            r: Expr = Call(self.fn, (acc, m, s), I32)
            # saturate before adding the zero point, so the sum cannot wrap
            if isinstance(self.yz, Const) and self.narrow:
                r = r + self.yz if int(self.yz.value) else r
                sat = {(-128, 127): "sat_i8", (0, 255): "sat_u8"}.get((self.lo, self.hi))
                r = Call(sat, (r,), I32) if self.mcu and sat else \
                    maximum(minimum(r, const(self.hi, I32)), const(self.lo, I32))
            elif isinstance(self.yz, Const):
                z = int(self.yz.value)
                r = maximum(minimum(r, const(self.hi - z, I32)), const(self.lo - z, I32))
                r = r + self.yz if z else r
            else:
                r = maximum(minimum(r, const(self.hi - self.lo, I32)),
                            const(self.lo - self.hi, I32)) + self.yz
                r = maximum(minimum(r, const(self.hi, I32)), const(self.lo, I32))
            return Cast(r, self.out)
        a_s, b_s, y_s = self.bufs
        zero = lambda b: (Const(0),) * len(b.shape)   # noqa: E731
        bsc = b_s[(ch,)] if self.per_channel else b_s[zero(b_s)]
        asc: Expr = a_s[zero(a_s)]
        if self.alpha != 1.0:
            asc = const(self.alpha, F32) * asc
        mult = (asc * bsc) / y_s[zero(y_s)]
        v = Unary("round", Cast(acc, F64) * Cast(mult, F64)) + Cast(self.yz, F64)
        return Cast(_fmin_fmax(v, self.lo, self.hi), self.out)


def _acc_bound(node: Node) -> np.ndarray | None:
    """The largest ``|acc|`` of each output channel's final int32 sum ``bias + sum (x - x_zp) *
    (w - w_zp)`` of a QLinearConv (weights input 3, channels M of w (M, C/group, *K)), a
    QLinearMatMul (b input 3 (..., K, N), channels N) or a QGemm (B input 3, (K, N) or with
    transB (N, K); c input 6): int64 array, one per channel, from the constant weights, zero
    points and bias, with ``|x - x_zp| <= max(|qmin - x_zp|, |qmax - x_zp|)`` over x's 8-bit
    type. None when the weights are not constants or x is not 8-bit."""
    op = node.op.split(".")[-1]
    x = node.inputs[0]
    if op not in ("QLinearConv", "QLinearMatMul", "QGemm") or x.dtype not in (np.int8, np.uint8):
        return None
    w, wz = node.inputs[3], node.inputs[5] if has_input(node, 5) else None
    if w.const is None or (wz is not None and wz.const is None):
        return None
    qlo, qhi = qrange(x.dtype)
    if has_input(node, 2) and node.inputs[2].const is None:
        xmax = qhi - qlo
    else:
        z = np.asarray(node.inputs[2].const, np.int64).reshape(-1) if has_input(node, 2) \
            else np.zeros(1, np.int64)
        xmax = int(max(np.abs(qlo - z).max(), np.abs(qhi - z).max()))
    wc = np.asarray(w.const, np.int64)
    z = np.asarray(wz.const, np.int64).reshape(-1) if wz is not None else np.zeros(1, np.int64)
    bias_k = 8 if op == "QLinearConv" else 6 if op == "QGemm" else None
    if op == "QLinearConv":
        wc = wc - z.reshape((-1,) + (1,) * (wc.ndim - 1))
        s = np.abs(wc).reshape(wc.shape[0], -1).sum(axis=1)
    else:
        if op == "QGemm" and attr(node, "transB"):
            wc = wc.T
        wc = wc - z
        s = np.abs(wc).sum(axis=-2).reshape(-1, wc.shape[-1]).max(axis=0)
    bound = s * xmax
    if bias_k is not None and has_input(node, bias_k):
        b = node.inputs[bias_k]
        if b.const is None:
            return None
        bc = np.abs(np.asarray(b.const, np.int64))
        # a Conv's bias per channel; a QGemm's c any shape that broadcasts to (M, N)
        bound = bound + (bc.reshape(-1) if op == "QLinearConv" or bc.ndim < 2 else
                         bc.reshape(-1, bc.shape[-1]).max(axis=0))
    return bound


def _centered_weights(w: Value, wz: Value | None) -> Buffer | None:
    """``w - w_zero_point`` of constant conv weights (M, C/group, *K; the zero point one value
    or one per output channel M) as a weight buffer computed at compile time: int8 when every
    value fits, else int16. None when the weights or the zero point are runtime inputs."""
    if w.const is None or (wz is not None and wz.const is None):
        return None
    wc = np.asarray(w.const, np.int64)
    if wz is not None:
        wc = wc - np.asarray(wz.const, np.int64).reshape((-1,) + (1,) * (wc.ndim - 1))
    wdt = np.dtype(np.int8 if wc.min() >= -128 and wc.max() <= 127 else np.int16)
    return Buffer("wc", DType(wdt.name), tuple(w.shape), space="weight",
                  data=np.ascontiguousarray(wc.astype(wdt)).reshape(-1), value=w.name)


def _supports_int(node: Node) -> str | None:
    if node.op.endswith(("QLinearAdd", "QLinearMul")):
        return None if node.inputs[0].dtype in QTYPES else \
            f"{node.op} on {node.inputs[0].dtype} is not supported (int8, uint8, int16, uint16)"
    requant = node.op.startswith("QLinear") or node.op.endswith("QGemm")
    for k in (0, 3 if requant else 1):
        v = node.inputs[k]
        # 16x8: a requantized product's first operand may be 16-bit (its int32 or int64
        # accumulator chosen by the op's check); weights and the int32-output ops stay 8-bit
        if v.dtype not in (np.int8, np.uint8) and not (requant and k == 0
                                                       and v.dtype in WIDE_TYPES):
            return f"{node.op} on {v.dtype} is not supported (int8, uint8)"
    if requant and node.outputs[0].dtype not in QTYPES:
        return f"{node.op} to {node.outputs[0].dtype} is not supported"
    return None


def _integer_product(ctx: LowerCtx, A: Buffer, B: Buffer, Y: Buffer, batch: Sequence[int],
                     M: int, K: int, N: int, zps: tuple[int, int], fin: _Requant | None,
                     bias: Buffer | None, what: str) -> Any:
    """y[b, i, j] = fin(bias[i, j] + sum over k of (a[b, i, k] - a_zp[i]) * (b[b, k, j] -
    b_zp[j])) with an int32 accumulator; fin is the identity (int32 y) or the requantization.
    ``zps`` are the node's input positions of a's and b's zero points."""
    node = ctx.node
    bv = [axis_var(f"b{t}", n) for t, n in enumerate(batch)]
    i, j, k = axis_var("i", M), axis_var("j", N), axis_var("k", K)
    az, azb = _zero_point_expr(ctx, zps[0], "a_zp", i)
    bz, bzb = _zero_point_expr(ctx, zps[1], "b_zp", j)
    blocked = None if ctx.size else _product_blocked(ctx, A, Y, bv, batch, M, K, N, i, az, azb,
                                                     zps[1], fin, bias, what)
    if blocked is not None:   # (size mode: the plain nest below)
        return blocked
    at = acc_type(node)
    acc = Var("acc", at)
    prod = _widen(_centered(A[(*bv, i, k)], az) * _centered(B[(*bv, k, j)], bz), at)
    out: Expr = fin(acc, j) if fin is not None else acc
    init: Expr = _widen(bias[(i, j)], at) if bias is not None else const(0, at)
    body = loops([(v, 0, n) for v, n in zip(bv, batch)] + [(i, 0, M), (j, 0, N)],
                 [Decl(acc, init), *loops([(k, 0, K)], [Assign(acc, acc + prod)]),
                  Store(Y, (*bv, i, j), out)])
    text = (f"{node.op}: y {shape_text(Y.shape)} {Y.dtype} = {what}, {at.name} accumulator"
            + (f"; {fin.note}" if fin is not None else ""))
    extra = [b for b in (azb, bzb, bias) if b is not None] + \
        (fin.reads + fin.weights if fin else [])
    ins = read_buffers(body, [A, B] + extra)
    return ctx.kernel(node.op.split(".")[-1].lower(), [Y], ins, [Comment(text)] + body,
                      comment=text)


@lower("MatMulInteger", "QLinearMatMul", supports=_supports_int)
def _lower_matmul_integer(node: Node, ctx: LowerCtx) -> Any:
    """MatMulInteger (int32 y) and QLinearMatMul (requantized y): numpy matmul shapes, batch
    dims broadcast (see :func:`_integer_product`)."""
    q = node.op == "QLinearMatMul"
    A, B, Y, batch, M, K, N = matmul_views(ctx, 0, 3 if q else 1)
    fin = _Requant(ctx, (1, 4, 6), 7, N) if q else None
    return _integer_product(ctx, A, B, Y, batch, M, K, N, (2, 5) if q else (2, 3), fin, None,
                            f"(a {shape_text(A.shape)} - zp) @ (b {shape_text(B.shape)} - zp)")


@lower("com.microsoft.QGemm", supports=_supports_int)
def _lower_qgemm(node: Node, ctx: LowerCtx) -> Any:
    """onnxruntime's QGemm: y (M, N) = requantize(A' @ B' + C) (see ``onnxcc.ops.quant.QGemm``);
    A' and B' are transposed views, C an int32 view broadcast to (M, N)."""
    M, K, N = get_op(node).dims(node)
    A0, B0, Y = ctx.input(0, "a"), ctx.input(3, "b"), ctx.output(0, "y")
    A = Buffer("a", A0.dtype, (M, K), A0.strides[::-1] if attr(node, "transA") else A0.strides,
               A0.space, A0.offset, A0.index, A0.data, A0.value)
    B = Buffer("b", B0.dtype, (K, N), B0.strides[::-1] if attr(node, "transB") else B0.strides,
               B0.space, B0.offset, B0.index, B0.data, B0.value)
    C = broadcast_view(ctx.input(6, "c"), (M, N)) if has_input(node, 6) else None
    fin = _Requant(ctx, (1, 4, 7), 8, N, alpha=float(attr(node, "alpha")))
    what = (f"a{'^T' if attr(node, 'transA') else ''} {shape_text(A0.shape)} @ "
            f"b{'^T' if attr(node, 'transB') else ''} {shape_text(B0.shape)}"
            + (f" + c {shape_text(C.shape)}" if C is not None else ""))
    return _integer_product(ctx, A, B, Y, (), M, K, N, (2, 5), fin, C, what)


@lower("ConvInteger", "QLinearConv", supports=_supports_int)
def _lower_conv_integer(node: Node, ctx: LowerCtx) -> Any:
    """Integer Conv, x (N, C, *S), w (M, C/group, *K), y (N, M, *O): row-stationary when
    :func:`_conv_integer_rows` applies; else per output element an int32 accumulator starts at
    the bias (QLinearConv's B) and sums ``(x - x_zp) * (w - w_zp[m])`` over the group's
    channels and the taps (interior positions unguarded; a padded tap adds 0: its load is
    guarded and selected away, or with constant weights reads the x zero point, whose products
    the start value cancels). fin as in the integer MatMul."""
    q = node.op == "QLinearConv"
    iw = 3 if q else 1
    x, w = node.inputs[0], node.inputs[iw]
    X, Wt, Y = ctx.input(0, "x"), ctx.input(iw, "w"), ctx.output(0, "y")
    B = ctx.input(8, "b") if q and has_input(node, 8) else None
    group = int(attr(node, "group"))
    (N, C), M = x.shape[:2], w.shape[0]
    CG, MG = C // group, M // group
    K, I = list(w.shape[2:]), list(x.shape[2:])
    pb, _, s, d, O = conv_geometry(node, x.shape, w.shape)
    nd = len(K)
    lb = LABELS[nd]
    n, g, mg = axis_var("n", N), axis_var("g", group), axis_var("mg", MG)
    c = axis_var("c", CG)
    o = [axis_var("o" + lb[a], O[a]) for a in range(nd)]
    kk = [axis_var("k" + lb[a], K[a]) for a in range(nd)]
    m = lin((g, MG), mg)
    xz, xzb = _zero_point_expr(ctx, 2, "x_zp", Const(0))
    wz, wzb = _zero_point_expr(ctx, 5 if q else 3, "w_zp", m)
    fin = _Requant(ctx, (1, 4, 6), 7, M) if q else None
    if not ctx.size:   # size mode: the one guarded nest below (no split, no unrolled taps)
        blocked = _conv_blocked(node, ctx, X, Y, B, xz, xzb, fin)
        if blocked is not None:
            return blocked
    # a depthwise Conv planned over its input computes in place: in the scalar nest, or in size
    # mode in the plain nest below (channel by channel through a plane of scratch)
    if not ctx.size:
        dsp = depthwise_smlad(node, ctx, X, Y, xz, fin, fin.note if fin is not None else "",
                              fin.reads + fin.weights if fin is not None else [])
        if dsp is not None:
            return dsp
        scalar = _depthwise_integer_scalar(node, ctx, X, Y, B, xz, fin)
        if scalar is not None:
            return scalar
        refuse_in_place(node, ctx)
    plane = in_place_plane(ctx, Y) if ctx.size else None
    assert plane is None or (CG == 1 and MG == 1)
    flat = lin(*[(o[a], math.prod(O[a + 1:])) for a in range(nd)])

    def dest(v: Expr) -> Stmt:
        return Store(Y, (n, m, *o), v) if plane is None else Store(plane, (flat,), v)
    if not ctx.size:
        rows = _conv_integer_rows(node, ctx, X, Y, B, xz, xzb, fin)
        if rows is not None:
            return rows
    at = acc_type(node)
    acc = Var("acc", at)
    init: Expr = Cast(B[(m,)], at) if B is not None else const(0, at)
    folded = False
    wc = _centered_weights(w, node.inputs[5 if q else 3] if has_input(node, 5 if q else 3)
                           else None)
    if wc is not None and isinstance(xz, Const) and (B is None
                                                     or node.inputs[8].const is not None):
        Wt = wc
        if ctx.size or at == I64:
            # size mode skips padded taps: no folded start, (x - xz) * w' per product; so do
            # int64 sums (the folded start is an int32 weight)
            wz = Const(0)
        else:
            init = _folded_start(node, wc, xz, m)
            B, folded = None, True
    iv = [lin((o[a], s[a]), (kk[a], d[a]), -pb[a]) for a in range(nd)]
    ci = lin((g, CG), c)

    def make(border: frozenset[int]) -> list[Stmt]:
        """The output element's reduction; loads guarded on the ``border`` axes only."""
        conds, possible = in_range([(iv[a], I[a]) for a in sorted(border)])
        mask = all_of(*conds)
        if folded:   # a padded tap reads the zero point: x w' with x = xz cancels in the start
            xv = Load(X, (n, ci, *iv), mask, Const(int(xz.value), X.dtype)
                      if mask is not None else None)
            prod: Expr = Cast(xv, I32) * Cast(Wt[(m, c, *kk)], I32)
        else:
            xv = Load(X, (n, ci, *iv), mask, const(0, X.dtype) if mask is not None else None)
            prod = _centered(xv, xz) * _centered(Wt[(m, c, *kk)], wz)
            if mask is not None:
                prod = Select(mask, prod, const(0, I32))
        red = loops([(c, 0, CG)] + [(kk[a], 0, K[a]) for a in range(nd)],
                    [Assign(acc, acc + _widen(prod, at))])
        out: Expr = fin(acc, m) if fin is not None else acc
        return [Decl(acc, init), *(red if possible else []), dest(out)]

    segs = [segments(O[a], K[a], d[a], s[a], pb[a], I[a]) for a in range(nd)]
    decls, siv, guard = size_taps(o, kk, (K, I, pb, s, d, O)) if ctx.size else ([], iv, None)
    positions = (_positions_small(o, O, kk, K, c, CG, guard, acc, init,
                                  Assign(acc, acc + _widen(_centered(X[(n, ci, *siv)], xz)
                                                           * _centered(Wt[(m, c, *kk)], wz),
                                                           at)),
                                  dest(fin(acc, m) if fin is not None else acc),
                                  in_range(list(zip(siv, I)))[1])
                 if ctx.size and not folded else
                 loops([(o[a], 0, O[a]) for a in range(nd)], make(frozenset(range(nd))))
                 if ctx.size else split_positions(o, segs, make))
    if plane is not None:   # the channel's outputs over its (read) input
        positions += loops([(o[a], 0, O[a]) for a in range(nd)],
                           [Store(Y, (n, m, *o), plane[(flat,)])])
    body = decls + loops([(n, 0, N), (g, 0, group), (mg, 0, MG)], positions)
    text = (f"{node.op}: x {shape_text(X.shape)} {X.dtype} is (N,C,spatial...), w "
            f"{shape_text(Wt.shape)} {Wt.dtype} is (M,C/group,k...), y {shape_text(Y.shape)} "
            f"{Y.dtype}; group {group}, strides {list(s)}, dilations {list(d)}, pads_begin "
            f"{list(pb)}; {at.name} accumulator" + (f"; {fin.note}" if fin is not None else ""))
    extra = [b for b in (xzb, wzb, B) if b is not None] + (fin.reads + fin.weights if fin else [])
    if folded and not isinstance(init, Const) and isinstance(init, Load):
        extra.append(init.buf)
    ins = read_buffers(body, [X, Wt] + extra)
    return ctx.kernel(node.op.lower(), [Y], ins, [Comment(text)] + body, comment=text,
                      locals=[plane] if plane is not None else [], inplace=plane is not None)


def _packed(ctx: LowerCtx, wt: np.ndarray, MB: int, lanes: int) -> tuple[np.ndarray, bool]:
    """The blocked product's weights: int8 words widened by ``sxtb16`` in the loop (lanes 2,
    every centered weight inside int8: the flash of the int8 model) when
    ``int_blocked.int8_weights`` says so, else ``int_blocked.pack_weights``; and whether they
    are the int8 form."""
    if lanes == 2 and blk.int8_weights(ctx.target, ctx.graph_weight_bytes):
        w8 = blk.pack_weights_int8(wt, MB)
        if w8 is not None:
            return w8, True
    return blk.pack_weights(wt, MB, lanes), False


def _const_b(node: Node, K: int, N: int) -> np.ndarray | None:
    """The constant b operand of an integer MatMul/Gemm as a (K, N) int64 matrix, or None when
    it is a runtime input or has batch dims of more than one matrix."""
    k = 1 if node.op == "MatMulInteger" else 3
    v = node.inputs[k]
    if v.const is None:
        return None
    b = np.asarray(v.const, np.int64)
    b = b.reshape(b.shape[-2:]) if b.ndim > 2 and math.prod(b.shape[:-2]) == 1 else b
    if b.ndim != 2:
        return None
    if node.op.endswith("QGemm") and attr(node, "transB"):
        b = b.T
    return b if b.shape == (K, N) else None


def _product_blocked(ctx: LowerCtx, A: Buffer, Y: Buffer, bv: Sequence[Expr],
                     batch: Sequence[int], M: int, K: int, N: int, i: Expr, az: Expr,
                     azb: Buffer | None, bzk: int, fin: _Requant | None, bias: Buffer | None,
                     what: str) -> Any:
    """An integer MatMul/Gemm with constant b (and b zero point) on a microcontroller as the
    blocked product of ``int_blocked`` (a's rows the positions, b's columns the channels), or
    None when that does not apply (another target, runtime b, a short reduction). The scratch
    holds a minus its zero point in pairs; with int8 a, K a multiple of 4 and a constant zero
    point on a DSP core it holds a itself, each 4 bytes read as one word and widened by 2
    ``sxtb16`` (4 instructions a scratch word, 10 before; the reduction order within each 4
    values 0, 2, 1, 3, the weights permuted alike), the zero point folded into the start as
    ``_folded_start`` folds a Conv's, with a constant per-column bias (cortex-m4 -Os,
    benchmarks/mcu.py int8 dense: ds_cnn 1.43 -> 1.22, resnet8 1.69 -> 1.44, mlp 0.84 ->
    0.81). With one row of a, those constant starts and the per-column multipliers of the
    SMMLA epilogue ride in the weight buffer (``blocked_nest``'s head and tail)."""
    node = ctx.node
    lanes = blk.lanes_for(ctx.target)
    if lanes is None or K < blk.BLOCK_MIN_K or A.dtype.name not in blk.INT8_NAMES:
        return None     # (16-bit a: the portable nest, whose int32 products do not overflow)
    b = _const_b(node, K, N)
    if b is None:
        return None
    if has_input(node, bzk):
        zv = node.inputs[bzk]
        if zv.const is None:
            return None
        b = b - np.asarray(zv.const, np.int64).reshape(1, -1)
    K2 = blk.reduction_words(K, lanes)
    wt = np.zeros((N, K2 * lanes), np.int64)
    wt[:, :K] = b.T
    # int8 a, 4 values a word: the fill reads a's 4 bytes as one word and widens them with 2
    # sxtb16 into the scratch words (a[4g], a[4g+2]) and (a[4g+1], a[4g+3]) (the weights
    # permuted alike), the zero point folded into the start (as _folded_start does)
    words = lanes == 2 and A.dtype.name == "int8" and K % 4 == 0 and isinstance(az, Const)
    folded: Load | None = None
    if words:
        wt = wt[:, np.arange(K).reshape(-1, 4)[:, [0, 2, 1, 3]].reshape(-1)]
        z = -int(az.value) * b.sum(axis=0)
        if bias is not None and bias.data is not None and bias.strides[0] == 0 \
                and bias.offset == 0:   # a constant bias per column: one start per channel
            z = z + np.asarray(bias.data, np.int64).reshape(-1)[np.arange(N) * bias.strides[1]]
            bias = None
        z = ((z + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
        if np.any(z):
            folded = Buffer("acc0", I32, (N,), space="weight", data=z, value="")[(Var("m_"),)]
    PB, MB = blk.block_shape(M, N, K2 if M == 1 else None)   # (K2: batch 1's 1 x 5 or 1 x 4)
    packed, i8 = _packed(ctx, wt, MB, lanes)
    kk = Var("kw")

    def fill(col: Buffer, ps: list[Expr]) -> list[Stmt]:
        out: list[Stmt] = []
        if words:
            for t, p in enumerate(ps):
                wv = Var(f"a4_{t}", I32)
                lo, hi = (Call("sxtb16", (wv, Const(r, I32)), I32) for r in (0, 8))
                if len(ps) == 1:   # one position: the 2 words adjacent, one STRD (stpair)
                    lo, hi = Call("stpair", (lo,), I32), Call("stpair", (hi,), I32)
                out += [Decl(wv, Call("pack4", tuple(A[(*bv, p, lin((kk, 4), u))]
                                                     for u in range(4)), I32)),
                        Store(col, (lin((kk, 2)), Const(t)), lo),
                        Store(col, (lin((kk, 2), 1), Const(t)), hi)]
            # 4 words a trip (cortex-m4 -Os, dense 64 -> 10: the fill's 16 trips of 8
            # instructions unrolled, the layer 693 -> 643 instructions)
            return [Loop(kk, 0, K // 4, out, kind="unrolled", factor=4)]
        for t, p in enumerate(ps):
            z = substitute(az, {i: p}) if isinstance(i, Var) else az
            vals = []
            for ln in range(lanes):
                kx: Expr = lin((kk, lanes), ln)
                if ln and K % lanes:
                    kx = minimum(kx, Const(K - 1))
                vals.append(blk.widened(A[(*bv, p, kx)], z))
            out.append(Store(col, (kk, Const(t)), _word(lanes, vals)))
        return [Loop(kk, 0, K2, out)]

    def start(m: Expr, p: Expr) -> Expr:
        b0 = bias[(p, m)] if bias is not None else None
        if folded is None:
            return b0 if b0 is not None else const(0, I32)
        f = substitute(folded, {Var("m_"): m})
        return f if b0 is None else b0 + f

    def store(m: Expr, p: Expr, acc: Expr, mult: Expr | None = None) -> list[Stmt]:
        return [Store(Y, (*bv, p, m), fin(acc, m, mult) if fin is not None else acc)]

    # a batch-1 product's constant starts and per-channel multipliers ride in the weight
    # buffer, around each channel block's weights (blocked_nest's head and tail)
    head = folded.buf.data if folded is not None and bias is None else None
    tail = fin.per_channel_m() if fin is not None else None
    inner, W, col = blk.blocked_nest(lanes=lanes, P=M, PB=PB, M=N, MB=MB, K2=K2,
                                     weights=packed, int8_weights=i8,
                                     value=node.inputs[1 if node.op ==
                                                                       "MatMulInteger" else 3].name,
                                     fill=fill, start=start, store=store, head=head, tail=tail)
    body = loops([(v, 0, n) for v, n in zip(bv, batch)], inner)
    how = "SMLAD on int16 pairs" if lanes == 2 else "int16 multiply-adds"
    widen = ("a's words of 4 int8 widened by sxtb16 (the zero point folded into the start)"
             if words else "a widened to int16 minus its zero point")
    text = (f"{node.op}: y {shape_text(Y.shape)} {Y.dtype} = {what}; blocked {PB} rows x {MB} "
            f"columns, {widen}, b centered and packed at compile time; int32 accumulators, "
            f"{how}" + (f"; {fin.note}" if fin is not None
                                                          else ""))
    extra = [b_ for b_ in (azb, bias) if b_ is not None] + \
        (fin.reads + fin.weights if fin else []) + ([folded.buf] if folded is not None else [])
    ins = read_buffers(body, [A, W] + extra)
    return ctx.kernel(node.op.split(".")[-1].lower(), [Y], ins, [Comment(text)] + body,
                      comment=text, locals=[col])


def _conv_blocked(node: Node, ctx: LowerCtx, X: Buffer, Y: Buffer, B: Buffer | None,
                  xz: Expr, xzb: Buffer | None, fin: "_Requant | None") -> Any:
    """An integer Conv (group 1, 2 spatial axes, constant weights) on a microcontroller as the
    blocked product of ``int_blocked``: per block of output pixels their im2col columns, x
    minus its zero point in (kh, kw, c) order (0 for a padded tap), widened into arena scratch;
    the weights centered and packed at compile time; ``int_blocked.block_shape`` output
    channels x pixels of int32 accumulators starting at the bias. A constant x zero point is
    folded into the start instead (``_folded_start``; x itself in the scratch, the zero point
    for a padded tap), except for pairs along kw. A block whose pixels lie in one output row
    with every tap's column inside x builds each distinct column's word once per row of taps
    and channel pair and stores it to each slot that reads it (``fill_row``; the pairs packed
    by ``pkhbt``, int8 x read 4 columns per word load; cortex-m4 -Os, 3x3 16 -> 16 on 32x32:
    1.19 -> 1.01 instructions per MAC); other blocks test per tap (``fill_taps``). A first
    layer of few channels may pair along kw (``fill_by_kw``) or along a row of taps, (kw, c)
    flattened (``fill_by_row``), whichever pads fewest lanes. A reduction of at most
    ``int_blocked.STATIONARY_K2`` words (8 input channels, 1 x 1) holds each channel's weights
    in registers over a block of pixels (``int_blocked.stationary_nest``); over int8 x its fill
    reads 4 pixels of a channel per word load (``fill_quads``; cortex-m4 -Os, 8 -> 16 on 18 x
    23: 1.241 -> 1.226 instructions per MAC). A last partial block
    of pixels overlaps the one before (``blocked_nest``'s ``overlap``), the blocks' epilogues
    read a channel's requantize multiplier once (``share``), and a contiguous y is stored by
    flat pixel (no division by the row length: cortex-m4 -Os, 3x3 16 -> 16 on 32 x 32 0.903 ->
    0.853 instructions per MAC, 3 -> 8 on 19 x 19 1.48 -> 1.41).    Of 3 channels, 3 taps wide and int8 x (the zero point folded or 0), the words go in
    ``_stem_words``' order from one word load per row of taps and channel (``fill_stem``;
    cortex-m4 -Os, MobileNetV1-0.25's 3 -> 8 stride-2 patch stems 1.47 -> 1.34
    instructions per MAC). None when it does not apply."""
    q = node.op == "QLinearConv"
    lanes = blk.lanes_for(ctx.target)
    x, w = node.inputs[0], node.inputs[3 if q else 1]
    if lanes is None or len(x.shape) != 4 or int(attr(node, "group")) != 1 or \
            x.dtype not in (np.int8, np.uint8):
        return None     # (16-bit x: the portable nests, whose int32 products do not overflow)
    Wt = _centered_weights(w, node.inputs[5 if q else 3] if has_input(node, 5 if q else 3)
                           else None)
    (N, C), M = x.shape[:2], w.shape[0]
    (KH, KW), (IH, IW) = w.shape[2:], x.shape[2:]
    if Wt is None or C * KH * KW < blk.BLOCK_MIN_K:
        return None
    # every output channel reads every input channel, and a last partial block of pixels
    # recomputes pixels the block before stored (``overlap``): never over x
    refuse_in_place(node, ctx)
    pb, pe, st, dl, (OH, OW) = conv_geometry(node, x.shape, w.shape)
    CP = blk.reduction_words(C, lanes)
    KWP = blk.reduction_words(KW, lanes)
    # pairs along the channels, reduction order (kh, kw, c); or along kw, order (c, kh, kw),
    # when that pads less (a first layer of 1 channel: 50% of the lanes would multiply 0)
    # or with 2 lanes, per row of taps (kw, c) flattened in pairs, order (kh, kw, c), when
    # that takes an eighth fewer words or more (a first layer of 3 channels, 3x3: 15 words,
    # not 18; its fill shares no word between pixels, so not for 5 channels: 24, not 27)
    by_kw = C * KH * KWP < KH * KW * CP
    RW = blk.reduction_words(KW * C, lanes)
    by_row = lanes == 2 and 8 * KH * RW <= 7 * min(C * KH * KWP, KH * KW * CP)
    by_kw = by_kw and not by_row
    wc = Wt.data.astype(np.int64).reshape(w.shape)
    # a constant x zero point folds into the start (``_folded_start``): the scratch holds x
    # itself (a padded tap the zero point), 2 instructions less per scratch word on a
    # Cortex-M4 (no subtraction per lane); not for the pairs along kw (their masked loads)
    fold = isinstance(xz, Const) and int(xz.value) != 0 and not by_kw and \
        (not q or not has_input(node, 8) or node.inputs[8].const is not None)
    # the row layout of 3 taps wide with x itself in the words: per pixel and row of taps one
    # word load per channel (``stem_words``)
    stem = by_row and KW == 3 and dl[1] == 1 and X.dtype.name == "int8" and IW >= 4 and \
        X.strides[-1] == 1 and (fold or (isinstance(xz, Const) and int(xz.value) == 0))
    words_of = _stem_words(C, KH) if stem else []
    if stem:
        K2 = len(words_of)
        wt = np.zeros((M, K2, lanes), np.int64)
        for k, lanes_k in enumerate(words_of):
            for ln, tap in enumerate(lanes_k[1:]):
                if tap is not None:
                    r, kx, c = tap
                    wt[:, k, ln] = wc[:, c, r, kx]
        wt = wt.reshape(M, -1)
    elif by_row:
        # rounded up to whole iterations of the reduction loop when that adds 2 words or
        # fewer (3x3 of 3 channels: 16 words, the 16th 0, not 8 + 7 in single-word trips;
        # cortex-m4 -Os, 3 -> 16 on 32x32: 2.04 -> 1.56 instructions per MAC)
        K2 = KH * RW
        K2 += (-K2 % blk.UNROLL) if -K2 % blk.UNROLL <= 2 else 0
        wt = np.zeros((M, K2 * lanes), np.int64)
        wt[:, :KH * RW * lanes] = np.pad(
            wc.transpose(0, 2, 3, 1).reshape(M, KH, KW * C),
            ((0, 0), (0, 0), (0, RW * lanes - KW * C))).reshape(M, -1)
    elif by_kw:
        K2 = C * KH * KWP
        wt = np.zeros((M, C, KH, KWP * lanes), np.int64)
        wt[..., :KW] = wc
    else:
        K2 = KH * KW * CP
        wt = np.zeros((M, KH, KW, CP * lanes), np.int64)
        wt[..., :C] = wc.transpose(0, 2, 3, 1)
    P = OH * OW
    PB, MB = blk.block_shape(P, M, K2)
    held = blk.stationary(lanes, P, K2)    # the channel's weights held in registers
    if held and not ctx.scratch_fits(4 * K2 * PB):
        # its scratch would raise the arena's peak: blocks of positions x 1 channel whose
        # scratch stays a local array (MobileNetV1-0.25 int8 unpatched, its 8 -> 16 layer at
        # the peak: arena 55,552 -> 55,296 bytes, the tensor floor; cortex-m4 -Os, 8 -> 16 on
        # 48 x 48: 1.21 -> 1.55 instructions per MAC, held over 4 pixels 1.72)
        PB = max(1, min(PB, ctx.target.stack_array_bytes // (4 * K2)))
        held = False
    packed, i8 = _packed(ctx, wt.reshape(M, -1), MB, lanes)
    fold_start = _folded_start(node, Wt, xz, Var("m_")) if fold else None
    xzv: Expr = const(0, I32) if fold else xz
    flat = (KH, KW) == (1, 1) and tuple(st) == (1, 1) and not any(pb) and not any(pe) \
        and X.strides == contiguous_strides(X.shape) and Y.strides == contiguous_strides(Y.shape)
    if flat:
        X = dataclasses.replace(X, shape=(N, C, P), strides=(C * P, P, 1))
        Y = dataclasses.replace(Y, shape=(N, M, P), strides=(M * P, P, 1))
    n = axis_var("n", N)
    kh, kw, cp = axis_var("kh", KH), axis_var("kw", KW), axis_var("cp", CP)
    # a held block of a 1 x 1 layer over int8 x itself, channels in whole pairs: fill_quads
    quads = held and flat and PB >= 4 and X.dtype.name == "int8" and C % 2 == 0 and \
        isinstance(xzv, Const) and int(xzv.value) == 0

    def pixel(p: Expr) -> tuple[Expr, ...]:
        if flat:
            return (p,)
        if OW == 1:
            return (p, Const(0))
        if OH == 1:
            return (Const(0), p)
        return (Binary("div", p, Const(OW)), Binary("mod", p, Const(OW)))

    def fill_by_kw(col: Buffer, ps: list[Expr]) -> list[Stmt]:
        """The words of pairs along kw: a test per row of taps whether it lies inside x,
        then per lane a guarded load (a pair may straddle the border)."""
        c, kwp = axis_var("c", C), axis_var("kwp", KWP)
        out: list[Stmt] = []
        for t, p in enumerate(ps):
            oh, ow = pixel(p)
            ih = lin((oh, st[0]), (kh, dl[0]), -pb[0])
            at = (lin((c, KH * KWP), (kh, KWP), kwp), Const(t))
            vals = []
            for ln in range(lanes):
                kx: Expr = lin((kwp, lanes), ln)
                if ln and KW % lanes:
                    kx = minimum(kx, Const(KW - 1))
                iw = lin((ow, st[1]), (kx, dl[1]), -pb[1])
                cw, _ = in_range([(iw, IW)]) if any(pb) or any(pe) else ([], True)
                ld, mask = blk.masked_load(X, (n, c, ih, iw), cw)
                vals.append(blk.widened(ld, xz, mask))
            body = loops([(c, 0, C)], _two_per_trip(kwp, KWP, [Store(col, at,
                                                                    _word(lanes, vals))]))
            ch, _ = in_range([(ih, IH)]) if any(pb) or any(pe) else ([], True)
            if ch:
                zero = loops([(c, 0, C)], _two_per_trip(kwp, KWP, [Store(col, at,
                                                                      const(0, col.dtype))]))
                body = [If(all_of(*ch), body, zero)]
            out += body
        return loops([(kh, 0, KH)], out)

    def zero_word(col: Buffer) -> Expr:
        """The word of a padded tap: x - xz = 0, or the folded zero point's pair."""
        z = int(xz.value) if fold else 0
        return blk.word(lanes, [const(z, I32)] * lanes) if z else const(0, col.dtype)

    def fill_row(col: Buffer, ps: list[Expr]) -> list[Stmt]:
        """The words of a block whose pixels lie in one output row with every tap's column
        inside x: per row of taps (one test whether it lies inside x) and channel word, each
        distinct column's word built once and stored to every (tap, pixel) slot that reads it
        (stride 1, 3 x 3 taps, 3 pixels: 5 words for 9 slots)."""
        PBk = len(ps)
        oh0, ow0 = pixel(ps[0])
        iw0 = lin((ow0, st[1]), -pb[1])
        offs = {(kx, t): t * st[1] + kx * dl[1] for kx in range(KW) for t in range(PBk)}
        cols = sorted(set(offs.values()))
        ih = lin((oh0, st[0]), (kh, dl[0]), -pb[0])

        # int8 x itself in the words (the zero point folded or 0), rows contiguous: each run of
        # 4 columns as one word per channel (pack4: one LDR), the channels' halves paired by
        # pkhbt/pkhtb and widened by sxtb16 (``_quad_words``: 2 LDR + 2 PKH + 4 SXTB16 for 4
        # words, not 8 LDRSB + 4 PKHBT)
        quads = []
        if lanes == 2 and X.dtype.name == "int8" and isinstance(xzv, Const) and \
                int(xzv.value) == 0 and X.strides[-1] == 1:
            rest = list(cols)
            while rest:
                if all(rest[0] + k in rest for k in range(4)):
                    quads.append(rest[0])
                    rest = [j for j in rest if not rest[0] <= j < rest[0] + 4]
                else:
                    rest = rest[1:]

        def words(cq: Expr, sfx: str) -> list[Stmt]:
            """Channel word ``cq``'s distinct words (locals ``xw<column><sfx>``), stored."""
            wv = {j: Var(f"xw{j}{sfx}", I32 if lanes == 2 else col.dtype) for j in cols}
            chans: list[Expr] = []
            for ln in range(lanes):
                c: Expr = lin((cq, lanes), ln)
                if ln and C % lanes:
                    c = minimum(c, Const(C - 1))
                chans.append(c)

            def at(j: int) -> Expr:
                return iw0 if j == 0 else Binary("add", iw0, Const(j))
            body: list[Stmt] = []
            done: set[int] = set()
            for j0 in quads:
                qs = []
                for ln, c in enumerate(chans):
                    q4 = Var(f"xq{j0}_{ln}{sfx}", I32)
                    body.append(Decl(q4, Call("pack4", tuple(X[(n, c, ih, at(j0 + k))]
                                                            for k in range(4)), I32)))
                    qs.append(q4)
                decls, ws = _quad_words(qs[0], qs[1], f"{j0}{sfx}")
                body += decls
                for k, w in enumerate(ws):
                    body.append(Decl(wv[j0 + k], w))
                    done.add(j0 + k)
            for j in cols:
                if j in done:
                    continue
                vals = [blk.widened(X[(n, c, ih, at(j))], xzv) for c in chans]
                body.append(Decl(wv[j], _word(lanes, vals)))
            for kx in range(KW):
                for t in range(PBk):
                    body.append(Store(col, (lin((kh, KW * CP), (Const(kx), CP), cq), Const(t)),
                                      wv[offs[kx, t]]))
            return body
        # two channel words per trip (4 loop instructions per 2 x 9 slots, not per 9)
        h = Var("cp2")
        rows: list[Stmt] = loops([(h, 0, CP // 2)], words(lin((h, 2)), "a")
                                 + words(lin((h, 2), 1), "b")) if CP > 1 else []
        if CP % 2:
            rows += words(Const(CP - 1), "")
        ch, _ = in_range([(ih, IH)]) if pb[0] or pe[0] else ([], True)
        if ch:
            zero = loops([(kw, 0, KW), (cp, 0, CP)],
                         [Store(col, (lin((kh, KW * CP), (kw, CP), cp), Const(t)),
                                zero_word(col)) for t in range(PBk)])
            rows = [If(all_of(*ch), rows, zero)]
        return loops([(kh, 0, KH)], rows)

    def row_block(ps: list[Expr]) -> list[Expr] | None:
        """The test whether a block's pixels lie in one output row with every tap's column
        inside x (None when no block can)."""
        if flat or len(ps) < 2 or OW < len(ps):
            return None
        _, ow0 = pixel(ps[0])
        iw0 = lin((ow0, st[1]), -pb[1])
        last = (len(ps) - 1) * st[1] + (KW - 1) * dl[1]
        conds = [Binary("le", ow0, Const(OW - len(ps))), Binary("lt", iw0, Const(IW - last))]
        if pb[1]:
            conds.insert(1, Binary("ge", iw0, Const(0)))
        return conds

    def fill(col: Buffer, ps: list[Expr]) -> list[Stmt]:
        """The block's words: :func:`fill_row` when its pixels lie in one output row with
        every column inside x, else :func:`fill_taps`."""
        conds = row_block(ps)
        if conds is None:
            return fill_taps(col, ps)
        return [If(all_of(*conds), fill_row(col, ps), fill_taps(col, ps))]

    def fill_by_row(col: Buffer, ps: list[Expr]) -> list[Stmt]:
        """The words of pairs along a row of taps ((kw, c) flattened, a pair may join two
        taps): per row of taps and pixel one test whether the row lies inside x, then per
        word two loads, guarded by their columns unless the block's pixels lie in one output
        row with every column inside x; the words past the rows (``K2`` rounded up) 0."""
        conds = row_block(ps)

        def words(t: int, oh: Expr, ow: Expr, guard: bool) -> list[Stmt]:
            ih = lin((oh, st[0]), (kh, dl[0]), -pb[0])
            out: list[Stmt] = []
            zero: list[Stmt] = []
            for j in range(RW):
                vals: list[Expr] = []
                for ln in range(lanes):
                    v = j * lanes + ln
                    if v >= KW * C:    # the pad lane (weight 0): any value, the word is vals[0]
                        continue
                    kx, c = divmod(v, C)
                    if guard:
                        iw = lin((ow, st[1]), kx * dl[1] - pb[1])
                    else:   # ow is the block's first column iw0 = ow0 * sw - pad (proved in x)
                        off = t * st[1] + kx * dl[1]
                        iw = ow if off == 0 else Binary("add", ow, Const(off))
                    cw, ok = in_range([(iw, IW)]) if guard else ([], True)
                    mask = all_of(*cw)
                    if not ok:
                        vals.append(const(int(xz.value) if fold else 0, I32))
                    elif mask is None:
                        vals.append(blk.widened(X[(n, Const(c), ih, iw)], xzv))
                    elif fold:
                        vals.append(Cast(Load(X, (n, Const(c), ih, iw), mask,
                                              Const(int(xz.value), X.dtype)), I32))
                    else:
                        vals.append(blk.widened(Load(X, (n, Const(c), ih, iw), mask,
                                                     const(0, X.dtype)), xz, mask))
                at = (lin((kh, RW), j), Const(t))
                out.append(Store(col, at, _word(lanes, vals) if len(vals) == lanes else vals[0]))
                zero.append(Store(col, at, zero_word(col)))
            ch, _ = in_range([(ih, IH)]) if pb[0] or pe[0] else ([], True)
            return [If(all_of(*ch), out, zero)] if ch else out

        def pixels(guard: bool) -> list[Stmt]:
            out: list[Stmt] = []
            for t, p in enumerate(ps):
                oh, ow = pixel(p if guard else ps[0])
                out += words(t, oh, ow if guard else lin((ow, st[1]), -pb[1]), guard)
            if not guard and out and isinstance(out[0], If):   # one row test for the block
                out = [If(out[0].cond, [s for i in out for s in i.then],
                          [s for i in out for s in i.orelse])]
            return loops([(kh, 0, KH)], out)
        tail = [Store(col, (Const(k), Const(t)), const(0, col.dtype))
                for k in range(KH * RW, K2) for t in range(len(ps))]
        if conds is None:
            return pixels(True) + tail
        return [If(all_of(*conds), pixels(False), pixels(True))] + tail

    def fill_quads(col: Buffer, ps: list[Expr]) -> list[Stmt]:
        """The words of a 1 x 1 layer's block of int8 x itself (the zero point folded or 0),
        an even channel count: per channel pair and run of 4 pixels one word load per channel,
        paired by pkhbt/pkhtb and widened by sxtb16 as ``fill_row``'s quads (``_quad_words``: 2
        LDR + 2 PKH + 4 SXTB16 for 4 words, not 8 LDRSB + 4 PKHBT), the pixels past the last
        run one word each."""
        out: list[Stmt] = []
        chans = [lin((cp, 2)), lin((cp, 2), 1)]
        runs = len(ps) // 4 * 4
        for j0 in range(0, runs, 4):
            qs = [Var(f"xq{j0}_{ln}", I32) for ln in range(2)]
            out += [Decl(q4, Call("pack4", tuple(X[(n, c, ps[j0 + k])] for k in range(4)), I32))
                    for q4, c in zip(qs, chans)]
            decls, ws = _quad_words(qs[0], qs[1], str(j0))
            out += decls
            for k, wd in enumerate(ws):
                out.append(Store(col, (cp, Const(j0 + k)), wd))
        for t in range(runs, len(ps)):
            out.append(Store(col, (cp, Const(t)), _word(lanes, [
                blk.widened(X[(n, c, ps[t])], xzv) for c in chans])))
        return loops([(cp, 0, CP)], out)

    def fill_stem(col: Buffer, ps: list[Expr]) -> list[Stmt]:
        """The words of ``_stem_words`` per pixel, from one int32 ``L`` per row of taps and
        channel: the bytes of the pixel's 3 columns and the one after them (a row outside x
        the zero point's 4 bytes), each one word load (``pack4``) at a constant offset from
        one base index: the block's, when its pixels lie in one output row with every row and
        column of taps inside x (cortex-m4 -Os, MobileNetV1-0.25's 9 patch stems 1.191 ->
        1.161 instructions per MAC, ~450 bytes more code each), else each pixel's. A pixel
        with a row of taps outside x tests each row; where
        some of its 3 columns lie outside x (or, for a block's one base, the 4th the word load
        reads; a lone pixel's 4th may lie past x's row: ``columns_inside``) the load starts
        ``d`` columns off, at the nearest 4 columns inside, and ``L`` is shifted by ``d``
        bytes, the zero point shifted in (``((L ^ z) >> 8d << -8d) ^ z``, z the zero point's
        4 bytes). Then the words by ``sxtb16`` (and ``pkhbt`` to pair two loads' middle
        columns). x is read flat through its strides (``Xf``: a window of a larger input, as
        the patch pass slices an int8 image, reads in place)."""
        zp = int(xz.value) if fold else 0
        zpw = ((zp & 0xFF) * 0x01010101 + (1 << 31)) % (1 << 32) - (1 << 31)
        U32 = DType("uint32")
        out: list[Stmt] = []
        for t, p in enumerate(ps):
            oh, ow = pixel(p)
            iw = lin((ow, st[1]), -pb[1])
            ih0 = lin((oh, st[0]), -pb[0])
            sr, sl = Var(f"xr{t}", I32), Var(f"xs{t}", I32)
            ld = {(r, c): Var(f"xl{t}_{r}{c}", I32) for r in range(KH) for c in range(C)}

            def loads(col0: Expr, shifted: bool) -> list[Stmt]:
                """The Ls from column ``col0`` on; ``shifted``: by ``sr``/``sl`` bits, a row
                outside x the zero point's bytes (else every row lies inside)."""
                base = flat_base(ih0, col0)
                body: list[Stmt] = []
                for r in range(KH):
                    # the row's tests (those that can fail for some pixel), on ih0 itself so
                    # that they bound the flat index
                    conds = ([ih0 >= -r * dl[0]] if r * dl[0] < pb[0] else []) + \
                        ([ih0 < IH - r * dl[0]] if (OH - 1) * st[0] + r * dl[0] - pb[0] >= IH
                         else []) if shifted else []
                    for c in range(C):
                        off = c * sx[1] + r * dl[0] * sx[2]
                        word: Expr = Call("pack4", tuple(
                            Xf[(Binary("add", base, Const(off + k)) if off + k else base,)]
                            for k in range(4)), I32)
                        if shifted:
                            u = Binary("xor", Cast(word, U32), const(zpw & 0xFFFFFFFF, U32))
                            u = Binary("shl", Binary("shr", u, Cast(sr, U32)), Cast(sl, U32))
                            word = Cast(Binary("xor", u, const(zpw & 0xFFFFFFFF, U32)), I32)
                        body.append(Assign(ld[r, c], Select(all_of(*conds), word,
                                                            const(zpw, I32)) if conds else word))
                return body
            # the rows of taps and the 3 columns inside x, the 4th inside Xf: a test where
            # some pixel's are not
            last = (KH - 1) * dl[0]
            inside = ([ih0 >= 0] if pb[0] else []) + \
                ([ih0 < IH - last] if (OH - 1) * st[0] + last - pb[0] >= IH else []) + \
                ([iw >= 0] if pb[1] else []) + columns_inside(ih0, iw, 0)
            one: list[Stmt] = [Decl(v, const(0, I32)) for v in ld.values()]
            if inside:
                # (the clamped column an expression, not a local: the checker bounds it)
                a = minimum(maximum(iw, Const(0)), Const(IW - 4))
                edge = [Decl(sr, Binary("mul", maximum(Binary("sub", iw, a), Const(0)),
                                        Const(8))),
                        Decl(sl, Binary("mul", maximum(Binary("sub", a, iw), Const(0)),
                                        Const(8)))] + loads(a, True)
                one.append(If(all_of(*inside), loads(iw, False), edge))
            else:
                one += loads(iw, False)
            out += one + stem_stores(col, t, ld)
        # a block in one output row with every row and column of taps inside x: one base
        # index, the pixels' loads at constant offsets from it
        oh0, ow0 = pixel(ps[0])
        iw0, ih0 = lin((ow0, st[1]), -pb[1]), lin((oh0, st[0]), -pb[0])
        span = (len(ps) - 1) * st[1]
        last = (KH - 1) * dl[0]
        conds = [ow0 <= OW - len(ps)] + ([ih0 >= 0] if pb[0] else []) + \
            ([ih0 < IH - last] if (OH - 1) * st[0] + last - pb[0] >= IH else []) + \
            ([iw0 >= 0] if pb[1] else []) + columns_inside(ih0, iw0, span)
        if len(ps) < 2 or OW < len(ps):
            return out
        base = flat_base(ih0, iw0)
        row: list[Stmt] = []
        for t in range(len(ps)):
            ld = {(r, c): Var(f"xb{t}_{r}{c}", I32) for r in range(KH) for c in range(C)}
            for (r, c), v in ld.items():
                off = t * st[1] + c * sx[1] + r * dl[0] * sx[2]
                row.append(Decl(v, Call("pack4", tuple(
                    Xf[(Binary("add", base, Const(off + k)) if off + k else base,)]
                    for k in range(4)), I32)))
            row += stem_stores(col, t, ld)
        return [If(all_of(*conds), row, out)]

    def flat_base(ih0: Expr, iw: Expr) -> Expr:
        """The flat index in ``Xf`` of row ``ih0``, column ``iw`` (of channel 0, image n)."""
        base = Binary("add", Binary("mul", ih0, Const(sx[2])), iw)
        return Binary("add", base, Binary("mul", n, Const(sx[0]))) if N > 1 else base

    def columns_inside(ih0: Expr, iw: Expr, span: int) -> list[Expr]:
        """The tests (where some pixel fails them) that the columns ``iw`` to ``iw + span +
        3`` of the word loads lie inside x; for one pixel (``span`` 0) whose 3 columns end at
        x's last, that its 4th lies inside ``Xf`` instead: the next row's first byte, or the
        next channel's, past the end of ``Xf`` only on channel C-1's last row (a test of the
        flat index, which bounds the loads' indices for the checker). That byte goes to lanes
        of weight 0 only (``"e"`` words take bytes 0 and 2 of a load, ``"o"`` words bytes 1,
        the lone ``"o"`` word bytes 1 and 3 with lane1 None), so such a pixel needs no shifted
        loads (cortex-m4 -Os, MobileNetV1-0.25's 3 -> 8 stems whose last column ends at x's
        last: 38 x 38 with pads 1, 1.177 -> 1.166 instructions per MAC; not for a block's
        one base: its test cost more than the shifts it saved on 51 x 51)."""
        reach = (OW - 1) * st[1] - pb[1]   # the largest first column of a pixel
        edge = IW - 3 - span     # the first column whose 4th lies just past x
        if span or not (0 <= edge <= reach and (edge + pb[1]) % st[1] == 0):
            return [iw < edge] if reach > IW - 4 - span else []   # (no such pixel)
        out = [iw <= edge] if reach > edge else []
        top = (N - 1) * sx[0] + (C - 1) * sx[1] + (IH - 1) * sx[2] + IW - 1   # Xf's last
        far = (C - 1) * sx[1] + (KH - 1) * dl[0] * sx[2] + 3     # a load's last from the base
        if (N - 1) * sx[0] + ((OH - 1) * st[0] - pb[0]) * sx[2] + edge + far > top:
            out.append(flat_base(ih0, iw) <= top - far)
        return out

    def stem_stores(col: Buffer, t: int, ld: dict[tuple[int, int], Var]) -> list[Stmt]:
        """Pixel ``t``'s words of ``_stem_words`` from its loads ``ld`` (row, channel)."""
        out: list[Stmt] = []
        for k, (kind, la_, lb_) in enumerate(words_of):
            la = ld[la_[0], la_[2]]
            if kind == "e":
                word = Call("sxtb16", (la, Const(0, I32)), I32)
            else:
                pair = la if lb_ is None else Call("pkhbt", (la, ld[lb_[0], lb_[2]]), I32)
                word = Call("sxtb16", (pair, Const(8, I32)), I32)
            out.append(Store(col, (Const(k), Const(t)), word))
        return out

    def fill_taps(col: Buffer, ps: list[Expr]) -> list[Stmt]:
        """Per tap and pixel one test whether the tap lies inside x (none without padding),
        then a loop over the channel words without guards, or one storing zeros."""
        out: list[Stmt] = []
        free: list[Stmt] = []     # the stores of pixels that need no test, in one loop
        for t, p in enumerate(ps):
            pix = pixel(p)
            conds: list[Expr] = []
            if flat:
                sp: tuple[Expr, ...] = pix
            else:
                ih = lin((pix[0], st[0]), (kh, dl[0]), -pb[0])
                iw = lin((pix[1], st[1]), (kw, dl[1]), -pb[1])
                sp = (ih, iw)
                if any(pb) or any(pe):
                    conds, _ = in_range([(ih, IH), (iw, IW)])
            vals = []
            for ln in range(lanes):
                c: Expr = lin((cp, lanes), ln)
                if ln and C % lanes:
                    c = minimum(c, Const(C - 1))
                vals.append(blk.widened(X[(n, c, *sp)], xzv))
            at = (lin((kh, KW * CP), (kw, CP), cp), Const(t))
            word = Store(col, at, _word(lanes, vals))
            if conds:
                zero = Store(col, at, zero_word(col))
                out.append(If(all_of(*conds), _two_per_trip(cp, CP, [word]),
                              _two_per_trip(cp, CP, [zero])))
            elif flat:
                free.append(word)
            else:
                out += _two_per_trip(cp, CP, [word])
        if free:   # a 1x1 layer's words: 2 channel words per trip from 8 on
            free = _two_per_trip(cp, CP, free) if CP >= 8 else loops([(cp, 0, CP)], free)
        return loops([(kh, 0, KH), (kw, 0, KW)], free + out)

    # the per-channel start and requantize multiplier (``_channel_consts``) appended to each
    # channel block's packed weights (blocked_nest's ``consts``), read through the weights'
    # pointer (cortex-m4 -Os, in a separate buffer (M, 2) then appended: 16 -> 32 on 9 x 11
    # 1.146 -> 1.115 -> 1.041 instructions per MAC, 32 -> 32 on 8 x 9 0.943 -> 0.927 -> 0.890,
    # 3 -> 8 3x3 on 19 x 19 1.405 -> 1.375 -> 1.329; 8 -> 16 on 18 x 23 1.226 -> 1.209)
    chan = _channel_consts(node, fold_start, B, fin, M) if lanes == 2 else None

    def start(m: Expr, p: Expr) -> Expr:
        if chan is not None:
            return chan[(m, Const(0))]
        if fold_start is not None:
            return substitute(fold_start, {Var("m_"): m})
        return Cast(B[(m,)], I32) if B is not None else const(0, I32)

    # the stem's x as one flat axis (its loads at constant offsets from one index per pixel)
    # (x may be a window of a larger buffer: its strides, the span they reach)
    sx = X.strides
    Xf = dataclasses.replace(X, shape=(sum((d - 1) * s for d, s in zip(X.shape, sx)) + 1,),
                             strides=(1,)) if stem else X
    # a contiguous y stored by flat pixel (no division by the row length per store)
    Yp = Y if flat or Y.strides != contiguous_strides(Y.shape) else \
        dataclasses.replace(Y, shape=(N, M, P), strides=(M * P, P, 1))

    def store(m: Expr, p: Expr, acc: Expr) -> list[Stmt]:
        at = (n, m, p) if Yp is not Y else (n, m, *pixel(p))
        mc = chan[(m, Const(1))] if chan is not None and chan.shape[1] == 2 else None
        return [Store(Yp, at, fin(acc, m, mc) if fin is not None else acc)]

    inner, W, col = blk.blocked_nest(lanes=lanes, P=P, PB=PB, M=M, MB=MB, K2=K2,
                                     weights=packed, int8_weights=i8, value=w.name,
                                     overlap=True, share=True, loads_first=not stem,
                                     stationary=held,
                                     consts=chan if lanes == 2 else None,
                                     fill=fill_stem if stem else fill_by_row if by_row else
                                     fill_by_kw if by_kw else fill_quads if quads else fill,
                                     start=start,
                                     store=store)
    body = loops([(n, 0, N)], inner)
    how = "SMLAD on int16 pairs" if lanes == 2 else "int16 multiply-adds"
    order = "kh, then per channel kw 0 and 2 and the channels' kw 1 in pairs" if stem else \
        "kh, then kw, c in pairs" if by_row else "c, kh, kw in pairs" if by_kw else \
        "kh, kw, c in pairs"
    text = (f"{node.op}: x {shape_text(X.shape)} {X.dtype} is NCHW, w {shape_text(w.shape)} "
            f"(centered, packed at compile time as (channel pairs, "
            f"{order})), y "
            f"{shape_text(Y.shape)} {Y.dtype}; strides {list(st)}, dilations {list(dl)}, "
            f"pads_begin {list(pb)}; blocked: per {PB} pixels their im2col columns widened to "
            "int16 "
            + ("(the x zero point folded into the start)" if fold else "minus the x zero point")
            + (f", per channel its {K2} weight words held over the {PB} pixels (one int32 "
               f"accumulator each), {how}" if held else
               f", {PB} pixels x {MB} channels of int32 accumulators, {how}")
            + (f"; {fin.note}" if fin is not None else ""))
    extra = [b for b in (xzb, None if fold else B) if b is not None] + \
        (fin.reads + fin.weights if fin else [])
    if isinstance(fold_start, Load):
        extra.append(fold_start.buf)
    if chan is not None:
        extra.append(chan)
    ins = read_buffers(body, [Xf, W] + extra)
    return ctx.kernel(node.op.lower(), [Y], ins, [Comment(text)] + body, comment=text,
                      locals=[col])


def _channel_consts(node: Node, fold_start: Expr | None, B: Buffer | None,
                    fin: "_Requant | None", M: int) -> Buffer | None:
    """The blocked Conv's per-channel constants as one int32 weight buffer (M, k): column 0
    the start value (the bias, minus the x zero point times the channel's weight sum when that
    folds), column 1 the requantize multiplier when it differs per channel; None when the
    start is not a compile-time constant (a runtime bias)."""
    if isinstance(fold_start, Load) and fold_start.buf.data is not None:
        s0 = np.asarray(fold_start.buf.data, np.int64).reshape(-1)
    elif isinstance(fold_start, Const):
        s0 = np.full(M, int(fold_start.value), np.int64)
    elif fold_start is None and B is None:
        s0 = np.zeros(M, np.int64)
    elif fold_start is None and node.op == "QLinearConv" and has_input(node, 8) and \
            node.inputs[8].const is not None:
        s0 = np.asarray(node.inputs[8].const, np.int64).reshape(-1)
    else:
        return None
    cols = [s0]
    if fin is not None and fin.const and isinstance(fin.m, Buffer):
        cols.append(np.asarray(fin.m.data, np.int64).reshape(-1))
    return Buffer("chan", I32, (M, len(cols)), space="weight", value="",
                  data=np.stack(cols, axis=1).astype(np.int32).reshape(-1))


def _stem_words(C: int, KH: int) -> list[tuple[str, tuple[int, int, int],
                                                 tuple[int, int, int] | None]]:
    """The scratch words of a Conv 3 taps wide (dilation 1 along them) of ``C`` input channels
    and ``KH`` rows of taps, whose x is int8 read itself: ``(kind, lane0, lane1)``, each lane a
    tap ``(kh, kw, c)`` (None: weight 0, any value). From the word ``L`` of 4 input columns of
    one row and channel (the pixel's 3 and one more), ``"e"`` is ``sxtb16(L, 0)``, taps kw 0
    and 2; ``"o"`` is ``sxtb16(pkhbt(La, Lb), 8)``, tap kw 1 of two loads (``sxtb16(La, 8)``
    with lane1 None). Per row the C ``"e"`` words and the channels' kw 1 in pairs; with odd C
    the last channel's kw 1 of two rows pairs after the rows: 3 channels, 3 x 3: 14 words
    (the (kw, c) rows in pairs: 15), 1.4 instructions per word against 4 (2 LDRSB, PKHBT,
    STR)."""
    words: list[tuple[str, tuple[int, int, int], tuple[int, int, int] | None]] = []
    odd: list[tuple[int, int, int]] = []
    for r in range(KH):
        words += [("e", (r, 0, c), (r, 2, c)) for c in range(C)]
        words += [("o", (r, 1, c), (r, 1, c + 1)) for c in range(0, C - 1, 2)]
        if C % 2:
            odd.append((r, 1, C - 1))
    words += [("o", odd[i], odd[i + 1] if i + 1 < len(odd) else None)
              for i in range(0, len(odd), 2)]
    return words


def _quad_words(q0: Var, q1: Var, sfx: str) -> tuple[list[Stmt], list[Expr]]:
    """The 4 words of int16 pairs ``(a[k], b[k])``, k = 0..3, from ``q0`` and ``q1``, the 4
    int8 values of ``a`` and of ``b`` (one word load each, low byte first): the halves swapped
    over by ``pkhbt``/``pkhtb`` into ``(a0, a1, b0, b1)`` and ``(a2, a3, b2, b3)`` (locals
    ``xp<sfx>``, ``xr<sfx>``), each widened by ``sxtb16`` twice (bytes 0 and 2, then 1 and 3):
    2 PKH + 4 SXTB16 for 4 words, not 4 SXTB16 + 4 PKH (cortex-m4 -Os: 8 -> 16 on 18 x 18,
    ``fill_quads``, 1.187 -> 1.174 instructions per MAC, on 23 x 23 1.171 -> 1.158; resnet8's
    3x3 16 -> 16 on 16 x 16, ``fill_row``, 0.859 -> 0.854). Returns (declarations of the two
    locals, the 4 words)."""
    lo, hi = Var(f"xp{sfx}", I32), Var(f"xr{sfx}", I32)
    decls: list[Stmt] = [Decl(lo, Call("pkhbt", (q0, q1), I32)),
                         Decl(hi, Call("pkhtb", (q1, q0), I32))]
    return decls, [Call("sxtb16", (v, Const(r, I32)), I32) for v in (lo, hi) for r in (0, 8)]


def _word(lanes: int, vals: Sequence[Expr]) -> Expr:
    """One im2col scratch word of the blocked int8 Conv: with 2 lanes the int16 pair of
    ``vals`` (int32 each, in [-32768, 32767]) by the ``pkhbt`` intrinsic (one ``PKHBT`` on a
    DSP core, where the C form is ``UXTH`` and ``ORR``; a constant pair stays a constant), else
    ``int_blocked.word``."""
    if lanes != 2 or all(isinstance(v, Const) for v in vals):
        return blk.word(lanes, vals)
    return Call("pkhbt", (vals[0], vals[1]), I32)


def _two_per_trip(v: Var, n: int, body: list[Stmt]) -> list[Stmt]:
    """``for v in 0..n: body`` as a loop of two iterations per trip (``v`` = 2h, 2h + 1) and the
    odd last one after it: the words of a padded Conv's im2col scratch, one pixel's per tap,
    are ~6 Cortex-M4 instructions each and the loop's own 4 (resnet8's 3x3 16 -> 16: the fill
    was ~0.4 instructions per MAC)."""
    if n < 2 or not isinstance(v, Var):
        return loops([(v, 0, n)], body)
    h = Var(f"{v.name}2")
    out: list[Stmt] = [Loop(h, 0, n // 2, substitute_stmts(body, {v: lin((h, 2))})
                            + substitute_stmts(body, {v: lin((h, 2), 1)}))]
    if n % 2:
        out += substitute_stmts(body, {v: Const(n - 1)})
    return out


def _folded_start(node: Node, wc: Buffer, xz: Const, m: Expr) -> Expr:
    """The int32 start value of output channel ``m`` of an integer Conv whose x zero point is
    folded out of the reduction: ``sum (x - xz) w' = sum x w' - xz sum w'``, so the start is
    QLinearConv's bias (input 8, constant, when present) minus ``xz`` times the sum of the
    channel's centered weights ``wc`` (M, ...), wrapped to int32 as the accumulator itself
    wraps; a weight buffer ``acc0`` (M,), or the constant 0. Exact only when every tap is
    accumulated (a padded tap reads the zero point, or there is no padding)."""
    M = wc.shape[0]
    start = -int(xz.value) * wc.data.astype(np.int64).reshape(M, -1).sum(axis=1)
    if node.op == "QLinearConv" and has_input(node, 8):
        start = start + np.asarray(node.inputs[8].const, np.int64)
    start = ((start + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
    return Buffer("acc0", I32, (M,), space="weight", data=start, value="")[(m,)] \
        if np.any(start) else const(0, I32)


def _depthwise_integer_scalar(node: Node, ctx: LowerCtx, X: Buffer, Y: Buffer,
                              B: Buffer | None, xz: Expr, fin: "_Requant | None") -> Any:
    """An integer depthwise Conv (one input channel per group) on a target that keeps
    accumulators in scalar registers (``Target.scalar_accumulators``), as
    ``nn.scalar_depthwise_nest`` builds it, or None when it does not apply (runtime weights or
    x zero point, more than SCALAR_TAPS taps, too many border runs). The weights, centered at
    compile time, are int32 locals; each run of positions starts at the bias minus the x zero
    point times the sum of its taps' weights, so a tap is one load and one multiply-add,
    ``acc += x * w'``: the sum of ``(x - x_zp) * w'`` over the taps inside x exactly (int32
    wrap-around on both sides). Then the requantize epilogue. x (N,C,*S), w (C*mult,1,*K)."""
    q = node.op == "QLinearConv"
    x, w = node.inputs[0], node.inputs[3 if q else 1]
    group = int(attr(node, "group"))
    if not getattr(ctx.target, "scalar_accumulators", False) or group == 1 \
            or acc_type(node) != I32 \
            or x.shape[1] != group or len(x.shape) < 3 or math.prod(w.shape[2:]) > SCALAR_TAPS \
            or not isinstance(xz, Const) or (B is not None and node.inputs[8].const is None):
        return None
    Wt = _centered_weights(w, node.inputs[5 if q else 3] if has_input(node, 5 if q else 3)
                           else None)
    if Wt is None:
        return None
    pb, _, s, d, O = conv_geometry(node, x.shape, w.shape)
    xzv = int(xz.value)

    def start(co: Expr, ws: Sequence[Expr]) -> Expr:
        e: Expr = Cast(B[(co,)], I32) if B is not None else const(0, I32)
        if xzv and ws:
            total = ws[0]
            for wv in ws[1:]:
                total = total + wv
            e = e - total * const(xzv, I32)
        return e

    plane = in_place_plane(ctx, Y)
    built = scalar_depthwise_nest(
        X, Y, (list(w.shape[2:]), list(x.shape[2:]), list(pb), list(s), list(d), list(O)),
        w.shape[0] // group, I32,
        weight=lambda co, t: Cast(Wt[(co, Const(0), *[Const(i) for i in t])], I32),
        start=start, mac=lambda wv, xv, acc: acc + Cast(xv, I32) * wv,
        finish=lambda acc, co: fin(acc, co) if fin is not None else acc,
        specialize=True, guarded_ok=False, block=INT_SCALAR_BLOCK, plane=plane)
    if built is None:
        return None
    body, how = built
    text = (f"{node.op}: x {shape_text(X.shape)} {X.dtype} is (N,C,spatial...), w "
            f"{shape_text(Wt.shape)} {Wt.dtype} (centered at compile time), y "
            f"{shape_text(Y.shape)} {Y.dtype}; depthwise (group {group}), strides {list(s)}, "
            f"dilations {list(d)}, pads_begin {list(pb)}; int32 {how}"
            + (f"; {fin.note}" if fin is not None else ""))
    extra = ([B] if B is not None else []) + (fin.reads + fin.weights if fin else [])
    ins = read_buffers(body, [X, Wt] + extra)
    return ctx.kernel(node.op.lower(), [Y], ins, [Comment(text)] + body, comment=text,
                      locals=[plane] if plane is not None else [], inplace=plane is not None)


INT_SCALAR_BLOCK = 2   # _depthwise_integer_scalar: outputs per iteration (9 weights fill the registers)
ROW_UNROLL = 4     # the innermost loop's copies (the C renderer's vectorizable row form)
ROW_MIN = 8        # shortest output row (pixels) for the row-stationary integer Conv
ROW_MAX = 256      # longest row a 1x1 Conv's pixels are cut into (its int32 accumulator row)


def _conv_integer_rows(node: Node, ctx: LowerCtx, X: Buffer, Y: Buffer, B: Buffer | None,
                       xz: Expr, xzb: Buffer | None, fin: "_Requant | None") -> Any:
    """Integer Conv with 2 spatial axes and constant weights as row-stationary loops, or None
    when it does not apply: per output row an int32 row of accumulators (a local) starts at the
    bias; for each input channel and tap whose input row exists, a scalar weight (centered at
    compile time) multiplies a contiguous run of the input row, ``acc[ow] += (x - x_zp) * w``,
    over the output columns whose input column lies inside x (per-tap bounds, so no guard in
    the loop); then the row is requantized into y. Padding contributes 0 exactly. The inner
    loop walks contiguous outputs, which both back ends vectorize (int8 widened to int32)."""
    q = node.op == "QLinearConv"
    x, w = node.inputs[0], node.inputs[3 if q else 1]
    Wt = _centered_weights(w, node.inputs[5 if q else 3] if has_input(node, 5 if q else 3)
                           else None)
    if len(x.shape) != 4 or Wt is None or acc_type(node) != I32:
        return None     # (int64 sums: the generic nest)
    group = int(attr(node, "group"))
    (N, C), M = x.shape[:2], w.shape[0]
    CG, MG = C // group, M // group
    (KH, KW), (IH, IW) = w.shape[2:], x.shape[2:]
    pb, pe, st, dl, (OH, OW) = conv_geometry(node, x.shape, w.shape)
    if (KH, KW) == (1, 1) and tuple(st) == (1, 1) and not any(pb) and (OH, OW) == (IH, IW) \
            and X.strides == contiguous_strides(X.shape) \
            and Y.strides == contiguous_strides(Y.shape):
        # 1x1: the pixels as rows of R (the largest divisor of H*W up to ROW_MAX), so the
        # inner loop is long enough to vectorize and the accumulator row stays small
        P = IH * IW
        R = max(r for r in range(1, min(P, ROW_MAX) + 1) if P % r == 0)
        if R >= max(ROW_MIN, IW):
            X = dataclasses.replace(X, shape=(N, C, P // R, R), strides=(C * P, P, R, 1))
            Y = dataclasses.replace(Y, shape=(N, M, P // R, R), strides=(M * P, P, R, 1))
            IH, IW, OH, OW = P // R, R, P // R, R
    if OW < ROW_MIN:   # rows this short pay their setup: the output-stationary nest is faster
        return None
    A = Buffer("acc", I32, (OW,), space="local")
    n, g, mg, oh = (axis_var("n", N), axis_var("g", group), axis_var("mg", MG),
                    axis_var("oh", OH))
    c, kh, kw = axis_var("c", CG), axis_var("kh", KH), axis_var("kw", KW)
    ow = Var("ow")
    m = lin((g, MG), mg)
    ci = lin((g, CG), c)
    ih = lin((oh, st[0]), (kh, dl[0]), -pb[0])
    iw = lin((ow, st[1]), (kw, dl[1]), -pb[1])
    wv = Var("wv", I32)
    lo, hi = _tap_bounds(kw, KW, dl[1], st[1], pb[1], OW, IW)
    xv = Cast(X[(n, ci, ih, iw)], I32)
    init: Expr = Cast(B[(m,)], I32) if B is not None else const(0, I32)
    if isinstance(xz, Const) and xz.value != 0 and not any(pb) and not any(pe) \
            and (B is None or node.inputs[8].const is not None):
        # no padding, so every tap accumulates: the x zero point folds into the start value
        init, B = _folded_start(node, Wt, xz, m), None
    elif not (isinstance(xz, Const) and xz.value == 0):
        xv = xv - xz
    upd = Loop(ow, lo, hi, [Store(A, (ow,), A[(ow,)] + xv * wv)], kind="unrolled",
               factor=ROW_UNROLL)
    tap = loops([(kw, 0, KW)], [Decl(wv, Cast(Wt[(m, c, kh, kw)], I32)), upd])
    conds, possible = in_range([(ih, IH)])
    guarded = [If(all_of(*conds), tap)] if conds else tap
    red = loops([(c, 0, CG), (kh, 0, KH)], guarded) if possible or conds else []
    start = [Loop(ow, 0, OW, [Store(A, (ow,), init)], kind="unrolled", factor=ROW_UNROLL)]
    out: Expr = fin(A[(ow,)], m) if fin is not None else A[(ow,)]
    finish = [Loop(ow, 0, OW, [Store(Y, (n, m, oh, ow), out)])]
    body = loops([(n, 0, N), (g, 0, group), (mg, 0, MG), (oh, 0, OH)], start + red + finish)
    text = (f"{node.op}: x {shape_text(X.shape)} {X.dtype} is NCHW, w {shape_text(Wt.shape)} "
            f"(centered at compile time), y {shape_text(Y.shape)} {Y.dtype}; group {group}, "
            f"strides {list(st)}, dilations {list(dl)}, pads_begin {list(pb)}; a row of int32 "
            "accumulators per output row" + (f"; {fin.note}" if fin is not None else ""))
    extra = [b for b in (xzb, B) if b is not None] + (fin.reads + fin.weights if fin else [])
    if isinstance(init, Load):
        extra.append(init.buf)
    ins = read_buffers(body, [X, Wt] + extra)
    return ctx.kernel(node.op.lower(), [Y], ins, [Comment(text)] + body, comment=text,
                      locals=[A])


@lower("onnxcc.LookupTable")
def _lower_lookup_table(node: Node, ctx: LowerCtx) -> Any:
    """y[i] = table[int32(x[i]) - min(x's type)]: one load from a 256-entry weight per element."""
    from .elementwise import elementwise_kernel

    lo = int(np.iinfo(node.inputs[0].dtype).min)
    T = ctx.input(1, "table")
    k = elementwise_kernel(ctx, [0], lambda v: T[(Cast(v[0], I32) - const(lo, I32),)])
    k.inputs = k.inputs + [T]
    k.comment = f"lookup table: y = table[x - ({lo})], 256 entries of {T.dtype}"
    return k


@lower("com.microsoft.QLinearAdd", "com.microsoft.QLinearMul", supports=_supports_int)
def _lower_qlinear_binary(node: Node, ctx: LowerCtx) -> Any:
    """One loop over the broadcast output: dequantize a and b in float32, add or multiply,
    quantize with C's scale and zero point (``onnxcc.ops.quant._QLinearBinary``)."""
    from onnxcc.codegen.loops import Binary

    from .elementwise import elementwise_kernel

    present = [k for k in range(8) if has_input(node, k)]
    lo, hi = qrange(node.outputs[0].dtype)
    op = "add" if node.op.endswith("Add") else "mul"
    sat = {(-128, 127): "sat_i8", (0, 255): "sat_u8"}.get((lo, hi))
    # on a microcontroller, when the constant scales bound |value / c_scale| below 2**29: the
    # quotient rounded to int32 by ``round_i32`` (one VCVTR on a single-precision FPU; the
    # float round-half-to-even helper took ~20 Cortex-M4 instructions), the zero point added
    # and SSAT/USAT, equal to the float form for every input
    scales = [node.inputs[k].const for k in (1, 4, 6)]
    fast = blk.lanes_for(ctx.target) is not None and sat is not None and \
        all(s is not None and np.size(s) == 1 for s in scales)
    zps = [node.inputs[k].const if has_input(node, k) else 0 for k in (2, 5, 7)]
    fast = fast and not ctx.size and all(z is not None and np.size(z) == 1 for z in zps)
    if fast:
        sa, sb, sc = (abs(float(np.asarray(s).reshape(-1)[0])) for s in scales)
        span = qrange(node.inputs[0].dtype)[1] - qrange(node.inputs[0].dtype)[0]
        spanb = qrange(node.inputs[3].dtype)[1] - qrange(node.inputs[3].dtype)[0]
        big = (span * sa + spanb * sb if op == "add" else span * sa * spanb * sb)
        fast = sc > 0 and big / sc < 2.0 ** 29

    def fn(v: list[Expr]) -> Expr:
        val = dict(zip(present, v))
        z = lambda k: Cast(val[k], F32) if k in val else const(0, F32)   # noqa: E731
        va = (Cast(val[0], F32) - z(2)) * val[1]
        vb = (Cast(val[3], F32) - z(5)) * val[4]
        if fast:
            # the constant scales and zero points as literals (gcc -Os reloaded and converted
            # them per element from their buffers: 32 instructions per element, now 18)
            za, zb, zc = (int(np.asarray(z).reshape(-1)[0]) for z in zps)
            s_a, s_b, s_c = (const(float(np.float32(np.asarray(s).reshape(-1)[0])), F32)
                             for s in scales)
            ca = Cast(val[0], I32)
            cb = Cast(val[3], I32)
            va = Cast(ca - const(za, I32) if za else ca, F32) * s_a
            vb = Cast(cb - const(zb, I32) if zb else cb, F32) * s_b
            q = Call("round_i32", (Binary(op, va, vb) / s_c,), I32)
            q = q + const(zc, I32) if zc else q
            return Cast(Call(sat, (q,), I32), DType.of(node.outputs[0].dtype))
        r = Unary("round", Binary(op, va, vb) / val[6]) + z(7)
        return Cast(_fmin_fmax(r, lo, hi), DType.of(node.outputs[0].dtype))

    k = elementwise_kernel(ctx, present, fn)
    k.comment = f"{node.op}: int8 in and out, float32 rescale"
    return k


@lower("com.microsoft.QLinearConcat")
def _lower_qlinear_concat(node: Node, ctx: LowerCtx) -> Any:
    """y = the inputs along axis, each requantized to y's scale and zero point in float32 (a
    plain copy where an input's constant parameters equal y's)."""
    from .tensor import copy_nest, flat

    op = get_op(node)
    y = node.outputs[0]
    axis = op.axis(node)
    ys = contiguous_strides(y.shape)
    inner = math.prod(y.shape[axis + 1:])
    yf = flat(ctx.output(0))
    lo, hi = qrange(y.dtype)
    S, Z = ctx.input(0, "y_scale"), ctx.input(1, "y_zp")
    zero = lambda b: (Const(0),) * len(b.shape)   # noqa: E731

    def scalar(v) -> float | None:
        return None if v.const is None else float(np.asarray(v.const).reshape(-1)[0])

    body: list[Stmt] = []
    ins: list[Buffer] = [S, Z]
    pos = 0
    for j, (x, s, z) in enumerate(op.triples(node)):
        v = node.inputs[x]
        off = pos * inner
        pos += v.shape[axis]
        if v.type.size == 0:
            continue
        xb = ctx.input(x, f"x{j}")
        xs, xz = ctx.input(s, f"x{j}_scale"), ctx.input(z, f"x{j}_zp")
        same = (scalar(node.inputs[s]) is not None and scalar(node.inputs[s]) ==
                scalar(node.inputs[0]) and scalar(node.inputs[z]) == scalar(node.inputs[1]))

        def rescale(e: Expr, xs=xs, xz=xz) -> Expr:
            val = (Cast(e, F32) - Cast(xz[zero(xz)], F32)) * xs[zero(xs)]
            r = Unary("round", val / S[zero(S)]) + Cast(Z[zero(Z)], F32)
            return Cast(_fmin_fmax(r, lo, hi), DType.of(y.dtype))

        xf = flat(xb)
        ins += [xf] + ([] if same else [xs, xz])
        body += copy_nest(ctx, v.shape, yf, ys, off, xf, tuple(xb.strides), 0,
                          None if same else rescale)
    if not body:
        return None
    text = f"QLinearConcat on axis {axis}: each input requantized to y's parameters"
    return ctx.kernel("qlinearconcat", [yf], read_buffers(body, ins), [Comment(text)] + body,
                      comment=text)


def _positions_small(o: list, O: list, kk: list, K: list, c: Expr, CG: int, guard: Expr | None,
                     acc: Var, init: Expr, mac: Stmt, store: Stmt, possible: bool = True
                     ) -> list[Stmt]:
    """Size mode's integer Conv nest over the output positions ``o``: ``acc = init``, then for
    each tap whose input lies inside x (``guard``, from ``nn.size_taps``: a padded tap adds 0,
    so it is skipped) ``mac`` over the group's channels ``c``, then ``store``. ``possible``
    False (an axis of one output whose one tap lies in the padding): no tap at all."""
    red = loops([(c, 0, CG)], [mac])
    taps = loops([(kk[a], 0, K[a]) for a in range(len(K))],
                 [If(guard, red)] if guard is not None else red) if possible else []
    return loops([(o[a], 0, O[a]) for a in range(len(O))], [Decl(acc, init), *taps, store])
