"""Table-driven ops for fixed-point hardware (made by passes, never read from an ONNX file).

- ``onnxcc.TableSoftmax(x, exp_table, inv_table)``: Softmax over ``axis`` of float32 ``x`` (the
  last axis, or one followed only by dims of 1)
  computed the way FPGA designs do it (hls4ml's "stable" softmax): per row of L values,
  ``m = max(x)``; ``e[j] = exp_table[min(trunc((m - x[j]) * exp_scale), N - 1)]``;
  ``s = sum(e)``; ``y[j] = e[j] * inv_table[min(trunc(s * inv_scale), N2 - 1)]``, where
  ``exp_table[i] = exp(-i / exp_scale)`` (N entries) and ``inv_table[k] = 1 / max((k + 0.5) /
  inv_scale, 1)`` (N2 entries, the reciprocal at each bin's middle; s >= 1 always, as the
  row's maximum contributes exp(0) = 1). ``exp_scale`` and
  ``inv_scale`` are powers of two (so the scaling is exact in fixed point); ``inv_scale`` is
  N2 / S with S the smallest power of two >= L, at most 16 (s lies in [1, L]; a larger sum takes
  the last entry).
"""

from __future__ import annotations

import numpy as np

from ..ir import Node, TensorType
from . import OpDef, bad_attr, register_op


def _pow2(v: float) -> bool:
    return v > 0 and float(np.log2(v)).is_integer()


@register_op("onnxcc.TableSoftmax")
class TableSoftmax(OpDef):
    """See the module docstring. x float32 (..., L); exp_table (N,), inv_table (N2,) float32
    constants; attributes ``exp_scale`` and ``inv_scale`` (powers of two, table entries per
    unit of x and of the sum)."""

    attrs = {"exp_scale": 128.0, "inv_scale": 64.0, "axis": -1}
    min_inputs, max_inputs = 3, 3

    def check(self, node: Node) -> None:
        x, et, it = node.inputs
        if x.dtype != np.float32 or not x.shape:
            raise bad_attr(node, f"needs a float32 x of rank >= 1, got {x.dtype} {list(x.shape)}")
        for t in (et, it):
            if t.const is None or len(t.shape) != 1 or t.shape[0] < 1:
                raise bad_attr(node, "exp_table and inv_table must be 1-D constants")
        for a in ("exp_scale", "inv_scale"):
            if not _pow2(float(node.attrs.get(a, self.attrs[a]))):
                raise bad_attr(node, f"{a} must be a power of two, got {node.attrs.get(a)}")
        axis = int(node.attrs.get("axis", -1)) % len(x.shape)
        if any(d != 1 for d in x.shape[axis + 1:]):
            raise bad_attr(node, f"axis {axis} must be the last one not of size 1")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, np.dtype(np.float32))]

    def reference(self, node, x, et, it):
        es = float(node.attrs.get("exp_scale", self.attrs["exp_scale"]))
        ins = float(node.attrs.get("inv_scale", self.attrs["inv_scale"]))
        x = np.asarray(x, np.float32)
        axis = int(node.attrs.get("axis", -1)) % x.ndim
        shape = x.shape
        x = x.reshape(int(np.prod(shape[:axis], dtype=np.int64)), shape[axis])
        m = x.max(axis=-1, keepdims=True)
        idx = np.minimum(np.trunc((m - x) * np.float32(es)), len(et) - 1).astype(np.int64)
        e = np.asarray(et, np.float32)[idx]
        s = e.sum(axis=-1, keepdims=True, dtype=np.float32)
        k = np.minimum(np.trunc(s * np.float32(ins)), len(it) - 1).astype(np.int64)
        return [(e * np.asarray(it, np.float32)[k]).astype(np.float32).reshape(shape)]


def softmax_tables(length: int, exp_entries: int = 1024, exp_range: float = 8.0,
                   inv_entries: int = 1024) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(exp_table, inv_table, exp_scale, inv_scale) for rows of ``length`` values: exp over
    [-exp_range, 0] in ``exp_entries`` steps, the reciprocal over [0, S) in ``inv_entries``
    steps with S the smallest power of two >= ``length``, at most 16 (float32 tables). A sum
    past 16 (a flat distribution over many classes) takes the last entry: every output of the
    row is then too large by the same factor, so the order of the classes is kept."""
    es = exp_entries / exp_range
    s_max = min(1 << max(0, int(np.ceil(np.log2(max(length, 1))))), 16)
    ins = inv_entries / s_max
    et = np.exp(-np.arange(exp_entries, dtype=np.float64) / es).astype(np.float32)
    mid = (np.arange(inv_entries, dtype=np.float64) + 0.5) / ins
    it = (1.0 / np.maximum(mid, 1.0)).astype(np.float32)
    return et, it, float(es), float(ins)


@register_op("onnxcc.TableActivation")
class TableActivation(OpDef):
    """See the module docstring. x float32 of any shape; table (N,) float32 constant;
    attributes ``lo`` (the range's start) and ``scale`` (entries per unit of x, a power of
    two); ``function`` names what the table holds (Sigmoid, Tanh), for reports."""

    attrs = {"lo": -8.0, "scale": 64.0, "function": ""}
    min_inputs, max_inputs = 2, 2

    def check(self, node: Node) -> None:
        x, t = node.inputs
        if x.dtype != np.float32 or t.const is None or len(t.shape) != 1 or t.shape[0] < 1:
            raise bad_attr(node, "needs a float32 x and a 1-D constant table")
        if not _pow2(float(node.attrs.get("scale", 64.0))):
            raise bad_attr(node, f"scale must be a power of two, got {node.attrs.get('scale')}")

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType(node.inputs[0].shape, np.dtype(np.float32))]

    def reference(self, node, x, table):
        lo, sc = float(node.attrs.get("lo", -8.0)), float(node.attrs.get("scale", 64.0))
        idx = np.clip(np.trunc((np.asarray(x, np.float32) - np.float32(lo)) * np.float32(sc)),
                      0, len(table) - 1).astype(np.int64)
        return [np.asarray(table, np.float32)[idx]]


ACTIVATION_TABLES = {"Sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)), "Tanh": np.tanh}


def activation_table(fn: str, entries: int = 1024, span: float = 8.0
                     ) -> tuple[np.ndarray, float, float]:
    """(table, lo, scale) of ``fn`` (a key of :data:`ACTIVATION_TABLES`) over [-span, span) in
    ``entries`` steps (hls4ml's default: 1024 entries over [-8, 8))."""
    scale = entries / (2 * span)
    mid = -span + (np.arange(entries, dtype=np.float64) + 0.5) / scale
    return ACTIVATION_TABLES[fn](mid).astype(np.float32), -span, float(scale)
