"""The backend that runs on a local engine.

A backend (:class:`~codedock_magic.core.request.Backend`, the seam at the level of a
whole run) takes a :class:`RunRequest` (code, stdin, a container profile and run
limits), streams output back through ``on_output`` and returns a
:class:`~codedock_magic.core.result.RunResult`, as an httpx transport takes a request
and returns a response. :func:`~codedock_magic.run`, the magic and the
pycodedock API all go through one, so a backend that asks a remote sandbox
service can take the place of :class:`LocalBackend` with no change above it.
"""

from __future__ import annotations

import threading

from ..core.request import OnCase, OnImage, OnOutput, OnState, RunRequest
from ..core.result import RunResult
from ..engines import Engine, connect
from .caserun import cases_never_started, execute_cases, total_time
from .execution import execute, never_started
from .pool import Pool
from .sandbox import Sandbox, start_sandbox

__all__ = [
    "LocalBackend",
    "OnCase",
    "OnImage",
    "OnOutput",
    "OnState",
    "RunRequest",
    "longest_run",
    "not_started",
    "run_in",
]


class LocalBackend:
    """Runs each request in a fresh container on an engine this process holds.

    Args:
        engine: the engine; the pool's, else the one ``$CODEDOCK_ENGINE``
            names (Docker by default).
        pool: where to take a container started ahead of time; a request it has
            none for starts a container of its own.
    """

    def __init__(self, engine: Engine | None = None, *, pool: Pool | None = None) -> None:
        self._engine = engine
        self.pool = pool

    @property
    def engine(self) -> Engine:
        """The engine cold starts use; looked up on first use."""
        if self._engine is None:
            self._engine = self.pool.engine if self.pool is not None else connect()
        return self._engine

    def run(
        self,
        request: RunRequest,
        *,
        on_output: OnOutput | None = None,
        stop: threading.Event | None = None,
        on_state: OnState | None = None,
        on_case: OnCase | None = None,
        on_image: OnImage | None = None,
    ) -> RunResult:
        """Run ``request`` in a pooled container when one fits, else in a new one.

        A local run never waits in a queue, so ``on_state`` is not called.
        """
        longest = longest_run(request)
        sandbox = None
        if self.pool is not None:
            sandbox = self.pool.take(request.profile, longest)
        if sandbox is None:
            if stop is not None and stop.is_set():
                return not_started(request)
            sandbox = start_sandbox(self.engine, request.profile, longest_run=longest)
        return run_in(
            sandbox, request, on_output=on_output, on_case=on_case, on_image=on_image, stop=stop
        )


def longest_run(request: RunRequest) -> float:
    """The longest ``request`` may run: its timeout, or for cases all of theirs.

    Raises:
        InvalidValueError: a case asks for more memory than its container has.
    """
    return total_time(request) if request.cases else request.limits.timeout


def not_started(request: RunRequest) -> RunResult:
    """The result of ``request`` stopped before it had a container."""
    return cases_never_started(request) if request.cases else never_started(request)


def run_in(
    sandbox: Sandbox,
    request: RunRequest,
    *,
    on_output: OnOutput | None = None,
    on_case: OnCase | None = None,
    on_image: OnImage | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Run ``request`` in a started ``sandbox``, which it uses up: once, or once per case."""
    if request.cases:
        return execute_cases(sandbox, request, on_case=on_case, stop=stop)
    return execute(sandbox, request, on_output=on_output, stop=stop, on_image=on_image)
