"""The README stays true: its op table is `onnxcc ops`, its commands are what .ci/run runs."""

from pathlib import Path

from onnxcc.cli import ops_table

ROOT = Path(__file__).resolve().parents[1]


def test_op_table_matches_registry():
    text = (ROOT / "README.md").read_text()
    assert text.split("<!-- ops-table -->\n", 1)[1].strip() == ops_table().strip()


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for cmd in ('pip install -e ".[test]" && onnxcc compile',
                "bash scripts/install-test-deps.sh && python -m pytest -n 2 -q"):
        assert f"\n{cmd}\n" in readme and f"\n{cmd}\n" in ci


def test_mcu_table_matches_the_targets():
    from onnxcc.targets import TARGETS

    text = (ROOT / "README.md").read_text()
    mcus = [t for t in TARGETS.values() if t.family == "mcu"]
    assert len(mcus) == 8   # thumbv7em: the Cortex-M4 through LLVM
    for t in mcus:
        row = f"| `{t.name}` | `{' '.join(t.c_flags)}`"
        assert row in text, row
        assert text.split(row, 1)[1].split("|")[1].strip() == ("yes" if t.dsp else "no")
        assert t.board in text.split(row, 1)[1].splitlines()[0]
