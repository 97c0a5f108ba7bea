"""A real kernel whose cells go to a real ``codedock serve``: the kernel holds no engine."""

from __future__ import annotations

import compileall
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
import requests
from jupyter_client.manager import KernelManager

import codedock_magic
from codedock_magic import DockerEngine

from .kernelhelp import execute, wait_for_output
from .servicehelp import Service, auth, wait_for


@pytest.fixture(scope="module")
def service(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = Service(
        tmp_path_factory.mktemp("service"),
        default_memory="128m",
        max_memory="256m",
        max_timeout=20.0,
        max_concurrent_per_user=1,
        max_queued_per_user=2,
        # Every container is then a cell's, which keeps the counting exact.
        pool_size=0,
    ).start()
    yield started
    started.stop()


def _start(service: Service, token: str, load: bool = True) -> tuple[KernelManager, Any]:
    env = {
        **os.environ,
        "CODEDOCK_SERVICE_URL": service.url,
        "CODEDOCK_SERVICE_TOKEN": token,
        # A kernel in a hub cannot reach the engine: make sure this one does not try.
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
    }
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    if load:
        reply = client.execute_interactive("%load_ext codedock_magic", timeout=60)
        assert reply["content"]["status"] == "ok"
    return manager, client


@pytest.fixture
def kernel(service: Service) -> Iterator[tuple[KernelManager, Any]]:
    manager, client = _start(service, "tok-alice")
    yield manager, client
    client.stop_channels()
    if manager.is_alive():
        manager.shutdown_kernel(now=True)


@pytest.mark.parametrize(
    ("cell", "status", "seen"),
    [
        ("print('hi from the service')", "ok", "[sandbox] ok"),
        ("import sys\nsys.exit(3)", "error", "error (exit 3)"),
        ("while True: pass", "error", "timeout after 1s"),
        ("b = bytearray(400 * 1024 * 1024)", "error", "memory limit (100m) exceeded"),
    ],
    ids=["ok", "error", "timeout", "memory"],
)
def test_the_outcomes_through_the_service(
    kernel: tuple[KernelManager, Any], cell: str, status: str, seen: str
) -> None:
    _, client = kernel
    options = "--timeout 1" if "while" in cell else "--mem 100m" if "bytearray" in cell else ""
    content, shown = execute(client, f"%%sandbox --no-widgets {options}\n{cell}")
    assert content["status"] == status, shown
    assert seen in shown


def test_the_kernel_needs_no_engine_and_gets_the_services_defaults(
    kernel: tuple[KernelManager, Any],
) -> None:
    _, client = kernel
    content, shown = execute(
        client,
        "%%sandbox --no-widgets --result r --out o\n"
        "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read())",
    )
    assert content["status"] == "ok", shown
    probe = "import sys\nprint(r.limits.memory, o.strip(), 'docker' in sys.modules)"
    _, printed = execute(client, probe)
    assert printed.split() == [str(128 * 1024**2), str(128 * 1024**2), "False"]


def test_config_in_the_kernel_cannot_lift_the_services_ceiling(
    kernel: tuple[KernelManager, Any],
) -> None:
    _, client = kernel
    execute(client, "%config SandboxMagics.max_memory = ''")
    content, shown = execute(client, "%%sandbox --no-widgets --mem 2g\nprint('escaped')")
    assert content["status"] == "error"
    assert content["ename"] == "UsageError"
    assert "max_memory = 256m" in content["evalue"]
    assert "escaped" not in shown
    # Setting the trait, or calling run() from the kernel, does not get past it either.
    code = (
        "from codedock_magic import run, Limits\n"
        "get_ipython().magics_manager.registry['SandboxMagics'].max_memory = ''\n"
        "run('print(1)', limits=Limits(memory='2g'))"
    )
    content, shown = execute(client, code)
    assert content["ename"] == "ServiceRefusedError", shown


def test_sandbox_info_shows_the_service_its_user_and_ceilings(
    kernel: tuple[KernelManager, Any], service: Service
) -> None:
    _, client = kernel
    content, shown = execute(client, "%sandbox_info")
    assert content["status"] == "ok", shown
    assert f"service:   {service.url}" in shown
    assert "user:      alice" in shown
    assert "max_memory=256m" in shown and "max_timeout=20" in shown


def test_the_badge_says_queued_while_the_quota_holds_the_cell(
    kernel: tuple[KernelManager, Any], service: Service
) -> None:
    _, client = kernel
    # alice's one slot is taken by a run of hers from elsewhere.
    body = {"code": "aW1wb3J0IHRpbWU7IHRpbWUuc2xlZXAoMzAp", "stdin": ""}  # sleep(30)
    holder = requests.post(
        service.url + "/api/runs", json=body, headers=auth("tok-alice"), stream=True, timeout=30
    )
    lines = holder.iter_lines()
    assert b"accepted" in next(lines) and b"running" in next(lines)
    msg_id = client.execute("%%sandbox --no-widgets\nprint('after the wait')")
    queued = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not queued:
        try:
            message = client.get_iopub_msg(timeout=1)
        except Empty:
            continue
        queued = "[sandbox] queued" in message["content"].get("text", "")
    assert queued
    holder.close()  # its run ends, and the cell's takes the slot
    reply = client.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"


def test_interrupt_stops_the_run_and_the_next_cell_works(
    kernel: tuple[KernelManager, Any], service: Service, engine: DockerEngine
) -> None:
    manager, client = kernel
    msg_id = client.execute(
        "%%sandbox --timeout 20\nimport time\nprint('up', flush=True)\ntime.sleep(20)"
    )
    wait_for_output(client, "up")
    manager.interrupt_kernel()
    reply = client.get_shell_msg(timeout=15)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "RunFailedError"
    assert "interrupted" in reply["content"]["evalue"]
    content, shown = execute(client, "%%sandbox --no-widgets\nprint('still here')")
    assert content["status"] == "ok" and "still here" in shown


def _runs(service: Service, token: str) -> list[Any]:
    answer = requests.get(service.url + "/api/runs", headers=auth(token), timeout=5)
    runs: list[Any] = answer.json()["runs"]
    return runs


def test_a_sigkilled_kernel_leaves_no_container_after_5s(
    service: Service, engine: DockerEngine
) -> None:
    manager, client = _start(service, "tok-bob")
    try:
        client.execute(
            "%%sandbox --timeout 20\nimport time\nprint('up', flush=True)\ntime.sleep(20)"
        )
        wait_for_output(client, "up")
        (_running,) = _runs(service, "tok-bob")
        cells = set(service.containers(engine))
        assert cells, "the cell's container is not to be seen"
        os.kill(int(manager.provisioner.process.pid), signal.SIGKILL)  # type: ignore[union-attr]
        killed = time.monotonic()
        assert wait_for(lambda: not cells & set(service.containers(engine)), 5.0)
        assert time.monotonic() - killed < 5.0
        assert _runs(service, "tok-bob") == []
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_a_bad_token_and_a_service_that_went_away_each_get_one_line(
    engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = Service(tmp_path_factory.mktemp("restarting"), pool_size=0).start()
    kernels: list[tuple[KernelManager, Any]] = []
    try:
        kernels.append(_start(own, "not-a-token"))
        _, client = kernels[-1]
        content, _ = execute(client, "%%sandbox --no-widgets\nprint(1)")
        assert content["ename"] == "ServiceAuthError"
        assert "CODEDOCK_SERVICE_TOKEN" in content["evalue"]
        assert len(content["traceback"]) == 1

        kernels.append(_start(own, "tok-alice"))
        _, client = kernels[-1]
        port = own.port
        own.stop()
        content, _ = execute(client, "%%sandbox --no-widgets\nprint(1)")
        assert content["ename"] == "ServiceUnavailableError"
        assert len(content["traceback"]) == 1
        own.start(port=port)
        content, shown = execute(client, "%%sandbox --no-widgets\nprint('back')")
        assert content["status"] == "ok" and "back" in shown
    finally:
        for manager, client in kernels:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
        own.stop()


def test_sandbox_doctor_checks_the_services_sandboxes(
    kernel: tuple[KernelManager, Any], service: Service
) -> None:
    _, client = kernel
    content, shown = execute(client, "%sandbox_doctor")
    assert content["status"] == "ok", shown
    assert "the service answers" in shown and f"at {service.url}" in shown
    assert "alice (none)" in shown and "max_memory=256m" in shown
    # The service's default memory, not the kernel's.
    assert "128m (asked 128m)" in shown
    assert "all 13 promises hold" in shown, shown


_RSS = """
import gc

def _rss_kib():
    gc.collect()
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
"""


def _children(pid: int) -> list[str]:
    """The command lines of ``pid``'s child processes."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            if parent == pid:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    found.append(cmdline.read().replace(b"\0", b" ").decode(errors="replace"))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def test_a_kernel_in_service_mode_holds_only_the_client(service: Service) -> None:
    # What a kernel pays for the extension: no engine client, no watchdog, no pool,
    # and at most 5 MiB more resident memory after a cell than before the extension.
    # Bytecode, as pip writes it when it installs the wheel: compiling the sources in
    # the kernel would cost memory a user's kernel never spends.
    compileall.compile_dir(Path(codedock_magic.__file__).parent, quiet=1)
    manager, client = _start(service, "tok-alice", load=False)
    try:
        content, shown = execute(client, _RSS + "_before = _rss_kib()")
        assert content["status"] == "ok", shown
        content, shown = execute(client, "%load_ext codedock_magic")
        assert content["status"] == "ok", shown
        content, shown = execute(client, "%%sandbox\nprint('from the service')")
        assert content["status"] == "ok" and "from the service" in shown, shown
        probe = (
            "import sys\n"
            "_pools = [o for o in gc.get_objects() if type(o).__qualname__ == 'Pool'\n"
            "          and type(o).__module__ == 'codedock_magic.local.pool']\n"
            "print('docker' in sys.modules, len(_pools), _rss_kib() - _before)"
        )
        content, shown = execute(client, probe)
        assert content["status"] == "ok", shown
        docker_loaded, pools, growth_kib = shown.split()
        pid = int(manager.provisioner.process.pid)  # type: ignore[union-attr]
        watchdogs = [c for c in _children(pid) if "watchdog" in c or "codedock" in c]
        grew = int(growth_kib) / 1024
        seen = (docker_loaded, pools, watchdogs, grew <= 5)
        assert seen == ("False", "0", [], True), f"the kernel grew by {grew:.1f} MiB: {seen}"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_a_saturated_service_says_when_to_try_again_in_one_line(
    kernel: tuple[KernelManager, Any], service: Service
) -> None:
    _, client = kernel
    # alice's one slot and her two places in the queue are taken by runs of hers
    # from elsewhere, each asking for a 15 s timeout.
    body = {
        "code": "aW1wb3J0IHRpbWU7IHRpbWUuc2xlZXAoMzAp",  # sleep(30)
        "stdin": "",
        "limits": {"timeout": 15},
    }
    held = []
    try:
        for expected in (b"running", b"queued", b"queued"):
            response = requests.post(
                service.url + "/api/runs",
                json=body,
                headers=auth("tok-alice"),
                stream=True,
                timeout=30,
            )
            # The reader too: dropping it would close its connection, and its run.
            lines = response.iter_lines()
            held.append((response, lines))
            assert b"accepted" in next(lines) and expected in next(lines)
        refused = requests.post(
            service.url + "/api/runs", json=body, headers=auth("tok-alice"), timeout=30
        )
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 15
        content, _ = execute(client, "%%sandbox --no-widgets\nprint('one too many')")
        assert content["ename"] == "UsageError"
        assert "max_queued_per_user" in content["evalue"]
        assert re.search(r"try again in (\d+) s \(at \d\d:\d\d:\d\d\)", content["evalue"])
        assert int(re.findall(r"try again in (\d+) s", content["evalue"])[0]) <= 15
        assert "\n" not in content["evalue"]
    finally:
        for response, _ in held:
            response.close()
    assert wait_for(lambda: _runs(service, "tok-alice") == [], within=30)
