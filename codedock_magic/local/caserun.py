"""A run with cases in one started sandbox: the code once per case, each case's end as it comes.

The supervisor runs each case in a fresh process with a fresh work dir, under
the case's own deadline and memory cap, and resets the container between cases
(see :mod:`codedock_magic.supervisor.program`). The host sends a case's input
only once the previous case has ended, reads each case's output up to its end
frame, and keeps a deadline of its own over all of them, for a supervisor that
is stuck. Expected outputs never leave the host: judging is for the caller.
"""

from __future__ import annotations

import threading

from ..core.errors import EngineError, InvalidValueError
from ..core.limits import Limits, format_size
from ..core.request import CaseInput, OnCase, RunRequest
from ..core.result import CaseRun, RunResult, RunStatus
from ..engines.base import SANDBOX_UID
from ..supervisor.protocol import (
    CaseEnd,
    End,
    FrameKind,
    encode_case,
    encode_request,
    parse_case_end,
)
from .execution import SupervisedRun
from .output import CappedOutput
from .sandbox import SUPERVISOR_GRACE, Sandbox

__all__ = ["CASE_SLACK", "case_limits", "cases_never_started", "execute_cases", "total_time"]

#: Seconds each case may take beyond its timeout before the host calls the
#: supervisor stuck: starting the program, and the reset after it.
CASE_SLACK = 1.0


def case_limits(request: RunRequest, case: CaseInput) -> tuple[float, int]:
    """The timeout and memory ``case`` runs with, checked against its container.

    Raises:
        InvalidValueError: the case asks for more memory than its container has.
    """
    memory = request.profile.limits.memory
    if case.memory is not None and case.memory > memory:
        raise InvalidValueError(
            "memory",
            format_size(case.memory),
            f"at most the container's {format_size(memory)} (give the run the most any case needs)",
        )
    timeout = case.timeout if case.timeout is not None else request.limits.timeout
    return timeout, case.memory if case.memory is not None else memory


def total_time(request: RunRequest) -> float:
    """The longest a run with cases may take: every case's timeout and slack."""
    return sum(case_limits(request, case)[0] + CASE_SLACK for case in request.cases)


def execute_cases(
    sandbox: Sandbox,
    request: RunRequest,
    *,
    on_case: OnCase | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Run ``request``'s cases in ``sandbox`` (which it uses up); return every case's end."""
    return _Cases(sandbox, request, on_case, stop).execute()


def cases_never_started(request: RunRequest) -> RunResult:
    """The result of a run with cases stopped before it had a container."""
    run = _Cases(None, request, None, None)
    run.interrupted = True
    return run.result()


class _Cases(SupervisedRun):
    def __init__(
        self,
        sandbox: Sandbox | None,
        request: RunRequest,
        on_case: OnCase | None,
        stop: threading.Event | None,
    ) -> None:
        super().__init__(sandbox, stop)
        self.request = request
        self.on_case = on_case
        # Checked up front, so that a bad case starts nothing.
        self.given = [case_limits(request, case) for case in request.cases]
        self.done: list[CaseRun] = []
        self.stdout = CappedOutput(request.limits.output)
        self.stderr = CappedOutput(request.limits.output)
        self.complaints = bytearray()

    def execute(self) -> RunResult:
        total = total_time(self.request)
        header = encode_request(
            self.request.code,
            b"",
            total + SUPERVISOR_GRACE,
            SANDBOX_UID,
            cases=len(self.request.cases),
        )
        # The first case goes with the request; each next one after the last one's end.
        self.converse(header + self._case(0), total)
        return self.result()

    def _case(self, index: int) -> bytes:
        case = self.request.cases[index]
        timeout, memory = self.given[index]
        container = self.request.profile.limits.memory
        return encode_case(case.stdin, timeout, memory if memory < container else 0)

    def complain(self, payload: bytes) -> None:
        """Kept for the note of the cases the sandbox did not get to."""
        self.complaints += payload

    def take(self, kind: bytes, body: bytes) -> None:
        """A case's output, or its end (and then the next case goes out)."""
        if kind == FrameKind.STDOUT.value:
            self.stdout.feed(body)
        elif kind == FrameKind.STDERR.value:
            self.stderr.feed(body)
        elif kind == FrameKind.CASE.value:
            ended = parse_case_end(body)
            if ended is None or len(self.done) >= len(self.request.cases):
                raise EngineError(
                    f"the sandbox's supervisor sent a case end the host cannot read ({body!r})"
                )
            self._finish_case(ended)
            if len(self.done) < len(self.request.cases):
                self.send(self._case(len(self.done)))

    def _finish_case(self, ended: CaseEnd) -> None:
        timeout, memory = self.given[len(self.done)]
        status = {
            "timeout": RunStatus.TIMEOUT,
            "memory": RunStatus.MEMORY_LIMIT,
            "signal": RunStatus.SIGNALED,
        }.get(ended.how, RunStatus.OK if ended.number == 0 else RunStatus.ERROR)
        run = CaseRun(
            status=status,
            exit_code=ended.number if ended.how == "exit" else None,
            signal=ended.number if ended.how == "signal" else None,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            duration=ended.seconds,
            truncated=self.stdout.truncated or self.stderr.truncated,
            timeout=timeout,
            memory=memory,
        )
        self.done.append(run)
        self.stdout = CappedOutput(self.request.limits.output)
        self.stderr = CappedOutput(self.request.limits.output)
        if self.on_case is not None:
            self.on_case(len(self.done) - 1, run)

    def _why_unfinished(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.end is not None and self.end.how == "unclean":
            return (
                f"not run: the sandbox could not be made clean after the case before "
                f"({self.end.detail})"
            )
        if self.timed_out:
            return "not run to its end: the sandbox stopped answering and was killed"
        said = self.complaints.decode("utf-8", "replace").strip()[:200]
        return "not run to its end: the sandbox ended early" + (f" ({said})" if said else "")

    def result(self) -> RunResult:
        self.refuse_if_refused()
        cases = list(self.done)
        note = self._why_unfinished()
        for index in range(len(cases), len(self.request.cases)):
            timeout, memory = self.given[index]
            current = index == len(cases)
            cases.append(
                CaseRun(
                    status=RunStatus.INTERRUPTED,
                    exit_code=None,
                    signal=None,
                    stdout=self.stdout.text() if current else "",
                    stderr=self.stderr.text() if current else "",
                    duration=0.0,
                    truncated=False,
                    timeout=timeout,
                    memory=memory,
                    note=note,
                )
            )
        if len(self.done) == len(self.request.cases) and self.end == End("exit", 0):
            status, exit_code = RunStatus.OK, 0
        elif self.interrupted:
            status, exit_code = RunStatus.INTERRUPTED, None
        elif self.timed_out:
            status, exit_code = RunStatus.TIMEOUT, None
        else:
            status, exit_code = RunStatus.ERROR, None
        return RunResult(
            status=status,
            exit_code=exit_code,
            signal=None,
            stdout="",
            stderr=self.complaints.decode("utf-8", "replace"),
            duration=max(0.0, self.finished - self.started) if self.started else 0.0,
            truncated=False,
            limits=Limits.of(self.request.profile.limits, self.request.limits),
            image=self.request.profile.image,
            cases=tuple(cases),
            **self.usage_fields(),
        )
