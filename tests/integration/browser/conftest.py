"""A real JupyterLab server and a real headless Chromium, both local only.

The server runs on 127.0.0.1 with a token and fresh config, settings, workspace and
runtime folders; the extension is loaded as a deployment loads it, through
``codedock autoload`` into a private IPYTHONDIR. The browser is Debian's Chromium,
driven by Playwright; every request that is not to this server is aborted.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from codedock_magic import DockerEngine

from ...conftest import IN_CI

CHROMIUM = Path(os.environ.get("CODEDOCK_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running Jupyter server: where it is and where its notebooks live."""

    base: str
    token: str
    root: Path

    def notebook(self, name: str, *sources: str) -> str:
        """Write a notebook of ``sources`` into the server's root; return its name."""
        notebook = new_notebook(
            cells=[new_code_cell(source) for source in sources],
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        )
        nbformat.write(notebook, self.root / name)
        return name

    def url(self, path: str) -> str:
        return f"{self.base}/{path}?token={self.token}"


def _require_browser_stack() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    for module in ("playwright", "jupyterlab", "notebook"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the Python package {module}")
    if missing:
        reason = "browser tests need " + ", ".join(missing)
        if IN_CI:
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require_browser_stack()
    home = tmp_path_factory.mktemp("jupyter")
    env = {
        **os.environ,
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    notifications = home / "settings" / "@jupyterlab" / "apputils-extension"
    notifications.mkdir(parents=True)
    (notifications / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    subprocess.run(
        [sys.executable, "-m", "codedock_magic", "autoload", "on", "--scope", "user"],
        env=env,
        check=True,
        capture_output=True,
    )
    root = home / "root"
    root.mkdir()
    token = secrets.token_hex(16)
    port = _free_port()
    before = {c.id for c in engine.list()}
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError(f"Jupyter did not start; see {home / 'server.log'}") from None
            time.sleep(0.3)
    try:
        yield Server(base, token, root)
    finally:
        # SIGTERM: the server shuts its kernels down, as an admin's stop would.
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        deadline = time.monotonic() + 10
        while {c.id for c in engine.list()} - before and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {c.id for c in engine.list()} - before
        assert not left, f"containers left after the server stopped: {left}"
        shutil.rmtree(home / "runtime", ignore_errors=True)


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    stray: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server.base):
            route.continue_()
        else:
            stray.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    tab = context.new_page()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield tab
    tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
    context.close()


def shot(page: Any, name: str) -> None:
    """Save a screenshot of the page under test-artifacts/browser/."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
