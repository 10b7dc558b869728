"""If, Loop and Scan (onnxcc.control_flow): inlined at import, compiled for each back end through
the public API and compared with onnxruntime."""

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import onnxcc
from builders import IR_VERSION, ort_run
from onnxcc.errors import ShapeError

TARGETS = ("host", "cortex-m4", "cpu")


def f32(name, shape):
    return h.make_tensor_value_info(name, T.FLOAT, shape)


def typed(name, elem, shape):
    return h.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = IR_VERSION
    return m


def check(m, feeds, target, **kw):
    cm = onnxcc.compile(m, target, **kw)
    got = cm.run({k: v for k, v in feeds.items() if k not in kw.get("constant_inputs", {})})
    want = ort_run(m, feeds)
    for name, w in want.items():
        np.testing.assert_allclose(got[name], w, rtol=1e-5, atol=1e-6, err_msg=name)
    return cm


def ops(cm):
    return [n.op for n in cm.graph.nodes]


def if_model(then_shape=(2, 3)):
    """y = If(c, then: x + x (or a constant of then_shape), else: x * w with w a branch
    initializer)."""
    if then_shape == (2, 3):
        then_nodes = [h.make_node("Add", ["x", "x"], ["t"])]
    else:
        then_nodes = [h.make_node("Constant", [], ["t"], value=numpy_helper.from_array(
            np.ones(then_shape, np.float32)))]
    then = h.make_graph(then_nodes, "then", [], [f32("t", list(then_shape))])
    w = numpy_helper.from_array(np.full((2, 3), 3.0, np.float32), "w")
    other = h.make_graph([h.make_node("Mul", ["x", "w"], ["e"])], "else", [],
                         [f32("e", [2, 3])], [w])
    node = h.make_node("If", ["c"], ["y"], name="if0", then_branch=then, else_branch=other)
    return model([node], [typed("c", T.BOOL, []), f32("x", [2, 3])], [f32("y", None)])


X23 = np.arange(6, dtype=np.float32).reshape(2, 3) - 2


@pytest.mark.parametrize("target", TARGETS)
def test_if_runtime_condition_computes_both_branches(target):
    m = if_model()
    cm = check(m, {"c": np.array(True), "x": X23}, target)
    assert "If" not in ops(cm)
    got = cm.run({"c": np.array(False), "x": X23})["y"]
    np.testing.assert_allclose(got, ort_run(m, {"c": np.array(False), "x": X23})["y"])


@pytest.mark.parametrize("cond", [True, False])
def test_if_condition_bound_inlines_one_branch(cond):
    cm = check(if_model(), {"c": np.array(cond), "x": X23}, "host",
               constant_inputs={"c": np.array(cond)})
    assert ops(cm) == ["Add" if cond else "Mul"]


def test_if_folded_condition_and_shape_mismatch():
    # a condition computed from constants folds: one branch, even with unequal branch shapes
    m = if_model(then_shape=(4,))
    m.graph.node.insert(0, h.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
        np.array(False))))
    del m.graph.input[0]
    check(m, {"x": X23}, "host")
    with pytest.raises(ShapeError) as e:   # the same branches under a runtime condition
        onnxcc.compile(if_model(then_shape=(4,)), "host")
    text = str(e.value)
    assert "'if0' (If)" in text and "constant_inputs" in text and "[4]" in text


def loop_model(m_input=False, trip=4, cond_driven=False, cond="cond"):
    """Loop: carried s <- s * 0.5 + x[i] (x is an outer-scope value, read by a Gather of the
    iteration number), scan output s; with ``cond_driven`` the body's cond is i + 1 < 3."""
    one = numpy_helper.from_array(np.array(1, np.int64), "one")
    nodes = [h.make_node("Gather", ["x", "i"], ["xi"], axis=0),
             h.make_node("Constant", [], ["half"], value_float=0.5),
             h.make_node("Mul", ["s", "half"], ["sh"]),
             h.make_node("Add", ["sh", "xi"], ["s_out"]),
             h.make_node("Identity", ["s_out"], ["scan"])]
    if cond_driven:
        nodes += [h.make_node("Add", ["i", "one"], ["i1"]),
                  h.make_node("Less", ["i1", "three"], ["c_out"])]
    else:
        nodes.append(h.make_node("Identity", ["c_in"], ["c_out"]))
    body = h.make_graph(nodes, "body",
                        [typed("i", T.INT64, []), typed("c_in", T.BOOL, []), f32("s", [3])],
                        [typed("c_out", T.BOOL, []), f32("s_out", [3]), f32("scan", [3])],
                        [one] if cond_driven else [])
    inits = [numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.array(3, np.int64), "three")]
    inputs = [f32("x", [5, 3]), f32("s0", [3])]
    if m_input:
        inputs.append(typed("M", T.INT64, []))
    else:
        inits.append(numpy_helper.from_array(np.array(trip, np.int64), "M"))
    node = h.make_node("Loop", ["" if cond_driven else "M", cond, "s0"], ["s_final", "scans"],
                       name="loop0", body=body)
    return model([node], inputs, [f32("s_final", [3]), f32("scans", None)], inits)


FEEDS = {"x": np.arange(15, dtype=np.float32).reshape(5, 3), "s0": np.ones(3, np.float32)}


@pytest.mark.parametrize("target", TARGETS)
def test_loop_unrolled_with_carried_state_and_scan_output(target):
    cm = check(loop_model(), FEEDS, target)
    assert "Loop" not in ops(cm)


def test_loop_driven_by_a_condition_that_folds():
    cm = check(loop_model(cond_driven=True), FEEDS, "host")
    assert cm.run(FEEDS)["scans"].shape == (3, 3)


def test_loop_trip_count_must_be_known():
    with pytest.raises(ShapeError) as e:
        onnxcc.compile(loop_model(m_input=True), "host")
    assert "'loop0' (Loop)" in str(e.value) and "constant_inputs" in str(e.value)
    check(loop_model(m_input=True), {**FEEDS, "M": np.array(2, np.int64)}, "host",
          constant_inputs={"M": np.array(2, np.int64)})


def test_loop_unroll_is_capped():
    with pytest.raises(ShapeError) as e:
        onnxcc.compile(loop_model(trip=100_000, cond=""), "host")
    assert "'loop0' (Loop)" in str(e.value) and "4096" in str(e.value)


def scan_model(in_axis=0, in_dir=0, out_axis=0, out_dir=0):
    """Scan over x (2, 4, 3) along ``in_axis``: running sum state plus scan output
    sum * 2 (opset 16)."""
    body = h.make_graph([h.make_node("Add", ["acc", "xt"], ["acc_out"]),
                         h.make_node("Add", ["acc_out", "acc_out"], ["y"])], "body",
                        [f32("acc", None), f32("xt", None)],
                        [f32("acc_out", None), f32("y", None)])
    node = h.make_node("Scan", ["a0", "x"], ["a", "ys"], name="scan0", body=body,
                       num_scan_inputs=1, scan_input_axes=[in_axis],
                       scan_input_directions=[in_dir], scan_output_axes=[out_axis],
                       scan_output_directions=[out_dir])
    shape = [2, 4, 3]
    del shape[in_axis]
    return model([node], [f32("a0", shape), f32("x", [2, 4, 3])],
                 [f32("a", None), f32("ys", None)], opset=16), shape


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("axes", [(0, 0, 0, 0), (1, 1, 1, 0), (2, 0, -1, 1)])
def test_scan_axes_and_directions(target, axes):
    m, shape = scan_model(*axes)
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    cm = check(m, {"a0": np.ones(shape, np.float32), "x": x}, target)
    assert "Scan" not in ops(cm)


@pytest.mark.parametrize("target", TARGETS)
def test_if_nested_in_loop_with_shadowed_name(target):
    # body: carried "x" shadows the outer graph input x; If on (i == 1) folds per iteration,
    # If on the outer runtime input c selects at run time
    eq = h.make_node("Equal", ["i", "k1"], ["is1"])
    inner_c = h.make_node("If", ["is1"], ["u"], name="ifi",
                          then_branch=h.make_graph([h.make_node("Neg", ["x"], ["n"])], "t", [],
                                                   [f32("n", [3])]),
                          else_branch=h.make_graph([h.make_node("Abs", ["x"], ["a"])], "e", [],
                                                   [f32("a", [3])]))
    inner_r = h.make_node("If", ["c"], ["x_out"], name="ifr",
                          then_branch=h.make_graph([h.make_node("Add", ["u", "b"], ["p"])], "t",
                                                   [], [f32("p", [3])]),
                          else_branch=h.make_graph([h.make_node("Sub", ["u", "b"], ["q"])], "e",
                                                   [], [f32("q", [3])]))
    body = h.make_graph([eq, inner_c, inner_r, h.make_node("Identity", ["cin"], ["cout"])],
                        "body", [typed("i", T.INT64, []), typed("cin", T.BOOL, []),
                                 f32("x", [3])],
                        [typed("cout", T.BOOL, []), f32("x_out", [3])],
                        [numpy_helper.from_array(np.array(1, np.int64), "k1")])
    loop = h.make_node("Loop", ["M", "", "x"], ["y"], name="loop0", body=body)
    m = model([loop], [f32("x", [3]), f32("b", [3]), typed("c", T.BOOL, [])], [f32("y", [3])],
              [numpy_helper.from_array(np.array(3, np.int64), "M")])
    feeds = {"x": np.array([1, -2, 3], np.float32), "b": np.array([0.5, 1, 2], np.float32)}
    for c in (True, False):
        check(m, {**feeds, "c": np.array(c)}, target)


def test_loop_zero_trips_passes_the_state_through():
    body = h.make_graph([h.make_node("Identity", ["c"], ["c_out"]),
                         h.make_node("Neg", ["s"], ["s_out"])], "body",
                        [typed("i", T.INT64, []), typed("c", T.BOOL, []), f32("s", [2])],
                        [typed("c_out", T.BOOL, []), f32("s_out", [2])])
    m = model([h.make_node("Loop", ["M", "", "s0"], ["s"], name="loop0", body=body)],
              [f32("s0", [2])], [f32("s", [2])],
              [numpy_helper.from_array(np.array(0, np.int64), "M")])
    check(m, {"s0": np.array([1, -1], np.float32)}, "host")


def test_loop_condition_computed_at_run_time_is_refused():
    # the body's condition reads a runtime input: the trip count is not known at compile time
    body = h.make_graph([h.make_node("Less", ["s", "lim"], ["c_out"]),
                         h.make_node("Add", ["s", "s"], ["s_out"])], "body",
                        [typed("i", T.INT64, []), typed("c", T.BOOL, []), f32("s", [])],
                        [typed("c_out", T.BOOL, []), f32("s_out", [])])
    m = model([h.make_node("Loop", ["", "c0", "s0"], ["s"], name="loop0", body=body)],
              [f32("s0", []), f32("lim", [])], [f32("s", [])],
              [numpy_helper.from_array(np.array(True), "c0")])
    with pytest.raises(ShapeError) as e:
        onnxcc.compile(m, "host")
    text = str(e.value)
    assert "'loop0' (Loop)" in text and "after iteration 0" in text and "constant_inputs" in text
    check(m, {"s0": np.array(1, np.float32), "lim": np.array(5, np.float32)}, "host",
          constant_inputs={"s0": np.array(1, np.float32), "lim": np.array(5, np.float32)})


@pytest.mark.parametrize("op,drop", [("Loop", "body"), ("If", "then_branch"),
                                     ("If", "else_branch"), ("If", "condition")])
def test_malformed_control_flow_node_is_a_model_error(op, drop):
    """A Loop without its body, an If without a branch or without its condition: a
    ModelLoadError that names the node, the op and the missing part (a fuzzed model reached a
    bare KeyError here)."""
    from onnxcc.errors import ModelLoadError

    m = loop_model() if op == "Loop" else if_model()
    node = m.graph.node[0]
    if drop == "condition":
        node.input[0] = ""
    else:
        keep = [a for a in node.attribute if a.name != drop]
        del node.attribute[:]
        node.attribute.extend(keep)
    with pytest.raises(ModelLoadError) as e:
        onnxcc.compile(m, "host")
    name = "loop0" if op == "Loop" else "if0"
    assert f"'{name}' ({op})" in str(e.value)
    assert (drop if drop != "condition" else "condition input") in str(e.value)
