"""Container engines behind one seam: :mod:`.base` is the seam, :mod:`.docker` Docker's.

An engine owns a sandbox's whole life (:meth:`~.base.Engine.launch` hands back a
:class:`~.base.Sandbox`). :func:`connect` picks one by name, the one place that
does; further engines are further modules here, or packages of their own that
register in the ``codedock_magic.engines`` entry-point group. Only :mod:`.docker`
imports docker-py.
"""

from __future__ import annotations

from .base import (
    RUNTIME_DIR,
    SANDBOX_GID,
    SANDBOX_UID,
    STDERR,
    STDOUT,
    WORKDIR,
    Channel,
    Chunk,
    ContainerInfo,
    Engine,
    Sandbox,
    SandboxSpec,
    Watch,
)
from .registry import (
    DEFAULT_ENGINE,
    ENGINE_ENV,
    ENTRY_POINT_GROUP,
    available_engines,
    connect,
    engine_name,
)

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINE_ENV",
    "ENTRY_POINT_GROUP",
    "RUNTIME_DIR",
    "SANDBOX_GID",
    "SANDBOX_UID",
    "STDERR",
    "STDOUT",
    "WORKDIR",
    "Channel",
    "Chunk",
    "ContainerInfo",
    "Engine",
    "Sandbox",
    "SandboxSpec",
    "Watch",
    "available_engines",
    "connect",
    "default_engine",
    "engine_name",
]


def default_engine() -> Engine:
    """The engine ``$CODEDOCK_ENGINE`` names (Docker by default): :func:`connect` ``()``."""
    return connect()
