"""Autoload: merge our entry into a kernel config, take only it out, and a real kernel obeys."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from codedock_magic import InvalidValueError, autoload
from codedock_magic.cli import main

ROOT = Path(__file__).resolve().parents[2]


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


def test_scopes_name_the_kernel_config_dirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert autoload.config_path("env") == Path(sys.prefix, "etc", "ipython", autoload.FILENAME)
    # IPython reads /usr/local/etc/ipython before /etc/ipython; the first file found wins.
    system = [Path(tmp_path / "usr-local"), Path(tmp_path / "etc")]
    monkeypatch.setattr(
        "IPython.core.application.SYSTEM_CONFIG_DIRS", [str(folder) for folder in system]
    )
    assert autoload.config_path("system") == system[0] / autoload.FILENAME
    system[1].mkdir()
    (system[1] / autoload.FILENAME).write_text("{}")
    assert autoload.config_path("system") == system[1] / autoload.FILENAME
    system[0].mkdir()
    (system[0] / autoload.FILENAME).write_text("{}")
    assert autoload.config_path("system") == system[0] / autoload.FILENAME
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
