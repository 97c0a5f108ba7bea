"""The labels that mark our containers, so they can be found and reaped."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "PREFIX",
    "SESSION_ID",
    "ContainerLabels",
    "make_labels",
    "session_id",
    "where_pids_mean_this_process",
]

PREFIX = "io.codedock."
MANAGED = PREFIX + "managed"
SESSION = PREFIX + "session"
OWNER_PID = PREFIX + "owner-pid"
HOST = PREFIX + "host"
CREATED = PREFIX + "created"
EXPIRES = PREFIX + "expires"
BOOT = PREFIX + "boot-id"
PID_NAMESPACE = PREFIX + "pid-ns"
#: The engine that launched the container (by its registered name).
ENGINE = PREFIX + "engine"

#: Identifies this process's containers; new in every process, a forked child's too
#: (read it as ``labels.SESSION_ID`` or :func:`session_id`, not by ``from`` import).
SESSION_ID = uuid.uuid4().hex[:16]


def session_id() -> str:
    """This process's session: the label every container it starts carries."""
    return SESSION_ID


def _new_session_after_fork() -> None:
    # A forked child (multiprocessing's default on Linux) is another owner: its
    # containers, its watchdog and its cleanup must not be its parent's.
    global SESSION_ID
    SESSION_ID = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_session_after_fork)

# A container left behind by a host that hung (not died) is reaped this long
# after its own deadline.
EXPIRY_GRACE = 60.0


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def where_pids_mean_this_process() -> tuple[str, str, str]:
    """(hostname, boot id, pid namespace): where an owner pid can be checked from here.

    Two containers with the same hostname (pods, a kernel in a container) see
    different processes under the same pid; a reboot reuses every pid.
    """
    return socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), _pid_namespace()


def make_labels(lifetime: float, *, session: str | None = None, engine: str = "") -> dict[str, str]:
    """Labels for a new container that may live ``lifetime`` seconds, launched by ``engine``."""
    now = time.time()
    host, boot, namespace = where_pids_mean_this_process()
    return {
        MANAGED: "1",
        SESSION: session or session_id(),
        OWNER_PID: str(os.getpid()),
        HOST: host,
        BOOT: boot,
        PID_NAMESPACE: namespace,
        CREATED: f"{now:.3f}",
        EXPIRES: f"{now + lifetime + EXPIRY_GRACE:.3f}",
        **({ENGINE: engine} if engine else {}),
    }


@dataclass(frozen=True)
class ContainerLabels:
    """The parsed labels of one managed container (missing values are empty/zero)."""

    session: str
    owner_pid: int
    host: str
    created: float
    expires: float
    boot: str = ""
    pid_namespace: str = ""
    engine: str = ""

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
            boot=labels.get(BOOT, ""),
            pid_namespace=labels.get(PID_NAMESPACE, ""),
            engine=labels.get(ENGINE, ""),
        )
