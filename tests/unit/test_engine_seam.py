"""The engine seam with no engine: choosing one by name, its entry points, the watchdog's argv,
the supervisor's v4 greeting, rlimits and reaping as PID 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codedock_magic import run
from codedock_magic.cli import main as cli_main
from codedock_magic.core.errors import InvalidValueError
from codedock_magic.core.limits import ContainerLimits
from codedock_magic.engines import Watch, available_engines, connect, engine_name, registry
from codedock_magic.engines.watchdog import watchdog_command
from codedock_magic.supervisor import NOFILE, baked_command, supervisor_command
from codedock_magic.supervisor.protocol import HELLO, VERSION

from .fakes import PROGRAM_PATH, program

PLUGIN = """
from fakes import FakeEngine

made = []


def behave(container):
    container.read_request()
    container.emit(b"o", b"from the plugin\\n")
    container.emit(b"x", b"exit 0")
    container.exit(0)


def make(**options):
    engine = FakeEngine(behave)
    engine.options = options
    made.append(engine)
    return engine
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An engine registered as a third party would: a dist's entry point on the path."""
    name = "unit-plugin-" + os.urandom(3).hex()
    (tmp_path / "unit_plugin_engine.py").write_text(PLUGIN)
    info = tmp_path / "unit_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: unit-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[codedock_magic.engines]\n{name} = unit_plugin_engine:make\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    yield name
    sys.modules.pop("unit_plugin_engine", None)
    registry._cache.clear()


def test_the_name_comes_from_the_setting_else_the_environment_else_docker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CODEDOCK_ENGINE", raising=False)
    assert engine_name() == "docker"
    monkeypatch.setenv("CODEDOCK_ENGINE", "pods")
    assert engine_name() == "pods"
    assert engine_name("docker") == "docker"


def test_docker_is_there_without_metadata() -> None:
    assert available_engines()["docker"] == "codedock_magic.engines.docker:DockerEngine"


def test_an_unknown_engine_is_one_line_listing_those_there_are(plugin: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        connect("no-such-engine")
    message = str(caught.value)
    assert "\n" not in message
    assert "'no-such-engine'" in message and "docker" in message and plugin in message


def test_an_option_the_engine_does_not_take_is_a_bad_value() -> None:
    with pytest.raises(InvalidValueError, match="engine options for docker"):
        connect("docker", colour="blue")


def test_making_the_docker_engine_does_not_reach_it() -> None:
    engine = connect("docker", base_url="tcp://127.0.0.1:9", runtime="runsc", init=False)
    assert engine is connect("docker", base_url="tcp://127.0.0.1:9", runtime="runsc", init=False)
    assert engine.options == {  # type: ignore[attr-defined]
        "base_url": "tcp://127.0.0.1:9",
        "init": False,
        "runtime": "runsc",
        "timeout": 60,
    }


def test_a_registered_engine_runs_code_when_the_environment_names_it(
    plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEDOCK_ENGINE", plugin)
    result = run("print('x')")
    assert result.ok and result.stdout == "from the plugin\n"
    made = sys.modules["unit_plugin_engine"].made
    assert len(made) == 1 and len(made[0].containers) == 1


def test_sweep_takes_an_engine_by_name(plugin: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["sweep", "--engine", plugin]) == 0
    assert "removed 0 orphaned" in capsys.readouterr().out
    assert cli_main(["sweep", "--engine", "no-such-engine"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one of" in err and "docker" in err


def test_the_watchdog_knows_its_engine_and_options() -> None:
    command = watchdog_command("s1", "pods", {"namespace": "ns"})
    assert command[-4:-2] == ["s1", command[-3]]
    assert command[-2:] == ["pods", json.dumps({"namespace": "ns"})]
    assert watchdog_command("s1")[-2:] == ["docker", "{}"]


def test_the_engine_decodes_a_shells_status() -> None:
    watch = Watch()
    watch.record_status(137)
    assert (watch.exit_code, watch.signal) == (None, 9)
    other = Watch()
    other.record_status(3)
    assert (other.exit_code, other.signal, other.died.is_set()) == (3, None, True)


def test_the_supervisor_and_the_host_speak_one_version_and_greeting() -> None:
    assert program.VERSION == VERSION == 5
    assert program.HELLO == HELLO


def test_the_supervisor_is_told_its_rlimits() -> None:
    command = supervisor_command(30, ContainerLimits(workdir="8m", pids=40))
    assert command[5:7] == ["30", f"nofile={NOFILE},fsize={8 * 1024 * 1024},nproc=40"]
    assert program.parse_limits(command[6]) == {
        "nofile": NOFILE,
        "fsize": 8 * 1024 * 1024,
        "nproc": 40,
        "warm": 0,
    }
    # A container started ahead of time also starts its program's interpreter early.
    warm = supervisor_command(30, ContainerLimits(workdir="8m", pids=40), warm=True)
    assert program.parse_limits(warm[6])["warm"] == 1
    # An image that carries the supervisor is told the same, warm included.
    assert baked_command(30, ContainerLimits(workdir="8m", pids=40), warm=True)[-2:] == warm[5:7]
    with pytest.raises(ValueError, match="no limit"):
        program.parse_limits("core=0")


def test_the_supervisor_says_ready_only_after_the_hosts_byte() -> None:
    import socket

    host, box = socket.socketpair()
    control = program.Control(box.fileno())
    host.setblocking(False)
    with pytest.raises(program.HostGone):
        program.greet(control, time.monotonic() + 0.1, box.fileno())
    with pytest.raises(BlockingIOError):
        host.recv(16)  # nothing said before the byte
    host.sendall(HELLO)
    program.greet(control, time.monotonic() + 1, box.fileno())
    assert host.recv(16) == b"r\0\0\0\0"
    host.sendall(b"{")
    with pytest.raises(program.Refused, match="first byte"):
        program.greet(control, time.monotonic() + 1, box.fileno())
    host.close()
    box.close()


REAP = """
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location("program", sys.argv[1])
program = importlib.util.module_from_spec(spec)
spec.loader.exec_module(program)
assert os.getpid() == 1, os.getpid()
child = os.fork()
if child == 0:
    if os.fork() == 0:
        time.sleep(0.2)
        os._exit(7)
    os._exit(0)
os.waitpid(child, 0)
time.sleep(0.6)
program.reap_orphans()
print(sorted(os.WEXITSTATUS(status) for status in program.REAPED.values()))
"""


def test_as_pid_1_the_supervisor_reaps_orphans() -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare here")
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--kill-child", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("no new pid namespace here: " + probe.stderr.decode().strip())
    done = subprocess.run(
        [unshare, "--pid", "--fork", "--kill-child", sys.executable, "-c", REAP, PROGRAM_PATH],
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "[7]"


def test_elsewhere_the_supervisor_leaves_reaping_to_the_init() -> None:
    script = textwrap.dedent(
        """
        import importlib.util, os, sys
        spec = importlib.util.spec_from_file_location("program", sys.argv[1])
        program = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(program)
        child = os.fork()
        if child == 0:
            os._exit(5)
        import time; time.sleep(0.2)
        program.reap_orphans()
        assert program.REAPED == {}
        print(os.WEXITSTATUS(program.wait_child(child, block=True)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(PROGRAM_PATH)], capture_output=True, check=True
    )
    assert done.stdout.decode().strip() == "5"


def test_the_magic_and_the_service_take_the_engine_from_their_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from traitlets import TraitError
    from traitlets.config import Config

    from codedock_magic.jupyter.magic import SandboxMagics
    from codedock_magic.service.app import main as serve

    config = Config()
    config.SandboxMagics.engine = "docker"
    config.SandboxMagics.engine_options = {"runtime": "runc"}
    magics = SandboxMagics(shell=None, config=config)
    assert magics.sandbox_engine.options["runtime"] == "runc"  # type: ignore[attr-defined]
    config.SandboxMagics.engine = "no-such-engine"
    with pytest.raises(TraitError, match=r"SandboxMagics\.engine: .* one of .*docker"):
        SandboxMagics(shell=None, config=config)
    assert serve(["--SandboxService.engine=no-such-engine", "--port=0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad setting: engine 'no-such-engine'" in err
