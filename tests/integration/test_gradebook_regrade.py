"""``codedock gradebook regrade`` on attempts a real ``codedock serve`` recorded, on the
real engine, with the gradebook in SQLite and in a real PostgreSQL.

Students check through the service; the teacher then changes an expected output
and regrades: the recorded attempts stay as they were, the new results are kept
beside them, each student's change is printed and stored with its reason, any
regrade compares with any earlier one, and the export takes the newest scores.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from codedock_magic import DockerEngine
from codedock_magic.gradebook import Gradebook

from .pghelp import pg_url
from .servicehelp import TOKENS, Service, auth

__all__ = ["pg_url"]  # the fixture, for db_url below

SUM = "print(sum(int(w) for w in input().split()))\n"
FIRST = "print(int(input().split()[0]))\n"
THREE = "input()\nprint(3)\n"


def _cases(small: tuple[str, str]) -> dict[str, Any]:
    return {
        "cases": [
            {"name": "small", "stdin": small[0], "expected": small[1]},
            {"name": "secret", "stdin": "40 2\n", "expected": "42\n", "hidden": True, "points": 2},
        ]
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gradebook.sqlite'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def service(engine: DockerEngine, tmp_path: Path, db_url: str) -> Iterator[Service]:
    folder = tmp_path / "assignments" / "hw"
    folder.mkdir(parents=True)
    (folder / "cases.json").write_text(json.dumps(_cases(("1 2\n", "3\n"))))
    rules = {"attempts": {"max": 3}, "reveal_to": ["teachers"], "limits": {"timeout": 2}}
    (folder / "assignment.json").write_text(json.dumps(rules))
    tokens = {**TOKENS, "tok-cat": "cat", "tok-dan": "dan"}
    started = Service(
        tmp_path,
        assignments_dir=str(tmp_path / "assignments"),
        api_tokens=tokens,
        user_groups={"bob": ["teachers"]},
        db_url=db_url,
        pool_size=0,
    ).start()
    yield started
    started.stop()


def _check(service: Service, code: str, token: str) -> dict[str, Any]:
    return _check_at(service, "hw", code, token)


def gradebook(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "codedock_magic", "gradebook", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_a_regrade_keeps_the_attempts_and_says_per_student_what_changed_and_why(
    service: Service, db_url: str, tmp_path: Path
) -> None:
    config = str(service.config)
    assert _check(service, SUM, "tok-alice")["score"] == 3
    assert _check(service, FIRST, "tok-cat")["score"] == 0
    assert _check(service, THREE, "tok-dan")["score"] == 1
    _check(service, FIRST, "tok-bob")  # a teacher's: never regraded nor exported
    with Gradebook(db_url) as book:
        before = book.all_attempts("hw", teachers=True)

    # Each case's real points, from the attempts as recorded; a hidden case shows no output.
    gradebook(
        "export",
        "--assignment",
        "hw",
        "--config",
        config,
        "--out",
        str(tmp_path / "gs"),
        "--format",
        "gradescope",
    )
    tests = json.loads((tmp_path / "gs" / "dan" / "results.json").read_text())["tests"]
    assert [(t["name"], t["score"], t["max_score"]) for t in tests] == [
        ("small", 1.0, 1.0),
        ("secret", 0.0, 2.0),
    ]
    assert tests[1]["visibility"] == "after_published" and "output" not in tests[1]
    assert sorted(p.name for p in (tmp_path / "gs").iterdir()) == ["alice", "cat", "dan"]

    # The teacher fixes the visible case's expected output: dan's printed 3 no longer fits.
    (Path(service.folder) / "assignments" / "hw" / "cases.json").write_text(
        json.dumps(_cases(("2 2\n", "4\n")))
    )
    first = gradebook("regrade", "hw", "--config", config, "--jobs", "2")
    lines = first.stdout.splitlines()
    assert lines[0] == (
        "regrade 1 of hw: 3 student(s), best attempt each; against the recorded attempts: 1 changed"
    ), first.stdout
    assert "  dan: 1/3 -> 0/3 (cases changed); small: passed -> wrong answer" in lines
    assert "  alice: 3/3 -> 3/3 (unchanged)" in lines
    assert "  cat: 0/3 -> 0/3 (unchanged)" in lines
    assert "bob" not in first.stdout

    # The attempts as recorded, and the students' counts, are untouched.
    with Gradebook(db_url) as book:
        assert book.all_attempts("hw", teachers=True) == before
        (kept,) = book.regrades("hw")
    (dan,) = [r for r in kept.results if r.user == "dan"]
    assert (dan.old_score, dan.score) == (1.0, 0.0)
    assert dan.why == ("cases changed",) and dan.flipped == (("small", "passed", "wrong answer"),)
    listed = requests.get(f"{service.url}/api/assignments", headers=auth("tok-dan"), timeout=10)
    assert listed.json()["assignments"][0]["attempts_left"] == 2

    # A second regrade with nothing changed; compared with the attempts, dan's change shows.
    second = gradebook("regrade", "hw", "--config", config)
    assert "against regrade 1: 0 changed" in second.stdout.splitlines()[0], second.stdout
    third = gradebook("regrade", "hw", "--config", config, "--compare", "0")
    assert "regrade 3 of hw" in third.stdout and "against the recorded attempts: 1 changed" in (
        third.stdout
    )
    listing = gradebook("history", "--assignment", "hw", "--config", config).stdout
    assert [line.split()[:2] for line in listing.splitlines()] == [
        ["regrade", "1"],
        ["regrade", "2"],
        ["regrade", "3"],
    ], listing
    compared = gradebook("history", "--assignment", "hw", "--config", config, "--compare", "0", "2")
    assert "the recorded attempts -> regrade 2: 1 changed" in compared.stdout, compared.stdout
    assert "dan: 1/3 -> 0/3 (cases changed); small: passed -> wrong answer" in compared.stdout
    same = gradebook("history", "--assignment", "hw", "--config", config, "--compare", "1", "2")
    assert "regrade 1 -> regrade 2: 0 changed" in same.stdout

    # The export takes the newest scores, and says which rows were regraded.
    out = tmp_path / "hw.csv"
    gradebook("export", "--assignment", "hw", "--config", config, "--out", str(out))
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert sorted(rows) == ["alice", "cat", "dan"]
    assert (rows["dan"]["score"], rows["dan"]["regraded"], rows["dan"]["attempts"]) == (
        "0.0",
        "True",
        "1",
    )
    assert json.loads(rows["dan"]["case_points"]) == {"small": [0.0, 1.0], "secret": [0.0, 2.0]}
    assert json.loads(rows["alice"]["case_points"]) == {"small": [1.0, 1.0], "secret": [2.0, 2.0]}


JUDGE = 'def judge(output, case):\n    return output.strip() in ("ok", "x")\n'
# The teacher's new checker cannot read what cat's program prints.
BROKEN = (
    "def judge(output, case):\n"
    '    if output.strip() == "x":\n'
    '        raise ValueError("cannot read x")\n'
    '    return output.strip() == "ok"\n'
)
SLOW = 'import time\ntime.sleep(2)\nprint("ok")\n'


def test_a_regrade_runs_each_attempt_as_it_ran_and_one_broken_check_loses_nothing(
    engine: DockerEngine, tmp_path: Path, db_url: str
) -> None:
    folder = tmp_path / "assignments" / "slow"
    folder.mkdir(parents=True)
    case = {"name": "one", "stdin": "", "compare": "checker", "checker": "checkers.py:judge"}
    (folder / "cases.json").write_text(json.dumps({"cases": [case]}))
    (folder / "checkers.py").write_text(JUDGE)
    # No timeout of its own: each user's tier decides it, and eve's group has more time.
    (folder / "assignment.json").write_text(json.dumps({"reveal_to": ["teachers"]}))
    service = Service(
        tmp_path,
        assignments_dir=str(tmp_path / "assignments"),
        api_tokens={**TOKENS, "tok-cat": "cat", "tok-eve": "eve"},
        user_groups={"bob": ["teachers"], "eve": ["extended"]},
        group_settings={"extended": {"default_timeout": 5}},
        default_timeout=1,
        db_url=db_url,
        pool_size=0,
    ).start()
    try:
        verdicts = {
            user: _check_at(service, "slow", code, f"tok-{user}")["cases"][0]["verdict"]
            for user, code in (("eve", SLOW), ("alice", SLOW), ("cat", 'print("x")\n'))
        }
    finally:
        service.stop()
    assert verdicts == {"eve": "passed", "alice": "timeout", "cat": "passed"}

    (folder / "checkers.py").write_text(BROKEN)
    config = str(service.config)
    done = gradebook("regrade", "slow", "--config", config).stdout.splitlines()
    assert done[0].endswith("against the recorded attempts: 0 changed, 1 not judged"), done
    # Each ran with its own tier's limits again: eve's 2 s fit her 5 s, not alice's 1 s.
    assert "  eve: 1/1 -> 1/1 (unchanged)" in done, done
    assert "  alice: 0/1 -> 0/1 (unchanged)" in done, done
    # The checker broke on cat's output alone: cat's case is an error saying why,
    # and the regrade, with everyone else's results, is kept.
    (cat,) = [line for line in done if line.startswith("  cat:")]
    assert cat.startswith("  cat: 1/1 -> not judged (") and "cannot read x" in cat, cat
    with Gradebook(db_url) as book:
        (kept,) = book.regrades("slow")
    assert {r.user: (r.verdicts["one"], r.judged) for r in kept.results} == {
        "alice": ("timeout", True),
        "cat": ("error", False),
        "eve": ("passed", True),
    }
    # A student the regrade could not judge keeps the score the service gave them.
    out = tmp_path / "slow.csv"
    gradebook("export", "--assignment", "slow", "--config", config, "--out", str(out))
    rows = {row["student"]: row for row in csv.DictReader(out.open())}
    assert (rows["cat"]["score"], rows["cat"]["regraded"]) == ("1.0", "False")
    assert (rows["eve"]["score"], rows["eve"]["regraded"]) == ("1.0", "True")

    # Two regrades at once each keep their results under their own number.
    command = [sys.executable, "-m", "codedock_magic", "gradebook", "regrade", "slow"]
    both = [
        subprocess.Popen(
            [*command, "--config", config], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].decode() for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    with Gradebook(db_url) as book:
        assert [(r.number, len(r.results)) for r in book.regrades("slow")] == [
            (1, 3),
            (2, 3),
            (3, 3),
        ]


def _check_at(service: Service, name: str, code: str, token: str) -> dict[str, Any]:
    response = requests.post(
        f"{service.url}/api/assignments/{name}/check",
        json={"code": code},
        headers=auth(token),
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
