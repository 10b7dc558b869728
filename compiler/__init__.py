"""onnxcc: compile ONNX models to C libraries (and, later, HLS C++ and LLVM code)."""

from .errors import OnnxccError

__version__ = "0.1.0"

__all__ = ["OnnxccError", "__version__"]
