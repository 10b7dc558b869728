"""The benchmark models (benchmarks/models.py) are valid ONNX, run in onnxruntime to finite outputs
and compile with onnxcc ``host`` to the same outputs; benchmarks/cpu.py runs to the end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxcc
import pytest
from builders import load_benchmark

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"

M = load_benchmark("onnxcc_bench_models", "models.py")

# (rtol, atol) of onnxcc host against onnxruntime. Probability outputs (Softmax over 10 or 1000
# classes, values ~1e-3) get a small atol; O(1) activations 1e-4 (the transformer's Softmax and
# LayerNorms, and the MobileNetV2 stack's long reductions, measured at ~2e-6 abs).
TOL = {"mlp": (1e-3, 1e-6), "jet_mlp": (1e-3, 1e-6), "mobilenet_v1_025": (1e-3, 1e-6),
       "mobilenet_v2_blocks": (1e-3, 1e-4), "transformer": (1e-3, 1e-4),
       "squeezenet": (1e-3, 1e-6)}
SHAPES = {"mlp": ((1, 784), (1, 10)), "jet_mlp": ((1, 16), (1, 5)), "mobilenet_v1_025": ((1, 3, 96, 96), (1, 1000)),
          "mobilenet_v2_blocks": ((1, 24, 56, 56), (1, 32, 28, 28)),
          "transformer": ((1, 64, 128), (1, 64, 128))}


def _agree_with_ort(name: str, model: onnx.ModelProto) -> None:
    ref = M.check(model)                     # onnx.checker + onnxruntime, finite outputs
    out = onnxcc.compile(model, "host").run(M.random_feeds(model))
    rtol, atol = TOL[name]
    for k, r in ref.items():
        np.testing.assert_allclose(out[k], r, rtol=rtol, atol=atol, err_msg=f"{name}: {k}")


@pytest.mark.parametrize("name", list(M.BENCH_MODELS))
def test_builder_valid_and_agrees(name):
    model = M.build(name)
    assert model.ir_version == 10
    assert model.opset_import[0].version == 17
    (in_name, in_shape), = M.input_specs(model)
    assert (in_name, in_shape) == ("input", SHAPES[name][0])
    out = model.graph.output[0]
    assert out.name == "output"
    assert tuple(d.dim_value for d in out.type.tensor_type.shape.dim) == SHAPES[name][1]
    _agree_with_ort(name, model)


def test_builders_are_seeded():
    a, b = M.mlp(seed=3), M.mlp(seed=3)
    assert a.SerializeToString() == b.SerializeToString()
    assert M.mlp(seed=4).SerializeToString() != a.SerializeToString()


def test_mobilenet_structure():
    ops = [n.op_type for n in M.mobilenet_v1().graph.node]
    assert ops.count("Conv") == 1 + 2 * 13 + 1       # stem, 13 dw-separable blocks, classifier
    assert ops.count("BatchNormalization") == 27 and ops.count("Clip") == 27
    v2 = [n.op_type for n in M.mobilenet_v2_blocks().graph.node]
    assert v2.count("Add") == 4 and v2.count("Conv") == 15


@pytest.mark.slow
def test_zoo_random_squeezenet():
    model = M.zoo_random("squeezenet")
    ops = {n.op_type for n in model.graph.node}
    assert "ConstantOfShape" not in ops
    inits = {t.name for t in model.graph.initializer}
    assert not any(i.name in inits for i in model.graph.input)
    ws = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer]
    assert all(w.size <= 1 or w.dtype != np.float32 or np.unique(w).size > 1 for w in ws)
    _agree_with_ort("squeezenet", model)


def test_cpu_benchmark_quick_runs():
    proc = subprocess.run([sys.executable, str(BENCH / "cpu.py"), "--quick", "--models", "mlp"],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "mlp" in proc.stdout and "geomean cpu/ort" in proc.stdout
    assert "FMA peak" in proc.stdout
    assert "mlp host: outputs differ" not in proc.stdout, proc.stdout
