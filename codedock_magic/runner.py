"""Run a snippet of untrusted Python in a fresh sandbox container and say what happened.

The life of one run, and why it is ordered so:

1. create the container (auto-remove, hardened, labelled) with the supervisor as
   its main process;
2. subscribe to its events, before it can die, for the exit code and a memory kill;
3. attach to its stdin/stdout/stderr and send the code and stdin, keeping the socket
   open: when this process dies, the engine closes the container's stdin and the
   supervisor ends the run (the dead-man's switch);
4. start it, read output until the stream ends or the host's own deadline passes
   (then kill it from another thread while still reading, so the kill cannot hang
   on output nobody drains);
5. on every path, shut the socket down and make sure the container is removed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .engine import SANDBOX_UID, Engine, SandboxSpec, Watch, default_engine
from .errors import InvalidValueError
from .framing import ENGINE_STDOUT, EngineFrames, SupervisorFrames, encode_request
from .labels import make_labels
from .limits import Limits
from .output import CappedOutput
from .result import RunResult, decide_status

__all__ = ["DEFAULT_IMAGE", "OnOutput", "run", "supervisor_command"]

#: The image runs use unless told otherwise (built by images/pybuntu/build.sh).
DEFAULT_IMAGE = "codedock/pybuntu:latest"

#: ``on_output(stream, text)``: ``stream`` is ``"stdout"`` or ``"stderr"``.
OnOutput = Callable[[str, str], None]

# The supervisor's own deadline trails the host's, so that it only acts when the
# host is stuck, never racing the host's more informative kill.
SUPERVISOR_GRACE = 2.0
# How long to keep reading after the kill, and to wait for the engine's removal.
KILL_GRACE = 3.0
REMOVE_WAIT = 5.0
_SEND_INLINE = 64 * 1024
# A signal meant for the main thread (Jupyter's interrupt) may be delivered to
# another thread; the main thread only notices once it returns from select.
_POLL = 0.1
_RECV = 256 * 1024

_SUPERVISOR_SOURCE = Path(__file__).with_name("_supervisor.py").read_text(encoding="utf-8")


def supervisor_command() -> list[str]:
    """The container command: the supervisor, run by the image's own python3."""
    return ["python3", "-I", "-S", "-c", _SUPERVISOR_SOURCE]


def _as_bytes(value: str | bytes, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise InvalidValueError(name, type(value).__name__, "str or bytes")


def run(
    code: str | bytes,
    *,
    stdin: str | bytes | None = None,
    limits: Limits | None = None,
    image: str = DEFAULT_IMAGE,
    on_output: OnOutput | None = None,
    engine: Engine | None = None,
) -> RunResult:
    """Run ``code`` with ``python3`` in a fresh sandbox container and return what happened.

    Args:
        code: the Python source to run.
        stdin: what the program reads on standard input (none when omitted).
        limits: resource limits; :class:`Limits` defaults when omitted.
        image: an image with ``python3``; never pulled.
        on_output: called with ``("stdout" | "stderr", text)`` as output arrives,
            up to half the output cap per stream.
        engine: the engine to use; the Docker engine from the environment by default.

    A KeyboardInterrupt while the code runs stops it and returns a result with
    status ``interrupted``. The container is removed on every path.

    Raises:
        InvalidValueError: ``code`` or ``stdin`` is not text or bytes.
        EngineError: the engine is unreachable, the image is missing, or the engine
            failed; no container is left behind.
    """
    limits = limits if limits is not None else Limits()
    payload_code = _as_bytes(code, "code")
    payload_stdin = _as_bytes(stdin if stdin is not None else b"", "stdin")
    spec = SandboxSpec(
        image=image,
        command=supervisor_command(),
        limits=limits,
        labels=make_labels(limits.timeout + SUPERVISOR_GRACE),
    )
    return _Run(engine or default_engine(), spec, on_output).execute(payload_code, payload_stdin)


class _Run:
    """The state of one run between creation and removal."""

    def __init__(self, engine: Engine, spec: SandboxSpec, on_output: OnOutput | None) -> None:
        self.engine = engine
        self.spec = spec
        self.on_output = on_output
        self.stdout = CappedOutput(spec.limits.output)
        self.stderr = CappedOutput(spec.limits.output)
        self.timed_out = False
        self.interrupted = False
        self.ended = False
        self.trailer: tuple[str, int] | None = None
        self.started = 0.0
        self.finished = 0.0

    def execute(self, code: bytes, stdin: bytes) -> RunResult:
        limits = self.spec.limits
        container = self.engine.create(self.spec)
        watch: Watch | None = None
        sock: socket.socket | None = None
        try:
            watch = self.engine.watch(container)
            sock = self.engine.attach(container)
            request = encode_request(code, stdin, limits.timeout + SUPERVISOR_GRACE, SANDBOX_UID)
            if len(request) <= _SEND_INLINE:
                sock.sendall(request)
            else:
                # A large stdin could fill the socket before the container starts reading.
                threading.Thread(target=_send_quietly, args=(sock, request), daemon=True).start()
            self.engine.start(container)
            self.started = time.monotonic()
            self._pump(sock, container, self.started + limits.timeout)
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            self.finished = time.monotonic()
            self._dispose(container, sock, watch)
        return self._result(watch)

    def _pump(self, sock: socket.socket, container: str, deadline: float) -> None:
        engine_frames = EngineFrames()
        supervisor_frames = SupervisorFrames()
        stop_at = deadline
        while True:
            now = time.monotonic()
            if now >= stop_at:
                if self.timed_out:
                    return
                self.timed_out = True
                threading.Thread(target=self.engine.kill, args=(container,), daemon=True).start()
                stop_at = now + KILL_GRACE
                continue
            ready, _, _ = select.select([sock], [], [], min(_POLL, stop_at - now))
            if not ready:
                continue
            data = sock.recv(_RECV)
            if not data:
                self.ended = True
                return
            for stream, payload in engine_frames.feed(data):
                if stream == ENGINE_STDOUT:
                    for kind, body in supervisor_frames.feed(payload):
                        self._take(kind, body)
                else:
                    # The supervisor's own complaints (it never writes there otherwise).
                    self._take(b"e", payload)

    def _take(self, kind: object, body: bytes) -> None:
        if kind == b"x":
            word, _, number = body.decode("ascii", "replace").partition(" ")
            if word in ("exit", "signal") and number.isdigit():
                self.trailer = (word, int(number))
            return
        name, sink = ("stdout", self.stdout) if kind == b"o" else ("stderr", self.stderr)
        text = sink.feed(body)
        if text and self.on_output is not None:
            self.on_output(name, text)

    def _dispose(self, container: str, sock: socket.socket | None, watch: Watch | None) -> None:
        removed = False
        try:
            if sock is not None:
                # close() alone leaves the connection open inside the HTTP response.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            if not self.ended:
                self.engine.kill(container)
            if watch is not None:
                removed = watch.removed.wait(REMOVE_WAIT)
        finally:
            if not removed:
                self.engine.remove(container)
            if watch is not None:
                watch.close()

    def _result(self, watch: Watch | None) -> RunResult:
        exit_code: int | None = None
        signal: int | None = None
        engine_code = watch.exit_code if watch is not None else None
        if self.trailer is not None:
            word, number = self.trailer
            if word == "signal":
                signal = number
            else:
                exit_code = number
        elif engine_code is not None:
            if engine_code > 128:
                signal = engine_code - 128
            else:
                exit_code = engine_code
        if self.timed_out or self.interrupted:
            exit_code = signal = None
        status = decide_status(
            exit_code=exit_code,
            signal=signal,
            oom_killed=watch is not None and watch.oom_killed,
            timed_out=self.timed_out,
            interrupted=self.interrupted,
        )
        return RunResult(
            status=status,
            exit_code=exit_code,
            signal=signal,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            duration=max(0.0, self.finished - self.started) if self.started else 0.0,
            truncated=self.stdout.truncated or self.stderr.truncated,
            limits=self.spec.limits,
            image=self.spec.image,
        )


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)
