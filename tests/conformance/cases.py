"""The official ONNX node test cases (in the onnx wheel, no download), filtered to the scope of
issue 8 (:data:`EXCLUDED_OPS`, :func:`in_scope`)."""

from __future__ import annotations

import dataclasses
import functools
import tomllib
import warnings
from pathlib import Path

import numpy as np

# The scope of the conformance run (issue 8): every node case whose tensors are plain numbers or
# bools (:func:`_plain_numbers`), except the cases of ops outside what an inference compiler of
# plain tensors is for. Each excluded op with why, in one place:
EXCLUDED_OPS = {
    **dict.fromkeys(("Bernoulli", "Multinomial", "RandomNormal", "RandomNormalLike",
                     "RandomUniform", "RandomUniformLike"),
                    "random: draws from a generator the case cannot reproduce"),
    **dict.fromkeys(("Adam", "Adagrad", "Momentum", "Gradient"),
                    "training: updates optimizer state (ai.onnx.preview.training)"),
    **dict.fromkeys(("StringConcat", "StringNormalizer", "StringSplit", "RegexFullMatch"),
                    "string: works on string tensors"),
    # its node cases feed integer token ids, but it is a text op (n-gram counts over a pool
    # of strings or ids); issue 8's count of 1,158 leaves it out
    "TfIdfVectorizer": "text: n-gram counts over string or token-id pools",
    **dict.fromkeys(("SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
                     "SequenceInsert", "SequenceLength", "SequenceMap", "SplitToSequence",
                     "ConcatFromSequence", "Optional", "OptionalGetElement",
                     "OptionalHasElement"), "sequence/optional: values that are not tensors"),
    "ImageDecoder": "decodes an encoded image (a byte string), not a numeric tensor op",
}
EXPECTED_FILE = Path(__file__).with_name("expected_failures.toml")
# The onnx wheel's on-disk model cases (model.onnx + test_data_set_*/ .pb files) also run.
FILE_KINDS = ("pytorch-converted", "pytorch-operator", "simple")


@dataclasses.dataclass
class FileCase:
    """An on-disk case of the onnx wheel, loaded like a node case."""

    name: str
    kind: str
    model: object
    data_sets: list
    rtol: float
    atol: float


def _load_file_case(case) -> FileCase:
    import onnx
    from onnx import numpy_helper

    folder = Path(case.model_dir)
    model = onnx.load(str(folder / "model.onnx"))
    data_sets = []
    for d in sorted(folder.glob("test_data_set_*")):
        def read(prefix: str, d: Path = d) -> list:
            files = sorted(d.glob(f"{prefix}_*.pb"), key=lambda f: int(f.stem.split("_")[-1]))
            return [numpy_helper.to_array(onnx.TensorProto.FromString(f.read_bytes())) for f in files]
        data_sets.append((read("input"), read("output")))
    return FileCase(case.name, case.kind, model, data_sets, case.rtol, case.atol)


def _tensors_only(model) -> bool:
    """Whether every graph input and output is a tensor (not a sequence, optional or map)."""
    g = model.graph
    return all(v.type.HasField("tensor_type") for v in [*g.input, *g.output])


def in_scope(model) -> bool:
    """The run's scope: plain-number tensors only, and no op of EXCLUDED_OPS."""
    ops = {n.op_type for n in model.graph.node}
    return (bool(ops) and not ops & EXCLUDED_OPS.keys() and _tensors_only(model)
            and _plain_numbers(model))


def in_issue_count(case) -> bool:
    """Whether a node case is among the 1,158 issue 8 counts: in scope, not an ``_expanded``
    case (the op's function body in primitive ops) and no float16 tensor. The run covers more
    (the expanded and float16 cases too); benchmarks/conformance.py reports both counts."""
    import onnx

    return (not isinstance(case, FileCase) and "_expanded" not in case.name
            and onnx.TensorProto.FLOAT16 not in _elem_types(case.model))


def _elem_types(model) -> set[int]:
    """Every tensor element type the model names (inputs, outputs, initializers, Cast targets)."""
    g = model.graph
    types = {v.type.tensor_type.elem_type for v in [*g.input, *g.output]
             if v.type.HasField("tensor_type")}
    types |= {t.data_type for t in g.initializer}
    types |= {a.i for n in g.node for a in n.attribute if a.name == "to"}
    return types


def _plain_numbers(model) -> bool:
    """Whether every tensor type the model names (inputs, outputs, initializers, Cast targets)
    is a plain number or bool numpy holds natively: the issue's scope leaves bfloat16, float8,
    4-bit, 2-bit and string cases out."""
    import onnx

    T = onnx.TensorProto
    plain = {T.FLOAT, T.DOUBLE, T.FLOAT16, T.BOOL, T.INT8, T.INT16, T.INT32, T.INT64, T.UINT8,
             T.UINT16, T.UINT32, T.UINT64}
    return _elem_types(model) <= plain


@functools.lru_cache(maxsize=1)
def node_cases() -> list:
    """Every node case :func:`in_scope` (collect_testcases caches per process: call it once,
    filter here), then the on-disk cases of FILE_KINDS in scope."""
    from onnx.backend.test.case.node import collect_testcases
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    found = [c for c in cases if c.kind == "node" and in_scope(c.model)]
    for kind in FILE_KINDS:
        for c in sorted(load_model_tests(kind=kind), key=lambda c: c.name):
            if c.model_dir is None:
                continue
            fc = _load_file_case(c)
            if in_scope(fc.model):
                found.append(fc)
    return found


def opset_of(case) -> int:
    return max((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def expected_failures() -> dict[str, str]:
    if not EXPECTED_FILE.exists():
        return {}
    return dict(tomllib.loads(EXPECTED_FILE.read_text()).get("cases", {}))


# Inputs whose values decide an output's shape (axes, sizes, starts, pads, a Loop's trip count
# and condition...): onnxcc compiles
# shapes statically, so like a user it binds the graph inputs they are computed from with the
# public option ``constant_inputs``. Other parameters (Clip's bounds, Dropout's ratio, Pad's
# constant value...) stay runtime inputs.
SHAPE_INPUTS = {"Slice": (1, 2, 3, 4), "Resize": (2, 3), "Upsample": (1,), "Split": (1,),
                "Squeeze": (1,), "Unsqueeze": (1,), "Reshape": (1,), "Expand": (1,),
                "Pad": (1, 3), "ConstantOfShape": (0,), "Tile": (1,), "Range": (0, 1, 2),
                "TopK": (1,), "OneHot": (1,), "CenterCropPad": (1,), "Loop": (0, 1),
                "Compress": (1,), "HannWindow": (0,), "HammingWindow": (0,),
                "BlackmanWindow": (0,), "AffineGrid": (1,), "DFT": (1, 2), "STFT": (1, 3),
                "Col2Im": (1, 2), "MaxUnpool": (2,), "MelWeightMatrix": (0, 1),
                **{f"Reduce{r}": (1,) for r in ("Mean", "Sum", "Max", "Min", "Prod", "L1", "L2",
                                                "LogSum", "LogSumExp", "SumSquare")}}


def shape_inputs(model) -> list[str]:
    """The graph inputs of ``model`` that SHAPE_INPUTS positions are computed from."""
    producer = {o: n for n in model.graph.node for o in n.output}
    graph_inputs = {i.name for i in model.graph.input}
    found: list[str] = []
    todo = [n.input[k] for n in model.graph.node for k in SHAPE_INPUTS.get(n.op_type, ())
            if k < len(n.input) and n.input[k]]
    seen: set[str] = set()
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in graph_inputs:
            found.append(t)
        elif t in producer:
            todo.extend(i for i in producer[t].input if i)
    return sorted(found)


def run_case(case, target: str = "host") -> None:
    """Compile the case's model, as written (any opset), for ``target`` through the public API
    (``onnxcc.compile``), run every data set with ``CompiledModel.run`` and compare like onnx's
    runner."""
    import onnxcc

    inits = {t.name for t in case.model.graph.initializer}
    in_names = [i.name for i in case.model.graph.input if i.name not in inits]
    out_names = [o.name for o in case.model.graph.output]
    params = shape_inputs(case.model)
    compiled: dict = {}
    for inputs, outputs in case.data_sets:
        inputs, outputs = [as_array(x) for x in inputs], [as_array(y) for y in outputs]
        feeds = dict(zip(in_names, inputs))
        consts = {k: feeds.pop(k) for k in params if k in feeds}
        key = tuple((k, v.dtype.str, v.shape, v.tobytes()) for k, v in consts.items())
        if key not in compiled:
            compiled[key] = onnxcc.compile(case.model, target=target, constant_inputs=consts)
        got = compiled[key].run(feeds)
        for name, want in zip(out_names, outputs):
            compare(got[name], np.asarray(want), case.rtol, case.atol, name)


def as_array(x) -> np.ndarray:
    """A data set's value as numpy (some cases store TensorProtos, for types numpy lacks)."""
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else np.asarray(x)


def compare(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, name: str) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)
