"""schedule: reorder ``g.nodes`` (still topological) to lower the peak of live intermediates.

    %a = Conv(%x); %b = Conv(%x); %a2 = Relu(%a); %b2 = Relu(%b); %y = Concat(%a2, %b2)
        ==>  %a = Conv(%x); %a2 = Relu(%a); %b = Conv(%x); %b2 = Relu(%b); %y = Concat(...)
             (when that needs fewer bytes at once)

Cost model (``liveness.StorageModel``): a node allocates its outputs' storage (views reuse their
input's; an elementwise node that last reads an input of its output's size overwrites it), storage
is freed after its last reader, graph inputs/outputs are not counted. Candidates: the incoming
order and a greedy list scheduler (two variants: least memory while running the node, then least
net growth); graphs of at most ``EXACT_MAX_NODES`` nodes also get an exact search (memoized over
the set of scheduled nodes, pruned by the best peak so far, abandoned past ``EXACT_MAX_STATES``
states). The lowest peak wins and ties keep the earlier candidate (the incoming order first), so
the pass is deterministic, never makes the peak worse, and is idempotent.
``g.meta["schedule"]`` records ``{"method", "peak_before", "peak_after"}``.
Preconditions: none. Ordering: after the fuse passes, right before plan_memory.
"""

from __future__ import annotations

from collections.abc import Callable

from onnxcc.ir import Graph

from .liveness import StorageModel
from .manager import graph_pass

EXACT_MAX_NODES = 20
EXACT_MAX_STATES = 20_000


def _deps(model: StorageModel) -> list[set[int]]:
    """For each node index, the indices of the nodes producing its inputs."""
    producer = {id(o): k for k, n in enumerate(model.nodes) for o in n.outputs}
    return [{producer[id(i)] for i in n.inputs if i is not None and id(i) in producer}
            for n in model.nodes]


class _State:
    """Memory bookkeeping while a schedule is built node by node."""

    def __init__(self, model: StorageModel) -> None:
        self.m = model
        self.remaining: dict[int, int] = {}
        for reads in model.reads:
            for s in reads:
                self.remaining[s] = self.remaining.get(s, 0) + 1
        self.live = 0

    def _last(self, k: int) -> set[int]:
        m = self.m
        return ({s for s in m.reads[k] if self.remaining[s] == 1}
                | {s for s in m.allocs[k] if not self.remaining.get(s)})

    def cost(self, k: int) -> tuple[int, int]:
        """(bytes live while node k runs, bytes live after it)."""
        return self.m.cost(k, self.live, self._last(k))

    def run(self, k: int) -> None:
        self.live = self.cost(k)[1]
        for s in self.m.reads[k]:
            self.remaining[s] -= 1


def greedy(model: StorageModel, key: Callable[[tuple[int, int], int], tuple]) -> list[int]:
    """List scheduling: among ready nodes pick the one with the smallest ``key(cost, index)``."""
    deps = _deps(model)
    users: list[list[int]] = [[] for _ in deps]
    for k, d in enumerate(deps):
        for p in d:
            users[p].append(k)
    waiting = [len(d) for d in deps]
    ready = {k for k, w in enumerate(waiting) if w == 0}
    state, order = _State(model), []
    while ready:
        k = min(ready, key=lambda j: key(state.cost(j), j))
        ready.remove(k)
        state.run(k)
        order.append(k)
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.add(u)
    return order


def exact(model: StorageModel, bound: int) -> list[int] | None:
    """A minimum-peak order by search over scheduled sets, or None when no order peaks below
    ``bound`` (a peak already reached) or the search passes EXACT_MAX_STATES states."""
    n = len(model.nodes)
    deps = [sum(1 << p for p in d) for d in _deps(model)]
    readers: dict[int, int] = {}
    for k, reads in enumerate(model.reads):
        for s in reads:
            readers[s] = readers.get(s, 0) | (1 << k)
    owner = {s: k for k, allocs in enumerate(model.allocs) for s in allocs}
    counted = [s for s in model.size if s in model.counted]

    def live(mask: int) -> int:
        return sum(model.size[s] for s in counted
                   if mask >> owner[s] & 1 and readers.get(s, 0) & ~mask)

    memo: dict[int, tuple[int, int]] = {}
    full = (1 << n) - 1

    def best(mask: int) -> int:
        if mask == full:
            return 0
        if mask in memo:
            return memo[mask][0]
        if len(memo) >= EXACT_MAX_STATES:
            raise OverflowError
        base = live(mask)
        choice = (bound, -1)  # only orders that beat the bound are of interest
        for k in range(n):
            if not mask >> k & 1 and deps[k] & ~mask == 0:
                rest = ~(mask | 1 << k)
                last = {s for s in model.reads[k] if not readers[s] & rest}
                last |= {s for s in model.allocs[k] if not readers.get(s)}
                during = model.cost(k, base, last)[0]
                if during >= choice[0]:
                    continue
                peak = max(during, best(mask | 1 << k))
                if peak < choice[0]:
                    choice = (peak, k)
        memo[mask] = choice
        return choice[0]

    try:
        if best(0) >= bound:
            return None
    except OverflowError:
        return None
    order, mask = [], 0
    while mask != full:
        k = memo[mask][1]
        order.append(k)
        mask |= 1 << k
    return order


@graph_pass("schedule")
def schedule(g: Graph) -> Graph:
    """Reorder nodes (topologically) to lower the peak bytes of live intermediates.

    Greedy, plus an exact search for small graphs; never worse than the incoming order (see the
    module docstring). Ordering: after fusion, right before plan_memory.
    """
    model = StorageModel(g)
    n = len(model.nodes)
    incoming = list(range(n))
    before = model.peak(incoming)
    candidates: list[tuple[str, list[int]]] = [("incoming", incoming)]
    candidates.append(("greedy", greedy(model, lambda c, k: (c[0], c[1], k))))
    candidates.append(("greedy", greedy(model, lambda c, k: (c[1], c[0], k))))
    if n <= EXACT_MAX_NODES:
        found = exact(model, min(model.peak(order) for _, order in candidates))
        if found is not None:
            candidates.append(("exact", found))
    method, order = min(candidates, key=lambda c: model.peak(c[1]))  # first minimum wins ties
    after = model.peak(order)
    if order != incoming:
        g.replace(list(g.nodes), [model.nodes[k] for k in order])
    g.meta["schedule"] = {"method": method, "peak_before": before, "peak_after": after}
    return g
