"""The Pod a run gets, with no cluster: its labels, its options, and that it needs no client."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic.core.errors import InvalidValueError
from codedock_magic.core.limits import ContainerLimits
from codedock_magic.core.profile import Profile
from codedock_magic.engines.base import SandboxSpec
from codedock_magic.engines.kubernetes import (
    OwnerReference,
    PodOptions,
    build_pod,
    hardening_faults,
    pod_labels,
    split_labels,
)
from codedock_magic.engines.kubernetes.pods import quantity
from codedock_magic.engines.labels import MANAGED, PID_NAMESPACE, SESSION, make_labels

LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
KEYS = st.from_regex(
    r"\A([a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,20}[A-Za-z0-9])?\Z"
)


def spec(lifetime: float | None = 30.0, **labels: str) -> SandboxSpec:
    return SandboxSpec(Profile(), ["python3"], labels, lifetime=lifetime)


@given(st.dictionaries(KEYS, st.text(max_size=80)))
def test_labels_are_valid_kubernetes_labels_and_nothing_is_lost(labels: dict[str, str]) -> None:
    kept, annotated = split_labels(labels)
    assert all(LABEL_VALUE.match(value) for value in kept.values())
    assert not set(kept) & set(annotated)
    assert {**kept, **annotated} == labels


@given(
    memory=st.integers(16 * 1024**2, 64 * 1024**3),
    cpus=st.floats(0.01, 64),
    pids=st.integers(4, 4096),
    workdir=st.integers(1024**2, 8 * 1024**3),
    lifetime=st.floats(0.001, 7 * 24 * 3600.0),
)
def test_every_pod_keeps_every_hardening_field(
    memory: int, cpus: float, pids: int, workdir: int, lifetime: float
) -> None:
    limits = ContainerLimits(memory=memory, cpus=cpus, pids=pids, workdir=workdir)
    run = SandboxSpec(Profile(limits=limits), ["python3"], make_labels(lifetime), lifetime=lifetime)
    pod = build_pod(run, PodOptions())
    assert hardening_faults(pod) == []
    assert pod["spec"]["activeDeadlineSeconds"] >= lifetime
    assert pod_labels(pod) == {**run.labels, MANAGED: "1"}
    assert all(LABEL_VALUE.match(v) for v in pod["metadata"]["labels"].values())


def test_the_engines_own_labels_find_the_pod_and_the_rest_are_annotations() -> None:
    labels = make_labels(30, engine="kubernetes")
    labels[PID_NAMESPACE] = "pid:[4026531836]"
    pod = build_pod(spec(**labels), PodOptions())
    assert pod["metadata"]["labels"][MANAGED] == "1"
    assert pod["metadata"]["labels"][SESSION] == labels[SESSION]
    assert pod["metadata"]["annotations"] == {PID_NAMESPACE: "pid:[4026531836]"}


def test_a_pod_without_labels_is_still_managed() -> None:
    pod = build_pod(spec(), PodOptions())
    assert pod["metadata"]["labels"] == {MANAGED: "1"}
    assert "annotations" not in pod["metadata"]


def test_a_key_valid_nowhere_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="label key"):
        split_labels({"not a key": "1"})
    with pytest.raises(InvalidValueError):
        split_labels({"Upper.Case/x": "1"})


def test_a_pod_always_has_the_clusters_deadline() -> None:
    with pytest.raises(InvalidValueError, match="lifetime"):
        build_pod(spec(lifetime=None), PodOptions())
    assert build_pod(spec(lifetime=0.2), PodOptions())["spec"]["activeDeadlineSeconds"] == 1
    assert build_pod(spec(lifetime=30.01), PodOptions())["spec"]["activeDeadlineSeconds"] == 31


def test_the_api_server_names_it_unless_told() -> None:
    assert build_pod(spec(), PodOptions())["metadata"]["generateName"] == "codedock-"
    named = build_pod(spec(), PodOptions(), name="codedock-abc123")
    assert named["metadata"]["name"] == "codedock-abc123"
    assert "generateName" not in named["metadata"]
    with pytest.raises(InvalidValueError):
        build_pod(spec(), PodOptions(), name="Not_A_Name")


def test_the_options_reach_the_pod() -> None:
    options = PodOptions(
        namespace="sandboxes",
        runtime_class="gvisor",
        image_pull_policy="Never",
        node_selector={"codedock.io/pool": "sandboxes"},
        tolerations=[{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
        seccomp_profile="codedock/sandbox.json",
    )
    pod = build_pod(spec(), options)
    assert pod["metadata"]["namespace"] == "sandboxes"
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert pod["spec"]["nodeSelector"] == {"codedock.io/pool": "sandboxes"}
    assert pod["spec"]["tolerations"][0]["key"] == "sandbox"
    (container,) = pod["spec"]["containers"]
    assert container["imagePullPolicy"] == "Never"
    localhost = {"type": "Localhost", "localhostProfile": "codedock/sandbox.json"}
    assert container["securityContext"]["seccompProfile"] == localhost
    assert pod["spec"]["securityContext"]["seccompProfile"] == localhost
    assert hardening_faults(pod) == []
    plain = build_pod(spec(), PodOptions())
    for key in ("runtimeClassName", "nodeSelector", "tolerations"):
        assert key not in plain["spec"]


@pytest.mark.parametrize(
    "options",
    [
        {"namespace": "Not_A_Namespace"},
        {"image_pull_policy": "Sometimes"},
        {"runtime_class": "no spaces"},
        {"node_selector": {"pool": "not a value"}},
        {"tolerations": {"key": "x"}},
        {"seccomp_profile": "/var/lib/kubelet/seccomp/x.json"},
        {"ephemeral_storage": 10},
    ],
)
def test_a_bad_option_is_named_before_anything_is_made(options: dict[str, object]) -> None:
    with pytest.raises(InvalidValueError, match=next(iter(options))):
        PodOptions(**options)  # type: ignore[arg-type]


def test_the_owner_is_the_services_own_pod_in_the_same_namespace() -> None:
    owner = OwnerReference("codedock-service-7d9f", "0b4e-11", "codedock")
    pod = build_pod(spec(), PodOptions(namespace="codedock", owner=owner))
    assert pod["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "codedock-service-7d9f", "uid": "0b4e-11"}
    ]
    # The garbage collector takes an owner in another namespace as gone, and with it
    # every sandbox at once.
    with pytest.raises(InvalidValueError, match="garbage collector"):
        PodOptions(namespace="sandboxes", owner=owner)


def test_the_owner_comes_from_the_downward_api() -> None:
    environ = {
        "CODEDOCK_POD_NAME": "codedock-service-7d9f",
        "CODEDOCK_POD_UID": "0b4e-11",
        "CODEDOCK_POD_NAMESPACE": "codedock",
    }
    assert OwnerReference.from_environment(environ) == OwnerReference(
        "codedock-service-7d9f", "0b4e-11", "codedock"
    )
    assert OwnerReference.from_environment({}) is None


def test_limits_become_kubernetes_quantities() -> None:
    limits = ContainerLimits(memory="100m", cpus=0.25, workdir="1536k")
    pod = build_pod(SandboxSpec(Profile(limits=limits), ["python3"], lifetime=5), PodOptions())
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"]["memory"] == "100Mi"
    assert container["resources"]["limits"]["cpu"] == "250m"
    volumes = {v["name"]: v["emptyDir"]["sizeLimit"] for v in pod["spec"]["volumes"]}
    assert volumes == {"work": "1536Ki", "runtime": "16Mi", "shm": "1536Ki"}
    assert quantity(1000) == "1000"


def test_the_builder_needs_no_kubernetes_client() -> None:
    probe = textwrap.dedent(
        """
        import sys
        sys.modules["kubernetes"] = None  # any import of the client now fails
        from codedock_magic.core.profile import Profile
        from codedock_magic.engines.base import SandboxSpec
        from codedock_magic.engines.kubernetes import PodOptions, build_pod
        pod = build_pod(SandboxSpec(Profile(), ["python3"], lifetime=5), PodOptions())
        loaded = [m for m, mod in sys.modules.items() if m.startswith("kubernetes") and mod]
        print(pod["kind"], len(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["Pod", "0"]
