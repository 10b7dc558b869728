"""Concurrent use (issue 9, item 7): ``CompiledModel.run`` from several Python threads at once.

Each thread gets its own arena, kept between its calls (the generated library is reentrant: it
keeps no state outside the arena the caller passes), and the lazy first build is safe when several
threads race to it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import onnxcc
from builders import make_model

THREADS, RUNS = 8, 20


def _model():
    """Conv -> Relu -> MatMul -> Softmax: several intermediates sharing one arena."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    m = rng.standard_normal((32, 16)).astype(np.float32)
    return make_model([("Conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]}), ("Relu", ["c"], ["r"]),
                       ("Reshape", ["r", "s"], ["f"]), ("MatMul", ["f", "m"], ["z"]),
                       ("Softmax", ["z"], ["y"], {"axis": -1})],
                      {"x": (1, 3, 8, 8)}, {"y": (16, 16)},
                      {"w": w, "m": m, "s": np.array([16, 32], np.int64)})


def _feeds(k: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(100 + k).standard_normal((1, 3, 8, 8)).astype(np.float32)}


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_run_from_many_threads_matches_single_threaded_results(target):
    """host: the C library through ctypes; cpu: the LLVM back end's object through the JIT."""
    model = _model()
    n = THREADS * RUNS
    expected = [onnxcc.compile(model, target).run(_feeds(k))["y"] for k in range(0, n, 7)]
    cm = onnxcc.compile(model, target)   # fresh: the threads also race to its first (lazy) build
    start = threading.Barrier(THREADS)

    def worker(t: int) -> list[tuple[int, np.ndarray]]:
        start.wait()
        return [(k, cm.run(_feeds(k))["y"]) for k in range(t, n, THREADS)]

    with ThreadPoolExecutor(THREADS) as pool:
        results = [r for rs in pool.map(worker, range(THREADS)) for r in rs]
    assert len(results) == n
    by_k = dict(results)
    for j, k in enumerate(range(0, n, 7)):
        np.testing.assert_array_equal(by_k[k], expected[j])
    # every result equals its own single-threaded run (different inputs give different outputs)
    single = cm.run(_feeds(1))["y"]
    np.testing.assert_array_equal(by_k[1], single)
    assert not np.array_equal(by_k[0], by_k[1])


def test_harness_runs_from_two_threads_build_safely():
    """The executable harness path (sanitize=True, built lazily too) is safe from two threads."""
    cm = onnxcc.compile(_model())
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda k: cm.run(_feeds(k), sanitize=True)["y"], range(4)))
    for k, y in enumerate(outs):
        np.testing.assert_array_equal(y, cm.run(_feeds(k))["y"])


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_a_threads_arena_is_reused_and_its_old_contents_never_matter(target):
    """Each thread keeps its arena between calls (no page faults per run); the generated code
    writes every arena byte before reading it, so an arena full of garbage (0xFF bytes: NaN
    floats) between two calls gives the same outputs."""
    cm = onnxcc.compile(_model(), target=target)
    first = cm.run(_feeds(0))["y"]
    lib = cm._exe["jit"] if target == "cpu" else cm._exe[("so", None)]
    arenas = lib.jit._arenas if target == "cpu" else lib.arenas
    raw, base = arenas.get()
    assert arenas.get()[1] == base                      # the same memory on the next call
    raw.fill(0xFF)
    np.testing.assert_array_equal(cm.run(_feeds(0))["y"], first)
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(arenas.get()[1]))
    t.start()
    t.join()
    assert seen and seen[0] != base                     # another thread, another arena
