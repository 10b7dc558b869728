"""Forms of ops older than opset 7, upgraded node by node while importing.

Opsets 1 to 6 spell some ops differently from the forms onnxcc implements (opset 7 on). Each
node of such a model goes through :func:`upgrade`, which returns the node in its newer form
(plus helper nodes before it) or raises naming the node, the op and what to do:

- ``consumed_inputs`` (opsets 1-5): an in-place memory hint with no effect on values: dropped;
- Add, Sub, Mul, Div, Pow, And, Or, Xor, Equal, Greater, Less with ``broadcast``/``axis``
  (before 7): ``broadcast=1`` with ``axis`` aligns B's dims with A's from ``axis`` on (an
  ``Unsqueeze`` appends B's trailing ones), without ``axis`` it is numpy's suffix alignment;
  ``broadcast=0`` requires equal shapes;
- Gemm ``broadcast`` (before 7): C broadcasts (the later rule, a superset): dropped;
- BatchNormalization and Dropout ``is_test`` (before 7): ``is_test=1`` is inference: dropped;
  ``is_test=0`` (training) is refused;
- PRelu before 7: a slope of C values is per channel (axis 1): reshaped to (C, 1, ...);
- Reshape's ``shape`` attribute (before 5): becomes a constant second input;
- Pad's ``paddings`` (opset 1): renamed ``pads``;
- Concat without ``axis`` (before 4): axis 1;
- Cast's ``to`` as a type name string (before 6): the type's number;
- LSTM, GRU and RNN ``output_sequence`` (before 7): it only said whether Y may be left out:
  dropped.

Refused by name: Upsample-1 (experimental ``height_scale``/``width_scale``), Tile-1 (``tiles`` and
``axis`` inputs), Split-1 with a ``split`` input.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import helper

from .errors import AttributeValueError, UnsupportedOpError

BROADCAST_OPS = {"Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Greater",
                 "Less"}
CONVERT = "convert the model with onnx.version_converter.convert_version(model, 13)"


def _refuse(node: onnx.NodeProto, name: str, opset: int, why: str) -> UnsupportedOpError:
    return UnsupportedOpError([(name, node.op_type, f"{why} (opset {opset} form); {CONVERT}")])


def upgrade(node: onnx.NodeProto, opset: int, shape_of: Callable[[str], tuple[int, ...] | None],
            name: str) -> list[onnx.NodeProto]:
    """``node`` of a model at ``opset`` (< 7) in the form onnxcc implements: a list of nodes
    (helper nodes first, the node itself last). ``shape_of`` gives the shape of an already
    imported tensor (None when unknown); ``name`` is the node's name in errors.

    Raises AttributeValueError (a broken old form) or UnsupportedOpError (an old form onnxcc
    does not implement), naming the node and the remedy."""
    op = node.op_type
    attrs = {a.name: a for a in node.attribute}
    new = onnx.NodeProto()
    new.CopyFrom(node)
    pre: list[onnx.NodeProto] = []

    def drop(*names: str) -> None:
        keep = [a for a in new.attribute if a.name not in names]
        del new.attribute[:]
        new.attribute.extend(keep)

    def value(key: str, default=None):
        return helper.get_attribute_value(attrs[key]) if key in attrs else default

    def helper_name(what: str) -> str:
        return f"{name}/legacy_{what}"

    drop("consumed_inputs")
    if op in BROADCAST_OPS:   # broadcast=0 (the default) before opset 7: equal shapes only
        drop("broadcast", "axis")
        two = len(node.input) == 2   # another arity is refused when the node is imported
        a, b = (shape_of(node.input[0]), shape_of(node.input[1])) if two else (None, None)
        if not value("broadcast", 0):
            if a is not None and b is not None and a != b:
                raise AttributeValueError(
                    f"broadcast=0 needs equal input shapes, got {list(a)} and {list(b)}",
                    node=name, op=op, hint="the model is malformed; re-export it")
        elif "axis" in attrs and a is not None and b is not None:
            axis = value("axis")
            axis = axis + len(a) if axis < 0 else axis
            trailing = len(a) - axis - len(b)
            if axis < 0 or trailing < 0:
                raise AttributeValueError(
                    f"axis {value('axis')} does not place B {list(b)} inside A {list(a)}",
                    node=name, op=op, hint="the model is malformed; re-export it")
            if trailing:
                out = helper_name("b")
                pre.append(helper.make_node("Unsqueeze", [node.input[1]], [out],
                                            name=helper_name("unsqueeze"),
                                            axes=list(range(len(b), len(b) + trailing))))
                new.input[1] = out
    elif op == "Gemm":
        drop("broadcast")
    elif op in ("BatchNormalization", "Dropout"):
        if not value("is_test", 0):
            raise _refuse(node, name, opset, "is_test=0 (training mode, the default before "
                          "opset 7) is not supported; onnxcc compiles inference graphs: set "
                          "is_test=1")
        drop("is_test")
    elif op == "PRelu" and len(node.input) == 2:
        x, slope = shape_of(node.input[0]), shape_of(node.input[1])
        if x is not None and slope is not None and len(x) > 2 and len(slope) == 1 \
                and slope[0] == x[1] and slope[0] != 1:
            out = helper_name("slope")
            pre.append(helper.make_node("Unsqueeze", [node.input[1]], [out],
                                        name=helper_name("unsqueeze"),
                                        axes=list(range(1, len(x) - 1))))
            new.input[1] = out
    elif op == "Reshape" and "shape" in attrs:
        if len(node.input) != 1:
            raise AttributeValueError(f"Reshape with a shape attribute takes one input, got "
                                      f"{len(node.input)}", node=name, op=op,
                                      hint="the model is malformed; re-export it")
        drop("shape")
        out = helper_name("shape")
        pre.append(helper.make_node("Constant", [], [out], name=helper_name("const"),
                                    value=onnx.numpy_helper.from_array(
                                        np.array(value("shape"), np.int64), out)))
        del new.input[1:]
        new.input.append(out)
    elif op == "Pad" and "paddings" in attrs:
        drop("paddings")
        new.attribute.append(helper.make_attribute("pads", list(value("paddings"))))
    elif op == "Concat" and "axis" not in attrs:
        new.attribute.append(helper.make_attribute("axis", 1))
    elif op == "Cast" and attrs.get("to") is not None \
            and attrs["to"].type == onnx.AttributeProto.STRING:
        text = value("to").decode("utf-8", errors="replace").upper()
        kinds = onnx.TensorProto.DataType
        if text not in kinds.keys():
            raise AttributeValueError(f"to={text!r} names no ONNX type", node=name, op=op,
                                      hint="the model is malformed; re-export it")
        drop("to")
        new.attribute.append(helper.make_attribute("to", kinds.Value(text)))
    elif op in ("LSTM", "GRU", "RNN"):
        drop("output_sequence")
    elif op == "Upsample" and ("height_scale" in attrs or "width_scale" in attrs):
        raise _refuse(node, name, opset, "the experimental Upsample-1 (height_scale, "
                      "width_scale) is not supported")
    elif op == "Tile" and len(node.input) == 3:
        raise _refuse(node, name, opset, "Tile-1 (tiles and axis inputs) is not supported")
    elif op == "Split" and len(node.input) == 2:
        raise _refuse(node, name, opset, "Split-1 with a split input is not supported")
    return pre + [new]
