"""Container engines behind one seam: :mod:`.base` is the seam, :mod:`.docker` Docker's.

Further engines (Kubernetes pods, Swarm) are meant to be further modules here;
only :mod:`.docker` imports docker-py.
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
    SandboxSpec,
    Watch,
)

__all__ = [
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
    "SandboxSpec",
    "Watch",
    "default_engine",
]


def default_engine() -> Engine:
    """The process-wide Docker engine from the environment, created on first use."""
    from .docker import default_engine as docker_default

    return docker_default()
