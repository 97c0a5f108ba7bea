"""The codedock command: the demo and the orphan sweep, against the real engine."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from codedock_magic import DockerEngine, Profile, SandboxSpec, run
from codedock_magic.cli import main
from codedock_magic.labels import SESSION, SESSION_ID, make_labels
from codedock_magic.supervisor import supervisor_command


def test_demo_prints_each_outcome(engine: DockerEngine) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "codedock_magic", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("engine ")
    outcomes = [line.split("  ")[0].strip() for line in lines[1:]]
    assert outcomes == [
        "ok",
        "ok",
        "error (exit 3)",
        "timeout after 1s",
        "memory limit (100m) exceeded",
        "old API dock.Docker.run() -> 0",
    ]
    assert lines[-1].endswith("-> 10")


def test_sweep_removes_orphans_of_dead_owners(
    engine: DockerEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    labels = make_labels(60, session="sweep-test", engine="docker")
    labels["io.codedock.owner-pid"] = str(dead.pid)
    orphan = engine.create(SandboxSpec(Profile(), supervisor_command(), labels))
    try:
        assert main(["sweep", "--dry-run"]) == 0
        assert (
            f"would remove {orphan[:12]} (docker): owner pid {dead.pid} is gone"
            in capsys.readouterr().out
        )
        assert [c.id for c in engine.list({"io.codedock.session": "sweep-test"})] == [orphan]
        assert main(["sweep"]) == 0
        assert f"removed {orphan[:12]}" in capsys.readouterr().out
        assert engine.list({"io.codedock.session": "sweep-test"}) == []
    finally:
        engine.remove(orphan)


def test_sweep_takes_the_engine_options_a_kernel_would(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The option reaches the engine: this one points at no engine at all.
    assert main(["sweep", "--option", "base_url=unix:///nonexistent.sock"]) == 1
    assert "no Docker engine answered at unix:///nonexistent.sock" in capsys.readouterr().err
    assert main(["sweep", "--option", "timeout"]) == 1
    assert "--option 'timeout'" in capsys.readouterr().err
    assert main(["sweep", "--option", "colour=red"]) == 1
    assert "engine options for docker" in capsys.readouterr().err


def test_without_an_engine_the_cli_says_what_to_do() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "codedock_magic", "sweep"],
        capture_output=True,
        text=True,
        env={"DOCKER_HOST": "unix:///nonexistent.sock", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 1
    assert out.stderr.startswith("codedock: no Docker engine answered at unix:///nonexistent.sock")
    assert "Traceback" not in out.stderr


def test_a_sweep_from_another_pid_namespace_never_removes_a_live_run(
    engine: DockerEngine,
) -> None:
    # A kernel in another container or pod may share this hostname; there the
    # owner's pid means another process, or none.
    results = []
    runner = threading.Thread(
        target=lambda: results.append(
            run("import time\nprint('up', flush=True)\ntime.sleep(3)\nprint('done')")
        )
    )
    runner.start()
    deadline = time.monotonic() + 20
    while not engine.list({SESSION: SESSION_ID}) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.list({SESSION: SESSION_ID}), "the run never started"
    sweep = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-m",
            "codedock_magic",
            "sweep",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    runner.join(30)
    assert sweep.returncode == 0, sweep.stderr
    assert results and results[0].ok, results
    assert results[0].stdout == "up\ndone\n"
