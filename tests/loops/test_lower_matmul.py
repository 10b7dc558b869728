"""Gemm, FusedGemm and MatMul lowered to the loop IR: verified, run in the numpy interpreter and
as C (gcc; clang for a few), compared with onnxruntime."""

import numpy as np
import pytest
from onnx import TensorProto

from builders import make_model, ort_run
from loopir import program_of, run_c, run_interp
from onnxcc.codegen.loops import program_text


def _check(m, feeds, rtol=1e-5, atol=1e-5, cc="gcc"):
    p = program_of(m)
    want = ort_run(m, feeds)
    name = m.graph.output[0].name
    for got in (run_interp(p, list(feeds.values())), run_c(p, list(feeds.values()), cc)):
        assert got[0].shape == want[name].shape
        np.testing.assert_allclose(got[0], want[name], rtol=rtol, atol=atol)
    return p


GEMM_CASES = [   # transA, transB, alpha, beta, C shape (None: no C)
    (0, 0, 1.0, 1.0, None),
    (0, 0, 1.0, 1.0, (5,)),
    (1, 0, 0.5, 1.0, (3, 5)),
    (0, 1, 1.0, 2.0, (1, 5)),
    (1, 1, -1.5, 0.25, (3, 1)),
    (0, 1, 2.0, 0.0, (3, 5)),
    (0, 0, 1.0, -1.0, ()),
]


@pytest.mark.parametrize("ta,tb,alpha,beta,cs", GEMM_CASES,
                         ids=[f"gemm{k}" for k in range(len(GEMM_CASES))])
@pytest.mark.parametrize("b_const", [True, False])
def test_gemm_matches_onnxruntime(rng, ta, tb, alpha, beta, cs, b_const):
    M, K, N = 3, 4, 5
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    ins = ["a", "b"] + (["c"] if cs is not None else [])
    inits = {"c": rng.standard_normal(cs, dtype=np.float32)} if cs is not None else {}
    feeds = {"a": a}
    if b_const:
        inits["b"] = b
    else:
        feeds["b"] = b
    m = make_model([("Gemm", ins, ["y"], dict(transA=ta, transB=tb, alpha=alpha, beta=beta))],
                   inputs={k: v.shape for k, v in feeds.items()}, outputs={"y": (M, N)},
                   inits=inits)
    p = _check(m, feeds)
    text = program_text(p)
    # the loop order follows B's strides: ikj when B' walks j contiguously, else a dot product
    assert ("a0:f32 = a[" in text) == (not tb)


ACTIVATIONS = [
    ("Relu", [], {}, {}),
    ("LeakyRelu", [], dict(alpha=0.1), {}),
    ("Sigmoid", [], {}, {}),
    ("HardSwish", [], {}, {}),
    ("Clip", ["lo", "hi"], {}, {"lo": np.float32(0.0), "hi": np.float32(0.5)}),
    ("Tanh", [], {}, {}),
]


@pytest.mark.parametrize("act,extra,attrs,inits", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
@pytest.mark.parametrize("tb", [0, 1])
def test_fused_gemm_activation(rng, act, extra, attrs, inits, tb):
    w = rng.standard_normal((6, 4) if tb else (4, 6), dtype=np.float32)
    c = rng.standard_normal(6, dtype=np.float32)
    m = make_model([("Gemm", ["x", "w", "c"], ["t"], dict(transB=tb, alpha=0.75)),
                    (act, ["t", *extra], ["y"], attrs)],
                   inputs={"x": (2, 4)}, outputs={"y": (2, 6)}, inits={"w": w, "c": c, **inits})
    p = _check(m, {"x": rng.standard_normal((2, 4), dtype=np.float32)})
    assert [k.op for k in p.kernels] == ["onnxcc.FusedGemm"]
    assert f"then {act}" in program_text(p)


def test_matmul_add_relu_becomes_fused_gemm(rng):
    w, b = rng.standard_normal((8, 5), dtype=np.float32), rng.standard_normal(5, dtype=np.float32)
    m = make_model([("MatMul", ["x", "w"], ["t"]), ("Add", ["t", "b"], ["u"]),
                    ("Relu", ["u"], ["y"])],
                   inputs={"x": (3, 8)}, outputs={"y": (3, 5)}, inits={"w": w, "b": b})
    p = _check(m, {"x": rng.standard_normal((3, 8), dtype=np.float32)}, cc="clang")
    assert [k.op for k in p.kernels] == ["onnxcc.FusedGemm"]


MATMUL_CASES = [   # a shape, b shape
    ((3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 3, 4), (4, 5)),             # batch broadcast of B
    ((3, 4), (2, 4, 5)),             # batch broadcast of A
    ((2, 1, 3, 4), (1, 3, 4, 2)),    # both broadcast
    ((4,), (4, 5)),                  # 1-D A
    ((2, 3, 4), (4,)),               # 1-D B
    ((4,), (4,)),                    # dot product
    ((1, 4), (4, 1)),
    ((3, 0), (0, 2)),                # K = 0: zeros
]


@pytest.mark.parametrize("ash,bsh", MATMUL_CASES, ids=[f"mm{k}" for k in range(len(MATMUL_CASES))])
def test_matmul_matches_onnxruntime(rng, ash, bsh):
    a, b = rng.standard_normal(ash, dtype=np.float32), rng.standard_normal(bsh, dtype=np.float32)
    m = make_model([("MatMul", ["a", "b"], ["y"])], inputs={"a": ash, "b": bsh},
                   outputs={"y": None})
    p = _check(m, {"a": a, "b": b})
    assert [k.op for k in p.kernels] == ["MatMul"]


def test_matmul_float64_clang(rng):
    a, b = rng.standard_normal((2, 3, 6)), rng.standard_normal((6, 4))
    m = make_model([("MatMul", ["a", "b"], ["y"])], inputs={"a": a.shape, "b": b.shape},
                   outputs={"y": None}, dtype=TensorProto.DOUBLE)
    _check(m, {"a": a, "b": b}, rtol=1e-12, atol=1e-12, cc="clang")


def test_matmul_by_splat_weight_sums_rows(rng):
    """B a ConstantOfShape-style fill: y[i, j] = b * rowsum(a[i, :]), never O(MKN)."""
    m = make_model([("MatMul", ["a", "b"], ["y"])], inputs={"a": (3, 7)}, outputs={"y": None},
                   inits={"b": np.full((7, 5), 0.5, np.float32)})
    p = _check(m, {"a": rng.standard_normal((3, 7), dtype=np.float32)})
    text = program_text(p)
    assert "b:f32[7,5]{0,0} @weight" in text and "acc = (acc + a[i, k])" in text
    assert "muladd" not in text


def test_ikj_text_form(rng):
    """The ikj nest: Y's row zeroed, then per block of 4 values of k one pass over contiguous j
    adding the 4 products in order of k (multiply-adds), no epilogue (plain MatMul); a K that is
    not a multiple of 4 ends with single rows."""
    m = make_model([("MatMul", ["a", "b"], ["y"])], inputs={"a": (3, 6), "b": (6, 5)},
                   outputs={"y": None})
    text = program_text(program_of(m))
    assert """  for i in 0..3:
    for j in 0..5:
      y[i, j] = 0.0:f32
    for kb in 0..1:
      a0:f32 = a[i, (kb * 4)]
      a1:f32 = a[i, ((kb * 4) + 1)]
      a2:f32 = a[i, ((kb * 4) + 2)]
      a3:f32 = a[i, ((kb * 4) + 3)]
      for j in 0..5 unrolled(4):
        y[i, j] = muladd(a3, b[((kb * 4) + 3), j], muladd(a2, b[((kb * 4) + 2), j], muladd(a1, b[((kb * 4) + 1), j], muladd(a0, b[(kb * 4), j], y[i, j]))))
    for k in 4..6:
      a0:f32 = a[i, k]
      for j in 0..5 unrolled(4):
        y[i, j] = muladd(a0, b[k, j], y[i, j])
""" in text


def test_transposed_b_dot_product_runs_in_partial_sums(rng):
    """Gemm transB=1 with K >= 32: the dot product of contiguous rows in DOT_LANES partials."""
    w = rng.standard_normal((3, 37), dtype=np.float32)
    m = make_model([("Gemm", ["x", "w"], ["y"], dict(transB=1))], inputs={"x": (2, 37)},
                   outputs={"y": (2, 3)}, inits={"w": w})
    p = _check(m, {"x": rng.standard_normal((2, 37), dtype=np.float32)}, cc="clang")
    text = program_text(p)
    assert "for kb in 0..2:" in text and "for k in 32..37:" in text and "s15:f32 = 0.0:f32" in text
