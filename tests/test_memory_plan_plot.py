"""The memory-plan picture: onnxcc.report.plot_memory_plan and `onnxcc report --plot`."""

import subprocess
import sys

import numpy as np

import onnxcc
from builders import make_model
from onnxcc.passes.liveness import value_intervals
from onnxcc.report import plot_memory_plan

PNG = b"\x89PNG\r\n\x1a\n"


def _branchy():
    """Conv -> Relu, two Conv branches, Concat, Conv: arena tensors of several lifetimes."""
    rng = np.random.default_rng(0)
    w = {k: rng.standard_normal(s).astype("f4") for k, s in
         {"w0": (8, 4, 3, 3), "w1": (8, 8, 3, 3), "w2": (8, 8, 1, 1), "w3": (4, 16, 1, 1)}.items()}
    p = {"pads": [1, 1, 1, 1]}
    return make_model([("Conv", ["x", "w0"], ["a"], p), ("Relu", ["a"], ["b$\x1b"]),
                       ("Conv", ["b$\x1b", "w1"], ["c"], p), ("Conv", ["b$\x1b", "w2"], ["d"]),
                       ("Sigmoid", ["c"], ["e"]), ("Concat", ["e", "d"], ["f"], {"axis": 1}),
                       ("Conv", ["f", "w3"], ["y"])],
                      {"x": (1, 4, 16, 16)}, {"y": (1, 4, 16, 16)}, w, name="branchy")


def test_plot_draws_every_arena_tensor_where_the_plan_puts_it(tmp_path):
    cm = onnxcc.compile(_branchy(), "cortex-m4")
    out = tmp_path / "plan.png"
    rects = plot_memory_plan(cm, out)
    data = out.read_bytes()
    assert data[:8] == PNG and len(data) > 1000
    g = cm.graph
    plan = g.meta["memory_plan"]
    iv = {v.name: i for v, i in value_intervals(g).items()}
    arena = {n: b for n, b in plan.buffers.items() if b.space == "arena" and b.size}
    assert {r.name for r in rects} == set(arena) and len(rects) >= 3
    for r in rects:
        b = arena[r.name]
        assert (r.offset, r.size) == (b.offset, b.size) and (r.first, r.last) == iv[r.name]
        assert r.group == plan.groups[r.name] and r.offset + r.size <= plan.arena_size
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            both_live = a.first <= b.last and b.first <= a.last
            disjoint = a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
            assert a.group == b.group or not both_live or disjoint, (a, b)
    assert onnxcc.plot_memory_plan(cm, tmp_path / "again.png") == rects


def test_cli_report_plot(tmp_path):
    model = tmp_path / "branchy.onnx"
    model.write_bytes(_branchy().SerializeToString())
    out = tmp_path / "plan.png"
    p = subprocess.run([sys.executable, "-m", "onnxcc.cli", "report", str(model), "--target",
                        "cortex-m4", "--plot", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "arena" in p.stdout and f"-> {out}" in p.stdout
    assert out.read_bytes()[:8] == PNG
    p = subprocess.run([sys.executable, "-m", "onnxcc.cli", "report", str(model), "--plot",
                        str(tmp_path / "no" / "plan.png")], capture_output=True, text=True)
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = subprocess.run([sys.executable, "-m", "onnxcc.cli", "report", str(model), "--plot",
                        str(tmp_path / "plan.xyz")], capture_output=True, text=True)
    assert p.returncode == 2 and "cannot write '.xyz' images" in p.stderr
