"""Attempts and the database that keeps them (:class:`Gradebook`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ..core.errors import GradebookError
from .schema import attempts as _table

__all__ = ["Attempt", "Gradebook", "code_sha256"]


def code_sha256(code: str) -> str:
    """The SHA-256 of ``code`` (UTF-8), as an attempt records it."""
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """One check of a student's code against an assignment's cases, as the gradebook keeps it."""

    user: str
    assignment: str
    #: When the attempt was made: an aware datetime (stored, and given back, in UTC).
    at: dt.datetime
    code: str
    code_sha256: str
    score: float
    max_score: float
    #: Case name to verdict ("passed", "failed", "timeout", ...).
    verdicts: dict[str, str] = field(hash=False)
    late: bool
    id: int | None = None


class Gradebook:
    """Every attempt, in the database at ``url`` (any SQLAlchemy URL).

    Opening it migrates the schema to the newest revision. SQLite runs in WAL
    mode with ``synchronous=FULL``: a commit is on disk before it returns, so a
    process killed at any moment loses no recorded attempt and leaves no half row.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._engine = _open(url)
            with self._engine.begin() as connection:
                config = AlembicConfig()
                config.set_main_option(
                    "script_location", str(resources.files(__package__) / "migrations")
                )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except SQLAlchemyError as error:
            raise GradebookError(
                f"could not open the gradebook at {_safe(url)}: {_first_line(error)}; check "
                "db_url (e.g. sqlite:///codedock-gradebook.sqlite) and that the database answers"
            ) from None

    def record(self, attempt: Attempt) -> int:
        """Keep ``attempt``; returns its id once the database has committed it."""
        _validate(attempt)
        row = {
            "user": attempt.user,
            "assignment": attempt.assignment,
            "at": attempt.at,
            "code": attempt.code,
            "code_sha256": attempt.code_sha256,
            "score": float(attempt.score),
            "max_score": float(attempt.max_score),
            "verdicts": json.dumps(attempt.verdicts, sort_keys=True),
            "late": attempt.late,
        }
        try:
            with self._engine.begin() as connection:
                result = connection.execute(_table.insert().values(**row))
                key = result.inserted_primary_key
        except SQLAlchemyError as error:
            raise self._failed("record an attempt", error) from None
        assert key is not None
        return int(key[0])

    def attempts(self, user: str, assignment: str) -> list[Attempt]:
        """Every attempt of ``user`` at ``assignment``, oldest first."""
        query = (
            select(_table)
            .where(_table.c.user == user, _table.c.assignment == assignment)
            .order_by(_table.c.at, _table.c.id)
        )
        return self._select(query)

    def all_attempts(self, assignment: str) -> list[Attempt]:
        """Every attempt at ``assignment``, of every user, oldest first."""
        query = (
            select(_table)
            .where(_table.c.assignment == assignment)
            .order_by(_table.c.at, _table.c.id)
        )
        return self._select(query)

    def count_since(self, user: str, assignment: str, since: dt.datetime) -> int:
        """How many attempts ``user`` made at ``assignment`` at or after ``since`` (aware)."""
        query = (
            select(func.count())
            .select_from(_table)
            .where(
                _table.c.user == user,
                _table.c.assignment == assignment,
                _table.c.at >= _aware("since", since),
            )
        )
        try:
            with self._engine.connect() as connection:
                return int(connection.execute(query).scalar_one())
        except SQLAlchemyError as error:
            raise self._failed("count attempts", error) from None

    def last_at(self, user: str, assignment: str) -> dt.datetime | None:
        """When ``user`` last attempted ``assignment`` (aware UTC), or None if never."""
        query = select(func.max(_table.c.at)).where(
            _table.c.user == user, _table.c.assignment == assignment
        )
        try:
            with self._engine.connect() as connection:
                value = connection.execute(query).scalar_one_or_none()
        except SQLAlchemyError as error:
            raise self._failed("read the last attempt", error) from None
        # max() keeps the column's type, so the value comes back aware, in UTC.
        assert value is None or isinstance(value, dt.datetime)
        return value

    def close(self) -> None:
        """Close every connection to the database."""
        self._engine.dispose()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _select(self, query: Any) -> list[Attempt]:
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query).mappings().all()
        except SQLAlchemyError as error:
            raise self._failed("read attempts", error) from None
        return [_attempt(row) for row in rows]

    def _failed(self, doing: str, error: SQLAlchemyError) -> GradebookError:
        return GradebookError(
            f"could not {doing} in the gradebook at {_safe(self.url)}: {_first_line(error)}; "
            "check that the database answers and has room, then try again"
        )


def _open(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship with; SQLAlchemy's default would be psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(parsed, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _durable(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers and a writer work at once; FULL syncs the log at each commit,
        # so a committed attempt survives a killed process and a lost machine alike.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _attempt(row: Any) -> Attempt:
    try:
        verdicts = json.loads(row["verdicts"])
    except ValueError:
        raise GradebookError(
            f"attempt {row['id']} in the gradebook has verdicts that are not JSON; restore the "
            "database from a backup"
        ) from None
    return Attempt(
        user=row["user"],
        assignment=row["assignment"],
        at=row["at"],
        code=row["code"],
        code_sha256=row["code_sha256"],
        score=float(row["score"]),
        max_score=float(row["max_score"]),
        verdicts={str(name): str(verdict) for name, verdict in verdicts.items()},
        late=bool(row["late"]),
        id=int(row["id"]),
    )


def _validate(attempt: Attempt) -> None:
    _aware("at", attempt.at)
    if attempt.code_sha256 != code_sha256(attempt.code):
        raise GradebookError(
            f"attempt of {attempt.user!r} at {attempt.assignment!r}: code_sha256 is not the "
            "SHA-256 of its code; compute it with codedock_magic.gradebook.code_sha256(code)"
        )
    for name, number in (("score", attempt.score), ("max_score", attempt.max_score)):
        if not math.isfinite(number) or number < 0:
            raise GradebookError(
                f"attempt of {attempt.user!r} at {attempt.assignment!r}: {name} {number!r} is "
                "not a finite number >= 0"
            )


def _aware(name: str, value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise GradebookError(
            f"{name} {value.isoformat()} has no time zone; give an aware datetime, e.g. "
            "datetime.now(timezone.utc)"
        )
    return value


def _safe(url: str) -> str:
    """``url`` without its password, fit for a message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the configured db_url"


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
