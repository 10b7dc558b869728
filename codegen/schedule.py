"""Loop passes: schedule transforms on the loop IR (Halide's and TVM's split / unroll / interchange
/ unroll-and-jam / vectorize), applied to kernels after lowering and before rendering.

Each primitive takes a kernel and the name of a loop variable and returns a new kernel that
computes the same values (tests check equal numerics through the interpreter and the structure
through the text form). The named passes at the bottom (``vectorize``, ``register_block``) choose
the loops from the kernel's shape and are what a target's pipeline lists, as factories with their
parameters: ``vectorize(width=8)``.

Legality: ``split`` and ``unroll`` never change the order of iterations, so they are always
legal. ``unroll_and_jam`` and ``interchange`` reorder iterations; they are applied only to loops
whose iterations write disjoint elements (each iteration stores at indices that contain the loop
variable with a nonzero stride, and no iteration reads what another writes — checked
conservatively: the nest must not read any buffer it writes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from .loops import (Assign, Comment, Const, Decl, Expr, If, Kernel, Load, Loop, Stmt, Store, Var, affine,
                    children, substitute_stmts, uses_var, walk_stmts)


class ScheduleError(ValueError):
    """A loop pass was asked for a transform that does not apply (no such loop, illegal)."""


# ---- locating and rebuilding loops -------------------------------------------------------------
def _map_loop(body: Sequence[Stmt], var: str, fn: Callable[[Loop], list[Stmt]]) -> tuple[list[Stmt], bool]:
    out: list[Stmt] = []
    hit = False
    for s in body:
        if isinstance(s, Loop):
            if s.var.name == var:
                out.extend(fn(s))
                hit = True
                continue
            nb, h = _map_loop(s.body, var, fn)
            hit |= h
            out.append(replace(s, body=nb))
        elif isinstance(s, If):
            t, h1 = _map_loop(s.then, var, fn)
            e, h2 = _map_loop(s.orelse, var, fn)
            hit |= h1 or h2
            out.append(If(s.cond, t, e))
        else:
            out.append(s)
    return out, hit


def rewrite_loop(k: Kernel, var: str, fn: Callable[[Loop], list[Stmt]]) -> Kernel:
    """``k`` with the loop over ``var`` replaced by ``fn(loop)``; ScheduleError if absent."""
    body, hit = _map_loop(k.body, var, fn)
    if not hit:
        raise ScheduleError(f"kernel {k.name} has no loop over {var!r}")
    return replace(k, body=body)


def find_loop(k: Kernel, var: str) -> Loop:
    """The loop over ``var`` in ``k``."""
    for s in walk_stmts(k.body):
        if isinstance(s, Loop) and s.var.name == var:
            return s
    raise ScheduleError(f"kernel {k.name} has no loop over {var!r}")


def _const_trip(lp: Loop) -> int | None:
    if isinstance(lp.start, Const) and isinstance(lp.stop, Const):
        return max(0, (lp.stop.value - lp.start.value + lp.step - 1) // lp.step)
    return None


def _rename_locals(body: Sequence[Stmt], suffix: str) -> list[Stmt]:
    """Copies of ``body`` with every local declared in it renamed (``acc`` -> ``acc_1``), so two
    copies can live in one loop body."""
    env: dict[Var, Expr] = {}
    for s in walk_stmts(body):
        if isinstance(s, Decl):
            env[s.var] = Var(s.var.name + suffix, s.var.dtype)
        elif isinstance(s, Loop):
            env[s.var] = Var(s.var.name + suffix, s.var.dtype)
    out = substitute_stmts(body, env)
    return _rename_targets(out, env)


def _rename_targets(body: list[Stmt], env: dict[Var, Expr]) -> list[Stmt]:
    res: list[Stmt] = []
    for s in body:
        if isinstance(s, Decl) and s.var in env:
            res.append(Decl(env[s.var], s.init))  # type: ignore[arg-type]
        elif isinstance(s, Assign) and s.var in env:
            res.append(Assign(env[s.var], s.value))  # type: ignore[arg-type]
        elif isinstance(s, Loop):
            v = env.get(s.var, s.var)
            res.append(replace(s, var=v, body=_rename_targets(s.body, env)))
        elif isinstance(s, If):
            res.append(If(s.cond, _rename_targets(s.then, env), _rename_targets(s.orelse, env)))
        else:
            res.append(s)
    return res


# ---- primitives ----------------------------------------------------------------------------------
def split(k: Kernel, var: str, factor: int, inner_kind: str = "serial") -> Kernel:
    """Split loop ``var`` (constant bounds, step 1) into ``var_o`` over blocks of ``factor`` and
    ``var_i`` inside (kind ``inner_kind``); a remainder loop runs the last ``n % factor``
    iterations. ``for i in 0..10`` by 4 ==> ``for i_o in 0..2: for i_i in 0..4: body[i=i_o*4+i_i]``
    then ``for i in 8..10: body``."""

    def fn(lp: Loop) -> list[Stmt]:
        n = _const_trip(lp)
        if n is None or lp.step != 1:
            raise ScheduleError(f"split: loop {var} needs constant bounds and step 1")
        if factor <= 1 or n < factor:
            return [lp]
        start = lp.start.value  # type: ignore[union-attr]
        vo, vi = Var(f"{var}_o", lp.var.dtype), Var(f"{var}_i", lp.var.dtype)
        main = n // factor * factor
        body = substitute_stmts(lp.body, {lp.var: affine((vo, factor), vi, start)})
        out: list[Stmt] = [Loop(vo, 0, n // factor, [Loop(vi, 0, factor, body, kind=inner_kind,
                                                           factor=factor if inner_kind != "serial" else 0)])]
        if main < n:
            out.append(Loop(lp.var, start + main, lp.stop, lp.body, kind=lp.kind, factor=lp.factor))
        return out

    return rewrite_loop(k, var, fn)


def unroll(k: Kernel, var: str) -> Kernel:
    """Replace loop ``var`` (constant bounds) by copies of its body, one per iteration (locals
    declared inside renamed per copy)."""

    def fn(lp: Loop) -> list[Stmt]:
        if _const_trip(lp) is None:
            raise ScheduleError(f"unroll: loop {var} needs constant bounds")
        out: list[Stmt] = []
        for n, v in enumerate(range(lp.start.value, lp.stop.value, lp.step)):  # type: ignore[union-attr]
            out.extend(substitute_stmts(_rename_locals(lp.body, f"_{n}"),
                                        {lp.var: Const(v, lp.var.dtype)}))
        return out

    return rewrite_loop(k, var, fn)


def mark(k: Kernel, var: str, kind: str, factor: int = 0) -> Kernel:
    """Set the kind of loop ``var`` (``vectorized`` with a width, ``unrolled``, ``parallel``,
    ``pipelined`` with an initiation interval); the iterations and their order are unchanged."""
    return rewrite_loop(k, var, lambda lp: [replace(lp, kind=kind, factor=factor)])


def plain_loops(k: Kernel) -> Kernel:
    """``k`` with every unrolled or vectorized loop made serial (size mode, ``Target.optimize``:
    a renderer then emits each such loop once, without copies of its body or a remainder
    loop); what the kernel computes is unchanged (a loop's kind never changes its semantics)."""
    def walk(body: Sequence[Stmt]) -> list[Stmt]:
        out: list[Stmt] = []
        for s in body:
            if isinstance(s, Loop):
                kind = "serial" if s.kind in ("unrolled", "vectorized") else s.kind
                s = replace(s, body=walk(s.body), kind=kind,
                            factor=0 if kind == "serial" else s.factor)
            elif isinstance(s, If):
                s = If(s.cond, walk(s.then), walk(s.orelse))
            out.append(s)
        return out

    return replace(k, body=walk(k.body))


def _writes(body: Sequence[Stmt]) -> set[int]:
    return {id(s.buf) for s in walk_stmts(body) if isinstance(s, Store)}


def _reads(body: Sequence[Stmt]) -> set[int]:
    out: set[int] = set()

    def visit(e: Expr) -> None:
        if isinstance(e, Load):
            out.add(id(e.buf))
        for c in children(e):
            visit(c)

    for s in walk_stmts(body):
        for e in _stmt_exprs(s):
            visit(e)
    return out


def _stmt_exprs(s: Stmt) -> list[Expr]:
    if isinstance(s, Store):
        return list(s.index) + [s.value]
    if isinstance(s, Decl):
        return [s.init]
    if isinstance(s, Assign):
        return [s.value]
    if isinstance(s, Loop):
        return [s.start, s.stop]
    if isinstance(s, If):
        return [s.cond]
    return []


def _independent(lp: Loop) -> bool:
    """True when iterations of ``lp`` may be reordered: each store indexes ``lp.var`` and the
    loop reads no buffer it writes (by identity or by storage)."""
    stores = [s for s in walk_stmts(lp.body) if isinstance(s, Store)]
    if not stores or any(not any(uses_var(i, lp.var) for i in s.index) for s in stores):
        return False
    written = {(s.buf.space, s.buf.index, s.buf.offset) for s in stores}
    for s in walk_stmts(lp.body):
        for e in _stmt_exprs(s):
            for ld in _loads(e):
                if (ld.buf.space, ld.buf.index, ld.buf.offset) in written and ld.buf.space != "weight":
                    return False
    return True


def _loads(e: Expr) -> list[Load]:
    out = [e] if isinstance(e, Load) else []
    for c in children(e):
        out.extend(_loads(c))
    return out


def unroll_and_jam(k: Kernel, var: str, factor: int) -> Kernel:
    """Register blocking: split loop ``var`` by ``factor`` and interleave the ``factor`` copies of
    its body statement by statement, fusing copies of inner loops with equal bounds into one
    loop (so ``for j: acc = 0; for k: acc += a[j,k]*b[k]; y[j] = acc`` by 2 ==>
    ``for j_o: acc_0 = 0; acc_1 = 0; for k: acc_0 += …; acc_1 += …; y[2j] = acc_0; y[2j+1] = acc_1``:
    each ``b[k]`` load feeds two multiply-adds). Requires independent iterations (see module
    docstring); a remainder loop keeps the last ``n % factor`` iterations as they were."""

    def fn(lp: Loop) -> list[Stmt]:
        n = _const_trip(lp)
        if n is None or lp.step != 1:
            raise ScheduleError(f"unroll_and_jam: loop {var} needs constant bounds and step 1")
        if not _independent(lp):
            raise ScheduleError(f"unroll_and_jam: iterations of loop {var} are not independent")
        if factor <= 1 or n < factor:
            return [lp]
        start = lp.start.value  # type: ignore[union-attr]
        vo = Var(f"{var}_o", lp.var.dtype)
        copies = [substitute_stmts(_rename_locals(lp.body, f"_{c}"),
                                   {lp.var: affine((vo, factor), start + c)})
                  for c in range(factor)]
        out: list[Stmt] = [Loop(vo, 0, n // factor, _jam(copies))]
        if n % factor:
            out.append(Loop(lp.var, start + n // factor * factor, lp.stop, lp.body, kind=lp.kind,
                            factor=lp.factor))
        return out

    return rewrite_loop(k, var, fn)


def _jam(copies: list[list[Stmt]]) -> list[Stmt]:
    """Interleave equally shaped statement lists; loops at the same position with equal bounds
    are fused (their bodies jammed recursively)."""
    out: list[Stmt] = []
    for group in zip(*copies):
        first = group[0]
        if isinstance(first, Loop) and all(
                isinstance(s, Loop) and s.start == first.start and s.stop == first.stop
                and s.step == first.step for s in group):
            common = Var(_base(first.var.name), first.var.dtype)
            bodies = [substitute_stmts(s.body, {s.var: common}) for s in group]  # type: ignore[union-attr]
            out.append(replace(first, var=common, body=_jam(bodies)))
        else:
            out.extend(group)
    return out


def _base(name: str) -> str:
    """A renamed loop variable's original name (``k_0`` -> ``k``)."""
    head, _, tail = name.rpartition("_")
    return head if head and tail.isdigit() else name


# ---- named passes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoopPass:
    """A named kernel transform, as a target's pipeline lists it (``vectorize[width=8]``)."""

    name: str
    fn: Callable[[Kernel], Kernel]

    def __call__(self, k: Kernel) -> Kernel:
        return self.fn(k)


def _innermost_loops(body: Sequence[Stmt]) -> list[Loop]:
    out: list[Loop] = []
    for s in walk_stmts(body):
        if isinstance(s, Loop) and not any(isinstance(t, Loop) for t in walk_stmts(s.body)):
            out.append(s)
    return out


def _contiguous_store(lp: Loop) -> bool:
    """True when every store of ``lp`` writes with unit stride in ``lp.var`` (last index is the
    loop variable plus terms without it, and the buffer's last stride is 1)."""
    stores = [s for s in lp.body if isinstance(s, Store)]
    if not stores or len(stores) != len([s for s in walk_stmts(lp.body) if isinstance(s, Store)]):
        return False
    for s in stores:
        if not s.index or s.buf.strides[-1] != 1:
            return False
        last = s.index[-1]
        if not (last == lp.var or (uses_var(last, lp.var) and _affine_unit(last, lp.var))):
            return False
        if any(uses_var(i, lp.var) for i in s.index[:-1]):
            return False
    return True


def _affine_unit(e: Expr, v: Var) -> bool:
    from .loops import Binary

    if e == v:
        return True
    if isinstance(e, Binary) and e.op in ("add", "sub"):
        a, b = uses_var(e.a, v), uses_var(e.b, v)
        if a and not b:
            return _affine_unit(e.a, v)
        if b and not a and e.op == "add":
            return _affine_unit(e.b, v)
    return False


def vectorize(width: int) -> LoopPass:
    """Mark each innermost loop that stores contiguously in its variable and runs at least
    ``width`` iterations as ``vectorized(width)``: the LLVM renderer asks its loop vectorizer for
    that width; the C renderer leaves the loop plain for the C compiler's vectorizer."""

    def fn(k: Kernel) -> Kernel:
        for lp in _innermost_loops(k.body):
            n = _const_trip(lp)
            if lp.kind == "serial" and n is not None and n >= width and _contiguous_store(lp):
                k = mark(k, lp.var.name, "vectorized", width)
        return k

    return LoopPass(f"vectorize[width={width}]", fn)


def register_block(blocks: Sequence[tuple[str, int]], ops: Sequence[str] = ()) -> LoopPass:
    """Register blocking of direct convolution (and any kernel of ``ops``; every kernel when
    empty): :func:`unroll_and_jam` of each ``(loop variable, factor)`` in order, e.g.
    ``[("ow", 8), ("m", 8)]`` gives 8 x 8 accumulators per output tile: 8 consecutive output
    columns (one vector load of x feeds 8 multiply-adds after LLVM's SLP vectorizer packs them)
    times 8 output channels (one weight broadcast feeds 8 columns). A loop that is absent, too
    short or not provably independent is left as it is. Each output keeps its summation order,
    so results are bit-identical. The direct-convolution register tile of Georganas et al.,
    "Anatomy of High-Performance Deep Learning Convolutions on SIMD Architectures" (SC'18)."""

    def fn(k: Kernel) -> Kernel:
        if ops and k.op not in ops:
            return k
        for var, factor in blocks:
            try:
                k = unroll_and_jam(k, var, factor)
            except ScheduleError:
                continue
        return k

    text = ",".join(f"{v}:{f}" for v, f in blocks)
    return LoopPass(f"register_block[{text}]", fn)


def apply_passes(k: Kernel, passes: Sequence[LoopPass], *, check: bool = False) -> Kernel:
    """Run ``passes`` over ``k`` in order (``check``: verify after each, as tests do)."""
    from .verify import verify_kernel

    for p in passes:
        k = p(k)
        if check:
            verify_kernel(k)
    return k


def pipeline(ii: int | dict[str, int] = 1) -> LoopPass:
    """HLS: in each loop nest of the kernel, mark the loop over outputs -- the deepest loop of
    the nest's perfect prefix, the first whose body is more than one loop -- as
    ``pipelined(ii)``. Vitis HLS then unrolls every loop inside it (the reduction over taps and
    channels: one multiplier per product) and starts one output every ``ii`` cycles; ``ii`` is
    the reuse factor, the number of products each multiplier computes per output (hls4ml's
    ``ReuseFactor``); a dict gives it per node name (others: 1). Kinds and iterations are
    otherwise unchanged, so any back end computes the same values."""

    def visit(body: list[Stmt], ii: int) -> list[Stmt]:
        out: list[Stmt] = []
        for s in body:
            if isinstance(s, Loop):
                inner = [t for t in s.body if not isinstance(t, Comment)]
                if len(inner) == 1 and isinstance(inner[0], Loop):
                    s = replace(s, body=visit(s.body, ii))
                else:
                    s = replace(s, kind="pipelined", factor=ii)
            out.append(s)
        return out

    def fn(k: Kernel) -> Kernel:
        n = ii.get(k.node, 1) if isinstance(ii, dict) else ii
        return replace(k, body=visit(k.body, n))

    return LoopPass(f"pipeline[ii={ii}]", fn)
