"""A run with cases in one started sandbox: the code once per case, each case's end as it comes.

The supervisor runs each case in a fresh process with a fresh work dir, under
the case's own deadline and memory cap, and resets the container between cases
(see :mod:`codedock_magic.supervisor.program`). The host keeps the next case's
input waiting in the stream while one runs, when both are small, and sends it
once the previous case has ended otherwise; it reads each case's output up to
its end frame, and keeps a deadline of its own over all of them, for a
supervisor that is stuck. Expected outputs never leave the host: judging is for
the caller.
"""

from __future__ import annotations

import threading
from typing import Any

from ..core.budget import CheckBudget
from ..core.errors import InvalidValueError
from ..core.limits import Limits, format_size
from ..core.request import CaseInput, Listener, RunRequest
from ..core.result import CaseEnding, RunResult, RunStatus, case_status, cases_not_run
from ..supervisor.protocol import (
    CaseEnd,
    End,
    FrameKind,
    encode_case,
    encode_request,
    parse_case_end,
)
from .conversation import SEND_INLINE, SupervisedRun
from .output import CappedOutput
from .sandbox import SUPERVISOR_GRACE, Sandbox

__all__ = ["CASE_SLACK", "CasesConversation", "case_limits"]

#: Seconds each case may take beyond its timeout before the host calls the
#: supervisor stuck: starting the program, and the reset after it.
CASE_SLACK = 1.0
#: What is kept of the supervisor's own stderr (it writes there only when it fails).
_COMPLAINTS = 16 * 1024
#: A case is sent while the one before it still runs only when both are at most
#: this long: the stream holds them without the supervisor reading, so the send
#: never waits on a program (whose output this thread must go on reading). The
#: supervisor then finds the next case there as soon as it has reset the sandbox.
_AHEAD = 16 * 1024


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


class CasesConversation:
    """One run with cases, from sending the code to the container's removal.

    Args:
        request: the run, with its cases.
        listener: hears each case's end as it comes.
        stop: once set, the run ends with status ``interrupted``.

    Raises:
        InvalidValueError: a case asks for more memory than its container has
            (checked here, so that a bad case starts nothing).
    """

    def __init__(
        self, request: RunRequest, listener: Listener, stop: threading.Event | None = None
    ) -> None:
        self.request = request
        self.listener = listener
        self.stop = stop
        #: Each case's own (timeout, memory).
        self.case_limits = [case_limits(request, case) for case in request.cases]
        self.longest = sum(timeout + CASE_SLACK for timeout, _ in self.case_limits)
        self.done: list[CaseEnding] = []
        #: All cases together keep one output cap per stream (see CheckBudget).
        self.budget = CheckBudget(request.limits.output)
        self.stdout = CappedOutput(self.budget.case_cap("stdout"))
        self.stderr = CappedOutput(self.budget.case_cap("stderr"))
        self.complaints = bytearray()
        self._talk: SupervisedRun | None = None
        #: The length of each case sent so far.
        self._sent: list[int] = []

    def not_started(self) -> RunResult:
        """The result of the run stopped before it had a sandbox: no case ran."""
        return self._result(RunStatus.INTERRUPTED, None, "interrupted", 0.0, {})

    def execute(self, sandbox: Sandbox) -> RunResult:
        """Run every case in ``sandbox``, which it uses up; return every case's end."""
        header = encode_request(
            self.request.code,
            b"",
            self.longest + SUPERVISOR_GRACE,
            sandbox.uid,
            cases=len(self.request.cases),
        )
        talk = self._talk = SupervisedRun(
            sandbox, self.stop, on_frame=self.on_frame, on_stderr=self._complain
        )
        # The first case goes with the request (and the second with it, if small);
        # each next one as the one before it ends.
        talk.converse(header + self._due(len(header)), self.longest)
        talk.refuse_if_refused()
        if len(self.done) == len(self.request.cases) and talk.end == End("exit", 0):
            status, exit_code = RunStatus.OK, 0
        elif talk.interrupted:
            status, exit_code = RunStatus.INTERRUPTED, None
        elif talk.timed_out:
            status, exit_code = RunStatus.TIMEOUT, None
        else:
            status, exit_code = RunStatus.ERROR, None
        return self._result(
            status, exit_code, self._why_unfinished(talk), talk.duration, talk.usage_fields()
        )

    def _complain(self, data: bytes) -> None:
        room = _COMPLAINTS - len(self.complaints)
        if room > 0:
            self.complaints += data[:room]

    def _case(self, index: int) -> bytes:
        case = self.request.cases[index]
        timeout, memory = self.case_limits[index]
        container = self.request.profile.limits.memory
        return encode_case(case.stdin, timeout, memory if memory < container else 0)

    def _due(self, before: int = 0) -> bytes:
        """The cases to send now: the one the supervisor runs next, then one ahead if small.

        One ahead goes only in a write made at once (with the ``before`` bytes that
        precede it): a write from a thread could still be under way when the next
        one starts, and the two would interleave.
        """
        out = b""
        total, running = len(self.request.cases), len(self.done)
        while len(self._sent) < total and len(self._sent) <= running + 1:
            payload = self._case(len(self._sent))
            ahead = len(self._sent) > running
            if ahead and (
                max(len(payload), self._sent[running]) > _AHEAD
                or before + len(out) + len(payload) > SEND_INLINE
            ):
                break
            self._sent.append(len(payload))
            out += payload
        return out

    def on_frame(self, kind: bytes, body: bytes) -> None:
        """A case's output, or its end (and then the next case goes out)."""
        if kind == FrameKind.STDOUT.value:
            self.stdout.feed(body)
        elif kind == FrameKind.STDERR.value:
            self.stderr.feed(body)
        elif kind == FrameKind.CASE.value:
            ended = parse_case_end(body)
            if ended is None or len(self.done) >= len(self.request.cases):
                if self._talk is not None:
                    self._talk.abandon(
                        "the sandbox's supervisor sent a case end the host cannot read "
                        f"({body[:60]!r})"
                    )
                return
            ending = self._finish_case(ended)
            # Before the listener: the supervisor need not wait for the judging.
            due = self._due()
            if due and self._talk is not None:
                self._talk.send(due)
            self.listener.case(len(self.done) - 1, ending)

    def _finish_case(self, ended: CaseEnd) -> CaseEnding:
        timeout, memory = self.case_limits[len(self.done)]
        ending = CaseEnding(
            status=case_status(ended.how, ended.number),
            exit_code=ended.number if ended.how == "exit" else None,
            signal=ended.number if ended.how == "signal" else None,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            duration=ended.seconds,
            truncated=self.stdout.truncated or self.stderr.truncated,
            timeout=timeout,
            memory=memory,
        )
        self.done.append(ending)
        self.budget.spend("stdout", self.stdout.kept)
        self.budget.spend("stderr", self.stderr.kept)
        self.stdout = CappedOutput(self.budget.case_cap("stdout"))
        self.stderr = CappedOutput(self.budget.case_cap("stderr"))
        return ending

    def _why_unfinished(self, talk: SupervisedRun) -> str:
        if talk.interrupted:
            return "interrupted"
        if talk.broken:
            return f"not run to its end: {talk.broken}"
        if talk.end is not None and talk.end.how == "unclean":
            return (
                f"not run: the sandbox could not be made clean after the case before "
                f"({talk.end.detail})"
            )
        if talk.timed_out:
            return "not run to its end: the sandbox stopped answering and was killed"
        said = self.complaints.decode("utf-8", "replace").strip()[:200]
        return "not run to its end: the sandbox ended early" + (f" ({said})" if said else "")

    def _result(
        self,
        status: RunStatus,
        exit_code: int | None,
        note: str,
        duration: float,
        usage: dict[str, Any],
    ) -> RunResult:
        unfinished = cases_not_run(
            self.case_limits[len(self.done) :],
            note,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
        )
        return RunResult(
            status=status,
            exit_code=exit_code,
            signal=None,
            stdout="",
            stderr=self.complaints.decode("utf-8", "replace"),
            duration=duration,
            truncated=False,
            limits=Limits.of(self.request.profile.limits, self.request.limits),
            image=self.request.profile.image,
            cases=(*self.done, *unfinished),
            **usage,
        )
