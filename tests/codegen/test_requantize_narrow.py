"""``onnxcc_requantize_narrow``: the C form of the requantize intrinsic the C renderer emits for
call sites whose shifts are all known to be >= 32 (``codegen/c/render.py``), bit-exact with the
numpy reference for every shift from 32 to 62, ties included, and free of undefined behaviour."""

from __future__ import annotations

import shutil

import numpy as np
import onnxcc
import pytest
from builders import make_model, run_c_requantize
from onnx import TensorProto
from onnxcc.codegen.requantize import C_HELPER_NARROW, NARROW_SHIFT, requantize


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_narrow_requantize_is_bit_exact_for_shifts_from_32(tmp_path):
    rng = np.random.default_rng(21)
    n = 6000
    edge = np.array([0, 1, -1, 2, -2, 3, -3, 2**31 - 1, -2**31, 2**30, -2**30])
    xs = np.concatenate([np.repeat(edge, 31), rng.integers(-2**31, 2**31, n),
                         rng.integers(-5000, 5000, n)])
    ms = np.concatenate([np.full(len(edge) * 31, 2**31 - 1), rng.integers(2**30, 2**31, n),
                         rng.integers(2**30, 2**31, n)])
    ss = np.concatenate([np.tile(np.arange(32, 63), len(edge)), rng.integers(32, 63, n),
                         rng.integers(32, 45, n)])
    # ties: acc * m an odd multiple of 2**(shift - 1), with m = 2**30
    k = rng.integers(-200, 200, 400) * 2 + 1
    s = rng.integers(32, 40, 400)
    xs = np.concatenate([xs, k * 2 ** (s - 31)])
    ms = np.concatenate([ms, np.full(400, 2**30)])
    ss = np.concatenate([ss, s])
    assert ss.min() == NARROW_SHIFT and ss.max() == 62

    got = run_c_requantize(tmp_path, C_HELPER_NARROW, "onnxcc_requantize_narrow", xs, ms, ss)
    np.testing.assert_array_equal(got, requantize(xs, ms, ss))


def _qconv(scale_w: float):
    """One QLinearConv 3x3 (x, w int8 per tensor; y scale 1): multiplier ``0.1 * scale_w``."""
    rng = np.random.default_rng(22)
    w = rng.integers(-100, 100, (4, 2, 3, 3)).astype(np.int8)
    inits = {"xs": np.float32(0.1), "xz": np.int8(0), "w": w, "ws": np.float32(scale_w),
             "wz": np.int8(0), "ys": np.float32(1.0), "yz": np.int8(3)}
    nodes = [("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
              {"pads": [1, 1, 1, 1]})]
    return make_model(nodes, {"x": (1, 2, 6, 6)}, {"y": (1, 4, 6, 6)}, inits,
                      dtype=TensorProto.INT8)


@pytest.mark.parametrize("scale_w, narrow", [(0.01, True), (40.0, False)])
def test_renderer_picks_the_narrow_helper_when_every_shift_is_32_or_more(scale_w, narrow):
    """A multiplier of 0.001 (shift 40) calls the narrow helper only; one of 4 (shift 28)
    the general one only; both give the numpy reference's outputs bit for bit."""
    from onnxcc.interpreter import interpret

    model = _qconv(scale_w)
    x = np.random.default_rng(23).integers(-128, 128, (1, 2, 6, 6)).astype(np.int8)
    cm = onnxcc.compile(model, "host", name="qc")
    text = (cm.lib_dir / "qc.c").read_text()
    assert ("onnxcc_requantize_narrow(" in text) == narrow
    assert ("onnxcc_requantize(" in text) == (not narrow)
    np.testing.assert_array_equal(cm.run({"x": x})["y"], interpret(cm.graph, {"x": x})["y"])
