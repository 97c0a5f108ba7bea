"""The watchdog: removes a process's containers once that process is gone.

The dead-man's switch on the attach stream ends every container that has started.
A container the host created but had not started yet when it died (a window of a
few milliseconds, hit most often by the pool's background refill) never runs, so
nothing inside it can notice. This small process, started once per host process
in a session of its own (so signals aimed at the kernel's process group spare it),
waits for EOF on a pipe from its parent, which the kernel delivers however the
parent dies, then removes every container of the parent's session.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading

from .labels import SESSION_ID

__all__ = ["ensure_watchdog"]

_lock = threading.Lock()
_process: subprocess.Popen[bytes] | None = None
_owner = 0


def ensure_watchdog() -> None:
    """Start this process's watchdog unless it runs already (cheap to call often)."""
    global _process, _owner
    with _lock:
        if _process is not None and _owner == os.getpid() and _process.poll() is None:
            return
        _process = subprocess.Popen(
            [sys.executable, "-m", "codedock_magic.watchdog", SESSION_ID],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _owner = os.getpid()


def _watch(session: str) -> None:
    # Only the standard library until the parent is gone: an idle watchdog is small.
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    from .cleanup import remove_session

    with contextlib.suppress(Exception):
        remove_session(session=session)


if __name__ == "__main__":
    _watch(sys.argv[1])
