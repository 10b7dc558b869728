"""Reference interpreter: runs a Graph with each op's numpy reference.

Used for constant folding, calibration and as the second test oracle beside onnxruntime.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from .errors import MemoryBudgetError, ShapeError
from .ir import Graph
from .ops import run_node


def interpret(g: Graph, feeds: Mapping[str, np.ndarray] | None = None, /, **kw: np.ndarray
              ) -> dict[str, np.ndarray]:
    """Evaluate ``g`` on ``feeds`` (input name -> array, shapes as the graph declares).

    Returns output name -> array. Raises :class:`ShapeError` when a feed is missing or its shape
    or dtype differs from the graph's input.
    """
    feeds = {**(feeds or {}), **kw}
    env = _run(g, feeds)
    return {v.name: (v.const if v.is_const else env[id(v)]) for v in g.outputs}


def interpret_values(g: Graph, feeds: Mapping[str, np.ndarray], names: Iterable[str]
                     ) -> dict[str, np.ndarray]:
    """Like :func:`interpret`, but returns the values named ``names`` (any node output or graph
    input) instead of the graph outputs; for calibration and per-layer error reports."""
    env = _run(g, feeds)
    want = set(names)
    return {v.name: env[id(v)] for v in g.values() if v.name in want and id(v) in env}


def _run(g: Graph, feeds: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Every non-constant value of ``g`` by id, evaluated on ``feeds``."""
    env: dict[int, np.ndarray] = {}
    for v in g.inputs:
        if v.name not in feeds:
            raise ShapeError(f"missing input {v.name!r}", hint=f"feed all of {[x.name for x in g.inputs]}")
        a = np.asarray(feeds[v.name])
        if a.shape != v.shape:
            raise ShapeError(f"input {v.name!r} has shape {a.shape}, the graph wants {v.shape}")
        env[id(v)] = a.astype(v.dtype, copy=False)
    with np.errstate(all="ignore"):
        for n in g.nodes:
            args = [None if i is None else (i.const if i.is_const else env[id(i)]) for i in n.inputs]
            try:
                outs = run_node(n, *args)
            except MemoryError:
                raise MemoryBudgetError(
                    "the reference interpreter ran out of memory on this machine",
                    node=n.name, op=n.op, hint="the reference materializes every window of a "
                    "pool or convolution: run the compiled code (CompiledModel.run) instead"
                    ) from None
            for o, a in zip(n.outputs, outs):
                env[id(o)] = a
    return env
