"""What an admin applies: deploy/kubernetes and deploy/z2jh, against the API's own schemas.

Every shipped manifest, and the Pods the builder makes, validate offline against the
OpenAPI schemas of three Kubernetes versions (``kubernetes-validate``, strict: an
unknown field fails). Then what no schema says: the Role's least privilege, which
Pods each NetworkPolicy lets talk, and that the files agree with each other and
with the Zero to JupyterHub values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from codedock_magic.core.limits import ContainerLimits
from codedock_magic.core.profile import Profile
from codedock_magic.engines.base import SandboxSpec
from codedock_magic.engines.kubernetes import OwnerReference, PodOptions, build_pod
from codedock_magic.engines.labels import PID_NAMESPACE, make_labels
from codedock_magic.service.app import SandboxService

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
VALUES = ROOT / "deploy" / "z2jh" / "values.yaml"
NEWEST = ".".join(kubernetes_validate.latest_version().split(".")[:2])
VERSIONS = ("1.30", "1.32", NEWEST)
NAMESPACE = "codedock"
HUB_NAMESPACE = "jhub"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kustomization() -> dict[str, Any]:
    return documents(BASE / "kustomization.yaml")[0]


def base() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"] for doc in documents(BASE / name)]


def shipped() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(BASE.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in documents(path):
                yield f"{path.relative_to(BASE)}:{doc['kind']}/{doc['metadata']['name']}", doc


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [d for d in base() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return found


def sandbox_pods() -> list[dict[str, Any]]:
    labels = make_labels(40, engine="kubernetes")
    labels[PID_NAMESPACE] = "pid:[4026531836]"
    limits = ContainerLimits(memory="512m", cpus=1, pids=128, workdir="64m")
    run = SandboxSpec(Profile(limits=limits), ["python3", "-c", "pass"], labels, lifetime=40)
    owner = OwnerReference(
        "codedock-service-5f7c9", "6c1d2a4e-0000-4000-8000-000000000000", NAMESPACE
    )
    return [
        build_pod(run, PodOptions(namespace=NAMESPACE)),
        build_pod(
            run,
            PodOptions(
                namespace=NAMESPACE,
                runtime_class="gvisor",
                image_pull_policy="Always",
                node_selector={"codedock.io/runtime": "gvisor"},
                tolerations=[{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
                seccomp_profile="codedock/sandbox.json",
                owner=owner,
            ),
            name="codedock-0123abcd",
        ),
    ]


# Schemas.


@pytest.mark.parametrize("version", VERSIONS)
def test_every_shipped_manifest_validates(version: str) -> None:
    docs = list(shipped())
    assert len(docs) >= 12
    for where, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} on Kubernetes {version}: {exc}")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_pods_the_builder_makes_validate(version: str) -> None:
    for pod in sandbox_pods():
        kubernetes_validate.validate(pod, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_hubs_network_rules_validate_as_network_policy_rules(version: str) -> None:
    values = documents(VALUES)[0]
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "z2jh-rules"},
        "spec": {
            "podSelector": {},
            "ingress": values["hub"]["networkPolicy"]["ingress"],
            "egress": values["singleuser"]["networkPolicy"]["egress"],
        },
    }
    kubernetes_validate.validate(policy, version, strict=True)


def test_strict_validation_refuses_a_field_the_api_does_not_know() -> None:
    pod = sandbox_pods()[0]
    pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True  # sic
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, NEWEST, strict=True)


def test_the_kustomization_lists_every_file_of_the_base() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert kustomization()["namespace"] == NAMESPACE
    for doc in base():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]


# Least privilege.


def test_the_role_is_least_privilege_and_nothing_is_cluster_wide() -> None:
    kinds = {doc["kind"] for doc in base()}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    roles = [doc for doc in base() if doc["kind"] == "Role"]
    assert len(roles) == 1
    rules = roles[0]["rules"]
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert not any("*" in item for item in rule.get(key, [])), (key, rule)
        assert "nonResourceURLs" not in rule
        assert rule["apiGroups"] == [""]
    granted = {(res, verb) for rule in rules for res in rule["resources"] for verb in rule["verbs"]}
    pods = {("pods", verb) for verb in ("create", "get", "list", "watch", "delete")}
    assert granted == pods | {("pods/attach", "create")}


def test_the_binding_gives_the_role_to_the_services_account_alone() -> None:
    binding = one("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": one("Role")["metadata"]["name"],
    }
    account = one("ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    ]
    template = one("Deployment")["spec"]["template"]["spec"]
    assert template["serviceAccountName"] == account


# Network policies.


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes label selector matches ``labels``."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def policies_for(labels: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        doc["spec"]
        for doc in base()
        if doc["kind"] == "NetworkPolicy" and selects(doc["spec"]["podSelector"], labels)
    ]


def test_sandbox_pods_get_no_ingress_and_no_egress() -> None:
    for pod in sandbox_pods():
        found = policies_for(pod["metadata"]["labels"])
        assert found, "no NetworkPolicy selects the sandbox Pods"
        for policy in found:
            assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
            assert not policy.get("ingress") and not policy.get("egress")


def test_sandbox_pods_stay_isolated_even_with_the_services_labels() -> None:
    # A sandbox that carried the service's labels would still not be let through.
    service_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for pod in sandbox_pods():
        labels = {**service_labels, **pod["metadata"]["labels"]}
        assert all(not p.get("ingress") and not p.get("egress") for p in policies_for(labels))


def test_the_service_is_reached_only_from_user_servers_and_reaches_only_the_hub() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    found = policies_for(labels)
    allowing = [p for p in found if p.get("ingress") or p.get("egress")]
    assert len(allowing) == 1
    (policy,) = allowing
    (ingress,) = policy["ingress"]
    (peer,) = ingress["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": HUB_NAMESPACE
    }
    assert peer["podSelector"]["matchLabels"] == {"component": "singleuser-server"}
    assert ingress["ports"] == [{"port": 8765, "protocol": "TCP"}]
    peers = [peer for rule in policy["egress"] for peer in rule.get("to", [])]
    assert {"component": "hub"} in [p["podSelector"]["matchLabels"] for p in peers]
    assert all("ipBlock" not in p for p in peers)
    for rule in policy["egress"]:
        if "to" not in rule:
            # The API server's ports, the one rule no selector can narrow.
            assert {p["port"] for p in rule["ports"]} == {443, 6443}


# The service's Deployment.


def test_the_service_pod_is_hardened_and_meets_its_limit_range() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not (pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"))
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert container["args"][:1] == ["serve"] and "--ip=0.0.0.0" in container["args"]


def test_every_pod_here_fits_the_limit_range() -> None:
    (rule,) = one("LimitRange")["spec"]["limits"]
    assert rule["maxLimitRequestRatio"] == {"cpu": "1", "memory": "1"}
    pods = [one("Deployment")["spec"]["template"]["spec"], *(p["spec"] for p in sandbox_pods())]
    for pod in pods:
        for container in pod["containers"]:
            requests = container["resources"]["requests"]
            limits = container["resources"]["limits"]
            for resource in ("cpu", "memory"):
                assert requests[resource] == limits[resource]
            assert "ephemeral-storage" in limits


def test_the_service_knows_its_own_pod_from_the_downward_api() -> None:
    (container,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    fields = {
        env["name"]: env["valueFrom"]["fieldRef"]["fieldPath"]
        for env in container["env"]
        if "fieldRef" in env.get("valueFrom", {})
    }
    environ = {name: f"value-of-{path.split('.')[-1]}" for name, path in fields.items()}
    environ["CODEDOCK_POD_NAMESPACE"] = NAMESPACE
    owner = OwnerReference.from_environment(environ)
    assert owner is not None
    assert (owner.name, owner.uid) == ("value-of-name", "value-of-uid")
    assert fields["CODEDOCK_POD_NAMESPACE"] == "metadata.namespace"


def test_the_service_config_names_only_settings_the_service_has() -> None:
    config = one("ConfigMap")["data"]["codedock_service_config.py"]
    seen: dict[str, Any] = {}

    class Section:
        def __setattr__(self, name: str, value: Any) -> None:
            seen[name] = value

    class Root:
        SandboxService = Section()

    exec(config, {"c": Root()})
    known = set(SandboxService.class_trait_names(config=True))
    assert set(seen) <= known, set(seen) - known
    assert seen["engine"] == "kubernetes"
    assert seen["engine_options"]["namespace"] == NAMESPACE
    (container,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_arg = next(a for a in container["args"] if a.startswith("--config="))
    assert config_arg == f"--config={mounted['config']}/codedock_service_config.py"


def test_the_service_selects_the_deployments_pods_on_its_port() -> None:
    service = one("Service")
    template = one("Deployment")["spec"]["template"]
    assert service["spec"]["type"] == "ClusterIP"
    assert selects({"matchLabels": service["spec"]["selector"]}, template["metadata"]["labels"])
    (port,) = service["spec"]["ports"]
    (container,) = template["spec"]["containers"]
    assert port["targetPort"] in [p["name"] for p in container["ports"]]


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    labels = one("Namespace")["metadata"]["labels"]
    assert one("Namespace")["metadata"]["name"] == NAMESPACE
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


# Zero to JupyterHub.


def test_the_hub_values_point_users_at_the_service() -> None:
    values = documents(VALUES)[0]
    service = one("Service")
    url = f"http://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:8765"
    assert service["spec"]["ports"][0]["port"] == 8765
    assert values["hub"]["services"]["codedock"]["url"] == url
    assert values["singleuser"]["extraEnv"]["CODEDOCK_SERVICE_URL"] == url
    service_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    (egress,) = values["singleuser"]["networkPolicy"]["egress"]
    (peer,) = egress["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NAMESPACE}
    assert selects(peer["podSelector"], service_labels)
    assert egress["ports"] == [{"port": 8765, "protocol": "TCP"}]
    (ingress,) = values["hub"]["networkPolicy"]["ingress"]
    assert selects(ingress["from"][0]["podSelector"], service_labels)
    # The JUPYTERHUB_API_URL the service is given is the hub these values let it reach.
    (container,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JUPYTERHUB_API_URL"] == f"http://hub.{HUB_NAMESPACE}.svc.cluster.local:8081/hub/api"
    assert ingress["ports"] == [{"port": 8081, "protocol": "TCP"}]


def test_the_hub_values_grant_what_the_hub_fragment_grants() -> None:
    values = documents(VALUES)[0]["hub"]
    roles = {name: role["scopes"] for name, role in values["loadRoles"].items()}
    assert roles["codedock-service"] == []
    assert values["loadRoles"]["codedock-service"]["services"] == ["codedock"]
    assert "access:services!service=codedock" in roles["user"]
    scopes = values["config"]["Spawner"]["server_token_scopes"]
    assert "access:services!service=codedock" in scopes
    fragment = (ROOT / "codedock_magic" / "data" / "jupyterhub_config.py").read_text()
    for scope in scopes:
        assert f'"{scope}"' in fragment
