"""ONNX node conformance through the loop IR: up to PER_OPS node cases of each set of op types
(every op family, without repeating what tests/conformance already runs through the same C for
every case) whose compiled graph the loop-IR lowering covers (``unsupported_reason`` None for each node) is compiled for host through the public
API, lowered, verified, rendered to C (gcc), run, and compared with the case's expected outputs at
the case's tolerance (as ``tests/conformance``). The numpy interpreter runs it too when the outputs
are small. Cases whose nodes are not lowered yet are skipped with the reason, so the run grows as
families land; cases the C target lists in expected_failures.toml are skipped here as well.
"""

import numpy as np
import pytest

import onnxcc
from conformance.cases import as_array, compare, expected_failures, node_cases, shape_inputs
from loopir import run_c, run_interp
from onnxcc.codegen.lower import lower_program, unsupported_reason
from onnxcc.codegen.verify import verify

pytestmark = pytest.mark.slow   # ~680 cases, each built with gcc
EXPECTED = expected_failures()
PER_OPS = 3


def _sample(cases: list) -> list:
    """The first PER_OPS cases (in the suite's order) of each set of op types."""
    seen: dict[tuple, int] = {}
    out = []
    for c in cases:
        key = tuple(sorted({n.op_type for n in c.model.graph.node}))
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= PER_OPS:
            out.append(c)
    return out


CASES = _sample(node_cases())
INTERP_MAX = 5000       # the interpreter (pure Python) runs cases with fewer output elements


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case_through_loop_ir(case):
    model = case.model
    if case.name in EXPECTED:
        pytest.skip(f"expected to fail on the C target: {EXPECTED[case.name]}")
    inits = {t.name for t in case.model.graph.initializer}
    in_names = [i.name for i in case.model.graph.input if i.name not in inits]
    out_names = [o.name for o in case.model.graph.output]
    for inputs, outputs in case.data_sets:
        inputs, outputs = [as_array(x) for x in inputs], [as_array(y) for y in outputs]
        feeds = dict(zip(in_names, inputs))
        consts = {k: feeds.pop(k) for k in shape_inputs(model) if k in feeds}
        g = onnxcc.compile(model, "host", constant_inputs=consts).graph
        missing = sorted({f"{n.op}: {why}" for n in g.nodes if (why := unsupported_reason(n))})
        if missing:
            pytest.skip("not lowered to the loop IR yet: " + "; ".join(missing))
        p = lower_program(g)
        verify(p)
        xs = [np.asarray(feeds[b.value]) for b in p.inputs]
        runs = [run_c(p, xs)]
        if sum(int(np.prod(np.shape(o))) for o in outputs) < INTERP_MAX:
            runs.append(run_interp(p, xs))
        for got in runs:
            assert [b.value for b in p.outputs] == out_names
            for name, y, want in zip(out_names, got, outputs):
                compare(y, np.asarray(want), case.rtol, case.atol, name)
