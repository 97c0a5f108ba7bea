"""Who runs next: a bounded queue per user, served in turn, under an overall cap.

Users arrive in bursts (the end of a lecture), so a run past its user's quota
waits rather than fails, up to a bound; past that it is refused. When a slot
frees, the users with waiting runs are served in turn, so a user who floods the
service gets their share and no more, and another user's run starts at once
while there are slots.

It lives on the server's event loop; nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from ..core.errors import ServiceRefusedError

__all__ = ["FairScheduler", "QueueFullError", "Slot"]


class QueueFullError(ServiceRefusedError):
    """The user already has as many runs waiting as the service allows (HTTP 429)."""

    def __init__(self, user: str, running: int, queued: int) -> None:
        super().__init__(
            f"too many runs at once: {running} running and {queued} queued for {user}, "
            "the most the service allows (max_queued_per_user); wait for one to finish",
            429,
        )
        self.user = user
        self._init_args = (user, running, queued)


@dataclass
class _User:
    active: int = 0
    waiting: deque[tuple[asyncio.Future[None], int]] = field(default_factory=deque)


@dataclass
class Slot:
    """A granted place to run; give it back with :meth:`FairScheduler.release`."""

    user: str
    released: bool = False


class FairScheduler:
    """Grants run slots per user, at most ``capacity`` at once in all.

    Args:
        capacity: runs at once across every user.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.active = 0
        self._users: dict[str, _User] = {}
        # Users with waiting runs, in the order they are to be served.
        self._turns: deque[str] = deque()

    @property
    def queued(self) -> int:
        """Runs waiting, across every user."""
        return sum(len(user.waiting) for user in self._users.values())

    def admit(
        self, user: str, *, max_concurrent: int, max_queued: int
    ) -> Slot | asyncio.Future[None]:
        """A slot at once, or a future that a slot will resolve; refuse past the queue's bound.

        A granted future is the caller's slot as well: await it, then
        :meth:`release` the user's slot. Cancel it to leave the queue.

        Raises:
            QueueFullError: the user has ``max_queued`` runs waiting already.
        """
        state = self._users.setdefault(user, _User())
        if not state.waiting and state.active < max_concurrent and self.active < self.capacity:
            self._grant(user, state)
            return Slot(user)
        if len(state.waiting) >= max_queued:
            raise QueueFullError(user, state.active, len(state.waiting))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        state.waiting.append((future, max_concurrent))
        if user not in self._turns:
            self._turns.append(user)
        return future

    def running(self, user: str) -> int:
        """Runs of ``user`` holding a slot."""
        state = self._users.get(user)
        return state.active if state is not None else 0

    def position(self, user: str, future: asyncio.Future[None]) -> int:
        """1 for the user's next waiting run, 2 for the one after, ..."""
        state = self._users.get(user)
        if state is None:
            return 0
        for index, (waiting, _) in enumerate(state.waiting, start=1):
            if waiting is future:
                return index
        return 0

    def leave(self, user: str, future: asyncio.Future[None]) -> None:
        """Take a waiting run out of the queue (its client went away); release it if granted."""
        state = self._users.get(user)
        if state is not None:
            for entry in list(state.waiting):
                if entry[0] is future:
                    state.waiting.remove(entry)
        if future.done() and not future.cancelled():
            self.release(Slot(user))
        else:
            future.cancel()
        self._forget(user)

    def release(self, slot: Slot) -> None:
        """The run ended: its slot goes to the next user in turn."""
        if slot.released:
            return
        slot.released = True
        state = self._users[slot.user]
        state.active -= 1
        self.active -= 1
        self._serve()
        self._forget(slot.user)

    def _grant(self, user: str, state: _User) -> None:
        state.active += 1
        self.active += 1

    def _serve(self) -> None:
        # Each free slot goes to the waiting user with the fewest runs under way;
        # among equals, to whoever has waited longest for a turn.
        while self.active < self.capacity:
            chosen: str | None = None
            for user in list(self._turns):
                state = self._users[user]
                while state.waiting and state.waiting[0][0].done():
                    state.waiting.popleft()  # cancelled while it waited
                if not state.waiting:
                    self._turns.remove(user)
                    continue
                if state.active >= state.waiting[0][1]:
                    continue
                if chosen is None or state.active < self._users[chosen].active:
                    chosen = user
            if chosen is None:
                return
            state = self._users[chosen]
            future, _ = state.waiting.popleft()
            self._grant(chosen, state)
            future.set_result(None)
            self._turns.remove(chosen)
            if state.waiting:
                self._turns.append(chosen)

    def _forget(self, user: str) -> None:
        state = self._users.get(user)
        if state is not None and state.active == 0 and not state.waiting:
            del self._users[user]
            if user in self._turns:
                self._turns.remove(user)
