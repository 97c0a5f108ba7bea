"""What a run may use, validated before anything starts, in two kinds.

:class:`ContainerLimits` (memory, cpus, pids, workdir) are what the engine
enforces on a container: what a warm pool keys on, and what a pod's resources
would be. :class:`RunLimits` (timeout, output cap) travel with the code and bind
whichever container serves it. :class:`Limits` is the one value users write,
holding one of each.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidValueError

__all__ = [
    "LIMIT_FIELDS",
    "ContainerLimits",
    "Limits",
    "RunLimits",
    "format_size",
    "parse_size",
]

#: The fields of :class:`Limits`, in the order users read them.
LIMIT_FIELDS = ("timeout", "memory", "cpus", "pids", "output", "workdir")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE_FORM = "a size such as 100m or 1g"

# Every limit has bounds, so that each accepted value is enforced as stated: past
# them an engine reads the value as "no limit" (cpus under 0.01 become 0 nano-CPUs),
# or fails deep inside with a message about int64, or the host cannot hold it.
# The engine refuses memory limits under 6 MiB; Python itself needs more than that.
MIN_MEMORY = 16 * 1024**2
MIN_WORKDIR = 1024**2
MIN_OUTPUT = 1024
MAX_SIZE = 1024**5  # 1024t: beyond any machine, well inside int64
MAX_OUTPUT = 1024**3  # kept in the host's memory, per stream
MIN_CPUS = 0.01  # Docker's own floor; below it nano_cpus rounds to "unlimited"
MAX_CPUS = 1024.0  # the engine also refuses more than it has (checked at create)
MIN_PIDS = 4  # the init process and the supervisor count too
MAX_PIDS = 4_194_304  # the kernel's PID_MAX_LIMIT
MAX_TIMEOUT = 7 * 24 * 3600.0


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


def _bounded(name: str, given: object, value: float, least: float, most: float) -> float:
    def shown(bound: float) -> str:
        return format_size(int(bound)) if name in ("memory", "workdir", "output") else f"{bound:g}"

    if value < least:
        raise InvalidValueError(name, given, f"at least {shown(least)}")
    if value > most:
        raise InvalidValueError(name, given, f"at most {shown(most)}")
    return value


@dataclass(frozen=True, init=False)
class ContainerLimits:
    """What the engine enforces on one container. Every value is checked on construction.

    Attributes:
        memory: memory limit in bytes; swap is disabled, so this is all it gets.
        cpus: CPU share, e.g. ``0.5`` is half of one core.
        pids: most processes and threads alive at once inside the sandbox.
        workdir: size of the writable tmpfs work dir ``/sandbox``.
    """

    memory: int
    cpus: float
    pids: int
    workdir: int

    def __init__(
        self,
        *,
        memory: int | str = "256m",
        cpus: float | str = 1.0,
        pids: int | str = 64,
        workdir: int | str = "64m",
    ) -> None:
        checked = {
            "memory": int(
                _bounded("memory", memory, parse_size(memory, "memory"), MIN_MEMORY, MAX_SIZE)
            ),
            "cpus": _bounded(
                "cpus",
                cpus,
                _number(cpus, "cpus", "a positive number of CPUs such as 1 or 0.5"),
                MIN_CPUS,
                MAX_CPUS,
            ),
            "pids": int(
                _bounded(
                    "pids",
                    pids,
                    _number(pids, "pids", "a whole number such as 64", integer=True),
                    MIN_PIDS,
                    MAX_PIDS,
                )
            ),
            "workdir": int(
                _bounded("workdir", workdir, parse_size(workdir, "workdir"), MIN_WORKDIR, MAX_SIZE)
            ),
        }
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    def describe(self) -> str:
        """``memory 100m · cpus 1 · pids 64``."""
        return f"memory {format_size(self.memory)} · cpus {self.cpus:g} · pids {self.pids}"


@dataclass(frozen=True, init=False)
class RunLimits:
    """What binds one run wherever it is served. Every value is checked on construction.

    Attributes:
        timeout: wall-clock seconds before the run is killed (status ``timeout``),
            counted from when the code reaches its container.
        output: bytes of stdout, and of stderr, kept; past that a head and a tail.
    """

    timeout: float
    output: int

    def __init__(self, *, timeout: float | str = 10.0, output: int | str = "1m") -> None:
        seconds = _number(timeout, "timeout", "a number of seconds such as 2 or 0.5")
        object.__setattr__(self, "timeout", _bounded("timeout", timeout, seconds, 0, MAX_TIMEOUT))
        size = parse_size(output, "output")
        object.__setattr__(
            self, "output", int(_bounded("output", output, size, MIN_OUTPUT, MAX_OUTPUT))
        )


_CONTAINER_FIELDS = ("memory", "cpus", "pids", "workdir")
_RUN_FIELDS = ("timeout", "output")


@dataclass(frozen=True, init=False)
class Limits:
    """Everything one run may use: its container's limits and its own.

    Sizes accept bytes (``int``) or docker syntax (``"100m"``); numbers may be
    strings, as they come from a command line. Each value is checked at once and
    kept in its canonical type (sizes in ``int`` bytes), readable as
    ``limits.memory``, ``limits.timeout`` and so on.

    Attributes:
        container: memory, cpus, pids and workdir (see :class:`ContainerLimits`).
        run: timeout and output (see :class:`RunLimits`).
    """

    container: ContainerLimits
    run: RunLimits

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
        object.__setattr__(
            self,
            "container",
            ContainerLimits(memory=memory, cpus=cpus, pids=pids, workdir=workdir),
        )
        object.__setattr__(self, "run", RunLimits(timeout=timeout, output=output))

    @classmethod
    def of(cls, container: ContainerLimits, run: RunLimits) -> Limits:
        """The pair as one value."""
        limits = cls.__new__(cls)
        object.__setattr__(limits, "container", container)
        object.__setattr__(limits, "run", run)
        return limits

    @property
    def timeout(self) -> float:
        """Wall-clock seconds of the run."""
        return self.run.timeout

    @property
    def output(self) -> int:
        """Bytes kept per stream."""
        return self.run.output

    @property
    def memory(self) -> int:
        """Memory of the container, in bytes."""
        return self.container.memory

    @property
    def cpus(self) -> float:
        """CPU share of the container."""
        return self.container.cpus

    @property
    def pids(self) -> int:
        """Processes and threads the container may hold."""
        return self.container.pids

    @property
    def workdir(self) -> int:
        """Size of the container's work dir, in bytes."""
        return self.container.workdir

    def replace(self, **changes: Any) -> Limits:
        """Return a copy with some fields changed (and checked again)."""
        names = _RUN_FIELDS + _CONTAINER_FIELDS
        unknown = set(changes) - set(names)
        if unknown:
            raise InvalidValueError("limit", sorted(unknown)[0], "one of " + ", ".join(names))
        current: dict[str, Any] = {name: getattr(self, name) for name in names}
        return Limits(**{**current, **changes})

    def describe(self) -> str:
        """One line for status bars: ``timeout 2s · memory 100m · cpus 1 · pids 64``."""
        return f"timeout {self.timeout:g}s · {self.container.describe()}"
