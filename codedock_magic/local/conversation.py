"""The conversation with a started sandbox's supervisor, and a run's side of it.

A conversation is chosen from the request before there is a sandbox: a run
(:class:`RunConversation`, here) or a run with cases
(:class:`~codedock_magic.local.caserun.CasesConversation`). Either says how long
it may take (``longest``), what it ends with when stopped before it had a sandbox
(``not_started()``), and runs in a sandbox it is handed (``execute(sandbox)``).

In a sandbox, :class:`SupervisedRun` sends the request and reads frames until
one of four things: the supervisor's end frame (it ends the program itself at
the timeout), the end of the stream, a stop request, or the host's own deadline
a little later, for a supervisor that is stuck. Past that deadline the container
is killed from another thread while the output is still read, so that the kill
cannot hang on output nobody drains. On every path the channel is closed and
the container's removal made sure of.

The status comes from the supervisor's end frame, on a channel the program
cannot write to, and from the engine's watch whenever the run did not end well;
never from what the program prints.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from ..core.errors import EngineError
from ..core.limits import Limits
from ..core.request import Listener, RunRequest
from ..core.result import RunResult, RunStatus, decide_status
from ..engines.base import STDOUT
from ..supervisor.protocol import (
    End,
    FrameDecoder,
    FrameKind,
    encode_extras,
    encode_request,
    parse_end,
    parse_usage,
)
from .display import DisplayOutput
from .output import CappedOutput
from .sandbox import KILL_GRACE, SUPERVISOR_GRACE, Sandbox

__all__ = ["DIE_WAIT", "SEND_INLINE", "RunConversation", "SupervisedRun", "send_quietly"]

# How long the engine's exit report may trail the end of the output stream.
DIE_WAIT = 2.0
# How often the loop looks at the clock and the stop flag: the latency of an
# interrupt.
_POLL = 0.1
#: What :meth:`SupervisedRun.send` writes at once; more goes from a thread of its own.
SEND_INLINE = 64 * 1024


class SupervisedRun:
    """A conversation with one sandbox's supervisor, as a run and a run with cases both hold it.

    It sends the request, reads frames until the supervisor's end (``on_frame``
    gets each frame but the end and the usage report; ``on_stderr`` what the
    supervisor writes on its stderr, which it does only when it fails), kills the
    container past the host's deadline, ends at a stop request, and disposes of
    the container on every path.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        stop: threading.Event | None,
        *,
        on_frame: Callable[[bytes, bytes], None],
        on_stderr: Callable[[bytes], None],
    ) -> None:
        self.sandbox = sandbox
        self.stop = stop
        self.on_frame = on_frame
        self.on_stderr = on_stderr
        self.timed_out = False
        self.interrupted = False
        self.stream_over = False
        self.end: End | None = None
        #: Why the host stopped reading: the supervisor's stream or a frame in it
        #: could not be read. Empty while all is well.
        self.broken = ""
        self.usage: tuple[float, int] | None = None
        self.started = 0.0
        self.finished = 0.0

    @property
    def duration(self) -> float:
        """Seconds from sending the request to the end of the conversation."""
        return max(0.0, self.finished - self.started) if self.started else 0.0

    def converse(self, request: bytes, deadline: float) -> None:
        """Send ``request``, then read until the end, or ``deadline`` seconds from now."""
        try:
            if self.stop is not None and self.stop.is_set():
                self.interrupted = True
                return
            self.started = time.monotonic()
            self.send(request)
            self._pump(self.started + deadline)
        except KeyboardInterrupt:
            # A caller that did not turn SIGINT into a stop flag.
            self.interrupted = True
        finally:
            self.finished = time.monotonic()
            self._dispose()

    def send(self, data: bytes) -> None:
        """Write to the supervisor; a large write goes from a thread of its own."""
        if len(data) <= SEND_INLINE:
            self.sandbox.channel.send(data)
        else:
            # A large stdin can fill the stream before the supervisor reads it all.
            threading.Thread(target=send_quietly, args=(self.sandbox, data), daemon=True).start()

    def abandon(self, why: str) -> None:
        """Stop reading: what the sandbox sent cannot be read (``why``); its container is killed."""
        if not self.broken:
            self.broken = why

    def _pump(self, deadline: float) -> None:
        sandbox = self.sandbox
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
                threading.Thread(target=sandbox.kill, daemon=True).start()
                stop_at = now + KILL_GRACE
                continue
            chunks = sandbox.channel.receive(min(_POLL, stop_at - now))
            if chunks is None:
                self.stream_over = True
                return
            for stream, payload in chunks:
                if stream != STDOUT:
                    self.on_stderr(payload)
                    continue
                for kind, body in frames.feed(payload):
                    if self.broken:
                        break
                    if kind == FrameKind.END.value:
                        self.end = parse_end(body)
                        if self.end is not None and self.end.how == "deadline":
                            self.timed_out = True
                    elif kind == FrameKind.USAGE.value:
                        self.usage = parse_usage(body)
                    elif kind != FrameKind.READY.value:
                        self.on_frame(kind, body)
                self.abandon(frames.broken)
            if self.broken:
                return
            if self.end is not None:
                # The supervisor has relayed everything and is exiting; the container's
                # teardown (tens of ms) need not delay the result.
                self.stream_over = True
                return

    def _dispose(self) -> None:
        sandbox = self.sandbox
        if self.stream_over and self.end is not None:
            if self.end != End("exit", 0):
                # A memory kill is only known from the engine's watch.
                sandbox.watch.died.wait(DIE_WAIT)
            # It has exited and removes itself; confirming that need not delay the result.
            sandbox.end()
            return
        if self.stream_over:
            sandbox.watch.died.wait(DIE_WAIT)
        sandbox.end(kill=not self.stream_over, wait=True)

    def refuse_if_refused(self) -> None:
        """Raise when the supervisor would not run the request at all, or itself failed."""
        if self.end is not None and self.end.how == "failed":
            raise EngineError(
                f"the sandbox's supervisor failed ({self.end.detail[:200]}); nothing of this "
                "is the program's doing. Run it again, and report it if it persists"
            )
        if self.end is not None and self.end.how == "refused":
            raise EngineError(
                f"the sandbox's supervisor refused the run ({self.end.detail}); the image "
                "may hold an incompatible codedock supervisor"
            )

    def usage_fields(self) -> dict[str, Any]:
        """``cpu_seconds`` and ``peak_memory`` for the result, ``None`` where not reported."""
        cpu, peak = self.usage if self.usage is not None else (None, None)
        return {"cpu_seconds": cpu, "peak_memory": peak or None}


class RunConversation:
    """One run, from sending the code to the container's removal.

    Args:
        request: the run; it has no cases.
        listener: hears its output and images as they come.
        stop: once set, the run ends with status ``interrupted``.
    """

    def __init__(
        self, request: RunRequest, listener: Listener, stop: threading.Event | None = None
    ) -> None:
        self.request = request
        self.listener = listener
        self.stop = stop
        self.longest = request.limits.timeout
        self.display = DisplayOutput()
        self.stdout_chars = 0
        self.stdout = CappedOutput(request.limits.output)
        self.stderr = CappedOutput(request.limits.output)

    def not_started(self) -> RunResult:
        """The result of the run stopped before it had a sandbox."""
        return self._result(RunStatus.INTERRUPTED, None, None, 0.0, {})

    def execute(self, sandbox: Sandbox) -> RunResult:
        """Run in ``sandbox``, which it uses up, and return what happened."""
        request = self.request
        extras = encode_extras(request.values, request.returns, request.files)
        talk = SupervisedRun(
            sandbox,
            self.stop,
            on_frame=self.on_frame,
            # What the supervisor writes on its stderr is why the run failed: it is
            # shown as the program's stderr.
            on_stderr=lambda payload: self.on_frame(FrameKind.STDERR.value, payload),
        )
        talk.converse(
            encode_request(
                request.code, request.stdin, request.limits.timeout, sandbox.uid, extras=extras
            ),
            request.limits.timeout + SUPERVISOR_GRACE,
        )
        talk.refuse_if_refused()
        watch = sandbox.watch
        exit_code: int | None = None
        signal: int | None = None
        if talk.end is not None and talk.end.how in ("exit", "signal"):
            if talk.end.how == "signal":
                signal = talk.end.number
            else:
                exit_code = talk.end.number
        elif watch.exit_code is not None or watch.signal is not None:
            # The engine's account (it decodes its own exit codes), when the
            # supervisor could not say.
            exit_code, signal = watch.exit_code, watch.signal
            if exit_code is not None and not (talk.timed_out or talk.interrupted):
                # Only the supervisor knows the program's exit code: this one is
                # the sandbox's (a runtime that crashed, such as gVisor short of
                # host pids, or a supervisor that could not start).
                self.display.budget.add(
                    f"the sandbox ended with exit code {exit_code} and no report from its "
                    "supervisor: the code is the sandbox's, not necessarily the program's"
                )
        elif talk.stream_over and not (talk.timed_out or talk.interrupted):
            raise EngineError(
                "the sandbox ended with no report from its supervisor or the engine; was the "
                "Docker engine restarted? Run the cell again"
            )
        if talk.timed_out or talk.interrupted:
            exit_code = signal = None
        if talk.broken:
            self.display.budget.add(talk.broken)
        status = decide_status(
            exit_code=exit_code,
            signal=signal,
            oom_killed=watch.oom_killed,
            timed_out=talk.timed_out,
            interrupted=talk.interrupted,
        )
        return self._result(status, exit_code, signal, talk.duration, talk.usage_fields())

    def on_frame(self, kind: bytes, body: bytes) -> None:
        """Output, images, files and notes, each where it belongs."""
        if kind == FrameKind.DISPLAY.value:
            for mime, data in self.display.feed_display(body, self.stdout_chars):
                self.listener.image(mime, data)
        elif kind == FrameKind.FILE.value:
            self.display.add_file(body)
        elif kind == FrameKind.NOTE.value:
            self.display.add_note(body)
        elif kind in (FrameKind.STDOUT.value, FrameKind.STDERR.value):
            name = "stdout" if kind == FrameKind.STDOUT.value else "stderr"
            text = (self.stdout if name == "stdout" else self.stderr).feed(body)
            if name == "stdout":
                self.stdout_chars += len(text)
            if text:
                self.listener.output(name, text)

    def _result(
        self,
        status: RunStatus,
        exit_code: int | None,
        signal: int | None,
        duration: float,
        usage: dict[str, Any],
    ) -> RunResult:
        if self.request.returns:
            self.display.expect_value(self.request.returns)
        return RunResult(
            status=status,
            exit_code=exit_code,
            signal=signal,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            duration=duration,
            truncated=self.stdout.truncated or self.stderr.truncated,
            limits=Limits.of(self.request.profile.limits, self.request.limits),
            image=self.request.profile.image,
            images=tuple(self.display.images),
            image_positions=tuple(self.display.positions),
            files=dict(self.display.files),
            value=self.display.value,
            returned=self.display.has_value,
            notes=tuple(self.display.final_notes()),
            **usage,
        )


def send_quietly(sandbox: Sandbox, data: bytes) -> None:
    """Send ``data`` to the sandbox, where a sandbox ended meanwhile is no failure."""
    with contextlib.suppress(OSError, ValueError):
        sandbox.channel.send(data)
