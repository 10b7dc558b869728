"""C lowering of matrix products: Gemm, onnxcc.FusedGemm and MatMul (template ``matmul.c.j2``).

Every product is batch loops around Y[i, j] = epilogue(sum_k A'[i, k] * B'[k, j]), where A' and
B' are strided views: Gemm's transA/transB swap strides, MatMul's batch dims broadcast with
stride 0, a 1-D operand gets a unit dim of stride 0, and a splat constant weight (ConstantOfShape)
has all-zero strides and is never materialized. The loop order follows the strides so the
innermost loop walks memory contiguously:

- ``ikj`` when B' is contiguous along n (MatMul, Gemm transB=0): Y's row is updated with U rows
  of B' per pass (vectorizable, and U times less traffic on Y than one row per pass);
- ``dot`` when B' is contiguous along k (Gemm transB=1, PyTorch's Linear): one dot product per
  output in U partial sums, so the adds do not wait on each other;
- ``rowsum`` when B' is a splat b: sum_k A'[i, k] * b = b * rowsum(A'[i, :]), computed once per
  row (what the reference does too), O(MK + MN) instead of O(MKN).

The epilogue applies alpha, beta * C (C broadcast through its strides) and FusedGemm's
activation, whose C expression comes from ``elementwise.scalar_statement`` so each activation
has one C definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from onnxcc.ir import Node
from onnxcc.ops import REQUIRED, attr, get_op
from onnxcc.ops.matmul import gemm_dims

from . import (
    KernelDesc,
    LowerCtx,
    broadcast_strides,
    c_literal,
    contiguous_strides,
    ctype,
    is_splat,
    lower,
)
from .elementwise import elementwise_ops, scalar_statement
from .tensor import at, empty_desc, level, void_unused

FLOATS = ("float32", "float64")
TILE_BYTES = 256 * 1024   # B' larger than this is walked in column tiles of half this size
ACT_INPUTS = {"Clip": ("min", "max"), "PRelu": ("slope",)}


@dataclass(frozen=True)
class Product:
    """One batched product: extents, and the element strides of A', B', Y over (batch..., i, k)
    (A'), (batch..., k, j) (B'), (batch..., i, j) (Y)."""

    batch: tuple[int, ...]
    M: int
    K: int
    N: int
    a: tuple[int, ...]
    b: tuple[int, ...]
    y: tuple[int, ...]
    b_splat: bool


def _gemm_product(node: Node, ctx: LowerCtx) -> Product:
    a, b = node.inputs[0], node.inputs[1]
    m, k, n = gemm_dims(node)
    sa, sb = ctx.strides(a), ctx.strides(b)
    if attr(node, "transA"):
        sa = sa[::-1]
    if attr(node, "transB"):
        sb = sb[::-1]
    return Product((), m, k, n, tuple(sa), tuple(sb), (n, 1), _splat(b))


def _matmul_product(node: Node, ctx: LowerCtx) -> Product:
    a, b = node.inputs
    ash, bsh = a.shape, b.shape
    sa, sb = ctx.strides(a), ctx.strides(b)
    if len(ash) == 1:
        ash, sa = (1,) + ash, (0,) + sa
    if len(bsh) == 1:
        bsh, sb = bsh + (1,), sb + (0,)
    batch = tuple(np.broadcast_shapes(ash[:-2], bsh[:-2]))
    m, k, n = ash[-2], ash[-1], bsh[-1]
    ab = broadcast_strides(ash[:-2], sa[:-2], batch) + (sa[-2], sa[-1])
    bb = broadcast_strides(bsh[:-2], sb[:-2], batch) + (sb[-2], sb[-1])
    ys = contiguous_strides(batch + (m, n))
    return Product(batch, m, k, n, ab, bb, ys, _splat(b))


def _splat(v: Any) -> bool:
    return v.const is not None and v.const.size > 1 and is_splat(v.const)


def _activation(node: Node, ct: str, v: str) -> str | None:
    """C expression of FusedGemm's activation of the scalar ``v`` (None: no activation)."""
    act = node.attrs.get("activation") or ""
    if not act:
        return None
    given = dict(node.attrs.get("activation_attrs") or ())
    attrs = {k: d for k, d in get_op(act).attrs.items() if d is not REQUIRED}
    attrs.update({k: w for k, w in given.items() if k in attrs or k in ACT_INPUTS.get(act, ())})
    if act == "Clip":
        sub = Node("Clip", [None], list(node.outputs[:1]),
                   {"min": given.get("min"), "max": given.get("max")}, node.name, 10)
        return scalar_statement("Clip", sub.attrs, [v], [ct], ct, sub)
    args = [v] + [c_literal(given[k], ct) for k in ACT_INPUTS.get(act, ())]
    sub = Node(act, [None] * len(args), list(node.outputs[:1]), attrs, node.name, node.version)
    return scalar_statement(act, attrs, args, [ct] * len(args), ct, sub)


def _supports(node: Node) -> str | None:
    a, b = node.inputs[0], node.inputs[1]
    y = node.outputs[0]
    for v in (a, b, y):
        if v.dtype.name not in FLOATS:
            return f"{node.op} of {v.dtype.name} is not supported (float32/float64 only)"
    if a.dtype != b.dtype or a.dtype != y.dtype:
        return "operands of different dtypes"
    if len(node.inputs) > 2 and node.inputs[2] is not None and node.inputs[2].dtype != y.dtype:
        return "C of another dtype than A and B"
    act = node.attrs.get("activation") or ""
    if act:
        if act not in elementwise_ops() or act in ("Cast", "CastLike"):
            return f"activation {act} has no C expression"
        given = dict(node.attrs.get("activation_attrs") or ())
        if act == "PRelu" and given.get("slope") is None:
            return "PRelu activation without a scalar constant slope"
        if act not in ACT_INPUTS and get_op(act).max_inputs > 1:
            return f"activation {act} takes more than one input"
    return None


def _sum_tree(names: Sequence[str]) -> str:
    """((s0 + s1) + (s2 + s3)) ...: pairwise, so partial sums combine in a fixed order."""
    items = list(names)
    while len(items) > 1:
        items = [f"({items[i]} + {items[i + 1]})" if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def _lanes(k: int) -> int:
    return 8 if k >= 32 else 4 if k >= 8 else 1


def _column_tile(pr: Product, itemsize: int) -> int:
    """Columns of B' per tile so a (K, tile) block stays in cache while every row of A' reads
    it; N (no tiling) when B' fits already, A' has one row, or B' is a splat."""
    if pr.M == 1 or pr.b_splat or pr.K * pr.N * itemsize <= TILE_BYTES:
        return pr.N
    return max(8, TILE_BYTES // 2 // (pr.K * itemsize) // 8 * 8)


def product_desc(ctx: LowerCtx, pr: Product, *, alpha: float = 1.0, beta: float = 1.0,
                 c_strides: tuple[int, ...] | None = None) -> KernelDesc:
    """The KernelDesc of ``Y = act(alpha * A'B' + beta * C)`` for product ``pr`` (C is input x2
    read through ``c_strides`` over (i, j); None when there is no C)."""
    node = ctx.node
    y = node.outputs[0]
    ct = ctype(y.dtype)
    zero = c_literal(0, ct)
    bvars = [f"b{d}" for d in range(len(pr.batch))]
    loops = tuple((v, n) for v, n in zip(bvars, pr.batch) if n > 1)
    bidx: list[str | int] = [v if n > 1 else 0 for v, n in zip(bvars, pr.batch)]
    nb = len(pr.batch)

    def a_at(kexpr: str | int) -> str:
        return at("x0", bidx + ["i", kexpr], pr.a)

    def b_at(kexpr: str | int, j: str | int = "j") -> str:
        return at("x1", bidx + [kexpr, j], pr.b)

    y_ij = at("y0", bidx + ["i", "j"], pr.y)
    c_term = None
    if c_strides is not None and beta != 0:
        c = at("x2", ["i", "j"], c_strides)
        c_term = c if beta == 1 else f"{c_literal(beta, ct)} * {c}"
    used = {"x0", "x1"} | ({"x2"} if c_term else set())

    act = _activation(node, ct, "v")

    def epilogue(prod: str, c: str | None) -> list[str]:
        """Statements storing act(alpha * prod + c) into Y[i, j]."""
        v = prod if alpha == 1 else f"{c_literal(alpha, ct)} * {prod}"
        v = v if c is None else f"{v} + {c}"
        return [f"{y_ij} = {v};"] if act is None else [f"const {ct} v = {v};", f"{y_ij} = {act};"]

    def kvar(u: int) -> str:
        return "k" if u == 0 else f"(k + {u})"

    b_k, b_n = pr.b[nb], pr.b[nb + 1]
    if pr.b_splat:
        form = "rowsum"
    elif pr.N > 1 and (b_n == 1 or b_k != 1):   # B' walks n contiguously (or neither way)
        form = "ikj"
    else:
        form = "dot"
    nt = _column_tile(pr, y.dtype.itemsize)
    outer = tuple((v, n, 1) for v, n in loops)
    tile_pre: tuple[str, ...] = ()
    j0, j1 = "0", str(pr.N)
    if nt < pr.N:
        outer += (("jb", pr.N, nt),)
        j0, j1 = "jb", "je"
        tile_pre = (f"const int32_t je = jb + {nt};" if pr.N % nt == 0 else
                    f"const int32_t je = jb + {nt} < {pr.N} ? jb + {nt} : {pr.N};",)
    params: dict[str, Any] = dict(form=form, outer=outer, tile_pre=tile_pre, j0=j0, j1=j1,
                                  M=pr.M, N=pr.N, K=pr.K, ct=ct)
    if form == "ikj":
        u = 4 if pr.K >= 4 else 1
        k_main = pr.K - pr.K % u if u > 1 else 0
        if alpha == 1:   # Y starts at beta * C; the epilogue only applies the activation
            init, epi = c_term or zero, (epilogue("acc", None) if act else [])
        else:
            init, epi = zero, epilogue("acc", c_term)
        params.update(y=y_ij, init=init, U=u, K_main=k_main, epilogue=tuple(epi),
                      a_loads=tuple(f"const {ct} a{t} = {a_at(kvar(t))};" for t in range(u)),
                      rank_terms=" + ".join(f"a{t} * {b_at(kvar(t))}" for t in range(u)),
                      a_load1=f"const {ct} a0 = {a_at('k')};", rank1_terms=f"a0 * {b_at('k')}")
    else:
        u = _lanes(pr.K)
        k_main = pr.K - pr.K % u

        def term(kx: str) -> str:
            return a_at(kx) if form == "rowsum" else f"{a_at(kx)} * {b_at(kx)}"

        if u == 1:
            decl = [f"{ct} acc = {zero};"]
            loops_: list[tuple] = [((level("k", pr.K),), (f"acc += {term('k')};",))]
            done: tuple[str, ...] = ()
        else:
            decl = [f"{ct} s{t} = {zero};" for t in range(u)]
            loops_ = [((level("k", k_main, step=u),),
                       tuple(f"s{t} += {term(kvar(t))};" for t in range(u)))]
            if k_main < pr.K:
                loops_.append(((level("k", pr.K, start=k_main),), (f"s0 += {term('k')};",)))
            done = (f"const {ct} acc = {_sum_tree([f's{t}' for t in range(u)])};",)
        prod = "acc" if form == "dot" else f"acc * {b_at(0, 0)}"
        params.update(sum_decl=tuple(decl), sum_loops=tuple(loops_), sum_done=done,
                      epilogue=tuple(epilogue(prod, c_term)))
    ins = ctx.ins()
    return ctx.desc("matmul", "matmul", inputs=ins, pre=tuple(void_unused(ins, used)), **params)


@lower("Gemm", "onnxcc.FusedGemm", supports=_supports)
def _lower_gemm(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """Y (M, N) = act(alpha * A' B' + beta * C); A' = A or A^T, B' = B or B^T (swapped strides);
    C broadcasts to (M, N) through its strides."""
    if node.outputs[0].type.size == 0:
        return empty_desc(ctx)
    pr = _gemm_product(node, ctx)
    c = node.inputs[2] if len(node.inputs) > 2 else None
    cs = None
    if c is not None:
        cs = broadcast_strides(c.shape, ctx.strides(c), (pr.M, pr.N))
    return product_desc(ctx, pr, alpha=float(attr(node, "alpha")), beta=float(attr(node, "beta")),
                        c_strides=cs)


@lower("MatMul", supports=_supports)
def _lower_matmul(node: Node, ctx: LowerCtx) -> KernelDesc | None:
    """Y (batch..., M, N) = A (batch..., M, K) @ B (batch..., K, N), numpy rules: batch dims
    broadcast (stride 0), a 1-D A is (1, K) and a 1-D B is (K, 1) with that dim dropped from Y."""
    if node.outputs[0].type.size == 0:
        return empty_desc(ctx)
    return product_desc(ctx, _matmul_product(node, ctx))
