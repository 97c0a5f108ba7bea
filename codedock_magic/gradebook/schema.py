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
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

__all__ = ["VERSION_TABLE", "UTCDateTime", "attempts", "metadata"]

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
    Index("ix_gradebook_attempts_user_assignment_at", "user", "assignment", "at"),
)
