"""Shared fixtures, and the markers each folder's tests carry.

``tests/unit`` needs nothing but Python. ``tests/integration`` needs the real
components: a Docker engine with the sandbox image, real kernels, and in
``browser/`` Chromium. Those tests skip locally, with the reason, when a component
is missing, and fail under CI=true, where they must run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from codedock_magic import DockerEngine

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.resolve().relative_to(HERE).parts
        if parts[0] == "integration":
            item.add_marker(pytest.mark.integration)
            if "browser" in parts:
                item.add_marker(pytest.mark.browser)
        elif parts[0] == "unit":
            item.add_marker(pytest.mark.unit)


def _engine_or_reason() -> tuple[DockerEngine | None, str]:
    from codedock_magic import DEFAULT_IMAGE, CodedockError
    from codedock_magic.engines import connect

    try:
        # The engine the settings name ($CODEDOCK_ENGINE, Docker by default).
        engine = connect()
        engine.ping()
        if not engine.image_exists(DEFAULT_IMAGE):
            return None, f"the image {DEFAULT_IMAGE} is missing; run codedock image build"
    except CodedockError as exc:
        return None, str(exc)
    return engine, ""  # type: ignore[return-value]


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    """The real Docker engine with the sandbox image built."""
    found, reason = _engine_or_reason()
    if found is None:
        if IN_CI:
            pytest.fail(f"CI=true and Docker tests cannot run: {reason}")
        pytest.skip(f"no Docker engine with the sandbox image: {reason}")
    return found


def under_gvisor(engine: object) -> bool:
    """Whether the engine runs sandboxes under gVisor (``$CODEDOCK_ENGINE_OPTIONS``
    with ``{"runtime": "runsc"}``: the gVisor tier), where some facts of the
    hardening differ because gVisor is a kernel of its own."""
    return bool(getattr(engine, "gvisor", False))


def ours(engine: DockerEngine, session: str | None = None) -> list[str]:
    """Ids of containers of a session (this process's by default) that still exist."""
    from codedock_magic.labels import SESSION, SESSION_ID

    return [c.id for c in engine.list({SESSION: session or SESSION_ID})]


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
        from codedock_magic.labels import SESSION, SESSION_ID

        engine = request.getfixturevalue("engine")
        left = wait_until_gone(engine, SESSION_ID, within=5.0)
        states = [(c.state, dict(c.labels)) for c in engine.list({SESSION: SESSION_ID})]
        assert left == [], f"the test left sandbox containers behind: {states}"
