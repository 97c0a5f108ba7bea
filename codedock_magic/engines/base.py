"""The seam between codedock_magic and a container engine, in the engine's neutral terms.

An :class:`Engine` launches a hardened sandbox from a :class:`SandboxSpec` and hands
back a :class:`Sandbox`: a :class:`Channel` (the sandbox's stdin, and its stdout and
stderr already told apart), a :class:`Watch` (exited with a code or a signal,
killed for memory, removed) and one way to end it. The engine alone decides the
order of its calls, how a sandbox is removed, and how one whose host died is
found again (its labels, its watchdog, its sweep). How an engine frames its
streams or names its events (Docker's 8-byte multiplexing, a Kubernetes
websocket's channel byte) stays inside that engine too.
"""

from __future__ import annotations

import threading
import time
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
    "Sandbox",
    "SandboxSpec",
    "Watch",
]

#: The uid and gid sandboxed code runs as when its engine gives it none of its own
#: (``nobody``, the image's user); the Docker engine gives each sandbox its own.
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

#: How long an engine that removes its sandboxes itself (Docker's auto-remove) is
#: given to do so once one has ended, before it is told to.
REMOVE_WAIT = 5.0


@dataclass(frozen=True)
class SandboxSpec:
    """What to launch: a profile (image and container limits), the command, its lifetime.

    Attributes:
        profile: the image and the container's limits.
        command: the main process (the supervisor).
        labels: labels of the caller's own, on top of the engine's.
        lifetime: the most seconds the sandbox may live; the engine marks it with
            its owner and expiry so that a sweep can remove it after that (None:
            only ``labels``, for a caller that made them itself).
        baked: ``(digest, command)``: the command to run instead when the image
            carries the supervisor whose digest is ``digest``. An engine that
            cannot tell runs ``command``.
    """

    profile: Profile
    command: Sequence[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    lifetime: float | None = None
    baked: tuple[str, Sequence[str]] | None = None


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
    """The engine's account of one sandbox: how it ended, a memory kill, its removal.

    An engine feeds it with :meth:`record_exit` (or :meth:`record_status`),
    :meth:`record_memory_kill` and :meth:`record_removed`, translated from its own
    events, from the moment before the sandbox starts: with auto-remove, asking
    after the exit can lose the race against the removal.

    Attributes:
        exit_code: the main process's exit code, when it exited and the engine said.
        signal: the signal that ended it, when one did and the engine said.
    """

    def __init__(self, close: Callable[[], None] = lambda: None) -> None:
        self.exit_code: int | None = None
        self.signal: int | None = None
        self.oom_killed = False
        self.died = threading.Event()
        self.removed = threading.Event()
        self._close = close

    def record_exit(self, code: int | None = None, *, signal: int | None = None) -> None:
        """The sandbox's main process ended: with exit ``code`` or by ``signal``, if known."""
        if signal is not None:
            self.signal, self.exit_code = signal, None
        elif code is not None:
            self.exit_code, self.signal = code, None
        self.died.set()

    def record_status(self, status: int | None) -> None:
        """The main process ended with a shell's status: above 128, 128 plus a signal.

        For engines that report the status as a shell does (Docker's ``exitCode``,
        a pod's ``terminated.exitCode``).
        """
        if status is not None and status > 128:
            self.record_exit(signal=status - 128)
        else:
            self.record_exit(status)

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


class Sandbox:
    """One launched sandbox: its channel, its watch, and the one way to end it. Single use.

    The engine that launched it says how it is killed and removed, and whether it
    removes itself once it ends (``removal_wait``: how long to give it).

    Attributes:
        id: the engine's name for it.
        channel: its streams; closing them ends it (the dead-man's switch).
        watch: the engine's account of it.
        profile: its image and container limits.
        ready_at: ``time.monotonic()`` when it was launched.
        uid: the uid (and gid) its program runs as, no other live sandbox's.
    """

    def __init__(
        self,
        id: str,
        channel: Channel,
        watch: Watch,
        profile: Profile,
        *,
        kill: Callable[[], None],
        remove: Callable[[], None],
        removal_wait: float = REMOVE_WAIT,
        uid: int = SANDBOX_UID,
    ) -> None:
        self.id = id
        self.uid = uid
        self.channel = channel
        self.watch = watch
        self.profile = profile
        self.ready_at = time.monotonic()
        self._kill = kill
        self._remove = remove
        self._removal_wait = removal_wait

    def __repr__(self) -> str:
        return f"<Sandbox {self.id[:12]} of {self.profile.image}>"

    def alive(self) -> bool:
        """Whether it still runs (it may end itself when idle)."""
        return not self.watch.died.is_set()

    def kill(self) -> None:
        """SIGKILL everything in it now; one already gone is fine."""
        self._kill()

    def end(self, *, kill: bool = False, wait: bool = False) -> None:
        """End it, and make sure it is removed.

        Closing the channel makes its supervisor exit, which is enough for one
        that is idle or has finished; ``kill`` is for one that may still run.
        The removal is confirmed (and forced if it does not come) in the
        background, unless ``wait``.
        """
        self.channel.close()
        if kill:
            self.kill()
        if wait:
            self._confirm_removal()
        else:
            threading.Thread(
                target=self._confirm_removal, name="codedock-reap", daemon=True
            ).start()

    def _confirm_removal(self) -> None:
        try:
            if not self._removal_wait or not self.watch.removed.wait(self._removal_wait):
                self._remove()
        finally:
            self.watch.close()


class Engine(Protocol):
    """What codedock_magic needs from a container engine: a sandbox's whole life."""

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

    def launch(self, spec: SandboxSpec) -> Sandbox:
        """Launch a hardened sandbox from ``spec``, attached and started. Never pulls.

        The engine guards it against its host's death from before it can run
        (the channel's dead-man's switch, then the engine's own orphan guard),
        and leaves nothing behind when a step fails.
        """
        ...

    def remove(self, container_id: str) -> None:
        """Force-remove a sandbox by id (for a sweep); one already gone is fine."""
        ...

    def list(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """Our sandboxes (all states), optionally narrowed by more labels."""
        ...
