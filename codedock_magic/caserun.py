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
import time

from .engines.base import SANDBOX_UID, STDOUT
from .errors import EngineError, InvalidValueError
from .execution import DIE_WAIT, send_quietly
from .limits import Limits, format_size
from .output import CappedOutput
from .request import CaseInput, OnCase, RunRequest
from .result import CaseRun, RunResult, RunStatus
from .sandbox import KILL_GRACE, SUPERVISOR_GRACE, Sandbox
from .supervisor.protocol import (
    CaseEnd,
    End,
    FrameDecoder,
    FrameKind,
    encode_case,
    encode_request,
    parse_case_end,
    parse_end,
    parse_usage,
)

__all__ = ["CASE_SLACK", "case_limits", "cases_never_started", "execute_cases", "total_time"]

#: Seconds each case may take beyond its timeout before the host calls the
#: supervisor stuck: starting the program, and the reset after it.
CASE_SLACK = 1.0
_POLL = 0.1
_SEND_INLINE = 64 * 1024


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


class _Cases:
    def __init__(
        self,
        sandbox: Sandbox | None,
        request: RunRequest,
        on_case: OnCase | None,
        stop: threading.Event | None,
    ) -> None:
        self.sandbox = sandbox
        self.request = request
        self.on_case = on_case
        self.stop = stop
        # Checked up front, so that a bad case starts nothing.
        self.given = [case_limits(request, case) for case in request.cases]
        self.done: list[CaseRun] = []
        self.stdout = CappedOutput(request.limits.output)
        self.stderr = CappedOutput(request.limits.output)
        self.complaints = bytearray()
        self.end: End | None = None
        self.usage: tuple[float, int] | None = None
        self.interrupted = False
        self.timed_out = False
        self.stream_over = False
        self.started = 0.0
        self.finished = 0.0

    def execute(self) -> RunResult:
        sandbox = self.sandbox
        assert sandbox is not None
        total = total_time(self.request)
        wire = encode_request(
            self.request.code,
            b"",
            total + SUPERVISOR_GRACE,
            SANDBOX_UID,
            cases=len(self.request.cases),
        )
        try:
            if self.stop is not None and self.stop.is_set():
                self.interrupted = True
                return self.result()
            self.started = time.monotonic()
            sandbox.channel.send(wire)
            if self.request.cases:
                self._send_case(sandbox, 0)
            self._pump(sandbox, self.started + total)
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            self.finished = time.monotonic()
            self._dispose(sandbox)
        return self.result()

    def _send_case(self, sandbox: Sandbox, index: int) -> None:
        case = self.request.cases[index]
        timeout, memory = self.given[index]
        container = self.request.profile.limits.memory
        data = encode_case(case.stdin, timeout, memory if memory < container else 0)
        if len(data) <= _SEND_INLINE:
            sandbox.channel.send(data)
        else:
            # A large stdin can fill the stream before the supervisor reads it all.
            threading.Thread(target=send_quietly, args=(sandbox, data), daemon=True).start()

    def _pump(self, sandbox: Sandbox, deadline: float) -> None:
        frames = FrameDecoder()
        stop_at = deadline
        while True:
            if self.stop is not None and self.stop.is_set():
                self.interrupted = True
                return
            now = time.monotonic()
            if now >= stop_at:
                if self.timed_out:
                    return
                self.timed_out = True
                threading.Thread(
                    target=sandbox.engine.kill, args=(sandbox.container,), daemon=True
                ).start()
                stop_at = now + KILL_GRACE
                continue
            chunks = sandbox.channel.receive(min(_POLL, stop_at - now))
            if chunks is None:
                self.stream_over = True
                return
            for stream, payload in chunks:
                if stream != STDOUT:
                    self.complaints += payload
                    continue
                for kind, body in frames.feed(payload):
                    self._take(sandbox, kind, body)
            if self.end is not None:
                self.stream_over = True
                return

    def _take(self, sandbox: Sandbox, kind: bytes, body: bytes) -> None:
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
                self._send_case(sandbox, len(self.done))
        elif kind == FrameKind.USAGE.value:
            self.usage = parse_usage(body)
        elif kind == FrameKind.END.value:
            self.end = parse_end(body)

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

    def _dispose(self, sandbox: Sandbox) -> None:
        if self.stream_over and self.end == End("exit", 0):
            sandbox.end()
            return
        if self.stream_over:
            sandbox.watch.died.wait(DIE_WAIT)
        sandbox.end(kill=not self.stream_over, wait=True)

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
        if self.end is not None and self.end.how == "refused":
            raise EngineError(
                f"the sandbox's supervisor refused the run ({self.end.detail}); the image "
                "may hold an incompatible codedock supervisor"
            )
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
            cpu_seconds=self.usage[0] if self.usage else None,
            peak_memory=self.usage[1] if self.usage and self.usage[1] else None,
        )
