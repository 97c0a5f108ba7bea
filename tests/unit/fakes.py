"""A fake engine for unit tests: no Docker, but the supervisor's own protocol code.

Each fake container is a socketpair. The host holds one end as its channel; a
thread plays the supervisor on the other, reading the request with the real
supervisor's ``read_request`` and answering with its ``emit``, as the test's
``behave`` function says. The test feeds the container's :class:`Watch` as an
engine would (exit code, memory kill, removal).
"""

from __future__ import annotations

import contextlib
import importlib.util
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from codedock_magic.core.limits import Limits
from codedock_magic.core.result import RunResult, RunStatus
from codedock_magic.engines import (
    STDERR,
    STDOUT,
    Chunk,
    ContainerInfo,
    Sandbox,
    SandboxSpec,
    Watch,
)
from codedock_magic.labels import MANAGED

PROGRAM_PATH = Path(__file__).resolve().parents[2] / "codedock_magic" / "supervisor" / "program.py"


def load_program() -> ModuleType:
    """The supervisor program as a module (its main() does not run on import)."""
    spec = importlib.util.spec_from_file_location("codedock_supervisor_program", PROGRAM_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


program = load_program()


class FakeChannel:
    """The host's end of the socketpair; the container end carries raw supervisor bytes.

    What the supervisor writes on its stderr goes on a list of its own, handed out
    before the next stdout, as an engine's demultiplexed stream hands it out.
    """

    def __init__(self) -> None:
        self.host, self.container = socket.socketpair()
        self.closed = threading.Event()
        self.stderr: list[bytes] = []
        self._lock = threading.Lock()

    def write_stderr(self, data: bytes) -> None:
        with self._lock:
            self.stderr.append(data)

    def send(self, data: bytes) -> None:
        self.host.sendall(data)

    def receive(self, timeout: float) -> list[Chunk] | None:
        if self.closed.is_set():
            return None
        with self._lock:
            if self.stderr:
                return [(STDERR, self.stderr.pop(0))]
        try:
            if not select.select([self.host], [], [], max(0.0, timeout))[0]:
                return []
            data = self.host.recv(65536)
        except (OSError, ValueError):
            data = b""
        # Written while this waited: still before the end of the stream.
        with self._lock:
            chunks: list[Chunk] = [(STDERR, text) for text in self.stderr]
            self.stderr.clear()
        if not data:
            return chunks or None
        return [*chunks, (STDOUT, data)]

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.host.shutdown(socket.SHUT_RDWR)
        self.host.close()


@dataclass(eq=False)
class FakeContainer:
    """One fake container: what it was made with and what happened to it."""

    id: str
    spec: SandboxSpec
    channel: FakeChannel = field(default_factory=FakeChannel)
    watch: Watch = field(default_factory=Watch)
    started: bool = False
    killed: threading.Event = field(default_factory=threading.Event)
    removed: bool = False
    request: tuple[bytes, bytes, float, int] | None = None

    @property
    def fd(self) -> int:
        """The container end, as the supervisor's fds 0 and 1."""
        return self.channel.container.fileno()

    def read_request(self) -> tuple[bytes, bytes, float, int]:
        """Read the host's request with the supervisor's own code, and all its stdin."""
        control = program.Control(self.fd)
        code, header = program.read_request(control, 5.0)
        stdin = control.exact(int(header["stdin_bytes"]), time.monotonic() + 5.0)
        self.request = (code, stdin, float(header["timeout"]), int(header["uid"]))
        return self.request

    def emit(self, kind: bytes, payload: bytes) -> None:
        """Write one frame with the supervisor's own code."""
        program.emit(kind, payload, self.fd)

    def complain(self, text: bytes) -> None:
        """Write on the supervisor's stderr, as it does only when it fails."""
        self.channel.write_stderr(text)

    def exit(self, code: int) -> None:
        """The main process exits and the container removes itself (auto-remove)."""
        with contextlib.suppress(OSError):
            self.channel.container.shutdown(socket.SHUT_RDWR)
        # As an engine reports it: a shell's status, 128 + N for signal N.
        self.watch.record_status(code)
        self.watch.record_removed()
        self.removed = True


Behaviour = Callable[[FakeContainer], None]


class FakeEngine:
    """:class:`~codedock_magic.engines.Engine` in memory; ``behave`` plays each container."""

    address = "fake://"

    def __init__(self, behave: Behaviour | None = None, *, ready: bool = True) -> None:
        self.behave = behave or (lambda container: None)
        #: Whether the supervisors say they are ready, as the real one does at once.
        self.ready = ready
        self.containers: dict[str, FakeContainer] = {}
        self.threads: list[threading.Thread] = []

    def ping(self) -> None:
        pass

    def image_exists(self, image: str) -> bool:
        return True

    def launch(self, spec: SandboxSpec) -> Sandbox:
        container = FakeContainer(uuid.uuid4().hex, spec)
        self.containers[container.id] = container
        self.start(container.id)
        return Sandbox(
            container.id,
            container.channel,
            container.watch,
            spec.profile,
            kill=lambda: self.kill(container.id),
            remove=lambda: self.remove(container.id),
        )

    def start(self, container_id: str) -> None:
        container = self.containers[container_id]
        container.started = True
        thread = threading.Thread(target=self._play, args=(container,), daemon=True)
        self.threads.append(thread)
        thread.start()

    def _play(self, container: FakeContainer) -> None:
        try:
            with contextlib.suppress(OSError, program.HostGone):
                control = program.Control(container.fd)
                if self.ready:
                    # The supervisor's own greeting: the host's byte, then READY.
                    program.greet(control, time.monotonic() + 5.0, container.fd)
                else:
                    control.exact(1, time.monotonic() + 5.0)
                self.behave(container)
        finally:
            container.channel.container.close()

    def kill(self, container_id: str) -> None:
        container = self.containers[container_id]
        container.killed.set()
        if not container.removed:
            container.exit(137)

    def remove(self, container_id: str) -> None:
        container = self.containers[container_id]
        container.removed = True
        container.watch.record_removed()

    def list(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        return [
            ContainerInfo(c.id, {MANAGED: "1", **c.spec.labels}, "running")
            for c in self.containers.values()
            if not c.removed
        ]

    def only(self) -> FakeContainer:
        """The one container made so far."""
        (container,) = self.containers.values()
        return container


def run_result(**fields: Any) -> RunResult:
    """A run that ended ``ok`` with nothing printed; ``fields`` override any of it."""
    base: dict[str, Any] = {
        "status": RunStatus.OK,
        "exit_code": 0,
        "signal": None,
        "stdout": "",
        "stderr": "",
        "duration": 0.1,
        "truncated": False,
        "limits": Limits(),
        "image": "i",
    }
    return RunResult(**{**base, **fields})
