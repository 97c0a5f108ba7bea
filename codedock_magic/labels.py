"""The labels that mark a sandbox container as codedock's, and whose it is.

A public path: the module is :mod:`codedock_magic.engines.labels`. Each name is looked
up there when used, so that it is the same object (and ``SESSION_ID`` is this
process's own, also after a fork).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engines import labels as _home

if TYPE_CHECKING:
    from .engines.labels import *  # noqa: F403

__all__ = list(_home.__all__)


def __getattr__(name: str) -> Any:
    return getattr(_home, name)


def __dir__() -> list[str]:
    return sorted(set(__all__) | {n for n in dir(_home) if not n.startswith("_")})
