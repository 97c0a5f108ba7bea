"""The watchdog stays small: a shell, no interpreter, until its parent is gone."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

from codedock_magic.engines.watchdog import watchdog_command


def _imported(lines: bytes) -> set[str]:
    # python -X importtime writes "import time: self | cumulative | name" per import.
    names = set()
    for line in lines.decode().splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package":
                names.add(name.split(".")[0])
    return names


def _read_until_quiet(stream: object, quiet: float = 0.5, within: float = 10.0) -> bytes:
    fd = stream.fileno()  # type: ignore[attr-defined]
    data = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], quiet)[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def test_the_watchdog_waits_as_a_shell_and_loads_python_once_its_parent_is_gone() -> None:
    command = watchdog_command("unit-test-" + os.urandom(4).hex())
    # Waiting, it is a shell; the interpreter starts only once the parent is gone.
    assert command[0] == "/bin/sh" and sys.executable not in command[:4]
    at = command.index(sys.executable) + 1
    command[at:at] = ["-X", "importtime"]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # Its final sweep must find no engine here.
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        waiting = _imported(_read_until_quiet(proc.stderr))
        assert proc.poll() is None, "the watchdog ended while its parent was alive"
        with open(f"/proc/{proc.pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        assert rss < 4 * 1024, f"the idle watchdog holds {rss} KiB"
    finally:
        proc.stdin.close()
    after = _imported(proc.stderr.read())
    proc.stderr.close()
    assert proc.wait(timeout=30) == 0
    assert not waiting, f"the idle watchdog imported {sorted(waiting)}"
    # Once the parent is gone it loads the package to remove the session's containers.
    assert {"codedock_magic", "docker"} <= after
