"""Cold starts that take turns: one user's concurrent runs start their containers one by one.

Starting a container is the costly step for the engine (several hundred
milliseconds of the host's CPU, in the engine's own daemons rather than in the
container), so a user with several runs at once would otherwise take the whole
machine with their starts, and every other user's run would slow behind them.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator

from ..engines import Engine
from ..local.backend import LocalBackend, StartGate

__all__ = ["TurnTakingStarts"]

# Users map onto a fixed set of locks by a hash of their name, so that nothing of
# a user is kept once their runs end; two users who share a lock only take turns.
_STRIPES = 64
# How often a start that waits for its turn looks at its stop flag.
_POLL = 0.05


class TurnTakingStarts:
    """Starts each user's containers one at a time: a start gate per user, and its backend."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._locks = [threading.Lock() for _ in range(_STRIPES)]

    def gate(self, user: str) -> StartGate:
        """The gate ``user``'s cold starts go through: one at a time."""
        lock = self._locks[zlib.crc32(user.encode()) % _STRIPES]

        @contextlib.contextmanager
        def turn(stop: threading.Event | None) -> Iterator[bool]:
            while not lock.acquire(timeout=_POLL):
                if stop is not None and stop.is_set():
                    yield False
                    return
            try:
                yield True
            finally:
                lock.release()

        return turn

    def backend(self, user: str) -> LocalBackend:
        """A backend that starts a new container for each run, in ``user``'s turn."""
        return LocalBackend(self.engine, gate=self.gate(user))
