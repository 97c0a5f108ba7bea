"""SandboxMagics in a test shell on the fake engine: options, ceilings, inputs, info. No Docker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets import TraitError
from traitlets.config import Config

from codedock_magic.core.limits import LIMITS, Ceilings, resolve
from codedock_magic.jupyter.magic import SandboxMagics
from codedock_magic.service.policy import SETTINGS

from .fakes import FakeContainer, FakeEngine

OUT, ERR, END = b"o", b"e", b"x"


def echo(container: FakeContainer) -> None:
    """A supervisor whose program prints its stdin, and warns on stderr."""
    _, stdin, _, _ = container.read_request()
    container.emit(OUT, stdin)
    container.emit(ERR, b"warn\n")
    container.emit(END, b"exit 0")
    container.exit(0)


@pytest.fixture
def shell() -> Iterator[tuple[InteractiveShell, SandboxMagics, FakeEngine]]:
    ip = InteractiveShell.instance()
    engine = FakeEngine(echo)
    # The shell is the process's one instance: config other tests gave it must not
    # reach these magics, so they take none from it.
    magics = SandboxMagics(shell=ip, parent=None, engine=engine, pool_size=0, widgets=False)
    ip.register_magics(magics)
    yield ip, magics, engine
    magics.pool.close()


def cell(ip: InteractiveShell, line: str, body: str = "print(1)") -> Any:
    return ip.run_cell_magic("sandbox", line, body)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--mem 10x", "argument --mem/--memory: memory '10x' is not a size such as 100m or 1g"),
        ("--timeout soon", "argument --timeout: timeout 'soon' is not a number of seconds"),
        ("--cpus 0", "argument --cpus: cpus '0' is not a positive number of CPUs"),
        ("--pids many", "argument --pids: pids 'many' is not a whole number such as 64"),
        ("--mem 1k", "argument --mem/--memory: memory '1k' is not at least 16m"),
        ("--bogus", "unrecognized arguments: --bogus"),
        ("--timeout", "argument --timeout: expected one argument"),
        ("--mem '1g", "%%sandbox: cannot split the options (No closing quotation)"),
        ("--out 1bad", "argument --out: '1bad' is not a valid variable name"),
        ("--return class", "argument --return: 'class' is not a valid variable name"),
        ("--stdin nothing_here", "--stdin: no variable named 'nothing_here' in the notebook"),
        ("--cases c --stdin s", "--stdin does not go with --cases"),
        ("--cases nowhere", "--cases: no variable named 'nowhere' in the notebook"),
    ],
)
def test_bad_options_are_one_line_usage_errors(shell: Any, line: str, message: str) -> None:
    ip, _, engine = shell
    with pytest.raises(UsageError) as info:
        cell(ip, line)
    assert message in str(info.value)
    assert "\n" not in str(info.value).strip()
    assert not engine.containers  # refused before anything started


def test_a_run_keeps_out_err_and_result_and_feeds_stdin(shell: Any) -> None:
    ip, _, engine = shell
    ip.user_ns["given"] = "Ada\n"
    cell(ip, "--stdin given --out o --err e --result r --mem '100m' --timeout 3")
    assert (ip.user_ns["o"], ip.user_ns["e"]) == ("Ada\n", "warn\n")
    result = ip.user_ns["r"]
    assert result.ok and (result.limits.memory, result.limits.timeout) == (100 * 2**20, 3)
    assert engine.only().request is not None and engine.only().request[1] == b"Ada\n"


def test_stdin_and_inputs_are_bounded_by_max_stdin(shell: Any) -> None:
    ip, magics, _ = shell
    magics.max_stdin = "1k"
    ip.user_ns["big"] = "x" * 2000
    with pytest.raises(UsageError, match=r"--stdin big holds more than SandboxMagics\.max_stdin"):
        cell(ip, "--stdin big")
    ip.user_ns["handle"] = object()
    with pytest.raises(UsageError, match="--in handle: handle holds a"):
        cell(ip, "--in handle")
    with pytest.raises(UsageError, match=r"--file data\.csv=big: the files hold more than"):
        cell(ip, "--file data.csv=big")


def test_asking_over_a_ceiling_is_refused_naming_it(shell: Any) -> None:
    ip, magics, _ = shell
    magics.timeout, magics.max_timeout = 4, 5
    magics.memory, magics.max_memory = "200m", "200m"
    for line, message in [
        ("--timeout 10", "--timeout 10 exceeds the ceiling SandboxMagics.max_timeout = 5"),
        ("--mem 1g", "--mem 1g exceeds the ceiling SandboxMagics.max_memory = 200m"),
    ]:
        with pytest.raises(UsageError, match=message):
            cell(ip, line)
    cell(ip, "--timeout 5 --mem 200m --result r")
    assert ip.user_ns["r"].ok


def test_a_default_over_its_ceiling_is_refused_naming_both_settings(shell: Any) -> None:
    _, magics, _ = shell
    with pytest.raises(
        TraitError,
        match=r"^SandboxMagics\.timeout 10\.0 is not at most SandboxMagics\.max_timeout = 5$",
    ):
        magics.max_timeout = 5
    assert magics.max_timeout == 0
    with pytest.raises(TraitError, match=r"SandboxMagics\.memory '2g' is not at most"):
        magics.max_memory = "1g"
        magics.memory = "2g"
    assert magics.memory == "256m"
    with pytest.raises(TraitError, match="timeout must be positive"):
        magics.timeout = -1


def test_config_at_load_is_checked_as_a_whole() -> None:
    config = Config()
    config.SandboxMagics.max_pids = 16
    with pytest.raises(
        TraitError, match=r"SandboxMagics\.pids 64 is not at most SandboxMagics\.max_pids = 16"
    ):
        SandboxMagics(config=config, engine=FakeEngine())
    config.SandboxMagics.pids = 8  # given after its ceiling, but together: fine
    magics = SandboxMagics(config=config, engine=FakeEngine())
    assert (magics.pids, magics.max_pids) == (8, 16)


def test_the_service_follows_the_same_rule() -> None:
    settings = {**SETTINGS, "default_timeout": 100}
    with pytest.raises(Exception, match="default_timeout 100 is not at most max_timeout = 60"):
        resolve(settings)
    defaults, ceilings = resolve(SETTINGS)
    assert isinstance(ceilings, Ceilings) and ceilings.over(defaults, ["timeout"]) is None


def test_every_limit_has_its_traits_and_its_settings() -> None:
    traits = SandboxMagics.class_traits(config=True)
    for limit in LIMITS:
        assert limit.name in traits and f"max_{limit.name}" in traits
        assert f"default_{limit.name}" in SETTINGS and f"max_{limit.name}" in SETTINGS


def test_info_lists_defaults_and_ceilings(shell: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip, magics, _ = shell
    magics.max_memory = "1g"
    ip.run_line_magic("sandbox_info", "")
    shown = capsys.readouterr().out
    assert "defaults:  timeout=10s memory=256m cpus=1 pids=64 output=1m workdir=64m image=" in shown
    assert "ceilings:  max_memory=1g, max_stdin=16m" in shown
    assert "engine:    answering at fake://" in shown


def test_a_failed_run_raises_unless_told_not_to(shell: Any) -> None:
    ip, magics, _ = shell

    def fail(container: FakeContainer) -> None:
        container.read_request()
        container.emit(END, b"exit 3")
        container.exit(3)

    magics._engine.behave = fail
    with pytest.raises(Exception, match="exit"):
        cell(ip, "--result r")
    cell(ip, "--no-raise-error --result r")
    assert ip.user_ns["r"].exit_code == 3


def test_cells_that_turn_local_run_on_the_engine_the_settings_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CODEDOCK_ENGINE", raising=False)
    magics = SandboxMagics(
        service_url="http://127.0.0.1:9",
        engine_options={"runtime": "runc", "init": False},
        pool_size=0,
    )
    # Cells go to a service: the kernel holds no engine at all.
    assert magics.remote is not None and magics._engine is None
    magics.service_url = ""
    assert magics.remote is None
    engine: Any = magics.sandbox_engine
    assert engine.options["runtime"] == "runc" and engine.options["init"] is False
    assert magics.pool.engine is engine
    magics.pool.close()
