"""The gradebook: every attempt at an assignment, kept in a real database, and the
history of ``codedock grade``'s runs.

SQLite by default, PostgreSQL (or any SQLAlchemy URL) through the same setting,
as JupyterHub keeps its own. The schema is migrated with Alembic when a
:class:`Gradebook` opens, and a recorded attempt is committed before
:meth:`Gradebook.record` returns. SQLAlchemy comes with the service's extra, so
it is imported only when the database is used: ``codedock grade``'s history
(:mod:`.history`) needs none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Attempt, Gradebook, code_sha256

__all__ = ["POLICIES", "Attempt", "Gradebook", "code_sha256"]

#: Which of a student's attempts stands for them: their best (the last of equal
#: best), or their last.
#: Here, so that the ``codedock`` command's options need no database library.
POLICIES = ("best", "last")


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
