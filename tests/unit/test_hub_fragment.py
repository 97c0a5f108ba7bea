"""The hub fragment's two modes, as JupyterHub's config loader reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from traitlets.config.loader import PyFileConfigLoader

from codedock_magic.core.shipped import hub_fragment

TOKEN = "a" * 64


def load(tmp_path: Path) -> Any:
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "c.JupyterHub.services = []\nc.JupyterHub.load_roles = []\n"
        f"load_subconfig({str(hub_fragment())!r})\n"
    )
    return PyFileConfigLoader(config.name, path=str(tmp_path)).load_config()


def test_by_default_the_hub_starts_the_service_on_loopback_with_no_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODEDOCK_SERVICE_URL", raising=False)
    monkeypatch.setenv("CODEDOCK_SERVICE_PORT", "8799")
    loaded = load(tmp_path)
    (service,) = loaded.JupyterHub.services
    assert "url" not in service
    assert "--ip=127.0.0.1" in service["command"] and "--port=8799" in service["command"]
    environment = loaded.Spawner.environment.get_value({})
    assert environment["CODEDOCK_SERVICE_URL"] == "http://127.0.0.1:8799"


def test_a_service_at_a_url_is_registered_by_it_and_started_by_nobody(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://codedock.codedock.svc.cluster.local:8765"
    monkeypatch.setenv("CODEDOCK_SERVICE_URL", url + "/")
    monkeypatch.setenv("CODEDOCK_SERVICE_TOKEN", TOKEN)
    loaded = load(tmp_path)
    (service,) = loaded.JupyterHub.services
    assert service == {"name": "codedock", "url": url, "api_token": TOKEN, "display": False}
    assert loaded.Spawner.environment.get_value({})["CODEDOCK_SERVICE_URL"] == url
    roles = {role["name"]: role for role in loaded.JupyterHub.load_roles}
    assert roles["codedock-service"]["scopes"] == []
    assert "access:services!service=codedock" in roles["user"]["scopes"]
    assert "access:services!service=codedock" in loaded.Spawner.server_token_scopes.get_value([])


@pytest.mark.parametrize(
    ("url", "token", "said"),
    [
        ("codedock:8765", TOKEN, "not a URL the hub can register"),
        ("ftp://codedock:8765", TOKEN, "not a URL the hub can register"),
        ("http://codedock:8765", "", "CODEDOCK_SERVICE_TOKEN"),
        ("http://codedock:8765", "short", "at least 32 characters"),
    ],
)
def test_a_bad_url_or_token_stops_the_hub_with_one_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, token: str, said: str
) -> None:
    monkeypatch.setenv("CODEDOCK_SERVICE_URL", url)
    monkeypatch.setenv("CODEDOCK_SERVICE_TOKEN", token)
    with pytest.raises(ValueError, match=said):
        load(tmp_path)
