"""Pure logic: status mapping, framing, capped output, labels, the orphan rules."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from codedock_magic import ContainerInfo, Orphan, RunStatus, find_orphans
from codedock_magic.engines.docker import DockerChannel
from codedock_magic.labels import ContainerLabels, make_labels, where_pids_mean_this_process
from codedock_magic.local.output import CappedOutput
from codedock_magic.result import decide_status
from codedock_magic.supervisor.protocol import (
    EXIT_CANNOT_START,
    EXIT_DEADLINE,
    EXIT_HOST_GONE,
    VERSION,
    CaseEnd,
    End,
    FrameDecoder,
    FrameKind,
    encode_case,
    encode_request,
    parse_case_end,
    parse_end,
)

from .fakes import program


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


def test_host_requests_are_what_the_supervisor_reads() -> None:
    # The supervisor keeps its own copy of the protocol: run its decoder on the
    # host's encoder, in this process.
    read, write = os.pipe()
    try:
        os.write(write, encode_request(b"print(1)", b"in\n", 3.5, 65534))
        control = program.Control(read)
        code, header = program.read_request(control, 1.0)
        assert code == b"print(1)" and control.take(99) == b"in\n"
        assert header == {
            "version": VERSION,
            "code_bytes": 8,
            "stdin_bytes": 3,
            "timeout": 3.5,
            "uid": 65534,
            "cases": 0,
            "extras_bytes": 0,
        }
        # A request with cases, and a case's line, as one write: what a read takes
        # past the code waits in the buffer for the case.
        os.write(write, encode_request(b"x", b"", 9, 1, cases=2) + encode_case(b"ab", 0.5, 2**20))
        code, header = program.read_request(control, 1.0)
        assert (code, header["cases"]) == (b"x", 2)
        line = program.parse_header(control.line(time.monotonic() + 1))
        assert line == {"stdin_bytes": 2, "timeout": 0.5, "memory": 2**20}
        assert control.exact(2, time.monotonic() + 1) == b"ab"
        header_v = json.dumps({"version": VERSION + 1, "code_bytes": 0, "stdin_bytes": 0})
        os.write(write, header_v.encode() + b"\n")
        with pytest.raises(program.Refused, match="protocol version"):
            program.read_request(control, 1.0)
        os.close(write)
        with pytest.raises(program.HostGone):
            program.read_request(control, 1.0)
    finally:
        os.close(read)


def test_supervisor_frames_decode_on_the_host_across_any_chunking() -> None:
    read, write = os.pipe()
    frames = [(b"o", b"hello\n"), (b"e", b"oops\n"), (b"o", b""), (b"x", b"exit 3")]
    for kind, body in frames:
        program.emit(kind, body, write)
    os.close(write)
    wire = os.read(read, 4096)
    os.close(read)
    decoder = FrameDecoder()
    got = []
    for i in range(0, len(wire), 3):
        got += decoder.feed(wire[i : i + 3])
    assert got == frames and decoder.pending == 0
    assert parse_end(got[-1][1]) == End("exit", 3)


def test_both_copies_of_the_protocol_agree() -> None:
    assert program.VERSION == VERSION
    assert tuple(k.value for k in FrameKind) == (
        program.READY,
        program.OUT,
        program.ERR,
        program.DISPLAY,
        program.FILE,
        program.NOTE,
        program.CASE,
        program.USAGE,
        program.END,
    )
    assert (program.EXIT_DEADLINE, program.EXIT_HOST_GONE, program.EXIT_CANNOT_START) == (
        EXIT_DEADLINE,
        EXIT_HOST_GONE,
        EXIT_CANNOT_START,
    )


@pytest.mark.parametrize(
    ("payload", "end"),
    [
        (b"exit 0", End("exit", 0)),
        (b"signal 9", End("signal", 9)),
        (b"deadline", End("deadline")),
        (b"refused protocol version 3", End("refused", detail="protocol version 3")),
        (b"unclean files outlived", End("unclean", detail="files outlived")),
        (b"failed OSError(11)", End("failed", detail="OSError(11)")),
        (b"exit", None),
        (b"exit -1", None),
        (b"bogus 1", None),
    ],
)
def test_end_frames_parse_strictly(payload: bytes, end: End | None) -> None:
    assert parse_end(payload) == end


@pytest.mark.parametrize(
    ("payload", "end"),
    [
        (b"exit 1 0.0123", CaseEnd("exit", 1, 0.0123)),
        (b"signal 9 2.5000", CaseEnd("signal", 9, 2.5)),
        (b"timeout 0 1.0010", CaseEnd("timeout", 0, 1.001)),
        (b"memory 0 0.3000", CaseEnd("memory", 0, 0.3)),
        (b"exit 1", None),
        (b"deadline 0 1.0", None),
        (b"exit x 1.0", None),
    ],
)
def test_case_end_frames_parse_strictly(payload: bytes, end: CaseEnd | None) -> None:
    assert parse_case_end(payload) == end


def test_docker_multiplexing_is_undone_inside_the_docker_channel() -> None:
    host, container = socket.socketpair()
    channel = DockerChannel(host, holder=None)

    def mux(stream: int, payload: bytes) -> bytes:
        return struct.pack(">BxxxI", stream, len(payload)) + payload

    wire = mux(1, b"out") + mux(2, b"diag") + mux(1, b"put")
    got: list[tuple[str, bytes]] = []
    for i in range(0, len(wire), 5):
        container.sendall(wire[i : i + 5])
        time.sleep(0.001)
        while True:
            chunks = channel.receive(0.05)
            if not chunks:
                break
            got += chunks
    assert got == [("stdout", b"out"), ("stderr", b"diag"), ("stdout", b"put")]
    container.close()
    assert channel.receive(1.0) is None
    channel.close()


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
    labels = make_labels(10.0, session="abc", engine="docker")
    parsed = ContainerLabels.parse(labels)
    assert parsed.session == "abc"
    assert parsed.engine == "docker"
    assert ContainerLabels.parse(make_labels(1.0)).engine == ""
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
    here, boot, namespace = where_pids_mean_this_process()
    assert boot and namespace.startswith("pid:[")

    def labels(pid: int, host: str, expires: float, **other: str) -> dict[str, str]:
        where = {"boot-id": boot, "pid-ns": namespace, **other}
        return {
            "io.codedock.owner-pid": str(pid),
            "io.codedock.host": host,
            "io.codedock.expires": str(expires),
            **{f"io.codedock.{key}": value for key, value in where.items()},
        }

    later = now + 100
    engine = _ListOnlyEngine(
        [
            ContainerInfo("live", labels(os.getpid(), here, later), "running"),
            ContainerInfo("dead", labels(dead.pid, here, later), "running"),
            ContainerInfo("elsewhere", labels(dead.pid, "other-host", later), "running"),
            # The same hostname but another pid namespace (a kernel in another
            # container or pod): its pid means nothing here.
            ContainerInfo("pod", labels(dead.pid, here, later, **{"pid-ns": "pid:[1]"}), "running"),
            ContainerInfo("before-reboot", labels(dead.pid, here, later, **{"boot-id": "x"}), ""),
            ContainerInfo("expired", labels(os.getpid(), "other-host", now - 5), "running"),
        ]
    )
    found = find_orphans(engine, now=now)  # type: ignore[arg-type]
    assert [o.id for o in found] == ["dead", "expired"]
    assert found[0] == Orphan("dead", f"owner pid {dead.pid} is gone")
    assert found[1].reason == "expired 5s ago"


def test_core_never_imports_ipython_widgets_or_traitlets() -> None:
    # Every module of the package but the Jupyter side and the service, found by
    # walking it.
    probe = (
        "import importlib, pkgutil, sys\n"
        "import codedock_magic\n"
        "names = [m.name for m in pkgutil.walk_packages(codedock_magic.__path__, 'codedock_magic.')"
        " if not m.name.startswith(('codedock_magic.jupyter', 'codedock_magic.service',"
        " 'codedock_magic.__main__', 'codedock_magic.supervisor.mpl_backend'))]\n"
        "for name in names: importlib.import_module(name)\n"
        "for name in codedock_magic.__all__: getattr(codedock_magic, name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('IPython', 'ipywidgets', 'traitlets', 'ipykernel', 'nbclient', 'tornado',"
        " 'prometheus_client', 'jupyterhub'))\n"
        "print(len(names), ','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    count, bad = out.stdout.split(" ")
    assert int(count) >= 20
    assert bad.strip() == ""


def test_importing_the_package_loads_no_engine_client() -> None:
    probe = "import sys, codedock_magic\nprint('docker' in sys.modules, 'requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
