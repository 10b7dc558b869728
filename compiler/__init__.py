"""onnxcc: compile ONNX models to C libraries for microcontrollers and hosts, LLVM objects for
CPUs and Vitis HLS projects for FPGAs.

    import onnxcc
    m = onnxcc.compile("model.onnx", target="host")
    y = m.run({"input": x})
    m.save("build/model")
    print(m.report())
"""

from .errors import (AttributeValueError, BuildError, DesignFitError, ModelLoadError,
                     OnnxccError, OutputError, ShapeError, UnsupportedOpError, VerifyError)

from .quantize import CalibrationError, Int8
from onnxcc.codegen.hls.config import HLSConfig
from onnxcc.codegen.hls.fixed import FixedPoint, PrecisionError

__version__ = "0.1.0"


def compile(model, target: str = "host", **kwargs):  # noqa: A001 - the public name is compile
    """Compile an ONNX model; see :func:`onnxcc.driver.compile` for arguments and errors."""
    from .driver import compile as _compile

    return _compile(model, target, **kwargs)


def plot_memory_plan(compiled_model, path):
    """Draw ``compiled_model``'s arena over the schedule steps into the image ``path`` (bytes on
    the y axis); returns the rectangles drawn. See :func:`onnxcc.report.plot_memory_plan`."""
    from .report import plot_memory_plan as _plot

    return _plot(compiled_model, path)


__all__ = ["AttributeValueError", "BuildError", "DesignFitError", "HLSConfig", "CalibrationError", "FixedPoint", "Int8", "ModelLoadError",
           "OnnxccError", "OutputError", "PrecisionError", "ShapeError", "UnsupportedOpError", "VerifyError",
           "__version__", "compile", "plot_memory_plan"]
