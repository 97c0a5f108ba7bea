"""The hardening parity: each property of the Docker path against its Pod counterpart.

The Docker side is read from what ``engines/docker.py`` actually hands docker-py
(its ``create`` runs against a recording client: no engine needed); the Pod side
from :func:`build_pod`. Each row holds both, field by field, and says plainly what
a Pod spec cannot say and who then must. A setting that ``engines/docker.py``
starts to pass fails :func:`test_every_docker_setting_has_its_row` until it gets
a row here; a hardening field dropped on either side fails its row.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import docker
import pytest

from codedock_magic.core.limits import ContainerLimits
from codedock_magic.core.profile import Profile
from codedock_magic.engines.base import (
    MASKED_PATHS,
    RUNTIME_DIR,
    SANDBOX_GID,
    SANDBOX_UID,
    WORKDIR,
    SandboxSpec,
)
from codedock_magic.engines.docker import DockerEngine
from codedock_magic.engines.kubernetes.pods import (
    RUNTIME_DIR_SIZE,
    SHM_MAX,
    PodOptions,
    build_pod,
    hardening_faults,
    pod_labels,
)
from codedock_magic.engines.labels import make_labels
from codedock_magic.engines.uids import DEFAULT_UID_RANGE, UID_LABEL, UidRange

LIMITS = ContainerLimits(memory="300m", cpus=0.5, pids=50, workdir="32m")
SPEC = SandboxSpec(
    Profile(limits=LIMITS),
    ["python3", "-c", "pass"],
    make_labels(42.3, engine="kubernetes"),
    lifetime=42.3,
)
RUNTIME = "runsc"

#: Docker's own masked paths, which a runtime's default (containerd's, CRI-O's)
#: also masks; a Pod keeps them with ``procMount: Default``.
RUNTIME_DEFAULT_MASKED = MASKED_PATHS[:11]
#: Ours on top, which no Pod field can ask a runtime to mask.
ONLY_DOCKER_MASKS = [
    "/proc/cmdline",
    "/proc/modules",
    "/proc/sys/kernel/random/boot_id",
    "/proc/slabinfo",
    "/proc/vmallocinfo",
]

Check = Any  # a value the field must equal, or a predicate it must pass
Path = tuple[str, ...]
C: Path = ("spec", "containers", "[sandbox]")
SC: Path = (*C, "securityContext")
POD_SC: Path = ("spec", "securityContext")


_APICLIENT = docker.APIClient


class _Recorder:
    """docker-py's client as the engine makes it: the host config is docker-py's own, the
    container is only recorded, and the engine's host has 4 CPUs."""

    def __init__(self, **_: Any) -> None:
        self.real = _APICLIENT(base_url="unix:///nonexistent.sock", version="1.44")
        self.created: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        return {"NCPU": 4}

    def create_host_config(self, **kwargs: Any) -> Any:
        return self.real.create_host_config(**kwargs)

    def create_container(self, image: str, **kwargs: Any) -> dict[str, str]:
        self.created = {"image": image, **kwargs}
        return {"Id": "recorded"}


def docker_settings() -> dict[str, Any]:
    """What the Docker engine passes for ``SPEC``: its create kwargs, and HostConfig.* keys."""
    with mock.patch.object(docker, "APIClient", _Recorder):
        engine = DockerEngine(runtime=RUNTIME)
        engine.create(SPEC)
        created = dict(engine.api.created)  # type: ignore[attr-defined]
    host = created.pop("host_config")
    return {**created, **{f"HostConfig.{key}": value for key, value in host.items()}}


def _owned_by_its_uid(options: str) -> bool:
    """Whether a work dir's tmpfs options give it to a uid of the sandbox's own, from the range."""
    match = re.fullmatch(rf"size={LIMITS.workdir},uid=(\d+),gid=(\d+),mode=0700", options)
    if match is None or match[1] != match[2]:
        return False
    uids = UidRange.parse(DEFAULT_UID_RANGE)
    return uids.first <= int(match[1]) <= uids.last


def the_pod() -> dict[str, Any]:
    return build_pod(SPEC, PodOptions(namespace="codedock", runtime_class="gvisor"))


def _step(node: Any, segment: str) -> Any:
    if segment.startswith("["):
        named = [item for item in node or [] if item.get("name") == segment[1:-1]]
        return named[0] if named else None
    return node.get(segment) if isinstance(node, Mapping) else None


def at(pod: Mapping[str, Any], path: Path) -> Any:
    node: Any = pod
    for segment in path:
        node = _step(node, segment)
    return node


def without(pod: Mapping[str, Any], path: Path) -> dict[str, Any]:
    changed = copy.deepcopy(dict(pod))
    parent = at(changed, path[:-1])
    last = path[-1]
    if last.startswith("["):
        parent.remove(_step(parent, last))
    else:
        del parent[last]
    return changed


def holds(value: Any, check: Check) -> bool:
    return bool(check(value)) if callable(check) else value == check


def mount(path: str) -> Callable[[Any], bool]:
    def mounted(mounts: Any) -> bool:
        return any(m.get("mountPath") == path for m in mounts or [])

    return mounted


@dataclass(frozen=True)
class Row:
    """One hardening property: its Docker settings, its Pod fields, and what a Pod cannot say.

    ``refused``: the Pod fields a test kubelet refuses a Pod without
    (:func:`hardening_faults` names each).
    """

    name: str
    docker: Mapping[str, Check]
    pod: Mapping[Path, Check] = field(default_factory=dict)
    gap: str = ""
    refused: tuple[Path, ...] = ()


ROWS = [
    Row(
        "no network",
        {"HostConfig.NetworkMode": "none", "network_disabled": True},
        {
            ("spec", "hostNetwork"): False,
            ("spec", "dnsPolicy"): "None",
            ("spec", "dnsConfig"): {"nameservers": ["127.0.0.1"]},
            ("spec", "enableServiceLinks"): False,
            ("spec", "automountServiceAccountToken"): False,
        },
        gap="a Pod always has a network: deploy/kubernetes/networkpolicies.yaml denies every "
        "sandbox Pod all ingress and egress, which only a CNI that enforces NetworkPolicy "
        "(Calico, Cilium) makes real; besides, no usable DNS, no service links, no token",
        refused=(
            ("spec", "hostNetwork"),
            ("spec", "dnsPolicy"),
            ("spec", "dnsConfig"),
            ("spec", "enableServiceLinks"),
            ("spec", "automountServiceAccountToken"),
        ),
    ),
    Row(
        "no host namespaces",
        {
            "HostConfig.NetworkMode": "none",
            "HostConfig.PidMode": None,
            "HostConfig.IpcMode": None,
            "HostConfig.UsernsMode": None,
            "HostConfig.Privileged": None,
        },
        {("spec", "hostPID"): False, ("spec", "hostIPC"): False, (*SC, "privileged"): False},
        refused=(("spec", "hostPID"), ("spec", "hostIPC"), (*SC, "privileged")),
    ),
    Row(
        "read-only root",
        {"HostConfig.ReadonlyRootfs": True},
        {(*SC, "readOnlyRootFilesystem"): True},
        refused=((*SC, "readOnlyRootFilesystem"),),
    ),
    Row(
        "capabilities",
        {"HostConfig.CapDrop": ["ALL"], "HostConfig.CapAdd": ["SETUID", "SETGID"]},
        {(*SC, "capabilities"): {"drop": ["ALL"]}},
        gap="Docker adds SETUID and SETGID for the root supervisor to drop to the sandbox "
        "user; a Pod adds none, since its supervisor already runs as that user",
        refused=((*SC, "capabilities"),),
    ),
    Row(
        "no new privileges",
        {"HostConfig.SecurityOpt": lambda opts: "no-new-privileges" in opts},
        {(*SC, "allowPrivilegeEscalation"): False},
        refused=((*SC, "allowPrivilegeEscalation"),),
    ),
    Row(
        "seccomp",
        # The engine's default profile: never unconfined, never replaced.
        {"HostConfig.SecurityOpt": lambda opts: not any("seccomp" in o for o in opts)},
        {
            (*SC, "seccompProfile"): {"type": "RuntimeDefault"},
            (*POD_SC, "seccompProfile"): {"type": "RuntimeDefault"},
        },
        refused=((*SC, "seccompProfile"), (*POD_SC, "seccompProfile")),
    ),
    Row(
        "user",
        {"user": "0:0"},
        {
            (*SC, "runAsNonRoot"): True,
            (*SC, "runAsUser"): SANDBOX_UID,
            (*SC, "runAsGroup"): SANDBOX_GID,
            (*POD_SC, "runAsNonRoot"): True,
            (*POD_SC, "runAsUser"): SANDBOX_UID,
            (*POD_SC, "runAsGroup"): SANDBOX_GID,
        },
        gap="on Docker the supervisor starts as root and the program runs as nobody; in a Pod "
        "both run as nobody (runAsNonRoot), so the program shares its supervisor's uid",
        refused=(
            (*SC, "runAsNonRoot"),
            (*SC, "runAsUser"),
            (*SC, "runAsGroup"),
            (*POD_SC, "runAsNonRoot"),
            (*POD_SC, "runAsUser"),
            (*POD_SC, "runAsGroup"),
        ),
    ),
    Row(
        "pids",
        # Under gVisor the engine adds room for the runtime's own threads; the
        # supervisor sets the program's own RLIMIT_NPROC to the limit itself.
        {"HostConfig.PidsLimit": DockerEngine(runtime=RUNTIME).host_pids(LIMITS.pids)},
        gap="a Pod spec has no pids limit: the kubelet's podPidsLimit, set by the admin",
    ),
    Row(
        "memory, without swap",
        {"HostConfig.Memory": LIMITS.memory, "HostConfig.MemorySwap": LIMITS.memory},
        {
            (*C, "resources", "limits", "memory"): "300Mi",
            (*C, "resources", "requests", "memory"): "300Mi",
        },
        gap="requests equal to limits make the Pod's QoS Guaranteed, which never swaps",
        refused=((*C, "resources", "limits", "memory"), (*C, "resources", "requests", "memory")),
    ),
    Row(
        "cpus",
        {"HostConfig.NanoCpus": 500_000_000},
        {
            (*C, "resources", "limits", "cpu"): "500m",
            (*C, "resources", "requests", "cpu"): "500m",
        },
        refused=((*C, "resources", "limits", "cpu"), (*C, "resources", "requests", "cpu")),
    ),
    Row(
        "the work dir",
        {
            "HostConfig.Tmpfs": lambda t: _owned_by_its_uid(t[WORKDIR]),
            "working_dir": WORKDIR,
        },
        {
            ("spec", "volumes", "[work]", "emptyDir"): {"medium": "Memory", "sizeLimit": "32Mi"},
            (*C, "volumeMounts"): mount(WORKDIR),
            (*C, "workingDir"): WORKDIR,
        },
        gap="an emptyDir cannot say its mode (0700) or owner; in a Pod only the sandbox user "
        "is there to use it",
        refused=(("spec", "volumes", "[work]"),),
    ),
    Row(
        "the runtime dir",
        {
            "HostConfig.Tmpfs": lambda t: (
                t[RUNTIME_DIR]
                == f"size={RUNTIME_DIR_SIZE // 1024**2}m,uid=0,gid=0,mode=0755,noexec,nosuid,nodev"
            )
        },
        {
            ("spec", "volumes", "[runtime]", "emptyDir"): {
                "medium": "Memory",
                "sizeLimit": "16Mi",
            },
            (*C, "volumeMounts"): mount(RUNTIME_DIR),
        },
        gap="an emptyDir cannot say noexec, nosuid, nodev or a root owner: in a Pod the "
        "program can write the supervisor's dir",
        refused=(("spec", "volumes", "[runtime]"),),
    ),
    Row(
        "shared memory",
        {"HostConfig.ShmSize": min(LIMITS.workdir, SHM_MAX)},
        {
            ("spec", "volumes", "[shm]", "emptyDir"): {"medium": "Memory", "sizeLimit": "32Mi"},
            (*C, "volumeMounts"): mount("/dev/shm"),
        },
        refused=(("spec", "volumes", "[shm]", "emptyDir", "sizeLimit"),),
    ),
    Row(
        "masked paths",
        {"HostConfig.MaskedPaths": RUNTIME_DEFAULT_MASKED + ONLY_DOCKER_MASKS},
        {(*SC, "procMount"): "Default"},
        gap="a Pod keeps the runtime's default masked paths (procMount: Default), not ours: "
        + ", ".join(ONLY_DOCKER_MASKS)
        + " stay readable unless the RuntimeClass hides them (gVisor's /proc does)",
        refused=((*SC, "procMount"),),
    ),
    Row(
        "an init",
        {"HostConfig.Init": True},
        {("spec", "shareProcessNamespace"): False},
        gap="a Pod has no init flag: the supervisor is PID 1 and reaps orphans itself",
        refused=(("spec", "shareProcessNamespace"),),
    ),
    Row(
        "the runtime",
        {"HostConfig.Runtime": RUNTIME},
        {("spec", "runtimeClassName"): "gvisor"},
    ),
    Row(
        "removed when it ends",
        {"HostConfig.AutoRemove": True},
        {
            ("spec", "restartPolicy"): "Never",
            ("spec", "activeDeadlineSeconds"): 43,
            ("spec", "terminationGracePeriodSeconds"): 0,
        },
        gap="a Pod is never removed by itself: the engine deletes it, activeDeadlineSeconds "
        "fails one that runs too long, an owner reference to the service's Pod lets the "
        "garbage collector take it, and the sweep finds the rest by label",
        refused=(
            ("spec", "restartPolicy"),
            ("spec", "activeDeadlineSeconds"),
            ("spec", "terminationGracePeriodSeconds"),
        ),
    ),
    Row(
        "no output on the host's disk",
        {"HostConfig.LogConfig": {"Type": "none", "Config": {}}},
        {(*C, "resources", "limits", "ephemeral-storage"): "64Mi"},
        gap="the kubelet always logs a container's output to the node's disk (rotated at its "
        "containerLogMaxSize); the ephemeral-storage limit bounds what one sandbox keeps there",
        refused=((*C, "resources", "limits", "ephemeral-storage"),),
    ),
    Row(
        "stdin, the dead-man's switch",
        {"stdin_open": True, "tty": False},
        {(*C, "stdin"): True, (*C, "stdinOnce"): True, (*C, "tty"): False},
        refused=((*C, "stdin"), (*C, "stdinOnce"), (*C, "tty")),
    ),
    Row(
        "none of the host's environment",
        {"use_config_proxy": False, "environment": None},
        {(*C, "env"): None, (*C, "envFrom"): None, ("spec", "enableServiceLinks"): False},
        refused=(("spec", "enableServiceLinks"),),
    ),
    Row("hostname", {"hostname": "sandbox"}, {("spec", "hostname"): "sandbox"}),
    Row(
        "what runs",
        {"image": SPEC.profile.image, "entrypoint": list(SPEC.command), "command": []},
        {(*C, "image"): SPEC.profile.image, (*C, "command"): list(SPEC.command), (*C, "args"): []},
    ),
    Row(
        "labels",
        {"labels": lambda labels: labels.items() >= SPEC.labels.items() and UID_LABEL in labels},
        {("metadata",): lambda meta: pod_labels({"metadata": meta}) == dict(SPEC.labels)},
    ),
    Row(
        "a uid of its own",
        # The name claims the uid: the engine refuses a second container of that name.
        {"name": lambda name: name.startswith("codedock-uid-")},
        gap="a Pod's name claims nothing: until the Kubernetes engine claims a uid per Pod "
        "(and sets runAsUser to it), every Pod's program runs as the one sandbox uid",
    ),
    Row(
        "docker-py's own plumbing",
        # Attached by a socket, not a detached run: nothing of hardening.
        {"detach": False},
    ),
]


def test_the_docker_engine_passes_what_each_row_holds() -> None:
    settings = docker_settings()
    wrong = [
        f"{row.name}: {key} is {settings.get(key)!r}"
        for row in ROWS
        for key, check in row.docker.items()
        if not holds(settings.get(key), check)
    ]
    assert wrong == []


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_each_property_has_its_pod_counterpart_or_a_named_gap(row: Row) -> None:
    pod = the_pod()
    assert row.pod or row.gap or row.name == "docker-py's own plumbing"
    for path, check in row.pod.items():
        assert holds(at(pod, path), check), f"{row.name}: {'.'.join(path)} is {at(pod, path)!r}"


def test_every_docker_setting_has_its_row() -> None:
    covered = {key for row in ROWS for key in row.docker}
    new = sorted(set(docker_settings()) - covered)
    assert new == [], (
        f"engines/docker.py now passes {new}: give each its Pod counterpart in "
        "engines/kubernetes/pods.py, or name here why a Pod cannot say it"
    )


def test_the_gaps_are_named_where_the_issue_says() -> None:
    gaps = {row.name: row.gap for row in ROWS}
    assert "podPidsLimit" in gaps["pids"]
    assert "NetworkPolicy" in gaps["no network"]
    assert "procMount: Default" in gaps["masked paths"]
    assert set(MASKED_PATHS) == set(RUNTIME_DEFAULT_MASKED) | set(ONLY_DOCKER_MASKS)


@pytest.mark.parametrize(
    "path",
    [path for row in ROWS for path in row.refused],
    ids=[".".join(path) for row in ROWS for path in row.refused],
)
def test_a_pod_without_any_hardening_field_is_refused(path: Path) -> None:
    pod = the_pod()
    assert hardening_faults(pod) == []
    assert at(pod, path) is not None
    assert hardening_faults(without(pod, path)) != []


@pytest.mark.parametrize(
    ("path", "weaker"),
    [
        ((*SC, "capabilities"), {"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
        ((*SC, "privileged"), True),
        ((*SC, "runAsUser"), 0),
        ((*SC, "seccompProfile"), {"type": "Unconfined"}),
        ((*SC, "procMount"), "Unmasked"),
        ((*C, "resources", "requests", "memory"), "1Mi"),
        (("spec", "hostNetwork"), True),
        (("spec", "dnsConfig"), {"nameservers": ["10.0.0.10"]}),
        (("spec", "volumes", "[work]", "emptyDir"), {"sizeLimit": "32Mi"}),
        (("spec", "automountServiceAccountToken"), True),
    ],
)
def test_a_pod_with_a_weakened_field_is_refused(path: Path, weaker: Any) -> None:
    pod = the_pod()
    at(pod, path[:-1])[path[-1]] = weaker
    assert hardening_faults(pod) != []


def test_a_second_container_or_a_host_volume_is_refused() -> None:
    pod = the_pod()
    pod["spec"]["initContainers"] = [{"name": "x", "image": "busybox"}]
    assert any("initContainers" in fault for fault in hardening_faults(pod))
    pod = the_pod()
    pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    assert any("'host'" in fault for fault in hardening_faults(pod))
