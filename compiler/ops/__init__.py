"""The op registry: every op is declared once, here, with its attributes, inference and reference.

An :class:`OpDef` states the ONNX attribute schema with spec defaults, shape/dtype inference and a
numpy reference implementation (the semantics of the ONNX spec for opsets 7 to 21). The reference
interpreter, constant folding and the test oracle all use it. Code generators lower ops in their
own registries (``onnxcc.codegen.<target>.lower``).

To add an op, copy ``TEMPLATE.py`` into the family file and register it with :func:`register_op`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np

from ..errors import AttributeValueError, ShapeError, UnsupportedOpError
from ..ir import Node, TensorType

REQUIRED = object()  # marks an attribute without a default


class OpDef:
    """Base of an op declaration.

    Class attributes:
        name: the registry key: the ONNX op type in the default domain, ``<domain>.<op type>``
            in another (``ai.onnx.ml.TreeEnsembleRegressor``, ``com.microsoft.QGemm``: see
            :func:`registry_key`), or ``onnxcc.<Name>`` for onnxcc's own ops.
        domain: the ONNX domain (``""`` for the default one and onnxcc's own ops).
        attrs: attribute name -> spec default (``REQUIRED`` when the spec gives none).
        traits: ``elementwise`` (output is the broadcast of the inputs, one scalar function),
            ``view`` (output has the input's bytes: Reshape, Flatten...), ``fusable_epilogue``
            (an activation that can follow Conv/Gemm), ``quantizable``.
        min_inputs / max_inputs: arity, for the frontend's checks (max -1 = variadic).
    """

    name: str = ""
    domain: str = ""
    attrs: dict[str, Any] = {}
    traits: frozenset[str] = frozenset()
    min_inputs: int = 1
    max_inputs: int = 1

    def check(self, node: Node) -> None:
        """Raise :class:`AttributeValueError` when an attribute value is outside the spec."""

    def infer(self, node: Node) -> list[TensorType]:
        """Output types of ``node``. Default: run :meth:`reference` on zeros of the input shapes
        (constant inputs keep their data). Ops with heavy references override this."""
        args = []
        for v in node.inputs:
            if v is None:
                args.append(None)
            elif v.const is not None:
                args.append(v.const)
            else:
                args.append(np.zeros(v.shape, v.dtype))
        with np.errstate(all="ignore"):
            outs = self.reference(node, *args)
        return [TensorType(np.shape(o), np.asarray(o).dtype) for o in outs]

    def reference(self, node: Node, *inputs: np.ndarray | None) -> list[np.ndarray]:
        """The numpy implementation: arrays in, arrays out (one per node output)."""
        raise NotImplementedError(self.name)

    def to_python(self, node: Node, value: np.ndarray) -> Any:
        """What ``CompiledModel.run`` returns for a graph output this node produces, given the
        array the generated code wrote (default: the array; ai.onnx.ml ZipMap: onnxruntime's
        list of dicts)."""
        return value


REGISTRY: dict[str, OpDef] = {}
DEFAULT_DOMAINS = ("", "ai.onnx")


def registry_key(domain: str, op_type: str) -> str:
    """The registry key of ONNX op ``op_type`` of ``domain``: the op type itself in the default
    domain (``""`` or ``ai.onnx``), else ``<domain>.<op type>``. Every op of the registry, the
    lowerings (``onnxcc.codegen.lower``) and ``Node.op`` use this key."""
    return op_type if domain in DEFAULT_DOMAINS else f"{domain}.{op_type}"


def split_key(key: str) -> tuple[str, str]:
    """``(domain, op type)`` of a registry key (the inverse of :func:`registry_key`; onnxcc's own
    ops give ``("onnxcc", name)``, which no ONNX schema has)."""
    domain, _, op_type = key.rpartition(".")
    return domain, op_type


def register_op(name: str, traits: set[str] | frozenset[str] = frozenset(),
                domain: str = "") -> Callable[[type], type]:
    """Class decorator: register an :class:`OpDef` subclass for the ONNX op ``name`` of
    ``domain`` (default: the ONNX default domain), under :func:`registry_key`."""

    def deco(cls: type) -> type:
        inst = cls()
        inst.name = registry_key(domain, name)
        inst.domain = "" if domain in DEFAULT_DOMAINS else domain
        inst.traits = frozenset(traits) | frozenset(getattr(cls, "traits", frozenset()))
        REGISTRY[inst.name] = inst
        return cls

    return deco


def get_op(node_or_op: Node | str) -> OpDef:
    """The declaration of an op. Raises :class:`UnsupportedOpError` when there is none."""
    _load_families()
    if isinstance(node_or_op, Node):
        op = REGISTRY.get(node_or_op.op)
        if op is None:
            raise UnsupportedOpError([(node_or_op.name, node_or_op.op, "op not implemented")])
        return op
    op = REGISTRY.get(node_or_op)
    if op is None:
        raise UnsupportedOpError([("?", node_or_op, "op not implemented")])
    return op


def infer_node(node: Node) -> list[TensorType]:
    """Output types of ``node`` from its op's declaration."""
    try:
        return get_op(node).infer(node)
    except (ShapeError, AttributeValueError, UnsupportedOpError):
        raise
    except Exception as e:  # a reference that cannot run on these shapes
        raise ShapeError(f"cannot infer output shapes: {e}", node=node.name, op=node.op,
                         hint="check the input shapes given to this node") from e


def run_node(node: Node, *inputs: np.ndarray | None) -> list[np.ndarray]:
    """Evaluate ``node`` on numpy arrays with its reference implementation. Raises
    MemoryError when an array it needs cannot exist (numpy says so with a ValueError for
    sizes past the address space)."""
    try:
        outs = get_op(node).reference(node, *inputs)
    except ValueError as e:
        if "array is too big" in str(e) or "maximum supported dimension" in str(e):
            raise MemoryError(f"node {node.name!r} ({node.op}): {e}") from e
        raise
    res = []
    for o, v in zip(outs, node.outputs):
        a = np.asarray(o)
        if a.dtype != v.dtype:
            a = a.astype(v.dtype)
        res.append(a)
    return res


def attr(node: Node, name: str) -> Any:
    """Attribute value of ``node`` (frontend fills spec defaults, so a missing one is an error)."""
    try:
        return node.attrs[name]
    except KeyError:
        raise AttributeValueError(f"attribute {name!r} is required", node=node.name, op=node.op,
                                  hint="the ONNX spec requires this attribute; re-export the model")


def bad_attr(node: Node, message: str) -> AttributeValueError:
    """An :class:`AttributeValueError` naming the node, with a standard remedy."""
    return AttributeValueError(message, node=node.name, op=node.op,
                               hint="fix the attribute to a value the ONNX spec allows")


FAMILIES = ("elementwise", "nn", "matmul", "norm", "shape", "reduce", "fused", "quant", "quant_int",
            "table", "rnn", "loss", "indexing", "bitwise", "matrix",
            "cumulative", "activation", "selection", "signal", "linalg", "ml", "sampling",
            "data_dependent",
            "ml_svm", "ml_trees", "attention")
_loaded = False


def _load_families() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for fam in FAMILIES:
            importlib.import_module(f"{__name__}.{fam}")


def all_ops() -> dict[str, OpDef]:
    """Every registered op, by name."""
    _load_families()
    return dict(sorted(REGISTRY.items()))
