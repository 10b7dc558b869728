"""The C emitter: a planned Graph -> the files of a C library.

Files: ``<m>.h``, ``<m>.c``, ``<m>_weights.c`` (typed const arrays, or an ``.incbin`` of
``<m>_weights.bin`` for hosts), ``onnxcc_rt.h``, ``<m>.json`` (memory map), ``CMakeLists.txt``
and ``<m>.mk``. Output is byte-deterministic for the same graph and options. Every name taken from
the model reaches the C text only as an identifier made by :class:`onnxcc.codegen.names.Namer`
(which keeps user-derived names and onnxcc's own symbols in disjoint spaces), an escaped string
literal or a sanitized comment; templates print only identifiers computed here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from onnxcc.codegen.loops import Buffer, Program
from onnxcc.codegen.names import Namer, stable_hash
from onnxcc.errors import UnsupportedOpError
from onnxcc.ir import Graph, Value

from .render import CTYPE, CContext, c_value, render_kernel

TEMPLATES = Path(__file__).parent / "templates"
RT_HEADER = Path(__file__).resolve().parents[2] / "runtime" / "include" / "onnxcc_rt.h"
DTYPE_ENUM = {"float32": "ONNXCC_FLOAT32", "uint8": "ONNXCC_UINT8", "int8": "ONNXCC_INT8",
              "uint16": "ONNXCC_UINT16", "int16": "ONNXCC_INT16", "int32": "ONNXCC_INT32",
              "int64": "ONNXCC_INT64", "bool": "ONNXCC_BOOL", "float64": "ONNXCC_FLOAT64",
              "uint32": "ONNXCC_UINT32", "uint64": "ONNXCC_UINT64", "float16": "ONNXCC_FLOAT16"}
BLOB_ALIGN = 64


def comment_text(text: str, limit: int = 80) -> str:
    """``text`` made safe inside a C block comment: printable ASCII, no ``*/``, ``/*``, trigraph
    ``??`` or backslash-newline; cut to ``limit`` characters."""
    s = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    s = s.replace("\\", "/").replace("*/", "* /").replace("/*", "/ *").replace("??", "?_")
    return s if len(s) <= limit else s[: limit - 3] + "..."


#: longest string literal written: C99 5.2.4.1 guarantees 4095 characters
STRING_LIMIT = 4000


def c_string(text: str, limit: int = STRING_LIMIT) -> str:
    """``text`` as a C string literal: UTF-8 bytes, anything but plain ASCII as octal escapes
    (quotes, backslashes, ``?`` against trigraphs, newlines and non-ASCII included). A text of
    more than ``limit`` bytes is cut to its head and ``...#`` plus a stable hash of the whole (so
    two long names stay distinct); the memory map keeps the full name."""
    data = text.encode("utf-8")
    if len(data) > limit:
        data = data[:limit - 12].decode("utf-8", "ignore").encode("utf-8") + \
            f"...#{stable_hash(text)}".encode()
    out = []
    for b in data:
        ch = chr(b)
        out.append(ch if (ch.isalnum() and b < 128) or ch in " _-.:/,;()[]+=<>#%&|~^!@{}'" else f"\\{b:03o}")
    return '"' + "".join(out) + '"'


@functools.lru_cache(maxsize=1)
def env() -> jinja2.Environment:
    """The jinja environment for C templates (strict, deterministic whitespace). One per
    process, so each template is parsed once (parsing the five took ~0.1 s per compile)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def check_legal(g: Graph, target: str | None = None) -> None:
    """Raise :class:`UnsupportedOpError` listing every node the loop IR cannot lower (both back
    ends render every kernel the loop IR holds), every graph input or output of a dtype the API
    cannot carry, and tensors of 2**31 or more elements."""
    from onnxcc.codegen.lower import unsupported_reason

    # Tensor sizes first: a node's legality check may build tables as large as its output.
    problems = [(v.name, "tensor", "tensors of 2^31 or more elements are not supported")
                for v in g.values() if v.type.size >= 2**31]
    if problems:
        raise UnsupportedOpError(problems, target)
    problems = [(n.name, n.op, why) for n in g.nodes if (why := unsupported_reason(n))]
    problems += io_dtype_problems(g)
    if problems:
        raise UnsupportedOpError(problems, target)


def io_dtype_problems(g: Graph) -> list[tuple[str, str, str]]:
    """(name, "graph input"/"graph output", why) for each graph input or output whose dtype the
    generated API cannot carry (the header's ONNXCC_* dtypes), e.g. an unused float8 input."""
    out = []
    for kind, vals in (("graph input", g.inputs), ("graph output", g.outputs)):
        for v in vals:
            if v.dtype.name not in DTYPE_ENUM:
                out.append((v.name, kind, f"dtype {v.dtype.name} is not supported "
                            f"(supported: {', '.join(sorted(DTYPE_ENUM))})"))
    return out


@dataclass
class _Weight:
    """One stored constant: a weight array (in ``<m>_weights.c`` or the blob) or a splat."""

    name: str          # the graph value it holds
    data: np.ndarray   # flat, of its dtype
    symbol: str
    ctype: str
    offset: int        # in the blob (weight arrays only)
    splat: bool        # one element, a ``static const`` in ``<m>.c``
    comment: str       # "<value>: <dtype>[<shape>]"


def _format_array(a: np.ndarray, ct: str) -> str:
    flat = np.ascontiguousarray(a).reshape(-1)
    items = [c_value(x, ct) for x in flat.tolist()]
    lines = [", ".join(items[i:i + 8]) for i in range(0, len(items), 8)]
    return ",\n".join("    " + ln for ln in lines)


@dataclass
class RunObject:
    """For the LLVM back end: ``<m>_run`` (its kernels and weights inside) comes from an object
    file instead of C. ``compile(run_symbol) -> bytes`` returns the object defining
    ``run_symbol``; ``weights_size`` is its bytes of constant weights; ``info`` (triple, cpu,
    features...) goes into the memory map under ``"object"``."""

    compile: Any
    weights_size: int
    info: dict[str, Any]


def emit_c(g: Graph, out_dir: Path, *, name: str, weights_in_c: bool, version: str,
           sha256: str, options: dict[str, Any], source: str,
           run_object: RunObject | None = None, program: Program | None = None
           ) -> dict[str, Any]:
    """Write the C library for the planned graph ``g`` into ``out_dir`` (which must exist).

    The kernels are the loop-IR ``program`` (required without ``run_object``; lowered, loop
    passes applied and verified by :func:`onnxcc.codegen.lower.lower_for_target`), each rendered by
    :func:`onnxcc.codegen.c.render.render_kernel` into one ``static`` function of ``<m>.c``,
    called in order by ``<m>_run`` with pointers into the arena, the weights and the graph's
    inputs and outputs. With ``options["optimize"] == "size"`` kernels that differ only in
    integer literals share one function (:func:`onnxcc.codegen.c.share.share_kernels`).

    With ``run_object`` (the LLVM back end) the files are the same header ``<m>.h``, an
    ``<m>.c`` holding only the tensor-info tables and the opt-in ``<m>_run_static``, and the
    object ``<m>.o`` that defines ``<m>_run`` with its kernels and weights; no C kernel is
    generated. Returns the memory map (also written as ``<m>.json``).
    ``g.meta["memory_plan"]`` must be set by the plan_memory pass. Raises
    :class:`UnsupportedOpError` for nodes the C target cannot lower, ValueError without
    ``program`` or ``run_object``.
    """
    if run_object is None:
        check_legal(g)
    plan = g.meta["memory_plan"]
    names = Namer(name)
    m, M = names.prefix, names.macro_prefix
    # Every identifier and macro the templates print (locals such as ``a`` excepted).
    sym = {k: names.own(k, external=True)
           for k in ("run", "run_static", "inputs", "outputs", "weights_blob")}
    sym.update({k: names.own(k) for k in ("status", "static_arena", "no_weights")})
    mac = {k: names.macro(k) for k in (
        "H", "ONNXCC_VERSION", "MODEL_SHA256", "ARENA_SIZE", "ARENA_ALIGN", "WEIGHTS_SIZE",
        "WEIGHTS_ATTR", "ARENA_ATTR", "NUM_INPUTS", "NUM_OUTPUTS", "OK", "NULL_ARG",
        "ARENA_TOO_SMALL", "ARENA_MISALIGNED", "STATIC_ARENA", "DIR", "SRCS", "OBJS", "CFLAGS", "LDLIBS")}
    j = env()
    if program is None and run_object is None:
        raise ValueError("emit_c renders a Program: pass program= (see lower_for_target)")

    # -- constants: one stored array per distinct weight buffer of the Program, in the order
    # kernels first read them (a constant no kernel reads, a Reshape's shape, is never
    # emitted); a splat or one-element constant is one ``static const`` element --------------
    weights: dict[int, _Weight] = {}
    blob_off = 0
    for wb in program.weights() if program is not None and run_object is None else []:
        if id(wb.data) in weights:
            continue
        data = np.ascontiguousarray(wb.data, wb.dtype.np).reshape(-1)
        if wb.dtype.name == "float16":   # stored as its bit patterns (C has no float16 type)
            data = data.view(np.uint16)
        splat = data.size <= 1
        k = sum(w.splat == splat for w in weights.values())
        symbol = names.own(f"s{k}") if splat else names.own(f"w{k}", external=True)
        shape = ",".join(str(d) for d in wb.shape)
        weights[id(wb.data)] = _Weight(wb.value or wb.name, data, symbol, CTYPE[wb.dtype.name],
                                       0 if splat else blob_off, splat,
                                       f"{wb.value or wb.name}: {wb.dtype.name}[{shape}]")
        if not splat:
            blob_off += (data.nbytes + BLOB_ALIGN - 1) // BLOB_ALIGN * BLOB_ALIGN
    splats = [{"symbol": w.symbol, "ctype": w.ctype, "count": 1,
               "literal": c_value(w.data[0].item() if w.data.size else 0, w.ctype)}
              for w in weights.values() if w.splat]
    stored = [w for w in weights.values() if not w.splat]

    # -- public tensors: parameters in the user space (``in_<name>``, see Namer.user) -------
    def tensor_info(v: Value, kind: str, k: int) -> dict[str, Any]:
        param = names.user(v.name, "in" if kind == "input" else "out")
        rank = len(v.shape)
        layout = {4: "NCHW", 3: "NCW", 2: "NC", 5: "NCDHW"}.get(rank, "")
        return {"kind": kind, "index": k, "macro": names.macro(kind, k),
                "shape_sym": names.own(kind, k, "shape"),
                "c_name": c_string(v.name), "comment": comment_text(f"{v.name}: {v.type}"),
                "dtype_enum": DTYPE_ENUM[v.dtype.name], "rank": rank,
                "shape_list": ", ".join(str(d) for d in v.shape), "size": v.type.size,
                "bytes": v.type.nbytes, "layout": layout, "ctype": CTYPE[v.dtype.name],
                "param": param, "value": v}

    ins = [tensor_info(v, "input", k) for k, v in enumerate(g.inputs)]
    outs = [tensor_info(v, "output", k) for k, v in enumerate(g.outputs)]

    def arg(b: Buffer) -> str:
        """Where kernel parameter ``b`` starts, as a C expression of ``b``'s element type."""
        ct = CTYPE[b.dtype.name]
        if b.space == "weight":
            w = weights[id(b.data)]
            if w.splat or weights_in_c:
                return w.symbol
            return f"(const {ct} *)(const void *)({sym['weights_blob']} + {w.offset})"
        if b.space == "arena":
            return f"({ct} *)(void *)(a + {b.offset})"
        if b.space not in ("input", "output"):
            raise AssertionError(f"C emitter: kernel parameter {b.name} lives in {b.space}")
        base = (ins if b.space == "input" else outs)[b.index]
        q = "const " if b.space == "input" else ""
        item = b.dtype.np.itemsize
        if base["ctype"] == ct and b.offset % item == 0:
            off = b.offset // item
            return base["param"] + (f" + {off}" if off else "")
        return f"({q}{ct} *)({q}void *)(({q}unsigned char *){base['param']} + {b.offset})"

    # -- kernels (rendered from the loop IR) and calls ---------------------------------------
    nodes = {n.name: n for n in g.nodes}
    cctx = CContext(size=options.get("optimize") == "size")
    kernels, calls = [], []
    for k in program.kernels if program is not None and run_object is None else []:
        fn = names.own(k.name, k.op.split(".")[-1])
        signature, body = render_kernel(k, cctx, fn)
        n = nodes.get(k.node)
        if n is not None:
            shapes = ", ".join(f"{comment_text(v.name, 32)} {v.type}" for v in n.inputs if v is not None)
            what = f"node {n.name} ({n.op}): {', '.join(str(o.type) for o in n.outputs)} <- {shapes}"
        else:
            what = f"{k.node} ({k.op})"
        kernels.append({"fn": fn, "signature": signature, "body": body,
                        "comment": comment_text(what, 200)})
        kernels[-1]["args"] = [
            ("arena", b.offset, arg(b)) if b.space == "arena" else
            ("const", arg(b), arg(b)) if b.space == "weight" and arg(b).isidentifier() else
            ("other", arg(b), arg(b)) for b in k.params]
        calls.append(f"{fn}({', '.join(arg(b) for b in k.params)});")
    if options.get("optimize") == "size" and len(kernels) > 1:
        from .share import share_kernels

        kname = {kd["fn"]: k.name for kd, k in zip(kernels, program.kernels)}
        kernels, calls = share_kernels(kernels, lambda fn: names.own(kname[fn], "args"),
                                       lambda fn: names.own(kname[fn], "table"))
    helpers = cctx.text()
    if options.get("optimize") == "size":
        from .share import outline_helpers

        helpers = outline_helpers(helpers)
    weights_size = sum(w.data.nbytes for w in stored)
    if run_object is not None:
        weights_size = run_object.weights_size

    wlist = []
    for w in stored:
        decl = (f"extern const {w.ctype} {w.symbol}[{w.data.size}];" if weights_in_c else "")
        wlist.append({"symbol": w.symbol, "ctype": w.ctype, "count": w.data.size, "decl": decl,
                      "comment": comment_text(w.comment),
                      "body": _format_array(w.data, w.ctype) if weights_in_c else ""})
    if not weights_in_c and stored:
        wlist[0]["decl"] = f"extern const unsigned char {sym['weights_blob']}[];"
        for wd in wlist[1:]:
            wd["decl"] = ""
        wlist = [wd for wd in wlist if wd["decl"]] + [wd for wd in wlist if not wd["decl"]]
    decls = [w for w in wlist if w["decl"]]

    ctx_vars = dict(m=m, M=M, sym=sym, mac=mac, version=version, sha256=sha256,
                    source_comment=comment_text(source),
                    options_comment=comment_text(json.dumps(options, sort_keys=True), 400),
                    arena_size=plan.arena_size, arena_align=max(plan.alignment, 8),
                    weights_size=weights_size, inputs=ins, outputs=outs, nodes=kernels,
                    calls=calls, weights=decls, splats=splats, helpers=helpers,
                    blob=not weights_in_c and bool(stored), run_object=run_object is not None)
    files = {
        f"{m}.h": j.get_template("model.h.j2").render(ctx_vars),
        f"{m}.c": j.get_template("model.c.j2").render(ctx_vars),
        f"{m}_weights.c": j.get_template("weights.c.j2").render(
            {**ctx_vars, "weights": wlist, "math_h": weights_in_c and any(
                w.data.dtype.kind == "f" and not np.isfinite(w.data).all() for w in stored)}),
        "CMakeLists.txt": j.get_template("CMakeLists.txt.j2").render(ctx_vars),
        f"{m}.mk": j.get_template("model.mk.j2").render(ctx_vars),
        "onnxcc_rt.h": RT_HEADER.read_text(),
    }
    if run_object is not None:
        del files[f"{m}_weights.c"]
        (out_dir / f"{m}.o").write_bytes(run_object.compile(sym["run"]))
    for fname, text in files.items():
        (out_dir / fname).write_text(text)
    if not weights_in_c and stored:
        with open(out_dir / f"{m}_weights.bin", "wb") as f:
            for w in stored:
                f.seek(w.offset)
                f.write(w.data.tobytes())
            f.truncate(blob_off)

    mmap = {
        "model": name, "c_prefix": m, "backend": "c" if run_object is None else "llvm",
        **({} if run_object is None else {"object": {"file": f"{m}.o", **run_object.info}}),
        **({"c_prefix_renamed": names.renamed} if names.renamed else {}),
        "onnxcc_version": version, "model_sha256": sha256,
        "options": options, "passes": list(g.meta.get("passes", [])),
        "arena": {"size": plan.arena_size, "alignment": plan.alignment,
                  "lower_bound": plan.lower_bound, "naive": plan.naive},
        "weights": {"size": weights_size, "format": "object" if run_object is not None
                    else "c_arrays" if weights_in_c else "incbin",
                    "tensors": [{"name": w.name, "symbol": w.symbol, "bytes": w.data.nbytes,
                                 **({} if weights_in_c else {"offset": w.offset})}
                                for w in stored]},
        "tensors": [{"name": v.name, "dtype": v.dtype.name, "shape": list(v.shape),
                     "space": b.space, "index": b.index, "offset": b.offset, "size": b.size}
                    for v in g.values() if (b := plan.buffers.get(v.name)) is not None],
        "ops": [{"name": n.name, "op": n.op} for n in g.nodes],
        "inputs": [{"name": t["value"].name, "param": t["param"], "dtype": t["value"].dtype.name,
                    "shape": list(t["value"].shape)} for t in ins],
        "outputs": [{"name": t["value"].name, "param": t["param"], "dtype": t["value"].dtype.name,
                     "shape": list(t["value"].shape)} for t in outs],
    }
    (out_dir / f"{m}.json").write_text(json.dumps(mmap, indent=1, sort_keys=False) + "\n")
    return mmap


SUPPORTED_DTYPES = sorted(CTYPE)
