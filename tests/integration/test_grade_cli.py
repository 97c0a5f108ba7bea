"""``codedock grade`` on the shipped class and on bad input, against the real engine."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from codedock_magic import DockerEngine

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "notebooks" / "grading"

EXPECTED = {
    "ada": "10",
    "bob": "1",
    "cy": "8",
    "dee": "4",
    "eve": "7",
    "fox": "10",
    "gus": "10",
    "hal": "10",
    "ivy": "0",
    "jo": "0",
    "kit": "0",
}


def grade(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codedock_magic", "grade", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_shipped_class_is_graded_then_resumed(engine: DockerEngine, tmp_path: Path) -> None:
    submissions = tmp_path / "class"
    shutil.copytree(SHIPPED / "submissions", submissions)
    out = tmp_path / "results.csv"
    cases = str(SHIPPED / "cases.yaml")
    done = grade(str(submissions), "--cases", cases, "--out", str(out), "--jobs", "3")
    assert done.returncode == 0, done.stderr
    assert "graded 11, already graded 0, not graded 0" in done.stdout
    assert "11/11" in done.stderr  # the progress bar
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert {name: row["score"] for name, row in rows.items()} == EXPECTED
    assert rows["cy"]["many numbers"] == "timeout"
    assert rows["eve"]["stays small"] == "memory limit"
    assert rows["ivy"]["small"] == "error" and rows["jo"]["small"] == "wrong answer"
    assert all(row["max_score"] == "10" for row in rows.values())

    again = grade(str(submissions), "--cases", cases, "--out", str(out))
    assert "graded 0, already graded 11" in again.stdout
    (submissions / "bob.py").write_text("print(sum(int(w) for w in input().split()))\n")
    fixed = grade(str(submissions), "--cases", cases, "--out", str(out))
    assert "graded 1, already graded 10" in fixed.stdout
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert rows["bob"]["score"] == "10" and len(rows) == 11


def test_json_holds_every_check_result_and_bad_input_gets_a_verdict(
    engine: DockerEngine, tmp_path: Path
) -> None:
    submissions = tmp_path / "class"
    submissions.mkdir()
    (submissions / "ok.py").write_text("print(input()[::-1])\n")
    (submissions / "huge.py").write_text("#" * (2 * 1024 * 1024))
    (submissions / "folder").mkdir()
    (submissions / "junk.py").write_bytes(os.urandom(4096))
    cases = tmp_path / "cases.json"
    cases.write_text(
        json.dumps(
            {
                "cases": [
                    {"name": "abc", "stdin": "abc\n", "expected": "cba"},
                    {"name": "secret", "stdin": "xy\n", "expected": "yx", "hidden": True},
                ]
            }
        )
    )
    out = tmp_path / "out" / "results.json"
    done = grade(str(submissions), "--cases", str(cases), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    results = data["submissions"]
    assert sorted(results) == ["folder", "huge", "junk", "ok"]
    assert results["ok"]["summary"] == "2/2 passed · 2/2 points"
    # The teacher's record keeps what a hidden case printed.
    assert results["ok"]["cases"][1]["stdout"] == "yx\n"
    assert results["huge"]["cases"][0]["verdict"] == "error"
    assert "over 1m" in results["huge"]["note"]
    assert "no main.py" in results["folder"]["cases"][0]["detail"]
    assert results["junk"]["cases"][0]["verdict"] == "error"


def test_bad_cases_and_options_are_one_line(engine: DockerEngine, tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "a.py").write_text("print(1)")
    bad = tmp_path / "cases.yaml"
    bad.write_text("- {name: one, expected: '1', points: -3}\n")
    done = grade(str(tmp_path / "s"), "--cases", str(bad), "--out", str(tmp_path / "r.csv"))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "codedock: case 'one' (#1): points -3 is not a number of points, 0 or more"
    )
    bad.write_text("- {name: one, expected: '1'}\n")
    done = grade(str(tmp_path / "s"), "--cases", str(bad), "--out", str(tmp_path / "r.txt"))
    assert done.returncode == 1 and "--out" in done.stderr and "Traceback" not in done.stderr
    done = grade(
        str(tmp_path / "s"),
        "--cases",
        str(bad),
        "--out",
        str(tmp_path / "r.csv"),
        "--timeout",
        "soon",
    )
    assert done.returncode == 1 and "timeout 'soon'" in done.stderr


def test_an_interrupted_batch_keeps_what_it_graded_and_resumes(
    engine: DockerEngine, tmp_path: Path
) -> None:
    submissions = tmp_path / "class"
    submissions.mkdir()
    for i in range(12):
        (submissions / f"s{i:02}.py").write_text("import time\ntime.sleep(0.4)\nprint(input())\n")
    cases = tmp_path / "cases.yaml"
    cases.write_text("- {name: a, stdin: 'x', expected: x}\n- {name: b, stdin: 'y', expected: y}\n")
    out = tmp_path / "r.csv"
    command = [sys.executable, "-m", "codedock_magic", "grade", str(submissions)]
    command += ["--cases", str(cases), "--out", str(out), "--jobs", "2", "--quiet"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.exists() and out.read_text().count("\n") >= 3):
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert "run the same command again" in stderr
    kept = list(csv.DictReader(out.open()))
    assert 2 <= len(kept) < 12 and all(row["score"] == "2" for row in kept)
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"graded {12 - len(kept)}, already graded {len(kept)}" in done.stdout
    assert len(list(csv.DictReader(out.open()))) == 12
