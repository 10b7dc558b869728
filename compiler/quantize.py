"""Post-training static int8 quantization: the user's settings, calibration data and ranges.

``onnxcc.compile(model, target, quantize=onnxcc.Int8(calibration=samples))`` quantizes a float
model with the scheme of ONNX QDQ models as onnxruntime's ``quantize_static`` writes them:

- weights: symmetric int8, per output channel (``per_channel=True``) or per tensor, zero point 0,
  scale ``max|w| / 127``;
- activations: asymmetric int8 per tensor, scale ``(max - min) / 255`` over a range stretched to
  include 0, zero point ``round(-128 - min / scale)``;
- biases: int32 with scale ``x_scale * w_scale`` and zero point 0;
- "16x8" (TFLite's 16-bit activation mode, ``activations="int16"`` for every layer or
  ``int16_layers={...}`` for the layers that need the range): those activations are int16,
  symmetric, zero point 0, scale ``max(|min|, |max|) / 32767``; the weights stay int8 as above;
  the products accumulate in int32 where the compiler proves from the constant weights that
  it cannot overflow (``onnxcc.ops.quant.accumulator_bound``), else in int64 as TFLite does;
  the requantization to int16 rounds as the int8 path does (``onnxcc.codegen.requantize``:
  one rounding, half to even, of the exact product with the 31-bit multiplier, as the ONNX
  QDQ graph means; TFLite's int64 ``MultiplyByQuantizedMultiplier`` of its 16x8
  ``reference_integer_ops``, tensorflow/lite/kernels/internal/common.h, takes the same
  |acc| < 2**47 but a multiplier cut to 16 bits and rounds half up). Softmax and the average
  pools keep their float kernels on int16 tensors (their integer kernels are int8);
- a Relu or a Clip of constant bounds (ReLU6) after a Conv/Gemm is folded into that layer's
  output range (as TFLite does);
  MaxPool, Reshape, Flatten, Transpose, Squeeze and Unsqueeze keep their input's parameters.

Ranges come from running the reference interpreter over the calibration samples:
``minmax`` (the extremes seen), ``percentile`` (the ``percentile``-th and its mirror of a 2048-bin
histogram) or ``entropy`` (the clipping threshold of least KL divergence between the float
histogram and its int8 quantization: Migacz, "8-bit Inference with TensorRT", GTC 2017).
The graph pass that inserts the quantization is ``onnxcc.passes.quantize.quantize_int8``;
``fuse_qdq`` then turns it into integer kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Sequence

import numpy as np

from .errors import InputError, OnnxccError
from .ir import Graph, Value

METHODS = ("minmax", "percentile", "entropy")
ACTIVATIONS = ("int8", "int16")
HIST_BINS = 2048


class CalibrationError(OnnxccError):
    """Calibration data that does not fit the model, or a tensor whose range cannot be
    quantized (zero or not finite over the calibration set)."""


@dataclass
class Int8:
    """Post-training static int8 quantization settings (module docstring for the scheme).

    Attributes:
        activations: ``"int8"`` (default), or ``"int16"``: every quantized activation int16
            ("16x8": int16 activations, int8 weights; module docstring).
        int16_layers: with ``activations="int8"``, the names of the Conv/Gemm/MatMul/Add/Mul/
            Concat nodes whose input and output activations are int16 (the layers that need
            the range); an Add, Mul or Concat with one int16 tensor gets int16 on every side.
            A name that is no quantized layer raises CalibrationError.
        calibration: representative inputs: a mapping input name -> array of samples stacked on
            axis 0 (``(N, *input_shape)``, or ``(N * batch, ...)`` for a batch-``batch`` input),
            a sequence of such mappings (one sample each), or the path of an ``.npz`` file (keys
            are input names) or of a folder of ``<input name>.npy`` files.
        method: ``"minmax"``, ``"percentile"`` or ``"entropy"``.
        per_channel: weights per output channel (else per tensor).
        percentile: for ``method="percentile"``, the percentile kept (e.g. 99.99).
    """

    calibration: Any
    method: str = "minmax"
    per_channel: bool = True
    percentile: float = 99.99
    activations: str = "int8"
    int16_layers: Collection[str] = ()

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATIONS:
            raise CalibrationError(f"unknown activation type {self.activations!r}",
                                   hint=f"use one of {', '.join(ACTIVATIONS)}")
        if isinstance(self.int16_layers, str):
            raise CalibrationError(f"int16_layers={self.int16_layers!r} is one string",
                                   hint="give a set or list of node names")
        self.int16_layers = frozenset(self.int16_layers)
        if self.method not in METHODS:
            raise CalibrationError(f"unknown calibration method {self.method!r}",
                                   hint=f"use one of {', '.join(METHODS)}")
        if not 50.0 < float(self.percentile) <= 100.0:
            raise CalibrationError(f"percentile {self.percentile} is outside (50, 100]",
                                   hint="typical values are 99.9 to 99.999")


def _read_source(src: Any) -> Any:
    """An .npz path or a folder of .npy files -> a dict name -> array; others unchanged."""
    if not isinstance(src, (str, Path)):
        return src
    p = Path(src)
    if p.is_dir():
        files = sorted(p.glob("*.npy"))
        if not files:
            raise CalibrationError(f"folder {str(p)!r} holds no .npy file",
                                   hint="save one <input name>.npy per model input")
        return {f.stem: np.load(f, allow_pickle=False) for f in files}
    if p.is_file():
        try:
            with np.load(p, allow_pickle=False) as z:
                if not hasattr(z, "files"):
                    raise CalibrationError(f"{str(p)!r} is one array, not an .npz of inputs",
                                           hint="np.savez(path, <input name>=samples, ...)")
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise CalibrationError(f"cannot read calibration data {str(p)!r}: {e}",
                                   hint="give an .npz file or a folder of .npy files") from e
    raise CalibrationError(f"no calibration file or folder {str(p)!r}",
                           hint="give an .npz file or a folder of .npy files")


def load_calibration(src: Any, inputs: Sequence[Value]) -> list[dict[str, np.ndarray]]:
    """The calibration samples as feeds for the graph ``inputs`` (see :class:`Int8`).

    Raises CalibrationError naming the input when names, shapes or dtypes do not match the
    model's inputs, and when there is no sample."""
    src = _read_source(src)
    want = {v.name: v for v in inputs}
    if isinstance(src, Mapping):
        _check_names(src.keys(), want)
        per_input = {}
        for name, v in want.items():
            a = np.asarray(src[name])
            per_input[name] = _split(name, a, v)
        counts = {len(s) for s in per_input.values()}
        if len(counts) != 1:
            raise CalibrationError("the inputs hold different numbers of samples: " + ", ".join(
                f"{k}: {len(s)}" for k, s in per_input.items()),
                hint="give every input the same number of samples")
        n = counts.pop()
        samples = [{k: per_input[k][i] for k in want} for i in range(n)]
    elif isinstance(src, Iterable):
        samples = []
        for s in src:
            if not isinstance(s, Mapping):
                raise CalibrationError("a calibration sample is not a mapping of input names to "
                                       "arrays", hint="give {input name: array} per sample")
            _check_names(s.keys(), want)
            samples.append({k: _cast(k, np.asarray(s[k]), want[k]) for k in want})
            for k in want:
                if samples[-1][k].shape != want[k].shape:
                    raise CalibrationError(f"sample {len(samples) - 1} of input {k!r} has shape "
                                           f"{list(samples[-1][k].shape)}, the model wants "
                                           f"{list(want[k].shape)}",
                                           hint="give arrays of the input's shape")
    else:
        raise CalibrationError(f"calibration data of type {type(src).__name__} is not supported",
                               hint="give a mapping, a list of mappings, an .npz or a folder")
    if not samples:
        raise CalibrationError("the calibration set is empty",
                               hint="give a few hundred representative inputs")
    return samples


def _check_names(names: Iterable[str], want: Mapping[str, Value]) -> None:
    names = set(names)
    missing, extra = sorted(set(want) - names), sorted(names - set(want))
    if missing or extra:
        raise CalibrationError(
            (f"calibration data lacks input(s) {missing}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"calibration data names {extra}, which the model does not have" if extra else ""),
            hint=f"the model's inputs are {sorted(want)}")


def _cast(name: str, a: np.ndarray, v: Value) -> np.ndarray:
    if a.dtype == v.dtype:
        return a
    if a.dtype.kind == "f" and v.dtype.kind == "f" or a.dtype.kind in "iu" and v.dtype.kind in "iu":
        return a.astype(v.dtype)
    raise CalibrationError(f"calibration data for input {name!r} is {a.dtype}, the model "
                           f"wants {v.dtype}", hint="convert the samples to the input's dtype")


def _split(name: str, a: np.ndarray, v: Value) -> list[np.ndarray]:
    """Samples of one input from a stacked array."""
    a = _cast(name, a, v)
    shape = tuple(v.shape)
    if a.shape == shape:
        return [a]
    if a.ndim == len(shape) + 1 and a.shape[1:] == shape:
        return list(a)
    if shape and a.ndim == len(shape) and a.shape[1:] == shape[1:] and shape[0] and \
            a.shape[0] % shape[0] == 0:
        b = shape[0]
        return [a[i:i + b] for i in range(0, a.shape[0], b)]
    raise CalibrationError(f"calibration data for input {name!r} has shape {list(a.shape)}, "
                           f"which is neither {list(shape)} nor samples of it stacked on axis 0",
                           hint="stack the samples on a new first axis")


# ---- ranges ---------------------------------------------------------------------------------------
@dataclass
class Range:
    """What calibration saw of one tensor: min, max and (second pass) a histogram of |x|."""

    lo: float = math.inf
    hi: float = -math.inf
    hist: np.ndarray | None = None
    edge: float = 0.0                    # the histogram spans [0, edge]
    count: int = 0

    def update(self, a: np.ndarray) -> None:
        if a.size:
            self.lo = min(self.lo, float(np.min(a)))
            self.hi = max(self.hi, float(np.max(a)))
            self.count += a.size

    def add_hist(self, a: np.ndarray) -> None:
        if self.hist is None:
            self.edge = max(abs(self.lo), abs(self.hi)) or 1.0
            self.hist = np.zeros(HIST_BINS, np.int64)
        h, _ = np.histogram(np.abs(a.astype(np.float64)), bins=HIST_BINS, range=(0, self.edge))
        self.hist += h


def _percentile_threshold(r: Range, pct: float) -> float:
    c = np.cumsum(r.hist)
    k = int(np.searchsorted(c, c[-1] * pct / 100.0))
    return (min(k, HIST_BINS - 1) + 1) * r.edge / HIST_BINS


def _entropy_threshold(r: Range, levels: int) -> float:
    """The |x| threshold whose clipped histogram, requantized to ``levels`` bins, is closest to
    the float histogram in KL divergence (TensorRT's calibration)."""
    hist = r.hist.astype(np.float64)
    best, best_i = math.inf, HIST_BINS
    for i in range(levels, HIST_BINS + 1, 16):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        if p.sum() == 0:
            continue
        chunks = np.array_split(np.arange(i), levels)
        q = np.zeros(i)
        for ch in chunks:
            part = hist[ch]
            nz = part > 0
            if nz.any():
                q[ch[nz]] = part.sum() / nz.sum()
        pn, qn = p / p.sum(), q / max(q.sum(), 1e-300)
        m = (pn > 0)
        if (qn[m] == 0).any():
            continue
        kl = float(np.sum(pn[m] * np.log(pn[m] / qn[m])))
        if kl < best:
            best, best_i = kl, i
    return best_i * r.edge / HIST_BINS


def activation_params(name: str, r: Range, method: str, pct: float, bits: int = 8
                      ) -> tuple[np.float32, np.integer]:
    """(scale, zero point) of an activation from its calibrated range: asymmetric int8
    (``bits`` 8), or symmetric int16 with zero point 0 (``bits`` 16, TFLite's 16x8 scheme:
    scale ``max(|lo|, |hi|) / 32767``; the entropy method then keeps the whole range, as 2048
    histogram bins resolve fewer levels than int16 has).

    Raises CalibrationError naming the tensor when the range is empty, zero or not finite, or
    so small that the scale is below float32's smallest normal number (1.2e-38)."""
    lo, hi = r.lo, r.hi
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise CalibrationError(f"tensor {name!r} takes values {lo}..{hi} over the calibration "
                               "set: its range is not finite", hint="check the calibration "
                               "inputs for NaN/inf, or the model for overflow")
    if method != "minmax" and r.hist is not None and r.hist.sum():
        t = (_percentile_threshold(r, pct) if method == "percentile"
             else _entropy_threshold(r, 32767 if bits == 16 else 255 if lo >= 0 else 128))
        lo, hi = max(lo, -t), min(hi, t)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        raise CalibrationError(f"tensor {name!r} is 0 on every calibration sample: its range is "
                               "zero", hint="calibrate with representative inputs")
    scale = np.float32(max(-lo, hi) / 32767.0) if bits == 16 else np.float32((hi - lo) / 255.0)
    if not scale >= np.finfo(np.float32).tiny:   # 0 or subnormal: 1 / scale is no float32
        raise CalibrationError(f"tensor {name!r} takes values {r.lo:g}..{r.hi:g} over the "
                               f"calibration set: its int{bits} scale {float(scale):g} is below "
                               "float32's smallest normal number", hint="calibrate with "
                               "representative inputs, or leave this tensor in float")
    if bits == 16:
        return scale, np.int16(0)
    zp = int(np.clip(np.rint(-128.0 - lo / float(scale)), -128, 127))
    return scale, np.int8(zp)


def weight_params(w: np.ndarray, per_channel: bool, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights: ``(w_q int8, scale float32)``, the scale per slice along
    ``axis`` (per output channel) or one value; an all-zero slice gets scale 1."""
    w = np.asarray(w, np.float32)
    if per_channel:
        red = tuple(a for a in range(w.ndim) if a != axis)
        amax = np.max(np.abs(w), axis=red) if red else np.abs(w)
        shape = [1] * w.ndim
        shape[axis] = -1
    else:
        amax = np.array(np.max(np.abs(w)) if w.size else 0.0)
        shape = [1] * w.ndim
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale.reshape(-1) if per_channel else scale.reshape(())


@dataclass
class LayerReport:
    """One quantized tensor: its producer node and op, scale, zero point, and the SQNR (dB) of
    the int8 model's value against the float model's over the calibration set."""

    tensor: str
    node: str
    op: str
    scale: float
    zero_point: int
    sqnr_db: float = math.nan


@dataclass
class QuantReport:
    """What quantization did: the method, sample count, one :class:`LayerReport` per
    quantized activation tensor in graph order, and the kind (int8, or with int16
    activations)."""

    method: str
    samples: int
    layers: list[LayerReport] = field(default_factory=list)
    kind: str = "int8"        # "int16x8" (every activation int16), "int8 + int16x8" (some)

    def table(self) -> str:
        """A plain-text table, worst SQNR marked."""
        rows = [f"{self.kind} quantization: {self.method}, {self.samples} calibration samples",
                f"{'tensor':24} {'op':20} {'scale':>12} {'zp':>5} {'SQNR dB':>8}"]
        worst = min((r.sqnr_db for r in self.layers if math.isfinite(r.sqnr_db)), default=None)
        for r in self.layers:
            mark = "  <- lowest" if worst is not None and r.sqnr_db == worst else ""
            rows.append(f"{r.tensor[:24]:24} {r.op[:20]:20} {r.scale:12.6g} {r.zero_point:5d} "
                        f"{r.sqnr_db:8.2f}{mark}")
        return "\n".join(rows)


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """10 log10(sum(ref^2) / sum((ref - got)^2)); inf when equal."""
    ref = np.asarray(ref, np.float64)
    err = float(np.sum((ref - np.asarray(got, np.float64)) ** 2))
    sig = float(np.sum(ref ** 2))
    if err == 0:
        return math.inf
    return 10.0 * math.log10(sig / err) if sig > 0 else -math.inf


def graph_inputs_check(g: Graph) -> None:
    """Quantization needs float inputs to calibrate a float model."""
    if not any(v.dtype.kind == "f" for v in g.inputs):
        raise InputError("quantize=Int8(...) needs a float model (no float input found)",
                         hint="the model is already integer or takes no float input")
