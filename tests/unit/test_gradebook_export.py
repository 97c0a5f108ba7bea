"""codedock gradebook export: the attempt standing for each student, in every format."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest

from codedock_magic.cli import main
from codedock_magic.gradebook import Attempt, Gradebook, code_sha256
from codedock_magic.gradebook.export import choose

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def attempt(user: str, minutes: int, score: float, *, late: bool = False) -> Attempt:
    code = f"print({score})  # {user} {minutes}\n"
    return Attempt(
        user=user,
        assignment="hw3",
        at=T0 + dt.timedelta(minutes=minutes),
        code=code,
        code_sha256=code_sha256(code),
        score=score,
        max_score=3.0,
        verdicts={"small": "passed" if score else "wrong answer", "big": "timeout"},
        late=late,
    )


ATTEMPTS = [attempt("alice", 0, 1), attempt("alice", 5, 3), attempt("alice", 9, 2)]
ATTEMPTS += [attempt("bob", 1, 0), attempt("=HYPERLINK(1)", 2, 1, late=True)]


def test_best_is_the_highest_score_and_last_is_the_latest() -> None:
    assert choose(ATTEMPTS, "best")["alice"].score == 3
    assert choose(ATTEMPTS, "last")["alice"].score == 2
    tie = [attempt("carol", 0, 2), attempt("carol", 3, 2)]
    assert choose(tie, "best")["carol"].at == tie[1].at


@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    with Gradebook(url) as book:
        for one in ATTEMPTS:
            book.record(one)
    path = tmp_path / "codedock_service_config.py"
    path.write_text(f"c.SandboxService.db_url = {url!r}\nc.SandboxService.max_memory = '1g'\n")
    return path


def export(config: Path, out: Path, *extra: str) -> None:
    args = ["gradebook", "export", "--assignment", "hw3", "--out", str(out), *extra]
    assert main([*args, "--config", str(config)]) == 0


def test_csv_and_json_from_the_services_config(config: Path, tmp_path: Path) -> None:
    export(config, tmp_path / "hw3.csv")
    rows = list(csv.DictReader((tmp_path / "hw3.csv").open()))
    assert [r["student"] for r in rows] == ["'=HYPERLINK(1)", "alice", "bob"]
    alice = rows[1]
    assert (alice["score"], alice["max_score"], alice["attempts"]) == ("3.0", "3.0", "3")
    assert json.loads(alice["verdicts"]) == {"big": "timeout", "small": "passed"}
    assert rows[0]["late"] == "True"
    export(config, tmp_path / "hw3.json", "--policy", "last")
    data = json.loads((tmp_path / "hw3.json").read_text())
    alice = next(s for s in data["students"] if s["student"] == "alice")
    assert alice["score"] == 2 and alice["code"] == ATTEMPTS[2].code
    assert alice["code_sha256"] == code_sha256(alice["code"])


def test_the_grading_exports_take_the_attempts(config: Path, tmp_path: Path) -> None:
    export(config, tmp_path / "gs", "--format", "gradescope")
    result = json.loads((tmp_path / "gs" / "alice" / "results.json").read_text())
    assert result["score"] == 3
    assert {t["name"]: t["status"] for t in result["tests"]} == {
        "small": "passed",
        "big": "failed",
    }
    assert {"name", "score", "max_score", "status", "visibility"} <= set(result["tests"][0])
    export(config, tmp_path / "pl", "--format", "prairielearn")
    result = json.loads((tmp_path / "pl" / "bob" / "results.json").read_text())
    assert result["score"] == 0 and result["gradable"] is True
    export(config, tmp_path / "canvas.csv", "--format", "canvas")
    rows = list(csv.reader((tmp_path / "canvas.csv").open()))
    assert rows[0][-1] == "hw3" and rows[1][0] == "Points Possible"
    assert ["alice", "", "", "alice", "", "3"] in rows


def test_an_unknown_config_setting_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.py"
    path.write_text("c.SandboxService.db_ulr = 'sqlite://'\n")
    args = ["gradebook", "export", "--assignment", "x", "--out", str(tmp_path / "x.csv")]
    assert main([*args, "--config", str(path)]) == 1
    assert "db_ulr" in capsys.readouterr().err
