"""Pure logic: status mapping, framing, capped output, labels, the orphan rules."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from codedock_magic import ContainerInfo, Orphan, RunStatus, find_orphans
from codedock_magic.framing import EngineFrames, SupervisorFrames, encode_request
from codedock_magic.labels import ContainerLabels, make_labels
from codedock_magic.output import CappedOutput
from codedock_magic.result import decide_status


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        (dict(exit_code=0), RunStatus.OK),
        (dict(exit_code=3), RunStatus.ERROR),
        (dict(exit_code=137), RunStatus.ERROR),
        (dict(exit_code=None, signal=9), RunStatus.SIGNALED),
        (dict(exit_code=None, signal=9, oom_killed=True), RunStatus.MEMORY_LIMIT),
        (dict(exit_code=1, oom_killed=True), RunStatus.MEMORY_LIMIT),
        (dict(exit_code=0, oom_killed=True), RunStatus.OK),
        (dict(exit_code=None, timed_out=True, oom_killed=True), RunStatus.TIMEOUT),
        (dict(exit_code=None, interrupted=True, timed_out=True), RunStatus.INTERRUPTED),
    ],
)
def test_status_comes_from_engine_and_host_facts(
    facts: dict[str, object], status: RunStatus
) -> None:
    base: dict[str, object] = dict(
        signal=None, oom_killed=False, timed_out=False, interrupted=False
    )
    assert decide_status(**{**base, **facts}) is status  # type: ignore[arg-type]


def _engine_frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def test_frames_decode_across_arbitrary_chunk_boundaries() -> None:
    inner = b"".join(
        struct.pack(">cI", kind, len(body)) + body
        for kind, body in [(b"o", b"hello\n"), (b"e", b"oops\n"), (b"o", b""), (b"x", b"exit 3")]
    )
    wire = _engine_frame(1, inner[:7]) + _engine_frame(2, b"diag") + _engine_frame(1, inner[7:])
    engine, supervisor = EngineFrames(), SupervisorFrames()
    got = []
    for i in range(0, len(wire), 3):
        for stream, payload in engine.feed(wire[i : i + 3]):
            if stream == 1:
                got += supervisor.feed(payload)
            else:
                got.append(("engine-stderr", payload))
    # The first inner frame is split around the engine's stderr frame.
    assert got == [
        ("engine-stderr", b"diag"),
        (b"o", b"hello\n"),
        (b"e", b"oops\n"),
        (b"o", b""),
        (b"x", b"exit 3"),
    ]
    assert engine.pending == supervisor.pending == 0


def test_request_header_states_lengths() -> None:
    assert encode_request(b"print(1)", b"in", 3.5, 65534) == b"8 2 3.500 65534\nprint(1)in"


def test_small_output_is_kept_whole_and_streamed_by_head() -> None:
    out = CappedOutput(10)
    assert out.feed(b"abc") == "abc"
    assert out.feed(b"defgh") == "de"
    assert out.text() == "abcdefgh"
    assert not out.truncated


def test_large_output_keeps_head_and_tail_and_says_what_was_cut() -> None:
    out = CappedOutput(8)
    for chunk in [b"0123", b"456789", b"ABCDEFGHIJ", b"XYZ"]:
        out.feed(chunk)
    assert out.truncated and out.cut == 23 - 8
    assert out.text() == "0123\n[... 15 bytes of output cut ...]\nJXYZ"


def test_bad_utf8_is_replaced_and_split_characters_survive() -> None:
    out = CappedOutput(1000)
    snow = "☃".encode()
    assert out.feed(snow[:1]) == ""
    assert out.feed(snow[1:] + b"\xff!") == "☃\ufffd!"
    assert out.text() == "☃\ufffd!"


def test_labels_round_trip() -> None:
    labels = make_labels(10.0, session="abc")
    parsed = ContainerLabels.parse(labels)
    assert parsed.session == "abc"
    assert parsed.owner_pid == os.getpid()
    assert parsed.host == socket.gethostname()
    assert parsed.expires - parsed.created == pytest.approx(10.0 + 60.0, abs=0.01)
    assert ContainerLabels.parse({"io.codedock.expires": "junk"}).expires == 0.0


class _ListOnlyEngine:
    def __init__(self, containers: list[ContainerInfo]) -> None:
        self.containers = containers

    def list(self, labels: object = None) -> list[ContainerInfo]:
        return self.containers


def test_orphans_are_dead_owners_here_or_expired_anywhere() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = time.time()
    here = socket.gethostname()

    def labels(pid: int, host: str, expires: float) -> dict[str, str]:
        return {
            "io.codedock.owner-pid": str(pid),
            "io.codedock.host": host,
            "io.codedock.expires": str(expires),
        }

    engine = _ListOnlyEngine(
        [
            ContainerInfo("live", labels(os.getpid(), here, now + 100), "running"),
            ContainerInfo("dead", labels(dead.pid, here, now + 100), "running"),
            ContainerInfo("elsewhere", labels(dead.pid, "other-host", now + 100), "running"),
            ContainerInfo("expired", labels(os.getpid(), "other-host", now - 5), "running"),
        ]
    )
    found = find_orphans(engine, now=now)  # type: ignore[arg-type]
    assert [o.id for o in found] == ["dead", "expired"]
    assert found[0] == Orphan("dead", f"owner pid {dead.pid} is gone")
    assert found[1].reason == "expired 5s ago"


def test_core_never_imports_ipython_widgets_or_traitlets() -> None:
    core = [
        "codedock_magic",
        "codedock_magic.runner",
        "codedock_magic.limits",
        "codedock_magic.result",
        "codedock_magic.errors",
        "codedock_magic.cleanup",
        "codedock_magic.dock",
        "codedock_magic.cli",
        "codedock_magic.engine",
        "codedock_magic.autoload",
        "codedock_magic.framing",
        "codedock_magic.output",
        "codedock_magic.labels",
        "codedock_magic._supervisor",
    ]
    probe = (
        "import importlib, sys\n"
        f"for name in {core!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('IPython', 'ipywidgets', 'traitlets', 'ipykernel'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
