"""Benchmark models built in code as ``onnx.ModelProto`` (opset 17, IR version 10), with seeded
random weights scaled by fan-in (He for layers followed by ReLU/ReLU6, 1/sqrt(fan_in) for linear
ones) so that activations stay O(1) on a unit-variance input.

    mlp()                    MLP 784-128-64-10 (Gemm + Relu, Softmax)
    mobilenet_v1()           MobileNetV1 (alpha 0.25, 96x96 by default)
    mobilenet_v2_blocks()    five MobileNetV2 inverted-residual blocks, 56x56x24 -> 28x28x32
    ds_cnn()                 DS-CNN keyword spotting on 49x10 (MLPerf Tiny KWS)
    resnet8()                ResNet-8 on 32x32x3 (MLPerf Tiny IC)
    autoencoder()            FC autoencoder 640-128x4-8-128x4-640 (MLPerf Tiny AD)
    transformer_layer()      one transformer encoder layer from primitive ops
    zoo_random(name)         a light zoo model with random weights in place of its fills

``BENCH_MODELS`` maps the benchmark's names to builders (``TINY_MODELS`` those of
benchmarks/mcu.py), ``build(name)`` builds any of them (a zoo
name included) and ``random_feeds(model)`` gives a seeded input for a model. onnxruntime 1.31 reads
IR versions up to 13 while onnx 1.23 writes 14 by default, hence the explicit IR version 10.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 10


class _Builder:
    """Accumulates nodes and initializers of one graph, with unique names and a seeded rng."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, arr: np.ndarray, prefix: str = "w") -> str:
        """An initializer holding ``arr``; returns its name."""
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def normal(self, shape: tuple[int, ...], std: float, prefix: str = "w") -> str:
        """A float32 initializer drawn from N(0, std^2)."""
        return self.const((self.rng.standard_normal(shape) * std).astype(np.float32), prefix)

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs) -> str | list[str]:
        """Append a node; returns its output name (or names when ``n_out > 1``)."""
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name("n" + op_type),
                                           **attrs))
        return outs[0] if n_out == 1 else outs

    # ---- layers ----------------------------------------------------------------------------
    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1,
             bias: bool = False, gain: float = 2.0) -> str:
        """Conv kxk, 'same' padding, weights N(0, gain / fan_in)."""
        fan_in = (cin // group) * k * k
        w = self.normal((cout, cin // group, k, k), math.sqrt(gain / fan_in))
        ins = [x, w]
        if bias:
            ins.append(self.normal((cout,), 0.01, "b"))
        p = k // 2
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride],
                       pads=[p, p, p, p], group=group)

    def bn(self, x: str, c: int, gamma: float = 1.0) -> str:
        """BatchNormalization: scale gamma * U(0.8, 1.2), small bias and mean, var U(0.8, 1.2)."""
        r = self.rng
        scale = self.const((gamma * r.uniform(0.8, 1.2, c)).astype(np.float32), "bn_s")
        bias = self.const((0.05 * r.standard_normal(c)).astype(np.float32), "bn_b")
        mean = self.const((0.05 * r.standard_normal(c)).astype(np.float32), "bn_m")
        var = self.const(r.uniform(0.8, 1.2, c).astype(np.float32), "bn_v")
        return self.op("BatchNormalization", [x, scale, bias, mean, var], epsilon=1e-5)

    def relu6(self, x: str) -> str:
        """ReLU6 as Clip(x, 0, 6) (opset 11+: bounds as inputs)."""
        lo = self.const(np.array(0.0, np.float32), "zero")
        hi = self.const(np.array(6.0, np.float32), "six")
        return self.op("Clip", [x, lo, hi])

    def classifier(self, x: str, c: int, classes: int) -> str:
        """GlobalAveragePool, Flatten, Gemm(transB=1) from ``c`` to ``classes`` (weights
        N(0, 1/c), small bias), Softmax: the head of a CNN with ``c`` channels in ``x``."""
        x = self.op("Flatten", [self.op("GlobalAveragePool", [x])], axis=1)
        x = self.op("Gemm", [x, self.normal((classes, c), math.sqrt(1.0 / c)),
                             self.normal((classes,), 0.01, "b")], transB=1)
        return self.op("Softmax", [x], axis=-1)

    def linear(self, x: str, fin: int, fout: int, gain: float = 1.0) -> str:
        """MatMul by a (fin, fout) weight N(0, gain / fin) plus a bias (for [.., fin] inputs)."""
        w = self.normal((fin, fout), math.sqrt(gain / fin))
        b = self.normal((fout,), 0.01, "b")
        return self.op("Add", [self.op("MatMul", [x, w]), b])

    def model(self, name: str, inputs: list[tuple[str, tuple[int, ...]]],
              outputs: list[tuple[str, str, tuple[int, ...]]], doc: str = "") -> onnx.ModelProto:
        """The ModelProto: ``outputs`` are (produced value, output name, shape); each is renamed
        through an Identity-free rewrite of its producer."""
        rename = {src: dst for src, dst, _ in outputs}
        for nd in self.nodes:
            for k, o in enumerate(nd.output):
                if o in rename:
                    nd.output[k] = rename[o]
        g = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs],
            [helper.make_tensor_value_info(dst, TensorProto.FLOAT, list(s))
             for _, dst, s in outputs],
            initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="onnxcc-benchmarks", doc_string=doc)
        m.ir_version = IR_VERSION
        return m


def mlp(seed: int = 0, sizes: tuple[int, ...] = (784, 128, 64, 10),
        name: str = "mlp") -> onnx.ModelProto:
    """MLP 784-128-64-10 (``sizes``): Gemm(transB=1)+Relu per hidden layer, a last Gemm, Softmax.

    Input ``input`` float32 [1, sizes[0]]; output ``output`` [1, sizes[-1]] (class
    probabilities).
    """
    b = _Builder(seed)
    x, fin = "input", sizes[0]
    for k, fout in enumerate(sizes[1:]):
        last = k == len(sizes) - 2
        w = b.normal((fout, fin), math.sqrt((1.0 if last else 2.0) / fin))
        bias = b.normal((fout,), 0.01, "b")
        x = b.op("Gemm", [x, w, bias], transB=1)
        if not last:
            x = b.op("Relu", [x])
        fin = fout
    y = b.op("Softmax", [x], axis=-1)
    return b.model(name, [("input", (1, sizes[0]))], [(y, "output", (1, sizes[-1]))],
                   mlp.__doc__ or "")


def jet_mlp(seed: int = 0) -> onnx.ModelProto:
    """The jet-tagging MLP 16-64-32-32-5 of hls4ml's papers (Duarte et al., JINST 13 (2018)
    P07027): ReLU hidden layers, Softmax over 5 classes. Input [1, 16], output [1, 5]."""
    return mlp(seed, (16, 64, 32, 32, 5), "jet_mlp")


# MobileNetV1's depthwise-separable blocks: (pointwise output channels, depthwise stride)
_MNV1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


def mobilenet_v1(alpha: float = 0.25, size: int = 96, seed: int = 0,
                 classes: int = 1000) -> onnx.ModelProto:
    """MobileNetV1 (Howard et al. 2017) with width multiplier ``alpha`` at ``size`` x ``size``.

    Conv 3x3 stride 2 (32*alpha channels) + BN + ReLU6, then 13 depthwise-separable blocks
    (depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6; channels 64..1024 times alpha),
    GlobalAveragePool, a 1x1 Conv to ``classes`` classes with bias, Flatten, Softmax.
    BatchNormalization nodes are kept (onnxcc folds them); ReLU6 is Clip(0, 6). MLPerf Tiny's
    visual wake words model is ``mobilenet_v1(0.25, 96, classes=2)``.

    Input ``input`` float32 [1, 3, size, size] (NCHW); output ``output`` [1, classes].
    """
    b = _Builder(seed)

    def ch(c: int) -> int:
        return max(8, int(c * alpha))

    c = ch(32)
    x = b.relu6(b.bn(b.conv("input", 3, c, 3, stride=2), c))
    for cout, stride in _MNV1_BLOCKS:
        x = b.relu6(b.bn(b.conv(x, c, c, 3, stride=stride, group=c), c))
        x = b.relu6(b.bn(b.conv(x, c, ch(cout), 1), ch(cout)))
        c = ch(cout)
    x = b.op("GlobalAveragePool", [x])
    x = b.conv(x, c, classes, 1, bias=True, gain=1.0)
    x = b.op("Flatten", [x], axis=1)
    y = b.op("Softmax", [x], axis=-1)
    name = f"mobilenet_v1_{alpha:g}_{size}".replace(".", "")
    if classes != 1000:
        name += f"_c{classes}"
    return b.model(name, [("input", (1, 3, size, size))], [(y, "output", (1, classes))],
                   mobilenet_v1.__doc__ or "")


# (output channels, stride) of the stacked inverted-residual blocks, input 24 channels at 56x56
_MNV2_BLOCKS = [(24, 1), (24, 1), (32, 2), (32, 1), (32, 1)]


def mobilenet_v2_blocks(seed: int = 0, expansion: int = 6) -> onnx.ModelProto:
    """Five MobileNetV2 inverted-residual blocks (Sandler et al. 2018), 56x56x24 -> 28x28x32.

    Each block: 1x1 expand (x ``expansion``) + BN + ReLU6, 3x3 depthwise (stride 1 or 2) + BN +
    ReLU6, 1x1 project + BN (linear), and a residual Add when the stride is 1 and the channels are
    equal. Blocks (out channels, stride): (24,1) (24,1) (32,2) (32,1) (32,1): four residual Adds.

    Input ``input`` float32 [1, 24, 56, 56] (NCHW); output ``output`` [1, 32, 28, 28].
    """
    b = _Builder(seed)
    x, c, hw = "input", 24, 56
    for cout, stride in _MNV2_BLOCKS:
        e = c * expansion
        h = b.relu6(b.bn(b.conv(x, c, e, 1), e))
        h = b.relu6(b.bn(b.conv(h, e, e, 3, stride=stride, group=e), e))
        h = b.bn(b.conv(h, e, cout, 1, gain=1.0), cout, gamma=0.5)
        x = b.op("Add", [x, h]) if stride == 1 and cout == c else h
        c, hw = cout, hw // stride
    return b.model("mobilenet_v2_blocks", [("input", (1, 24, 56, 56))],
                   [(x, "output", (1, c, hw, hw))], mobilenet_v2_blocks.__doc__ or "")


def ds_cnn(seed: int = 0, blocks: int = 4, channels: int = 64,
           classes: int = 12) -> onnx.ModelProto:
    """DS-CNN for keyword spotting on 49 frames x 10 MFCCs, as MLPerf Tiny's KWS model (Zhang
    et al. 2017, "Hello Edge"): Conv 10x4 stride 2 ('same' padding, TF's split: 4/5 rows, 1/1
    columns) to ``channels`` channels + BN + ReLU, ``blocks`` depthwise-separable blocks
    (depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU) at 25x5, then
    :meth:`_Builder.classifier` (GlobalAveragePool, Flatten, Gemm to ``classes``, Softmax).

    Input ``input`` float32 [1, 1, 49, 10] (NCHW: one channel of 49x10); output ``output``
    [1, classes].
    """
    b = _Builder(seed)
    c = channels
    w = b.normal((c, 1, 10, 4), math.sqrt(2.0 / 40))
    x = b.op("Conv", ["input", w], kernel_shape=[10, 4], strides=[2, 2], pads=[4, 1, 5, 1])
    x = b.op("Relu", [b.bn(x, c)])
    for _ in range(blocks):
        x = b.op("Relu", [b.bn(b.conv(x, c, c, 3, group=c), c)])
        x = b.op("Relu", [b.bn(b.conv(x, c, c, 1), c)])
    y = b.classifier(x, c, classes)
    return b.model("ds_cnn", [("input", (1, 1, 49, 10))], [(y, "output", (1, classes))],
                   ds_cnn.__doc__ or "")


def resnet8(seed: int = 0, classes: int = 10) -> onnx.ModelProto:
    """ResNet-8 on 32x32x3, MLPerf Tiny's image classification model (a CIFAR-10 ResNet with
    three stacks of one basic block): Conv 3x3 16 + BN + ReLU; per stack (16, 32, 64 channels,
    strides 1, 2, 2) Conv 3x3 + BN + ReLU, Conv 3x3 + BN, a shortcut (identity, or Conv 1x1 with
    the stride + BN when the shape changes), Add, ReLU; GlobalAveragePool, Flatten, Gemm to
    ``classes``, Softmax.

    Input ``input`` float32 [1, 3, 32, 32] (NCHW); output ``output`` [1, classes].
    """
    b = _Builder(seed)
    x = b.op("Relu", [b.bn(b.conv("input", 3, 16, 3), 16)])
    c = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        h = b.op("Relu", [b.bn(b.conv(x, c, cout, 3, stride=stride), cout)])
        h = b.bn(b.conv(h, cout, cout, 3), cout, gamma=0.5)
        sc = x if stride == 1 and cout == c else b.bn(b.conv(x, c, cout, 1, stride=stride,
                                                             gain=1.0), cout)
        x = b.op("Relu", [b.op("Add", [h, sc])])
        c = cout
    y = b.classifier(x, c, classes)
    return b.model("resnet8", [("input", (1, 3, 32, 32))], [(y, "output", (1, classes))],
                   resnet8.__doc__ or "")


def autoencoder(seed: int = 0, sizes: tuple[int, ...] = (640, 128, 128, 128, 128, 8, 128, 128,
                                                          128, 128, 640)) -> onnx.ModelProto:
    """The fully connected autoencoder of MLPerf Tiny's anomaly detection (DCASE 2020 task 2
    baseline): 640-128x4-8-128x4-640 (``sizes``); every layer but the last is Gemm(transB=1) +
    BatchNormalization + ReLU, the last a plain Gemm (the reconstruction).

    Input ``input`` float32 [1, 640] (5 frames x 128 mel bins, flattened); output ``output``
    [1, 640].
    """
    b = _Builder(seed)
    x, fin = "input", sizes[0]
    for k, fout in enumerate(sizes[1:]):
        last = k == len(sizes) - 2
        w = b.normal((fout, fin), math.sqrt((1.0 if last else 2.0) / fin))
        x = b.op("Gemm", [x, w, b.normal((fout,), 0.01, "b")], transB=1)
        if not last:
            x = b.op("Relu", [b.bn(x, fout)])
        fin = fout
    return b.model("autoencoder", [("input", (1, sizes[0]))], [(x, "output", (1, sizes[-1]))],
                   autoencoder.__doc__ or "")


def transformer_layer(seq: int = 64, d_model: int = 128, heads: int = 4, ff: int = 512,
                      seed: int = 0) -> onnx.ModelProto:
    """One transformer encoder layer (post-norm, as in Vaswani et al. 2017) from primitive ops.

    Q, K, V = x W + b (MatMul, Add); Reshape to [1, seq, heads, d_head] and Transpose to heads
    (K to [1, heads, d_head, seq]); scores = Q K^T (MatMul) * 1/sqrt(d_head) (Mul); Softmax;
    MatMul by V; Transpose/Reshape back to [1, seq, d_model]; output projection (MatMul, Add);
    residual Add; LayerNormalization; FFN: MatMul+Add, GELU (exact, as x/2 (1 + Erf(x/sqrt 2)):
    the Gelu op needs opset 20), MatMul+Add; residual Add; LayerNormalization.

    Input ``input`` float32 [1, seq, d_model]; output ``output`` [1, seq, d_model].
    """
    assert d_model % heads == 0
    dh = d_model // heads
    b = _Builder(seed)
    x = "input"
    shape_heads = b.const(np.array([1, seq, heads, dh], np.int64), "shape")
    shape_model = b.const(np.array([1, seq, d_model], np.int64), "shape")

    def split_heads(t: str, perm: list[int]) -> str:
        return b.op("Transpose", [b.op("Reshape", [t, shape_heads])], perm=perm)

    q = split_heads(b.linear(x, d_model, d_model), [0, 2, 1, 3])   # [1, h, seq, dh]
    k = split_heads(b.linear(x, d_model, d_model), [0, 2, 3, 1])   # [1, h, dh, seq]
    v = split_heads(b.linear(x, d_model, d_model), [0, 2, 1, 3])   # [1, h, seq, dh]
    s = b.op("MatMul", [q, k])
    s = b.op("Mul", [s, b.const(np.array(1.0 / math.sqrt(dh), np.float32), "scale")])
    p = b.op("Softmax", [s], axis=-1)
    a = b.op("MatMul", [p, v])                                       # [1, h, seq, dh]
    a = b.op("Reshape", [b.op("Transpose", [a], perm=[0, 2, 1, 3]), shape_model])
    a = b.linear(a, d_model, d_model)

    def layer_norm(t: str) -> str:
        g = b.const((1.0 + 0.1 * b.rng.standard_normal(d_model)).astype(np.float32), "ln_g")
        beta = b.const((0.05 * b.rng.standard_normal(d_model)).astype(np.float32), "ln_b")
        return b.op("LayerNormalization", [t, g, beta], axis=-1, epsilon=1e-5)

    x1 = layer_norm(b.op("Add", [x, a]))
    h = b.linear(x1, d_model, ff, gain=2.0)
    erf = b.op("Erf", [b.op("Mul", [h, b.const(np.array(1 / math.sqrt(2), np.float32), "c")])])
    one = b.const(np.array(1.0, np.float32), "one")
    half = b.const(np.array(0.5, np.float32), "half")
    h = b.op("Mul", [b.op("Mul", [h, half]), b.op("Add", [erf, one])])
    h = b.linear(h, ff, d_model)
    y = layer_norm(b.op("Add", [x1, h]))
    return b.model("transformer_layer", [("input", (1, seq, d_model))],
                   [(y, "output", (1, seq, d_model))], transformer_layer.__doc__ or "")


# ---- the zoo with random weights -----------------------------------------------------------------
def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    out: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for nd in graph.node:
        for k, name in enumerate(nd.input):
            out.setdefault(name, []).append((nd, k))
    return out


def _role(name: str, cons: dict) -> tuple[onnx.NodeProto | None, int]:
    """The first consumer (op node, input index) of ``name``, looking through Unsqueeze/Reshape."""
    seen = 0
    while seen < 8:
        seen += 1
        uses = cons.get(name, [])
        if not uses:
            return None, -1
        nd, k = uses[0]
        if nd.op_type in ("Unsqueeze", "Reshape", "Flatten", "Squeeze") and k == 0:
            name = nd.output[0]
            continue
        return nd, k
    return None, -1


def _random_weight(shape: tuple[int, ...], nd: onnx.NodeProto | None, k: int,
                   rng: np.random.Generator, cons: dict) -> np.ndarray:
    """Seeded random values of ``shape`` for input ``k`` of ``nd``, scaled by fan-in (a BN
    scale feeding a residual Sum/Add is halved, so the residual stream grows slower)."""
    op = nd.op_type if nd is not None else ""
    n = int(np.prod(shape)) if shape else 1
    if op == "Conv" and k == 1:
        fan_in = int(np.prod(shape[1:]))
        return rng.standard_normal(shape) * math.sqrt(2.0 / max(fan_in, 1))
    if op == "Gemm" and k == 1:
        trans_b = next((a.i for a in nd.attribute if a.name == "transB"), 0)
        if len(shape) == 2:
            fan_in = shape[1] if trans_b else shape[0]
        else:
            fan_in = n // shape[0]
        return rng.standard_normal(shape) * math.sqrt(2.0 / max(fan_in, 1))
    if op == "BatchNormalization" and k == 1:           # scale
        residual = any(u.op_type in ("Sum", "Add") for u, _ in cons.get(nd.output[0], []))
        return rng.uniform(0.8, 1.2, shape) * (0.5 if residual else 1.0)
    if op == "BatchNormalization" and k == 4:           # variance
        return rng.uniform(0.8, 1.2, shape)
    if op == "Mul":                                      # an unfolded BN scale
        return rng.uniform(0.8, 1.2, shape)
    # biases, BN bias/mean, Add constants
    return rng.standard_normal(shape) * 0.01 if n else np.zeros(shape)


def zoo_random(name: str, seed: int = 0) -> onnx.ModelProto:
    """The light zoo model ``name`` (``onnxcc.zoo.ZOO``) with seeded random weights.

    The zoo's weights are ConstantOfShape fills (every element 0.02) and a few splat
    initializers; constant fills let a compiler fold work away, so each is replaced by a random
    initializer of the same shape: Conv/Gemm weights N(0, 2/fan_in), BatchNormalization scale and
    variance and Mul scales U(0.8, 1.2) (a BN scale feeding a residual Sum halved), biases and
    means N(0, 1e-4). The model's other (real) initializers stay. Initializers are removed from
    the graph inputs (so they are constants to every runtime) and the IR version is set to 10;
    the opset stays the model's (9).

    Input: the model's one data input, float32 [1, 3, 224, 224] (NCHW; its name varies, e.g.
    ``data_0`` or ``gpu_0/data_0``); output: the model's one output, class scores [1, 1000]
    (densenet121 and squeezenet: [1, 1000, 1, 1]).
    """
    from onnxcc.zoo import zoo_path

    m = onnx.load(zoo_path(name))
    g = m.graph
    rng = np.random.default_rng(seed)
    cons = _consumers(g)
    inits = {t.name: t for t in g.initializer}
    new_inits: list[onnx.TensorProto] = []
    keep_nodes: list[onnx.NodeProto] = []
    for nd in g.node:
        if nd.op_type == "ConstantOfShape" and nd.input[0] in inits:
            shape = tuple(int(d) for d in numpy_helper.to_array(inits[nd.input[0]]))
            user, k = _role(nd.output[0], cons)
            arr = _random_weight(shape, user, k, rng, cons).astype(np.float32)
            new_inits.append(numpy_helper.from_array(arr, nd.output[0]))
        else:
            keep_nodes.append(nd)
    used = {i for nd in keep_nodes for i in nd.input}
    for t in g.initializer:
        if t.name not in used:
            continue   # a ConstantOfShape's shape
        a = numpy_helper.to_array(t)
        if a.dtype == np.float32 and a.size > 1 and np.all(a == a.reshape(-1)[0]):
            user, k = _role(t.name, cons)
            a = _random_weight(a.shape, user, k, rng, cons).astype(np.float32)
            new_inits.append(numpy_helper.from_array(a, t.name))
        else:
            new_inits.append(t)
    del g.node[:]
    g.node.extend(keep_nodes)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    names = {t.name for t in new_inits}
    real = [i for i in g.input if i.name not in names and i.name not in inits]
    del g.input[:]
    g.input.extend(real)
    m.ir_version = IR_VERSION
    return m


# ---- registry ----------------------------------------------------------------------------------
BENCH_MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mlp": mlp,
    "jet_mlp": jet_mlp,
    "mobilenet_v1_025": lambda: mobilenet_v1(0.25, 96),
    "mobilenet_v2_blocks": mobilenet_v2_blocks,
    "transformer": transformer_layer,
}


#: MLPerf-Tiny-shaped models (benchmarks/mcu.py): anomaly detection, keyword spotting, image
#: classification, visual wake words, and the MLP.
TINY_MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mlp": mlp,
    "ds_cnn": ds_cnn,
    "resnet8": resnet8,
    "mobilenet_v1_025_vww": lambda: mobilenet_v1(0.25, 96, classes=2),
    "autoencoder": autoencoder,
}


def build(name: str) -> onnx.ModelProto:
    """The benchmark model ``name``: a key of :data:`BENCH_MODELS` or :data:`TINY_MODELS`, or a
    zoo model name."""
    if name in BENCH_MODELS:
        return BENCH_MODELS[name]()
    if name in TINY_MODELS:
        return TINY_MODELS[name]()
    return zoo_random(name)


def input_specs(model: onnx.ModelProto) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of each graph input that is not an initializer."""
    inits = {t.name for t in model.graph.initializer}
    return [(i.name, tuple(d.dim_value for d in i.type.tensor_type.shape.dim))
            for i in model.graph.input if i.name not in inits]


def random_feeds(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    """Seeded float32 inputs for ``model``: N(0, 1) for each non-initializer graph input."""
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in input_specs(model)}


def ort_session(model: onnx.ModelProto):
    """A single-threaded onnxruntime CPU session with all graph optimizations."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def check(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    """onnx.checker (full check) and one onnxruntime run asserting finite outputs; returns the
    outputs by name."""
    onnx.checker.check_model(model, full_check=True)
    sess = ort_session(model)
    outs = sess.run(None, random_feeds(model, seed))
    names = [o.name for o in sess.get_outputs()]
    for n, o in zip(names, outs):
        assert np.all(np.isfinite(o)), f"{model.graph.name}: output {n} has non-finite values"
    return dict(zip(names, outs))


if __name__ == "__main__":
    import sys

    from onnxcc.zoo import ZOO

    for nm in sys.argv[1:] or [*BENCH_MODELS, *ZOO]:
        res = check(build(nm))
        for k, v in res.items():
            print(f"{nm:20s} {k:20s} {v.shape!s:18s} absmax {np.abs(v).max():.4g} "
                  f"std {v.std():.4g}")
