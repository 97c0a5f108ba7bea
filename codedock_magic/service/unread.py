"""What a user's clients have not read yet: bounded per user, and waited for.

Every event the service sends sits in its connection's write buffer until the
client reads it. A client that does not read would otherwise make the service
hold all of a run's output, images and files. So each user's events not yet
taken by their clients are counted here, and held to ``per_user`` bytes: a run
whose user is at the bound waits before it sends more (its program's output
waits with it, and its own timeout still runs), except on a connection with
nothing unread, so that a client that reads is never stalled by another that
does not. A run's result is sent in pieces under the same bound, and a client
that takes none of it for ``drain_timeout`` seconds loses its connection.

The run's backend thread takes room (:meth:`Account.take`, which may wait); the
server's event loop gives it back as each write is flushed.
"""

from __future__ import annotations

import threading

__all__ = ["Account", "UnreadLedger"]

# How often a waiting sender looks at its stop flag.
_POLL = 0.05


class UnreadLedger:
    """Unread bytes by user, at most ``per_user`` each (plus one piece per connection).

    Args:
        per_user: the bound, in bytes.
    """

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._room = threading.Condition()
        self._totals: dict[str, int] = {}

    def unread(self, user: str) -> int:
        """Bytes sent to ``user``'s clients and not yet taken by them."""
        with self._room:
            return self._totals.get(user, 0)

    def account(self, user: str) -> Account:
        """The account of one connection of ``user``."""
        return Account(self, user)


class Account:
    """One connection's share of its user's unread bytes."""

    def __init__(self, ledger: UnreadLedger, user: str) -> None:
        self.ledger = ledger
        self.user = user
        self.pending = 0
        self.closed = False

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes may be sent now."""
        with self.ledger._room:
            return self._fits(size)

    def _fits(self, size: int) -> bool:
        total = self.ledger._totals.get(self.user, 0)
        return self.pending == 0 or total + size <= self.ledger.per_user

    def take(self, size: int, stop: threading.Event | None = None) -> bool:
        """Count ``size`` bytes as sent, once there is room; False when the
        connection closed or ``stop`` was set while it waited (nothing is counted)."""
        room = self.ledger._room
        with room:
            while not self.closed and not self._fits(size):
                if stop is not None and stop.is_set():
                    return False
                room.wait(_POLL)
            if self.closed:
                return False
            self.add(size)  # the condition's lock is reentrant
            return True

    def add(self, size: int) -> None:
        """Count ``size`` bytes as sent, without waiting (the event loop's writes,
        which look at :meth:`has_room` first)."""
        with self.ledger._room:
            self.pending += size
            totals = self.ledger._totals
            totals[self.user] = totals.get(self.user, 0) + size

    def give_back(self, size: int) -> None:
        """``size`` bytes were taken by the client, or will never be."""
        room = self.ledger._room
        with room:
            size = min(size, self.pending)
            self.pending -= size
            totals = self.ledger._totals
            left = totals.get(self.user, 0) - size
            if left > 0:
                totals[self.user] = left
            else:
                totals.pop(self.user, None)
            room.notify_all()

    def close(self) -> None:
        """The connection is gone: forget its bytes, and wake its waiting sender."""
        with self.ledger._room:
            self.closed = True
        self.give_back(self.pending)
