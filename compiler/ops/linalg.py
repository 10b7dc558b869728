"""Linear algebra: Einsum (opset 12) and Det (opsets 11, 22).

Einsum's equation is parsed once (:func:`einsum_spec`) into one term of labels per input and the
output's labels, with ``...`` replaced by fresh labels (right-aligned across the inputs, as
numpy does) and spaces dropped; without ``->`` the output is the ellipsis dims followed by the
labels used exactly once, in ASCII order. A label's dims must agree, or be 1 (broadcast).
Products and sums are in the inputs' dtype (integers wrap), as numpy.einsum computes.

Det: x (..., M, M) float -> (...): the determinant of each matrix.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import REQUIRED, OpDef, attr, register_op


def _err(node: Node, msg: str, hint: str = "fix the equation") -> ShapeError:
    return ShapeError(msg, node=node.name, op=node.op, hint=hint)


@dataclass(frozen=True)
class EinsumSpec:
    """A parsed Einsum: ``terms[k]`` labels input k's dims, ``out`` the output's, ``sizes``
    each label's extent (the largest of its dims; the others are 1)."""

    terms: tuple[str, ...]
    out: str
    sizes: dict

    @property
    def summed(self) -> str:
        """Labels summed over (in first-use order)."""
        seen = dict.fromkeys("".join(self.terms))
        return "".join(c for c in seen if c not in self.out)

    def equation(self) -> str:
        return ",".join(self.terms) + "->" + self.out


def einsum_spec(node: Node) -> EinsumSpec:
    """Parse the node's equation against its input shapes (module docstring). Raises
    ShapeError for a malformed equation or disagreeing dims."""
    eq = attr(node, "equation")
    eq = (eq.decode() if isinstance(eq, bytes) else str(eq)).replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    shapes = [v.shape for v in node.inputs]
    if len(terms) != len(shapes):
        raise _err(node, f"equation {eq!r} has {len(terms)} terms for {len(shapes)} inputs")
    letters = set(string.ascii_letters)
    bad = set(eq.replace("...", "").replace(",", "").replace("->", "")) - letters
    if bad:
        raise _err(node, f"equation {eq!r} has characters {sorted(bad)} that are not labels")
    fresh = [c for c in string.ascii_letters if c not in eq]
    ell_rank = 0
    for t, s in zip(terms, shapes):
        if "..." in t:
            ell_rank = max(ell_rank, len(s) - (len(t) - 3))
    if ell_rank > len(fresh):
        raise _err(node, f"equation {eq!r}: too many dims under '...'")
    ell = "".join(fresh[:ell_rank])
    full = []
    for t, s in zip(terms, shapes):
        n_ell = len(s) - (len(t) - 3) if "..." in t else 0
        if n_ell < 0 or ("..." not in t and len(t) != len(s)):
            raise _err(node, f"term {t!r} does not match an input of rank {len(s)}")
        full.append(t.replace("...", ell[ell_rank - n_ell:] if n_ell else ""))
    if arrow:   # ellipsis dims the output leaves out are summed
        rhs = rhs.replace("...", ell)
    else:
        counts = {c: "".join(full).count(c) for c in "".join(full)}
        rhs = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    sizes: dict[str, int] = {}
    for t, s in zip(full, shapes):
        for c, d in zip(t, s):
            if c not in sizes or sizes[c] == 1:
                sizes[c] = d
            elif d not in (1, sizes[c]):
                raise _err(node, f"label {c!r} has dims {sizes[c]} and {d}",
                           "give each label one extent (or 1)")
    if len(set(rhs)) != len(rhs) or any(c not in sizes for c in rhs):
        raise _err(node, f"output labels {rhs!r} must be distinct labels of the inputs")
    return EinsumSpec(tuple(full), rhs, sizes)


@register_op("Einsum")
class Einsum(OpDef):
    """ONNX Einsum(inputs...; equation): Einstein summation (module docstring)."""

    attrs = {"equation": REQUIRED}
    min_inputs, max_inputs = 1, -1

    def infer(self, node: Node) -> list[TensorType]:
        sp = einsum_spec(node)
        dts = {v.dtype for v in node.inputs}
        if len(dts) != 1:
            raise _err(node, f"inputs have dtypes {sorted(d.name for d in dts)}",
                       "cast the inputs to one dtype")
        return [TensorType(tuple(sp.sizes[c] for c in sp.out), node.inputs[0].dtype)]

    def reference(self, node: Node, *xs) -> list[np.ndarray]:
        sp = einsum_spec(node)
        xs = [np.broadcast_to(x, tuple(sp.sizes[c] if d == 1 else d for c, d in zip(t, x.shape)))
              for t, x in zip(sp.terms, xs)]
        with np.errstate(over="ignore"):
            return [np.asarray(np.einsum(sp.equation(), *xs), dtype=xs[0].dtype)]


@register_op("Det")
class Det(OpDef):
    """ONNX Det(X): x (..., M, M) float -> (...) determinants (numpy.linalg.det: LU with
    partial pivoting)."""

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        if len(x.shape) < 2 or x.shape[-1] != x.shape[-2]:
            raise _err(node, f"input shape {list(x.shape)} is not (..., M, M)",
                       "give square matrices in the last two axes")
        if x.dtype.kind != "f":
            raise _err(node, f"Det takes floats, got {x.dtype.name}", "cast the input to float")
        return [TensorType(x.shape[:-2], x.dtype)]

    def reference(self, node: Node, x) -> list[np.ndarray]:
        return [np.asarray(np.linalg.det(x), dtype=x.dtype)]
