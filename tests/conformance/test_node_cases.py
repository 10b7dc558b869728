"""ONNX node conformance on host: compile each case to C, build, run, compare.

A case listed in expected_failures.toml must fail (the list can only shrink): when it passes,
this test fails and asks for the entry to be removed. Every case runs as written, at its own
opset, through ``onnxcc.compile`` and ``CompiledModel.run`` as a user calls them; the on-disk
pytorch-converted, pytorch-operator and simple cases of the onnx wheel run too.
"""

import pytest

from .cases import expected_failures, node_cases, run_case

EXPECTED = expected_failures()
CASES = node_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    reason = EXPECTED.get(case.name)
    try:
        run_case(case)
    except Exception as e:
        if reason:
            pytest.xfail(reason)
        raise AssertionError(f"{case.name}: {type(e).__name__}: {e}") from e
    if reason:
        pytest.fail(f"{case.name} passes but expected_failures.toml lists it ({reason!r}): "
                    "remove the entry")


def test_expected_failures_name_real_cases():
    names = {c.name for c in CASES}
    assert sorted(set(EXPECTED) - names) == []
