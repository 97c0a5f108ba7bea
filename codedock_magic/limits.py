"""Resource limits of one sandboxed run, validated before anything starts."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import InvalidValueError

__all__ = ["Limits", "format_size", "parse_size"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE_FORM = "a size such as 100m or 1g"

# The engine refuses memory limits under 6 MiB; Python itself needs more than that.
MIN_MEMORY = 16 * 1024**2
MIN_WORKDIR = 1024**2
MIN_OUTPUT = 1024


def parse_size(value: str | int, name: str = "size") -> int:
    """Return the number of bytes in a docker-style size (``100m``, ``1g``, ``512k``, ``4096``).

    Units are binary (k = 1024). Raises :class:`InvalidValueError` naming ``name``.
    """
    if isinstance(value, bool):
        raise InvalidValueError(name, value, _SIZE_FORM)
    if isinstance(value, int):
        if value <= 0:
            raise InvalidValueError(name, value, _SIZE_FORM)
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            number = float(match.group(1)) * _UNITS[match.group(2).lower()]
            if number >= 1:
                return int(number)
    raise InvalidValueError(name, value, _SIZE_FORM)


def format_size(size: int) -> str:
    """Render bytes the way users write them: ``100m``, ``1g``, ``1536k``."""
    for unit in ("t", "g", "m", "k"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return f"{size}b"


def _number(value: Any, name: str, expected: str, *, integer: bool = False) -> float:
    try:
        number = int(value, 10) if integer and isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise InvalidValueError(name, value, expected) from None
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise InvalidValueError(name, value, expected)
    if integer and number != int(number):
        raise InvalidValueError(name, value, expected)
    return number


@dataclass(frozen=True, init=False)
class Limits:
    """What one run may use. Every value is checked on construction.

    Sizes accept bytes (``int``) or docker syntax (``"100m"``); numbers may be
    strings, as they come from a command line. After construction every field has
    its canonical type (sizes in ``int`` bytes).

    Attributes:
        timeout: wall-clock seconds before the run is killed (status ``timeout``).
        memory: memory limit in bytes; swap is disabled, so this is all it gets.
        cpus: CPU share, e.g. ``0.5`` is half of one core.
        pids: most processes and threads alive at once inside the sandbox.
        output: bytes of stdout, and of stderr, kept; past that a head and a tail.
        workdir: size of the writable tmpfs work dir ``/sandbox``.
    """

    timeout: float
    memory: int
    cpus: float
    pids: int
    output: int
    workdir: int

    def __init__(
        self,
        *,
        timeout: float | str = 10.0,
        memory: int | str = "256m",
        cpus: float | str = 1.0,
        pids: int | str = 64,
        output: int | str = "1m",
        workdir: int | str = "64m",
    ) -> None:
        checked = {
            "timeout": _number(timeout, "timeout", "a number of seconds such as 2 or 0.5"),
            "memory": parse_size(memory, "memory"),
            "cpus": _number(cpus, "cpus", "a positive number of CPUs such as 1 or 0.5"),
            "pids": int(_number(pids, "pids", "a whole number such as 64", integer=True)),
            "output": parse_size(output, "output"),
            "workdir": parse_size(workdir, "workdir"),
        }
        given = {"memory": memory, "workdir": workdir, "output": output, "pids": pids}
        for name, least, shown in [
            ("memory", MIN_MEMORY, "16m"),
            ("workdir", MIN_WORKDIR, "1m"),
            ("output", MIN_OUTPUT, "1k"),
            # The init process and the supervisor count too.
            ("pids", 4, "4"),
        ]:
            if checked[name] < least:
                raise InvalidValueError(name, given[name], f"at least {shown}")
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    def replace(self, **changes: Any) -> Limits:
        """Return a copy with some fields changed (and checked again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise InvalidValueError(
                "limit", sorted(unknown)[0], "one of " + ", ".join(f.name for f in fields(self))
            )
        return replace(self, **changes)

    def describe(self) -> str:
        """One line for status bars: ``timeout 2s · memory 100m · cpus 1 · pids 64``."""
        return (
            f"timeout {self.timeout:g}s · memory {format_size(self.memory)} · "
            f"cpus {self.cpus:g} · pids {self.pids}"
        )
