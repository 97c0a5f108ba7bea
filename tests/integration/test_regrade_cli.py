"""Regrades with ``codedock grade`` against the real engine: the old results are kept,
and each student's change is printed with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from codedock_magic import DockerEngine


def grade(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codedock_magic", "grade", "--quiet", "--jobs", "2", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )


def history(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codedock_magic", "gradebook", "history", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_regrade_keeps_the_old_results_and_says_what_changed_and_why(
    engine: DockerEngine, tmp_path: Path
) -> None:
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "ann.py").write_text("print(sum(int(w) for w in input().split()))\n")
    (folder / "ben.py").write_text("print(int(input().split()[0]) * 2)\n")
    (folder / "cat.py").write_text("print(input().upper())\n")
    (tmp_path / "checkers.py").write_text(
        "def even(output, case):\n    return output.strip().isdigit() and int(output) % 2 == 0\n"
    )
    cases = tmp_path / "cases.json"

    def write_cases(expected_small: str) -> None:
        small = {"name": "small", "stdin": "2 2\n", "expected": expected_small}
        parity = {"name": "parity", "stdin": "3 4\n", "checker": "checkers.py:even"}
        cases.write_text(json.dumps([{**small, "timeout": 5}, {**parity, "timeout": 5}]))

    write_cases("4")
    out = tmp_path / "results.json"
    first = grade(str(folder), "--cases", str(cases), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "run 1 kept in" in first.stdout

    # Ben fixes his code: only he changes, for that reason.
    (folder / "ben.py").write_text("print(sum(int(w) for w in input().split()) + 1)\n")
    second = grade(str(folder), "--cases", str(cases), "--out", str(out))
    assert "graded 1, already graded 2" in second.stdout, second.stdout + second.stderr
    assert "against run 1: 1 changed" in second.stdout
    assert "ben: 2/2 -> 1/2 (submission changed); small: passed -> wrong answer" in second.stdout

    # The checker now wants odd numbers: everyone is graded again, without --fresh.
    (tmp_path / "checkers.py").write_text(
        "def even(output, case):\n    return output.strip().isdigit() and int(output) % 2 == 1\n"
    )
    third = grade(str(folder), "--cases", str(cases), "--out", str(out))
    assert "a checker changed since run 2: grading everyone again" in third.stderr
    assert "graded 3, already graded 0" in third.stdout
    assert "ann: 1/2 -> 2/2 (checker changed); parity: wrong answer -> passed" in third.stdout
    assert "ben: 1/2 -> 0/2 (checker changed); parity: passed -> wrong answer" in third.stdout
    assert "cat:" not in third.stdout

    # The cases change: the new expected output flips the small case for all but Ben.
    write_cases("5")
    fourth = grade(str(folder), "--cases", str(cases), "--out", str(out))
    assert "the cases changed since run 3" in fourth.stderr
    assert "ann: 2/2 -> 1/2 (cases changed); small: passed -> wrong answer" in fourth.stdout
    assert "ben: 0/2 -> 1/2 (cases changed); small: wrong answer -> passed" in fourth.stdout

    # Every run is kept, and any two compare.
    listed = history(str(out))
    assert [line.split()[1] for line in listed.stdout.splitlines()] == ["1", "2", "3", "4"]
    compared = history(str(out), "--compare", "1", "4")
    assert "run 1 -> run 4: 2 changed" in compared.stdout
    assert (
        "ben: 2/2 -> 1/2 (cases changed, checker changed, submission changed); "
        "parity: passed -> wrong answer"
    ) in compared.stdout
    again = grade(str(folder), "--cases", str(cases), "--out", str(out), "--compare", "1")
    assert "run 5 kept in" in again.stdout and "against run 1: 2 changed" in again.stdout
    kept = json.loads((tmp_path / "results.json.history" / "run-0001.json").read_text())
    assert kept["students"]["ann"]["verdicts"] == {"small": "passed", "parity": "wrong answer"}
