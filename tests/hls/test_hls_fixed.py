"""Fixed-point types: exact quantization in every rounding and overflow mode, parsing, and the
accumulator rule (checked against exact rational arithmetic)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from onnxcc.codegen.hls.fixed import (FixedPoint, FixedType, PrecisionError, integer_bits,
                                      parse_type, weight_type)


def _exact(value: Fraction, t: FixedType) -> Fraction:
    """ap_fixed's conversion of the exact ``value`` to ``t``, with Fractions (UG1399)."""
    s = value * (1 << t.frac) if t.frac >= 0 else value / (1 << -t.frac)
    fl = math.floor(s)
    rem = s - fl
    if t.rounding == "AP_TRN":
        q = fl
    elif t.rounding == "AP_TRN_ZERO":
        q = math.trunc(s)
    elif t.rounding == "AP_RND":
        q = fl + (1 if rem >= Fraction(1, 2) else 0)
    else:   # AP_RND_CONV
        q = fl + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2) else 0)
    if t.overflow == "AP_SAT":
        q = min(max(q, t.raw_min), t.raw_max)
    else:
        m = 1 << t.width
        q %= m
        if t.signed and q > t.raw_max:
            q -= m
    return Fraction(q) / (1 << t.frac) if t.frac >= 0 else Fraction(q) * (1 << -t.frac)


types = st.builds(FixedType, st.integers(2, 24), st.integers(-2, 20), st.booleans(),
                  st.sampled_from(["AP_RND_CONV", "AP_RND", "AP_TRN", "AP_TRN_ZERO"]),
                  st.sampled_from(["AP_SAT", "AP_WRAP"]))


@settings(max_examples=300, deadline=None)
@given(t=types, xs=st.lists(st.floats(-3000, 3000, allow_nan=False, width=32), min_size=1,
                            max_size=8))
def test_quantize_matches_exact_rationals(t, xs):
    got = t.quantize(np.array(xs, np.float64))
    want = [float(_exact(Fraction(float(x)), t)) for x in xs]
    assert got.tolist() == want


@settings(max_examples=200, deadline=None)
@given(t=types, raws=st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=8),
       frac=st.integers(0, 30))
@example(t=FixedType(22, -2, False), raws=[1 << 39], frac=0)   # 2**39 << 24 passes int64
def test_requantize_from_raw_matches_exact_rationals(t, raws, frac):
    got = t.quantize(np.array(raws, np.int64), frac=frac)
    want = [float(_exact(Fraction(r, 1 << frac), t)) for r in raws]
    assert got.tolist() == want


def test_ties_round_to_even_and_saturate():
    t = FixedType(8, 4)                          # step 1/16, range [-8, 7.9375]
    assert t.quantize([1 / 32, 3 / 32, -1 / 32, 100.0, -100.0]).tolist() == \
        [0.0, 0.125, 0.0, 7.9375, -8.0]
    assert str(t) == "ap_fixed<8,4>" and t.cpp() == "ap_fixed<8,4,AP_RND_CONV,AP_SAT>"


def test_parse_type():
    assert parse_type("ap_fixed<16,6>") == FixedType(16, 6)
    assert parse_type(" ap_ufixed< 8 , 2 , AP_TRN, AP_WRAP> ") == \
        FixedType(8, 2, False, "AP_TRN", "AP_WRAP")
    for bad in ("ap_fixed<16>", "float", "ap_fixed<0,0>", "ap_fixed<16,6,AP_NOPE>",
                "ap_fixed<2000,6>"):
        with pytest.raises(PrecisionError) as e:
            parse_type(bad)
        assert e.value.hint


def test_integer_bits_and_weight_type():
    assert integer_bits(0.0) == 1
    assert integer_bits(0.5) == 1 and integer_bits(0.99) == 1
    assert integer_bits(1.0) == 2 and integer_bits(3.9) == 3 and integer_bits(4.0) == 4
    w = weight_type(np.array([-3.2, 0.1, 1.5]), 16)
    assert (w.width, w.integer) == (16, 3)
    assert w.quantize([-3.2]).item() == pytest.approx(-3.2, abs=2 ** -13)
    assert FixedPoint(weight_width=12).weight(np.array([0.25])).width == 12
