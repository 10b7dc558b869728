"""Error types raised by onnxcc.

Every error a user can cause is an :class:`OnnxccError`; its message names the node, the op and
what to do next, so a CLI user never sees a traceback from deep inside the compiler.
"""

from __future__ import annotations


class OnnxccError(Exception):
    """Base of every error onnxcc raises on purpose.

    Attributes:
        node: name of the ONNX node involved, or None.
        op: ONNX op type involved, or None.
        hint: what the user can do about it.
    """

    def __init__(self, message: str, *, node: str | None = None, op: str | None = None,
                 hint: str | None = None) -> None:
        self.node, self.op, self.hint = node, op, hint
        where = ""
        if node is not None or op is not None:
            where = f"node {node!r} ({op}): " if node is not None else f"{op}: "
        text = where + message
        if hint:
            text += f"\n  hint: {hint}"
        super().__init__(text)


class ModelLoadError(OnnxccError):
    """The file is missing, truncated, not ONNX, or fails the ONNX checker."""


class UnsupportedOpError(OnnxccError):
    """One or more nodes use an op, attribute value or dtype onnxcc cannot compile.

    ``problems`` holds every ``(node name, op, reason)`` found, not just the first.
    """

    def __init__(self, problems: list[tuple[str, str, str]], target: str | None = None) -> None:
        self.problems = problems
        lines = [f"  - node {n!r} ({op}): {why}" for n, op, why in problems]
        on = f" for target {target!r}" if target else ""
        super().__init__(
            f"{len(problems)} node(s) cannot be compiled{on}:\n" + "\n".join(lines),
            hint="replace or remove these nodes in the model (onnx-graphsurgeon), or export "
            "with another opset; `onnxcc ops` lists what each target supports",
        )


class ShapeError(OnnxccError):
    """A shape cannot be bound statically, or shapes do not agree."""


class AttributeValueError(OnnxccError):
    """An attribute is missing, unknown, or has a value outside the ONNX spec."""


class MemoryBudgetError(OnnxccError):
    """The planned arena or the weights do not fit the target's SRAM or flash (or its address
    space), or compiling or interpreting the model ran out of this machine's memory."""


class DesignFitError(OnnxccError):
    """An FPGA design whose estimated DSP, BRAM, LUT or FF needs exceed the part."""


class OutputError(OnnxccError):
    """The output folder or file cannot be written, or holds files onnxcc did not write under a
    name it would generate (``force=True`` / ``--force`` overwrites those)."""


class InputError(OnnxccError):
    """A file of inputs (``onnxcc run --inputs``) is missing, unreadable or not an .npz."""


class BuildError(OnnxccError):
    """The system C compiler failed on generated code (a bug in onnxcc: please report it)."""


class VerifyError(OnnxccError):
    """The IR broke an invariant (SSA, order, types): a bug in a pass."""
