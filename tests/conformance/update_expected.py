"""Regenerate expected_failures.toml from a run: `python -m tests.conformance.update_expected`.

Keeps the reasons already written for cases that still fail; new failures get the error's first
line as the reason, to be edited by hand into something a user would accept.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from .cases import EXPECTED_FILE, expected_failures, node_cases, run_case

FLOAT16 = ("float16 tensors of this op are not supported (onnxcc computes float16 in float32 where "
           "the op's float32 form type-checks)")


def explain(case, raw: str, problems=()) -> str:
    """A reason a user would accept for ``case`` failing with the error text ``raw`` (and an
    UnsupportedOpError's ``problems``, (node, op, why) each): the groups onnxcc knows (an op not
    implemented yet, float16 tensors, a domain not supported) get one wording each, naming the
    ops; anything else keeps the error's first line."""
    from onnxcc.ops import all_ops

    ops = sorted({op for _, op, why in problems if why == "op not implemented"}
                 or {n.op_type for n in case.model.graph.node} - set(all_ops()) - {"Constant"})
    if "op not implemented" in raw and ops:
        return f"{', '.join(ops)} {'is' if len(ops) == 1 else 'are'} not implemented yet"
    if "dtype float16" in raw:
        return FLOAT16
    domains = sorted({n.domain for n in case.model.graph.node} - {"", "ai.onnx"})
    if domains and ("domain" in raw or "no default-domain" in raw):
        return (f"{', '.join(ops or sorted({n.op_type for n in case.model.graph.node}))} "
                f"(domain {', '.join(domains)}) not supported yet")
    return raw


def _try(k: int) -> tuple[str, str | None]:
    case = node_cases()[k]
    try:
        run_case(case)
        return case.name, None
    except Exception as e:
        problems = getattr(e.__cause__ or e, "problems", None) or getattr(e, "problems", None)
        if problems:   # UnsupportedOpError: the reasons, not the count line
            first = "; ".join(dict.fromkeys(why for _, _, why in problems))
        else:
            first = (str(e.__cause__ or e).strip().splitlines() or [""])[0]
        return case.name, explain(case, f"{type(e.__cause__ or e).__name__}: {first}"[:200],
                                  problems or ())


def main() -> None:
    old = expected_failures()
    todo = list(range(len(node_cases())))
    with ProcessPoolExecutor(2) as ex:
        results = list(ex.map(_try, todo))
    fails = {n: old.get(n, why) for n, why in results if why}
    lines = ["# ONNX node cases in the scope of issue 8 (cases.in_scope) and the onnx wheel's",
             "# pytorch-converted, pytorch-operator and simple cases that do not pass on host yet, with why.",
             "# A listed case that passes fails the run: remove it. Regenerate with",
             "# python -m tests.conformance.update_expected", "", "[cases]"]
    for n in sorted(fails):
        why = fails[n].replace("\\", "/").replace('"', "'")
        lines.append(f'{n} = "{why}"')
    EXPECTED_FILE.write_text("\n".join(lines) + "\n")
    print(f"{len(results)} cases run, {len(fails)} listed")


if __name__ == "__main__":
    main()
