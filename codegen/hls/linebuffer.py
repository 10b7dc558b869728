"""Line buffers for the io_stream style: a layer that reads a window of input rows per output row
runs on a few rows of its input instead of the whole tensor.

A 4-D tensor (N=1, C, H, W) moves between streaming layers in pixel order (row by row, each pixel's
channels together: the order of an NHWC array), as in hls4ml's io_stream and FINN's sliding-window
units. A layer qualifies when its kernel (from the loop IR) is one loop over output rows ``oh``
whose body reads the input ``x`` only at rows ``oh*S + r`` with ``r`` in a fixed window
``[lo, lo + R)`` (a convolution: R = (KH-1)*dilation + 1, lo = -pad_top; a pool the same) and
writes the output ``y`` only at row ``oh``. Such a layer keeps an R-row line buffer ``lb`` of its
input (R*W*C elements, rows contiguous in pixel order) and one output row ``yrow`` (OW*M):

    for oh in [0, OH):
        shift lb up by S rows (the rows this window shares with the last one)
        read the window's new rows from the stream into lb (rows no window reads are discarded)
        row body: the kernel's loop body with x[n, c, oh*S + r, w] -> lb[r - lo][w][c] and
                  y[n, m, oh, w] -> yrow[w][m]
        write yrow to the output stream(s)
    discard the rows after the last window

The row body is the kernel's own loop IR with its accesses moved (``substitute_stmts`` with an
``access`` map): the same statements, so the same values, as the io_parallel build. Memory:
R*W*C + OW*M elements instead of H*W*C + OH*OW*M (digits' 8x8 first conv: 3 of 8 rows).
Rows outside the tensor (padding) are never read: the kernel's masked loads test the original
row index, which the row body still computes from ``oh``.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnxcc.codegen.loops import (Buffer, Comment, Const, Expr, Kernel, Load, Loop, Stmt, Store,
                                  Var, affine, stmt_exprs, substitute_stmts,
                                  walk_exprs, walk_stmts)


@dataclass
class RowPlan:
    """How one kernel runs row by row: input ``x`` (1,C,H,W) through a line buffer of ``rows``
    rows that advances ``stride`` rows per output row, the window of output row ``oh`` starting
    at input row ``oh*stride + first``; output ``y`` (1,M,OH,OW) one row at a time. ``body`` is
    the loop body for one output row, over buffers ``lb`` (1,C,rows,W, pixel order) and
    ``yrow`` (1,M,1,OW, pixel order), with the free variable ``oh``."""

    x: Buffer
    y: Buffer
    oh: Var
    rows: int
    stride: int
    first: int
    lb: Buffer
    yrow: Buffer
    body: list[Stmt]

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the input."""
        return self.x.shape[1], self.x.shape[2], self.x.shape[3]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """(M, OH, OW) of the output."""
        return self.y.shape[1], self.y.shape[2], self.y.shape[3]


def _affine_value(e: Expr, env: dict[str, int]) -> int | None:
    """The value of integer index expression ``e`` (sums and products of variables and
    constants) with variables from ``env``; None when ``e`` is anything else."""
    from onnxcc.codegen.loops import Binary

    if isinstance(e, Const):
        return int(e.value) if isinstance(e.value, (int, bool)) else None
    if isinstance(e, Var):
        return env.get(e.name)
    if isinstance(e, Binary) and e.op in ("add", "sub", "mul"):
        a, b = _affine_value(e.a, env), _affine_value(e.b, env)
        if a is None or b is None:
            return None
        return a + b if e.op == "add" else a - b if e.op == "sub" else a * b
    return None


def _vars(e: Expr) -> set[str]:
    return {x.name for x in walk_exprs(e) if isinstance(x, Var)}


def _affine_parts(idx: Expr, oh: Var, ranges: dict[str, tuple[int, int]]
                  ) -> tuple[int, int, dict[Var, int]] | None:
    """(stride, constant, {variable: coefficient}) when ``idx`` is ``oh*stride + constant +
    sum(coefficient * variable)`` over loop variables of ``ranges`` (name -> [start, stop)), with
    stride >= 1; else None (another variable, a product of variables, a non-affine term)."""
    names = {x.name: x for x in walk_exprs(idx) if isinstance(x, Var) and x.name != oh.name}
    if any(n not in ranges for n in names):
        return None
    zero = {n: 0 for n in names}

    def at(**moved: int) -> int | None:
        return _affine_value(idx, {**zero, oh.name: 0, **moved})

    f0 = at()
    if f0 is None:
        return None
    coef = {}
    for n in names:
        one, two = at(**{n: 1}), at(**{n: 2})
        if one is None or two is None or two - one != one - f0:
            return None
        coef[n] = one - f0
    s1, s2 = at(**{oh.name: 1}), at(**{oh.name: 2})
    if s1 is None or s2 is None or s2 - s1 != s1 - f0 or s1 - f0 < 1:
        return None
    # no product of two variables: the value at (1, 1, ...) is the sum of the coefficients
    every = at(**{n: 1 for n in names}, **{oh.name: 1})
    if every is None or every != f0 + sum(coef.values()) + (s1 - f0):
        return None
    return s1 - f0, f0, {names[n]: c for n, c in coef.items()}


def _window(parts: tuple[int, int, dict[Var, int]], ranges: dict[str, tuple[int, int]]
            ) -> tuple[int, int]:
    """(lo, hi): the range of ``constant + sum(coefficient * variable)`` over the loops."""
    _, const, coef = parts
    lo = hi = const
    for v, c in coef.items():
        a, b = c * ranges[v.name][0], c * (ranges[v.name][1] - 1)
        lo, hi = lo + min(a, b), hi + max(a, b)
    return lo, hi


def row_plan(k: Kernel, x: Buffer, y: Buffer) -> RowPlan | None:
    """The line-buffered form of kernel ``k`` reading ``x`` and writing ``y`` (see the module
    docstring), or None when ``k`` does not have that shape: the body is not one loop over the
    rows of y, a row of x is not read through a fixed window, y is read or written at another
    row, the batch is not 1, or a loop inside has bounds that are not constants."""
    if len(x.shape) != 4 or len(y.shape) != 4 or x.shape[0] != 1 or y.shape[0] != 1:
        return None
    body = [s for s in k.body if not isinstance(s, Comment)]
    if len(body) != 1 or not isinstance(body[0], Loop):
        return None
    top = body[0]
    OH = y.shape[2]
    if not (top.start == Const(0) and top.stop == Const(OH) and top.step == 1) or OH < 2:
        return None
    oh = top.var
    ranges: dict[str, tuple[int, int]] = {}
    for s in walk_stmts(top.body):
        if isinstance(s, Loop):
            if not (isinstance(s.start, Const) and isinstance(s.stop, Const)) or s.step != 1:
                return None
            ranges[s.var.name] = (int(s.start.value), int(s.stop.value))
    windows = []
    for s in walk_stmts(top.body):
        if isinstance(s, Store) and s.buf is x:
            return None
        if isinstance(s, Store) and s.buf is y and s.index[2] != oh:
            return None
        for e in stmt_exprs(s):
            for ld in walk_exprs(e):
                if not isinstance(ld, Load):
                    continue
                if ld.buf is y and ld.index[2] != oh:
                    return None
                if ld.buf is x:
                    parts = _affine_parts(ld.index[2], oh, ranges)
                    if parts is None or _vars(ld.index[3]) & {oh.name}:
                        return None
                    windows.append((parts[0], *_window(parts, ranges)))
    if not windows or len({w[0] for w in windows}) != 1:
        return None
    stride = windows[0][0]
    first = min(w[1] for w in windows)
    rows = max(w[2] for w in windows) - first + 1
    C, H, W = x.shape[1:]
    M, _, OW = y.shape[1:]
    if rows >= H and stride == 1:
        return None   # the window is the whole tensor: nothing to save
    lb = Buffer("lb", x.dtype, (1, C, rows, W), (rows * W * C, 1, W * C, C), space="local",
                value=x.value)
    yrow = Buffer("yrow", y.dtype, (1, M, 1, OW), (OW * M, 1, 0, M), space="local",
                  value=y.value)

    def access(buf: Buffer, idx: tuple) -> tuple[Buffer, tuple]:
        if buf is x:   # row oh*S + r of x is row r - first of the line buffer
            _, const, coef = _affine_parts(idx[2], oh, ranges)
            return lb, (idx[0], idx[1], affine(*coef.items(), const - first), idx[3])
        if buf is y:
            return yrow, (idx[0], idx[1], Const(0), idx[3])
        return buf, idx

    return RowPlan(x, y, oh, rows, stride, first, lb, yrow,
                   substitute_stmts(top.body, {}, access))


@dataclass
class PointPlan:
    """How an elementwise kernel streams: element ``i`` of every input in ``reads`` (buffers of
    ``n`` elements, all read at ``i``) gives element ``i`` of ``write``, in any order, so the
    layer reads one element from each input stream and writes one, holding nothing. ``body``
    is the loop body for one element over one-element buffers (``scalars``: original buffer ->
    its one-element stand-in)."""

    n: int
    reads: list[Buffer]
    write: Buffer
    scalars: dict[int, Buffer]
    body: list[Stmt]


def point_plan(k: Kernel) -> PointPlan | None:
    """The streaming form of an elementwise kernel: one loop ``i`` over ``[0, n)`` with no loop
    inside, every non-weight buffer accessed only at ``[i]`` (1-D, contiguous, n elements),
    exactly one written; else None (a broadcast, a reduction, a weight indexed by ``i``)."""
    body = [s for s in k.body if not isinstance(s, Comment)]
    if len(body) != 1 or not isinstance(body[0], Loop):
        return None
    top = body[0]
    if not (top.start == Const(0) and isinstance(top.stop, Const) and top.step == 1):
        return None
    n = int(top.stop.value)
    reads: list[Buffer] = []
    writes: list[Buffer] = []

    def ok(b: Buffer, idx: tuple) -> bool:
        return b.shape == (n,) and b.strides == (1,) and tuple(idx) == (top.var,)

    for s in walk_stmts(top.body):
        if isinstance(s, Loop):
            return None
        if isinstance(s, Store):
            if s.buf.space == "weight" or not ok(s.buf, s.index):
                return None
            if all(w is not s.buf for w in writes):
                writes.append(s.buf)
        for e in stmt_exprs(s):
            for ld in walk_exprs(e):
                if isinstance(ld, Load) and ld.buf.space != "weight":
                    if not ok(ld.buf, ld.index) or ld.mask is not None:
                        return None
                    if all(r is not ld.buf for r in reads):
                        reads.append(ld.buf)
                elif isinstance(ld, Load) and _vars(ld.index[0] if ld.index else Const(0)) \
                        & {top.var.name}:
                    return None   # a weight read per element: not a stream of its own
    if len(writes) != 1 or any(r is writes[0] for r in reads) or not reads:
        return None
    scalars = {id(b): Buffer(f"{b.name}_s", b.dtype, (1,), space="local", value=b.value)
               for b in [*reads, writes[0]]}

    def access(buf: Buffer, idx: tuple) -> tuple[Buffer, tuple]:
        return (scalars[id(buf)], (Const(0),)) if id(buf) in scalars else (buf, idx)

    return PointPlan(n, reads, writes[0], scalars, substitute_stmts(top.body, {}, access))
