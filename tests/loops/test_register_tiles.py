"""Conv and the matrix products (MatMul, Gemm, FusedGemm) lowered as output-stationary register
tiles for targets with a vector register file (``Target.register_tile``): verified, run by the
numpy interpreter, LLVM's JIT and C, compared with onnxruntime, for the tiles of three targets
(AVX-512VL: 6x32, AVX2: 6x16, NEON: 6x16 of 4 lanes); the structure they promise (packed
weights, a local tile that LLVM keeps in registers)."""

import re

import numpy as np
import pytest

import onnxcc
from builders import make_model, ort_run
from loopir import run_c, run_interp, run_llvm
from onnxcc.codegen.llvm.jit import JITProgram
from onnxcc.codegen.loops import program_text
from onnxcc.codegen.lower import lower_for_target
from onnxcc.targets import get_target

TARGETS = ["x86-64-v4", "x86-64-v3", "aarch64"]

CASES = [   # x shape, w shape, attrs
    ((1, 3, 7, 6), (8, 3, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((2, 2, 8, 7), (12, 2, 3, 2), dict(pads=[1, 0, 2, 1], strides=[2, 3])),
    ((1, 2, 9, 9), (16, 2, 3, 3), dict(dilations=[2, 3], pads=[2, 1, 0, 3])),
    ((1, 3, 7, 6), (40, 3, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2])),  # a partial tile
    ((1, 3, 7, 6), (8, 3, 2, 2), dict(auto_pad="SAME_LOWER")),
    ((1, 5, 5, 5), (64, 5, 1, 1), {}),                                            # pointwise
    ((1, 4, 7, 7), (33, 4, 1, 1), dict(strides=[2, 2])),                          # strided 1x1
    ((1, 2, 3, 3), (8, 2, 5, 5), dict(pads=[2, 2, 2, 2])),     # every tile at the border
    ((1, 1, 3, 1), (8, 1, 1, 1), dict(pads=[1, 0, 1, 0], strides=[2, 3])),
    ((2, 3, 11), (9, 3, 3), dict(pads=[1, 2], strides=[2])),                       # 1-D
    ((1, 2, 4, 5, 4), (8, 2, 3, 2, 3), dict(pads=[1, 0, 1, 1, 1, 0])),             # 3-D
    ((1, 8, 7, 6), (24, 4, 3, 3), dict(group=2, pads=[1, 1, 1, 1])),               # groups
    ((1, 24, 9, 9), (48, 6, 1, 1), dict(group=4)),                        # ShuffleNet's 1x1
    ((1, 6, 5, 5), (20, 3, 3, 3), dict(group=2, strides=[2, 1], pads=[0, 1, 1, 0])),  # partial
]


def _program(model, target):
    cm = onnxcc.compile(model, target="host")
    return lower_for_target(cm.graph, get_target(target))


def _check(model, feeds, target, rtol=1e-5, atol=1e-5, ways=("interp", "llvm", "c")):
    p = _program(model, target)
    want = ort_run(model, feeds)
    xs = list(feeds.values())
    runs = {"interp": run_interp, "llvm": run_llvm, "c": run_c}
    for way in ways:
        got = runs[way](p, xs)
        for o, g in zip(model.graph.output, got):
            np.testing.assert_allclose(g, want[o.name], rtol=rtol, atol=atol,
                                       err_msg=f"{o.name} by {way}")
    return p


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("xs,ws,attrs", CASES, ids=[f"conv{k}" for k in range(len(CASES))])
def test_register_tiled_conv_matches_onnxruntime(rng, target, xs, ws, attrs):
    w = rng.standard_normal(ws, dtype=np.float32)
    b = rng.standard_normal(ws[0], dtype=np.float32)
    m = make_model([("Conv", ["x", "w", "b"], ["y"], attrs)], inputs={"x": xs},
                   outputs={"y": None}, inits={"w": w, "b": b})
    ways = ("interp", "llvm", "c") if target == "x86-64-v3" else ("llvm",)
    p = _check(m, {"x": rng.standard_normal(xs, dtype=np.float32)}, target, ways=ways)
    assert re.search(r"register tiles of [1-6] positions", program_text(p))


POINTWISE_CASES = [   # x shape, w shape, bias, fused Relu, lowered as w @ x
    ((2, 8, 9, 10), (12, 8, 1, 1), True, True, True),      # batch 2, 90 positions: partial tiles
    ((1, 100, 20, 16), (24, 100, 1, 1), False, False, True),   # 320 >= 3 * 100 positions
    ((1, 100, 12, 12), (24, 100, 1, 1), True, False, False),   # 144 < 3 * 100: positions tile
    ((1, 16, 6, 6), (32, 16, 1, 1), True, True, False),        # 36 positions: positions tile
]


@pytest.mark.parametrize("xs,ws,bias,relu,gemm", POINTWISE_CASES,
                         ids=[f"pw{k}" for k in range(len(POINTWISE_CASES))])
def test_pointwise_conv_over_many_positions_is_a_matrix_product(rng, xs, ws, bias, relu, gemm):
    """A 1x1 Conv (stride 1, no padding) over at least 64 positions with few input channels is
    y[n] (M, P) = w (M, C) @ x[n] (C, P) in the product's register tiles (vectors along the
    positions, bias and activation in the epilogue); others keep the positions x channels tile.
    Both match onnxruntime (interpreter, LLVM, C)."""
    inits = {"w": rng.standard_normal(ws, dtype=np.float32)}
    if bias:
        inits["b"] = rng.standard_normal(ws[0], dtype=np.float32)
    nodes = [("Conv", ["x", "w"] + (["b"] if bias else []), ["t" if relu else "y"])]
    nodes += [("Relu", ["t"], ["y"])] if relu else []
    m = make_model(nodes, inputs={"x": xs}, outputs={"y": None}, inits=inits)
    cm = onnxcc.compile(m, target="host")
    p = lower_for_target(cm.graph, get_target("x86-64-v3"))
    want = ort_run(m, feeds := {"x": rng.standard_normal(xs, dtype=np.float32)})["y"]
    for run in (run_interp, run_llvm, run_c):
        np.testing.assert_allclose(run(p, [feeds["x"]])[0], want, rtol=1e-5, atol=1e-5)
    text = program_text(p)
    P = xs[2] * xs[3]
    assert (f"1x1: y[n] ({ws[0]},{P}) = w ({ws[0]},{xs[1]}) @ x[n] ({xs[1]},{P})" in text) == gemm
    assert ("register tiles of 4 rows x 16 columns" in text) == gemm
    assert ("register tiles of" in text and "positions x" in text) == (not gemm)


def test_tile_shape_follows_the_register_file():
    """6 positions by 4 vectors with 32 registers, 5 by 2 with 16 (4 over a short reduction
    and in matrix products);
    fewer output channels take fewer vectors; fewer than one vector (or the C back end) keeps
    the tap-stationary nest. The 25 positions of a 5x5 plane go in tiles of 5 (25, not
    6 x 5 = 30), one row in one; 49 positions in tiles of 5 (not 6 x 9), of 4 with a tile of
    4 (not 25 tiles of 2)."""
    assert get_target("x86-64-v4").register_tile == (6, 32)
    assert get_target("x86-64-v3").register_tile == (5, 16)
    assert get_target("x86-64-v2").register_tile == (5, 8)
    assert get_target("x86-64-v3").short_reduction_rows == 4
    assert get_target("x86-64-v4").short_reduction_rows == 6
    assert get_target("x86-64-v3").tile_rows(4, 49) == 4
    assert get_target("x86-64-v3").tile_rows(6, 49) == 5
    assert get_target("aarch64").register_tile == (6, 16)
    assert get_target("host").register_tile is None
    assert get_target("cortex-m4").register_tile is None
    rng = np.random.default_rng(0)
    for m_out, want in [(64, "5 positions x 32"), (12, "5 positions x 16"),
                        (8, "5 positions x 8"), (5, None)]:
        model = make_model([("Conv", ["x", "w"], ["y"], dict(pads=[1, 1, 1, 1]))],
                           inputs={"x": (1, 2, 5, 5)}, outputs={"y": None},
                           inits={"w": rng.standard_normal((m_out, 2, 3, 3), dtype=np.float32)})
        text = program_text(_program(model, "x86-64-v4"))
        if want:
            assert f"register tiles of {want} output channels" in text
        else:
            assert "register tiles" not in text and "kh" in text


def test_weights_are_packed_and_the_tile_stays_in_registers(rng):
    """w (M,C,kh,kw) is packed as (M/TM, kh, kw, C, TM). A padded conv with enough work per
    input element copies x once into a zero-padded local and every tile reads it unguarded;
    with little work (8 output channels here) the interior tiles read x unguarded and the
    border tiles through a select (no masked load: no branch in the channel loop). After O3
    the tile stays in vector registers (5 positions, as 196 = 39 x 5 + 1)."""
    w = rng.standard_normal((32, 16, 3, 3), dtype=np.float32)
    m = make_model([("Conv", ["x", "w"], ["t"], dict(pads=[1, 1, 1, 1])), ("Relu", ["t"], ["y"])],
                   inputs={"x": (1, 16, 14, 14)}, outputs={"y": None}, inits={"w": w})
    p = _check(m, {"x": rng.standard_normal((1, 16, 14, 14), dtype=np.float32)}, "x86-64-v3",
               ways=("llvm",))
    (k,) = p.kernels
    wp = next(b for b in k.inputs if b.space == "weight")
    assert wp.shape == (2, 3, 3, 16, 16)
    np.testing.assert_array_equal(wp.data.reshape(wp.shape)[1, 2, 0, 5], w[16:32, 5, 2, 0])
    assert [(b.name, b.shape) for b in k.locals] == [("acc", (5, 16)), ("xpad", (16, 16, 16))]
    text = program_text(p)
    assert text.count("xl:f32 = x[0, cc, min(max(") == 1        # the copy: clamped load ...
    assert "xpad[cc, rh, rw] = (xl if " in text                 # ... then a select
    assert "x0:f32 = xpad[c, " in text and "x[0, c, " not in text   # tiles: no guard
    _hot_blocks_keep_the_tile(p)

    w8 = rng.standard_normal((8, 16, 3, 3), dtype=np.float32)
    m = make_model([("Conv", ["x", "w"], ["t"], dict(pads=[1, 1, 1, 1])), ("Relu", ["t"], ["y"])],
                   inputs={"x": (1, 16, 14, 14)}, outputs={"y": None}, inits={"w": w8})
    p = _check(m, {"x": rng.standard_normal((1, 16, 14, 14), dtype=np.float32)}, "x86-64-v3",
               ways=("llvm",))
    (k,) = p.kernels
    assert [(b.name, b.shape) for b in k.locals] == [("acc", (5, 8))]
    text = program_text(p)
    assert text.count("xl0:f32 = x[0, c, min(max(") == 1          # border tiles: clamped load
    assert "x0:f32 = (xl0 if " in text and "else 0.0:f32)" in text  # ... then a select
    assert "x0:f32 = x[0, c, " in text                                # interior tiles
    _hot_blocks_keep_the_tile(p)


def _hot_blocks_keep_the_tile(p) -> None:
    """After O3 (for this machine: 8 or 16 lanes), each channel loop's block holds the whole
    tile as vector multiply-adds on registers: 5 x loads and the weight loads, no store (the
    tile is never spilled there)."""
    blocks = re.split(r"\n(?=[\w.]+:)", JITProgram(p).ir)
    hot = [b for b in blocks if len(re.findall(r"@llvm\.fmuladd\.v(?:8|16)f32\(", b)) >= 5]
    assert hot
    for b in hot:
        assert "store " not in b and b.count(" = load ") <= 7


def test_nonfinite_weights_meet_padding_as_the_reference(rng):
    """An infinite weight times zero padding gives NaN (IEEE: inf * 0), as onnx's reference
    and onnxcc's C back end give; NaN inputs propagate. (onnxruntime 1.31 gives NaN or not
    depending on which of its kernels runs the shape: not the oracle here.)"""
    from onnx.reference import ReferenceEvaluator

    w = rng.standard_normal((8, 2, 3, 3), dtype=np.float32)
    w[1, 0, 0, 0], w[3, 1, 2, 2] = np.inf, -np.inf
    m = make_model([("Conv", ["x", "w"], ["y"], dict(pads=[1, 1, 1, 1]))],
                   inputs={"x": (1, 2, 5, 5)}, outputs={"y": None}, inits={"w": w})
    x = rng.standard_normal((1, 2, 5, 5), dtype=np.float32)
    x[0, 1, 2, 2] = np.nan
    with np.errstate(invalid="ignore"):
        want = ReferenceEvaluator(m).run(None, {"x": x})[0]
    assert np.isnan(want).sum() > 1
    for way in (run_llvm, run_interp):
        got = way(_program(m, "x86-64-v3"), [x])[0]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        np.testing.assert_allclose(got[ok], want[ok], rtol=1e-5, atol=1e-5)


def test_runtime_bias_and_fused_activation_on_cpu(rng):
    """Through the public API on ``cpu``: a bias that is a graph input (a partial last tile
    reads it masked) and a fused Clip."""
    w = rng.standard_normal((20, 3, 3, 3), dtype=np.float32)
    m = make_model([("Conv", ["x", "w", "b"], ["t"], dict(pads=[1, 1, 1, 1], strides=[2, 2])),
                    ("Clip", ["t", "lo", "hi"], ["y"])],
                   inputs={"x": (1, 3, 9, 9), "b": (20,)}, outputs={"y": None},
                   inits={"w": w, "lo": np.float32(-1.0), "hi": np.float32(2.0)})
    feeds = {"x": rng.standard_normal((1, 3, 9, 9), dtype=np.float32),
             "b": rng.standard_normal(20, dtype=np.float32)}
    cm = onnxcc.compile(m, target="cpu")
    np.testing.assert_allclose(cm.run(feeds)["y"], ort_run(m, feeds)["y"], rtol=1e-5, atol=1e-5)
    if get_target("cpu").register_tile:
        assert "register tiles" in program_text(cm.program)


MATMUL_CASES = [   # nodes, runtime inputs, constant inputs (shapes)
    ([("MatMul", ["a", "b"], ["y"])], {"a": (64, 40)}, {"b": (40, 72)}),            # packed B
    ([("MatMul", ["a", "b"], ["y"])], {"a": (7, 13), "b": (13, 37)}, {}),       # partial tiles
    ([("MatMul", ["a", "b"], ["y"])], {"a": (2, 3, 7, 13), "b": (3, 13, 20)}, {}),  # batch
    ([("MatMul", ["a", "b"], ["y"])], {"a": (13,)}, {"b": (13, 24)}),                # 1-D a
    ([("Gemm", ["a", "b", "c"], ["y"], dict(alpha=0.5, beta=2.0))], {"a": (5, 9)},
     {"b": (9, 19), "c": (19,)}),
    ([("Gemm", ["a", "b", "c"], ["t"], dict(transA=1)), ("Relu", ["t"], ["y"])],
     {"a": (9, 5), "c": (5, 40)}, {"b": (9, 40)}),                                   # FusedGemm
    ([("Gemm", ["a", "b"], ["y"], dict(transB=1))], {"a": (6, 16)}, {"b": (24, 16)}),  # packed B^T
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("nodes,ins,consts", MATMUL_CASES,
                         ids=[f"mm{k}" for k in range(len(MATMUL_CASES))])
def test_register_tiled_matrix_product_matches_onnxruntime(rng, target, nodes, ins, consts):
    inits = {k: rng.standard_normal(s, dtype=np.float32) for k, s in consts.items()}
    m = make_model(nodes, inputs=ins, outputs={"y": None}, inits=inits)
    feeds = {k: rng.standard_normal(s, dtype=np.float32) for k, s in ins.items()}
    ways = ("interp", "llvm", "c") if target == "x86-64-v3" else ("llvm",)
    p = _check(m, feeds, target, ways=ways)
    assert re.search(r"register tiles of [1-6] rows", program_text(p))


def test_matrix_product_tile_packs_b_and_stays_in_registers(rng):
    """A constant B (K, N) is packed as (N/TN, K, TN); each y element sums its k in order (so
    the result equals a serial FMA loop's: onnxruntime's here, bit for bit); after O3 the hot
    block holds a vector multiply-add per row of the tile and no store."""
    b = rng.standard_normal((48, 40), dtype=np.float32)
    m = make_model([("MatMul", ["a", "b"], ["y"])], inputs={"a": (30, 48)}, outputs={"y": None},
                   inits={"b": b})
    a = rng.standard_normal((30, 48), dtype=np.float32)
    p = _program(m, "x86-64-v3")
    (k,) = p.kernels
    bp = next(x for x in k.inputs if x.space == "weight")
    assert bp.shape == (3, 48, 16)
    np.testing.assert_array_equal(bp.data.reshape(bp.shape)[2, 5, :8], b[5, 32:40])
    assert not bp.data.reshape(bp.shape)[2, :, 8:].any()          # columns past N are zeros
    assert "b packed as (3,48,16)" in program_text(p)
    blocks = re.split(r"\n(?=[\w.]+:)", JITProgram(p).ir)
    hot = [x for x in blocks if len(re.findall(r"@llvm\.fmuladd\.v(?:8|16)f32\(", x)) >= 6]
    assert hot and all("store " not in x for x in hot)
    np.testing.assert_allclose(run_llvm(p, [a])[0], a @ b, rtol=1e-5, atol=1e-5)


def test_constant_b_broadcast_over_batch_dims_is_packed(rng):
    """A weight B (K, N) under a batched A (1, M, K) (the transformer's projections) is packed
    once, as without the batch dim, and the product equals onnxruntime's."""
    b = rng.standard_normal((24, 40), dtype=np.float32)
    m = make_model([("MatMul", ["a", "b"], ["y"])], inputs={"a": (2, 9, 24)}, outputs={"y": None},
                   inits={"b": b})
    p = _check(m, {"a": rng.standard_normal((2, 9, 24), dtype=np.float32)}, "x86-64-v3")
    assert "b packed as (3,24,16)" in program_text(p)


def test_products_the_tile_does_not_take(rng):
    """float64, fewer columns than a vector, and a runtime B read along k (transB) keep the
    portable forms."""
    cases = [
        make_model([("MatMul", ["a", "b"], ["y"])], inputs={"a": (4, 8)}, outputs={"y": None},
                   inits={"b": rng.standard_normal((8, 5), dtype=np.float32)}),
        make_model([("Gemm", ["a", "b"], ["y"], dict(transB=1))], inputs={"a": (4, 8), "b": (16, 8)},
                   outputs={"y": None}),
    ]
    for m in cases:
        assert "register tiles" not in program_text(_program(m, "x86-64-v4"))


DEPTHWISE_CASES = [   # x shape, w shape, attrs
    ((1, 8, 9, 9), (8, 1, 3, 3), dict(pads=[1, 1, 1, 1])),
    ((2, 6, 10, 7), (6, 1, 3, 3), dict(pads=[1, 0, 2, 1], strides=[2, 2])),
    ((1, 4, 11, 11), (4, 1, 3, 3), dict(dilations=[2, 2], pads=[2, 2, 2, 2])),
    ((1, 4, 8, 8), (8, 1, 5, 5), dict(auto_pad="SAME_UPPER")),                 # multiplier 2
    ((1, 3, 6, 6), (3, 1, 3, 3), {}),                                          # no padding
    ((1, 5, 4, 4), (5, 1, 7, 7), dict(pads=[3, 3, 3, 3], strides=[1, 2])),     # kernel > x
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("xs,ws,attrs", DEPTHWISE_CASES,
                         ids=[f"dw{k}" for k in range(len(DEPTHWISE_CASES))])
def test_depthwise_conv_on_a_padded_plane_matches_onnxruntime(rng, target, xs, ws, attrs):
    w = rng.standard_normal(ws, dtype=np.float32)
    b = rng.standard_normal(ws[0], dtype=np.float32)
    m = make_model([("Conv", ["x", "w", "b"], ["t"], dict(attrs, group=xs[1])),
                    ("Clip", ["t", "lo", "hi"], ["y"])], inputs={"x": xs},
                   outputs={"y": None}, inits={"w": w, "b": b, "lo": np.float32(-1.0),
                                               "hi": np.float32(1.5)})
    ways = ("interp", "llvm", "c") if target == "x86-64-v3" else ("llvm",)
    p = _check(m, {"x": rng.standard_normal(xs, dtype=np.float32)}, target, ways=ways)
    (k,) = p.kernels
    # the padded plane, and with short rows (one loop over positions) the rows it computes
    short = "its positions one vectorized loop" in k.comment
    assert "depthwise" in k.comment and [b.name for b in k.locals] == ["plane"] + ["rows"] * short


def test_depthwise_plane_too_big_for_the_stack_keeps_the_tap_nest(rng):
    """A padded plane over PLANE_BYTES (302 x 302 floats) is not copied to the stack."""
    m = make_model([("Conv", ["x", "w"], ["y"], dict(group=2, pads=[1, 1, 1, 1]))],
                   inputs={"x": (1, 2, 300, 300)}, outputs={"y": None},
                   inits={"w": rng.standard_normal((2, 1, 3, 3), dtype=np.float32)})
    (k,) = _program(m, "x86-64-v3").kernels
    assert "depthwise" not in k.comment and not k.locals


def test_grouped_conv_with_a_partial_tile_per_group_and_a_runtime_bias(rng):
    """34 output channels per group (a tile of 32 and a partial one), bias a graph input."""
    w = rng.standard_normal((136, 34, 1, 1), dtype=np.float32)
    m = make_model([("Conv", ["x", "w", "b"], ["y"], dict(group=4))],
                   inputs={"x": (1, 136, 5, 5), "b": (136,)}, outputs={"y": None},
                   inits={"w": w})
    feeds = {"x": rng.standard_normal((1, 136, 5, 5), dtype=np.float32),
             "b": rng.standard_normal(136, dtype=np.float32)}
    p = _check(m, feeds, "x86-64-v4", ways=("interp", "llvm"))
    assert "group 4" in program_text(p) and "register tiles of 5 positions x 32" in program_text(p)



def test_depthwise_rows_shorter_than_a_vector_are_one_loop(rng):
    """On a 5x5 plane (rows shorter than two vectors) the positions q = oh*Wp + ow of the padded
    plane are one vectorized loop of whole vectors into a local, whose rows are then copied into
    y; the planes of all 16 channels (small) are zeroed once per kernel and get x's rows in
    their interiors before any is read. Results as onnxruntime's, and the padded plane's
    margins never leak into y."""
    w = rng.standard_normal((16, 1, 3, 3), dtype=np.float32)
    m = make_model([("Conv", ["x", "w"], ["y"], dict(group=16, pads=[1, 1, 1, 1]))],
                   inputs={"x": (1, 16, 5, 5)}, outputs={"y": None}, inits={"w": w})
    p = _check(m, {"x": rng.standard_normal((1, 16, 5, 5), dtype=np.float32)}, "x86-64-v3",
               ways=("interp", "llvm", "c"))
    assert "its positions one vectorized loop" in p.kernels[0].comment
    text = program_text(p)
    # 4 rows of 7 then 5 (33 positions) as 5 vectors; taps reach 16 past the last: 56 a plane
    assert "\n  for zq in 0..896 vectorized(8):\n    plane[zq] = 0.0:f32\n  for g in 0..16:" in text
    assert ("for q in 1..6:\n        plane[((((r * 7) + (g * 56)) + q) + 7)] = x[0, g, r, (q - 1)]"
            "\n  for g in 0..16:") in text
    assert "for fq in 0..40 vectorized(8):" in text
    assert "y[0, g, oh, ow] = rows[((oh * 7) + ow)]" in text


def test_depthwise_stride_2_copies_x_into_the_phases_of_a_zeroed_plane(rng):
    """With a column stride of 2 the plane (zeroed once) gets each x row as its two column
    phases, contiguous stores of x's odd and even columns; results as onnxruntime's."""
    w = rng.standard_normal((4, 1, 3, 3), dtype=np.float32)
    m = make_model([("Conv", ["x", "w"], ["y"], dict(group=4, pads=[1, 1, 1, 1], strides=[2, 2]))],
                   inputs={"x": (1, 4, 20, 20)}, outputs={"y": None}, inits={"w": w})
    p = _check(m, {"x": rng.standard_normal((1, 4, 20, 20), dtype=np.float32)}, "x86-64-v3",
               ways=("interp", "llvm", "c"))
    text = program_text(p)
    assert "for q in 1..11:\n        plane[((((r * 22) + (g * 484)) + q) + 22)] = x[0, g, r, ((q * 2) - 1)]" in text
    assert "for q in 0..10:\n        plane[((((r * 22) + (g * 484)) + q) + 33)] = x[0, g, r, (q * 2)]" in text


def test_depthwise_planes_over_the_all_channels_bound_are_copied_per_channel(rng):
    """Planes of all channels over ALL_PLANES_BYTES (8 x 72 x 72 floats) are one plane, zeroed
    once, that each channel fills and reads in turn; results as onnxruntime's."""
    w = rng.standard_normal((8, 1, 3, 3), dtype=np.float32)
    m = make_model([("Conv", ["x", "w"], ["y"], dict(group=8, pads=[1, 1, 1, 1]))],
                   inputs={"x": (1, 8, 70, 70)}, outputs={"y": None}, inits={"w": w})
    p = _check(m, {"x": rng.standard_normal((1, 8, 70, 70), dtype=np.float32)}, "x86-64-v3",
               ways=("interp", "llvm"))
    text = program_text(p)
    assert "for zq in 0..5184 vectorized(8):" in text and text.count("for g in 0..8:") == 1
    assert "plane[(((r * 72) + q) + 72)] = x[0, g, r, (q - 1)]" in text


def test_pointwise_matrix_product_reads_splat_weights_at_stride_0(rng):
    """Uniform constant weights and bias are one element each (stride 0): the 1x1 product reads
    them through those strides (verify refused a (12, 8) view of one element)."""
    m = make_model([("Conv", ["x", "w", "b"], ["y"])], inputs={"x": (1, 8, 9, 10)},
                   outputs={"y": None}, inits={"w": np.full((12, 8, 1, 1), 0.25, np.float32),
                                               "b": np.full(12, 0.5, np.float32)})
    p = _check(m, {"x": rng.standard_normal((1, 8, 9, 10), dtype=np.float32)}, "x86-64-v3")
    text = program_text(p)
    assert "in w:f32[12,8]{0,0} @weight" in text and "1x1: y[n] (12,90)" in text
