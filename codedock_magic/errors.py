"""The exceptions codedock_magic raises (the tree is in :mod:`codedock_magic.core.errors`).

A public path: the module is :mod:`codedock_magic.core.errors`. Each name is looked
up there when used, so that it is the same object (and pickles by its own module).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core import errors as _home

if TYPE_CHECKING:
    from .core.errors import *  # noqa: F403

#: The names that live beside what they carry, found on first use.
_ELSEWHERE = {
    "RunFailedError": "codedock_magic.core.result",
    "CheckFailedError": "codedock_magic.grading.check",
}

__all__ = sorted([*_home.__all__, *_ELSEWHERE])


def __getattr__(name: str) -> Any:
    where = _ELSEWHERE.get(name)
    return getattr(importlib.import_module(where) if where else _home, name)


def __dir__() -> list[str]:
    return sorted(set(__all__) | {n for n in dir(_home) if not n.startswith("_")})
