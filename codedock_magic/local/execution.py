"""One run in a started sandbox: send the code, relay the output, say what happened.

The code and stdin go out as the supervisor's request. Output is read until the
supervisor's end frame (it ends the program itself at the timeout), the end of
the stream, the host's own deadline a little later, for a supervisor that is
stuck (then the container is killed from another thread while the output is
still read, so the kill cannot hang on output nobody drains) or a stop request. On every path
the channel is closed and the container's removal made sure of. :class:`SupervisedRun` is that
conversation, which a run with cases (:mod:`codedock_magic.local.caserun`) holds too.

The status comes from the supervisor's end frame, on a channel the program
cannot write to, and from the engine's watch whenever the run did not end well;
never from what the program prints.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from ..core.errors import EngineError
from ..core.limits import Limits
from ..core.request import OnImage, OnOutput, RunRequest
from ..core.result import RunResult, decide_status
from ..engines.base import SANDBOX_UID, STDOUT
from ..supervisor.protocol import (
    End,
    FrameDecoder,
    FrameKind,
    encode_extras,
    encode_request,
    parse_end,
    parse_usage,
)
from .output import CappedOutput
from .rich import RichOutput
from .sandbox import KILL_GRACE, SUPERVISOR_GRACE, Sandbox

__all__ = ["DIE_WAIT", "SupervisedRun", "execute", "never_started", "send_quietly"]

# How long the engine's exit report may trail the end of the output stream.
DIE_WAIT = 2.0
# How often the loop looks at the clock and the stop flag: the latency of an
# interrupt.
_POLL = 0.1
_SEND_INLINE = 64 * 1024


def execute(
    sandbox: Sandbox,
    request: RunRequest,
    *,
    on_output: OnOutput | None = None,
    stop: threading.Event | None = None,
    on_image: OnImage | None = None,
) -> RunResult:
    """Run ``request`` in ``sandbox`` (which it uses up) and return what happened."""
    return _Run(sandbox, request, on_output, stop, on_image).execute()


def never_started(request: RunRequest) -> RunResult:
    """The result of a run stopped before it had a container."""
    run = _Run(None, request, None, None)
    run.interrupted = True
    return run.result()


class SupervisedRun:
    """A conversation with one sandbox's supervisor, as a run and a run with cases both hold it.

    It sends the request, reads frames until the supervisor's end (``take`` gets
    each frame but the end and the usage report), kills the container past the
    host's deadline, ends at a stop request, and disposes of the container on
    every path. Subclasses say what a frame means and what the result is.
    """

    def __init__(self, sandbox: Sandbox | None, stop: threading.Event | None) -> None:
        self.sandbox = sandbox
        self.stop = stop
        self.timed_out = False
        self.interrupted = False
        self.stream_over = False
        self.end: End | None = None
        self.usage: tuple[float, int] | None = None
        self.started = 0.0
        self.finished = 0.0

    def take(self, kind: bytes, body: bytes) -> None:
        """One frame of the supervisor's (not its end or its usage report)."""
        raise NotImplementedError

    def complain(self, payload: bytes) -> None:
        """What the supervisor wrote on its stderr, which it does only when it fails."""
        raise NotImplementedError

    def converse(self, request: bytes, deadline: float) -> None:
        """Send ``request``, then read until the end, or ``deadline`` seconds from now."""
        sandbox = self.sandbox
        assert sandbox is not None
        try:
            if self.stop is not None and self.stop.is_set():
                self.interrupted = True
                return
            self.started = time.monotonic()
            self.send(request)
            self._pump(sandbox, self.started + deadline)
        except KeyboardInterrupt:
            # A caller that did not turn SIGINT into a stop flag.
            self.interrupted = True
        finally:
            self.finished = time.monotonic()
            self._dispose(sandbox)

    def send(self, data: bytes) -> None:
        """Write to the supervisor; a large write goes from a thread of its own."""
        assert self.sandbox is not None
        if len(data) <= _SEND_INLINE:
            self.sandbox.channel.send(data)
        else:
            # A large stdin can fill the stream before the supervisor reads it all.
            threading.Thread(target=send_quietly, args=(self.sandbox, data), daemon=True).start()

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
                threading.Thread(target=sandbox.kill, daemon=True).start()
                stop_at = now + KILL_GRACE
                continue
            chunks = sandbox.channel.receive(min(_POLL, stop_at - now))
            if chunks is None:
                self.stream_over = True
                return
            for stream, payload in chunks:
                if stream != STDOUT:
                    self.complain(payload)
                    continue
                for kind, body in frames.feed(payload):
                    if kind == FrameKind.END.value:
                        self.end = parse_end(body)
                        if self.end is not None and self.end.how == "deadline":
                            self.timed_out = True
                    elif kind == FrameKind.USAGE.value:
                        self.usage = parse_usage(body)
                    elif kind != FrameKind.READY.value:
                        self.take(kind, body)
            if self.end is not None:
                # The supervisor has relayed everything and is exiting; the container's
                # teardown (tens of ms) need not delay the result.
                self.stream_over = True
                return

    def _dispose(self, sandbox: Sandbox) -> None:
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
        """Raise when the supervisor would not run the request at all."""
        if self.end is not None and self.end.how == "refused":
            raise EngineError(
                f"the sandbox's supervisor refused the run ({self.end.detail}); the image "
                "may hold an incompatible codedock supervisor"
            )

    def usage_fields(self) -> dict[str, Any]:
        """``cpu_seconds`` and ``peak_memory`` for the result, ``None`` where not reported."""
        cpu, peak = self.usage if self.usage is not None else (None, None)
        return {"cpu_seconds": cpu, "peak_memory": peak or None}


class _Run(SupervisedRun):
    """The state of one run, from sending the code to the container's removal."""

    def __init__(
        self,
        sandbox: Sandbox | None,
        request: RunRequest,
        on_output: OnOutput | None,
        stop: threading.Event | None,
        on_image: OnImage | None = None,
    ) -> None:
        super().__init__(sandbox, stop)
        self.request = request
        self.on_output = on_output
        self.on_image = on_image
        self.rich = RichOutput()
        self.stdout_chars = 0
        self.stdout = CappedOutput(request.limits.output)
        self.stderr = CappedOutput(request.limits.output)

    def execute(self) -> RunResult:
        request = self.request
        extras = encode_extras(request.values, request.returns, request.files)
        self.converse(
            encode_request(
                request.code, request.stdin, request.limits.timeout, SANDBOX_UID, extras=extras
            ),
            request.limits.timeout + SUPERVISOR_GRACE,
        )
        return self.result()

    def complain(self, payload: bytes) -> None:
        """Shown as the program's stderr: it is why the run failed."""
        self.take(FrameKind.STDERR.value, payload)

    def take(self, kind: bytes, body: bytes) -> None:
        """Output, images, files and notes, each where it belongs."""
        if kind == FrameKind.DISPLAY.value:
            for mime, data in self.rich.feed_display(body, self.stdout_chars):
                if self.on_image is not None:
                    self.on_image(mime, data)
        elif kind == FrameKind.FILE.value:
            self.rich.add_file(body)
        elif kind == FrameKind.NOTE.value:
            self.rich.add_note(body)
        elif kind in (FrameKind.STDOUT.value, FrameKind.STDERR.value):
            name = "stdout" if kind == FrameKind.STDOUT.value else "stderr"
            text = (self.stdout if name == "stdout" else self.stderr).feed(body)
            if name == "stdout":
                self.stdout_chars += len(text)
            if text and self.on_output is not None:
                self.on_output(name, text)

    def result(self) -> RunResult:
        watch = self.sandbox.watch if self.sandbox is not None else None
        exit_code: int | None = None
        signal: int | None = None
        self.refuse_if_refused()
        if self.end is not None and self.end.how in ("exit", "signal"):
            if self.end.how == "signal":
                signal = self.end.number
            else:
                exit_code = self.end.number
        elif watch is not None and (watch.exit_code is not None or watch.signal is not None):
            # The engine's account, when the supervisor could not say.
            exit_code, signal = watch.exit_code, watch.signal
        elif self.stream_over and not (self.timed_out or self.interrupted):
            raise EngineError(
                "the sandbox ended with no report from its supervisor or the engine; was the "
                "Docker engine restarted? Run the cell again"
            )
        if self.timed_out or self.interrupted:
            exit_code = signal = None
        status = decide_status(
            exit_code=exit_code,
            signal=signal,
            oom_killed=watch is not None and watch.oom_killed,
            timed_out=self.timed_out,
            interrupted=self.interrupted,
        )
        if self.request.returns:
            self.rich.expect_value(self.request.returns)
        return RunResult(
            status=status,
            exit_code=exit_code,
            signal=signal,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            duration=max(0.0, self.finished - self.started) if self.started else 0.0,
            truncated=self.stdout.truncated or self.stderr.truncated,
            limits=Limits.of(self.request.profile.limits, self.request.limits),
            image=self.request.profile.image,
            images=tuple(self.rich.images),
            image_positions=tuple(self.rich.positions),
            files=dict(self.rich.files),
            value=self.rich.value,
            notes=tuple(self.rich.notes),
            **self.usage_fields(),
        )


def send_quietly(sandbox: Sandbox, data: bytes) -> None:
    """Send ``data`` to the sandbox, where a sandbox ended meanwhile is no failure."""
    with contextlib.suppress(OSError, ValueError):
        sandbox.channel.send(data)
