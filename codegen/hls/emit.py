"""The HLS emitter: a planned Graph and its Program -> a Vitis HLS project folder.

Files (io_parallel):

- ``firmware/<m>.cpp``: one ``static`` function per kernel (rendered from the loop IR by
  :mod:`onnxcc.codegen.hls.render`) and the top function ``<m>`` over arrays, with
  ``#pragma HLS INTERFACE`` on its ports; every tensor is an array of its own type (views share
  their input's);
- ``firmware/<m>.h`` (the top's prototype and sizes), ``firmware/defines.h`` (the typedefs),
  ``firmware/weights/w<k>.h`` (each constant as a ``static const`` array of its type, values
  written exactly);
- ``<m>_bridge.cpp``: the float C-simulation entry ``<m>_csim`` that ``CompiledModel.run()``
  builds with g++ (not synthesized);
- ``<m>_test.cpp`` and ``tb_data/``: a test bench comparing the design with onnxcc's
  fixed-point reference on seeded random inputs (an integer design: random integers of its
  port types and onnxcc's interpreter on the integer graph), so ``csim_design`` checks itself;
- ``build_prj.tcl``: csim, csynth, cosim and IP export for the target's part and clock;
- ``<m>.json``: the manifest (target, types, files) by which a later save knows its files.

Every name from the model reaches the C++ only through :class:`onnxcc.codegen.names.Namer`
(C++ rules) or a sanitized comment; the TCL holds only the sanitized prefix and the part.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any, Sequence

import jinja2
import numpy as np

from onnxcc.codegen.c.emit import comment_text
from onnxcc.codegen.loops import Buffer, Kernel, Program
from onnxcc.codegen.names import CXX_RULES, Namer
from onnxcc.codegen.requantize import C_HELPER
from onnxcc.errors import UnsupportedOpError
from onnxcc.ir import Graph

from .fixed import BOOL_TYPE, FixedType, Precision, const_type
from .reference import reference, unsupported_reason
from .estimate import (PARTITION_LIMIT, LayerEstimate, bram18, estimate_kernel, totals)
from .render import (INT_CTYPE, ArrayRef, KernelRenderer, float_literal, float_literals,
                     unsupported)

TEMPLATES = Path(__file__).parent / "templates"
TB_SAMPLES = 4   # test-bench samples written to tb_data
C_WIDTH = {"int8_t": 8, "uint8_t": 8, "int16_t": 16, "uint16_t": 16, "int": 32, "unsigned": 32,
           "long long": 64, "unsigned long long": 64, "bool": 1}


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


#: the requantize intrinsic in C++ (the C back end's helper: the same text, the same bits)
REQUANTIZE_CXX = C_HELPER


def integer_reference(g: Graph, inputs: dict) -> dict[str, np.ndarray]:
    """The integer path's reference: onnxcc's numpy interpreter on the integer graph ``g``
    (int8/uint8 tensors, int32 accumulators, the requantization of
    ``onnxcc.codegen.requantize``), each output as float64."""
    from onnxcc.interpreter import interpret

    out = interpret(g, inputs)
    return {v.name: np.asarray(out[v.name], np.float64) for v in g.outputs}


def native_kernels(g: Graph, program: Program) -> set[str]:
    """Names of the kernels of integer-path nodes (``reference.integer_node``): their float
    steps (QLinearAdd's and QLinearConcat's float32 rescaling) render as C float, the C back
    end's arithmetic, rather than as ap_fixed."""
    from .reference import INTEGER_OPS, integer_node

    nodes = {n.name: n for n in g.nodes}
    return {k.name for k in program.kernels if k.node in nodes and
            integer_node(nodes[k.node]) and nodes[k.node].op in INTEGER_OPS}


def check_hls(g: Graph, program: Program | None = None) -> None:
    """Raise UnsupportedOpError listing every node of ``g`` (and kernel of ``program``) without
    a fixed-point HLS form, and every graph output that is not a float tensor, before any file
    is written."""
    problems = [(n.name, n.op, why) for n in g.nodes if (why := unsupported_reason(n))]
    problems += [(v.name, "graph output", "FPGA designs output fixed-point (float) tensors, or "
                  "the int8/uint8 tensors of a quantized model")
                 for v in g.outputs if v.dtype.kind != "f" and v.dtype not in (np.int8, np.uint8)]
    if program is not None and not problems:
        native = native_kernels(g, program)
        problems = [(k.node, k.op, why) for k in program.kernels
                    if (why := unsupported(k, native=k.name in native))]
    if problems:
        raise UnsupportedOpError(problems)


class _Layout:
    """Where every buffer of the Program lives in the C++: arrays and their types."""

    def __init__(self, g: Graph, program: Program, prec: Precision, namer: Namer,
                 native_weights: frozenset[int] | set[int] = frozenset()) -> None:
        plan = g.meta["memory_plan"]
        self.prec, self.namer = prec, namer
        self.typedefs: list[str] = []
        self.types: dict[str, FixedType] = {}   # typedef name -> its type
        self.what = {}
        self.ports: list[tuple[str, str, int, bool, str]] = []   # name, type, size, out, value
        self.io: dict[tuple[str, int], ArrayRef] = {}
        for role, vals in (("in", g.inputs), ("out", g.outputs)):
            for k, v in enumerate(vals):
                tname = ("input" if role == "in" else "result") + (f"{k}" if len(vals) > 1 else "")
                t = self.typedef(f"{tname}_t", prec.values[v.name], f"graph {role}put {v.name}")
                name = namer.user(v.name, role)
                self.io[(role + "put", k)] = ArrayRef(name, t, 0)
                self.ports.append((name, t, max(math.prod(v.shape), 1), role == "out", v.name))
                self.what[name] = repr(v.name)
        # arena groups: one array each, typed by the group's root value
        base: dict[str, int] = {}
        end: dict[str, int] = {}
        for vname, b in plan.buffers.items():
            if b.space != "arena":
                continue
            root = plan.groups[vname]
            base[root] = min(base.get(root, b.offset), b.offset)
            end[root] = max(end.get(root, 0), b.offset + b.size)
        self.groups: dict[str, tuple[ArrayRef, int]] = {}   # root -> (array, elements)
        shapes = {v.name: tuple(v.shape) for v in g.values()}
        # bytes per element of each group (the plan's offsets and sizes are in bytes): 4 for the
        # float tensors (float32 in the plan), 1 for the integer path's int8 tensors
        dtypes = {v.name: v.dtype for v in g.values()}
        self.item = {root: max(np.dtype(dtypes.get(root, np.float32)).itemsize, 1)
                     for root in base}
        self.shapes: dict[str, tuple[int, ...]] = {}   # array -> the shape of the tensor it holds
        for k, root in enumerate(sorted(base, key=lambda r: (base[r], r))):
            t = self.typedef(f"layer{k}_t", prec.values[root], f"tensor {root}")
            n = max((end[root] - base[root]) // self.item[root], 1)
            self.groups[root] = (ArrayRef(f"buf{k}", t, 0), n)
            self.what[f"buf{k}"] = repr(root)
            if math.prod(shapes.get(root, ())) == n:
                self.shapes[f"buf{k}"] = shapes[root]
        self.base, self.plan = base, plan
        self.weights: dict[int, ArrayRef] = {}
        self.weight_files: list[tuple[str, str]] = []
        self.weight_sizes: dict[str, int] = {}
        for k, w in enumerate(program.weights()):
            self.weight_sizes[f"wgt{k}"] = max(int(np.asarray(w.data).size), 1)
            self.what[f"wgt{k}"] = repr(w.value)
            if w.dtype.is_float and id(w) in native_weights:   # read by integer kernels
                self.weights[id(w)] = ArrayRef(f"wgt{k}", "float", 0)
                self.weight_files.append((f"w{k}.h", self._weight_text(k, w, "float", None)))
            elif w.dtype.is_float:
                ft = prec.weight(w.data)
                t = self.typedef(f"weight{k}_t", ft, f"constant {w.value}")
                self.weights[id(w)] = ArrayRef(f"wgt{k}", t, 0, raw=True)
                self.weight_files.append((f"w{k}.h", self._weight_text(k, w, t, ft)))
            else:   # integer constants (the integer path's int8 weights, int32 biases)
                t = INT_CTYPE.get(w.dtype.name, "int")
                self.weights[id(w)] = ArrayRef(f"wgt{k}", t, 0)
                self.weight_files.append((f"w{k}.h", self._weight_text(k, w, t, None)))

    what: dict[str, str]   # array name -> the tensor or constant it holds (for messages)

    def typedef(self, name: str, t: FixedType, what: str) -> str:
        """Declare the C++ type ``name`` for ``t`` in defines.h (``what`` it types, as a
        sanitized comment); returns ``name``."""
        cpp = "bool" if t is BOOL_TYPE else t.cpp()
        self.typedefs.append(f"typedef {cpp} {name};   // {comment_text(what, 100)}")
        self.types[name] = t
        return name

    def arrays(self) -> list[tuple[str, str, int, str]]:
        """Every array of the design: (name, type name, elements, kind) with kind ``port``,
        ``tensor`` or ``weight``."""
        out = [(n, t, size, "port") for n, t, size, _, _ in self.ports]
        out += [(ref.name, ref.ctype, n, "tensor") for ref, n in self.groups.values()]
        out += [(ref.name, ref.ctype, self.weight_sizes[ref.name], "weight")
                for ref in self.weights.values()]
        return out

    def width(self, type_name: str) -> int:
        """Bits of an element of the C++ type ``type_name`` (a typedef or a C integer type)."""
        t = self.types.get(type_name)
        return t.width if t is not None else C_WIDTH.get(type_name, 32)

    @staticmethod
    def _weight_text(k: int, w: Buffer, t: str, ft: FixedType | None) -> str:
        """A weight header: a float constant as the raw integers of its type ``ft`` (``value *
        2**F``, exact; a kernel reads ``onnxcc_raw<T>(w[i])``): integer initializers compile
        in a fraction of the time thousands of ap_fixed constructors take, and synthesize to
        the same ROM."""
        data = np.asarray(w.data).reshape(-1)
        if ft is not None:
            vals = ft.raw(data.astype(np.float64))
            store = "short" if ft.width <= 16 else ("int" if ft.width <= 32 else "long long")
            what = f"raw {t} values (value * 2^{ft.frac})"
        else:
            vals, store, what = data, t, f"{t} values"
        text = [float_literal(float(v)) for v in vals] if t == "float" else \
            [str(int(v)) for v in vals]
        rows = [", ".join(text[i:i + 16]) for i in range(0, len(text), 16)]
        body = ",\n    ".join(rows)
        return (f"// Generated by onnxcc: {comment_text(str(w.value), 100)}, {len(text)} {what}\n"
                f"#ifndef WGT{k}_H\n#define WGT{k}_H\n\nstatic const {store} wgt{k}"
                f"[{max(len(text), 1)}] = {{\n    {body}\n}};\n\n#endif\n")

    def array(self, b: Buffer, kernel_acc: str, k: Kernel) -> ArrayRef:
        if b.space in ("input", "output"):
            ref = self.io[(b.space, b.index)]
            return ArrayRef(ref.name, ref.ctype, b.offset // max(b.dtype.np.itemsize, 1))
        if b.space == "arena":
            root = self.plan.groups[b.value]
            ref, _ = self.groups[root]
            return ArrayRef(ref.name, ref.ctype, (b.offset - self.base[root]) // self.item[root])
        if b.space == "weight":
            return self.weights[id(b)]
        return ArrayRef(f"loc_{b.name}", kernel_acc if b.dtype.is_float else
                        INT_CTYPE[b.dtype.name], 0)

    def size(self, ref: ArrayRef) -> int:
        for r, n in self.groups.values():
            if r.name == ref.name:
                return n
        for name, _, n, _, _ in self.ports:
            if name == ref.name:
                return n
        return 1


def _in_ports(lay: _Layout) -> list:
    """The top's input ports: (name, type, elements, False, tensor)."""
    return [p for p in lay.ports if not p[3]]


def _out_ports(lay: _Layout) -> list:
    """The top's output ports: (name, type, elements, True, tensor)."""
    return [p for p in lay.ports if p[3]]


SHALLOW_FIFO = 2   # a stream between one writer and one reader that reads nothing else
# a streaming layer's line buffer, output row or pixel up to this many elements is partitioned
# into registers; a larger one is block RAM (as a FIFO deeper than this is)
REGISTER_LIMIT = 64


def _pixel_loops(name: str, shape: tuple[int, ...], stmt: str, pad: str = "    ") -> str:
    """``stmt`` (with ``@`` for the element of array ``name``, stored NCHW) over a 4-D tensor
    of ``shape`` in pixel order (n, h, w, then c innermost): the order a 4-D tensor moves in
    between streaming layers."""
    N, C, H, W = shape
    el = f"{name}[((n * {C} + c) * {H} + h) * {W} + w]"
    return (f"for (int n = 0; n < {N}; n++) for (int h = 0; h < {H}; h++) "
            f"for (int w = 0; w < {W}; w++) {{\n{pad}    for (int c = 0; c < {C}; c++) {{\n"
            f"{pad}        ONNXCC_HLS(HLS PIPELINE II=1)\n{pad}        {stmt.replace('@', el)}\n"
            f"{pad}    }}\n{pad}}}")


def pixel_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    """The (1, C, H, W) a tensor of ``shape`` (1, ..., H, W) streams as: the last two axes are
    the rows and columns, every axis between them and the batch one channel axis (so a channel
    shuffle's (1, g, C/g, H, W) and its (1, C, H, W) views move in the same order)."""
    return (1, math.prod(shape[1:-2]), shape[-2], shape[-1])


def _line_plan(r: KernelRenderer, params: list, lay: _Layout, pixel: dict,
               pixel_ports: set[str], port_out: set[str]):
    """The kernel's :class:`~onnxcc.codegen.hls.linebuffer.RowPlan` when the layer can run on a
    line buffer: one streamed input and one output, both 4-D tensors held whole by their arrays
    (offset 0, canonical strides), the input arriving in pixel order and the output feeding
    other layers only (a graph output port keeps the model's NCHW order)."""
    from .linebuffer import row_plan
    from onnxcc.codegen.loops import contiguous_strides

    ins = [p for p in params if not p[3]]
    outs = [p for p in params if p[3]]
    if len(ins) != 1 or len(outs) != 1 or outs[0][0] in port_out:
        return None
    x = y = None
    for b in r.k.params:
        ref = r.arrays(b)
        if b.space in ("weight", "local") or ref.offset:
            continue
        if ref.name == ins[0][0]:
            x = b
        elif ref.name == outs[0][0]:
            y = b
    if x is None or y is None or pixel.get(outs[0][0]) != tuple(y.shape) \
            or y.strides != contiguous_strides(y.shape):
        return None
    if ins[0][0] in pixel_ports:   # an NHWC input port: already pixel order
        if len(x.shape) != 4 or x.strides != (x.shape[1] * x.shape[2] * x.shape[3], 1,
                                              x.shape[3] * x.shape[1], x.shape[1]):
            return None
    elif pixel.get(ins[0][0]) != tuple(x.shape) or x.strides != contiguous_strides(x.shape):
        return None
    return row_plan(r.k, x, y)


def _point_layer(fn: str, plan, r: KernelRenderer, params: list, lay: _Layout,
                 writes_of: dict, pixel_ports: set[str], port_out: set[str], pixel: dict,
                 head: str) -> str | None:
    """The C++ of an elementwise layer that streams element by element (see
    :class:`~onnxcc.codegen.hls.linebuffer.PointPlan`), holding no array: its inputs and output
    must be whole arrays moving in one order (all pixel order with one shape, or all row-major),
    else None."""
    names = {}
    for b in [*plan.reads, plan.write]:
        ref = r.arrays(b)
        if ref.offset or b.space in ("weight", "local"):
            return None
        names[id(b)] = ref
    if any(lay.size(names[id(b)]) != plan.n for b in [*plan.reads, plan.write]):
        return None
    out = names[id(plan.write)].name
    orders = set()
    for b in plan.reads:
        a = names[id(b)].name
        orders.add(("pixel", pixel[a]) if a in pixel else
                   ("pixel-port", None) if a in pixel_ports else ("row", None))
    targets = ([out] if out in port_out else []) + writes_of.get(out, [])
    if out in port_out:
        orders.add(("row", None))
    if writes_of.get(out):
        orders.add(("pixel", pixel[out]) if out in pixel else ("row", None))
    if len(orders) != 1 or ("pixel-port", None) in orders:
        return None
    # each buffer's one-element stand-in is the local v_<array>[1] the layer reads into
    stand = {id(sc): names[orig] for orig, sc in plan.scalars.items()}
    row = KernelRenderer(dataclasses.replace(r.k, body=plan.body),
                         lambda b: (ArrayRef(f"v_{stand[id(b)].name}", stand[id(b)].ctype, 0)
                                    if id(b) in stand else r.arrays(b)),
                         r.acc, r.acc_type, r.const_t, r.native)
    sig, reads = [], []
    for name, t, _, is_out in params:
        if is_out:
            sig += [f"hls::stream<{t}> &w_{name}_{j}" for j in range(len(targets))]
        else:
            sig.append(f"hls::stream<{t}> &r_{name}")
            reads.append(f"{t} v_{name}[1] = {{r_{name}.read()}};")
    t_out = names[id(plan.write)].ctype
    writes = " ".join(f"w_{out}_{j}.write(v_{out}[0]);" for j in range(len(targets)))
    lines = [f"{head}", f"static void {fn}({', '.join(sig)}) {{",
             "    // elementwise: one element of each input in, one out (no array held)",
             f"    for (int i = 0; i < {plan.n}; i++) {{", "        ONNXCC_HLS(HLS PIPELINE II=1)"]
    lines += [f"        {x}" for x in reads] + [f"        {t_out} v_{out}[1];"]
    lines += row.stmts(plan.body, 2)
    lines += [f"        {writes}", "    }", "}"]
    return "\n".join(lines)


def _pixel_move(fn: str, node, r: KernelRenderer, params: list, pixel: dict,
                port_out: set[str], writes_of: dict, head: str) -> tuple[str, int] | None:
    """A Concat over the first channel axis, or a Transpose that permutes channel axes only
    (a channel shuffle), between pixel-ordered streams: each pixel's channel vector is the
    inputs' vectors one after another (Concat: nothing held) or a fixed permutation of the
    input's (Transpose: one pixel held, its order a constant table). Returns (C++ text,
    elements held) or None when the layer is not of that form."""
    if node is None or node.op not in ("Concat", "Transpose"):
        return None
    ins = [p for p in params if not p[3]]
    outs = [p for p in params if p[3]]
    if len(outs) != 1 or outs[0][0] in port_out or outs[0][0] not in pixel \
            or any(p[0] not in pixel for p in ins) or not writes_of.get(outs[0][0]):
        return None
    rank = len(node.outputs[0].shape)
    y = outs[0][0]
    _, C, H, W = pixel[y]
    if rank < 4 or any(pixel[p[0]][2:] != (H, W) for p in ins):
        return None
    targets = writes_of[y]
    sig = []
    for name, t, _, is_out in params:
        sig += [f"hls::stream<{t}> &w_{name}_{j}" for j in range(len(targets))] if is_out \
            else [f"hls::stream<{t}> &r_{name}"]
    t_out = outs[0][1]
    write = " ".join(f"w_{y}_{j}.write(v);" for j in range(len(targets)))
    if node.op == "Concat":
        axis = int(node.attrs.get("axis", 1)) % rank
        # the streams are read in the node's input order, each input once
        data = [b for b in r.k.params if b.space not in ("weight", "local")
                and not any(b is o for o in r.k.outputs)]
        if axis != 1 or [b.value for b in data] != [v.name for v in node.inputs] \
                or [p[0] for p in ins] != [r.arrays(b).name for b in data]:
            return None
        parts = [f"        for (int c = 0; c < {pixel[n][1]}; c++) {{\n"
                 f"            ONNXCC_HLS(HLS PIPELINE II=1)\n"
                 f"            {t_out} v = r_{n}.read();\n            {write}\n        }}"
                 for n, *_ in ins]
        text = (f"{head}\nstatic void {fn}({', '.join(sig)}) {{\n"
                f"    // concat of pixel streams: each pixel's channels, input after input\n"
                f"    for (int p = 0; p < {H * W}; p++) {{\n" + "\n".join(parts) + "\n    }\n}")
        return text, 0
    perm = [int(a) for a in node.attrs.get("perm") or []]
    if len(ins) != 1 or perm[:1] != [0] or perm[-2:] != [rank - 2, rank - 1]:
        return None
    # output channel j (row-major over the output's channel axes) reads input channel src[j]
    x_shape = node.inputs[0].shape
    src = np.arange(math.prod(x_shape[1:-2])).reshape(x_shape[1:-2]).transpose(
        [a - 1 for a in perm[1:-2]]).reshape(-1)
    x, t_in = ins[0][0], ins[0][1]
    if pixel[x][1] != C or src.size != C:
        return None
    table = ", ".join(str(int(i)) for i in src)
    text = (f"{head}\nstatic void {fn}({', '.join(sig)}) {{\n"
            f"    // channel permutation of a pixel stream (perm {perm}): one pixel held\n"
            f"    static const int src[{C}] = {{{table}}};\n"
            f"    {t_in} px[{C}];\n" + (
                "    ONNXCC_HLS(HLS ARRAY_PARTITION variable=px complete)\n"
                if C <= REGISTER_LIMIT else "") +
            f"    for (int p = 0; p < {H * W}; p++) {{\n"
            f"        for (int c = 0; c < {C}; c++) {{\n"
            f"            ONNXCC_HLS(HLS PIPELINE II=1)\n            px[c] = r_{x}.read();\n"
            f"        }}\n"
            f"        for (int c = 0; c < {C}; c++) {{\n"
            f"            ONNXCC_HLS(HLS PIPELINE II=1)\n"
            f"            {t_out} v = px[src[c]];\n            {write}\n        }}\n    }}\n}}")
    return text, C


def _stalls(name: str, before: list[str], pieces: list[tuple], kinds: dict[int, tuple],
            port_in: set[str]) -> bool:
    """Whether a full FIFO of array ``name`` can stall a layer that the arrays ``before`` need:
    the writer of ``name`` waits on it, a streaming writer makes its own inputs' writers wait in
    turn (up to a graph input, whose splitter then waits), while a layer that holds whole tensors
    has read all its inputs before it writes, so the wait goes no further up. It stalls them
    when one of those waiting layers is upstream of an array in ``before``."""
    writer, reads = {}, {}
    for idx, (_, params, _, _, _) in enumerate(pieces):
        reads[idx] = [p[0] for p in params if not p[3]]
        for p in params:
            if p[3]:
                writer[p[0]] = idx

    def up(names: list[str], through_all: bool) -> set:
        seen, todo = set(), list(names)
        while todo:
            a = todo.pop()
            w = ("port", a) if a in port_in or a not in writer else writer[a]
            if w in seen:
                continue
            seen.add(w)
            if isinstance(w, tuple):   # a graph input: nothing upstream
                continue
            if through_all or kinds.get(w, ("stream",))[0] != "array":
                todo += reads[w]
        return seen

    return bool(up([name], False) & up(before, True))


def _rejoin_depths(pieces: list[tuple], kinds: dict[int, tuple], port_in: set[str],
                   sizes: dict[str, int], pixel: dict) -> dict[tuple[str, int], int]:
    """FIFO depths (elements) of the streams into layers that read several streams, keyed by
    (array, reader index), from the dataflow of the io_stream design.

    Each tensor gets a lead ``(origin, rows, hops)``: how many rows of input a chain of
    streaming layers since ``origin`` (a graph input, or the output of a layer that holds
    whole tensors, where the count starts over) reads before it writes the matching output
    row. A line-buffered layer of stride 1 that keeps the height and width (a 'same' conv or
    pool, :class:`~onnxcc.codegen.hls.linebuffer.RowPlan` with ``rows`` R and first window
    row ``first`` = -pad_top) writes output row ``oh`` after reading input rows up to
    ``oh + R + first``: it adds ``R + first - 1`` rows (1 for a 3x3 conv with padding 1:
    the ``(kernel_h - 1) * W`` line-buffer fill of hls4ml and FINN at row granularity, since
    the layer computes a whole output row at once). A lockstep layer (an elementwise
    :class:`~onnxcc.codegen.hls.linebuffer.PointPlan` layer, a channel Concat of pixel
    streams) adds none. When a lockstep layer reads inputs of one origin with leads ``L_i``,
    input ``i``'s writer runs ahead of the join by up to ``max(L) - L_i + 1`` rows of that
    input (the other branches fill their line buffers while it keeps writing), so its FIFO is
    that many rows (``W * C`` elements in pixel order) plus :data:`SHALLOW_FIFO` per layer on
    the longest branch (the elements the shallow FIFOs and the pipelines hold), never more
    than the tensor. A join that holds whole input arrays reads one input entirely before the
    next: the first it reads is :data:`SHALLOW_FIFO` deep (the join waits on nothing else
    while reading it, and the others, whole tensors, never stop their writers); a later one
    is as shallow when its full FIFO stalls no layer the inputs read before it need
    (:func:`_stalls`: its branch reaches them only through a layer holding whole tensors,
    which has read its inputs before it waits on its output, as a Softmax or Gemm branch
    does); else it holds the whole tensor (its branch shares streaming layers with the
    earlier inputs', which cannot finish while it waits).
    Falls back to the whole tensor when the inputs of a lockstep join come through different
    origins, or when a branch has a layer that changes the height or width (a stride, a
    'valid' window), holds whole tensors, or permutes channels (those start a new origin).
    Related work: hls4ml sizes io_stream FIFOs by measuring their largest occupancy in RTL
    co-simulation (its ``fifo_depth_optimization`` pass, "FIFO Buffer Depth Optimization" in
    the hls4ml docs) and FINN by simulation in ``SetFIFODepths``; this computes the occupancy
    statically from the line-buffer fill, with no simulator, and the threaded C-simulation
    (``-DONNXCC_CSIM_THREADS``) checks it for deadlock."""
    lead: dict[str, tuple[str, int, int]] = {n: (n, 0, 0) for n in port_in}
    depths: dict[tuple[str, int], int] = {}
    for idx, (_, params, _, _, _) in enumerate(pieces):
        ins = [p[0] for p in params if not p[3]]
        outs = [p[0] for p in params if p[3]]
        ls = [lead.get(n) for n in ins]
        kind = kinds.get(idx, ("stream",))
        same = all(x is not None for x in ls) and len({x[0] for x in ls}) == 1 \
            and len(set(ins)) == len(ins)
        if len(ins) > 1:
            for j, (n, x) in enumerate(zip(ins, ls)):
                d = sizes[n]
                if kind[0] == "array" and len(set(ins)) == len(ins) and \
                        not _stalls(n, ins[:j], pieces, kinds, port_in):
                    d = SHALLOW_FIFO   # read first, or its stall never holds up the ones before
                elif kind[0] == "lockstep" and same and n in pixel:
                    _, C, _, W = pixel[n]
                    rows = max(y[1] for y in ls) - x[1] + 1
                    margin = SHALLOW_FIFO * (max(y[2] for y in ls) + 1)
                    d = min(d, rows * W * C + margin)
                depths[(n, idx)] = max(d, SHALLOW_FIFO)
        new = None
        if kind[0] == "lockstep" and same:
            new = (ls[0][0], max(y[1] for y in ls), max(y[2] for y in ls) + 1)
        elif kind[0] == "line" and same:
            plan = kind[1]
            C, H, W = plan.in_shape
            M, OH, OW = plan.out_shape
            if plan.stride == 1 and (OH, OW) == (H, W):
                new = (ls[0][0], ls[0][1] + max(plan.rows + plan.first - 1, 0), ls[0][2] + 1)
        for o in outs:
            lead[o] = new if new is not None else (o, 0, 0)
    return depths


def _line_layer(fn: str, plan, r: KernelRenderer, x_name: str, x_t: str, y_name: str, y_t: str,
                targets: list[str], pragmas: list[str], head: str, x_first: bool) -> str:
    """The C++ of a line-buffered streaming layer (the loop of
    :mod:`onnxcc.codegen.hls.linebuffer`): a row function rendered from the plan's loop IR, and
    the layer reading ``r_<x>`` into the line buffer and writing each output row to the
    ``targets`` streams."""
    C, H, W = plan.in_shape
    M, OH, OW = plan.out_shape
    R, S, F = plan.rows, plan.stride, plan.first
    row_fn = f"{fn}_row"
    lines = [f"static inline void {row_fn}(const {x_t} lb[{R * W * C}], {y_t} yrow[{OW * M}], "
             f"int {plan.oh.name}) {{"]
    lines += [f"    ONNXCC_HLS({p})" for p in pragmas]
    # the row body renders like the kernel (same types), its buffers named lb and yrow
    row = KernelRenderer(dataclasses.replace(r.k, body=plan.body),
                         lambda b: (ArrayRef("lb", x_t, 0) if b is plan.lb else
                                    ArrayRef("yrow", y_t, 0) if b is plan.yrow else r.arrays(b)),
                         r.acc, r.acc_type, r.const_t, r.native)
    lines += row.stmts(plan.body, 1)
    lines.append("}")
    outs = [f"hls::stream<{y_t}> &w_{y_name}_{j}" for j in range(len(targets))]
    sig = [f"hls::stream<{x_t}> &r_{x_name}"] + outs if x_first else \
        outs + [f"hls::stream<{x_t}> &r_{x_name}"]   # the order of the kernel's parameters
    writes = " ".join(f"w_{y_name}_{j}.write(yrow[i]);" for j in range(len(targets)))
    keep = (f"        if (oh > 0) {{   // the rows this window shares with the last one\n"
            f"            for (int i = 0; i < {(R - S) * W * C}; i++) {{\n"
            f"                ONNXCC_HLS(HLS PIPELINE II=1)\n"
            f"                lb[i] = lb[i + {S * W * C}];\n            }}\n        }}\n"
            if R > S else "")
    body = (f"static void {fn}({', '.join(sig)}) {{\n"
            f"    // line buffer: {R} of {H} input rows ({R * W * C} of {H * W * C} elements), "
            f"advancing {S} row(s) per output row\n"
            f"    {x_t} lb[{R * W * C}];\n"
            f"    {y_t} yrow[{OW * M}];\n" + "".join(
                f"    ONNXCC_HLS(HLS ARRAY_PARTITION variable={a} complete)\n"
                for a, n in (("lb", R * W * C), ("yrow", OW * M)) if n <= REGISTER_LIMIT) +
            f"    int next = 0;   // the next input row the stream delivers\n"
            f"    for (int oh = 0; oh < {OH}; oh++) {{\n{keep}"
            f"        const int ws = oh * {S} + ({F});   // the window's first input row\n"
            f"        const int hi = ws + {R} < {H} ? ws + {R} : {H};\n"
            f"        for (; next < hi; next++) {{   // new rows; rows before ws are no window's\n"
            f"            for (int i = 0; i < {W * C}; i++) {{\n"
            f"                ONNXCC_HLS(HLS PIPELINE II=1)\n"
            f"                {x_t} v = r_{x_name}.read();\n"
            f"                if (next >= ws) lb[(next - ws) * {W * C} + i] = v;\n"
            f"            }}\n        }}\n"
            f"        {row_fn}(lb, yrow, oh);\n"
            f"        for (int i = 0; i < {OW * M}; i++) {{\n"
            f"            ONNXCC_HLS(HLS PIPELINE II=1)\n            {writes}\n        }}\n"
            f"    }}\n"
            f"    for (; next < {H}; next++) {{   // rows after the last window\n"
            f"        for (int i = 0; i < {W * C}; i++) {{\n"
            f"            ONNXCC_HLS(HLS PIPELINE II=1)\n            (void)r_{x_name}.read();\n"
            f"        }}\n    }}\n}}")
    return f"{head}\n" + "\n".join(lines) + "\n\n" + body


def _stream_design(pieces: list[tuple], lay: _Layout, m: str, nhwc_inputs: Sequence[str] = (),
                   nodes: dict | None = None) -> dict[str, Any]:
    """The io_stream form: layers connected by ``hls::stream`` FIFOs under ``DATAFLOW``, so
    consecutive inputs overlap in the layers (throughput: one input per slowest layer).

    A tensor of 4 or more axes moves between layers in pixel order (row by row, each pixel's
    channels together, as in hls4ml's io_stream; see :func:`pixel_shape`); other tensors, and the top's ports, in row-major order
    (an input port declared NHWC is pixel order). A layer whose kernel reads a fixed window of
    input rows per output row (convolutions, pools: :mod:`onnxcc.codegen.hls.linebuffer`) holds
    only a line buffer of those rows and one output row; an elementwise layer whose inputs and
    output move in one order reads an element of each input and writes one, holding nothing
    (:class:`~onnxcc.codegen.hls.linebuffer.PointPlan`); any other layer reads its input
    tensors from streams into local arrays, runs its loop nest on them, and writes its output
    out. A tensor read by two layers (a residual block) is written to one FIFO per reader; a
    graph input read by several layers goes through a splitter. FIFO depths: a stream into a
    layer that reads no other stream is :data:`SHALLOW_FIFO` deep, also on a fan-out (the
    layer consumes it as fast as its own outputs drain); a stream into a layer that reads
    several (a rejoin) is as deep as :func:`_rejoin_depths` computes from the dataflow: the
    rows the other branches' line buffers take to fill, when the join reads its inputs in
    lockstep, else the whole tensor. So a writer waits only on a shallow stream, whose reader
    waits only on that stream or on its own outputs, and following those outputs ends at a
    rejoin FIFO deep enough for the lag between the branches, or a port: no cycle of waits.
    Checked by ``run_testbench(threads=True)``: the processes run concurrently on FIFOs of
    these depths (blocking reads and writes of deterministic processes: whether a run
    deadlocks does not depend on the threads' schedule).
    Returns the kernels' C++ texts, the top's declarations and calls, the FIFOs' BRAM18, the
    cycles each layer spends moving its tensors, the arrays each layer holds (what, elements,
    type, partitioned into registers) and the names of the streamed layers."""
    readers: dict[str, list[int]] = {}
    for idx, (_, params, _, _, _) in enumerate(pieces):
        for name, _, _, is_out in params:
            if not is_out:
                readers.setdefault(name, []).append(idx)
    types = {n: t for n, t, _, _ in lay.arrays()}
    sizes = {n: size for n, _, size, _ in lay.arrays()}
    port_in = {p[0] for p in _in_ports(lay)}
    port_out = {p[0] for p in _out_ports(lay)}
    pixel_ports = {p[0] for p in _in_ports(lay) if p[4] in set(nhwc_inputs)}
    pixel = {a: pixel_shape(sh) for a, sh in lay.shapes.items()
             if len(sh) >= 4 and sh[0] == 1}   # internal arrays, stored row-major
    decls, calls, funcs, bram = [], [], [], 0
    stream_of: dict[tuple[str, int], str] = {}   # (array, reader) -> stream variable
    writes_of: dict[str, list[str]] = {}          # array -> the streams its writer fills
    for name, rs in readers.items():
        if name in port_in and len(rs) == 1:
            stream_of[(name, rs[0])] = name        # the top's own input stream
            continue
        for r in rs:
            stream_of[(name, r)] = f"st_{name}_{pieces[r][0].rsplit('_', 1)[-1]}"
        writes_of[name] = [stream_of[(name, r)] for r in rs]
    n_reads = {idx: sum(1 for (_, _, _, o) in params if not o)
               for idx, (_, params, _, _, _) in enumerate(pieces)}

    kinds: dict[int, tuple] = {}   # layer -> how it streams, for the rejoin depths
    for name, streams in writes_of.items():
        if name in port_in:   # a graph input read by several layers: split it
            fn = f"{m}_split_{name}"
            outs_ = ", ".join(f"hls::stream<{types[name]}> &o{j}" for j in range(len(streams)))
            body = " ".join(f"o{j}.write(v);" for j in range(len(streams)))
            funcs.append(f"static void {fn}(hls::stream<{types[name]}> &in, {outs_}) {{\n"
                         f"    for (int i = 0; i < {sizes[name]}; i++) {{\n"
                         f"        ONNXCC_HLS(HLS PIPELINE II=1)\n"
                         f"        {types[name]} v = in.read();\n        {body}\n    }}\n}}")
            calls.append(f"{fn}({name}, {', '.join(streams)});")
    io_cycles, held, lined = [], [], []
    for idx, (fn, params, pragmas, head, r) in enumerate(pieces):
        args = []
        for name, _, _, is_out in params:
            if is_out:
                args += ([name] if name in port_out else []) + writes_of.get(name, [])
            else:
                args.append(stream_of[(name, idx)])
        moved = _pixel_move(fn, (nodes or {}).get(r.k.node), r, params, pixel, port_out,
                            writes_of, head)
        if moved is not None:
            text, hold = moved
            funcs.append(text)
            calls.append(f"{fn}({', '.join(args)});")
            io_cycles.append(sum(p[2] for p in params))
            if hold:
                held.append((f"one pixel of {r.k.node}", hold, params[-1][1],
                             hold <= REGISTER_LIMIT))
            else:   # a Concat: reads its inputs pixel by pixel, in lockstep
                kinds[idx] = ("lockstep",)
            lined.append(fn)
            continue
        from .linebuffer import point_plan
        pplan = point_plan(r.k)
        text = _point_layer(fn, pplan, r, params, lay, writes_of, pixel_ports, port_out, pixel,
                            head) if pplan else None
        if text is not None:
            funcs.append(text)
            calls.append(f"{fn}({', '.join(args)});")
            io_cycles.append(sum(p[2] for p in params))
            lined.append(fn)
            kinds[idx] = ("lockstep",)
            continue
        plan = _line_plan(r, params, lay, pixel, pixel_ports, port_out)
        if plan is not None:
            (xn, xt, xs, _), (yn, yt, ys, _) = [p for p in params if not p[3]][0], \
                [p for p in params if p[3]][0]
            funcs.append(_line_layer(fn, plan, r, xn, xt, yn, yt, writes_of.get(yn, []),
                                     pragmas, head, not params[0][3]))
            calls.append(f"{fn}({', '.join(args)});")
            C, _, W = plan.in_shape
            M, _, OW = plan.out_shape
            held += [(f"line buffer of {lay.what.get(xn, xn)} ({plan.rows} rows)",
                      plan.rows * W * C, xt, plan.rows * W * C <= REGISTER_LIMIT),
                     (f"output row of {lay.what.get(yn, yn)}", OW * M, yt, OW * M <= REGISTER_LIMIT)]
            io_cycles.append(xs + ys)
            lined.append(fn)
            kinds[idx] = ("line", plan)
            continue
        sig, pre, post, cycles = [], [], [], 0
        for name, t, size, is_out in params:
            held.append((f"{'output' if is_out else 'input'} {lay.what.get(name, name)} of {fn}",
                         size, t, size <= PARTITION_LIMIT))
            if is_out:
                targets = ([name] if name in port_out else []) + writes_of.get(name, [])
                for j, st in enumerate(targets):
                    sig.append(f"hls::stream<{t}> &w_{name}_{j}")
                pre.append(f"{t} {name}[{size}];")
                if size <= PARTITION_LIMIT:
                    pre.append(f"ONNXCC_HLS(HLS ARRAY_PARTITION variable={name} complete)")
                if name in port_out:   # the top's port: the model's (row-major) order
                    post.append(f"for (int i = 0; i < {size}; i++) {{\n        "
                                f"ONNXCC_HLS(HLS PIPELINE II=1)\n        w_{name}_0.write({name}[i]);"
                                f"\n    }}")
                inner = writes_of.get(name, [])
                first = 1 if name in port_out else 0
                writes = " ".join(f"w_{name}_{first + j}.write(@);" for j in range(len(inner)))
                if inner and name in pixel:
                    post.append(_pixel_loops(name, pixel[name], writes))
                elif inner:
                    post.append(f"for (int i = 0; i < {size}; i++) {{\n        "
                                f"ONNXCC_HLS(HLS PIPELINE II=1)\n        "
                                f"{writes.replace('@', f'{name}[i]')}\n    }}")
            else:
                sig.append(f"hls::stream<{t}> &r_{name}")
                pre.append(f"{t} {name}[{size}];")
                if size <= PARTITION_LIMIT:
                    pre.append(f"ONNXCC_HLS(HLS ARRAY_PARTITION variable={name} complete)")
                if name in pixel:
                    pre.append(_pixel_loops(name, pixel[name], f"@ = r_{name}.read();"))
                else:
                    pre.append(f"for (int i = 0; i < {size}; i++) {{\n        "
                               f"ONNXCC_HLS(HLS PIPELINE II=1)\n        {name}[i] = r_{name}.read();"
                               f"\n    }}")
            cycles += size
        io_cycles.append(cycles)
        kinds[idx] = ("array",)   # reads its inputs whole, then writes its outputs
        inner = r.function(fn + "_body", [(n, t, size, o) for n, t, size, o in params], pragmas)
        inner = inner.replace("static void", "static inline void", 1)
        body_call = f"{fn}_body({', '.join(p[0] for p in params)});"
        text = (f"{head}\n{inner}\n\nstatic void {fn}({', '.join(sig)}) {{\n    "
                + "\n    ".join(pre) + f"\n    {body_call}\n    " + "\n    ".join(post) + "\n}")
        funcs.append(text)
        calls.append(f"{fn}({', '.join(args)});")
    depths = _rejoin_depths(pieces, kinds, port_in, sizes, pixel)
    fifo_decls = []
    for name, streams in writes_of.items():
        for st in streams:
            r = next(r for (a, r), s_ in stream_of.items() if s_ == st)
            d = SHALLOW_FIFO if n_reads[r] == 1 else depths[(name, r)]
            fifo_decls.append(f"hls::stream<{types[name]}> {st}(\"{st}\");")
            fifo_decls.append(f"ONNXCC_HLS(HLS STREAM variable={st} depth={d})")
            fifo_decls.append(f"ONNXCC_STREAM_DEPTH({st}, {d});")
            if d > REGISTER_LIMIT:   # a deeper FIFO is block RAM
                bram += bram18(d, lay.width(types[name]))
    decls = fifo_decls + decls
    # each call a DATAFLOW process (concurrent threads under -DONNXCC_CSIM_THREADS)
    calls = [f"ONNXCC_PROCESS({c[:-1]})" for c in calls] + ["ONNXCC_DATAFLOW_END"]
    return {"kernels": funcs, "calls": calls,
            "decls": ["ONNXCC_HLS(HLS DATAFLOW)", "ONNXCC_DATAFLOW_BEGIN"] + decls,
            "bram": bram, "io_cycles": io_cycles, "held": held, "line_buffered": lined}


def _reuse(k: Kernel) -> int:
    """The largest initiation interval of ``k``'s pipelined loops (its reuse factor)."""
    from onnxcc.codegen.loops import Loop, walk_stmts

    return max([s.factor for s in walk_stmts(k.body) if isinstance(s, Loop) and
                s.kind == "pipelined"], default=1)


def _estimate(k: Kernel, r: KernelRenderer, refs: dict, lay: _Layout, acc_t: FixedType,
              dsp_a: int) -> LayerEstimate:
    from onnxcc.codegen.loops import Binary, Cast, Const, Load, Var

    var_types = r.var_types()

    def width(e) -> int | None:
        if isinstance(e, Const):
            return None
        if isinstance(e, Cast) and not e.dtype.is_float and not e.a.dtype.is_float:
            return width(e.a)   # a widened integer keeps its bits
        if isinstance(e, Binary) and e.op in ("add", "sub") and not e.dtype.is_float:
            ws = [w for w in (width(e.a), width(e.b)) if w is not None]
            return max(ws) + 1 if ws else None
        if isinstance(e, Load):
            return lay.width(refs[id(e.buf)].ctype)
        if isinstance(e, Var) and e.name in var_types:
            return lay.width(var_types[e.name])
        return acc_t.width

    sizes = {n: size for n, _, size, _ in lay.arrays()}
    return estimate_kernel(k, width, lambda ld: refs[id(ld.buf)].name,
                           lambda a: sizes.get(a, 0) > PARTITION_LIMIT, acc_t.width, dsp_a)


def check_fit(layers: list[LayerEstimate], total: dict[str, int], target: Any,
              arrays: list[tuple[str, int]] = ()) -> None:
    """Raise DesignFitError, naming the largest layers (for block RAM: the largest arrays,
    ``arrays`` as (what, BRAM18)), when the estimated design needs more DSP slices, BRAM18,
    LUTs or flip-flops than the part has."""
    from onnxcc.errors import DesignFitError

    part = getattr(target, "fpga", None)
    if part is None:
        return
    over = [(what, total[what], have) for what, have in
            (("dsp", part.dsp), ("bram18", part.bram18), ("lut", part.lut), ("ff", part.ff))
            if total[what] > have]
    if not over:
        return
    key = over[0][0]
    if key == "bram18" and arrays:
        names = ", ".join(f"{what} ({n:,} BRAM18)" for what, n in
                          sorted(arrays, key=lambda a: -a[1])[:3])
    else:
        top = sorted(layers, key=lambda e: -getattr(e, key, 0))[:3]
        names = ", ".join(f"{e.node or e.kernel} ({getattr(e, key, 0):,} {key.upper()})"
                          for e in top)
    need = "; ".join(f"{w.upper()} {n:,} of {h:,}" for w, n, h in over)
    raise DesignFitError(
        f"the design does not fit {target.name} ({part.part}): estimated {need}; largest: "
        f"{names}",
        hint=("narrow the types (--precision, fewer bits per stored value), stream the layers "
              "(HLSConfig(io='io_stream'), --io io_stream: convolutions and pools then hold line "
              "buffers, not whole tensors) or choose a larger part"
              if key == "bram18" else
              "raise the reuse factor (onnxcc.HLSConfig(reuse_factor=...), --reuse-factor) so "
              "each multiplier serves more products, narrow the types (--precision), or choose a "
              "larger part"))


def emit_hls(g: Graph, program: Program, prec: Precision, out: Path, *, target: Any, name: str,
             version: str, sha256: str, options: dict, source: str,
             io: str = "io_parallel", nhwc_inputs: Sequence[str] = ()) -> dict[str, Any]:
    """Write the HLS project of ``program`` into the empty folder ``out``; returns the
    manifest (also written as ``<m>.json``). ``io`` is ``io_parallel`` (arrays between layers,
    run one after another) or ``io_stream`` (see :func:`_stream_design`). Raises
    UnsupportedOpError, naming every node, before writing anything when a node or kernel has
    no fixed-point form; DesignFitError when the estimate exceeds the part."""
    check_hls(g, program)
    namer = Namer(name, CXX_RULES)
    m = namer.prefix
    native = native_kernels(g, program)
    lay = _Layout(g, program, prec, namer, {id(b) for k in program.kernels if k.name in native
                                             for b in k.params if b.space == "weight"})
    kernels, calls = [], []
    pieces: list[tuple] = []
    estimates: list[LayerEstimate] = []
    part_name = target.fpga.part if getattr(target, "fpga", None) else ""
    dsp_a = 25 if part_name.startswith("xc7") else 27   # DSP48E1 (7-series) or DSP48E2
    for k in program.kernels:
        acc_t = prec.accum.get(k.node) or prec.values.get(program.outputs[0].value) \
            or next(iter(prec.values.values()))
        acc = lay.typedef(f"{k.name}_acc_t", acc_t, f"accumulator of {k.node or k.name}")
        lits = float_literals(k)
        const_t = lay.typedef(f"{k.name}_const_t", const_type(lits),
                               f"literals of {k.node or k.name}") if lits else ""
        refs = {id(b): lay.array(b, acc, k) for b in k.params + k.locals}
        r = KernelRenderer(k, lambda b, refs=refs: refs[id(b)], acc, acc_t, const_t,
                           native=k.name in native)
        params, seen = [], set()
        for b in k.params:
            ref = refs[id(b)]
            if b.space in ("weight", "local") or ref.name in seen:
                continue
            seen.add(ref.name)
            params.append((ref.name, ref.ctype, lay.size(ref), any(b is o for o in k.outputs)))
        fn = namer.own(k.name)
        est = _estimate(k, r, refs, lay, acc_t, dsp_a)
        estimates.append(est)
        pragmas = [f"HLS ALLOCATION operation instances=mul limit={max(est.multipliers, 1)}"] \
            if _reuse(k) > 1 and est.multipliers else []
        head = f"// {k.name}: {comment_text(k.op or 'copy', 60)} node " \
               f"{comment_text(k.node or '', 100)}; estimated II {est.ii}, latency " \
               f"{est.latency} cycles, {est.multipliers} multipliers ({est.dsp} DSP)"
        pieces.append((fn, params, pragmas, head, r))
        if io == "io_parallel":
            kernels.append(head + "\n" + r.function(fn, params, pragmas))
            calls.append(f"{fn}({', '.join(p[0] for p in params)});")
    in_bram = [(f"{kind} {lay.what.get(a, a)}", bram18(n, lay.width(t)))
               for a, t, n, kind in lay.arrays() if n > PARTITION_LIMIT]
    bram = sum(b for _, b in in_bram)
    regs = sum(n * lay.width(t) for _, t, n, kind in lay.arrays()
               if n <= PARTITION_LIMIT and kind != "weight")
    stream = None
    if io == "io_stream":
        stream = _stream_design(pieces, lay, m, nhwc_inputs, {n.name: n for n in g.nodes})
        kernels, calls, arrays, fifo_bram = stream["kernels"], stream["calls"], stream["decls"], \
            stream["bram"]
        # what the layers hold (whole tensors, or line buffers and rows) and the weights
        # (arrays partitioned into registers count as flip-flops, the others as block RAM)
        in_bram = [(what, bram18(n, lay.width(t))) for what, n, t, part in stream["held"]
                   if not part]
        in_bram += [(f"weight {lay.what.get(a, a)}", bram18(n, lay.width(t)))
                    for a, t, n, kind in lay.arrays() if kind == "weight" and n > PARTITION_LIMIT]
        bram = sum(b for _, b in in_bram)
        regs = sum(n * lay.width(t) for _, n, t, part in stream["held"] if part)
        for e, extra in zip(estimates, stream["io_cycles"]):
            e.latency += extra   # reading the inputs in and writing the outputs out
        total = totals(estimates, bram + fifo_bram, regs)
        total["ii"] = max((e.latency for e in estimates), default=0)   # DATAFLOW: layers overlap
    else:
        total = totals(estimates, bram, regs)
    check_fit(estimates, total, target, in_bram)
    if stream is not None:
        ports = ", ".join(f"hls::stream<{t}> &{n}" for n, t, _, _, _ in lay.ports)
        port_modes = {n: "axis" for n, *_ in lay.ports}
    else:
        ports = ", ".join(f"{'' if out_ else 'const '}{t} {n}[{size}]"
                          for n, t, size, out_, _ in lay.ports)
        arrays = [f"{ref.ctype} {ref.name}[{n}];" for ref, n in lay.groups.values()]
        for name_, _, n, kind in lay.arrays():   # small arrays in registers (hls4ml's io_parallel)
            if n <= PARTITION_LIMIT:
                arrays.append(f"ONNXCC_HLS(HLS ARRAY_PARTITION variable={name_} complete)")
        port_modes = {n: ("ap_vld" if size <= PARTITION_LIMIT else "ap_memory")
                      for n, _, size, _, _ in lay.ports}
    env = _env()
    target_name = getattr(target, "name", str(target))
    part = target.fpga.part if getattr(target, "fpga", None) else ""
    clock_ns = f"{1e9 / target.clock_hz:g}" if getattr(target, "clock_hz", None) else "5"
    common = dict(version=version, m=m, source=comment_text(source, 100), sha256=sha256,
                  target=target_name, part=part, clock_ns=clock_ns)
    files: dict[str, str] = {}
    common["stream"] = stream is not None
    files["firmware/defines.h"] = env.get_template("defines.h.j2").render(
        guard=f"{m.upper()}_DEFINES_H", typedefs=lay.typedefs, requantize=REQUANTIZE_CXX,
        **common)
    if stream is not None:
        files["firmware/onnxcc_stream.h"] = (TEMPLATES / "onnxcc_stream.h").read_text()
    sizes = [f"{m.upper()}_N_{'INPUT' if not o else 'OUTPUT'}_{k} {n}"
             for k, (_, _, n, o, _) in enumerate(lay.ports)]
    files[f"firmware/{m}.h"] = env.get_template("top.h.j2").render(
        guard=f"{m.upper()}_H", sizes=sizes, ports=ports, **common)
    for fname, text in lay.weight_files:
        files[f"firmware/weights/{fname}"] = text
    files[f"firmware/{m}.cpp"] = env.get_template("top.cpp.j2").render(
        weight_headers=[f for f, _ in lay.weight_files], kernels=kernels, ports=ports,
        ports_modes=sorted(port_modes.items(), key=lambda kv: [p[0] for p in lay.ports].index(kv[0])),
        arrays=arrays, calls=calls, **common)
    if stream is not None:   # C-simulation moves data through streams
        conv_in = [f"for (int i = 0; i < {size}; i++) {n}.write({t}(SRC));"
                   for n, t, size, _, _ in _in_ports(lay)]
        conv_out = [f"for (int i = 0; i < {size}; i++) {{ {t} v = {n}.read(); DST }}"
                    for n, t, size, _, _ in _out_ports(lay)]
        decls = [f"hls::stream<{t}> {n}(\"{n}\");" for n, t, _, _, _ in lay.ports]
    else:
        conv_in = [f"for (int i = 0; i < {size}; i++) {n}[i] = {t}(SRC);"
                   for n, t, size, _, _ in _in_ports(lay)]
        conv_out = [f"for (int i = 0; i < {size}; i++) {{ {t} v = {n}[i]; DST }}"
                    for n, t, size, _, _ in _out_ports(lay)]
        decls = [f"{t} {n}[{size}];" for n, t, size, _, _ in lay.ports]
    ins, outs = _in_ports(lay), _out_ports(lay)
    files[f"{m}_bridge.cpp"] = env.get_template("bridge.cpp.j2").render(
        params=", ".join([f"const float *f_{n}" for n, *_ in ins] +
                         [f"float *f_{n}" for n, *_ in outs]),
        decls=decls,
        convert_in=[c.replace("SRC", f"(double)f_{p[0]}[i]") for c, p in zip(conv_in, ins)],
        convert_out=[c.replace("DST", f"f_{p[0]}[i] = (float)v.to_double();")
                     for c, p in zip(conv_out, outs)],
        args=", ".join(p[0] for p in lay.ports), **common)
    n_in = sum(p[2] for p in ins)
    n_out = sum(p[2] for p in outs)
    files[f"{m}_test.cpp"] = env.get_template("test.cpp.j2").render(
        decls=decls, n_in=n_in, n_out=n_out,
        convert_in=[c.replace("SRC", "in[at++]") for c in conv_in],
        compare=[c.replace("DST", "if (v.to_double() != expect[at++]) wrong++;")
                 for c in conv_out],
        args=", ".join(p[0] for p in lay.ports), **common)
    files["build_prj.tcl"] = env.get_template("build_prj.tcl.j2").render(**common)
    # test-bench data: seeded inputs and the fixed-point reference's outputs
    rng = np.random.default_rng(0)
    in_rows, out_rows = [], []
    # an integer design: the interpreter on the integer graph; one with a float tail (or none
    # integer at all): the fixed-point reference
    integer = all(prec.values[v.name].int_only for v in g.outputs)
    for _ in range(TB_SAMPLES):
        feed = {}
        for v in g.inputs:
            t = prec.values[v.name]
            span = min(max(abs(t.lowest), t.highest), 4.0)
            feed[v.name] = (rng.integers(0, 2, v.shape).astype(np.float32) if t is BOOL_TYPE
                            else rng.integers(t.raw_min, t.raw_max + 1, v.shape).astype(v.dtype)
                            if t.int_only else rng.uniform(-span, span, v.shape).astype(np.float32))
        res = integer_reference(g, feed) if integer else reference(g, prec, feed)
        port = {k: (a.transpose(0, 2, 3, 1) if k in nhwc_inputs else a) for k, a in feed.items()}
        in_rows.append(" ".join(repr(float(x)) for v in g.inputs for x in port[v.name].reshape(-1)))
        out_rows.append(" ".join(repr(float(x)) for v in g.outputs for x in res[v.name].reshape(-1)))
    files["tb_data/tb_input_features.dat"] = "\n".join(in_rows) + "\n"
    files["tb_data/tb_output_predictions.dat"] = "\n".join(out_rows) + "\n"
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    scales = g.meta.get("port_scales", {})
    manifest = {
        "onnxcc_version": version, "c_prefix": m, "backend": "hls", "io": io,
        "target": target_name, "part": part, "clock_ns": float(clock_ns), "model_sha256": sha256,
        "source": source, "options": options,
        "inputs": [{"name": v.name, "port": p[0], "shape": list(v.shape), "type": str(prec.values[v.name]),
                    "layout": "NHWC" if v.name in nhwc_inputs else "model",
                    **({"quantize": scales[v.name]} if v.name in scales else {})}
                   for v, p in zip(g.inputs, ins)],
        "outputs": [{"name": v.name, "port": p[0], "shape": list(v.shape), "type": str(prec.values[v.name]),
                     **({"dequantize": scales[v.name]} if v.name in scales else {})}
                    for v, p in zip(g.outputs, outs)],
        "line_buffered": stream["line_buffered"] if stream is not None else [],
        "types": {k: str(t) for k, t in prec.values.items()},
        "accumulators": {k: str(t) for k, t in prec.accum.items()},
        "estimates": {"layers": [e.row() for e in estimates], "total": total,
                      "part": {"dsp": target.fpga.dsp, "bram18": target.fpga.bram18,
                               "lut": target.fpga.lut, "ff": target.fpga.ff}
                      if getattr(target, "fpga", None) else None},
        "files": sorted(files) + [f"{m}.json"],
    }
    (out / f"{m}.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
