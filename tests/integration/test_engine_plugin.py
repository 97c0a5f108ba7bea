"""An engine from outside the package, found through its entry point, runs a %%sandbox cell.

The engine here wraps the Docker engine and counts its launches. It is registered
as any installed package registers one: a dist's ``entry_points.txt`` in the group
``codedock_magic.engines``, on the kernel's path; ``$CODEDOCK_ENGINE`` selects it.
Nothing in the package names it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from codedock_magic import DockerEngine

from .kernelhelp import execute

ENGINE = '''
import os

from codedock_magic.engines.docker import DockerEngine


class CountingEngine:
    """The Docker engine, writing each sandbox it launches to a file."""

    name = "counting"

    def __init__(self, **options):
        self.inner = DockerEngine(**options)
        self.log = os.environ["COUNTING_ENGINE_LOG"]

    @property
    def address(self):
        return "counting+" + self.inner.address

    def ping(self):
        self.inner.ping()

    def image_exists(self, image):
        return self.inner.image_exists(image)

    def launch(self, spec):
        sandbox = self.inner.launch(spec)
        with open(self.log, "a") as log:
            log.write(sandbox.id + "\\n")
        return sandbox

    def remove(self, sandbox_id):
        self.inner.remove(sandbox_id)

    def list(self, labels=None):
        return self.inner.list(labels)
'''


@pytest.fixture
def plugin_kernel(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "counting_engine.py").write_text(ENGINE)
    info = site / "counting_engine-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: counting-engine\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[codedock_magic.engines]\ncounting = counting_engine:CountingEngine\n"
    )
    log = tmp_path / "launches.txt"
    env = dict(os.environ)
    env.update(
        CODEDOCK_ENGINE="counting",
        COUNTING_ENGINE_LOG=str(log),
        PYTHONPATH=os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p),
    )
    env.pop("CODEDOCK_SERVICE_URL", None)
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    try:
        # No pool, so that the one launch is the cell's.
        setup = (
            "get_ipython().config.SandboxMagics.pool_size = 0\n"
            "get_ipython().config.SandboxMagics.sweep_on_load = False\n"
            "%load_ext codedock_magic"
        )
        reply = client.execute_interactive(setup, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        yield client, log
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_an_engine_registered_by_entry_point_runs_a_cell(
    engine: DockerEngine, plugin_kernel: tuple[Any, Path]
) -> None:
    client, log = plugin_kernel
    content, shown = execute(
        client, "%%sandbox --no-widgets\nprint('hello through', 6 * 7, 'launches')"
    )
    assert content["status"] == "ok", content
    assert "hello through 42 launches" in shown
    launched = log.read_text().split()
    assert len(launched) == 1
    content, shown = execute(
        client,
        "print(type(get_ipython().magics_manager.registry['SandboxMagics'].sandbox_engine)"
        ".__name__)",
    )
    assert "CountingEngine" in shown
