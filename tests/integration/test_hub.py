"""A real JupyterHub with the shipped fragment: users' kernels hold no engine, the service decides.

Set up by ``scripts/dev.sh test`` (proxy from npm, system users, their virtualenv);
skipped locally without it, failed under CI=true.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from codedock_magic import DockerEngine

from ..conftest import IN_CI
from .hubhelp import ADMIN_TOKEN, METRICS_TOKEN, Hub, RemoteKernel, missing
from .servicehelp import auth, wait_for

SERVICE_SCOPE = "access:services!service=codedock"
# An assignment the service holds; its hidden case's input and output must stay there.
HELD_CASES = [
    {"name": "small", "stdin": "1 2\n", "expected": "3\n"},
    {"name": "secret", "stdin": "70707 1\n", "expected": "70708\n", "hidden": True},
]


@pytest.fixture(scope="module")
def hub(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    reason = missing()
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true and the hub tests cannot run: {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("hub")
    folder.chmod(0o755)
    held = folder / "assignments" / "hw"
    held.mkdir(parents=True)
    (held / "cases.json").write_text(json.dumps({"cases": HELD_CASES}))
    (held / "assignment.json").write_text(json.dumps({"reveal_to": ["teachers"]}))
    running = Hub(
        folder,
        {
            "max_memory": "256m",
            "default_memory": "128m",
            "max_timeout": 30.0,
            "max_concurrent_per_user": 1,
            "max_queued_per_user": 1,
            # Every container is then a cell's, which keeps the counting exact.
            "pool_size": 0,
            "group_settings": {"teachers": {"max_memory": "1g"}},
            "assignments_dir": str(folder / "assignments"),
            "db_url": f"sqlite:///{folder / 'gradebook.sqlite'}",
        },
    ).start()
    try:
        running.add_users()
        running.start_server("cdk-alice")
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def kernel(hub: Hub) -> Iterator[RemoteKernel]:
    remote = RemoteKernel(hub, "cdk-alice")
    try:
        content, shown = remote.execute("%load_ext codedock_magic")
        assert content["status"] == "ok", shown
        yield remote
    finally:
        remote.close()


def _service_containers(engine: DockerEngine, hub: Hub) -> list[str]:
    pid = _service_pid(hub)
    return [c.id for c in engine.list({"io.codedock.owner-pid": str(pid)})]


def _service_pid(hub: Hub) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and f"--port={hub.service_port}".encode() in argv:
            return int(entry)
    raise AssertionError("the codedock service is not running")


@pytest.mark.parametrize(
    ("options", "cell", "status", "seen"),
    [
        ("", "print('hello from the hub')", "ok", "[sandbox] ok"),
        ("", "import sys\nsys.exit(3)", "error", "error (exit 3)"),
        ("--timeout 1", "while True: pass", "error", "timeout after 1s"),
        ("--mem 100m", "b = bytearray(400 * 1024 * 1024)", "error", "memory limit (100m)"),
    ],
    ids=["ok", "error", "timeout", "memory"],
)
def test_sandbox_cells_in_a_users_kernel(
    kernel: RemoteKernel, options: str, cell: str, status: str, seen: str
) -> None:
    content, shown = kernel.execute(f"%%sandbox --no-widgets {options}\n{cell}")
    assert content["status"] == status, shown
    assert seen in shown, shown


def test_the_kernel_runs_as_its_user_and_cannot_reach_the_engine(kernel: RemoteKernel) -> None:
    probe = (
        "import getpass, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect('/var/run/docker.sock')\n"
        "    print('REACHED THE ENGINE')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
        "print(getpass.getuser(), 'docker' in sys.modules)\n"
    )
    content, shown = kernel.execute(probe)
    assert content["status"] == "ok", shown
    assert shown.split() == ["PermissionError", "cdk-alice", "False"]


def test_the_kernels_config_cannot_lift_the_services_ceilings(kernel: RemoteKernel) -> None:
    kernel.execute("%config SandboxMagics.max_memory = ''")
    content, shown = kernel.execute("%%sandbox --no-widgets --mem 2g\nprint('escaped')")
    assert content["status"] == "error"
    assert content["ename"] == "UsageError", shown
    assert "max_memory = 256m" in content["evalue"]
    assert "escaped" not in shown
    content, shown = kernel.execute(
        "%%sandbox --no-widgets --result r\n"
        "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read())"
    )
    assert content["status"] == "ok" and str(128 * 1024**2) in shown, shown
    content, shown = kernel.execute("%sandbox_info")
    assert "user:      cdk-alice" in shown and "max_memory=256m" in shown, shown


def test_interrupt_in_a_users_kernel(kernel: RemoteKernel) -> None:
    msg_id = kernel.send(
        "%%sandbox --timeout 20\nimport time\nprint('up', flush=True)\ntime.sleep(20)"
    )
    up: list[bool] = []

    def watch(message: dict[str, Any]) -> None:
        if "up" in message["content"].get("text", "") and not up:
            up.append(True)
            kernel.interrupt()

    content, shown = kernel.wait_reply(msg_id, 60, on_message=watch)
    assert up, shown
    assert content["status"] == "error" and content["ename"] == "RunFailedError", shown
    assert "interrupted" in content["evalue"]
    content, shown = kernel.execute("%%sandbox --no-widgets\nprint('still here')")
    assert content["status"] == "ok" and "still here" in shown


def _post_run(hub: Hub, token: str, code: str) -> requests.Response:
    body = {"code": base64.b64encode(code.encode()).decode()}
    return requests.post(
        hub.service_url + "/api/runs", json=body, headers=auth(token), stream=True, timeout=30
    )


def _events(response: requests.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line:
            yield json.loads(line)


def test_users_see_and_cancel_only_their_own_runs_and_quotas_hold(hub: Hub) -> None:
    alice = hub.token("cdk-alice", [SERVICE_SCOPE])
    bob = hub.token("cdk-bob", [SERVICE_SCOPE])
    first = _post_run(hub, alice, "import time; time.sleep(30)")
    assert first.status_code == 200, first.text
    events = _events(first)
    accepted = next(events)
    assert accepted["user"] == "cdk-alice" and next(events)["event"] == "running"
    run_url = f"{hub.service_url}/api/runs/{accepted['id']}"
    assert requests.get(hub.service_url + "/api/runs", headers=auth(bob), timeout=5).json() == {
        "runs": []
    }
    assert requests.delete(run_url, headers=auth(bob), timeout=5).status_code == 404
    # alice's quota: one at once, one queued, then 429.
    second = _post_run(hub, alice, "print('second')")
    queued = _events(second)
    assert [next(queued)["event"], next(queued)["event"]] == ["accepted", "queued"]
    third = _post_run(hub, alice, "print('third')")
    assert third.status_code == 429 and "max_queued_per_user" in third.json()["message"]
    assert requests.delete(run_url, headers=auth(alice), timeout=5).status_code == 204
    assert list(events)[-1]["result"]["status"] == "interrupted"
    rest = list(queued)
    assert rest[0]["event"] == "running" and rest[-1]["result"]["stdout"] == "second\n"
    first.close()
    second.close()


def test_tokens_the_hub_does_not_vouch_for_are_refused(hub: Hub) -> None:
    for token, status in (("", 401), ("not-a-token", 401)):
        answer = requests.get(hub.service_url + "/api/info", headers=auth(token), timeout=10)
        assert answer.status_code == status, answer.text
    # A real token of the user, without the service's scope.
    bare = hub.token("cdk-bob", ["read:users:name!user"])
    answer = requests.get(hub.service_url + "/api/info", headers=auth(bare), timeout=10)
    assert answer.status_code == 403 and SERVICE_SCOPE in answer.json()["message"]


def test_a_hub_group_gets_its_own_ceilings(hub: Hub) -> None:
    teacher = hub.token("cdk-teach", [SERVICE_SCOPE])
    student = hub.token("cdk-bob", [SERVICE_SCOPE])
    info = requests.get(hub.service_url + "/api/info", headers=auth(teacher), timeout=10).json()
    assert info["groups"] == ["teachers"] and info["ceilings"]["memory"] == 1024**3
    body = {"code": base64.b64encode(b"print(1)").decode(), "limits": {"memory": "512m"}}
    for token, status in ((student, 422), (teacher, 200)):
        answer = requests.post(
            hub.service_url + "/api/runs", json=body, headers=auth(token), timeout=30
        )
        assert answer.status_code == status, answer.text


def test_a_hub_group_sees_a_held_assignments_hidden_cases_and_a_student_does_not(
    hub: Hub, kernel: RemoteKernel
) -> None:
    content, shown = kernel.execute(
        "%%sandbox --assignment hw --no-raise-error --result held\nprint(input())"
    )
    assert content["status"] == "ok", shown
    assert "0/2 passed" in shown and "70707" not in shown and "70708" not in shown
    content, shown = kernel.execute("print(held.cases[1].withheld, repr(held.cases[1].stdout))")
    assert "True ''" in shown, shown
    teacher = hub.token("cdk-teach", [SERVICE_SCOPE])
    answer = requests.post(
        hub.service_url + "/api/assignments/hw/check",
        json={"code": "print(input())"},
        headers=auth(teacher),
        timeout=60,
    ).json()
    assert answer["revealed"] is True and answer["cases"][1]["stdout"] == "70707 1\n"


def test_a_sigkilled_users_kernel_leaves_no_container_after_5s(
    hub: Hub, engine: DockerEngine
) -> None:
    remote = RemoteKernel(hub, "cdk-alice")
    try:
        content, shown = remote.execute("%load_ext codedock_magic\nimport os\nprint(os.getpid())")
        assert content["status"] == "ok", shown
        pid = int(shown.split()[-1])
        remote.send("%%sandbox --timeout 30\nimport time\nprint('up', flush=True)\ntime.sleep(30)")
        while True:
            message = remote.next_message(30)
            assert message is not None, "the cell never printed"
            if "up" in message["content"].get("text", ""):
                break
        cells = set(_service_containers(engine, hub))
        assert cells, "the cell's container is not to be seen"
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(lambda: not cells & set(_service_containers(engine, hub)), 5.0)
        assert time.monotonic() - killed < 5.0
    finally:
        remote.close()


def test_the_audit_log_and_metrics(hub: Hub) -> None:
    lines = [json.loads(line) for line in hub.audit.read_text().splitlines()]
    users = {line["user"] for line in lines}
    assert {"cdk-alice", "cdk-teach"} <= users
    statuses = {line["status"] for line in lines if line["user"] == "cdk-alice"}
    assert {"ok", "error", "timeout", "memory limit", "interrupted", "refused"} <= statuses
    metrics = requests.get(hub.service_url + "/metrics", headers=auth(METRICS_TOKEN), timeout=10)
    assert metrics.status_code == 200 and 'codedock_runs_total{status="ok"}' in metrics.text
    # A hub token with read:metrics is let in too; a user's is not.
    assert (
        requests.get(
            hub.service_url + "/metrics", headers=auth(ADMIN_TOKEN), timeout=10
        ).status_code
        == 200
    )
    alice = hub.token("cdk-alice", [SERVICE_SCOPE])
    denied = requests.get(hub.service_url + "/metrics", headers=auth(alice), timeout=10)
    assert denied.status_code == 403


def test_a_revoked_token_stops_working_within_5_s(hub: Hub) -> None:
    answer = hub.api(
        "POST",
        "/users/cdk-alice/tokens",
        json={"scopes": [SERVICE_SCOPE], "expires_in": 3600, "note": "to revoke"},
    )
    assert answer.status_code == 201, answer.text
    token, token_id = answer.json()["token"], answer.json()["id"]
    info = hub.service_url + "/api/info"
    assert requests.get(info, headers=auth(token), timeout=10).status_code == 200
    revoked = hub.api("DELETE", f"/users/cdk-alice/tokens/{token_id}")
    assert revoked.status_code == 204, revoked.text
    at = time.monotonic()

    def refused() -> bool:
        return requests.get(info, headers=auth(token), timeout=10).status_code in (401, 403)

    # Asked every 0.2 s, so the answer the service caches is as fresh as it can be.
    assert wait_for(refused, 5.5, step=0.2), "the revoked token still works"
    assert time.monotonic() - at <= 5.5


def test_the_hubs_public_proxy_has_no_route_to_the_service(hub: Hub) -> None:
    # An anonymous visitor of the hub's public address, where a service with a url
    # would be routed under /services/NAME/.
    for path in ("/services/codedock/api/health", "/services/codedock/api/runs"):
        answer = requests.get(hub.url + path, timeout=10, allow_redirects=False)
        assert '"ok": true' not in answer.text and '"version"' not in answer.text, answer.text
        body = requests.post(hub.url + path, data=b"{" * 100_000, timeout=10)
        assert "codedock" not in body.headers.get("Content-Type", ""), body.headers
    # Kernels (and the hub) still reach it where it listens.
    assert requests.get(hub.service_url + "/api/health", timeout=10).json()["ok"] is True
