"""ONNX node conformance on target ``cpu`` (the LLVM back end): every case the C target passes
is compiled through the public API, run through LLVM's JIT (the very object ``save()`` writes)
and compared like onnx's runner. Cases the C target lists in expected_failures.toml are skipped
here (they fail before code generation, in the shared front end and passes)."""

import pytest

from .cases import expected_failures, node_cases, run_case

EXPECTED = expected_failures()
CASES = node_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case_on_cpu(case):
    if case.name in EXPECTED:
        pytest.skip(f"fails on the C target too: {EXPECTED[case.name]}")
    try:
        run_case(case, "cpu")
    except Exception as e:
        raise AssertionError(f"{case.name}: {type(e).__name__}: {e}") from e
