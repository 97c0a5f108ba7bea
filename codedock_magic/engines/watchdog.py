"""The watchdog: removes a process's containers once that process is gone.

The dead-man's switch on the attach stream ends every container that has started.
A container the host created but had not started yet when it died (a window of a
few milliseconds, hit most often by the pool's background refill) never runs, so
nothing inside it can notice. This small process, started once per host process
in a session of its own (so signals aimed at the kernel's process group spare it),
waits for EOF on a pipe from its parent, which the kernel delivers however the
parent dies, then removes every container of the parent's session.

It lives as long as its parent, one per kernel, so it must stay small: it is run
as this file's source (``python -I -c``), as the supervisor is, and imports only
``os``, ``sys`` and ``threading`` until the parent is gone; only then does it
import the package (and with it the engine client) to do the removal.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

__all__ = ["ensure_watchdog", "watchdog_command"]

_lock = threading.Lock()
_process: subprocess.Popen[bytes] | None = None
_owner = 0


def watchdog_command(session: str) -> list[str]:
    """The command line of a watchdog for ``session``."""
    with open(__file__, encoding="utf-8") as handle:
        source = handle.read()
    # This file is codedock_magic/engines/watchdog.py: the package's parent is three up.
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return [sys.executable, "-I", "-c", source, session, package_parent]


def ensure_watchdog() -> None:
    """Start this process's watchdog unless it runs already (cheap to call often)."""
    import subprocess

    from .labels import session_id

    global _process, _owner
    with _lock:
        if _process is not None and _owner == os.getpid() and _process.poll() is None:
            return
        _process = subprocess.Popen(
            watchdog_command(session_id()),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _owner = os.getpid()


def _forget_after_fork() -> None:
    # A forked child must not hold its parent's watchdog open (it would outlive
    # the parent's death); it starts one of its own for its own session.
    global _process, _lock
    _lock = threading.Lock()
    if _process is not None and _process.stdin is not None:
        # Not contextlib: the idle watchdog imports as little as it can.
        try:  # noqa: SIM105
            _process.stdin.close()  # this process's copy only: the parent's stays open
        except OSError:
            pass
    _process = None


def _watch(session: str, package_parent: str) -> None:
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    sys.path.insert(0, package_parent)
    try:
        from codedock_magic.engines.cleanup import remove_session

        remove_session(session=session)
    except Exception:
        pass


if __name__ == "__main__":
    _watch(sys.argv[1], sys.argv[2])
else:
    os.register_at_fork(after_in_child=_forget_after_fork)
