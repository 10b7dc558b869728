"""The requantize intrinsic: the numpy reference against exact rational arithmetic, the exact
fixed-point form of float32 multipliers, and the C, LLVM and interpreter renderings of one kernel
bit-identical on edge and random values."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onnxcc.codegen.loops import F32, I32, Buffer, Call, Const, Kernel, Loop, Program, Store, Var
from onnxcc.codegen.requantize import (INT32_MAX, INT32_MIN, quantize_multiplier, requantize,
                                       requantize_hi)
from onnxcc.codegen.verify import verify
from onnxcc.errors import VerifyError

from loopir import run_c, run_interp, run_llvm


def exact(acc: int, m: int, shift: int) -> int:
    """round_half_to_even(acc * m / 2**shift), saturated to int32, in rationals."""
    v = Fraction(acc * m, 1 << shift)
    fl = v.numerator // v.denominator
    rem = v - fl
    r = fl + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2) else 0)
    return max(INT32_MIN, min(INT32_MAX, r))


@settings(max_examples=3000, deadline=None)
@given(st.integers(INT32_MIN, INT32_MAX), st.integers(0, INT32_MAX), st.integers(1, 62))
def test_reference_is_exact_round_half_even(acc, m, shift):
    assert int(requantize(acc, m, shift)) == exact(acc, m, shift)


def test_ties_round_to_even():
    # acc * m / 2**shift = k + 1/2 exactly
    assert [int(requantize(a, 1, 1)) for a in (1, 3, 5, -1, -3, -5)] == [0, 2, 2, 0, -2, -2]
    assert int(requantize(INT32_MAX, INT32_MAX, 1)) == INT32_MAX       # saturates
    assert int(requantize(INT32_MIN, INT32_MAX, 1)) == INT32_MIN


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=2.0 ** -40, max_value=2.0 ** 29, allow_subnormal=False),
       st.integers(-(1 << 24), 1 << 24))
def test_multiplier_is_the_float32_exactly(real, acc):
    r = float(np.float32(real))
    m, shift = quantize_multiplier(r)
    assert 1 <= shift <= 62 and 0 <= m <= INT32_MAX
    if m:
        assert Fraction(m, 1 << shift) == Fraction(r)
    # requantize equals the spec's round(acc * multiplier), evaluated exactly
    v = Fraction(acc) * Fraction(r)
    fl = v.numerator // v.denominator
    rem = v - fl
    want = fl + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2) else 0)
    assert int(requantize(acc, m, shift)) == max(INT32_MIN, min(INT32_MAX, want))


def test_multiplier_edges():
    assert quantize_multiplier(0.0) == (0, 1)
    assert quantize_multiplier(2.0 ** -70) == (0, 1)
    assert quantize_multiplier(2.0 ** 40) == (INT32_MAX, 1)
    assert quantize_multiplier(0.5) == (1 << 30, 31)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            quantize_multiplier(bad)


def _program(n: int, fn: str = "requantize") -> Program:
    acc = Buffer("acc", I32, (n,), space="input", index=0)
    m = Buffer("m", I32, (n,), space="input", index=1)
    s = Buffer("s", I32, (n,), space="input", index=2)
    y = Buffer("y", I32, (n,), space="output", index=0)
    i = Var("i")
    body = [Loop(i, 0, n, [Store(y, (i,), Call(fn, (acc[i], m[i], s[i]), I32))])]
    k = Kernel("k0", [y], [acc, m, s], body, op="requantize")
    return Program("rq", [k], [Buffer("input0", I32, (n,), space="input", index=0),
                              Buffer("input1", I32, (n,), space="input", index=1),
                              Buffer("input2", I32, (n,), space="input", index=2)],
                   [Buffer("output0", I32, (n,), space="output", index=0)], 0, 16)


def test_renderers_agree_bit_for_bit():
    rng = np.random.default_rng(5)
    n = 4096
    acc = rng.integers(INT32_MIN, INT32_MAX, n, dtype=np.int64, endpoint=True).astype(np.int32)
    m = rng.integers(0, INT32_MAX, n, dtype=np.int64, endpoint=True).astype(np.int32)
    s = rng.integers(1, 63, n).astype(np.int32)
    # edges: ties, saturation, extreme accumulators, small shifts, zero multiplier
    edge = [(1, 1, 1), (3, 1, 1), (-1, 1, 1), (-3, 1, 1), (INT32_MAX, INT32_MAX, 1),
            (INT32_MIN, INT32_MAX, 1), (INT32_MIN, INT32_MAX, 62), (INT32_MAX, 1 << 30, 31),
            (-7, 1 << 30, 31), (123456, 0, 5), (INT32_MIN, 1, 62), (5, 3, 2), (-5, 3, 2)]
    for t, (a, mm, ss) in enumerate(edge):
        acc[t], m[t], s[t] = a, mm, ss
    p = _program(n)
    verify(p)
    want = requantize(acc, m, s)
    assert [int(want[t]) for t in range(len(edge))] == [exact(*e) for e in edge]
    for run in (run_interp, run_c, run_llvm):
        got = run(p, [acc, m, s])[0]
        np.testing.assert_array_equal(got, want, err_msg=run.__name__)


def test_requantize_hi_agrees_with_requantize():
    """The 32-bit-word form for shifts 33..62 (the microcontroller kernels' epilogue) equals the
    exact function bit for bit in every renderer: random operands, ties rounding to even (odd
    and even quotients), the low word 0, extreme accumulators."""
    rng = np.random.default_rng(7)
    n = 4096
    acc = rng.integers(INT32_MIN, INT32_MAX, n, dtype=np.int64, endpoint=True).astype(np.int32)
    m = rng.integers(1 << 30, INT32_MAX, n, dtype=np.int64, endpoint=True).astype(np.int32)
    s = rng.integers(33, 63, n).astype(np.int32)
    # ties: acc * m = (2k + 1) * 2**(shift - 1) with m = 2**30, acc = (2k + 1) * 2**(shift - 31)
    edge = [((2 * k + 1) << (sh - 31), 1 << 30, sh) for k in (0, 1, 2, -1, -2, 5)
            for sh in (33, 34, 40)]
    edge += [(INT32_MIN, INT32_MAX, 33), (INT32_MAX, INT32_MAX, 33), (INT32_MIN, 1 << 30, 62),
             (0, INT32_MAX, 40), (1, 1 << 30, 33), (-1, 1 << 30, 33), (3 << 20, 1 << 30, 51)]
    for t, (a, mm, ss) in enumerate(edge):
        acc[t], m[t], s[t] = a, mm, ss
    want = requantize(acc, m, s)
    assert [int(want[t]) for t in range(len(edge))] == [exact(*e) for e in edge]
    p = _program(n, "requantize_hi")
    verify(p)
    for run in (run_interp, run_c, run_llvm):
        got = run(p, [acc, m, s])[0]
        np.testing.assert_array_equal(got, want, err_msg=run.__name__)
    with pytest.raises(ValueError, match="33 <= shift <= 62"):
        requantize_hi(np.int32(1), np.int32(1 << 30), np.int32(32))


def test_verify_checks_requantize_types():
    p = _program(1)
    k = p.kernels[0]
    acc, y = k.inputs[0], k.outputs[0]
    k.body = [Store(y, (Const(0),), Call("requantize", (acc[Const(0)], Const(1.0, F32), Const(3)),
                                         I32))]
    with pytest.raises(VerifyError, match="requantize takes and returns int32"):
        verify(p)
