"""Train the small digits CNN shipped as ``compiler/models/digits.onnx``.

Data: scikit-learn's bundled 8x8 handwritten digits (``load_digits``; no download), pixels / 16,
split 75/25 with ``train_test_split(test_size=0.25, random_state=0, stratify=y)``.

Model (NCHW, float32)::

    input (N,1,8,8)
    conv1  Conv 3x3 pad 1, 1->8, bias    -> bn1 BatchNormalization -> relu1 -> pool1 MaxPool 2x2
    conv2  Conv 3x3 pad 1, 8->16, bias   -> relu2 -> pool2 MaxPool 2x2
    flatten (N,64) -> fc1 Gemm 64->32 -> relu3 -> fc2 Gemm 32->10 -> softmax -> probabilities (N,10)

Forward and backward passes are plain numpy (float64 during training). BatchNormalization is
trained with batch statistics and exported with its running mean / variance, so the exported
graph (inference mode) is exactly the function evaluated below as "numpy (eval)".

Deterministic: fixed seeds, fixed split, and both output files are written without timestamps,
so re-running regenerates ``digits.onnx`` and ``digits_test.npz`` byte-identically (on the same
machine / library versions).

    python examples/digits/train.py
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

REPO = Path(__file__).resolve().parents[2]
MODEL_PATH = REPO / "compiler" / "models" / "digits.onnx"
TEST_PATH = REPO / "compiler" / "models" / "digits_test.npz"

# The exported graph's op list, in node order (tests/test_digits_model.py checks the same list).
OPS = ["Conv", "BatchNormalization", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten",
       "Gemm", "Relu", "Gemm", "Softmax"]

EPOCHS = 30
BATCH = 32
LR = 3e-3
WEIGHT_DECAY = 1e-4
BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # running = momentum * running + (1 - momentum) * batch (ONNX convention)


# --------------------------------------------------------------------------------------------
# layers (forward + backward)
# --------------------------------------------------------------------------------------------

def im2col3x3(x: np.ndarray) -> np.ndarray:
    """(N,C,H,W) -> (N*H*W, C*9) patches of a 3x3 window, stride 1, zero pad 1."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.empty((n, h, w, c, 3, 3), dtype=x.dtype)
    for ky in range(3):
        for kx in range(3):
            cols[:, :, :, :, ky, kx] = xp[:, :, ky:ky + h, kx:kx + w].transpose(0, 2, 3, 1)
    return cols.reshape(n * h * w, c * 9)


def col2im3x3(dcols: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """Adjoint of :func:`im2col3x3`."""
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, 3, 3)
    dxp = np.zeros((n, c, h + 2, w + 2), dtype=dcols.dtype)
    for ky in range(3):
        for kx in range(3):
            dxp[:, :, ky:ky + h, kx:kx + w] += d[:, :, :, :, ky, kx].transpose(0, 3, 1, 2)
    return dxp[:, :, 1:-1, 1:-1]


def conv_fwd(x, w, b):
    n, _, h, wd = x.shape
    cols = im2col3x3(x)
    y = cols @ w.reshape(w.shape[0], -1).T + b           # (N*H*W, O)
    return y.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols


def conv_bwd(dy, cols, x_shape, w):
    o = w.shape[0]
    dy2 = dy.transpose(0, 2, 3, 1).reshape(-1, o)        # (N*H*W, O)
    dw = (dy2.T @ cols).reshape(w.shape)
    db = dy2.sum(axis=0)
    dx = col2im3x3(dy2 @ w.reshape(o, -1), x_shape)
    return dx, dw, db


def maxpool_fwd(x):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, c, h // 2, w // 2, 4)
    idx = win.argmax(axis=-1)
    return np.take_along_axis(win, idx[..., None], axis=-1)[..., 0], idx


def maxpool_bwd(dy, idx, x_shape):
    n, c, h, w = x_shape
    dwin = np.zeros((n, c, h // 2, w // 2, 4), dtype=dy.dtype)
    np.put_along_axis(dwin, idx[..., None], dy[..., None], axis=-1)
    return dwin.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(x_shape)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------

def init_params(rng: np.random.Generator) -> tuple[dict, dict]:
    def he(shape, fan_in):
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)

    p = {
        "conv1.W": he((8, 1, 3, 3), 9),
        # conv1's bias is cancelled by bn1's batch mean during training (zero gradient); it is
        # started non-zero so the exported (b - mean) term of the BN fold is not trivially zero.
        "conv1.B": rng.normal(0.0, 0.1, size=8),
        "bn1.scale": np.ones(8),
        "bn1.B": np.zeros(8),
        "conv2.W": he((16, 8, 3, 3), 72),
        "conv2.B": np.zeros(16),
        "fc1.W": he((32, 64), 64),    # Gemm transB=1: (out, in)
        "fc1.B": np.zeros(32),
        "fc2.W": he((10, 32), 32),
        "fc2.B": np.zeros(10),
    }
    state = {"bn1.mean": np.zeros(8), "bn1.var": np.ones(8)}
    return p, state


def forward(p, state, x, train: bool):
    """Returns (probabilities, cache). In eval mode BN uses the running statistics."""
    c = {}
    z1, c["cols1"] = conv_fwd(x, p["conv1.W"], p["conv1.B"])
    if train:
        mu = z1.mean(axis=(0, 2, 3))
        var = z1.var(axis=(0, 2, 3))
        state["bn1.mean"] = BN_MOMENTUM * state["bn1.mean"] + (1 - BN_MOMENTUM) * mu
        state["bn1.var"] = BN_MOMENTUM * state["bn1.var"] + (1 - BN_MOMENTUM) * var
    else:
        mu, var = state["bn1.mean"], state["bn1.var"]
    inv = 1.0 / np.sqrt(var + BN_EPS)
    xhat = (z1 - mu[None, :, None, None]) * inv[None, :, None, None]
    b1 = xhat * p["bn1.scale"][None, :, None, None] + p["bn1.B"][None, :, None, None]
    r1 = np.maximum(b1, 0)
    m1, c["idx1"] = maxpool_fwd(r1)
    z2, c["cols2"] = conv_fwd(m1, p["conv2.W"], p["conv2.B"])
    r2 = np.maximum(z2, 0)
    m2, c["idx2"] = maxpool_fwd(r2)
    f = m2.reshape(m2.shape[0], -1)
    h1 = f @ p["fc1.W"].T + p["fc1.B"]
    r3 = np.maximum(h1, 0)
    logits = r3 @ p["fc2.W"].T + p["fc2.B"]
    c.update(x=x, z1=z1, xhat=xhat, inv=inv, b1=b1, r1=r1, m1=m1, z2=z2, r2=r2, m2=m2, f=f,
             h1=h1, r3=r3)
    return softmax(logits), c


def backward(p, c, probs, y):
    """Gradients of mean cross-entropy w.r.t. all parameters (BN in batch-statistics mode)."""
    n = probs.shape[0]
    g = {}
    dlogits = probs.copy()
    dlogits[np.arange(n), y] -= 1.0
    dlogits /= n
    g["fc2.W"] = dlogits.T @ c["r3"]
    g["fc2.B"] = dlogits.sum(axis=0)
    dr3 = dlogits @ p["fc2.W"]
    dh1 = dr3 * (c["h1"] > 0)
    g["fc1.W"] = dh1.T @ c["f"]
    g["fc1.B"] = dh1.sum(axis=0)
    df = dh1 @ p["fc1.W"]
    dm2 = df.reshape(c["m2"].shape)
    dr2 = maxpool_bwd(dm2, c["idx2"], c["r2"].shape)
    dz2 = dr2 * (c["z2"] > 0)
    dm1, g["conv2.W"], g["conv2.B"] = conv_bwd(dz2, c["cols2"], c["m1"].shape, p["conv2.W"])
    dr1 = maxpool_bwd(dm1, c["idx1"], c["r1"].shape)
    db1 = dr1 * (c["b1"] > 0)
    xhat = c["xhat"]
    g["bn1.scale"] = (db1 * xhat).sum(axis=(0, 2, 3))
    g["bn1.B"] = db1.sum(axis=(0, 2, 3))
    dxhat = db1 * p["bn1.scale"][None, :, None, None]
    m = db1.shape[0] * db1.shape[2] * db1.shape[3]
    dz1 = (c["inv"][None, :, None, None] / m) * (
        m * dxhat - dxhat.sum(axis=(0, 2, 3), keepdims=True)
        - xhat * (dxhat * xhat).sum(axis=(0, 2, 3), keepdims=True))
    _, g["conv1.W"], g["conv1.B"] = conv_bwd(dz1, c["cols1"], c["x"].shape, p["conv1.W"])
    return g


def train(x_train, y_train, rng):
    p, state = init_params(rng)
    mom = {k: np.zeros_like(v) for k, v in p.items()}
    vel = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    step = 0
    n = x_train.shape[0]
    for epoch in range(EPOCHS):
        lr = LR * 0.5 * (1 + np.cos(np.pi * epoch / EPOCHS))   # cosine decay per epoch
        order = rng.permutation(n)
        loss_sum = 0.0
        for start in range(0, n, BATCH):
            bi = order[start:start + BATCH]
            if bi.size < 2:          # batch statistics need more than one sample
                continue
            probs, cache = forward(p, state, x_train[bi], train=True)
            loss_sum += -np.log(probs[np.arange(bi.size), y_train[bi]] + 1e-12).sum()
            grads = backward(p, cache, probs, y_train[bi])
            step += 1
            for k in p:
                gk = grads[k] + (WEIGHT_DECAY * p[k] if k.endswith(".W") else 0.0)
                mom[k] = b1 * mom[k] + (1 - b1) * gk
                vel[k] = b2 * vel[k] + (1 - b2) * gk * gk
                mhat = mom[k] / (1 - b1 ** step)
                vhat = vel[k] / (1 - b2 ** step)
                p[k] = p[k] - lr * mhat / (np.sqrt(vhat) + eps)
        if epoch % 5 == 4 or epoch == EPOCHS - 1:
            print(f"  epoch {epoch + 1:2d}  loss {loss_sum / n:.4f}  lr {lr:.5f}")
    return p, state


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------

def export(p32: dict) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(v, name=k) for k, v in p32.items()]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.W", "conv1.B"], ["conv1_out"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization",
                         ["conv1_out", "bn1.scale", "bn1.B", "bn1.mean", "bn1.var"], ["bn1_out"],
                         name="bn1", epsilon=BN_EPS, momentum=BN_MOMENTUM),
        helper.make_node("Relu", ["bn1_out"], ["relu1_out"], name="relu1"),
        helper.make_node("MaxPool", ["relu1_out"], ["pool1_out"], name="pool1",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1_out", "conv2.W", "conv2.B"], ["conv2_out"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["conv2_out"], ["relu2_out"], name="relu2"),
        helper.make_node("MaxPool", ["relu2_out"], ["pool2_out"], name="pool2",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool2_out"], ["flatten_out"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flatten_out", "fc1.W", "fc1.B"], ["fc1_out"], name="fc1",
                         transB=1),
        helper.make_node("Relu", ["fc1_out"], ["relu3_out"], name="relu3"),
        helper.make_node("Gemm", ["relu3_out", "fc2.W", "fc2.B"], ["logits"], name="fc2",
                         transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    assert [nd.op_type for nd in nodes] == OPS
    graph = helper.make_graph(
        nodes, "digits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializer=inits)
    graph.doc_string = "8x8 digits CNN trained by examples/digits/train.py"
    model = helper.make_model(graph, producer_name="onnxcc-examples-digits",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def save_npz_deterministic(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main() -> None:
    digits = load_digits()
    x = (digits.images.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y)
    print(f"digits: train {x_train.shape[0]}, test {x_test.shape[0]}")

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    p, state = train(x_train.astype(np.float64), y_train, rng)
    train_s = time.perf_counter() - t0

    # Exported (float32) parameters; the eval forward below uses exactly these values.
    p32 = {k: v.astype(np.float32) for k, v in {**p, **state}.items()}
    p32 = {k: p32[k] for k in ["conv1.W", "conv1.B", "bn1.scale", "bn1.B", "bn1.mean",
                               "bn1.var", "conv2.W", "conv2.B", "fc1.W", "fc1.B", "fc2.W",
                               "fc2.B"]}
    params = {k: v for k, v in p32.items() if k not in ("bn1.mean", "bn1.var")}
    st = {"bn1.mean": p32["bn1.mean"], "bn1.var": p32["bn1.var"]}
    probs_np, _ = forward(params, st, x_test, train=False)
    acc_np = float((probs_np.argmax(axis=1) == y_test).mean())

    model = export(p32)
    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    MODEL_PATH.write_bytes(model.SerializeToString(deterministic=True))
    save_npz_deterministic(TEST_PATH, x=x_test.astype(np.float32), y=y_test.astype(np.int64))

    import onnxruntime as ort
    sess = ort.InferenceSession(str(MODEL_PATH), providers=["CPUExecutionProvider"])
    (probs_ort,) = sess.run(["probabilities"], {"input": x_test})
    acc_ort = float((probs_ort.argmax(axis=1) == y_test).mean())
    max_diff = float(np.abs(probs_ort - probs_np).max())

    print(f"train time: {train_s:.1f} s ({EPOCHS} epochs, batch {BATCH}, Adam)")
    print(f"test accuracy (numpy eval):   {acc_np:.4f}")
    print(f"test accuracy (onnxruntime):  {acc_ort:.4f}  (max |p_ort - p_numpy| = {max_diff:.2e})")
    print(f"wrote {MODEL_PATH.relative_to(REPO)} ({MODEL_PATH.stat().st_size} bytes), "
          f"{TEST_PATH.relative_to(REPO)} ({TEST_PATH.stat().st_size} bytes)")
    assert acc_ort >= 0.95, acc_ort
    assert max_diff < 1e-4, max_diff


if __name__ == "__main__":
    main()
