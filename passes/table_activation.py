"""table_activation: Sigmoid and Tanh -> onnxcc.TableActivation (FPGA targets).

    %y = Sigmoid(%x)        (x float32)
        ==>  %y = onnxcc.TableActivation(%x, %table*) {lo=-8, scale=64, function="Sigmoid"}

exp and division are costly in FPGA logic; hls4ml computes these functions from a 1024-entry
table over the declared input range [-8, 8) (``onnxcc.ops.table``). Preconditions: none.
Ordering: before fuse_conv_activation, so the table stays a node of its own (a layer whose
input is the stored tensor, never the wide accumulator of the layer before: hls4ml's 'auto'
precision fed 37-bit sums straight into its tables).
"""

from __future__ import annotations

from onnxcc.ir import Graph, Node
from onnxcc.ops.table import ACTIVATION_TABLES, activation_table

from .manager import graph_pass


@graph_pass("table_activation")
def table_activation(g: Graph) -> Graph:
    """Replace each float32 Sigmoid and Tanh by onnxcc.TableActivation (module docstring)."""
    for n in list(g.nodes):
        if n.op not in ACTIVATION_TABLES or n.inputs[0].dtype.name != "float32":
            continue
        table, lo, scale = activation_table(n.op)
        g.replace([n], [Node("onnxcc.TableActivation",
                             [n.inputs[0], g.constant(f"{n.name}_table", table)], list(n.outputs),
                             {"lo": lo, "scale": scale, "function": n.op}, n.name)])
    return g
