"""Finding and removing containers that nothing will remove any more."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from .base import Engine
from .labels import SESSION, ContainerLabels, session_id, where_pids_mean_this_process
from .registry import connect

__all__ = ["Orphan", "find_orphans", "remove_session", "sweep"]


@dataclass(frozen=True)
class Orphan:
    """A managed container whose owner is gone or whose lifetime has passed."""

    id: str
    reason: str
    #: The engine that launched it, as its label says ("" when it does not say).
    engine: str = ""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_orphans(engine: Engine | None = None, *, now: float | None = None) -> list[Orphan]:
    """Managed containers past their expiry, or owned by a dead process on this host.

    The owner check only applies where the owner's pid means the same process as
    here: the same hostname, boot and pid namespace. A kernel in another container
    or pod with the same hostname, or a container from before a reboot, is judged
    by its expiry alone, so a live run is never taken for an orphan.
    """
    engine = engine or connect()
    now = time.time() if now is None else now
    here = where_pids_mean_this_process()
    orphans = []
    for container in engine.list():
        labels = ContainerLabels.parse(container.labels)
        if labels.expires and labels.expires < now:
            reason = f"expired {now - labels.expires:.0f}s ago"
            orphans.append(Orphan(container.id, reason, labels.engine))
        elif (labels.host, labels.boot, labels.pid_namespace) == here and not _pid_alive(
            labels.owner_pid
        ):
            reason = f"owner pid {labels.owner_pid} is gone"
            orphans.append(Orphan(container.id, reason, labels.engine))
    return orphans


def sweep(engine: Engine | None = None, *, dry_run: bool = False) -> list[Orphan]:
    """Remove the orphans :func:`find_orphans` reports (only list them if ``dry_run``)."""
    engine = engine or connect()
    orphans = find_orphans(engine)
    if not dry_run:
        for orphan in orphans:
            engine.remove(orphan.id)
    return orphans


def remove_session(
    engine: Engine | None = None, session: str | None = None, *, settle: float = 0.0
) -> int:
    """Remove every container of ``session`` (this process by default); return how many.

    Each goes in a thread of its own, so that one slow removal (a loaded engine
    tearing a running container down) holds up none of the others. With
    ``settle``, it keeps listing for ``settle`` seconds, removing whatever
    appears: a container whose creation the session asked for just before it
    died can land in the engine after the first listing, and no dead-man's
    switch ends a container that never started.
    """
    engine = engine or connect()
    session = session or session_id()
    give_up = time.monotonic() + settle
    removed: set[str] = set()
    while True:
        containers = engine.list({SESSION: session})
        removals = [
            threading.Thread(target=engine.remove, args=(container.id,), daemon=True)
            for container in containers
        ]
        for removal in removals:
            removal.start()
        for removal in removals:
            removal.join()
        removed.update(container.id for container in containers)
        if time.monotonic() >= give_up:
            return len(removed)
        time.sleep(0.25)
