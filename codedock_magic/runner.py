"""Run a snippet of untrusted Python in a fresh sandbox container and say what happened.

The life of one run, and why it is ordered so:

1. create the container (auto-remove, hardened, labelled) with the supervisor as
   its main process;
2. subscribe to its events, before it can die, for the exit code and a memory kill;
3. attach to its stdin/stdout/stderr and keep that socket open: when this process
   dies, the engine closes the container's stdin and the supervisor ends the run
   (the dead-man's switch);
4. start it: the supervisor now waits for its code. Steps 1-4 make a
   :class:`Sandbox`, which a pool can do ahead of time;
5. send the code and stdin, read output until the stream ends or the host's own
   deadline passes (then kill it from another thread while still reading, so the
   kill cannot hang on output nobody drains);
6. on every path, shut the socket down and make sure the container is removed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .engine import SANDBOX_UID, Engine, SandboxSpec, Watch, default_engine
from .errors import EngineError, InvalidValueError
from .framing import ENGINE_STDOUT, EngineFrames, SupervisorFrames, encode_request
from .labels import make_labels
from .limits import Limits
from .output import CappedOutput
from .result import RunResult, decide_status
from .watchdog import ensure_watchdog

__all__ = [
    "DEFAULT_IMAGE",
    "OnOutput",
    "Sandbox",
    "SandboxSource",
    "run",
    "start_sandbox",
    "supervisor_command",
]

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
# How long the engine's exit report may trail the end of the output stream.
DIE_WAIT = 2.0
# A container started for one run gets its code at once; this only bounds a host
# that stalls between start and send.
COLD_IDLE = 60.0
_SEND_INLINE = 64 * 1024
# A signal meant for the main thread (Jupyter's interrupt) may be delivered to
# another thread; the main thread only notices once it returns from select.
_POLL = 0.1
_RECV = 256 * 1024

_SUPERVISOR_SOURCE = Path(__file__).with_name("_supervisor.py").read_text(encoding="utf-8")


def supervisor_command(idle: float = COLD_IDLE) -> list[str]:
    """The container command: the supervisor, run by the image's own python3.

    ``idle`` is how long it waits for its code before ending itself.
    """
    return ["python3", "-I", "-S", "-c", _SUPERVISOR_SOURCE, f"{idle:.0f}"]


def _as_bytes(value: str | bytes, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise InvalidValueError(name, type(value).__name__, "str or bytes")


@dataclass(eq=False)
class Sandbox:
    """A started container whose supervisor waits for code. Single use.

    Attributes:
        engine: the engine it lives on.
        container: its id.
        sock: the attach socket; closing it ends the container.
        watch: the engine's account of it.
        spec: what it was created with (its ``limits.timeout`` is not binding: the
            timeout travels with the code).
        ready_at: ``time.monotonic()`` when it was started.
    """

    engine: Engine
    container: str
    sock: socket.socket
    watch: Watch
    spec: SandboxSpec
    ready_at: float

    def alive(self) -> bool:
        """Whether the container is still waiting (it may end itself when idle)."""
        return not self.watch.died.is_set()

    def discard(self) -> None:
        """End it unused: EOF on its control stream makes the supervisor exit."""
        _shutdown(self.sock)
        _reap_later(self.engine, self.container, self.watch)


def start_sandbox(
    engine: Engine, image: str, limits: Limits, *, idle: float = COLD_IDLE, lifetime: float
) -> Sandbox:
    """Create, watch, attach and start one hardened container, ready for code.

    ``lifetime`` is how long the container may legitimately live (labelled, so that
    a sweep can reap it after). Nothing is left behind if any step fails.
    """
    spec = SandboxSpec(
        image=image,
        command=supervisor_command(idle),
        limits=limits,
        labels=make_labels(lifetime),
    )
    ensure_watchdog()
    container = engine.create(spec)
    watch: Watch | None = None
    sock: socket.socket | None = None
    try:
        watch = engine.watch(container)
        sock = engine.attach(container)
        engine.start(container)
    except BaseException:
        if sock is not None:
            _shutdown(sock)
        engine.remove(container)
        if watch is not None:
            watch.close()
        raise
    return Sandbox(engine, container, sock, watch, spec, time.monotonic())


class SandboxSource(Protocol):
    """Something that may hand out a ready sandbox for a run (a warm pool)."""

    @property
    def engine(self) -> Engine:
        """The engine its sandboxes live on; cold starts use it too."""
        ...

    def take(self, image: str, limits: Limits) -> Sandbox | None:
        """A ready sandbox matching ``image`` and ``limits``, or None."""
        ...


def run(
    code: str | bytes,
    *,
    stdin: str | bytes | None = None,
    limits: Limits | None = None,
    image: str = DEFAULT_IMAGE,
    on_output: OnOutput | None = None,
    engine: Engine | None = None,
    pool: SandboxSource | None = None,
) -> RunResult:
    """Run ``code`` with ``python3`` in a fresh sandbox container and return what happened.

    Args:
        code: the Python source to run.
        stdin: what the program reads on standard input (none when omitted).
        limits: resource limits; :class:`Limits` defaults when omitted.
        image: an image with ``python3``; never pulled.
        on_output: called with ``("stdout" | "stderr", text)`` as output arrives,
            up to half the output cap per stream.
        engine: the engine to use; the pool's, else the Docker engine from the
            environment, by default.
        pool: where to take a container started ahead of time; when it has none
            that fits, a container is started for this run.

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
    sandbox = pool.take(image, limits) if pool is not None else None
    if sandbox is None:
        engine = engine or (pool.engine if pool is not None else default_engine())
        try:
            sandbox = start_sandbox(
                engine, image, limits, lifetime=COLD_IDLE + limits.timeout + SUPERVISOR_GRACE
            )
        except KeyboardInterrupt:
            return _Run.never_started(limits, image)
    return _Run(sandbox, limits, on_output).execute(payload_code, payload_stdin)


class _Run:
    """The state of one run, from sending the code to the container's removal."""

    def __init__(self, sandbox: Sandbox | None, limits: Limits, on_output: OnOutput | None) -> None:
        self.sandbox = sandbox
        self.limits = limits
        self.image = sandbox.spec.image if sandbox is not None else ""
        self.on_output = on_output
        self.stdout = CappedOutput(limits.output)
        self.stderr = CappedOutput(limits.output)
        self.timed_out = False
        self.interrupted = False
        self.ended = False
        self.trailer: tuple[str, int] | None = None
        self.started = 0.0
        self.finished = 0.0

    @classmethod
    def never_started(cls, limits: Limits, image: str) -> RunResult:
        """The result of a run interrupted before its container started."""
        interrupted = cls(None, limits, None)
        interrupted.image = image
        interrupted.interrupted = True
        return interrupted._result()

    def execute(self, code: bytes, stdin: bytes) -> RunResult:
        sandbox = self.sandbox
        assert sandbox is not None
        request = encode_request(code, stdin, self.limits.timeout + SUPERVISOR_GRACE, SANDBOX_UID)
        try:
            self.started = time.monotonic()
            if len(request) <= _SEND_INLINE:
                sandbox.sock.sendall(request)
            else:
                # A large stdin can fill the socket before the supervisor reads it all.
                threading.Thread(
                    target=_send_quietly, args=(sandbox.sock, request), daemon=True
                ).start()
            self._pump(sandbox, self.started + self.limits.timeout)
        except KeyboardInterrupt:
            self.interrupted = True
        finally:
            self.finished = time.monotonic()
            self._dispose(sandbox)
        return self._result()

    def _pump(self, sandbox: Sandbox, deadline: float) -> None:
        engine_frames = EngineFrames()
        supervisor_frames = SupervisorFrames()
        stop_at = deadline
        while True:
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
            ready, _, _ = select.select([sandbox.sock], [], [], min(_POLL, stop_at - now))
            if not ready:
                continue
            data = sandbox.sock.recv(_RECV)
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
            if self.trailer is not None:
                # The supervisor has relayed everything and is exiting; the container's
                # teardown (tens of ms) need not delay the result.
                self.ended = True
                return

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

    def _dispose(self, sandbox: Sandbox) -> None:
        _shutdown(sandbox.sock)
        if self.ended and self.trailer is not None:
            if self.trailer != ("exit", 0):
                # A memory kill is only known from the engine's events.
                sandbox.watch.died.wait(DIE_WAIT)
            # It has exited and removes itself; confirming that need not delay the cell.
            _reap_later(sandbox.engine, sandbox.container, sandbox.watch)
            return
        if not self.ended:
            sandbox.engine.kill(sandbox.container)
        else:
            sandbox.watch.died.wait(DIE_WAIT)
        _reap(sandbox.engine, sandbox.container, sandbox.watch)

    def _result(self) -> RunResult:
        watch = self.sandbox.watch if self.sandbox is not None else None
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
        elif self.ended and not (self.timed_out or self.interrupted):
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
        return RunResult(
            status=status,
            exit_code=exit_code,
            signal=signal,
            stdout=self.stdout.text(),
            stderr=self.stderr.text(),
            duration=max(0.0, self.finished - self.started) if self.started else 0.0,
            truncated=self.stdout.truncated or self.stderr.truncated,
            limits=self.limits,
            image=self.image,
        )


def _shutdown(sock: socket.socket) -> None:
    # close() alone leaves the connection open inside the HTTP response, and with it
    # the container's stdin.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _reap(engine: Engine, container: str, watch: Watch) -> None:
    """Wait for the engine's auto-removal; force it if it does not come."""
    try:
        if not watch.removed.wait(REMOVE_WAIT):
            engine.remove(container)
    finally:
        watch.close()


def _reap_later(engine: Engine, container: str, watch: Watch) -> None:
    threading.Thread(
        target=_reap, args=(engine, container, watch), name="codedock-reap", daemon=True
    ).start()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(data)
