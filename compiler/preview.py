"""Ops of the ``ai.onnx.preview`` domain, imported as the default-domain nodes of their ONNX
function bodies.

A preview op (FlexAttention, preview opset 1) is defined by the ONNX spec through a function:
its schema builds, for the node's attributes and input types, a body of default-domain nodes
(a context-dependent function: FlexAttention's ``score_mod`` and ``prob_mod`` subgraphs are
inlined into it). :func:`expand` takes that body from the installed onnx
(``OpSchema.get_context_dependent_function_with_opset_version``, or the plain function) and
renames it into the model, as onnx's own expanded node tests do
(``onnx.backend.test.case.node.function_expand_helper``); the frontend then imports the body
nodes at the model's default opset. The onnx node cases ``test_flexattention_*_expanded_ver26``
are these bodies.
"""

from __future__ import annotations

from typing import Callable, Sequence

import onnx
from onnx import helper

from .errors import UnsupportedOpError

DOMAIN = "ai.onnx.preview"


def _schema(op: str, opset: int) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op, opset, DOMAIN)
    except onnx.defs.SchemaError:
        return None


def problem(n: onnx.NodeProto, opset: int | None) -> str | None:
    """Why preview node ``n`` cannot be imported at the model's ``ai.onnx.preview`` ``opset``
    (None when the model imports none), or None when it can: its schema must exist there and
    define the op by a function body."""
    if opset is None:
        return f"the model imports no {DOMAIN} opset"
    s = _schema(n.op_type, opset)
    if s is None:
        return f"{DOMAIN} has no op {n.op_type} at opset {opset}"
    if not (s.has_function or s.has_context_dependent_function):
        return f"{DOMAIN}.{n.op_type} has no ONNX function body, and onnxcc has no kernel for it"
    return None


def _function(n: onnx.NodeProto, opset: int, input_types: Sequence[onnx.TypeProto],
              name: str) -> onnx.FunctionProto:
    """The function body of ``n`` at preview ``opset`` (the newest body no newer than it)."""
    s = _schema(n.op_type, opset)
    fp = onnx.FunctionProto()
    dep = [v for v in s.context_dependent_function_opset_versions if v <= opset]
    plain = [v for v in s.function_opset_versions if v <= opset]
    try:
        if dep:
            fp.ParseFromString(s.get_context_dependent_function_with_opset_version(
                max(dep), n.SerializeToString(), [t.SerializeToString() for t in input_types]))
        elif plain:
            fp.ParseFromString(s.get_function_with_opset_version(max(plain)))
        else:
            raise ValueError("no function body at this opset")
    except Exception as e:   # onnx's builder refuses the node (a malformed modifier subgraph)
        raise UnsupportedOpError([(name, f"{DOMAIN}.{n.op_type}",
                                   f"onnx cannot build its function body: {e}")]) from e
    return fp


def expand(n: onnx.NodeProto, name: str, opset: int,
           input_types: Sequence[onnx.TypeProto],
           fresh: Callable[[str], str]) -> list[onnx.NodeProto]:
    """Preview node ``n`` (named ``name``) as the default-domain nodes of its function body at
    preview ``opset``, for inputs of ``input_types`` (tensor types with static shapes). The
    body's inputs and outputs become the node's tensors; its other tensors get names from
    ``fresh`` (unique in the model); attributes that refer to the node's (``ref_attr_name``)
    take the node's value, or are dropped for the schema default. Raises UnsupportedOpError
    naming the node when onnx cannot build the body or the body holds control flow
    (subgraph attributes)."""
    fp = _function(n, opset, input_types, name)
    names: dict[str, str] = {}
    for k, i in enumerate(fp.input):
        names[i] = n.input[k] if k < len(n.input) else ""
    for k, o in enumerate(fp.output):
        if k < len(n.output) and n.output[k]:
            names[o] = n.output[k]
    given = {a.name: a for a in n.attribute}

    def rename(t: str) -> str:
        if t == "":
            return ""
        if t not in names:
            names[t] = fresh(f"{name}__{t}")
        return names[t]

    out: list[onnx.NodeProto] = []
    for k, b in enumerate(fp.node):
        if b.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError([(name, f"{DOMAIN}.{n.op_type}",
                                       f"its function body uses {b.domain}.{b.op_type}")])
        attrs = []
        for a in b.attribute:
            if a.ref_attr_name:
                if a.ref_attr_name not in given:
                    continue
                a2 = onnx.AttributeProto()
                a2.CopyFrom(given[a.ref_attr_name])
                a2.name = a.name
                a = a2
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise UnsupportedOpError([(name, f"{DOMAIN}.{n.op_type}",
                                           f"its function body has control flow ({b.op_type}) "
                                           "from score_mod/prob_mod; onnxcc inlines only "
                                           "subgraphs free of If/Loop/Scan here")])
            attrs.append(a)
        node = helper.make_node(b.op_type, [rename(t) for t in b.input],
                                [rename(t) for t in b.output],
                                name=f"{name}__{b.name or f'{b.op_type}_{k}'}")
        node.attribute.extend(attrs)
        out.append(node)
    return out
