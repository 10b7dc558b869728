"""Fixed-point types for the HLS back end: ``ap_fixed<W,I,Q,O>`` with exact numpy quantization.

A :class:`FixedType` is Vitis HLS's arbitrary-precision fixed-point type (UG1399, "Arbitrary
Precision Fixed-Point Data Types"): ``W`` bits in all, ``I`` of them integer bits (sign
included when signed), so ``F = W - I`` fraction bits and a step of ``2**-F``. A value is held
as the integer ``raw = value * 2**F``. Converting a wider value to the type applies its
quantization mode ``Q`` to the dropped fraction bits, then its overflow mode ``O``:

- ``AP_RND_CONV``: round to nearest, ties to even (convergent rounding; no bias). The default
  here, as the ONNX spec's QuantizeLinear rounds.
- ``AP_RND``: round to nearest, ties toward plus infinity. ``AP_TRN`` (the type's default in
  Vitis): toward minus infinity. ``AP_TRN_ZERO``: toward zero.
- ``AP_SAT``: saturate to the type's minimum/maximum (the default here). ``AP_WRAP``: keep the
  low ``W`` bits (two's complement wrap; Vitis's own default).

On the integer path of quantized models (``passes/qdq_integer.py``) an int8/uint8/int32 tensor is
``ap_int<W>``/``ap_uint<W>`` of its own width (:func:`integer_type`), and the kernels compute
in C integer types exactly as the C back end's int8 build does (no rounding or saturation
mode applies: every value fits its type, the requantization clamps before it stores).

:func:`assign_types` gives every tensor of a planned graph its type (the user's default and
per-layer overrides; views keep their input's type) and every node an accumulator wide enough
that its sums and products are exact: for a product-sum over ``K`` terms of ``x`` (``Ix.Fx``)
and ``w`` (``Iw.Fw``), ``F = Fx + Fw`` and ``I = Ix + Iw + ceil(log2 K)``, one bit more for
the bias (hls4ml's ``accum_t`` rule, without its truncation). So the only roundings of a layer
are its output's quantization and those its op states (the table indices of TableSoftmax, the
truncating division of average pooling); :mod:`onnxcc.codegen.hls.reference` computes the
same numbers in numpy, bit for bit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from onnxcc.errors import OnnxccError

QUANT_MODES = ("AP_RND_CONV", "AP_RND", "AP_TRN", "AP_TRN_ZERO")
OVERFLOW_MODES = ("AP_SAT", "AP_WRAP")
MAX_WIDTH = 1024     # AP_INT_MAX_W's default in the ap_int headers


class PrecisionError(OnnxccError):
    """A fixed-point configuration that cannot be used: an unparsable or impossible type, an
    override naming no layer of the model."""


@dataclass(frozen=True)
class FixedType:
    """``ap_fixed<width, integer, rounding, overflow>`` (``signed=False``: ``ap_ufixed``).
    ``integer`` may be negative or exceed ``width`` (the type's range then has no integer or no
    fraction bits), as the ap_fixed headers allow."""

    width: int
    integer: int
    signed: bool = True
    rounding: str = "AP_RND_CONV"
    overflow: str = "AP_SAT"
    #: an integer tensor of the integer path (``integer == width``): rendered ``ap_int<W>`` or
    #: ``ap_uint<W>``; its values are computed in C integer types and stored exactly
    int_only: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.width <= MAX_WIDTH:
            raise PrecisionError(f"fixed-point width {self.width} is outside 1..{MAX_WIDTH}",
                                 hint="use a width of 1 to 1024 bits, e.g. ap_fixed<16,6>")
        if self.rounding not in QUANT_MODES or self.overflow not in OVERFLOW_MODES:
            raise PrecisionError(f"unknown mode {self.rounding}/{self.overflow}",
                                 hint=f"rounding: {', '.join(QUANT_MODES)}; overflow: "
                                 f"{', '.join(OVERFLOW_MODES)}")

    @property
    def frac(self) -> int:
        """Fraction bits ``F = width - integer``."""
        return self.width - self.integer

    @property
    def raw_min(self) -> int:
        """The smallest raw integer (value * 2**F) the type holds."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        """The largest raw integer the type holds."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lowest(self) -> float:
        """The smallest value the type holds."""
        return math.ldexp(self.raw_min, -self.frac)

    @property
    def highest(self) -> float:
        """The largest value the type holds."""
        return math.ldexp(self.raw_max, -self.frac)

    def cpp(self) -> str:
        """The C++ type: ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>`` (``ap_int<8>`` for an integer
        tensor)."""
        if self.int_only:
            return f"{'ap_int' if self.signed else 'ap_uint'}<{self.width}>"
        base = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{base}<{self.width},{self.integer},{self.rounding},{self.overflow}>"

    def __str__(self) -> str:
        if self.int_only:
            return self.cpp()
        base = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{base}<{self.width},{self.integer}>"

    def raw(self, values: Any, frac: int | None = None) -> np.ndarray:
        """The raw integers (int64, or Python ints in an object array past 62 bits) of
        ``values`` converted to this type. ``values`` are float64 numbers (exact inputs), or,
        with ``frac`` given, raw integers at ``frac`` fraction bits (an exact wider value)."""
        if frac is None:
            v = np.asarray(values, np.float64)
            if not np.all(np.isfinite(v)):
                v = np.nan_to_num(v, nan=0.0, posinf=self.highest * 2, neginf=self.lowest * 2)
            # the value times 2**F then the rounding, in float64: exact while |raw| < 2**52
            scaled = np.ldexp(v, self.frac)
            q = self._round_float(scaled)
            big = np.abs(q) >= 2.0 ** 62
            q = np.where(big, np.sign(q) * 2.0 ** 62, q).astype(np.int64)
            return self._overflow(q)
        r = np.asarray(values)
        shift = frac - self.frac
        if shift <= 0:
            return self._overflow(_shl(r, -shift))
        return self._overflow(_round_shift(r, shift, self.rounding))

    def quantize(self, values: Any, frac: int | None = None) -> np.ndarray:
        """``values`` converted to this type, as float64 numbers (exact: at most 53 bits)."""
        return np.ldexp(self.raw(values, frac).astype(np.float64), -self.frac)

    def _round_float(self, s: np.ndarray) -> np.ndarray:
        if self.rounding == "AP_RND_CONV":
            return np.rint(s)
        if self.rounding == "AP_RND":
            return np.floor(s + 0.5)
        if self.rounding == "AP_TRN":
            return np.floor(s)
        return np.trunc(s)

    def _overflow(self, q: np.ndarray) -> np.ndarray:
        if self.overflow == "AP_SAT":
            return np.clip(q, self.raw_min, self.raw_max)
        m = 1 << self.width
        w = np.mod(q, m)
        return np.where(w > self.raw_max, w - m, w) if self.signed else w


def _shl(r: np.ndarray, k: int) -> np.ndarray:
    """``r * 2**k`` exactly: in Python ints (an object array) when int64 could overflow."""
    if not k:
        return r
    r = np.asarray(r)
    if r.dtype != object and r.size and \
            float(np.max(np.abs(r.astype(np.float64)))) * 2.0 ** k >= 2.0 ** 62:
        r = r.astype(object)
    return r * (1 << k)


def _round_shift(r: np.ndarray, k: int, mode: str) -> np.ndarray:
    """``r / 2**k`` rounded by ``mode`` (integers in, integers out; exact; an object array of
    Python ints stays one, for products past 63 bits)."""
    r = np.asarray(r)
    if r.dtype != object:
        r = r.astype(np.int64)
    fl = r >> k                       # floor
    rem = r - (fl << k)               # in [0, 2**k)
    half = 1 << (k - 1)
    if mode == "AP_TRN":
        return fl
    if mode == "AP_TRN_ZERO":
        return np.where((r < 0) & (rem != 0), fl + 1, fl)
    if mode == "AP_RND":
        return np.where(rem >= half, fl + 1, fl)
    up = (rem > half) | ((rem == half) & (fl % 2 == 1))
    return np.where(up, fl + 1, fl)


_TYPE_RE = re.compile(r"^\s*(ap_fixed|ap_ufixed|fixed|ufixed)\s*<\s*(\d+)\s*,\s*(-?\d+)\s*"
                      r"(?:,\s*(AP_\w+)\s*)?(?:,\s*(AP_\w+)\s*)?>\s*$")


def parse_type(text: str | FixedType, *, rounding: str = "AP_RND_CONV",
               overflow: str = "AP_SAT") -> FixedType:
    """``"ap_fixed<16,6>"`` (or ``ap_ufixed``, with optional rounding and overflow modes) as a
    FixedType; a FixedType passes through. Raises PrecisionError for anything else."""
    if isinstance(text, FixedType):
        return text
    m = _TYPE_RE.match(str(text))
    if not m:
        raise PrecisionError(f"cannot read the fixed-point type {text!r}",
                             hint="write it as ap_fixed<W,I> (W total bits, I integer bits), "
                             "e.g. ap_fixed<16,6> or ap_fixed<18,8,AP_RND_CONV,AP_SAT>")
    return FixedType(int(m.group(2)), int(m.group(3)), not m.group(1).endswith("ufixed") and
                     m.group(1) != "ufixed", m.group(4) or rounding, m.group(5) or overflow)


def integer_bits(max_abs: float, signed: bool = True) -> int:
    """The fewest integer bits (sign included) whose range holds ``max_abs``: the smallest
    ``I`` with ``max_abs < 2**(I-1)`` (signed); at least 1."""
    if not max_abs > 0 or not math.isfinite(max_abs):
        return 1
    i = math.floor(math.log2(max_abs)) + 1
    if signed:
        i += 1
    return max(i, 1)


def integer_type(dtype: Any) -> FixedType:
    """The ``ap_int<W>`` (``ap_uint<W>``) holding every value of the numpy integer ``dtype``
    exactly: int8 -> ap_int<8>, uint8 -> ap_uint<8>, int32 -> ap_int<32>."""
    dt = np.dtype(dtype)
    bits = dt.itemsize * 8
    return FixedType(bits, bits, dt.kind == "i", "AP_TRN", "AP_WRAP", int_only=True)


CONST_FRAC = 16   # fraction bits of a kernel's float literals (Clip bounds, LeakyRelu's alpha)
#: a bool tensor (Where's condition): one unsigned bit, rendered as C++ ``bool``
BOOL_TYPE = FixedType(1, 1, False, "AP_RND_CONV", "AP_SAT")


def const_type(values: Any) -> FixedType:
    """The type of a kernel's float literals: :data:`CONST_FRAC` fraction bits and the integer
    bits its largest literal needs (dyadic literals such as 0, 6 or 128 are exact)."""
    a = np.asarray(values, np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    i = integer_bits(float(np.max(np.abs(a)))) if a.size else 1
    return FixedType(i + CONST_FRAC, i)


def weight_type(data: np.ndarray, width: int, rounding: str = "AP_RND_CONV",
                overflow: str = "AP_SAT") -> FixedType:
    """The type of a constant tensor: ``width`` bits with the integer bits its largest
    magnitude needs (hls4ml's ``weight_t`` chosen per tensor rather than one for all)."""
    a = np.asarray(data, np.float64)
    m = float(np.max(np.abs(a[np.isfinite(a)]))) if a.size and np.isfinite(a).any() else 0.0
    return FixedType(width, integer_bits(m), True, rounding, overflow)


@dataclass
class FixedPoint:
    """The fixed-point configuration of an FPGA compile (``onnxcc.compile(...,
    quantize=onnxcc.FixedPoint(...))``).

    Args:
        default: the type of every tensor (activations and graph inputs/outputs) not named in
            ``layers``; hls4ml's default is ``ap_fixed<16,6>``.
        layers: node or tensor name -> type of that node's output (or of that tensor, a graph
            input included), e.g. ``{"conv1": "ap_fixed<18,8>"}``. A name of no node or tensor
            of the model raises PrecisionError.
        weight_width: bits of each constant (weights, biases, tables); the integer bits come
            from the tensor's largest magnitude.
        rounding, overflow: the modes of every type that does not state its own (see the
            module docstring).
        calibration: representative inputs (as for ``onnxcc.Int8``: a mapping of input name
            -> samples on axis 0, a list of such mappings, an .npz or a folder of .npy). When
            given, each tensor not named in ``layers`` gets ``width`` bits with the integer
            bits its largest magnitude over the samples needs plus ``margin`` (hls4ml's
            profiling rule), the rest fraction bits; ``default`` then only types what the
            samples never reached.
        width, margin: the bits of a calibrated type and the extra integer bits of headroom.
    """

    default: str | FixedType = "ap_fixed<16,6>"
    layers: Mapping[str, str | FixedType] = field(default_factory=dict)
    weight_width: int = 16
    rounding: str = "AP_RND_CONV"
    overflow: str = "AP_SAT"
    calibration: Any = None
    width: int = 16
    margin: int = 1

    def __post_init__(self) -> None:
        if not 2 <= self.weight_width <= 64:
            raise PrecisionError(f"weight_width {self.weight_width} is outside 2..64",
                                 hint="weights are stored as raw integers of up to 64 bits")
        if not 2 <= self.width <= MAX_WIDTH or self.margin < 0:
            raise PrecisionError(f"width {self.width} / margin {self.margin} cannot be used",
                                 hint="width 2..1024 bits, margin >= 0")

    def type_of(self, text: str | FixedType) -> FixedType:
        """``text`` parsed with this configuration's default modes (PrecisionError if bad)."""
        return parse_type(text, rounding=self.rounding, overflow=self.overflow)

    def weight(self, data: np.ndarray) -> FixedType:
        """The type of the constant ``data``."""
        return weight_type(data, self.weight_width, self.rounding, self.overflow)


def load_precision_file(path: Any) -> FixedPoint:
    """A FixedPoint from a TOML file::

        default = "ap_fixed<16,6>"
        weight_width = 16            # optional; also rounding, overflow, width, margin
        [layers]
        conv1 = "ap_fixed<18,8>"     # node or tensor name = type

    Raises PrecisionError naming the file and key for unreadable TOML or unknown keys."""
    import tomllib
    from pathlib import Path

    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PrecisionError(f"cannot read precision file {path}: {e}",
                             hint='write TOML: default = "ap_fixed<16,6>" and a [layers] table') from e
    known = {"default", "layers", "weight_width", "rounding", "overflow", "width", "margin"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PrecisionError(f"{path}: unknown key(s) {', '.join(unknown)}",
                             hint=f"known keys: {', '.join(sorted(known))}")
    layers = data.get("layers", {})
    if not isinstance(layers, dict) or not all(isinstance(v, str) for v in layers.values()):
        raise PrecisionError(f"{path}: [layers] must map names to type strings",
                             hint='e.g. conv1 = "ap_fixed<18,8>"')
    return FixedPoint(**{k: v for k, v in data.items() if k != "layers"}, layers=layers)


@dataclass
class Precision:
    """The types of one compiled graph: ``values`` (tensor name -> type), ``accum`` (node name
    -> the accumulator/internal type of its kernel) and the configuration (for constants)."""

    values: dict[str, FixedType]
    accum: dict[str, FixedType]
    config: FixedPoint

    def weight(self, data: np.ndarray) -> FixedType:
        """The type of the constant ``data`` (``FixedPoint.weight``)."""
        return self.config.weight(data)


def _fx(t: FixedType) -> tuple[int, int]:
    return t.integer, t.frac


def _acc(cfg: FixedPoint, i: int, f: int) -> FixedType:
    f = max(f, 0)
    i = max(i, 1)
    return FixedType(i + f, i, True, cfg.rounding, cfg.overflow)


def assign_types(g: Any, cfg: FixedPoint, imported: set[str] | frozenset[str] = frozenset()
                 ) -> Precision:
    """Every tensor's and every node's type for the planned graph ``g`` (see the module
    docstring). Views (Reshape, Flatten...) keep their input's type. Raises PrecisionError when
    ``cfg.layers`` names no node or tensor of ``g`` (saying so when the name was in the
    imported model, ``imported``, and a pass fused or folded it away)."""
    from onnxcc.passes.liveness import is_view

    default = cfg.type_of(cfg.default)
    layers = {k: cfg.type_of(v) for k, v in cfg.layers.items()}
    names = {n.name for n in g.nodes} | {v.name for v in g.values()}
    unknown = sorted(set(layers) - names)
    if unknown:
        gone = [u for u in unknown if u in imported]
        raise PrecisionError(f"precision overrides name no node or tensor of the model: "
                             f"{', '.join(repr(u) for u in unknown)}"
                             + (f" ({', '.join(repr(u) for u in gone)} fused or folded away by "
                                "the passes)" if gone else ""),
                             hint="name the layers `onnxcc report -t <fpga part>` lists (a fused "
                             "Conv/Gemm + activation is one node, named after the Conv/Gemm)")
    seen = _calibrate(g, cfg) if cfg.calibration is not None else {}
    grids = g.meta.get("fixed_types", {})   # from a quantized model's Q/DQ pairs (qdq_fixed)

    def chosen(name: str, node: str | None = None) -> FixedType:
        if name in layers or (node is not None and node in layers):
            return layers.get(name) or layers[node]
        if name in grids:
            return grids[name]
        if name in seen:
            return FixedType(cfg.width, integer_bits(seen[name]) + cfg.margin, True,
                             cfg.rounding, cfg.overflow)
        return default

    values: dict[str, FixedType] = {}
    for v in g.inputs:
        values[v.name] = BOOL_TYPE if v.dtype == np.bool_ else (
            integer_type(v.dtype) if v.dtype.kind in "iu" else chosen(v.name))
    for n in g.nodes:
        for o in n.outputs:
            if o is None:
                continue
            if is_view(n) and n.inputs[0].name in values:
                values[o.name] = values[n.inputs[0].name]
            elif o.dtype == np.bool_:
                values[o.name] = BOOL_TYPE
            elif o.dtype.kind in "iu":   # the integer path: the tensor's own integer type
                values[o.name] = integer_type(o.dtype)
            else:
                values[o.name] = chosen(o.name, n.name)
    accum = {n.name: integer_type(np.int32) if any(
        o is not None and o.dtype.kind in "iu" for o in n.outputs) else _node_accum(n, values, cfg)
        for n in g.nodes}
    return Precision(values, accum, cfg)


def _calibrate(g: Any, cfg: FixedPoint) -> dict[str, float]:
    """The largest magnitude of every tensor of ``g`` over the calibration samples (the float
    graph run by onnxcc's reference interpreter). Raises CalibrationError for samples that do
    not match the inputs."""
    from onnxcc.interpreter import interpret_values
    from onnxcc.ir import TensorType, Value
    from onnxcc.quantize import load_calibration
    from onnxcc.runtime.hls import quantize_port

    names = [v.name for v in g.inputs] + [o.name for n in g.nodes for o in n.outputs
                                          if o is not None]
    peak: dict[str, float] = {}
    # an integer port (integer_ports moved the model's QuantizeLinear out of the design) takes
    # float samples, quantized here as CompiledModel.run() quantizes its inputs
    ports = g.meta.get("port_scales", {})
    want = [Value(v.name, TensorType(v.shape, np.dtype(np.float32))) if v.name in ports
            and ports[v.name].get("quantize") else v for v in g.inputs]
    for feeds in load_calibration(cfg.calibration, want):
        feeds = {k: quantize_port(a, ports[k]).astype(ports[k]["dtype"])
                 if k in ports and ports[k].get("quantize") else a for k, a in feeds.items()}
        for name, a in interpret_values(g, feeds, names).items():
            a = np.asarray(a, np.float64)
            if a.size and np.isfinite(a).any():
                peak[name] = max(peak.get(name, 0.0), float(np.max(np.abs(a[np.isfinite(a)]))))
    return peak


def _activation_bits(n: Any) -> tuple[int, int]:
    """(integer bits, fraction bits) the activation constants of ``n`` need."""
    consts: list[float] = []
    act = n.attrs.get("activation") if n.op.startswith("onnxcc.Fused") else n.op
    aattrs = dict(n.attrs.get("activation_attrs") or ()) if n.op.startswith("onnxcc.Fused") \
        else dict(n.attrs)
    if act == "Clip":
        consts += [float(aattrs[k]) for k in ("min", "max") if aattrs.get(k) is not None]
        consts += [float(np.asarray(v.const).reshape(-1)[0]) for v in n.inputs[1:]
                   if v is not None and v.const is not None and v.const.size == 1]
    if act == "LeakyRelu":
        return 2, CONST_FRAC
    big = max((abs(c) for c in consts if math.isfinite(c)), default=0.0)
    return integer_bits(big), (CONST_FRAC if consts else 0)


def _node_accum(n: Any, values: dict[str, FixedType], cfg: FixedPoint) -> FixedType:
    ins = [values.get(v.name) if v is not None and v.const is None else
           (cfg.weight(v.const) if v is not None else None) for v in n.inputs]
    x = ins[0] if ins else None
    ix, fx = _fx(x) if x is not None else (1, 0)
    ai, af = _activation_bits(n)
    op = n.op
    if op in ("Conv", "onnxcc.FusedConv", "Gemm", "onnxcc.FusedGemm", "MatMul"):
        w = ins[1]
        iw, fw = _fx(w)
        if op in ("Conv", "onnxcc.FusedConv"):
            k = math.prod(n.inputs[1].shape[1:])
        elif op == "MatMul":
            k = n.inputs[0].shape[-1]
        else:
            k = n.inputs[0].shape[0 if n.attrs.get("transA") else -1]
        i, f = ix + iw + max(0, math.ceil(math.log2(max(k, 1)))), fx + fw
        if len(ins) > 2 and ins[2] is not None:
            ib, fb = _fx(ins[2])
            i, f = max(i, ib) + 1, max(f, fb)
        alpha = float(n.attrs.get("alpha", 1.0)) if "Gemm" in op else 1.0
        beta = float(n.attrs.get("beta", 1.0)) if "Gemm" in op else 1.0
        if alpha != 1.0 or beta != 1.0:
            raise PrecisionError(f"node {n.name!r} ({op}): alpha/beta other than 1 are not "
                                 "supported on FPGA targets",
                                 hint="fold alpha and beta into the weights before export")
        return _acc(cfg, max(i, ai) + 1, max(f, af))
    if op in ("MaxPool", "GlobalMaxPool"):
        return _acc(cfg, ix + 1, fx)
    if op in ("AveragePool", "GlobalAveragePool"):
        k = math.prod(n.inputs[0].shape[2:]) if op == "GlobalAveragePool" else \
            math.prod(n.attrs.get("kernel_shape") or [1])
        return _acc(cfg, ix + max(0, math.ceil(math.log2(max(k, 1)))) + 1, fx + 8)
    if op == "Where":
        a, b = ins[1], ins[2]
        return _acc(cfg, max(a.integer, b.integer) + 1, max(a.frac, b.frac))
    if op in ("Add", "Sub"):
        a, b = ins[0], ins[1]
        return _acc(cfg, max(a.integer, b.integer) + 1, max(a.frac, b.frac))
    if op == "Mul":
        a, b = ins[0], ins[1]
        return _acc(cfg, a.integer + b.integer, a.frac + b.frac)
    if op == "Pad":
        v = n.inputs[2].const if len(n.inputs) > 2 and n.inputs[2] is not None else None
        big = abs(float(np.asarray(v).reshape(-1)[0])) if v is not None else 0.0
        return _acc(cfg, max(ix, integer_bits(big)) + 1, max(fx, CONST_FRAC))
    if op == "HardSigmoid":
        alpha = abs(float(n.attrs.get("alpha", 0.2)))
        return _acc(cfg, ix + integer_bits(alpha) + 2, fx + CONST_FRAC)
    if op == "PRelu":
        w = ins[1]
        return _acc(cfg, ix + w.integer + 1, fx + w.frac)
    if op == "onnxcc.TableActivation":
        t = ins[1]
        span = abs(float(n.attrs.get("lo", -8.0)))
        shift = max(0, int(math.log2(float(n.attrs.get("scale", 64.0)))))
        i = max(ix, integer_bits(span)) + 1 + shift + 1
        return _acc(cfg, max(i, integer_bits(len(n.inputs[1].const)) + 1),
                    max(fx, t.frac if t is not None else 0, CONST_FRAC))
    if op == "onnxcc.TableSoftmax":
        f = max([fx] + [t.frac for t in ins[1:] if t is not None])
        return _acc(cfg, max(ix + 9, 12), f)
    # copies and elementwise activations: the input's bits and the constants'
    return _acc(cfg, max(ix, ai) + 1, max(fx, af))
