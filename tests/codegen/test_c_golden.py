"""Golden C for tiny graphs, so a review shows the diff of what the generator writes.

Regenerate after an intended change with ONNXCC_UPDATE_GOLDEN=1 and review the diff."""

import os
from pathlib import Path

import numpy as np
import pytest

from builders import make_model
import onnxcc

GOLDEN = Path(__file__).with_name("golden")


def _mlp():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3)).astype(np.float32).round(2)
    b = rng.standard_normal(3).astype(np.float32).round(2)
    return make_model([("MatMul", ["x", "w"], ["t0"]), ("Add", ["t0", "b"], ["t1"]), ("Relu", ["t1"], ["y"])],
                      {"x": (2, 4)}, {"y": (2, 3)}, {"w": w, "b": b})


def _conv():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32).round(2)
    return make_model([("Conv", ["x", "w"], ["t"], {"pads": [1, 1, 1, 1]}), ("Sigmoid", ["t"], ["s"]),
                       ("Mul", ["t", "s"], ["y"])], {"x": (1, 1, 4, 4)}, {"y": (1, 2, 4, 4)}, {"w": w})


@pytest.mark.parametrize("name,build", [("mlp", _mlp), ("conv_swish", _conv)])
def test_golden_c(name, build):
    cm = onnxcc.compile(build(), "cortex-m4", name=name)
    for f in (f"{name}.c", f"{name}_weights.c"):
        got = (cm.lib_dir / f).read_text()
        path = GOLDEN / f
        if os.environ.get("ONNXCC_UPDATE_GOLDEN") == "1":
            path.write_text(got)
        assert got == path.read_text(), f"{f} changed: review and regenerate with ONNXCC_UPDATE_GOLDEN=1"
