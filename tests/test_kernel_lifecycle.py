"""A real kernel through jupyter_client: nothing it started outlives it, by any path."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from codedock_magic import DockerEngine
from codedock_magic.labels import OWNER_PID

pytestmark = pytest.mark.docker

SLEEP_CELL = "%%sandbox --timeout 600\nprint('up', flush=True)\nimport time\ntime.sleep(600)"


def _containers(engine: DockerEngine, pid: int) -> list[str]:
    return [c.id for c in engine.list({OWNER_PID: str(pid)})]


def _running(engine: DockerEngine, pid: int) -> bool:
    # A container the host dies before starting stays "created" until the next
    # sweep; the dead-man's switch covers running ones, which is what we test.
    return [c.state for c in engine.list({OWNER_PID: str(pid)})] == ["running"]


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
    reply = client.execute_interactive("%load_ext codedock_magic", timeout=60)
    assert reply["content"]["status"] == "ok"
    yield manager, client
    client.stop_channels()
    if manager.is_alive():
        manager.shutdown_kernel(now=True)


def _start_sleeper(engine: DockerEngine, manager: KernelManager, client: Any) -> int:
    pid = manager.provisioner.process.pid  # type: ignore[union-attr]
    client.execute(SLEEP_CELL)
    assert _wait(lambda: _running(engine, pid), 20), "the cell never started"
    return int(pid)


@pytest.mark.parametrize(
    "ending",
    ["shutdown", "shutdown-now", "restart", "sigterm", "sigkill"],
)
def test_kernel_exit_leaves_no_container_within_5s(
    engine: DockerEngine, kernel: tuple[KernelManager, Any], ending: str
) -> None:
    manager, client = kernel
    pid = _start_sleeper(engine, manager, client)
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


@pytest.mark.parametrize("view", ["--no-widgets", ""], ids=["text", "widgets"])
def test_interrupt_stops_the_run_and_the_kernel_carries_on(
    engine: DockerEngine, kernel: tuple[KernelManager, Any], view: str
) -> None:
    manager, client = kernel
    pid = int(manager.provisioner.process.pid)  # type: ignore[union-attr]
    code = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.05)"
    msg_id = client.execute(f"%%sandbox --timeout 600 {view}\n{code}")
    assert _wait(lambda: _running(engine, pid), 20)
    interrupted_at = time.monotonic()
    manager.interrupt_kernel()
    assert _wait(lambda: not _containers(engine, pid), 1.0), (
        "container outlived the interrupt by 1 s"
    )
    assert time.monotonic() - interrupted_at < 1.5
    reply = client.get_shell_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "RunFailedError"
    assert "interrupted" in reply["content"]["evalue"]

    outputs: list[str] = []
    follow = client.execute_interactive(
        "%%sandbox --no-widgets\nprint('still here')",
        timeout=30,
        output_hook=lambda m: outputs.append(m["content"].get("text", "")),
    )
    assert follow["content"]["status"] == "ok"
    assert "still here" in "".join(outputs)
