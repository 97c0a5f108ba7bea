"""The Pod a run gets: a pure function from a :class:`SandboxSpec` to a hardened Pod manifest.

Each hardening property of the Docker engine has its Pod counterpart here, field by
field (``tests/unit/test_kubernetes_parity.py`` holds one against the other). What a
Pod spec cannot say is done elsewhere, and named where it is:

- a pids limit: the kubelet's ``podPidsLimit``, set by the cluster's admin;
- no network: a NetworkPolicy that denies all traffic (``deploy/kubernetes``),
  which only a CNI that enforces policies makes real; here, besides, no usable DNS,
  no service links and no service-account token;
- ulimits (open files, file size): the supervisor's rlimits, as on any engine;
- masked ``/proc`` paths: the runtime's default list, kept with ``procMount: Default``;
- an init process: none; the supervisor, as PID 1, reaps orphans itself.

The manifest is a plain dict, as the API server takes it in JSON. This module
imports no Kubernetes client.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...core.errors import InvalidValueError
from ..base import RUNTIME_DIR, SANDBOX_GID, SANDBOX_UID, WORKDIR, SandboxSpec
from ..labels import MANAGED

__all__ = [
    "CONTAINER",
    "DNS_NAMESERVER",
    "ENGINE_NAME",
    "PULL_POLICIES",
    "RUNTIME_DIR_SIZE",
    "SHM_MAX",
    "OwnerReference",
    "PodOptions",
    "build_pod",
    "hardening_faults",
    "pod_labels",
    "quantity",
    "split_labels",
]

#: The name the Kubernetes engine will be registered under (and its label says).
ENGINE_NAME = "kubernetes"
#: The one container of every sandbox Pod.
CONTAINER = "sandbox"
#: A Pod's names start with this; the API server adds a random tail.
NAME_PREFIX = "codedock-"
#: The only nameserver a sandbox has: its own loopback, where nothing answers. An
#: API server refuses ``dnsPolicy: None`` with no nameserver at all.
DNS_NAMESERVER = "127.0.0.1"
#: The supervisor's own memory-backed dir, as the Docker engine's tmpfs.
RUNTIME_DIR_SIZE = 16 * 1024**2
#: ``/dev/shm`` gets the work dir's size up to this, as Docker's ``shm_size``.
SHM_MAX = 64 * 1024**2
#: What the kubelet keeps of the container's output on the node's disk (it has no
#: "no logs" setting) and its writable layer may take, before it evicts the Pod.
EPHEMERAL_STORAGE = 64 * 1024**2
PULL_POLICIES = ("IfNotPresent", "Never", "Always")

_SECCOMP_TYPES = ("RuntimeDefault", "Localhost")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_BINARY = (("Pi", 1024**5), ("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024))


def _is_dns_label(text: object) -> bool:
    return isinstance(text, str) and bool(_DNS_LABEL.match(text))


def _is_subdomain(text: object) -> bool:
    return isinstance(text, str) and len(text) <= 253 and bool(_SUBDOMAIN.match(text))


def _is_key(key: object) -> bool:
    """Whether ``key`` is a qualified name: a label's or an annotation's key."""
    if not isinstance(key, str):
        return False
    prefix, slash, name = key.rpartition("/")
    if slash and not _is_subdomain(prefix):
        return False
    return bool(_NAME.match(name))


def _is_label_value(value: object) -> bool:
    return isinstance(value, str) and (value == "" or bool(_NAME.match(value)))


def quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity: ``64Mi`` when it is whole, else the plain number."""
    for suffix, unit in _BINARY:
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def _cpu(cpus: float) -> str:
    # An API server keeps milli-CPUs; the limits' own floor (0.01) is 10m.
    return f"{max(1, round(cpus * 1000))}m"


def split_labels(labels: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Labels that are valid Kubernetes labels, and the rest as annotations.

    A label value is at most 63 characters of ``[A-Za-z0-9._-]``, alphanumeric at
    both ends (or empty); a value that is not (a pid namespace's ``pid:[...]``, a
    long host name) goes into an annotation under the same key.

    Raises:
        InvalidValueError: a key that is no qualified name, valid neither as a
            label's key nor an annotation's.
    """
    kept: dict[str, str] = {}
    annotated: dict[str, str] = {}
    for key, value in labels.items():
        if not _is_key(key):
            raise InvalidValueError(
                "label",
                key,
                "a Kubernetes label key: an optional DNS prefix and '/', then at most 63 "
                "characters of [A-Za-z0-9._-], alphanumeric at both ends",
            )
        (kept if _is_label_value(value) else annotated)[key] = str(value)
    return kept, annotated


def pod_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    """A Pod's labels as the engine gave them: its annotations and its labels together."""
    metadata = pod.get("metadata") or {}
    return {**(metadata.get("annotations") or {}), **(metadata.get("labels") or {})}


@dataclass(frozen=True)
class OwnerReference:
    """The Pod that owns the sandboxes: the service's own, when it runs in the cluster.

    The cluster's garbage collector then removes the sandboxes when that Pod goes.
    An owner must live in its dependants' namespace: one elsewhere counts as gone,
    and its dependants are collected at once.

    Attributes:
        name: the owner Pod's name.
        uid: its uid (``metadata.uid``).
        namespace: its namespace; the sandboxes must be made there.
    """

    name: str
    uid: str
    namespace: str

    def __post_init__(self) -> None:
        if not _is_subdomain(self.name):
            raise InvalidValueError("owner name", self.name, "a Pod's name")
        if not isinstance(self.uid, str) or not self.uid.strip():
            raise InvalidValueError("owner uid", self.uid, "a Pod's uid (its metadata.uid)")
        if not _is_dns_label(self.namespace):
            raise InvalidValueError("owner namespace", self.namespace, "a namespace's name")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> OwnerReference | None:
        """The service's own Pod, from the downward API's variables; None outside a Pod.

        ``CODEDOCK_POD_NAME``, ``CODEDOCK_POD_UID`` and ``CODEDOCK_POD_NAMESPACE``,
        as the Deployment in ``deploy/kubernetes`` sets them.
        """
        name = environ.get("CODEDOCK_POD_NAME", "")
        uid = environ.get("CODEDOCK_POD_UID", "")
        namespace = environ.get("CODEDOCK_POD_NAMESPACE", "")
        if not (name and uid and namespace):
            return None
        return cls(name, uid, namespace)

    def manifest(self) -> dict[str, Any]:
        """As ``metadata.ownerReferences[]`` says it."""
        return {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}


@dataclass(frozen=True)
class PodOptions:
    """The Kubernetes engine's options: where and how its Pods are made.

    Attributes:
        namespace: where sandbox Pods are made.
        runtime_class: a RuntimeClass (gVisor's, Kata's) for the Pods; None: the
            cluster's default runtime.
        image_pull_policy: ``IfNotPresent``, ``Never`` or ``Always``.
        node_selector: labels a node must have to run sandboxes.
        tolerations: taints of those nodes that sandboxes tolerate, as the API
            says them (``{"key": ..., "operator": ..., "effect": ...}``).
        seccomp_profile: a profile the admin installed under the kubelet's seccomp
            dir (``Localhost``), by its path there; empty: ``RuntimeDefault``.
        ephemeral_storage: bytes of the node's disk a sandbox may fill (its output
            as the kubelet logs it) before the kubelet evicts it.
        owner: the Pod that owns the sandboxes (see :class:`OwnerReference`).
    """

    namespace: str = "default"
    runtime_class: str | None = None
    image_pull_policy: str = "IfNotPresent"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    seccomp_profile: str = ""
    ephemeral_storage: int = EPHEMERAL_STORAGE
    owner: OwnerReference | None = None

    def __post_init__(self) -> None:
        if not _is_dns_label(self.namespace):
            raise InvalidValueError(
                "namespace", self.namespace, "a namespace's name (lowercase, digits and '-')"
            )
        if self.runtime_class is not None and not _is_subdomain(self.runtime_class):
            raise InvalidValueError("runtime_class", self.runtime_class, "a RuntimeClass's name")
        if self.image_pull_policy not in PULL_POLICIES:
            raise InvalidValueError(
                "image_pull_policy", self.image_pull_policy, "one of " + ", ".join(PULL_POLICIES)
            )
        if not isinstance(self.node_selector, Mapping) or not all(
            _is_key(k) and _is_label_value(v) for k, v in self.node_selector.items()
        ):
            raise InvalidValueError(
                "node_selector", self.node_selector, "node labels, as a mapping of key to value"
            )
        if isinstance(self.tolerations, (str, bytes, Mapping)) or not all(
            isinstance(t, Mapping) and all(isinstance(k, str) for k in t) for t in self.tolerations
        ):
            raise InvalidValueError(
                "tolerations", self.tolerations, "a list of tolerations, each a mapping"
            )
        if not isinstance(self.seccomp_profile, str) or self.seccomp_profile.startswith("/"):
            raise InvalidValueError(
                "seccomp_profile",
                self.seccomp_profile,
                "a path relative to the kubelet's seccomp dir, or '' for RuntimeDefault",
            )
        if (
            isinstance(self.ephemeral_storage, bool)
            or not isinstance(self.ephemeral_storage, int)
            or self.ephemeral_storage < 1024**2
        ):
            raise InvalidValueError(
                "ephemeral_storage", self.ephemeral_storage, "a number of bytes, at least 1Mi"
            )
        if self.owner is not None and self.owner.namespace != self.namespace:
            raise InvalidValueError(
                "owner",
                f"{self.owner.namespace}/{self.owner.name}",
                f"a Pod in the sandboxes' namespace {self.namespace!r}: the garbage "
                "collector would take an owner elsewhere as gone and remove every sandbox",
            )

    def seccomp(self) -> dict[str, str]:
        """The ``seccompProfile`` of every sandbox."""
        if self.seccomp_profile:
            return {"type": "Localhost", "localhostProfile": self.seccomp_profile}
        return {"type": "RuntimeDefault"}


def build_pod(spec: SandboxSpec, options: PodOptions, *, name: str | None = None) -> dict[str, Any]:
    """The hardened Pod that runs ``spec``, as a manifest for the API server.

    ``spec.labels`` should already hold the engine's own labels
    (:func:`~codedock_magic.engines.labels.make_labels`), as the Docker engine adds
    them; the Pod always carries the managed label, which the sweep and the
    NetworkPolicies of ``deploy/kubernetes`` select on. Without ``name``, the API
    server names it (``generateName``).

    Raises:
        InvalidValueError: no lifetime (a Pod is never removed by itself, so the
            cluster's own deadline is not optional), a bad name or label key.
    """
    if spec.lifetime is None or not math.isfinite(spec.lifetime) or spec.lifetime <= 0:
        raise InvalidValueError(
            "lifetime", spec.lifetime, "a number of seconds: every Pod gets the cluster's deadline"
        )
    if name is not None and not (_is_subdomain(name) and len(name) <= 63):
        raise InvalidValueError("name", name, "a Pod's name (lowercase, digits, '-' and '.')")
    limits = spec.profile.limits
    labels, annotations = split_labels({**spec.labels, MANAGED: "1"})
    metadata: dict[str, Any] = {
        "namespace": options.namespace,
        "labels": labels,
        **({"name": name} if name else {"generateName": NAME_PREFIX}),
    }
    if annotations:
        metadata["annotations"] = annotations
    if options.owner is not None:
        metadata["ownerReferences"] = [options.owner.manifest()]
    # Requests equal to limits: the Pod's QoS class is Guaranteed, which never swaps
    # (memory is all it gets, as Docker's memory equal to memory+swap).
    sized = {"memory": quantity(limits.memory), "cpu": _cpu(limits.cpus)}
    user = {"runAsNonRoot": True, "runAsUser": SANDBOX_UID, "runAsGroup": SANDBOX_GID}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.profile.image,
        "imagePullPolicy": options.image_pull_policy,
        "command": list(spec.command),
        "args": [],
        "workingDir": WORKDIR,
        # The supervisor's stdin is the attach stream; with stdinOnce it ends when
        # the first attach goes away: the dead-man's switch.
        "stdin": True,
        "stdinOnce": True,
        "tty": False,
        "securityContext": {
            **user,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": options.seccomp(),
            # The runtime's masked and read-only /proc paths stay.
            "procMount": "Default",
        },
        "resources": {
            "requests": dict(sized),
            "limits": {**sized, "ephemeral-storage": quantity(options.ephemeral_storage)},
        },
        "volumeMounts": [
            {"name": "work", "mountPath": WORKDIR},
            {"name": "runtime", "mountPath": RUNTIME_DIR},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "shareProcessNamespace": False,
        "hostname": "sandbox",
        "dnsPolicy": "None",
        "dnsConfig": {"nameservers": [DNS_NAMESERVER]},
        # Whole seconds, rounded up: never shorter than the lifetime its labels state.
        "activeDeadlineSeconds": max(1, math.ceil(spec.lifetime)),
        "terminationGracePeriodSeconds": 0,
        "securityContext": {**user, "seccompProfile": options.seccomp()},
        "containers": [container],
        "volumes": [
            _memory_dir("work", limits.workdir),
            _memory_dir("runtime", RUNTIME_DIR_SIZE),
            _memory_dir("shm", min(limits.workdir, SHM_MAX)),
        ],
    }
    if options.runtime_class:
        pod_spec["runtimeClassName"] = options.runtime_class
    if options.node_selector:
        pod_spec["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in options.tolerations]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def _memory_dir(name: str, size: int) -> dict[str, Any]:
    # Memory-backed, so what is written there counts against the Pod's memory, as a
    # tmpfs does against a container's.
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": quantity(size)}}


def hardening_faults(pod: Mapping[str, Any]) -> list[str]:
    """Every hardening field a Pod lacks or weakens, one line each; empty: none.

    What a test kubelet refuses a Pod for, and what the parity test holds the
    builder to. It asks for each field explicitly, not for the API's defaults.
    """
    faults: list[str] = []
    spec = pod.get("spec") or {}

    def expect(where: str, value: Any, wanted: Any) -> None:
        if value != wanted or type(value) is not type(wanted):
            faults.append(f"{where} is {value!r}, not {wanted!r}")

    for key, wanted in (
        ("restartPolicy", "Never"),
        ("automountServiceAccountToken", False),
        ("enableServiceLinks", False),
        ("hostNetwork", False),
        ("hostPID", False),
        ("hostIPC", False),
        ("shareProcessNamespace", False),
        ("dnsPolicy", "None"),
        ("dnsConfig", {"nameservers": [DNS_NAMESERVER]}),
        ("terminationGracePeriodSeconds", 0),
    ):
        expect(f"spec.{key}", spec.get(key), wanted)
    deadline = spec.get("activeDeadlineSeconds")
    if not isinstance(deadline, int) or isinstance(deadline, bool) or deadline < 1:
        faults.append(f"spec.activeDeadlineSeconds is {deadline!r}, not a number of seconds")
    faults += _security_faults("spec.securityContext", spec.get("securityContext"), pod=True)
    if ((pod.get("metadata") or {}).get("labels") or {}).get(MANAGED) != "1":
        faults.append(f"metadata.labels[{MANAGED}] is not '1'")
    for extra in ("initContainers", "ephemeralContainers"):
        if spec.get(extra):
            faults.append(f"spec.{extra} is set; a sandbox has one container")
    containers = spec.get("containers") or []
    if len(containers) != 1:
        return [*faults, f"spec.containers has {len(containers)} containers, not 1"]
    (container,) = containers
    where = "spec.containers[0]"
    for key, wanted in (("stdin", True), ("stdinOnce", True), ("tty", False)):
        expect(f"{where}.{key}", container.get(key), wanted)
    for extra in ("env", "envFrom", "ports", "volumeDevices"):
        if container.get(extra):
            faults.append(f"{where}.{extra} is set; a sandbox gets none")
    faults += _security_faults(f"{where}.securityContext", container.get("securityContext"))
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for resource in ("memory", "cpu"):
        if not limits.get(resource) or requests.get(resource) != limits.get(resource):
            faults.append(f"{where}.resources: {resource} needs requests equal to limits")
    if not limits.get("ephemeral-storage"):
        faults.append(f"{where}.resources.limits has no ephemeral-storage")
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for volume in volumes.values():
        empty = volume.get("emptyDir")
        if set(volume) != {"name", "emptyDir"} or not empty or empty.get("medium") != "Memory":
            faults.append(f"volume {volume.get('name')!r} is not a memory-backed emptyDir")
        elif not empty.get("sizeLimit"):
            faults.append(f"volume {volume.get('name')!r} has no sizeLimit")
    mounted = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts") or []}
    for path in (WORKDIR, RUNTIME_DIR):
        if mounted.get(path) not in volumes:
            faults.append(f"{path} is not mounted from a memory-backed emptyDir")
    return faults


def _security_faults(where: str, context: Any, *, pod: bool = False) -> list[str]:
    context = context if isinstance(context, Mapping) else {}
    wanted: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": SANDBOX_UID,
        "runAsGroup": SANDBOX_GID,
    }
    if not pod:
        wanted.update(
            readOnlyRootFilesystem=True,
            allowPrivilegeEscalation=False,
            privileged=False,
            capabilities={"drop": ["ALL"]},
            procMount="Default",
        )
    faults = [
        f"{where}.{key} is {context.get(key)!r}, not {value!r}"
        for key, value in wanted.items()
        if context.get(key) != value or type(context.get(key)) is not type(value)
    ]
    seccomp = context.get("seccompProfile") or {}
    if seccomp.get("type") not in _SECCOMP_TYPES or (
        seccomp.get("type") == "Localhost" and not seccomp.get("localhostProfile")
    ):
        faults.append(f"{where}.seccompProfile is {seccomp!r}, not RuntimeDefault or Localhost")
    return faults
