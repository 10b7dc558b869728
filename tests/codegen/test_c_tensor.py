"""C kernels of lower/{matmul,tensor,reduce}.py: Gemm/FusedGemm/MatMul, data movement, reductions.

Each case compiles a small ONNX graph for the host, runs the generated C and compares it with
onnxruntime; structural checks look at the pipeline's ops or at the generated C.
"""

import shutil
import subprocess

import numpy as np
import onnxcc.driver
import pytest
from builders import make_model, ort_run
from onnx import TensorProto, helper
from onnxcc.errors import UnsupportedOpError
from onnxcc.runtime.build import CORTEX_M4_FLAGS, WARN_FLAGS

I64 = TensorProto.INT64


def _compile(model):
    return onnxcc.driver.compile(model, "host", verify=True)


def _check(model, feeds, rtol, atol, sanitize=False):
    """Compile, run the C code and compare every output with onnxruntime; returns the model."""
    cm = _compile(model)
    got = cm.run(feeds, sanitize=sanitize)
    want = ort_run(model, feeds)
    for k, w in want.items():
        assert got[k].dtype == w.dtype, k
        np.testing.assert_allclose(got[k], w, rtol=rtol, atol=atol, err_msg=k)
    return cm


def _c_text(cm):
    return (cm.lib_dir / f"{cm.mmap['c_prefix']}.c").read_text()


def _ints(*v):
    return np.array(v, np.int64)


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _set_dtype(model, name, elem_type):
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.name == name:
            vi.type.tensor_type.elem_type = elem_type
    return model


# ---- Gemm, FusedGemm, MatMul -------------------------------------------------------------------
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("alpha,beta,c_shape", [(1.0, 1.0, (9,)), (0.5, 2.0, (5, 9)),
                                                (1.5, 0.0, (1, 9)), (1.0, 1.0, None)])
def test_gemm(rng, trans_a, trans_b, alpha, beta, c_shape):
    a = _f32(rng, *((37, 5) if trans_a else (5, 37)))
    b = _f32(rng, *((9, 37) if trans_b else (37, 9)))
    inits = {"b": b} | ({"c": _f32(rng, *c_shape)} if c_shape else {})
    m = make_model([("Gemm", ["a", "b"] + (["c"] if c_shape else []), ["y"],
                     dict(transA=trans_a, transB=trans_b, alpha=alpha, beta=beta))],
                   {"a": a.shape}, {"y": (5, 9)}, inits)
    _check(m, {"a": a}, rtol=1e-5, atol=1e-5)


def test_gemm_transb_sums_each_dot_product_in_16_partials(rng):
    """Gemm transB=1 (PyTorch's Linear): a dot product of two contiguous rows per output, in 16
    partial sums (a fixed reassociation that the C compiler vectorizes without -ffast-math)."""
    from onnxcc.codegen.loops import program_text

    a, b, c = _f32(rng, 30, 300), _f32(rng, 250, 300), _f32(rng, 250)
    m = make_model([("Gemm", ["a", "b", "c"], ["y"], dict(transB=1, alpha=0.5))], {"a": a.shape},
                   {"y": (30, 250)}, {"b": b, "c": c})
    cm = _check(m, {"a": a}, rtol=1e-4, atol=1e-4)
    text = program_text(cm.program)
    assert "s15:f32 = 0.0:f32" in text and "for kb in 0..18:" in text


def test_gemm_runtime_b_and_c(rng):
    a, b, c = _f32(rng, 3, 4), _f32(rng, 6, 4), _f32(rng, 3, 1)
    m = make_model([("Gemm", ["a", "b", "c"], ["y"], dict(transB=1))],
                   {"a": a.shape, "b": b.shape, "c": c.shape}, {"y": (3, 6)})
    _check(m, {"a": a, "b": b, "c": c}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("act,attrs,extra", [
    ("Relu", {}, {}), ("LeakyRelu", {"alpha": 0.2}, {}), ("Clip", {}, {"lo": -0.5, "hi": 0.5}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, {}), ("Elu", {"alpha": 0.7}, {}),
    ("Sigmoid", {}, {}), ("Tanh", {}, {})])
def test_gemm_activation_epilogue(rng, act, attrs, extra):
    a, w, b = _f32(rng, 4, 20), _f32(rng, 20, 7), _f32(rng, 7)
    inits = {"w": w, "b": b} | {k: np.array(v, np.float32) for k, v in extra.items()}
    m = make_model([("Gemm", ["a", "w", "b"], ["t"], dict(alpha=0.8)),
                    (act, ["t"] + list(extra), ["y"], attrs)], {"a": a.shape}, {"y": (4, 7)}, inits)
    cm = _check(m, {"a": a}, rtol=1e-5, atol=1e-5)
    if act in ("Relu", "LeakyRelu", "Clip", "HardSigmoid", "Elu"):     # fusable epilogues
        assert [n.op for n in cm.graph.nodes] == ["onnxcc.FusedGemm"]


def test_splat_gemm_weight_is_never_materialized(rng):
    value = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.01])
    a = _f32(rng, 2, 5000)
    m = make_model([("ConstantOfShape", ["s"], ["w"], {"value": value}),
                    ("Gemm", ["a", "w", "c"], ["y"], dict(transB=1))],
                   {"a": a.shape}, {"y": (2, 3000)}, {"s": _ints(3000, 5000), "c": _f32(rng, 3000)})
    cm = _check(m, {"a": a}, rtol=1e-4, atol=1e-4)
    assert cm.weights_size < 3000 * 4 + 64     # the bias only: 60 MB of weight never exist
    assert "5000" in _c_text(cm) and "3000 * 5000" not in _c_text(cm)


@pytest.mark.parametrize("a_shape,b_shape", [
    ((4, 6), (6, 5)), ((2, 1, 4, 6), (3, 6, 5)), ((3, 4, 33), (33, 17)), ((6,), (2, 6, 5)),
    ((2, 4, 6), (6,)), ((6,), (6,)), ((1, 40), (40, 1)),
    ((2, 30, 300), (300, 250))])   # B' of 300 KB: walked in column tiles, the last one partial
def test_matmul_batched_broadcast(rng, a_shape, b_shape):
    a, b = _f32(rng, *a_shape), _f32(rng, *b_shape)
    m = make_model([("MatMul", ["a", "b"], ["y"])], {"a": a_shape, "b": b_shape},
                   {"y": np.matmul(a, b).shape})
    _check(m, {"a": a, "b": b}, rtol=1e-5, atol=1e-4)


def test_matmul_add_becomes_fused_gemm(rng):
    a, w, b = _f32(rng, 3, 16), _f32(rng, 16, 8), _f32(rng, 8)
    m = make_model([("MatMul", ["a", "w"], ["t"]), ("Add", ["t", "b"], ["u"]),
                    ("Relu", ["u"], ["y"])], {"a": a.shape}, {"y": (3, 8)}, {"w": w, "b": b})
    cm = _check(m, {"a": a}, rtol=1e-5, atol=1e-5)
    assert [n.op for n in cm.graph.nodes] == ["onnxcc.FusedGemm"]


def test_matmul_double(rng):
    a, b = rng.standard_normal((5, 9)), rng.standard_normal((9, 4))
    m = make_model([("MatMul", ["a", "b"], ["y"])], {"a": a.shape}, {"y": (5, 4)}, {"b": b},
                   dtype=TensorProto.DOUBLE)
    _check(m, {"a": a}, rtol=1e-12, atol=1e-12)


def test_integer_matmul_is_reported_by_node():
    m = make_model([("MatMul", ["a", "b"], ["y"])], {"a": (2, 3), "b": (3, 2)}, {"y": (2, 2)},
                   dtype=TensorProto.INT32)
    with pytest.raises(UnsupportedOpError, match="n0.*float32/float64 only"):
        _compile(m)


# ---- Transpose, Concat, Split, Slice, Gather, Expand, Tile, DepthToSpace -----------------------
@pytest.mark.parametrize("perm", [None, [0, 2, 3, 1], [3, 1, 0, 2]])
def test_transpose(rng, perm):
    x = _f32(rng, 2, 3, 4, 5)
    out = np.transpose(x, perm).shape
    m = make_model([("Transpose", ["x"], ["y"], {} if perm is None else {"perm": perm})],
                   {"x": x.shape}, {"y": out})
    _check(m, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_concat_axes(rng, axis):
    shapes = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    shapes[1] = tuple(d + 2 if k == axis % 3 else d for k, d in enumerate(shapes[1]))
    xs = {f"x{k}": _f32(rng, *s) for k, s in enumerate(shapes[:2])}
    c = _f32(rng, *shapes[2])
    out = np.concatenate([*xs.values(), c], axis=axis).shape
    m = make_model([("Concat", ["x0", "x1", "c"], ["y"], dict(axis=axis))],
                   {k: v.shape for k, v in xs.items()}, {"y": out}, {"c": c})
    _check(m, xs, rtol=0, atol=0)


def test_concat_inputs_planned_in_place_are_not_copied(rng):
    x = _f32(rng, 1, 3, 4, 4)
    m = make_model([("Relu", ["x"], ["a"]), ("Sigmoid", ["x"], ["b"]),
                    ("Concat", ["a", "b"], ["t"], dict(axis=1)), ("Transpose", ["t"], ["y"])],
                   {"x": x.shape}, {"y": (4, 4, 6, 1)})
    cm = _check(m, {"x": x}, rtol=1e-6, atol=1e-6)
    assert [k.op for k in cm.program.kernels] == ["Relu", "Sigmoid", "Transpose"]


def test_concat_copies_only_inputs_not_in_place(rng):
    x = _f32(rng, 1, 3, 4)
    m = make_model([("Relu", ["x"], ["a"]), ("Concat", ["a", "x"], ["t"], dict(axis=1)),
                    ("Neg", ["t"], ["y"])], {"x": x.shape}, {"y": (1, 6, 4)})
    cm = _check(m, {"x": x}, rtol=0, atol=0)
    concat = [k for k in cm.program.kernels if k.op == "Concat"]
    assert len(concat) == 1 and [b.name for b in concat[0].inputs] == ["x1"]  # a is in place


@pytest.mark.parametrize("opset,attrs,inits,outs", [
    (13, dict(axis=1), {"s": _ints(2, 4, 1)}, [(2, 2, 3), (2, 4, 3), (2, 1, 3)]),
    (18, dict(axis=-1, num_outputs=2), {}, [(2, 7, 2), (2, 7, 1)]),
    (11, dict(axis=0, split=[1, 1]), {}, [(1, 7, 3), (1, 7, 3)])])
def test_split(rng, opset, attrs, inits, outs):
    x = _f32(rng, 2, 7, 3)
    names = [f"y{k}" for k in range(len(outs))]
    m = make_model([("Split", ["x"] + list(inits), names, attrs)], {"x": x.shape},
                   dict(zip(names, outs)), inits, opset=opset)
    _check(m, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ((1, 0), (4, 5), (0, 2), (1, 2)), ((5, 1), (0, -1), (0, 2), (-2, 2)),
    ((-1, -1), (-100, -100), (0, 1), (-1, -1)), ((2,), (1000,), (-1,), (3,)),
    ((4,), (0,), (1,), (-3,))])
def test_slice_steps(rng, starts, ends, axes, steps):
    x = _f32(rng, 6, 7, 8)
    sl = [slice(None)] * 3
    for s, e, a, k in zip(starts, ends, axes, steps):
        sl[a] = slice(s, None if e <= -100 else e, k)
    m = make_model([("Slice", ["x", "s", "e", "a", "k"], ["y"])], {"x": x.shape},
                   {"y": x[tuple(sl)].shape},
                   {"s": _ints(*starts), "e": _ints(*ends), "a": _ints(*axes), "k": _ints(*steps)})
    _check(m, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("axis,indices", [
    (1, [[0, -1], [2, 3]]), (0, [1, 3, 5]), (1, -2), (2, [3, 0, 0, 1])])
def test_gather_constant_indices(rng, axis, indices):
    x = _f32(rng, 6, 5, 4)
    idx = np.array(indices, np.int64)
    m = make_model([("Gather", ["x", "i"], ["y"], dict(axis=axis))], {"x": x.shape},
                   {"y": np.take(x, np.where(idx < 0, idx + x.shape[axis], idx), axis).shape},
                   {"i": idx})
    _check(m, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_gather_runtime_indices(rng, dtype):
    x, idx = _f32(rng, 4, 5, 3), np.array([[3, -1, 0], [-5, 2, 4]], dtype)
    m = make_model([("Gather", ["x", "i"], ["y"], dict(axis=1))], {"x": x.shape, "i": idx.shape},
                   {"y": (4, 2, 3, 3)})
    _set_dtype(m, "i", I64 if dtype == np.int64 else TensorProto.INT32)
    _check(m, {"x": x, "i": idx}, rtol=0, atol=0)


def test_expand_tile_depth_space(rng):
    x = _f32(rng, 1, 8, 1, 3)
    m = make_model([("Expand", ["x", "s"], ["e"]), ("Tile", ["e", "r"], ["t"]),
                    ("DepthToSpace", ["t"], ["d"], dict(blocksize=2)),
                    ("DepthToSpace", ["t"], ["c"], dict(blocksize=2, mode="CRD")),
                    ("SpaceToDepth", ["d"], ["y"], dict(blocksize=2))],
                   {"x": x.shape}, {"y": (1, 8, 4, 3), "c": (1, 2, 8, 6)},
                   {"s": _ints(1, 8, 2, 3), "r": _ints(1, 1, 2, 1)})
    _check(m, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8,
                                   TensorProto.BOOL, TensorProto.DOUBLE])
def test_data_movement_is_dtype_generic(rng, dtype):
    x = rng.integers(0, 100, (2, 3, 4)).astype(helper.tensor_dtype_to_np_dtype(dtype))
    nodes = [("Transpose", ["x"], ["t"], dict(perm=[2, 0, 1])), ("Slice", ["t", "s", "e"], ["u"]),
             ("Concat", ["u", "u"], ["c"], dict(axis=0)),
             ("Pad", ["c", "p"], ["d"], dict(mode="edge")),
             ("Tile", ["d", "r"], ["y"])]
    m = make_model(nodes, {"x": x.shape}, {"y": (10, 2, 6)},
                   {"s": _ints(1), "e": _ints(4), "p": _ints(1, 0, 0, 1, 0, 0),
                    "r": _ints(1, 1, 2)}, dtype=dtype)
    _check(m, {"x": x}, rtol=0, atol=0)


# ---- Pad -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [(0, 0, 1, 2, 0, 0, 2, 1), (0, 1, -1, 2, 0, 0, 2, -2)])
def test_pad_modes(rng, mode, pads):
    x = _f32(rng, 1, 3, 4, 5)
    out = tuple(d + pads[k] + pads[k + 4] for k, d in enumerate(x.shape))
    m = make_model([("Pad", ["x", "p", "v"], ["y"], dict(mode=mode))], {"x": x.shape}, {"y": out},
                   {"p": _ints(*pads), "v": np.array(1.5, np.float32)}, opset=19)
    _check(m, {"x": x}, rtol=0, atol=0)


# ---- Resize, Upsample ----------------------------------------------------------------------------
def _resize_model(x_shape, cases, opset=19):
    """One Resize node per case ``(out_shape, attrs, kw)`` on the same x; kw holds roi, scales
    or sizes."""
    nodes, inits, outs = [], {}, {}
    for k, (out, attrs, kw) in enumerate(cases):
        names = ["x"] + [f"{n}{k}" if kw.get(n) is not None else ""
                         for n in ("roi", "scales", "sizes")]
        while not names[-1]:
            names.pop()
        for n, v in kw.items():
            inits[f"{n}{k}"] = np.array(v, np.int64 if n == "sizes" else np.float32)
        nodes.append(("Resize", names, [f"y{k}"], attrs))
        outs[f"y{k}"] = out
    return make_model(nodes, {"x": x_shape}, outs, inits, opset=opset)


COORDS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"]


@pytest.mark.parametrize("coord", COORDS + ["tf_half_pixel_for_nn"])
@pytest.mark.parametrize("nearest", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_resize_nearest(rng, coord, nearest):
    x = _f32(rng, 1, 2, 8, 9)
    attrs = dict(mode="nearest", coordinate_transformation_mode=coord, nearest_mode=nearest)
    m = _resize_model(x.shape, [((1, 2, 16, 27), attrs, dict(scales=(1, 1, 2, 3))),
                                ((1, 2, 5, 4), attrs, dict(sizes=(1, 2, 5, 4)))])
    _check(m, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("coord", COORDS)
def test_resize_linear(rng, coord):
    x = _f32(rng, 1, 2, 8, 9)
    attrs = dict(mode="linear", coordinate_transformation_mode=coord)
    m = _resize_model(x.shape, [((1, 2, 16, 27), attrs, dict(scales=(1, 1, 2, 3))),
                                ((1, 2, 5, 4), attrs, dict(sizes=(1, 2, 5, 4)))])
    _check(m, {"x": x}, rtol=1e-5, atol=1e-5)


def test_resize_cubic_antialias_axes_crop(rng):
    x = _f32(rng, 1, 2, 8, 9)
    crop = dict(coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=7.0)
    m = _resize_model(x.shape, [
        ((1, 2, 16, 18), dict(mode="cubic"), dict(scales=(1, 1, 2, 2))),
        ((1, 2, 3, 4), dict(mode="linear", antialias=1), dict(sizes=(1, 2, 3, 4))),
        ((1, 2, 16, 18), dict(mode="linear", axes=[2, 3]), dict(scales=(2, 2))),
        ((1, 2, 4, 5), dict(mode="linear", **crop),
         dict(roi=(0, 0, -0.2, 0.15, 1, 1, 0.9, 1.3), sizes=(1, 2, 4, 5))),
        ((1, 2, 4, 5), dict(mode="nearest", **crop),
         dict(roi=(0, 0, -0.2, 0.15, 1, 1, 0.9, 1.3), sizes=(1, 2, 4, 5)))])
    _check(m, {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(rng, mode):
    x = _f32(rng, 1, 2, 3, 4)
    m = make_model([("Upsample", ["x", "s"], ["y"], dict(mode=mode))], {"x": x.shape},
                   {"y": (1, 2, 6, 12)}, {"s": np.array([1, 1, 2, 3], np.float32)}, opset=9)
    _check(m, {"x": x}, rtol=1e-6, atol=1e-6)


# ---- Reductions --------------------------------------------------------------------------------
REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
          "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


@pytest.mark.parametrize("op", REDUCE)
def test_reduce(rng, op):
    """Inner (reduced innermost dim: register accumulator) and outer (kept innermost dim: y
    accumulates) forms, keepdims both ways, all axes."""
    x = _f32(rng, 2, 3, 4, 5)
    if op == "ReduceLogSum":
        x = np.abs(x) + 0.1
    nodes, outs, inits = [], {}, {}
    for k, (axes, keepdims) in enumerate([((1,), 1), ((2, 3), 0), ((0, 2), 1), (None, 0)]):
        if axes:
            inits[f"a{k}"] = _ints(*axes)
        nodes.append((op, ["x"] + ([f"a{k}"] if axes else []), [f"y{k}"], dict(keepdims=keepdims)))
        outs[f"y{k}"] = np.sum(x, axis=axes, keepdims=bool(keepdims)).shape
    m = make_model(nodes, {"x": x.shape}, outs, inits, opset=18)
    _check(m, {"x": x}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"])
def test_reduce_int32(rng, op):
    x = rng.integers(-5, 5, (3, 4, 5)).astype(np.int32)
    m = make_model([(op, ["x", "a"], ["y"], dict(keepdims=0))], {"x": x.shape}, {"y": (3, 5)},
                   {"a": _ints(1)}, dtype=TensorProto.INT32, opset=18)
    _check(m, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims,last", [(1, 1, 0), (3, 0, 1), (-4, 1, 0)])
def test_argmax_argmin(rng, op, axis, keepdims, last):
    x = np.round(_f32(rng, 2, 3, 4, 5) * 2)      # ties: first vs last index matters
    out = np.sum(x, axis=axis, keepdims=bool(keepdims)).shape
    m = make_model([(op, ["x"], ["y"], dict(axis=axis, keepdims=keepdims, select_last_index=last))],
                   {"x": x.shape}, {"y": out})
    _set_dtype(m, "y", I64)
    _check(m, {"x": x}, rtol=0, atol=0)


# ---- one graph through every family: sanitizers, other compilers ---------------------------------
def _mixed_model(rng):
    nodes = [("MatMul", ["x", "w"], ["m"]), ("Transpose", ["m"], ["t"], dict(perm=[0, 2, 1])),
             ("Slice", ["t", "s", "e", "a", "k"], ["sl"]),
             ("Concat", ["sl", "sl"], ["c"], dict(axis=1)),
             ("Pad", ["c", "p"], ["pd"], dict(mode="reflect")),
             ("Resize", ["pd", "", "sc"], ["r"], dict(mode="linear")),
             ("ReduceMean", ["r", "ax"], ["rm"], dict(keepdims=0)),
             ("Gemm", ["rm", "g"], ["gm"], dict(transB=1)),
             ("ArgMax", ["gm"], ["am"], dict(axis=1)),
             ("Gather", ["gm", "idx"], ["y"], dict(axis=1))]
    inits = {"w": _f32(rng, 6, 5), "s": _ints(4, 0), "e": _ints(-100, 3), "a": _ints(1, 2),
             "k": _ints(-2, 1), "p": _ints(0, 1, 1, 0, 1, 1), "sc": np.array([1, 2, 2], np.float32),
             "ax": _ints(2), "g": _f32(rng, 7, 16), "idx": _ints(6, -1, 0)}
    m = make_model(nodes, {"x": (2, 4, 6)}, {"y": (2, 3), "am": (2, 1)}, inits, opset=18)
    return _set_dtype(m, "am", I64)


@pytest.mark.slow
def test_sanitizers_clean(rng):
    x = _f32(rng, 2, 4, 6)
    _check(_mixed_model(rng), {"x": x}, rtol=1e-5, atol=1e-5, sanitize=True)


@pytest.mark.parametrize("cc,flags", [("clang", ()), ("arm-none-eabi-gcc", CORTEX_M4_FLAGS)])
def test_other_compilers_warning_free(rng, cc, flags):
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    cm = onnxcc.driver.compile(_mixed_model(rng), "cortex-m4" if "arm" in cc else "host")
    m = cm.mmap["c_prefix"]
    subprocess.run([cc, *WARN_FLAGS, *flags, "-O2", f"-I{cm.lib_dir}", "-c",
                    str(cm.lib_dir / f"{m}.c"), "-o", "/dev/null"], check=True)
