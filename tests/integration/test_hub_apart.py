"""A real JupyterHub with the sandbox service apart from it, registered by URL.

As on a hub whose users' servers run in containers or Pods: the service runs as a
process of its own on another loopback address (127.0.0.2, not the hub's), the
fragment registers it by ``CODEDOCK_SERVICE_URL`` and starts nothing, and the
service checks kernels' tokens with the hub over its API. Set up by
``scripts/dev.sh test`` like ``test_hub.py``; skipped locally without it, failed
under CI=true.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from codedock_magic import DockerEngine

from ..conftest import IN_CI
from .hubhelp import APART_HOST, Hub, RemoteKernel, missing
from .servicehelp import auth

SERVICE_SCOPE = "access:services!service=codedock"


@pytest.fixture(scope="module")
def hub(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    reason = missing()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true and the hub tests cannot run: {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("hub-apart")
    folder.chmod(0o755)
    running = Hub(folder, {"max_memory": "256m", "pool_size": 0}, apart=True).start()
    try:
        running.add_users()
        running.start_server("cdk-alice")
        yield running
    finally:
        running.stop()


def test_a_users_kernel_runs_cells_through_the_service_at_its_url(hub: Hub) -> None:
    assert hub.service_url.startswith(f"http://{APART_HOST}:")
    remote = RemoteKernel(hub, "cdk-alice")
    try:
        content, shown = remote.execute(
            "import os\nprint(os.environ['CODEDOCK_SERVICE_URL'])\n%load_ext codedock_magic"
        )
        assert content["status"] == "ok", shown
        assert hub.service_url in shown, shown
        content, shown = remote.execute(
            "%%sandbox --no-widgets --timeout 5\nprint('hello from apart')"
        )
        assert content["status"] == "ok", shown
        assert "hello from apart" in shown and "[sandbox] ok" in shown, shown
        content, shown = remote.execute(
            "%%sandbox --no-widgets --mem 100m\nb = bytearray(400 * 1024 * 1024)"
        )
        assert content["status"] == "error" and "memory limit (100m)" in shown, shown
    finally:
        remote.close()
    # The service ran them, as the user the hub vouched for.
    lines = [json.loads(line) for line in hub.audit.read_text().splitlines()]
    statuses = {line["status"] for line in lines if line["user"] == "cdk-alice"}
    assert {"ok", "memory limit"} <= statuses, lines


def test_the_service_apart_holds_to_the_hubs_tokens_and_scope(hub: Hub) -> None:
    for token in ("", "not-a-token"):
        answer = requests.get(hub.service_url + "/api/info", headers=auth(token), timeout=10)
        assert answer.status_code == 401, answer.text
    # A real token of the user, without the service's scope: the service asks for it
    # only because it knows its own name.
    bare = hub.token("cdk-bob", ["read:users:name!user"])
    answer = requests.get(hub.service_url + "/api/info", headers=auth(bare), timeout=10)
    assert answer.status_code == 403 and SERVICE_SCOPE in answer.json()["message"]
    bob = hub.token("cdk-bob", [SERVICE_SCOPE])
    info = requests.get(hub.service_url + "/api/info", headers=auth(bob), timeout=10)
    assert info.status_code == 200 and info.json()["user"] == "cdk-bob", info.text


def test_the_service_listens_on_its_own_loopback_address_only(hub: Hub) -> None:
    assert requests.get(hub.service_url + "/api/health", timeout=10).json()["ok"] is True
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{hub.service_port}/api/health", timeout=10)


def test_the_hubs_proxy_route_to_the_service_reaches_none_of_its_api(hub: Hub) -> None:
    # With a url the hub routes /services/codedock/ to the service; its API lives
    # under /api/, so an anonymous visitor of the public address meets only 404s.
    for path in ("/services/codedock/api/health", "/services/codedock/api/runs"):
        answer = requests.get(hub.url + path, timeout=10, allow_redirects=False)
        assert '"ok": true' not in answer.text and '"version"' not in answer.text, answer.text
        assert answer.status_code in (404, 503), answer.status_code
