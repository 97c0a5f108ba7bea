"""A real kernel through jupyter_client: nothing it started outlives it, by any path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from codedock_magic import DockerEngine
from codedock_magic.labels import OWNER_PID

from .kernelhelp import execute, wait_for_output

SLEEP_CELL = "%%sandbox --timeout 600\nprint('up', flush=True)\nimport time\ntime.sleep(600)"


def _containers(engine: DockerEngine, pid: int) -> list[str]:
    return [c.id for c in engine.list({OWNER_PID: str(pid)})]


def _wait(predicate: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def kernel() -> Iterator[tuple[KernelManager, Any]]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    # One pooled container keeps the counting below exact.
    setup = "get_ipython().config.SandboxMagics.pool_size = 1\n%load_ext codedock_magic"
    reply = client.execute_interactive(setup, timeout=60)
    assert reply["content"]["status"] == "ok"
    yield manager, client
    client.stop_channels()
    if manager.is_alive():
        manager.shutdown_kernel(now=True)


def _pid(manager: KernelManager) -> int:
    return int(manager.provisioner.process.pid)  # type: ignore[union-attr]


def _idle_pool(engine: DockerEngine, client: Any, pid: int) -> str:
    # The extension keeps one container started ahead of time; the next cell takes it.
    ready = (
        "assert get_ipython().magics_manager.registry['SandboxMagics'].pool.wait_ready(timeout=30)"
    )
    assert client.execute_interactive(ready, timeout=60)["content"]["status"] == "ok"
    (waiting,) = _containers(engine, pid)
    return waiting


@pytest.mark.parametrize(
    "ending",
    ["shutdown", "shutdown-now", "restart", "sigterm", "sigkill"],
)
def test_kernel_exit_leaves_no_container_within_5s(
    engine: DockerEngine, kernel: tuple[KernelManager, Any], ending: str
) -> None:
    manager, client = kernel
    pid = _pid(manager)
    _idle_pool(engine, client, pid)
    client.execute(SLEEP_CELL)
    wait_for_output(client, "up")
    # The pool refills behind the running cell: both must go with the kernel.
    assert _wait(lambda: len(_containers(engine, pid)) == 2, 30)
    started = time.monotonic()
    if ending == "shutdown":
        manager.shutdown_kernel()
    elif ending == "shutdown-now":
        manager.shutdown_kernel(now=True)
    elif ending == "restart":
        manager.restart_kernel()
    elif ending == "sigterm":
        os.kill(pid, signal.SIGTERM)
    else:
        os.kill(pid, signal.SIGKILL)
    gone = _wait(lambda: not _containers(engine, pid), 5.0 - (time.monotonic() - started))
    assert gone, f"{ending}: containers of kernel {pid} still there after 5 s"


def _interrupt(
    engine: DockerEngine,
    kernel: tuple[KernelManager, Any],
    cell: str,
    ready: Callable[[], object],
    setup: str = "",
) -> dict[str, Any]:
    """Interrupt ``cell`` once ``ready()`` returns; check its container went; its reply."""
    manager, client = kernel
    pid = _pid(manager)
    container = _idle_pool(engine, client, pid)
    if setup:
        assert client.execute_interactive(setup, timeout=30)["content"]["status"] == "ok"
    msg_id = client.execute(cell)
    ready()
    interrupted_at = time.monotonic()
    manager.interrupt_kernel()
    assert _wait(lambda: container not in _containers(engine, pid), 1.0), (
        f"the cell's container outlived the interrupt by 1 s: {container[:12]} in "
        f"{[(c.id[:12], c.state) for c in engine.list({OWNER_PID: str(pid)})]}"
    )
    assert time.monotonic() - interrupted_at < 1.5
    reply = client.get_shell_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg_id
    content: dict[str, Any] = reply["content"]
    assert content["status"] == "error", "\n".join(content.get("traceback", [])) or content
    return content


@pytest.mark.parametrize("view", ["--no-widgets", ""], ids=["text", "widgets"])
def test_interrupt_stops_the_run_and_the_kernel_carries_on(
    engine: DockerEngine, kernel: tuple[KernelManager, Any], view: str
) -> None:
    client = kernel[1]
    code = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.05)"
    content = _interrupt(
        engine,
        kernel,
        f"%%sandbox --timeout 600 {view}\n{code}",
        lambda: wait_for_output(client, "tick"),
    )
    assert content["ename"] == "RunFailedError", content
    assert "interrupted" in content["evalue"], content
    follow, printed = execute(client, "%%sandbox --no-widgets\nprint('still here')")
    assert follow["status"] == "ok", follow
    assert "still here" in printed


@pytest.mark.parametrize("view", ["--no-widgets", ""], ids=["text", "widgets"])
def test_interrupt_ends_a_check_with_the_cases_so_far(
    engine: DockerEngine, kernel: tuple[KernelManager, Any], view: str
) -> None:
    code = "import time\ntime.sleep(0.2)\nprint(input())"
    content = _interrupt(
        engine,
        kernel,
        f"%%sandbox --cases cases --result graded {view}\n{code}",
        lambda: time.sleep(1.5),
        setup="cases = [{'name': f'c{i}', 'stdin': str(i), 'expected': str(i)} for i in range(50)]",
    )
    assert content["ename"] == "CheckFailedError", content
    assert "the check was interrupted" in content["evalue"]
    _, printed = execute(
        kernel[1], "print([c.verdict.value for c in graded.cases][-1], graded.passed > 0)"
    )
    assert printed == "killed True\n"


@pytest.fixture
def two_busy_loops() -> Iterator[None]:
    """Both cores of a small machine kept busy, as a suite running alongside does."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield
    for loop in loops:
        loop.kill()
        loop.wait()


def test_a_sigkilled_kernel_leaves_no_container_under_load(
    engine: DockerEngine, two_busy_loops: None
) -> None:
    rounds = 20
    late: list[str] = []
    for attempt in range(rounds):
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel()
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=120)
            setup = "get_ipython().config.SandboxMagics.pool_size = 1\n%load_ext codedock_magic"
            assert client.execute_interactive(setup, timeout=120)["content"]["status"] == "ok"
            pid = _pid(manager)
            _idle_pool(engine, client, pid)
            client.execute(SLEEP_CELL)
            wait_for_output(client, "up", within=60)
            # The kill lands at another moment of the pool's refill each round: before
            # its container is created, while it is created but not started, after.
            time.sleep(0.1 * (attempt % 4))
            os.kill(pid, signal.SIGKILL)
            if not _wait(lambda pid=pid: not _containers(engine, pid), 5.0):
                late.append(f"round {attempt}: {len(_containers(engine, pid))} left after 5 s")
        finally:
            client.stop_channels()
            if manager.is_alive():
                manager.shutdown_kernel(now=True)
    assert late == [], late
