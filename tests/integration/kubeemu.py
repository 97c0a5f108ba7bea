"""An emulated Kubernetes API server and a test kubelet, over real HTTP on 127.0.0.1.

The API server (tornado) serves what the Kubernetes engine uses: ``/version``, and
create, get, list, watch and delete of Pods in a namespace, and
``pods/{name}/attach`` as a real websocket speaking the channel protocol
(``v4.channel.k8s.io``: each binary message starts with its channel byte, 0 stdin,
1 stdout, 2 stderr, 3 the status).

The test kubelet runs each created Pod as a container on the local Docker engine,
translated from its spec (image, command, user, read-only root, capabilities,
no-new-privileges, memory and CPU limits, memory-backed emptyDirs as tmpfs, no
network), and reports it Running, then Succeeded or Failed with the exit code or
``OOMKilled``, through the watch. It refuses a Pod that lacks any hardening field
(as an admission check would: 403, naming each). It is **not** a real kubelet: no
images are pulled, nothing is scheduled across nodes, and a Pod whose image is in
``unschedulable`` stays Pending with the reason a scheduler gives.

Run it alone (``python tests/integration/kubeemu.py``) to serve until killed; it
prints the kubeconfig's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import queue
import re
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import tornado.httpserver
import tornado.ioloop
import tornado.web
import tornado.websocket
from docker.types import LogConfig

from codedock_magic.engines.kubernetes.pods import hardening_faults

NAMESPACE = "codedock-sandboxes"
#: The kubelet's own pids limit per Pod (a real node's ``podPidsLimit``).
POD_PIDS_LIMIT = 256
_KUBELET_LABEL = "io.codedock.test-kubelet"
_MUX = struct.Struct(">BxxxI")
_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3}


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity (``300Mi``, ``500m``, ``2``) as a number."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text))
    if not match:
        raise ValueError(text)
    number, unit = float(match.group(1)), match.group(2)
    if unit == "m":
        return number / 1000
    return number * _UNITS.get(unit, 1)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Cluster:
    """The API server's store, its watchers, and the test kubelet behind it."""

    def __init__(self, unschedulable: set[str] | None = None) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.containers: dict[tuple[str, str], str] = {}
        self.version = 1
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.watchers: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Queue[Any]]] = []
        self.lock = threading.RLock()
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Images the scheduler never finds a node for: their Pods stay Pending.
        self.unschedulable = set(unschedulable or ())
        #: API requests served, by ``METHOD kind`` (create, get, list, watch, delete, attach).
        self.requests: Counter[str] = Counter()
        self.refused: list[list[str]] = []
        self.docker = docker.APIClient(version="auto", timeout=120)

    # The store: every change is an event for the watchers.

    def _emit(self, kind: str, pod: dict[str, Any]) -> None:
        self.version += 1
        pod["metadata"]["resourceVersion"] = str(self.version)
        event = (self.version, kind, copy.deepcopy(pod))
        self.events.append(event)
        del self.events[:-5000]
        loop = self.loop
        for matches, inbox in list(self.watchers):
            if matches(event[2]) and loop is not None:
                loop.call_soon_threadsafe(inbox.put_nowait, {"type": kind, "object": event[2]})

    def create(self, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            metadata = pod.setdefault("metadata", {})
            name = metadata.get("name") or (
                metadata.get("generateName", "pod-") + uuid.uuid4().hex[:5]
            )
            metadata.update(
                name=name,
                namespace=namespace,
                uid=str(uuid.uuid4()),
                creationTimestamp=_now(),
            )
            pod["status"] = {"phase": "Pending", "conditions": []}
            self.pods[(namespace, name)] = pod
            self._emit("ADDED", pod)
            created = copy.deepcopy(pod)
        threading.Thread(target=self._run, args=(namespace, name), daemon=True).start()
        return created

    def update(self, namespace: str, name: str, change: Callable[[dict[str, Any]], None]) -> bool:
        with self.lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                return False
            change(pod["status"])
            self._emit("MODIFIED", pod)
            return True

    def delete(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            pod = self.pods.pop((namespace, name), None)
            container = self.containers.pop((namespace, name), None)
            if pod is not None:
                self._emit("DELETED", pod)
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                self.docker.remove_container(container, force=True)
        return pod

    # The test kubelet.

    def _run(self, namespace: str, name: str) -> None:
        with self.lock:
            pod = copy.deepcopy(self.pods.get((namespace, name)))
        if pod is None:
            return
        spec = pod["spec"]
        container = spec["containers"][0]
        image = container["image"]
        if image in self.unschedulable:
            message = (
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
            )
            self.update(
                namespace, name, lambda s: s.update(conditions=[_scheduled(False, message)])
            )
            return

        def waiting(reason: str, message: str = "") -> Callable[[dict[str, Any]], None]:
            def change(status: dict[str, Any]) -> None:
                status["conditions"] = [_scheduled(True)]
                status["containerStatuses"] = [
                    _container_status(
                        container, {"waiting": {"reason": reason, "message": message}}
                    )
                ]

            return change

        self.update(namespace, name, waiting("ContainerCreating"))
        try:
            self.docker.inspect_image(image)
        except docker.errors.ImageNotFound:
            if container.get("imagePullPolicy") == "Never":
                self.update(
                    namespace,
                    name,
                    waiting(
                        "ErrImageNeverPull",
                        f'Container image "{image}" is not present with pull policy of Never',
                    ),
                )
            else:
                # This kubelet never pulls (the machine has no network): as a node
                # that cannot reach the registry, it backs off.
                self.update(
                    namespace,
                    name,
                    waiting("ImagePullBackOff", f'Back-off pulling image "{image}"'),
                )
            return
        try:
            made = self._create_container(pod)
        except docker.errors.APIError as exc:
            self.update(namespace, name, waiting("CreateContainerError", str(exc)))
            return
        with self.lock:
            if (namespace, name) not in self.pods:
                gone = True
            else:
                gone = False
                self.containers[(namespace, name)] = made
        if gone:
            with contextlib.suppress(docker.errors.APIError):
                self.docker.remove_container(made, force=True)
            return
        try:
            self.docker.start(made)
        except docker.errors.APIError as exc:
            self.update(namespace, name, waiting("RunContainerError", str(exc)))
            return

        def running(status: dict[str, Any]) -> None:
            status.update(phase="Running", startTime=_now(), conditions=[_scheduled(True)])
            status["containerStatuses"] = [
                _container_status(container, {"running": {"startedAt": _now()}}, ready=True)
            ]

        self.update(namespace, name, running)
        deadline = spec.get("activeDeadlineSeconds")
        try:
            result = self.docker.wait(made, timeout=deadline)
            code = int(result.get("StatusCode", -1))
            state = self.docker.inspect_container(made)["State"]
            reason = (
                "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")
            )
            phase = "Succeeded" if code == 0 else "Failed"
            pod_reason = ""
        except docker.errors.APIError:
            return  # deleted under us
        except Exception:
            # Past activeDeadlineSeconds: the kubelet kills it and fails the Pod.
            with contextlib.suppress(docker.errors.APIError):
                self.docker.kill(made)
            code, reason, phase, pod_reason = 137, "Error", "Failed", "DeadlineExceeded"

        def ended(status: dict[str, Any]) -> None:
            status["phase"] = phase
            if pod_reason:
                status.update(
                    reason=pod_reason,
                    message="Pod was active on the node longer than the specified deadline",
                )
            status["containerStatuses"] = [
                _container_status(container, {"terminated": {"exitCode": code, "reason": reason}})
            ]

        self.update(namespace, name, ended)

    def _create_container(self, pod: dict[str, Any]) -> str:
        spec = pod["spec"]
        container = spec["containers"][0]
        context = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
        uid, gid = int(context["runAsUser"]), int(context["runAsGroup"])
        limits = container["resources"]["limits"]
        volumes = {v["name"]: v["emptyDir"] for v in spec.get("volumes", [])}
        tmpfs = {}
        for mount in container.get("volumeMounts", []):
            size = int(parse_quantity(volumes[mount["name"]]["sizeLimit"]))
            tmpfs[mount["mountPath"]] = f"size={size},uid={uid},gid={gid},mode=0755"
        caps = context.get("capabilities") or {}
        host_config = self.docker.create_host_config(
            network_mode="none",
            read_only=bool(context.get("readOnlyRootFilesystem")),
            tmpfs=tmpfs,
            cap_drop=caps.get("drop") or None,
            cap_add=caps.get("add") or None,
            security_opt=(
                ["no-new-privileges"] if context.get("allowPrivilegeEscalation") is False else []
            ),
            pids_limit=POD_PIDS_LIMIT,
            mem_limit=int(parse_quantity(limits["memory"])),
            memswap_limit=int(parse_quantity(limits["memory"])),
            nano_cpus=int(parse_quantity(limits["cpu"]) * 1e9),
            # In a Pod the container's own command is its PID 1.
            init=False,
            log_config=LogConfig(type="none"),
        )
        created = self.docker.create_container(
            container["image"],
            entrypoint=container.get("command") or None,
            command=container.get("args") or [],
            user=f"{uid}:{gid}",
            working_dir=container.get("workingDir"),
            hostname=spec.get("hostname") or pod["metadata"]["name"],
            # Attached, not detached, docker-py makes stdin once: it ends with the
            # first attach (the hardening check has asked for stdinOnce).
            stdin_open=bool(container.get("stdin")),
            detach=False,
            tty=bool(container.get("tty")),
            network_disabled=True,
            labels={_KUBELET_LABEL: pod["metadata"]["uid"]},
            host_config=host_config,
        )
        return str(created["Id"])

    def close(self) -> None:
        """Delete every Pod (and so its container)."""
        with self.lock:
            names = list(self.pods)
        for namespace, name in names:
            self.delete(namespace, name)
        with contextlib.suppress(docker.errors.APIError):
            for found in self.docker.containers(all=True, filters={"label": [_KUBELET_LABEL]}):
                self.docker.remove_container(found["Id"], force=True)


def _scheduled(ok: bool, message: str = "") -> dict[str, Any]:
    condition = {"type": "PodScheduled", "status": "True" if ok else "False"}
    if not ok:
        condition.update(reason="Unschedulable", message=message)
    return condition


def _container_status(
    container: dict[str, Any], state: dict[str, Any], *, ready: bool = False
) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": "running" in state,
        "state": state,
    }


def _selector(text: str) -> Callable[[dict[str, Any]], bool]:
    """A label selector of ``k=v`` terms (all the engine sends)."""
    wanted = dict(term.split("=", 1) for term in text.split(",") if "=" in term)
    return lambda pod: all(
        (pod["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items()
    )


def _fields(text: str) -> Callable[[dict[str, Any]], bool]:
    wanted = dict(term.split("=", 1) for term in text.split(",") if "=" in term)
    return lambda pod: all(
        {"metadata.name": pod["metadata"]["name"]}.get(k) == v for k, v in wanted.items()
    )


class _Base(tornado.web.RequestHandler):
    cluster: Cluster

    def initialize(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def reply(self, code: int, body: dict[str, Any]) -> None:
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class VersionHandler(_Base):
    def get(self) -> None:
        self.cluster.requests["GET version"] += 1
        self.reply(
            200,
            {
                "major": "1",
                "minor": "32",
                "gitVersion": "v1.32.0-codedock-emulated",
                "gitCommit": "",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "",
                "compiler": "",
                "platform": "linux/amd64",
            },
        )


class CountsHandler(_Base):
    """Not Kubernetes': the requests served so far, for the benchmark in another process."""

    def get(self) -> None:
        self.reply(200, dict(self.cluster.requests))


class PodsHandler(_Base):
    async def get(self, namespace: str) -> None:
        cluster = self.cluster
        labels = _selector(self.get_argument("labelSelector", ""))
        fields = _fields(self.get_argument("fieldSelector", ""))

        def matches(pod: dict[str, Any]) -> bool:
            return pod["metadata"]["namespace"] == namespace and labels(pod) and fields(pod)

        if self.get_argument("watch", "") not in ("true", "1"):
            cluster.requests["GET list"] += 1
            with cluster.lock:
                items = [copy.deepcopy(p) for p in cluster.pods.values() if matches(p)]
                version = str(cluster.version)
            self.reply(
                200,
                {
                    "kind": "PodList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": version},
                    "items": items,
                },
            )
            return
        cluster.requests["GET watch"] += 1
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        since = self.get_argument("resourceVersion", "")
        with cluster.lock:
            if since:
                backlog = [
                    {"type": kind, "object": pod}
                    for version, kind, pod in cluster.events
                    if version > int(since) and matches(pod)
                ]
            else:
                backlog = [
                    {"type": "ADDED", "object": copy.deepcopy(p)}
                    for p in cluster.pods.values()
                    if matches(p)
                ]
            watcher = (matches, inbox)
            cluster.watchers.append(watcher)
        for event in backlog:
            inbox.put_nowait(event)
        self.set_header("Content-Type", "application/json")
        give_up = time.monotonic() + float(self.get_argument("timeoutSeconds", "300"))
        try:
            while time.monotonic() < give_up:
                try:
                    event = await asyncio.wait_for(inbox.get(), timeout=1.0)
                except asyncio.TimeoutError:
                    continue
                self.write(json.dumps(event) + "\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            with cluster.lock, contextlib.suppress(ValueError):
                cluster.watchers.remove(watcher)
        with contextlib.suppress(Exception):
            self.finish()

    def post(self, namespace: str) -> None:
        cluster = self.cluster
        cluster.requests["POST create"] += 1
        pod = json.loads(self.request.body)
        faults = hardening_faults(pod)
        if faults:
            cluster.refused.append(faults)
            self.reply(
                403,
                _status(
                    403,
                    "Forbidden",
                    "pods is forbidden: the test kubelet refuses a Pod without its hardening: "
                    + "; ".join(faults),
                ),
            )
            return
        self.reply(201, cluster.create(namespace, pod))


class PodHandler(_Base):
    def get(self, namespace: str, name: str) -> None:
        self.cluster.requests["GET get"] += 1
        with self.cluster.lock:
            pod = copy.deepcopy(self.cluster.pods.get((namespace, name)))
        if pod is None:
            self.reply(404, _status(404, "NotFound", f'pods "{name}" not found'))
        else:
            self.reply(200, pod)

    def delete(self, namespace: str, name: str) -> None:
        self.cluster.requests["DELETE delete"] += 1
        pod = self.cluster.delete(namespace, name)
        if pod is None:
            self.reply(404, _status(404, "NotFound", f'pods "{name}" not found'))
        else:
            self.reply(200, pod)


class AttachHandler(tornado.websocket.WebSocketHandler):
    """``pods/{name}/attach``: the container's attach, bridged to the channel protocol."""

    def initialize(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.sock: socket.socket | None = None
        self.holder: Any = None
        self.inbox: queue.Queue[bytes | None] = queue.Queue()

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        # v4: the only way to end stdin is to close the socket, as the engine does.
        for wanted in ("v4.channel.k8s.io", "channel.k8s.io"):
            if wanted in subprotocols:
                return wanted
        return None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        self.cluster.requests["GET attach"] += 1
        namespace, name = args
        with self.cluster.lock:
            container = self.cluster.containers.get((namespace, name))
        if container is None:
            self.set_status(404)
            self.finish(
                json.dumps(_status(404, "NotFound", f"pod {name} has no running container"))
            )
            return
        self.container = container
        await super().get(*args, **kwargs)

    def open(self, *args: str, **kwargs: str) -> None:
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        try:
            self.holder = self.cluster.docker.attach_socket(self.container, params)
        except docker.errors.APIError as exc:
            self.write_message(
                b"\x03" + json.dumps(_status(500, "InternalError", str(exc))).encode(), binary=True
            )
            self.close()
            return
        self.sock = getattr(self.holder, "_sock", self.holder)
        loop = tornado.ioloop.IOLoop.current()
        threading.Thread(target=self._pump_out, args=(loop,), daemon=True).start()
        threading.Thread(target=self._pump_in, daemon=True).start()

    def _pump_out(self, loop: tornado.ioloop.IOLoop) -> None:
        assert self.sock is not None
        buffer = bytearray()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            buffer += data
            while len(buffer) >= _MUX.size:
                stream, length = _MUX.unpack_from(buffer)
                if len(buffer) < _MUX.size + length:
                    break
                payload = bytes(buffer[_MUX.size : _MUX.size + length])
                del buffer[: _MUX.size + length]
                loop.add_callback(self._send, bytes([stream]) + payload)
        loop.add_callback(
            self._send, b"\x03" + json.dumps({"metadata": {}, "status": "Success"}).encode()
        )
        loop.add_callback(self.close)

    def _send(self, message: bytes) -> None:
        with contextlib.suppress(tornado.websocket.WebSocketClosedError):
            self.write_message(message, binary=True)

    def _pump_in(self) -> None:
        assert self.sock is not None
        while True:
            data = self.inbox.get()
            if data is None:
                break
            try:
                self.sock.sendall(data)
            except OSError:
                break
        # The client is gone: the container's stdin ends (stdinOnce).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def on_message(self, message: str | bytes) -> None:
        data = message.encode() if isinstance(message, str) else message
        if data[:1] == b"\x00" and len(data) > 1:
            self.inbox.put(data[1:])

    def on_close(self) -> None:
        self.inbox.put(None)


class Emulator:
    """The API server and the test kubelet, serving on 127.0.0.1 in a thread of its own."""

    def __init__(self, folder: Path, *, unschedulable: set[str] | None = None) -> None:
        self.cluster = Cluster(unschedulable)
        self.folder = folder
        self.port = 0
        self.kubeconfig = folder / "kubeconfig"
        self._ready = threading.Event()
        self._loop: tornado.ioloop.IOLoop | None = None
        self._thread = threading.Thread(target=self._serve, name="kubeemu", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        self._loop = tornado.ioloop.IOLoop.current()
        self.cluster.loop = asyncio.get_event_loop()
        given = {"cluster": self.cluster}
        app = tornado.web.Application(
            [
                (r"/version/?", VersionHandler, given),
                (r"/emulator/requests", CountsHandler, given),
                (r"/api/v1/namespaces/([^/]+)/pods", PodsHandler, given),
                (r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/attach", AttachHandler, given),
                (r"/api/v1/namespaces/([^/]+)/pods/([^/]+)", PodHandler, given),
            ]
        )
        server = tornado.httpserver.HTTPServer(app)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Emulator:
        """Serve, and write a kubeconfig pointing at it (its context's namespace: ours)."""
        self._thread.start()
        self._ready.wait(10)
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
                    "users": [{"name": "emulated", "user": {"token": "test-token"}}],
                    "contexts": [
                        {
                            "name": "emulated",
                            "context": {
                                "cluster": "emulated",
                                "user": "emulated",
                                "namespace": NAMESPACE,
                            },
                        }
                    ],
                    "current-context": "emulated",
                }
            )
        )
        return self

    def pods(self) -> list[str]:
        """The names of the Pods that exist now."""
        with self.cluster.lock:
            return [name for _, name in self.cluster.pods]

    def stop(self) -> None:
        self.cluster.close()
        if self._loop is not None:
            self._loop.add_callback(self._loop.stop)


if __name__ == "__main__":
    emulator = Emulator(Path(tempfile.mkdtemp())).start()
    print(emulator.kubeconfig, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emulator.stop()
        sys.exit(0)
