"""The microcontroller epilogue ``sat(smmla(acc, m', ra) >> t)`` (``requantize.mla_form``): equal
to the exact ``sat(requantize(acc, m, shift) + zero_point)`` for every accumulator within the
bound it was built for, refused where it would not be (reachable ties, channel shifts that
do not share one, a high word that overflows); the ``smmla`` intrinsic bit-identical in the
numpy reference, the interpreter, C and LLVM."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from onnxcc.codegen.loops import F32, I32, Buffer, Call, Kernel, Loop, Program, Store, Var
from onnxcc.codegen.requantize import (INT32_MAX, INT32_MIN, mla_form, quantize_multiplier,
                                       requantize, round_i32, smmla)
from onnxcc.codegen.verify import verify

from loopir import run_c, run_interp, run_llvm

RANGES = {(-128, 127): np.int8, (0, 255): np.uint8}


def _exact(acc: np.ndarray, m: int, shift: int, zp: int, lo: int, hi: int) -> np.ndarray:
    return np.clip(requantize(acc, m, shift).astype(np.int64) + zp, lo, hi)


def _fast(acc: np.ndarray, mm: int, t: int, ra: int, lo: int, hi: int) -> np.ndarray:
    return np.clip(smmla(acc, mm, ra).astype(np.int64) >> t, lo, hi)


def _accs(rng: np.random.Generator, bound: int, S: int, mm: int) -> np.ndarray:
    """Random accumulators in [-bound, bound], the ends, and the multiples of the smallest
    power of two that could make a tie (the values where rounding half up and half to even
    could part)."""
    v = (mm & -mm).bit_length() - 1 if mm else 0
    step = 1 << max(0, S - 1 - v)
    k = np.arange(-4, 5, dtype=np.int64) * step
    edge = np.concatenate([k[np.abs(k) <= bound], [bound, -bound, 0, 1, -1]])
    return np.concatenate([rng.integers(-bound, bound, 3000, endpoint=True), edge])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.floats(2.0 ** -30, 0.2, allow_subnormal=False), min_size=1, max_size=4),
       st.integers(-128, 255), st.integers(1, (1 << 26)), st.sampled_from(list(RANGES)),
       st.integers(0, 2 ** 32 - 1))
def test_form_equals_exact_epilogue_within_its_bound(reals, zp, bound, rng_range, seed):
    lo, hi = rng_range
    zp = int(np.clip(zp, lo, hi))
    pairs = [quantize_multiplier(float(np.float32(r))) for r in reals]
    form = mla_form(pairs, np.full(len(pairs), bound), zp, lo, hi)
    if form is None:
        return
    mms, t, ra = form
    rng = np.random.default_rng(seed)
    for (m, s), mm in zip(pairs, mms):
        acc = _accs(rng, bound, 32 + t, mm).astype(np.int32)
        np.testing.assert_array_equal(_fast(acc, mm, t, ra, lo, hi),
                                      _exact(acc, m, s, zp, lo, hi))


def test_typical_layers_take_the_form():
    """A per-channel layer with multipliers within a factor 2**7 and an int8 zero point: one
    shift for all, each m' the channel's multiplier exactly."""
    reals = [0.0031, 0.0007, 0.012, 0.00041]
    pairs = [quantize_multiplier(r) for r in reals]
    form = mla_form(pairs, np.array([40000, 90000, 12000, 2 ** 20]), -7, -128, 127)
    assert form is not None
    mms, t, ra = form
    assert ra == (1 << (t - 1)) - 7 * (1 << t)
    for (m, s), mm in zip(pairs, mms):
        assert mm / 2.0 ** (32 + t) == m / 2.0 ** s


def test_refused_where_a_tie_is_reachable():
    # 2**-8: m = 2**30, shift 38; acc * m / 2**38 = acc / 256 is a tie for acc = 128 (mod 256)
    pairs = [quantize_multiplier(2.0 ** -8)]
    assert mla_form(pairs, np.array([127]), 0, -128, 127) is not None
    assert mla_form(pairs, np.array([128]), 0, -128, 127) is None
    acc = np.array([128, -128, 384, 127, -127], np.int32)
    assert _exact(acc, *pairs[0], 0, -128, 127).tolist() == [0, 0, 2, 0, 0]   # half to even


def test_refused_without_a_shared_shift_or_range():
    # significands of 24 bits leave at most 7 trailing zeros to shift away: 2**-12 and a
    # multiplier 2**9 times larger with a full significand have no common shift
    full = float(np.float32(1 / 3))
    pairs = [quantize_multiplier(full * 2.0 ** -12), quantize_multiplier(full * 2.0 ** -3)]
    assert mla_form(pairs, np.array([1000, 1000]), 0, -128, 127) is None
    # within 2**7 they do: the smaller multiplier's m loses its 2 low zero bits
    close = [quantize_multiplier(full * 2.0 ** -12), quantize_multiplier(full * 2.0 ** -10)]
    form = mla_form(close, np.array([1000, 1000]), 0, -128, 127)
    assert form is not None and form[0] == [close[0][0] >> 2, close[1][0]]
    # an int16 output range has no SSAT #8 / USAT #8; a multiplier of 1/4 or more has t = 0
    assert mla_form([quantize_multiplier(0.001)], np.array([100]), 0, -32768, 32767) is None
    assert mla_form([quantize_multiplier(0.3)], np.array([100]), 0, -128, 127) is None
    # the high word would overflow: |acc * m| / 2**32 near 2**31
    assert mla_form([quantize_multiplier(0.2)], np.array([INT32_MAX]), 0, -128, 127) is None


def test_smmla_renderers_agree():
    """``smmla`` (the high word of acc * 2**32 + a * b, wrapping) in numpy, the loop-IR
    interpreter, C (the host's plain 64-bit form) and LLVM, on random and extreme operands."""
    rng = np.random.default_rng(3)
    n = 2048
    a, b, c = (rng.integers(INT32_MIN, INT32_MAX, n, dtype=np.int64, endpoint=True)
               .astype(np.int32) for _ in range(3))
    edge = [(INT32_MIN, INT32_MIN, INT32_MAX), (INT32_MAX, INT32_MAX, INT32_MAX),
            (INT32_MIN, INT32_MAX, INT32_MIN), (-1, 1, 0), (1, -1, 5), (0, 0, INT32_MIN)]
    for t, e in enumerate(edge):
        a[t], b[t], c[t] = e
    want = smmla(a, b, c)
    exact = [((x * 2 ** 32 + int(p) * int(q)) >> 32) for p, q, x in edge]
    assert [int(want[t]) for t in range(len(edge))] == \
        [((v + 2 ** 31) % 2 ** 32) - 2 ** 31 for v in exact]
    ins = [Buffer(nm, I32, (n,), space="input", index=k) for k, nm in enumerate("abc")]
    y = Buffer("y", I32, (n,), space="output", index=0)
    i = Var("i")
    body = [Loop(i, 0, n, [Store(y, (i,), Call("smmla", tuple(x[i] for x in ins), I32))])]
    p = Program("mla", [Kernel("k0", [y], ins, body, op="smmla")],
                [Buffer(f"input{k}", I32, (n,), space="input", index=k) for k in range(3)],
                [Buffer("output0", I32, (n,), space="output", index=0)], 0, 16)
    verify(p)
    for run in (run_interp, run_c, run_llvm):
        np.testing.assert_array_equal(run(p, [a, b, c])[0], want, err_msg=run.__name__)


def test_round_i32_renderers_agree():
    """``round_i32`` (float32 rounded half to even to int32, saturated, NaN 0) in numpy, the
    interpreter, C (the host's plain form) and LLVM: ties, the float32 integers past 2**23,
    the int32 ends, infinities and NaN, and random values."""
    rng = np.random.default_rng(9)
    edge = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -127.5, 8388607.5, 8388609.0, -8388609.0,
            2.0 ** 31, -(2.0 ** 31), 2.0 ** 31 - 128, 3e9, -3e9, np.inf, -np.inf, np.nan, -0.0,
            0.49999997, -0.49999997]
    v = np.concatenate([np.array(edge, np.float32),
                        (rng.standard_normal(2000) * 300).astype(np.float32),
                        (rng.integers(-600, 600, 500) / 2).astype(np.float32)])
    want = round_i32(v)
    assert want[:6].tolist() == [0, 2, 2, 0, -2, -2]
    assert want[11:19].tolist() == [INT32_MAX, INT32_MIN, 2 ** 31 - 128, INT32_MAX, INT32_MIN,
                                    INT32_MAX, INT32_MIN, 0]
    n = v.size
    x = Buffer("v", F32, (n,), space="input", index=0)
    y = Buffer("y", I32, (n,), space="output", index=0)
    i = Var("i")
    p = Program("rnd", [Kernel("k0", [y], [x], [Loop(i, 0, n, [
        Store(y, (i,), Call("round_i32", (x[i],), I32))])], op="round")],
        [Buffer("input0", F32, (n,), space="input", index=0)],
        [Buffer("output0", I32, (n,), space="output", index=0)], 0, 16)
    verify(p)
    for run in (run_interp, run_c, run_llvm):
        np.testing.assert_array_equal(run(p, [v])[0], want, err_msg=run.__name__)
