"""Graph passes: each is ``Graph -> Graph`` with a registered name (see ``manager``).

Importing this package imports every pass module, which registers its passes (``PASSES``,
``get_pass``). A pass function lives in the module of its name:
``from onnxcc.passes.canonicalize import canonicalize``.
"""

from . import (
    canonicalize,
    float16_compute,
    fold_batchnorm,
    fuse_conv_activation,
    fuse_elementwise,
    fuse_qdq,
    patch,
    plan_memory,
    schedule,
    table_activation,
    table_softmax,
)
from .liveness import liveness, peak_live_bytes
from .manager import PASSES, GraphPass, get_pass, graph_pass, run_pipeline
from .plan_memory import Buffer, MemoryPlan, check_plan

__all__ = ["PASSES", "Buffer", "GraphPass", "MemoryPlan", "canonicalize", "check_plan",
           "float16_compute", "fold_batchnorm", "fuse_conv_activation", "fuse_elementwise",
           "fuse_qdq", "get_pass", "graph_pass", "liveness", "patch", "peak_live_bytes",
           "plan_memory", "run_pipeline", "schedule", "table_activation", "table_softmax"]
