"""Real architectures with seeded random weights (tests/models/real/, written by
benchmarks/real_models.py --save: torchvision-style MobileNetV2, MobileNetV3-Small, EfficientNet-B0,
ResNet-18, a small ViT, LSTM and GRU classifiers, torch.nn.TransformerEncoder, and scikit-learn
pipelines through skl2onnx), compiled for ``host`` (C) and ``cpu`` (LLVM) and compared with
onnxruntime; the host build's C compiles with -Werror under gcc and clang. Torch and skl2onnx are
not needed: the models are committed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

from builders import ort_run
import onnxcc
from onnxcc.runtime.build import WARN_FLAGS, find_cc

REAL = Path(__file__).parent / "models" / "real"
SKLEARN = ("scaler_logreg", "random_forest", "gradient_boosting", "scaler_svc", "scaler_mlp")
CNNS = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet18")
MODELS = sorted(p.stem for p in REAL.glob("*.onnx"))


def _feeds(name: str, proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The seeded input of benchmarks/real_models.py: standard normal, x3 for the scikit-learn
    models (fitted on features of that scale)."""
    rng = np.random.default_rng(1)
    scale = 3.0 if name.startswith(SKLEARN) else 1.0
    inits = {t.name for t in proto.graph.initializer}
    return {vi.name: (rng.standard_normal([d.dim_value for d in vi.type.tensor_type.shape.dim])
                      * scale).astype(np.float32)
            for vi in proto.graph.input if vi.name not in inits}


def _case(name: str, target: str):
    marks = [pytest.mark.slow] if name.startswith(CNNS) else []
    return pytest.param(name, target, marks=marks, id=f"{name}-{target}")


def test_the_committed_set_covers_every_architecture():
    archs = {n.rsplit("_opset", 1)[0] for n in MODELS}
    assert archs == {*CNNS, *SKLEARN, "vit_small", "lstm", "gru", "transformer_encoder"}
    assert all(p.stat().st_size < 400_000 for p in REAL.glob("*.onnx"))


@pytest.mark.parametrize("name,target", [_case(n, t) for n in MODELS for t in ("host", "cpu")])
def test_real_model_matches_onnxruntime(name, target):
    proto = onnx.load(REAL / f"{name}.onnx")
    feeds = _feeds(name, proto)
    cm = onnxcc.compile(proto, target)
    got, want = cm.run(feeds), ort_run(proto, feeds)
    assert set(got) == set(want)
    for k, w in want.items():
        g = np.asarray(got[k]).reshape(w.shape)
        if w.dtype.kind in "iu":   # predicted labels
            np.testing.assert_array_equal(g, w, err_msg=k)
        else:
            scale = max(1.0, float(np.abs(w).max()))
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * scale, err_msg=k)
    if target != "host":
        return
    # cm.run built <m>.c and <m>_weights.c with find_cc() under WARN_FLAGS (-Werror) at -O2: gcc
    # when cc is gcc, as on Debian. clang's warnings come from its front end: -fsyntax-only.
    m = cm.mmap["c_prefix"]
    srcs = [str(cm.lib_dir / f"{m}.c"), str(cm.lib_dir / f"{m}_weights.c")]
    checks = [("clang", "-fsyntax-only")]
    if "gcc" not in Path(shutil.which(find_cc()) or "").resolve().name:
        checks.append(("gcc", "-O1"))
    for cc, how in checks:
        if shutil.which(cc):
            for src in srcs:
                subprocess.run([cc, *WARN_FLAGS, how, f"-I{cm.lib_dir}", "-c", src, "-o",
                                "/dev/null"], check=True)
