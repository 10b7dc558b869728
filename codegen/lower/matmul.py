"""Matrix products as loop IR: Gemm, onnxcc.FusedGemm and MatMul.

Every product is batch loops around ``Y[i, j] = epilogue(sum_k A'[i, k] * B'[k, j])`` where A'
and B' are strided views of the operands (no copies): Gemm's transA/transB swap shape and
strides, MatMul's batch dims broadcast with stride 0, a 1-D operand gets a unit dim, and a splat
constant weight (ConstantOfShape) has all-zero strides and stays one element. The epilogue applies
alpha, ``beta * C`` (C read through a broadcast view of (M, N)) and FusedGemm's activation
(``nn.activation_expr``, i.e. elementwise's scalar table).

The loop order is picked from B's strides, so that the innermost loop walks memory contiguously
and the C compiler vectorizes it without reassociating float sums (no -ffast-math):

- ``ikj`` when B' is contiguous along j (MatMul, Gemm transB=0): Y's row i is the row of
  accumulators: zeroed, then for each block of K_BLOCK values of k updated with
  ``muladd(A'[i, k], B'[k, j], ...)`` for the block's k in order over j (one load and store of
  Y per K_BLOCK products; independent iterations, unrolled so that gcc and clang vectorize it at
  -O2), then the epilogue over the row. Each Y[i, j] still sums over k in order, exactly as the
  i-j-k loop would.
- ``ijk`` when B' is contiguous along k (Gemm transB=1, PyTorch's Linear): a dot product of
  two contiguous rows per output, in DOT_LANES partial sums (``_dot``) so that it vectorizes
  without -ffast-math (the fixed reassociation every BLAS makes); short sums keep one scalar
  accumulator.
- ``rowsum`` when B' is a splat b: sum_k A'[i, k] * b = b * rowsum(A'[i, :]), once per row
  (what the reference computes too), O(MK + MN) instead of O(MKN).

On targets with a vector register file (``Target.register_tile``) a product whose B is constant
or contiguous along j is register-tiled instead (``_product_tiled``: B packed at compile time).
In size mode (``Target.optimize``) every product but the splat is the plain i-j-k nest with one
scalar accumulator per output.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from onnxcc.codegen.loops import (I32, Assign, Binary, Buffer, Comment, Const, Decl, Expr, If,
                                  Loop, MulAdd, Select, Stmt, Store, Var, const,
                                  contiguous_strides, minimum, substitute)
from onnxcc.ir import Node
from onnxcc.ops import attr
from onnxcc.ops.matmul import gemm_dims

from . import LowerCtx, broadcast_view, lower
from .nn import (activation_expr, activation_reason, axis_var, lin, loops, read_buffers,
                 shape_text)

FLOATS = ("float32", "float64")
DOT_LANES = 16    # partial sums of the ijk form (see _dot)
ROW_UNROLL = 4    # the ikj form's row update, copies per step (see codegen/c/render.py)
K_BLOCK = 4       # the ikj form: rows of B added into y's row per pass


def _view(b: Buffer, name: str, shape: Sequence[int], strides: Sequence[int]) -> Buffer:
    """``b``'s storage seen as ``shape`` with element ``strides``."""
    return Buffer(name, b.dtype, tuple(shape), tuple(strides), b.space, b.offset, b.index,
                  b.data, b.value)


def _supports(node: Node) -> str | None:
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    for v in (a, b, y):
        if v.dtype.name not in FLOATS:
            return f"{node.op} of {v.dtype.name} is not supported (float32/float64 only)"
    if a.dtype != b.dtype or a.dtype != y.dtype:
        return "operands of different dtypes"
    if len(node.inputs) > 2 and node.inputs[2] is not None and node.inputs[2].dtype != y.dtype:
        return "C of another dtype than A and B"
    return activation_reason(node)


class Product:
    """What :func:`product` built: the loops, the weight buffers it made (a packed B), the
    kernel's locals (a register tile) and a note for the kernel's comment."""

    def __init__(self, body: list[Stmt], weights: Sequence[Buffer] = (),
                 locals_: Sequence[Buffer] = (), note: str = "") -> None:
        self.body, self.weights, self.locals, self.note = body, list(weights), list(locals_), note


def product(ctx: LowerCtx, A: Buffer, B: Buffer, Y: Buffer, batch: Sequence[int], M: int,
            K: int, N: int, c: Buffer | None = None, alpha: float = 1.0, beta: float = 1.0
            ) -> Product:
    """Loops computing ``Y = act(alpha * A' B' + beta * C)`` for views A (batch..., M, K),
    B (batch..., K, N), Y (batch..., M, N) and C (M, N) or None (see the module docstring for
    the loop order; register tiles on targets with a vector register file)."""
    node = ctx.node
    dt = Y.dtype
    bv = [axis_var(f"b{t}", n) for t, n in enumerate(batch)]
    i, j, k = axis_var("i", M), axis_var("j", N), axis_var("k", K)
    bl = [(v, 0, n) for v, n in zip(bv, batch)]
    c_at = (lambda ii, jj: c[(ii, jj)]) if c is not None else None
    made: list[Buffer] = []    # weight buffers made here (size mode's B and C in one)

    def epilogue(v: Expr, ii: Expr = i, jj: Expr = j) -> Expr:
        if alpha != 1.0:
            v = const(alpha, dt) * v
        if c_at is not None and beta != 0.0:
            cv = c_at(ii, jj)
            v = v + (cv if beta == 1.0 else const(beta, dt) * cv)
        act = node.attrs.get("activation") or ""
        if ctx.size and act in ("", "Relu") and not node.attrs.get("activation_attrs"):
            # size mode: Relu or none as ``(flag != 0 && v < 0) ? 0 : v`` with the integer
            # literal flag 1 or 0, so a Gemm with Relu and one without differ only in an
            # integer literal and share one C function (codegen/c/share.py; the MLP
            # 784-128-64-10's three Gemms: one function); a flag of 0 alone folds away
            flag = Binary("ne", Const(int(act == "Relu"), I32), Const(0, I32))
            return Select(Binary("and", flag, Binary("lt", v, const(0, dt))), const(0, dt), v)
        return activation_expr(node, v)

    y_ij = Y[(*bv, i, j)]
    b_splat = B.space == "weight" and all(s == 0 for s in B.strides) and K * N > 1
    b_k, b_n = B.strides[-2], B.strides[-1]
    tile = _product_tile(ctx, B, Y, M, N, K)
    if tile is not None and not b_splat:
        return _product_tiled(ctx, A, B, Y, batch, M, K, N, tile, epilogue)
    if (getattr(ctx.target, "scalar_accumulators", False) and dt.name == "float32"
            and B.space == "weight" and B.data is not None and B.data.size > 1 and not batch
            and not b_splat and N > 1):
        return _product_scalar(A, B, Y, M, K, N, epilogue, node.inputs[1].name)
    acc = Var("acc", dt)
    if b_splat:     # B' = b everywhere: Y[i, j] = epilogue(rowsum(A'[i, :]) * b)
        body: list[Stmt] = [
            Decl(acc, const(0, dt)),
            *loops([(k, 0, K)], [Assign(acc, acc + A[(*bv, i, k)])]),
            *loops([(j, 0, N)], [Store(Y, (*bv, i, j),
                                       epilogue(acc * B[(*bv, Const(0), Const(0))]))])]
    elif ctx.size:  # size mode: one scalar accumulator per output, k in order
        b_at = lambda kk, jj: B[(*bv, kk, jj)]  # noqa: E731
        if not batch and c is not None and B.space == "weight" == c.space \
                and B.data is not None and c.data is not None and B.data.size == B.extent \
                and c.data.size == c.extent and B.dtype == c.dtype:
            # C's constants stored before B's in one weight array: the kernel takes one pointer
            # for both (on Thumb-2 a literal-pool word and a load fewer per call); B's start is
            # C's length, N for a bias, a literal the loop bound already has
            both = np.concatenate([np.ascontiguousarray(c.data, dt.np).reshape(-1),
                                   np.ascontiguousarray(B.data, dt.np).reshape(-1)])
            bc = Buffer("bc", dt, (both.size,), space="weight", data=both, value=B.value)
            (sk, sn), (c0, c1), base = B.strides, c.strides, c.data.size
            b_at = lambda kk, jj: bc[(Const(base) + kk * Const(sk)  # noqa: E731
                                      + jj * Const(sn),)]
            c_at = lambda ii, jj: bc[(ii * Const(c0) + jj * Const(c1),)]  # noqa: E731
            made.append(bc)
        body = loops([(j, 0, N)], [Decl(acc, const(0, dt)),
                                   *loops([(k, 0, K)], [Assign(acc, MulAdd(A[(*bv, i, k)],
                                                                           b_at(k, j), acc))]),
                                   Store(Y, (*bv, i, j), epilogue(acc))])
    elif N > 1 and (b_n == 1 or b_k != 1):   # ikj: Y's row holds the accumulators
        def row_update(ks: list[Expr]) -> list[Stmt]:
            """y[i, :] += sum over ks of a[i, k] * b[k, :] (one pass over y's row)."""
            avs = [Var(f"a{q}", dt) for q in range(len(ks))]
            val: Expr = y_ij
            for q, kq in enumerate(ks):   # in order of k, as multiply-adds
                val = MulAdd(avs[q], B[(*bv, kq, j)], val)
            upd: list[Stmt] = [Store(Y, (*bv, i, j), val)]
            if isinstance(j, Var):   # unrolled: the C renderer's row-pointer form vectorizes
                upd = [Loop(j, 0, N, upd, kind="unrolled", factor=ROW_UNROLL)]
            return [Decl(a, A[(*bv, i, kq)]) for a, kq in zip(avs, ks)] + upd

        # K_BLOCK rows of B per pass over y's row: one load and store of y per K_BLOCK products
        kb = Var("kb")
        full = K // K_BLOCK if isinstance(k, Var) else 0
        red: list[Stmt] = []
        if full:
            red.append(Loop(kb, 0, full, row_update([lin((kb, K_BLOCK), q)
                                                     for q in range(K_BLOCK)])))
        if full * K_BLOCK < K:
            red += loops([(k, full * K_BLOCK, K)], row_update([k]))
        body = [*loops([(j, 0, N)], [Store(Y, (*bv, i, j), const(0, dt))]), *red]
        epi = epilogue(y_ij)
        if epi is not y_ij:
            body += loops([(j, 0, N)], [Store(Y, (*bv, i, j), epi)])
    else:           # ijk: a dot product of contiguous rows per output
        body = loops([(j, 0, N)], [*_dot(A[(*bv, i, k)], B[(*bv, k, j)], k, K, acc),
                                   Store(Y, (*bv, i, j), epilogue(acc))])
    return Product(loops(bl + [(i, 0, M)], body), made)


def _product_tile(ctx: LowerCtx, B: Buffer, Y: Buffer, M: int, N: int, K: int = 0
                  ) -> tuple[int, int, int] | None:
    """(rows, columns, lanes) of :func:`_product_tiled`'s register tile on the context's
    target (``Target.register_tile``), or None: no register tile (C targets), float64, fewer
    than a vector of columns, or a runtime B not contiguous along its columns (K: the
    reduction length). Products take the short tile (``LowerCtx.register_tile``): with 16
    registers 4 rows ran as fast as 5 or faster (Zen 3: (64,512)@(512,128) 10%,
    (4,64,64)@(4,64,32) 6%, (64,128)@(128,512) the same)."""
    if Y.dtype.name != "float32" or (B.space != "weight" and B.strides[-1] != 1):
        return None
    return ctx.register_tile(M, N, K, short=True)


def _product_tiled(ctx: LowerCtx, A: Buffer, B: Buffer, Y: Buffer, batch: Sequence[int],
                   M: int, K: int, N: int, tile: tuple[int, int, int], epilogue: Any
                   ) -> Product:
    """``Y = epilogue(A' B')`` as register tiles of TP rows x TN columns (the microkernel of
    Goto and van de Geijn, "Anatomy of high-performance matrix multiplication", TOMS 2008):
    the tile accumulates in a local over k in order (each y[i, j] sums its k in order, as the
    ikj form does), one broadcast of A[i, k] per row feeding TN/lanes vector multiply-adds with
    a contiguous row of B; then the epilogue and one store per element, contiguous along j.
    A constant B (broadcast over the batch dims, if any) is packed at compile time as
    (N/TN, K, TN) (zero columns past N); a runtime B
    is read in place (contiguous along j), its last partial tile through clamped column indices.
    The last tile of rows repeats the last row instead of a tail. ``epilogue(v, row, column)``
    gives what is stored for the tile's value ``v``."""
    TP, TN, lanes = tile
    dt = Y.dtype
    node = ctx.node
    bv = [axis_var(f"b{t}", n) for t, n in enumerate(batch)]
    NT, MT = -(-N // TN), -(-M // TP)
    nt, mt, k, j, q = axis_var("nt", NT), axis_var("mt", MT), Var("k"), Var("j"), Var("q")
    col = lin((nt, TN), j)
    # a constant B the same for every batch index (a weight broadcast over A's batch dims: the
    # transformer's (1, 64, 128) @ (128, 512)) is packed once too
    packed = B.space == "weight" and B.data is not None and B.data.size > 1 and \
        all(st == 0 for st in B.strides[:-2])
    if packed:
        full = np.lib.stride_tricks.as_strided(
            np.asarray(B.data, dt.np), (K, N), [st * dt.np.itemsize for st in B.strides[-2:]])
        pk = np.zeros((K, NT * TN), dt.np)
        pk[:, :N] = full
        pk = np.ascontiguousarray(pk.reshape(K, NT, TN).transpose(1, 0, 2))   # (NT, K, TN)
        Bp = Buffer("bp", dt, pk.shape, None, "weight", data=pk.reshape(-1),
                    value=f"{node.inputs[1].name} packed")
    rows = [minimum(lin((mt, TP), r), Const(M - 1)) for r in range(TP)]
    acc = Buffer("acc", dt, (TP, TN), space="local")
    init = [Loop(j, 0, TN, [Loop(q, 0, TP, [Store(acc, (q, j), const(0, dt))], kind="unrolled")],
                 kind="vectorized", factor=lanes)]

    def reduction(clamped: bool) -> list[Stmt]:
        av = [Var(f"a{r}", dt) for r in range(TP)]
        bj = Var("bj", dt)
        if packed:
            b_load: Expr = Bp[(nt, k, j)]
        else:
            b_load = B[(*bv, k, minimum(col, Const(N - 1)) if clamped else col)]
        upd: list[Stmt] = [Decl(bj, b_load)]
        upd += [Store(acc, (Const(r), j), MulAdd(av[r], bj, acc[(Const(r), j)]))
                for r in range(TP)]
        return [Loop(k, 0, K, [Decl(av[r], A[(*bv, rows[r], k)]) for r in range(TP)]
                     + [Loop(j, 0, TN, upd, kind="vectorized", factor=lanes)])]

    partial = NT * TN != N
    if partial and not packed:   # only the last tile of columns reads clamped
        red: list[Stmt] = reduction(True) if NT == 1 else \
            [If(Binary("lt", nt, Const(NT - 1)), reduction(False), reduction(True))]
    else:
        red = reduction(False)
    stores: list[Stmt] = []
    for r in range(TP):
        stores.append(Store(Y, (*bv, rows[r], col), epilogue(acc[(Const(r), j)], rows[r], col)))
    guard = [If(Binary("lt", col, Const(N)), stores)] if partial else stores
    body = init + red + [Loop(j, 0, TN, guard)]
    nest = loops([(v, 0, n) for v, n in zip(bv, batch)] + [(nt, 0, NT), (mt, 0, MT)], body)
    note = f"; register tiles of {TP} rows x {TN} columns" + \
        (f", b packed as ({NT},{K},{TN})" if packed else "")
    return Product(nest, [Bp] if packed else [], [acc], note)


SCALAR_COLUMNS = 8   # _product_scalar: outputs of a row accumulated in scalar registers
SCALAR_K_UNROLL = 2  # ... and the values of k per iteration of its loop


def _product_scalar(A: Buffer, B: Buffer, Y: Buffer, M: int, K: int, N: int, epilogue: Any,
                    b_name: str) -> Product:
    """``Y = epilogue(A' B')`` for a constant B on cores that keep accumulators in scalar
    registers (``Target.scalar_accumulators``): per row of A, SCALAR_COLUMNS outputs in
    locals sum over k in order (one load of A[i, k] feeding SCALAR_COLUMNS multiply-adds with a
    contiguous run of B packed at compile time as (ceil(N/TN), K, TN)), SCALAR_K_UNROLL values
    of k per loop iteration, then the epilogue and one store each; the columns past the last
    full block in one narrower block. The 16-way dot product of the ijk form (made for a host's
    vectorizer) ran 3.87 Cortex-M4 instructions per MAC on DS-CNN's 64->12 classifier at -Os
    (two loads per multiply-add and a pairwise sum per output). ``epilogue(v, row, column)``
    gives what is stored for an output's sum ``v``."""
    dt = Y.dtype
    TN = min(SCALAR_COLUMNS, N)
    NT, rem = divmod(N, TN)
    NTc = NT + (rem > 0)
    full = np.lib.stride_tricks.as_strided(
        np.asarray(B.data, dt.np), (K, N), [st * dt.np.itemsize for st in B.strides])
    pk = np.zeros((K, NTc * TN), dt.np)
    pk[:, :N] = full
    pk = np.ascontiguousarray(pk.reshape(K, NTc, TN).transpose(1, 0, 2))   # (NTc, K, TN)
    Bp = Buffer("bp", dt, pk.shape, None, "weight", data=pk.reshape(-1), value=f"{b_name} packed")
    i, k, kb = axis_var("i", M), Var("k"), Var("kb")
    U = SCALAR_K_UNROLL if K >= 2 * SCALAR_K_UNROLL else 1
    made = [0]

    def block(nt: Expr, nm: int) -> list[Stmt]:
        t = made[0]
        made[0] += 1
        acc = [Var(f"acc{t}_{j}", dt) for j in range(nm)]
        cols = [lin((nt, TN), j) for j in range(nm)]

        def step(ks: list[Expr]) -> list[Stmt]:
            out: list[Stmt] = []
            for u, kk in enumerate(ks):
                av = Var(f"a{t}_{u}", dt)
                out.append(Decl(av, A[(i, kk)]))
                out += [Assign(acc[j], MulAdd(av, Bp[(nt, kk, Const(j))], acc[j]))
                        for j in range(nm)]
            return out

        body: list[Stmt] = [Decl(a, const(0, dt)) for a in acc]
        body.append(Loop(kb, 0, K // U, step([lin((kb, U), u) for u in range(U)])))
        if K % U:
            body += loops([(k, K // U * U, K)], step([k]))
        return body + [Store(Y, (i, c), epilogue(a, i, c)) for a, c in zip(acc, cols)]

    nt = axis_var("nt", NT)
    body = loops([(nt, 0, NT)], block(nt, TN)) + (block(Const(NT), rem) if rem else [])
    note = (f"; rows in blocks of {TN} outputs in scalar locals, b packed as ({NTc},{K},{TN}), "
            f"{U} values of k per step")
    return Product(loops([(i, 0, M)], body), [Bp], [], note)


def _dot(a: Expr, b: Expr, k: Expr, K: int, acc: Var) -> list[Stmt]:
    """Statements declaring ``acc = sum over k < K of a * b`` (``a``, ``b`` loads indexed by
    ``k``). With at least 2 * DOT_LANES terms the sum runs in DOT_LANES independent partial
    sums over k (step DOT_LANES, then the remainder into the first), added pairwise at the end:
    the muladds then do not wait on each other and the compiler's SLP vectorizer packs them into
    vector FMAs; a fixed reassociation, as every BLAS does. 16 rather than 8: measured on a
    64x512x512 transB Gemm, 8 lanes fall to 1.2 GFLOP/s under gcc -march=native on an AVX-512
    host (a 16-wide vector over 8 partials), 16 lanes give 6-11 GFLOP/s at -O2/-O3 with SSE2,
    AVX2 or AVX-512 (one scalar accumulator: 1.1). A vectorize pass will pick the width from the
    target."""
    dt = acc.dtype
    if K < 2 * DOT_LANES or not isinstance(k, Var):
        return [Decl(acc, const(0, dt)), *loops([(k, 0, K)], [Assign(acc, MulAdd(a, b, acc))])]
    parts = [Var(f"s{u}", dt) for u in range(DOT_LANES)]
    kb = Var("kb")     # k = kb * DOT_LANES + u
    main = K - K % DOT_LANES
    step = [Assign(s, MulAdd(substitute(a, {k: lin((kb, DOT_LANES), u)}),
                             substitute(b, {k: lin((kb, DOT_LANES), u)}), s))
            for u, s in enumerate(parts)]
    out: list[Stmt] = [Decl(s, const(0, dt)) for s in parts]
    out.append(Loop(kb, 0, main // DOT_LANES, step))
    if main < K:
        out.append(Loop(k, main, K, [Assign(parts[0], MulAdd(a, b, parts[0]))]))
    terms: list[Expr] = list(parts)
    while len(terms) > 1:
        terms = [terms[t] + terms[t + 1] for t in range(0, len(terms), 2)]
    return out + [Decl(acc, terms[0])]


@lower("Gemm", "onnxcc.FusedGemm", supports=_supports)
def _lower_gemm(node: Node, ctx: LowerCtx) -> Any:
    """Y (M, N) = act(alpha * A' B' + beta * C): A' = A (M, K) or A^T when transA, B' = B (K, N)
    or B^T when transB (views with swapped strides); C broadcasts to (M, N)."""
    M, K, N = gemm_dims(node)
    A0, B0, Y = ctx.input(0, "a"), ctx.input(1, "b"), ctx.output(0, "y")
    A = _view(A0, "a", (M, K), A0.strides[::-1] if attr(node, "transA") else A0.strides)
    B = _view(B0, "b", (K, N), B0.strides[::-1] if attr(node, "transB") else B0.strides)
    has_c = len(node.inputs) > 2 and node.inputs[2] is not None
    alpha, beta = float(attr(node, "alpha")), float(attr(node, "beta"))
    C = broadcast_view(ctx.input(2, "c"), (M, N)) if has_c and beta != 0.0 else None
    act = node.attrs.get("activation") or ""
    text = (f"{node.op}: y {shape_text(Y.shape)} = "
            + ("" if alpha == 1 else f"{alpha!r} * ")
            + f"a{'^T' if attr(node, 'transA') else ''} {shape_text(A0.shape)} @ "
            f"b{'^T' if attr(node, 'transB') else ''} {shape_text(B0.shape)}"
            + (f" + {'' if beta == 1 else f'{beta!r} * '}c {shape_text(C.shape)}"
               if C is not None else "")
            + (f", then {act}" if act else ""))
    pr = product(ctx, A, B, Y, (), M, K, N, C, alpha, beta)
    text += pr.note
    ins = read_buffers(pr.body, [A, B] + pr.weights + ([C] if C is not None else []))
    return ctx.kernel("gemm", [Y], ins, [Comment(text)] + pr.body, comment=text,
                      locals=pr.locals)


def matmul_views(ctx: LowerCtx, ia: int = 0, ib: int = 1
                 ) -> tuple[Buffer, Buffer, Buffer, tuple[int, ...], int, int, int]:
    """Views for numpy matmul of the node's inputs ``ia`` (batch..., M, K) and ``ib``
    (batch..., K, N) into output 0: ``(A, B, Y, batch, M, K, N)`` with broadcast batch dims as
    stride 0, a 1-D A read as (1, K) and a 1-D B as (K, 1) (that dim dropped from Y)."""
    A0, B0 = ctx.input(ia, "a"), ctx.input(ib, "b")
    ash, bsh, sa, sb = A0.shape, B0.shape, A0.strides, B0.strides
    if len(ash) == 1:
        ash, sa = (1,) + ash, (0,) + sa
    if len(bsh) == 1:
        bsh, sb = bsh + (1,), sb + (0,)
    batch = tuple(int(v) for v in np.broadcast_shapes(ash[:-2], bsh[:-2]))
    M, K, N = ash[-2], ash[-1], bsh[-1]

    def batched(shape: tuple, strides: tuple, tail: tuple) -> tuple:
        pad = len(batch) - len(shape) + 2
        return tuple([0] * pad + [0 if dm == 1 else st for dm, st in
                                  zip(shape[:-2], strides[:-2])]) + tail

    A = _view(A0, "a", batch + (M, K), batched(ash, sa, (sa[-2], sa[-1])))
    B = _view(B0, "b", batch + (K, N), batched(bsh, sb, (sb[-2], sb[-1])))
    Y = _view(ctx.output(0, "y"), "y", batch + (M, N), contiguous_strides(batch + (M, N)))
    return A, B, Y, batch, M, K, N


@lower("MatMul", supports=_supports)
def _lower_matmul(node: Node, ctx: LowerCtx) -> Any:
    """Y (batch..., M, N) = A (batch..., M, K) @ B (batch..., K, N), numpy rules (see
    :func:`matmul_views`)."""
    A, B, Y, batch, M, K, N = matmul_views(ctx)
    A0, B0, Y0 = ctx.input(0, "a"), ctx.input(1, "b"), ctx.output(0, "y")
    text = (f"MatMul: y {shape_text(Y0.shape)} = a {shape_text(A0.shape)} @ "
            f"b {shape_text(B0.shape)}")
    pr = product(ctx, A, B, Y, batch, M, K, N)
    text += pr.note
    return ctx.kernel("matmul", [Y], read_buffers(pr.body, [A, B] + pr.weights),
                      [Comment(text)] + pr.body, comment=text, locals=pr.locals)
