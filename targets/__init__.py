"""Targets: each family module (``cpu``, ``mcu``) declares its targets' facts and its pipeline.

``TARGETS`` maps every target name to its :class:`Target`; :func:`get_target` looks one up.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from onnxcc.errors import OnnxccError

from . import cpu, fpga, mcu
from .base import Target

TARGETS: dict[str, Target] = {t.name: t for t in cpu.TARGETS + mcu.TARGETS + fpga.TARGETS}


def get_target(name: str | Target) -> Target:
    """The target called ``name`` (a Target passes through). Raises :class:`OnnxccError` listing
    the known targets (also for a name that is no string, e.g. a list: ``base = [1]`` in a
    target file)."""
    if isinstance(name, Target):
        return name
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        raise OnnxccError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}",
                          hint="`onnxcc targets` lists them with their facts") from None


_FIELDS = {"name": str, "family": str, "triple": str, "cpu": str, "c_flags": list, "cc": str,
           "sram_bytes": int, "flash_bytes": int, "clock_hz": int, "weights_in_c": bool,
           "pointer_bits": int, "backend": str, "features": str, "dsp": bool, "board": str}


def load_target_file(path: str | Path) -> Target:
    """A board described in a TOML file, e.g.::

        base = "cortex-m4"          # optional: start from a known target's facts
        name = "stm32f411"
        sram_bytes = 131072         # bytes
        flash_bytes = 524288        # bytes
        clock_hz = 100000000
        pointer_bits = 32           # optional: 32 for family "mcu", 64 for "cpu" by default
        dsp = true                  # optional: the core has Arm's DSP extension (SMLAD)
        board = "STM32F411CE"       # optional: the part, for people (not inherited from base)

    Keys are the :class:`Target` fields (``c_flags`` a list of strings). Raises
    :class:`OnnxccError` naming the file and key for unreadable TOML, unknown keys, wrong types
    or an unknown family/base.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise OnnxccError(f"cannot read target file {path}: {e}",
                          hint="write a TOML file with the keys of `onnxcc targets`") from e
    base = get_target(data.pop("base")) if "base" in data else None
    for key, value in data.items():
        want = _FIELDS.get(key)
        if want is None:
            raise OnnxccError(f"{path}: unknown key {key!r}", hint=f"known keys: base, {', '.join(_FIELDS)}")
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise OnnxccError(f"{path}: {key} must be a {want.__name__}, got {value!r}")
        if want is int and value <= 0:
            raise OnnxccError(f"{path}: {key} must be positive, got {value}")
        if key == "pointer_bits" and value not in (16, 32, 64):
            raise OnnxccError(f"{path}: pointer_bits must be 16, 32 or 64, got {value}")
    if "c_flags" in data:
        data["c_flags"] = tuple(str(f) for f in data["c_flags"])
    fields = dict(base.__dict__) if base is not None else {}
    if base is not None and "family" in data and "pointer_bits" not in data:
        fields.pop("pointer_bits")   # the new family's default
    if base is not None and "board" not in data:
        fields.pop("board")   # a board file describes another part than its base's
    fields.update(data)
    missing = [k for k in ("name", "family", "triple", "cpu") if k not in fields]
    if missing:
        raise OnnxccError(f"{path}: missing {', '.join(missing)}",
                          hint='add them, or start from a known target with base = "cortex-m4"')
    if fields.get("backend", "c") not in ("c", "llvm"):
        raise OnnxccError(f"{path}: backend must be 'c' or 'llvm', got {fields['backend']!r}")
    if fields["family"] not in ("cpu", "mcu"):
        raise OnnxccError(f"{path}: family must be 'cpu' or 'mcu', got {fields['family']!r}")
    return Target(**fields)


__all__ = ["TARGETS", "Target", "get_target", "load_target_file"]
