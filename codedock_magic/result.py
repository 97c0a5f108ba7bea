"""What a run ended with.

A public path: the module is :mod:`codedock_magic.core.result`. Each name is looked
up there when used, so that it is the same object (and pickles by its own module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core import result as _home

if TYPE_CHECKING:
    from .core.result import *  # noqa: F403

__all__ = list(_home.__all__)


def __getattr__(name: str) -> Any:
    return getattr(_home, name)


def __dir__() -> list[str]:
    return sorted(set(__all__) | {n for n in dir(_home) if not n.startswith("_")})
