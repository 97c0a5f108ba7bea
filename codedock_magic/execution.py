"""One run in a started sandbox: send the code, relay the output, say what happened.

The code and stdin go out as the supervisor's request. Output is read until the
supervisor's end frame (it ends the program itself at the timeout), the end of
the stream, the host's own deadline a little later, for a supervisor that is
stuck (then the container is killed from another thread while the output is
still read, so the kill cannot hang on output nobody drains) or a stop request. On every path the
channel is closed and the container's removal made sure of.

The status comes from the supervisor's end frame, on a channel the program
cannot write to, and from the engine's watch whenever the run did not end well;
never from what the program prints.
"""

from __future__ import annotations

import contextlib
import threading
import time

from .engines.base import SANDBOX_UID, STDOUT
from .errors import EngineError
from .limits import Limits
from .output import CappedOutput
from .request import OnImage, OnOutput, RunRequest
from .result import RunResult, decide_status
from .rich import RichOutput
from .sandbox import KILL_GRACE, SUPERVISOR_GRACE, Sandbox
from .supervisor.protocol import (
    End,
    FrameDecoder,
    FrameKind,
    encode_extras,
    encode_request,
    parse_end,
    parse_usage,
)

__all__ = ["DIE_WAIT", "execute", "never_started", "send_quietly"]

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


class _Run:
    """The state of one run, from sending the code to the container's removal."""

    def __init__(
        self,
        sandbox: Sandbox | None,
        request: RunRequest,
        on_output: OnOutput | None,
        stop: threading.Event | None,
        on_image: OnImage | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.request = request
        self.on_output = on_output
        self.on_image = on_image
        self.rich = RichOutput()
        self.stdout_chars = 0
        self.stop = stop
        self.stdout = CappedOutput(request.limits.output)
        self.stderr = CappedOutput(request.limits.output)
        self.timed_out = False
        self.interrupted = False
        self.stream_over = False
        self.end: End | None = None
        self.usage: tuple[float, int] | None = None
        self.started = 0.0
        self.finished = 0.0

    def execute(self) -> RunResult:
        sandbox = self.sandbox
        assert sandbox is not None
        limits = self.request.limits
        request = self.request
        extras = encode_extras(request.values, request.returns, request.files)
        wire = encode_request(
            request.code, request.stdin, limits.timeout, SANDBOX_UID, extras=extras
        )
        try:
            if self.stop is not None and self.stop.is_set():
                self.interrupted = True
                return self.result()
            self.started = time.monotonic()
            if len(wire) <= _SEND_INLINE:
                sandbox.channel.send(wire)
            else:
                # A large stdin can fill the stream before the supervisor reads it all.
                threading.Thread(target=send_quietly, args=(sandbox, wire), daemon=True).start()
            self._pump(sandbox, self.started + limits.timeout + SUPERVISOR_GRACE)
        except KeyboardInterrupt:
            # A caller that did not turn SIGINT into a stop flag.
            self.interrupted = True
        finally:
            self.finished = time.monotonic()
            self._dispose(sandbox)
        return self.result()

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
                if stream == STDOUT:
                    for kind, body in frames.feed(payload):
                        self._take(kind, body)
                else:
                    # The supervisor's own complaints (it never writes there otherwise).
                    self._take(FrameKind.STDERR.value, payload)
            if self.end is not None:
                # The supervisor has relayed everything and is exiting; the container's
                # teardown (tens of ms) need not delay the result.
                self.stream_over = True
                return

    def _take(self, kind: bytes, body: bytes) -> None:
        if kind == FrameKind.READY.value:
            return
        if kind == FrameKind.USAGE.value:
            self.usage = parse_usage(body)
            return
        if kind == FrameKind.DISPLAY.value:
            for mime, data in self.rich.feed_display(body, self.stdout_chars):
                if self.on_image is not None:
                    self.on_image(mime, data)
            return
        if kind == FrameKind.FILE.value:
            self.rich.add_file(body)
            return
        if kind == FrameKind.NOTE.value:
            self.rich.add_note(body)
            return
        if kind == FrameKind.END.value:
            self.end = parse_end(body)
            if self.end is not None and self.end.how == "deadline":
                self.timed_out = True
            return
        name, sink = (
            ("stdout", self.stdout)
            if kind == FrameKind.STDOUT.value
            else (
                "stderr",
                self.stderr,
            )
        )
        text = sink.feed(body)
        if name == "stdout":
            self.stdout_chars += len(text)
        if text and self.on_output is not None:
            self.on_output(name, text)

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

    def result(self) -> RunResult:
        watch = self.sandbox.watch if self.sandbox is not None else None
        exit_code: int | None = None
        signal: int | None = None
        engine_code = watch.exit_code if watch is not None else None
        if self.end is not None and self.end.how == "refused":
            raise EngineError(
                f"the sandbox's supervisor refused the run ({self.end.detail}); the image "
                "may hold an incompatible codedock supervisor"
            )
        if self.end is not None and self.end.how in ("exit", "signal"):
            if self.end.how == "signal":
                signal = self.end.number
            else:
                exit_code = self.end.number
        elif engine_code is not None:
            if engine_code > 128:
                signal = engine_code - 128
            else:
                exit_code = engine_code
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
        wanted = self.request.returns
        if (
            wanted
            and not self.rich.has_value
            and not any(note.startswith(f"--return {wanted}:") for note in self.rich.notes)
        ):
            self.rich.notes.append(
                f"--return {wanted}: nothing came back (the program did not get to its end)"
            )
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
            cpu_seconds=self.usage[0] if self.usage else None,
            peak_memory=self.usage[1] if self.usage and self.usage[1] else None,
            images=tuple(self.rich.images),
            image_positions=tuple(self.rich.positions),
            files=dict(self.rich.files),
            value=self.rich.value,
            notes=tuple(self.rich.notes),
        )


def send_quietly(sandbox: Sandbox, data: bytes) -> None:
    """Send ``data`` to the sandbox, where a sandbox ended meanwhile is no failure."""
    with contextlib.suppress(OSError, ValueError):
        sandbox.channel.send(data)
