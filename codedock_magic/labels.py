"""The labels that mark our containers, so they can be found and reaped."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PREFIX", "SESSION_ID", "ContainerLabels", "make_labels"]

PREFIX = "io.codedock."
MANAGED = PREFIX + "managed"
SESSION = PREFIX + "session"
OWNER_PID = PREFIX + "owner-pid"
HOST = PREFIX + "host"
CREATED = PREFIX + "created"
EXPIRES = PREFIX + "expires"

#: Identifies this process's containers; new in every process.
SESSION_ID = uuid.uuid4().hex[:16]

# A container left behind by a host that hung (not died) is reaped this long
# after its own deadline.
EXPIRY_GRACE = 60.0


def make_labels(lifetime: float, *, session: str | None = None) -> dict[str, str]:
    """Labels for a new container that may live ``lifetime`` seconds."""
    now = time.time()
    return {
        MANAGED: "1",
        SESSION: session or SESSION_ID,
        OWNER_PID: str(os.getpid()),
        HOST: socket.gethostname(),
        CREATED: f"{now:.3f}",
        EXPIRES: f"{now + lifetime + EXPIRY_GRACE:.3f}",
    }


@dataclass(frozen=True)
class ContainerLabels:
    """The parsed labels of one managed container (missing values are empty/zero)."""

    session: str
    owner_pid: int
    host: str
    created: float
    expires: float

    @classmethod
    def parse(cls, labels: Mapping[str, str]) -> ContainerLabels:
        """Read our labels leniently: a container with bad labels is still ours to reap."""

        def number(key: str) -> float:
            try:
                return float(labels.get(key, "0"))
            except ValueError:
                return 0.0

        return cls(
            session=labels.get(SESSION, ""),
            owner_pid=int(number(OWNER_PID)),
            host=labels.get(HOST, ""),
            created=number(CREATED),
            expires=number(EXPIRES),
        )
