"""Float sums at scale (issue 9): blocked pairwise accumulation in the C kernels and an accurate
numpy reference. One float accumulator sums 40 million ones to 16,777,216 (2**24: adding 1
no longer changes it); onnxruntime and onnxcc give 4e7.

Pairwise summation: Higham, "The accuracy of floating point summation", SIAM J. Sci. Comput.
14(4), 1993. The kernels: ``onnxcc.codegen.lower.reduce.blocked_sum``.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from onnx import TensorProto

import onnxcc
from builders import make_model, ort_run
from onnxcc.codegen.loops import program_text
from onnxcc.codegen.lower.reduce import SUM_BLOCK
from onnxcc.frontend import import_onnx
from onnxcc.ops import run_node

N = 40_000_000
SUM_OPS = ["ReduceSum", "ReduceMean", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceSumSquare",
           "ReduceLogSumExp"]


def _reduce_model(op: str, shape: tuple[int, ...], axes: list[int], keepdims: int = 1,
                  dtype: int = TensorProto.FLOAT):
    return make_model([(op, ["x", "a"], ["y"], {"keepdims": keepdims})], {"x": shape}, {"y": None},
                      {"a": np.array(axes, np.int64)}, opset=18, dtype=dtype)


def _c_and_ort(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(onnxcc's C result, onnxruntime's result, the text of the loop-IR Program the C renders)."""
    cm = onnxcc.compile(model)
    return cm.run({"x": x})["y"], ort_run(model, {"x": x})["y"], program_text(cm.program)


def blocked(text: str) -> bool:
    """True when the Program sums in blocks: some partial sum (``s<k>``, ``part<k>``, ``tail``)
    is added into an accumulator, instead of every term into one accumulator."""
    return re.search(r"= \((acc|part\d+\[\w+\]) \+ (s\d+|part\d+(\[\w+\])?|tail)\)", text) is not None


def _rel(a: np.ndarray, exact: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - exact) / np.abs(exact)))


# ---- 40 million elements ---------------------------------------------------------------------
def test_reduce_sum_of_40_million_ones_is_4e7():
    y, r, src = _c_and_ort(_reduce_model("ReduceSum", (1, N), [1], keepdims=0),
                           np.ones((1, N), np.float32))
    assert blocked(src)                       # the blocked kernel
    assert r[0] == np.float32(N)               # onnxruntime
    assert y[0] == np.float32(N)               # not 16,777,216


def test_global_average_pool_of_40_million_ones_is_one():
    side = 6325   # 6325**2 = 40,005,625 positions in one channel
    x = np.ones((1, 1, side, side), np.float32)
    model = make_model([("GlobalAveragePool", ["x"], ["y"])], {"x": x.shape}, {"y": None})
    y, r, src = _c_and_ort(model, x)
    assert blocked(src)
    assert r.reshape(-1)[0] == 1.0
    assert y.reshape(-1)[0] == 1.0             # one accumulator gives 16777216 / 40005625


def test_40_million_random_values_sum_to_float32_rounding():
    x = np.random.default_rng(1).random((1, N), dtype=np.float32)
    exact = x.astype(np.float64).sum(axis=1)
    y, r, _ = _c_and_ort(_reduce_model("ReduceSum", (1, N), [1], keepdims=0), x)
    assert _rel(y, exact) < 5e-7               # a few float32 ulps (measured: 8e-8)
    np.testing.assert_allclose(y, r, rtol=1e-4)   # onnxruntime itself is ~1e-5 off here
    assert _rel(y, exact) <= _rel(r, exact)


def test_40_million_values_over_a_strided_axis():
    """Reducing axis 0 of (20e6, 2): the kept innermost dim takes the tiled outer form.

    Here onnxruntime (1.2x, CPU) is the one that is wrong: it keeps one float accumulator per
    output along a strided axis and returns 2**24 = 16,777,216 for 2e7 ones."""
    rng = np.random.default_rng(2)
    model = _reduce_model("ReduceSum", (N // 2, 2), [0])
    y, r, src = _c_and_ort(model, np.ones((N // 2, 2), np.float32))
    assert blocked(src)
    np.testing.assert_array_equal(y, [[N // 2, N // 2]])
    assert r[0, 0] in (N // 2, 2 ** 24)   # onnxruntime: 2**24 (see above)
    x = rng.random((N // 2, 2), dtype=np.float32)
    exact = x.astype(np.float64).sum(axis=0, keepdims=True)
    y, r, _ = _c_and_ort(model, x)
    assert _rel(y, exact) < 5e-7
    np.testing.assert_allclose(y, r, rtol=5e-4)   # onnxruntime: ~7e-5 off here
    assert _rel(y, exact) <= _rel(r, exact)


def test_reference_sums_a_strided_float32_axis_accurately():
    """numpy adds slices one by one along a strided axis (~4e-5 off for 20e6 rows);
    the reference accumulates in float64."""
    x = np.random.default_rng(3).random((N // 2, 2), dtype=np.float32)
    node = import_onnx(_reduce_model("ReduceSum", (N // 2, 2), [0])).nodes[0]
    y = run_node(node, x, np.array([0]))[0]
    assert y.dtype == np.float32
    assert _rel(y, x.astype(np.float64).sum(axis=0, keepdims=True)) < 1e-7


# ---- every float sum, both loop forms, float32 and float64, at tight tolerance -----------------
@pytest.mark.parametrize("op", SUM_OPS)
@pytest.mark.parametrize("shape,axes", [((3, 5000), [1]),          # inner form, blocked rows
                                        ((5000, 3), [0]),          # outer form, tiled
                                        ((3, 30, 70), [0, 2]),      # inner form, rows shorter than a block
                                        ((4, 300, 70), [1]),       # outer form, tiles of 32 + 32 + 6
                                        ((4, 200, 3), [0, 1])])    # outer form, two reduced dims
def test_long_sums_match_onnxruntime_and_the_reference(op, shape, axes):
    x = np.random.default_rng(4).random(shape, dtype=np.float32) + np.float32(0.5)
    model = _reduce_model(op, shape, axes)
    y, r, src = _c_and_ort(model, x)
    assert blocked(src)
    # onnxruntime sums a strided axis with one accumulator (~3e-6 off over 5000 rows)
    np.testing.assert_allclose(y, r, rtol=2e-5)
    ref = run_node(import_onnx(model).nodes[0], x, np.array(axes))[0]   # float64-accumulated
    np.testing.assert_allclose(y, ref, rtol=1e-6)


@pytest.mark.parametrize("shape,axes", [((3, 5000), [1]), ((5000, 3), [0])])
def test_long_float64_sums(shape, axes):
    x = np.random.default_rng(5).standard_normal(shape)
    y, r, _ = _c_and_ort(_reduce_model("ReduceSum", shape, axes, dtype=TensorProto.DOUBLE), x)
    np.testing.assert_allclose(y, x.sum(axis=tuple(axes), keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(y, r, rtol=1e-13)


def test_short_sums_keep_the_single_accumulator():
    """Performance: a reduction of at most SUM_BLOCK elements is the plain loop it was."""
    x = np.random.default_rng(6).random((64, SUM_BLOCK), dtype=np.float32)
    y, r, src = _c_and_ort(_reduce_model("ReduceSum", x.shape, [1]), x)
    assert not blocked(src)
    np.testing.assert_allclose(y, r, rtol=1e-6)
    g = make_model([("GlobalAveragePool", ["x"], ["y"])], {"x": (1, 8, 7, 7)}, {"y": None})
    y, r, src = _c_and_ort(g, np.ones((1, 8, 7, 7), np.float32))
    assert not blocked(src) and "row" not in src
    np.testing.assert_array_equal(y, r)


def test_global_average_pool_over_a_long_window_is_pairwise():
    x = np.random.default_rng(7).random((2, 3, 50, 60), dtype=np.float32)
    model = make_model([("GlobalAveragePool", ["x"], ["y"])], {"x": x.shape}, {"y": None})
    y, r, src = _c_and_ort(model, x)
    assert blocked(src)
    exact = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    assert _rel(y, exact) < 2e-7
    np.testing.assert_allclose(y, r, rtol=1e-6)


@pytest.mark.parametrize("kernel,pads", [((20, 20), [0, 0, 0, 0]), ((16, 12), [3, 2, 3, 2])])
def test_average_pool_over_a_large_window(kernel, pads):
    x = np.random.default_rng(8).random((1, 2, 40, 40), dtype=np.float32)
    model = make_model([("AveragePool", ["x"], ["y"], {"kernel_shape": list(kernel), "pads": pads,
                                                        "strides": [4, 4]})],
                       {"x": x.shape}, {"y": None})
    y, r, src = _c_and_ort(model, x)
    assert "row = (row + " in src            # one partial per window row
    np.testing.assert_allclose(y, r, rtol=1e-6)
    ref = run_node(import_onnx(model).nodes[0], x)[0]
    np.testing.assert_allclose(y, ref, rtol=1e-6)
