"""Grading's pure logic: cases, their files, comparison, diffs, verdicts, records, submissions."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic import (
    Case,
    CaseEnding,
    CaseError,
    CheckerError,
    Limits,
    RunResult,
    RunStatus,
    Verdict,
    check,
    load_cases,
)
from codedock_magic.core.request import RunRequest
from codedock_magic.errors import InvalidValueError
from codedock_magic.grading.batch import Records
from codedock_magic.grading.check import not_run, verdict_of
from codedock_magic.grading.compare import judge, normalise_whitespace, visible_diff
from codedock_magic.grading.isolation import sandbox_groups
from codedock_magic.grading.submissions import MAX_CODE, find_submissions
from codedock_magic.remote.wire import (
    case_from_json,
    case_to_json,
    cases_from_json,
    run_to_json,
)

from .fakes import run_result


def test_cases_come_from_dicts_objects_cases_and_both_file_kinds(tmp_path: Path) -> None:
    class Obj:
        name = "obj"
        stdin = "1\n"
        expected = "1"

    cases = load_cases([{"name": "d", "stdin": "x", "expected": "y"}, Obj(), Case("c", "", "z")])
    assert [c.name for c in cases] == ["d", "obj", "c"]
    assert cases[0].compare == "whitespace" and cases[0].points == 1.0 and not cases[0].hidden
    (tmp_path / "checks.py").write_text("def odd(out, case):\n    return int(out) % 2 == 1\n")
    (tmp_path / "c.yaml").write_text(
        "cases:\n"
        "  - {name: a, stdin: '1\\n', expected: '1', memory: 64m, timeout: 2, hidden: true}\n"
        "  - {name: b, stdin: '3', checker: checks.py:odd, points: 2}\n"
    )
    loaded = load_cases(tmp_path / "c.yaml")
    assert loaded[0].memory == 64 * 1024**2 and loaded[0].timeout == 2.0 and loaded[0].hidden
    assert loaded[1].compare == "checker" and judge(loaded[1], "3\n") == (1.0, "")
    (tmp_path / "c.json").write_text(json.dumps([{"name": "j", "expected": "1"}]))
    assert load_cases(str(tmp_path / "c.json"))[0].name == "j"


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"name": "p", "expected": "1", "points": -1}, "points"),
        ({"name": "p", "expected": "1", "points": "two"}, "points"),
        ({"name": "p", "expected": "1", "colour": "red"}, "colour"),
        ({"name": "p", "expected": "1", "compare": "fuzzy"}, "compare"),
        ({"name": "p", "expected": "(", "compare": "regex"}, "expected"),
        ({"name": "p"}, "expected"),
        ({"name": "p", "expected": 1}, "expected"),
        ({"name": "p", "expected": "1", "memory": "lots"}, "memory"),
        ({"name": "p", "expected": "1", "memory": "1m"}, "memory"),
        ({"name": "p", "expected": "1", "timeout": 0}, "timeout"),
        ({"name": "p", "expected": "1", "hidden": "yes"}, "hidden"),
        ({"name": "p", "expected": "1", "stdin": 5}, "stdin"),
        ({"name": "p", "compare": "checker", "checker": "nofile"}, "checker"),
        ({"name": "p", "compare": "checker", "checker": "missing.py:f"}, "checker"),
        ({"name": "", "expected": "1"}, "name"),
    ],
)
def test_each_bad_field_is_refused_naming_the_case_and_the_field(
    item: dict[str, Any], field: str
) -> None:
    with pytest.raises(CaseError) as caught:
        load_cases([{"name": "fine", "expected": ""}, item])
    assert caught.value.field == field
    assert "#2" in str(caught.value) and field in str(caught.value)


def test_duplicate_names_empty_lists_and_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="unique"):
        load_cases([{"name": "a", "expected": ""}, {"name": "a", "expected": ""}])
    with pytest.raises(InvalidValueError, match="at least one"):
        load_cases([])
    with pytest.raises(InvalidValueError, match="a list of cases"):
        load_cases({"name": "a"})
    (tmp_path / "bad.yaml").write_text("cases: [\n")
    with pytest.raises(InvalidValueError, match="valid YAML"):
        load_cases(tmp_path / "bad.yaml")
    with pytest.raises(InvalidValueError, match=r"\.json, \.yaml"):
        load_cases(tmp_path / "cases.txt")


@pytest.mark.parametrize(
    ("compare", "expected", "output", "fraction"),
    [
        ("exact", "7\n", "7\n", 1.0),
        ("exact", "7\n", "7", 0.0),
        ("whitespace", "7\n", "7   \n\n\n", 1.0),
        ("whitespace", "a b\n", "a  b\n", 0.0),
        ("whitespace", "1\n2\n", "1\r\n2\r\n", 1.0),
        ("numeric", "0.3333 x", "0.33330001 x\n", 1.0),
        ("numeric", "0.3333", "0.34", 0.0),
        ("numeric", "1 2", "1", 0.0),
        ("numeric", "nan", "nan", 1.0),
        ("regex", r"\d+ apples", "12 apples  \n", 1.0),
        ("regex", r"\d+", "12 apples", 0.0),
    ],
)
def test_compare_modes(compare: str, expected: str, output: str, fraction: float) -> None:
    case = Case("c", expected=expected, compare=compare, tolerance=1e-6)
    assert judge(case, output) == (fraction, "")


def test_checkers_give_fractions_and_messages_and_their_faults_are_loud() -> None:
    def half(out: str, case: Case) -> tuple[float, str]:
        return 0.5, "close"

    assert judge(Case("c", checker=half, compare="checker"), "x") == (0.5, "close")

    def broken(out: str, case: Case) -> bool:
        raise ValueError("oops")

    with pytest.raises(CheckerError, match="ValueError: oops"):
        judge(Case("c", checker=broken, compare="checker"), "x")
    with pytest.raises(CheckerError, match="returned 'yes'"):
        judge(Case("c", checker=lambda out, case: "yes", compare="checker"), "x")  # type: ignore[arg-type,return-value]


def test_the_diff_makes_whitespace_visible_and_stays_short() -> None:
    diff = visible_diff("6\n", "6  \n\tx")
    assert "-6" in diff and "+6··" in diff and "+→x⌁" in diff
    huge = visible_diff("", "x\n" * 100_000)
    assert len(huge.splitlines()) <= 61 and huge.endswith("more lines of diff")


@given(st.lists(st.text(alphabet="ab \t", max_size=8), max_size=6), st.integers(0, 3))
def test_trailing_whitespace_and_blank_lines_never_matter(lines: list[str], blanks: int) -> None:
    text = "\n".join(lines)
    padded = "\n".join(line + " \t" for line in lines) + "\n" * blanks
    assert normalise_whitespace(padded) == normalise_whitespace(text)
    assert normalise_whitespace(normalise_whitespace(text)) == normalise_whitespace(text)
    assert judge(Case("c", expected=text), padded)[0] == 1.0


def _ran(status: RunStatus, stdout: str = "", **extra: Any) -> CaseEnding:
    return CaseEnding(
        status=status,
        exit_code=extra.get("exit_code"),
        signal=extra.get("signal"),
        stdout=stdout,
        stderr="trace",
        duration=0.1,
        truncated=False,
        timeout=2.0,
        memory=64 * 1024**2,
        note=extra.get("note", ""),
    )


@pytest.mark.parametrize(
    ("ran", "verdict", "detail"),
    [
        (_ran(RunStatus.OK, "7\n"), Verdict.PASSED, ""),
        (_ran(RunStatus.OK, "8\n"), Verdict.WRONG_ANSWER, ""),
        (_ran(RunStatus.ERROR, exit_code=1), Verdict.ERROR, "exit 1"),
        (_ran(RunStatus.TIMEOUT), Verdict.TIMEOUT, "over 2s"),
        (_ran(RunStatus.MEMORY_LIMIT), Verdict.MEMORY_LIMIT, "over 64m"),
        (_ran(RunStatus.SIGNALED, signal=9), Verdict.KILLED, "killed by SIGKILL"),
        (_ran(RunStatus.INTERRUPTED, note="interrupted"), Verdict.KILLED, "interrupted"),
    ],
)
def test_every_end_has_its_verdict(ran: CaseEnding, verdict: Verdict, detail: str) -> None:
    judged = verdict_of(Case("c", expected="7", points=2), ran)
    assert (judged.verdict, judged.detail) == (verdict, detail)
    assert judged.points == (2.0 if verdict is Verdict.PASSED else 0.0)
    assert bool(judged.diff) == (verdict is Verdict.WRONG_ANSWER)


def test_a_hidden_case_keeps_nothing_but_its_verdict_unless_revealed() -> None:
    case = Case("secret", stdin="in", expected="7", hidden=True)
    judged = verdict_of(case, _ran(RunStatus.OK, "8\n"), reveal=False)
    assert (judged.stdout, judged.stderr, judged.diff) == ("", "", "")
    assert "7" not in json.dumps(judged.to_dict()) and "in" not in judged.to_dict().values()
    assert verdict_of(case, _ran(RunStatus.OK, "8\n"), reveal=True).stdout == "8\n"


class Recorder:
    """A backend that keeps the request and answers every case with ``ok``."""

    def __init__(self) -> None:
        self.request: RunRequest | None = None

    def run(self, request: RunRequest, **kwargs: Any) -> RunResult:
        self.request = request
        cases = tuple(_ran(RunStatus.OK, "8\n") for _ in request.cases)
        for index, ran in enumerate(cases):
            kwargs["listener"].case(index, ran)
        return run_result(cases=cases)


def test_expected_outputs_never_leave_the_host() -> None:
    backend = Recorder()
    token = "zebra-4711"
    result = check(
        "print(8)",
        [{"name": "a", "stdin": "1", "expected": token}, {"name": "b", "expected": token + "!"}],
        backend=backend,  # type: ignore[arg-type]
        limits=Limits(memory="128m"),
    )
    assert backend.request is not None
    limits = Limits.of(backend.request.profile.limits, backend.request.limits)
    body = run_to_json(backend.request.code, b"", None, limits, ["memory"], backend.request.cases)
    assert token not in repr(backend.request) and token not in json.dumps(body)
    assert result.score == 0 and [c.verdict for c in result.cases] == [Verdict.WRONG_ANSWER] * 2


def test_a_case_wanting_more_memory_raises_the_container() -> None:
    backend = Recorder()
    check(
        "",
        [{"name": "a", "expected": ""}, {"name": "b", "expected": "", "memory": "512m"}],
        backend=backend,  # type: ignore[arg-type]
    )
    assert backend.request is not None
    assert backend.request.profile.limits.memory == 512 * 1024**2
    assert [c.memory for c in backend.request.cases] == [None, 512 * 1024**2]


def test_case_runs_and_case_inputs_survive_the_wire() -> None:
    ran = _ran(RunStatus.SIGNALED, "x", signal=9, note="n")
    assert case_from_json(json.loads(json.dumps(case_to_json(ran)))) == ran
    body = run_to_json(b"c", b"", None, Limits(), [], _inputs())
    assert cases_from_json(json.loads(json.dumps(body))["cases"]) == _inputs()
    for bad in ([{"stdin": 1}], [{"timeout": -1}], [{"memory": True}], [{"what": 1}], "x"):
        with pytest.raises(InvalidValueError):
            cases_from_json(bad)


def _inputs() -> tuple[Any, ...]:
    from codedock_magic.core.request import CaseInput

    return (CaseInput(b"\x00\xff"), CaseInput(b"x", timeout=1.5, memory=2**25))


@pytest.fixture(autouse=True)
def _own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The key that signs result rows lives in the grader's config folder.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_records_resume_rewrite_and_refuse_other_cases(tmp_path: Path) -> None:
    cases = load_cases([{"name": "a", "expected": "1"}, {"name": "b", "expected": "2"}])
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "ada.py").write_text("print(1)")
    (submission,) = find_submissions(tmp_path / "s")
    result = not_run(cases, "because")
    for suffix in ("csv", "json"):
        out = tmp_path / f"r.{suffix}"
        records = Records(out, cases)
        assert not records.graded(submission)
        records.add(submission, result)
        again = Records(out, cases)
        assert again.graded(submission)
        changed = type(submission)(submission.student, submission.path, b"print(2)")
        assert not again.graded(changed)
        other = load_cases([{"name": "a", "expected": "1"}])
        with pytest.raises(InvalidValueError, match="--fresh"):
            Records(out, other)
        assert Records(out, other, fresh=True).rows == {}
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert rows[0]["a"] == "error" and rows[0]["note"] == "" and rows[0]["score"] == "0"
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["submissions"]["ada"]["cases"][1]["detail"] == "because"
    assert not list(tmp_path.glob(".r.*"))  # no temporary file left


def test_submissions_in_every_form_and_the_unreadable_ones_listed(tmp_path: Path) -> None:
    (tmp_path / "ada.py").write_text("print(1)\n")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "main.py").write_text("print(2)\n")
    (tmp_path / "cy").mkdir()
    (tmp_path / "big.py").write_bytes(b"#" * (MAX_CODE + 1))
    notebook = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "source": "print('no')"},
            {
                "cell_type": "code",
                "metadata": {"tags": ["answer"]},
                "source": ["x = 1\n", "print(x)"],
            },
            {"cell_type": "markdown", "metadata": {"tags": ["answer"]}, "source": "text"},
        ]
    }
    (tmp_path / "dee.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "eve.ipynb").write_text("{not json")
    (tmp_path / "notes.txt").write_text("not a submission")
    (tmp_path / ".hidden.py").write_text("ignored")
    found = {s.student: s for s in find_submissions(tmp_path)}
    assert sorted(found) == ["ada", "big", "bob", "cy", "dee", "eve", "notes.txt"]
    assert found["bob"].code == b"print(2)\n" and found["dee"].code == b"x = 1\nprint(x)\n"
    assert "no main.py" in found["cy"].problem and "over 1m" in found["big"].problem
    assert "not a readable notebook" in found["eve"].problem
    assert "not a submission" in found["notes.txt"].problem
    (tmp_path / "ada").mkdir()
    ada = {s.student: s for s in find_submissions(tmp_path)}["ada"]
    assert ada.code == b"" and "ada and ada.py are both submissions of 'ada'" in ada.problem


def test_a_check_stops_when_told() -> None:
    from codedock_magic.core.interrupts import Stop

    stop = Stop()
    stop.set()
    seen: list[bool] = []

    class Watcher(Recorder):
        def run(self, request: RunRequest, **kwargs: Any) -> RunResult:
            seen.append(kwargs["stop"].is_set())
            return super().run(request, **kwargs)

    check("", [{"name": "a", "expected": ""}], backend=Watcher(), stop=stop)  # type: ignore[arg-type]
    assert seen == [True]


@given(st.lists(st.booleans(), max_size=30))
def test_a_hidden_case_never_shares_a_sandbox(hidden: list[bool]) -> None:
    groups = sandbox_groups(hidden)
    assert [i for group in groups for i in group] == list(range(len(hidden)))
    for group in groups:
        # Alone when hidden; and no visible case follows a hidden one in its sandbox.
        assert len(group) == 1 or not any(hidden[i] for i in group)
    # Visible cases in a row share one: no more sandboxes than needed.
    assert len(groups) == sum(1 for i in range(len(hidden)) if i == 0 or hidden[i] or hidden[i - 1])
