"""codedock_magic: run untrusted Python in fresh, locked-down Docker containers.

In IPython or Jupyter, ``%load_ext codedock_magic`` registers the ``%%sandbox``
cell magic. From Python, :func:`run` runs a snippet and returns a :class:`RunResult`,
and :func:`check` runs one against test cases and returns a :class:`CheckResult`.
The pycodedock API lives on as :mod:`codedock_magic.dock`.

The names below are imported on first use (PEP 562), so that importing the
package costs nothing until something is used: the watchdog and the supervisor
must stay small, and a kernel that never runs a cell needs no engine client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core.version import __version__

if TYPE_CHECKING:
    from . import autoload, dock
    from .core.errors import (
        CaseError,
        CheckerError,
        CodedockError,
        EngineError,
        EngineUnavailableError,
        ImageNotFoundError,
        InvalidValueError,
        ServiceAuthError,
        ServiceError,
        ServiceRefusedError,
        ServiceUnavailableError,
    )
    from .core.limits import ContainerLimits, Limits, RunLimits, format_size, parse_size
    from .core.profile import DEFAULT_IMAGE, Profile
    from .core.request import (
        Backend,
        CaseInput,
        Listener,
        OnCase,
        OnImage,
        OnOutput,
        OnState,
        RunRequest,
    )
    from .core.result import CaseEnding, CaseRun, Ending, RunFailedError, RunResult, RunStatus
    from .engines import ContainerInfo, Engine, SandboxSpec, default_engine
    from .engines.cleanup import Orphan, find_orphans, remove_session, sweep
    from .engines.docker import DockerEngine
    from .grading.batch import GradeReport, grade
    from .grading.cases import Case, load_cases
    from .grading.check import CaseResult, CheckFailedError, CheckResult, Verdict, check
    from .local.backend import LocalBackend
    from .local.pool import Pool
    from .remote.client import ServiceBackend
    from .runner import run

_EXPORTS = {
    "autoload": "",
    "dock": "",
    "Backend": ".core.request",
    "LocalBackend": ".local.backend",
    "Case": ".grading.cases",
    "load_cases": ".grading.cases",
    "Orphan": ".engines.cleanup",
    "find_orphans": ".engines.cleanup",
    "remove_session": ".engines.cleanup",
    "sweep": ".engines.cleanup",
    "ContainerInfo": ".engines",
    "Engine": ".engines",
    "SandboxSpec": ".engines",
    "default_engine": ".engines",
    "DockerEngine": ".engines.docker",
    "CaseError": ".core.errors",
    "CheckerError": ".core.errors",
    "CheckFailedError": ".grading.check",
    "CodedockError": ".core.errors",
    "EngineError": ".core.errors",
    "EngineUnavailableError": ".core.errors",
    "ImageNotFoundError": ".core.errors",
    "InvalidValueError": ".core.errors",
    "RunFailedError": ".core.result",
    "ServiceAuthError": ".core.errors",
    "ServiceError": ".core.errors",
    "ServiceRefusedError": ".core.errors",
    "ServiceUnavailableError": ".core.errors",
    "GradeReport": ".grading.batch",
    "grade": ".grading.batch",
    "CaseResult": ".grading.check",
    "CheckResult": ".grading.check",
    "Verdict": ".grading.check",
    "check": ".grading.check",
    "ContainerLimits": ".core.limits",
    "Limits": ".core.limits",
    "RunLimits": ".core.limits",
    "format_size": ".core.limits",
    "parse_size": ".core.limits",
    "Pool": ".local.pool",
    "DEFAULT_IMAGE": ".core.profile",
    "Profile": ".core.profile",
    "ServiceBackend": ".remote.client",
    "CaseInput": ".core.request",
    "Listener": ".core.request",
    "OnCase": ".core.request",
    "OnImage": ".core.request",
    "OnOutput": ".core.request",
    "OnState": ".core.request",
    "RunRequest": ".core.request",
    "CaseEnding": ".core.result",
    "CaseRun": ".core.result",
    "Ending": ".core.result",
    "RunResult": ".core.result",
    "RunStatus": ".core.result",
    "run": ".runner",
}

__all__ = [
    "DEFAULT_IMAGE",
    "Backend",
    "Case",
    "CaseEnding",
    "CaseError",
    "CaseInput",
    "CaseResult",
    "CaseRun",
    "CheckFailedError",
    "CheckResult",
    "CheckerError",
    "CodedockError",
    "ContainerInfo",
    "ContainerLimits",
    "DockerEngine",
    "Ending",
    "Engine",
    "EngineError",
    "EngineUnavailableError",
    "GradeReport",
    "ImageNotFoundError",
    "InvalidValueError",
    "Limits",
    "Listener",
    "LocalBackend",
    "OnCase",
    "OnImage",
    "OnOutput",
    "OnState",
    "Orphan",
    "Pool",
    "Profile",
    "RunFailedError",
    "RunLimits",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "SandboxSpec",
    "ServiceAuthError",
    "ServiceBackend",
    "ServiceError",
    "ServiceRefusedError",
    "ServiceUnavailableError",
    "Verdict",
    "__version__",
    "autoload",
    "check",
    "default_engine",
    "dock",
    "find_orphans",
    "format_size",
    "grade",
    "load_cases",
    "load_ipython_extension",
    "parse_size",
    "remove_session",
    "run",
    "sweep",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if where == "":
        value: Any = importlib.import_module(f".{name}", __name__)
    else:
        value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%sandbox`` (called by ``%load_ext codedock_magic``)."""
    from .jupyter.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo :func:`load_ipython_extension`."""
    from .jupyter.magic import unload_ipython_extension as unload

    unload(ipython)
