"""Einsum, Det and the window functions through the public API on host C, cpu LLVM and an MCU
target, against onnxruntime: Einsum's transposes, sums, diagonals, ellipses, implicit outputs,
broadcast labels, matmuls and integer inputs; Det of batches with pivoting, singular matrices
and float64; Hann, Hamming and Blackman windows, periodic and symmetric, with the size bound at
compile time."""

from __future__ import annotations

import numpy as np
import onnx
import onnxcc
import pytest
from builders import check_against_ort, node_model
from onnxcc.errors import ShapeError

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("eq, shapes", [
    ("ij->ji", [(3, 4)]), ("ij->i", [(3, 4)]), ("ii->i", [(4, 4)]), ("ii", [(4, 4)]),
    ("...ii->...i", [(2, 3, 3)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("i,i", [(5,), (5,)]),
    ("ij,jk", [(3, 4), (4, 2)]), ("i,j->ij", [(3,), (4,)]), ("...j,j...->...", [(2, 3), (3, 2)]),
    ("bij, jk -> bik", [(1, 3, 4), (4, 2)]), ("ij,ij->", [(3, 1), (3, 4)]), ("->", [()]),
])
def test_einsum(eq, shapes):
    feeds = {f"x{k}": RNG.standard_normal(s).astype(np.float32) for k, s in enumerate(shapes)}
    m = node_model("Einsum", feeds, ["y"], opset=12, equation=eq)
    check_against_ort(m, feeds, rtol=1e-5, atol=1e-5)


def test_einsum_integers_and_mcu():
    feeds = {"a": RNG.integers(-9, 9, (2, 3)).astype(np.int32),
             "b": RNG.integers(-9, 9, (3, 4)).astype(np.int32)}
    m = node_model("Einsum", feeds, ["y"], opset=12, equation="ij,jk->ik")
    check_against_ort(m, feeds, targets=("host", "cpu", "cortex-m4"))


def test_einsum_errors_name_the_node():
    feeds = {"a": np.zeros((2, 3), np.float32), "b": np.zeros((4, 5), np.float32)}
    with pytest.raises(ShapeError, match="label 'j'"):
        onnxcc.compile(node_model("Einsum", feeds, ["y"], opset=12, equation="ij,jk->ik"), "host")
    with pytest.raises(ShapeError, match="2 terms"):
        onnxcc.compile(node_model("Einsum", {"a": feeds["a"]}, ["y"], opset=12,
                                  equation="ij,jk->ik"), "host")


@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (4, 5, 5), (2, 3, 1, 1)])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_det(shape, dt):
    x = RNG.standard_normal(shape).astype(dt)
    m = node_model("Det", {"x": x}, ["y"], opset=11)
    if dt == np.float32:
        check_against_ort(m, {"x": x}, rtol=1e-4, atol=1e-5)
        return
    # onnxruntime 1.31 has no float64 Det: numpy.linalg.det (LAPACK) is the oracle
    for t in ("host", "cpu"):
        got = onnxcc.compile(m, t).run({"x": x})["y"]
        assert got.dtype == np.float64 and got.shape == shape[:-2]
        np.testing.assert_allclose(got, np.linalg.det(x), rtol=1e-12, atol=1e-12, err_msg=t)


def test_det_needs_pivoting_and_singular_matrices():
    x = np.array([[[0, 1, 2], [3, 4, 5], [6, 7, 9]],       # zero first pivot
                  [[1, 2, 3], [2, 4, 6], [1, 0, 1]],        # singular
                  [[0, 0, 0], [1, 2, 3], [4, 5, 6]],        # zero row
                  [[1e-3, 1, 0], [1, 1, 1], [0, 1, 1e3]]], np.float32)
    check_against_ort(node_model("Det", {"x": x}, ["y"], opset=11), {"x": x},
                      targets=("host", "cpu", "cortex-m4"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["HannWindow", "HammingWindow", "BlackmanWindow"])
@pytest.mark.parametrize("periodic", [0, 1])
@pytest.mark.parametrize("out", [onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE])
def test_windows(op, periodic, out):
    size = np.array(10, np.int64)
    m = node_model(op, {"size": size}, ["y"], opset=17, periodic=periodic, output_datatype=out)
    check_against_ort(m, {}, constant_inputs={"size": size}, rtol=1e-6, atol=1e-6)


def test_window_size_must_be_bound():
    m = node_model("HannWindow", {"size": np.array(10, np.int64)}, ["y"], opset=17)
    with pytest.raises(ShapeError, match="constant_inputs"):
        onnxcc.compile(m, "host")
