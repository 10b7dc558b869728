"""schedule (and the liveness analyses it uses): a topological order with a lower peak."""

import networkx as nx
import numpy as np
from builders import make_model, ort_run
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret
from onnxcc.ir import to_networkx
from onnxcc.passes import run_pipeline
from onnxcc.passes import schedule as sched_mod
from onnxcc.passes.liveness import StorageModel, liveness, peak_live_bytes
from onnxcc.passes.schedule import schedule
from pass_builders import ops


def _two_branches(rng):
    # x -> a (big) -> ra -> ma (small) ; x -> b (big) -> rb -> mb (small) ; y = Concat(ma, mb)
    # incoming order runs both big Convs first; finishing one branch first needs less memory.
    w = {k: rng.standard_normal((8, 2, 1, 1)).astype("f4") for k in ("wa", "wb")}
    return make_model([("Conv", ["x", "wa"], ["a"]), ("Conv", ["x", "wb"], ["b"]),
                       ("Relu", ["a"], ["ra"]), ("Relu", ["b"], ["rb"]),
                       ("GlobalAveragePool", ["ra"], ["ma"]), ("GlobalAveragePool", ["rb"], ["mb"]),
                       ("Concat", ["ma", "mb"], ["y"], {"axis": 1})],
                      {"x": (1, 2, 8, 8)}, {"y": (1, 16, 1, 1)}, w)


def _check(model, g, rng):
    x = rng.standard_normal((1, 2, 8, 8)).astype("f4")
    np.testing.assert_allclose(interpret(g, x=x)["y"], ort_run(model, {"x": x})["y"], rtol=1e-5,
                               atol=1e-6)


def test_liveness_intervals(rng):
    g = import_onnx(_two_branches(rng))
    live = liveness(g)
    assert live["x"] == (0, 1) and live["a"] == (0, 2) and live["b"] == (1, 3)
    assert live["y"] == (6, 6) and "wa" not in live
    big, small = 8 * 64 * 4, 8 * 4
    assert peak_live_bytes(g) == 2 * big + small  # Relus run in place; ma appears beside ra, rb


def test_exact_schedule_finishes_a_branch_first(rng, monkeypatch):
    # greedy finds this order too; make it useless to see the exact search at work
    monkeypatch.setattr(sched_mod, "greedy", lambda model, key: list(range(len(model.nodes))))
    model = _two_branches(rng)
    g = import_onnx(model)
    before = peak_live_bytes(g)
    g = run_pipeline(g, [schedule])
    assert ops(g) == ["Conv", "Relu", "GlobalAveragePool", "Conv", "Relu", "GlobalAveragePool",
                      "Concat"]
    assert g.meta["schedule"]["method"] == "exact"
    assert peak_live_bytes(g) == g.meta["schedule"]["peak_after"] == 8 * 64 * 4 + 2 * 32 < before
    _check(model, g, rng)


def _ladder(rng):
    # two chains whose tensors grow then shrink at different steps
    w = {f"w{k}": rng.standard_normal((c, 2 if k in (0, 3) else p, 1, 1)).astype("f4")
         for k, (p, c) in enumerate([(2, 8), (8, 1), (1, 4), (2, 1), (1, 16), (16, 2)])}
    chain = [("Conv", ["x", "w0"], ["a0"]), ("Conv", ["a0", "w1"], ["a1"]),
             ("Conv", ["a1", "w2"], ["a2"]), ("Conv", ["x", "w3"], ["b0"]),
             ("Conv", ["b0", "w4"], ["b1"]), ("Conv", ["b1", "w5"], ["b2"]),
             ("Concat", ["a2", "b2", "a0"], ["y"], {"axis": 1})]
    return make_model(chain, {"x": (1, 2, 4, 4)}, {"y": None}, w)


def test_exact_is_optimal_over_every_topological_order(rng):
    for model in (_two_branches(rng), _ladder(rng)):
        g = import_onnx(model)
        sm = StorageModel(g)
        everything = [sm.peak(o) for o in nx.all_topological_sorts(to_networkx(g))]
        found = sched_mod.exact(sm, bound=max(everything) + 1)
        assert found is not None and sm.peak(found) == min(everything)
        assert sched_mod.exact(sm, bound=min(everything)) is None  # nothing beats the optimum


def test_greedy_schedule_on_large_graph(rng, monkeypatch):
    monkeypatch.setattr(sched_mod, "EXACT_MAX_NODES", 3)
    model = _two_branches(rng)
    g = run_pipeline(import_onnx(model), [schedule])
    assert g.meta["schedule"]["method"] == "greedy"
    assert g.meta["schedule"]["peak_after"] < g.meta["schedule"]["peak_before"]
    _check(model, g, rng)


def test_already_best_order_is_kept_and_idempotent(rng):
    model = make_model([("Relu", ["x"], ["a"]), ("Neg", ["a"], ["b"]), ("Abs", ["x"], ["c"]),
                        ("Add", ["b", "c"], ["y"])], {"x": (4,)}, {"y": (4,)})
    g = run_pipeline(import_onnx(model), [schedule])
    text = str(g)
    assert ops(g) == ["Relu", "Neg", "Abs", "Add"] and g.meta["schedule"]["method"] == "incoming"
    assert str(run_pipeline(g, [schedule])) == text


def test_views_share_storage_in_the_cost_model(rng):
    shape = np.array([4, 16], np.int64)
    model = make_model([("Relu", ["x"], ["a"]), ("Reshape", ["a", "k"], ["r"]),
                        ("Neg", ["r"], ["y"])], {"x": (64,)}, {"y": (4, 16)}, {"k": shape})
    g = import_onnx(model)
    assert peak_live_bytes(g) == 64 * 4  # a and its view r are one storage
