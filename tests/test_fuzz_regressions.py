"""Regressions found by the fuzzers (``benchmarks/fuzz.py``), each minimized to a few nodes.

Each was an uncaught exception or a wrong answer; each is now a clean OnnxccError or the right
result.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import onnxcc
from builders import make_model, ort_run
from onnxcc.errors import AttributeValueError, ModelLoadError
from onnxcc.interpreter import interpret


def f32(v) -> np.ndarray:
    return np.array(v, np.float32)


def test_attribute_of_the_wrong_type_is_an_attribute_error():
    """LRN size given as a STRING reached check() and raised TypeError ('<' str and int)."""
    model = make_model([("LRN", ["x"], ["y"], {"size": "wrap"})], {"x": (1, 2, 3, 3)},
                       {"y": (1, 2, 3, 3)})
    with pytest.raises(AttributeValueError, match="'size' is STRING, the ONNX spec wants INT"):
        onnxcc.compile(model, target="host")


def test_fused_elementwise_keeps_a_scalar_output_rank_0():
    """Floor -> Clip on a rank-0 input: the reference of the fused node returned shape (1,)
    (np.ascontiguousarray makes 0-d arrays 1-d); onnxruntime and the C give ()."""
    model = make_model([("Floor", ["x"], ["t"]), ("Clip", ["t", "lo", "hi"], ["y"])], {"x": ()},
                       {"y": ()}, {"lo": f32(-1), "hi": f32(0.5)})
    x = f32(-2.5)
    cm = onnxcc.compile(model, target="host")
    assert [n.op for n in cm.graph.nodes] == ["onnxcc.FusedElementwise"]
    got = interpret(cm.graph, {"x": x})["y"]
    want = ort_run(model, {"x": x})["y"]
    assert got.shape == want.shape == ()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op,attrs", [("ArgMax", {"keepdims": 2}),
                                      ("ArgMin", {"keepdims": -2147483648}),
                                      ("ArgMax", {"select_last_index": 5}),
                                      ("ReduceSum", {"noop_with_empty_axes": -7})])
def test_boolean_attributes_outside_0_1_are_refused(op, attrs):
    """keepdims=2 kept the axis in onnxcc and dropped it in onnxruntime (which keeps only for 1):
    a value the spec does not define is an error, not a guess."""
    out = (2, 3) if op == "ReduceSum" else None
    model = make_model([(op, ["x"], ["y"], attrs)], {"x": (2, 3)}, {"y": out})
    with pytest.raises(AttributeValueError, match="must be 0 or 1"):
        onnxcc.compile(model, target="host")


def test_an_empty_required_input_is_an_error():
    """Conv(x, "", b): the empty weight reached check() as None (AttributeError)."""
    model = make_model([("Conv", ["x", "", "b"], ["y"])], {"x": (1, 1, 3, 3)}, {"y": None},
                       {"b": f32([0.5])})
    with pytest.raises(AttributeValueError, match="required input 1 is empty"):
        onnxcc.compile(model, target="host")
    model = make_model([("MatMul", ["", "x"], ["y"])], {"x": (2, 2)}, {"y": None})
    with pytest.raises(AttributeValueError, match="required input 0 is empty"):
        onnxcc.compile(model, target="host")


def test_an_empty_input_of_a_variadic_op_is_an_error():
    """Min(x, ""): every input of a variadic op is required (onnxruntime 1.31 segfaults on it)."""
    model = make_model([("Min", ["x", ""], ["y"])], {"x": (2, 3)}, {"y": (2, 3)})
    with pytest.raises(AttributeValueError, match="required input 1 is empty"):
        onnxcc.compile(model, target="host")


def test_a_name_that_is_not_utf8_is_a_load_error(tmp_path):
    """A corrupt byte in a node name: protobuf hands out bytes, which reached the memory map's
    JSON (TypeError: bytes is not JSON serializable)."""
    model = make_model([("Relu", ["x"], ["y"])], {"x": (2,)}, {"y": (2,)})
    model.graph.node[0].name = "nZZ"
    data = model.SerializeToString().replace(b"nZZ", b"n\xff1")
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert isinstance(onnx.load(str(path)).graph.node[0].name, bytes)
    with pytest.raises(ModelLoadError, match="not valid UTF-8"):
        onnxcc.compile(str(path), target="host")


def test_valid_models_still_compile_after_the_checks():
    """The new checks leave valid models alone: optional inputs omitted in the middle (Clip
    without min, Resize without roi/scales) and spec-typed attributes."""
    model = make_model([("Clip", ["x", "", "hi"], ["t"]),
                        ("Resize", ["t", "", "", "sizes"], ["y"], {"mode": "nearest"})],
                       {"x": (1, 1, 2, 2)}, {"y": (1, 1, 4, 4)},
                       {"hi": f32(0.5), "sizes": np.array([1, 1, 4, 4], np.int64)})
    x = f32(np.arange(4).reshape(1, 1, 2, 2))
    got = onnxcc.compile(model, target="host").run({"x": x})["y"]
    np.testing.assert_allclose(got, ort_run(model, {"x": x})["y"], rtol=0, atol=0)


def test_attribute_check_ignores_ops_without_an_onnx_schema():
    """An attribute type check must not break when onnx has no schema for an op/version."""
    node = helper.make_node("Relu", ["x"], ["y"])
    assert node.op_type == "Relu"
    from onnxcc.frontend import _spec_attr_type

    assert _spec_attr_type("onnxcc.FusedConv", 17, "activation") is None
    assert _spec_attr_type("LRN", 17, "size") == onnx.AttributeProto.INT


def _ort_refuses(model: onnx.ModelProto) -> bool:
    try:
        ort_run(model, {})
    except Exception:
        return True
    return False


@pytest.mark.parametrize("op,ins,attrs,opset", [
    ("Clip", ["x"], {"max": 1.0}, 18),         # min/max became inputs at opset 11
    ("Cast", ["x"], {"to": 1, "saturate": 1}, 11),   # saturate arrived at opset 19
])
def test_an_attribute_the_op_does_not_have_at_its_opset_is_refused(op, ins, attrs, opset):
    """Clip(x) with a ``max`` attribute at opset 18 compiled as a plain copy: the bound the user
    meant was dropped in silence. onnx's checker and onnxruntime refuse it; so does onnxcc."""
    model = make_model([(op, ins, ["y"], attrs)], {"x": (3,)}, {"y": (3,)}, opset=opset)
    assert _ort_refuses(model)
    bad = [a for a in attrs if a not in ("to",)][0]
    with pytest.raises(AttributeValueError, match=f"'{bad}' is not part of {op} at opset {opset}"):
        onnxcc.compile(model, target="host")


def test_a_graph_input_declared_twice_is_refused():
    """Two graph inputs named x (found by the mutation fuzzer): onnxruntime reports a duplicate
    definition; onnxcc compiled it."""
    model = make_model([("Relu", ["x"], ["y"])], {"x": (2,)}, {"y": (2,)})
    model.graph.input.append(model.graph.input[0])
    assert _ort_refuses(model)
    with pytest.raises(ModelLoadError, match="graph input 'x' is declared twice"):
        onnxcc.compile(model, target="host")


def test_an_initializer_with_a_negative_dim_is_refused():
    """dims [-2, 1] on an initializer was read by numpy as an inferred size."""
    model = make_model([("MatMul", ["x", "w"], ["y"])], {"x": (1, 2)}, {"y": (1, 1)},
                       {"w": f32([[1], [2]])})
    model.graph.initializer[0].dims[0] = -2
    with pytest.raises(ModelLoadError, match="'w' has a negative dim"):
        onnxcc.compile(model, target="host")


def test_tile_repeats_of_rank_2_is_refused():
    """Tile's repeats must be 1-D int64 (onnxruntime refuses a [4, 1] tensor); onnxcc flattened it."""
    model = make_model([("Tile", ["x", "r"], ["y"])], {"x": (1, 2, 3, 4)}, {"y": None},
                       {"r": np.ones((4, 1), np.int64)})
    with pytest.raises(onnxcc.errors.ShapeError, match="repeats must be a 1-D tensor"):
        onnxcc.compile(model, target="host")


def test_an_input_type_the_spec_does_not_allow_is_refused():
    """Tile's repeats is int64 only in the spec: int32 is refused by name."""
    model = make_model([("Tile", ["x", "r"], ["y"])], {"x": (2,)}, {"y": None},
                       {"r": np.array([2], np.int32)})
    with pytest.raises(ModelLoadError, match="tensor\\(int32\\), which Tile-17 does not accept"):
        onnxcc.compile(model, target="host")


def test_a_fixed_input_type_of_the_spec_is_checked():
    """Reshape's shape is a fixed ``tensor(int64)`` in the schema, not a type variable: an int32
    shape was read as if it were int64."""
    model = make_model([("Reshape", ["x", "s"], ["y"])], {"x": (2, 3)}, {"y": None},
                       {"s": np.array([3, 2], np.int32)})
    assert _ort_refuses(model)
    with pytest.raises(ModelLoadError, match="Reshape-17 wants a tensor\\(int64\\)"):
        onnxcc.compile(model, target="host")


def test_split_num_outputs_must_match_the_node():
    """num_outputs = 2**31 on a 2-output Split built a 2**31-entry tuple (a hang)."""
    model = make_model([("Split", ["x"], ["a", "b"], {"axis": 0, "num_outputs": 2**31})],
                       {"x": (4,)}, {"a": None, "b": None}, opset=18)
    with pytest.raises(onnxcc.errors.ShapeError, match="num_outputs is 2147483648 but the node has 2"):
        onnxcc.compile(model, target="host")


def test_pool_kernel_far_larger_than_the_input_compiles_at_once():
    """MaxPool SAME_UPPER with kernel_shape [1, 2**31]: the C lowering enumerated every tap of
    the window (a hang). With stride 1 every window covers the whole row, as a kernel of 50 does;
    the 50-tap model is checked against onnxruntime."""
    x = f32(np.random.default_rng(3).standard_normal((1, 2, 3, 5)))
    outs = []
    for k in (50, 2**31):
        model = make_model([("MaxPool", ["x"], ["y"], {"kernel_shape": [1, k],
                                                       "auto_pad": "SAME_UPPER"})],
                           {"x": (1, 2, 3, 5)}, {"y": (1, 2, 3, 5)})
        outs.append(onnxcc.compile(model, target="host").run({"x": x})["y"])
        if k == 50:
            np.testing.assert_array_equal(outs[0], ort_run(model, {"x": x})["y"])
    np.testing.assert_array_equal(outs[1], outs[0])


def test_log_reductions_of_integers_are_refused():
    """ReduceLogSumExp of int64 crashed in the reference (float infinity to integer)."""
    model = make_model([("ReduceLogSumExp", ["x"], ["y"])], {"x": (2, 3)}, {"y": None},
                       dtype=onnx.TensorProto.INT64)
    with pytest.raises(onnxcc.errors.UnsupportedOpError, match="cast to float first"):
        onnxcc.compile(model, target="host")


@pytest.mark.parametrize("op,shapes", [
    ("BatchNormalization", {"s": (3,), "b": (3,), "m": (4,), "v": (3,)}),
    ("InstanceNormalization", {"s": (), "b": (3,)}),
])
def test_normalization_parameters_must_match_the_channels(op, shapes):
    """A BatchNormalization mean of 4 values on 3 channels reached a numpy broadcast in a pass;
    an InstanceNormalization scalar scale an IndexError in the C lowering."""
    inits = {k: f32(np.ones(s)) for k, s in shapes.items()}
    model = make_model([(op, ["x", *inits], ["y"])], {"x": (1, 3, 4, 4)}, {"y": (1, 3, 4, 4)},
                       inits)
    with pytest.raises(AttributeValueError, match="the input's channels need \\[3\\]"):
        onnxcc.compile(model, target="host")


def test_a_non_finite_float_attribute_is_refused():
    """Elu alpha=-inf: onnxruntime and onnxcc disagree on where NaNs appear; no result is defined."""
    model = make_model([("Elu", ["x"], ["y"], {"alpha": float("-inf")})], {"x": (3,)}, {"y": (3,)})
    with pytest.raises(AttributeValueError, match="'alpha' is -inf, not a finite number"):
        onnxcc.compile(model, target="host")


def test_an_output_beyond_any_address_space_is_a_shape_error():
    """Resize to sizes [1, 3, 5e11, 6e13] reached numpy's broadcast (ValueError) in a pass."""
    model = make_model([("Resize", ["x", "", "", "sz"], ["y"])], {"x": (1, 3, 6, 6)}, {"y": None},
                       {"sz": np.array([1, 3, 545460861706, 63771674411017], np.int64)})
    with pytest.raises(onnxcc.errors.ShapeError, match="would have shape"):
        onnxcc.compile(model, target="host")


def test_tensor_size_never_overflows():
    from onnxcc.ir import TensorType

    assert TensorType((2**40, 2**40), np.float32).size == 2**80


def test_resize_scales_of_rank_2_are_refused():
    """Resize scales of shape [4, 1] were flattened; onnxruntime reads them otherwise (all 30
    outputs differed). The spec says 1-D."""
    model = make_model([("Resize", ["x", "", "s"], ["y"], {"mode": "nearest"})],
                       {"x": (1, 1, 2, 2)}, {"y": None}, {"s": f32([[1], [1], [2], [2]])}, opset=18)
    with pytest.raises(AttributeValueError, match="scales must be a 1-D tensor, got shape \\[4, 1\\]"):
        onnxcc.compile(model, target="host")


@pytest.mark.parametrize("op,outs", [("MaxPool", 1), ("MaxPool", 2), ("GlobalMaxPool", 1)])
def test_max_pooling_propagates_nan_on_every_back_end(op, outs):
    """The generated-graph fuzzer found three answers for a window holding a NaN: the C back end
    skipped it (and gave -inf for an all-NaN window), the loop IR and the reference propagated
    it, and the LLVM back end's Indices skipped it. All now follow numpy, onnx's reference and
    ReduceMax: a NaN in the window gives NaN, and Indices points at the first NaN. (onnxruntime
    1.31's MaxPool is not a reference here: it keeps a NaN only when it comes first.)"""
    from onnxcc.interpreter import interpret

    nan = np.nan
    x = f32([[[[nan, nan, 1.0, nan], [nan, nan, 2.0, -np.inf]]]])
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2]} if op == "MaxPool" else {}
    shape = (1, 1, 1, 2) if op == "MaxPool" else (1, 1, 1, 1)
    names = ["y", "i"][:outs]
    model = make_model([(op, ["x"], names, attrs)], {"x": (1, 1, 2, 4)},
                       {k: shape for k in names})
    if outs == 2:
        model.graph.output[1].type.tensor_type.elem_type = onnx.TensorProto.INT64
    results = [onnxcc.compile(model, target=t).run({"x": x}) for t in ("host", "cpu")]
    results.append(interpret(onnxcc.compile(model, target="host").graph, {"x": x}))
    for r in results:
        assert np.isnan(r["y"]).all()
        if outs == 2:
            np.testing.assert_array_equal(r["i"].ravel(), [0, 3])   # the first NaN of each window


def test_conv_transpose_bias_shape_is_checked():
    """A scalar ConvTranspose bias reached the C lowering (IndexError)."""
    model = make_model([("ConvTranspose", ["x", "w", "b"], ["y"])], {"x": (1, 1, 3, 3)},
                       {"y": None}, {"w": f32(np.ones((1, 1, 2, 2))), "b": f32(0.5)})
    with pytest.raises(AttributeValueError, match=r"bias shape \(\) is not \(1,\)"):
        onnxcc.compile(model, target="host")


def test_gather_of_constant_indices_out_of_range_is_a_shape_error():
    """Gather folded at compile time with index 1 on an axis of 1 (IndexError from numpy)."""
    model = make_model([("Gather", ["x", "i"], ["y"])], {"x": (1, 3)}, {"y": None},
                       {"i": np.array([-2, 1], np.int64)})
    with pytest.raises(onnxcc.errors.ShapeError, match=r"indices \[-2, 1\] are outside \[-1, 0\]"):
        onnxcc.compile(model, target="host")


def test_pool_pads_must_be_smaller_than_the_kernel():
    """AveragePool pads [0, 2**31, 0, 0] hung the C lowering on 2**30 output positions;
    onnxruntime refuses pads >= kernel_shape, and so does onnxcc."""
    model = make_model([("AveragePool", ["x"], ["y"], {"kernel_shape": [1, 1],
                                                       "pads": [0, 2**31, 0, 0]})],
                       {"x": (1, 1, 2, 2)}, {"y": None})
    with pytest.raises(AttributeValueError, match="must be smaller than kernel_shape"):
        onnxcc.compile(model, target="host")


def test_clip_bound_of_shape_1():
    """A [1]-shaped Clip bound on a scalar x made the fused kernel's type [1] (VerifyError); it is
    refused there, and accepted (as onnxruntime does) on a tensor of rank >= 1."""
    bad = make_model([("Relu", ["x"], ["t"]), ("Clip", ["t", "lo"], ["y"])], {"x": ()}, {"y": ()},
                     {"lo": f32([0.5])})
    with pytest.raises(AttributeValueError, match=r"min must be a scalar, got shape \[1\]"):
        onnxcc.compile(bad, target="host")
    ok = make_model([("Relu", ["x"], ["t"]), ("Clip", ["t", "lo"], ["y"])], {"x": (3,)},
                    {"y": (3,)}, {"lo": f32([0.5])})
    x = f32([-1, 0.25, 2])
    np.testing.assert_array_equal(onnxcc.compile(ok, target="host").run({"x": x})["y"],
                                  ort_run(ok, {"x": x})["y"])


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_zero_size_tensors_run_through_the_public_api(target):
    """A zero-size input made CompiledModel.run pass NULL (status 1: NULL argument); Softmax's
    reference failed on a zero-size axis (no identity for max)."""
    model = make_model([("Softmax", ["x"], ["y"], {"axis": 1})], {"x": (0, 4)}, {"y": (0, 4)})
    y = onnxcc.compile(model, target=target).run({"x": np.zeros((0, 4), np.float32)})["y"]
    assert y.shape == (0, 4)


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_celu_keeps_nan(target):
    """Celu was max(0, x) + min(0, ...) through fmax/fmin, which turned a NaN into 0 (onnxruntime
    and the reference give NaN); found by the generated-graph fuzzer."""
    model = make_model([("Celu", ["x"], ["y"], {"alpha": 0.7})], {"x": (4,)}, {"y": (4,)})
    x = f32([np.nan, -1.5, 0.0, 2.0])
    got = onnxcc.compile(model, target=target).run({"x": x})["y"]
    np.testing.assert_allclose(got, ort_run(model, {"x": x})["y"], rtol=1e-6, equal_nan=True)
    assert np.isnan(got[0])


def test_a_huge_axis_beside_a_zero_dim_is_a_shape_error():
    """Resize sizes [8323073, 0, 1, 9e18]: zero elements, but the lowering's per-axis tables
    of 9e18 entries failed in numpy (ValueError: array is too big)."""
    model = make_model([("Resize", ["x", "", "", "sz"], ["y"], {"mode": "linear"})],
                       {"x": (1, 1, 3, 7)}, {"y": None},
                       {"sz": np.array([8323073, 0, 1, 9151314442816847881], np.int64)})
    with pytest.raises(onnxcc.errors.ShapeError, match="would have shape"):
        onnxcc.compile(model, target="host")


def test_a_pool_window_of_2_31_taps_compiles_and_runs():
    """MaxPool with kernel 2**31 - 1 (SAME_UPPER): the window is computed in closed form, so
    compiling takes no time and each output is the max of its row. (onnxcc's reference
    interpreter pads the input by the window; it is not run here: it would need 168 GB, and a
    MemoryError in it is reported as MemoryBudgetError naming the node.)"""
    model = make_model([("MaxPool", ["x"], ["y"], {"kernel_shape": [1, 2**31 - 1],
                                                   "auto_pad": "SAME_UPPER"})],
                       {"x": (1, 1, 2, 3)}, {"y": (1, 1, 2, 3)})
    cm = onnxcc.compile(model, target="host")
    x = f32(np.arange(6).reshape(1, 1, 2, 3))
    np.testing.assert_array_equal(cm.run({"x": x})["y"], f32([[[[2, 2, 2], [5, 5, 5]]]]))


def test_reshape_shape_must_be_1d():
    """A 0-d Reshape shape passed import and crashed canonicalize (TypeError: int not iterable)."""
    model = make_model([("Reshape", ["x", "s"], ["y"])], {"x": (6,)}, {"y": None},
                       {"s": np.array(6, np.int64)})
    with pytest.raises(onnxcc.errors.ShapeError, match=r"shape must be a 1-D tensor, got shape \[\]"):
        onnxcc.compile(model, target="host")


def test_a_graph_valued_attribute_on_an_op_without_schema_is_refused():
    """LayerNormalization at opset 12 (no onnx schema there) with a GRAPH-typed axis reached
    int() (TypeError)."""
    model = make_model([("LayerNormalization", ["x", "s"], ["y"])], {"x": (2, 3)}, {"y": (2, 3)},
                       {"s": f32(np.ones(3))}, opset=12)
    sub = helper.make_graph([], "g", [], [])
    model.graph.node[0].attribute.append(helper.make_attribute("axis", sub))
    with pytest.raises(AttributeValueError, match="'axis' is GRAPH, which LayerNormalization"):
        onnxcc.compile(model, target="host")


def test_strides_beyond_int32_are_refused():
    """ConvTranspose stride 2**63 - 1 generated C whose constants overflowed (-Werror)."""
    model = make_model([("ConvTranspose", ["x", "w"], ["y"], {"strides": [2**63 - 1]})],
                       {"x": (1, 1, 1)}, {"y": None}, {"w": f32(np.ones((1, 1, 1)))})
    with pytest.raises(AttributeValueError, match="values of 2\\*\\*31 or more are not supported"):
        onnxcc.compile(model, target="host")


def test_a_negative_epsilon_is_refused():
    """InstanceNormalization epsilon = -1e-30: sqrt of a negative variance sum; onnxruntime and
    onnxcc disagreed on where the infinities land (final 100,000-model fuzz run)."""
    model = make_model([("InstanceNormalization", ["x", "s", "b"], ["y"], {"epsilon": -1e-30})],
                       {"x": (1, 2, 3)}, {"y": (1, 2, 3)}, {"s": f32([1, 1]), "b": f32([0, 0])})
    with pytest.raises(AttributeValueError, match="epsilon is -1.0*\\d*e-30; it must be >= 0"):
        onnxcc.compile(model, target="host")


def test_ceil_mode_with_auto_pad_is_refused():
    """AveragePool VALID + ceil_mode=1 on width 7, kernel 2, stride 2: the spec's VALID formula
    gives 3 columns, its ceil_mode formula 4 (onnxruntime's choice); onnx's reference refuses the
    pair. Found by the generated-graph fuzzer as a shape mismatch."""
    model = make_model([("AveragePool", ["x"], ["y"], {"auto_pad": "VALID", "ceil_mode": 1,
                                                       "kernel_shape": [2, 2], "strides": [1, 2]})],
                       {"x": (1, 1, 4, 7)}, {"y": None}, opset=18)
    with pytest.raises(AttributeValueError, match="ceil_mode=1 with auto_pad=VALID"):
        onnxcc.compile(model, target="host")


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_an_unused_input_of_an_unsupported_dtype_is_reported(target):
    """An unused float8 graph input reached the header's dtype table (KeyError)."""
    model = make_model([("Relu", ["x"], ["y"])], {"x": (2,)}, {"y": (2,)})
    model.graph.input.append(helper.make_tensor_value_info("f8", onnx.TensorProto.FLOAT8E5M2, [2]))
    with pytest.raises(onnxcc.errors.UnsupportedOpError,
                       match=r"'f8' \(graph input\): dtype float8_e5m2 is not supported"):
        onnxcc.compile(model, target=target)


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_resize_keeps_a_nan_neighbour_of_weight_0(target):
    """Linear Resize dropped taps whose weight is 0 for every output, so a NaN there vanished;
    onnx's reference (0 * NaN = NaN) kept it. Found by the generated-graph fuzzer."""
    from onnxcc.interpreter import interpret

    # cubic, align_corners, 3 rows -> 1: the one output reads row 0 with weight 1 and rows 0, 0
    # and 1 with weight 0, so the row-1 tap was dropped from the tables
    model = make_model([("Resize", ["x", "", "s"], ["y"], {"mode": "cubic",
                                                         "coordinate_transformation_mode":
                                                         "align_corners"})],
                       {"x": (1, 1, 3, 1)}, {"y": (1, 1, 1, 1)}, {"s": f32([1, 1, 0.5, 1])},
                       opset=18)
    x = f32([[[[1.0], [np.nan], [3.0]]]])
    cm = onnxcc.compile(model, target=target)
    got = cm.run({"x": x})["y"]
    from onnx.reference import ReferenceEvaluator
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert np.isnan(want).all()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(interpret(cm.graph, {"x": x})["y"]))


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_a_nan_weight_meets_the_zero_padding(target):
    """Zero padding contributes w * 0, NaN for a NaN weight (onnxruntime's im2col); the
    tap-stationary convolution skipped padded taps and gave a number. A non-finite constant
    weight now makes every padded read a masked load of 0. Found by the mutation fuzzer."""
    w = f32(np.arange(6).reshape(1, 2, 3)) - 2
    w[0, 1, 0] = np.nan
    model = make_model([("Conv", ["x", "w"], ["y"], {"pads": [1, 1]})], {"x": (1, 2, 4)},
                       {"y": (1, 1, 4)}, {"w": w})
    x = f32(np.arange(8).reshape(1, 2, 4)) / 4
    want = ort_run(model, {"x": x})["y"]
    assert np.isnan(want).all()     # every output reads the NaN tap (padding included)
    cm = onnxcc.compile(model, target=target)
    np.testing.assert_array_equal(np.isnan(cm.run({"x": x})["y"]), np.isnan(want))


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_a_loop_that_never_runs_is_not_verified(target):
    """Hardmax along an axis of 1 lowers to an empty loop over the other taps
    (``for k in 1..1``); verify took its range [1, 0] as an interval and refused a kernel that
    never reads (VerifyError on every such model, found by the fuzzer once C rendered the loop
    IR)."""
    model = make_model([("Hardmax", ["x"], ["y"], {"axis": 1})], {"x": (2, 1, 4)},
                       {"y": (2, 1, 4)})
    x = f32(np.arange(8).reshape(2, 1, 4))
    np.testing.assert_array_equal(onnxcc.compile(model, target=target).run({"x": x})["y"],
                                  ort_run(model, {"x": x})["y"])


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_a_conv_tap_whose_positions_are_all_padding(target):
    """Kernel column 1 of a (3, 2) kernel with stride 3 over a 1-wide input never lands inside
    x, so its position loop is empty; the C renderer unrolled it to nothing and left the
    weights it had loaded unused (-Werror=unused-variable). Found by the generated-graph
    fuzzer."""
    rng = np.random.default_rng(2)
    w = f32(rng.standard_normal((3, 2, 3, 2)))
    model = make_model([("Conv", ["x", "w"], ["y"], {"pads": [2, 2, 2, 0], "strides": [1, 3]})],
                       {"x": (2, 2, 3, 1)}, {"y": (2, 3, 5, 1)}, {"w": w})
    x = f32(rng.standard_normal((2, 2, 3, 1)))
    np.testing.assert_allclose(onnxcc.compile(model, target=target).run({"x": x})["y"],
                               ort_run(model, {"x": x})["y"], rtol=1e-5, atol=1e-5)


def test_gemm_does_not_take_a_bias_that_grows_its_output():
    """Gemm (5, 2) + Add of a (3, 5, 2) constant was fused into the Gemm's C, whose output
    cannot be (3, 5, 2) (the graph verify refused it). The Add stays. Found by the
    generated-graph fuzzer."""
    rng = np.random.default_rng(3)
    w, k = f32(rng.standard_normal((4, 2))), f32(rng.standard_normal((3, 5, 2)))
    model = make_model([("Gemm", ["x", "w"], ["t"]), ("Add", ["t", "k"], ["y"])], {"x": (5, 4)},
                       {"y": (3, 5, 2)}, {"w": w, "k": k})
    x = f32(rng.standard_normal((5, 4)))
    cm = onnxcc.compile(model, target="host", verify=True)
    np.testing.assert_allclose(cm.run({"x": x})["y"], ort_run(model, {"x": x})["y"], rtol=1e-5,
                               atol=1e-5)


def test_layer_normalization_scale_must_broadcast_to_the_normalized_shape():
    """A (6, 1) Scale over a normalized shape (6,) reached the lowering (ValueError: 1 dims,
    2 strides); it is refused by name. Found by the mutation fuzzer."""
    model = make_model([("LayerNormalization", ["x", "s"], ["y"])], {"x": (6,)}, {"y": (6,)},
                       {"s": f32(np.ones((6, 1)))}, opset=17)
    with pytest.raises(AttributeValueError, match=r"Scale has shape \[6, 1\], which does not "
                       r"broadcast to the normalized shape \[6\]"):
        onnxcc.compile(model, target="host")


def test_an_array_too_big_for_numpy_is_a_memory_error_in_the_reference():
    """numpy refuses an array past the address space with a ValueError, not a MemoryError; the
    reference interpreter (constant folding, the tests' oracle) now reports both alike."""
    from onnxcc.ops import run_node

    model = make_model([("MaxPool", ["x"], ["y"], {"kernel_shape": [1, 2**63 - 1],
                                                   "auto_pad": "SAME_LOWER", "strides": [2, 2]})],
                       {"x": (1, 1, 1, 1)}, {"y": (1, 1, 1, 1)})
    from onnxcc.frontend import import_onnx

    node = import_onnx(model).nodes[0]
    with pytest.raises(MemoryError, match="MaxPool"):
        run_node(node, f32(np.ones((1, 1, 1, 1))))


def test_type_constraints_are_checked_for_an_op_older_than_its_opset():
    """Where at opset 7 (Where's first schema is opset 9) with X float32 and Y int16 skipped the
    schema's type check (no schema at 7) and reached the lowering (VerifyError: select arms
    differ). The newest schema's constraints apply. Found by the mutation fuzzer."""
    model = make_model([("Where", ["c", "x", "y"], ["z"])], {"c": (2,), "x": (2,), "y": (2,)},
                       {"z": (2,)}, opset=7)
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.BOOL
    model.graph.input[2].type.tensor_type.elem_type = onnx.TensorProto.INT16
    with pytest.raises(ModelLoadError, match=r"input 2 \('y'\) is a tensor\(int16\) but an "
                       r"earlier input of type T is a tensor\(float\)"):
        onnxcc.compile(model, target="host")


def test_conv_transpose_weights_of_the_wrong_rank_are_refused():
    """A scalar ConvTranspose weight raised IndexError in the check. Found by the fuzzer."""
    model = make_model([("ConvTranspose", ["x", "w"], ["y"])], {"x": (2, 1, 3)}, {"y": None},
                       {"w": f32(-0.5)})
    with pytest.raises(AttributeValueError, match=r"w \[\] \(C, M/group, kernel\.\.\.\) of the "
                       r"same rank"):
        onnxcc.compile(model, target="host")


def test_a_negative_pad_may_remove_padding():
    """Pad of a 0-wide axis by 2 before and -1 after keeps one (padded) element; the reference
    cropped x first and kept 2 (a reshape after it failed). Found by the mutation fuzzer."""
    model = make_model([("Pad", ["x", "p"], ["y"])], {"x": (1, 0)}, {"y": (2, 1)},
                       {"p": np.array([1, 2, 0, -1], np.int64)}, opset=19)
    x = np.zeros((1, 0), np.float32)
    got = onnxcc.compile(model, target="host").run({"x": x})["y"]
    np.testing.assert_array_equal(got, ort_run(model, {"x": x})["y"])
    assert got.shape == (2, 1)


def test_a_string_epsilon_is_refused():
    """LayerNormalization at opset 12 (no schema to type its attributes) with epsilon = '' reached
    the lowering (ValueError: could not convert string to float)."""
    model = make_model([("LayerNormalization", ["x", "s"], ["y"], {"epsilon": ""})], {"x": (2, 2)},
                       {"y": (2, 2)}, {"s": f32([1, 1])}, opset=12)
    with pytest.raises(AttributeValueError, match="epsilon is '', not a number"):
        onnxcc.compile(model, target="host")


@pytest.mark.parametrize("target", ["host", "cpu"])
@pytest.mark.parametrize("op,attrs,x_shape,w_shape", [
    ("Conv", {"pads": [3, 1], "dilations": [2], "strides": [2**31 - 1]}, (2, 2, 3), (3, 2, 3)),
    ("Conv", {"pads": [4, 1, 4, 1], "dilations": [2, 2], "strides": [2**31 - 1, 1]},
     (1, 1, 2, 2), (1, 1, 3, 2)),
    ("ConvTranspose", {"strides": [2**31 - 1, 2]}, (1, 2, 1, 3), (2, 3, 2, 2)),
])
def test_a_stride_near_2_31_over_a_single_position(target, op, attrs, x_shape, w_shape):
    """Conv stride 2**31 - 1 where the axis has one output position: onnxruntime runs it, but
    the per-tap loop bounds (``(n - 1 + pad + stride - k*d) / stride``) overflowed int32
    (VerifyError). A stride over a single position (one Conv output, one ConvTranspose input)
    adds nothing, so the geometry makes it 1. Found by the mutation fuzzer."""
    rng = np.random.default_rng(5)
    w = f32(rng.standard_normal(w_shape))
    model = make_model([(op, ["x", "w"], ["y"], attrs)], {"x": x_shape}, {"y": None}, {"w": w})
    x = f32(rng.standard_normal(x_shape))
    want = ort_run(model, {"x": x})["y"]
    cm = onnxcc.compile(model, target=target)
    np.testing.assert_allclose(cm.run({"x": x})["y"], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(interpret(cm.graph, {"x": x})["y"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op,attrs,x_shape,w_shape", [
    ("Conv", {"pads": [2**31 - 1, 0, 3, 0], "strides": [3, 3], "dilations": [2, 1]},
     (1, 3, 7, 1), (1, 3, 2, 1)),
    ("Conv", {"pads": [0, 2**30], "strides": [3]}, (1, 3, 7), (1, 3, 2)),
    ("ConvTranspose", {"output_shape": [2**31 - 5]}, (1, 3, 7), (3, 1, 2)),
])
def test_positions_past_int32_are_refused(op, attrs, x_shape, w_shape):
    """Conv pads [2**31 - 1, 0, 3, 0] with stride 3: a valid ONNX model of 715,827,885 output
    rows (onnxruntime fails to allocate them), whose ``o*stride - pad`` the generated int32
    arithmetic cannot hold (VerifyError). It is refused by name before lowering. Found by the
    mutation fuzzer."""
    model = make_model([(op, ["x", "w"], ["y"], attrs)], {"x": x_shape}, {"y": None},
                       {"w": f32(np.ones(w_shape))})
    with pytest.raises(AttributeValueError, match=r"reach positions past 2\*\*31 - 1, which "
                       r"the generated code cannot index \(32-bit\)") as e:
        onnxcc.compile(model, target="host")
    assert (e.value.node, e.value.op) == ("n0", op)


def test_conv_transpose_output_shape_of_the_wrong_length_is_refused():
    """ConvTranspose output_shape [32768] on 2 spatial axes raised IndexError in the lowering;
    onnx's shape inference and onnxruntime refuse it. Found by the mutation fuzzer."""
    model = make_model([("ConvTranspose", ["x", "w"], ["y"], {"output_shape": [32768]})],
                       {"x": (1, 1, 3, 5)}, {"y": None}, {"w": f32(np.ones((1, 2, 1, 1)))})
    assert _ort_refuses(model)
    with pytest.raises(AttributeValueError, match=r"output_shape \[32768\] has 1 values, "
                       r"expected 2 \(one per spatial axis\)"):
        onnxcc.compile(model, target="host")


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_lrn_size_far_past_the_channels(target):
    """LRN size 2**63 - 1: the lowered window ``[c - (size-1)//2, ...]`` overflowed int32
    (VerifyError) and the reference would pad by 2**62 channels. The window is cut to the C
    channels, so every channel's window holds them all (onnxruntime overflows on it)."""
    size = 2**63 - 1
    model = make_model([("LRN", ["x"], ["y"], {"size": size, "alpha": 0.5, "bias": 2.0,
                                               "beta": 0.5})],
                       {"x": (2, 3, 2, 2)}, {"y": (2, 3, 2, 2)})
    x = f32(np.random.default_rng(4).standard_normal((2, 3, 2, 2)))
    want = x / (2.0 + np.float32(0.5 / size) * (x * x).sum(axis=1, keepdims=True)) ** 0.5
    cm = onnxcc.compile(model, target=target)
    np.testing.assert_allclose(cm.run({"x": x})["y"], want, rtol=1e-6)
    np.testing.assert_allclose(interpret(cm.graph, {"x": x})["y"], want, rtol=1e-6)


@pytest.mark.parametrize("target", ["host", "cpu"])
def test_softplus_of_a_large_input_is_the_input(target):
    """Softplus was log(exp(x) + 1) in the generated code: inf from x = 89 (float32), where
    onnxruntime and the reference give x. Found by the mutation fuzzer (Softplus of 2.76e38)."""
    model = make_model([("Softplus", ["x"], ["y"])], {"x": (9,)}, {"y": (9,)})
    x = f32([2.76e38, 100, 89, 20, 0, -20, -100, np.inf, -np.inf])
    want = ort_run(model, {"x": x})["y"]
    got = onnxcc.compile(model, target=target).run({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    nan = onnxcc.compile(model, target=target).run({"x": f32([np.nan] * 9)})["y"]
    assert np.isnan(nan).all()


def test_a_nan_clip_bound_is_refused():
    """Clip with a constant max of NaN: the C dropped the bound (as onnxruntime does), the
    reference interpreter gave NaN everywhere (as numpy and onnx's reference do); the spec defines
    neither. It is refused, as a NaN min/max attribute before opset 11 already was."""
    model = make_model([("Clip", ["x", "lo", "hi"], ["y"])], {"x": (3,)}, {"y": (3,)},
                       {"lo": f32(-1), "hi": f32(np.nan)})
    with pytest.raises(AttributeValueError, match="max is NaN: Clip with a NaN bound has no "
                       "defined result"):
        onnxcc.compile(model, target="host")
    ok = make_model([("Clip", ["x", "lo", "hi"], ["y"])], {"x": (3,)}, {"y": (3,)},
                    {"lo": f32(-1), "hi": f32(np.inf)})
    x = f32([-2, 0.5, 1e30])
    np.testing.assert_array_equal(onnxcc.compile(ok, target="host").run({"x": x})["y"],
                                  ort_run(ok, {"x": x})["y"])
