"""The watchdog: removes a process's containers once that process is gone.

The dead-man's switch on the attach stream ends every container that has started.
A container the host created but had not started yet when it died (a window of a
few milliseconds, hit most often by the pool's background refill) never runs, so
nothing inside it can notice. This small process, started once per host process
in a session of its own (so signals aimed at the kernel's process group spare it),
waits for EOF on a pipe from its parent, which the kernel delivers however the
parent dies, then removes every container of the parent's session from the engine
that made them: its argv names that engine and the options it was made with.

It lives as long as its parent, one per kernel, so it must stay small. For Docker
it waits as a shell (``/bin/sh``, under 2 MiB where an idle interpreter holds
about 10), which at EOF becomes ``python -I -c`` this file's source, as the
supervisor is run; only then is the package (and with it the engine client)
imported, to do the removal. Another engine's client (kubernetes') takes seconds
to load, so for it the interpreter waits, with the client loaded up front.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping

__all__ = ["ensure_watchdog", "watchdog_command"]

_lock = threading.Lock()
# Seconds the watchdog keeps looking for its parent's containers once it is gone:
# a creation asked for just before the parent died can reach the engine late.
SETTLE = 5.0
# One per engine (its name and options, as JSON) this process launches on.
_processes: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
_owner = 0
# What waits for the parent's end, where there is one.
SHELL = "/bin/sh"


def watchdog_command(
    session: str, engine: str = "docker", options: Mapping[str, Any] | None = None
) -> list[str]:
    """The command line of a watchdog for ``session``'s sandboxes on ``engine``.

    ``options`` are the engine's (JSON values), to make it again once the parent is gone.
    """
    import json

    with open(__file__, encoding="utf-8") as handle:
        source = handle.read()
    # This file is codedock_magic/engines/watchdog.py: the package's parent is three up.
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    made_with = json.dumps(dict(options or {}), sort_keys=True)
    command = [sys.executable, "-I", "-c", source, session, package_parent, engine, made_with]
    if engine == "docker" and os.path.exists(SHELL):
        # The shell's read ends at EOF (no byte ever comes): the parent is gone.
        wait = 'while read -r _; do :; done; exec "$@"'
        return [SHELL, "-c", wait, "codedock-watchdog", *command]
    return command


def ensure_watchdog(engine: str = "docker", options: Mapping[str, Any] | None = None) -> None:
    """Start this process's watchdog for ``engine`` unless it runs already (cheap to call often)."""
    import subprocess

    from .labels import session_id

    global _owner
    command = watchdog_command(session_id(), engine, options)
    key = (engine, command[-1])
    with _lock:
        if _owner != os.getpid():
            _processes.clear()
            _owner = os.getpid()
        process = _processes.get(key)
        if process is not None and process.poll() is None:
            return
        _processes[key] = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def _forget_after_fork() -> None:
    # A forked child must not hold its parent's watchdogs open (they would outlive
    # the parent's death); it starts its own for its own session.
    global _lock
    _lock = threading.Lock()
    for process in _processes.values():
        if process.stdin is not None:
            # Not contextlib: the idle watchdog imports as little as it can.
            try:  # noqa: SIM105
                process.stdin.close()  # this process's copy only: the parent's stays open
            except OSError:
                pass
    _processes.clear()


def _connect(package_parent: str, engine: str, made_with: str) -> Any:
    sys.path.insert(0, package_parent)
    import json

    from codedock_magic.engines.registry import connect

    return connect(engine, **json.loads(made_with))


def _watch(session: str, package_parent: str, engine: str, made_with: str) -> None:
    made = None
    if engine != "docker":
        # Another engine's client may take seconds to import (kubernetes' takes
        # about 4 s of CPU): it is loaded while the parent lives, so that the
        # parent's sandboxes still go within seconds of its death.
        try:
            made = _connect(package_parent, engine, made_with)
        except Exception:
            made = None
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    try:
        if made is None:
            made = _connect(package_parent, engine, made_with)
        from codedock_magic.engines.cleanup import remove_session

        remove_session(made, session=session, settle=SETTLE)
    except Exception:
        pass


if __name__ == "__main__":
    _watch(*sys.argv[1:5])
else:
    os.register_at_fork(after_in_child=_forget_after_fork)
