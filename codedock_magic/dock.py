"""The pycodedock API (``dock.Docker``), kept working on top of the runner.

``D = dock.Docker(unique_code, code_file, input_file, time_limit, custom_settings)``,
``D.run()`` returning 0 (success), -1 (error) or 124 (timeout), ``D.output_file``,
``D.error_file`` and ``D.destroy()`` behave as pycodedock documented, without its
defects: the container never sees a host folder, status comes from the engine
(exit 3 is an error, a warning on stderr is not, a memory kill is an error), a run
costs no 10 s stop, and a bad ``unique_code`` is refused before anything is deleted.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .core.errors import InvalidValueError
from .core.interrupts import signals_as_flag
from .core.limits import Limits, parse_size
from .core.profile import Profile
from .core.request import RunRequest
from .core.result import RunResult, RunStatus
from .runner import choose_backend

__all__ = ["DEFAULTS", "Docker"]

#: pycodedock's settings and their defaults (``DOCKER_ROOT`` defaults to the home folder).
DEFAULTS: Mapping[str, str] = {
    "DOCKER_ROOT": "~",
    "DOCKER_MEM_LIMIT": "1g",
    "DOCKER_CPU_QUOTA_LIMIT": "90000",
    "DOCKER_IMAGE_NAME": "pybuntu",
}

SUCCESS = 0
ERROR = -1
TIMEOUT = 124

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# A file name's limit on Linux; the residue folder is named after the code.
_NAME_MAX = 255
_CPU_PERIOD = 100_000
_OUTPUT_CAP = "16m"
_DEFAULT_TIME_LIMIT = 1000.0
# The settings that choose a limit (or the image) of the run.
_ASKED_BY = {
    "DOCKER_MEM_LIMIT": "memory",
    "DOCKER_CPU_QUOTA_LIMIT": "cpus",
    "DOCKER_IMAGE_NAME": "image",
}
_in_use: set[str] = set()
_in_use_lock = threading.Lock()


def _settings(custom: Mapping[str, Any] | None) -> dict[str, str]:
    if custom is not None and not isinstance(custom, Mapping):
        raise InvalidValueError("custom_settings", custom, "a dict of settings")
    unknown = sorted(set(custom or {}) - set(DEFAULTS))
    if unknown:
        raise InvalidValueError("custom_settings key", unknown[0], "one of " + ", ".join(DEFAULTS))
    return {**DEFAULTS, **{key: str(value) for key, value in (custom or {}).items()}}


def _cpus(quota: str) -> float:
    if not quota.strip().isdigit() or int(quota) < 1000:
        raise InvalidValueError(
            "DOCKER_CPU_QUOTA_LIMIT",
            quota,
            "a whole number of at least 1000 (90000 = 90% of a CPU)",
        )
    cpus = int(quota) / _CPU_PERIOD
    if cpus > (os.cpu_count() or 1):
        raise InvalidValueError(
            "DOCKER_CPU_QUOTA_LIMIT", quota, f"at most {(os.cpu_count() or 1) * _CPU_PERIOD}"
        )
    return cpus


class Docker:
    """One pycodedock job: a script, its stdin, and a residue folder for its output.

    Args:
        unique_code: a plain name (letters, digits, ``_ . -``) no other live instance
            uses; the residue folder ``DOCKER_ROOT/unique_code`` must not exist yet.
        code_file: path of the Python script to run.
        input_file: path of a file fed to the script's stdin (``None`` or ``""``: none).
        time_limit: seconds before the run is stopped (status 124).
        custom_settings: overrides of :data:`DEFAULTS`.

    Raises:
        InvalidValueError: any argument or setting is malformed or in use; nothing
            has been created or deleted then.
    """

    def __init__(
        self,
        unique_code: str,
        code_file: str | os.PathLike[str],
        input_file: str | os.PathLike[str] | None = None,
        time_limit: float = _DEFAULT_TIME_LIMIT,
        custom_settings: Mapping[str, Any] | None = None,
    ) -> None:
        settings = _settings(custom_settings)
        if not isinstance(unique_code, str) or not _PLAIN_NAME.fullmatch(unique_code):
            raise InvalidValueError(
                "unique_code", unique_code, "a plain name of letters, digits, '_', '.' or '-'"
            )
        if len(unique_code.encode()) > _NAME_MAX:
            raise InvalidValueError(
                "unique_code", unique_code, f"a name of at most {_NAME_MAX} characters"
            )
        self.limits = Limits(
            timeout=time_limit,
            memory=parse_size(settings["DOCKER_MEM_LIMIT"], "DOCKER_MEM_LIMIT"),
            cpus=_cpus(settings["DOCKER_CPU_QUOTA_LIMIT"]),
            output=_OUTPUT_CAP,
        )
        # What the caller chose, for a sandbox service to know: the rest is its own.
        self._asked = frozenset(_ASKED_BY[key] for key in custom_settings or {} if key in _ASKED_BY)
        if time_limit != _DEFAULT_TIME_LIMIT:
            self._asked |= {"timeout"}
        self.image = settings["DOCKER_IMAGE_NAME"].strip()
        if not self.image:
            raise InvalidValueError("DOCKER_IMAGE_NAME", self.image, "an image name")
        self.code_file = Path(code_file)
        if not self.code_file.is_file():
            raise InvalidValueError("code_file", str(code_file), "an existing file")
        self.input_file = Path(input_file) if input_file else None
        if self.input_file is not None and not self.input_file.is_file():
            raise InvalidValueError("input_file", str(input_file), "an existing file")
        root = Path(os.path.expanduser(settings["DOCKER_ROOT"]))
        if not root.is_dir():
            raise InvalidValueError("DOCKER_ROOT", str(root), "an existing folder")

        self.unique_code = unique_code
        self.folder = root / unique_code
        with _in_use_lock:
            if unique_code in _in_use or os.path.lexists(self.folder):
                raise InvalidValueError(
                    "unique_code",
                    unique_code,
                    f"a code not in use (the folder {self.folder} exists or another instance "
                    "holds it; destroy() that instance or pick another code)",
                )
            self.folder.mkdir(mode=0o700)
            _in_use.add(unique_code)
        self._owns_folder = True
        self.output_file = str(self.folder / "output.txt")
        self.error_file = str(self.folder / "error.txt")
        shutil.copyfile(self.code_file, self.folder / "code.py")
        if self.input_file is not None:
            shutil.copyfile(self.input_file, self.folder / "input.txt")
        self.result: RunResult | None = None

    def run(self) -> int:
        """Run the script; return 0 on success, -1 on error, 124 on timeout.

        stdout and stderr land in :attr:`output_file` and :attr:`error_file`.
        SIGTERM (when called from the main thread) or Ctrl+C during the run removes
        the container and the residue folder before the signal takes effect.
        """
        if not self._owns_folder:
            raise InvalidValueError(
                "Docker instance", self.unique_code, "alive (destroy() was called)"
            )
        request = RunRequest(
            code=(self.folder / "code.py").read_bytes(),
            stdin=(self.folder / "input.txt").read_bytes() if self.input_file else b"",
            profile=Profile(self.image, self.limits.container),
            limits=self.limits.run,
            asked=self._asked,
        )
        # SIGTERM and Ctrl+C only set a flag while the run is under way; the run
        # then ends itself, and the signal takes effect once it is cleaned up.
        with signals_as_flag((signal.SIGINT, signal.SIGTERM)) as stop:
            # In a hub the kernel holds no engine: the service runs it there too.
            backend = choose_backend()
            result = backend.run(request, stop=stop)
        if stop.signum == signal.SIGTERM:
            self.destroy()
            os.kill(os.getpid(), signal.SIGTERM)
            # A SIGTERM handler of the caller's own has run and returned.
            raise SystemExit(128 + signal.SIGTERM)
        if result.status is RunStatus.INTERRUPTED:
            self.destroy()
            raise KeyboardInterrupt
        self.result = result
        Path(self.output_file).write_text(result.stdout, encoding="utf-8")
        Path(self.error_file).write_text(result.stderr, encoding="utf-8")
        if result.status is RunStatus.OK:
            return SUCCESS
        if result.status is RunStatus.TIMEOUT:
            return TIMEOUT
        return ERROR

    def destroy(self) -> None:
        """Remove the residue folder (code, input and output copies) and nothing else."""
        if not self._owns_folder:
            return
        self._owns_folder = False
        if self.folder.is_dir() and not self.folder.is_symlink():
            shutil.rmtree(self.folder, ignore_errors=True)
        with _in_use_lock:
            _in_use.discard(self.unique_code)
