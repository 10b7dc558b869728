"""Helpers for the pass tests (models are built with ``tests/builders.py``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from onnxcc.ir import Graph
from onnxcc.ops import run_node


def ops(g: Graph) -> list[str]:
    """The op of every node, in order."""
    return [n.op for n in g.nodes]


def run_plan(g: Graph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``g`` the way generated code does: every value read from and written to the bytes the
    memory plan gives it (one arena, one buffer per graph input and output; a window read in
    place through its buffer's strides). A plan that lets a tensor be overwritten before its last
    read gives wrong outputs here."""
    p = g.meta["memory_plan"]
    space = {("arena", 0): bytearray(p.arena_size)}
    for k, v in enumerate(g.inputs):
        space[("input", k)] = bytearray(v.type.nbytes)
    for k, v in enumerate(g.outputs):
        space[("output", k)] = bytearray(v.type.nbytes)

    def at(v) -> np.ndarray:
        b = p.buffers[v.name]
        buf = space[(b.space, b.index)]
        strides = getattr(b, "strides", None)
        if strides is not None:   # a window of a larger tensor, read in place
            flat = np.frombuffer(buf, v.dtype, len(buf) // v.dtype.itemsize - b.offset // v.dtype.itemsize,
                                 b.offset)
            return np.lib.stride_tricks.as_strided(
                flat, v.shape, tuple(s * v.dtype.itemsize for s in strides))
        return np.frombuffer(buf, v.dtype, v.type.size, b.offset).reshape(v.shape)

    for v in g.inputs:
        at(v)[...] = feeds[v.name]
    for n in g.nodes:
        args = [None if i is None else (i.const if i.is_const else at(i).copy()) for i in n.inputs]
        with np.errstate(all="ignore"):
            outs = run_node(n, *args)
        for o, a in zip(n.outputs, outs):
            at(o)[...] = a
    return {v.name: (v.const if v.is_const else at(v).copy()) for v in g.outputs}
