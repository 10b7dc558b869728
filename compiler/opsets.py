"""Which default-domain opsets onnxcc accepts, and which op versions within them.

onnxcc implements each op's semantics up to opset ``IMPLEMENTED_OPSET`` (21), plus the newer forms
listed in ``NEWER_FORMS``. A model of any opset from 1 to the newest the installed onnx knows is
accepted; per node, the op's schema in effect at the model's opset
(``onnx.defs.get_schema(op, opset).since_version``) decides:

- a schema no newer than 21, or a newer one whose signature (attributes, inputs, outputs) is that
  of opset 21 (later versions only added element types such as bfloat16, float8 or int4, which the
  frontend refuses by dtype), is accepted;
- a newer schema whose signature changed is accepted when ``NEWER_FORMS`` says onnxcc implements
  it, and refused by name otherwise (:func:`newer_form_problem`); an op that first appeared after
  opset 21 is implemented in its first form unless ``NEWER_FORMS`` says otherwise.

Forms older than opset 7 are upgraded node by node in :mod:`onnxcc.legacy`.

Other domains have opsets of their own (``DOMAINS``): a node's ``Node.version`` is the opset
its model imports for the node's domain. ``ai.onnx.ml`` (opsets 1 to 5) is accepted op by op
(:func:`domain_problem`); com.microsoft's quantized ops are :mod:`onnxcc.contrib`'s.
"""

from __future__ import annotations

import functools

import onnx

IMPLEMENTED_OPSET = 21
MIN_OPSET = 1
MAX_OPSET = onnx.defs.onnx_opset_version()

# op -> newest schema version past IMPLEMENTED_OPSET whose semantics onnxcc implements, with why.
NEWER_FORMS = {
    # round_mode only concerns float8e8m0, an element type onnxcc refuses by dtype
    "Cast": 25, "CastLike": 25,
    # stash_type only concerns float16/bfloat16 accumulation: the reference computes in float32
    "Range": 27,
    # mode DCR (the old order) or CRD
    "SpaceToDepth": 28,
    # fmod=0 now also defined for floats: A - floor(A / B) * B, numpy's mod
    "Mod": 28,
    # precision (QuantizeLinear 25) and output_dtype (DequantizeLinear 23) are implemented for
    # float32; the other additions are element types (int4, float8...) refused by dtype
    "QuantizeLinear": 28, "DequantizeLinear": 28,
    # nonpad_kv_seqlen (24) and left/right_window_size (25) are implemented
    "Attention": 25,
}


@functools.lru_cache(maxsize=None)
def schema_version(op: str, opset: int) -> int | None:
    """The ``since_version`` of ``op``'s schema in effect at ``opset`` (default domain); None when
    onnx has no schema for it (onnxcc's own ops)."""
    try:
        return int(onnx.defs.get_schema(op, opset, "").since_version)
    except onnx.defs.SchemaError:
        return None


def _signature(op: str, opset: int) -> tuple:
    s = onnx.defs.get_schema(op, opset, "")
    return (sorted(s.attributes), [i.name for i in s.inputs], [o.name for o in s.outputs])


@functools.lru_cache(maxsize=None)
def newer_form_problem(op: str, opset: int) -> str | None:
    """Why onnxcc cannot compile ``op`` at a model opset ``opset``, or None when it can: the
    op's schema at ``opset`` is newer than the version onnxcc implements (21, or its
    ``NEWER_FORMS`` entry) and its signature changed since. The text names the version and what
    changed."""
    since = schema_version(op, opset)
    base = NEWER_FORMS.get(op, IMPLEMENTED_OPSET)
    if schema_version(op, base) is None:   # an op new after 21: onnxcc implements its first form
        base = next((v for v in range(base, MAX_OPSET + 1) if schema_version(op, v) is not None),
                    base)
    if since is None or since <= base:
        return None
    old, new = _signature(op, base), _signature(op, opset)
    if old == new:   # only element types were added; unsupported ones are refused by dtype
        return None
    what = []
    added = sorted(set(new[0]) - set(old[0]))
    removed = sorted(set(old[0]) - set(new[0]))
    if added:
        what.append(f"added attribute(s) {', '.join(added)}")
    if removed:
        what.append(f"removed attribute(s) {', '.join(removed)}")
    if old[1:] != new[1:]:
        what.append("changed its inputs or outputs")
    return (f"ONNX changed {op} in opset {since} ({'; '.join(what)}); onnxcc implements "
            f"{op} up to version {schema_version(op, base)}")


ML_DOMAIN = "ai.onnx.ml"
# domain -> (oldest, newest) opset onnxcc accepts; the default domain is MIN_OPSET..MAX_OPSET
DOMAINS = {ML_DOMAIN: (1, 5)}


def domain_problem(domain: str, op: str, opset: int | None, implemented: bool) -> str | None:
    """Why a node ``op`` of ``domain`` (neither the default domain nor com.microsoft) cannot be
    imported at the model's ``opset`` for that domain (None when the model imports none), or
    None when it can. ``implemented`` says whether the registry has the op. The ONNX schema
    decides: an op that does not exist at that opset, or is deprecated there (ai.onnx.ml 5
    deprecates TreeEnsembleClassifier/Regressor for TreeEnsemble), is refused, as onnx's
    checker and onnxruntime refuse it."""
    if domain not in DOMAINS:
        return (f"domain {domain!r} is not supported (the default ONNX domain, "
                f"{ML_DOMAIN}, com.microsoft's quantized ops and QONNX's Quant are)")
    lo, hi = DOMAINS[domain]
    if opset is None:
        return f"the model imports no {domain} opset"
    if not lo <= opset <= hi:
        return f"{domain} opset {opset} is outside the range {lo}..{hi} onnxcc accepts"
    if not implemented:
        return f"{domain} op {op} is not implemented"
    try:
        schema = onnx.defs.get_schema(op, opset, domain)
    except onnx.defs.SchemaError:
        return f"{domain} has no op {op} at opset {opset}"
    if schema.deprecated:
        return (f"{op} is deprecated in {domain} opset {opset} (onnxruntime refuses it); "
                f"import it at {domain} opset {opset - 1} or use its replacement")
    return None
