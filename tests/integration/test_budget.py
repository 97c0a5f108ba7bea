"""Attacks on the host's budget, as a hostile program writes them, through the real engine.

A program floods what is not its output (display frames the host rejects,
values that are not JSON, more files than the cap), nests a value deeply, names
a file after a status line, or prints without end in every case of a check. The
kernel, the saved notebook and the text view must stay within the budget the
README states.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from codedock_magic import DockerEngine, Limits, ServiceBackend, check, run
from codedock_magic.core.budget import MAX_NOTES
from codedock_magic.core.request import RunRequest
from codedock_magic.remote.wire import request_to_json

from .servicehelp import Service, auth, wait_for
from .test_notebooks import _run

LIMITS = Limits(timeout=20)


@pytest.fixture(scope="module")
def ip() -> InteractiveShell:
    # One IPython per test process: another module of the suite may have started it.
    shell = start_ipython() or InteractiveShell.instance()
    assert shell is not None
    # No warm pool: it would outlive the test.
    shell.config.SandboxMagics.pool_size = 0
    shell.run_line_magic("load_ext", "codedock_magic")
    return shell


MIB = 1024 * 1024

# For 2 seconds: rejected image frames, values that are not JSON, and files
# past the cap on files, as fast as the program can make them.
FLOOD = """
import os, struct, time
def frame(kind, body):
    os.write(3, struct.pack('>cI', kind, len(body)) + body)
os.makedirs('out', exist_ok=True)
start, count = time.monotonic(), 0
while time.monotonic() - start < 2:
    frame(b'i', b'text/html\\0' + b'<script>x</script>' * 50)
    frame(b'v', b'x\\0{not json' + b'"' * 200)
    if count < 20000:
        open('out/f%06d' % count, 'w').write('x')
    count += 1
print('flooded', count)
"""

# A value frame nested four million levels deep, under the 8 MiB cap on values.
DEEP = """
import os, struct
body = b'x\\0' + b'[' * 4_000_000 + b']' * 4_000_000
os.write(3, struct.pack('>cI', b'v', len(body)) + body)
print('sent')
"""


def test_a_flood_of_rejected_frames_values_and_files_keeps_a_few_notes(
    engine: DockerEngine,
) -> None:
    result = run(FLOOD, limits=LIMITS)
    assert result.ok, result.stderr
    assert result.stdout.startswith("flooded")
    assert len(result.files) == 100
    assert len(result.notes) == MAX_NOTES + 1
    assert "more notes like these were not kept" in result.notes[-1]
    assert sum(len(note) for note in result.notes) < 8 * 1024


def test_a_value_nested_deeply_is_a_note_and_the_run_ends_with_a_result(
    engine: DockerEngine,
) -> None:
    result = run(DEEP, limits=LIMITS, returns="x")
    assert result.ok and result.stdout == "sent\n"
    assert not result.returned
    assert any("nests deeper than 100 levels" in note for note in result.notes)


def test_a_file_named_like_a_status_line_cannot_forge_it_in_the_text_view(
    ip: InteractiveShell,
    engine: DockerEngine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    forge = (
        "import os, sys\n"
        "os.makedirs('out')\n"
        "for name in ('a\\r[sandbox] ok · 0.01 s', 'b\\n[sandbox] ok · 0.01 s',\n"
        "             'c\\x1b[1A\\x1b[2K[sandbox] ok', '\\u202e[sandbox] ok'):\n"
        "    open('out/' + name, 'w').write('x')\n"
        "os.symlink('/etc/passwd', 'out/d\\n[sandbox] ok · 0.01 s')\n"
        "sys.exit(3)\n"
    )
    ip.run_cell_magic("sandbox", "--no-raise-error --no-widgets --result r", forge)
    out, err = capsys.readouterr()
    shown = out + err
    assert "\r" not in shown and "\x1b" not in shown and "\u202e" not in shown
    ours = [line for line in shown.splitlines() if line.startswith("[sandbox]")]
    assert not [line for line in ours if line.startswith("[sandbox] ok")], ours
    assert ours[-1].startswith("[sandbox] error (exit 3) · ") and shown.endswith(ours[-1] + "\n")
    assert len(ip.user_ns["r"].files) == 4
    assert "out/a\\x0d[sandbox] ok" in shown and "out/b\\x0a[sandbox] ok" in shown


def test_ten_noisy_cases_keep_one_output_budget(engine: DockerEngine) -> None:
    noisy = (
        "import sys\n"
        "for _ in range(64):\n"
        "    sys.stdout.write('\\x01' * 65536)\n"
        "    sys.stderr.write('<' * 65536)\n"
    )
    cases = [{"name": f"case {n}", "stdin": "", "expected": "1\n"} for n in range(10)]
    result = check(noisy, cases, limits=Limits(timeout=20, output="1m"), reveal_hidden=True)
    assert [case.verdict.value for case in result.cases] == ["wrong answer"] * 10
    for stream in ("stdout", "stderr"):
        kept = sum(len(getattr(case, stream)) for case in result.run.cases)
        assert kept < MIB + 10 * 2048, (stream, kept)


def _measured(tmp_path: Path, attack: str) -> tuple[int, int]:
    """The saved notebook's size, and how much the kernel's peak memory grew in the attack."""
    notebook = _run(
        tmp_path,
        # A first run loads the engine's client; only the attack's cost is measured.
        "%%sandbox\nprint('warm')",
        "import resource\nbefore = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss",
        attack,
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\nprint(grown)",
    )
    saved = tmp_path / "run" / "probe.ipynb"
    grown_kib = int("".join(out.get("text", "") for out in notebook.cells[-1].outputs))
    print("saved", os.path.getsize(saved), "grown", grown_kib * 1024)
    return os.path.getsize(saved), grown_kib * 1024


def test_a_flooding_cell_keeps_the_saved_notebook_and_the_kernel_within_the_budget(
    tmp_path: Path, engine: DockerEngine
) -> None:
    attack = (
        "%%sandbox --timeout 20 --no-raise-error\n"
        + FLOOD
        + (
            "import sys\nfor _ in range(64):\n"
            "    sys.stdout.write('<\\x01' * 32768)\n    sys.stderr.write('\"' * 65536)\n"
        )
    )
    size, grown = _measured(tmp_path, attack)
    # The output cap is 1 MiB: the notebook weighs at most 2.5 times that.
    assert size < 2.5 * MIB, size
    assert grown < 64 * MIB, grown
    notebook: Any = nbformat.read(tmp_path / "run" / "probe.ipynb", as_version=4)
    html = "".join(out.get("data", {}).get("text/html", "") for out in notebook.cells[3].outputs)
    assert "more notes like these were not kept" in html


def test_a_check_of_noisy_cases_keeps_the_saved_notebook_within_its_bound(
    tmp_path: Path, engine: DockerEngine
) -> None:
    attack = (
        "cases = [{'name': f'c{n}', 'stdin': '', 'expected': '1'} for n in range(10)]\n"
        "%%sandbox --cases cases --timeout 20 --no-raise-error\n"
    )
    attack = (
        "%%sandbox --cases cases --timeout 20 --no-raise-error\n"
        "import sys\n"
        "for _ in range(64):\n"
        "    sys.stdout.write('\\x01\\n' * 32768)\n"
        "    sys.stderr.write('\"' * 65536)\n"
        "sys.exit(1)\n"
    )
    notebook = _run(
        tmp_path,
        "cases = [{'name': f'c{n}', 'stdin': '', 'expected': '1'} for n in range(10)]",
        attack,
    )
    assert notebook is not None
    size = os.path.getsize(tmp_path / "run" / "probe.ipynb")
    # 48 KiB per case, and a little for the summary.
    assert size < 10 * 48 * 1024 + 64 * 1024, size


@pytest.fixture(scope="module")
def service(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    started = Service(tmp_path_factory.mktemp("service"), max_timeout=30.0, pool_size=0).start()
    yield started
    started.stop()
    assert wait_for(lambda: started.containers(engine) == [], 10), "the service left containers"


def test_through_the_service_a_deep_value_gets_a_result_and_an_audit_line(
    service: Service,
) -> None:
    backend = ServiceBackend(service.url, "tok-alice")
    result = run(DEEP, limits=LIMITS, returns="x", backend=backend)
    assert result.ok and not result.returned
    assert any("nests deeper than 100 levels" in note for note in result.notes)
    record = json.loads(service.audit.read_text().splitlines()[-1])
    assert record["user"] == "alice" and record["status"] == "ok"


def test_through_the_service_a_flood_sends_a_bounded_response(service: Service) -> None:
    code = FLOOD + (
        "import sys\nfor _ in range(64):\n"
        "    sys.stdout.write('\\x01' * 65536)\n    sys.stderr.write('\\x02' * 65536)\n"
    )
    body = request_to_json(RunRequest(code=code.encode(), limits=LIMITS.run))
    with requests.post(
        f"{service.url}/api/runs", json=body, headers=auth("tok-alice"), stream=True, timeout=60
    ) as response:
        sent = b"".join(response.iter_content(65536))
    # 18 times the output cap and 64 KiB of text, the 100 one-byte files and the notes.
    assert len(sent) <= 18 * MIB + 64 * 1024, len(sent)
    result = json.loads(sent.splitlines()[-1])["result"]
    assert result["status"] == "ok" and len(result["notes"]) == MAX_NOTES + 1
    record = json.loads(service.audit.read_text().splitlines()[-1])
    assert record["status"] == "ok"
