"""BitShift and BitwiseAnd/Or/Xor/Not through the public API on host C (BitShift-28 also under
-fsanitize=address,undefined: no shift is undefined), cpu LLVM and an MCU target: every unsigned and signed width, shift
amounts at and past the width and negative (opset 28), overflow of signed left shifts,
broadcasting. BitShift is checked against onnxruntime at opset 11 (unsigned) and against
onnx.reference at opset 28 (onnxruntime 1.31 refuses opset 28 models, and has no uint16
BitShift); the bitwise ops against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxcc
import pytest
from builders import check_against_ort, node_model
from onnx.reference import ReferenceEvaluator

UNSIGNED = [np.uint8, np.uint16, np.uint32, np.uint64]
ORT_UNSIGNED = [np.uint8, np.uint32, np.uint64]   # onnxruntime 1.31 has no uint16 BitShift
SIGNED = [np.int8, np.int16, np.int32, np.int64]


def _full_range(dt, shape, rng):
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


@pytest.mark.parametrize("dt", ORT_UNSIGNED)
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_unsigned_opset11_against_onnxruntime(dt, direction):
    rng = np.random.default_rng(0)
    bits = np.dtype(dt).itemsize * 8
    x = _full_range(dt, (3, 8), rng)
    s = rng.integers(0, bits, (8,)).astype(dt)
    m = node_model("BitShift", {"x": x, "s": s}, ["z"], opset=11, direction=direction)
    check_against_ort(m, {"x": x, "s": s}, targets=("host", "cpu", "cortex-m4"))


@pytest.mark.parametrize("dt", UNSIGNED + SIGNED)
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift_opset28_every_amount_against_onnx_reference(dt, direction):
    rng = np.random.default_rng(1)
    bits = np.dtype(dt).itemsize * 8
    info = np.iinfo(dt)
    amounts = [0, 1, bits - 1, bits, bits + 1, min(info.max, 4 * bits)]
    if info.min < 0:
        amounts += [-1, info.min]
    s = np.array(amounts, dt)
    x = np.concatenate([_full_range(dt, (len(s) * 3 - 3,), rng),
                        np.array([info.min, info.max, 0], dt)]).reshape(3, len(s))
    m = node_model("BitShift", {"x": x, "s": s}, ["z"], opset=28, direction=direction)
    (want,) = ReferenceEvaluator(m).run(None, {"x": x, "s": s})
    for t, sanitize in (("host", True), ("host", False), ("cpu", False)):
        cm = onnxcc.compile(m, t)
        got = (cm.run({"x": x, "s": s}, sanitize=True) if sanitize else cm.run({"x": x, "s": s}))["z"]
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=f"{t} sanitize={sanitize}")


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dt", [np.uint8, np.int16, np.int32, np.uint64, np.int64])
def test_bitwise_binary_broadcast(op, dt):
    rng = np.random.default_rng(2)
    a, b = _full_range(dt, (2, 3, 4), rng), _full_range(dt, (4,), rng)
    m = node_model(op, {"a": a, "b": b}, ["c"], opset=18)
    check_against_ort(m, {"a": a, "b": b})


@pytest.mark.parametrize("dt", UNSIGNED + SIGNED)
def test_bitwise_not(dt):
    x = _full_range(dt, (3, 5), np.random.default_rng(3))
    x.reshape(-1)[:2] = [np.iinfo(dt).min, np.iinfo(dt).max]
    m = node_model("BitwiseNot", {"x": x}, ["y"], opset=18)
    check_against_ort(m, {"x": x}, targets=("host", "cpu", "cortex-m4"))
