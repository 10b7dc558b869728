"""Window functions (opset 17): HannWindow, HammingWindow, BlackmanWindow.

size: an int32/int64 scalar that sets the output length, so it must be known at compile time
(a constant, or a graph input bound with ``onnxcc.compile(..., constant_inputs=...)``); the
output (size,) is in ``output_datatype`` (float32 by default). With ``periodic`` (the default)
the window has period ``N = size``, else ``N = size - 1`` (symmetric). As the spec's reference:
Hann ``sin(pi n / N)^2``; Hamming ``25/46 - 21/46 cos(2 pi n / N)``; Blackman
``0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)``; computed in float64 and converted.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import OpDef, attr, register_op
from ._util import const_input, onnx_dtype


def window_size(node: Node) -> int:
    """The window length (the constant size input). Raises ShapeError when size is not a
    constant or is negative."""
    n = int(np.asarray(const_input(node, 0, "size")).reshape(-1)[0])
    if n < 0:
        raise ShapeError(f"size {n} is negative", node=node.name, op=node.op,
                         hint="give a window length >= 0")
    return n


def window(op: str, size: int, periodic: bool) -> np.ndarray:
    """The float64 window ``op`` of ``size`` samples (module docstring)."""
    n = np.arange(size, dtype=np.float64)
    N = size if periodic else size - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        if op == "HannWindow":
            return np.sin(n * np.pi / N) ** 2
        if op == "HammingWindow":
            alpha = 25.0 / 46.0
            return alpha - np.cos(n * np.pi * 2 / N) * (1 - alpha)
        return 0.42 - 0.5 * np.cos(n * np.pi * 2 / N) + 0.08 * np.cos(n * np.pi * 4 / N)


class _Window(OpDef):
    attrs = {"periodic": 1, "output_datatype": 1}

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType((window_size(node),), onnx_dtype(node, attr(node, "output_datatype")))]

    def reference(self, node: Node, size) -> list[np.ndarray]:
        w = window(node.op, window_size(node), bool(attr(node, "periodic")))
        dt = onnx_dtype(node, attr(node, "output_datatype"))
        with np.errstate(invalid="ignore"):
            return [w.astype(dt)]


@register_op("HannWindow")
class HannWindow(_Window):
    """ONNX HannWindow(size; periodic, output_datatype) (module docstring)."""


@register_op("HammingWindow")
class HammingWindow(_Window):
    """ONNX HammingWindow(size; periodic, output_datatype) (module docstring)."""


@register_op("BlackmanWindow")
class BlackmanWindow(_Window):
    """ONNX BlackmanWindow(size; periodic, output_datatype) (module docstring)."""
