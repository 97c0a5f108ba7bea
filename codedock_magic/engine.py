"""The one seam between codedock_magic and a container engine.

Everything that talks to an engine goes through :class:`Engine`: create a hardened
sandbox, watch it, attach to it, start, kill and remove it, list ours by label.
:class:`DockerEngine` implements it with docker-py's low-level API; other engines
(Kubernetes pods, Swarm) are meant to be further implementations of the same
protocol. No other module imports docker-py.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import docker
import docker.errors
import docker.utils
import requests.exceptions
from docker.types import LogConfig, Ulimit

from .errors import EngineError, EngineUnavailableError, ImageNotFoundError
from .labels import MANAGED
from .limits import Limits

__all__ = [
    "SANDBOX_GID",
    "SANDBOX_UID",
    "ContainerInfo",
    "DockerEngine",
    "Engine",
    "SandboxSpec",
    "Watch",
    "default_engine",
]

#: The uid and gid sandboxed code runs as (``nobody``).
SANDBOX_UID = 65534
SANDBOX_GID = 65534
WORKDIR = "/sandbox"
NOFILE = 256

T = TypeVar("T")


@dataclass(frozen=True)
class SandboxSpec:
    """What to create: an image, the command its supervisor runs, limits and labels."""

    image: str
    command: Sequence[str]
    limits: Limits
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerInfo:
    """A managed container as listed by the engine."""

    id: str
    labels: Mapping[str, str]
    state: str


class Watch:
    """The engine's account of one container: its exit code, a memory kill, its removal.

    Filled in from the engine's event stream, which must be subscribed to before
    the container starts: with auto-remove an ``inspect`` after the exit loses
    the race against the removal.
    """

    def __init__(self, close: Callable[[], None] = lambda: None) -> None:
        self.exit_code: int | None = None
        self.oom_killed = False
        self.died = threading.Event()
        self.removed = threading.Event()
        self._close = close

    def record(self, action: str, attributes: Mapping[str, str]) -> None:
        """Take one event (``oom``, ``die`` with ``exitCode``, ``destroy``)."""
        if action == "oom":
            self.oom_killed = True
        elif action == "die":
            with contextlib.suppress(KeyError, ValueError):
                self.exit_code = int(attributes["exitCode"])
            self.died.set()
        elif action == "destroy":
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
        """Start recording the container's events; call before :meth:`start`."""
        ...

    def attach(self, container_id: str) -> socket.socket:
        """Attach to stdin, stdout and stderr; return the raw socket of the stream."""
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


class DockerEngine:
    """:class:`Engine` on a Docker (or Docker-API compatible) engine via docker-py.

    The address comes from ``DOCKER_HOST`` and friends, as for the docker CLI.
    """

    def __init__(self, base_url: str | None = None, *, timeout: int = 60) -> None:
        kwargs: dict[str, Any] = dict(docker.utils.kwargs_from_env())
        if base_url:
            kwargs["base_url"] = base_url
        self._address = str(kwargs.get("base_url") or "unix:///var/run/docker.sock")
        try:
            self.api = docker.APIClient(version="auto", timeout=timeout, max_pool_size=32, **kwargs)
        except docker.errors.DockerException as exc:
            raise EngineUnavailableError(self._address, _short(exc)) from None

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
            raise EngineError(f"the Docker engine could not {action}: {_short(exc)}") from None
        except (requests.exceptions.ConnectionError, ConnectionError) as exc:
            raise EngineUnavailableError(self._address, _short(exc)) from None

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

    def create(self, spec: SandboxSpec) -> str:
        """Create an auto-removing sandbox: no network, read-only root, capped tmpfs, limits."""
        limits = spec.limits
        host_config = self.api.create_host_config(
            auto_remove=True,
            network_mode="none",
            read_only=True,
            tmpfs={WORKDIR: f"size={limits.workdir},uid={SANDBOX_UID},gid={SANDBOX_GID},mode=0700"},
            # The supervisor needs these two to drop to SANDBOX_UID; the program
            # loses them at that setuid.
            cap_drop=["ALL"],
            cap_add=["SETUID", "SETGID"],
            security_opt=["no-new-privileges"],
            pids_limit=limits.pids,
            mem_limit=limits.memory,
            memswap_limit=limits.memory,
            shm_size=min(limits.workdir, 64 * 1024**2),
            nano_cpus=int(limits.cpus * 1e9),
            ulimits=[
                Ulimit(name="nofile", soft=NOFILE, hard=NOFILE),
                Ulimit(name="fsize", soft=limits.workdir, hard=limits.workdir),
            ],
            init=True,
            # Output reaches us through the attach stream; a log driver would
            # keep a copy of every byte on the host's disk.
            log_config=LogConfig(type="none"),
        )
        try:
            created = self._call(
                "create a sandbox container",
                self.api.create_container,
                spec.image,
                entrypoint=list(spec.command),
                command=[],
                user="0:0",
                working_dir=WORKDIR,
                hostname="sandbox",
                stdin_open=True,
                detach=False,
                tty=False,
                network_disabled=True,
                labels=dict(spec.labels),
                host_config=host_config,
                use_config_proxy=False,
            )
        except docker.errors.ImageNotFound:
            raise ImageNotFoundError(spec.image) from None
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
                    watch.record(str(event.get("Action", "")), actor.get("Attributes") or {})
                    if watch.removed.is_set():
                        break

        threading.Thread(
            target=pump, name=f"codedock-events-{container_id[:12]}", daemon=True
        ).start()
        return watch

    def attach(self, container_id: str) -> socket.socket:
        """Attach to all three streams and return the raw socket."""
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        wrapped = self._call("attach to a sandbox", self.api.attach_socket, container_id, params)
        raw = getattr(wrapped, "_sock", wrapped)
        if not isinstance(raw, socket.socket):
            raise EngineError(
                f"attaching through {self._address} gave no plain socket; use a unix:// or "
                "tcp:// DOCKER_HOST"
            )
        raw.settimeout(None)
        # The wrapper holds the HTTP response; the socket must not outlive it.
        raw_ref: Any = raw
        with contextlib.suppress(AttributeError):
            raw_ref._codedock_wrapper = wrapped
        return raw

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
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.api.kill(container_id)

    def remove(self, container_id: str) -> None:
        """Force-remove the container, ignoring one already gone or being removed."""
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.api.remove_container(container_id, force=True)

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


def _short(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_default: DockerEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> DockerEngine:
    """The process-wide Docker engine from the environment, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = DockerEngine()
        return _default
