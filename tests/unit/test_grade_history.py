"""The runs of codedock grade kept beside a results file, and what changed between two."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codedock_magic.cli import main
from codedock_magic.gradebook.history import History, compare, describe


def results(path: Path, cases_sha: str, students: dict[str, tuple[str, dict[str, str]]]) -> None:
    """A JSON record as codedock grade writes it (the fields the history reads)."""
    path.write_text(
        json.dumps(
            {
                "cases_sha256": cases_sha,
                "submissions": {
                    name: {
                        "submission_sha256": code,
                        "cases": [
                            {"name": case, "verdict": v, "points": v == "passed", "max_points": 1}
                            for case, v in verdicts.items()
                        ],
                    }
                    for name, (code, verdicts) in students.items()
                },
            }
        )
    )


def test_each_run_is_kept_and_says_why_a_student_changed(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    history = History(out)
    passed, wrong = "passed", "wrong answer"
    results(out, "c1", {"ann": ("a1", {"s": passed, "b": wrong}), "ben": ("b1", {"s": passed})})
    first, changes = history.keep("k1")
    assert first.id == 1 and changes == []
    # Ann fixed her code; the cases stayed.
    results(out, "c1", {"ann": ("a2", {"s": passed, "b": passed}), "ben": ("b1", {"s": passed})})
    _, changes = history.keep("k1")
    assert [describe(c) for c in changes] == [
        "ann: 1/2 -> 2/2 (submission changed); b: wrong answer -> passed"
    ]
    # The checker changed, and Ben's case now fails.
    results(out, "c1", {"ann": ("a2", {"s": passed, "b": passed}), "ben": ("b1", {"s": wrong})})
    third, changes = history.keep("k2")
    assert [(c.student, c.why, c.flipped) for c in changes] == [
        ("ben", ["checker changed"], [("s", passed, wrong)])
    ]
    # Against run 1: both changed, each for its own reasons; a new case counts as cases.
    results(out, "c2", {"ann": ("a2", {"s": passed, "b": passed, "n": wrong})})
    fourth, _ = history.keep("k2", against=history.run(1))
    by = {c.student: c for c in compare(history.run(1), fourth)}
    assert by["ann"].why == ["cases changed", "checker changed", "submission changed"]
    assert ("n", "-", wrong) in by["ann"].flipped
    assert by["ben"].why == ["not graded now"]
    stored = json.loads((tmp_path / "results.json.history" / "run-0004.json").read_text())
    assert stored["compared_with"] == 1
    assert {c["student"] for c in stored["changes"]} == {"ann", "ben"}
    assert [r.id for r in history.runs()] == [1, 2, 3, 4]
    assert third.students["ben"].verdicts == {"s": wrong}


def test_the_history_command_lists_and_compares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    results(out, "c1", {"ann": ("a1", {"s": "passed"})})
    History(out).keep("k1")
    results(out, "c1", {"ann": ("a1", {"s": "timeout"})})
    History(out).keep("k1")
    assert main(["gradebook", "history", str(out)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in listed] == [["run", "1"], ["run", "2"]]
    assert main(["gradebook", "history", str(out), "--compare", "1", "2"]) == 0
    said = capsys.readouterr().out
    assert "ann: 1/1 -> 0/1 (nothing changed: flaky?); s: passed -> timeout" in said
    assert main(["gradebook", "history", str(out), "--compare", "7"]) == 1
    assert "a run kept in" in capsys.readouterr().err
