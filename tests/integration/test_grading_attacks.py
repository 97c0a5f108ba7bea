"""A hostile student against grading, on the real engine: a class folder built to stop, fool
or read ``codedock grade``, and a hidden case whose secrets must not reach the student."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from jupyter_client.manager import KernelManager

from codedock_magic import DockerEngine, Limits, check
from codedock_magic.grading.bounded import JUDGE_SECONDS
from codedock_magic.jupyter.checkrender import check_html, check_text
from codedock_magic.jupyter.checkviews import check_metadata

from .kernelhelp import execute

FORMULA = ("=", "+", "-", "@", "\t", "\r")
# An honest output matches at once; forty a's and no b backtrack for hours in `re`.
CASES = [
    {"name": "echo", "stdin": "hi\n", "expected": "hi"},
    {"name": "pattern", "stdin": "", "expected": "(a+)+b", "compare": "regex"},
]
HONEST = "import sys\nsys.stdout.write(sys.stdin.read() or 'aaab')\n"
HYPERLINK = '=HYPERLINK("http:\\\\evil.example","click")'


def grade(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "codedock_magic", "grade", *args, "--quiet", "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_a_hostile_class_cannot_stop_fool_or_read_the_batch(
    engine: DockerEngine, tmp_path: Path
) -> None:
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "solution.py").write_text("print('TEACHER-SECRET')\n")
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "ada.py").write_text(HONEST)
    (folder / f"{HYPERLINK}.py").write_text(HONEST)
    (folder / "thief.py").symlink_to(teacher / "solution.py")
    (folder / "burglar").mkdir()
    (folder / "burglar" / "main.py").symlink_to(teacher / "solution.py")
    (folder / "nested.ipynb").write_text("[" * 500_000)
    (folder / "junk.ipynb").write_bytes(os.urandom(4096))
    (folder / "essay.docx").write_bytes(os.urandom(512))
    (folder / "slow").mkdir()
    (folder / "slow" / "main.py").write_text(
        "import sys\nsys.stdout.write(sys.stdin.read() or 'a' * 40)\n"
    )
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps(CASES))
    out = tmp_path / "results.csv"
    home = tmp_path / "config"
    started = time.monotonic()
    done = grade(home, str(folder), "--cases", str(cases), "--out", str(out))
    took = time.monotonic() - started
    # The pattern that backtracks was stopped: one student not graded, the batch went on.
    assert done.returncode == 1, done.stderr
    assert "graded 7, already graded 0, not graded 1" in done.stdout
    assert "not graded: slow: the checker of case 'pattern' raised a timeout" in done.stderr
    assert f"ran past {JUDGE_SECONDS:g} s" in done.stderr and took < 120
    text = out.open(newline="").read()
    assert "TEACHER-SECRET" not in text
    table = list(csv.reader(text.splitlines()))
    for row in table:
        for cell in row:
            assert not cell.startswith(FORMULA), cell
    rows = {row["student"]: row for row in csv.DictReader(text.splitlines())}
    assert sorted(rows) == sorted(
        ["ada", "'" + HYPERLINK, "thief", "burglar", "nested", "junk", "essay.docx"]
    )
    assert rows["ada"]["score"] == rows["'" + HYPERLINK]["score"] == "2"
    for name, why in {
        "thief": "thief.py is a symlink leading out of the submissions folder",
        "burglar": "burglar/main.py is a symlink leading out of the submissions folder",
        "nested": "not a readable notebook (RecursionError)",
        "junk": "not a readable notebook",
        "essay.docx": "not a submission",
    }.items():
        assert why in rows[name]["note"], rows[name]
        assert rows[name]["echo"] == rows[name]["pattern"] == "error" and rows[name]["score"] == "0"

    # Someone who can write the results file: a forged row, a tampered one, a broken one.
    code = (folder / "slow" / "main.py").read_bytes()
    digest = rows["ada"]["cases_sha256"]
    forged = ["slow", "2", "2", "2", "2", "passed", "passed", "", sha(code), digest]
    lines = text.splitlines()
    lines.append(",".join([*forged, rows["ada"]["signature"]]))
    thief = next(i for i, line in enumerate(lines) if line.startswith("thief,"))
    lines[thief] = lines[thief].replace(",0,2,0,2,error,error,", ",2,2,2,2,passed,passed,")
    lines.append("mallory,2,2")
    out.write_text("\r\n".join(lines) + "\r\n")
    again = grade(home, str(folder), "--cases", str(cases), "--out", str(out))
    assert again.returncode == 1, again.stderr
    # thief is graded again; slow's forged pass is not taken, so slow is checked again too.
    assert "graded 1, already graded 6, not graded 1" in again.stdout
    assert "their rows could not be trusted" in again.stderr
    for name in ("'thief'", "'slow'", "'mallory'"):
        assert name in again.stderr
    rows = {row["student"]: row for row in csv.DictReader(out.open(newline=""))}
    assert rows["thief"]["score"] == "0" and "symlink" in rows["thief"]["note"]
    assert "slow" not in rows and "mallory" not in rows


def sha(code: bytes) -> str:
    return hashlib.sha256(code).hexdigest()


SECRET_KEEPER = r"""
import sys, time
data = sys.stdin.read()
if data.startswith("hidden"):
    time.sleep(0.6)
    print("stdout-" + data[6:])
    print("stderr-" + data[6:], file=sys.stderr)
    raise SystemExit(93)
print(data.strip())
"""


def test_a_hidden_case_keeps_its_secrets_from_the_student(engine: DockerEngine) -> None:
    cases = [
        {"name": "shown", "stdin": "7", "expected": "7"},
        {"name": "secret", "stdin": "hidden-in-31337", "expected": "x", "hidden": True},
    ]
    result = check(SECRET_KEEPER, cases, limits=Limits(timeout=10))
    secret = result.cases[1]
    assert (secret.verdict.value, secret.points, secret.max_points) == ("error", 0, 1)
    ending = result.run.cases[1]
    assert ending.exit_code is None and ending.stdout == ending.stderr == ""
    assert ending.duration == 0 and secret.duration == 0
    student_sees = "\n".join(
        [
            repr(result),
            result.to_json(),
            check_html(result),
            check_text(result),
            json.dumps(check_metadata(result)),
        ]
    )
    for leak in ("31337", "exit 93", "stdout-", "stderr-"):
        assert leak not in student_sees, leak
    assert "7" in result.cases[0].stdout

    teacher = check(SECRET_KEEPER, cases, limits=Limits(timeout=10), reveal_hidden=True)
    kept = teacher.cases[1]
    assert kept.detail == "exit 93" and "stdout--in-31337" in kept.stdout
    assert "stderr--in-31337" in kept.stderr and kept.duration >= 0.5
    assert teacher.run.cases[1].exit_code == 93
    assert "stderr--in-31337" in check_text(teacher)


KERNEL_CASES = (
    "cases = [\n"
    "    {'name': 'secret', 'stdin': 'in-4711', 'expected': 'x', 'hidden': True},\n"
    "    {'name': 'pattern', 'stdin': '', 'expected': r'(a+)+b', 'compare': 'regex'},\n"
    "]"
)


def test_a_catastrophic_pattern_in_a_real_kernel_ends_in_a_clear_line_and_the_kernel_answers(
    engine: DockerEngine,
) -> None:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        reply, _ = execute(client, f"%load_ext codedock_magic\n{KERNEL_CASES}")
        assert reply["status"] == "ok"
        started = time.monotonic()
        reply, shown = execute(
            client,
            "%%sandbox --cases cases --no-widgets\nimport sys\nprint(sys.stdin.read() or 'a' * 40)",
            timeout=120,
        )
        took = time.monotonic() - started
        assert reply["status"] == "error" and reply["ename"] == "UsageError"
        assert "the checker of case 'pattern' raised a timeout" in reply["evalue"]
        assert took < JUDGE_SECONDS + 60
        # The kernel is free at once; and the hidden case's input and output never showed.
        reply, shown2 = execute(client, "print(6 * 7)", timeout=10)
        assert reply["status"] == "ok" and "42" in shown2
        assert "wrong answer: secret" in shown and "4711" not in shown
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
