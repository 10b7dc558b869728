"""Differential and mutation fuzzing of onnxcc: case runners, the mutator, and a sandbox.

- :func:`run_generated` compiles a generated graph (``fuzz_graphs.generate``) for ``host`` (and
  ``cpu``, the LLVM back end, when asked), runs the library and compares it with onnxruntime.
- :func:`mutate` corrupts a serialized model (bytes flipped, fields removed, dims, attributes,
  initializers, names and types changed); :func:`run_mutated` then checks the outcome is a
  correct result or an :class:`onnxcc.OnnxccError`, and that no folder is left half-written.
- :class:`Sandbox` runs cases in a worker process (spawned, address space limited) with a
  per-case timeout, so a segfault in the generated C shows up as ``crash`` and a loop as ``hang``.

Outcome kinds: ``ok``, ``error:<OnnxccError subclass>``, ``mismatch``, ``uncaught``, ``crash``,
``hang``, ``folder`` (a failed compile left files, or a save lost a user's file); informational:
``ok:ort-rejects`` (onnxcc compiled a model onnxruntime refuses), ``ok:ort-run-fails``, and
``oracle:crash`` / ``oracle:hang`` (onnxruntime itself died or hung on the model).
"""

from __future__ import annotations

import contextlib
import gc
import io
import math
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).parent))
import fuzz_graphs as fg  # noqa: E402

# BuildError (the C compiler refused generated code) and VerifyError (a pass broke the IR) are
# onnxcc errors, but by their definition bugs in onnxcc: they count as failures too.
FAILURES = ("mismatch", "uncaught", "crash", "hang", "folder", "error:BuildError",
            "error:VerifyError")
PHASES = ["idle", "onnxcc", "onnxruntime"]   # what the worker was doing (a crash is blamed on it)
_phase: Any = None   # the worker's shared phase cell (multiprocessing.Value), None in-process


def _set_phase(name: str) -> None:
    if _phase is not None:
        _phase.value = PHASES.index(name)
MEM_LIMIT = 6 << 30   # bytes of address space for a worker: a huge tensor is a MemoryError, not OOM


def is_failure(kind: str) -> bool:
    """True for the outcomes the fuzzer must never see."""
    return kind in FAILURES


# ---- feeds and comparison -------------------------------------------------------------------
def feeds_for(mmap: dict, seed: int) -> dict[str, np.ndarray]:
    """Random exact inputs for a compiled model (shapes and dtypes from its memory map)."""
    d = fg.RandomDraw(seed)
    out = {}
    for t in mmap["inputs"]:
        dt = np.dtype(t["dtype"])
        if dt == np.bool_:
            out[t["name"]] = d.array(t["shape"]) > 0
        else:
            out[t["name"]] = d.array(t["shape"], dt)
    return out


# ---- running one case (inside the worker) ---------------------------------------------------
def _compile(model: Any, target: str = "host") -> Any:
    """``onnxcc.compile`` for ``target``; ``"host/size"`` compiles for host with
    ``optimize="size"`` (the smallest-nest lowering, its own code path)."""
    import onnxcc

    name, _, optimize = target.partition("/")
    return onnxcc.compile(model, target=name, optimize=optimize or "speed")


def _leftovers(tmp: Path, before: set[str]) -> list[str]:
    if set(os.listdir(tmp)) - before:
        gc.collect()   # a CompiledModel removes its folder when collected (slow: only if needed)
    return sorted(set(os.listdir(tmp)) - before)


def run_generated(model_bytes: bytes, feeds: dict[str, np.ndarray], build: bool = True,
                  targets: tuple[str, ...] = ("host",)) -> tuple[str, str]:
    """Compile a valid generated model for each of ``targets`` (``host``: C; ``cpu``: the LLVM
    back end, whose convolutions and products are lowered differently), run it (the library
    when ``build``, else the reference interpreter on the compiled graph) and compare with
    onnxruntime. Returns (outcome, detail); a mismatch's detail names the target."""
    from onnxcc.errors import OnnxccError
    from onnxcc.interpreter import interpret

    model = onnx.ModelProto.FromString(model_bytes)
    try:
        _set_phase("onnxruntime")
        want = fg.ort_run(model_bytes, feeds)
    except Exception as e:   # the generator made a model onnxruntime refuses: not onnxcc's fault
        return "invalid", f"onnxruntime: {str(e)[:300]}"
    _set_phase("onnxcc")
    for target in targets:
        try:
            m = _compile(model, target)
            got = m.run(feeds) if build else interpret(m.graph, feeds)
        except OnnxccError as e:
            return f"error:{type(e).__name__}", f"{target}: {str(e)[:2000]}"
        bad = fg.compare(got, want)
        if bad:
            return _mismatch(model_bytes, feeds, got, f"{target}: {bad}", want)
    return "ok", ""


def run_mutated(data: bytes, build: bool = False, check_cli: bool = False, seed: int = 0
                ) -> tuple[str, str]:
    """Load/compile a mutated model from a file; see the module docstring for the outcomes.

    ``build``: also build and run the C library (expensive) when onnxruntime accepts the model.
    ``check_cli``: also run ``onnxcc compile -o NEW`` and check the folder rules.
    """
    from onnxcc.errors import OnnxccError
    from onnxcc.interpreter import interpret

    work = Path(tempfile.mkdtemp(prefix="case_"))
    tmp = work / "tmp"   # a private temp folder: anything left in it was left by this case
    tmp.mkdir()
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(tmp), str(tmp)
    try:
        before: set[str] = set()
        path = work / "model.onnx"
        path.write_bytes(data)
        _set_phase("onnxcc")
        try:
            m = _compile(str(path))
        except OnnxccError as e:
            kind = f"error:{type(e).__name__}"
            left = _leftovers(tmp, before)
            if left:
                return "folder", f"failed compile left {left} in the temp folder"
            if check_cli:
                bad = _check_cli_failure(path, work)
                if bad:
                    return "folder", bad
            return kind, str(e).split("\n")[0][:300]
        try:
            return _check_compiled(m, data, work, build, check_cli, seed, interpret)
        except OnnxccError as e:   # a clean error while running the C: the model compiled though
            return f"error:{type(e).__name__}", "after compile: " + str(e).split("\n")[0][:300]
        finally:
            del m
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(work, ignore_errors=True)


def _mismatch(data: bytes, feeds: dict[str, np.ndarray], got: dict[str, np.ndarray], bad: str,
              want: dict[str, np.ndarray] | None = None) -> tuple[str, str]:
    """A disagreement with onnxruntime: ``oracle:wrong`` when onnx's own reference evaluator
    agrees with onnxcc (onnxruntime is the one that is wrong), else ``mismatch``.

    Given onnxruntime's outputs ``want``, the reference decides only the outputs where onnxcc
    and onnxruntime disagree (an output they agree on is not in question, and onnx.reference has
    bugs of its own: its LRN loops over the batch instead of the channels)."""
    try:
        from onnx.reference import ReferenceEvaluator

        model = _default_domain(onnx.ModelProto.FromString(data))
        if want is not None:   # only the nodes the disputed outputs need: onnx.reference fails
            _keep_outputs(model, [k for k in want if fg.compare(got, {k: want[k]}) is not None])
        with np.errstate(all="ignore"):
            outs = ReferenceEvaluator(model, new_ops=_reference_fixes(model)).run(None, feeds)
        third = dict(zip([o.name for o in model.graph.output], outs))
    except Exception:   # noqa: BLE001 - no third opinion
        return "mismatch", bad
    if want is not None:
        third = {k: v for k, v in third.items()
                 if k in want and fg.compare(got, {k: want[k]}) is not None}
        if not third:
            return "mismatch", bad
    if fg.compare(got, third) is None:
        return "oracle:wrong", f"{bad} (onnx.reference agrees with onnxcc)"
    return "mismatch", bad


def _keep_outputs(model: onnx.ModelProto, names: list[str]) -> None:
    """Cut ``model`` (in place) to the outputs ``names`` and the nodes they depend on, so that
    a node onnx.reference cannot run (its grouped ConvTranspose) elsewhere in the graph does not
    take the third opinion away from an unrelated output."""
    if not names:
        return
    need = set(names)
    kept = []
    for n in reversed(model.graph.node):
        if any(o in need for o in n.output):
            kept.append(n)
            need.update(i for i in n.input if i)
    outs = [o for o in model.graph.output if o.name in names]
    del model.graph.node[:]
    model.graph.node.extend(reversed(kept))
    del model.graph.output[:]
    model.graph.output.extend(outs)


def _default_domain(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with the domain ``ai.onnx`` spelled ``""``: both name the default operator set
    (ONNX IR spec; onnx's checker and onnxruntime take either), onnx.reference knows only ``""``."""
    for n in model.graph.node:
        if n.domain == "ai.onnx":
            n.domain = ""
    sets = {o.domain: o.version for o in model.opset_import}
    if "ai.onnx" in sets:
        version = sets.pop("ai.onnx")
        sets.setdefault("", version)
        del model.opset_import[:]
        model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in sets.items())
    return model


def _reference_fixes(model: onnx.ModelProto) -> list[type]:
    """onnx.reference ops replaced for the third opinion: MaxPool with onnxcc's NaN rule, and
    GlobalMaxPool, LRN, Pad (opset 11+) and BatchNormalization (opsets 9-13) where
    onnx.reference is wrong or refuses valid input."""
    version = next((o.version for o in model.opset_import if o.domain == ""), 0)
    fixes = [_nan_max_pool(), _global_max_pool(), _lrn()]
    if version >= 11:
        fixes.append(_negative_pad())
    if 9 <= version < 14:
        fixes.append(_batch_norm_9())
    return fixes


def _global_max_pool() -> type:
    """GlobalMaxPool as the spec says: the max over every spatial axis, NaN when a NaN is among
    them (the rule of numpy, ReduceMax and onnxcc's MaxPool; onnxruntime 1.31 gives -FLT_MAX for a
    window of NaNs). onnx.reference's reduces axes (rank - 2, rank - 1), right for rank 4 only."""
    from onnx.reference.op_run import OpRun

    class GlobalMaxPool(OpRun):
        op_domain = ""

        def _run(self, x):
            return (np.max(x, axis=tuple(range(2, x.ndim)), keepdims=True),)

    return GlobalMaxPool


def _lrn() -> type:
    """LRN as the spec says: ``square_sum[n, c, ...]`` sums ``X[n, i, ...] ** 2`` over the
    channels ``i`` in ``[c - floor((size - 1) / 2), c + ceil((size - 1) / 2)]`` (clipped to
    ``[0, C - 1]``), ``Y = X / (bias + alpha / size * square_sum) ** beta``. onnx.reference's
    loops ``c`` over the batch axis (``range(x.shape[0])``): every channel past the batch size
    got a square sum of 0, so its third opinion on an LRN output was wrong (a fuzzed Resize ->
    BatchNormalization -> LRN graph where onnxruntime is the one that differs counted as a
    mismatch)."""
    from onnx.reference.op_run import OpRun

    class LRN(OpRun):
        op_domain = ""

        def _run(self, x, alpha=None, beta=None, bias=None, size=None):
            alpha = 1e-4 if alpha is None else alpha
            beta = 0.75 if beta is None else beta
            bias = 1.0 if bias is None else bias
            lo, hi = math.floor((size - 1) / 2), math.ceil((size - 1) / 2)
            sq = x.astype(np.float64) ** 2
            square_sum = np.zeros_like(sq)
            for c in range(x.shape[1]):
                square_sum[:, c] = sq[:, max(0, c - lo):c + hi + 1].sum(axis=1)
            return ((x / (bias + alpha / size * square_sum) ** beta).astype(x.dtype),)

    return LRN


def _batch_norm_9() -> type:
    """BatchNormalization-9 with one output in inference mode (the spec's output case #2, running
    mean and var). onnx.reference's picks training mode (batch statistics) whenever ``momentum``
    is set, and fills in its default 0.9: every one-output node ran in training mode."""
    from onnx.reference.ops.op_batch_normalization import (
        BatchNormalization_9,
        _batchnorm_test_mode,
    )

    class BatchNormalization(BatchNormalization_9):
        op_domain = ""

        def _run(self, x, scale, bias, mean, var, epsilon=None, momentum=None,
                 training_mode=None):   # training_mode: a default of the newest schema
            if len(self.onnx_node.output) == 1:
                return (_batchnorm_test_mode(x, scale, bias, mean, var, epsilon=epsilon),)
            return super()._run(x, scale, bias, mean, var, epsilon=epsilon, momentum=momentum)

    return BatchNormalization


def _negative_pad() -> type:
    """onnx.reference's Pad (opset 11+) with negative pads, which crop (the spec allows them;
    onnx.reference hands them to numpy.pad, which refuses them)."""
    from onnx.reference.ops.op_pad import Pad_18

    class Pad(Pad_18):
        op_domain = ""

        def _run(self, data, pads, constant_value=None, axes=None, mode=None):
            pads = np.asarray(pads, np.int64)
            rank = data.ndim
            ax = list(range(rank)) if axes is None else [int(a) % rank for a in np.ravel(axes)]
            k = len(ax)
            crop = [slice(None)] * rank
            for i, a in enumerate(ax):
                b, e = int(pads[i]), int(pads[k + i])
                crop[a] = slice(max(0, -b), data.shape[a] - max(0, -e))
            return super()._run(data[tuple(crop)], np.maximum(pads, 0), constant_value, axes,
                                mode)

    return Pad


def _nan_max_pool() -> type:
    """onnx.reference's MaxPool with onnxcc's NaN rule: a window holding a NaN gives NaN, as
    ``numpy.max``, ReduceMax and Max do (onnxruntime 1.31's MaxPool keeps a NaN only when it comes
    first in the window, and onnx.reference's depends on the window too; the spec says nothing);
    Indices then points at the window's first NaN. Both come from the reference's own pooling (of
    x with NaN as -inf, and of the NaN mask), so pads, strides, dilations and ceil_mode stay its."""
    from onnx.reference.ops.op_max_pool import MaxPool

    class NanMaxPool(MaxPool):
        op_domain = ""

        def _run(self, x, **kw):  # noqa: ANN001, ANN003, ANN202 - the reference's signature
            nan = np.isnan(x)
            if not nan.any():
                return super()._run(x, **kw)
            res = super()._run(np.where(nan, -np.inf, x).astype(x.dtype), **kw)
            first = super()._run(nan.astype(x.dtype), **kw)   # max 1 at the window's first NaN
            hit = first[0] > 0
            y = (np.where(hit, np.nan, res[0]).astype(res[0].dtype),)
            return y + tuple(np.where(hit, a, b) for a, b in zip(first[1:], res[1:]))

    NanMaxPool.__name__ = "MaxPool"
    return NanMaxPool


def _check_cli_failure(path: Path, work: Path) -> str | None:
    """``onnxcc compile`` of a model that fails: exit 2, no output folder, nothing beside it."""
    from onnxcc.cli import main

    parent = work / "out"
    parent.mkdir()
    (parent / "main.c").write_text("int main(void) { return 0; }\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():   # the CLI sets its own warning filters
        rc = main(["compile", str(path), "--target", "host", "-o", str(parent / "lib")])
    if rc != 2:
        return f"CLI exit status {rc} for a failing compile: {err.getvalue()[:300]}"
    if sorted(os.listdir(parent)) != ["main.c"]:
        return f"failed CLI compile left {sorted(os.listdir(parent))}"
    return None


def _check_compiled(m: Any, data: bytes, work: Path, build: bool, check_cli: bool, seed: int,
                    interpret: Any) -> tuple[str, str]:
    if check_cli:   # a save into a fresh folder holds exactly the generated files
        dest = work / "saved"
        m.save(dest)
        if sorted(os.listdir(dest)) != sorted(m.files):
            return "folder", f"save wrote {sorted(os.listdir(dest))}, files are {m.files}"
    if sum(int(np.prod(t["shape"])) for t in m.mmap["inputs"] + m.mmap["outputs"]) > 1 << 24:
        return "ok:too-big-to-run", "compiled; inputs/outputs too big to run here"
    feeds = feeds_for(m.mmap, seed)
    try:
        _set_phase("onnxruntime")
        want = fg.ort_run(data, feeds)
    except Exception as e:
        text = str(e)
        kind = "ok:ort-run-fails" if "running" in text or "feed" in text.lower() or \
            "Got invalid dimensions" in text else "ok:ort-rejects"
        return kind, text.split("\n")[0][:300]
    finally:
        _set_phase("onnxcc")
    got = interpret(m.graph, feeds)
    bad = fg.compare(got, want)
    if bad:
        return _mismatch(data, feeds, got, "interpreter: " + bad, want)
    if build:
        got = m.run(feeds)
        bad = fg.compare(got, want)
        if bad:
            return _mismatch(data, feeds, got, "C: " + bad, want)
    return "ok", "built" if build else ""


# ---- the mutator ----------------------------------------------------------------------------
SPECIAL_INTS = [0, -1, 1, 2, 3, -2, 7, 255, 1 << 15, 1 << 31, -(1 << 31), (1 << 31) - 1, 1 << 40,
                (1 << 63) - 1, -(1 << 63)]
SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e30, -1e-30, 1e-45]
ELEM_TYPES = list(range(0, 25)) + [99]


def _nodes_with(m: onnx.ModelProto, pred: Any) -> list[onnx.NodeProto]:
    return [n for n in m.graph.node if pred(n)]


def _mut_drop_node(m, r):
    if m.graph.node:
        del m.graph.node[r.randrange(len(m.graph.node))]
        return "drop node"


def _mut_drop_node_io(m, r):
    ns = _nodes_with(m, lambda n: len(n.input) > 0)
    if ns:
        n = r.choice(ns)
        seq = n.input if r.random() < 0.7 or not n.output else n.output
        if seq:
            k = r.randrange(len(seq))
            if r.random() < 0.5:
                del seq[k]
                return f"drop {n.op_type} io {k}"
            seq[k] = ""
            return f"blank {n.op_type} io {k}"


def _mut_drop_field(m, r):
    g = m.graph
    what = r.choice(["initializer", "input", "output", "value_info", "opset_import", "attribute"])
    if what == "opset_import":
        del m.opset_import[:]
        return "drop opset_import"
    if what == "attribute":
        ns = _nodes_with(m, lambda n: len(n.attribute) > 0)
        if ns:
            n = r.choice(ns)
            a = n.attribute[r.randrange(len(n.attribute))]
            n.attribute.remove(a)
            return f"drop {n.op_type}.{a.name}"
        return None
    seq = getattr(g, what)
    if seq:
        del seq[r.randrange(len(seq))]
        return f"drop {what}"


def _dims_of(m):
    out = []
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            out.append(vi.type.tensor_type.shape)
    return out


def _mut_dims(m, r):
    shapes = _dims_of(m)
    if not shapes:
        return None
    s = r.choice(shapes)
    act = r.randrange(5)
    if act == 0 and s.dim:
        del s.dim[r.randrange(len(s.dim))]
        return "drop dim"
    if act == 1:
        s.dim.add().dim_value = r.choice([1, 2, 3])
        return "add dim"
    if act == 2 and s.dim:
        d = s.dim[r.randrange(len(s.dim))]
        d.dim_param = r.choice(["N", "batch", "", "?"])
        return "symbolic dim"
    if s.dim:
        d = s.dim[r.randrange(len(s.dim))]
        d.dim_value = r.choice(SPECIAL_INTS[:12] + [d.dim_value + 1, max(0, d.dim_value - 1), 1 << 20])
        return f"dim = {d.dim_value}"


def _mut_init(m, r):
    inits = m.graph.initializer
    if not inits:
        return None
    t = r.choice(inits)
    act = r.randrange(5)
    if act == 0 and t.raw_data:
        n = len(t.raw_data)
        t.raw_data = t.raw_data[:r.randrange(n)] if r.random() < 0.7 else t.raw_data + b"\0" * r.randint(1, 9)
        return f"raw_data of {t.name} resized"
    if act == 1:
        t.data_type = r.choice(ELEM_TYPES)
        return f"{t.name} data_type = {t.data_type}"
    if act == 2 and t.dims:
        k = r.randrange(len(t.dims))
        t.dims[k] = r.choice(SPECIAL_INTS[:12] + [t.dims[k] + 1, t.dims[k] * 2])
        return f"{t.name} dims[{k}] = {t.dims[k]}"
    if act == 3:
        if t.dims and r.random() < 0.5:
            del t.dims[r.randrange(len(t.dims))]
        else:
            t.dims.append(r.choice([1, 2, 0]))
        return f"{t.name} rank changed"
    if t.raw_data:   # corrupt values: NaN/inf/huge in float data, huge ints in int data
        b = bytearray(t.raw_data)
        for _ in range(r.randint(1, 4)):
            b[r.randrange(len(b))] = r.choice([0xFF, 0x7F, 0x80, 0x00, r.randrange(256)])
        t.raw_data = bytes(b)
        return f"{t.name} values corrupted"


def _mut_attr(m, r):
    ns = _nodes_with(m, lambda n: len(n.attribute) > 0)
    if not ns:
        return None
    n = r.choice(ns)
    a = n.attribute[r.randrange(len(n.attribute))]
    A = onnx.AttributeProto
    act = r.randrange(8)
    if act == 0:
        a.type = r.choice([A.INT, A.FLOAT, A.INTS, A.FLOATS, A.STRING, A.TENSOR, A.GRAPH, 0])
        return f"{n.op_type}.{a.name} type = {a.type}"
    if act == 1:
        a.name = r.choice(["bogus", a.name.upper(), "", a.name + "s"])
        return f"{n.op_type} attribute renamed to {a.name!r}"
    if a.type == A.INT:
        a.i = r.choice(SPECIAL_INTS)
        return f"{n.op_type}.{a.name} = {a.i}"
    if a.type == A.FLOAT:
        a.f = r.choice(SPECIAL_FLOATS)
        return f"{n.op_type}.{a.name} = {a.f}"
    if a.type == A.INTS:
        if a.ints and r.random() < 0.6:
            k = r.randrange(len(a.ints))
            a.ints[k] = r.choice(SPECIAL_INTS)
        elif a.ints and r.random() < 0.5:
            del a.ints[r.randrange(len(a.ints))]
        else:
            a.ints.append(r.choice(SPECIAL_INTS[:8]))
        return f"{n.op_type}.{a.name} = {list(a.ints)}"
    if a.type == A.FLOATS:
        if a.floats:
            a.floats[r.randrange(len(a.floats))] = r.choice(SPECIAL_FLOATS)
        else:
            a.floats.append(r.choice(SPECIAL_FLOATS))
        return f"{n.op_type}.{a.name} floats corrupted"
    if a.type == A.STRING:
        a.s = r.choice([b"", b"\xff\xfe", b"NOTSET", b"SAME_UPPER", b"reflect", b"wrap", b"x" * 300])
        return f"{n.op_type}.{a.name} = {a.s[:20]!r}"
    return None


def _mut_add_attr(m, r):
    if not m.graph.node:
        return None
    from onnxcc.ops import all_ops

    n = r.choice(m.graph.node)
    op = all_ops().get(n.op_type)
    names = sorted(op.attrs) if op and op.attrs else ["bogus"]
    name = r.choice(names + ["bogus"])
    for a in list(n.attribute):
        if a.name == name:
            n.attribute.remove(a)
    val = r.choice([r.choice(SPECIAL_INTS), r.choice(SPECIAL_FLOATS),
                    [r.choice(SPECIAL_INTS[:9]) for _ in range(r.randint(0, 6))], "wrap", b"\x00"])
    try:
        n.attribute.append(onnx.helper.make_attribute(name, val))
    except Exception:
        return None
    return f"{n.op_type}.{name} := {val!r}"[:80]


def _all_names(m):
    names = [vi.name for vi in m.graph.input] + [t.name for t in m.graph.initializer]
    for n in m.graph.node:
        names += list(n.output)
    return names


def _mut_rename(m, r):
    ns = list(m.graph.node)
    if not ns:
        return None
    n = r.choice(ns)
    names = _all_names(m)
    act = r.randrange(4)
    if act == 0 and n.input:
        k = r.randrange(len(n.input))
        n.input[k] = r.choice(["undefined", "", n.input[k] + "_x", r.choice(names)])
        return f"{n.op_type} input {k} -> {n.input[k]!r}"
    if act == 1 and n.output:   # a second producer of an existing name, or a graph input's name
        k = r.randrange(len(n.output))
        n.output[k] = r.choice(names)
        return f"{n.op_type} output {k} -> {n.output[k]!r}"
    if act == 2 and m.graph.output:
        m.graph.output[r.randrange(len(m.graph.output))].name = r.choice(names + ["nowhere"])
        return "graph output renamed"
    if m.graph.input:
        m.graph.input[r.randrange(len(m.graph.input))].name = r.choice(names + ["in2"])
        return "graph input renamed"


def _mut_op(m, r):
    if not m.graph.node:
        return None
    from onnxcc.ops import all_ops

    n = r.choice(m.graph.node)
    act = r.randrange(3)
    if act == 0:
        n.op_type = r.choice([k for k in all_ops() if not k.startswith("onnxcc.")] + ["Bogus", "Constant"])
        return f"op -> {n.op_type}"
    if act == 1:
        n.domain = r.choice(["com.microsoft", "onnxcc", "ai.onnx", "ai.onnx.ml"])
        return f"domain -> {n.domain}"
    n.op_type = r.choice(["FusedConv", "onnxcc.FusedElementwise", "FusedGemm", "If", "Loop", "Scan"])
    return f"op -> {n.op_type}"


def _mut_types(m, r):
    vis = list(m.graph.input) + list(m.graph.output)
    if not vis:
        return None
    vi = r.choice(vis)
    if r.random() < 0.15:
        vi.type.Clear()
        return f"{vi.name} type cleared"
    vi.type.tensor_type.elem_type = r.choice(ELEM_TYPES)
    return f"{vi.name} elem_type = {vi.type.tensor_type.elem_type}"


def _mut_order(m, r):
    ns = m.graph.node
    if len(ns) < 2:
        return None
    i, j = r.sample(range(len(ns)), 2)
    a, b = onnx.NodeProto(), onnx.NodeProto()
    a.CopyFrom(ns[i]), b.CopyFrom(ns[j])
    ns[i].CopyFrom(b), ns[j].CopyFrom(a)
    return "swap nodes"


def _mut_versions(m, r):
    if r.random() < 0.5 and m.opset_import:
        m.opset_import[0].version = r.choice([1, 6, 7, 10, 12, 21, 22, 100, -1])
        return f"opset {m.opset_import[0].version}"
    m.ir_version = r.choice([0, 1, 3, 7, 13, 14, 100])
    return f"ir_version {m.ir_version}"


def _mut_duplicate_node(m, r):
    if not m.graph.node:
        return None
    n = r.choice(m.graph.node)
    c = m.graph.node.add()
    c.CopyFrom(n)
    return f"duplicate {n.op_type}"


STRUCTURAL = [_mut_drop_node, _mut_drop_node_io, _mut_drop_field, _mut_dims, _mut_dims, _mut_init,
              _mut_init, _mut_attr, _mut_attr, _mut_attr, _mut_add_attr, _mut_rename, _mut_op,
              _mut_types, _mut_order, _mut_versions, _mut_duplicate_node]


def _bytes_mutation(data: bytes, r: random.Random) -> tuple[bytes, str]:
    b = bytearray(data)
    act = r.randrange(5)
    if act == 0:
        for _ in range(r.randint(1, 8)):
            b[r.randrange(len(b))] ^= 1 << r.randrange(8)
        return bytes(b), "bits flipped"
    if act == 1:
        for _ in range(r.randint(1, 4)):
            b[r.randrange(len(b))] = r.choice([0, 0xFF, 0x7F, 0x80, r.randrange(256)])
        return bytes(b), "bytes set"
    if act == 2:
        return bytes(b[:r.randrange(len(b))]), "truncated"
    i = r.randrange(len(b))
    j = min(len(b), i + r.randint(1, 16))
    if act == 3:
        return bytes(b[:i] + b[j:]), "chunk deleted"
    return bytes(b[:i] + b[i:j] + b[i:j] + b[j:]), "chunk duplicated"


def mutate(seed_model: bytes, r: random.Random) -> tuple[bytes, list[str]]:
    """1-3 random mutations of a serialized model: structural ones on the proto, and (in about
    one case in six) a byte-level one last. Returns (bytes, descriptions)."""
    m = onnx.ModelProto.FromString(seed_model)
    desc = []
    for _ in range(r.randint(1, 3)):
        if r.random() < 0.2:
            break
        fn = r.choice(STRUCTURAL)
        d = fn(m, r)
        if d:
            desc.append(d)
    data = m.SerializeToString()
    if not desc or r.random() < 0.15:
        data, d = _bytes_mutation(data, r)
        desc.append(d)
    return data, desc


def seed_models(n: int, seed: int = 0) -> list[bytes]:
    """``n`` serialized valid models to mutate (generated graphs, deterministic in ``seed``)."""
    out = []
    k = seed * 100_003
    while len(out) < n:
        k += 1
        try:
            out.append(fg.generate(fg.RandomDraw(k)).model.SerializeToString())
        except fg.Reject:
            continue
    return out


# ---- the sandbox ----------------------------------------------------------------------------
def _worker(conn: Any, tmp: str, phase: Any) -> None:
    import resource

    global _phase
    _phase = phase
    warnings.simplefilter("ignore")
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = tmp
    os.environ.setdefault("ONNXCC_VERIFY", "1")
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
    except (ValueError, OSError):
        pass
    import onnxcc  # noqa: F401  (imported once, before the first timed case)
    import onnxruntime  # noqa: F401

    try:   # speed only: emit_c builds a new jinja Environment (and re-parses every template)
        import functools   # per compile; reusing one is what jinja intends and changes no output

        from onnxcc.codegen.c import emit

        emit.env = functools.lru_cache(maxsize=None)(emit.env)
    except Exception:   # noqa: BLE001 - emit without env(): nothing to speed up
        pass

    fns = {"generated": run_generated, "mutated": run_mutated, "selftest": _selftest}
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        fn, args = msg
        try:
            res = fns[fn](*args)
        except BaseException as e:   # noqa: BLE001 - every other exception is a finding
            res = ("uncaught", f"{type(e).__name__}: {e}"[:500] + "\n" + traceback.format_exc()[-3000:])
        _set_phase("idle")
        conn.send(res)


def _selftest(mode: str) -> tuple[str, str]:
    """For the sandbox's own test: ``segv`` kills the worker, ``sleep`` never answers in time."""
    import signal
    import time

    if mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "sleep":
        time.sleep(30)
    return "ok", mode


class Sandbox:
    """One worker process running cases with a timeout each; restarted after a crash or hang."""

    def __init__(self) -> None:
        self.ctx = mp.get_context("spawn")
        self.tmp = tempfile.mkdtemp(prefix="onnxcc_fuzz_")
        self.proc: Any = None
        self.conn: Any = None
        self.phase = self.ctx.Value("i", 0, lock=False)

    def _start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.tmp, self.phase), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent

    def run(self, fn: str, args: tuple, timeout: float) -> tuple[str, str]:
        """Run ``fn`` ('generated' or 'mutated') on ``args``; (outcome, detail)."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
            timeout += 30   # the first case also pays for importing onnxcc and onnxruntime
        self.conn.send((fn, args))
        if self.conn.poll(timeout):
            try:
                return self.conn.recv()
            except EOFError:
                pass
        else:
            where = PHASES[self.phase.value]
            self.close()
            if where == "onnxruntime":
                return "oracle:hang", f"onnxruntime gave no result within {timeout:.0f} s"
            return "hang", f"no result within {timeout:.0f} s ({where})"
        self.proc.join(5)
        code, where = self.proc.exitcode, PHASES[self.phase.value]
        self.proc = None
        if where == "onnxruntime":   # the oracle itself crashed: not an onnxcc finding
            return "oracle:crash", f"onnxruntime killed the worker (exit code {code})"
        return "crash", f"worker died with exit code {code} ({where})"

    def close(self) -> None:
        """Stop the worker (if any)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5)
            self.proc = None

    def cleanup(self) -> None:
        """Stop the worker and remove its temporary folder."""
        self.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()
