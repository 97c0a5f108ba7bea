"""The dead-man's switch: a host killed with SIGKILL leaves no container behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from codedock_magic import DockerEngine

from ..conftest import ours, wait_until_gone

HOST = textwrap.dedent(
    """
    import sys
    from codedock_magic import Limits, run
    from codedock_magic.labels import SESSION_ID
    print(SESSION_ID, flush=True)
    run(sys.argv[1], limits=Limits(timeout=600),
        on_output=lambda stream, text: print('started', flush=True))
    """
)

SLEEPER = "print('up', flush=True)\nimport time\ntime.sleep(300)\n"
FIGHTER = (
    "import os, signal\n"
    "for target in (1, -1):\n"
    "    try:\n"
    "        os.kill(target, signal.SIGKILL)\n"
    "    except OSError:\n"
    "        pass\n"
    "os.close(0)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True)\n"
    "import time\n"
    "time.sleep(300)\n"
)


@pytest.mark.parametrize("code", [SLEEPER, FIGHTER], ids=["sleeper", "fights-back"])
def test_sigkilled_host_leaves_no_container_within_5s(engine: DockerEngine, code: str) -> None:
    host = subprocess.Popen([sys.executable, "-c", HOST, code], stdout=subprocess.PIPE, text=True)
    assert host.stdout is not None
    try:
        session = host.stdout.readline().strip()
        assert host.stdout.readline().strip() == "started"
        assert len(ours(engine, session)) == 1
    finally:
        host.send_signal(signal.SIGKILL)
        host.wait()
    killed_at = time.monotonic()
    left = wait_until_gone(engine, session, within=5.0)
    assert left == [], f"container still there {time.monotonic() - killed_at:.1f}s after SIGKILL"


def test_a_created_but_never_started_container_goes_with_its_host(engine: DockerEngine) -> None:
    # The window between create and start: only the watchdog can clean that up.
    host = textwrap.dedent(
        """
        import time
        from codedock_magic import Profile, SandboxSpec, default_engine
        from codedock_magic.labels import SESSION_ID, make_labels
        from codedock_magic.supervisor import supervisor_command
        from codedock_magic.engines.watchdog import ensure_watchdog
        ensure_watchdog()
        spec = SandboxSpec(Profile(), supervisor_command(), make_labels(60))
        default_engine().create(spec)
        print(SESSION_ID, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", host], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    session = proc.stdout.readline().strip()
    assert [c.state for c in engine.list({"io.codedock.session": session})] == ["created"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_until_gone(engine, session, within=5.0) == []
