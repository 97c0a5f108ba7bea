"""A uid of its own for each sandbox, from a range the admin configures.

The kernel keeps some quotas per uid, whatever the container: inotify instances
(``fs.inotify.max_user_instances``, often 128), POSIX message-queue bytes
(``RLIMIT_MSGQUEUE``) and processes (``RLIMIT_NPROC``). Sandboxes that share a uid
share them, so one could deny them to another, another user's included. Each
sandbox therefore runs its program as a uid (and gid) no other live sandbox has.

An engine makes the claim atomic with something its daemon already enforces for
every client at once: Docker refuses a second container of the same name, so a
sandbox is named after its uid (:func:`uid_name`), and the uid is free again once
that container is removed, not before. Kernels, the service and the pool of one
host therefore never share one, with no lock of their own.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from ..core.errors import InvalidValueError
from .labels import PREFIX

__all__ = ["DEFAULT_UID_RANGE", "UID_LABEL", "UidRange", "uid_name"]

#: The label that says which uid a sandbox's program runs as.
UID_LABEL = PREFIX + "uid"
#: Below 65536, so that it also fits a user namespace's usual map (rootless
#: engines, ``userns-remap``); above the uids hosts hand to people and services,
#: and below systemd's dynamic users (61184 and up) and ``nobody`` (65534).
DEFAULT_UID_RANGE = "30000-59999"
_NAME_PREFIX = "codedock-uid-"
# A uid that no host account may be given, and 0 (root).
_HIGHEST = 2**32 - 2


def uid_name(uid: int) -> str:
    """The container name that claims ``uid`` on its engine."""
    return f"{_NAME_PREFIX}{uid}"


@dataclass(frozen=True)
class UidRange:
    """The uids sandboxes may run as, ``first`` to ``last`` inclusive."""

    first: int
    last: int

    @classmethod
    def parse(cls, value: object) -> UidRange:
        """``"FIRST-LAST"``, ``[FIRST, LAST]`` or a single uid, checked.

        Raises:
            InvalidValueError: not a range of uids above 0 (root).
        """
        bounds: list[object]
        if isinstance(value, str):
            bounds = [part.strip() for part in value.split("-")]
        elif isinstance(value, int) and not isinstance(value, bool):
            bounds = [value]
        elif isinstance(value, (list, tuple)):
            bounds = list(value)
        else:
            bounds = []
        if len(bounds) == 1:
            bounds = bounds * 2
        expected = f"FIRST-LAST, two uids from 1 to {_HIGHEST}, e.g. '{DEFAULT_UID_RANGE}'"
        try:
            if len(bounds) != 2 or any(isinstance(b, (bool, float)) for b in bounds):
                raise ValueError
            first, last = (int(b) for b in bounds)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise InvalidValueError("uid_range", value, expected) from None
        if not 1 <= first <= last <= _HIGHEST:
            raise InvalidValueError("uid_range", value, expected)
        return cls(first, last)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and self.first <= uid <= self.last

    def candidates(self, taken: Collection[int] = ()) -> Iterator[int]:
        """Uids to try claiming, in a random order, skipping those known ``taken``.

        Random, so that launches racing each other rarely try the same one first;
        a claim that loses anyway simply tries the next.
        """
        size = len(self)
        start = random.randrange(size)
        # A stride coprime with the size visits every uid once, in a scattered order.
        stride = 1
        if size > 2:
            stride = random.randrange(1, size)
            while math.gcd(stride, size) != 1:
                stride = random.randrange(1, size)
        for step in range(size):
            uid = self.first + (start + step * stride) % size
            if uid not in taken:
                yield uid
