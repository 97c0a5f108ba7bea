"""The gradebook: every attempt at an assignment, kept in a real database.

SQLite by default, PostgreSQL (or any SQLAlchemy URL) through the same setting,
as JupyterHub keeps its own. The schema is migrated with Alembic when a
:class:`Gradebook` opens, and a recorded attempt is committed before
:meth:`Gradebook.record` returns.
"""

from __future__ import annotations

from .store import Attempt, Gradebook, code_sha256

__all__ = ["Attempt", "Gradebook", "code_sha256"]
