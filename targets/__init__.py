"""Targets: each family module (``cpu``, ``mcu``) declares its targets' facts and its pipeline.

``TARGETS`` maps every target name to its :class:`Target`; :func:`get_target` looks one up.
"""

from __future__ import annotations

from onnxcc.errors import OnnxccError

from . import cpu, mcu
from .base import Target

TARGETS: dict[str, Target] = {t.name: t for t in cpu.TARGETS + mcu.TARGETS}


def get_target(name: str) -> Target:
    """The target called ``name``. Raises :class:`OnnxccError` listing the known targets."""
    try:
        return TARGETS[name]
    except KeyError:
        raise OnnxccError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}",
                          hint="`onnxcc targets` lists them with their facts") from None


__all__ = ["TARGETS", "Target", "get_target"]
