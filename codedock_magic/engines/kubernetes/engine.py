"""The Kubernetes engine: :class:`~..base.Engine` on the official ``kubernetes`` client.

Each sandbox is one Pod, built by :mod:`.pods`. Its streams go over the ``attach``
subresource, a binary websocket whose every message starts with a channel byte
(0 stdin, 1 stdout, 2 stderr, 3 the API server's status), undone by
:class:`PodChannel`. Its fate comes from the Pod's status through a watch: the
container's ``terminated.exitCode``, and ``reason: OOMKilled``. Ending a sandbox
deletes its Pod; Pods are never removed by themselves. This is the one module that
imports the ``kubernetes`` client.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client
from kubernetes import config as _config
from kubernetes import watch as _watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream
from websocket import ABNF, WebSocketException

from ...core.errors import EngineError, EngineUnavailableError
from ..base import STDERR, STDOUT, Chunk, ContainerInfo, Sandbox, SandboxSpec, Watch
from ..labels import MANAGED, make_labels
from ..watchdog import ensure_watchdog
from .pods import CONTAINER, ENGINE_NAME, OwnerReference, PodOptions, build_pod, pod_labels

__all__ = ["DEFAULT_START_DEADLINE", "KubernetesEngine", "PodChannel"]

#: Seconds a Pod may take from its creation to running before the run gives up,
#: deletes it and names the reason Kubernetes gave. A cold Pod on a warm node
#: starts in about a second; an image pull or a node scale-up takes far longer.
DEFAULT_START_DEADLINE = 60.0
# Reasons a container waits with that no retry cures: the run fails at once.
_HOPELESS = {
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}
_CHANNELS = {1: STDOUT, 2: STDERR}
_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# Seconds a watch's request lives before the API server ends it and it is made again.
_WATCH_SECONDS = 300

T = TypeVar("T")
# Untyped in the client: called through Any.
config: Any = _config
watch: Any = _watch


class PodChannel:
    """The attach websocket of one Pod, its channel bytes undone into stdout and stderr.

    Frames are read in order off the socket, so stdout and stderr keep their
    interleaving. Closing the socket ends the container's stdin (``stdinOnce``):
    the dead-man's switch.
    """

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ended = False
        self._send_lock = threading.Lock()
        #: What the API server said on the status channel (3), if anything.
        self.status = b""

    def send(self, data: bytes) -> None:
        """Write all of ``data`` to the container's stdin (channel 0)."""
        try:
            with self._send_lock:
                self._ws.sock.send(b"\x00" + bytes(data), opcode=ABNF.OPCODE_BINARY)
        except (WebSocketException, AttributeError) as exc:
            raise BrokenPipeError(f"the Pod's attach stream is closed ({exc})") from None

    def receive(self, timeout: float) -> list[Chunk] | None:
        """What arrived within ``timeout`` seconds; None once the stream has ended."""
        if self._ended:
            return None
        sock = self._ws.sock
        chunks: list[Chunk] = []
        try:
            wait = max(0.0, timeout)
            while True:
                raw = sock.sock
                if raw is None:
                    self._ended = True
                    break
                if not getattr(raw, "pending", lambda: 0)():
                    ready, _, _ = select.select([raw], [], [], wait)
                    if not ready:
                        break
                wait = 0.0
                opcode, frame = sock.recv_data_frame(True)
                if opcode == ABNF.OPCODE_CLOSE:
                    self._ended = True
                    break
                data = bytes(frame.data or b"")
                if not data:
                    continue
                if data[0] in _CHANNELS and len(data) > 1:
                    chunks.append((_CHANNELS[data[0]], data[1:]))
                elif data[0] == 3:
                    self.status += data[1:]
        except (WebSocketException, OSError, ValueError, AttributeError):
            self._ended = True
        if self._ended and not chunks:
            return None
        return chunks

    def close(self) -> None:
        """Close the websocket; idempotent."""
        self._ended = True
        with contextlib.suppress(Exception):
            self._ws.close()


class KubernetesEngine:
    """:class:`Engine` on a Kubernetes cluster: each sandbox one hardened Pod.

    Args:
        namespace: where sandbox Pods are made; by default the kubeconfig
            context's namespace (in a Pod: its own), else ``default``.
        runtime_class: a RuntimeClass for the Pods (gVisor's, Kata's).
        image_pull_policy: ``IfNotPresent``, ``Never`` or ``Always``.
        node_selector: node labels sandboxes must run on.
        tolerations: taints of those nodes sandboxes tolerate.
        seccomp_profile: a ``Localhost`` profile's path on the nodes; empty:
            ``RuntimeDefault``.
        kubeconfig: a kubeconfig file; by default in-cluster config when in a
            Pod, else ``$KUBECONFIG`` or ``~/.kube/config``.
        context: the kubeconfig context; by default its current one.
        start_deadline: seconds a Pod may take to start.
        timeout: seconds an API call may take.

    The API server is reached on first use, not here.
    """

    #: The name this engine is registered under.
    name = ENGINE_NAME

    def __init__(
        self,
        namespace: str | None = None,
        *,
        runtime_class: str | None = None,
        image_pull_policy: str = "IfNotPresent",
        node_selector: Mapping[str, str] | None = None,
        tolerations: Sequence[Mapping[str, Any]] = (),
        seccomp_profile: str = "",
        kubeconfig: str | None = None,
        context: str | None = None,
        start_deadline: float = DEFAULT_START_DEADLINE,
        timeout: float = 30.0,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._context = context
        self._namespace = namespace
        # Checked now, so that a bad option fails where it is given.
        checked = PodOptions(
            namespace=namespace or "default",
            runtime_class=runtime_class or None,
            image_pull_policy=image_pull_policy,
            node_selector=node_selector or {},
            tolerations=tolerations,
            seccomp_profile=seccomp_profile,
        )
        self._pod_options: dict[str, Any] = {
            "runtime_class": checked.runtime_class,
            "image_pull_policy": checked.image_pull_policy,
            "node_selector": dict(checked.node_selector),
            "tolerations": [dict(t) for t in checked.tolerations],
            "seccomp_profile": checked.seccomp_profile,
        }
        self.start_deadline = float(start_deadline)
        self.timeout = float(timeout)
        #: What it was made with: a watchdog makes it again from these.
        self.options: dict[str, Any] = {
            key: value
            for key, value in {
                "namespace": namespace,
                **self._pod_options,
                "kubeconfig": kubeconfig,
                "context": context,
            }.items()
            if value not in (None, "", [], {}, "IfNotPresent")
        }
        if start_deadline != DEFAULT_START_DEADLINE:
            self.options["start_deadline"] = start_deadline
        self._api: client.CoreV1Api | None = None
        self._configuration: client.Configuration | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._options_made: PodOptions | None = None
        self._address = "kubernetes"
        #: API requests made so far (each create, get, list, watch, attach, delete).
        self.requests = 0

    def _load(self) -> tuple[client.Configuration, str]:
        configuration = client.Configuration()
        namespace = self._namespace
        in_cluster = self._kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
        try:
            if in_cluster:
                config.load_incluster_config(client_configuration=configuration)
                if namespace is None:
                    with contextlib.suppress(OSError), open(_SERVICE_ACCOUNT_NAMESPACE) as f:
                        namespace = f.read().strip() or None
            else:
                config.load_kube_config(
                    config_file=self._kubeconfig,
                    context=self._context,
                    client_configuration=configuration,
                )
                if namespace is None:
                    _, active = config.list_kube_config_contexts(self._kubeconfig)
                    if self._context:
                        found, _ = config.list_kube_config_contexts(self._kubeconfig)
                        active = next((c for c in found if c["name"] == self._context), active)
                    namespace = ((active or {}).get("context") or {}).get("namespace")
        except (ConfigException, OSError, TypeError) as exc:
            raise EngineUnavailableError(
                self._kubeconfig or "kubernetes",
                f"no cluster configured ({exc}); set KUBECONFIG, or run the service in a Pod",
            ) from None
        return configuration, namespace or "default"

    @property
    def api(self) -> client.CoreV1Api:
        """The core API client, one per process (a forked child makes its own)."""
        api = self._api
        if api is None or self._pid != os.getpid():
            with self._lock:
                if self._api is None or self._pid != os.getpid():
                    configuration, namespace = self._load()
                    self._address = str(configuration.host)
                    owner = OwnerReference.from_environment(os.environ)
                    if owner is not None and owner.namespace != namespace:
                        owner = None
                    self._options_made = PodOptions(
                        namespace=namespace, owner=owner, **self._pod_options
                    )
                    self._configuration = configuration
                    self._api = client.CoreV1Api(client.ApiClient(configuration))
                    self._pid = os.getpid()
                api = self._api
        return api

    @property
    def pod_options(self) -> PodOptions:
        """Where and how Pods are made (reaches the configuration first)."""
        _ = self.api
        assert self._options_made is not None
        return self._options_made

    @property
    def namespace(self) -> str:
        """The namespace sandbox Pods are made in."""
        return self.pod_options.namespace

    @property
    def address(self) -> str:
        """Where the API server was reached."""
        return self._address

    def _call(self, action: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.requests += 1
        try:
            return func(*args, _request_timeout=self.timeout, **kwargs)
        except ApiException as exc:
            if exc.status in (0, None):
                raise EngineUnavailableError(self.address, _short(exc)) from exc
            raise EngineError(
                f"the Kubernetes API server could not {action}: {exc.status} {_short(exc)}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise EngineUnavailableError(self.address, _short(exc)) from exc
        except ValueError as exc:
            # The client validates each reply against its model.
            raise EngineError(
                f"the Kubernetes API server's reply to {action} did not parse: {_short(exc)}"
            ) from exc

    def ping(self) -> None:
        """Raise :class:`EngineUnavailableError` unless the API server answers."""
        version = client.VersionApi(self.api.api_client)
        self._call("tell its version", version.get_code)

    def image_exists(self, image: str) -> bool:
        """Always True: which images a cluster's nodes hold, or may pull, only they know.

        A Pod whose image its node cannot get fails to start, with the reason
        Kubernetes gave (``ErrImagePull``, ``ErrImageNeverPull``).
        """
        return bool(image)

    def launch(self, spec: SandboxSpec) -> Sandbox:
        """Create the Pod, watch it, wait until it runs, and attach to it.

        A Pod that does not run within the start deadline, or cannot (its image
        cannot be had), is deleted, and the error names the reason Kubernetes
        gave. This process's watchdog deletes its Pods if it dies in between;
        once attached, the Pod's stdin ends with this process (``stdinOnce``).
        """
        if spec.lifetime is not None:
            spec = SandboxSpec(
                spec.profile,
                spec.command,
                {**make_labels(spec.lifetime, engine=self.name), **spec.labels},
                lifetime=spec.lifetime,
            )
        ensure_watchdog(self.name, self.options)
        manifest = build_pod(spec, self.pod_options)
        created = self._call(
            "create a sandbox Pod", self.api.create_namespaced_pod, self.namespace, manifest
        )
        made = created.metadata
        assert made is not None
        name = str(made.name)
        fate: PodWatch | None = None
        channel: PodChannel | None = None
        try:
            fate = self.watch(name, str(made.resource_version or ""))
            fate.wait_started(self.start_deadline, name)
            channel = self.attach(name)
        except BaseException:
            if channel is not None:
                channel.close()
            self.remove(name)
            if fate is not None:
                fate.close()
            raise
        deleted = threading.Event()

        def delete_once() -> None:
            # Killing and removing are both the one delete: asked for once.
            if not deleted.is_set():
                deleted.set()
                self.remove(name)

        return Sandbox(
            name,
            channel,
            fate,
            spec.profile,
            kill=delete_once,
            remove=delete_once,
            # Nothing removes a Pod but a delete: it is asked for at once.
            removal_wait=0.0,
        )

    def watch(self, name: str, resource_version: str = "") -> PodWatch:
        """Follow one Pod's status in a background thread, from ``resource_version``."""
        fate = PodWatch(self, name)
        fate.start(resource_version)
        return fate

    def attach(self, name: str) -> PodChannel:
        """Attach to the Pod's stdin, stdout and stderr over a binary websocket."""
        assert self._configuration is not None
        # A client of its own: stream() swaps its client's request method while it
        # connects, which other threads' calls on a shared one would go through.
        own = client.CoreV1Api(client.ApiClient(self._configuration))
        self.requests += 1
        try:
            ws = stream(
                own.connect_get_namespaced_pod_attach,
                name,
                self.namespace,
                container=CONTAINER,
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,
                binary=True,
                _preload_content=False,
            )
        except ApiException as exc:
            raise EngineError(
                f"could not attach to sandbox Pod {name}: {exc.status} {_short(exc)}"
            ) from exc
        except (WebSocketException, OSError) as exc:
            raise EngineUnavailableError(self.address, _short(exc)) from exc
        return PodChannel(ws)

    def remove(self, container_id: str) -> None:
        """Delete the Pod at once (no grace); one already gone is fine."""
        with contextlib.suppress(EngineError):
            self._call(
                "delete a sandbox Pod",
                self.api.delete_namespaced_pod,
                container_id,
                self.namespace,
                grace_period_seconds=0,
            )

    def list(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """Our Pods in the namespace, carrying every label given.

        Values no label can hold live in annotations (see :mod:`.pods`); those
        are matched here, after the API server's selection on the rest.
        """
        wanted = {MANAGED: "1", **(labels or {})}
        selectable = {k: v for k, v in wanted.items() if _selectable(v)}
        found = self._call(
            "list sandbox Pods",
            self.api.list_namespaced_pod,
            self.namespace,
            label_selector=",".join(f"{k}={v}" for k, v in selectable.items()),
        )
        pods = []
        for pod in found.items:
            held = pod_labels(self.api.api_client.sanitize_for_serialization(pod))
            if all(held.get(k) == v for k, v in wanted.items()):
                pods.append(
                    ContainerInfo(
                        id=str(held_name(pod)),
                        labels=held,
                        state=_STATES.get(str(pod.status.phase if pod.status else ""), "unknown"),
                    )
                )
        return pods


_STATES = {"Pending": "created", "Running": "running", "Succeeded": "exited", "Failed": "exited"}


def held_name(pod: Any) -> str:
    """A listed Pod's name."""
    return str(pod.metadata.name)


def _selectable(value: str) -> bool:
    return len(value) <= 63 and all(c.isalnum() or c in "-_." for c in value)


class PodWatch(Watch):
    """A :class:`Watch` fed by the API server's watch on one Pod.

    Beyond the neutral facts, it knows whether the Pod's container started, and
    why one has not (the reason Kubernetes gave), for :meth:`wait_started`.
    """

    def __init__(self, engine: KubernetesEngine, name: str) -> None:
        self._stopped = threading.Event()
        self._stream: Any = None
        super().__init__(self._stop)
        self._engine = engine
        self.name = name
        self.started = threading.Event()
        #: Why the Pod has not started, as Kubernetes said it (reason: message).
        self.reason = ""
        self.hopeless = threading.Event()

    def _stop(self) -> None:
        self._stopped.set()
        if self._stream is not None:
            self._stream.stop()

    def start(self, resource_version: str) -> None:
        """Start following the Pod in a daemon thread."""
        threading.Thread(
            target=self._pump,
            args=(resource_version,),
            name=f"codedock-watch-{self.name}",
            daemon=True,
        ).start()

    def _pump(self, resource_version: str) -> None:
        engine = self._engine
        version = resource_version
        while not self._stopped.is_set() and not self.removed.is_set():
            self._stream = watch.Watch()
            engine.requests += 1
            try:
                for event in self._stream.stream(
                    engine.api.list_namespaced_pod,
                    engine.namespace,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=version or None,
                    timeout_seconds=_WATCH_SECONDS,
                    _request_timeout=_WATCH_SECONDS + 30,
                ):
                    raw = event.get("raw_object") or {}
                    version = str((raw.get("metadata") or {}).get("resourceVersion") or version)
                    if event.get("type") == "DELETED":
                        self.record_removed()
                        self.started.set()
                        return
                    self.observe(raw)
                    if self._stopped.is_set():
                        return
            except Exception:
                if self._stopped.is_set():
                    return
                time.sleep(0.5)

    def observe(self, pod: Mapping[str, Any]) -> None:
        """Take in one state of the Pod (a dict, as the API server says it)."""
        status = pod.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                self.reason = _reason(condition)
        for container in status.get("containerStatuses") or []:
            state = container.get("state") or {}
            if state.get("running"):
                self.started.set()
            if state.get("waiting"):
                waiting = state["waiting"]
                self.reason = _reason(waiting)
                if waiting.get("reason") in _HOPELESS:
                    self.hopeless.set()
            terminated = state.get("terminated")
            if terminated:
                if terminated.get("reason") == "OOMKilled":
                    self.record_memory_kill()
                code = terminated.get("exitCode")
                self.record_status(code if isinstance(code, int) else None)
                self.started.set()
        if status.get("phase") == "Failed" and not self.died.is_set():
            # Failed with no container that ran: the deadline, an eviction.
            self.reason = _reason(status) or self.reason
            self.record_exit()
            self.started.set()

    def wait_started(self, deadline: float, name: str) -> None:
        """Wait until the Pod's container runs (or has run).

        Raises:
            EngineError: one line naming the reason Kubernetes gave, when it has
                not started within ``deadline`` seconds or never can.
        """
        give_up = time.monotonic() + deadline
        while not self.started.is_set():
            left = give_up - time.monotonic()
            if left <= 0 or self.hopeless.is_set():
                why = self.reason or "no reason given yet (still Pending)"
                raise EngineError(
                    f"the sandbox Pod {name} did not start within {deadline:g} s: {why}; "
                    "the Pod is deleted. Check the image is on the nodes or pullable, and "
                    "that the namespace's quota and the nodes have room"
                )
            self.started.wait(min(left, 0.05))
        if self.removed.is_set():
            raise EngineError(f"the sandbox Pod {name} was deleted as it started")


def _reason(where: Mapping[str, Any]) -> str:
    reason = str(where.get("reason") or "")
    message = " ".join(str(where.get("message") or "").split())[:300]
    return f"{reason}: {message}" if reason and message else reason or message


def _short(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if body:
        import json

        with contextlib.suppress(ValueError, TypeError):
            message = json.loads(body).get("message")
            if message:
                return str(message).splitlines()[0]
    text = str(getattr(exc, "reason", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
