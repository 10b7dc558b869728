"""Real architectures with seeded random weights, exported to ONNX at several opsets, compiled by
onnxcc for ``host`` (C) and ``cpu`` (LLVM) and compared with onnxruntime; the generated C is also
built with ``-Werror`` under gcc and clang.

    python benchmarks/real_models.py [--opsets 13,17,18,newest] [--models resnet18,gru,...]
                                     [--save DIR] [--no-werror]

The architectures are written here in ``torch.nn`` after torchvision's (torchvision itself is not
needed): MobileNetV2 (inverted residuals, ReLU6), MobileNetV3-Small (SE + hardswish),
EfficientNet-B0 (MBConv + SiLU + SE, its seven stages), ResNet-18 (BasicBlocks), a small ViT
(patch embedding + ``nn.TransformerEncoder`` with a class token), an LSTM and a GRU sequence
classifier and a ``torch.nn.TransformerEncoder``; plus scikit-learn pipelines exported with
skl2onnx (scaler + logistic regression, random forest, gradient boosting, SVC, MLP). Widths and
input sizes are scaled down (width multipliers, 32x32 or 64x64 images) so each model stays small
and a check takes seconds; the layer structure is torchvision's. ``--save DIR`` writes the models
(tests/models/real/ holds the committed ones, checked by tests/test_real_models.py without torch).

torch and skl2onnx are optional dependencies of this script only (``pip install torch skl2onnx
scikit-learn``), not of onnxcc or its tests. Torch models are exported with the TorchScript
exporter (``torch.onnx.export(..., dynamo=False)``) at every opset, so one exporter writes all four
(the dynamo exporter starts at opset 18 and needs onnxscript, not installed beside torch 2.13 here);
"newest" is the newest opset it writes (``torch.onnx._constants.ONNX_MAX_OPSET``, 23 for torch
2.13). Below opset 14 that exporter has no symbolic for ``scaled_dot_product_attention``, which
``nn.MultiheadAttention`` calls: the ViT and the encoder are then exported with its math form
(see ``_math_attention``). scikit-learn pipelines: "newest" is skl2onnx's newest tested opset
(22 for skl2onnx 1.20), ai.onnx.ml opset 3.

Each row of the table: model, opset, target, the largest absolute difference from onnxruntime over
all outputs, pass/fail (``|got - want| <= atol + rtol * |want|`` with rtol 1e-4, atol 1e-5 x
max(1, max|want|)), and onnxcc.compile's wall seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from math import sqrt as math_sqrt
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx

IR_VERSION = 10   # onnxruntime 1.31 reads IR versions up to 11
RTOL, ATOL = 1e-4, 1e-5


# ----------------------------------------------------------------------------- torch architectures

def _torch_models(full: bool = False):
    """name -> (constructor, input shape); the constructors need torch. ``full``: torchvision's
    own widths and 224x224 inputs (MobileNetV2 1.0, MobileNetV3-Small 1.0 with its 1024-wide
    head, EfficientNet-B0 1.0, ResNet-18 base 64, 1000 classes; ViT-Ti-like 192 wide, 12 layers)."""
    import torch
    from torch import nn

    def divisible(v: float, d: int = 8, min_value: int | None = None) -> int:
        """torchvision's _make_divisible: round channels to a multiple of d, not below 90%."""
        d = ROUND[0] if d == 8 else d
        min_value = min_value or d
        new_v = max(min_value, int(v + d / 2) // d * d)
        return new_v + d if new_v < 0.9 * v else new_v

    class ConvBNAct(nn.Sequential):
        def __init__(self, cin, cout, k=3, stride=1, groups=1, act=nn.ReLU6):
            layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                      nn.BatchNorm2d(cout)]
            if act is not None:
                layers.append(act(inplace=True) if act is not nn.Hardswish else act())
            super().__init__(*layers)

    class SqueezeExcitation(nn.Module):
        """torchvision.ops.SqueezeExcitation: avgpool, fc (1x1 conv), act, fc, scale_activation."""

        def __init__(self, cin, csq, act=nn.ReLU, scale=nn.Sigmoid):
            super().__init__()
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc1, self.fc2 = nn.Conv2d(cin, csq, 1), nn.Conv2d(csq, cin, 1)
            self.act, self.scale = act(), scale()

        def forward(self, x):
            s = self.scale(self.fc2(self.act(self.fc1(self.avgpool(x)))))
            return x * s

    # --- MobileNetV2 (torchvision.models.mobilenetv2)
    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = int(round(cin * expand))
            self.use_res = stride == 1 and cin == cout
            layers = [] if expand == 1 else [ConvBNAct(cin, hidden, 1)]
            layers += [ConvBNAct(hidden, hidden, 3, stride, hidden),
                       nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.conv = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self, width=0.25, num_classes=10):
            super().__init__()
            setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                       [6, 160, 3, 2], [6, 320, 1, 1]]
            cin, last = divisible(32 * width), divisible(1280 * width)   # head scaled too
            feats = [ConvBNAct(3, cin, stride=2)]
            for t, c, n, s in setting:
                cout = divisible(c * width)
                for i in range(n):
                    feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                    cin = cout
            feats.append(ConvBNAct(cin, last, 1))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

        def forward(self, x):
            x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
            return self.classifier(torch.flatten(x, 1))

    # --- MobileNetV3-Small (torchvision.models.mobilenetv3)
    class V3Block(nn.Module):
        def __init__(self, cin, k, exp, cout, se, act, stride):
            super().__init__()
            self.use_res = stride == 1 and cin == cout
            layers = [] if exp == cin else [ConvBNAct(cin, exp, 1, act=act)]
            layers.append(ConvBNAct(exp, exp, k, stride, exp, act=act))
            if se:
                layers.append(SqueezeExcitation(exp, divisible(exp // 4), scale=nn.Hardsigmoid))
            layers.append(ConvBNAct(exp, cout, 1, act=None))
            self.block = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.block(x) if self.use_res else self.block(x)

    class MobileNetV3Small(nn.Module):
        def __init__(self, width=0.25, num_classes=10, hidden=128):
            super().__init__()
            RE, HS = nn.ReLU, nn.Hardswish
            cfg = [(16, 3, 16, 16, True, RE, 2), (16, 3, 72, 24, False, RE, 2),
                   (24, 3, 88, 24, False, RE, 1), (24, 5, 96, 40, True, HS, 2),
                   (40, 5, 240, 40, True, HS, 1), (40, 5, 240, 40, True, HS, 1),
                   (40, 5, 120, 48, True, HS, 1), (48, 5, 144, 48, True, HS, 1),
                   (48, 5, 288, 96, True, HS, 2), (96, 5, 576, 96, True, HS, 1),
                   (96, 5, 576, 96, True, HS, 1)]
            first = divisible(16 * width)
            layers = [ConvBNAct(3, first, 3, 2, act=HS)]
            for cin, k, exp, cout, se, act, s in cfg:
                layers.append(V3Block(divisible(cin * width), k, divisible(exp * width),
                                      divisible(cout * width), se, act, s))
            lastc = divisible(96 * width)
            layers.append(ConvBNAct(lastc, 6 * lastc, 1, act=HS))
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Linear(6 * lastc, hidden), nn.Hardswish(),
                                            nn.Dropout(0.2), nn.Linear(hidden, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    # --- EfficientNet-B0 (torchvision.models.efficientnet)
    class MBConv(nn.Module):
        def __init__(self, cin, cout, k, stride, expand):
            super().__init__()
            self.use_res = stride == 1 and cin == cout
            exp = divisible(cin * expand)
            layers = [] if exp == cin else [ConvBNAct(cin, exp, 1, act=nn.SiLU)]
            layers += [ConvBNAct(exp, exp, k, stride, exp, act=nn.SiLU),
                       SqueezeExcitation(exp, max(1, cin // 4), act=nn.SiLU),
                       ConvBNAct(exp, cout, 1, act=None)]
            self.block = nn.Sequential(*layers)

        def forward(self, x):   # stochastic depth is the identity in eval mode
            return x + self.block(x) if self.use_res else self.block(x)

    class EfficientNetB0(nn.Module):
        def __init__(self, width=0.25, num_classes=10):
            super().__init__()
            cfg = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2),
                   (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4),
                   (6, 3, 1, 192, 320, 1)]
            layers = [ConvBNAct(3, divisible(32 * width), 3, 2, act=nn.SiLU)]
            for e, k, s, cin, cout, n in cfg:
                cin, cout = divisible(cin * width), divisible(cout * width)
                for i in range(n):
                    layers.append(MBConv(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e))
            last = divisible(1280 * width)
            layers.append(ConvBNAct(divisible(320 * width), last, 1, act=nn.SiLU))
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    # --- ResNet-18 (torchvision.models.resnet)
    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + idt)

    class ResNet18(nn.Module):
        def __init__(self, base=8, num_classes=10):
            super().__init__()
            self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(base)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            blocks, cin = [], base
            for i, c in enumerate([base, 2 * base, 4 * base, 8 * base]):
                blocks += [BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)]
                cin = c
            self.layers = nn.Sequential(*blocks)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(8 * base, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.fc(torch.flatten(self.avgpool(self.layers(x)), 1))

    # --- small ViT (torchvision.models.vision_transformer, with nn.TransformerEncoder)
    class ViT(nn.Module):
        def __init__(self, image=32, patch=8, dim=48, depth=2, heads=4, mlp=96, num_classes=10):
            super().__init__()
            self.conv_proj = nn.Conv2d(3, dim, patch, patch)
            n = (image // patch) ** 2
            self.class_token = nn.Parameter(torch.zeros(1, 1, dim).normal_(std=0.02))
            self.pos_embedding = nn.Parameter(torch.empty(1, n + 1, dim).normal_(std=0.02))
            layer = nn.TransformerEncoderLayer(dim, heads, mlp, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.ln = nn.LayerNorm(dim, eps=1e-6)
            self.head = nn.Linear(dim, num_classes)

        def forward(self, x):
            x = self.conv_proj(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embedding
            return self.head(self.ln(self.encoder(x))[:, 0])

    # --- recurrent sequence classifiers
    class RNNClassifier(nn.Module):
        def __init__(self, cell, features=16, hidden=32, layers=2, num_classes=5):
            super().__init__()
            self.rnn = cell(features, hidden, layers, batch_first=True)
            self.fc = nn.Linear(hidden, num_classes)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])

    # --- torch.nn.TransformerEncoder (post-norm, ReLU, the defaults)
    class Encoder(nn.Module):
        def __init__(self, dim=64, heads=4, ff=128, depth=2):
            super().__init__()
            layer = nn.TransformerEncoderLayer(dim, heads, ff, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)

        def forward(self, x):
            return self.encoder(x)

    def rounded(d, ctor):   # build with channels rounded to multiples of d instead of 8
        def build():
            ROUND[0] = d
            try:
                return ctor()
            finally:
                ROUND[0] = 8
        return build

    ROUND = [8]
    if full:
        return {
            "mobilenet_v2": (lambda: MobileNetV2(1.0, 1000), (1, 3, 224, 224)),
            "mobilenet_v3_small": (lambda: MobileNetV3Small(1.0, 1000, 1024), (1, 3, 224, 224)),
            "efficientnet_b0": (lambda: EfficientNetB0(1.0, 1000), (1, 3, 224, 224)),
            "resnet18": (lambda: ResNet18(64, 1000), (1, 3, 224, 224)),
            "vit_small": (lambda: ViT(224, 16, 192, 12, 3, 768, 1000), (1, 3, 224, 224)),
            "lstm": (lambda: RNNClassifier(nn.LSTM, 64, 256, 2, 10), (1, 50, 64)),
            "gru": (lambda: RNNClassifier(nn.GRU, 64, 256, 2, 10), (1, 50, 64)),
            "transformer_encoder": (lambda: Encoder(256, 8, 1024, 6), (1, 64, 256)),
        }
    return {   # sized to stay under ~300 KB of weights each (they are committed)
        "mobilenet_v2": (lambda: MobileNetV2(0.1), (1, 3, 64, 64)),
        "mobilenet_v3_small": (rounded(4, lambda: MobileNetV3Small(0.25, hidden=64)),
                               (1, 3, 64, 64)),
        "efficientnet_b0": (rounded(4, lambda: EfficientNetB0(0.1)), (1, 3, 64, 64)),
        "resnet18": (lambda: ResNet18(4), (1, 3, 64, 64)),
        "vit_small": (lambda: ViT(), (1, 3, 32, 32)),
        "lstm": (lambda: RNNClassifier(nn.LSTM), (1, 12, 16)),
        "gru": (lambda: RNNClassifier(nn.GRU), (1, 12, 16)),
        "transformer_encoder": (lambda: Encoder(), (1, 10, 64)),
    }


TORCH_MODELS = ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet18", "vit_small",
                "lstm", "gru", "transformer_encoder"]
SKLEARN_MODELS = ["scaler_logreg", "random_forest", "gradient_boosting", "scaler_svc", "scaler_mlp"]


def newest_torch_opset() -> int:
    """The newest opset the TorchScript exporter of the installed torch writes."""
    from torch.onnx import _constants
    return _constants.ONNX_MAX_OPSET


@contextlib.contextmanager
def _math_attention(active: bool):
    """While active, torch.nn.functional.scaled_dot_product_attention is its math definition
    (softmax(q k^T / sqrt(d) + mask) v, torch's documented reference): the TorchScript exporter
    has no symbolic for the fused op below opset 14, which nn.MultiheadAttention calls."""
    import torch
    import torch.nn.functional as F

    if not active:
        yield
        return
    fused = F.scaled_dot_product_attention

    def math(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
        s = torch.matmul(q, k.transpose(-2, -1)) * (scale or 1.0 / math_sqrt(q.shape[-1]))
        if attn_mask is not None:
            s = s + attn_mask if attn_mask.dtype != torch.bool else \
                s.masked_fill(~attn_mask, float("-inf"))
        return torch.matmul(torch.softmax(s, -1), v)

    F.scaled_dot_product_attention = math
    try:
        yield
    finally:
        F.scaled_dot_product_attention = fused


def export_torch(name: str, opset: int, seed: int = 0, full: bool = False) -> onnx.ModelProto:
    """Build ``name`` with weights from ``torch.manual_seed(seed)`` (BatchNorm running statistics
    randomised too, so folding them is exercised), put it in eval mode and export it at ``opset``
    with the TorchScript exporter; batch 1, fixed shapes, IR version 10. ``full``: torchvision's
    sizes (see ``_torch_models``)."""
    import torch
    from torch import nn

    ctor, shape = _torch_models(full)[name]
    torch.manual_seed(seed)
    model = ctor()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    model.eval()
    x = torch.randn(*shape)
    buf = io.BytesIO()
    with warnings.catch_warnings(), _math_attention(opset < 14):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, opset_version=opset, dynamo=False,
                          input_names=["input"], output_names=["output"])
    proto = onnx.load_from_string(buf.getvalue())
    proto.ir_version = IR_VERSION
    proto.producer_name = f"onnxcc benchmarks/real_models.py ({name}, seed {seed})"
    return proto


def newest_skl2onnx_opset() -> int:
    """The newest default-domain opset skl2onnx targets."""
    from skl2onnx import get_latest_tested_opset_version
    return get_latest_tested_opset_version()


def export_sklearn(name: str, opset: int, seed: int = 0) -> onnx.ModelProto:
    """Fit the scikit-learn pipeline ``name`` on a seeded synthetic 3-class problem (200 rows, 8
    features) and convert it with skl2onnx at ``opset`` (ai.onnx.ml opset 3), without ZipMap;
    IR version 10."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = make_classification(200, 8, n_informative=5, n_classes=3, random_state=seed)
    x = (x * 3 + 1).astype(np.float32)
    est = {
        "scaler_logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        "random_forest": lambda: RandomForestClassifier(10, max_depth=5, random_state=seed),
        "gradient_boosting": lambda: GradientBoostingClassifier(n_estimators=10, max_depth=3,
                                                                random_state=seed),
        "scaler_svc": lambda: make_pipeline(StandardScaler(), SVC(probability=True,
                                                                  random_state=seed)),
        "scaler_mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier(
            (32, 16), max_iter=300, random_state=seed)),
    }[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(x, y)
        proto = to_onnx(est, initial_types=[("X", FloatTensorType([1, x.shape[1]]))],
                        target_opset={"": opset, "ai.onnx.ml": 3},
                        options={id(est): {"zipmap": False}})
    proto.ir_version = IR_VERSION
    proto.producer_name = f"onnxcc benchmarks/real_models.py ({name}, seed {seed})"
    return proto


def sample_feeds(proto: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    """A seeded input for each graph input: standard normal float32 (scaled by 3 for the
    scikit-learn models, whose features were fitted on that scale)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    inits = {t.name for t in proto.graph.initializer}
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        scale = 3.0 if any(f"({n}," in proto.producer_name for n in SKLEARN_MODELS) else 1.0
        feeds[vi.name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return feeds


def ort_outputs(proto: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def compare(got: dict, want: dict) -> tuple[float, bool]:
    """(largest absolute difference over all outputs, whether every output is within tolerance);
    integer outputs (labels) must be equal."""
    err, ok = 0.0, set(got) == set(want)
    for k, w in want.items():
        if k not in got:
            continue
        g = np.asarray(got[k]).reshape(w.shape)
        if w.dtype.kind in "iub":
            d = float(np.abs(g.astype(np.int64) - w.astype(np.int64)).max(initial=0))
            ok &= d == 0
        else:
            d = float(np.abs(g.astype(np.float64) - w).max(initial=0))
            scale = max(1.0, float(np.abs(w).max(initial=0)))
            ok &= bool(np.all(np.abs(g - w) <= ATOL * scale + RTOL * np.abs(w)))
        err = max(err, d)
    return err, ok


def werror_builds(cm) -> list[str]:
    """Compile the generated C of a host build with -std=c99 -Wall -Wextra -Werror -pedantic under
    gcc and clang (those installed); the compilers that failed, with their first error line."""
    from onnxcc.runtime.build import WARN_FLAGS
    failed = []
    prefix = cm.mmap["c_prefix"]
    for cc in ("gcc", "clang"):
        if not shutil.which(cc):
            failed.append(f"{cc}: not installed")
            continue
        for src in (f"{prefix}.c", f"{prefix}_weights.c"):
            if not (cm.lib_dir / src).exists():
                continue
            r = subprocess.run([cc, *WARN_FLAGS, "-O1", f"-I{cm.lib_dir}", f"-Wa,-I{cm.lib_dir}",
                                "-c", str(cm.lib_dir / src), "-o", "/dev/null"],
                               capture_output=True, text=True)
            if r.returncode:
                first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr[:200])
                failed.append(f"{cc} {src}: {first.strip()}")
    return failed


def check(proto: onnx.ModelProto, target: str, werror: bool) -> dict:
    """Compile ``proto`` for ``target``, run it on a seeded input and compare with onnxruntime."""
    import onnxcc
    feeds = sample_feeds(proto)
    row = {"err": float("nan"), "ok": False, "secs": float("nan"), "note": ""}
    try:
        t0 = time.perf_counter()
        cm = onnxcc.compile(proto, target)
        row["secs"] = time.perf_counter() - t0
        got = cm.run(feeds)
        row["err"], row["ok"] = compare(got, ort_outputs(proto, feeds))
        if werror and target == "host":
            bad = werror_builds(cm)
            if bad:
                row["ok"], row["note"] = False, "; ".join(bad)
            else:
                row["note"] = "-Werror gcc+clang ok"
    except Exception as e:   # reported in the table, the run goes on
        row["note"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--opsets", default="13,17,18,newest")
    ap.add_argument("--models", default=",".join(TORCH_MODELS + SKLEARN_MODELS))
    ap.add_argument("--targets", default="host,cpu")
    ap.add_argument("--save", type=Path, help="write each exported model to DIR/NAME_opsetN.onnx")
    ap.add_argument("--no-werror", action="store_true", help="skip the gcc/clang -Werror builds")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--full", action="store_true",
                    help="torchvision's widths and 224x224 inputs (large: regenerated, never committed)")
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    failures = 0
    print(f"{'model':22} {'opset':>5} {'target':6} {'max abs err':>12} {'result':6} "
          f"{'compile s':>9}  note")
    for name in names:
        is_torch = name in TORCH_MODELS
        if not is_torch and name not in SKLEARN_MODELS:
            raise SystemExit(f"unknown model {name!r}")
        newest = newest_torch_opset() if is_torch else newest_skl2onnx_opset()
        opsets = sorted({newest if o == "newest" else int(o) for o in args.opsets.split(",")})
        for opset in opsets:
            try:
                proto = (export_torch(name, opset, full=args.full) if is_torch
                         else export_sklearn(name, opset))
            except Exception as e:
                failures += 1
                print(f"{name:22} {opset:>5} {'-':6} {'-':>12} {'EXPORT':6} {'-':>9}  "
                      f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
                continue
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                onnx.save(proto, args.save / f"{name}_opset{opset}.onnx")
            if args.export_only:
                continue
            for target in args.targets.split(","):
                r = check(proto, target, not args.no_werror)
                failures += not r["ok"]
                print(f"{name:22} {opset:>5} {target:6} {r['err']:12.3g} "
                      f"{'pass' if r['ok'] else 'FAIL':6} {r['secs']:9.2f}  {r['note']}",
                      flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
