"""Refusals, rate-limited per user: a bucket of refusals that refills with time.

A refused run costs the service a parse, an audit line and a log line. A user
who sends nothing but refused runs would turn that into disk and CPU at the rate
they can send, so each user has a bucket of ``burst`` refusals that refills at
``rate`` a second. While it is empty, the user's runs are refused at once, from
their headers, before their body is read, parsed or audited; the next audit line
says how many were refused so.

It lives on the server's event loop; nothing here is thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RefusalLimiter"]

# Users whose bucket is full again are forgotten once this many are kept.
_KEPT = 1024


@dataclass
class _Bucket:
    tokens: float
    at: float
    suppressed: int = 0


class RefusalLimiter:
    """How many refusals each user may still cost the service.

    Args:
        rate: refusals a second a user may cost, in the long run.
        burst: refusals a user may cost at once.
        clock: seconds, monotonic (for tests).
    """

    def __init__(
        self, rate: float = 1.0, burst: int = 10, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._users: dict[str, _Bucket] = {}

    def _bucket(self, user: str) -> _Bucket:
        now = self._clock()
        bucket = self._users.get(user)
        if bucket is None:
            if len(self._users) >= _KEPT:
                self._forget_full(now)
            bucket = self._users[user] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        return bucket

    def wait(self, user: str) -> float:
        """Seconds until ``user`` may be refused in full again; 0 when they may now."""
        bucket = self._bucket(user)
        if bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def suppress(self, user: str) -> None:
        """A refusal of ``user`` answered at once, with no audit line."""
        self._bucket(user).suppressed += 1

    def take(self, user: str) -> int:
        """Count one full refusal of ``user``; how many were suppressed since the last."""
        bucket = self._bucket(user)
        bucket.tokens = max(0.0, bucket.tokens - 1)
        suppressed, bucket.suppressed = bucket.suppressed, 0
        return suppressed

    def _forget_full(self, now: float) -> None:
        for user, bucket in list(self._users.items()):
            if (
                bucket.tokens + (now - bucket.at) * self.rate >= self.burst
                and not bucket.suppressed
            ):
                del self._users[user]
