"""Helpers shared by the op families (private: the public normalizers live in each family file).

They read an op's parameters from constant inputs or attributes and normalize axes, and raise
onnxcc errors that name the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError, UnsupportedOpError
from ..ir import Node, Value
from . import bad_attr

# ONNX TensorProto.DataType -> numpy dtype, for the types numpy holds natively.
ONNX_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.float32), 2: np.dtype(np.uint8), 3: np.dtype(np.int8), 4: np.dtype(np.uint16),
    5: np.dtype(np.int16), 6: np.dtype(np.int32), 7: np.dtype(np.int64), 9: np.dtype(np.bool_),
    10: np.dtype(np.float16), 11: np.dtype(np.float64), 12: np.dtype(np.uint32),
    13: np.dtype(np.uint64),
}


def onnx_dtype(node: Node, code: int) -> np.dtype:
    """numpy dtype of ONNX element type ``code``. Raises UnsupportedOpError for string, complex,
    bfloat16, float8 and 4-bit types."""
    try:
        return ONNX_DTYPES[int(code)]
    except KeyError:
        why = f"ONNX element type {code} is not supported (numpy cannot hold it)"
        raise UnsupportedOpError([(node.name, node.op, why)]) from None


def has_input(node: Node, k: int) -> bool:
    """True when optional input ``k`` is present (not omitted, not past the end)."""
    return k < len(node.inputs) and node.inputs[k] is not None


def const_input(node: Node, k: int, what: str) -> np.ndarray | None:
    """The constant data of input ``k``, or None when the optional input is omitted.

    Raises ShapeError naming the node when the input is present but not a constant.
    """
    if not has_input(node, k):
        return None
    v = node.inputs[k]
    if v.const is None and v.producer is None:   # a graph input: the user can bind it
        raise ShapeError(f"input {k} ({what}) is the graph input {v.name!r}; it must be a "
                         "constant: onnxcc needs its value at compile time (it sets shapes or "
                         "parameters built into the code)",
                         node=node.name, op=node.op,
                         hint=f"bind its value when compiling: onnxcc.compile(..., "
                         f"constant_inputs={{{v.name!r}: ...}}) (CLI: --constant-input "
                         f"{v.name}=V0,V1,...), or make it an initializer")
    if v.const is None:
        sources = graph_inputs_upstream(v)
        hint = ("fold the subgraph that computes it (import with fold=True) or export the "
                "model with static shapes")
        if sources:
            names = ", ".join(repr(s) for s in sources)
            hint = (f"it is computed from the graph input(s) {names}: bind them when compiling "
                    f"with onnxcc.compile(..., constant_inputs={{{sources[0]!r}: ...}}) (CLI: "
                    f"--constant-input {sources[0]}=V0,V1,...), or {hint}")
        raise ShapeError(f"input {k} ({what}, value {v.name!r}) must be a constant to compile "
                         "statically", node=node.name, op=node.op, hint=hint)
    return np.asarray(v.const)


def graph_inputs_upstream(v: Value) -> list[str]:
    """Names of the graph inputs ``v`` is computed from (walking producers), in first-seen
    order; empty when it depends on none."""
    seen: set[int] = set()
    found: list[str] = []
    todo = [v]
    while todo:
        u = todo.pop()
        if u is None or id(u) in seen or u.const is not None:
            continue
        seen.add(id(u))
        if u.producer is None:
            found.append(u.name)
        else:
            todo.extend(reversed(u.producer.inputs))
    return found


def norm_axis(node: Node, axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` in [-rank, rank) made non-negative. Raises AttributeValueError outside it."""
    axis = int(axis)
    if not -rank <= axis < rank:
        raise bad_attr(node, f"{what} {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def norm_axes(node: Node, axes: Sequence[int], rank: int, what: str = "axes") -> tuple[int, ...]:
    """Each axis made non-negative; raises AttributeValueError on out-of-range or repeated axes."""
    out = tuple(norm_axis(node, a, rank, what) for a in axes)
    if len(set(out)) != len(out):
        raise bad_attr(node, f"{what} {list(axes)} repeats an axis")
    return out


def ints(value: Any) -> tuple[int, ...]:
    """A tuple of Python ints from an attribute list or a 1-D array."""
    return tuple(int(v) for v in np.asarray(value).reshape(-1))


def spatial_attr(node: Node, name: str, n: int, default: int) -> tuple[int, ...]:
    """A per-spatial-axis attribute (strides, dilations...): ``n`` ints, ``default`` when unset.

    Raises AttributeValueError when the length is not ``n``.
    """
    v = node.attrs.get(name)
    if v is None or len(v) == 0:
        return (default,) * n
    v = ints(v)
    if len(v) != n:
        raise bad_attr(node, f"{name} has {len(v)} values, expected {n} (one per spatial axis)")
    return v
