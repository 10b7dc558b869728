"""The official ONNX node test cases (in the onnx wheel, no download), filtered to our ops."""

from __future__ import annotations

import functools
import tomllib
import warnings
from pathlib import Path

import numpy as np

# The ops of the foundation issue (item 4): every node case of these must pass on host or be
# listed in expected_failures.toml with a reason.
OPS = """Conv ConvTranspose MaxPool AveragePool GlobalAveragePool GlobalMaxPool LRN BatchNormalization
InstanceNormalization LayerNormalization Gemm MatMul Add Sub Mul Div Pow Sum Mean Max Min Relu
LeakyRelu PRelu Clip Sigmoid HardSigmoid HardSwish Tanh Elu Selu Softplus Gelu Erf Exp Log Sqrt
Reciprocal Neg Abs Softmax LogSoftmax Reshape Flatten Squeeze Unsqueeze Transpose Concat Split Slice
Gather Pad Resize Upsample ReduceMean ReduceSum ReduceMax Cast Identity Dropout Shape Constant Hardmax
ConstantOfShape Expand""".split()
MAX_OPSET = 21
EXPECTED_FILE = Path(__file__).with_name("expected_failures.toml")


@functools.lru_cache(maxsize=1)
def node_cases() -> list:
    """Every node case of OPS (collect_testcases caches per process: call it once, filter here)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    return [c for c in cases if c.kind == "node" and c.model.graph.node
            and {n.op_type for n in c.model.graph.node} <= set(OPS)]


def opset_of(case) -> int:
    return max((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def model_at_supported_opset(case):
    """The case's model, its opset import lowered to 21 when none of its ops changed signature
    after 21 (same attributes, inputs and outputs: the later versions only added element types,
    as opset 22 did for bfloat16); None when an op's signature changed."""
    import copy

    import onnx

    version = opset_of(case)
    if version <= MAX_OPSET:
        return case.model
    for n in case.model.graph.node:
        try:
            old = onnx.defs.get_schema(n.op_type, MAX_OPSET)
            new = onnx.defs.get_schema(n.op_type, version)
            if (sorted(old.attributes) != sorted(new.attributes)
                    or [i.name for i in old.inputs] != [i.name for i in new.inputs]
                    or [o.name for o in old.outputs] != [o.name for o in new.outputs]):
                return None
        except onnx.defs.SchemaError:
            return None
    m = copy.deepcopy(case.model)
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = MAX_OPSET
    return m


def expected_failures() -> dict[str, str]:
    if not EXPECTED_FILE.exists():
        return {}
    return dict(tomllib.loads(EXPECTED_FILE.read_text()).get("cases", {}))


# Inputs that set an op's parameters (axes, sizes, bounds...) rather than carry data: onnxcc
# compiles shapes and loops statically, so like a user it binds them as constants.
PARAM_OPS = {"Slice", "Resize", "Upsample", "Split", "ReduceMean", "ReduceSum", "ReduceMax",
             "Squeeze", "Unsqueeze", "Reshape", "Expand", "Pad", "ConstantOfShape", "Clip",
             "Dropout"}


def bind_parameters(model, feeds: dict[str, np.ndarray]):
    """Move the parameter inputs of ``feeds`` into the model as initializers."""
    import copy

    from onnx import numpy_helper

    params = {i for n in model.graph.node if n.op_type in PARAM_OPS
              for i in list(n.input)[0 if n.op_type == "ConstantOfShape" else 1:]}
    params &= set(feeds)
    if not params:
        return model, feeds
    m = copy.deepcopy(model)
    keep = [i for i in m.graph.input if i.name not in params]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    m.graph.initializer.extend(numpy_helper.from_array(np.asarray(feeds[k]), k) for k in sorted(params))
    return m, {k: v for k, v in feeds.items() if k not in params}


def run_case(case, target: str = "host") -> None:
    """Compile the case's model for ``target`` through the public API, run every data set,
    compare like onnx's runner (host: the executable harness at -O0; other targets: ``run()``,
    the LLVM JIT for ``cpu``)."""
    from onnxcc.driver import compile as cc
    from onnxcc.runtime.build import run_executable

    model = model_at_supported_opset(case)
    inits = {t.name for t in case.model.graph.initializer}
    in_names = [i.name for i in case.model.graph.input if i.name not in inits]
    out_names = [o.name for o in case.model.graph.output]
    compiled: dict = {}
    for inputs, outputs in case.data_sets:
        bound, feeds = bind_parameters(model, dict(zip(in_names, inputs)))
        key = bound.SerializeToString()
        if key not in compiled:
            cm = cc(bound, target)
            compiled[key] = (cm, cm.build(opt="-O0") if target == "host" else None)
        cm, exe = compiled[key]
        got = run_executable(exe, cm.mmap, feeds) if exe is not None else cm.run(feeds)
        for name, want in zip(out_names, outputs):
            compare(got[name], np.asarray(want), case.rtol, case.atol, name)


def compare(got: np.ndarray, want: np.ndarray, rtol: float, atol: float, name: str) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)
