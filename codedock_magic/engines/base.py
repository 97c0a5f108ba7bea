"""The seam between codedock_magic and a container engine, in the engine's neutral terms.

An :class:`Engine` creates a hardened sandbox from a :class:`SandboxSpec`, reports
what happens to it through a :class:`Watch` (exited with a code, killed for
memory, removed), and hands the runner a :class:`Channel`: the container's stdin,
and its stdout and stderr already told apart. How an engine frames its streams or
names its events (Docker's 8-byte multiplexing, a Kubernetes websocket's channel
byte) stays inside that engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..core.profile import Profile

__all__ = [
    "MASKED_PATHS",
    "RUNTIME_DIR",
    "SANDBOX_GID",
    "SANDBOX_UID",
    "STDERR",
    "STDOUT",
    "WORKDIR",
    "Channel",
    "Chunk",
    "ContainerInfo",
    "Engine",
    "SandboxSpec",
    "Watch",
]

#: The uid and gid sandboxed code runs as (``nobody``).
SANDBOX_UID = 65534
SANDBOX_GID = 65534
#: The writable, size-capped work dir inside every sandbox.
WORKDIR = "/sandbox"
#: The supervisor's own tmpfs: the program can read it (its runtime, the values
#: it was given), not write it.
RUNTIME_DIR = "/codedock"

STDOUT = "stdout"
STDERR = "stderr"
#: One piece of a container's output: ``(STDOUT | STDERR, bytes)``.
Chunk = tuple[str, bytes]


#: Host details a sandbox has no need of, masked (read as empty) by every engine:
#: Docker's own list, then the host's kernel command line, modules, boot id and
#: slab details. What stays visible is in the README (the kernel version, host
#: memory). ``codedock doctor`` checks each from inside a sandbox.
MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/cmdline",
    "/proc/modules",
    "/proc/sys/kernel/random/boot_id",
    "/proc/slabinfo",
    "/proc/vmallocinfo",
]


@dataclass(frozen=True)
class SandboxSpec:
    """What to create: a profile (image and container limits), the command, labels."""

    profile: Profile
    command: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerInfo:
    """A managed container as listed by the engine."""

    id: str
    labels: Mapping[str, str]
    state: str


class Channel(Protocol):
    """A container's stdin, and its stdout and stderr told apart.

    Holding it open is what keeps the container alive: when this process dies,
    or :meth:`close` is called, the container's stdin ends and its supervisor
    ends the run (the dead-man's switch).
    """

    def send(self, data: bytes) -> None:
        """Write all of ``data`` to the container's stdin (may block; any thread)."""
        ...

    def receive(self, timeout: float) -> list[Chunk] | None:
        """The output that arrived within ``timeout`` seconds (``[]`` for none).

        None once the container's output has ended.
        """
        ...

    def close(self) -> None:
        """End both directions at once; idempotent."""
        ...


class Watch:
    """The engine's account of one container: its exit code, a memory kill, its removal.

    An engine feeds it with :meth:`record_exit`, :meth:`record_memory_kill` and
    :meth:`record_removed`, translated from its own events, from the moment
    before the container starts: with auto-remove, asking after the exit can
    lose the race against the removal.
    """

    def __init__(self, close: Callable[[], None] = lambda: None) -> None:
        self.exit_code: int | None = None
        self.oom_killed = False
        self.died = threading.Event()
        self.removed = threading.Event()
        self._close = close

    def record_exit(self, code: int | None) -> None:
        """The container's main process exited (with ``code``, when the engine says)."""
        if code is not None:
            self.exit_code = code
        self.died.set()

    def record_memory_kill(self) -> None:
        """The kernel's OOM killer ended a process in the container."""
        self.oom_killed = True

    def record_removed(self) -> None:
        """The container is gone."""
        self.died.set()
        self.removed.set()

    def close(self) -> None:
        """Stop listening; idempotent."""
        self._close()


class Engine(Protocol):
    """The operations codedock_magic needs from a container engine."""

    @property
    def address(self) -> str:
        """Where the engine was reached, for messages."""
        ...

    def ping(self) -> None:
        """Raise :class:`EngineUnavailableError` unless the engine answers."""
        ...

    def image_exists(self, image: str) -> bool:
        """Whether ``image`` is present locally (never pulls)."""
        ...

    def create(self, spec: SandboxSpec) -> str:
        """Create a hardened, auto-removing sandbox; return its id. Never pulls."""
        ...

    def watch(self, container_id: str) -> Watch:
        """Start recording the container's fate; call before :meth:`start`."""
        ...

    def attach(self, container_id: str) -> Channel:
        """Attach to stdin, stdout and stderr; call before :meth:`start`."""
        ...

    def start(self, container_id: str) -> None:
        """Start the container."""
        ...

    def kill(self, container_id: str) -> None:
        """SIGKILL the container; a container already gone is fine."""
        ...

    def remove(self, container_id: str) -> None:
        """Force-remove the container; a container already gone is fine."""
        ...

    def list(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """Our containers (all states), optionally narrowed by more labels."""
        ...
