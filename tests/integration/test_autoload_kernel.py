"""A real kernel started with autoload turned on has the magic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

from codedock_magic import DockerEngine


def test_a_kernel_started_with_autoload_on_has_the_magic(
    tmp_path: Path, engine: DockerEngine
) -> None:
    ipython_dir = tmp_path / "ipython"
    subprocess.run(
        [sys.executable, "-m", "codedock_magic", "autoload", "on", "--scope", "user"],
        env={**os.environ, "IPYTHONDIR": str(ipython_dir)},
        check=True,
        capture_output=True,
    )
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env={**os.environ, "IPYTHONDIR": str(ipython_dir)})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        texts: list[str] = []

        def hook(message: dict[str, Any]) -> None:
            texts.append(message["content"].get("text", ""))

        reply = client.execute_interactive(
            "%%sandbox --no-widgets\nprint('autoloaded')", timeout=60, output_hook=hook
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        assert "autoloaded\n[sandbox] ok" in "".join(texts)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
