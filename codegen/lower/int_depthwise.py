"""Int8 depthwise Conv with dual 16-bit multiply-accumulates on cores with Arm's DSP extension
(``Target.dsp``): output-stationary blocks of outputs in int32 registers (2 output rows x 2
columns at stride 1, 2 or 4 outputs of one row at stride 2), the taps of one kernel row as two
``smlad`` of sign-extended byte pairs.

x (N, C, IH, IW) int8 NCHW, w (C, 1, KH, 3) constant, y (N, C, OH, OW); stride along W 1 or 2,
dilation along W 1 (any along H), any padding. Per kernel row ``kh`` and output ``ow`` one word
of 4 input bytes ``x0..x3`` (columns ``ow * sw - pad_left`` on) is loaded at once (``pack4``:
one unaligned ``LDR``) and widened by ``sxtb16`` into ``(x0, x2)`` and ``(x1, x3)``; the row's
centered weights are packed at compile time as ``(w0, w2)`` and ``(w1, 0)``, so that

    acc(ow)     += smlad((w0, w2), (x0, x2)) + smlad((w1, 0), (x1, x3))
    acc(ow + 1) += smlad((w0, w2), (x1, x3)) + smladx((w1, 0), (x0, x2))     (stride 1)

with the word shared by the two outputs of a stride-1 block: 1 load, 2 ``sxtb16`` and 4
``smlad`` for 6 MACs (CMSIS-NN's ``arm_depthwise_conv_s8_opt`` pairs channels of NHWC data
instead; onnxcc's activations are NCHW, so the pairs run along a row). At stride 1 along W,
where consecutive output rows share input rows (``VERTICAL``: the stride along H a multiple of
the dilation, below the kernel's height) the interior is computed in passes of 2 output rows,
kernel row by kernel row: the weight words of kernel row ``kh`` are loaded once for both rows,
and the widened word of input row ``oh + kh + 1`` (the lower output row's tap row ``kh``, stride
and dilation 1) stays in registers as the upper row's tap row ``kh + 1``; so a block of 2 x 2
outputs loads and widens 4 words for 36 MACs instead of 6 (``VBLOCK``: 2 x 4 spilled its 8
accumulators; border groups of more than 2 outputs go row by row in rows without a loop:
``VACC``). Only the taps inside x
accumulate: each channel starts at ``bias - x_zp * sum(w')`` over the taps a position
accumulates (one start value per set of taps: interior, each border row and column kind, an
int32 table (C, kinds): up to 9 words a channel for 3x3 with padding 1, against 1 when the
padded taps read the zero point; DS-CNN int8 weights 50,860 -> 59,052 bytes). The
output positions are cut into an interior (rows whose taps all lie inside x; a loop over passes
of rows, in each a loop over blocks of columns whose words lie inside the row,
``plan_columns``; an odd last interior row alone: ``row_passes``) and border rows and column
groups at constant positions. A border output reads the word inside the row that holds its taps
inside it, its first tap at byte ``d`` (-2..3) of the word: the lanes of taps outside the row
have weight 0 (the words ``(w2, 0)`` for ``d = -1`` and ``(w0, 0)`` for ``d = 2`` made from the
stored ``(w0, w2)`` by one LSR or UXTH), so
a border costs what the interior costs, and up to 4 outputs share one word (DS-CNN's 25x5 rows:
2 words per kernel row for the 5 outputs). A row of fewer than 4 bytes is padded with zero
bytes; a kernel row outside x is skipped. Then the requantize epilogue per output.

Cortex-M4 -Os, instructions per MAC counted by QEMU (tests/targets/test_mcu_depthwise_smlad.py;
7.4-7.5 for the scalar nest before): 1.60 (32x12x12), 1.78 (DS-CNN's 64x25x5), 1.60-1.70
(MobileNetV1-0.25's 8x48x48 to 128x6x6) at stride 1, against 1.77, 1.98 and 1.74-1.84 one row
at a time; 2.01-2.23 at stride 2 (one row at a time: passes of 2 rows share only 1 of 3 input
rows there and measured worse; 2.14-2.51 with blocks of 2 where 4 made 1 iteration; rows of up
to MAX_GROUPS_S2 outputs without a loop: 16x16x16 2.13 -> 2.01, MobileNetV1-0.25's patched
stride-2 layers 2.15-2.41 -> 2.07-2.41); ``BOUNDS`` there. benchmarks/mcu.py's depthwise rows:
DS-CNN 2.20 -> 1.89, MobileNetV1-0.25 (patched) 2.08 -> 1.88; with the per-channel multiplier
and start values read through the weight words' pointer (``TABLE``: each channel's row of the
weight table holds them after its words) 1.873 and 1.836; with ``PEEL`` MobileNetV1-0.25 1.806
(int8 code 91,348 -> 98,972 bytes); 1.797 with all of a peeled kernel's start values in its
table, but the patches' tables then differ (weights +4.6 KB), so they do not; the planes without
padding on the left peeled too (``PEEL``). CMSIS-NN's ``arm_depthwise_conv_wrapper_s8`` on the
same layers, built and counted the same way, takes 9.66 (DS-CNN) and 9.99 (MobileNetV1-0.25,
unpatched) instructions per MAC (benchmarks/cmsis_nn.py). What is left above the floor here is
the lane of weight 0 in every ``(w1, 0)`` (2 ``smlad`` per 3 MACs), the requantize epilogue
once per 9 MACs (SMMLA, SSAT and STRB, ``requantize.mla_form``, where that is exact; else the
round-half-even form of about 8 instructions), the stride-2 layers and gcc's register
allocation at -Os (weights reloaded, a start value or pointer spilled). The sums are those of
the portable nest, bit for bit: int32 products wrapping modulo 2**32 in any order.

With the output planned over x (``nn.depthwise_in_place_ok``) the outputs go straight over x
where a simulation of the kernel's order shows that no output lands on a tap still to be read
(``direct_in_place_ok``: stride 2, or no padding; in passes of 2 rows where those pass the
simulation, else one row at a time), else each channel of x is copied to a plane of scratch
first (``copy_in``) and the kernel reads its taps there and stores its outputs straight to y:
y's stores may alias the weights for gcc, so it reloads them per block as in a kernel beside
x, where outputs stored to a local plane let it hoist and spill them (``copy_plane``, the plane
copied over y's channel afterwards, remains for a y plane larger than x's; MobileNetV1-0.25's
128x6x6 layers 2.06 -> 1.79, DS-CNN 2.20 -> 2.17 one row at a time). Where only the first
channels fail the simulation in passes of 2 rows (y's channel c lands c * (IH * IW - OH * OW)
bytes before x's, so later channels trail behind their taps) those channels go as above and
the rest straight over x in passes of 2 rows (``PEEL``: an If in the loop over channels, the
code of both; MobileNetV1-0.25's patched 8x25x25 without padding 1.79 -> 1.69, 8x19x19 with
padding through the plane 1.80 -> 1.68). The kernel has no ``restrict`` pointers in either case
(see the end of ``depthwise_smlad``).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable

import numpy as np

from onnxcc.codegen.loops import (I32, Assign, Binary, Buffer, Call, Cast, Comment, Const, Decl,
                                  DType, Expr, If, Load, Loop, Stmt, Store, Var, const,
                                  contiguous_strides)
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops._util import has_input
from onnxcc.ops.nn import conv_geometry

from . import LowerCtx
from . import int_blocked as blk
from .nn import axis_var, in_place_plane, lin, loops, read_buffers, shape_text

I8 = DType("int8")
U32 = DType("uint32")
# stride along W -> (outputs of a row per iteration of the interior loop, the fewest iterations
# it must make), one output row at a time: the first that makes so many (and leaves at most
# MAX_BORDER groups), else the last. Cortex-M4 -Os instructions per MAC: at stride 1, 12 outputs
# a row, 1.77 with 4 (1 iteration), 1.72 with 2; at stride 2 blocks of 4 even with no
# iteration (groups of 4 then: 16x16x16 with SAME padding 2.51 -> 2.13, 64x12x12 2.45 -> 2.20,
# MobileNetV1-0.25's patched 32x9x9 2.54 -> 2.33, its depthwise row 1.954 -> 1.935; before, 4
# only from 2 iterations on: its stride-2 layers of 9-11 outputs a row 3.55-3.81 -> 3.32-3.64
# against 2 always); rows of up to MAX_GROUPS_S2 outputs have no loop at stride 2
BLOCK = {1: ((4, 2), (2, 0)), 2: ((4, 0), (2, 0))}
# the same in passes of VERTICAL output rows (2 x 2 int32 accumulators; 2 x 4 spilled:
# 8x48x48 1.80 against 1.69 per MAC)
VBLOCK = ((2, 0),)
# the most accumulators of a block of border groups in a pass of VERTICAL rows where the row
# has no loop (all its blocks at constant columns); a larger block is computed row by row (a
# group of 3 outputs: 6 accumulators spilled; DS-CNN's 64x25x5 1.817 -> 1.784, 32x12x12
# 1.623 -> 1.603, MobileNetV1-0.25's depthwise row 1.935 -> 1.923; with a loop in the row too,
# gcc allocated the loop worse: 8x48x48 1.656 -> 1.880)
VACC = 4
MERGE = 4     # outputs of a block of border groups
COPY_WORDS = 2     # words per iteration of the in-place plane's copy
COPY_UNROLLED = 16     # planes of at most so many words are copied without a loop
MAX_BORDER = 8     # border rows (and blocks of border columns) written out at constant positions
# at stride 2 a row of up to so many groups of outputs (one word each) is written out at
# constant columns, in blocks of up to MERGE outputs, instead of a loop over blocks beside
# groups (cortex-m4 -Os instructions per MAC: 16x16x16 SAME 2.126 -> 2.014, a loop of 1 block
# and 1 block of groups before; MobileNetV1-0.25's 64x12x12 with padding 1 2.371 -> 2.143, a
# lone border output beside the loop's block before; its patched 16x23x23 2.317 -> 2.069,
# 11 outputs as 4 + 4 + 3, a loop of 2 blocks and a block of 3 before; its depthwise row
# 1.921 -> 1.892, int8 code 90,620 -> 92,160 bytes)
MAX_GROUPS_S2 = 12
# a kernel not straight over x in its preferred order (passes of VERTICAL rows) for the first
# channels only computes channels from c0 on so, c0 at most N * C // PEEL (0: never), and the
# first c0 channels as before (an If in the loop over channels: the code of both), where
# those go one row at a time, or through a plane of x, with a loop over the row's blocks.
# Cortex-M4 -Os, MobileNetV1-0.25's patched layers, instructions per MAC and bytes of code:
# 8x25x25 without padding 1.792 -> 1.687 (+636 B), 32x9x9 with padding 1.994 -> 1.850
# (+1,016 B), 8x19x25 with padding on top 1.841 -> 1.705 (all start values in the table:
# TABLE "peel"); left out: rows without a loop (32x11x11 1.819 -> 1.782, +656 B; 32x11x10
# +1,636 B for 1.797 -> 1.739), more than 1 of 8 channels peeled (8x19x22, 2 of 8:
# 1.872 -> 1.992). Depthwise row 1.836 -> 1.789, int8 code 91,348 -> 99,832 B
PEEL = 8
# stride along W -> output rows per pass of the interior (a block's words loaded and widened
# once for every output row that reads them)
VERTICAL = {1: 2, 2: 1}
# (patched, how the kernel is in place: "direct" over x, "plane" through a copy of x's
# channel, "" not in place) -> (the per-channel multiplier in the weight table's rows, the
# start values there: 0 none, 1 the interior's, 2 all), a register or two fewer in the blocks
# where gcc -Os held them per channel (and W's pointer the only per-channel one with 2).
# "patched": the weights shared by several nodes (a patched layer's kernels), whose table
# rows stay equal (so stored once: the border start values differ between the patches).
# Cortex-M4 -Os instructions per MAC, MobileNetV1-0.25's depthwise row 1.878 -> 1.836 (its
# patched kernels through a plane, e.g. 8x19x25, measured 1.84 -> 2.07 with the multiplier
# in the table: gcc then held outer-loop values and spilled accumulators; 128x6x6
# 1.719 -> 1.627, 9x9 at stride 2 2.328 -> 2.196), DS-CNN's 1.893 -> 1.873; int8 code
# 92,704 -> 91,348 bytes, weights 483,984 -> 484,048
TABLE = {(True, "direct"): (1, 1), (True, "plane"): (0, 0), (True, ""): (1, 1),
         (False, "direct"): (1, 2), (False, "plane"): (1, 2), (False, ""): (1, 2)}


def max_groups(sw: int) -> int:
    """The most groups of border columns a row at stride ``sw`` along W writes out."""
    return MAX_GROUPS_S2 if sw == 2 else MAX_BORDER


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
    ``onnxcc_store4``), COPY_WORDS words per iteration of a loop or, up to COPY_UNROLLED words,
    without a loop; then the last bytes one by one. Cortex-M4 -Os, depthwise int8 instructions
    per MAC: DS-CNN 3.58 (byte by byte) -> 3.41 (a loop of one word), and with the word
    blocks of this module 3.095 (one word) -> 3.027 (2 words an iteration; 4: 3.062, gcc
    spills more); MobileNetV1-0.25 3.125 -> 3.105 -> 3.085 with its planes of up to 16 words
    unrolled."""
    N, C, OH, OW = Y.shape
    P = OH * OW
    if tuple(Y.strides[2:]) != (OW, 1) or Y.dtype.np.itemsize != 1:
        oc, owc = axis_var("ch", OH), axis_var("cw", OW)
        return loops([(oc, 0, OH), (owc, 0, OW)],
                     [Store(Y, (n, c, oc, owc), plane[(lin((oc, OW), owc),)])])
    Yf = dataclasses.replace(Y, shape=(N, C, P), strides=(Y.strides[0], Y.strides[1], 1))
    return copy_bytes(P, lambda a: plane[(a,)],
                      lambda a, v: Store(Yf, (n, c, a), Cast(v, Y.dtype)), "pw")


def copy_in(X: Buffer, plane: Buffer, n: Expr, c: Expr) -> list[Stmt]:
    """The statements copying x's channel ``(n, c)`` (x (N, C, IH, IW) int8, contiguous) to
    ``plane`` (IH * IW bytes), as :func:`copy_bytes` copies."""
    N, C, IH, IW = X.shape
    Xf = dataclasses.replace(X, shape=(N, C, IH * IW), strides=(X.strides[0], X.strides[1], 1))
    return copy_bytes(IH * IW, lambda a: Xf[(n, c, a)],
                      lambda a, v: Store(plane, (a,), Cast(v, I8)), "xw")


def copy_bytes(P: int, load: Callable[[Expr], Expr], store: Callable[[Expr, Expr], Stmt],
               prefix: str) -> list[Stmt]:
    """The statements copying ``P`` bytes, ``load(index)`` to ``store(index, value)``: 4 bytes
    per load (``pack4``) stored as the word's 4 bytes (which the C renderer writes as one
    unaligned word store, ``onnxcc_store4``), COPY_WORDS words per iteration of a loop or, up
    to COPY_UNROLLED words, without a loop; then the last bytes one by one. The words are
    locals ``<prefix>0``, ``<prefix>1``..."""
    out: list[Stmt] = []

    def words(i: Expr, base: int, k: int) -> list[Stmt]:
        """Copy the ``k`` words at byte ``i * 4 * k + base + 4 * v`` (v < k)."""
        body: list[Stmt] = []
        for v in range(k):
            wv = Var(f"{prefix}{v}", I32)
            at = [lin((i, 4 * k), base + 4 * v + u) if isinstance(i, Var) else
                  Const(base + 4 * v + u) for u in range(4)]
            body.append(Decl(wv, Call("pack4", tuple(load(a) for a in at), I32)))
            for u, a in enumerate(at):
                byte = Binary("shr", Cast(wv, U32), const(8 * u, U32)) if u else Cast(wv, U32)
                body.append(store(a, byte))
        return body

    K = COPY_WORDS
    if P // 4 > COPY_UNROLLED:
        i = Var("ci")
        out.append(Loop(i, 0, P // (4 * K), words(i, 0, K)))
        done = P // (4 * K) * 4 * K
    else:
        done = 0
    out += words(Const(0), done, (P - done) // 4)
    done += (P - done) // 4 * 4
    for p in range(done, P):
        out.append(store(Const(p), load(Const(p))))
    return out


@dataclasses.dataclass(frozen=True)
class Columns:
    """How the outputs of a row are cut into blocks (:func:`plan_columns`): ``nb`` blocks of
    ``block`` outputs from column ``c0`` on in a loop (every word inside x), and ``groups``
    of outputs at constant columns, each ``(b, [(ow, d), ...])``: the outputs ``ow`` read the
    one word of x's bytes ``b .. b + 3`` (None: the row has fewer than 4 bytes, its bytes padded
    with zeros; or the output has no tap inside the row), their first tap at ``b + d``."""
    c0: int
    nb: int
    block: int
    groups: tuple[tuple[int | None, tuple[tuple[int, int], ...]], ...]


def col_taps(ow: int, sw: int, pl: int, IW: int) -> tuple[int, ...]:
    """The taps (0, 1, 2) of output column ``ow`` whose input columns lie inside the row."""
    return tuple(k for k in range(3) if 0 <= ow * sw - pl + k < IW)


def plan_columns(OW: int, IW: int, sw: int, pl: int, vertical: int = 1) -> Columns:
    """The blocks of a row (:func:`plan_blocks`) with the first block size of ``BLOCK[sw]``
    (``VBLOCK`` in passes of ``vertical`` > 1 output rows) whose loop makes at least the
    iterations it asks for and leaves at most ``max_groups(sw)`` groups, else the last; one
    output row at a time no loop where all the row's outputs make at most ``max_groups(sw)``
    groups (MAX_GROUPS_S2)."""
    for B, least in BLOCK[sw] if vertical == 1 else VBLOCK:
        cols = plan_blocks(OW, IW, sw, pl, B)
        if cols.nb >= least and len(cols.groups) <= max_groups(sw):
            break
    if vertical == 1 and cols.nb:
        # one output row at a time a row of up to max_groups(sw) groups has no loop: its
        # outputs in groups, merged into blocks of MERGE (merge_groups) at constant columns
        # (cortex-m4 -Os, MobileNetV1-0.25's stride-1 layers without padding, in place one
        # row at a time: 32x11x11 2.205 -> 1.878, 32x10x11 2.124 -> 1.865 per MAC, a loop of
        # 2 blocks of 4 beside a group before; its depthwise row 1.892 -> 1.878, int8 code
        # 92,160 -> 92,704 bytes; at stride 2 MAX_GROUPS_S2)
        flat = plan_blocks(OW, IW, sw, pl, cols.block, loop=False)
        if len(flat.groups) <= max_groups(sw):
            return flat
    return cols


def plan_blocks(OW: int, IW: int, sw: int, pl: int, B: int, loop: bool = True) -> Columns:
    """The blocks of a row of OW outputs (stride ``sw`` 1 or 2, ``pl`` columns of padding on the
    left, IW input columns): the loop of blocks of ``B`` outputs starting where it
    costs the fewest instructions (a model: 3 per word loaded and widened, 2 per block for its
    weights, 2 per output's tap row, 1 per block of the loop, 1 more per group for its code:
    with blocks of 2 in passes of 2 rows groups cost as much as the loop's blocks, and a row
    of up to 16 outputs was all groups; MobileNetV1-0.25 int8 code 100,697 -> 91,125 bytes,
    its depthwise row 1.923 -> 1.921 instructions per MAC), the outputs outside it in
    groups of up to 4 sharing the word that holds all their taps inside the row (offsets
    d = -2..3; the taps outside the row are never read: their weight lanes are 0). ``loop``
    False: all outputs in groups."""
    per = 2 if sw == 1 else 1     # outputs per word in the loop

    def q(o: int) -> int:
        return o * sw - pl

    def loop_ok(o: int) -> bool:
        return all(0 <= q(o + t) and q(o + t) + 3 < IW for t in range(0, B, per))

    def groups(outs: list[int]) -> list[tuple[int | None, tuple[tuple[int, int], ...]]]:
        out: list[tuple[int | None, tuple[tuple[int, int], ...]]] = []
        i = 0
        while i < len(outs):
            t = col_taps(outs[i], sw, pl, IW)
            if not t:
                out.append((None, ((outs[i], 0),)))
                i += 1
                continue
            b = max(0, min(q(outs[i]) + t[0], IW - 4))
            mem: list[tuple[int, int]] = []
            while i < len(outs) and len(mem) < 4:
                t2 = col_taps(outs[i], sw, pl, IW)
                if not t2 or not (b <= q(outs[i]) + t2[0] and q(outs[i]) + t2[-1] <= b + 3):
                    break
                mem.append((outs[i], q(outs[i]) - b))
                i += 1
            out.append((b if IW >= 4 else None, tuple(mem)))
        return out

    def cost(c0: int, nb: int) -> tuple[int, int, int]:
        gs = groups([o for o in range(OW) if not c0 <= o < c0 + nb * B])
        words = sum(1 for b, _ in gs if b is not None) + sum(2 for b, _ in gs if b is None)
        n = 3 * words + 3 * len(gs) + nb * (3 * B // per + 2 + 1)
        return n, len(gs), c0

    cands = [(0, 0)]
    for c0 in range(0, min(OW, 2 * B + 4) if loop else 0):
        nb = 0
        while c0 + (nb + 1) * B <= OW and loop_ok(c0 + nb * B):
            nb += 1
        if nb:
            cands.append((c0, nb))
    # (the kernel writes out at most MAX_BORDER groups)
    c0, nb = min(cands, key=lambda r: (cost(*r)[1] > MAX_BORDER, cost(*r)))
    return Columns(c0, nb, B, tuple(groups([o for o in range(OW) if not c0 <= o < c0 + nb * B])))


Group = tuple[int | None, tuple[tuple[int, int], ...]]


def merge_groups(cols: Columns) -> list[list[Group]]:
    """``cols.groups`` with consecutive groups on one side of the loop in one block of up to
    MERGE outputs: their weight words loaded once, and at stride 2 the words' odd halves
    shared (MobileNetV1-0.25's narrow stride-2 layers 3.3-3.7 -> 3.2-3.5 instructions per MAC)."""
    def after(g: Group) -> bool:
        return cols.nb > 0 and g[1][0][0] > cols.c0

    merged: list[list[Group]] = []
    for g in cols.groups:
        if merged and after(merged[-1][0]) == after(g) \
                and sum(len(m) for _, m in merged[-1]) + len(g[1]) <= MERGE:
            merged[-1].append(g)
        else:
            merged.append([g])
    return merged


def interior_rows(IH: int, OH: int, KH: int, sh: int, dh: int, pt: int) -> tuple[int, int]:
    """The output rows ``[r0, r1)`` whose kernel rows all lie inside x ((0, 0): none)."""
    rows_in = [oh for oh in range(OH)
               if all(0 <= oh * sh - pt + kh * dh < IH for kh in range(KH))]
    return (rows_in[0], rows_in[-1] + 1) if rows_in else (0, 0)


@dataclasses.dataclass(frozen=True)
class OutRow:
    """Output row ``coef * base + off`` (``base`` the loop variable of the interior's passes, or
    Const(0)) and which of its kernel rows lie inside x (``rows``)."""
    base: Expr
    coef: int
    off: int
    rows: tuple[bool, ...]


def row_passes(OH: int, r0: int, r1: int, vertical: int) -> list[list[int] | int]:
    """The kernel's passes over the output rows, in order: a list of constant rows computed
    together (the border rows one by one, a last interior row left over), or an int ``p``: a
    loop of ``p`` passes of ``vertical`` rows each from row ``r0`` on (1 pass: its rows
    constant)."""
    out: list[list[int] | int] = [[r] for r in range(r0)]
    p = (r1 - r0) // vertical
    if p >= 2 or (p == 1 and vertical == 1 and OH > 1):
        out.append(p)
    elif p == 1:
        out.append(list(range(r0, r0 + vertical)))
    out += [[r] for r in range(r0 + p * vertical, OH)]
    return out


def direct_in_place_ok(NC: int, IH: int, IW: int, OH: int, OW: int, KH: int, sh: int, dh: int,
                       pt: int, sw: int, pl: int, cols: Columns, vertical: int = 1,
                       first: int = 0) -> bool:
    """Whether the kernel may store its outputs straight over x (y planned at x's offset, both
    contiguous, NC images of channels) in the order it computes them: passes of ``vertical``
    output rows top down (``row_passes``), the blocks of a pass left to right (a block of
    border groups with more than VACC accumulators row by row where the row has no loop), a
    block's stores after all its loads. Simulated exactly: no output lands on a byte of x a
    later block of its channel still reads as a tap (zero lanes of a word read any byte: they
    multiply by 0). Holds at stride 2, where y's channel is smaller and trails behind the taps;
    never at stride 1 with padding (output (oh, ow) lands on tap (oh, ow) of the next outputs),
    whose kernel copies x's channel to a plane first; in passes of 2 rows without padding only
    for rows of one block or less (the lower row of a pass lands on the upper row's taps the
    pass's later blocks read). ``first``: only the channels from ``first`` on (those before
    it computed otherwise: ``direct_from``)."""
    P_in, P_out = IH * IW, OH * OW
    D = P_in - P_out
    if D < 0:
        return False
    per_row: list[list[int]] = []
    for gs in merge_groups(cols):
        per_row.append([o for _, mem in gs for o, _ in mem])
    loop_at = sum(1 for gs in merge_groups(cols)
                  if not (cols.nb > 0 and gs[0][1][0][0] > cols.c0))
    loop_blocks = [list(range(cols.c0 + j * cols.block, cols.c0 + (j + 1) * cols.block))
                   for j in range(cols.nb)]
    per_row[loop_at:loop_at] = loop_blocks
    last_read = np.full(P_in, -1, np.int64)
    write_at = np.zeros(P_out, np.int64)
    r0, r1 = interior_rows(IH, OH, KH, sh, dh, pt)
    ohs: list[list[int]] = []
    for p in row_passes(OH, r0, r1, vertical):
        ohs += [list(range(r0 + q * vertical, r0 + (q + 1) * vertical)) for q in range(p)] \
            if isinstance(p, int) else [p]
    i = 0
    for rows in ohs:
        for outs in per_row:
            # a block of groups of a pass too large for VACC goes row by row (``row``)
            split = len(rows) > 1 and len(outs) * len(rows) > VACC and cols.nb == 0
            for part in ([[oh] for oh in rows] if split else [rows]):
                for oh in part:
                    for o in outs:
                        for kh in range(KH):
                            ih = oh * sh - pt + kh * dh
                            if 0 <= ih < IH:
                                for k in col_taps(o, sw, pl, IW):
                                    last_read[ih * IW + o * sw - pl + k] = i
                        write_at[oh * OW + o] = i
                i += 1
    p = np.arange(P_out)
    for ch in range(first, NC if D else first + 1):
        a = p - ch * D
        if not (a >= 0).any():
            break
        m = a >= 0
        if (last_read[a[m]] > write_at[m]).any():
            return False
    return True


def choose_halves(words: list[int], outs: list[tuple[int, tuple[int, ...]]]
                  ) -> list[list[tuple[int, int, int | None, int | None]]]:
    """The widened halves each output of a block multiplies: ``words`` are the first input
    columns of the block's words (relative to any origin), half ``h`` of word ``i`` holds
    columns ``words[i] + h`` and ``words[i] + h + 2``; output ``t`` has its first tap at column
    ``outs[t][0]`` and the taps ``outs[t][1]`` (of 0, 1, 2) inside the row. Per output, the
    halves ``(i, h, lo_tap, hi_tap)`` (None: a lane of weight 0) whose tap lanes cover its taps
    exactly once; over the block the fewest ``smlad``, then the fewest halves widened (each
    one ``sxtb16``: at stride 2 the second output of a block takes its middle tap from the
    first's odd half, 3 for 2 outputs, not 4), then the fewest words per output (shorter
    live ranges)."""
    halves = [(i, h) for i in range(len(words)) for h in (0, 1)]
    options: list[list[tuple[tuple[int, int], ...]]] = []
    for q0, taps in outs:
        want = {q0 + k for k in taps}
        opts = []
        for r in range(0 if not want else 1, 4):
            for combo in itertools.combinations(halves, r):
                got = [cc for i, h in combo for cc in (words[i] + h, words[i] + h + 2)
                       if cc in want]
                if len(got) == len(want) and set(got) == want:
                    opts.append(combo)
        options.append(opts)

    def cost(pick: tuple[tuple[tuple[int, int], ...], ...]) -> tuple[int, int, int]:
        return (sum(map(len, pick)), len({hv for combo in pick for hv in combo}),
                sum(len({i for i, _ in combo}) for combo in pick))

    best = min(itertools.product(*options), key=cost)
    return [[(i, h, *(cc - q0 if cc in {q0 + k for k in taps} else None
                      for cc in (words[i] + h, words[i] + h + 2)))
             for i, h in combo] for combo, (q0, taps) in zip(best, outs)]


def depthwise_smlad(node: Node, ctx: LowerCtx, X: Buffer, Y: Buffer, xz: Expr,
                    fin: Callable[[Expr, Expr], Expr] | None, note: str,
                    extra_reads: list[Buffer]) -> Any:
    """The kernel of the module docstring for the integer depthwise Conv ``node`` (ConvInteger
    or QLinearConv, one output channel per input channel) on a DSP core, or None when it does
    not apply: another target, size mode, x not int8, not 2-D, a kernel width other than 3, a
    dilation along W, a stride along W other than 1 or 2, runtime weights, zero points or bias,
    or more than MAX_BORDER border rows or ``max_groups`` column groups. ``fin(acc,
    channel)`` is the epilogue (None: int32 y), ``note`` its text, ``extra_reads`` the buffers
    it reads."""
    from .quant import _centered_weights

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

    def row_inside(oh: int) -> tuple[bool, ...]:
        return tuple(0 <= oh * sh - pt + kh * dh < IH for kh in range(KH))

    r0, r1 = interior_rows(IH, OH, KH, sh, dh, pt)
    edge_rows = list(range(0, r0)) + list(range(r1, OH))
    # output rows per pass of the interior: VERTICAL where consecutive output rows share input
    # rows (the stride along H a multiple of the dilation, below the kernel's height)
    vertical = VERTICAL[sw] if sh % dh == 0 and sh // dh < KH and r1 - r0 >= 2 else 1
    cols = plan_columns(OW, IW, sw, pl, vertical)
    if len(edge_rows) > MAX_BORDER or len(cols.groups) > max_groups(sw):
        return None

    wc = Wt.data.astype(np.int64).reshape(C, KH, 3)
    # the weight words: int16 pairs of taps (lo, hi) of a kernel row, None a zero lane; the
    # interior's two first, the border columns' as their offsets need them
    kinds: list[tuple[int | None, int | None]] = [(0, 2), (1, None)]
    # the start values: per set of taps accumulated (kernel rows inside x, taps of a row
    # inside it), the bias minus x_zp times the sum of their centered weights
    starts: list[tuple[tuple[bool, ...], tuple[int, ...]]] = []
    n, c = axis_var("n", N), axis_var("c", C)
    plane = in_place_plane(ctx, Y)
    direct = False
    want = (vertical, cols)     # the order the kernel prefers
    if plane is not None and tuple(Y.strides) == contiguous_strides(Y.shape) \
            and tuple(X.strides) == contiguous_strides(X.shape):
        # straight over x where the order allows it, in single output rows if need be
        for v in dict.fromkeys((vertical, 1)):
            cv = cols if v == vertical else plan_columns(OW, IW, sw, pl, v)
            if direct_in_place_ok(N * C, IH, IW, OH, OW, KH, sh, dh, pt, sw, pl, cv, v):
                direct, vertical, cols = True, v, cv
                break
    if direct:
        plane = None
    # else x's channel copied to a plane of scratch first, the outputs stored straight to y
    xplane = None
    if plane is not None and IH * IW >= OH * OW \
            and tuple(X.strides) == contiguous_strides(X.shape):
        xplane = Buffer("plane", I8, (IH * IW,), space="local")
        plane = None
    # the first channels alone land on their own taps (y's channel c at c * (IH * IW - OH * OW)
    # bytes before x's): where the kernel is not straight over x in its preferred order, the
    # channels from ``peel`` on may be (``PEEL``), and the channels before it go as above
    peel = 0
    if PEEL and in_place_plane(ctx, Y) is not None and plane is None \
            and (direct and vertical != want[0] or xplane is not None) and cols.nb \
            and tuple(Y.strides) == contiguous_strides(Y.shape) \
            and tuple(X.strides) == contiguous_strides(X.shape):
        for f in range(1, max(1, N * C // PEEL) + 1):
            if direct_in_place_ok(N * C, IH, IW, OH, OW, KH, sh, dh, pt, sw, pl, want[1],
                                  want[0], first=f):
                peel = f
                break
    made = iter(range(1 << 30))
    # the tables' shapes and data are set once the kinds of words and starts are known: each
    # channel's row of the weight table W holds its KH x 2 packed weight words, then (``TABLE``)
    # the epilogue's int32 multiplier where it reads one per channel (``per_channel_m``) and
    # the interior's start value or all start values; the rest of the start values in S
    patched = ctx.graph is not None and sum(
        1 for nd in ctx.graph.nodes if any(v is w for v in nd.inputs)) > 1
    m_in, starts_in = TABLE[(patched, "direct" if direct or peel else "plane"
                             if xplane is not None else "")]
    m_data = fin.per_channel_m() if m_in and fin is not None \
        and hasattr(fin, "per_channel_m") else None
    at_m = KH * 2
    at_start = at_m + (m_data is not None)
    R = at_start + (starts_in == 1)
    W = Buffer("wdw", I32, (C, R), space="weight", value=w.name)
    S = Buffer("acc0", I32, (C, 1), space="weight", value="")

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

    def kind(lo: int | None, hi: int | None) -> tuple[int, bool] | None:
        """The weight word with lanes (lo, hi) as (index, exchanged): SMLAD reads it as is,
        SMLADX with x's lanes exchanged; None for two zero lanes."""
        if lo is None and hi is None:
            return None
        if (lo, hi) in kinds:
            return kinds.index((lo, hi)), False
        if (hi, lo) in kinds:
            return kinds.index((hi, lo)), True
        if lo is None:      # one tap in the high lane: its word (tap, 0) with x exchanged
            kinds.append((hi, lo))
            return len(kinds) - 1, True
        kinds.append((lo, hi))
        return len(kinds) - 1, False

    def derived(k: tuple[int | None, int | None], a: Expr) -> Expr:
        """The weight word ``k``, ``(w2, 0)`` or ``(w0, 0)``, from the stored ``(w0, w2)``:
        one LSR or UXTH, no more flash than the interior's 2 words a kernel row (and the
        same table for every kernel of a patched layer)."""
        if k == (2, None):
            return Cast(Binary("shr", Cast(a, U32), const(16, U32)), I32)
        assert k == (0, None), k
        return Binary("and", a, const(0xFFFF, I32))

    def start_of(rows: tuple[bool, ...], taps: tuple[int, ...]) -> int:
        key = (rows, taps)
        if key not in starts:
            starts.append(key)
        return starts.index(key)

    local_starts: dict[int, Var] = {}

    interior = ((True,) * KH, (0, 1, 2))

    def start_val(rows: tuple[bool, ...], taps: tuple[int, ...], looped: bool) -> Expr:
        """The start value of the taps ``(rows, taps)`` of channel ``c``: from W's row
        (through the weight words' pointer) where ``starts_in`` puts it there, else
        ``start_expr``."""
        if starts_in == 1 and (rows, taps) == interior:
            return W[(c, Const(at_start))]
        if starts_in == 2:
            return W[(c, Const(at_start + start_of(rows, taps)))]
        return start_expr(start_of(rows, taps), looped)

    def start_expr(k: int, looped: bool) -> Expr:
        """Start value ``k`` of channel ``c``: in the loop over columns a local read once per
        channel, elsewhere a load (measured: fewer spills at -Os than locals for all)."""
        if not looped:
            return S[(c, Const(k))]
        if k not in local_starts:
            local_starts[k] = Var(f"start{k}", I32)
        return local_starts[k]

    def word(ih: Expr, b: Expr | None) -> Expr:
        """x's 4 bytes of row ``ih`` from column ``b`` on (None: the row's IW < 4 bytes, then
        zeros)."""
        def at(col: Expr) -> Expr:
            return X[(n, c, ih, col)] if xplane is None else xplane[(lin((ih, IW), col),)]

        if b is None:
            return Call("pack4", tuple(at(Const(u)) if u < IW else const(0, I8)
                                       for u in range(4)), I32)
        return Call("pack4", tuple(at(lin(b, u)) for u in range(4)), I32)

    def block(ohs: list[OutRow], words: list[tuple[Expr | None, int]],
              outs: list[tuple[Expr, int, tuple[int, ...]]], looped: bool = False,
              inloop: bool = False) -> list[Stmt]:
        """One block: outputs ``(oh, ow)`` for each output row ``oh`` of ``ohs`` (1 or
        ``VERTICAL`` rows) and ``(ow, q, taps)`` in ``outs``, their first tap at column ``q`` and
        ``taps`` those inside the row, from the ``words`` ``(first column, its column in q's
        terms)``. Kernel row by kernel row: its weight words loaded once, then per output row
        the words of its input row (each loaded and widened once, at its first use: the lower
        row's word is the upper row's at the next kernel row) accumulated; then the stores,
        row by row (cortex-m4 -Os, passes of 2 rows: 64x25x5 2.10 input row by input row,
        1.76-1.82 so). ``looped``: the block of the loop over columns in
        a loop over rows (its start values locals read once per channel)."""
        u = next(made)
        tag = [f"{u}_{r}_" if len(ohs) > 1 else f"{u}_" for r in range(len(ohs))]
        accs = [[Var(f"acc{tag[r]}{t}", I32) for t in range(len(outs))] for r in range(len(ohs))]
        body: list[Stmt] = [Decl(a, start_val(R.rows, o[2], looped))
                            for R, ar in zip(ohs, accs) for a, o in zip(ar, outs)]
        # per word: (acc, weight kind, exchanged, half 0 or 1 of the widened word)
        macs: list[list[tuple[int, int, bool, int]]] = [[] for _ in words]
        for t, hs in enumerate(choose_halves([r for _, r in words], [o[1:] for o in outs])):
            for wi, h, lo, hi in hs:
                k = kind(lo, hi)
                if k is not None:
                    macs[wi].append((t, k[0], k[1], h))
        used = sorted({m[1] for ms in macs for m in ms})
        # (input row relative to the first output row's oh * sh, output row, kernel row) in the
        # order they accumulate
        uses = [((R.off - ohs[0].off) * sh + kh * dh, r, kh) for r, R in enumerate(ohs)
                for kh in range(KH) if R.rows[kh]]
        uses.sort(key=lambda u: (u[2], u[1]))
        wv: dict[tuple[int, int], Var] = {}
        xh: dict[tuple[int, int, int], Var] = {}
        stored = [k for k in used if k < 2] + ([0] if any(k >= 2 for k in used)
                                                and 0 not in used else [])
        for rel, r, kh in uses:
            if (kh, 0) not in wv:
                for k in sorted(set(used) | set(stored)):
                    wv[kh, k] = Var(f"w{tag[r]}{kh}_{k}", I32)
                body += [Decl(wv[kh, k], W[(c, Const(kh * 2 + k))]) for k in sorted(stored)]
                body += [Decl(wv[kh, k], derived(kinds[k], wv[kh, 0])) for k in used if k >= 2]
            ih = lin((ohs[0].base, ohs[0].coef * sh), ohs[0].off * sh + rel - pt)
            for wi, (b, _) in enumerate(words):
                if not macs[wi]:
                    continue
                if (rel, wi, 0) not in xh and (rel, wi, 1) not in xh:
                    xv = Var(f"x{tag[0]}{rel}_{wi}", I32)
                    body.append(Decl(xv, word(ih, b)))
                    for h in sorted({m[3] for m in macs[wi]}):
                        xh[rel, wi, h] = Var(f"x{'ab'[h]}{tag[0]}{rel}_{wi}", I32)
                        body.append(Decl(xh[rel, wi, h], Call("sxtb16", (xv, Const(8 * h, I32)),
                                                              I32)))
                for t, k, ex, h in macs[wi]:
                    body.append(Assign(accs[r][t], Call(
                        "smladx" if ex else "smlad", (wv[kh, k], xh[rel, wi, h], accs[r][t]),
                        I32)))
        mv = None
        if m_data is not None:      # the multiplier read once per block, before its stores
            mv = Var(f"m{tag[0]}", I32)
            body.append(Decl(mv, W[(c, Const(at_m))]))
        for R, ar in zip(ohs, accs):
            for acc, (ow, *_) in zip(ar, outs):
                v = (fin(acc, c, mv) if mv is not None else hoist(fin(acc, c))) \
                    if fin is not None else acc
                body.append(Store(plane, (lin((R.base, R.coef * OW), ow, R.off * OW),), v)
                            if plane is not None else
                            Store(Y, (n, c, lin((R.base, R.coef), R.off), ow), v))
        return body

    def row(ohs: list[OutRow]) -> list[Stmt]:
        """The blocks of the output rows ``ohs`` (1 or ``VERTICAL`` rows computed together):
        the border column groups at constant columns, the loop of blocks between them."""
        out: list[Stmt] = []
        j = Var("j")
        per = 2 if sw == 1 else 1
        loop = [] if not cols.nb else [Loop(j, 0, cols.nb, block(
            ohs, [(lin((j, B * sw), (cols.c0 + t) * sw - pl), t * sw)
                  for t in range(0, B, per)],
            [(lin((j, B), cols.c0 + t), t * sw, (0, 1, 2)) for t in range(B)],
            isinstance(ohs[0].base, Var), True))]
        merged = merge_groups(cols)

        def after(g: tuple[int | None, tuple[tuple[int, int], ...]]) -> bool:
            return cols.nb > 0 and g[1][0][0] > cols.c0

        for gs in merged:
            if loop and after(gs[0]):
                out += loop
                loop = []
            outs = [(Const(o), d + (b or 0), col_taps(o, sw, pl, IW))
                    for b, mem in gs for o, d in mem]
            # (a pass's block of more than VACC outputs in a row without a loop: row by row)
            split = len(outs) * len(ohs) > VACC and cols.nb == 0
            for part in ([[R] for R in ohs] if split else [ohs]):
                out += block(part, [(b, b or 0) for b, _ in gs], outs,
                             isinstance(ohs[0].base, Var) and len(ohs) > 1)
        return out + loop

    # the positions of a channel: one plan, or with ``peel`` the plan above for the channels
    # before it and straight over x in the preferred order from it on (block, row and word
    # read cols, B, vertical and xplane when called)
    plans = [(vertical, cols, xplane)] + ([(want[0], want[1], None)] if peel else [])
    bodies: list[list[Stmt]] = []
    fallback_xplane = xplane
    for vertical, cols, xplane in plans:
        B = cols.block
        passes = row_passes(OH, r0, r1, vertical)
        positions: list[Stmt] = [] if xplane is None else copy_in(X, xplane, n, c)
        for p in passes:
            if isinstance(p, int):      # a loop over `p` passes of vertical output rows
                ohv = Var("oh")
                if vertical == 1:
                    positions.append(Loop(ohv, r0, r0 + p,
                                          row([OutRow(ohv, 1, 0, (True,) * KH)])))
                else:
                    positions.append(Loop(ohv, 0, p, row([OutRow(ohv, vertical, r0 + r,
                                                                  (True,) * KH)
                                                          for r in range(vertical)])))
            else:
                positions += row([OutRow(Const(0), 1, r, row_inside(r)) for r in p])
        if plane is not None:
            positions += copy_plane(plane, Y, n, c)
        bodies.append(positions)
    if peel:
        positions = [If(lin((n, C), c) < Const(peel), bodies[0], bodies[1])]
    xplane = fallback_xplane

    # the tables, now that the kinds of words and starts are known
    assert set(kinds) <= {(0, 2), (1, None), (2, None), (0, None)}, kinds
    if starts_in == 2:
        R += len(starts)
    wdata = np.zeros((C, R), np.int64)
    for k, (lo, hi) in enumerate(kinds[:2]):
        for lane, tap in ((0, lo), (1, hi)):
            if tap is not None:
                wdata[:, k:KH * 2:2] += (wc[:, :, tap] & 0xFFFF) << (16 * lane)
    if m_data is not None:
        wdata[:, at_m] = m_data
    bias = np.asarray(node.inputs[8].const, np.int64) if q and has_input(node, 8) \
        else np.zeros(C, np.int64)
    if starts_in == 1:
        wdata[:, at_start] = bias - xzv * wc.sum(axis=(1, 2))
    sdata = np.zeros((C, len(starts)), np.int64)
    for k, (rows, taps) in enumerate(starts):
        m = np.zeros((KH, 3), np.int64)
        m[np.ix_([kh for kh in range(KH) if rows[kh]], list(taps))] = 1
        sdata[:, k] = bias - xzv * (wc * m).sum(axis=(1, 2))
    n_starts = len(starts) + (starts_in == 1)
    if starts_in == 2:
        wdata[:, at_start:] = sdata
        starts.clear()
    for buf, data in ((W, wdata), (S, sdata)) if starts else ((W, wdata),):
        data = ((data + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)
        buf.shape, buf.strides = data.shape, contiguous_strides(data.shape)
        buf.data = data.reshape(-1)
        buf.data = shared(ctx, buf).data

    wdecl: list[Stmt] = [Decl(v, S[(c, Const(k))]) for k, v in local_starts.items()]
    wdecl += [Decl(v, e) for v, e in hoisted.values()]
    body = loops([(n, 0, N), (c, 0, C)], wdecl + positions)
    text = (f"{node.op}: x {shape_text(X.shape)} int8 is NCHW, w {shape_text(w.shape)} "
            f"(centered, packed at compile time as 2 int16 pairs per row, {len(kinds) - 2} "
            "more made from them), y "
            f"{shape_text(Y.shape)} {Y.dtype}; depthwise, strides {list(st)}, dilations "
            f"{list(dl)}, pads_begin {list(pb)}; {B} outputs per block"
            + (f" in passes of {vertical} output rows (each word widened once for both)"
               if vertical > 1 else "") + ", a row of taps as "
            "4 input bytes in one word widened by SXTB16, SMLAD; taps outside x skipped, "
            f"{n_starts} start values per channel" + (f"; {note}" if note else "")
            + ("; in place: each channel of x copied to a plane of scratch first"
               if xplane is not None else
               "; in place: each channel through a plane of scratch" if plane is not None
               else "; in place: stored straight over x, behind the taps still to read"
               if direct else "")
            + (f"; from channel {peel} on straight over x" + (
                f" in passes of {want[0]} output rows" if want[0] > 1 else "")
               if peel else ""))
    ins = read_buffers(body, [X, W, S] + list(extra_reads))
    if xplane is not None and not any(b is X for b in ins):   # copy_in reads x as a flat view
        ins.insert(0, X)
    # an in-place kernel in C (no restrict pointers) even where y does not overlap x: with
    # restrict, gcc -Os hoists the packed weight words out of the loops and spills them
    # (Cortex-M4 -Os instructions per MAC 3.04 -> 2.68 on 16x24x24, 3.36 -> 2.87 on DS-CNN's
    # 64x25x5, 3.75 -> 3.30 at stride 2 on 16x16x16); the plane is no restrict parameter either
    # (3.03 -> 3.48 on DS-CNN in place)
    return ctx.kernel(node.op.lower(), [Y], ins, [Comment(text)] + body, comment=text,
                      locals=[b for b in (plane, xplane) if b is not None], inplace=True)
