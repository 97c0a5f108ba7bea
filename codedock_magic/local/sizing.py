"""How many containers a warm pool should keep: its floor, more under a burst, back when idle.

Cells come in bursts (a class runs the same cell, a loop of checks), then stop. A
pool sized for the burst holds memory all day; one sized for the quiet hours makes
every run of a burst start cold. So the pool keeps ``floor`` containers, and each
run that found it empty in the last ``window`` seconds asks for one more, up to
``ceiling``. What a burst grew is held while runs keep coming (a pool that is big
enough no longer misses, and must not shrink for it), and given back once no run
has come for ``shrink_after`` seconds.

Pure logic on a clock the caller passes in; the pool calls it under its own lock.
"""

from __future__ import annotations

from collections import deque

from ..core.errors import InvalidValueError

__all__ = ["Sizer"]


class Sizer:
    """The pool's target size, from the runs it served and missed.

    Args:
        floor: containers kept ready even when idle (0 or more).
        ceiling: the most kept ready under a burst (at least ``floor``).
        window: seconds a miss counts towards growth.
        shrink_after: seconds without a run before the target is ``floor`` again.
    """

    def __init__(
        self, floor: int, ceiling: int, *, window: float = 30.0, shrink_after: float = 60.0
    ) -> None:
        if floor < 0:
            raise InvalidValueError("pool size", floor, "a whole number of 0 or more")
        if ceiling < floor:
            raise InvalidValueError(
                "pool max", ceiling, f"a whole number at least the pool size ({floor})"
            )
        if not window > 0:
            raise InvalidValueError("pool burst window", window, "a positive number of seconds")
        if not shrink_after > 0:
            raise InvalidValueError(
                "pool shrink_after", shrink_after, "a positive number of seconds"
            )
        self.floor = floor
        self.ceiling = ceiling
        self.window = window
        self.shrink_after = shrink_after
        self._misses: deque[float] = deque()
        self._held = floor
        self._last_run: float | None = None

    def run(self, now: float, *, found: bool) -> None:
        """A run asked for a container at ``now``; ``found`` says whether one was ready."""
        self._last_run = now
        if not found:
            self._misses.append(now)
        self._held = max(self._held, self._recent(now))

    def target(self, now: float) -> int:
        """How many containers the pool should keep ready at ``now``."""
        if self._last_run is None or now - self._last_run >= self.shrink_after:
            self._misses.clear()
            self._held = self.floor
            return self.floor
        self._held = max(self._held, self._recent(now))
        return self._held

    def _recent(self, now: float) -> int:
        while self._misses and now - self._misses[0] >= self.window:
            self._misses.popleft()
        return min(self.ceiling, self.floor + len(self._misses))

    def resize(self, floor: int | None = None, ceiling: int | None = None) -> None:
        """New bounds; what a burst grew is kept within them."""
        floor = self.floor if floor is None else floor
        ceiling = self.ceiling if ceiling is None else ceiling
        if floor < 0:
            raise InvalidValueError("pool size", floor, "a whole number of 0 or more")
        if ceiling < floor:
            raise InvalidValueError(
                "pool max", ceiling, f"a whole number at least the pool size ({floor})"
            )
        self.floor, self.ceiling = floor, ceiling
        self._held = min(ceiling, max(floor, self._held))
