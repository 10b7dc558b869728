"""Int8 depthwise Conv with dual 16-bit multiply-accumulates on cores with Arm's DSP extension
(``Target.dsp``): output-stationary, 2 or 4 outputs of a row per block in int32 registers, the
taps of one kernel row as two ``smlad`` of sign-extended byte pairs.

x (N, C, IH, IW) int8 NCHW, w (C, 1, KH, 3) constant, y (N, C, OH, OW); stride along W 1 or 2,
dilation along W 1 (any along H), any padding. Per kernel row ``kh`` and output ``ow`` one word
of 4 input bytes ``x0..x3`` (columns ``ow * sw - pad_left`` on) is loaded at once (``pack4``:
one unaligned ``LDR``) and widened by ``sxtb16`` into ``(x0, x2)`` and ``(x1, x3)``; the row's
centered weights are packed at compile time as ``(w0, w2)`` and ``(w1, 0)``, so that

    acc(ow)     += smlad((w0, w2), (x0, x2)) + smlad((w1, 0), (x1, x3))
    acc(ow + 1) += smlad((w0, w2), (x1, x3)) + smladx((w1, 0), (x0, x2))     (stride 1)

with the word shared by the two outputs of a stride-1 block: 1 load, 2 ``sxtb16`` and 4
``smlad`` for 6 MACs (CMSIS-NN's ``arm_depthwise_conv_s8_opt`` pairs channels of NHWC data
instead; onnxcc's activations are NCHW, so the pairs run along a row). Every tap accumulates:
a byte outside x (padding) is the x zero point itself, and each channel's accumulators start at
``bias - x_zp * sum(w')`` (``quant._folded_start``), so the padded taps cancel exactly. The
output positions are cut into an interior (rows whose taps all lie inside x, columns whose 4
bytes do: loops, plain word loads) and border rows and columns at constant positions whose
bytes outside x are the constant zero point (the row's first or last word shifted, the zero
point or'ed in; a row wholly outside adds constant lanes). Then the requantize epilogue per
output (on a microcontroller ``requantize_hi`` and ``sat_i8``/``sat_u8``: about 10 Cortex-M4
instructions).

Cortex-M4 -Os, instructions per MAC counted by QEMU (tests/targets/test_mcu_depthwise_smlad.py;
7.4-7.5 for the scalar nest before): 3.5 for 3x3 stride 1 on 32x32 and 12x12, 3.6-3.7 on
DS-CNN's 25x5, 4.2 for stride 2 on 16x16, 4.4 on 3x3 (every output a border) (4 outputs per
block at stride 1, 2 at stride 2: ``BLOCK``). What is left above CMSIS-NN's ~1.5 is gcc's register allocation at
-Os (the accumulators, weights and requantize constants spill) and the exact round-half-even
epilogue, once per 9 MACs. The sums are those of the portable nest, bit for bit: int32
products wrapping modulo 2**32 in any order.

With the output planned over x (``nn.depthwise_in_place_ok``) each channel's outputs go to a
plane of scratch first and are copied over y's channel once computed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from onnxcc.codegen.loops import (I32, Assign, Binary, Buffer, Call, Cast, Comment, Const, Decl,
                                  DType,
                                  Expr, Load, Loop, Stmt, Store, Var, const)
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops._util import has_input
from onnxcc.ops.nn import conv_geometry

from . import LowerCtx
from . import int_blocked as blk
from .nn import axis_var, in_place_plane, lin, loops, read_buffers, shape_text

I8 = DType("int8")
U32 = DType("uint32")
BLOCK = {1: 4, 2: 2}   # stride along W -> outputs of a row per iteration of the interior loop
MAX_BORDER = 8     # border rows (and blocks of border columns) written out at constant positions


def _pair(lo: int, hi: int) -> int:
    """Two int16 lanes as the int32 word ``smlad`` reads (``lo`` in bits 0-15)."""
    return int(np.uint32((lo & 0xFFFF) | ((hi & 0xFFFF) << 16)).view(np.int32))


def pack_rows(wc: np.ndarray) -> np.ndarray:
    """Centered depthwise weights ``wc`` (C, KH, 3) int64, each in [-32768, 32767], as the
    kernel's words (C, KH, 2) int32: per kernel row ``(w0, w2)`` and ``(w1, 0)`` as int16 pairs
    (the first value in the low half)."""
    C, KH, _ = wc.shape
    out = np.zeros((C, KH, 2), np.int32)
    for c in range(C):
        for kh in range(KH):
            w0, w1, w2 = (int(v) for v in wc[c, kh])
            out[c, kh] = (_pair(w0, w2), _pair(w1, 0))
    return out


def shared(ctx: LowerCtx, b: Buffer) -> Buffer:
    """Weight buffer ``b`` (computed at compile time) with its data the array of an equal
    buffer an earlier kernel of the Program made, if any, so that the emitters store it once
    (they key weights on the data array): the kernels of a patched layer repeat it. The
    Program-wide ``ctx.weights`` holds the arrays under negative keys (Values use their
    positive ids)."""
    data = np.ascontiguousarray(b.data)
    key = -1 - (hash(("onnxcc.computed", data.dtype.str, data.shape, data.tobytes())) & (2**62 - 1))
    old = ctx.weights.get(key)
    if old is not None and old.data.dtype == data.dtype and np.array_equal(old.data, data):
        return dataclasses.replace(b, data=old.data)
    ctx.weights.setdefault(key, b)
    return b


def copy_plane(plane: Buffer, Y: Buffer, n: Expr, c: Expr) -> list[Stmt]:
    """The statements copying ``plane`` (OH * OW bytes) over y's channel ``(n, c)`` (y
    (N, C, OH, OW) of 1-byte elements, rows contiguous): 4 bytes per load (``pack4``), stored
    as the word's 4 bytes (which the C renderer writes as one unaligned word store,
    ``onnxcc_store4``: about 1.5 instructions per byte on a Cortex-M4 against 3.3 byte by byte
    and 5 for a byte loop; depthwise int8 3.58 -> 3.41 instructions per MAC on DS-CNN), then
    the last bytes one by one."""
    N, C, OH, OW = Y.shape
    P = OH * OW
    if tuple(Y.strides[2:]) != (OW, 1) or Y.dtype.np.itemsize != 1:
        oc, owc = axis_var("ch", OH), axis_var("cw", OW)
        return loops([(oc, 0, OH), (owc, 0, OW)],
                     [Store(Y, (n, c, oc, owc), plane[(lin((oc, OW), owc),)])])
    Yf = dataclasses.replace(Y, shape=(N, C, P), strides=(Y.strides[0], Y.strides[1], 1))
    out: list[Stmt] = []
    if P // 4:
        i, wv = Var("ci"), Var("pw", I32)
        at = [Binary("mul", i, Const(4))]
        at += [Binary("add", at[0], Const(u)) for u in range(1, 4)]
        body: list[Stmt] = [Decl(wv, Call("pack4", tuple(plane[(a,)] for a in at), I32))]
        for u, a in enumerate(at):
            byte = Binary("shr", Cast(wv, U32), const(8 * u, U32)) if u else Cast(wv, U32)
            body.append(Store(Yf, (n, c, a), Cast(byte, Y.dtype)))
        out.append(Loop(i, 0, P // 4, body))
    out += [Store(Yf, (n, c, Const(p)), plane[(Const(p),)]) for p in range(P // 4 * 4, P)]
    return out


def depthwise_smlad(node: Node, ctx: LowerCtx, X: Buffer, Y: Buffer, xz: Expr,
                    fin: Callable[[Expr, Expr], Expr] | None, note: str,
                    extra_reads: list[Buffer]) -> Any:
    """The kernel of the module docstring for the integer depthwise Conv ``node`` (ConvInteger
    or QLinearConv, one output channel per input channel) on a DSP core, or None when it does
    not apply: another target, size mode, x not int8, not 2-D, a kernel width other than 3, a
    dilation along W, a stride along W other than 1 or 2, runtime weights, zero points or bias,
    or more than MAX_BORDER border rows or column blocks. ``fin(acc, channel)`` is the epilogue
    (None: int32 y), ``note`` its text, ``extra_reads`` the buffers it reads."""
    from .quant import _centered_weights, _folded_start

    q = node.op == "QLinearConv"
    x, w = node.inputs[0], node.inputs[3 if q else 1]
    if ctx.size or blk.lanes_for(ctx.target) != 2 or x.dtype != np.int8 or len(x.shape) != 4:
        return None
    group = int(attr(node, "group"))
    (N, C), M = x.shape[:2], w.shape[0]
    if group != C or M != C or tuple(w.shape[2:])[1:] != (3,) or not isinstance(xz, Const):
        return None
    if q and has_input(node, 8) and node.inputs[8].const is None:
        return None
    Wt = _centered_weights(w, node.inputs[5 if q else 3] if has_input(node, 5 if q else 3)
                           else None)
    if Wt is None:
        return None
    KH = int(w.shape[2])
    IH, IW = x.shape[2:]
    pb, _, st, dl, (OH, OW) = conv_geometry(node, x.shape, w.shape)
    sh, sw = int(st[0]), int(st[1])
    dh = int(dl[0])
    pt, pl = int(pb[0]), int(pb[1])
    if dl[1] != 1 or sw not in (1, 2):
        return None
    xzv = int(xz.value)
    B = BLOCK[sw]

    def row_inside(oh: int) -> list[bool]:
        return [0 <= oh * sh - pt + kh * dh < IH for kh in range(KH)]

    def col_ok(ow: int) -> bool:
        return 0 <= ow * sw - pl and ow * sw - pl + 3 < IW

    rows_in = [oh for oh in range(OH) if all(row_inside(oh))]
    r0, r1 = (rows_in[0], rows_in[-1] + 1) if rows_in else (0, 0)
    # the columns in pairs (2 outputs of a block; at stride 1 they share a word), aligned at
    # column 0 or 1 so that the fewest outputs are left alone, then with the most pairs inside
    # x; the interior pairs (a contiguous run) go to the loop in blocks of B outputs
    def pairing(a0: int) -> tuple[list[int], list[int], list[int]]:
        starts = list(range(a0, OW - 1, 2))
        inner = [a for a in starts if col_ok(a) and (sw == 1 or col_ok(a + 1))]
        alone = [o for o in range(OW) if not any(a <= o <= a + 1 for a in starts)]
        return starts, inner, alone

    # (ties go to column 1: DS-CNN's 25x5 layers 3.61 instructions per MAC against 3.91,
    # gcc's register allocation differing; MobileNetV1-0.25 the same either way)
    starts, inner, alone = min((pairing(a0) for a0 in (1, 0)),
                               key=lambda r: (len(r[2]), -len(r[1])))
    nb = len(inner) // (B // 2)
    c0 = inner[0] if inner else 0
    looped = set(range(c0, c0 + nb * B, 2)) if nb else set()
    col_blocks: list[tuple[int, int]] = sorted(
        [(a, 2) for a in starts if a not in looped] + [(o, 1) for o in alone])
    edge_rows = list(range(0, r0)) + list(range(r1, OH))
    if len(edge_rows) > MAX_BORDER or len(col_blocks) > MAX_BORDER:
        return None

    wc = Wt.data.astype(np.int64).reshape(C, KH, 3)
    W = shared(ctx, Buffer("wdw", I32, (C, KH, 2), space="weight",
                           data=pack_rows(wc).reshape(-1), value=w.name))
    n, c = axis_var("n", N), axis_var("c", C)
    start = _folded_start(node, Wt, xz, c)
    if isinstance(start, Load):
        start = Load(shared(ctx, start.buf), start.index)
    s0 = Var("start", I32)
    plane = in_place_plane(ctx, Y)
    outside = const(_pair(xzv, xzv), I32)    # sxtb16 of a word of four zero points
    made = iter(range(1 << 30))

    hoisted: dict[str, tuple[Var, Expr]] = {}

    def hoist(e: Expr) -> Expr:
        """``e`` with its loads of per-channel epilogue parameters (index ``c`` alone) read
        once per channel into locals."""
        if isinstance(e, Load):
            if e.mask is None and len(e.index) == 1 and e.index[0] == c:
                if e.buf.name not in hoisted:
                    hoisted[e.buf.name] = (Var(f"p_{e.buf.name}", e.dtype), e)
                return hoisted[e.buf.name][0]
            return e
        kids = {f.name: getattr(e, f.name) for f in dataclasses.fields(e)}
        new = {k: (hoist(v) if isinstance(v, Expr) else
                   tuple(hoist(a) if isinstance(a, Expr) else a for a in v)
                   if isinstance(v, tuple) else v) for k, v in kids.items()}
        return dataclasses.replace(e, **new) if new != kids else e

    def word(ih: Expr, col: Expr | int) -> Expr:
        """The 4 bytes of x's row ``ih`` from column ``col`` on (an int: bytes outside x
        are the zero point)."""
        if isinstance(col, int) and not (0 <= col and col + 3 < IW):
            if IW >= 4 and (col < 0) != (col + 3 >= IW):
                # the row's first or last 4 bytes in one load, shifted, the zero point
                # bytes or'ed in where the word leaves x
                k = -col if col < 0 else col + 4 - IW
                at = 0 if col < 0 else IW - 4
                ld = Cast(word(ih, at), U32)
                zp = sum((xzv & 0xFF) << (8 * b) for b in range(k))
                if col < 0:
                    v = Binary("shl", ld, const(8 * k, U32))
                else:
                    v = Binary("shr", ld, const(8 * k, U32))
                    zp <<= 8 * (4 - k)
                return Cast(Binary("or", v, const(zp, U32)), I32) if zp else Cast(v, I32)
            bs = [X[(n, c, ih, Const(col + u))] if 0 <= col + u < IW else const(xzv, I8)
                  for u in range(4)]
            return Call("pack4", tuple(bs), I32)
        base: Expr = Const(col) if isinstance(col, int) else col
        bs = [X[(n, c, ih, base if u == 0 else Binary("add", base, Const(u)))] for u in range(4)]
        return Call("pack4", tuple(bs), I32)

    def block(oh: Expr, inside: list[bool], ows: list[Expr], cols: list[Expr | int]
              ) -> list[Stmt]:
        """Outputs (oh, ows[t]) of one block: accumulate every kernel row, then store.
        ``cols[t]`` is the first input column of output t's word; at stride 1 outputs 2i and
        2i + 1 share the word of output 2i."""
        u = next(made)
        accs = [Var(f"acc{u}_{t}", I32) for t in range(len(ows))]
        body: list[Stmt] = [Decl(a, s0) for a in accs]
        own = list(range(0, len(ows), 2)) if sw == 1 else list(range(len(ows)))
        for kh in range(KH):
            # the row's two weight words (adjacent: one LDRD), read per block so that the
            # accumulators and the widened inputs keep the registers
            wa, wb = Var(f"wa{u}_{kh}", I32), Var(f"wb{u}_{kh}", I32)
            body += [Decl(wa, W[(c, Const(kh), Const(0))]), Decl(wb, W[(c, Const(kh), Const(1))])]
            sx: dict[int, tuple[Expr, Expr]] = {}
            if inside[kh]:
                ih = lin((oh, sh), kh * dh - pt) if isinstance(oh, Var) else \
                    Const(int(oh.value) * sh + kh * dh - pt)
                for t in own:
                    wv = Var(f"x{u}_{kh}_{t}", I32)
                    a, b = Var(f"xa{u}_{kh}_{t}", I32), Var(f"xb{u}_{kh}_{t}", I32)
                    body += [Decl(wv, word(ih, cols[t])),
                             Decl(a, Call("sxtb16", (wv, Const(0, I32)), I32)),
                             Decl(b, Call("sxtb16", (wv, Const(8, I32)), I32))]
                    sx[t] = (a, b)
            else:
                sx = {t: (outside, outside) for t in own}
            for t, acc in enumerate(accs):
                if t not in sx:     # the second output of a stride-1 pair
                    a, b = sx[t - 1]
                    body += [Assign(acc, Call("smlad", (wa, b, acc), I32)),
                             Assign(acc, Call("smladx", (wb, a, acc), I32))]
                else:
                    a, b = sx[t]
                    body += [Assign(acc, Call("smlad", (wa, a, acc), I32)),
                             Assign(acc, Call("smlad", (wb, b, acc), I32))]
        for acc, ow in zip(accs, ows):
            v = hoist(fin(acc, c)) if fin is not None else acc
            body.append(Store(plane, (lin((oh, OW), ow) if isinstance(oh, Var)
                                      else lin(ow, int(oh.value) * OW),), v)
                        if plane is not None else Store(Y, (n, c, oh, ow), v))
        return body

    def row(oh: Expr, inside: list[bool]) -> list[Stmt]:
        out: list[Stmt] = []
        j = Var("j")
        if nb:
            ows = [lin((j, B), c0 + t) for t in range(B)]
            cols: list[Expr | int] = [lin((j, B * sw), (c0 + t) * sw - pl) for t in range(B)]
            out.append(Loop(j, 0, nb, block(oh, inside, ows, cols)))
        for first, size in col_blocks:
            out += block(oh, inside, [Const(first + t) for t in range(size)],
                         [(first + t) * sw - pl for t in range(size)])
        return out

    positions: list[Stmt] = []
    if r1 > r0:
        oh = axis_var("oh", OH)
        positions += loops([(oh, r0, r1)], row(oh, [True] * KH))   # no loop when OH == 1
    for r in edge_rows:
        positions += row(Const(r), row_inside(r))
    if plane is not None:
        positions += copy_plane(plane, Y, n, c)
    wdecl: list[Stmt] = [Decl(s0, start)] + [Decl(v, e) for v, e in hoisted.values()]
    body = loops([(n, 0, N), (c, 0, C)], wdecl + positions)
    text = (f"{node.op}: x {shape_text(X.shape)} int8 is NCHW, w {shape_text(w.shape)} "
            f"(centered, packed at compile time as (w0, w2), (w1, 0) int16 pairs per row), y "
            f"{shape_text(Y.shape)} {Y.dtype}; depthwise, strides {list(st)}, dilations "
            f"{list(dl)}, pads_begin {list(pb)}; 2 outputs per block, a row of taps as "
            "4 input bytes in one word widened by SXTB16, SMLAD; padding reads the x zero "
            "point, folded into the start value" + (f"; {note}" if note else "")
            + ("; in place: each channel through a plane of scratch" if plane is not None
               else ""))
    extra = list(extra_reads) + ([start.buf] if isinstance(start, Load) else [])
    ins = read_buffers(body, [X, W] + extra)
    return ctx.kernel(node.op.lower(), [Y], ins, [Comment(text)] + body, comment=text,
                      locals=[plane] if plane is not None else [], inplace=plane is not None)
