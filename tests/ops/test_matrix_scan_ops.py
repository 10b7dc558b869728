"""Trilu, EyeLike, CumSum, CumProd and Shrink through the public API on host C, cpu LLVM and an
MCU target, against onnxruntime: upper and lower, k constant, read at run time, far outside the
matrix and absent, batches; EyeLike with and without dtype; running sums and products along
every axis, with the axis constant or read at run time, exclusive and reverse, float and
integer; Shrink's float and integer forms."""

from __future__ import annotations

import numpy as np
import onnx
import onnxcc
import pytest
from builders import check_against_ort, node_model
from onnxcc.errors import AttributeValueError, ShapeError

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, -2, 0, 1, 9, -40])
@pytest.mark.parametrize("runtime_k", [False, True])
def test_trilu(upper, k, runtime_k):
    x = RNG.standard_normal((2, 4, 5)).astype(np.float32)
    if k is None:
        m = node_model("Trilu", {"x": x}, ["y"], opset=14, upper=upper)
        check_against_ort(m, {"x": x})
        return
    kk = np.array(k, np.int64)
    if runtime_k:
        m = node_model("Trilu", {"x": x, "k": kk}, ["y"], opset=14, upper=upper)
        check_against_ort(m, {"x": x, "k": kk})
    else:
        m = node_model("Trilu", {"x": x}, ["y"], inits={"k": kk}, opset=14, upper=upper)
        check_against_ort(m, {"x": x})


def test_trilu_integer_and_bool():
    x = RNG.integers(-100, 100, (3, 6)).astype(np.int32)
    check_against_ort(node_model("Trilu", {"x": x}, ["y"], opset=14, upper=0), {"x": x},
                      targets=("host", "cpu", "cortex-m4"))
    b = RNG.random((4, 4)) < 0.5
    check_against_ort(node_model("Trilu", {"b": b}, ["y"], opset=14), {"b": b})


@pytest.mark.parametrize("k", [0, 1, -2, 7])
@pytest.mark.parametrize("dtype", [None, onnx.TensorProto.INT32, onnx.TensorProto.DOUBLE])
def test_eye_like(k, dtype):
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    attrs = {"k": k} | ({} if dtype is None else {"dtype": dtype})
    check_against_ort(node_model("EyeLike", {"x": x}, ["y"], opset=9, **attrs), {"x": x})


@pytest.mark.parametrize("op", ["CumSum", "CumProd"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("runtime_axis", [False, True])
def test_cumulative(op, axis, exclusive, reverse, runtime_axis):
    x = RNG.uniform(0.5, 1.5, (3, 4, 5)).astype(np.float32)
    a = np.array(axis, np.int64)
    attrs = {"exclusive": exclusive, "reverse": reverse}
    if runtime_axis:
        m = node_model(op, {"x": x, "a": a}, ["y"], opset=26 if op == "CumProd" else 14, **attrs)
        feeds = {"x": x, "a": a}
    else:
        m = node_model(op, {"x": x}, ["y"], inits={"a": a}, opset=26 if op == "CumProd" else 14,
                       **attrs)
        feeds = {"x": x}
    check_against_ort(m, feeds, atol=1e-5)


def test_cumsum_integers_wrap_and_int32_axis():
    x = np.array([[2**31 - 1, 1, 5], [-3, 4, -2**31]], np.int32)
    a = np.array(1, np.int32)
    m = node_model("CumSum", {"x": x, "a": a}, ["y"], opset=14)
    check_against_ort(m, {"x": x, "a": a}, targets=("host", "cpu", "cortex-m4"))


@pytest.mark.parametrize("bias, lambd", [(0.0, 0.5), (1.5, 1.5), (-0.3, 0.0)])
@pytest.mark.parametrize("dt", [np.float32, np.float64, np.int32, np.int8])
def test_shrink(bias, lambd, dt):
    x = (RNG.uniform(-4, 4, (4, 6)) * (1 if np.dtype(dt).kind == "f" else 10)).astype(dt)
    m = node_model("Shrink", {"x": x}, ["y"], opset=9, bias=bias, lambd=lambd)
    check_against_ort(m, {"x": x})


def test_errors_name_the_node():
    x = np.zeros((4,), np.float32)
    with pytest.raises(ShapeError, match="rank >= 2"):
        onnxcc.compile(node_model("Trilu", {"x": x}, ["y"], opset=14), "host")
    m = node_model("CumSum", {"x": x}, ["y"], inits={"a": np.array(3)}, opset=14)
    with pytest.raises(AttributeValueError, match="out of range"):
        onnxcc.compile(m, "host")
