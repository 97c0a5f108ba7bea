"""codedock_magic: run untrusted Python in fresh, locked-down Docker containers.

In IPython or Jupyter, ``%load_ext codedock_magic`` registers the ``%%sandbox``
cell magic. From Python, :func:`run` runs a snippet and returns a :class:`RunResult`.
The pycodedock API lives on as :mod:`codedock_magic.dock`.
"""

from __future__ import annotations

from typing import Any

from . import autoload, dock
from .cleanup import Orphan, find_orphans, remove_session, sweep
from .engine import ContainerInfo, DockerEngine, Engine, SandboxSpec, default_engine
from .errors import (
    CodedockError,
    EngineError,
    EngineUnavailableError,
    ImageNotFoundError,
    InvalidValueError,
    RunFailedError,
)
from .limits import Limits, format_size, parse_size
from .pool import Pool
from .result import RunResult, RunStatus
from .runner import DEFAULT_IMAGE, OnOutput, run

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_IMAGE",
    "CodedockError",
    "ContainerInfo",
    "DockerEngine",
    "Engine",
    "EngineError",
    "EngineUnavailableError",
    "ImageNotFoundError",
    "InvalidValueError",
    "Limits",
    "OnOutput",
    "Orphan",
    "Pool",
    "RunFailedError",
    "RunResult",
    "RunStatus",
    "SandboxSpec",
    "__version__",
    "autoload",
    "default_engine",
    "dock",
    "find_orphans",
    "format_size",
    "load_ipython_extension",
    "parse_size",
    "remove_session",
    "run",
    "sweep",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%sandbox`` (called by ``%load_ext codedock_magic``)."""
    from .magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo :func:`load_ipython_extension`."""
    from .magic import unload_ipython_extension as unload

    unload(ipython)
