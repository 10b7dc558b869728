"""Blocked int8 products for microcontrollers: Conv (group 1, 2 spatial axes), MatMul and Gemm
with constant weights, as CMSIS-NN computes them (``arm_nn_mat_mult_kernel_s8_s16``,
``arm_convolve_1x1_s8_fast``), written in the loop IR.

For each block of ``PB`` output positions (pixels, or rows of a MatMul's a), the reduction
operands of those positions are widened once into kernel scratch ``col`` (K2, PB): x minus its
zero point (0 for a padded tap), so every value lies in [-255, 255], or x itself with the zero
point folded into the start (the callers' ``fill`` and ``start``). Then for each block of
``MB`` output channels (columns of a MatMul's b) ``PB * MB`` int32 accumulators start at the
bias and run over the reduction, reading the weights in the order the loop reads them: packed
at compile time as (channel blocks, K2, MB), centered (``w - w_zero_point``). The reduction
loop holds ``UNROLL`` steps per iteration (32 or 16 words, the weights read as ``ldm`` groups,
where 12 leave a remainder; a reduction of at most ``STRAIGHT_WORDS`` words runs
straight-line). Then each accumulator goes through the epilogue (requantize, zero point,
clamp). A block past the last position or channel repeats the last one, so its stores write
the value already written (no guard); a Conv's last block of positions overlaps the one before
it instead (``overlap``: consecutive positions). A Conv's per-channel start and requantize
multiplier may follow each channel block's weights (``consts``, :func:`with_consts`), a batch-1
product's start before and multiplier after them (``head``, ``tail``).

``lanes`` says how many reduction values share a word:

- 2 (a core with Arm's DSP extension, ``Target.dsp``): ``col`` and the weights hold int16 pairs
  in int32 words (low half first, as a little-endian int16 array would), and a step is the loop
  IR's ``smlad`` intrinsic, ``acc + lo(a)*lo(b) + hi(a)*hi(b)`` (``__smlad`` of ``<arm_acle.h>``).
  Per word of the 3 x 2 block (``block_shape``) 1 LDRD of weights, the 3 scratch words as one
  group (the loop IR's ``ldm`` hint, codegen/smlad.py: one LDMIA through a pointer that walks
  the scratch) and 6 SMLAD: 8 instructions for 12 MACs (cortex-m4 -Os, UNROLL 8: a loop
  iteration of 8 words ~70 instructions, 0.73 per MAC; an LDRD and an LDR of scratch before
  the hint, 77). A batch-1 product (1 x MB, MB 4 or 5) reads 2 words per step: its 2 scratch
  words (LDRD), then per word its MB weights as one group (LDMIA) and MB SMLAD: 11 instructions
  per 16 MACs for MB 4 (a 784 -> 128 QLinearMatMul 1.18 -> 0.81 per MAC; gcc 12 -Os paired few
  of the plain weight loads into LDRD), 13 per 20 for MB 5. A Conv's reduction of at most 4
  words (8 input channels, :func:`stationary_nest`) holds each channel's weight words in
  registers over a block of up to 24 positions: per position one LDMIA of its 4 scratch words,
  4 SMLAD and the epilogue (SMMLA, SSAT, STRB), 8 instructions for 8 MACs. The weights take 2
  bytes per value in flash, twice the int8 model's; when they would not fit the flash so
  (``int8_weights``) they stay int8 and are widened in the loop with the loop IR's ``sxtb16``
  intrinsic (1 byte per value, ~0.3-0.5 more instructions per MAC, see ``INT8_WEIGHTS``);
- 1 (other cores): int16 scratch values and int8 weights (int16 when a centered weight does
  not fit), one multiply-add each.

Both equal the portable nest bit for bit: the sum of the same int32 products, wrapping modulo
2**32 alike. The reduction order of a Conv is (kh, kw, c) with c in pairs (a pair past an odd
channel count has weight 0), or (c, kh, kw) with kw in pairs when that pads fewer lanes (one
input channel), of a MatMul k in pairs.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from onnxcc.errors import UnsupportedOpError

from onnxcc.codegen.loops import (I32, Assign, Binary, Buffer, Call, Cast, Const, Decl, DType,
                                  Expr, Load, Loop, Select, Stmt, Store, Var,
                                  all_of, children, const, minimum, rebuild, stmt_exprs,
                                  substitute, substitute_stmts, walk_exprs)

U32 = DType("uint32")
INT8_NAMES = ("int8", "uint8")   # the activations these kernels take (not "16x8"'s int16)
I16 = DType("int16")
#: Reduction steps (words) per iteration of the inner loop: cortex-m4 -Os, 12 against 8 (with
#: the ldm groups): benchmarks/mcu.py int8 "other conv" resnet8 1.10 -> 1.08 (ds_cnn 1.15 and
#: dense unchanged), a 3x3 16 -> 16 conv on 32 x 32 1.143 -> 1.088 per MAC; 16: 1.08, 1.109.
UNROLL = 12
#: Reductions of at most this many words run straight-line, not as a loop of UNROLL steps:
#: cortex-m4 -Os, benchmarks/mcu.py int8 "other conv" ds_cnn 1.37 -> 1.15 (its pointwise 64 ->
#: 64 layers, 32 words: 1.34 -> 1.11 per MAC; in a loop of 8, gcc kept two values of the outer
#: loops in registers and spilled accumulators in the inner loop), resnet8 1.12 -> 1.10; dense
#: ds_cnn 1.56 -> 1.43, resnet8 2.03 -> 1.69. Up to ~1 KB of code per kernel.
STRAIGHT_WORDS = 32
#: A Conv's reductions of at most this many words (lanes 2: a pointwise layer of 8 input
#: channels) take :func:`stationary_nest` in blocks of at most STATIONARY_PB positions
#: (cortex-m4 -Os, 8 -> 16 with per-channel scales, 4 x 1 blocks before: on 48 x 48 1.65 ->
#: 1.26 instructions per MAC, on 18 x 23 1.66 -> 1.24; benchmarks/mcu.py's
#: mobilenet_v1_025_vww (16, 8, 1, 1) layers 1.66 -> 1.26). Blocks of 8, 12, 24, 32: 1.40,
#: 1.31, 1.22, 1.19 on 48 x 48; a kernel's code grows with the block (16: ~810 bytes, 32:
#: ~1.5 KB; 4 x 1 ~330), and the scratch too (K2 * STATIONARY_PB words). At most 24, not 16,
#: since the per-channel loads read on through the weights' pointer and blocks are sized by
#: :func:`block_shape`'s count: 8 -> 16 on 18 x 18 1.222 -> 1.187, on 23 x 23 1.218 -> 1.171;
#: MobileNetV1-0.25's 9 such layers 1.20-1.23 -> 1.17-1.19, its code +2.8 KB, its arena as
#: before (32: 1.162 and 1.166, +4.9 KB).
STATIONARY_K2 = 4
STATIONARY_PB = 24
BLOCK_MIN_K = 8     # fewer reduction values than this: the portable nest is as fast
#: On DSP cores, whether the weights stay int8 in flash, widened in the loop by ``sxtb16``
#: (``pack_weights_int8``: the bytes of the int8 model, which the fit check counts), or are
#: stored as int16 pairs (``pack_weights``: twice the bytes, 0.3-0.5 fewer instructions per
#: MAC; cortex-m4 -Os, benchmarks/mcu.py int8 "other conv": ds_cnn 1.43 -> 1.15, resnet8 1.40
#: -> 1.08; dense: ds_cnn 1.67 -> 1.22, resnet8 1.87 -> 1.44, mlp 1.27 -> 0.81). None (the
#: default): int16 pairs when the graph's weights counted twice still fit the target's flash
#: (speed mode spends flash it has to spare; size mode never takes the blocked products), else
#: int8. True / False force one form.
INT8_WEIGHTS: bool | None = None


def int8_weights(target: object, graph_weight_bytes: int) -> bool:
    """Whether the blocked products of a graph whose constants take ``graph_weight_bytes``
    keep int8 weights on ``target`` (see :data:`INT8_WEIGHTS`): forced by INT8_WEIGHTS when
    set, else unless twice the bytes fit the target's ``flash_bytes`` (int8 when it has none)."""
    if INT8_WEIGHTS is not None:
        return INT8_WEIGHTS
    flash = getattr(target, "flash_bytes", None)
    return flash is None or 2 * graph_weight_bytes > flash


def lanes_for(target: object) -> int | None:
    """Reduction values per word of the blocked int8 products on ``target``: 2 on a
    microcontroller with the DSP extension, 1 on another microcontroller, None elsewhere (the
    portable nests, which host compilers vectorize)."""
    if getattr(target, "family", None) != "mcu" or getattr(target, "backend", "c") != "c":
        return None
    return 2 if getattr(target, "dsp", False) else 1


def pack(lo: Expr, hi: Expr) -> Expr:
    """Two int32 values in [-32768, 32767] as one int32 word of two int16 lanes, ``lo`` in the
    low half (``__PKHBT(lo, hi, 16)``), computed in uint32 so no C shift overflows."""
    w = Binary("or", Binary("and", Cast(lo, U32), const(0xFFFF, U32)),
               Binary("shl", Cast(hi, U32), const(16, U32)))
    return Cast(w, I32)


def smlad(a: Expr, b: Expr, acc: Expr) -> Expr:
    """``acc + lo(a)*lo(b) + hi(a)*hi(b)`` of two words of int16 pairs (int32 wrap-around): the
    loop IR's ``smlad`` intrinsic."""
    return Call("smlad", (a, b, acc), I32)


def pack_weights(wt: np.ndarray, MB: int, lanes: int) -> np.ndarray:
    """Weights ``wt`` (channels, K2 * lanes) int64, each in [-32768, 32767], in the blocked
    kernel's read order (channel blocks, K2, MB): channels padded to a multiple of MB with
    copies of the last, each ``lanes`` consecutive values one word (int32 of int16 pairs, the
    first low) or one int8 (int16 when a value does not fit)."""
    M, KL = wt.shape
    MP = -(-M // MB)
    idx = np.minimum(np.arange(MP * MB), M - 1)
    w = wt[idx].reshape(MP, MB, KL // lanes, lanes).transpose(0, 2, 1, 3)
    if lanes == 1:   # int8 when every value fits (flash as the int8 model's), else int16
        small = w.min() >= -128 and w.max() <= 127
        return np.ascontiguousarray(w[..., 0]).astype(np.int8 if small else np.int16)
    u = (w[..., 0] & 0xFFFF) | ((w[..., 1] & 0xFFFF) << 16)
    return np.ascontiguousarray(u.astype(np.uint32).view(np.int32))


def pack_weights_int8(wt: np.ndarray, MB: int) -> np.ndarray | None:
    """Weights ``wt`` (channels, K2 * 2) int64 as int8 for the ``sxtb16`` form (lanes 2): per
    channel block and group of 2 reduction words ``2g, 2g+1`` one int32 word per channel
    holding bytes ``(w[2g].lo, w[2g+1].lo, w[2g].hi, w[2g+1].hi)``, so that ``sxtb16(word,
    0)`` is word 2g's pair and ``sxtb16(word, 8)`` word 2g+1's. Shape (channel blocks, groups,
    MB); an odd K2 gets a zero word. None when a value does not fit int8."""
    if wt.size and (wt.min() < -128 or wt.max() > 127):
        return None
    M, KL = wt.shape
    K2 = KL // 2
    G = -(-K2 // 2)
    wt = np.concatenate([wt, np.zeros((M, G * 4 - KL), np.int64)], axis=1)
    MP = -(-M // MB)
    idx = np.minimum(np.arange(MP * MB), M - 1)
    w = wt[idx].reshape(MP, MB, G, 2, 2)               # (.., group, word, lane)
    b = np.stack([w[..., 0, 0], w[..., 1, 0], w[..., 0, 1], w[..., 1, 1]], axis=-1)
    u = b.astype(np.int8).view(np.uint8).astype(np.uint32)
    words = u[..., 0] | (u[..., 1] << 8) | (u[..., 2] << 16) | (u[..., 3] << 24)
    return np.ascontiguousarray(words.transpose(0, 2, 1).view(np.int32))


def blocked_nest(*, lanes: int, P: int, PB: int, M: int, MB: int, K2: int,
                 weights: np.ndarray, value: str, int8_weights: bool = False,
                 overlap: bool = False, share: bool = False, loads_first: bool = True,
                 stationary: bool = False,
                 consts: Buffer | None = None,
                 fill: Callable[[Buffer, list[Expr]], list[Stmt]],
                 start: Callable[[Expr, Expr], Expr],
                 store: Callable[..., list[Stmt]],
                 head: np.ndarray | None = None,
                 tail: np.ndarray | None = None) -> tuple[list[Stmt], Buffer, Buffer]:
    """The loops of one blocked product (see the module docstring): ``P`` positions in blocks
    of ``PB``, ``M`` channels in blocks of ``MB``, ``K2`` words of reduction; ``weights`` from
    :func:`pack_weights`, or with ``int8_weights`` from :func:`pack_weights_int8`. ``fill(col,
    positions)`` writes the scratch words of the block's positions (``col[word, t]`` for
    ``positions[t]``); ``start(m, p)`` is output (m, p)'s int32 start value; ``store(m, p,
    acc)`` the statements that write output (m, p) from its accumulator.

    With lanes 2, one position a block (PB 1) and a straight-line reduction, ``head`` and
    ``tail`` (int32, one value per channel, M) ride in the weight buffer: each channel
    block's words are its MB head values, its weights, then its MB tail values, read in that
    order through one walking pointer (``ldm`` groups). The accumulators start at the head
    (not ``start``) and ``store(m, p, acc, t)`` gets the channel's tail value ``t`` (the
    requantize multiplier of the caller): no pointer of their own to keep across the block;
    the starts are read into register bank 1 (bank 0's 5 registers take the first weights
    right after; gcc moved them out one by one). Cortex-m4 -Os, a QGemm 64 -> 10 with per-channel scales (ResNet-8's classifier):
    603 -> 557 instructions; 8 -> 128 1937 -> 1357 (with a reduction loop: slower, not
    taken).

    With ``overlap`` a last partial block of positions starts at ``P - PB`` (``min(pp * PB, P -
    PB)``: its first positions computed again and the values already written stored again), so
    no position index is clamped (else each position past the end repeats the last, a
    ``min`` per position in the fill and the stores; cortex-m4 -Os, 8 -> 16 on 18 x 23 in 4 x 1
    blocks 2.01 -> 1.74 instructions per MAC). Only where the output does not alias the input
    (a Conv's: never in place). With ``share`` a per-channel load the epilogues of a block's
    positions share (the requantize multiplier) is read once (:func:`shared_loads`), all of
    them before the block's stores unless ``loads_first`` is False. With
    ``stationary`` (``MB`` 1, lanes 2, ``K2`` <= STATIONARY_K2) the nest is
    :func:`stationary_nest`. ``consts`` (lanes 2), a weight buffer (M, k) int32 of per-channel
    values that ``start`` and ``store`` read as ``consts[m, j]`` (``m`` the channel expression
    they were given), is appended to each channel block's weights (:func:`with_consts`) and
    those loads read it there: one pointer for the block's weights and constants (gcc -Os kept
    the other pointers on the stack). ``head``/``tail`` and ``consts`` do not go together.
    Returns ``(body, weight buffer, scratch buffer)``; the scratch is a local (the arena's on
    a microcontroller).
    """
    if stationary:
        assert lanes == 2 and MB == 1 and K2 <= STATIONARY_K2, (lanes, MB, K2)
        return stationary_nest(P=P, PB=PB, M=M, K2=K2, weights=weights, value=value,
                               int8_weights=int8_weights, overlap=overlap, consts=consts,
                               fill=fill, start=start, store=store)
    wdt = I32 if lanes == 2 else I16
    MP, PP = -(-M // MB), -(-P // PB)
    bytes4 = lanes == 2 and int8_weights   # pack_weights_int8's groups of 2 words
    K2e = K2 + (K2 % 2 if bytes4 else 0)
    if bytes4:
        n_steps, per = K2e // 2, UNROLL // 2
    elif lanes == 2 and PB == 1:
        n_steps, per = K2 // 2, UNROLL // 2   # K2 odd: the last word apart
    else:
        n_steps, per = K2, UNROLL
    straight = K2 <= STRAIGHT_WORDS or n_steps <= per
    # trips of 32 words (else 16) when 12 leave a remainder, each word's MB weights one
    # ``ldm`` group (register bank 1: the weight pointer walks, no add per trip). Cortex-m4
    # -Os, 3 x 2 blocks: 128 -> 128 on 6 x 6 (64 words) 0.787 -> 0.762 instructions per MAC
    # (trips of 16: 0.776; of 16 without the groups 0.780, the groups in trips of 12 0.786),
    # 256 -> 256 on 3 x 3 (128 words) 0.748 -> 0.722 (trips of 16: 0.738); MobileNetV1-0.25's
    # 7 such layers, trips of 32 against 16: int8 code +3.4 KB. The groups in trips of 12 over
    # 72 words (resnet8's 3x3 16 -> 16) 0.859 -> 0.873, straight-line (16 -> 32 on 9 x 9)
    # 1.041 -> 1.105: not there
    walk = not straight and n_steps % per != 0 and n_steps % 16 == 0 and not bytes4 and \
        PB > 1 and lanes == 2 and 2 <= MB <= 4
    per = (32 if n_steps % 32 == 0 else 16) if walk else per
    if not (lanes == 2 and PB == 1 and straight):
        # (with a reduction loop, cortex-m4 -Os: QLinearMatMul 256 -> 10 2257 -> 2615)
        head = tail = None
    off = 0 if head is None else 1    # the weights' first row in a channel block
    if head is not None or tail is not None:
        idx = np.minimum(np.arange(MP * MB), M - 1)   # the last channel repeated, as the weights
        parts = [np.asarray(head, np.int32)[idx].reshape(MP, 1, MB)] if head is not None else []
        parts.append(weights)
        if tail is not None:
            parts.append(np.asarray(tail, np.int32)[idx].reshape(MP, 1, MB))
        weights = np.ascontiguousarray(np.concatenate(parts, axis=1))
    if consts is not None and (head is not None or tail is not None):
        raise ValueError("blocked_nest: consts with head or tail")
    weights, rows = with_consts(weights, consts, M, MB)
    W = Buffer("wp", DType.of(weights.dtype), weights.shape, space="weight",
               data=weights.reshape(-1), value=value)
    col = Buffer("col", wdt, (K2e, PB), space="local")
    pp, mp, q, kk = Var("pp"), Var("mp"), Var("q"), Var("kk")

    def clamp(base: Expr, t: int, block: int, total: int) -> Expr:
        """Position/channel ``base + t`` of a block, the last one past the end."""
        e: Expr = base if t == 0 else Binary("add", base, Const(t))
        return minimum(e, Const(total - 1)) if t and total % block else e

    mbase = Binary("mul", mp, Const(MB)) if MB > 1 else mp
    ps = block_positions(pp, P, PB, overlap)
    ms = [clamp(mbase, s, MB, M) for s in range(MB)]
    acc = [[Var(f"acc{s}{t}", I32) for t in range(PB)] for s in range(MB)]

    def ld(e: Load) -> Expr:
        return Call("ldm", (e,), I32) if lanes == 2 else e

    def wrow(k: Expr) -> Expr:
        """Row of reduction word (or group) ``k`` in a channel block of the weight buffer."""
        return Binary("add", k, Const(off)) if off else k

    def step(k: Expr, u: int) -> list[Stmt]:
        """One reduction word: its MB weights (adjacent words, which the C compiler loads in
        pairs: LDRD) and PB scratch words (one ``ldm`` group) read into locals first, then
        PB * MB steps."""
        wv = [Var(f"w{s}_{u}", W.dtype) for s in range(MB)]
        xv = [Var(f"x{t}_{u}", wdt) for t in range(PB)]
        out: list[Stmt] = [Decl(v, Call("ldm", (W[(mp, wrow(k), Const(s))], Const(1, I32)), I32)
                                if walk else W[(mp, wrow(k), Const(s))]) for s, v in enumerate(wv)]
        out += [Decl(v, ld(col[(k, Const(t))])) for t, v in enumerate(xv)]
        for s in range(MB):
            for t in range(PB):
                a = acc[s][t]
                out.append(Assign(a, smlad(wv[s], xv[t], a) if lanes == 2 else
                                  a + Cast(wv[s], I32) * Cast(xv[t], I32)))
        return out

    def step_row(g: Expr, u: int) -> list[Stmt]:
        """Reduction words 2g and 2g + 1 of one position (PB 1): its 2 scratch words (adjacent:
        LDRD), then per word its MB weights (``ldm`` groups), then its MB multiply-adds."""
        k = Binary("mul", g, Const(2))
        k1 = Binary("add", k, Const(1))
        xv = [Var(f"x{j}_{u}", wdt) for j in range(2)]
        out: list[Stmt] = [Decl(xv[0], col[(k, Const(0))]), Decl(xv[1], col[(k1, Const(0))])]
        for j, kj in enumerate((k, k1)):
            wv = [Var(f"w{s}_{j}_{u}", W.dtype) for s in range(MB)]
            out += [Decl(wv[s], ld(W[(mp, wrow(kj), Const(s))])) for s in range(MB)]
            out += [Assign(acc[s][0], smlad(wv[s], xv[j], acc[s][0])) for s in range(MB)]
        return out

    def step4(g: Expr, u: int) -> list[Stmt]:
        """One group of 2 reduction words with int8 weights: per channel one word, widened
        by sxtb16 into the pairs of words 2g and 2g+1. With one position (PB 1) the MB weight
        words are ``ldm`` groups and the 2 scratch words are read together (LDRD); with more,
        the positions' scratch words of each word are one ``ldm`` group."""
        wv = [Var(f"w{s}_{u}", I32) for s in range(MB)]
        wa = [Var(f"wa{s}_{u}", I32) for s in range(MB)]
        wb = [Var(f"wb{s}_{u}", I32) for s in range(MB)]
        k0 = Binary("mul", g, Const(2))
        k1 = Binary("add", k0, Const(1))
        if PB == 1:
            xv = [Var(f"x{j}_{u}", wdt) for j in range(2)]
            out: list[Stmt] = [Decl(xv[0], col[(k0, Const(0))]), Decl(xv[1], col[(k1, Const(0))])]
            out += [Decl(v, ld(W[(mp, wrow(g), Const(s))])) for s, v in enumerate(wv)]
            for s in range(MB):
                out += [Decl(wa[s], Call("sxtb16", (wv[s], Const(0, I32)), I32)),
                        Decl(wb[s], Call("sxtb16", (wv[s], Const(8, I32)), I32)),
                        Assign(acc[s][0], smlad(wb[s], xv[1], smlad(wa[s], xv[0], acc[s][0])))]
            return out
        out = []
        for s in range(MB):
            out += [Decl(wv[s], W[(mp, wrow(g), Const(s))]),
                    Decl(wa[s], Call("sxtb16", (wv[s], Const(0, I32)), I32)),
                    Decl(wb[s], Call("sxtb16", (wv[s], Const(8, I32)), I32))]
        for kj, wj, x in ((k0, wa, "xa"), (k1, wb, "xb")):   # word 2g, then 2g + 1
            xs = [Var(f"{x}{t}_{u}", wdt) for t in range(PB)]
            out += [Decl(v, ld(col[(kj, Const(t))])) for t, v in enumerate(xs)]
            out += [Assign(acc[s][t], smlad(wj[s], xs[t], acc[s][t]))
                    for s in range(MB) for t in range(PB)]
        return out

    fn = step4 if bytes4 else step_row if lanes == 2 and PB == 1 else step
    Q = n_steps // per
    red: list[Stmt] = []
    if straight:
        # a short reduction straight-line: as a loop of a few trips gcc -Os kept the
        # accumulators on the stack (cortex-m4, 8 -> 16 channels: 6.1 instructions per MAC),
        # and with no loop counter the inner loop's 14 registers fit beside the values gcc
        # keeps across it (STRAIGHT_WORDS)
        red = [s for u in range(n_steps) for s in fn(Const(u), u)]
    elif Q:
        red.append(Loop(q, 0, Q, [s for u in range(per) for s in
                                  fn(Binary("add", Binary("mul", q, Const(per)), Const(u))
                                     if u else Binary("mul", q, Const(per)), u)]))
    if n_steps % per and not straight:
        red.append(Loop(kk, Q * per, n_steps, fn(kk, 0)))
    if fn is step_row and K2 % 2:
        red += step(Const(K2 - 1), n_steps + per)   # (names apart from step_row's)
    merge = _merged(consts, W, rows, mp, ms)
    if head is not None:   # in bank 1's registers: the weights' group reuses bank 0's
        decls: list[Stmt] = [Decl(acc[s][0], Call("ldm", (W[(mp, Const(0), Const(s))],
                                                          Const(1, I32)), I32))
                             for s in range(MB)]
    else:
        decls = [Decl(acc[s][t], substitute(start(ms[s], ps[t]), {}, merge))
                 for s in range(MB) for t in range(PB)]
    if tail is not None:
        tv = [Var(f"t{s}", I32) for s in range(MB)]
        rt = Const(weights.shape[1] - 1)
        stores = [Decl(v, ld(W[(mp, rt, Const(s))])) for s, v in enumerate(tv)]
        stores += [st for s in range(MB) for st in store(ms[s], ps[0], acc[s][0], tv[s])]
    else:
        stores = [st for s in range(MB) for t in range(PB) for st in store(ms[s], ps[t], acc[s][t])]
        stores = substitute_stmts(stores, {}, merge) if consts is not None else stores
    stores = shared_loads(stores) if share else stores
    if share and loads_first:   # the block's multipliers (adjacent words: LDRD), then stores
        # (cortex-m4 -Os, 3 x 2 blocks: 16 -> 32 on 9 x 9 1.041 -> 1.030 instructions per MAC,
        # 128 -> 128 on 6 x 6 0.762 -> 0.758; MobileNetV1-0.25's and resnet8's 3 -> 8 and 3 ->
        # 16 stems 1.166 -> 1.185 and 1.017 -> 1.035: not for them, ``loads_first`` False)
        stores = [st for st in stores if isinstance(st, Decl)] + \
            [st for st in stores if not isinstance(st, Decl)]
    pad = [Store(col, (Const(K2), Const(t)), const(0, wdt)) for t in range(PB)] \
        if K2e > K2 else []
    body = [Loop(pp, 0, PP, fill(col, ps) + pad + [Loop(mp, 0, MP, decls + red + stores)])]
    return body, W, col


def with_consts(weights: np.ndarray, consts: Buffer | None, M: int,
                MB: int) -> tuple[np.ndarray, int]:
    """Packed int32 ``weights`` (channel blocks, rows, MB) with the ``k`` per-channel values of
    ``consts`` (a weight buffer (M, k) int32: a start and a requantize multiplier) appended as
    k more rows of each channel block (channels padded as :func:`pack_weights` pads them), so
    one pointer walks both; and the row count before them. ``weights`` as given when ``consts``
    is None."""
    rows = weights.shape[1]
    if consts is None:
        return weights, rows
    assert weights.dtype == np.int32 and consts.data is not None, "int32 words (lanes 2) only"
    MP = weights.shape[0]
    c = np.asarray(consts.data).reshape(consts.shape).astype(np.int32)
    c = c[np.minimum(np.arange(MP * MB), M - 1)].reshape(MP, MB, -1).transpose(0, 2, 1)
    return np.ascontiguousarray(np.concatenate([weights, c], axis=1)), rows


def _merged(consts: Buffer | None, W: Buffer, rows: int, mp: Var,
            ms: list[Expr]) -> Callable[[Buffer, tuple], tuple[Buffer, tuple]] | None:
    """The ``substitute`` access hook that moves a load ``consts[ms[s], j]`` to its place in
    ``W`` (:func:`with_consts`: ``W[mp, rows + j, s]``); None without ``consts``."""
    if consts is None:
        return None
    where = {substitute(m, {}): s for s, m in enumerate(ms)}

    def access(buf: Buffer, idx: tuple) -> tuple[Buffer, tuple]:
        if buf is not consts:
            return buf, idx
        j = idx[1]
        assert isinstance(j, Const) and idx[0] in where, idx
        return W, (mp, Const(rows + int(j.value)), Const(where[idx[0]]))
    return access


def block_positions(pp: Var, P: int, PB: int, overlap: bool) -> list[Expr]:
    """The ``PB`` positions (of ``P``) of block ``pp``: ``pp * PB + t``; for a last partial
    block, with ``overlap`` (and P at least PB) consecutive from ``P - PB`` (``min(pp * PB, P -
    PB) + t``: it overlaps the block before), else each past the end clamped to the last."""
    base: Expr = Binary("mul", pp, Const(PB)) if PB > 1 else pp
    if not P % PB:
        return [base if t == 0 else Binary("add", base, Const(t)) for t in range(PB)]
    if overlap and P > PB:
        base = minimum(base, Const(P - PB))
        return [base if t == 0 else Binary("add", base, Const(t)) for t in range(PB)]
    return [base if t == 0 else minimum(Binary("add", base, Const(t)), Const(P - 1))
            for t in range(PB)]


def stationary(lanes: int, P: int, K2: int) -> bool:
    """Whether a blocked Conv of ``P`` positions and ``K2`` words takes :func:`stationary_nest`
    (:func:`block_shape` gives its blocks)."""
    return lanes == 2 and P > 1 and K2 <= STATIONARY_K2


def stationary_nest(*, P: int, PB: int, M: int, K2: int, weights: np.ndarray, value: str,
                    int8_weights: bool, overlap: bool, consts: Buffer | None = None,
                    fill: Callable[[Buffer, list[Expr]], list[Stmt]],
                    start: Callable[[Expr, Expr], Expr],
                    store: Callable[[Expr, Expr, Expr], list[Stmt]]) -> tuple[list[Stmt], Buffer,
                                                                            Buffer]:
    """The blocked product of a short reduction (``K2`` <= STATIONARY_K2 words, lanes 2) with
    the channel's weights held in registers: per block of ``PB`` positions the scratch is
    position-major (``col[word, t]`` at ``t * K2 + word``), filled by ``fill`` as in
    :func:`blocked_nest`; then per channel its K2 weight words are read once (one ``ldm``
    group; with ``int8_weights`` the words of :func:`pack_weights_int8` widened by ``sxtb16``)
    with its start value, and per position its K2 scratch words (one ``ldm`` group), K2 SMLAD
    from the start, the epilogue (``store``). ``weights`` from :func:`pack_weights` or
    :func:`pack_weights_int8` with MB 1. With ``overlap`` a last partial block starts at ``P -
    PB`` (its positions computed twice, the same values stored), else it repeats the last
    position. ``consts`` as :func:`blocked_nest`'s. Returns ``(body, weight buffer, scratch
    buffer)`` as :func:`blocked_nest`."""
    weights, rows = with_consts(weights, consts, M, 1)
    W = Buffer("wp", DType.of(weights.dtype), weights.shape, space="weight",
               data=weights.reshape(-1), value=value)
    col = Buffer("col", I32, (K2, PB), strides=(1, K2), space="local")
    pp, mp = Var("pp"), Var("mp")
    PP = -(-P // PB)
    ps = block_positions(pp, P, PB, overlap)

    def ld(e: Load) -> Expr:
        return Call("ldm", (e,), I32)

    body: list[Stmt] = []
    if int8_weights:
        w8 = [Var(f"w8_{g}", I32) for g in range(-(-K2 // 2))]
        body += [Decl(v, ld(W[(mp, Const(g), Const(0))])) for g, v in enumerate(w8)]
        wv = [Var(f"w{k}", I32) for k in range(K2)]
        body += [Decl(v, Call("sxtb16", (w8[k // 2], Const(8 * (k % 2), I32)), I32))
                 for k, v in enumerate(wv)]
    else:
        wv = [Var(f"w{k}", W.dtype) for k in range(K2)]
        body += [Decl(v, ld(W[(mp, Const(k), Const(0))])) for k, v in enumerate(wv)]
    merge = _merged(consts, W, rows, mp, [mp])
    starts = [substitute(start(mp, p), {}, merge) for p in ps]
    nxt = rows   # the channel's words read so far: a next word of W reads on
    if all(e == starts[0] for e in starts):   # one start per channel (a Conv's)
        a0 = Var("acc0v", I32)
        body.append(Decl(a0, _walked(starts[0], W, mp, nxt)))
        nxt += isinstance(body[-1].init, Call)
        starts = [a0] * PB
    acc = [Var(f"acc_{t}", I32) for t in range(PB)]
    per = [substitute_stmts(store(mp, p, a), {}, merge) for p, a in zip(ps, acc)]
    stores = shared_loads([st for sts in per for st in sts])
    # the channel's next word (its requantize multiplier after the start, ``consts``) read
    # with them: the loads of a channel tile its words, so one pointer walks W over the loop
    # (cortex-m4 -Os, 8 -> 16 on 18 x 18 in blocks of 16: no pointer copy and add per
    # channel, 1.248 -> 1.241 instructions per MAC)
    for i, st in enumerate(stores):
        if isinstance(st, Decl) and _walked(st.init, W, mp, nxt) is not st.init:
            body.append(Decl(st.var, _walked(st.init, W, mp, nxt)))
            del stores[i]
            break
    for t in range(PB):
        xv = [Var(f"x{t}_{k}", I32) for k in range(K2)]
        body += [Decl(v, ld(col[(Const(k), Const(t))])) for k, v in enumerate(xv)]
        body.append(Decl(acc[t], smlad(wv[0], xv[0], starts[t])))
        body += [Assign(acc[t], smlad(wv[k], xv[k], acc[t])) for k in range(1, K2)]
        n = len(per[t])
        while n:   # this position's stores, with the locals shared_loads declared before them
            st = stores.pop(0)
            body.append(st)
            n -= isinstance(st, Store)
    body = [Loop(pp, 0, PP, fill(col, ps) + [Loop(mp, 0, M, body)])]
    return body, W, col


def _walked(e: Expr, W: Buffer, mp: Var, row: int) -> Expr:
    """``e`` as an ``ldm`` hint when it is the load ``W[mp, row, 0]`` (the word after those a
    stationary channel read before it), else ``e`` itself."""
    if isinstance(e, Load) and e.buf is W and e.mask is None and \
            e.index == (mp, Const(row), Const(0)):
        return Call("ldm", (e,), I32)
    return e


def _replace_loads(e: Expr, env: dict[Load, Var]) -> Expr:
    """``e`` with each load of ``env`` replaced by its local."""
    if isinstance(e, Load) and e in env:
        return env[e]
    kids = children(e)
    if not kids:
        return e
    new = [_replace_loads(c, env) for c in kids]
    if all(a is b for a, b in zip(new, kids)):
        return e
    return rebuild(e, new)


def shared_loads(stmts: list[Stmt]) -> list[Stmt]:
    """``stmts`` (stores) with each unmasked load of a weight buffer that two or more of them
    read (a per-channel requantize multiplier shared by a block's positions) declared once, as a
    local before the first that reads it: gcc -Os reloaded it before each store (an int8 store
    may alias it; cortex-m4 -Os: 8 -> 16 on 18 x 23 in 4 x 1 blocks 1.74 -> 1.66 instructions
    per MAC, 16 -> 32 on 9 x 11 1.25 -> 1.15, 128 -> 128 on 6 x 6 0.835 -> 0.796)."""
    seen: dict[Load, int] = {}
    for st in stmts:
        for ld in {e for x in stmt_exprs(st) for e in walk_exprs(x)
                   if isinstance(e, Load) and e.mask is None and e.buf.space == "weight"}:
            seen[ld] = seen.get(ld, 0) + 1
    env: dict[Load, Var] = {}
    out: list[Stmt] = []
    for st in stmts:
        assert isinstance(st, Store)
        for e in (e for x in stmt_exprs(st) for e in walk_exprs(x)):
            if isinstance(e, Load) and seen.get(e, 0) > 1 and e not in env:
                env[e] = Var(f"{e.buf.name}_v{len(env)}", e.dtype)
                out.append(Decl(env[e], e))
        out.append(Store(st.buf, tuple(_replace_loads(i, env) for i in st.index),
                         _replace_loads(st.value, env)))
    return out


def widened(x: Expr, zp: Expr, mask: Expr | None = None) -> Expr:
    """``int32(x) - zp``, or 0 where ``mask`` (when given) does not hold. Raises
    UnsupportedOpError for a 16-bit ``x``: the scratch holds int16 values of ``x - zp`` in
    [-255, 255], which a 16-bit activation minus its zero point overflows (the callers pick
    the portable nest for int16 activations; this refuses instead of computing wrong)."""
    if x.dtype.name not in INT8_NAMES:
        name = (x.buf.value or x.buf.name) if isinstance(x, Load) else str(x)
        raise UnsupportedOpError([(name, "blocked int8 product", f"{x.dtype.name} activations: "
                                   "the SMLAD/blocked kernels take int8/uint8 only")])
    v = Cast(x, I32)
    if not (isinstance(zp, Const) and zp.value == 0):
        v = v - zp
    return v if mask is None else Select(mask, v, const(0, I32))


def word(lanes: int, vals: Sequence[Expr]) -> Expr:
    """One scratch element: the pair packed (lanes 2) or the value as int16 (lanes 1)."""
    return pack(vals[0], vals[1]) if lanes == 2 else Cast(vals[0], I16)


def masked_load(buf: Buffer, idx: tuple[Expr, ...], conds: list[Expr]) -> tuple[Expr, Expr | None]:
    """``buf[idx]`` read only where ``conds`` hold: (load, mask or None)."""
    mask = all_of(*conds)
    if mask is None:
        return Load(buf, idx), None
    return Load(buf, idx, mask, const(0, buf.dtype)), mask


def block_shape(P: int, M: int, K2: int | None = None) -> tuple[int, int]:
    """(PB, MB): 3 positions by 2 channels (2 when there are 2), or 1 position by 4 channels
    (5 or 3 when fewer repeat; 5 first when ``K2``, given, runs straight-line) when there is
    one position (a batch-1 MatMul), so no accumulator repeats another. 3 x 2
    over 2 x 2 on cortex-m4 -Os with int16 weights (benchmarks/mcu.py int8 "other conv"):
    ds_cnn 1.34 -> 1.26, resnet8 1.23 -> 1.21, mobilenet_v1_025_vww 1.60 -> 1.54 instructions
    per MAC (the per-channel requantize constants and the accumulator set-up shared by 3
    pixels; the inner loop was 9 instructions per 12 MACs either way); 4 x 2 and 2 x 4 spill
    (1.57, 1.47 on ds_cnn), 2 x 3 1.41. Measured before the ``ldm`` groups (now 8 instructions
    per 12 MACs for 3 x 2); with them, on a 3x3 16 -> 16 conv of 32 x 32 (cortex-m4 -Os,
    without the groups of 3 scratch words, loading them in pairs), 4 x 2 1.31 and 2 x 4 1.25
    against 3 x 2 1.19. Batch 1: 1 x 6 and 1 x 8 spill (784 -> 128 dense: 1.30, 1.60 per MAC
    against 0.81 for 1 x 4; 1 x 5 with the 5-word LDMIA 0.78 against 0.76, in its reduction
    loop). A reduction of at most STATIONARY_K2 words (``K2``, a pointwise
    layer of 8 input channels) takes blocks of 8 to STATIONARY_PB positions (all of them
    when fewer) by 1 channel, the size of the fewest instructions by a count (~8 per position
    and channel, ~20 of fill per position, ~7 per block and channel: few positions computed
    twice where the last block overlaps the one before, then few blocks; 35 positions: 2 x
    18; 324: 18 x 18; of at most 16: 324 in 25 x 13, not 21 x 16 as the fewest blocks,
    cortex-m4 -Os, 8 -> 16 on 18 x 18 1.241 -> 1.222 instructions per MAC, on 23 x 23 38 x 14
    1.230 -> 1.218), for
    :func:`stationary_nest`: the 3
    x 2 block's 6 accumulators, 3 pinned scratch registers and the per-channel requantize
    constants spill there (cortex-m4 -Os, 8 -> 16 on 18 x 18 with per-channel scales: 3 x 2
    2.00, 2 x 2 1.90, 4 x 1 1.75, 5 x 1 2.19; on 16 -> 32 4 x 1 1.251 against 1.250, on 32 ->
    32 1.035 against 0.995)."""
    if P > 1 and K2 is not None and K2 <= STATIONARY_K2:
        # per position ~8 instructions a channel (an LDMIA, 4 SMLAD, the epilogue) and ~20 of
        # fill, per block ~7 a channel: the fewest instructions (the last block overlaps the
        # one before, computing some positions twice), then the fewest blocks
        def cost(pb: int) -> int:
            return -(-P // pb) * (pb * (8 * M + 20) + 7 * M)
        return min(range(min(P, 8, STATIONARY_PB), min(P, STATIONARY_PB) + 1),
                   key=lambda pb: (cost(pb), -pb)), 1
    if P == 1:   # 4 channels, or 5 or 3 when they repeat fewer (resnet8's dense 64 -> 10)
        # with a straight-line reduction (``K2`` given, at most STRAIGHT_WORDS) 5 when it
        # repeats no more than 4 (cortex-m4 -Os: QLinearMatMul 64 -> 20 1044 -> 1009, QGemm
        # 64 -> 40 2013 -> 1937; in a reduction loop 1 x 5 spills: 784 -> 128 0.76 -> 0.78)
        order = (5, 4, 3) if K2 is not None and K2 <= STRAIGHT_WORDS else (4, 5, 3)
        return 1, min(order, key=lambda mb: -(-M // mb) * mb - M) if M >= 4 else max(M, 1)
    return min(P, 3), (2 if M >= 2 else 1)


def reduction_words(n: int, lanes: int) -> int:
    """Words that hold ``n`` reduction values, ``lanes`` per word (the last one padded)."""
    return -(-n // lanes)

