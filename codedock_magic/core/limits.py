"""What a run may use, validated before anything starts, in two kinds.

:class:`ContainerLimits` (memory, cpus, pids, workdir) are what the engine
enforces on a container: what a warm pool keys on, and what a pod's resources
would be. :class:`RunLimits` (timeout, output cap) travel with the code and bind
whichever container serves it. :class:`Limits` is the one value users write,
holding one of each.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidValueError

__all__ = [
    "LIMIT",
    "LIMITS",
    "LIMIT_FIELDS",
    "SIZES",
    "Ceilings",
    "ContainerLimits",
    "Kind",
    "Limit",
    "Limits",
    "RunLimits",
    "format_size",
    "parse_size",
    "resolve",
]

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


class Kind(enum.Enum):
    """What a limit counts, which decides how it is written, read and shown."""

    SIZE = "size"
    SECONDS = "seconds"
    COUNT = "count"
    CPUS = "cpus"


_EXPECTED = {
    Kind.SIZE: _SIZE_FORM,
    Kind.SECONDS: "a number of seconds such as 2 or 0.5",
    Kind.COUNT: "a whole number such as 64",
    Kind.CPUS: "a positive number of CPUs such as 1 or 0.5",
}


@dataclass(frozen=True)
class Limit:
    """One limit: everything the magic, the service, the CLI and the wire know of it.

    Attributes:
        name: the field of :class:`Limits`, and the stem of every setting
            (``SandboxMagics.memory``, ``max_memory``, ``default_memory``).
        kind: size, seconds, count or cpus.
        flags: the cell's options that ask for it (none: only a setting sets it).
        least: the smallest value that is enforced as stated.
        most: the largest one.
        default: the value of a run that asks for none, as a setting writes it.
        ceiling: the sandbox service's ceiling unless configured ("" or 0: none).
        help: what it is, in a few words, for help texts.
        container: whether the engine enforces it on the container (else it
            travels with the run).
    """

    name: str
    kind: Kind
    flags: tuple[str, ...]
    least: float
    most: float
    default: float | int | str
    ceiling: float | int | str
    help: str
    container: bool

    @property
    def is_size(self) -> bool:
        """Whether it is written like ``100m`` and kept in bytes."""
        return self.kind is Kind.SIZE

    @property
    def metavar(self) -> str:
        """How a command line names its value."""
        return {Kind.SIZE: "SIZE", Kind.SECONDS: "SECONDS"}.get(self.kind, "N")

    @property
    def expected(self) -> str:
        """What a well-formed value looks like, for messages."""
        return _EXPECTED[self.kind]

    def parse(self, value: Any, name: str | None = None) -> int | float:
        """The value in its canonical type (sizes in bytes), checked for form and bounds.

        Raises:
            InvalidValueError: naming ``name`` (the limit's own name by default).
        """
        name = name or self.name
        if self.kind is Kind.SIZE:
            number: float = parse_size(value, name)
        else:
            number = _number(value, name, self.expected, integer=self.kind is Kind.COUNT)
        if number < self.least:
            raise InvalidValueError(name, value, f"at least {self.show(self.least)}")
        if number > self.most:
            raise InvalidValueError(name, value, f"at most {self.show(self.most)}")
        return int(number) if self.kind in (Kind.SIZE, Kind.COUNT) else number

    def show(self, value: float) -> str:
        """A value the way users write it: ``100m``, ``0.5``, ``64``."""
        return format_size(int(value)) if self.is_size else f"{value:g}"

    def parse_ceiling(self, value: Any, setting: str) -> float | None:
        """A ceiling setting's value: ``None`` for none (0 or ""), else the bound.

        Raises:
            InvalidValueError: naming ``setting``.
        """
        if value in (0, "", None) and not isinstance(value, bool):
            return None
        if self.is_size:
            try:
                return float(parse_size(value, setting))
            except InvalidValueError:
                raise InvalidValueError(
                    setting, value, "a size such as 512m, or '' for none"
                ) from None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidValueError(setting, value, "a positive number, or 0 for none") from None
        if number < 0 or isinstance(value, bool) or not math.isfinite(number):
            raise InvalidValueError(setting, value, "a positive number, or 0 for none")
        return number


#: Every limit, in the order users read them.
LIMITS: tuple[Limit, ...] = (
    Limit("timeout", Kind.SECONDS, ("--timeout",), 0, MAX_TIMEOUT, 10.0, 60.0,
          "wall-clock time in seconds (e.g. 2 or 0.5)", container=False),
    Limit("memory", Kind.SIZE, ("--mem", "--memory"), MIN_MEMORY, MAX_SIZE, "256m", "1g",
          "memory, swap disabled (e.g. 100m or 1g)", container=True),
    Limit("cpus", Kind.CPUS, ("--cpus",), MIN_CPUS, MAX_CPUS, 1.0, 1.0,
          "CPU share (0.5 is half a core)", container=True),
    Limit("pids", Kind.COUNT, ("--pids",), MIN_PIDS, MAX_PIDS, 64, 256,
          "processes and threads at once", container=True),
    Limit("output", Kind.SIZE, (), MIN_OUTPUT, MAX_OUTPUT, "1m", "4m",
          "output kept per stream, past which a head and a tail", container=False),
    Limit("workdir", Kind.SIZE, (), MIN_WORKDIR, MAX_SIZE, "64m", "256m",
          "size of the writable work dir /sandbox", container=True),
)  # fmt: skip

#: Each limit by its name.
LIMIT: dict[str, Limit] = {limit.name: limit for limit in LIMITS}

#: The fields of :class:`Limits`, in the order users read them.
LIMIT_FIELDS = tuple(LIMIT)

#: The limits written as sizes (``100m``) and kept in bytes.
SIZES = tuple(limit.name for limit in LIMITS if limit.is_size)

_CONTAINER_FIELDS = tuple(limit.name for limit in LIMITS if limit.container)
_RUN_FIELDS = tuple(limit.name for limit in LIMITS if not limit.container)


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
        given = {"memory": memory, "cpus": cpus, "pids": pids, "workdir": workdir}
        checked = {name: LIMIT[name].parse(given[name]) for name in _CONTAINER_FIELDS}
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
        given = {"timeout": timeout, "output": output}
        for name in _RUN_FIELDS:
            object.__setattr__(self, name, LIMIT[name].parse(given[name]))


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


@dataclass(frozen=True)
class Ceilings:
    """The most each limit may be, by name (absent: none), and the settings that set them.

    Made by :func:`resolve`, which holds the one rule of defaults and ceilings.
    """

    bounds: Mapping[str, float]
    prefix: str = ""

    def setting(self, name: str) -> str:
        """The ceiling's setting, as messages name it: ``max_memory``."""
        return f"{self.prefix}max_{name}"

    def over(self, limits: Limits, asked: Iterable[str]) -> str | None:
        """The first of the ``asked`` limits that is over its ceiling, if any."""
        for name in LIMIT_FIELDS:
            bound = self.bounds.get(name)
            if name in asked and bound is not None and getattr(limits, name) > bound:
                return name
        return None

    def shown(self, name: str) -> str:
        """The ceiling of ``name`` the way users write it."""
        return LIMIT[name].show(self.bounds[name])


def resolve(
    settings: Mapping[str, Any], *, default: str = "default_{}", prefix: str = ""
) -> tuple[Limits, Ceilings]:
    """The defaults and the ceilings that settings give, under one rule for every face.

    ``settings`` holds, for each limit, its default (under ``default``, formatted
    with the limit's name) and its ceiling (``max_<name>``; 0 or "" for none).
    A default over its ceiling is refused, never quietly brought down: a cell or
    a request that asks for nothing gets what the settings say, or the settings
    are refused when they are read. ``prefix`` starts every setting's name in
    messages (``SandboxMagics.``).

    Raises:
        InvalidValueError: one line naming the setting, and for a default over
            its ceiling, both settings.
    """
    bounds: dict[str, float] = {}
    for limit in LIMITS:
        key = f"max_{limit.name}"
        bound = limit.parse_ceiling(settings.get(key, limit.ceiling), prefix + key)
        if bound is not None:
            bounds[limit.name] = bound
    given = {name: settings.get(default.format(name), LIMIT[name].default) for name in LIMIT}
    try:
        defaults = Limits(**given)
    except InvalidValueError as exc:
        raise InvalidValueError(
            prefix + default.format(exc.name), exc.value, exc.expected
        ) from None
    ceilings = Ceilings(bounds, prefix)
    for name, bound in bounds.items():
        if getattr(defaults, name) > bound:
            raise InvalidValueError(
                prefix + default.format(name),
                given[name],
                f"at most {ceilings.setting(name)} = {ceilings.shown(name)}",
            )
    return defaults, ceilings
