"""Pass registration and the pipeline runner.

A pass is a callable ``Graph -> Graph`` with a ``name``. Passes with parameters are factories
that return a named pass, e.g. ``plan_memory(align=16)`` named ``"plan_memory[align=16]"``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterable

from onnxcc.ir import Graph

log = logging.getLogger("onnxcc.passes")


class GraphPass:
    """A named ``Graph -> Graph`` function."""

    def __init__(self, name: str, fn: Callable[[Graph], Graph], doc: str | None = None) -> None:
        self.name, self.fn = name, fn
        self.__doc__ = doc or fn.__doc__

    def __call__(self, g: Graph) -> Graph:
        return self.fn(g)

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


PASSES: dict[str, GraphPass] = {}


def graph_pass(name: str) -> Callable[[Callable[[Graph], Graph]], GraphPass]:
    """Decorator: register ``fn`` as the pass ``name``."""

    def deco(fn: Callable[[Graph], Graph]) -> GraphPass:
        p = GraphPass(name, fn)
        PASSES[name] = p
        return p

    return deco


def get_pass(name: str) -> GraphPass:
    """The registered pass ``name`` (KeyError lists the known ones)."""
    if name not in PASSES:
        raise KeyError(f"unknown pass {name!r}; known: {', '.join(sorted(PASSES))}")
    return PASSES[name]


def run_pipeline(g: Graph, passes: Iterable[GraphPass], *, verify: bool = True,
                 dump_dir: str | Path | None = None, dump_after: str | None = None,
                 disable: Iterable[str] = ()) -> Graph:
    """Run ``passes`` in order; verify the IR after each; record names in ``g.meta["passes"]``.

    ``dump_dir`` writes ``NN_<pass>.txt`` with the IR text after each pass; ``dump_after`` logs
    the IR after the pass of that name (base name, without parameters) at INFO level.
    Raises whatever a pass raises; :class:`onnxcc.errors.VerifyError` when a pass breaks the IR;
    :class:`onnxcc.errors.OutputError` when ``dump_dir`` cannot be written.
    """
    skip = set(disable)
    applied = list(g.meta.get("passes", []))
    for k, p in enumerate(passes):
        base = p.name.split("[")[0]
        if base in skip or p.name in skip:
            continue
        t0 = time.perf_counter()
        g = p(g)
        dt = time.perf_counter() - t0
        log.info("pass %-28s %7.1f ms  %d nodes", p.name, dt * 1e3, len(g.nodes))
        if verify:
            g.verify()
        applied.append(p.name)
        g.meta["passes"] = applied
        if dump_dir is not None:
            d = Path(dump_dir)
            try:
                d.mkdir(parents=True, exist_ok=True)
                (d / f"{k:02d}_{base}.txt").write_text(str(g) + "\n")
            except OSError as e:   # a file of that name, no permission...
                from onnxcc.errors import OutputError

                raise OutputError(f"cannot write the IR dump into {str(d)!r}: {e}",
                                  hint="give dump_dir a writable folder") from e
        if dump_after is not None and base == dump_after:
            g.meta.setdefault("dumps", {})[base] = str(g)
    return g
