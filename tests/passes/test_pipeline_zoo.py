"""The whole target pipeline on the 9 light zoo models: memory close to the lower bound, and the
planned graph (run byte for byte in its planned buffers) still gives the stored outputs."""

import numpy as np
import pytest
from onnxcc.frontend import import_onnx
from onnxcc.interpreter import interpret
from onnxcc.passes import check_plan, run_pipeline
from onnxcc.targets import get_target
from onnxcc.zoo import ZOO, zoo_expected_output, zoo_input
from pass_builders import run_plan


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_pipeline_memory_and_outputs(name):
    g = run_pipeline(import_onnx(f"zoo:{name}"), get_target("cortex-m4").pipeline)
    check_plan(g)
    p = g.meta["memory_plan"]
    ratio = p.arena_size / p.lower_bound
    print(f"\n{name:14s} naive {p.naive:>12,d}  arena {p.arena_size:>11,d}  "
          f"lower bound {p.lower_bound:>11,d}  ratio {ratio:.3f}  in place {len(p.inplace)}")
    assert p.lower_bound <= p.arena_size <= 1.15 * p.lower_bound
    assert p.arena_size < p.naive
    assert not {"BatchNormalization", "Identity", "Dropout", "Sum"} & {n.op for n in g.nodes}
    feeds = {g.inputs[0].name: zoo_input(g.inputs[0].shape)}
    want = zoo_expected_output(name)
    out = g.outputs[0].name
    np.testing.assert_allclose(interpret(g, feeds)[out], want, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(run_plan(g, feeds)[out], want, rtol=1e-3, atol=1e-4)
