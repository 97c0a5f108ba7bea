"""A warm pool: fresh, single-use sandboxes started ahead of time.

Creating and starting a container is most of the cost of a run. The pool keeps
``size`` containers created, attached and started, their supervisors waiting for
code, so that a run only sends its code. Each container still serves exactly one
run and is then removed: nothing a run leaves (files, processes, environment,
memory) can reach the next.

A pooled container is limited and hardened exactly as the run it will serve: the
pool serves runs whose :class:`~codedock_magic.core.profile.Profile` (image and
container limits) equals its own; a run's own limits (timeout, output cap) travel
with its code, so any fits (up to ``max_run`` seconds). Other runs start a
container of their own, as without a pool. Idle containers are covered by the
same dead-man's switch (the host holds their attach channel), end themselves
after ``idle`` seconds, and are refilled by background threads that never block
a run: engine trouble there only means the next run starts cold and reports the
error itself.

The pool follows the load (:mod:`.sizing`): it keeps ``size`` ready, grows by one
for each run that found it empty in the last ``burst_window`` seconds, up to
``max_size``, and ends what it grew once no run has come for ``shrink_after``
seconds. Up to four containers start at once, as the engine starts them in
parallel about as fast as one by one.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator

from ..core.errors import CodedockError, InvalidValueError
from ..core.profile import Profile
from ..engines import Engine, connect
from .sandbox import ReadyWait, Sandbox, start_sandbox
from .sizing import Sizer

__all__ = ["Pool", "Pools"]

# The supervisor outlives the host's own idle limit by this much, so the host never
# hands out a container that is about to end itself.
_IDLE_MARGIN = 30.0
_RETRY = 5.0
# A run that finds the pool empty while its next container has started but its
# supervisor is still setting itself up takes that one rather than start cold; it
# waits this long for the fill thread to hand it over.
_HANDOVER_WAIT = 0.5
# Containers started at once while the pool fills; the engine gains little from more.
_FILLERS = 4
# A refill waits this long at most for the one run under way to end: starting a
# container takes the engine's CPU, on the cores that run (a warm run took 3 to 7
# ms longer beside its own refill, on 2 cores).
_REFILL_DEFER = 0.25


class Pool:
    """Keeps ``size`` to ``max_size`` sandboxes of one profile (image and container limits) warm.

    Args:
        engine: where to start them (by default the one ``$CODEDOCK_ENGINE`` names, Docker).
        size: how many to keep ready when idle; 0 keeps none.
        profile: what they are made of.
        idle: seconds an unused one is kept before it is replaced.
        max_run: the longest timeout a pooled container may serve (its label's
            expiry allows for it).
        max_size: the most kept ready under a burst (default: ``size``, a fixed pool);
            0 turns the pool off.
        burst_window: seconds a run that found the pool empty counts towards growth.
        shrink_after: seconds without a run before the pool is back to ``size``.

    Call :meth:`start` to begin filling, :meth:`close` to remove the idle ones.
    """

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        size: int = 1,
        profile: Profile | None = None,
        idle: float = 300.0,
        max_run: float = 3600.0,
        max_size: int | None = None,
        burst_window: float = 30.0,
        shrink_after: float = 60.0,
    ) -> None:
        if idle <= 0:
            raise InvalidValueError("pool idle", idle, "a positive number of seconds")
        self._sizer = Sizer(
            size,
            size if max_size is None else max_size,
            window=burst_window,
            shrink_after=shrink_after,
        )
        self._engine = engine
        self.profile = profile or Profile()
        self.idle = idle
        self.max_run = max_run
        #: Runs served warm, and runs it could have served but found it empty.
        self.hits = 0
        self.misses = 0
        self.last_error: CodedockError | None = None
        self._ready: deque[Sandbox] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._started = False
        # Containers being started; of those, the ones whose supervisor is being
        # waited for; runs waiting for one; the one handed over.
        self._starting = 0
        self._readying = 0
        self._wanted = 0
        self._handed: Sandbox | None = None
        self._threads: list[threading.Thread] = []
        # The sandboxes handed out that may still run; when a run last found none.
        self._serving: list[Sandbox] = []
        self._missed_at = float("-inf")
        # Whether a container of it was ever ready: a run before that (a kernel's
        # first cell, as the extension loads) is no burst to grow for.
        self._filled = False
        _pools.add(self)

    @property
    def engine(self) -> Engine:
        """The engine containers start on; the default one is looked up on first use."""
        if self._engine is None:
            self._engine = connect()
        return self._engine

    @property
    def size(self) -> int:
        """How many are kept ready when idle (the floor)."""
        return self._sizer.floor

    @property
    def max_size(self) -> int:
        """The most kept ready under a burst (the ceiling)."""
        return self._sizer.ceiling

    @property
    def target(self) -> int:
        """How many the pool means to keep ready now: ``size``, more under a burst."""
        with self._wake:
            return self._sizer.target(time.monotonic())

    def serves(self, profile: Profile, timeout: float = 0.0) -> bool:
        """Whether a run of ``profile`` lasting up to ``timeout`` s can use this pool."""
        return profile == self.profile and timeout <= self.max_run

    def start(self) -> Pool:
        """Begin filling in the background (idempotent); returns the pool."""
        with self._wake:
            self._started = True
            self._spawn_locked()
        return self

    def _spawn_locked(self) -> None:
        want = min(_FILLERS, max(1, self.max_size))
        while self._started and not self._closed and len(self._threads) < want:
            thread = threading.Thread(target=self._fill, name="codedock-pool", daemon=True)
            self._threads.append(thread)
            thread.start()

    def checkout(self, profile: Profile, timeout: float) -> Sandbox | None:
        """A ready sandbox for a run of ``profile`` and ``timeout``, or None (start one cold)."""
        if self.max_size == 0 or not self.serves(profile, timeout):
            return None
        if self._started and not self._threads:
            self.start()
        stale: list[Sandbox] = []
        found = None
        with self._wake:
            while self._ready:
                candidate = self._ready.popleft()
                if candidate.alive() and time.monotonic() - candidate.ready_at < self.idle:
                    found = candidate
                    break
                stale.append(candidate)
            if found is None and self._readying and not self._closed:
                found = self._take_handover_locked()
            if found is None:
                self.misses += 1
                if self._filled:
                    self._missed_at = time.monotonic()
            else:
                self.hits += 1
                self._serving = [*(each for each in self._serving if each.alive()), found]
            self._sizer.run(time.monotonic(), found=found is not None or not self._filled)
            self._wake.notify_all()
        for sandbox in stale:
            sandbox.end()
        return found

    def configure(
        self,
        *,
        size: int | None = None,
        profile: Profile | None = None,
        idle: float | None = None,
        max_size: int | None = None,
    ) -> None:
        """Change what the pool keeps; containers that no longer fit are discarded.

        ``size`` alone, on a fixed pool, moves both bounds, as it did before pools grew.
        """
        with self._wake:
            if size is not None or max_size is not None:
                fixed = self._sizer.floor == self._sizer.ceiling
                ceiling = max_size if max_size is not None else (size if fixed else None)
                self._sizer.resize(size, ceiling)
                self._spawn_locked()
            if idle is not None:
                if idle <= 0:
                    raise InvalidValueError("pool idle", idle, "a positive number of seconds")
                self.idle = idle
            self.profile = profile if profile is not None else self.profile
            keep = [s for s in self._ready if self.serves(s.profile)]
            drop = [s for s in self._ready if s not in keep]
            target = self._sizer.target(time.monotonic())
            while len(keep) > target:
                drop.append(keep.pop())
            self._ready = deque(keep)
            self._wake.notify_all()
        for sandbox in drop:
            sandbox.end()

    @property
    def ready(self) -> int:
        """How many sandboxes wait right now."""
        with self._wake:
            return len(self._ready)

    def wait_ready(self, count: int | None = None, *, timeout: float = 30.0) -> bool:
        """Block until ``count`` (default: size) sandboxes wait; for tests and benchmarks."""
        want = self.size if count is None else count
        deadline = time.monotonic() + timeout
        with self._wake:
            while len(self._ready) < want:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._wake.wait(min(left, 0.05))
            return True

    def close(self) -> None:
        """Stop refilling and end every idle sandbox."""
        with self._wake:
            self._closed = True
            ready, self._ready = list(self._ready), deque()
            self._wake.notify_all()
        for sandbox in ready:
            sandbox.end()

    def _take_handover_locked(self) -> Sandbox | None:
        self._wanted += 1
        give_up = time.monotonic() + _HANDOVER_WAIT
        try:
            while self._handed is None and not self._ready and self._readying and not self._closed:
                left = give_up - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
            handed, self._handed = self._handed, None
            if handed is None and self._ready:
                # It became ready while this run waited, and went to the ready queue.
                handed = self._ready.popleft()
            return handed
        finally:
            self._wanted -= 1

    def _ready_or_handed_over(self, sandbox: Sandbox) -> bool:
        """Wait for the supervisor to be ready; True if a waiting run took it first.

        When it returns False, the pool is still marked as readying: the caller
        clears that as it queues the container, in one step, so that a waiting run
        sees one or the other.
        """
        waiting = ReadyWait(sandbox)
        with self._wake:
            self._readying += 1
        ready = False

        # Hand over only into an empty slot: a run that was handed one may not have
        # woken to take it yet, and handing it another would lose the first.
        def wanted() -> bool:
            return self._wanted > 0 and self._handed is None

        try:
            while not waiting.wait(give_way=wanted):
                with self._wake:
                    if wanted():
                        self._handed = sandbox
                        self._filled = True
                        self._wake.notify_all()
                        return True
            ready = True
            return False
        finally:
            if not ready:
                with self._wake:
                    self._readying -= 1
                    self._wake.notify_all()

    def _fill(self) -> None:
        while True:
            with self._wake:
                while not self._closed and self._enough_locked():
                    self._wake.wait(min(self.idle, self._sizer.shrink_after) / 4)
                    self._expire_locked()
                if self._closed:
                    return
                profile = self.profile
                self._starting += 1
                serving = [each for each in self._serving if each.alive()]
                burst = time.monotonic() - self._missed_at < self._sizer.window
                urgent = burst and not self._ready
            try:
                if len(serving) == 1 and not urgent:
                    # One run under way (a notebook's cell): let it end first. Under
                    # a load of many, or when runs have found the pool empty and it
                    # is empty again (cells back to back), refills overlap the runs.
                    serving[0].watch.died.wait(_REFILL_DEFER)
                    if self._closed:
                        return
                self._fill_one(profile)
            finally:
                with self._wake:
                    self._starting -= 1
                    self._wake.notify_all()

    def _enough_locked(self) -> bool:
        """Whether the ready and starting containers cover the target; ends the excess."""
        target = self._sizer.target(time.monotonic())
        excess = []
        while len(self._ready) > target:
            excess.append(self._ready.pop())
        for sandbox in excess:
            with contextlib.suppress(Exception):
                sandbox.end()
        return len(self._ready) + self._starting >= target

    def _fill_one(self, profile: Profile) -> None:
        sandbox = None
        try:
            sandbox = start_sandbox(
                self.engine,  # may raise when no engine answers: retried below
                profile,
                idle=self.idle + _IDLE_MARGIN,
                longest_run=self.max_run,
                warm=True,
            )
            if self._ready_or_handed_over(sandbox):
                self.last_error = None
                return
        except CodedockError as exc:
            # The engine is down or the image gone: runs start cold and say so.
            self.last_error = exc
            if sandbox is not None:
                sandbox.end(kill=True)
            with self._wake:
                self._wake.wait(_RETRY)
            return
        except Exception as exc:
            self.last_error = CodedockError(f"refilling the pool failed: {exc!r}")
            if sandbox is not None:
                sandbox.end(kill=True)
            with self._wake:
                self._wake.wait(_RETRY)
            return
        self.last_error = None
        with self._wake:
            self._readying -= 1
            target = self._sizer.target(time.monotonic())
            fits = not self._closed and self.serves(profile) and len(self._ready) < target
            if fits:
                self._ready.append(sandbox)
                self._filled = True
            self._wake.notify_all()
        if not fits:
            sandbox.end()

    def _reset_after_fork(self) -> None:
        # The child inherits the parent's ready containers, whose channels are the
        # parent's connections: using one would mix two processes' runs, and
        # closing one properly (a shutdown) would end the parent's container. So
        # the child forgets them. Its fill thread did not survive the fork; the
        # child's first run starts another (a forked worker that never runs
        # fills nothing).
        self._wake = threading.Condition()
        self._ready = deque()
        self._threads = []
        self._starting = 0
        self._readying = 0
        self._wanted = 0
        self._handed = None
        self._serving = []
        self._missed_at = float("-inf")
        self._filled = False
        self.hits = self.misses = 0

    def _expire_locked(self) -> None:
        now = time.monotonic()
        old = [s for s in self._ready if now - s.ready_at >= self.idle or not s.alive()]
        if old:
            self._ready = deque(s for s in self._ready if s not in old)
            for sandbox in old:
                with contextlib.suppress(Exception):
                    sandbox.end()


class Pools:
    """Several pools, one per profile (a service warms more than one image); used as one.

    A run takes a container from the first pool that serves its profile.
    """

    def __init__(self, pools: list[Pool] | None = None) -> None:
        self._pools: list[Pool] = list(pools or ())
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Pool]:
        with self._lock:
            return iter(list(self._pools))

    @property
    def engine(self) -> Engine:
        """The engine of the first pool."""
        return next(iter(self)).engine

    def add(self, pool: Pool) -> Pool:
        """Serve from ``pool`` too; returns it."""
        with self._lock:
            self._pools.append(pool)
        return pool

    def find(self, profile: Profile) -> Pool | None:
        """The pool of ``profile``, if there is one."""
        return next((pool for pool in self if pool.profile == profile), None)

    def checkout(self, profile: Profile, timeout: float) -> Sandbox | None:
        """A ready sandbox from the pool that serves ``profile``, or None."""
        for pool in self:
            if pool.serves(profile, timeout):
                return pool.checkout(profile, timeout)
        return None

    @property
    def ready(self) -> int:
        """Containers waiting, in all pools."""
        return sum(pool.ready for pool in self)

    def start(self) -> Pools:
        """Start filling every pool; returns the set."""
        for pool in self:
            pool.start()
        return self

    def close(self) -> None:
        """Close every pool."""
        for pool in self:
            pool.close()


_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def _reset_pools_after_fork() -> None:
    for pool in list(_pools):
        pool._reset_after_fork()


os.register_at_fork(after_in_child=_reset_pools_after_fork)
