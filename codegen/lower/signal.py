"""Window functions as loop IR: their values depend on the compile-time size only, so the
kernel writes a table computed by the op's reference (the lowering of Shape/Size/
ConstantOfShape, :func:`onnxcc.codegen.lower.tensor._lower_known`: a fill loop for a splat, else
a copy of a weight table). Constant folding normally removes these nodes first."""

from __future__ import annotations

from . import lower
from .tensor import _lower_known

lower("HannWindow", "HammingWindow", "BlackmanWindow")(_lower_known)
