"""Shared fixtures. Tests that need Docker skip locally when no engine or image is
there, and fail under CI=true, where they must run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from codedock_magic import DEFAULT_IMAGE, CodedockError, DockerEngine, default_engine
from codedock_magic.labels import SESSION, SESSION_ID

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _engine_or_reason() -> tuple[DockerEngine | None, str]:
    try:
        engine = default_engine()
        engine.ping()
    except CodedockError as exc:
        return None, str(exc)
    if not engine.image_exists(DEFAULT_IMAGE):
        return None, f"the image {DEFAULT_IMAGE} is missing; run bash images/pybuntu/build.sh"
    return engine, ""


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    """The real Docker engine with the sandbox image built."""
    found, reason = _engine_or_reason()
    if found is None:
        if IN_CI:
            pytest.fail(f"CI=true and Docker tests cannot run: {reason}")
        pytest.skip(f"no Docker engine with the sandbox image: {reason}")
    return found


def ours(engine: DockerEngine, session: str = SESSION_ID) -> list[str]:
    """Ids of containers of a session that still exist."""
    return [c.id for c in engine.list({SESSION: session})]


def wait_until_gone(engine: DockerEngine, session: str, within: float) -> list[str]:
    """Poll until no container of ``session`` exists or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    left = ours(engine, session)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = ours(engine, session)
    return left


@pytest.fixture(autouse=True)
def _no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that touched the engine leaves none of this process's containers.

    A run that ended cleanly returns before the engine has finished removing its
    exited container, so allow the removal a moment.
    """
    yield
    if "engine" in request.fixturenames:
        engine = request.getfixturevalue("engine")
        left = wait_until_gone(engine, SESSION_ID, within=5.0)
        states = [(c.state, dict(c.labels)) for c in engine.list({SESSION: SESSION_ID})]
        assert left == [], f"the test left sandbox containers behind: {states}"
