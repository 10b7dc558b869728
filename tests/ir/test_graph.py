import numpy as np
import pytest

from onnxcc.errors import VerifyError
from onnxcc.ir import Graph, Node, TensorType, Value, to_networkx

F = np.float32


def _chain():
    x = Value("x", TensorType((2, 3), F))
    a = Value("a", TensorType((2, 3), F))
    y = Value("y", TensorType((2, 3), F))
    n0 = Node("Relu", [x], [a], name="r0")
    n1 = Node("Relu", [a], [y], name="r1")
    a.producer, y.producer = n0, n1
    return Graph([n0, n1], [x], [y], name="chain"), x, a, y, n0, n1


def test_text_form_is_deterministic_one_line_per_node():
    g, *_ = _chain()
    assert str(g) == (
        "graph chain(%x:f32[2,3])\n"
        "  %a:f32[2,3] = Relu(%x)\n"
        "  %y:f32[2,3] = Relu(%a)\n"
        "  return %y")
    assert str(g.copy()) == str(g)


def test_users_replace_all_uses_and_remove_dead():
    g, x, a, y, n0, n1 = _chain()
    assert g.users(a) == [n1]
    g.replace_all_uses(a, x)          # r1 now reads x: r0 is dead
    assert g.users(x) == [n0, n1]
    assert g.remove_dead() == 1
    assert [n.name for n in g.nodes] == ["r1"]
    g.verify()


def test_replace_all_uses_keeps_output_name():
    g, x, a, y, n0, n1 = _chain()
    g.nodes = [n0]
    g.replace_all_uses(y, a)
    assert g.outputs[0] is a and a.name == "y"


def test_toposort_restores_order_and_detects_cycles():
    g, x, a, y, n0, n1 = _chain()
    g.nodes = [n1, n0]
    with pytest.raises(VerifyError):
        g.verify()
    g.toposort()
    assert [n.name for n in g.nodes] == ["r0", "r1"]
    n0.inputs = [y]
    with pytest.raises(VerifyError, match="cycle"):
        g.toposort()


def test_verify_catches_wrong_declared_type_and_double_producer():
    g, x, a, y, n0, n1 = _chain()
    a.type = TensorType((3, 2), F)
    with pytest.raises(VerifyError, match="infers"):
        g.verify()
    a.type = TensorType((2, 3), F)
    n1.outputs = [a]
    with pytest.raises(VerifyError):
        g.verify()


def test_copy_is_deep_and_networkx_view_has_edges():
    g, *_ = _chain()
    h = g.copy()
    h.nodes[0].attrs["k"] = 1
    assert "k" not in g.nodes[0].attrs
    dg = to_networkx(g)
    assert list(dg.edges) == [(0, 1)]


def test_fresh_names_do_not_collide():
    g, *_ = _chain()
    names = {g.fresh_name("a") for _ in range(5)}
    assert len(names) == 5 and "a" not in names
