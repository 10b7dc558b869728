"""ONNX node conformance on host: compile each case to C, build, run, compare.

A case listed in expected_failures.toml must fail (the list can only shrink): when it passes,
this test fails and asks for the entry to be removed. Cases of opsets above 21 run at opset 21
when none of their ops changed after 21; the others are outside the range onnxcc accepts.
"""

import pytest

from .cases import MAX_OPSET, expected_failures, model_at_supported_opset, node_cases, opset_of, run_case

EXPECTED = expected_failures()
CASES = node_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    if model_at_supported_opset(case) is None:
        pytest.skip(f"uses an op version newer than opset {MAX_OPSET} (case opset {opset_of(case)})")
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
