"""%%sandbox through a real IPython shell and the real engine."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from codedock_magic import CheckResult, DockerEngine, RunResult, RunStatus
from codedock_magic.errors import CheckFailedError, RunFailedError
from codedock_magic.jupyter.magic import SandboxMagics

DEFAULTS = {
    name: trait.default() for name, trait in SandboxMagics.class_traits(config=True).items()
}
# The warm pool has tests of its own; here it would only blur the leak checks.
DEFAULTS["pool_size"] = 0


@pytest.fixture(scope="module")
def shell() -> InteractiveShell:
    # One IPython per test process: another module of the suite may have started it.
    ip = start_ipython() or InteractiveShell.instance()
    assert ip is not None
    ip.config.SandboxMagics.pool_size = 0
    ip.run_line_magic("load_ext", "codedock_magic")
    return ip


@pytest.fixture
def ip(shell: InteractiveShell) -> Iterator[InteractiveShell]:
    yield shell
    magics = shell.magics_manager.registry["SandboxMagics"]
    # Together, so that no default is over a ceiling on the way back.
    with magics.hold_trait_notifications():
        for name, value in DEFAULTS.items():
            setattr(magics, name, value)


def cell(ip: InteractiveShell, line: str, body: str) -> Any:
    return ip.run_cell_magic("sandbox", line, body)


def test_ok_cell_prints_output_and_a_status_line(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    cell(ip, "--timeout 2 --mem 100m", "print('hi')\nimport sys\nprint('note', file=sys.stderr)")
    out, err = capsys.readouterr()
    assert out.startswith("hi\n[sandbox] ok · ")
    assert "timeout 2s · memory 100m" in out
    assert err == "note\n"


def test_every_limit_option_reaches_the_sandbox(ip: InteractiveShell, engine: DockerEngine) -> None:
    cell(ip, "--timeout 3 --memory 120m --cpus 0.5 --pids 20 --result r --no-widgets", "print(1)")
    result = ip.user_ns["r"]
    assert isinstance(result, RunResult)
    assert (result.limits.timeout, result.limits.memory) == (3, 120 * 1024**2)
    assert (result.limits.cpus, result.limits.pids) == (0.5, 20)
    probe = (
        "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip())\n"
        "print(open('/sys/fs/cgroup/pids/pids.max').read().strip())\n"
        "print(open('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').read().strip())\n"
    )
    cell(ip, "--mem 120m --pids 20 --cpus 0.5 --out seen", probe)
    assert ip.user_ns["seen"].split() == [str(120 * 1024**2), "20", "50000"]


def test_out_err_and_result_land_in_the_namespace(
    ip: InteractiveShell, engine: DockerEngine
) -> None:
    cell(ip, "--out o --err e --result r", "import sys\nprint('a')\nprint('b', file=sys.stderr)")
    assert (ip.user_ns["o"], ip.user_ns["e"]) == ("a\n", "b\n")
    assert ip.user_ns["r"].status is RunStatus.OK


def test_stdin_from_a_variable_or_a_file(
    ip: InteractiveShell, engine: DockerEngine, tmp_path: Path
) -> None:
    ip.user_ns["data"] = "3 4\n"
    cell(ip, "--stdin data --out o", "a, b = map(int, input().split())\nprint(a * b)")
    assert ip.user_ns["o"] == "12\n"
    ip.user_ns["raw"] = b"\x00\x01"
    cell(ip, "--stdin raw --out o", "import sys\nprint(list(sys.stdin.buffer.read()))")
    assert ip.user_ns["o"] == "[0, 1]\n"
    source = tmp_path / "in.txt"
    source.write_text("from a file\n")
    cell(ip, f"--stdin-file '{source}' --out o", "print(input().upper())")
    assert ip.user_ns["o"] == "FROM A FILE\n"


def test_a_failing_cell_raises_a_short_error_after_its_output(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(RunFailedError) as info:
        cell(ip, "--out o", "print('before')\nraise ValueError('student bug')")
    assert info.value.result.exit_code == 1
    assert info.value._render_traceback_() == [
        "RunFailedError: the sandboxed cell did not end ok: error (exit 1); its output is above "
        "(use --no-raise-error to carry on)"
    ]
    out, err = capsys.readouterr()
    assert "before" in out and "[sandbox] error (exit 1)" in out
    assert "ValueError: student bug" in err and 'File "/sandbox/main.py", line 2' in err
    assert ip.user_ns["o"] == "before\n"


def test_run_cell_shows_no_host_traceback(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    result = ip.run_cell("%%sandbox --timeout 1\nwhile True: pass")
    assert isinstance(result.error_in_exec, RunFailedError)
    out, _ = capsys.readouterr()
    assert "RunFailedError: the sandboxed cell did not end ok: timeout after 1s" in out
    assert "Traceback" not in out and "codedock_magic" not in out.replace("[sandbox]", "")


def test_no_raise_error_carries_on(ip: InteractiveShell, engine: DockerEngine) -> None:
    cell(ip, "--no-raise-error --result r", "import sys\nsys.exit(4)")
    assert (ip.user_ns["r"].status, ip.user_ns["r"].exit_code) == (RunStatus.ERROR, 4)
    ip.run_line_magic("config", "SandboxMagics.raise_error = False")
    cell(ip, "--result r", "import sys\nsys.exit(5)")
    assert ip.user_ns["r"].exit_code == 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--mem 10x", "--mem/--memory: memory '10x' is not a size such as 100m or 1g"),
        ("--timeout soon", "--timeout: timeout 'soon' is not a number of seconds such as 2 or 0.5"),
        ("--cpus 0", "--cpus: cpus '0' is not a positive number of CPUs such as 1 or 0.5"),
        ("--pids many", "--pids: pids 'many' is not a whole number such as 64"),
        ("--bogus", "unrecognized arguments: --bogus"),
        ("--timeout", "argument --timeout: expected one argument"),
        ("--mem '1g", "%%sandbox: cannot split the options (No closing quotation)"),
        ("--stdin nothing_here", "--stdin: no variable named 'nothing_here' in the notebook"),
        ("--stdin-file /nonexistent/in.txt", "--stdin-file: cannot read /nonexistent/in.txt"),
        ("--out 1bad", "'1bad' is not a valid variable name"),
    ],
)
def test_bad_options_are_one_line_usage_errors(
    ip: InteractiveShell, line: str, message: str
) -> None:
    with pytest.raises(UsageError) as info:
        cell(ip, line, "print(1)")
    assert message in str(info.value)
    assert "\n" not in str(info.value).strip()


def test_quoted_values_are_unquoted(ip: InteractiveShell, engine: DockerEngine) -> None:
    cell(ip, "--mem '100m' --timeout \"2\" --result r", "print(1)")
    assert ip.user_ns["r"].limits.memory == 100 * 1024**2


def test_config_defaults_apply_and_are_listed(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("config", "SandboxMagics.timeout = 4")
    ip.run_line_magic("config", "SandboxMagics.memory = '150m'")
    cell(ip, "--result r", "print(1)")
    assert (ip.user_ns["r"].limits.timeout, ip.user_ns["r"].limits.memory) == (4, 150 * 1024**2)
    capsys.readouterr()
    ip.run_line_magic("config", "SandboxMagics")
    listing = capsys.readouterr().out
    for name in ("timeout", "memory", "max_timeout", "allowed_images", "widgets"):
        assert f"SandboxMagics.{name}" in listing
    assert "Ceiling on a cell's wall-clock time in seconds" in listing


def test_bad_config_values_are_refused(ip: InteractiveShell) -> None:
    magics = ip.magics_manager.registry["SandboxMagics"]
    with pytest.raises(Exception, match="memory 'lots' is not a size such as 100m or 1g"):
        magics.memory = "lots"
    with pytest.raises(Exception, match="timeout must be positive"):
        magics.timeout = -1
    assert magics.memory == "256m"


def test_ceilings_bound_cell_options_and_refuse_defaults_over_them(
    ip: InteractiveShell, engine: DockerEngine
) -> None:
    magics = ip.magics_manager.registry["SandboxMagics"]
    with pytest.raises(
        Exception,
        match=r"SandboxMagics\.timeout 10\.0 is not at most SandboxMagics\.max_timeout = 5",
    ):
        magics.max_timeout = 5
    assert magics.max_timeout == 0
    ip.run_line_magic("config", "SandboxMagics.timeout = 5")
    ip.run_line_magic("config", "SandboxMagics.max_timeout = 5")
    ip.run_line_magic("config", "SandboxMagics.memory = '200m'")
    ip.run_line_magic("config", "SandboxMagics.max_memory = '200m'")
    ip.run_line_magic("config", "SandboxMagics.max_cpus = 1")
    ip.run_line_magic("config", "SandboxMagics.allowed_images = ['codedock/pybuntu:latest']")
    for line, ceiling in [
        ("--timeout 10", "--timeout 10 exceeds the ceiling SandboxMagics.max_timeout = 5"),
        ("--mem 1g", "--mem 1g exceeds the ceiling SandboxMagics.max_memory = 200m"),
        ("--cpus 2", "--cpus 2 exceeds the ceiling SandboxMagics.max_cpus = 1"),
        ("--image other", "--image other is not allowed; SandboxMagics.allowed_images"),
    ]:
        with pytest.raises(UsageError, match=ceiling):
            cell(ip, line, "print(1)")
    cell(ip, "--result r", "print(1)")
    assert ip.user_ns["r"].limits.timeout == 5
    cell(ip, "--timeout 5 --mem 200m --result r", "print(1)")
    assert ip.user_ns["r"].ok


def test_pids_output_and_workdir_ceilings_hold_inside_the_sandbox(
    ip: InteractiveShell, engine: DockerEngine
) -> None:
    # Each default first: a ceiling under its default is refused.
    for setting in ("pids = 16", "output = '4k'", "workdir = '2m'"):
        ip.run_line_magic("config", f"SandboxMagics.{setting}")
        ip.run_line_magic("config", f"SandboxMagics.max_{setting}")
    with pytest.raises(
        UsageError, match=r"--pids 1000 exceeds the ceiling SandboxMagics\.max_pids"
    ):
        cell(ip, "--pids 1000", "print(1)")
    probe = (
        "import os\n"
        "print(open('/sys/fs/cgroup/pids/pids.max').read().strip())\n"
        "disk = os.statvfs('/sandbox')\n"
        "print(disk.f_blocks * disk.f_frsize)\n"
        "print('x' * 20000)\n"
    )
    cell(ip, "--result r --no-widgets", probe)
    result = ip.user_ns["r"]
    assert result.stdout.split()[:2] == ["16", str(2 * 1024**2)]
    assert result.truncated and result.limits.output == 4096


def test_stdin_has_a_ceiling_and_an_endless_file_is_not_read_forever(
    ip: InteractiveShell, engine: DockerEngine
) -> None:
    ip.run_line_magic("config", "SandboxMagics.max_stdin = '1k'")
    ip.user_ns["big"] = "x" * 2000
    with pytest.raises(UsageError, match=r"--stdin big holds more than SandboxMagics\.max_stdin"):
        cell(ip, "--stdin big", "print(1)")
    with pytest.raises(UsageError, match="--stdin-file /dev/zero holds more than"):
        cell(ip, "--stdin-file /dev/zero", "print(1)")
    ip.user_ns["small"] = "y" * 1000
    cell(ip, "--stdin small --out o", "print(len(input()))")
    assert ip.user_ns["o"] == "1000\n"


def test_help_lists_every_option(ip: InteractiveShell) -> None:
    doc = ip.magics_manager.magics["cell"]["sandbox"].__doc__
    assert "%%%" not in doc
    for option in (
        "%%sandbox [--timeout SECONDS]",
        "--timeout SECONDS",
        "--mem SIZE, --memory SIZE",
        "--cpus N",
        "--pids N",
        "--image NAME",
        "--stdin NAME",
        "--stdin-file PATH",
        "--out NAME",
        "--err NAME",
        "--result NAME",
        "--no-raise-error",
        "--no-widgets",
    ):
        assert option in doc, option


def test_info_and_cleanup_line_magics(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("sandbox_info", "")
    info = capsys.readouterr().out
    assert "defaults:  timeout=10s memory=256m" in info
    assert "ceilings:  max_stdin=16m" in info
    assert f"engine:    answering at {engine.address}" in info
    assert "image:     codedock/pybuntu:latest (present)" in info
    ip.run_line_magic("config", "SandboxMagics.image = 'no-such-image:1'")
    ip.run_line_magic("sandbox_info", "")
    assert (
        "image:     PROBLEM: the sandbox image 'no-such-image:1' is not on this Docker engine"
        in (capsys.readouterr().out)
    )
    assert ip.run_line_magic("sandbox_cleanup", "") == 0
    assert "removed 0 sandbox container(s) of this kernel" in capsys.readouterr().out


def test_a_missing_image_is_one_clear_line(ip: InteractiveShell, engine: DockerEngine) -> None:
    result = ip.run_cell("%%sandbox --image no-such-image:1\nprint(1)")
    error = result.error_in_exec
    assert error is not None
    assert error._render_traceback_() == [  # type: ignore[attr-defined]
        f"ImageNotFoundError: {error}"
    ]
    assert "codedock image build" in str(error)


def test_cells_use_the_warm_pool_when_it_is_on(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    magics = ip.magics_manager.registry["SandboxMagics"]
    magics.pool.hits = magics.pool.misses = 0
    ip.run_line_magic("config", "SandboxMagics.pool_size = 1")
    assert magics.pool.wait_ready(timeout=30), magics.pool.last_error
    cell(ip, "--result r", "print('warm')")
    assert ip.user_ns["r"].stdout == "warm\n"
    assert magics.pool.hits == 1
    # A cell asking for other container limits starts cold, with its own limits.
    cell(ip, "--mem 100m --result r", "print(1)")
    assert ip.user_ns["r"].limits.memory == 100 * 1024**2
    assert (magics.pool.hits, magics.pool.misses) == (1, 0)
    # New defaults replace what waits in the pool.
    ip.run_line_magic("config", "SandboxMagics.memory = '128m'")
    assert magics.pool.wait_ready(timeout=30)
    cell(ip, "--out o", "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read())")
    assert ip.user_ns["o"].strip() == str(128 * 1024**2)
    assert magics.pool.hits == 2
    capsys.readouterr()
    ip.run_line_magic("sandbox_info", "")
    assert "pool:      " in capsys.readouterr().out


def test_printed_escapes_cannot_hide_or_forge_the_status_line(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    # Move up, clear the line, then print a fake verdict; and exit 3 for real.
    forge = (
        "import sys\n"
        "print('\\x1b[1A\\x1b[2K\\r[sandbox] ok · 0.01 s', flush=True)\n"
        "print('[sandbox] ok · 0.01 s', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    cell(ip, "--no-raise-error --no-widgets --result r", forge)
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\r" not in out + err
    ours = [line for line in (out + err).splitlines() if line.startswith("[sandbox]")]
    assert len(ours) == 1 and ours[0].startswith("[sandbox] error (exit 3) · ")
    assert "\\x1b[1A\\x1b[2K\\x0d[sandbox] ok" in out
    assert err == "\\[sandbox] ok · 0.01 s\n"
    # The stored output is the program's own bytes, untouched.
    assert ip.user_ns["r"].stdout.startswith("\x1b[1A\x1b[2K\r[sandbox] ok")


CHECK_CASES = [
    {"name": "three", "stdin": "1 2\n", "expected": "3\n"},
    {"name": "wrong", "stdin": "2 2\n", "expected": "5\n"},
    {"name": "secret", "stdin": "40 2\n", "expected": "4211\n", "hidden": True},
]
ADD = "a, b = map(int, input().split())\nprint(a + b)"


def test_cases_from_a_variable_or_a_file_with_diffs_and_nothing_of_a_hidden_case(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ip.user_ns["cases"] = CHECK_CASES
    with pytest.raises(CheckFailedError, match=r"1/3 passed · 1/3 points"):
        cell(ip, "--cases cases --result graded", ADD)
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("[sandbox] passed: three · 1/1 points")
    assert lines[1].startswith("[sandbox] wrong answer: wrong · 0/1 points")
    assert "    -5" in lines and "    +4" in lines
    assert lines[-2].startswith("[sandbox] wrong answer: secret") and lines[-2].endswith("hidden")
    assert lines[-1].startswith("[sandbox] 1/3 passed · 1/3 points · ")
    # Nothing of the hidden case: not its input, its expected output or what it printed.
    assert "40 2" not in out and "4211" not in out and "42\n" not in out
    graded = ip.user_ns["graded"]
    assert isinstance(graded, CheckResult) and graded.cases[2].stdout == ""
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(CHECK_CASES[:1]))
    cell(ip, f"--cases {path}", ADD)
    assert capsys.readouterr().out.splitlines()[-1].startswith("[sandbox] 1/1 passed")


def test_bad_cases_and_options_with_cases_are_one_line_usage_errors(
    ip: InteractiveShell, engine: DockerEngine
) -> None:
    ip.user_ns["broken"] = [{"name": "x", "expected": "1", "timeout": -1}]
    ip.user_ns["text"] = "1"
    for line, message in (
        ("--cases nowhere", "no variable named 'nowhere'"),
        ("--cases broken", "--cases broken: case 'x' (#1): timeout -1"),
        ("--cases text", "a .json, .yaml or .yml file"),
        ("--cases broken --stdin text", "--stdin does not go with --cases"),
        ("--cases broken --out o", "--out does not go with --cases"),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            cell(ip, line, "print(1)")
    ip.user_ns["checked"] = [
        {"name": "c", "compare": "checker", "checker": lambda out, case: 1 / 0},
    ]
    with pytest.raises(UsageError, match="checker of case 'c' raised ZeroDivisionError"):
        cell(ip, "--cases checked", "print(1)")


PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)


def test_values_files_and_images_through_the_magic(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ip.user_ns.update(prices=[1.5, 2.5], label="total", raw=b"x,y\n1,2\n")
    (tmp_path / "notes.txt").write_text("from a file")
    body = (
        "import base64, os\n"
        "print(label, sum(prices), open('data.csv').read().split(), open('notes.txt').read())\n"
        f"display(base64.b64decode('{PNG_B64}'))\n"
        "os.mkdir('out')\n"
        "open('out/answer.txt', 'w').write('4')\n"
        "answer = {'sum': sum(prices), 'label': label}\n"
    )
    line = "--in prices,label --return answer --file data.csv=raw"
    line += f" --file notes.txt={tmp_path}/notes.txt"
    cell(ip, line, body)
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "total 4.0 ['x,y', '1,2'] from a file"
    assert lines[1] == "[sandbox] image: image/png, 0.1 KiB"
    assert lines[2] == "[sandbox] file: out/answer.txt, 0.0 KiB"
    assert lines[3].startswith("[sandbox] ok · ") and " · cpu " in lines[3]
    assert ip.user_ns["answer"] == {"sum": 4.0, "label": "total"}


def test_bad_values_files_and_returns_are_one_line_usage_errors(
    ip: InteractiveShell, engine: DockerEngine
) -> None:
    ip.user_ns.update(odd={1, 2}, number=3, cases=[{"name": "a", "expected": ""}])
    for line, message in (
        ("--in missing", "--in: no variable named 'missing'"),
        ("--in odd", "--in odd: odd holds a set, not a JSON value"),
        ("--return 2x", "--return: '2x' is not a valid variable name"),
        ("--file data", "--file data: give NAME=SOURCE"),
        ("--file ../x=number", "--file ../x=number: file name '../x'"),
        ("--file x=number", "--file x=number: number holds a int, not bytes or str"),
        ("--file x=/nowhere/at/all", "no variable '/nowhere/at/all', and cannot read"),
        ("--cases cases --in number", "--in does not go with --cases"),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            cell(ip, line, "print(1)")
    # A value the program could not send back leaves the notebook's variable alone.
    ip.user_ns["kept"] = "before"
    cell(ip, "--return kept --no-raise-error", "kept = {1}")
    assert ip.user_ns["kept"] == "before"


def test_sandbox_doctor_checks_what_this_kernels_cells_get(
    ip: InteractiveShell, engine: DockerEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    magics = ip.magics_manager.registry["SandboxMagics"]
    magics.memory = "150m"
    magics.pids = 50
    ip.run_line_magic("sandbox_doctor", "")
    out = capsys.readouterr().out
    assert out.strip().endswith("all 12 promises hold"), out
    assert "150m (asked 150m)" in out and "50 (asked 50)" in out
