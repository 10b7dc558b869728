"""GatherElements, GatherND, ScatterElements, Scatter, ScatterND and TensorScatter through the
public API on host C and cpu LLVM (and an MCU target), against onnxruntime: every axis, negative
indices, int32 and int64 indices, every reduction, duplicate indices, batch_dims, integer data;
an out-of-range index stays inside the buffers; TensorScatter's linear and circular modes (a
wrapping write, omitted write_indices); the errors a user can cause."""

from __future__ import annotations

import numpy as np
import onnxcc
import pytest
from builders import check_against_ort, node_model
from onnxcc.errors import AttributeValueError, ModelLoadError, ShapeError
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idt", [np.int32, np.int64])
def test_gather_elements(axis, idt):
    x = RNG.standard_normal((4, 5, 3)).astype(np.float32)
    shape = [3, 4, 2]
    shape[axis] = 6
    d = x.shape[axis]
    i = RNG.integers(-d, d, shape).astype(idt)
    m = node_model("GatherElements", {"x": x, "i": i}, ["y"], opset=13, axis=axis)
    check_against_ort(m, {"x": x, "i": i})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1])
def test_scatter_elements_reductions_with_duplicates(reduction, axis):
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    shape = [3, 4]
    shape[axis] = 7
    d = x.shape[axis]
    i = RNG.integers(-d, d, shape).astype(np.int64)
    u = RNG.standard_normal(shape).astype(np.float32)
    m = node_model("ScatterElements", {"x": x, "i": i, "u": u}, ["y"], opset=18, axis=axis,
                   reduction=reduction)
    # duplicates with reduction none: onnxruntime and the kernel both keep the last write
    check_against_ort(m, {"x": x, "i": i, "u": u})


def test_scatter_elements_int_data_and_constant_indices_and_the_old_scatter():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    i = np.array([[2, 0, 1, -1]])
    u = np.array([[100, 200, 300, 400]], np.int32)
    m = node_model("ScatterElements", {"x": x, "u": u}, ["y"], inits={"i": i}, opset=18,
                   reduction="add")
    m.graph.node[0].input[:] = ["x", "i", "u"]
    check_against_ort(m, {"x": x, "u": u}, targets=("host", "cpu", "cortex-m4"))
    old = node_model("Scatter", {"x": x, "i": i, "u": u}, ["y"], opset=10, axis=0)
    check_against_ort(old, {"x": x, "i": i, "u": u})


@pytest.mark.parametrize("batch_dims", [0, 1])
@pytest.mark.parametrize("depth", [1, 2])
def test_gather_nd(batch_dims, depth):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    dims = x.shape[batch_dims:batch_dims + depth]
    i = np.stack([RNG.integers(-d, d, (3, 2)) for d in dims], axis=-1).astype(np.int64)
    m = node_model("GatherND", {"x": x, "i": i}, ["y"], opset=13, batch_dims=batch_dims)
    check_against_ort(m, {"x": x, "i": i})


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_scatter_nd(reduction, depth):
    x = RNG.standard_normal((4, 3, 5)).astype(np.float32)
    # distinct index tuples for none (onnxruntime leaves duplicates unspecified there)
    rows = RNG.permutation(np.array(np.meshgrid(*[np.arange(d) for d in x.shape[:depth]],
                                                indexing="ij")).reshape(depth, -1).T)[:3]
    i = np.where(RNG.random(rows.shape) < 0.5, rows - np.array(x.shape[:depth]), rows)
    u = RNG.standard_normal((3,) + x.shape[depth:]).astype(np.float32)
    m = node_model("ScatterND", {"x": x, "i": i, "u": u}, ["y"], opset=18, reduction=reduction)
    check_against_ort(m, {"x": x, "i": i, "u": u})


def test_out_of_range_indices_stay_inside_the_buffers():
    # an error in the spec (onnxruntime refuses it); the kernels clamp, the reference raises
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    i = np.array([[5, -9, 1, 2]])
    m = node_model("GatherElements", {"x": x, "i": i}, ["y"], opset=13)
    got = onnxcc.compile(m, "host").run({"x": x, "i": i})["y"]
    np.testing.assert_array_equal(got, [[x[2, 0], x[0, 1], x[1, 2], x[2, 3]]])
    with pytest.raises(IndexError, match="outside"):
        interpret(import_onnx(m), {"x": x, "i": i})
    u = np.ones((1, 4), np.float32)
    m = node_model("ScatterElements", {"x": x, "i": i, "u": u}, ["y"], opset=13)
    got = onnxcc.compile(m, "cpu").run({"x": x, "i": i, "u": u})["y"]
    want = x.copy()
    want[[2, 0, 1, 2], [0, 1, 2, 3]] = 1
    np.testing.assert_array_equal(got, want)


def test_shape_and_attribute_errors_name_the_node():
    x = np.zeros((3, 4), np.float32)
    m = node_model("GatherElements", {"x": x, "i": np.zeros((2,), np.int64)}, ["y"], opset=13)
    with pytest.raises(ShapeError, match="rank"):
        onnxcc.compile(m, "host")
    m = node_model("GatherElements", {"x": x, "i": np.zeros((2, 2), np.float32)}, ["y"], opset=13)
    with pytest.raises(ModelLoadError, match="does not accept"):   # the spec's type check
        onnxcc.compile(m, "host")
    i, u = np.zeros((1, 4), np.int64), np.zeros((1, 4), np.float32)
    m = node_model("ScatterElements", {"x": x, "i": i, "u": u}, ["y"], opset=16,
                   reduction="max")   # max arrives at opset 18
    with pytest.raises(AttributeValueError, match="reduction 'max'"):
        onnxcc.compile(m, "host")
    m = node_model("ScatterND", {"x": x, "i": np.zeros((2, 1), np.int64),
                                 "u": np.zeros((2, 3), np.float32)}, ["y"], opset=18)
    with pytest.raises(ShapeError, match="updates shape"):
        onnxcc.compile(m, "host")
    m = node_model("GatherND", {"x": x, "i": np.zeros((2, 3), np.int64)}, ["y"], opset=13)
    with pytest.raises(ShapeError, match="does not address"):
        onnxcc.compile(m, "host")


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter(mode):
    past = RNG.standard_normal((3, 2, 6, 4)).astype(np.float32)
    upd = RNG.standard_normal((3, 2, 4, 4)).astype(np.float32)
    wi = np.array([0, 2, 5], np.int64) if mode == "circular" else np.array([0, 2, 1], np.int64)
    m = node_model("TensorScatter", {"p": past, "u": upd, "w": wi}, ["y"], opset=24, mode=mode)
    check_against_ort(m, {"p": past, "u": upd, "w": wi})
    m = node_model("TensorScatter", {"p": past, "u": upd[:, :, :2]}, ["y"], opset=24, axis=2)
    check_against_ort(m, {"p": past, "u": upd[:, :, :2]})
