"""The sandbox service for multi-user hubs: ``codedock serve``.

In a hub, no user may hold the engine, and no kernel's config may be the policy.
The service is the one process with engine access: kernels send it their runs
(see :mod:`codedock_magic.remote.client`), it identifies their user through the hub,
applies its own defaults, ceilings and per-user quotas, runs the code on its
warm pool and streams the output back. It alone may import tornado and
traitlets outside the Jupyter side.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the service (``codedock serve``)."""
    from .app import main as serve

    return serve(argv)
