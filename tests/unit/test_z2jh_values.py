"""deploy/z2jh/values.yaml against the Zero to JupyterHub chart's own values schema.

Helm merges an admin's values over the chart's defaults and validates the result
against the chart's ``values.schema.json``; this does the same, offline, with the
schema and defaults of chart 4.4.0 kept under ``tests/data`` (BSD-3-Clause, Project
Jupyter Contributors; made from the chart's ``values.schema.yaml`` as the chart's
own ``tools/generate-json-schema.py`` makes it). The schema leaves ``hub.services``
entries open, so those are held against JupyterHub's own service model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from jupyterhub.services.service import Service

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SCHEMA = json.loads((DATA / "z2jh-4.4.0-values.schema.json").read_text())
DEFAULTS = yaml.safe_load((DATA / "z2jh-4.4.0-values.yaml").read_text())
VALUES = yaml.safe_load((ROOT / "deploy" / "z2jh" / "values.yaml").read_text())
SERVICE_URL = "http://codedock.codedock.svc.cluster.local:8765"


def merged(base: Any, over: Any) -> Any:
    """Helm's merge of values: maps merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in over.items()}}
    return over


def errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)
    ]


def test_the_values_validate_against_the_charts_schema() -> None:
    assert errors(DEFAULTS) == []
    assert errors(merged(DEFAULTS, VALUES)) == []


@pytest.mark.parametrize(
    "typo",
    [
        {"singleuser": {"networkPolicy": {"egres": []}}},
        {"hub": {"networkPolicy": {"ingres": []}}},
        {"hub": {"loadRole": {}}},
    ],
)
def test_the_schema_catches_a_typo_in_values_like_ours(typo: dict[str, Any]) -> None:
    assert errors(merged(merged(DEFAULTS, VALUES), typo))


def test_the_service_is_one_jupyterhub_knows_at_its_cluster_url() -> None:
    service = VALUES["hub"]["services"]["codedock"]
    # The chart sets the name from the key and the token from apiToken or its secret.
    known = set(Service.class_trait_names()) | {"apiToken"}
    assert set(service) <= known, set(service) - known
    assert service["url"] == SERVICE_URL
    assert "command" not in service  # an external service: the hub runs nothing
    assert VALUES["singleuser"]["extraEnv"]["CODEDOCK_SERVICE_URL"] == SERVICE_URL


def test_user_pods_may_reach_the_service_though_private_addresses_are_closed() -> None:
    # Since chart 2.0 user pods may not reach private addresses by default, which is
    # where a ClusterIP lives: the values open the service's Pods, and nothing else.
    defaults = DEFAULTS["singleuser"]["networkPolicy"]
    assert defaults["egressAllowRules"]["privateIPs"] is False
    policy = merged(defaults, VALUES["singleuser"]["networkPolicy"])
    assert policy["egressAllowRules"]["privateIPs"] is False
    (rule,) = policy["egress"]
    assert rule["ports"] == [{"port": 8765, "protocol": "TCP"}]
    (peer,) = rule["to"]
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "codedock-service"}
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "codedock"}


def test_the_service_knows_the_name_the_hub_registers_it_by() -> None:
    # Without JUPYTERHUB_SERVICE_NAME the service would not ask for its access scope,
    # and any token the hub vouches for would do.
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["JUPYTERHUB_SERVICE_NAME"] in VALUES["hub"]["services"]
