"""C lowering of convolutions and pools: Conv, onnxcc.FusedConv, ConvTranspose, MaxPool,
AveragePool, GlobalAveragePool and GlobalMaxPool, on NC(D)HW tensors with 1 to 3 spatial axes.

Geometry comes from the op declarations (``conv_geometry``, ``conv_transpose_geometry``,
``pool_geometry``, ``pool_counts`` in ``onnxcc.ops.nn``); this module only turns it into loops.
Index expressions are affine forms (:class:`Aff`) rendered to C here, so templates never do index
arithmetic, and every operand is read through its own element strides (a splat weight has strides
of 0 and stays one element).

The direct convolution accumulates into the output: y = bias, then for each input channel and
kernel tap ``y[o] += w * x[o*stride + tap*dilation - pad]`` over the range of output positions
whose input position is inside x. Those ranges are per-tap tables computed here, so the innermost
loop runs over contiguous output width without bounds checks; it sums a block of up to 4 input
channels per output element (one load and store of y per 4 taps) and is unrolled by
:data:`UNROLL` with the loads first, so that gcc -O2 vectorizes it without alias checks. With at
least :data:`OUT_BLOCK_MIN` output channels per group (a multiple of :data:`OUT_BLOCK`), a conv
computes :data:`OUT_BLOCK` output channels per pass, so each x load feeds OUT_BLOCK x 4
multiply-adds (register blocking; all channels of a block share the tap ranges). Output
rows are tiled (:func:`_tile_rows`) so the tile of y stays in L1 and the input rows it reads stay
in L2 while all output channels sweep over them. A 1x1 stride-1 unpadded conv merges its spatial
axes into one: the loop nest becomes a small GEMM over contiguous pixels. ConvTranspose is the
same loop nest with the roles of x and y swapped (positions walk x, y is written at
``i*stride + tap*dil - pad``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from onnxcc.ir import Node
from onnxcc.ops import REQUIRED, get_op
from onnxcc.ops.nn import conv_geometry, conv_transpose_geometry, pool_counts, pool_geometry

from . import KernelDesc, LowerCtx, c_literal, contiguous_strides, lower, merge_dims
from .reduce import SUM_BLOCK, pairwise_sum, reduce_levels, uses_pairwise
from .tensor import at
from .tensor import level as tlevel

UNROLL = (8, 4)               # innermost conv loop unroll: rows of >= 112 positions, shorter rows
TILE_X_BYTES = 512 * 1024     # input rows one output tile reads, kept in L2 over all out channels
TILE_Y_BYTES = 16 * 1024      # one output tile, kept in L1 over the reduction
MIN_TILE_PIXELS = 64          # a merged (1-D) tile never goes below this many pixels
OUT_BLOCK = 4                 # output channels per pass of the conv loop nest (register blocking)
OUT_BLOCK_MIN = 8             # ... when there are at least this many per group
LABELS = {1: ("w",), 2: ("h", "w"), 3: ("d", "h", "w")}


# ---- affine index expressions ----------------------------------------------------------------
@dataclass(frozen=True)
class Aff:
    """An affine integer expression: sum of ``coef * var`` plus a constant, rendered to C.

    Variables listed in ``zero`` (loops of extent 1 that the kernel does not emit) render as 0.
    """

    terms: tuple[tuple[str, int], ...] = ()
    const: int = 0

    @staticmethod
    def of(*parts: Aff | tuple[str, int] | str | int) -> Aff:
        """Sum of parts: an Aff, a ``(var, coef)`` pair, a bare var (coef 1) or an int."""
        acc: dict[str, int] = {}
        const = 0
        for p in parts:
            if isinstance(p, Aff):
                for v, c in p.terms:
                    acc[v] = acc.get(v, 0) + c
                const += p.const
            elif isinstance(p, tuple):
                acc[p[0]] = acc.get(p[0], 0) + int(p[1])
            elif isinstance(p, str):
                acc[p] = acc.get(p, 0) + 1
            else:
                const += int(p)
        return Aff(tuple((v, c) for v, c in acc.items() if c), const)

    def __add__(self, other: Aff | int) -> Aff:
        return Aff.of(self, other)

    def __mul__(self, k: int) -> Aff:
        k = int(k)
        return Aff(tuple((v, c * k) for v, c in self.terms if c * k), self.const * k)

    def subst(self, var: str, by: Aff) -> Aff:
        """This expression with ``var`` replaced by ``by``."""
        rest = Aff(tuple(t for t in self.terms if t[0] != var), self.const)
        coef = sum(c for v, c in self.terms if v == var)
        return rest + by * coef

    def c(self, zero: frozenset[str] = frozenset()) -> str:
        """The C text, e.g. ``oh*2 + kh - 1``; ``0`` when empty."""
        out: list[str] = []
        for v, k in self.terms:
            if v in zero or k == 0:
                continue
            mag = v if abs(k) == 1 else f"{v}*{abs(k)}"
            out.append(("- " if k < 0 else "+ ") + mag if out else ("-" if k < 0 else "") + mag)
        if self.const or not out:
            out.append((f"- {-self.const}" if self.const < 0 else f"+ {self.const}") if out
                       else str(self.const))
        return " ".join(out)


def dot(coords: Sequence[Aff], strides: Sequence[int]) -> Aff:
    """The element offset of per-dim coordinates ``coords`` under element ``strides``."""
    return Aff.of(*(a * s for a, s in zip(coords, strides)))


def for_loop(var: str, lo: str | int, hi: str | int, step: int = 1) -> str:
    """``for (int32_t v = lo; v < hi; ++v)`` (the header of one loop, without the brace)."""
    inc = f"++{var}" if step == 1 else f"{var} += {step}"
    hi = f"({hi})" if "?" in str(hi) else hi
    return f"for (int32_t {var} = {lo}; {var} < {hi}; {inc})"


Loops = list[tuple[str, tuple[str, ...]]]   # (loop header or "" for a bare block, body lines)


class Nest:
    """The loops of one kernel. A loop of extent 1 is not emitted and its variable renders as 0;
    extents are declared up front (``Nest(n=1, c=64, ...)``) so that index expressions render the
    same wherever they are built."""

    def __init__(self, **extents: int) -> None:
        self.zero = frozenset(v for v, n in extents.items() if n == 1)

    def loop(self, var: str, n: int, lines: Sequence[str] = ()) -> Loops:
        """[(header, lines)] for ``var`` in [0, n). A loop declared extent 1 is dropped, or is
        a bare block (header ``""``) when it has lines to hold."""
        if var in self.zero:
            return [("", tuple(lines))] if lines else []
        return [(for_loop(var, 0, n), tuple(lines))]

    def c(self, a: Aff) -> str:
        return a.c(self.zero)


def libm(ct: str, name: str) -> str:
    """libm function ``name`` for ``ct`` (expf for float, exp for double)."""
    return name + "f" if ct == "float" else name


def float_only(node: Node) -> str | None:
    x = node.inputs[0]
    if x.dtype.name not in ("float32", "float64"):
        return f"{node.op} on {x.dtype.name} is not supported by the C target (float32/64 only)"
    return None


def _spatial_rank(node: Node) -> str | None:
    r = len(node.inputs[0].shape)
    if not 3 <= r <= 5:
        return f"{node.op} with {r - 2} spatial axes is not supported by the C target (1 to 3)"
    return None


# ---- activation epilogue ---------------------------------------------------------------------
def activation_expr(node: Node, arg: str, ct: str) -> str | None:
    """The C expression of FusedConv's ``activation`` applied to ``arg``, or None for none.

    The activation's single C definition is elementwise.py's ``scalar_statement``; its attributes
    are the op's defaults overridden by ``activation_attrs`` (Clip's bounds arrive there as
    ``min``/``max`` and PRelu's scalar slope as ``slope``).
    """
    from .elementwise import scalar_statement

    act = node.attrs.get("activation") or ""
    if not act:
        return None
    given = dict(node.attrs.get("activation_attrs") or ())
    attrs = {k: v for k, v in get_op(act).attrs.items() if v is not REQUIRED}
    attrs.update(given)
    args = [arg]
    if act == "PRelu":
        args.append(c_literal(float(np.asarray(given["slope"]).reshape(-1)[0]), ct))
    # A stand-in node: Clip at opset 10 reads its bounds from attributes.
    sub = Node(act, [node.inputs[0]], [node.outputs[0]], attrs, node.name,
               10 if act == "Clip" else node.version)
    return scalar_statement(act, attrs, args, [ct] * len(args), ct, sub)


def _supports_conv(node: Node) -> str | None:
    why = float_only(node) or _spatial_rank(node)
    if why:
        return why
    if node.inputs[1].dtype != node.inputs[0].dtype:
        return f"{node.op} with weights of another dtype than x is not supported by the C target"
    act = node.attrs.get("activation") or ""
    if act:
        from .elementwise import SCALAR

        if act not in SCALAR and act != "Clip":
            return f"activation {act} has no C scalar form"
        if act == "PRelu" and "slope" not in dict(node.attrs.get("activation_attrs") or ()):
            return "PRelu activation needs a scalar slope"
    return None


# ---- Conv / ConvTranspose --------------------------------------------------------------------
def _tap_ranges(taps: int, dil: int, stride: int, pad: int, n_pos: int, n_dst: int
                ) -> list[tuple[int, int]]:
    """Per tap t: the positions p in [0, n_pos) whose ``p*stride + t*dil - pad`` is in
    [0, n_dst), as a half-open range (lo == hi when none)."""
    out = []
    for t in range(taps):
        lo = max(0, -((t * dil - pad) // stride))
        hi = min(n_pos, (n_dst - 1 + pad - t * dil) // stride + 1)
        out.append((lo, max(lo, hi)))
    return out


def _tile_rows(cg: int, stride0: int, row_x: int, row_y: int, item: int, merged: bool) -> int:
    """Output rows per tile: its input rows fit TILE_X_BYTES and the tile fits TILE_Y_BYTES."""
    r = min(TILE_X_BYTES // max(1, cg * stride0 * row_x * item),
            TILE_Y_BYTES // max(1, row_y * item))
    return max(MIN_TILE_PIXELS if merged else 1, r)


def _conv(node: Node, ctx: LowerCtx, transpose: bool) -> KernelDesc:
    """The direct (transposed) convolution loop nest; see the module docstring."""
    x, w = node.inputs[0], node.inputs[1]
    ins = ctx.ins()
    X, Wt = ins[0], ins[1]
    B = ins[2] if len(ins) > 2 else None
    Y = ctx.outs()[0]
    assert X is not None and Wt is not None
    ct = Y.ctype
    group = int(node.attrs.get("group") or 1)
    N, C = x.shape[:2]
    M = Y.shape[1]
    CG, MG = C // group, M // group
    K = list(w.shape[2:])
    if transpose:
        pb_, _, s_, d_, _, out = conv_transpose_geometry(node, x.shape, w.shape)
    else:
        pb_, _, s_, d_, out = conv_geometry(node, x.shape, w.shape)
    pb, s, d = list(pb_), list(s_), list(d_)
    I, O = list(x.shape[2:]), list(out)
    xs, ys, ws = list(X.strides[2:]), list(Y.strides[2:]), list(Wt.strides[2:])
    nd = len(K)
    merged = False
    # A pointwise conv walks pixels as one axis (a small GEMM per output channel).
    if (not transpose and nd > 1 and all(k == 1 for k in K) and all(v == 1 for v in s)
            and not any(pb) and I == O):
        shp, (mx, my) = merge_dims(I, [xs, ys])
        if len(shp) == 1:
            P = math.prod(I)
            I, O, K, s, d, pb, xs, ys, ws = [P], [P], [1], [1], [1], [0], mx, my, [0]
            nd, merged = 1, True
    labels = LABELS[nd]
    pos_n, dst_n = (I, O) if transpose else (O, I)     # positions walk y (conv) or x (convT)
    pv = [("i" if transpose else "o") + lb for lb in labels]
    kv = ["k" + lb for lb in labels]
    yv = ["o" + lb for lb in labels]                    # output positions of the init/epilogue

    CB = next(b for b in (4, 3, 2, 1) if CG % b == 0)   # input channels per inner pass
    # Output channels per pass: each x load feeds MB*CB multiply-adds (conv only; MB | MG).
    MB = OUT_BLOCK if not transpose and MG >= OUT_BLOCK_MIN and MG % OUT_BLOCK == 0 else 1
    rows = pos_n[0]
    R = rows if transpose else _tile_rows(CG, s[0], math.prod(I[1:]), math.prod(O[1:]) * MB,
                                          _itemsize(ct), nd == 1)
    tiled = R < rows
    extents = {"n": N, "g": group, "mm": MG, "c": CG // CB, **dict(zip(kv, K)),
               **{v: o for v, o in zip(yv, O) if not (tiled and v == yv[0])}}
    nest = Nest(**extents)

    # -- per-tap ranges of positions that land inside the other tensor (no checks inside) -----
    tables: list[str] = []
    ranges: list[tuple[str, str]] = []
    full: list[tuple[bool, bool]] = []
    empty_inner = False
    for a in range(nd):
        rg = _tap_ranges(K[a], d[a], s[a], pb[a], pos_n[a], dst_n[a])
        pair = []
        for side, vals in (("lo", [r[0] for r in rg]), ("hi", [r[1] for r in rg])):
            if len(set(vals)) == 1:
                pair.append(str(vals[0]))
            else:
                tables.append(f"static const int32_t {labels[a]}_{side}[{K[a]}] = "
                              f"{{ {', '.join(map(str, vals))} }};")
                pair.append(f"{labels[a]}_{side}[{kv[a]}]")
        ranges.append((pair[0], pair[1]))
        full.append((pair[0] == "0", pair[1] == str(pos_n[a])))
        if a == nd - 1:
            empty_inner = any(lo >= hi for lo, hi in rg)

    outer: list[tuple[str, tuple[str, ...]]] = nest.loop("n", N) + nest.loop("g", group)
    if tiled:   # tiles over the first position axis (conv only: convT positions walk x)
        end = f"t + {R}" if rows % R == 0 else f"t + {R} < {rows} ? t + {R} : {rows}"
        outer.append((for_loop("t", 0, rows, R), (f"const int32_t t_end = {end};",)))
        lo0, hi0 = ranges[0]
        ranges[0] = ("t" if full[0][0] else f"{lo0} > t ? {lo0} : t",
                     "t_end" if full[0][1] else f"{hi0} < t_end ? {hi0} : t_end")
        empty_inner = empty_inner or nd == 1
    m_aff, c_aff = Aff.of(("g", MG), "mm"), Aff.of(("g", CG), "c")
    bias = c_literal(0, ct) if B is None else f"{B.ptr}[{nest.c(m_aff * B.strides[0])}]"
    outer += nest.loop("mm", MG) if MB == 1 else [(for_loop("mm", 0, MG, MB), ())]

    # -- y = bias over the tile before the reduction, the activation over it after ----------
    region: list[tuple[str, tuple[str, ...]]] = []
    for a in range(nd):
        region += ([(for_loop(yv[0], "t", "t_end"), ())] if a == 0 and tiled
                   else nest.loop(yv[a], O[a]))
    y_aff = dot([Aff.of("n"), m_aff] + [Aff.of(v) for v in yv], list(Y.strides[:2]) + ys)
    y_at = nest.c(y_aff)
    act = activation_expr(node, "v", ct)
    epilogue: tuple[str, ...] = () if act is None else (f"const {ct} v = {Y.ptr}[{y_at}];",
                                                        f"{Y.ptr}[{y_at}] = {act};")
    init = f"{Y.ptr}[{y_at}] = {bias};"
    ysm = Y.strides[1]   # y rows of a block's output channels are ysm apart
    if MB > 1:   # the MB output channels of the block, one statement each
        bias_i = [c_literal(0, ct) if B is None else
                  f"{B.ptr}[{nest.c((m_aff + i) * B.strides[0])}]" for i in range(MB)]
        init = " ".join(f"{Y.ptr}[{nest.c(y_aff + i * ysm)}] = {bias_i[i]};" for i in range(MB))
        if act is not None:
            epilogue = tuple(f"{{ const {ct} v = {Y.ptr}[{nest.c(y_aff + i * ysm)}]; "
                             f"{Y.ptr}[{nest.c(y_aff + i * ysm)}] = {act}; }}"
                             for i in range(MB))

    # -- reduction over input channels and taps; positions in the tap's valid range ----------
    reduce: Loops = [] if "c" in nest.zero else [(for_loop("c", 0, CG, CB), ())]
    for a in range(nd):
        reduce += nest.loop(kv[a], K[a])
    w_idx = [c_aff, Aff.of("mm")] if transpose else [m_aff, Aff.of("c")]
    w_at = dot(w_idx + [Aff.of(k) for k in kv], list(Wt.strides[:2]) + ws)
    tap_lines: list[str] = []
    bounds: list[tuple[str, str]] = []
    for a, (lo, hi) in enumerate(ranges):
        if lo.isdigit() and hi.isdigit():
            bounds.append((lo, hi))
        else:
            tap_lines.append(f"const int32_t {pv[a]}0 = {lo}, {pv[a]}1 = {hi};")
            bounds.append((f"{pv[a]}0", f"{pv[a]}1"))
    ws_c = Wt.strides[0] if transpose else Wt.strides[1]
    wn = [[f"w{q}" if MB == 1 else f"w{i}_{q}" for q in range(CB)] for i in range(MB)]
    for i in range(MB):
        tap_lines.append(f"const {ct} " + ", ".join(
            f"{wn[i][q]} = {Wt.ptr}[{nest.c(w_at + i * Wt.strides[0] + q * ws_c)}]"
            for q in range(CB)) + ";")
    pos: list[tuple[str, tuple[str, ...]]] = []
    if empty_inner:
        pos.append((f"if ({bounds[-1][0]} < {bounds[-1][1]})", ()))
    for a in range(nd - 1):
        pos.append((for_loop(pv[a], *bounds[a]), ()))

    # Row pointers start at the first valid inner position: never outside x or y.
    pos_c = [Aff.of(p) for p in pv]
    tap_c = [Aff.of((p, s[a]), (kv[a], d[a]), -pb[a]) for a, p in enumerate(pv)]
    x_c, y_c = (pos_c, tap_c) if transpose else (tap_c, pos_c)
    x_at = dot([Aff.of("n"), c_aff] + x_c, list(X.strides[:2]) + xs)
    y_pos = dot([Aff.of("n"), m_aff] + y_c, list(Y.strides[:2]) + ys)
    inner, (lo_i, hi_i) = pv[-1], bounds[-1]
    start = Aff.of(int(lo_i)) if lo_i.isdigit() else Aff.of(lo_i)
    xj, yj = dict(x_at.terms).get(inner, 0), dict(y_pos.terms).get(inner, 0)
    if lo_i.isdigit() and hi_i.isdigit():
        cnt = str(int(hi_i) - int(lo_i))
    else:
        cnt = hi_i if lo_i == "0" else f"{hi_i} - {lo_i}"
    row_lines = (f"{ct} *yr = {Y.ptr} + {_paren(nest.c(y_pos.subst(inner, start)))};",
                 f"const {ct} *xr = {X.ptr} + {_paren(nest.c(x_at.subst(inner, start)))};",
                 f"const int32_t cnt = {cnt};")
    xc = X.strides[1]
    inner_len = min(R, rows) if nd == 1 else pos_n[-1]
    unroll = UNROLL[0] if inner_len >= 112 and MB == 1 else UNROLL[1]

    def taps_sum(u: int | str, i: int = 0) -> str:   # sum over the CB channels of w * x at j + u
        at = Aff.of(("j", xj)) if u == "" else Aff.of(("j", xj), int(u) * xj)
        return " + ".join(f"{wn[i][q]} * xr[{(at + q * xc).c()}]" for q in range(CB))

    if MB == 1:
        loads = tuple(f"const {ct} a{u} = {taps_sum(u)};" for u in range(unroll))
        updates = tuple(f"yr[{Aff.of(('j', yj), u * yj).c()}] += a{u};" for u in range(unroll))
        tail = f"yr[{Aff.of(('j', yj)).c()}] += {taps_sum('')};"
    else:        # each x load feeds the MB channels of the block
        loads = tuple(f"const {ct} a{i}_{u} = {taps_sum(u, i)};"
                      for i in range(MB) for u in range(unroll))
        updates = tuple(f"yr[{Aff.of(('j', yj), u * yj + i * ysm).c()}] += a{i}_{u};"
                        for i in range(MB) for u in range(unroll))
        tail = "{ " + " ".join(f"yr[{Aff.of(('j', yj), i * ysm).c()}] += {taps_sum('', i)};"
                               for i in range(MB)) + " }"

    kind = "ConvTranspose" if transpose else "Conv"
    wl = "(C,M/group,k...)" if transpose else "(M,C/group,k...)"
    comment = (f"{kind}: x {shape_text(X.shape)} is (N,C,spatial...), w {shape_text(Wt.shape)} "
               f"is {wl}, y {shape_text(Y.shape)}; group {group}, strides {_lst(s_)}, dilations "
               f"{_lst(d_)}, pads_begin {_lst(pb_)}"
               + (f"; tiles of {R} output rows" if tiled else "")
               + (f"; blocks of {MB} output channels" if MB > 1 else "")
               + ("; 1x1: pixels as one axis" if merged else ""))
    return ctx.desc("nn", "conv", comment=comment, tables=tuple(tables), outer=tuple(outer),
                    region=tuple(region), init=init,
                    reduce=tuple(reduce), tap_lines=tuple(tap_lines), pos=tuple(pos),
                    row_lines=row_lines, unroll=unroll, loads=loads, updates=updates,
                    tail=tail, epilogue=epilogue)


def _itemsize(ct: str) -> int:
    return 8 if ct == "double" else 4


def _paren(s: str) -> str:
    return s if s.replace("_", "").isalnum() else f"({s})"


def shape_text(shape: Sequence[int]) -> str:
    return "(" + ",".join(str(v) for v in shape) + ")"


def _lst(v: Sequence[int]) -> str:
    return "[" + ",".join(str(int(x)) for x in v) + "]"


@lower("Conv", "onnxcc.FusedConv", supports=_supports_conv)
def _lower_conv(node: Node, ctx: LowerCtx) -> KernelDesc:
    return _conv(node, ctx, transpose=False)


@lower("ConvTranspose", supports=_supports_conv)
def _lower_conv_transpose(node: Node, ctx: LowerCtx) -> KernelDesc:
    return _conv(node, ctx, transpose=True)


# ---- pools -----------------------------------------------------------------------------------
def _supports_pool(node: Node) -> str | None:
    why = _spatial_rank(node) if node.op in ("MaxPool", "AveragePool") else None
    if why:
        return why
    if len(node.inputs[0].shape) < 3:
        return f"{node.op} needs an (N, C, spatial...) input"
    if node.op in ("MaxPool", "GlobalMaxPool"):
        if node.inputs[0].dtype.name not in ("float32", "float64", "int8", "uint8"):
            return f"{node.op} on {node.inputs[0].dtype.name} is not supported by the C target"
        return None
    return float_only(node)


def _max_step(ct: str) -> str:
    """``acc = max(acc, v)`` for element type ``ct``; for floats a NaN in the window makes the
    result NaN (as numpy, onnx's reference, ReduceMax and the loop IR back ends do)."""
    if ct in ("float", "double"):
        return "acc = (v > acc || v != v) ? v : acc;"
    return "acc = v > acc ? v : acc;"


def _lowest(ct: str) -> str:
    """The identity of max for element type ``ct``."""
    return {"float": "-INFINITY", "double": "-(double)INFINITY", "int8_t": "INT8_MIN",
            "uint8_t": "0"}[ct]


def _window_table(name: str, var: str, vals: Sequence[int]) -> tuple[str | None, str]:
    """(table declaration or None, C expression) of a per-output-position value."""
    if len(set(vals)) == 1:
        return None, str(vals[0])
    return (f"static const int32_t {name}[{len(vals)}] = {{ {', '.join(map(str, vals))} }};",
            f"{name}[{var}]")


@lower("MaxPool", "AveragePool", supports=_supports_pool)
def _lower_pool(node: Node, ctx: LowerCtx) -> KernelDesc:
    """Each output is the max/mean of its window's taps; each window's valid taps come from
    per-position tables (padding is never read), the AveragePool divisor from pool_counts.
    An AveragePool window of more than ``SUM_BLOCK`` taps sums each step of its outermost tap
    loop into a partial first (blocked summation)."""
    x = node.inputs[0]
    X, Y = ctx.ins()[0], ctx.outs()[0]
    assert X is not None
    ct = Y.ctype
    pb, pe, s, d, kernel, out = pool_geometry(node, x.shape)
    nd = len(kernel)
    labels = LABELS[nd]
    ov, kv = ["o" + lb for lb in labels], ["k" + lb for lb in labels]
    I = x.shape[2:]
    nest = Nest(n=x.shape[0], c=x.shape[1], **dict(zip(ov, out)), **dict(zip(kv, kernel)))
    tables: list[str] = []
    taps: list[tuple[str, tuple[str, ...]]] = []
    divisor: list[str] = []
    avg = node.op == "AveragePool"
    for a in range(nd):
        t0, t1 = [], []
        for o in range(out[a]):
            # taps t in [0, kernel) with 0 <= o*s - pb + t*d < I, in closed form (a kernel of
            # 2**31 taps must not be enumerated)
            first = max(0, -((o * s[a] - pb[a]) // d[a]))
            last = min(kernel[a] - 1, (I[a] - 1 - o * s[a] + pb[a]) // d[a])
            t0.append(first if first <= last else 0)
            t1.append(last + 1 if first <= last else 0)
        lo = _window_table(f"{labels[a]}_t0", ov[a], t0)
        hi = _window_table(f"{labels[a]}_t1", ov[a], t1)
        tables += [t for t in (lo[0], hi[0]) if t]
        if lo[1] == "0" and hi[1] == str(kernel[a]):
            taps += nest.loop(kv[a], kernel[a])
        else:
            taps.append((for_loop(kv[a], lo[1], hi[1]), ()))
            nest.zero = nest.zero - {kv[a]}
        if avg:
            cnt = pool_counts((I[a],), (pb[a],), (pe[a],), (s[a],), (d[a],), (kernel[a],),
                              (out[a],), bool(node.attrs.get("count_include_pad") or 0))
            tab, expr = _window_table(f"{labels[a]}_n", ov[a], [int(v) for v in cnt])
            tables += [tab] if tab else []
            divisor.append(expr)
    outer = nest.loop("n", x.shape[0]) + nest.loop("c", x.shape[1])
    for a in range(nd):
        outer += nest.loop(ov[a], out[a])
    x_at = dot([Aff.of("n"), Aff.of("c")]
               + [Aff.of((ov[a], s[a]), (kv[a], d[a]), -pb[a]) for a in range(nd)], X.strides)
    y_at = dot([Aff.of("n"), Aff.of("c")] + [Aff.of(v) for v in ov], Y.strides)
    x_v = f"{X.ptr}[{nest.c(x_at)}]"
    y_v = f"{Y.ptr}[{nest.c(y_at)}]"
    if avg:
        consts = [int(v) for v in divisor if v.isdigit()]
        terms = [v for v in divisor if not v.isdigit()]
        k = math.prod(consts)
        if not terms:
            div = c_literal(k, ct)
        else:
            div = f"({ct})({' * '.join(([str(k)] if k != 1 else []) + terms)})"
        pre: tuple[str, ...] = (f"{ct} acc = {c_literal(0, ct)};",)
        step: tuple[str, ...] = (f"acc += {x_v};",)
        store: tuple[str, ...] = (f"{y_v} = acc / {div};",)
        if math.prod(kernel) > SUM_BLOCK and len(taps) > 1:
            # a large window: blocked sum, one partial per step of the outermost tap loop
            # (error ~ (rows + row length) eps rather than window size eps; Higham 1993)
            zero = c_literal(0, ct)
            pre = (f"{ct} acc = {zero};", f"{ct} row = {zero};")
            taps[0] = (taps[0][0], taps[0][1] + ("acc += row;", f"row = {zero};"))
            step = (f"row += {x_v};",)
            store = ("acc += row;", f"{y_v} = acc / {div};")
    elif len(node.outputs) > 1:   # Indices: the first maximum in window order, flat into x
        sp = list(contiguous_strides(I))
        if node.attrs.get("storage_order"):
            sp = list(reversed(contiguous_strides(list(reversed(I)))))
        flat = Aff.of(("n", x.shape[1] * math.prod(I)), ("c", math.prod(I))) + dot(
            [Aff.of((ov[a], s[a]), (kv[a], d[a]), -pb[a]) for a in range(nd)], sp)
        Yi = ctx.outs()[1]
        pre = (f"{ct} acc = {_lowest(ct)};", "int64_t idx = -1;")
        # floats: the first NaN of the window wins (value and index), as for the values alone
        nan_first = " || (v != v && acc == acc)" if ct in ("float", "double") else ""
        step = (f"const {ct} v = {x_v};",
                f"if (v > acc || idx < 0{nan_first}) {{ acc = v; idx = (int64_t)({nest.c(flat)}); }}")
        yi_at = dot([Aff.of(v) for v in ["n", "c", *ov]], Yi.strides)
        store = (f"{y_v} = acc;", f"{Yi.ptr}[{nest.c(yi_at)}] = idx;")
    else:
        pre = (f"{ct} acc = {_lowest(ct)};",)
        step = (f"const {ct} v = {x_v};", _max_step(ct))
        store = (f"{y_v} = acc;",)
    comment = (f"{node.op}: x {shape_text(x.shape)} is (N,C,spatial...), y {shape_text(Y.shape)}; "
               f"kernel {_lst(kernel)}, strides {_lst(s)}, dilations {_lst(d)}, "
               f"pads_begin {_lst(pb)}")
    return ctx.desc("nn", "pool", comment=comment, tables=tuple(tables), outer=tuple(outer),
                    taps=tuple(taps), pre=pre, step=step, store=store)


@lower("GlobalAveragePool", "GlobalMaxPool", supports=_supports_pool)
def _lower_global_pool(node: Node, ctx: LowerCtx) -> KernelDesc:
    """y[n, c] = mean/max of x[n, c, ...] over all spatial positions (merged into few loops).

    A mean over more than ``SUM_BLOCK`` positions sums blocked and pairwise (Higham 1993; see
    :func:`onnxcc.codegen.c.lower.reduce.pairwise_sum`), as ReduceMean does."""
    x = node.inputs[0]
    X, Y = ctx.ins()[0], ctx.outs()[0]
    assert X is not None
    ct = Y.ctype
    shp, (xs,) = merge_dims(x.shape[2:], [X.strides[2:]])
    pv = [f"p{k}" for k in range(len(shp))]
    nest = Nest(n=x.shape[0], c=x.shape[1], **dict(zip(pv, shp)))
    outer = nest.loop("n", x.shape[0]) + nest.loop("c", x.shape[1])
    taps = [t for v, n in zip(pv, shp) for t in nest.loop(v, n)]
    x_at = dot([Aff.of("n"), Aff.of("c")] + [Aff.of(v) for v in pv], list(X.strides[:2]) + xs)
    y_at = dot([Aff.of("n"), Aff.of("c")], Y.strides[:2])
    count = math.prod(x.shape[2:])
    if node.op == "GlobalAveragePool" and uses_pairwise("ReduceMean", ct, count):
        # a long mean: blocked pairwise sum per (n, c), in the reduce family's nest form
        body = (*pairwise_sum(ct, "acc", reduce_levels(pv, shp, list(range(len(shp)))),
                              at(X.ptr, ["n", "c", *pv], [*X.strides[:2], *xs])),
                f"{at(Y.ptr, ['n', 'c'], Y.strides[:2])} = acc / {c_literal(count, ct)};")
        return ctx.desc("reduce", "reduce", pre=(),
                        nests=(((tlevel("n", x.shape[0]), tlevel("c", x.shape[1])), body),))
    if node.op == "GlobalAveragePool":
        init = c_literal(0, ct)
        step: tuple[str, ...] = (f"acc += {X.ptr}[{nest.c(x_at)}];",)
        result = f"acc / {c_literal(math.prod(x.shape[2:]), ct)}"
    else:
        init, result = _lowest(ct), "acc"
        step = (f"const {ct} v = {X.ptr}[{nest.c(x_at)}];", _max_step(ct))
    comment = f"{node.op}: x {shape_text(x.shape)} is (N,C,spatial...), y {shape_text(Y.shape)}"
    return ctx.desc("nn", "pool", comment=comment, tables=(), outer=tuple(outer), taps=tuple(taps),
                    pre=(f"{ct} acc = {init};",), step=step,
                    store=(f"{Y.ptr}[{nest.c(y_at)}] = {result};",))
