"""Cold starts that take turns: one user's concurrent runs start their containers one by one.

Starting a container is the costly step for the engine (several hundred
milliseconds of the host's CPU, in the engine's own daemons rather than in the
container), so a user with several runs at once would otherwise take the whole
machine with their starts, and every other user's run would slow behind them.
"""

from __future__ import annotations

import threading
import zlib

from ..core.request import OnCase, OnImage, OnOutput, RunRequest
from ..core.result import RunResult
from ..engines import Engine
from ..local.backend import longest_run, not_started, run_in
from ..local.sandbox import start_sandbox

__all__ = ["TurnTakingStarts"]

# Users map onto a fixed set of locks by a hash of their name, so that nothing of
# a user is kept once their runs end; two users who share a lock only take turns.
_STRIPES = 64


class TurnTakingStarts:
    """Runs each request in a new container, its user's starts one at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._locks = [threading.Lock() for _ in range(_STRIPES)]

    def run(
        self,
        request: RunRequest,
        user: str,
        *,
        on_output: OnOutput | None = None,
        on_case: OnCase | None = None,
        on_image: OnImage | None = None,
        stop: threading.Event,
    ) -> RunResult:
        """Start a container when the user's previous start is done, then run in it."""
        lock = self._locks[zlib.crc32(user.encode()) % _STRIPES]
        while not lock.acquire(timeout=0.05):
            if stop.is_set():
                return not_started(request)
        try:
            if stop.is_set():
                return not_started(request)
            sandbox = start_sandbox(self.engine, request.profile, longest_run=longest_run(request))
        finally:
            lock.release()
        return run_in(
            sandbox, request, on_output=on_output, on_case=on_case, on_image=on_image, stop=stop
        )
