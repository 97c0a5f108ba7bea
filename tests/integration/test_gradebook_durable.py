"""A gradebook killed with SIGKILL in the middle of a burst of attempts, on SQLite and on
a real PostgreSQL server: it keeps every attempt it acknowledged, and no row is torn.

A writer process records attempts one after another and writes an acknowledgement
after each :meth:`Gradebook.record` returns, as the service answers a student only
once the attempt is recorded. The test kills it at a random moment, again and again,
then counts the rows. The writer is sequential, so at most one attempt can be
committed and not yet acknowledged (the kill landing between the commit and the
write of its acknowledgement): the rows must number the acknowledged, or one more.
Fewer would be an acknowledged attempt lost.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from codedock_magic.gradebook import Gradebook, code_sha256

from .pghelp import pg_url

__all__ = ["pg_url"]

KILLS = 6
_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
UNTIL_KILL = (0.3, 1.5)

# Attempt i's code is a function of i alone, of a size that varies from a line to
# about 40 KiB, so that a row written in part cannot pass for a whole one.
WRITER = r"""
import datetime as dt, os, sys
from codedock_magic.gradebook import Attempt, Gradebook, code_sha256

def code(i):
    return f"# attempt {i}\n" + f"x_{i} = {i}\n" * ((i * 7919) % 3000)

book = Gradebook(sys.argv[1])
i = int(sys.argv[2])
while True:
    source = code(i)
    book.record(Attempt(
        user=f"student{i % 7}", assignment="hw1",
        at=dt.datetime.now(dt.timezone.utc), code=source, code_sha256=code_sha256(source),
        score=float(i % 4), max_score=3.0 + (i % 4),
        verdicts={f"case{n}": ("passed" if (i + n) % 3 else "failed") for n in range(i % 9)},
        late=bool(i % 2),
    ))
    os.write(1, f"{i}\n".encode())
    i += 1
"""


def _code(i: int) -> str:
    return f"# attempt {i}\n" + f"x_{i} = {i}\n" * ((i * 7919) % 3000)


def _burst_and_kill(url: str, start: int, rng: random.Random) -> int:
    """Start a writer at attempt ``start``, SIGKILL it mid-burst; how many it acknowledged."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert writer.stdout is not None
    # Wait for its first acknowledgement (past the migrations), then kill it a random
    # moment later: mid-insert, mid-commit or mid-acknowledgement.
    first = writer.stdout.readline()
    assert first, "the writer acknowledged nothing: " + writer.stderr.read().decode()
    time.sleep(rng.uniform(*UNTIL_KILL))
    os.kill(writer.pid, signal.SIGKILL)
    rest, _ = writer.communicate(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    lines = (first + rest).decode().splitlines()
    # A torn last line is an acknowledgement the writer had not finished: not one.
    acknowledged = [int(line) for line in lines if line.strip().isdigit()]
    assert acknowledged == list(range(start, start + len(acknowledged)))
    return len(acknowledged)


def _settle(url: str) -> None:
    """Wait until a killed writer's server session has ended.

    A PostgreSQL server finishes a COMMIT it has received even when its client
    is gone; counting the rows before it ends would miss that row, and the next
    writer would then write its index a second time.
    """
    if not url.startswith("postgresql"):
        return  # SQLite has no server: the killed process was the only writer.
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    others = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as connection:
                if connection.execute(others).scalar_one() == 0:
                    return
            assert time.monotonic() < deadline, "the killed writer's session did not end"
            time.sleep(0.05)
    finally:
        engine.dispose()


def _check_rows(url: str) -> list[int]:
    """Every row read raw: whole, its hash its code's, its code the writer's; their indexes."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT code, code_sha256, verdicts, score, max_score FROM gradebook_attempts")
        ).all()
    engine.dispose()
    indexes = []
    for code, digest, verdicts, score, max_score in rows:
        i = int(code.split("\n", 1)[0].removeprefix("# attempt "))
        assert code == _code(i), f"attempt {i}'s code is torn"
        assert digest == code_sha256(code)
        assert set(json.loads(verdicts)) == {f"case{n}" for n in range(i % 9)}
        assert (score, max_score) == (float(i % 4), 3.0 + (i % 4))
        indexes.append(i)
    return sorted(indexes)


def _kill_again_and_again(url: str, seed: int) -> None:
    rng = random.Random(seed)
    rows = 0
    acknowledged = 0
    for _ in range(KILLS):
        # Each writer resumes after the rows there are, so indexes stay unique.
        acks = _burst_and_kill(url, rows, rng)
        _settle(url)
        indexes = _check_rows(url)
        assert indexes == list(range(len(indexes))), "a row is missing or doubled"
        new = len(indexes) - rows
        assert acks <= new <= acks + 1, f"{acks} acknowledged, {new} recorded"
        rows, acknowledged = len(indexes), acknowledged + acks
    assert acknowledged >= KILLS * 2, f"too few attempts to prove anything: {acknowledged}"
    with Gradebook(url) as book:
        read = book.all_attempts("hw1")
    assert len(read) == rows
    assert all(a.code_sha256 == code_sha256(a.code) and a.at.tzinfo for a in read)


def test_sqlite_keeps_every_acknowledged_attempt_through_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "gradebook.sqlite"
    url = f"sqlite:///{path}"
    _kill_again_and_again(url, seed=22)
    engine = create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    engine.dispose()


def test_postgresql_keeps_every_acknowledged_attempt_through_sigkill(pg_url: str) -> None:
    _kill_again_and_again(pg_url, seed=23)


def test_a_kill_at_once_leaves_a_gradebook_that_opens(tmp_path: Path) -> None:
    # Killed as it starts: perhaps mid-migration, which runs in one transaction.
    url = f"sqlite:///{tmp_path / 'gradebook.sqlite'}"
    for delay in (0.0, 0.2, 0.4, 0.8):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, url, "0"], stdout=subprocess.PIPE)
        time.sleep(delay)
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate(timeout=30)
        with Gradebook(url) as book:
            assert book.count_since("student0", "hw1", _EPOCH) >= 0
    _check_rows(url)
