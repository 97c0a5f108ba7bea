"""The gradebook's regrade tables, per-case points, teachers' attempts, and the
migration that brought them, on a real SQLite file."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine

from codedock_magic.cli import main
from codedock_magic.core.errors import EngineError
from codedock_magic.core.result import CaseEnding, RunResult, RunStatus, cases_not_run
from codedock_magic.gradebook import Attempt, Gradebook, code_sha256
from codedock_magic.gradebook.store import CaseScore, Regrade, Regraded

from .fakes import run_result

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
SCORES = (CaseScore("small", 1.0, 1.0, False), CaseScore("secret", 0.0, 2.0, True))


def attempt(user: str, minutes: int = 0, *, teacher: bool = False) -> Attempt:
    code = f"print({minutes})  # {user}\n"
    return Attempt(
        user=user,
        assignment="hw",
        at=T0 + dt.timedelta(minutes=minutes),
        code=code,
        code_sha256=code_sha256(code),
        score=1.0,
        max_score=3.0,
        verdicts={"small": "passed", "secret": "wrong answer"},
        late=False,
        cases=SCORES,
        teacher=teacher,
        cases_sha256="c" * 64,
        checkers_sha256="k" * 64,
    )


def test_an_attempt_recorded_before_the_migration_reads_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "book.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config = AlembicConfig()
        config.set_main_option(
            "script_location",
            str(resources.files("codedock_magic.gradebook") / "migrations"),
        )
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO gradebook_attempts (user, assignment, at, code, code_sha256, score, "
        "max_score, verdicts, late) VALUES ('ann', 'hw', '2026-03-01 12:00:00', 'x', ?, 1, 3, "
        '\'{"small": "passed"}\', 0)',
        (code_sha256("x"),),
    )
    db.commit()
    db.close()
    with Gradebook(f"sqlite:///{path}") as book:
        (old,) = book.all_attempts("hw")
        assert (old.user, old.score, old.verdicts) == ("ann", 1.0, {"small": "passed"})
        assert (old.cases, old.teacher, old.cases_sha256) == ((), False, None)
        book.record(attempt("ann", 5))
        assert [a.cases for a in book.all_attempts("hw")] == [(), SCORES]


def test_teachers_attempts_are_kept_but_counted_nowhere(tmp_path: Path) -> None:
    with Gradebook(f"sqlite:///{tmp_path / 'book.sqlite'}") as book:
        book.record(attempt("bob", 1, teacher=True))
        book.record(attempt("ann", 2))
        assert [a.user for a in book.all_attempts("hw")] == ["ann"]
        assert [a.user for a in book.all_attempts("hw", teachers=True)] == ["bob", "ann"]
        assert book.count_since("bob", "hw", T0) == 0
        assert book.last_at("bob", "hw") is None
        (kept,) = book.attempts("bob", "hw")
        assert kept.teacher and kept.cases == SCORES


def _regrade(attempt_id: int, score: float, why: tuple[str, ...]) -> Regrade:
    result = Regraded(
        user="ann",
        attempt_id=attempt_id,
        score=score,
        max_score=3.0,
        verdicts={"small": "passed", "secret": "passed" if score == 3 else "wrong answer"},
        cases=(SCORES[0], CaseScore("secret", score - 1, 2.0, True)),
        old_score=1.0,
        old_max_score=3.0,
        flipped=(("secret", "wrong answer", "passed"),) if why else (),
        why=why,
    )
    return Regrade(
        assignment="hw",
        at=T0,
        policy="best",
        cases_sha256="d" * 64,
        checkers_sha256="k" * 64,
        compared_with=0,
        results=(result,),
    )


def test_regrades_are_numbered_kept_and_the_newest_stands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    with Gradebook(url) as book:
        key = book.record(attempt("ann"))
        first = book.record_regrade(_regrade(key, 3.0, ("cases changed",)))
        second = book.record_regrade(_regrade(key, 1.0, ()))
        assert (first.number, second.number) == (1, 2)
    with Gradebook(url) as book:
        kept = book.regrades("hw")
        assert [r.number for r in kept] == [1, 2]
        assert kept[0].results[0].flipped == (("secret", "wrong answer", "passed"),)
        assert kept[0].results[0].why == ("cases changed",)
        assert book.newest_results("hw")[key].score == 1.0
        # The recorded attempt is as it was.
        assert book.all_attempts("hw")[0].score == 1.0
        # A later regrade that re-ran another attempt (another policy) leaves this
        # one as recorded: regrade 2 ran against cases that may since have changed.
        other = book.record(attempt("ann", 5))
        book.record_regrade(_regrade(other, 3.0, ("cases changed",)))
        assert set(book.newest_results("hw")) == {other}


def test_exports_carry_each_cases_points_and_the_newest_regrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    with Gradebook(url) as book:
        key = book.record(attempt("ann"))
        book.record(attempt("bob", 3, teacher=True))
    base = ["gradebook", "export", "--assignment", "hw", "--db-url", url, "--out"]
    assert main([*base, str(tmp_path / "gs"), "--format", "gradescope"]) == 0
    tests = json.loads((tmp_path / "gs" / "ann" / "results.json").read_text())["tests"]
    assert [(t["name"], t["score"], t["max_score"]) for t in tests] == [
        ("small", 1.0, 1.0),
        ("secret", 0.0, 2.0),
    ]
    assert tests[1]["visibility"] == "after_published" and not tests[1].get("output")
    assert not (tmp_path / "gs" / "bob").exists()
    assert main([*base, str(tmp_path / "pl"), "--format", "prairielearn"]) == 0
    tests = json.loads((tmp_path / "pl" / "ann" / "results.json").read_text())["tests"]
    assert [(t["points"], t["max_points"]) for t in tests] == [(1.0, 1.0), (0.0, 2.0)]
    assert main([*base, str(tmp_path / "a.csv")]) == 0
    (row,) = csv.DictReader((tmp_path / "a.csv").open())
    assert json.loads(row["case_points"]) == {"small": [1.0, 1.0], "secret": [0.0, 2.0]}
    assert row["regraded"] == "False"
    with Gradebook(url) as book:
        book.record_regrade(_regrade(key, 3.0, ("cases changed",)))
    assert main([*base, str(tmp_path / "b.json")]) == 0
    (ann,) = json.loads((tmp_path / "b.json").read_text())["students"]
    assert (ann["score"], ann["regraded"], ann["attempts"]) == (3.0, True, 1)
    assert ann["case_points"]["secret"] == [2.0, 2.0]
    assert main([*base, str(tmp_path / "c.csv"), "--format", "canvas"]) == 0
    assert ["ann", "", "", "ann", "", "3"] in list(csv.reader((tmp_path / "c.csv").open()))


def test_a_regrade_runs_with_the_services_defaults_and_image(tmp_path: Path) -> None:
    # The attempts ran with the service's defaults; a regrade with the package's
    # would flip verdicts (a timeout, a missing library) that nothing changed.
    from codedock_magic.service.app import run_defaults_from_config

    config = tmp_path / "codedock_service_config.py"
    config.write_text(
        "c.SandboxService.default_timeout = 7\n"
        'c.SandboxService.default_memory = "96m"\n'
        'c.SandboxService.allowed_images = ["codedock/pybuntu-sci:latest"]\n'
        'c.SandboxService.default_image = "codedock/pybuntu-sci:latest"\n'
    )
    defaults, image = run_defaults_from_config(str(config))
    assert defaults.timeout == 7 and defaults.memory == 96 * 1024 * 1024
    assert image == "codedock/pybuntu-sci:latest"


def test_regrades_finishing_at_once_each_get_their_own_number(tmp_path: Path) -> None:
    # Regrades of one assignment run for minutes and may finish together: the
    # loser of the race for a number must take the next, not lose its results.
    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    with Gradebook(url) as book:
        key = book.record(attempt("ann"))
    writers, each = 6, 3
    start = threading.Barrier(writers, timeout=60)

    def write() -> list[int]:
        with Gradebook(url) as book:
            start.wait()
            return [book.record_regrade(_regrade(key, 3.0, ())).number for _ in range(each)]

    with ThreadPoolExecutor(writers) as pool:
        numbers = [n for got in pool.map(lambda _: write(), range(writers)) for n in got]
    assert sorted(numbers) == list(range(1, writers * each + 1))
    with Gradebook(url) as book:
        assert [r.number for r in book.regrades("hw")] == sorted(numbers)
        assert all(len(r.results) == 1 for r in book.regrades("hw"))


def test_an_attempt_keeps_the_limits_and_image_it_ran_with(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    ran = {"timeout": 4.0, "memory": 100 * 1024 * 1024}
    with Gradebook(url) as book:
        book.record(
            Attempt(**{**attempt("ann").__dict__, "defaults": ran, "image": "codedock/x:1"})
        )
        book.record(attempt("bob", 1))
    with Gradebook(url) as book:
        ann, bob = book.all_attempts("hw")
    assert (ann.defaults, ann.image) == (ran, "codedock/x:1")
    assert (bob.defaults, bob.image) == (None, None)


class _FailingEngine:
    """A backend whose every run fails as a broken engine would."""

    def __init__(self) -> None:
        self.runs = 0

    def run(self, request: object, **_: object) -> object:
        self.runs += 1
        raise EngineError("the engine answered 500; look at its log")


def test_an_engine_failure_stops_the_regrade_keeps_nothing_and_runs_no_more(
    tmp_path: Path,
) -> None:
    # No student's doing: a regrade of errors would tell every one they lost.
    from codedock_magic.gradebook.regrade import regrade
    from codedock_magic.grading.assignments import load_assignment

    folder = tmp_path / "hw"
    folder.mkdir()
    (folder / "cases.json").write_text(
        json.dumps({"cases": [{"name": "small", "stdin": "", "expected": "1\n"}]})
    )
    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    backend = _FailingEngine()
    with Gradebook(url) as book:
        for minutes, user in enumerate(("ann", "bob", "cat", "dan")):
            book.record(attempt(user, minutes))
        with pytest.raises(EngineError, match="answered 500"):
            regrade(book, load_assignment(folder), jobs=1, backend=backend)  # type: ignore[arg-type]
        assert book.regrades("hw") == []
    assert backend.runs == 1


class _Sandbox:
    """A backend whose every case prints ``printed``; or whose sandbox breaks first."""

    def __init__(self, printed: str = "", *, broken: bool = False) -> None:
        self.printed, self.broken, self.runs = printed, broken, 0

    def run(self, request: Any, **_: object) -> RunResult:
        self.runs += 1
        given = [(case.timeout, case.memory) for case in request.cases]
        ends = (
            cases_not_run(given, "not run: the sandbox could not be made clean")
            if self.broken
            else tuple(
                CaseEnding(
                    status=RunStatus.OK,
                    exit_code=0,
                    signal=None,
                    stdout=self.printed,
                    stderr="",
                    duration=0.01,
                    truncated=False,
                    timeout=timeout,
                    memory=memory,
                )
                for timeout, memory in given
            )
        )
        return run_result(cases=ends)


def _one_case(tmp_path: Path) -> Path:
    folder = tmp_path / "hw"
    folder.mkdir()
    case = {"name": "small", "stdin": "", "compare": "checker", "checker": "checkers.py:judge"}
    (folder / "cases.json").write_text(json.dumps({"cases": [case]}))
    (folder / "checkers.py").write_text(
        "def judge(output, case):\n"
        '    if output.strip() == "x":\n'
        '        raise ValueError("cannot read x")\n'
        '    return output.strip() == "1"\n'
    )
    return folder


def test_a_broken_checker_leaves_its_student_not_judged_standing_as_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from codedock_magic.gradebook.regrade import regrade
    from codedock_magic.grading.assignments import load_assignment

    url = f"sqlite:///{tmp_path / 'book.sqlite'}"
    with Gradebook(url) as book:
        book.record(attempt("ann"))
        done = regrade(book, load_assignment(_one_case(tmp_path)), backend=_Sandbox("x\n"))  # type: ignore[arg-type]
        (ann,) = done.results
        assert not ann.judged and ann.flipped == ()
        (why,) = ann.why
        assert why.startswith("the checker of case 'small' raised ValueError: cannot read x"), why
        # The export keeps what the service gave ann, not the failed check's 0.
        assert book.newest_results("hw") == {}
    history = ["gradebook", "history", "--assignment", "hw", "--db-url", url, "--compare", "0"]
    assert main(history) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "the recorded attempts -> regrade 1: 0 changed, 1 not judged", out
    assert out[1].startswith("  ann: not judged in regrade 1 (the checker of case 'small'"), out
    assert len(out) == 2, out


def test_a_sandbox_that_breaks_twice_is_judged_as_the_service_judged_it(tmp_path: Path) -> None:
    # A program that will not let its sandbox be cleaned must not escape a regrade.
    from codedock_magic.gradebook.regrade import regrade
    from codedock_magic.grading.assignments import load_assignment

    backend = _Sandbox(broken=True)
    with Gradebook(f"sqlite:///{tmp_path / 'book.sqlite'}") as book:
        key = book.record(attempt("ann"))
        done = regrade(book, load_assignment(_one_case(tmp_path)), backend=backend)  # type: ignore[arg-type]
        (ann,) = done.results
        assert ann.judged and (ann.score, ann.verdicts) == (0.0, {"small": "killed"})
        assert set(book.newest_results("hw")) == {key}
    assert backend.runs == 2
