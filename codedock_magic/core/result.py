"""What a run ended with, and how the engine's facts map to a status."""

from __future__ import annotations

import enum
import signal as _signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import CodedockError
from .limits import Limits, format_size

__all__ = [
    "CaseEnding",
    "CaseRun",
    "Ending",
    "RunFailedError",
    "RunResult",
    "RunStatus",
    "case_status",
    "cases_not_run",
    "decide_status",
]


class RunStatus(str, enum.Enum):
    """How a sandboxed run ended. Only the engine and the host decide it."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory limit"
    SIGNALED = "killed by signal"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


def decide_status(
    *,
    exit_code: int | None,
    signal: int | None,
    oom_killed: bool,
    timed_out: bool,
    interrupted: bool,
) -> RunStatus:
    """Map the facts of a finished run to its status.

    The host's own knowledge (it interrupted the run, its deadline passed) wins over
    what the container reports, since the kill it sent explains the exit. A memory
    kill is only reported when the program did not succeed anyway.
    """
    if interrupted:
        return RunStatus.INTERRUPTED
    if timed_out:
        return RunStatus.TIMEOUT
    if oom_killed and exit_code != 0:
        return RunStatus.MEMORY_LIMIT
    if signal is not None:
        return RunStatus.SIGNALED
    if exit_code == 0:
        return RunStatus.OK
    return RunStatus.ERROR


def signal_name(number: int) -> str:
    """``9`` -> ``"SIGKILL"``; unknown numbers stay numeric."""
    try:
        return _signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(frozen=True, kw_only=True)
class Ending:
    """How a program ended: what a run and each case of a run with cases both end with.

    Attributes:
        status: how it ended (see :class:`RunStatus`).
        exit_code: the program's exit code, ``None`` when it did not exit by itself.
        signal: the signal that killed the program, if one did.
        stdout: what it printed, UTF-8 with bad bytes replaced; cut to a head and a
            tail past the output cap.
        stderr: likewise for standard error.
        duration: wall-clock seconds from its start to its end.
        truncated: whether stdout or stderr was cut.
    """

    status: RunStatus
    exit_code: int | None
    signal: int | None
    stdout: str
    stderr: str
    duration: float
    truncated: bool


@dataclass(frozen=True, kw_only=True)
class CaseEnding(Ending):
    """How one case of a run with cases ended (the program's side; a grader judges it).

    Besides an :class:`Ending`'s fields (``status`` is ``interrupted`` when the case
    never ran to its end because the run was stopped or its sandbox broke, and
    ``note`` says which):

    Attributes:
        timeout: the seconds it was given.
        memory: the bytes it was given.
        note: why it did not run to its end, when it did not.
    """

    timeout: float
    memory: int
    note: str = ""


#: The name this type had before; kept for the code that imports it.
CaseRun = CaseEnding


def case_status(how: str, number: int) -> RunStatus:
    """The status of a case from the supervisor's word on its end, by :func:`decide_status`.

    ``how`` is ``exit``, ``signal``, ``timeout`` or ``memory``; ``number`` the exit
    code or the signal.
    """
    return decide_status(
        exit_code=number if how not in ("signal", "timeout", "memory") else None,
        signal=number if how == "signal" else None,
        oom_killed=how == "memory",
        timed_out=how == "timeout",
        interrupted=False,
    )


def cases_not_run(
    given: Iterable[tuple[float, int]],
    note: str,
    *,
    stdout: str = "",
    stderr: str = "",
    status: RunStatus = RunStatus.INTERRUPTED,
) -> tuple[CaseEnding, ...]:
    """The endings of cases that never ran to their end, each with its ``(timeout, memory)``.

    The one way such endings are made: for a run stopped or broken on the way
    (``interrupted``), and for a submission that could not run at all (``error``).
    ``note`` says why. The first of them keeps ``stdout`` and ``stderr``: what it
    printed before the run was stopped.
    """
    return tuple(
        CaseEnding(
            status=status,
            exit_code=None,
            signal=None,
            stdout=stdout if index == 0 else "",
            stderr=stderr if index == 0 else "",
            duration=0.0,
            truncated=False,
            timeout=timeout,
            memory=memory,
            note=note,
        )
        for index, (timeout, memory) in enumerate(given)
    )


@dataclass(frozen=True, kw_only=True)
class RunResult(Ending):
    """Everything known about one finished run.

    Besides an :class:`Ending`'s fields (``stdout`` and ``stderr`` are cut past
    ``limits.output``; ``duration`` runs from the start to the end of the run):

    Attributes:
        limits: the limits the run was given.
        image: the image it ran in.
        cases: for a run with cases, how each case ended, in order; the run's own
            status then says whether all of them got to run (``ok``).
        cpu_seconds: the CPU time (user and system) the container's cgroup counted
            from the program's start, all its processes together; ``None`` when the
            run was cut short by the host (interrupted, or a stuck sandbox killed).
        peak_memory: the container cgroup's memory high-water mark in bytes (the
            program with its interpreter, the supervisor's few MiB, and the page
            cache they read); ``None`` when not known.
        images: ``(mime type, bytes)`` of each image the program showed (PNG,
            JPEG or SVG), in order.
        image_positions: for each image, how many characters of stdout came first.
        files: what the program left under ``/sandbox/out``, by name relative to it.
        value: the JSON value of the variable asked for with ``returns``.
        returned: whether that value came back (a JSON ``null`` is a value); when it
            did not, a note says why.
        notes: one line for each thing the program sent that is not here, and why
            (an image past the caps, a value that is not JSON ...).
    """

    limits: Limits
    image: str
    cases: tuple[CaseEnding, ...] = ()
    cpu_seconds: float | None = None
    peak_memory: int | None = None
    images: tuple[tuple[str, bytes], ...] = ()
    image_positions: tuple[int, ...] = ()
    files: Mapping[str, bytes] = field(default_factory=dict)
    value: Any = None
    returned: bool = False
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the program exited with code 0 within its limits."""
        return self.status is RunStatus.OK

    def describe(self) -> str:
        """A short human phrase: ``ok``, ``error (exit 3)``, ``timeout after 2s`` ..."""
        if self.status is RunStatus.ERROR:
            return f"error (exit {self.exit_code})" if self.exit_code is not None else "error"
        if self.status is RunStatus.TIMEOUT:
            return f"timeout after {self.limits.timeout:g}s"
        if self.status is RunStatus.MEMORY_LIMIT:
            return f"memory limit ({format_size(self.limits.memory)}) exceeded"
        if self.status is RunStatus.SIGNALED and self.signal is not None:
            return f"killed by {signal_name(self.signal)}"
        return str(self.status)


class RunFailedError(CodedockError):
    """A ``%%sandbox`` cell's program did not end ok (raised after its output is shown).

    IPython shows only the one-line message: the program's own traceback is
    already in the cell's output, and a host traceback would say nothing useful.
    """

    def __init__(self, result: RunResult) -> None:
        self.result = result
        self._init_args = (result,)
        super().__init__(
            f"the sandboxed cell did not end ok: {result.describe()}; "
            "its output is above (use --no-raise-error to carry on)"
        )
