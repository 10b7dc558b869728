"""table_softmax: Softmax over the last axis -> onnxcc.TableSoftmax (FPGA targets).

    %y = Softmax(%x) {axis=-1}      (x float32 (..., L))
        ==>  %y = onnxcc.TableSoftmax(%x, %exp_table*, %inv_table*) {exp_scale, inv_scale}

Division and exp are costly in FPGA logic; hls4ml and FINN compute softmax from an exp table and
a reciprocal table (``onnxcc.ops.table``: 1024 entries each, exp over [-8, 0]). A Softmax over
another axis (one followed only by dims of 1 counts as the last: squeezenet's (1, 1000, 1, 1)
over axis 1), or of another dtype, is left alone (and the HLS back end then names it as
unsupported). Before opset 13 Softmax flattened the axes from ``axis`` on; over the last axis
alone both forms agree. Preconditions: canonicalize. Ordering: before
schedule.
"""

from __future__ import annotations

from onnxcc.ir import Graph, Node
from onnxcc.ops.table import softmax_tables

from .manager import graph_pass


@graph_pass("table_softmax")
def table_softmax(g: Graph) -> Graph:
    """Replace each float32 Softmax over the last axis by onnxcc.TableSoftmax (see the module
    docstring)."""
    for n in list(g.nodes):
        x = n.inputs[0] if n.inputs else None
        if n.op != "Softmax" or x is None or x.dtype.name != "float32" or not x.shape:
            continue
        axis = n.attrs.get("axis")
        axis = int(axis) if axis is not None else (-1 if (n.version or 13) >= 13 else 1)
        axis %= len(x.shape)
        if any(d != 1 for d in x.shape[axis + 1:]):   # not the last axis (but for 1s)
            continue
        et, it, es, ins = softmax_tables(x.shape[axis])
        ins_ = [x, g.constant(f"{n.name}_exp_table", et), g.constant(f"{n.name}_inv_table", it)]
        g.replace([n], [Node("onnxcc.TableSoftmax", ins_, list(n.outputs),
                             {"exp_scale": es, "inv_scale": ins, "axis": axis}, n.name)])
    return g
