"""Reductions lowered to the loop IR (codegen/lower/reduce.py): every Reduce* op and
ArgMax/ArgMin over the attribute space, through the loop interpreter and C, against onnxruntime;
and blocked float sums (issue 9): 40 million ones sum to 4e7."""

import numpy as np
import pytest
from onnx import TensorProto

from builders import make_model, ort_run
from loopir import program_of, run_c, run_interp
from onnxcc.codegen.loops import program_text
from onnxcc.codegen.lower.reduce import REDUCE_OPS, SUM_BLOCK


def _typed(model, **dtypes):
    for v in list(model.graph.input) + list(model.graph.output):
        if v.name in dtypes:
            v.type.tensor_type.elem_type = dtypes[v.name]
    return model


def _reduce(op, shape, axes, keepdims=1, opset=18, **attrs):
    """A Reduce node with axes as an input (opset 18) or an attribute (older opsets)."""
    inits, ins = {}, ["x"]
    attrs = {"keepdims": keepdims, **attrs}
    if axes is not None:
        if opset >= 18 or (op == "ReduceSum" and opset >= 13):
            inits["a"] = np.array(axes, np.int64)
            ins.append("a")
        else:
            attrs["axes"] = axes
    return make_model([(op, ins, ["y"], attrs)], {"x": shape}, {"y": None}, inits, opset=opset)


def _check(model, x, cc="gcc", rtol=1e-5, atol=1e-6):
    p = program_of(model)
    want = ort_run(model, {"x": x})["y"]
    for got in (run_interp(p, [x])[0], run_c(p, [x], cc)[0]):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    return p


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes,keepdims", [([1], 1), ([0, 2], 0), ([-1], 1), (None, 0),
                                           ([0], 0)])
def test_reduce_ops(rng, op, axes, keepdims):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    if op in ("ReduceLogSum", "ReduceProd"):
        x = np.abs(x) + 0.5
    _check(_reduce(op, x.shape, axes, keepdims), x, cc="clang" if axes == [0, 2] else "gcc")


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2"])
def test_reduce_old_opsets_take_axes_attribute(rng, op):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    _check(_reduce(op, x.shape, [0, -1], 1, opset=11), x)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceL2", "ReduceLogSumExp", "ReduceMax"])
def test_noop_with_empty_axes(rng, op):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    m = make_model([(op, ["x"], ["y"], {"noop_with_empty_axes": 1})], {"x": x.shape},
                   {"y": None}, opset=18)
    _check(m, x)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"])
@pytest.mark.parametrize("dtype,tp", [(np.int32, TensorProto.INT32), (np.int64, TensorProto.INT64)])
def test_integer_reductions(rng, op, dtype, tp):
    x = rng.integers(-9, 9, (3, 4, 2)).astype(dtype)
    m = _typed(_reduce(op, x.shape, [1], 0), x=tp, y=tp)
    p = program_of(m)
    want = ort_run(m, {"x": x})["y"]
    np.testing.assert_array_equal(run_interp(p, [x])[0], want)
    np.testing.assert_array_equal(run_c(p, [x])[0], want)


def test_float_max_propagates_nan(rng):
    x = rng.standard_normal((2, 5)).astype(np.float32)
    x[0, 2] = np.nan
    p = program_of(_reduce("ReduceMax", x.shape, [1], 0))
    for got in (run_interp(p, [x])[0], run_c(p, [x])[0]):
        assert np.isnan(got[0]) and got[1] == x[1].max()


@pytest.mark.parametrize("shape,axes", [((2, 3 * SUM_BLOCK + 5), [1]),            # inner form
                                        ((SUM_BLOCK * 2 + 7, 37), [0]),           # outer, tiles
                                        ((3, SUM_BLOCK + 1, 2, 70), [0, 1, 3])])  # mixed dims
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceLogSumExp", "ReduceL2"])
def test_long_sums_are_blocked(rng, shape, axes, op):
    x = rng.standard_normal(shape).astype(np.float32)
    p = _check(_reduce(op, shape, axes, 0), x, rtol=1e-5, atol=1e-5)
    assert "rb" in program_text(p)        # the loop over full blocks of the tree


def test_short_sum_is_one_plain_loop(rng):
    x = rng.standard_normal((2, 16)).astype(np.float32)
    p = _check(_reduce("ReduceSum", x.shape, [1], 0), x)
    text = program_text(p)
    assert "rb" not in text and text.count("for ") == 2


def test_reduction_over_channels_keeps_the_innermost_loop_contiguous(rng):
    # axes (1,) of NCHW: y accumulates over x read in memory order
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    p = _check(_reduce("ReduceMean", x.shape, [1], 1), x)
    text = program_text(p)
    assert "      for i2 in 0..20:\n" \
           "        y0[((i0 * 20) + i2)] = (y0[((i0 * 20) + i2)] + x0[(((i0 * 60) + (i1 * 20)) + i2)])" \
        in text


def test_forty_million_ones_sum_to_4e7():
    """One float32 accumulator stops at 2**24 = 16,777,216; the blocked tree gives 4e7 (C only:
    the interpreter would take minutes)."""
    n = 40_000_000
    x = np.ones((1, n), np.float32)
    m = _reduce("ReduceSum", x.shape, [1], 0)
    p = program_of(m)
    assert run_c(p, [x])[0][0] == np.float32(n)
    assert ort_run(m, {"x": x})["y"][0] == np.float32(n)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims,last", [(0, 1, 0), (1, 0, 0), (-1, 1, 1), (2, 0, 1)])
def test_argmax_argmin(rng, op, axis, keepdims, last):
    x = rng.integers(0, 4, (3, 4, 5)).astype(np.float32)     # ties: first vs last index
    m = make_model([(op, ["x"], ["y"], {"axis": axis, "keepdims": keepdims,
                                        "select_last_index": last})],
                   {"x": x.shape}, {"y": None}, opset=13)
    m = _typed(m, y=TensorProto.INT64)
    p = program_of(m)
    want = ort_run(m, {"x": x})["y"]
    np.testing.assert_array_equal(run_interp(p, [x])[0], want)
    np.testing.assert_array_equal(run_c(p, [x], "clang" if last else "gcc")[0], want)


def test_argmax_of_int32_and_nan(rng):
    x = rng.integers(-5, 5, (4, 6)).astype(np.int32)
    m = _typed(make_model([("ArgMax", ["x"], ["y"], {"axis": 1})], {"x": x.shape}, {"y": None}),
               x=TensorProto.INT32, y=TensorProto.INT64)
    p = program_of(m)
    np.testing.assert_array_equal(run_c(p, [x])[0], ort_run(m, {"x": x})["y"])
    xf = rng.standard_normal((2, 4)).astype(np.float32)
    xf[1, 2] = np.nan
    m = _typed(make_model([("ArgMax", ["x"], ["y"], {"axis": 1, "keepdims": 0})],
                          {"x": xf.shape}, {"y": None}), y=TensorProto.INT64)
    p = program_of(m)
    np.testing.assert_array_equal(run_interp(p, [xf])[0], np.argmax(xf, axis=1))
