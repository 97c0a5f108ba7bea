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

from .kernelhelp import wait_for_output

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


@pytest.mark.parametrize("view", ["--no-widgets", ""], ids=["text", "widgets"])
def test_interrupt_stops_the_run_and_the_kernel_carries_on(
    engine: DockerEngine, kernel: tuple[KernelManager, Any], view: str
) -> None:
    manager, client = kernel
    pid = _pid(manager)
    cells_container = _idle_pool(engine, client, pid)
    code = "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.05)"
    msg_id = client.execute(f"%%sandbox --timeout 600 {view}\n{code}")
    wait_for_output(client, "tick")
    interrupted_at = time.monotonic()
    manager.interrupt_kernel()
    assert _wait(lambda: cells_container not in _containers(engine, pid), 1.0), (
        f"the cell's container outlived the interrupt by 1 s: {cells_container[:12]} in "
        f"{[(c.id[:12], c.state) for c in engine.list({OWNER_PID: str(pid)})]}"
    )
    assert time.monotonic() - interrupted_at < 1.5
    reply = client.get_shell_msg(timeout=10)
    assert reply["parent_header"]["msg_id"] == msg_id
    content = reply["content"]
    shown = "\n".join(content.get("traceback", [])) or repr(content)
    assert content["status"] == "error", shown
    assert content["ename"] == "RunFailedError", f"the kernel's reply:\n{shown}"
    assert "interrupted" in content["evalue"], shown

    outputs: list[str] = []
    for _ in range(3):
        follow = client.execute_interactive(
            "%%sandbox --no-widgets\nprint('still here')",
            timeout=30,
            output_hook=lambda m: outputs.append(m["content"].get("text", "")),
        )
        # After an error reply ipykernel 7 aborts requests until a message it posts
        # to itself comes round; one sent at once can land before it. An aborted
        # request never ran, so sending it again is what a client does.
        if follow["content"]["status"] != "aborted":
            break
        time.sleep(0.1)
    assert follow["content"]["status"] == "ok", follow["content"]
    assert "still here" in "".join(outputs)
