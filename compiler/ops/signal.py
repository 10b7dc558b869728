"""Signal ops: window functions (opset 17: HannWindow, HammingWindow, BlackmanWindow), DFT
(opsets 17 and 20) and STFT (opset 17; their semantics in the comment above DFT), and the causal
depthwise filter CausalConvWithState (opset 27).

Windows:

size: an int32/int64 scalar that sets the output length, so it must be known at compile time
(a constant, or a graph input bound with ``onnxcc.compile(..., constant_inputs=...)``); the
output (size,) is in ``output_datatype`` (float32 by default). With ``periodic`` (the default)
the window has period ``N = size``, else ``N = size - 1`` (symmetric). As the spec's reference:
Hann ``sin(pi n / N)^2``; Hamming ``25/46 - 21/46 cos(2 pi n / N)``; Blackman
``0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)``; computed in float64 and converted.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir import Node, TensorType
from . import OpDef, attr, bad_attr, register_op
from ._util import const_input, onnx_dtype


def window_size(node: Node) -> int:
    """The window length (the constant size input). Raises ShapeError when size is not a
    constant or is negative."""
    n = int(np.asarray(const_input(node, 0, "size")).reshape(-1)[0])
    if n < 0:
        raise ShapeError(f"size {n} is negative", node=node.name, op=node.op,
                         hint="give a window length >= 0")
    return n


def window(op: str, size: int, periodic: bool) -> np.ndarray:
    """The float64 window ``op`` of ``size`` samples (module docstring)."""
    n = np.arange(size, dtype=np.float64)
    N = size if periodic else size - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        if op == "HannWindow":
            return np.sin(n * np.pi / N) ** 2
        if op == "HammingWindow":
            alpha = 25.0 / 46.0
            return alpha - np.cos(n * np.pi * 2 / N) * (1 - alpha)
        return 0.42 - 0.5 * np.cos(n * np.pi * 2 / N) + 0.08 * np.cos(n * np.pi * 4 / N)


class _Window(OpDef):
    attrs = {"periodic": 1, "output_datatype": 1}

    def infer(self, node: Node) -> list[TensorType]:
        return [TensorType((window_size(node),), onnx_dtype(node, attr(node, "output_datatype")))]

    def reference(self, node: Node, size) -> list[np.ndarray]:
        w = window(node.op, window_size(node), bool(attr(node, "periodic")))
        dt = onnx_dtype(node, attr(node, "output_datatype"))
        with np.errstate(invalid="ignore"):
            return [w.astype(dt)]


@register_op("HannWindow")
class HannWindow(_Window):
    """ONNX HannWindow(size; periodic, output_datatype) (module docstring)."""


@register_op("HammingWindow")
class HammingWindow(_Window):
    """ONNX HammingWindow(size; periodic, output_datatype) (module docstring)."""


@register_op("BlackmanWindow")
class BlackmanWindow(_Window):
    """ONNX BlackmanWindow(size; periodic, output_datatype) (module docstring)."""


# ---- DFT, STFT ---------------------------------------------------------------------------------
# DFT(input, dft_length; axis, inverse, onesided) (opset 17: axis an attribute, default 1) and
# DFT(input, dft_length, axis; inverse, onesided) (opset 20: axis an int64 scalar input, default
# -2). input (..., 1) real or (..., 2) complex (real, imaginary). Along the axis (a signal axis,
# not the last) the signal is cut or zero-padded to L = dft_length (default: the axis length, or
# 2 (n - 1) for an inverse one-sided transform) and transformed:
# - forward: X_k = sum_n x_n e^(-2 pi i k n / L), k < L (k <= L / 2 when onesided); output
#   (..., 2);
# - inverse, not onesided: x_n = 1/L sum_k X_k e^(2 pi i k n / L); output (..., 2);
# - inverse onesided (numpy.fft.irfft, onnx's reference): the input holds X_0 .. X_{L/2} of a
#   Hermitian spectrum; output (..., 1) real, y_t = 1/L sum_{k <= L/2} c_k Re(X_k e^(2 pi i k t/L))
#   with c_k = 1 for k = 0 and k = L/2, else 2.
# dft_length and the opset-20 axis decide shapes, so they must be known at compile time.
# STFT(signal, frame_step, window, frame_length; onesided=1) (opset 17): signal (B, T, 1|2);
# frames f < 1 + (T - frame_length) // frame_step of the window's length (or frame_length) start at
# f * frame_step, are multiplied by the window (ones when omitted; a run-time input), and each is
# transformed forward with L = frame_length (default the window's length, else T): output
# (B, frames, L // 2 + 1 if onesided else L, 2). frame_step and frame_length must be constants.

def _scalar(node: Node, k: int, what: str) -> int | None:
    v = const_input(node, k, what)
    return None if v is None else int(np.asarray(v).reshape(-1)[0])


def dft_params(node: Node) -> tuple[int, int, bool, bool]:
    """(axis >= 0, L, inverse, onesided) of a DFT node. Raises ShapeError when the input is not
    (..., 1|2) of rank >= 2, the axis is the last one or out of range, or L < 1."""
    x = node.inputs[0]
    r = len(x.shape)
    if r < 2 or x.shape[-1] not in (1, 2):
        raise ShapeError(f"input shape {list(x.shape)} must end in 1 (real) or 2 (complex)",
                         node=node.name, op=node.op,
                         hint="give the signal as (..., 1) or (..., real/imaginary 2)")
    if node.version >= 20:
        a = _scalar(node, 2, "axis") if len(node.inputs) > 2 else None
        axis = -2 if a is None else a
    else:
        axis = int(attr(node, "axis"))
    if not -r <= axis < r or axis % r == r - 1:
        raise ShapeError(f"axis {axis} is not a signal axis of input {list(x.shape)}",
                         node=node.name, op=node.op, hint="choose an axis before the last")
    axis %= r
    inverse, onesided = bool(attr(node, "inverse")), bool(attr(node, "onesided"))
    if onesided and not inverse and x.shape[-1] != 1:
        raise ShapeError("a one-sided forward DFT needs a real signal (last dimension 1), as "
                         "onnx's shape inference requires", node=node.name, op=node.op,
                         hint="give the real part only, or set onesided=0")
    n = _scalar(node, 1, "dft_length")
    if n is None:
        n = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
    if n < 1:
        raise ShapeError(f"dft_length {n} is not positive", node=node.name, op=node.op,
                         hint="give dft_length >= 1")
    return axis, n, inverse, onesided


def dft_out_shape(node: Node) -> tuple[int, ...]:
    """The output shape of a DFT node (ONNX DFT-17/20): x's shape with the transformed axis
    ``n // 2 + 1`` long for a forward onesided transform (else ``n``, the dft_length) and the
    last axis 2 (real, imaginary), or 1 for an inverse onesided one (a real signal). Raises what
    :func:`dft_params` raises for an unbound axis or length."""
    x = node.inputs[0]
    axis, n, inverse, onesided = dft_params(node)
    shape = list(x.shape)
    shape[axis] = n // 2 + 1 if onesided and not inverse else n
    shape[-1] = 1 if inverse and onesided else 2
    return tuple(shape)


def _complex(x: np.ndarray) -> np.ndarray:
    return x[..., 0] if x.shape[-1] == 1 else x[..., 0] + 1j * x[..., 1]


@register_op("DFT")
class DFT(OpDef):
    """ONNX DFT (opsets 17 and 20; comment above)."""

    attrs = {"axis": 1, "inverse": 0, "onesided": 0}
    min_inputs, max_inputs = 1, 3

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        if x.dtype.kind != "f":
            raise ShapeError(f"input of dtype {x.dtype.name} is not a float", node=node.name,
                             op=node.op, hint="give the signal as float32 or float64")
        return [TensorType(dft_out_shape(node), x.dtype)]

    def reference(self, node: Node, x, *rest) -> list[np.ndarray]:
        axis, n, inverse, onesided = dft_params(node)
        c = _complex(x.astype(np.float64))
        if inverse and onesided:
            return [np.fft.irfft(c, n=n, axis=axis)[..., None].astype(x.dtype)]
        y = np.fft.ifft(c, n=n, axis=axis) if inverse else np.fft.fft(c, n=n, axis=axis)
        if onesided and not inverse:
            y = np.take(y, np.arange(n // 2 + 1), axis=axis)
        return [np.stack([y.real, y.imag], axis=-1).astype(x.dtype)]


def stft_params(node: Node) -> tuple[int, int, int, int]:
    """(frame_step, window length W, L = frame_length, frames) of an STFT node. Raises
    ShapeError when the signal is not (B, T, 1|2), the window is not 1-D, or a size is not
    positive."""
    x = node.inputs[0]
    if len(x.shape) != 3 or x.shape[-1] not in (1, 2):
        raise ShapeError(f"signal shape {list(x.shape)} must be (batch, length, 1 or 2)",
                         node=node.name, op=node.op, hint="reshape the signal")
    step = _scalar(node, 1, "frame_step")
    win = node.inputs[2] if len(node.inputs) > 2 else None
    L = _scalar(node, 3, "frame_length") if len(node.inputs) > 3 else None
    if win is not None and len(win.shape) != 1:
        raise ShapeError(f"window shape {list(win.shape)} is not 1-D", node=node.name,
                         op=node.op, hint="give the window as (frame_length,)")
    if L is None:
        L = win.shape[0] if win is not None else x.shape[1]
    W = win.shape[0] if win is not None else L
    if step is None or step < 1 or L < 1:
        raise ShapeError(f"frame_step {step} and frame_length {L} must be positive",
                         node=node.name, op=node.op, hint="give positive frame sizes")
    frames = 1 + (x.shape[1] - L) // step
    if frames < 0:
        frames = 0
    return step, W, L, frames


@register_op("STFT")
class STFT(OpDef):
    """ONNX STFT (opset 17; comment above DFT)."""

    attrs = {"onesided": 1}
    min_inputs, max_inputs = 2, 4

    def infer(self, node: Node) -> list[TensorType]:
        x = node.inputs[0]
        if x.dtype.kind != "f":
            raise ShapeError(f"signal of dtype {x.dtype.name} is not a float", node=node.name,
                             op=node.op, hint="give the signal as float32 or float64")
        step, W, L, frames = stft_params(node)
        bins = L // 2 + 1 if attr(node, "onesided") else L
        return [TensorType((x.shape[0], frames, bins, 2), x.dtype)]

    def reference(self, node: Node, x, step_, window=None, *rest) -> list[np.ndarray]:
        step, W, L, frames = stft_params(node)
        c = _complex(x.astype(np.float64))                                # (B, T)
        w = np.ones(W) if window is None else window.astype(np.float64)
        B, T = c.shape
        fr = np.zeros((B, frames, W), complex)
        for f in range(frames):
            seg = c[:, f * step:f * step + W]
            fr[:, f, :seg.shape[1]] = seg
        y = np.fft.fft(fr * w, n=L, axis=-1)
        if attr(node, "onesided"):
            y = y[..., :L // 2 + 1]
        return [np.stack([y.real, y.imag], axis=-1).astype(x.dtype)]


# ---- CausalConvWithState -----------------------------------------------------------------------
def causal_conv_shapes(node: Node) -> tuple[int, int, int, int]:
    """(batch, channels, length, kernel size k) of a CausalConvWithState node. Raises ShapeError
    when input is not (B, C, L), weight not (C, 1, k), bias not (C,) or past_state not
    (B, C, k - 1), and AttributeValueError for another activation than none/silu/swish."""
    x, w = node.inputs[:2]
    if str(attr(node, "activation")) not in ("none", "silu", "swish"):
        raise bad_attr(node, f"activation {attr(node, 'activation')!r} is not none, silu or "
                       "swish")
    if len(x.shape) != 3 or len(w.shape) != 3 or w.shape[0] != x.shape[1] or w.shape[1] != 1 \
            or w.shape[2] < 1:
        raise ShapeError(f"input {list(x.shape)} and weight {list(w.shape)} must be (B, C, L) "
                         "and (C, 1, k)", node=node.name, op=node.op,
                         hint="give one depthwise filter per channel")
    B, C, L = x.shape
    k = w.shape[2]
    want = {2: (C,), 3: (B, C, k - 1)}
    for i, shp in want.items():
        if len(node.inputs) > i and node.inputs[i] is not None and \
                tuple(node.inputs[i].shape) != shp:
            raise ShapeError(f"input {i} shape {list(node.inputs[i].shape)} should be "
                             f"{list(shp)}", node=node.name, op=node.op,
                             hint="bias is (C,), past_state (B, C, k - 1)")
    return B, C, L, k


@register_op("CausalConvWithState")
class CausalConvWithState(OpDef):
    """ONNX CausalConvWithState(input, weight, bias, past_state; activation) (opset 27) ->
    (output, present_state): a depthwise causal 1-D convolution of input (B, C, L) with weight
    (C, 1, k) over ``padded = concat(past_state or zeros (B, C, k - 1), input)`` along time,
    ``output[b, c, t] = bias[c] + sum_j weight[c, 0, j] padded[b, c, t + j]``, then ``x
    sigmoid(x)`` for silu/swish (computed in float32 as onnx's reference); present_state is the
    last k - 1 steps of padded."""

    attrs = {"activation": "none"}
    min_inputs, max_inputs = 2, 4

    def infer(self, node: Node) -> list[TensorType]:
        B, C, L, k = causal_conv_shapes(node)
        dt = node.inputs[0].dtype
        if dt.kind != "f":
            raise ShapeError(f"input of dtype {dt.name} is not a float", node=node.name,
                             op=node.op, hint="give float data")
        return [TensorType((B, C, L), dt), TensorType((B, C, k - 1), dt)]

    def reference(self, node: Node, x, w, b=None, past=None) -> list[np.ndarray]:
        B, C, L, k = causal_conv_shapes(node)
        pad = np.zeros((B, C, k - 1), x.dtype) if past is None else past
        padded = np.concatenate([pad, x], axis=2)
        y = np.zeros((B, C, L), np.float64)
        for j in range(k):
            y += w[None, :, 0, j, None].astype(np.float64) * padded[:, :, j:j + L]
        if b is not None:
            y += b[None, :, None]
        y = y.astype(x.dtype)
        if attr(node, "activation") in ("silu", "swish"):
            y32 = y.astype(np.float32)
            with np.errstate(over="ignore"):
                y = (y32 / (1 + np.exp(-y32))).astype(x.dtype)
        return [y, padded[:, :, padded.shape[2] - (k - 1):]]


# ---- MelWeightMatrix ----------------------------------------------------------------------------
def mel_sizes(node: Node) -> tuple[int, int]:
    """(num_mel_bins, dft_length) of MelWeightMatrix ``node``: constant inputs 0 and 1 (they
    set the output shape). Raises ShapeError naming the node when either is not a constant or
    is not positive."""
    m = int(np.asarray(const_input(node, 0, "num_mel_bins")).reshape(-1)[0])
    n = int(np.asarray(const_input(node, 1, "dft_length")).reshape(-1)[0])
    if m <= 0 or n <= 0:
        raise ShapeError(f"num_mel_bins={m} and dft_length={n} must be positive",
                         node=node.name, op=node.op, hint="give positive sizes")
    return m, n


def mel_bins(num_mel_bins: int, dft_length: int, sample_rate, lower, upper) -> np.ndarray:
    """The num_mel_bins + 2 triangle corners of MelWeightMatrix as spectrogram bin indices
    (int64), computed as the spec's reference (onnx/reference/ops/op_mel_weight_matrix.py), in
    its dtypes: mel(f) = 2595 log10(1 + f / 700) of the edges (``log1p`` in the edges' float
    type, then float64); num_mel_bins + 2 equal mel steps (float64) mapped back to hertz;
    bin = floor((dft_length + 1) * hertz / sample_rate)."""
    lo, hi = np.asarray(lower), np.asarray(upper)
    low_mel = 2595 * np.log1p(lo / 700) / np.log(10)
    high_mel = 2595 * np.log1p(hi / 700) / np.log(10)
    k = np.arange(0, num_mel_bins + 2)
    step = (high_mel - low_mel) / k.shape[0]
    hz = 700 * np.expm1((k * step + low_mel) / 2595 * np.log(10))
    return ((dft_length + 1) * hz // np.asarray(sample_rate)).astype(np.int64)


@register_op("MelWeightMatrix")
class MelWeightMatrix(OpDef):
    """ONNX MelWeightMatrix (opset 17, operator spec "MelWeightMatrix"): the (dft_length // 2 + 1,
    num_mel_bins) matrix of triangular mel filters that right-multiplies a linear spectrogram.

    Column i rises from bin l = b[i] to c = b[i + 1] ((j - l) / (c - l); a single 1 at c when
    l == c) and falls to h = b[i + 2] ((h - j) / (h - c), j < h), b = :func:`mel_bins`; every
    other entry is 0. num_mel_bins and dft_length (int32/int64 scalars) must be constants (they
    set the shape); sample_rate (int), lower_edge_hertz and upper_edge_hertz (float scalars)
    may be runtime inputs. Output in ``output_datatype`` (float32 by default). Corners outside
    [0, dft_length // 2] write nothing (onnx's reference would index out of range or wrap).
    Raises ShapeError naming the node for non-constant or non-positive sizes.
    """

    attrs = {"output_datatype": 1}
    min_inputs = max_inputs = 5

    def check(self, node):
        mel_sizes(node)
        onnx_dtype(node, attr(node, "output_datatype"))

    def infer(self, node):
        m, n = mel_sizes(node)
        return [TensorType((n // 2 + 1, m), onnx_dtype(node, attr(node, "output_datatype")))]

    def reference(self, node, num_mel_bins, dft_length, sample_rate, lower, upper):
        m, n = mel_sizes(node)
        b = mel_bins(m, n, sample_rate, lower, upper)
        N = n // 2 + 1
        out = np.zeros((N, m))
        j = np.arange(N)
        for i in range(m):
            lo, c, h = b[i], b[i + 1], b[i + 2]
            if c == lo:
                col = (j == c).astype(np.float64)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    col = np.where((lo <= j) & (j <= c), (j - lo) / float(c - lo), 0.0)
            if h > c:
                col = np.where((c <= j) & (j < h), (h - j) / float(h - c), col)
            out[:, i] = col
        return [out.astype(onnx_dtype(node, attr(node, "output_datatype")))]
