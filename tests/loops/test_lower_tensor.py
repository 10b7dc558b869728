"""Data-movement ops lowered to the loop IR (codegen/lower/tensor.py): each small graph is
compiled through the public API, verified, run in the loop interpreter and as C (gcc; clang for a
few), and compared with onnxruntime."""

import numpy as np
import pytest
from onnx import TensorProto

from builders import make_model, ort_run
from loopir import program_of, run_c, run_interp
from onnxcc.codegen.loops import program_text


def _check(model, feeds: dict, cc: str = "gcc", exact: bool = True, rtol=1e-6, atol=1e-6):
    """Program of ``model`` through the interpreter and C, against onnxruntime; returns it."""
    p = program_of(model)
    want = ort_run(model, feeds)
    xs = [feeds[b.value] for b in p.inputs]
    names = [b.value for b in p.outputs]
    for got in (run_interp(p, xs), run_c(p, xs, cc)):
        for name, g in zip(names, got):
            if exact:
                np.testing.assert_array_equal(g, want[name], err_msg=name)
            else:
                np.testing.assert_allclose(g, want[name], rtol=rtol, atol=atol, err_msg=name)
    return p


def _typed(model, **dtypes):
    """``model`` with the named graph inputs/outputs retyped (TensorProto codes)."""
    for v in list(model.graph.input) + list(model.graph.output):
        if v.name in dtypes:
            v.type.tensor_type.elem_type = dtypes[v.name]
    return model


@pytest.mark.parametrize("perm", [[0, 2, 1, 3], [3, 1, 2, 0], [2, 3, 0, 1], None])
def test_transpose(rng, perm):
    x = rng.standard_normal((2, 3, 4, 5), dtype=np.float32)
    out = x.transpose(perm).shape
    m = make_model([("Transpose", ["x"], ["y"], {} if perm is None else {"perm": perm})],
                   {"x": x.shape}, {"y": out})
    p = _check(m, {"x": x}, cc="clang" if perm == [2, 3, 0, 1] else "gcc")
    assert [k.op for k in p.kernels] == ["Transpose"]


def test_transpose_merges_contiguous_dims(rng):
    # (0, 2, 3, 1): dims 2 and 3 stay adjacent and contiguous in x, so they merge into one loop
    x = rng.standard_normal((2, 3, 4, 5), dtype=np.float32)
    m = make_model([("Transpose", ["x"], ["y"], {"perm": [0, 2, 3, 1]})], {"x": x.shape},
                   {"y": (2, 4, 5, 3)})
    p = _check(m, {"x": x})
    assert program_text(p).count("for ") == 3


@pytest.mark.parametrize("shape,to", [((3, 1), (2, 3, 4)), ((1, 4), (3, 4)),
                                      ((2, 1, 3), (2, 5, 3))])
def test_expand(rng, shape, to):
    x = rng.standard_normal(shape, dtype=np.float32)
    m = make_model([("Expand", ["x", "s"], ["y"])], {"x": shape}, {"y": to},
                   {"s": np.array(to, np.int64)})
    _check(m, {"x": x})


@pytest.mark.parametrize("reps", [[2, 1, 3], [1, 2, 1], [3, 3, 1]])
def test_tile(rng, reps):
    x = rng.standard_normal((2, 3, 2), dtype=np.float32)
    m = make_model([("Tile", ["x", "r"], ["y"])], {"x": x.shape},
                   {"y": tuple(d * k for d, k in zip(x.shape, reps))},
                   {"r": np.array(reps, np.int64)})
    _check(m, {"x": x})


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1, 0], [3, 4], [0, 1], [1, 2]),
    ([-1], [-100], [1], [-1]),                 # reversed, negative start, clamped end
    ([0, 4], [2, 0], [0, -1], [1, -2]),        # negative axis, negative step
    ([2], [1000], [2], [1]),
])
def test_slice(rng, starts, ends, axes, steps):
    x = rng.standard_normal((4, 6, 5), dtype=np.float32)
    y = x[tuple(slice(None) for _ in range(3))]
    sl = [slice(None)] * 3
    for s, e, a, k in zip(starts, ends, axes, steps):
        sl[a] = slice(s, e if e > -100 else None, k)
    y = x[tuple(sl)]
    inits = {n: np.array(v, np.int64) for n, v in zip("seak", (starts, ends, axes, steps))}
    m = make_model([("Slice", ["x", "s", "e", "a", "k"], ["y"])], {"x": x.shape}, {"y": y.shape},
                   inits)
    _check(m, {"x": x})


def test_slice_opset9_attributes(rng):
    x = rng.standard_normal((4, 6), dtype=np.float32)
    m = make_model([("Slice", ["x"], ["y"], {"starts": [1, 2], "ends": [3, 10], "axes": [0, 1]})],
                   {"x": x.shape}, {"y": (2, 4)}, opset=9)
    _check(m, {"x": x})


@pytest.mark.parametrize("op,attrs,out", [
    ("DepthToSpace", {"blocksize": 2}, (1, 2, 6, 4)),
    ("DepthToSpace", {"blocksize": 2, "mode": "CRD"}, (1, 2, 6, 4)),
    ("SpaceToDepth", {"blocksize": 2}, (1, 32, 1, 1)),
])
def test_depth_space(rng, op, attrs, out):
    shape = (1, 8, 3, 2) if op == "DepthToSpace" else (1, 8, 2, 2)
    x = rng.standard_normal(shape, dtype=np.float32)
    m = make_model([(op, ["x"], ["y"], attrs)], {"x": shape}, {"y": out})
    _check(m, {"x": x})


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_concat_of_graph_inputs(rng, axis):
    a = rng.standard_normal((2, 3, 4), dtype=np.float32)
    b = rng.standard_normal((2, 3, 4), dtype=np.float32)
    out = np.concatenate([a, b, a], axis=axis).shape
    m = make_model([("Concat", ["a", "b", "a"], ["y"], {"axis": axis})],
                   {"a": a.shape, "b": b.shape}, {"y": out})
    _check(m, {"a": a, "b": b})


def test_concat_in_place_inputs_are_not_copied(rng):
    # Relu outputs used only by the Concat: the plan writes them inside y, so no copy of them
    a = rng.standard_normal((1, 2, 3), dtype=np.float32)
    b = rng.standard_normal((1, 3, 3), dtype=np.float32)
    m = make_model([("Relu", ["a"], ["ra"]), ("Sigmoid", ["b"], ["sb"]),
                    ("Concat", ["ra", "sb", "b"], ["y"], {"axis": 1})],
                   {"a": a.shape, "b": b.shape}, {"y": (1, 8, 3)})
    p = _check(m, {"a": a, "b": b}, exact=False)
    cat = [k for k in p.kernels if k.op == "Concat"]
    assert len(cat) == 1 and [x.value for x in cat[0].inputs] == ["b"]


@pytest.mark.parametrize("split,axis,n", [([2, 4], 1, 2), (None, 0, 2), (None, -1, 3)])
def test_split(rng, split, axis, n):
    x = rng.standard_normal((4, 6, 3), dtype=np.float32)
    parts = np.split(x, np.cumsum(split)[:-1] if split else n, axis=axis)
    outs = {f"y{k}": v.shape for k, v in enumerate(parts)}
    inits = {"s": np.array(split, np.int64)} if split else {}
    m = make_model([("Split", ["x"] + (["s"] if split else []), list(outs), {"axis": axis})],
                   {"x": x.shape}, outs, inits)
    _check(m, {"x": x})


def test_split_opset18_num_outputs(rng):
    x = rng.standard_normal((7, 2), dtype=np.float32)
    m = make_model([("Split", ["x"], ["a", "b", "c"], {"axis": 0, "num_outputs": 3})],
                   {"x": x.shape}, {"a": (3, 2), "b": (3, 2), "c": (1, 2)}, opset=18)
    _check(m, {"x": x})


@pytest.mark.parametrize("axis,ishape,itype", [(0, (3,), TensorProto.INT64),
                                               (1, (2, 2), TensorProto.INT32),
                                               (-1, (), TensorProto.INT64),
                                               (2, (5,), TensorProto.INT64)])
def test_gather_runtime_indices(rng, axis, ishape, itype):
    x = rng.standard_normal((3, 4, 5), dtype=np.float32)
    n = x.shape[axis]
    idx = rng.integers(-n, n, ishape).astype(np.int64 if itype == TensorProto.INT64 else np.int32)
    out = np.take(x, np.where(idx < 0, idx + n, idx), axis=axis).shape
    m = _typed(make_model([("Gather", ["x", "i"], ["y"], {"axis": axis})],
                          {"x": x.shape, "i": ishape}, {"y": out}), i=itype)
    p = _check(m, {"x": x, "i": idx})
    assert "max(" in program_text(p)           # indices clamped, so the read is proved


@pytest.mark.parametrize("idx", [[2, 0, 3], [1, 2, 3], [-1]])
def test_gather_constant_indices(rng, idx):
    x = rng.standard_normal((2, 5, 3), dtype=np.float32)
    i = np.array(idx, np.int64)
    m = make_model([("Gather", ["x", "i"], ["y"], {"axis": 1})], {"x": x.shape},
                   {"y": (2, len(idx), 3)}, {"i": i})
    _check(m, {"x": x})


def test_gather_out_of_range_index_is_clamped_not_read(rng):
    x = np.arange(4, dtype=np.float32)
    m = _typed(make_model([("Gather", ["x", "i"], ["y"])], {"x": (4,), "i": (3,)}, {"y": (3,)}),
               i=TensorProto.INT64)
    p = program_of(m)
    i = np.array([7, -9, 1], np.int64)           # onnxruntime refuses these; we stay in bounds
    for got in (run_interp(p, [x, i])[0], run_c(p, [x, i])[0]):
        np.testing.assert_array_equal(got, [3, 0, 1])


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [[0, 1, 2, 0, 2, 1], [1, 0, 0, 1, 3, 2], [0, -1, 1, 0, 2, -1]])
def test_pad(rng, mode, pads):
    x = rng.standard_normal((2, 4, 3), dtype=np.float32)
    out = tuple(d + pads[k] + pads[k + 3] for k, d in enumerate(x.shape))
    inits = {"p": np.array(pads, np.int64)}
    ins = ["x", "p"]
    if mode == "constant":
        inits["v"] = np.array(1.5, np.float32)
        ins.append("v")
    m = make_model([("Pad", ins, ["y"], {"mode": mode})], {"x": x.shape}, {"y": out}, inits,
                   opset=19)
    _check(m, {"x": x}, cc="clang" if pads[0] == 1 else "gcc")


@pytest.mark.parametrize("mode", ["reflect", "wrap"])
def test_pad_wider_than_the_axis_follows_numpy(rng, mode):
    # wider than the axis: numpy.pad (the op reference) repeats the mirror / wrap periodically
    x = rng.standard_normal((1, 3), dtype=np.float32)
    m = make_model([("Pad", ["x", "p"], ["y"], {"mode": mode})], {"x": x.shape}, {"y": (1, 14)},
                   {"p": np.array([0, 5, 0, 6], np.int64)})
    p = program_of(m)
    want = np.pad(x, [(0, 0), (5, 6)], mode=mode)
    np.testing.assert_array_equal(run_interp(p, [x])[0], want)
    np.testing.assert_array_equal(run_c(p, [x])[0], want)


def test_pad_opset2_attributes(rng):
    x = rng.standard_normal((2, 3), dtype=np.float32)
    m = make_model([("Pad", ["x"], ["y"], {"pads": [1, 1, 0, 2], "value": -2.0})],
                   {"x": x.shape}, {"y": (3, 6)}, opset=10)
    _check(m, {"x": x})


RESIZE_CASES = [
    ({"mode": "nearest"}, [1, 1, 2, 2]),
    ({"mode": "nearest", "nearest_mode": "floor",
      "coordinate_transformation_mode": "asymmetric"}, [1, 1, 1.5, 0.5]),
    ({"mode": "nearest", "nearest_mode": "ceil",
      "coordinate_transformation_mode": "align_corners"}, [1, 1, 2, 3]),
    ({"mode": "linear"}, [1, 1, 2, 2]),
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 1.5, 0.6]),
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, [1, 1, 0.5, 2]),
    ({"mode": "cubic"}, [1, 1, 2, 1.5]),
    ({"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}, [1, 1, 0.8, 2]),
    ({"mode": "linear", "antialias": 1}, [1, 1, 0.5, 0.6]),
]


@pytest.mark.parametrize("attrs,scales", RESIZE_CASES)
def test_resize_scales(rng, attrs, scales):
    x = rng.standard_normal((1, 2, 4, 5), dtype=np.float32)
    out = tuple(int(np.floor(d * s)) for d, s in zip(x.shape, scales))
    m = make_model([("Resize", ["x", "", "s"], ["y"], attrs)], {"x": x.shape}, {"y": out},
                   {"s": np.array(scales, np.float32)}, opset=19)
    _check(m, {"x": x}, exact=attrs["mode"] == "nearest", rtol=1e-5, atol=1e-5)


def test_resize_sizes_and_tf_crop_and_resize(rng):
    x = rng.standard_normal((1, 1, 4, 4), dtype=np.float32)
    m = make_model([("Resize", ["x", "roi", "", "sz"], ["y"],
                     {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
                      "extrapolation_value": 7.0})],
                   {"x": x.shape}, {"y": (1, 1, 3, 5)},
                   {"roi": np.array([0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], np.float32),
                    "sz": np.array([1, 1, 3, 5], np.int64)}, opset=13)
    _check(m, {"x": x}, exact=False, rtol=1e-5, atol=1e-5)


def test_resize_nearest_of_integers(rng):
    x = rng.integers(-50, 50, (1, 1, 2, 3)).astype(np.int32)
    m = _typed(make_model([("Resize", ["x", "", "s"], ["y"], {"mode": "nearest"})],
                          {"x": x.shape}, {"y": (1, 1, 4, 6)},
                          {"s": np.array([1, 1, 2, 2], np.float32)}, opset=13),
               x=TensorProto.INT32, y=TensorProto.INT32)
    _check(m, {"x": x})


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_opset9(rng, mode):
    x = rng.standard_normal((1, 2, 3, 2), dtype=np.float32)
    m = make_model([("Upsample", ["x", "s"], ["y"], {"mode": mode})], {"x": x.shape},
                   {"y": (1, 2, 6, 6)}, {"s": np.array([1, 1, 2, 3], np.float32)}, opset=9)
    _check(m, {"x": x}, exact=mode == "nearest", rtol=1e-6, atol=1e-6)


def test_range_shape_size_and_constant_of_shape(rng):
    x = rng.standard_normal((2, 3), dtype=np.float32)
    p = program_of(make_model([("Range", ["s", "l", "d"], ["r"]), ("Add", ["x", "r"], ["y"])],
                              {"x": (2, 3)}, {"y": (2, 3)},
                              {"s": np.array(1.5, np.float32), "l": np.array(4.5, np.float32),
                               "d": np.array(1.0, np.float32)}))
    np.testing.assert_allclose(run_interp(p, [x])[0], x + [1.5, 2.5, 3.5])
    # the frontend folds these when the inputs are constant; lowered directly they bake values
    from onnxcc.codegen.lower import LowerCtx, registry
    from onnxcc.codegen.interpret import run_kernel
    from onnxcc.ir import Node, TensorType, Value

    v = Value("x", TensorType((2, 3, 4), np.dtype(np.float32)))
    for op, want in [("Shape", [2, 3, 4]), ("Size", 24)]:
        out = Value("y", TensorType(np.shape(want), np.dtype(np.int64)))
        node = Node(op, [v], [out], {}, "n", 17)
        k = registry()[op](node, LowerCtx(node))
        y = np.zeros(max(np.size(want), 1), np.int64)
        run_kernel(k, {"y0": y})
        np.testing.assert_array_equal(y, np.reshape(want, -1))


def test_range_runtime_int(rng):
    from onnxcc.codegen.lower import LowerCtx, registry
    from onnxcc.codegen.interpret import run_kernel
    from onnxcc.ir import Node, TensorType, Value

    vals = [np.array(v, np.int32) for v in (10, -3, -4)]
    ins = [Value(n, TensorType((), np.dtype(np.int32)), const=c) for n, c in zip("sld", vals)]
    out = Value("y", TensorType((4,), np.dtype(np.int32)))
    node = Node("Range", ins, [out], {}, "n", 17)
    k = registry()["Range"](node, LowerCtx(node))
    y = np.zeros(4, np.int32)
    run_kernel(k, {"y0": y})
    np.testing.assert_array_equal(y, [10, 6, 2, -2])
