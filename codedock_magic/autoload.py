"""Turning autoload of the extension on and off in an IPython kernel config file.

Kernels read ``ipython_kernel_config.json`` from the environment
(``{sys.prefix}/etc/ipython``), the machine (``/usr/local/etc/ipython``, then
``/etc/ipython``: IPython's own list, of which the first file found wins) and
the user's profile. There is no drop-in folder for kernels, so we merge our one entry,
``InteractiveShellApp.extra_extensions += ["codedock_magic"]``, into whatever file
is there, and later take only that entry out. ``extra_extensions`` rather than
``extensions`` so that a user's own ``extensions`` list does not drop ours.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .core.errors import InvalidValueError

__all__ = ["EXTENSION", "SCOPES", "config_path", "disable", "enable", "is_enabled"]

EXTENSION = "codedock_magic"
FILENAME = "ipython_kernel_config.json"
SCOPES = ("env", "system", "user")
_SECTION, _KEY = "InteractiveShellApp", "extra_extensions"


def config_path(scope: str) -> Path:
    """The kernel config file of ``scope``: env, system or user, by IPython's own paths.

    For the system scope that is the file IPython reads first of its system
    folders, when one exists (it wins over the others), else one in the first.
    """
    # IPython only for its paths, and only when asked: the CLI is part of the core.
    from IPython.core.application import ENV_CONFIG_DIRS, SYSTEM_CONFIG_DIRS  # noqa: TID251
    from IPython.paths import get_ipython_dir  # noqa: TID251

    if scope == "env":
        folders = ENV_CONFIG_DIRS or [str(Path(sys.prefix) / "etc" / "ipython")]
        return Path(folders[0]) / FILENAME
    if scope == "system":
        candidates = [Path(folder) / FILENAME for folder in SYSTEM_CONFIG_DIRS]
        if not candidates:
            raise InvalidValueError("scope", scope, "env or user on this platform")
        return next((path for path in candidates if path.exists()), candidates[0])
    if scope == "user":
        return Path(get_ipython_dir()) / "profile_default" / FILENAME
    raise InvalidValueError("scope", scope, "one of " + ", ".join(SCOPES))


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except ValueError as exc:
        raise InvalidValueError(
            "kernel config", str(path), f"valid JSON ({exc}); fix or move it, then retry"
        ) from None
    if not isinstance(data, dict):
        raise InvalidValueError("kernel config", str(path), "a JSON object")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside and rename, so a crash never leaves the admin's file half written.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    else:
        os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def is_enabled(path: Path) -> bool:
    """Whether the file at ``path`` autoloads the extension."""
    section = _read(path).get(_SECTION) or {}
    return EXTENSION in (section.get(_KEY) or [])


def enable(path: Path) -> bool:
    """Merge our entry into ``path``; return False when it was already there."""
    data = _read(path)
    section = data.setdefault(_SECTION, {})
    extensions = section.setdefault(_KEY, [])
    if not isinstance(section, dict) or not isinstance(extensions, list):
        raise InvalidValueError(
            f"{_SECTION}.{_KEY} in", str(path), "a list; fix the file by hand first"
        )
    if EXTENSION in extensions:
        return False
    extensions.append(EXTENSION)
    _write(path, data)
    return True


def disable(path: Path) -> bool:
    """Take only our entry out of ``path``; return False when it was not there."""
    if not is_enabled(path):
        return False
    data = _read(path)
    section = data[_SECTION]
    section[_KEY] = [name for name in section[_KEY] if name != EXTENSION]
    if not section[_KEY]:
        del section[_KEY]
    if not section:
        del data[_SECTION]
    if data:
        _write(path, data)
    else:
        path.unlink()
    return True
