"""The light model zoo shipped inside the onnx wheel (``onnx/backend/test/data/light``).

Each model's weights are ``ConstantOfShape`` fills; its expected output was made by onnx's own
runner on the input ``np.arange(n).reshape(shape) / n`` (float32).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import ModelLoadError

ZOO = {"alexnet": "bvlc_alexnet", "densenet121": "densenet121", "inception_v1": "inception_v1",
       "inception_v2": "inception_v2", "resnet50": "resnet50", "shufflenet": "shufflenet",
       "squeezenet": "squeezenet", "vgg19": "vgg19", "zfnet512": "zfnet512"}


def _light_dir() -> Path:
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def zoo_path(name: str) -> Path:
    """Path of the light model ``name`` (one of :data:`ZOO`). Raises ModelLoadError if unknown."""
    if name not in ZOO:
        raise ModelLoadError(f"unknown zoo model {name!r}", hint=f"choose one of {', '.join(ZOO)}")
    return _light_dir() / f"light_{ZOO[name]}.onnx"


def zoo_input(shape: tuple[int, ...]) -> np.ndarray:
    """The input onnx's runner feeds the light models: arange(n).reshape(shape) / n, float32."""
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float32).reshape(shape) / n).astype(np.float32)


def zoo_expected_output(name: str) -> np.ndarray:
    """The stored expected output ``light_<name>_output_0.pb``."""
    t = onnx.TensorProto()
    t.ParseFromString((_light_dir() / f"light_{ZOO[name]}_output_0.pb").read_bytes())
    return numpy_helper.to_array(t)
