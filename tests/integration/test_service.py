"""``codedock serve`` as a real process over the real engine, used as clients use it."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from codedock_magic import (
    DockerEngine,
    Limits,
    RunStatus,
    ServiceBackend,
    ServiceRefusedError,
    ServiceUnavailableError,
    check,
    grade,
    run,
)
from codedock_magic.core.request import Listener, RunRequest
from codedock_magic.errors import ServiceAuthError

from .servicehelp import Service, auth, wait_for

MEMORY_FILE = "/sys/fs/cgroup/memory/memory.limit_in_bytes"


@pytest.fixture(scope="module")
def service(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("service")
    started = Service(
        folder,
        default_memory="128m",
        max_memory="512m",
        max_timeout=30.0,
        max_concurrent_per_user=1,
        max_queued_per_user=1,
        max_code_bytes="64k",
    ).start()
    yield started
    started.stop()
    assert wait_for(lambda: started.containers(engine) == [], 10), "the service left containers"


def alice(service: Service) -> ServiceBackend:
    return ServiceBackend(service.url, "tok-alice")


def test_the_four_outcomes_and_stdin(service: Service) -> None:
    backend = alice(service)
    cases = [
        ("print(input())", "hi\n", None, RunStatus.OK),
        ("import sys; sys.exit(3)", "", None, RunStatus.ERROR),
        ("while True: pass", "", Limits(timeout=1), RunStatus.TIMEOUT),
        ("b = bytearray(400 * 1024 * 1024)", "", Limits(memory="100m"), RunStatus.MEMORY_LIMIT),
    ]
    for code, stdin, limits, status in cases:
        result = run(code, stdin=stdin, limits=limits, backend=backend)
        assert result.status is status, (code, result)
    assert run("print(input())", stdin="hi\n", backend=backend).stdout == "hi\n"


def test_the_service_fills_what_the_caller_did_not_ask_for(service: Service) -> None:
    backend = alice(service)
    result = run(f"print(open('{MEMORY_FILE}').read())", backend=backend)
    # Nothing asked: the service's default_memory, not the library's 256m.
    assert result.limits.memory == 128 * 1024**2
    assert int(result.stdout) == 128 * 1024**2
    asked = run(
        f"print(open('{MEMORY_FILE}').read())",
        limits=Limits(memory="200m"),
        backend=backend,
        asked={"memory"},
    )
    assert int(asked.stdout) == 200 * 1024**2


def test_a_request_over_a_ceiling_is_refused_naming_it(service: Service) -> None:
    with pytest.raises(ServiceRefusedError, match="max_memory = 512m") as caught:
        run("print(1)", limits=Limits(memory="2g"), backend=alice(service))
    assert caught.value.status == 422
    with pytest.raises(ServiceRefusedError, match="max_timeout = 30"):
        run("print(1)", limits=Limits(timeout=600), backend=alice(service))
    with pytest.raises(ServiceRefusedError, match="not allowed"):
        run("print(1)", image="python:3.12", backend=alice(service))


def test_output_streams_live_and_an_interrupt_keeps_what_came_before(
    service: Service, engine: DockerEngine
) -> None:
    seen: list[tuple[float, str]] = []
    stop = threading.Event()
    started = time.monotonic()

    def on_output(stream: str, text: str) -> None:
        seen.append((time.monotonic() - started, text))
        if "second" in text:
            stop.set()

    code = (
        b"import time\nprint('first', flush=True)\ntime.sleep(1)\n"
        b"print('second', flush=True)\ntime.sleep(60)"
    )
    result = alice(service).run(
        RunRequest(code=code), listener=Listener(on_output=on_output), stop=stop
    )
    assert result.status is RunStatus.INTERRUPTED
    assert result.stdout == "first\nsecond\n"
    first = next(at for at, text in seen if "first" in text)
    second = next(at for at, text in seen if "second" in text)
    assert second - first > 0.8, "output arrived in one piece, not as it was printed"
    assert time.monotonic() - started < 10
    # Only the pool's waiting container is left.
    assert wait_for(lambda: len(service.containers(engine)) <= 1, 5)


def _start_run(service: Service, token: str, code: str) -> requests.Response:
    body = {"code": base64.b64encode(code.encode()).decode(), "stdin": ""}
    response = requests.post(
        service.url + "/api/runs", json=body, headers=auth(token), stream=True, timeout=30
    )
    assert response.status_code == 200, response.text
    return response


def _events(response: requests.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line:
            yield json.loads(line)


def test_a_user_sees_and_cancels_only_their_own_runs(service: Service) -> None:
    response = _start_run(service, "tok-alice", "import time; time.sleep(30)")
    events = _events(response)
    accepted = next(events)
    assert accepted["event"] == "accepted" and accepted["user"] == "alice"
    run_id = accepted["id"]
    assert next(events)["event"] == "running"
    mine = requests.get(service.url + "/api/runs", headers=auth("tok-alice"), timeout=5).json()
    assert [r["id"] for r in mine["runs"]] == [run_id]
    theirs = requests.get(service.url + "/api/runs", headers=auth("tok-bob"), timeout=5).json()
    assert theirs == {"runs": []}
    for method in ("get", "delete"):
        answer = requests.request(
            method, f"{service.url}/api/runs/{run_id}", headers=auth("tok-bob"), timeout=5
        )
        assert answer.status_code == 404, method
    cancelled = requests.delete(
        f"{service.url}/api/runs/{run_id}", headers=auth("tok-alice"), timeout=5
    )
    assert cancelled.status_code == 204
    last = list(events)[-1]
    assert last["event"] == "result" and last["result"]["status"] == "interrupted"
    response.close()


def test_past_the_quota_a_run_queues_and_past_the_queue_it_gets_429(service: Service) -> None:
    first = _start_run(service, "tok-alice", "import time; time.sleep(60)")
    # Held for the whole test: a dropped reader closes the response, which ends the run.
    events = _events(first)
    assert [next(events)["event"], next(events)["event"]] == ["accepted", "running"]
    states: list[str] = []
    outcome: dict[str, Any] = {}

    def second() -> None:
        outcome["result"] = run("print('second')", backend=alice(service), on_state=states.append)

    waiting = threading.Thread(target=second)
    waiting.start()
    assert wait_for(lambda: states == ["queued"], 10), states
    with pytest.raises(ServiceRefusedError, match="max_queued_per_user") as caught:
        run("print('third')", backend=alice(service))
    assert caught.value.status == 429
    # Another user is not held up by alice's queue.
    other = run("print('bob')", backend=ServiceBackend(service.url, "tok-bob"))
    assert other.ok and waiting.is_alive(), outcome
    # The first run's client goes away: its run ends, and its slot goes to the next.
    first.close()
    waiting.join(30)
    assert outcome["result"].stdout == "second\n" and states == ["queued", "running"]


def test_a_killed_client_leaves_no_container(service: Service, engine: DockerEngine) -> None:
    client = (
        "from codedock_magic import ServiceBackend, run\n"
        f"backend = ServiceBackend({service.url!r}, 'tok-bob')\n"
        "run(\"import time\\nprint('up', flush=True)\\ntime.sleep(120)\", backend=backend,"
        " on_output=lambda s, t: print(t, end='', flush=True))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", client], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "up\n"

    def bobs_runs() -> list[Any]:
        answer = requests.get(service.url + "/api/runs", headers=auth("tok-bob"), timeout=5)
        runs: list[Any] = answer.json()["runs"]
        return runs

    (running,) = bobs_runs()
    assert running["state"] == "running"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = time.monotonic()
    assert wait_for(lambda: bobs_runs() == [], 5)
    # Only the pool's waiting container is left, within 5 s of the kill.
    assert wait_for(lambda: len(service.containers(engine)) <= 1, 5 - (time.monotonic() - killed))


def test_bad_requests_get_a_message_never_a_traceback(service: Service) -> None:
    url = service.url + "/api/runs"
    code = base64.b64encode(b"print(1)").decode()
    cases: list[tuple[Any, int, str]] = [
        (b"{not json", 400, "not JSON"),
        (json.dumps([1, 2]).encode(), 400, "JSON object"),
        (json.dumps({"code": code, "colour": "red"}).encode(), 400, "unknown field 'colour'"),
        (json.dumps({"code": "%%%"}).encode(), 400, "base64"),
        (json.dumps({"code": code, "limits": {"memory": "lots"}}).encode(), 400, "memory"),
        (json.dumps({"code": code, "limits": {"colour": 1}}).encode(), 400, "limit 'colour'"),
        (
            json.dumps({"code": base64.b64encode(b"#" * 70_000).decode()}).encode(),
            413,
            "max_code_bytes",
        ),
    ]
    for body, status, message in cases:
        answer = requests.post(url, data=body, headers=auth("tok-alice"), timeout=10)
        assert answer.status_code == status, (body[:40], answer.text)
        assert message in answer.json()["message"]
        assert "Traceback" not in answer.text
    huge = requests.post(url, data=b"x" * (40 * 1024**2), headers=auth("tok-alice"), timeout=30)
    assert huge.status_code in (400, 413)


def test_every_endpoint_but_health_needs_a_token(service: Service) -> None:
    assert requests.get(service.url + "/api/health", timeout=5).status_code == 200
    for method, path in (
        ("get", "/api/info"),
        ("get", "/api/runs"),
        ("post", "/api/runs"),
        ("delete", "/api/runs/abc"),
        ("get", "/metrics"),
    ):
        for headers in ({}, auth("wrong")):
            answer = requests.request(method, service.url + path, headers=headers, timeout=5)
            assert answer.status_code == 401, (method, path, headers)
    with pytest.raises(ServiceAuthError, match="CODEDOCK_SERVICE_TOKEN"):
        run("print(1)", backend=ServiceBackend(service.url, "wrong"))
    metrics = requests.get(service.url + "/metrics", headers=auth("tok-metrics"), timeout=5)
    assert metrics.status_code == 200
    for name in (
        "codedock_runs_total",
        "codedock_run_duration_seconds_bucket",
        "codedock_queued_runs",
        "codedock_active_runs",
        "codedock_pool_ready_containers",
    ):
        assert name in metrics.text
    # A user's token is not the metrics token.
    assert (
        requests.get(service.url + "/metrics", headers=auth("tok-alice"), timeout=5).status_code
        == 401
    )


def test_the_audit_log_has_a_line_per_run_and_never_the_code(service: Service) -> None:
    secret = "print('a secret of alice')"
    result = run(secret, limits=Limits(timeout=5, memory="100m"), backend=alice(service))
    assert result.ok
    lines = [json.loads(line) for line in service.audit.read_text().splitlines()]
    assert oct(service.audit.stat().st_mode & 0o777) == "0o600"
    record = lines[-1]
    assert set(record) >= {
        "time",
        "user",
        "image",
        "limits_requested",
        "limits_applied",
        "status",
        "exit_code",
        "duration",
        "code_sha256",
        "output_bytes",
    }
    assert record["user"] == "alice" and record["status"] == "ok" and record["exit_code"] == 0
    assert record["limits_requested"]["memory"] == 100 * 1024**2
    assert record["limits_applied"]["memory"] == 100 * 1024**2
    assert record["output_bytes"] == len("a secret of alice\n")
    assert "secret" not in service.audit.read_text()


def test_a_restarted_service_leaves_no_container_and_clients_recover(
    engine: DockerEngine, tmp_path: Path
) -> None:
    service = Service(tmp_path, pool_size=1).start()
    try:
        _restart(service, engine)
    finally:
        service.stop()


def _restart(service: Service, engine: DockerEngine) -> None:
    port, old = service.port, service.pid
    backend = ServiceBackend(service.url, "tok-alice")
    outcome: dict[str, Any] = {}

    def long_run() -> None:
        try:
            outcome["result"] = run("import time; time.sleep(60)", backend=backend)
        except ServiceUnavailableError as exc:
            outcome["error"] = exc

    waiting = threading.Thread(target=long_run)
    waiting.start()
    assert wait_for(lambda: len(service.containers(engine)) >= 2, 20)
    service.stop(signal.SIGKILL)
    waiting.join(20)
    assert "error" in outcome, outcome
    # Its containers end with it (their supervisor's host is gone).
    assert wait_for(
        lambda: [c.id for c in engine.list({"io.codedock.owner-pid": str(old)})] == [], 15
    )
    with pytest.raises(ServiceUnavailableError, match="run the cell again"):
        run("print(1)", backend=backend)
    service.start(port=port)
    assert run("print('back')", backend=backend).stdout == "back\n"


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("max_memory", "lots", "SandboxService.max_memory"),
        ("default_memory", "2g", "SandboxService.default_memory"),
        ("max_concurrent_per_user", 0, "SandboxService.max_concurrent_per_user"),
        ("allowed_images", ["a"], "SandboxService.default_image"),
        ("max_memroy", "1g", "SandboxService.max_memroy"),
        ("port", "eighty", "port"),
    ],
)
def test_a_bad_setting_stops_the_service_with_one_line(
    tmp_path: Path, setting: str, value: Any, named: str
) -> None:
    config = tmp_path / "bad_config.py"
    config.write_text(f"c.SandboxService.{setting} = {value!r}\n")
    done = subprocess.run(
        [sys.executable, "-m", "codedock_magic", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr


def test_run_and_the_pycodedock_api_go_to_the_service_named_in_the_environment(
    service: Service, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from codedock_magic import dock

    monkeypatch.setenv("CODEDOCK_SERVICE_URL", service.url)
    monkeypatch.setenv("CODEDOCK_SERVICE_TOKEN", "tok-bob")
    marker = "print('from the environment')"
    assert run(marker).stdout == "from the environment\n"
    script = tmp_path / "script.py"
    script.write_text("print(sum(int(x) for x in input().split()))\n")
    data = tmp_path / "input.txt"
    data.write_text("1 2 3\n")
    job = dock.Docker("svc-job", str(script), str(data), 5, {"DOCKER_ROOT": str(tmp_path)})
    try:
        assert job.run() == 0
        assert Path(job.output_file).read_text() == "6\n"
    finally:
        job.destroy()
    lines = [json.loads(line) for line in service.audit.read_text().splitlines()]
    bobs = [line for line in lines if line["user"] == "bob" and line["status"] == "ok"]
    assert len(bobs) >= 2


def test_a_check_goes_through_the_service_under_its_limits(
    service: Service, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cases = [
        {"name": "ok", "stdin": "2", "expected": "4"},
        {"name": "slow", "stdin": "loop", "expected": "4", "timeout": 0.5},
        {"name": "memory", "stdin": f"print(open('{MEMORY_FILE}').read())", "expected": "x"},
        {"name": "hidden", "stdin": "3", "expected": "6", "hidden": True},
    ]
    code = (
        "s = input()\n"
        "if s == 'loop':\n    while True: pass\n"
        "elif s.startswith('print'):\n    exec(s)\n"
        "else:\n    print(int(s) * 2)\n"
    )
    seen: list[str] = []
    monkeypatch.setenv("CODEDOCK_SERVICE_URL", service.url)
    monkeypatch.setenv("CODEDOCK_SERVICE_TOKEN", "tok-alice")
    # No backend given: the service named in the environment runs it.
    result = check(code, cases, on_case=lambda i, c: seen.append(c.verdict.value))
    assert seen == ["passed", "timeout", "wrong answer", "passed"]
    # The container got the service's default memory, as nothing was asked.
    assert result.cases[2].stdout.strip() == str(128 * 1024**2)
    assert result.run.limits.memory == 128 * 1024**2
    # A batch too: the kernel (or the grader's shell) never needs the engine.
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "a.py").write_text(code)
    (tmp_path / "class" / "b.py").write_text("print(4)")
    report = grade(tmp_path / "class", cases[:1] + cases[3:], tmp_path / "r.json", jobs=2)
    saved = json.loads((tmp_path / "r.json").read_text())["submissions"]
    assert sorted(report.graded) == ["a", "b"]
    assert saved["a"]["summary"] == "2/2 passed · 2/2 points"
    assert saved["b"]["summary"] == "1/2 passed · 1/2 points"


def test_too_many_cases_or_a_case_over_the_ceiling_is_refused(service: Service) -> None:
    backend = alice(service)
    many = [{"name": str(i), "expected": ""} for i in range(101)]
    with pytest.raises(ServiceRefusedError, match="101 cases are over the service's max_cases"):
        check("", many, backend=backend)
    slow = [{"name": "a", "expected": ""}, {"name": "b", "expected": "", "timeout": 31}]
    with pytest.raises(ServiceRefusedError, match=r"case 2: timeout 31 is over .* max_timeout"):
        check("", slow, backend=backend)


def test_images_files_and_values_go_through_the_service(service: Service) -> None:
    code = (
        "import os\n"
        "display(b'<svg xmlns=\"http://www.w3.org/2000/svg\"/>')\n"
        "os.mkdir('out')\n"
        "open('out/copy.txt', 'w').write(open('given.txt').read() * 2)\n"
        "doubled = [2 * n for n in numbers]\n"
    )
    live: list[str] = []
    result = run(
        code,
        values={"numbers": [1, 2]},
        returns="doubled",
        files={"given.txt": "ab"},
        on_image=lambda mime, data: live.append(mime),
        backend=alice(service),
    )
    assert result.ok, result.stderr
    assert live == ["image/svg+xml"] and result.images[0][0] == "image/svg+xml"
    assert result.files == {"copy.txt": b"abab"} and result.value == [2, 4]
    assert result.cpu_seconds is not None and result.peak_memory is not None
    with pytest.raises(ServiceRefusedError, match="over the service's max_stdin_bytes"):
        run("", files={"big": b"x" * (16 * 1024 * 1024 + 100)}, backend=alice(service))


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_stalled_bodies_without_a_token_cost_the_service_nothing(service: Service) -> None:
    before = _rss(service.pid)
    held = []
    for _ in range(30):
        sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
        # The service may answer and close before it takes it all.
        with contextlib.suppress(OSError):
            sock.sendall(
                b"POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 21000000\r\n\r\n"
                + b"x" * 2 * 1024 * 1024
            )
        held.append(sock)
    for sock in held:
        with sock:
            answer = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 401"), answer[:60]
    # 60 MiB were sent: none of it was kept.
    assert _rss(service.pid) - before < 16 * 1024**2
    assert run("print('still here')", backend=alice(service)).stdout == "still here\n"
