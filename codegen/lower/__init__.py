"""Lowering: a graph node -> a loop-IR :class:`~onnxcc.codegen.loops.Kernel`, once per op family,
for every target (no strings of any language here).

A lowering is registered per op with :func:`lower` and receives the node and a
:class:`LowerCtx`, which hands out the node's tensors as placed buffers (``ctx.input(k)``,
``ctx.output(k)``): arena offset, graph input/output or weight from the memory plan, constants as
weight buffers (a splat as one element read through strides of 0). It returns a Kernel, or None
when the memory plan made the node free (a view aliased onto its input). ``supports(node)``
returns the reason a node's attributes or dtypes are outside what the lowering handles.

Families live in sibling modules, imported by :func:`registry`; ``lower_program`` turns a
planned graph into a :class:`~onnxcc.codegen.loops.Program`.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Sequence

import numpy as np

from onnxcc.codegen.loops import (Buffer, DType, Kernel, Load, Loop, Program, Stmt, Store, Var,
                                  prune_kernel, stmt_exprs, substitute_stmts, walk_exprs,
                                  walk_stmts)
from onnxcc.ir import Graph, Node, Value

DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
          "int64", "uint64", "bool")
Lowering = Callable[[Node, "LowerCtx"], "Kernel | None"]
Supports = Callable[[Node], "str | None"]
LOWERINGS: dict[str, Lowering] = {}
SUPPORTS: dict[str, Supports] = {}
FAMILIES = ("elementwise", "matmul", "nn", "tensor", "reduce", "norm", "quant", "table",
            "rnn", "loss", "indexing", "bitwise", "matrix",
            "cumulative", "activation", "selection", "signal", "linalg", "ml", "ml_svm", "sampling",
            "ml_trees", "attention", "quant_softmax", "quant_pool")
_loaded = False


def lower(*ops: str, supports: Supports | None = None) -> Callable[[Lowering], Lowering]:
    """Register a loop-IR lowering for ``ops`` (with an optional ``supports`` check)."""

    def deco(fn: Lowering) -> Lowering:
        for op in ops:
            LOWERINGS[op] = fn
            if supports is not None:
                SUPPORTS[op] = supports
        return fn

    return deco


def registry() -> dict[str, Lowering]:
    """Every loop-IR lowering by op name (imports the family modules on first use)."""
    global _loaded
    if not _loaded:
        _loaded = True
        for fam in FAMILIES:
            importlib.import_module(f"{__name__}.{fam}")
    return LOWERINGS


def unsupported_reason(node: Node) -> str | None:
    """Why ``node`` has no loop-IR lowering, or None when it has one."""
    reg = registry()
    if node.op not in reg:
        return "no loop-IR lowering for this op yet"
    for v in list(node.inputs) + list(node.outputs):
        if v is not None and v.dtype.name not in DTYPES:
            return f"dtype {v.dtype.name} of {v.name!r} is not supported"
    if (why := _float16_reason(node)) is not None:
        return why
    check = SUPPORTS.get(node.op)
    return check(node) if check else None


# Ops whose kernels read or write float16 (a storage type in the loop IR: loads, stores, casts);
# every other op computes float16 tensors in float32 (passes.float16_compute rewrites them).
# Slice and InsertSlice only copy (the patch pass cuts float16 inputs into patches with them).
FLOAT16_OPS = frozenset({"Cast", "CastLike", "BitCast", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
                         "Identity", "Dropout", "Slice", "onnxcc.InsertSlice",
                         "onnxcc.FusedElementwise"})


def _float16_reason(node: Node) -> str | None:
    """Why ``node`` cannot have float16 tensors (None when it has none, or only where its kernel
    casts or moves them): an op outside :data:`FLOAT16_OPS`, or a fused elementwise step other
    than Cast/CastLike that reads or yields float16."""
    f16 = [v for v in [*node.inputs, *node.outputs] if v is not None and v.dtype == np.float16]
    if not f16:
        return None
    why = (f"dtype float16 of {f16[0].name!r}: {node.op} computes float16 only in float32, and "
           f"its float32 form does not type-check here; cast to float32 before it")
    if node.op not in FLOAT16_OPS:
        return why
    if node.op != "onnxcc.FusedElementwise":
        return None
    import onnx

    dts = []
    for s, (op, attrs, args) in enumerate(node.attrs["body"]):
        a = [node.inputs[k].dtype if k >= 0 else dts[-k - 1] for k in args]
        if op == "Cast":
            out = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(dict(attrs)["to"]))
        elif op == "CastLike":
            out = a[1]
        elif op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And",
                    "Or", "Xor", "IsNaN", "IsInf"):
            out = np.dtype(bool)
        else:
            out = a[1] if op == "Where" else a[0]
        if s == len(node.attrs["body"]) - 1:
            out = node.outputs[0].dtype
        if op not in ("Cast", "CastLike") and (np.float16 in a or out == np.float16):
            return why
        dts.append(out)
    return None


def is_splat(a: np.ndarray) -> bool:
    """True when every element of ``a`` is equal (cheap for 0-stride views); NaN is not a splat."""
    if a.size <= 1:
        return True
    if all(s == 0 for s in a.strides):
        return True
    flat = a.reshape(-1)
    return bool(np.all(flat == flat[0])) and not np.isnan(flat[0])


SHORT_REDUCTION = 32    # LowerCtx.register_tile: multiply-adds per output of a short reduction


class LowerCtx:
    """What a lowering may ask about the graph: the node's tensors as placed buffers.

    ``storage`` maps a value name to its planned place (``onnxcc.passes.plan_memory.Buffer``:
    space, index, offset bytes); ``weights`` caches one weight Buffer per constant value so that
    kernels sharing a constant share its storage; ``target`` (a Target or None) may choose
    between equivalent nests (``Target.register_tile``), never change what is computed.
    """

    def __init__(self, node: Node, storage: dict[str, Any] | None = None,
                 weights: dict[int, Buffer] | None = None, target: Any = None,
                 graph_weight_bytes: int = 0, graph: Graph | None = None,
                 step: int | None = None) -> None:
        self.node = node
        self.target = target
        #: the planned graph and the node's step in it (None: scratch_fits assumes a gap)
        self.graph, self.step = graph, step
        #: bytes of all the graph's constants as the graph stores them (the fit check's count):
        #: a lowering that may store its weights wider asks whether that still fits the flash
        self.graph_weight_bytes = graph_weight_bytes
        self.storage = storage or {}
        self.weights = {} if weights is None else weights
        self._names = 0

    def buffer(self, v: Value, name: str) -> Buffer:
        """``v`` as the buffer ``name``: a weight for a constant (one element for a splat), else
        where the memory plan put it (the arena when the plan does not know it)."""
        dt = DType.of(v.dtype)
        if v.const is not None:
            key = id(v)
            if key not in self.weights:
                if v.const.size > 1 and is_splat(v.const):
                    data = np.ascontiguousarray(v.const.reshape(-1)[:1])
                    self.weights[key] = Buffer(name, dt, v.shape, (0,) * len(v.shape), "weight",
                                               data=data, value=v.name)
                else:
                    data = np.ascontiguousarray(v.const).reshape(-1)
                    self.weights[key] = Buffer(name, dt, v.shape, None, "weight", data=data,
                                               value=v.name)
            w = self.weights[key]
            return Buffer(name, dt, w.shape, w.strides, "weight", data=w.data, value=v.name)
        b = self.storage.get(v.name)
        if b is None:
            return Buffer(name, dt, v.shape, value=v.name)
        return Buffer(name, dt, v.shape, getattr(b, "strides", None), b.space, b.offset, b.index,
                      value=v.name)

    def scratch_fits(self, nbytes: int) -> bool:
        """Whether a local array of ``nbytes`` adds no bytes to the arena: it stays on the stack
        (at most the target's ``stack_array_bytes``, or a target whose scratch is not in the
        arena), or it fits a gap of the arena at this node's step as planned so far
        (``passes.plan_memory.scratch_fits``). A lowering whose scratch would raise the peak
        may take a smaller block."""
        limit = getattr(self.target, "stack_array_bytes", None)
        if limit is None or nbytes <= limit or not getattr(self.target, "scratch_in_arena",
                                                            False):
            return True
        if self.graph is None or self.step is None or "memory_plan" not in self.graph.meta:
            return True
        from onnxcc.passes.plan_memory import scratch_fits
        return scratch_fits(self.graph, self.step, nbytes)

    @property
    def size(self) -> bool:
        """True when the target compiles for the smallest code (``Target.optimize`` is
        ``size``): lowerings then take their smallest nest (see ``Target``)."""
        return bool(getattr(self.target, "size_mode", False))

    def vector_lanes(self) -> int:
        """float32 lanes of the target's vector registers when it register-tiles (its
        ``register_tile`` is set: LLVM targets), else 0 (C targets, no target)."""
        if self.target is None or not getattr(self.target, "register_tile", None):
            return 0
        return self.target.vector_registers()[0]

    def register_tile(self, rows: int, cols: int, depth: int = 0, short: bool = False
                      ) -> tuple[int, int, int] | None:
        """(tile rows, tile columns, lanes) for an output of ``rows`` x ``cols`` accumulated in
        vector registers along the columns (``Target.register_tile``) over a reduction of
        ``depth`` multiply-adds per output (0: unknown), or None when the target has no
        register tile or ``cols`` is under one vector. Fewer column vectors when ``cols``
        fills half the tile or less; at most ``Target.short_reduction_rows`` rows when
        ``depth`` is at most SHORT_REDUCTION or ``short`` is set; rows from
        ``Target.tile_rows`` (the least waste)."""
        lanes = self.vector_lanes()
        if not lanes or cols < lanes:
            return None
        tp, tn = self.target.register_tile
        if short or 0 < depth <= SHORT_REDUCTION:
            tp = min(tp, self.target.short_reduction_rows)
        while tn > lanes and cols <= tn // 2:
            tn //= 2
        return self.target.tile_rows(tp, rows), tn, lanes

    def input(self, k: int, name: str | None = None) -> Buffer:
        """Input ``k`` of the node as buffer ``x{k}``."""
        return self.buffer(self.node.inputs[k], name or f"x{k}")

    def output(self, k: int, name: str | None = None) -> Buffer:
        """Output ``k`` of the node as buffer ``y{k}``."""
        return self.buffer(self.node.outputs[k], name or f"y{k}")

    def var(self, prefix: str = "i") -> Var:
        """A fresh loop variable ``{prefix}{n}``."""
        self._names += 1
        return Var(f"{prefix}{self._names - 1}")

    def same_storage(self, a: Value, b: Value, byte_offset: int = 0) -> bool:
        """True when the plan put ``a`` at ``byte_offset`` inside ``b``'s storage."""
        ba, bb = self.storage.get(a.name), self.storage.get(b.name)
        return (ba is not None and bb is not None and ba.space == bb.space
                and ba.index == bb.index and ba.offset == bb.offset + byte_offset)

    def kernel(self, name: str, outputs: list[Buffer], inputs: list[Buffer], body: list[Stmt],
               **kw: Any) -> Kernel:
        """A Kernel for this node (op and node name filled in)."""
        return Kernel(name, outputs, inputs, body, op=self.node.op, node=self.node.name, **kw)


# ---- loop-nest helpers shared by families ------------------------------------------------------
def broadcast_view(b: Buffer, out_shape: Sequence[int]) -> Buffer:
    """``b`` read broadcast (numpy rules) to ``out_shape``: a view with 0 strides on broadcast
    dims and leading dims."""
    pad = len(out_shape) - len(b.shape)
    st = [0] * pad + [0 if d == 1 else s for d, s in zip(b.shape, b.strides)]
    return Buffer(b.name, b.dtype, tuple(out_shape), tuple(st), b.space, b.offset, b.index,
                  b.data, b.value)


def merged_views(bufs: Sequence[Buffer]) -> list[Buffer]:
    """Views of same-shaped buffers with unit dims dropped and adjacent dims merged where every
    buffer walks them contiguously (0-stride dims merge with 0-stride dims), so an elementwise
    op over equal shapes is one loop."""
    shape = bufs[0].shape
    keep = [k for k, d in enumerate(shape) if d != 1]
    shp = [shape[k] for k in keep]
    sts = [[b.strides[k] for k in keep] for b in bufs]
    k = len(shp) - 2
    while k >= 0:
        if all(s[k] == s[k + 1] * shp[k + 1] for s in sts):
            shp[k] *= shp[k + 1]
            for s in sts:
                s[k] = s[k + 1]
                del s[k + 1]
            del shp[k + 1]
        k -= 1
    if not shp:
        shp, sts = [1], [[0] for _ in bufs]
    return [Buffer(b.name, b.dtype, tuple(shp), tuple(s), b.space, b.offset, b.index, b.data,
                   b.value) for b, s in zip(bufs, sts)]


def nest(ctx: LowerCtx, shape: Sequence[int], body: Callable[[list[Var]], list[Stmt]],
         prefix: str = "i") -> list[Stmt]:
    """Serial loops over ``shape`` (outermost first) around ``body(index_vars)``."""
    vs = [ctx.var(prefix) for _ in shape]
    stmts = body(vs)
    for v, n in reversed(list(zip(vs, shape))):
        stmts = [Loop(v, 0, int(n), stmts)]
    return stmts


SCRATCH_MIN_BYTES = 64   # a local array this small stays a local (the C compiler's registers)
STACK_ARRAY_BYTES = 16 * 1024   # host/cpu: the largest local array kept on the stack


def _scratch_in_arena(g: Graph, step: int, k: Kernel, max_bytes: int = SCRATCH_MIN_BYTES,
                      target: Any = None) -> Kernel:
    """``k`` (the kernel of node ``step``) with each local array over ``max_bytes`` moved
    into the arena (``passes.plan_memory.place_scratch``) and passed as one more output
    parameter, so that no kernel keeps a large array on the stack (``Target.stack_array_bytes``
    gives the limit)."""
    from onnxcc.passes.plan_memory import place_scratch

    # size mode: an in-place kernel's plane goes to the arena whatever its size, so the depthwise
    # layers' kernels differ only in integer literals (one shared function, codegen/c/share.py)
    least = 0 if k.inplace and getattr(target, "size_mode", False) else max_bytes
    big = [b for b in k.locals if b.extent * b.dtype.np.itemsize > least]
    if not big:
        return k
    # one block for all of them (each start aligned), placed in the arena at once
    align = g.meta["memory_plan"].alignment
    starts, total = [], 0
    for b in big:
        starts.append(total)
        total += -(-b.extent * b.dtype.np.itemsize // align) * align
    base = place_scratch(g, step, total)
    moved = {b.name: dataclasses.replace(b, space="arena", index=0, offset=base + o)
             for b, o in zip(big, starts)}

    def access(buf: Buffer, idx: tuple) -> tuple[Buffer, tuple]:
        return (moved[buf.name], idx) if buf.space == "local" and buf.name in moved else (buf, idx)

    body = substitute_stmts(k.body, {}, access)
    return dataclasses.replace(k, body=body, outputs=k.outputs + list(moved.values()),
                               locals=[b for b in k.locals if b.name not in moved])


def lower_program(g: Graph, name: str | None = None, target: Any = None) -> Program:
    """The planned graph ``g`` (after plan_memory) as a Program: one kernel per node that needs
    code (dead code and unread inputs pruned; a kernel left without a store, as over zero-size
    tensors, is dropped), in schedule order, and a copy kernel for each graph output the plan could not place in
    its output buffer. ``target`` may pick faster equivalent nests (see LowerCtx). Raises
    UnsupportedOpError listing every node without a lowering."""
    from onnxcc.errors import UnsupportedOpError

    plan = g.meta["memory_plan"]
    reg = registry()
    problems = [(n.name, n.op, why) for n in g.nodes if (why := unsupported_reason(n))]
    if problems:
        raise UnsupportedOpError(problems)
    weights: dict[int, Buffer] = {}
    canonical: dict[tuple, np.ndarray] = {}
    kernels: list[Kernel] = []
    consts = {id(v): v for n in g.nodes for v in n.inputs if v is not None and v.const is not None}
    wbytes = sum(int(np.asarray(v.const).nbytes) for v in consts.values())
    for idx, n in enumerate(g.nodes):
        ctx = LowerCtx(n, plan.buffers, weights, target, wbytes, g, idx)
        k = reg[n.op](n, ctx)
        if k is not None:
            k.name = f"k{idx}"
            k = prune_kernel(k)
            _share_weight_data(k, canonical)
            limit = getattr(target, "stack_array_bytes", None)
            if limit is not None:
                k = _scratch_in_arena(g, idx, k, limit, target)
            if any(isinstance(s, Store) for s in walk_stmts(k.body)):   # else all zero-size
                kernels.append(k)
    ins = [Buffer(f"input{k}", DType.of(v.dtype), v.shape, space="input", index=k, value=v.name)
           for k, v in enumerate(g.inputs)]
    outs = [Buffer(f"output{k}", DType.of(v.dtype), v.shape, space="output", index=k,
                   value=v.name) for k, v in enumerate(g.outputs)]
    for k, v in enumerate(g.outputs):
        b = plan.buffers.get(v.name)
        if b is not None and b.space == "output" and b.index == k and b.offset == 0:
            continue
        if v.type.size == 0:
            continue
        ctx = LowerCtx(Node("Identity", [v], [v], {}, f"copy_output{k}"), plan.buffers, weights)
        src = ctx.buffer(v, "x0")
        dst = Buffer("y0", src.dtype, v.shape, None, "output", 0, k, value=v.name)
        views = merged_views([dst, src])
        body = nest(ctx, views[0].shape, lambda i: [Store(views[0], tuple(i), views[1][tuple(i)])])
        kernels.append(Kernel(f"k_out{k}", [views[0]], [views[1]], body, op="copy",
                              node=f"graph output {v.name}"))
    return Program(name or g.name, kernels, ins, outs, plan.arena_size, max(plan.alignment, 8))


def _share_weight_data(k: Kernel, canonical: dict[tuple, np.ndarray]) -> None:
    """Point each weight buffer of ``k`` at the one array of its content (``canonical``: dtype,
    shape and bytes -> array, Program-wide), so that the emitters, which store a weight once per
    data array, store equal compile-time weights once: the kernels of a patched layer each pack
    the same weights again (ResNet-8 on cortex-m4 stored its packed float weights 4 times:
    372,840 bytes for 312,360 of data)."""
    bufs = {id(b): b for b in k.params}
    for s in walk_stmts(k.body):
        for e in stmt_exprs(s):
            bufs.update((id(x.buf), x.buf) for x in walk_exprs(e) if isinstance(x, Load))
    for b in bufs.values():
        if b.space != "weight" or b.data is None:
            continue
        data = np.asarray(b.data)
        if not data.flags.c_contiguous:   # a splat's 0-stride view: tobytes would expand it
            continue
        key = (data.dtype.str, data.shape, data.tobytes())
        b.data = canonical.setdefault(key, b.data)


def float16_weights(k: Kernel, names: set[str], cache: dict[int, np.ndarray]) -> Kernel:
    """``k`` with each float32 weight buffer holding a value of ``names`` (float16 constants
    that ``passes.float16_compute`` widened, or a lowering's packed copy of one; more than one
    element) stored as float16 and each load of it widened, ``Cast(Load(w16), f32)``: exact, as
    every value came from float16 (checked).
    ``cache`` maps id(float32 data) to its float16 copy, so kernels sharing a weight share it.
    A buffer some load reads with a non-constant ``other`` stays float32."""
    from onnxcc.codegen.loops import (F16, F32, Assign, Binary, Call, Cast, Const, Decl, If,
                                      Load, MulAdd, Select, Unary, walk_exprs, stmt_exprs)

    def wanted(b: Buffer) -> bool:   # a lowering's packed copy is named "<value> packed"
        return (b.space == "weight" and b.value.split(" ")[0] in names and b.dtype == F32
                and b.data is not None and b.data.size > 1 and id(b.data) not in inexact)

    inexact: set[int] = set()   # belt and braces: every value must survive float16 exactly
    for b in k.inputs:
        if wanted(b) and id(b.data) not in cache:
            a = np.asarray(b.data)
            with np.errstate(over="ignore"):
                if not np.array_equal(a.astype(np.float16).astype(a.dtype), a, equal_nan=True):
                    inexact.add(id(b.data))

    keep: set[int] = set()
    for s in walk_stmts(k.body):
        for top in stmt_exprs(s):
            for e in walk_exprs(top):
                if isinstance(e, Load) and wanted(e.buf) and e.other is not None \
                        and not isinstance(e.other, Const):
                    keep.add(id(e.buf.data))
    new: dict[int, Buffer] = {}

    def narrow(b: Buffer) -> Buffer | None:
        if not wanted(b) or id(b.data) in keep:
            return None
        if id(b) not in new:
            d = cache.setdefault(id(b.data), np.asarray(b.data).astype(np.float16))
            new[id(b)] = dataclasses.replace(b, dtype=F16, data=d)
        return new[id(b)]

    def ex(e: Any) -> Any:
        if e is None or isinstance(e, (Var, Const)):
            return e
        if isinstance(e, Load):
            idx = tuple(ex(i) for i in e.index)
            b = narrow(e.buf)
            if b is None:
                return Load(e.buf, idx, ex(e.mask), ex(e.other))
            other = None if e.other is None else Const(e.other.value, F16)
            return Cast(Load(b, idx, ex(e.mask), other), F32)
        if isinstance(e, Binary):
            return Binary(e.op, ex(e.a), ex(e.b))
        if isinstance(e, Unary):
            return Unary(e.op, ex(e.a))
        if isinstance(e, Cast):
            return Cast(ex(e.a), e.dtype)
        if isinstance(e, Select):
            return Select(ex(e.cond), ex(e.a), ex(e.b))
        if isinstance(e, MulAdd):
            return MulAdd(ex(e.a), ex(e.b), ex(e.c))
        if isinstance(e, Call):
            return Call(e.fn, tuple(ex(a) for a in e.args), e.dtype)
        raise TypeError(e)

    def st(body: Sequence[Stmt]) -> list[Stmt]:
        out: list[Stmt] = []
        for s in body:
            if isinstance(s, Store):
                out.append(Store(s.buf, tuple(ex(i) for i in s.index), ex(s.value)))
            elif isinstance(s, Decl):
                out.append(Decl(s.var, ex(s.init)))
            elif isinstance(s, Assign):
                out.append(Assign(s.var, ex(s.value)))
            elif isinstance(s, Loop):
                out.append(dataclasses.replace(s, start=ex(s.start), stop=ex(s.stop),
                                               body=st(s.body)))
            elif isinstance(s, If):
                out.append(If(ex(s.cond), st(s.then), st(s.orelse)))
            else:
                out.append(s)
        return out

    if not any(wanted(b) for b in k.inputs):
        return k
    body = st(k.body)
    if not new:
        return k
    inputs = [new.get(id(b)) or narrow(b) or b for b in k.inputs]
    return dataclasses.replace(k, body=body, inputs=inputs)


def lower_for_target(g: Graph, target: Any, name: str | None = None,
                     loop_passes: Sequence[Any] | None = None) -> Program:
    """The Program every back end renders for the planned graph ``g``: :func:`lower_program`,
    then ``target.loop_passes`` (or ``loop_passes`` when given) on every kernel (in size mode
    then ``codegen.schedule.plain_loops``), then :func:`onnxcc.codegen.verify.verify`
    (every access provably inside its buffer after the passes). Raises UnsupportedOpError
    listing every node without a lowering; VerifyError (a compiler bug) when a pass broke a
    kernel."""
    import dataclasses

    from onnxcc.codegen.schedule import apply_passes
    from onnxcc.codegen.verify import verify

    program = lower_program(g, name, target)
    passes = list(loop_passes if loop_passes is not None else
                  (getattr(target, "loop_passes", []) or []))
    if getattr(target, "size_mode", False) and getattr(target, "backend", "") != "hls":
        from onnxcc.codegen.schedule import plain_loops

        passes.append(plain_loops)   # size mode: no unrolled copies, no vector remainders
    if passes:
        program = dataclasses.replace(program, kernels=[prune_kernel(apply_passes(k, passes))
                                                        for k in program.kernels])
    names = g.meta.get("float16_weights")
    if names:   # float16 constants widened by passes.float16_compute: stored as float16 again
        cache: dict[int, np.ndarray] = {}
        program = dataclasses.replace(program, kernels=[float16_weights(k, names, cache)
                                                        for k in program.kernels])
    verify(program)
    return program
