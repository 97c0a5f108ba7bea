"""Autoload: merge our entry into a kernel config, take only it out, and a real kernel obeys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import KernelManager

from codedock_magic import DockerEngine, InvalidValueError, autoload
from codedock_magic.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_the_template_is_what_enable_writes(tmp_path: Path) -> None:
    path = tmp_path / "ipython_kernel_config.json"
    assert autoload.enable(path)
    template = ROOT / "jupyter-config" / "ipython_kernel_config.json"
    assert json.loads(path.read_text()) == json.loads(template.read_text())


def test_merge_keeps_an_admins_settings_and_off_takes_only_ours(tmp_path: Path) -> None:
    path = tmp_path / "ipython_kernel_config.json"
    admin = {
        "InteractiveShellApp": {"extensions": ["autoreload"], "extra_extensions": ["other_ext"]},
        "IPKernelApp": {"matplotlib": "inline"},
    }
    path.write_text(json.dumps(admin))
    assert autoload.enable(path)
    assert not autoload.enable(path)
    merged = json.loads(path.read_text())
    assert merged["InteractiveShellApp"]["extra_extensions"] == ["other_ext", "codedock_magic"]
    assert merged["IPKernelApp"] == {"matplotlib": "inline"}
    assert autoload.disable(path)
    assert not autoload.disable(path)
    assert json.loads(path.read_text()) == admin


def test_off_removes_a_file_that_held_only_our_entry(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ipython_kernel_config.json"
    autoload.enable(path)
    assert autoload.is_enabled(path)
    autoload.disable(path)
    assert not path.exists()


def test_a_broken_file_is_left_alone_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ipython_kernel_config.json"
    path.write_text("{not json")
    with pytest.raises(InvalidValueError, match="is not valid JSON"):
        autoload.enable(path)
    assert path.read_text() == "{not json"


def test_scopes_name_the_kernel_config_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert autoload.config_path("env") == Path(sys.prefix, "etc", "ipython", autoload.FILENAME)
    assert autoload.config_path("system") == Path("/etc/ipython", autoload.FILENAME)
    monkeypatch.setenv("IPYTHONDIR", "/somewhere")
    assert autoload.config_path("user") == Path("/somewhere/profile_default", autoload.FILENAME)
    with pytest.raises(InvalidValueError, match="scope 'site' is not one of env, system, user"):
        autoload.config_path("site")


def test_cli_on_status_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "k.json"
    assert main(["autoload", "on", "--path", str(path)]) == 0
    assert main(["autoload", "status", "--path", str(path)]) == 0
    assert main(["autoload", "off", "--path", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"autoload turned on in {path}",
        f"autoload is on in {path}",
        f"autoload turned off in {path}",
    ]


@pytest.mark.docker
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
