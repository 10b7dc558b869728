"""Mod on unsigned inputs: the generated C (built with -Wall -Wextra -Werror) has no sign fix-up
to compare an unsigned value below 0 (gcc's -Werror=type-limits), on both back ends."""

import numpy as np
import pytest
from onnx import TensorProto

import onnxcc
from builders import make_model, ort_run


@pytest.mark.parametrize("target", ["host", "cpu"])
@pytest.mark.parametrize("elem, dt", [(TensorProto.UINT8, np.uint8), (TensorProto.UINT16, np.uint16),
                                      (TensorProto.UINT32, np.uint32), (TensorProto.UINT64, np.uint64)])
@pytest.mark.parametrize("fmod", [0, 1])
def test_unsigned_mod_matches_onnxruntime(rng, target, elem, dt, fmod):
    # onnxruntime's fmod=1 goes through double: compared below 2**53, exact (numpy) above
    a = rng.integers(0, min(np.iinfo(dt).max, 2**53), (3, 7), dtype=dt)
    b = rng.integers(1, 200, (3, 7), dtype=dt)
    m = make_model([("Mod", ["a", "b"], ["y"], {"fmod": fmod})], {"a": a.shape, "b": b.shape},
                   {"y": a.shape}, dtype=elem, opset=13)
    cm = onnxcc.compile(m, target)
    want = ort_run(m, {"a": a, "b": b})["y"]
    np.testing.assert_array_equal(cm.run({"a": a, "b": b})["y"], want)
    if target == "host":   # the executable harness, built with -Werror, too
        np.testing.assert_array_equal(cm.run({"a": a, "b": b}, sanitize=True)["y"], want)
    big = np.array([np.iinfo(dt).max, np.iinfo(dt).max - 1, 2**7], dt)
    np.testing.assert_array_equal(cm.run({"a": np.resize(big, a.shape), "b": b})["y"],
                                  np.mod(np.resize(big, a.shape), b))


@pytest.mark.parametrize("target", ["host", "cpu"])
@pytest.mark.parametrize("elem, dt", [(TensorProto.INT32, np.int32), (TensorProto.INT64, np.int64)])
@pytest.mark.parametrize("op, fmod", [("Div", None), ("Mod", 0), ("Mod", 1)])
def test_signed_int_min_by_minus_one_wraps_instead_of_trapping(target, elem, dt, op, fmod):
    """INT_MIN / -1 overflows in C (SIGFPE on x86: the generated C killed the process) and so
    does INT_MIN % -1. Both back ends give the LLVM back end's answer: the quotient wraps to
    INT_MIN, the remainder is 0 (its true value); x / 0 and x % 0 stay 0. onnxruntime 1.31 dies
    of the same SIGFPE, so the values are written out."""
    lo = np.iinfo(dt).min
    a = np.array([lo, lo, 7, -7, 7, lo + 1], dt)
    b = np.array([-1, 1, -1, -1, 0, -1], dt)
    m = make_model([(op, ["a", "b"], ["y"], {} if fmod is None else {"fmod": fmod})],
                   {"a": a.shape, "b": b.shape}, {"y": a.shape}, dtype=elem, opset=13)
    want = (np.array([lo, lo, -7, 7, 0, -(lo + 1)], dt) if op == "Div"
            else np.array([0, 0, 0, 0, 0, 0], dt))
    cm = onnxcc.compile(m, target)
    np.testing.assert_array_equal(cm.run({"a": a, "b": b})["y"], want)
    if target == "host":   # under -fsanitize=undefined: no overflowing division is left
        np.testing.assert_array_equal(cm.run({"a": a, "b": b}, sanitize=True)["y"], want)


@pytest.mark.parametrize("nodes", [
    [("Add", ["a", "b"], ["y"])], [("Sub", ["a", "b"], ["y"])], [("Mul", ["a", "b"], ["y"])],
    [("Abs", ["a"], ["y"])], [("Add", ["a", "b"], ["t"]), ("Mul", ["t", "b"], ["y"])]])
def test_int32_data_arithmetic_wraps_without_undefined_behaviour(nodes):
    """int32 elementwise arithmetic that overflows wraps (two's complement, as onnxruntime and
    numpy give) through well-defined C: the kernels read their operands into locals (``a0 =
    x[i]``), and ``a0 + a1`` / ``-a0`` were plain signed int arithmetic, undefined on
    overflow (-fsanitize=undefined: 'signed integer overflow: 2147483647 + 1', 'negation of
    -2147483648'). The executable harness runs under UBSan here."""
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    a = np.array([hi, lo, 65536, lo, 7, -1], np.int32)
    b = np.array([1, -1, 65536, 2, -3, lo], np.int32)
    ins = sorted({i for n in nodes for i in n[1] if i in ("a", "b")})
    feeds = {k: {"a": a, "b": b}[k] for k in ins}
    m = make_model(nodes, {k: (6,) for k in ins}, {"y": (6,)}, dtype=TensorProto.INT32, opset=13)
    want = ort_run(m, feeds)["y"]
    cm = onnxcc.compile(m, "host")
    np.testing.assert_array_equal(cm.run(feeds, sanitize=True)["y"], want)
    np.testing.assert_array_equal(cm.run(feeds)["y"], want)
    np.testing.assert_array_equal(onnxcc.compile(m, "cpu").run(feeds)["y"], want)
