"""ONNX frontend: ModelProto (or a path, or ``zoo:NAME``) -> onnxcc IR.

- default-domain opsets 1 to the newest the installed onnx knows (see :mod:`onnxcc.opsets`:
  an op whose signature did not change after opset 21 is accepted at any newer opset; forms
  older than opset 7 are upgraded by :mod:`onnxcc.legacy`); onnxruntime's quantized ops of domain
  com.microsoft are imported by :mod:`onnxcc.contrib`; ops of ``ai.onnx.ml`` (opsets 1 to 5) are
  ops of the registry (``onnxcc.ops.ml``, keyed ``ai.onnx.ml.<op>``: see
  :func:`onnxcc.ops.registry_key`), each node carrying its own domain's opset version
  (``Node.version``); any other domain is unsupported;
- initializers and ``Constant`` nodes become constant values; nodes whose inputs are all
  constant (``ConstantOfShape``, shape subgraphs ``Shape -> Gather -> Concat -> Reshape``) are
  folded while importing, and ``Shape``/``Size`` always fold because shapes are static;
- unknown input dims (named, without a value, or -1 as paddle2onnx writes) are bound from
  ``input_shapes`` (a named dim bound for one input binds the same name in the others); a
  declared 0 is a size (the spec's) that ``input_shapes`` may rebind; an unbound leading (batch)
  dim becomes 1 with a warning; any other unbound dim is a :class:`ShapeError`;
- control flow (``If``, ``Loop``, ``Scan``) is inlined while importing (see
  :mod:`onnxcc.control_flow`): a constant condition picks one branch, a runtime one computes both
  and selects with ``Where``; loops with a trip count known at compile time are unrolled;
- models with external data load from beside the model file; a ModelProto's external data only
  from a folder the caller names (``external_data_dir``);
- the graph must be in SSA form (one producer per tensor, no node output named like a graph input
  or an initializer), as onnx's checker and onnxruntime require.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

from . import contrib, control_flow, preview
from .errors import AttributeValueError, ModelLoadError, OnnxccError, ShapeError, UnsupportedOpError
from .ir import Graph, Node, TensorType, Value
from .legacy import CONVERT, upgrade
from .ops import (DEFAULT_DOMAINS, REQUIRED, all_ops, get_op, infer_node, registry_key, run_node,
                  split_key)
from .opsets import IMPLEMENTED_OPSET, MAX_OPSET, MIN_OPSET, domain_problem, newer_form_problem

log = logging.getLogger("onnxcc.frontend")

LEGACY_BELOW = 7   # nodes of older opsets are upgraded by onnxcc.legacy
ALWAYS_FOLD = {"Shape", "Size"}   # depend on static shapes only
# kept as nodes so that fuse_qdq sees the integer weights (canonicalize folds what it leaves)
NEVER_FOLD = {"DequantizeLinear"}
# Folding a node whose output is bigger than this (elements) is left to canonicalize's judgement;
# splat outputs (0-stride views) are always kept.
MAX_FOLD_ELEMENTS = 1 << 26


def load_model(model: str | Path | onnx.ModelProto, *,
               external_data_dir: str | Path | None = None) -> tuple[onnx.ModelProto, str]:
    """Load a model; returns ``(proto, name)`` with every external tensor's data loaded.

    ``model`` is a ModelProto, a path to a ``.onnx`` file, or ``zoo:NAME`` for a light model
    shipped in the onnx wheel. A file's external data is read from beside the file. A ModelProto
    has no folder of its own: its external data is read only from ``external_data_dir``, never
    from the process's current folder, and the caller's proto is left untouched (a loaded copy is
    returned). In both cases onnx refuses an external data location outside that folder.

    Raises :class:`ModelLoadError` on a missing, truncated or non-ONNX file, on external data that
    cannot be read (or lies outside its folder), on a ModelProto with external data but no
    ``external_data_dir``, and on ``external_data_dir`` given with a file (whose folder is used).
    """
    if isinstance(model, onnx.ModelProto):
        return _load_external(model, external_data_dir), (model.graph.name or "model")
    if external_data_dir is not None:
        raise ModelLoadError("external_data_dir is only for a ModelProto given in memory",
                             hint="a model file's external data is read from beside the file; "
                             "drop external_data_dir, or load the file and pass the ModelProto")
    text = str(model)
    if text.startswith("zoo:"):
        from .zoo import zoo_path

        path = zoo_path(text[4:])
    else:
        path = Path(text)
    if not path.is_file():
        raise ModelLoadError(f"no such model file: {path}",
                             hint="give the path of an .onnx file, or zoo:NAME (see `onnxcc compile --help`)")
    try:
        proto = onnx.load(str(path), load_external_data=True)
    except Exception as e:  # protobuf DecodeError, missing external data, ...
        raise ModelLoadError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})",
                             hint="check the file is complete (not truncated) and is an ONNX "
                             "ModelProto; external data files must sit beside the model") from e
    if not proto.graph.node and not proto.graph.output:
        raise ModelLoadError(f"{path} holds no graph (empty or not an ONNX model)",
                             hint="export the model again with torch.onnx.export or tf2onnx")
    name = path.stem if not text.startswith("zoo:") else text[4:]
    return proto, name


def _external_tensors(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    """The tensors of ``proto`` (initializers, attribute tensors, also in subgraphs) whose data is
    still in an external file."""
    found: list[onnx.TensorProto] = []

    def visit(g: onnx.GraphProto) -> None:
        found.extend(g.initializer)
        for n in g.node:
            for a in n.attribute:
                found.extend([a.t] if a.HasField("t") else [])
                found.extend(a.tensors)
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    visit(sub)

    visit(proto.graph)
    return [t for t in found if uses_external_data(t)]


def _load_external(proto: onnx.ModelProto, folder: str | Path | None) -> onnx.ModelProto:
    """``proto`` itself when it has no external data; else a copy with the data read from
    ``folder`` (see :func:`load_model`). Raises ModelLoadError."""
    pending = _external_tensors(proto)
    if not pending:
        return proto
    t = pending[0]
    where = {e.key: e.value for e in t.external_data}.get("location", "?")
    if folder is None:
        raise ModelLoadError(
            f"tensor {t.name!r} keeps its data in the external file {where!r}, but the model "
            "was given in memory without external_data_dir (the current folder is never searched)",
            hint="pass external_data_dir=<the folder of the external data files> (for example "
            "onnxcc.compile(model, external_data_dir='models/')), or pass the model's path")
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"external_data_dir {str(folder)!r} is not a folder",
                             hint="give the folder that holds the model's external data files")
    loaded = onnx.ModelProto()
    loaded.CopyFrom(proto)
    for t in _external_tensors(loaded):
        try:
            load_external_data_for_tensor(t, str(folder))
        except Exception as e:  # missing file, short file, location outside the folder, ...
            raise ModelLoadError(f"external data of tensor {t.name!r} cannot be read from "
                                 f"{str(folder)!r} ({type(e).__name__}: {e})",
                                 hint="external data files must sit inside external_data_dir") from e
    return loaded


def _attr_value(a: onnx.AttributeProto) -> Any:
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, onnx.TensorProto):
        return numpy_helper.to_array(v)
    if isinstance(v, list):
        if v and isinstance(v[0], bytes):
            return tuple(x.decode("utf-8", errors="replace") for x in v)
        if v and isinstance(v[0], onnx.TensorProto):
            return tuple(numpy_helper.to_array(x) for x in v)
        return tuple(v)
    if isinstance(v, (onnx.GraphProto,)):
        return v
    return v


def _not_utf8(graph: onnx.GraphProto) -> bytes | None:
    """The first name of ``graph`` that is not valid UTF-8 (protobuf then hands out bytes)."""
    texts: list[str | bytes] = [graph.name]
    for n in graph.node:
        texts += [n.name, n.op_type, n.domain, *n.input, *n.output, *(a.name for a in n.attribute)]
    texts += [v.name for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)]
    return next((t for t in texts if isinstance(t, bytes)), None)


_NOT_VALUES = {onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS,
               onnx.AttributeProto.TYPE_PROTO, onnx.AttributeProto.TYPE_PROTOS,
               onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS}


@functools.lru_cache(maxsize=None)
def _spec_attr_type(op: str, version: int, name: str) -> int | None:
    """The AttributeProto type the ONNX spec gives attribute ``name`` of ``op`` (a registry key:
    ``ai.onnx.ml.<op>`` is looked up in that domain) at opset ``version`` of its domain; None
    when onnx has no schema for the op (e.g. onnxcc's own ops), and
    ``-1`` when the schema exists but has no such attribute at this version (Clip's ``max``
    attribute at opset 11, Cast's ``saturate`` before 19)."""
    domain, op_type = split_key(op)
    try:
        a = onnx.defs.get_schema(op_type, version, domain).attributes.get(name)
    except Exception:   # onnx.defs.SchemaError: no such op at this version
        return None
    return -1 if a is None else int(a.type.value)


def _check_attribute(a: onnx.AttributeProto, op: str, version: int, nname: str) -> None:
    """Raise AttributeValueError when attribute ``a`` of node ``nname`` (``op``) is not part of
    the op's schema at opset ``version`` or has another type than the schema gives it."""
    want = _spec_attr_type(op, version, a.name)
    kinds = onnx.AttributeProto.AttributeType
    if want is None and a.type in _NOT_VALUES:   # no schema to check against: no
        raise AttributeValueError(   # onnxcc op takes a graph or a type
            f"attribute {a.name!r} is {kinds.Name(a.type)}, which {op} does not take",
            node=nname, op=op, hint="the model is malformed; re-export it")
    if want == -1:   # ignoring it could silently drop what the user meant (a Clip bound)
        raise AttributeValueError(
            f"attribute {a.name!r} is not part of {op} at opset {version}", node=nname, op=op,
            hint="the model is malformed (onnx.checker and onnxruntime reject it too); "
            "re-export it, or set the opset version the attribute belongs to")
    if want is not None and a.type != want:   # a mistyped value would reach check()/infer()
        got = kinds.Name(a.type) if a.type in kinds.values() else str(a.type)
        raise AttributeValueError(f"attribute {a.name!r} is {got}, the ONNX spec wants "
                                  f"{kinds.Name(want)}", node=nname, op=op,
                                  hint="the model is malformed; re-export it")


def _elem_type_name(elem_type: int) -> str:
    """``float``, ``int64``... for an ONNX element type (its number when onnx has no name)."""
    kinds = onnx.TensorProto.DataType
    return kinds.Name(elem_type).lower() if elem_type in kinds.values() else str(elem_type)


def _tensor_type_name(dtype: np.dtype) -> str:
    """The ONNX name (``float``, ``bool``...) of a numpy dtype."""
    return _elem_type_name(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


@functools.lru_cache(maxsize=None)
def _spec_inputs(op: str, version: int) -> tuple[list[tuple[str, bool]], dict[str, set[str]]] | None:
    """(formal inputs as (type variable, variadic), type variable -> allowed ``tensor(T)``) of
    ``op`` (a registry key) at opset ``version`` of its domain; None when onnx has no schema for
    it."""
    domain, op_type = split_key(op)
    try:
        schema = onnx.defs.get_schema(op_type, version, domain)
    except Exception:   # onnx.defs.SchemaError: no such op at this version
        return None
    variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic
    formals = [(f.type_str, f.option == variadic) for f in schema.inputs]
    return formals, {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}


def _spec_type_error(op: str, version: int, ins: Sequence[Value | None]) -> str | None:
    """Why the input dtypes break the ONNX schema's type constraints of ``op`` (an input type
    not allowed, or one type variable bound to two types), or None when they do not. An op
    used at an opset older than its first schema (LayerNormalization at 13, which onnxruntime
    runs) is checked against its newest schema."""
    spec = _spec_inputs(op, version) or (_spec_inputs(op, IMPLEMENTED_OPSET)
                                         if "." not in op else None)
    if spec is None or not spec[0]:
        return None
    formals, allowed = spec
    bound: dict[str, str] = {}
    for j, v in enumerate(ins):
        if v is None:
            continue
        if j >= len(formals) and not formals[-1][1]:
            break
        tvar = formals[min(j, len(formals) - 1)][0]
        t = f"tensor({_tensor_type_name(v.dtype)})"
        if tvar.startswith("tensor(") and t != tvar:   # a fixed type (Tile's repeats: int64)
            return f"input {j} ({v.name!r}) is a {t}, {op}-{version} wants a {tvar}"
        if tvar in allowed and t not in allowed[tvar]:
            return f"input {j} ({v.name!r}) is a {t}, which {op}-{version} does not accept"
        if tvar in allowed and bound.setdefault(tvar, t) != t:
            return f"input {j} ({v.name!r}) is a {t} but an earlier input of type {tvar} is a {bound[tvar]}"
    return None


def _opset(proto: onnx.ModelProto) -> int:
    version = None
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            version = imp.version
    if version is None and not any(n.domain in DEFAULT_DOMAINS
                                   for n in control_flow.subgraph_nodes(proto.graph)):
        return IMPLEMENTED_OPSET   # only other domains' ops (ai.onnx.ml): no default opset needed
    if version is None:
        raise ModelLoadError("the model imports no default-domain (ai.onnx) opset",
                             hint="onnxcc compiles models of the default ONNX domain")
    if not MIN_OPSET <= version <= MAX_OPSET:
        raise ModelLoadError(f"opset {version} is outside the range {MIN_OPSET}..{MAX_OPSET} "
                             f"the installed onnx {onnx.__version__} knows",
                             hint="upgrade the onnx package, or convert the model with "
                             "onnx.version_converter.convert_version(model, 21)")
    return version


def _domain_opsets(proto: onnx.ModelProto) -> dict[str, int]:
    """The opset version the model imports for each domain other than the default one."""
    return {imp.domain: int(imp.version) for imp in proto.opset_import
            if imp.domain not in DEFAULT_DOMAINS}


def _unknown(d: onnx.TensorShapeProto.Dimension) -> bool:
    """Whether a declared dim is unknown: a name (``dim_param``), no value at all, or ``-1``
    (paddle2onnx and some converters write -1 for "any size")."""
    return not d.HasField("dim_value") or d.dim_value == -1


def _shape_bindings(given: Any) -> dict[str, tuple[int, ...]]:
    """``input_shapes`` as input name -> tuple of ints. Raises ShapeError for a value that is no
    sequence of integers (a string, a number, None, a size of 5.5: ``int()`` would have read
    '3' as 3, and truncated 5.5 to 5 in silence) or a mapping that is none."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ShapeError(f"input_shapes is a {type(given).__name__}, not a mapping of input "
                         "names to shapes", hint="e.g. input_shapes={'input': (1, 3, 224, 224)}")
    out = {}
    for name, dims in given.items():
        try:
            if isinstance(dims, (str, bytes)):
                raise TypeError
            out[name] = tuple(operator.index(d) for d in dims)
        except TypeError:
            raise ShapeError(f"input_shapes[{name!r}] is {dims!r}, not a sequence of integer "
                             "sizes", hint=f"e.g. input_shapes={{{name!r}: (1, 3, 224, 224)}}"
                             ) from None
    return out


def _bind_symbols(graph: onnx.GraphProto, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """Named dims (``dim_param``) bound by ``input_shapes``: a name bound for one input binds the
    same name in every other input. Raises ShapeError when two bindings of a name disagree."""
    symbols: dict[str, int] = {}
    where: dict[str, str] = {}
    for vi in graph.input:
        given = input_shapes.get(vi.name)
        if given is None or not vi.type.tensor_type.HasField("shape"):
            continue
        for d, g in zip(vi.type.tensor_type.shape.dim, given):
            if d.dim_param and not d.HasField("dim_value"):
                if symbols.setdefault(d.dim_param, int(g)) != int(g):
                    raise ShapeError(
                        f"dim {d.dim_param!r} is bound to {symbols[d.dim_param]} by input "
                        f"{where[d.dim_param]!r} and to {int(g)} by input {vi.name!r}",
                        hint="inputs sharing a named dim must be given the same size")
                where.setdefault(d.dim_param, vi.name)
    return symbols


def _bind_shape(vi: onnx.ValueInfoProto, given: Sequence[int] | None,
                symbols: Mapping[str, int] | None = None) -> tuple[int, ...]:
    """The static shape of graph input ``vi``: ``given`` (from input_shapes) where the model
    leaves dims unknown (a name, no value or -1) or declares 0 (a valid size, which some
    exporters write for "unknown": input_shapes may rebind it); else the declared dims, named
    dims bound by another input's binding (``symbols``), and an unknown leading (batch) dim as 1
    with a warning. Raises ShapeError for any other unknown dim, naming the remedy."""
    symbols = symbols or {}
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        raise UnsupportedOpError([(vi.name, "input", "only tensor inputs are supported")])
    dims = list(tt.shape.dim) if tt.HasField("shape") else None
    if given is not None:
        given = tuple(int(d) for d in given)
        if dims is not None and len(dims) != len(given):
            raise ShapeError(f"input {vi.name!r} has rank {len(dims)} but input_shapes gives {given}",
                             hint="give one size per dimension")
        for d, g in zip(dims or [], given):
            if not _unknown(d) and d.dim_value > 0 and d.dim_value != g:
                raise ShapeError(f"input {vi.name!r}: fixed dim {d.dim_value} cannot be bound to {g}",
                                 hint="only unknown dims (named, -1 or 0) can be bound")
        if any(g < 0 for g in given):
            raise ShapeError(f"input {vi.name!r}: sizes must not be negative, got {given}")
        return given
    if dims is None:
        raise ShapeError(f"input {vi.name!r} has no shape",
                         hint=f"pass input_shapes={{{vi.name!r}: (...)}} (CLI: --input-shape)")
    shape = []
    for k, d in enumerate(dims):
        if not _unknown(d) and d.dim_value >= 0:
            shape.append(d.dim_value)
        elif not _unknown(d):
            raise ShapeError(f"input {vi.name!r}: dim {k} is negative ({d.dim_value}); a size "
                             "must be 0 or more (-1 for unknown)",
                             hint=f"fix the model's input shape, or give the size with "
                             f"input_shapes={{{vi.name!r}: (...)}} (CLI: --input-shape)")
        elif d.dim_param and d.dim_param in symbols:
            shape.append(symbols[d.dim_param])
        elif k == 0 and len(dims) > 1:
            warnings.warn(f"input {vi.name!r}: unknown batch dim {d.dim_param or '?'} bound to 1; "
                          f"pass input_shapes to choose another size", stacklevel=3)
            shape.append(1)
        else:
            what = d.dim_param or ("-1" if d.HasField("dim_value") else "unknown")
            raise ShapeError(f"input {vi.name!r}: dim {k} ({what}) is unknown (symbolic)",
                             hint=f"pass input_shapes={{{vi.name!r}: (...)}} (CLI: --input-shape "
                             f"{vi.name}=1,3,224,224)")
    return tuple(shape)


def _bind_constant(vi: onnx.ValueInfoProto, value: Any) -> np.ndarray:
    """``value`` for graph input ``vi`` bound as a constant (``constant_inputs``): in the
    input's declared dtype (refused when converting loses values) and shape (a flat list whose
    size matches a fully declared shape takes that shape; declared known dims must match).
    Raises ShapeError naming the input."""
    if not vi.type.HasField("tensor_type"):
        raise UnsupportedOpError([(vi.name, "input", "only tensor inputs are supported")])
    dt = _np_dtype(vi.type.tensor_type.elem_type, vi.name)
    given = np.asarray(value)
    if given.dtype.kind not in "biuf":
        raise ShapeError(f"constant_inputs[{vi.name!r}] is not numeric ({given.dtype})",
                         hint="give numbers, e.g. constant_inputs={'axes': [1]}")
    with np.errstate(all="ignore"):
        arr = given.astype(dt)
        same = np.array_equal(arr.astype(np.float64), given.astype(np.float64), equal_nan=True)
    if not same and not (dt.kind == "f" and given.dtype.kind == "f"):   # float64 -> float32 rounds
        raise ShapeError(f"constant_inputs[{vi.name!r}] = {given.tolist()} cannot be held by the "
                         f"input's type {dt} without changing values",
                         hint=f"give values of type {dt}")
    tt = vi.type.tensor_type
    if tt.HasField("shape"):
        dims = [None if _unknown(d) else d.dim_value for d in tt.shape.dim]
        if len(dims) != arr.ndim and None not in dims and math.prod(dims) == arr.size:
            arr = arr.reshape(dims)
        if len(dims) != arr.ndim or any(d is not None and d != n for d, n in zip(dims, arr.shape)):
            raise ShapeError(f"constant_inputs[{vi.name!r}] has shape {list(arr.shape)}, the model "
                             f"declares {['?' if d is None else d for d in dims]}",
                             hint="give a value of the declared shape")
    # np.ascontiguousarray would turn a scalar (shape ()) into shape (1,)
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


def _np_dtype(elem_type: int, name: str) -> np.dtype:
    try:
        dt = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception as e:
        dt = None
        err = e
    if dt is None or dt.kind not in "biuf":
        why = f"element type {onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type} is not supported"
        raise UnsupportedOpError([(name, "graph input", why)]) from (err if dt is None else None)
    return dt


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    attrs = {a.name: _attr_value(a) for a in node.attribute}
    if "value" in attrs:
        return np.asarray(attrs["value"])
    for key, dt in (("value_float", np.float32), ("value_int", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dt)
    for key, dt in (("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dt)
    raise AttributeValueError("Constant without a supported value attribute", node=node.name,
                              op="Constant", hint="sparse and string constants are not supported")


def import_onnx(model: str | Path | onnx.ModelProto,
                input_shapes: Mapping[str, Sequence[int]] | None = None,
                fold: bool = True, *, external_data_dir: str | Path | None = None,
                constant_inputs: Mapping[str, Any] | None = None) -> Graph:
    """Import an ONNX model into the IR.

    Args:
        model: path, ``zoo:NAME`` or ModelProto.
        input_shapes: binds unknown input dims (named, -1, or a declared 0), e.g.
            ``{"input": (1, 3, 224, 224)}``; a named dim bound for one input binds it in all.
        fold: fold nodes with constant inputs while importing (shape subgraphs need it).
        external_data_dir: for a ModelProto with external data, the folder holding its files
            (see :func:`load_model`).
        constant_inputs: graph inputs bound to constant values (name -> array-like), e.g.
            ``{"axes": [1]}``: they leave the inputs and fold like initializers. Values take the
            input's declared dtype (converted without loss) and shape (a flat list of as many
            values as a fully declared shape is reshaped to it).
    If, Loop and Scan nodes are inlined (:func:`onnxcc.control_flow.expand`): an If with a
    runtime condition computes both branches; loops must have a trip count known at compile time.

    Returns:
        the Graph, nodes in topological order, named after the model file (or graph name).
    Raises:
        ModelLoadError (also for a graph that is not in SSA form: see :func:`check_ssa`),
        UnsupportedOpError (every unsupported node at once), ShapeError, AttributeValueError.
    """
    proto, name = load_model(model, external_data_dir=external_data_dir)
    version = _opset(proto)
    domain_versions = _domain_opsets(proto)
    graph = proto.graph
    check_ssa(graph)
    input_shapes = _shape_bindings(input_shapes)
    registry = all_ops()
    bad_text = _not_utf8(graph)
    if bad_text is not None:
        raise ModelLoadError(f"the name {bad_text!r} is not valid UTF-8",
                             hint="the file is corrupt, or was not written by an ONNX exporter")

    # Every unsupported node at once, before any work.
    problems = []
    for k, n in enumerate(control_flow.subgraph_nodes(graph)):
        if n.domain in contrib.DOMAINS:
            why = contrib.problem(n)
            if why:
                problems.append((n.name or f"{n.op_type}_{k}", f"{n.domain}.{n.op_type}", why))
        elif n.domain == preview.DOMAIN:
            why = preview.problem(n, domain_versions.get(n.domain))
            if why:
                problems.append((n.name or f"{n.op_type}_{k}", f"{n.domain}.{n.op_type}", why))
        elif n.domain not in DEFAULT_DOMAINS:
            why = domain_problem(n.domain, n.op_type, domain_versions.get(n.domain),
                                 registry_key(n.domain, n.op_type) in registry)
            if why:
                problems.append((n.name or f"{n.op_type}_{k}", f"{n.domain}.{n.op_type}", why))
        elif n.op_type not in ("Constant", *control_flow.OPS) and (
                n.op_type not in registry or "." in n.op_type):   # a key of another domain
            problems.append((n.name or f"{n.op_type}_{k}", n.op_type, "op not implemented"))
        elif newer_form_problem(n.op_type, version):
            problems.append((n.name or f"{n.op_type}_{k}", n.op_type,
                             f"{newer_form_problem(n.op_type, version)} (model opset {version}); "
                             f"convert the model with onnx.version_converter.convert_version("
                             f"model, {IMPLEMENTED_OPSET})"))
    if problems:
        raise UnsupportedOpError(problems)

    values: dict[str, Value] = {}
    inits = {t.name for t in graph.initializer}
    for t in graph.initializer:
        if any(d < 0 for d in t.dims):
            raise ModelLoadError(f"initializer {t.name!r} has a negative dim {list(t.dims)}",
                                 hint="the model is malformed; re-export it")
        try:
            arr = numpy_helper.to_array(t, base_dir="")
        except Exception as e:
            raise ModelLoadError(f"initializer {t.name!r} cannot be read: {e}",
                                 hint="check its external data file sits beside the model") from e
        values[t.name] = Value(t.name, TensorType(arr.shape, arr.dtype), const=arr)

    graph_inputs = [vi.name for vi in graph.input if vi.name not in inits]
    unknown = sorted(set(input_shapes) - set(graph_inputs))
    if unknown:
        raise ShapeError(f"input_shapes names unknown inputs {unknown}",
                         hint=f"the model's inputs are {graph_inputs}")
    constant_inputs = dict(constant_inputs or {})
    unknown = sorted(set(constant_inputs) - set(graph_inputs))
    if unknown:
        raise ShapeError(f"constant_inputs names unknown inputs {unknown}",
                         hint=f"the model's inputs are {graph_inputs}")
    both = sorted(set(constant_inputs) & set(input_shapes))
    if both:
        raise ShapeError(f"inputs {both} are given both input_shapes and constant_inputs",
                         hint="a constant input's shape is its value's: drop its input_shapes")
    inputs = []
    symbols = _bind_symbols(graph, input_shapes)
    for vi in graph.input:
        if vi.name in inits:
            continue
        if vi.name in constant_inputs:
            arr = _bind_constant(vi, constant_inputs[vi.name])
            values[vi.name] = Value(vi.name, TensorType(arr.shape, arr.dtype), const=arr)
            continue
        shape = _bind_shape(vi, input_shapes.pop(vi.name, None), symbols)
        v = Value(vi.name, TensorType(shape, _np_dtype(vi.type.tensor_type.elem_type, vi.name)))
        values[vi.name] = v
        inputs.append(v)

    g = Graph([], inputs, [], name=name)
    used_names: set[str] = set()
    taken = control_flow.all_names(graph)

    def fresh(base: str) -> str:
        """A tensor name no other tensor of the model has (for inlined subgraphs)."""
        cand, n = base, 0
        while cand in taken:
            n += 1
            cand = f"{base}_{n}"
        taken.add(cand)
        return cand

    def emit(orig: onnx.NodeProto, k: int, scope: control_flow.Scope | None, prefix: str) -> None:
        """Import node ``orig`` (``k``-th of its graph); in a subgraph (``scope`` not None) its
        names are resolved through ``scope`` and its outputs renamed fresh under ``prefix``."""
        if orig.op_type in control_flow.OPS and orig.domain in ("", "ai.onnx"):
            nname = prefix + (orig.name or f"{orig.op_type}_{k}")
            while nname in used_names:
                nname += "_"
            used_names.add(nname)
            control_flow.expand(orig, nname, scope, cf)
            return
        if scope is not None:
            orig = _renamed(orig, k, scope, prefix, fresh)
        if version < LEGACY_BELOW and orig.domain in DEFAULT_DOMAINS:   # an old form (see
            # onnxcc.legacy): check it as written, then import its newer form
            oname = orig.name or f"{orig.op_type}_{k}"
            for a in orig.attribute:
                _check_attribute(a, orig.op_type, version, oname)
            upgraded = upgrade(orig, version, lambda t: values[t].shape if t in values else None,
                               oname)
        elif orig.domain in contrib.DOMAINS:   # onnxruntime's quantized ops, QONNX's Quant
            upgraded = contrib.expand(orig, orig.name or f"{orig.op_type}_{k}")
        elif orig.domain == preview.DOMAIN:   # FlexAttention: its ONNX function body
            types = [onnx.helper.make_tensor_type_proto(
                onnx.helper.np_dtype_to_tensor_dtype(values[t].dtype), values[t].shape)
                for t in orig.input if t]
            upgraded = preview.expand(orig, orig.name or f"{orig.op_type}_{k}",
                                      domain_versions[orig.domain], types, fresh)
        else:
            upgraded = [orig]
        for np_ in upgraded:
            add(np_, k)

    def add(np_: onnx.NodeProto, k: int) -> None:
        """Import one node of the current opset whose tensor names are final."""
        op = contrib.registry_name(np_)
        # the opset of the node's own domain (ai.onnx.ml's ops read theirs)
        nver = version if np_.domain in DEFAULT_DOMAINS else domain_versions.get(np_.domain, 1)
        nname = np_.name or f"{np_.op_type}_{k}"
        while nname in used_names:
            nname += "_"
        used_names.add(nname)
        if np_.op_type == "Constant":
            arr = _constant_value(np_)
            values[np_.output[0]] = Value(np_.output[0], TensorType(arr.shape, arr.dtype), const=arr)
            return
        ins: list[Value | None] = []
        for i in np_.input:
            if i == "":
                ins.append(None)
            elif i not in values:
                raise ModelLoadError(f"input {i!r} is not produced by any earlier node",
                                     node=nname, op=np_.op_type,
                                     hint="the graph must be topologically sorted and complete")
            else:
                ins.append(values[i])
        while ins and ins[-1] is None:
            ins.pop()
        opdef = get_op(op)
        attrs: dict[str, Any] = {}
        for a in np_.attribute:
            if a.name not in opdef.attrs:
                raise AttributeValueError(
                    f"unknown attribute {a.name!r}", node=nname, op=np_.op_type,
                    hint=f"known attributes: {sorted(opdef.attrs)}" + (
                        "" if version >= LEGACY_BELOW else f"; the opset-{version} form of "
                        f"{np_.op_type} is not supported: {CONVERT}"))
            _check_attribute(a, op, max(nver, LEGACY_BELOW) if nver < LEGACY_BELOW
                             and np_.domain in DEFAULT_DOMAINS else nver, nname)
            attrs[a.name] = _attr_value(a)
            if a.type == onnx.AttributeProto.FLOAT and not np.isfinite(a.f) \
                    and np_.op_type != "Constant" and np_.domain in DEFAULT_DOMAINS:
                # Elu alpha=-inf: no defined result (ai.onnx.ml's NaN values are data:
                # Imputer's replaced_value_float=NaN imputes missing values)
                raise AttributeValueError(f"attribute {a.name!r} is {a.f}, not a finite number",
                                          node=nname, op=np_.op_type,
                                          hint="the model is malformed; re-export it")
        eps = attrs.get("epsilon")
        if "epsilon" in attrs and not isinstance(eps, (int, float)):   # no schema checked it
            raise AttributeValueError(f"epsilon is {eps!r}, not a number", node=nname,
                                      op=np_.op_type, hint="the model is malformed; re-export it")
        if isinstance(eps, float) and eps < 0:   # a normalization's sqrt(var + epsilon)
            raise AttributeValueError(f"epsilon is {eps}; it must be >= 0", node=nname,
                                      op=np_.op_type, hint="the model is malformed; re-export it")
        for key, default in opdef.attrs.items():
            if key not in attrs:
                if default is REQUIRED:
                    raise AttributeValueError(f"required attribute {key!r} is missing", node=nname,
                                              op=np_.op_type, hint="re-export the model")
                attrs[key] = default
        outs = [Value(o or f"{nname}_unused{j}", TensorType((), np.float32))
                for j, o in enumerate(np_.output)]
        node = Node(op, ins, outs, attrs, nname, nver)
        for o in outs:
            o.producer = node
        n_in = len(ins)
        if n_in < opdef.min_inputs or (opdef.max_inputs >= 0 and n_in > opdef.max_inputs):
            raise AttributeValueError(f"takes {opdef.min_inputs}..{opdef.max_inputs} inputs, got {n_in}",
                                      node=nname, op=np_.op_type, hint="the model is malformed")
        # An empty name marks an omitted optional input; required ones (and a variadic op's) can't be.
        blank = [j for j, i in enumerate(np_.input)
                 if i == "" and (j < opdef.min_inputs or opdef.max_inputs < 0)]
        if blank:
            raise AttributeValueError(f"required input {blank[0]} is empty", node=nname,
                                      op=np_.op_type, hint="the model is malformed")
        bad_type = _spec_type_error(op, nver, ins)
        if bad_type:   # e.g. Cosh of int32: onnx's checker and onnxruntime refuse it too
            raise ModelLoadError(bad_type, node=nname, op=np_.op_type,
                                 hint="the model is malformed; re-export it")
        opdef.check(node)
        try:
            types = infer_node(node)
        except OnnxccError:
            raise
        except Exception as e:
            raise ShapeError(f"cannot infer output shapes: {e}", node=nname, op=np_.op_type) from e
        for o, t in zip(outs, types):
            if any(d < 0 for d in t.shape):   # an op's shape rule fed corrupt values
                raise ShapeError(f"output {o.name!r} would have shape {list(t.shape)} "
                                 "with a negative dim", node=nname, op=np_.op_type,
                                 hint="the model's shapes or shape constants are inconsistent")
            # beyond any machine's memory (and numpy's, for its tables), even when another dim
            # is 0: no axis may have 2**40 or more positions
            if t.size >= 2**40 or any(d >= 2**40 for d in t.shape):
                raise ShapeError(f"output {o.name!r} would have shape {list(t.shape)}, "
                                 f"{t.size * t.dtype.itemsize:.3g} bytes", node=nname,
                                 op=np_.op_type, hint="the model's shapes or shape constants "
                                 "are inconsistent, or input_shapes binds a dim far too large")
            o.type = t
        folded = False
        if np_.op_type in ALWAYS_FOLD or (fold and np_.op_type not in NEVER_FOLD
                                          and all(i is None or i.is_const for i in ins)):
            folded = _try_fold(node)
        for o in outs:
            values[o.name] = o
        if not folded:
            g.nodes.append(node)


    cf = control_flow.Context(values, version, emit, add, fresh)
    for k, orig in enumerate(graph.node):
        emit(orig, k, None, "")

    outputs = []
    if not graph.output:
        raise ModelLoadError("the graph has no outputs", hint="the model is malformed")
    for vi in graph.output:
        if vi.name not in values:
            raise ModelLoadError(f"graph output {vi.name!r} is never produced",
                                 hint="the model is malformed")
        declared = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
        if declared == onnx.TensorProto.STRING:   # class labels of an ai.onnx.ml classifier
            raise UnsupportedOpError([(vi.name, "graph output", (
                "string tensors are not supported; an ai.onnx.ml classifier with "
                "classlabels_strings computes its label output as the int64 index into that "
                "list: drop the label output from the graph outputs, or export int64 labels"))])
        got = _tensor_type_name(values[vi.name].dtype)
        if declared and _elem_type_name(declared) != got:   # 0: the model leaves it open
            raise ShapeError(f"graph output {vi.name!r} is declared {_elem_type_name(declared)} "
                             f"but computes {got}", hint="the model is malformed; re-export it")
        outputs.append(values[vi.name])
    g.outputs = outputs
    g.remove_dead()
    log.info("imported %s: opset %d, %d nodes", name, version, len(g.nodes))
    return g


def _renamed(node: onnx.NodeProto, k: int, scope: control_flow.Scope, prefix: str,
             fresh) -> onnx.NodeProto:
    """A copy of subgraph node ``node``: inputs resolved through ``scope`` (inner names shadow
    outer ones; names found nowhere are the main graph's), outputs given fresh names under
    ``prefix`` and registered in ``scope``, and the node named ``prefix`` + its name."""
    out = onnx.NodeProto()
    out.CopyFrom(node)
    out.name = prefix + (node.name or f"{node.op_type}_{k}")
    del out.input[:]
    out.input.extend(scope.get(i, i) if i else "" for i in node.input)
    del out.output[:]
    for o in node.output:
        if o:
            scope[o] = fresh(prefix + o)
        out.output.append(scope[o] if o else "")
    return out


def check_ssa(graph: onnx.GraphProto) -> None:
    """Refuse a graph where a tensor has two producers, as onnx's checker ("Graph must be in
    single static assignment (SSA) form") and onnxruntime ("Duplicate definition of name") do:
    two nodes with the same output, or a node output named like a graph input or an initializer.
    A graph output that *is* a graph input or an initializer is fine (it is passed through).

    Raises ModelLoadError naming the tensor and both producers.
    """
    producer: dict[str, str] = {t.name: "initializer" for t in graph.initializer}
    inputs: set[str] = set()
    for vi in graph.input:
        if vi.name in inputs:
            raise ModelLoadError(
                f"graph input {vi.name!r} is declared twice; a tensor must have exactly one "
                "producer (SSA form)",
                hint="the model is invalid (onnx.checker and onnxruntime reject it too); "
                "rename or remove one of the two inputs")
        inputs.add(vi.name)
        producer.setdefault(vi.name, "graph input")
    for k, n in enumerate(graph.node):
        nname = n.name or f"{n.op_type}_{k}"
        for o in n.output:
            if not o:
                continue
            if o in producer:
                first = producer[o]
                first = first if first in ("initializer", "graph input") else f"node {first!r}"
                raise ModelLoadError(
                    f"tensor {o!r} is produced twice: by {first} and by node {nname!r} "
                    f"({n.op_type}); a tensor must have exactly one producer (SSA form)",
                    node=nname, op=n.op_type,
                    hint="the model is invalid (onnx.checker and onnxruntime reject it too); "
                    "rename one of the two outputs and its users")
            producer[o] = nname


def _try_fold(node: Node) -> bool:
    """Evaluate a node with constant inputs; turn its outputs into constants. True if folded.

    Results over MAX_FOLD_ELEMENTS are kept only when they are splats (0-stride views)."""
    ins = [None if i is None else (i.const if i.is_const else np.zeros(i.shape, i.dtype))
           for i in node.inputs]
    big = sum(o.type.size for o in node.outputs) > MAX_FOLD_ELEMENTS
    if big and node.op not in ("ConstantOfShape", "Expand"):
        return False
    with np.errstate(all="ignore"):
        outs = run_node(node, *ins)
    if big and not all(a.size <= 1 or all(st == 0 for st in a.strides) for a in outs):
        return False
    for o, a in zip(node.outputs, outs):
        o.const = a
        o.producer = None
        o.type = TensorType(a.shape, a.dtype)
    return True


def c_identifier(text: str, prefix: str = "t") -> str:
    """An identifier fragment made from untrusted ``text``: :func:`onnxcc.codegen.names.sanitize`
    (ASCII letters, digits and single inner underscores, never starting with a digit). Code
    generators name things through :class:`onnxcc.codegen.names.Namer`, which also keeps names
    unique, disjoint from onnxcc's own symbols, and clear of keywords and libc names."""
    from onnxcc.codegen.names import sanitize

    return sanitize(text, prefix)
