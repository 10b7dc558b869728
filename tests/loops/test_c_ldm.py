"""The loop IR's ``ldm`` hint (codegen/smlad.py): the loaded value everywhere, and in the C
renderer runs of 2 to 5 Decls of consecutive int32 words read as one group through a walking
pointer (``onnxcc_ldmN``: one LDMIA on Thumb-2, plain loads elsewhere), set once before the
loop when its groups tile one iteration's words. Bit-exact on the host (gcc, clang), the
interpreter and LLVM; the Thumb-2 form runs on the emulated Cortex-M4 in
tests/targets/test_mcu_smlad.py (the blocked int8 products)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from loopir import run_c, run_interp, run_llvm
from onnxcc.codegen.c.render import _ldm_run, render_program
from onnxcc.codegen.loops import (I32, Buffer, Call, Const, Decl, DType, Kernel, Load, Loop,
                                  Program, Store, Var, affine)
from onnxcc.codegen.verify import VerifyError, verify

F32 = DType("float32")


def ldm(b: Buffer, *idx) -> Call:
    return Call("ldm", (b[idx],), I32)


def _program(per: int, sizes: tuple[int, ...], bank1: int = 0) -> tuple[Program, np.ndarray]:
    """y[j] = z + sum_u 3**u * x[j * per + u] for 5 iterations, the words of an iteration
    read as ldm runs of ``sizes`` (the first followed by a Decl of z, another buffer, which
    ends it; the first ``bank1`` words' hints ask for register bank 1), then the rest as plain
    loads."""
    n = 5
    x = Buffer("x", I32, (n * per,), space="input", index=0)
    z = Buffer("z", I32, (1,), space="input", index=1)
    y = Buffer("y", I32, (n,), space="output", index=0)
    j = Var("j")
    vs = [Var(f"v{u}", I32) for u in range(per)]
    body: list = []
    at, zv = 0, None
    for size in sizes:
        body += [Decl(vs[u], ldm(x, affine((j, per), u)) if u >= bank1 else
                      Call("ldm", (x[(affine((j, per), u),)], Const(1, I32)), I32))
                 for u in range(at, at + size)]
        at += size
        if zv is None:
            zv = Var("zv", I32)
            body.append(Decl(zv, z[(0,)]))
    body += [Decl(vs[u], x[(affine((j, per), u),)]) for u in range(at, per)]
    total = zv
    for u, v in enumerate(vs):
        total = total + v * Const(3 ** u, I32)
    body.append(Store(y, (j,), total))
    k = Kernel("k", [y], [x, z], [Loop(j, 0, n, body)])
    p = Program("ldm", [k], [x, z], [y], arena_size=0)
    verify(p)
    xs = np.random.default_rng(0).integers(-2**20, 2**20, n * per).astype(np.int32)
    return p, xs


def _want(xs: np.ndarray, per: int, z: int) -> np.ndarray:
    w = np.array([3 ** u for u in range(per)], np.int64)
    s = xs.reshape(-1, per).astype(np.int64) @ w + z
    return ((s + 2**31) % 2**32 - 2**31).astype(np.int32)


@pytest.mark.parametrize("per,sizes,hoisted", [(6, (3, 3), True), (7, (4, 3), True),
                                               (6, (4,), False), (5, (2, 3), True),
                                               (10, (5, 5), True)])
def test_ldm_groups_are_bit_exact_everywhere(per, sizes, hoisted):
    p, xs = _program(per, sizes)
    src = render_program(p)
    for s in sizes:
        assert f"onnxcc_ldm{s}a(&onnxcc_w" in src
    # the walking pointer set once before the loop when the groups tile an iteration
    assert (src.index("const int32_t *onnxcc_w") < src.index("for (")) is hoisted
    z = np.array([7], np.int32)
    want = _want(xs, per, 7)
    for got in (run_interp(p, [xs, z]), run_llvm(p, [xs, z]), run_c(p, [xs, z])):
        np.testing.assert_array_equal(got[0], want)
    if shutil.which("clang"):
        np.testing.assert_array_equal(run_c(p, [xs, z], cc="clang")[0], want)


def test_ldm_group_in_the_bank_its_hints_ask_for():
    """Hints ``ldm(load, 1)`` take register bank 1 (r0-r3: 4 words a group, a fifth read
    through the walking pointer) whatever the buffer's bank; the next group, of plain hints,
    keeps the buffer's bank 0 (5 words). The pointer still walks the whole iteration: set
    once before the loop. Bit-exact."""
    p, xs = _program(10, (5, 5), bank1=5)
    src = render_program(p)
    (w,) = set(re.findall(r"const int32_t \*(onnxcc_w\d+) = ", src))
    assert f"onnxcc_ldm4b(&{w}, &v0, &v1, &v2, &v3);" in src
    assert f"int32_t v4 = *{w}++;" in src
    assert f"onnxcc_ldm5a(&{w}, &v5, &v6, &v7, &v8, &v9);" in src
    assert src.index(f"const int32_t *{w}") < src.index("for (")
    z = np.array([7], np.int32)
    want = _want(xs, 10, 7)
    for got in (run_interp(p, [xs, z]), run_llvm(p, [xs, z]), run_c(p, [xs, z])):
        np.testing.assert_array_equal(got[0], want)
    k = p.kernels[0]
    bad = Kernel("k", k.outputs, k.inputs, [Loop(Var("i"), 0, 4, [Decl(Var("b", I32), Call(
        "ldm", (k.inputs[0][(Var("i"),)], Const(2, I32)), I32))])])
    with pytest.raises(VerifyError, match="register bank 0 or 1"):
        verify(Program("p", [bad], k.inputs, k.outputs, arena_size=0))


def test_ldm_runs_only_of_consecutive_unmasked_int32_words():
    x = Buffer("x", I32, (4, 8), space="input", index=0)
    f = Buffer("f", F32, (8,), space="input", index=0)
    i = Var("i")
    run = [Decl(Var(f"a{t}", I32), ldm(x, i, affine(t))) for t in range(6)]
    assert _ldm_run(run) == (4, (("i", 8),), 0)         # at most 4 words a group
    assert _ldm_run(run, 5) == (5, (("i", 8),), 0)      # or 5 (bank 0's registers)
    assert _ldm_run(run[1:3]) == (2, (("i", 8),), 1)
    gap = [run[0], run[2]]
    assert _ldm_run(gap) is None                         # not consecutive
    plain = [Decl(Var("p0", I32), x[(i, Const(0))]), run[1]]
    assert _ldm_run(plain) is None                       # not ldm hints
    assert _ldm_run(run[:1]) is None                     # one word: a plain load
    bad = Kernel("k", [], [f], [Loop(i, 0, 4, [Decl(Var("b", I32),
                                                     Call("ldm", (f[(i,)],), I32))])])
    with pytest.raises(VerifyError, match="ldm takes one unmasked int32 load"):
        verify(Program("p", [bad], [f], [], arena_size=0))
    masked = Load(x, (i, Const(0)), Const(1) > i, Const(0, I32))
    bad = Kernel("k", [], [x], [Loop(i, 0, 4, [Decl(Var("b", I32),
                                                     Call("ldm", (masked,), I32))])])
    with pytest.raises(VerifyError, match="ldm takes one unmasked int32 load"):
        verify(Program("p", [bad], [x], [], arena_size=0))


def test_stpair_stores_two_adjacent_words_at_once():
    """Two Stores of ``stpair`` hints into consecutive int32 elements render as one
    ``onnxcc_stpair`` (STRD on Thumb-2); a lone hint, or a pair that is not adjacent, as plain
    stores. Bit-exact on the interpreter, LLVM and the host C build."""
    x = Buffer("x", I32, (6,), space="input", index=0)
    y = Buffer("y", I32, (6, 3), space="output", index=0)
    j = Var("j")
    sp = lambda v: Call("stpair", (v,), I32)   # noqa: E731
    body = [Store(y, (j, Const(0)), sp(x[(j,)] * Const(3, I32))),
            Store(y, (j, Const(1)), sp(x[(j,)] + Const(1, I32))),
            Store(y, (j, Const(2)), sp(x[(j,)]))]                 # alone: a plain store
    k = Kernel("k", [y], [x], [Loop(j, 0, 6, body)])
    p = Program("stpair", [k], [x], [y], arena_size=0)
    verify(p)
    src = render_program(p)
    assert src.count("onnxcc_stpair(&") == 1 and '"strd %1, %2, %0"' in src
    xs = np.arange(-3, 3, dtype=np.int32) * 1000
    want = np.stack([xs * 3, xs + 1, xs], axis=1)
    for got in (run_interp(p, [xs]), run_llvm(p, [xs]), run_c(p, [xs])):
        np.testing.assert_array_equal(got[0].reshape(6, 3), want)
    bad = Kernel("k", [y], [x], [Loop(j, 0, 6, [Store(y, (j, Const(0)), Call(
        "stpair", (x[(j,)], x[(j,)]), I32))])])
    with pytest.raises(VerifyError, match="stpair takes and returns int32"):
        verify(Program("p", [bad], [x], [y], arena_size=0))
