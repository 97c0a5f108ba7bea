"""The sandbox service for multi-user hubs: ``codedock serve``.

In a hub, no user may hold the engine, and no kernel's config may be the policy.
The service is the one process with engine access: kernels send it their runs
(see :mod:`codedock_magic.remote.client`), it identifies their user through the hub,
applies its own defaults, ceilings and per-user quotas, runs the code on its
warm pool and streams the output back. It alone may import tornado and
traitlets outside the Jupyter side.

The application (:mod:`.app`), the HTTP API (:mod:`.handlers`) and what it uses of
the application (:mod:`.state`); the policy (:mod:`.policy`, pure), the fair
queues (:mod:`.scheduler`) and a user's cold starts in turn (:mod:`.starts`); its
boundary: the server's limits and connection caps (:mod:`.boundary`), a user's
unread events (:mod:`.unread`) and refusal budget (:mod:`.refusals`); and
:mod:`.auth`, :mod:`.audit` and :mod:`.metrics`.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the service (``codedock serve``)."""
    from .app import main as serve

    return serve(argv)
