"""The real PostgreSQL server that ``scripts/dev.sh test`` starts, and a fresh database on it.

The URL comes from ``$CODEDOCK_PG_URL``, else from the file ``dev.sh`` writes
(``$CODEDOCK_PG_DIR/url``, by default ``/opt/codedock-postgres/url``). Without a server
the tests skip, with the reason, and fail under CI=true, where they must run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import IN_CI

PG_DIR = Path(os.environ.get("CODEDOCK_PG_DIR", "/opt/codedock-postgres"))


def server_url() -> tuple[str, str]:
    """The URL of the tests' database and ``""``, or ``""`` and why there is none."""
    url = os.environ.get("CODEDOCK_PG_URL", "")
    if not url:
        try:
            url = (PG_DIR / "url").read_text().strip()
        except OSError:
            return "", f"no {PG_DIR / 'url'}; run bash scripts/dev.sh test (as root) to start one"
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        with psycopg.connect(_dsn(url), connect_timeout=5):
            pass
    except psycopg.Error as error:
        where = f"{parsed.host}:{parsed.port}"
        return "", f"PostgreSQL at {where} did not answer ({error}); run bash scripts/dev.sh test"
    return url, ""


def _dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL to a database of its own on the real server, dropped afterwards."""
    url, reason = server_url()
    if not url:
        if IN_CI:
            pytest.fail(f"CI=true and the PostgreSQL tests cannot run: {reason}")
        pytest.skip(reason)
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"gradebook_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_dsn(url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_dsn(url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
