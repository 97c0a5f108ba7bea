"""The Docker engine: :class:`~.base.Engine` on docker-py's low-level API.

Everything Docker-specific lives here: the hardening flags, the 8-byte stream
multiplexing of the attach socket (undone by :class:`DockerChannel`), and the
event names (``die``, ``oom``, ``destroy``) that become a :class:`~.base.Watch`'s
facts. No other module imports docker-py.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import docker
import docker.errors
import docker.utils
import requests.exceptions
from docker.types import LogConfig

from ..core.errors import EngineError, EngineUnavailableError, ImageNotFoundError, InvalidValueError
from ..core.limits import format_size
from .base import (
    MASKED_PATHS,
    RUNTIME_DIR,
    STDERR,
    STDOUT,
    WORKDIR,
    Channel,
    Chunk,
    ContainerInfo,
    Sandbox,
    SandboxSpec,
    Watch,
)
from .labels import MANAGED, make_labels
from .uids import DEFAULT_UID_RANGE, UID_LABEL, UidRange, uid_name
from .watchdog import ensure_watchdog

__all__ = ["SUPERVISOR_LABEL", "DockerChannel", "DockerEngine"]

#: The label of an image that carries the supervisor: its digest.
SUPERVISOR_LABEL = "io.codedock.supervisor"
# How long an image's supervisor label is trusted without asking again. A run
# that meets an image rebuilt in between with another supervisor fails closed
# (the baked command checks the files), and the next create asks again.
_LABEL_TTL = 5.0

_RECV = 256 * 1024
# Docker multiplexes stdout and stderr on one socket: stream byte, 3 zero bytes,
# big-endian length, payload.
_MUX_HEADER = struct.Struct(">BxxxI")
_MUX_STREAMS = {1: STDOUT, 2: STDERR}
# Claims of a uid that may lose to racing launches before the taken ones are listed.
_BLIND_CLAIMS = 3
_CLAIMS = 32
# Under gVisor the container's pids count the runtime's own host threads and
# processes: about 40 idle, and about 11 more for each process of the program
# (ptrace platform; a program that forked to its limit peaked at 93 host pids
# with 5 processes, 222 with 17, 745 with 65). When the runtime cannot make one
# it panics and the whole sandbox ends, so the limit leaves half as much again.
# The program's processes are bounded inside, by RLIMIT_NPROC on its own uid.
_GVISOR_PIDS_BASE, _GVISOR_PIDS_EACH = 64, 16
# gVisor's own kernel lives in the sandbox's memory: under about 40 MiB Python
# does not start (measured with the ptrace platform).
GVISOR_MIN_MEMORY = 48 * 1024**2

T = TypeVar("T")


class DockerChannel:
    """The attach socket of one container, demultiplexed into stdout and stderr.

    ``holder`` is docker-py's wrapper, which holds the HTTP response; the socket
    must not outlive it.
    """

    def __init__(self, sock: socket.socket, holder: object) -> None:
        self._sock = sock
        self._holder = holder
        self._buffer = bytearray()
        self._ended = False

    def send(self, data: bytes) -> None:
        """Write all of ``data`` to the container's stdin."""
        self._sock.sendall(data)

    def receive(self, timeout: float) -> list[Chunk] | None:
        """What arrived within ``timeout`` seconds; None at the end of the stream."""
        if self._ended:
            return None
        try:
            ready, _, _ = select.select([self._sock], [], [], max(0.0, timeout))
            if not ready:
                return []
            data = self._sock.recv(_RECV)
        except (OSError, ValueError):
            # Closed under us (ValueError: a closed socket has no fileno).
            data = b""
        if not data:
            self._ended = True
            return None
        self._buffer += data
        chunks: list[Chunk] = []
        start = 0
        while len(self._buffer) - start >= _MUX_HEADER.size:
            stream, length = _MUX_HEADER.unpack_from(self._buffer, start)
            end = start + _MUX_HEADER.size + length
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[start + _MUX_HEADER.size : end])
            chunks.append((_MUX_STREAMS.get(stream, STDERR), payload))
            start = end
        del self._buffer[:start]
        return chunks

    def close(self) -> None:
        """Shut the socket down in both directions, then close it."""
        # close() alone leaves the connection open inside the HTTP response, and
        # with it the container's stdin.
        self._ended = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(Exception):
            self._holder.close()  # type: ignore[attr-defined]


class DockerEngine:
    """:class:`Engine` on a Docker (or Docker-API compatible) engine via docker-py.

    Args:
        base_url: where the engine listens; by default ``DOCKER_HOST`` and
            friends, as for the docker CLI.
        timeout: seconds an API call may take.
        runtime: the OCI runtime sandboxes run under (e.g. ``runsc`` for gVisor);
            the engine's default when None.
        init: run the engine's init as each sandbox's PID 1 (the supervisor then
            is not PID 1; it reaps orphans itself when it is).
        uid_range: the uids sandboxes run their programs as, one of its own each
            (``"FIRST-LAST"``, see :mod:`.uids`).

    The engine is reached on first use, not here.
    """

    #: The name this engine is registered under.
    name = "docker"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: int = 60,
        runtime: str | None = None,
        init: bool = True,
        uid_range: str | list[int] | tuple[int, int] = DEFAULT_UID_RANGE,
    ) -> None:
        kwargs: dict[str, Any] = dict(docker.utils.kwargs_from_env())
        if base_url:
            kwargs["base_url"] = base_url
        self._address = str(kwargs.get("base_url") or "unix:///var/run/docker.sock")
        self._cpus: int | None = None
        self._kwargs = {"timeout": timeout, **kwargs}
        self.runtime = runtime or None
        self.init = bool(init)
        self.uids = UidRange.parse(uid_range)
        #: What it was made with: a watchdog makes it again from these.
        self.options: dict[str, Any] = {"timeout": timeout}
        if base_url:
            self.options["base_url"] = base_url
        if self.runtime:
            self.options["runtime"] = self.runtime
        if not self.init:
            self.options["init"] = False
        if str(self.uids) != DEFAULT_UID_RANGE:
            self.options["uid_range"] = str(self.uids)
        self._api: docker.APIClient | None = None
        self._pid = 0
        self._api_lock = threading.Lock()
        self._carried: dict[str, tuple[float, str]] = {}

    def _connect(self) -> docker.APIClient:
        try:
            return docker.APIClient(version="auto", max_pool_size=32, **self._kwargs)
        except docker.errors.DockerException as exc:
            raise EngineUnavailableError(self._address, _short(exc)) from exc

    @property
    def api(self) -> docker.APIClient:
        """docker-py's low-level client, one per process.

        Its connection pool would be shared with a forked child, and two processes
        reading one connection garble each other's replies.
        """
        api = self._api
        if api is None or self._pid != os.getpid():
            with self._api_lock:
                if self._api is None or self._pid != os.getpid():
                    self._api = self._connect()
                    self._pid = os.getpid()
                api = self._api
        return api

    @property
    def address(self) -> str:
        """Where the engine was reached."""
        return self._address

    def _call(self, action: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except docker.errors.ImageNotFound:
            raise
        except docker.errors.APIError as exc:
            raise EngineError(f"the Docker engine could not {action}: {_short(exc)}") from exc
        except (requests.exceptions.ConnectionError, ConnectionError) as exc:
            raise EngineUnavailableError(self._address, _short(exc)) from exc

    def ping(self) -> None:
        """Raise :class:`EngineUnavailableError` unless the engine answers."""
        self._call("answer a ping", self.api.ping)

    def image_exists(self, image: str) -> bool:
        """Whether ``image`` is present locally."""
        try:
            self._call("inspect an image", self.api.inspect_image, image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def carried_supervisor(self, image: str) -> str:
        """The digest of the supervisor ``image`` carries, ``""`` when none (or no image).

        Asked of the engine at most once every few seconds per image name.
        """
        now = time.monotonic()
        known = self._carried.get(image)
        if known is not None and now - known[0] < _LABEL_TTL:
            return known[1]
        try:
            details = self._call("inspect an image", self.api.inspect_image, image)
        except docker.errors.ImageNotFound:
            return ""
        labels = (details.get("Config") or {}).get("Labels") or {}
        digest = str(labels.get(SUPERVISOR_LABEL) or "")
        self._carried[image] = (now, digest)
        return digest

    def command_for(self, spec: SandboxSpec) -> list[str]:
        """The baked command when the image carries that very supervisor, else the full one."""
        if spec.baked is not None and self.carried_supervisor(spec.profile.image) == spec.baked[0]:
            return list(spec.baked[1])
        return list(spec.command)

    def cpus(self) -> int:
        """How many CPUs the engine's host has (asked once)."""
        if self._cpus is None:
            info = self._call("describe itself", self.api.info)
            self._cpus = int(info.get("NCPU") or 0) or 1
        return self._cpus

    def launch(self, spec: SandboxSpec) -> Sandbox:
        """Create, watch, attach and start one hardened, auto-removing container.

        Docker's order: the container is created, its events are subscribed to
        before it can die (with auto-remove, asking after the exit can lose the
        race against the removal), its streams are attached before it starts (the
        dead-man's switch: when this process dies, the engine closes the
        container's stdin and the supervisor ends itself), then it starts. A
        container created but never started has no switch: this process's
        watchdog removes it if the process dies in between. Nothing is left
        behind when a step fails.
        """
        if spec.lifetime is not None:
            spec = SandboxSpec(
                spec.profile,
                spec.command,
                {**make_labels(spec.lifetime, engine=self.name), **spec.labels},
                baked=spec.baked,
            )
        ensure_watchdog(self.name, self.options)
        container, uid = self.claim(spec)
        watch: Watch | None = None
        channel: Channel | None = None
        try:
            watch = self.watch(container)
            channel = self.attach(container)
            self.start(container)
        except BaseException:
            if channel is not None:
                channel.close()
            self.remove(container)
            if watch is not None:
                watch.close()
            raise
        return Sandbox(
            container,
            channel,
            watch,
            spec.profile,
            kill=lambda: self.kill(container),
            remove=lambda: self.remove(container),
            uid=uid,
        )

    def create(self, spec: SandboxSpec) -> str:
        """Create a sandbox as :meth:`claim` does; only its id."""
        return self.claim(spec)[0]

    def claim(self, spec: SandboxSpec) -> tuple[str, int]:
        """Create a sandbox with a uid no other sandbox of the engine has: (its id, the uid).

        The container is named after its uid (:func:`~.uids.uid_name`), and the
        engine refuses a second container of one name, whoever asks: a claim that
        loses a race tries another uid. The uid is free again once the container
        is removed.

        Raises:
            InvalidValueError: the limits ask for more CPUs than the engine has (it
                would refuse them itself, deep inside); nothing is created.
            EngineError: every uid of the range belongs to a sandbox that still exists.
        """
        limits = spec.profile.limits
        if limits.cpus > self.cpus():
            raise InvalidValueError(
                "cpus", limits.cpus, f"at most {self.cpus()}, the CPUs of the engine's host"
            )
        if self.gvisor and limits.memory < GVISOR_MIN_MEMORY:
            raise InvalidValueError(
                "memory",
                format_size(limits.memory),
                f"at least {format_size(GVISOR_MIN_MEMORY)} under gVisor (runtime "
                f"{self.runtime}), whose own kernel lives in the sandbox's memory",
            )
        tried = 0
        for uid in self.uids.candidates():
            if tried == _BLIND_CLAIMS:
                break
            tried += 1
            created = self._create(spec, uid)
            if created is not None:
                return created, uid
        taken = self.uids_in_use()
        for uid in self.uids.candidates(taken):
            if tried == _CLAIMS + _BLIND_CLAIMS:
                break
            tried += 1
            created = self._create(spec, uid)
            if created is not None:
                return created, uid
        raise EngineError(
            f"no free sandbox uid: each of the {len(self.uids)} of uid_range {self.uids} "
            f"belongs to a sandbox that still exists ({len(taken)} listed); end some, or "
            "give the engine a wider uid_range"
        )

    @property
    def gvisor(self) -> bool:
        """Whether sandboxes run under gVisor (a runtime named runsc or gvisor)."""
        return any(name in (self.runtime or "") for name in ("runsc", "gvisor"))

    def host_pids(self, pids: int) -> int:
        """The container's pids limit for a program that may run ``pids`` processes."""
        return _GVISOR_PIDS_BASE + _GVISOR_PIDS_EACH * pids if self.gvisor else pids

    def uids_in_use(self) -> set[int]:
        """The uids of the engine's sandboxes that still exist, from their labels."""
        found = self._call(
            "list containers", self.api.containers, all=True, filters={"label": [UID_LABEL]}
        )
        taken: set[int] = set()
        for c in found:
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                taken.add(int((c.get("Labels") or {})[UID_LABEL]))
        return taken

    def _create(self, spec: SandboxSpec, uid: int) -> str | None:
        """Create the sandbox as ``uid``; None when another container holds that uid.

        The program runs with no network, a read-only root, a capped tmpfs it owns,
        and the limits. Its open files and file size are bounded by its supervisor
        (as rlimits), as on any engine.
        """
        limits = spec.profile.limits
        host_config = self.api.create_host_config(
            auto_remove=True,
            network_mode="none",
            read_only=True,
            tmpfs={
                WORKDIR: f"size={limits.workdir},uid={uid},gid={uid},mode=0700",
                # The supervisor's, readable by the program: its runtime, and values.
                RUNTIME_DIR: "size=16m,uid=0,gid=0,mode=0755,noexec,nosuid,nodev",
                # gVisor mounts a writable tmpfs of its own on /tmp when none is
                # there; the root is read-only under every runtime.
                **({"/tmp": "ro,size=4k,mode=0755"} if self.gvisor else {}),
            },
            # The supervisor needs these two to drop to the sandbox's uid; the program
            # loses them at that setuid.
            cap_drop=["ALL"],
            cap_add=["SETUID", "SETGID"],
            security_opt=["no-new-privileges"],
            pids_limit=self.host_pids(limits.pids),
            mem_limit=limits.memory,
            memswap_limit=limits.memory,
            shm_size=min(limits.workdir, 64 * 1024**2),
            nano_cpus=int(limits.cpus * 1e9),
            init=self.init,
            runtime=self.runtime,
            # Output reaches us through the attach stream; a log driver would
            # keep a copy of every byte on the host's disk.
            log_config=LogConfig(type="none"),
        )
        # Setting them replaces the engine's own list, which is kept in full.
        host_config["MaskedPaths"] = MASKED_PATHS
        command = self.command_for(spec)
        try:
            created = self._call(
                "create a sandbox container",
                self.api.create_container,
                spec.profile.image,
                name=uid_name(uid),
                entrypoint=command,
                command=[],
                user="0:0",
                working_dir=WORKDIR,
                hostname="sandbox",
                stdin_open=True,
                detach=False,
                tty=False,
                network_disabled=True,
                labels={**spec.labels, UID_LABEL: str(uid)},
                host_config=host_config,
                use_config_proxy=False,
            )
        except docker.errors.ImageNotFound:
            raise ImageNotFoundError(spec.profile.image) from None
        except EngineError as exc:
            if getattr(exc.__cause__, "status_code", None) == 409:
                return None
            raise
        return str(created["Id"])

    def watch(self, container_id: str) -> Watch:
        """Subscribe to the container's events in a background thread."""
        stream = self._call(
            "stream events",
            self.api.events,
            filters={"container": [container_id]},
            decode=True,
        )

        def close() -> None:
            with contextlib.suppress(Exception):
                stream.close()

        watch = Watch(close)

        def pump() -> None:
            with contextlib.suppress(Exception):
                for event in stream:
                    if not isinstance(event, dict):
                        continue
                    actor = event.get("Actor") or {}
                    _translate(watch, str(event.get("Action", "")), actor.get("Attributes") or {})
                    if watch.removed.is_set():
                        break

        threading.Thread(
            target=pump, name=f"codedock-events-{container_id[:12]}", daemon=True
        ).start()
        return watch

    def attach(self, container_id: str) -> DockerChannel:
        """Attach to all three streams; the channel undoes Docker's multiplexing."""
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        wrapped = self._call("attach to a sandbox", self.api.attach_socket, container_id, params)
        raw = getattr(wrapped, "_sock", wrapped)
        if not isinstance(raw, socket.socket):
            raise EngineError(
                f"attaching through {self._address} gave no plain socket; use a unix:// or "
                "tcp:// DOCKER_HOST"
            )
        raw.settimeout(None)
        return DockerChannel(raw, wrapped)

    def start(self, container_id: str) -> None:
        """Start the container; an image without python3 is reported as such."""
        try:
            self._call("start a sandbox", self.api.start, container_id)
        except EngineError as exc:
            if "executable file not found" in str(exc) or "no such file" in str(exc):
                raise EngineError(
                    f"the sandbox image has no python3 on its PATH ({exc}); use an image "
                    "with Python 3"
                ) from None
            raise

    def kill(self, container_id: str) -> None:
        """SIGKILL the container, ignoring one that is already gone or stopped."""
        # Refusals are fine (gone, already stopping); a lost engine is not.
        with contextlib.suppress(EngineError):
            self._call("kill a sandbox", self.api.kill, container_id)

    def remove(self, container_id: str) -> None:
        """Force-remove the container, ignoring one already gone or being removed."""
        with contextlib.suppress(EngineError):
            self._call("remove a sandbox", self.api.remove_container, container_id, force=True)

    def list(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """Containers carrying our managed label and every label given."""
        wanted = {MANAGED: "1", **(labels or {})}
        found = self._call(
            "list containers",
            self.api.containers,
            all=True,
            filters={"label": [f"{key}={value}" for key, value in wanted.items()]},
        )
        return [
            ContainerInfo(
                id=str(c["Id"]), labels=dict(c.get("Labels") or {}), state=str(c.get("State", ""))
            )
            for c in found
            if isinstance(c, dict)
        ]


def _translate(watch: Watch, action: str, attributes: Mapping[str, str]) -> None:
    """Docker's event names, as the engine-neutral facts of a :class:`Watch`."""
    if action == "oom":
        watch.record_memory_kill()
    elif action == "die":
        status: int | None = None
        with contextlib.suppress(KeyError, ValueError):
            status = int(attributes["exitCode"])
        # Docker reports a process ended by signal N as a shell would: 128 + N.
        watch.record_status(status)
    elif action == "destroy":
        watch.record_removed()


def _short(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
