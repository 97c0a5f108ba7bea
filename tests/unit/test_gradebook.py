"""The gradebook's API on SQLite: what it keeps, what it refuses, and its migrations."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from codedock_magic.core.errors import GradebookError
from codedock_magic.gradebook import Attempt, Gradebook, code_sha256

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def attempt(user: str = "alice", at: dt.datetime = T0, code: str = "print(1)\n") -> Attempt:
    return Attempt(
        user=user,
        assignment="hw1",
        at=at,
        code=code,
        code_sha256=code_sha256(code),
        score=2.0,
        max_score=3.0,
        verdicts={"small": "passed", "big": "failed"},
        late=False,
    )


@pytest.fixture
def book(tmp_path: Path) -> Gradebook:
    return Gradebook(f"sqlite:///{tmp_path / 'book.sqlite'}")


def test_records_and_reads_back_whole(book: Gradebook) -> None:
    first = book.record(attempt())
    second = book.record(attempt(at=T0 + dt.timedelta(minutes=5), code="print(2)\n"))
    assert second > first
    got = book.attempts("alice", "hw1")
    assert [a.id for a in got] == [first, second]
    assert got[0] == attempt().__class__(**{**attempt().__dict__, "id": first})
    assert got[1].at == T0 + dt.timedelta(minutes=5) and got[1].at.tzinfo is not None
    assert book.attempts("bob", "hw1") == []


def test_counts_and_last_at_across_time_zones(book: Gradebook) -> None:
    for minutes in (0, 10, 20):
        book.record(attempt(at=T0 + dt.timedelta(minutes=minutes)))
    book.record(attempt(user="bob"))
    paris = dt.timezone(dt.timedelta(hours=1))
    assert book.count_since("alice", "hw1", (T0 + dt.timedelta(minutes=10)).astimezone(paris)) == 2
    assert book.count_since("alice", "hw1", T0 - dt.timedelta(days=1)) == 3
    assert book.last_at("alice", "hw1") == T0 + dt.timedelta(minutes=20)
    assert book.last_at("carol", "hw1") is None


def test_refuses_what_would_not_read_back(book: Gradebook) -> None:
    with pytest.raises(GradebookError, match="no time zone"):
        book.record(attempt(at=T0.replace(tzinfo=None)))
    with pytest.raises(GradebookError, match="SHA-256"):
        book.record(Attempt(**{**attempt().__dict__, "code_sha256": "0" * 64}))
    with pytest.raises(GradebookError, match="finite"):
        book.record(Attempt(**{**attempt().__dict__, "score": float("nan")}))
    assert book.attempts("alice", "hw1") == []


def test_survives_reopening_and_migrates_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    with Gradebook(url) as book:
        book.record(attempt())
    with Gradebook(url) as book:
        assert len(book.attempts("alice", "hw1")) == 1
    db = sqlite3.connect(tmp_path / "book.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT version_num FROM codedock_gradebook_version").fetchall() == [
        ("0003",)
    ]


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(GradebookError, match="could not open the gradebook") as caught:
        Gradebook(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'book.sqlite'}")
    assert "\n" not in str(caught.value)


def test_the_service_opens_its_gradebook_first_and_names_db_url(tmp_path: Path) -> None:
    from codedock_magic.service.app import SandboxService

    from .fakes import FakeEngine

    url = f"sqlite:///{tmp_path / 'service.sqlite'}"
    app = SandboxService(engine=FakeEngine(), pool_size=0, db_url=url)
    app.initialize([])
    app.make_app()
    try:
        assert app.gradebook.attempts("alice", "hw1") == []
    finally:
        app.shutdown()
    broken = SandboxService(engine=FakeEngine(), pool_size=0, db_url="sqlite:///" + "/no/such/x")
    broken.initialize([])
    with pytest.raises(GradebookError, match="db_url"):
        broken.make_app()


def test_the_migrations_build_the_tables_the_code_uses(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from codedock_magic.gradebook.schema import metadata

    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    Gradebook(url).close()
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    # Alembic's own version table is not in our metadata; nothing else may differ.
    assert [d for d in differences if "codedock_gradebook_version" not in repr(d)] == []
