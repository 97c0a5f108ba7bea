"""Attempts and the database that keeps them (:class:`Gradebook`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, false, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..core.errors import GradebookError
from .schema import attempts as _table
from .schema import regrade_results as _results
from .schema import regrades as _regrades

__all__ = ["Attempt", "CaseScore", "Gradebook", "Regrade", "Regraded", "code_sha256"]

#: Times a regrade tries for its number when others take it first.
_NUMBER_TRIES = 10

_MIGRATING = threading.Lock()


def code_sha256(code: str) -> str:
    """The SHA-256 of ``code`` (UTF-8), as an attempt records it."""
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class CaseScore:
    """One case's points in an attempt, and whether the case is hidden from students."""

    name: str
    points: float
    max_points: float
    hidden: bool

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "name": self.name,
            "points": self.points,
            "max_points": self.max_points,
            "hidden": self.hidden,
        }


def _scores_json(cases: tuple[CaseScore, ...]) -> str:
    return json.dumps([case.to_dict() for case in cases])


def _scores(text: str | None) -> tuple[CaseScore, ...]:
    if not text:
        return ()
    return tuple(
        CaseScore(
            name=str(item["name"]),
            points=float(item["points"]),
            max_points=float(item["max_points"]),
            hidden=bool(item["hidden"]),
        )
        for item in json.loads(text)
    )


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
    #: Each case's points, in the cases' order (empty in attempts recorded before
    #: the gradebook kept them).
    cases: tuple[CaseScore, ...] = ()
    #: Made by a user the assignment reveals its hidden cases to: no limit applies,
    #: and neither the exports, the regrades nor the students' counts see it.
    teacher: bool = False
    #: Digests of the cases and checkers it was checked against, when known.
    cases_sha256: str | None = None
    checkers_sha256: str | None = None
    #: The limits it ran with before the assignment's own (its user's tier's
    #: defaults, as JSON numbers), and its image: a regrade runs it with them again.
    #: ``None`` in attempts recorded before the gradebook kept them.
    defaults: dict[str, Any] | None = field(default=None, hash=False)
    image: str | None = None


@dataclass(frozen=True)
class Regraded:
    """One student's attempt run again in a regrade: the new result beside the old."""

    user: str
    attempt_id: int
    score: float
    max_score: float
    verdicts: dict[str, str] = field(hash=False)
    cases: tuple[CaseScore, ...]
    #: The score it is compared with (``None``: nothing before).
    old_score: float | None
    old_max_score: float | None
    #: ``(case, old verdict, new verdict)`` of each case that flipped.
    flipped: tuple[tuple[str, str, str], ...]
    why: tuple[str, ...]
    #: False when the check could not judge it (a checker raised on its output):
    #: its cases are errors, ``why`` says what failed, and it stands nowhere (the
    #: export and later comparisons take the attempt as recorded).
    judged: bool = True


@dataclass(frozen=True)
class Regrade:
    """One regrade of an assignment: what it ran against, and every student's result."""

    assignment: str
    at: dt.datetime
    policy: str
    cases_sha256: str
    checkers_sha256: str
    #: The regrade it was compared with; 0: the recorded attempts.
    compared_with: int | None
    results: tuple[Regraded, ...]
    #: 1, 2, ... per assignment, given when it is recorded.
    number: int = 0


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
            # Alembic runs a migration through module globals: two threads opening a
            # gradebook at once would clash (KeyError: 'script').
            with _MIGRATING, self._engine.begin() as connection:
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
            "cases": _scores_json(attempt.cases) if attempt.cases else None,
            "teacher": attempt.teacher,
            "cases_sha256": attempt.cases_sha256,
            "checkers_sha256": attempt.checkers_sha256,
            "defaults": None
            if attempt.defaults is None
            else json.dumps(attempt.defaults, sort_keys=True),
            "image": attempt.image,
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

    def all_attempts(self, assignment: str, *, teachers: bool = False) -> list[Attempt]:
        """Every attempt at ``assignment``, of every user, oldest first; teachers'
        attempts only if ``teachers``."""
        query = select(_table).where(_table.c.assignment == assignment)
        if not teachers:
            query = query.where(_table.c.teacher == false())
        return self._select(query.order_by(_table.c.at, _table.c.id))

    def record_regrade(self, regrade: Regrade) -> Regrade:
        """Keep ``regrade`` and its results in one transaction; it, with its number.

        Two regrades of one assignment may finish at once: each takes the next
        number in its transaction, and the one that loses the race (the number
        is unique per assignment) takes the next again.
        """
        for turn in range(_NUMBER_TRIES):
            try:
                return self._record_regrade(regrade)
            except IntegrityError as error:
                # Only the race for a number is tried again: any other failure, or a
                # commit whose outcome is unknown, could be kept twice.
                if turn == _NUMBER_TRIES - 1 or not _number_taken(error):
                    raise self._failed("record a regrade", error) from None
                # Apart at random, so that the same two do not meet again.
                time.sleep(random.uniform(0.01, 0.05) * (turn + 1))
            except SQLAlchemyError as error:
                raise self._failed("record a regrade", error) from None
        raise AssertionError("unreachable")

    def _record_regrade(self, regrade: Regrade) -> Regrade:
        with self._engine.begin() as connection:
            last = connection.execute(
                select(func.max(_regrades.c.number)).where(
                    _regrades.c.assignment == regrade.assignment
                )
            ).scalar_one_or_none()
            number = int(last or 0) + 1
            key = connection.execute(
                _regrades.insert().values(
                    assignment=regrade.assignment,
                    number=number,
                    at=_aware("at", regrade.at),
                    policy=regrade.policy,
                    cases_sha256=regrade.cases_sha256,
                    checkers_sha256=regrade.checkers_sha256,
                    compared_with=regrade.compared_with,
                )
            ).inserted_primary_key
            assert key is not None
            if regrade.results:
                connection.execute(
                    _results.insert(),
                    [_result_row(int(key[0]), result) for result in regrade.results],
                )
        return Regrade(**{**regrade.__dict__, "number": number})

    def regrades(self, assignment: str) -> list[Regrade]:
        """Every regrade of ``assignment``, oldest first, with its results."""
        try:
            with self._engine.connect() as connection:
                heads = (
                    connection.execute(
                        select(_regrades)
                        .where(_regrades.c.assignment == assignment)
                        .order_by(_regrades.c.number)
                    )
                    .mappings()
                    .all()
                )
                rows = (
                    connection.execute(
                        select(_results)
                        .where(_results.c.regrade_id.in_([head["id"] for head in heads]))
                        .order_by(_results.c.user)
                    )
                    .mappings()
                    .all()
                )
        except SQLAlchemyError as error:
            raise self._failed("read regrades", error) from None
        by_head: dict[int, list[Regraded]] = {}
        for row in rows:
            by_head.setdefault(int(row["regrade_id"]), []).append(_regraded(row))
        return [
            Regrade(
                assignment=head["assignment"],
                at=head["at"],
                policy=head["policy"],
                cases_sha256=head["cases_sha256"],
                checkers_sha256=head["checkers_sha256"],
                compared_with=head["compared_with"],
                results=tuple(by_head.get(int(head["id"]), ())),
                number=int(head["number"]),
            )
            for head in heads
        ]

    def newest_results(self, assignment: str) -> dict[int, Regraded]:
        """Per attempt id, the newest regrade's result, for the attempts it re-ran.

        Only the newest regrade's: an older one ran against other cases, and an
        attempt it alone covered (another policy chose it), or could not judge,
        stands as recorded.
        """
        regrades = self.regrades(assignment)
        if not regrades:
            return {}
        return {r.attempt_id: r for r in regrades[-1].results if r.judged}

    def count_since(self, user: str, assignment: str, since: dt.datetime) -> int:
        """How many attempts ``user`` made at ``assignment`` at or after ``since`` (aware)."""
        query = (
            select(func.count())
            .select_from(_table)
            .where(
                _table.c.user == user,
                _table.c.assignment == assignment,
                _table.c.at >= _aware("since", since),
                _table.c.teacher == false(),
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
            _table.c.user == user, _table.c.assignment == assignment, _table.c.teacher == false()
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
        cases=_scores(row["cases"]),
        teacher=bool(row["teacher"]),
        cases_sha256=row["cases_sha256"],
        checkers_sha256=row["checkers_sha256"],
        defaults=_json_or_none(row["id"], row["defaults"]),
        image=row["image"],
    )


def _json_or_none(key: int, text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise GradebookError(
            f"attempt {key} in the gradebook has run settings that are not a JSON object; "
            "restore the database from a backup"
        )
    return value


def _number_taken(error: IntegrityError) -> bool:
    """Whether ``error`` is another regrade having taken the number (PostgreSQL names
    the constraint; SQLite its columns)."""
    text = str(error.orig)
    return "uq_gradebook_regrades_number" in text or "gradebook_regrades.number" in text


def _result_row(regrade_id: int, result: Regraded) -> dict[str, Any]:
    return {
        "regrade_id": regrade_id,
        "attempt_id": result.attempt_id,
        "user": result.user,
        "score": float(result.score),
        "max_score": float(result.max_score),
        "verdicts": json.dumps(result.verdicts, sort_keys=True),
        "cases": _scores_json(result.cases),
        "old_score": result.old_score,
        "old_max_score": result.old_max_score,
        "flipped": json.dumps([list(flip) for flip in result.flipped]),
        "why": json.dumps(list(result.why)),
        "judged": result.judged,
    }


def _regraded(row: Any) -> Regraded:
    return Regraded(
        user=row["user"],
        attempt_id=int(row["attempt_id"]),
        score=float(row["score"]),
        max_score=float(row["max_score"]),
        verdicts={str(k): str(v) for k, v in json.loads(row["verdicts"]).items()},
        cases=_scores(row["cases"]),
        old_score=row["old_score"],
        old_max_score=row["old_max_score"],
        flipped=tuple((str(a), str(b), str(c)) for a, b, c in json.loads(row["flipped"])),
        why=tuple(str(reason) for reason in json.loads(row["why"])),
        judged=bool(row["judged"]),
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
