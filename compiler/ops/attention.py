"""Transformer ops: Attention (opsets 23-25), RMSNormalization and RotaryEmbedding (opset 23),
LinearAttention (opset 27).

Attention works on 4-D tensors (batch, heads, sequence, head size) or 3-D ones (batch, sequence,
heads * head size, with ``q_num_heads``/``kv_num_heads``); :func:`attention_dims` states the
shapes once for the reference, the inference and the lowering. The numpy references follow the
ONNX spec's function bodies (onnx/defs/nn/defs.cc and utils.cc), and the tests compare them with
``onnx.reference`` and onnxruntime.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Node, TensorType
from . import REQUIRED, OpDef, attr, bad_attr, register_op
from ._util import has_input, norm_axis


def _ct(x: np.ndarray) -> np.dtype:
    """Compute type: float64 stays, everything else (float16 included) runs in float32."""
    return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)


# ---- Attention --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AttentionDims:
    """The sizes of an Attention node: B batch, Hq query heads, Hkv key/value heads, S query
    length, P past length, T new key/value length (L = P + T keys in all), D the query/key head
    size, Dv the value head size, Lm the mask's last dim (0: no mask); ``rank3`` when Q, K, V
    (and Y) are (B, seq, heads * size)."""

    B: int
    Hq: int
    Hkv: int
    S: int
    P: int
    T: int
    D: int
    Dv: int
    Lm: int
    rank3: bool

    @property
    def L(self) -> int:
        return self.P + self.T


def attention_dims(node: Node) -> AttentionDims:
    """The sizes of Attention ``node`` from its input shapes and head-count attributes. Raises
    AttributeValueError when the shapes do not fit the spec (ranks, head counts dividing the
    hidden sizes, query heads a multiple of key/value heads, past/mask shapes)."""
    q, k, v = (node.inputs[i].shape for i in range(3))
    if not len(q) == len(k) == len(v) or len(q) not in (3, 4):
        raise bad_attr(node, f"Q, K, V must all be 3-D or all 4-D, got ranks "
                       f"{len(q)}, {len(k)}, {len(v)}")
    rank3 = len(q) == 3
    if rank3:
        hq, hkv = node.attrs.get("q_num_heads"), node.attrs.get("kv_num_heads")
        if not hq or not hkv:
            raise bad_attr(node, "3-D inputs need q_num_heads and kv_num_heads")
        if q[2] % hq or k[2] % hkv or v[2] % hkv:
            raise bad_attr(node, f"hidden sizes {q[2]}, {k[2]}, {v[2]} are not multiples of "
                           f"q_num_heads={hq} / kv_num_heads={hkv}")
        B, S, T, D, Dv = q[0], q[1], k[1], q[2] // hq, v[2] // hkv
        if k[2] // hkv != D:
            raise bad_attr(node, f"query head size {D} != key head size {k[2] // hkv}")
    else:
        B, hq, S, D = q
        hkv, T, Dv = k[1], k[2], v[3]
        if k[3] != D or v[1] != hkv or v[2] != T:
            raise bad_attr(node, f"K {list(k)} and V {list(v)} do not fit Q {list(q)}")
    if k[0] != B or v[0] != B or (rank3 and v[1] != T):
        raise bad_attr(node, f"Q {list(q)}, K {list(k)}, V {list(v)} disagree on batch or "
                       "key/value length")
    if hq % hkv:
        raise bad_attr(node, f"{hq} query heads are not a multiple of {hkv} key/value heads")
    P = 0
    if has_input(node, 4) != has_input(node, 5):
        raise bad_attr(node, "past_key and past_value must be given together")
    if has_input(node, 4):
        pk, pv = node.inputs[4].shape, node.inputs[5].shape
        if tuple(pk[:2]) != (B, hkv) or pk[3:] != (D,) or tuple(pv) != (B, hkv, pk[2], Dv):
            raise bad_attr(node, f"past_key {list(pk)} / past_value {list(pv)} do not fit "
                           f"(B, kv_num_heads, past, head size) = ({B}, {hkv}, P, {D}/{Dv})")
        P = pk[2]
        if has_input(node, 6):
            raise bad_attr(node, "nonpad_kv_seqlen cannot be combined with past_key/past_value")
    Lm = 0
    if has_input(node, 3):
        m = node.inputs[3].shape
        Lm = m[-1] if m else 1
        want = (B, hq, S, P + T)
        if len(m) > 4 or Lm > P + T or any(d not in (1, w) for d, w in
                                           zip(reversed(m[:-1]), reversed(want[:-1]))):
            raise bad_attr(node, f"attn_mask {list(m)} does not broadcast to "
                           f"(batch, heads, q_len, <= total kv_len) = {list(want)}")
    if has_input(node, 6) and node.inputs[6].shape != (B,):
        raise bad_attr(node, f"nonpad_kv_seqlen must be ({B},), got {list(node.inputs[6].shape)}")
    return AttentionDims(B, hq, hkv, S, P, T, D, Dv, Lm, rank3)


def attention_scale(node: Node, dims: AttentionDims, dtype: np.dtype) -> np.generic:
    """The factor applied to Q and to K before their product: sqrt(scale) (scale defaults to
    1/sqrt(head size)), rounded to Q's dtype as the spec's function body does."""
    scale = node.attrs.get("scale")
    if scale is None:
        scale = 1 / np.sqrt(dims.D)
    return np.dtype(dtype).type(np.sqrt(scale))


def attention_window(node: Node) -> tuple[int, int]:
    """(left, right) sliding-window sizes (opset 25; -1: unbounded on that side)."""
    left, right = node.attrs.get("left_window_size"), node.attrs.get("right_window_size")
    return (-1 if left is None else int(left), -1 if right is None else int(right))


@register_op("Attention")
class Attention(OpDef):
    """ONNX Attention (opsets 23-25): Y = softmax(softcap(Q K^T * scale) + bias) V per head.

    Q (B, Hq, S, D) or (B, S, Hq*D); K (B, Hkv, T, D) / (B, T, Hkv*D); V (B, Hkv, T, Dv) /
    (B, T, Hkv*Dv); query head h reads key/value head h // (Hq / Hkv) (grouped-query attention).
    Optional: attn_mask (bool: True attends; float: added) broadcasting to (B, Hq, S, <=L),
    padded with "masked" up to L; past_key (B, Hkv, P, D) and past_value (B, Hkv, P, Dv)
    prepended to K and V (outputs present_key/present_value, (B, Hkv, L, ·)); nonpad_kv_seqlen
    (B,) int64 (opset 24: keys at or past it are masked). ``is_causal``: query i attends key j
    iff j <= i + offset (offset = P, or nonpad_kv_seqlen[b] - S, or 0); opset 25's
    left/right_window_size bound i + offset - j. A row with every key masked yields zeros.
    Output 3, qk_matmul_output (B, Hq, S, L): by ``qk_matmul_output_mode`` 0/1 the scaled
    (soft-capped) product, 2 with the bias added, 3 the softmax.
    """

    attrs = {"is_causal": 0, "kv_num_heads": None, "q_num_heads": None,
             "qk_matmul_output_mode": 0, "scale": None, "softcap": 0.0,
             "softmax_precision": None, "left_window_size": -1, "right_window_size": -1}
    min_inputs, max_inputs = 3, 7

    def check(self, node):
        attention_dims(node)
        mode = attr(node, "qk_matmul_output_mode")
        if mode not in (0, 1, 2, 3):
            raise bad_attr(node, f"qk_matmul_output_mode must be 0..3, got {mode}")
        if node.inputs[0].dtype.kind != "f":
            raise bad_attr(node, f"Q must be floating point, got {node.inputs[0].dtype.name}")
        prec = node.attrs.get("softmax_precision")
        if prec is not None and prec not in (1, 10, 11, 16):
            why = f"softmax_precision {prec} is not supported (float, float16, double only)"
            raise UnsupportedOpError([(node.name, node.op, why)])
        for w in attention_window(node):
            if w < -1:
                raise bad_attr(node, f"window sizes must be -1 or >= 0, got {w}")

    def infer(self, node):
        d = attention_dims(node)
        dt = node.inputs[0].dtype
        y = (d.B, d.S, d.Hq * d.Dv) if d.rank3 else (d.B, d.Hq, d.S, d.Dv)
        kt = node.inputs[1].dtype
        outs = [TensorType(y, dt), TensorType((d.B, d.Hkv, d.L, d.D), kt),
                TensorType((d.B, d.Hkv, d.L, d.Dv), node.inputs[2].dtype),
                TensorType((d.B, d.Hq, d.S, d.L), dt)]
        return outs[:len(node.outputs)]

    def reference(self, node, q, k, v, mask=None, past_k=None, past_v=None, nonpad=None):
        d = attention_dims(node)
        dt = q.dtype
        if d.rank3:   # (B, seq, heads * size) -> (B, heads, seq, size)
            q = q.reshape(d.B, d.S, d.Hq, d.D).transpose(0, 2, 1, 3)
            k = k.reshape(d.B, d.T, d.Hkv, d.D).transpose(0, 2, 1, 3)
            v = v.reshape(d.B, d.T, d.Hkv, d.Dv).transpose(0, 2, 1, 3)
        pk = k if past_k is None else np.concatenate([past_k, k], axis=2)
        pv = v if past_v is None else np.concatenate([past_v, v], axis=2)
        ct = _ct(q)
        s = attention_scale(node, d, dt)
        rep = d.Hq // d.Hkv
        kk = np.repeat(pk, rep, axis=1).astype(ct)
        vv = np.repeat(pv, rep, axis=1).astype(ct)
        qk = (q.astype(ct) * s) @ np.swapaxes(kk * s, 2, 3)
        cap = float(attr(node, "softcap") or 0.0)
        if cap > 0:
            qk = np.tanh(qk / ct.type(cap)) * ct.type(cap)
        allowed, add = attention_bias(node, d, mask, nonpad)
        with np.errstate(invalid="ignore"):
            x = np.where(allowed, qk + add, -np.inf).astype(ct)
        live = np.any(allowed & (add > -np.inf), axis=-1, keepdims=True)
        m = x.max(axis=-1, keepdims=True)
        m = np.where(np.isneginf(m), 0, m)
        e = np.exp(x - m)
        tot = e.sum(axis=-1, keepdims=True)
        p = np.where(live, e / np.where(tot == 0, 1, tot), 0).astype(ct)
        p = p.astype(dt).astype(ct)
        y = (p @ vv).astype(dt)
        if d.rank3:
            y = y.transpose(0, 2, 1, 3).reshape(d.B, d.S, d.Hq * d.Dv)
        mode = attr(node, "qk_matmul_output_mode")
        # modes 0 and 1: the (soft-capped) product, as onnx's reference and function body
        qk_out = {0: qk, 1: qk, 2: x, 3: p}[mode].astype(dt)
        return [y, pk, pv, qk_out][:len(node.outputs)]


def attention_bias(node: Node, d: AttentionDims, mask: np.ndarray | None,
                   nonpad: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(allowed, add), both broadcasting to (B, Hq, S, L): whether query i may attend key j
    (a bool mask, the mask's padding past Lm, causality, the sliding window, nonpad_kv_seqlen)
    and the float mask's additive term (0 where there is none)."""
    B, S, L = d.B, d.S, d.L
    allowed = np.ones((B, 1, S, L), bool)
    add = np.zeros((1, 1, 1, L), np.float64)
    j = np.arange(L).reshape(1, 1, 1, L)
    i = np.arange(S).reshape(1, 1, S, 1)
    if mask is not None:
        m4 = mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
        pad = [(0, 0)] * 3 + [(0, L - d.Lm)]
        if mask.dtype == np.bool_:
            allowed = allowed & np.pad(m4, pad, constant_values=False)
        else:
            add = np.pad(m4.astype(np.float64), pad, constant_values=-np.inf)
            allowed = allowed & (j < d.Lm)
    if nonpad is not None:
        n = nonpad.astype(np.int64).reshape(B, 1, 1, 1)
        offset = n - S
        allowed = allowed & (j < n)
    else:
        offset = np.full((B, 1, 1, 1), d.P, np.int64)
    if attr(node, "is_causal"):
        allowed = allowed & (j <= i + offset)
    left, right = attention_window(node)
    if left >= 0:
        allowed = allowed & (i + offset - j <= left)
    if right >= 0:
        allowed = allowed & (j - (i + offset) <= right)
    return allowed, add


# ---- RMSNormalization -------------------------------------------------------------------------
@register_op("RMSNormalization")
class RMSNormalization(OpDef):
    """ONNX RMSNormalization (opset 23): over the axes [axis, rank),
    Y = X / sqrt(mean(X^2) + epsilon) * Scale; Scale broadcasts to X.shape[axis:]. Computed in
    float32 (``stash_type`` 1, the only value the spec's reference defines)."""

    attrs = {"axis": -1, "epsilon": 1e-5, "stash_type": 1}
    min_inputs = max_inputs = 2

    def check(self, node):
        x = node.inputs[0].shape
        axis = norm_axis(node, attr(node, "axis"), len(x))
        inner, shp = tuple(x[axis:]), tuple(node.inputs[1].shape)
        if len(shp) > len(inner) or any(d not in (1, e) for d, e in
                                        zip(reversed(shp), reversed(inner))):
            raise bad_attr(node, f"Scale has shape {list(shp)}, which does not broadcast to the "
                           f"normalized shape {list(inner)}")
        if attr(node, "stash_type") != 1:
            why = "stash_type other than 1 (float32 statistics) is not supported"
            raise UnsupportedOpError([(node.name, node.op, why)])

    def infer(self, node):
        return [node.inputs[0].type]

    def reference(self, node, x, scale):
        axis = norm_axis(node, attr(node, "axis"), x.ndim)
        ct = _ct(x)
        xc = x.astype(ct)
        ms = np.square(xc).mean(axis=tuple(range(axis, x.ndim)), keepdims=True)
        inv = 1 / np.sqrt(ms + ct.type(attr(node, "epsilon")))
        return [(xc * inv * scale.astype(ct)).astype(x.dtype)]


# ---- RotaryEmbedding --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RotaryDims:
    """Sizes of a RotaryEmbedding node: B batch, S sequence, H heads, D head size, R rotated
    dims (even, <= D); ``rank3`` when the input is (B, S, H * D), else (B, H, S, D)."""

    B: int
    S: int
    H: int
    D: int
    R: int
    rank3: bool


def rotary_dims(node: Node) -> RotaryDims:
    """The sizes of RotaryEmbedding ``node``. Raises AttributeValueError when the input, caches
    or position_ids do not fit (cache last dim R/2; (B, S, R/2) caches without position_ids)."""
    x = node.inputs[0].shape
    if len(x) == 4:
        B, H, S, D = x
        rank3 = False
    elif len(x) == 3:
        H = node.attrs.get("num_heads") or 0
        if not H or x[2] % H:
            raise bad_attr(node, f"a 3-D input needs num_heads dividing its hidden size {x[2]}")
        B, S, D = x[0], x[1], x[2] // H
        rank3 = True
    else:
        raise bad_attr(node, f"input must be 3-D or 4-D, got {list(x)}")
    R = attr(node, "rotary_embedding_dim") or D
    if R % 2 or R > D:
        raise bad_attr(node, f"rotary_embedding_dim {R} must be even and at most {D}")
    cos, sin = node.inputs[1].shape, node.inputs[2].shape
    if cos != sin or not cos or cos[-1] != R // 2:
        raise bad_attr(node, f"cos_cache {list(cos)} / sin_cache {list(sin)} must be equal with "
                       f"last dim {R // 2}")
    if has_input(node, 3):
        if node.inputs[3].shape != (B, S) or len(cos) != 2:
            raise bad_attr(node, f"position_ids must be ({B}, {S}) and the caches "
                           "(max position, R/2)")
    elif tuple(cos) != (B, S, R // 2):
        raise bad_attr(node, f"without position_ids the caches must be ({B}, {S}, {R // 2})")
    return RotaryDims(B, S, H, D, R, rank3)


@register_op("RotaryEmbedding")
class RotaryEmbedding(OpDef):
    """ONNX RotaryEmbedding (opset 23): rotates the first R dims of each head by the angles of
    cos_cache/sin_cache at each position (``position_ids`` (B, S) int64 indexes caches of shape
    (max position, R/2); without it the caches are (B, S, R/2)). Pairs are (x[k], x[k + R/2])
    or, ``interleaved``, (x[2k], x[2k+1]): out1 = cos*x1 - sin*x2, out2 = sin*x1 + cos*x2; the
    other D - R dims pass through. input (B, H, S, D) or (B, S, H*D) with ``num_heads``."""

    attrs = {"interleaved": 0, "num_heads": None, "rotary_embedding_dim": 0}
    min_inputs, max_inputs = 3, 4

    def check(self, node):
        rotary_dims(node)

    def infer(self, node):
        return [node.inputs[0].type]

    def reference(self, node, x, cos, sin, pos=None):
        d = rotary_dims(node)
        ct = _ct(x)
        xh = (x.reshape(d.B, d.S, d.H, d.D) if d.rank3 else x.transpose(0, 2, 1, 3)).astype(ct)
        if pos is not None:
            if pos.size and (pos.min() < 0 or pos.max() >= cos.shape[0]):
                raise ValueError(f"position_ids outside [0, {cos.shape[0]})")
            cos, sin = cos[pos], sin[pos]
        c, s = cos.astype(ct)[:, :, None, :], sin.astype(ct)[:, :, None, :]
        half = d.R // 2
        out = xh.copy()
        if attr(node, "interleaved"):
            x1, x2 = xh[..., 0:d.R:2], xh[..., 1:d.R:2]
            out[..., 0:d.R:2], out[..., 1:d.R:2] = c * x1 - s * x2, s * x1 + c * x2
        else:
            x1, x2 = xh[..., :half], xh[..., half:d.R]
            out[..., :half], out[..., half:d.R] = c * x1 - s * x2, s * x1 + c * x2
        out = out.reshape(x.shape) if d.rank3 else out.transpose(0, 2, 1, 3)
        return [out.astype(x.dtype)]


# ---- LinearAttention --------------------------------------------------------------------------
LINEAR_RULES = ("linear", "gated", "delta", "gated_delta")


@dataclasses.dataclass(frozen=True)
class LinearAttentionDims:
    """The sizes of a LinearAttention node: B batch, T tokens, Hq query heads, Hkv key/value
    heads, Dk the query/key head size, Dv the value head size; ``decay_per_key`` when decay is
    (B, T, Hkv * Dk) rather than (B, T, Hkv) (None: no decay); ``beta_per_head`` when beta is
    (B, T, Hkv) rather than (B, T, 1) (None: no beta); ``past`` when past_state is given."""

    B: int
    T: int
    Hq: int
    Hkv: int
    Dk: int
    Dv: int
    decay_per_key: bool | None
    beta_per_head: bool | None
    past: bool

    @property
    def rep(self) -> int:
        return self.Hq // self.Hkv


def linear_attention_rule(node: Node) -> tuple[bool, bool]:
    """(gating, delta correction) of LinearAttention ``node``'s ``update_rule``. Raises
    AttributeValueError naming the node for a rule outside the spec's four."""
    rule = node.attrs.get("update_rule") or "gated_delta"
    if isinstance(rule, bytes):
        rule = rule.decode()
    if rule not in LINEAR_RULES:
        raise bad_attr(node, f"update_rule must be one of {', '.join(LINEAR_RULES)}, got {rule!r}")
    return rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")


def linear_attention_dims(node: Node) -> LinearAttentionDims:
    """The sizes of LinearAttention ``node`` from its input shapes and head counts. Raises
    AttributeValueError naming the node when they do not fit the spec: query/key/value
    (B, T, H*D) of one B and T, head counts dividing the hidden sizes with q_num_heads a
    multiple of kv_num_heads, past_state (B, Hkv, Dk, Dv), decay (B, T, Hkv) or
    (B, T, Hkv*Dk) present exactly for the gated rules, beta (B, T, Hkv) or (B, T, 1) present
    exactly for the delta rules."""
    q, k, v = (node.inputs[i].shape for i in range(3))
    if not len(q) == len(k) == len(v) == 3:
        raise bad_attr(node, f"query, key, value must be 3-D (B, T, heads * size), got shapes "
                       f"{list(q)}, {list(k)}, {list(v)}")
    hq, hkv = int(attr(node, "q_num_heads")), int(attr(node, "kv_num_heads"))
    if hq <= 0 or hkv <= 0 or hq % hkv:
        raise bad_attr(node, f"q_num_heads={hq} must be a positive multiple of "
                       f"kv_num_heads={hkv}")
    B, T = q[0], q[1]
    if k[:2] != (B, T) or v[:2] != (B, T):
        raise bad_attr(node, f"query {list(q)}, key {list(k)}, value {list(v)} disagree on "
                       "batch or sequence length")
    if q[2] % hq or k[2] % hkv or v[2] % hkv or q[2] // hq != k[2] // hkv:
        raise bad_attr(node, f"hidden sizes {q[2]}, {k[2]}, {v[2]} do not split into "
                       f"q_num_heads={hq} / kv_num_heads={hkv} heads of one key size")
    Dk, Dv = q[2] // hq, v[2] // hkv
    gating, delta = linear_attention_rule(node)
    past = has_input(node, 3)
    if past and node.inputs[3].shape != (B, hkv, Dk, Dv):
        raise bad_attr(node, f"past_state {list(node.inputs[3].shape)} must be "
                       f"(B, kv_num_heads, d_k, d_v) = {[B, hkv, Dk, Dv]}")
    per_key = per_head = None
    for idx, name, need, lasts in ((4, "decay", gating, (hkv, hkv * Dk)),
                                   (5, "beta", delta, (1, hkv))):
        if has_input(node, idx) != need:
            rule = node.attrs.get("update_rule") or "gated_delta"
            raise bad_attr(node, f"update_rule {rule!r} {'requires' if need else 'forbids'} "
                           f"the {name} input")
        if need:
            s = node.inputs[idx].shape
            if len(s) != 3 or s[:2] != (B, T) or s[2] not in lasts:
                raise bad_attr(node, f"{name} {list(s)} must be (B, T, {lasts[0]}) or "
                               f"(B, T, {lasts[1]})")
            if idx == 4:   # per head when Dk == 1 too (the same thing)
                per_key = s[2] != hkv
            else:
                per_head = s[2] == hkv
    return LinearAttentionDims(B, T, hq, hkv, Dk, Dv, per_key, per_head, past)


def linear_attention_scale(node: Node, dims: LinearAttentionDims) -> float:
    """The output scale: ``scale``, or 1/sqrt(d_k) when it is 0 (the default)."""
    s = float(node.attrs.get("scale") or 0.0)
    return s if s != 0.0 else 1.0 / float(np.sqrt(dims.Dk))


@register_op("LinearAttention")
class LinearAttention(OpDef):
    """ONNX LinearAttention (opset 27, operator spec "LinearAttention"): the recurrence, token by
    token, per batch and key/value head, of a state S (d_k, d_v):

    - linear: S_t = S_{t-1} + k_t v_t^T
    - gated: S_t = exp(g_t) * S_{t-1} + k_t v_t^T
    - delta: S_t = S_{t-1} + beta_t k_t (v_t - S_{t-1}^T k_t)^T
    - gated_delta: S_t = exp(g_t) * S_{t-1} + beta_t k_t (v_t - exp(g_t) * S_{t-1}^T k_t)^T

    and o_t = scale * q_t^T S_t for each query head reading its key/value head's state
    (query head h uses head h // (q_num_heads / kv_num_heads)). query (B, T, Hq*Dk), key
    (B, T, Hkv*Dk), value (B, T, Hkv*Dv); optional past_state (B, Hkv, Dk, Dv) (zeros when
    omitted), decay g (B, T, Hkv*Dk) per key dim (scaling row d of S) or (B, T, Hkv) per head,
    beta (B, T, Hkv) or (B, T, 1). Outputs: output (B, T, Hq*Dv) in query's dtype,
    present_state (B, Hkv, Dk, Dv) in past_state's dtype (query's without it). ``scale`` 0
    means 1/sqrt(Dk); ``chunk_size`` is a tuning hint with no effect on the result. Computed in
    float32 (float64 for float64 inputs), as onnx's reference. Raises AttributeValueError
    naming the node for shapes or rules outside the spec (:func:`linear_attention_dims`).
    """

    attrs = {"chunk_size": 64, "kv_num_heads": REQUIRED, "q_num_heads": REQUIRED, "scale": 0.0,
             "update_rule": "gated_delta"}
    min_inputs, max_inputs = 3, 6

    def check(self, node):
        linear_attention_dims(node)
        if node.inputs[0].dtype.kind != "f":
            raise bad_attr(node, f"query must be floating point, got {node.inputs[0].dtype.name}")

    def infer(self, node):
        d = linear_attention_dims(node)
        st = node.inputs[3].dtype if d.past else node.inputs[0].dtype
        return [TensorType((d.B, d.T, d.Hq * d.Dv), node.inputs[0].dtype),
                TensorType((d.B, d.Hkv, d.Dk, d.Dv), st)][:len(node.outputs)]

    def reference(self, node, q, k, v, past=None, decay=None, beta=None):
        d = linear_attention_dims(node)
        gating, delta = linear_attention_rule(node)
        ct = _ct(q)

        def heads(x, h):   # (B, T, h * size) -> (B, h, T, size)
            return x.reshape(d.B, d.T, h, -1).transpose(0, 2, 1, 3).astype(ct)

        q4, k4, v4 = heads(q, d.Hq), heads(k, d.Hkv), heads(v, d.Hkv)
        g4 = heads(decay, d.Hkv) if gating else None          # (B, Hkv, T, Dk or 1)
        b4 = heads(beta, beta.shape[2]) if delta else None    # (B, Hkv or 1, T, 1)
        state = (past.astype(ct) if past is not None
                 else np.zeros((d.B, d.Hkv, d.Dk, d.Dv), ct))
        scale = ct.type(linear_attention_scale(node, d))
        out = np.zeros((d.B, d.Hq, d.T, d.Dv), ct)
        for t in range(d.T):
            kt, vt = k4[:, :, t], v4[:, :, t]
            if gating:
                state = state * np.exp(g4[:, :, t])[..., None]
            if delta:
                vt = b4[:, :, t] * (vt - np.einsum("bhdm,bhd->bhm", state, kt))
            state = state + kt[..., :, None] * vt[..., None, :]
            rs = np.repeat(state, d.rep, axis=1)
            out[:, :, t] = scale * np.einsum("bhd,bhdm->bhm", q4[:, :, t], rs)
        y = out.transpose(0, 2, 1, 3).reshape(d.B, d.T, d.Hq * d.Dv).astype(q.dtype)
        st = state.astype(past.dtype if past is not None else q.dtype)
        return [y, st][:len(node.outputs)]
