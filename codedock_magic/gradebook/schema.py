"""The gradebook's tables, as the newest migration leaves them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = [
    "VERSION_TABLE",
    "UTCDateTime",
    "attempts",
    "metadata",
    "regrade_results",
    "regrades",
]

#: Alembic's own table under a name of ours: the database may be shared with
#: JupyterHub's, whose migrations use Alembic's default name.
VERSION_TABLE = "codedock_gradebook_version"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware datetime, stored as naive UTC so that every backend compares it alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"datetime {value!r} has no time zone; give an aware UTC datetime")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is not None:
            return value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=dt.timezone.utc)


metadata = MetaData()

attempts = Table(
    "gradebook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", String(255), nullable=False),
    Column("assignment", String(255), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("code", Text, nullable=False),
    Column("code_sha256", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("max_score", Float, nullable=False),
    # JSON text, sorted: readable the same way by every backend and by a teacher's tools.
    Column("verdicts", Text, nullable=False),
    Column("late", Boolean, nullable=False),
    # JSON text: each case's name, points, max_points and whether it is hidden (None
    # in attempts recorded before the gradebook kept points).
    Column("cases", Text, nullable=True),
    # A reveal_to user's attempt: no limit applies, and no export or count sees it.
    Column("teacher", Boolean, nullable=False, server_default="0"),
    Column("cases_sha256", String(64), nullable=True),
    Column("checkers_sha256", String(64), nullable=True),
    # JSON text: the limits the attempt ran with before the assignment's own (its
    # user's tier's defaults), and its image; a regrade runs it with them again.
    Column("defaults", Text, nullable=True),
    Column("image", String(255), nullable=True),
    Index("ix_gradebook_attempts_user_assignment_at", "user", "assignment", "at"),
)

#: One regrade of an assignment: the cases and checkers it ran against.
regrades = Table(
    "gradebook_regrades",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("assignment", String(255), nullable=False),
    # 1, 2, ... per assignment: what --compare names.
    Column("number", Integer, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("policy", String(16), nullable=False),
    Column("cases_sha256", String(64), nullable=False),
    Column("checkers_sha256", String(64), nullable=False),
    # The regrade's number it was compared with; 0: the recorded attempts.
    Column("compared_with", Integer, nullable=True),
    UniqueConstraint("assignment", "number", name="uq_gradebook_regrades_number"),
)

#: Per student, the attempt a regrade ran again and what it gives now, beside the old.
regrade_results = Table(
    "gradebook_regrade_results",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "regrade_id",
        Integer,
        ForeignKey("gradebook_regrades.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt_id", Integer, nullable=False),
    Column("user", String(255), nullable=False),
    Column("score", Float, nullable=False),
    Column("max_score", Float, nullable=False),
    Column("verdicts", Text, nullable=False),
    Column("cases", Text, nullable=False),
    Column("old_score", Float, nullable=True),
    Column("old_max_score", Float, nullable=True),
    # JSON text: [[case, old verdict, new verdict], ...] and [reason, ...].
    Column("flipped", Text, nullable=False),
    Column("why", Text, nullable=False),
    # False: the check could not judge it (a checker raised); it stands nowhere.
    Column("judged", Boolean, nullable=False, server_default="1"),
    Index("ix_gradebook_regrade_results_regrade", "regrade_id"),
)
