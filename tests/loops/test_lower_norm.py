"""Normalizations and the softmax family lowered to the loop IR (codegen/lower/norm.py), through
the loop interpreter and C, against onnxruntime."""

import numpy as np
import pytest

from builders import make_model, ort_run
from loopir import program_of, run_c, run_interp
from onnxcc.codegen.loops import program_text


def _check(model, feeds, cc="gcc", rtol=1e-5, atol=1e-6):
    p = program_of(model)
    want = ort_run(model, feeds)
    xs = [feeds[b.value] for b in p.inputs]
    for got in (run_interp(p, xs), run_c(p, xs, cc)):
        for b, g in zip(p.outputs, got):
            np.testing.assert_allclose(g, want[b.value], rtol=rtol, atol=atol, err_msg=b.value)
    return p


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3), (1, 4, 6)])
def test_batchnorm_of_graph_inputs(rng, shape):
    # parameters fed as graph inputs: with constant ones canonicalize folds BN into Mul/Add
    c = shape[1]
    feeds = {"x": rng.standard_normal(shape).astype(np.float32),
             "s": rng.standard_normal(c).astype(np.float32),
             "b": rng.standard_normal(c).astype(np.float32),
             "m": rng.standard_normal(c).astype(np.float32),
             "v": rng.random(c).astype(np.float32) + 0.5}
    m = make_model([("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], {"epsilon": 1e-3})],
                   {k: v.shape for k, v in feeds.items()}, {"y": shape})
    p = _check(m, feeds)
    assert [k.op for k in p.kernels] == ["BatchNormalization"]


def test_batchnorm_with_splat_parameters(rng):
    # splat constants stay one element read at stride 0 (lowered directly: the frontend would
    # fold a constant BN into Mul/Add)
    from onnxcc.codegen.interpret import run_kernel
    from onnxcc.codegen.lower import LowerCtx, registry
    from onnxcc.codegen.verify import verify_kernel
    from onnxcc.ir import Node, TensorType, Value

    x = rng.standard_normal((1, 3, 2, 2)).astype(np.float32)
    t = TensorType(x.shape, np.dtype(np.float32))
    ps = [Value(k, TensorType((3,), np.dtype(np.float32)), const=np.full(3, v, np.float32))
          for k, v in (("s", 2.0), ("b", 0.5), ("m", 0.1), ("v", 4.0))]
    node = Node("BatchNormalization", [Value("x", t)] + ps, [Value("y", t)],
                {"epsilon": 1e-5}, "bn", 15)
    k = registry()["BatchNormalization"](node, LowerCtx(node))
    verify_kernel(k)
    assert all(b.strides == (0,) for b in k.inputs[1:])
    y = np.zeros(x.size, np.float32)
    run_kernel(k, {"x0": x.reshape(-1).copy(), "y0": y})
    np.testing.assert_allclose(y.reshape(x.shape), (x - 0.1) * (2 / np.sqrt(4 + 1e-5)) + 0.5,
                               rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 300)])
def test_instancenorm(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
    c = shape[1]
    m = make_model([("InstanceNormalization", ["x", "s", "b"], ["y"], {"epsilon": 1e-4})],
                   {"x": shape}, {"y": shape},
                   {"s": rng.standard_normal(c).astype(np.float32),
                    "b": rng.standard_normal(c).astype(np.float32)})
    p = _check(m, {"x": x}, rtol=1e-4, atol=1e-5)
    if shape[-1] > 256:
        assert "rb" in program_text(p)      # the blocked sums


@pytest.mark.parametrize("axis,pshape,bias", [(-1, (5,), True), (1, (4, 5), True),
                                              (1, (1, 5), False), (0, (3, 4, 5), True)])
def test_layernorm(rng, axis, pshape, bias):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    inits = {"s": rng.standard_normal(pshape).astype(np.float32)}
    if bias:
        inits["b"] = rng.standard_normal(pshape).astype(np.float32)
    stat = tuple(x.shape[:axis % 3]) + (1,) * (3 - axis % 3)
    m = make_model([("LayerNormalization", ["x", "s"] + (["b"] if bias else []),
                     ["y", "mean", "inv"], {"axis": axis, "epsilon": 1e-5})],
                   {"x": x.shape}, {"y": x.shape, "mean": stat, "inv": stat}, inits)
    _check(m, {"x": x}, cc="clang" if not bias else "gcc", rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [1, 3, 5])   # onnxruntime takes odd sizes only
def test_lrn(rng, size):
    x = rng.standard_normal((2, 6, 3, 2)).astype(np.float32)
    m = make_model([("LRN", ["x"], ["y"], {"size": size, "alpha": 2e-3, "beta": 0.6,
                                          "bias": 1.5})], {"x": x.shape}, {"y": x.shape})
    _check(m, {"x": x})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis,opset", [(-1, 13), (1, 13), (0, 13), (1, 11), (2, 11), (0, 11),
                                        (None, 11), (None, 13)])
def test_softmax(rng, op, axis, opset):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32) * 4
    attrs = {} if axis is None else {"axis": axis}
    m = make_model([(op, ["x"], ["y"], attrs)], {"x": x.shape}, {"y": x.shape}, opset=opset)
    _check(m, {"x": x}, cc="clang" if axis == 0 else "gcc")


def test_softmax_long_axis_is_blocked_and_handles_infinities(rng):
    x = rng.standard_normal((2, 600)).astype(np.float32)
    x[1, 3] = np.inf
    m = make_model([("Softmax", ["x"], ["y"])], {"x": x.shape}, {"y": x.shape}, opset=13)
    p = program_of(m)
    assert "rb" in program_text(p)
    want = ort_run(m, {"x": x})["y"]
    # as the reference: an infinite max shifts by 0, so the row is inf/inf = NaN at the inf and
    # 0 elsewhere (onnxruntime gives NaN everywhere in that row)
    inf_row = np.where(np.arange(600) == 3, np.nan, 0).astype(np.float32)
    for got in (run_interp(p, [x])[0], run_c(p, [x])[0]):
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(got[1], inf_row)


@pytest.mark.parametrize("axis,opset", [(-1, 13), (1, 13), (1, 11), (0, 11)])
def test_hardmax(rng, axis, opset):
    x = rng.integers(0, 3, (2, 3, 4)).astype(np.float32)      # ties: the first maximum wins
    m = make_model([("Hardmax", ["x"], ["y"], {"axis": axis})], {"x": x.shape}, {"y": x.shape},
                   opset=opset)
    _check(m, {"x": x}, rtol=0, atol=0)


def test_softmax_and_layernorm_reduce_in_partials_on_vector_targets(rng):
    """On a target with vector registers (x86-64-v3: 8 lanes) the max and the sum of a Softmax
    row of 64 and LayerNorm's two sums over 128 run in 16 partial accumulators (loops of 64/16
    and 128/16 steps, combined pairwise); a C target keeps one accumulator. Both match
    onnxruntime."""
    import re

    import onnxcc
    from loopir import run_llvm
    from onnxcc.codegen.lower import lower_for_target
    from onnxcc.targets import get_target

    x = rng.standard_normal((3, 64), dtype=np.float32) * 4
    sm = make_model([("Softmax", ["x"], ["y"], {"axis": -1})], {"x": (3, 64)}, {"y": (3, 64)})
    ln = make_model([("LayerNormalization", ["z", "s", "b"], ["y"], {"axis": -1})],
                    {"z": (2, 128)}, {"y": (2, 128)},
                    inits={"s": rng.standard_normal(128, dtype=np.float32),
                           "b": rng.standard_normal(128, dtype=np.float32)})
    z = rng.standard_normal((2, 128), dtype=np.float32) + 3
    for m, feeds, trips in ((sm, {"x": x}, ["0..4", "0..4"]), (ln, {"z": z}, ["0..8", "0..8"])):
        p = lower_for_target(onnxcc.compile(m, target="host").graph, get_target("x86-64-v3"))
        text = program_text(p)
        assert re.findall(r"for kb\d+ in (0\.\.\d+):", text) == trips, text
        assert len(re.findall(r"^ +\w+\d+:f32 = (?:0\.0|-inf):f32$", text, re.M)) == 32
        want = ort_run(m, feeds)["y"]
        for got in (run_llvm(p, list(feeds.values()))[0], run_interp(p, list(feeds.values()))[0]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert "for kb" not in program_text(program_of(m))      # C (host): one accumulator
