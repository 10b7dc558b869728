"""Opsets 1 to the newest onnx knows: newer op versions whose signature did not change run as
opset 21's; changed ones are implemented or refused by name; forms older than opset 7 are
upgraded (onnxcc.legacy). onnxruntime runs neither the oldest forms nor opset 28, so those are
compared with the same computation written at an opset it runs."""

import numpy as np
import pytest

import onnxcc
from builders import make_model, ort_run
from onnxcc import opsets
from onnxcc.errors import AttributeValueError, ModelLoadError, UnsupportedOpError

TARGETS = ["host", "cpu"]


@pytest.mark.parametrize("target", TARGETS)
def test_conv_pool_at_newest_opset(rng, target):
    x, w = rng.standard_normal((1, 2, 6, 6), "f4"), rng.standard_normal((3, 2, 3, 3), "f4")
    nodes = [("Conv", ["x", "w"], ["t"], {"pads": [1, 1, 1, 1]}),
             ("MaxPool", ["t"], ["y"], {"kernel_shape": [2, 2], "strides": [2, 2]})]
    new = make_model(nodes, {"x": x.shape}, {"y": None}, {"w": w}, opset=opsets.MAX_OPSET)
    old = make_model(nodes, {"x": x.shape}, {"y": None}, {"w": w}, opset=21)
    got = onnxcc.compile(new, target).run({"x": x})["y"]
    np.testing.assert_allclose(got, ort_run(old, {"x": x})["y"], rtol=1e-5, atol=1e-5)


def test_changed_op_refused_by_name(monkeypatch):
    monkeypatch.setattr(opsets, "NEWER_FORMS", {})
    opsets.newer_form_problem.cache_clear()
    m = make_model([("Range", ["a", "b", "c"], ["y"])], {"a": (), "b": (), "c": ()}, {"y": None},
                   opset=27)
    with pytest.raises(UnsupportedOpError) as e:
        onnxcc.compile(m, "host")
    text = str(e.value)
    assert "'n0' (Range)" in text and "opset 27" in text and "stash_type" in text
    assert "convert_version" in text
    opsets.newer_form_problem.cache_clear()


def test_opset_past_onnx_refused():
    m = make_model([("Relu", ["x"], ["y"])], {"x": (2,)}, {"y": (2,)}, opset=opsets.MAX_OPSET + 1)
    with pytest.raises(ModelLoadError, match="upgrade the onnx package"):
        onnxcc.compile(m, "host")


def test_mod_float_fmod0_at_opset_28(rng):
    a, b = rng.standard_normal((4, 5), "f4") * 5, rng.standard_normal((4, 5), "f4") + 3
    m = make_model([("Mod", ["a", "b"], ["y"])], {"a": a.shape, "b": b.shape}, {"y": None},
                   opset=28)
    got = onnxcc.compile(m, "host").run({"a": a, "b": b})["y"]
    np.testing.assert_allclose(got, np.mod(a, b), rtol=1e-5, atol=1e-5)
    with pytest.raises(AttributeValueError, match="fmod must be 1"):
        onnxcc.compile(make_model([("Mod", ["a", "b"], ["y"])], {"a": a.shape, "b": b.shape},
                                  {"y": None}, opset=21), "host")


# ---- forms older than opset 7 --------------------------------------------------------------
@pytest.mark.parametrize("target", TARGETS)
def test_add_broadcast_axis_opset6(rng, target):
    a, b = rng.standard_normal((2, 3, 4), "f4"), rng.standard_normal((3,), "f4")
    m = make_model([("Add", ["a", "b"], ["y"], {"broadcast": 1, "axis": 1})],
                   {"a": a.shape, "b": b.shape}, {"y": None}, opset=6)
    want = ort_run(make_model([("Add", ["a", "b"], ["y"])], {"a": a.shape, "b": (3, 1)},
                              {"y": None}, opset=13), {"a": a, "b": b.reshape(3, 1)})["y"]
    np.testing.assert_allclose(onnxcc.compile(m, target).run({"a": a, "b": b})["y"], want,
                               rtol=1e-6)


def test_prelu_per_channel_opset6(rng):
    x, s = rng.standard_normal((2, 3, 4), "f4"), rng.standard_normal((3,), "f4")
    m = make_model([("PRelu", ["x", "s"], ["y"])], {"x": x.shape}, {"y": None}, {"s": s}, opset=6)
    want = ort_run(make_model([("PRelu", ["x", "s"], ["y"])], {"x": x.shape}, {"y": None},
                              {"s": s.reshape(3, 1)}, opset=13), {"x": x})["y"]
    np.testing.assert_allclose(onnxcc.compile(m, "host").run({"x": x})["y"], want, rtol=1e-6)


def test_old_attribute_forms(rng):
    x = rng.standard_normal((2, 3), "f4")
    cases = [  # (old node, opset, equivalent opset-13 nodes, inits of the new form)
        (("Reshape", ["x"], ["y"], {"shape": [3, 2]}), 4,
         [("Reshape", ["x", "s"], ["y"])], {"s": np.array([3, 2])}),
        (("Concat", ["x", "x"], ["y"]), 3, [("Concat", ["x", "x"], ["y"], {"axis": 1})], {}),
        (("Pad", ["x"], ["y"], {"paddings": [1, 0, 0, 2]}), 1,
         [("Pad", ["x", "p"], ["y"])], {"p": np.array([1, 0, 0, 2])}),
        (("Relu", ["x"], ["y"], {"consumed_inputs": [0]}), 1, [("Relu", ["x"], ["y"])], {}),
    ]
    for old, opset, new, inits in cases:
        got = onnxcc.compile(make_model([old], {"x": x.shape}, {"y": None}, opset=opset),
                             "host").run({"x": x})["y"]
        want = ort_run(make_model(new, {"x": x.shape}, {"y": None}, inits, opset=13), {"x": x})["y"]
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=old[0])


def test_cast_type_name_opset5(rng):
    from onnx import TensorProto, helper

    x = rng.standard_normal((2, 3), "f4")
    m = make_model([("Cast", ["x"], ["y"], {"to": "DOUBLE"})], {"x": x.shape}, {}, opset=5)
    m.graph.output.append(helper.make_tensor_value_info("y", TensorProto.DOUBLE, None))
    got = onnxcc.compile(m, "host").run({"x": x})["y"]
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, x.astype(np.float64))


def test_old_training_forms_refused():
    shapes = {"x": (2, 3), "s": (3,), "b": (3,), "m": (3,), "v": (3,)}
    bn = make_model([("BatchNormalization", list(shapes), ["y"])], shapes, {"y": None}, opset=6)
    with pytest.raises(UnsupportedOpError, match=r"'n0' \(BatchNormalization\).*is_test=0"):
        onnxcc.compile(bn, "host")
    up = make_model([("Upsample", ["x"], ["y"], {"height_scale": 2.0, "width_scale": 2.0})],
                    {"x": (1, 1, 2, 2)}, {"y": None}, opset=1)
    with pytest.raises(UnsupportedOpError, match=r"'n0' \(Upsample\).*opset 1 form"):
        onnxcc.compile(up, "host")


def test_old_forms_that_break_their_spec_are_refused_by_name():
    m = make_model([("Add", ["a", "b"], ["y"])], {"a": (2, 3), "b": (3,)}, {"y": None}, opset=6)
    with pytest.raises(AttributeValueError, match=r"'n0' \(Add\): broadcast=0 needs equal"):
        onnxcc.compile(m, "host")   # before opset 7, broadcasting needs broadcast=1
    m = make_model([("Reshape", ["a", "b"], ["y"], {"shape": [3, 2]})], {"a": (2, 3), "b": (2,)},
                   {"y": None}, opset=4)
    with pytest.raises(AttributeValueError, match=r"'n0' \(Reshape\).*takes one input"):
        onnxcc.compile(m, "host")


def test_an_op_new_after_21_is_implemented_in_its_first_form(monkeypatch):
    """Attention (new in 23, changed in 24 and 25) is the one such op in onnx's schemas, and
    NEWER_FORMS says onnxcc implements it through 25; without that entry only its first form
    would be accepted."""
    opsets.newer_form_problem.cache_clear()
    assert opsets.newer_form_problem("Attention", 23) is None   # its first version (23)
    assert opsets.newer_form_problem("Attention", 25) is None   # NEWER_FORMS: up to 25
    monkeypatch.delitem(opsets.NEWER_FORMS, "Attention")
    opsets.newer_form_problem.cache_clear()
    try:
        why = opsets.newer_form_problem("Attention", 24)
        assert "Attention in opset 24" in why and "up to version 23" in why
    finally:
        monkeypatch.undo()
        opsets.newer_form_problem.cache_clear()
