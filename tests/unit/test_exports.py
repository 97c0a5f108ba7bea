"""Grading's exports, similarity and class report: pure logic, against each format's
documented fields, and never a hidden case's details where students see them."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic import Limits, RunResult, RunStatus, Verdict
from codedock_magic.cli import _grade_record
from codedock_magic.errors import InvalidValueError
from codedock_magic.grading.batch import Records
from codedock_magic.grading.cases import load_cases
from codedock_magic.grading.check import CaseResult, CheckResult
from codedock_magic.grading.classreport import class_report, score_bins
from codedock_magic.grading.formats import (
    Graded,
    canvas_csv,
    gradescope,
    prairielearn,
    read_record,
    write_export,
)
from codedock_magic.grading.similarity import (
    THRESHOLD,
    compare,
    fingerprint,
    report,
    starter_hashes,
)
from codedock_magic.grading.submissions import Submission

SIMILAR = Path(__file__).resolve().parents[1] / "data" / "similar"
# What a hidden case's input, expected output and program output were: none of it
# may reach a file a student sees.
SECRETS = ("SECRET-IN", "SECRET-EXPECTED", "SECRET-OUT", "SECRET-ERR", "exit 3", "4.321")


def _case(name: str, verdict: Verdict, points: float, hidden: bool = False) -> CaseResult:
    shown = not hidden
    return CaseResult(
        name=name,
        verdict=verdict,
        points=points if verdict is Verdict.PASSED else 0.0,
        max_points=points,
        stdout="6\n" if shown else "SECRET-OUT\n",
        stderr="" if verdict is Verdict.PASSED else ("Traceback: boom" if shown else "SECRET-ERR"),
        duration=4.321 if hidden else 0.05,
        diff="" if verdict is not Verdict.WRONG_ANSWER else "-SECRET-EXPECTED\n+SECRET-OUT",
        hidden=hidden,
        detail=("exit 3" if hidden else "exit 1") if verdict is Verdict.ERROR else "",
    )


def _graded(student: str = "ada") -> Graded:
    return Graded(
        student=student,
        cases=(
            _case("small", Verdict.PASSED, 1),
            _case("negatives", Verdict.ERROR, 1),
            _case("big", Verdict.WRONG_ANSWER, 2, hidden=True),
            _case("tricky", Verdict.ERROR, 2, hidden=True),
            _case("easy hidden", Verdict.PASSED, 1, hidden=True),
        ),
        duration=1.5,
        peak_memory=12 * 2**20,
    )


def _visible_wrong() -> Graded:
    case = CaseResult(
        name="shown",
        verdict=Verdict.WRONG_ANSWER,
        points=0.0,
        max_points=1.0,
        stdout="7\n",
        stderr="",
        duration=0.1,
        diff="- expected 6\n+ got 7",
        hidden=False,
    )
    return Graded(student="bob", cases=(case,))


def test_gradescope_has_the_documented_fields_and_keeps_hidden_cases_bare() -> None:
    data = gradescope(_graded())
    assert data["score"] == 2.0 and isinstance(data["score"], float)
    assert data["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    assert isinstance(data["output"], str) and "2/5 passed" in data["output"]
    allowed = {"name", "score", "max_score", "status", "output", "visibility"}
    for test in data["tests"]:
        assert set(test) <= allowed and {"name", "score", "max_score", "status"} <= set(test)
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    by_name = {test["name"]: test for test in data["tests"]}
    assert by_name["small"] == {
        "name": "small",
        "score": 1.0,
        "max_score": 1,
        "status": "passed",
        "visibility": "visible",
        "output": "passed",
    }
    assert "exit 1" in by_name["negatives"]["output"] and "boom" in by_name["negatives"]["output"]
    for name in ("big", "tricky", "easy hidden"):
        assert by_name[name]["visibility"] == "after_published" and "output" not in by_name[name]
    assert by_name["big"]["status"] == "failed" and by_name["easy hidden"]["score"] == 1
    text = json.dumps(data)
    assert not [secret for secret in SECRETS if secret in text]
    never = gradescope(_graded(), hidden="hidden")
    assert {t["visibility"] for t in never["tests"]} == {"visible", "hidden"}
    with pytest.raises(InvalidValueError):
        gradescope(_graded(), hidden="after_due_date")
    assert "expected 6" in gradescope(_visible_wrong())["tests"][0]["output"]


def test_prairielearn_has_the_documented_fields_and_keeps_hidden_cases_bare() -> None:
    data = prairielearn(_graded())
    assert set(data) == {"gradable", "score", "message", "output", "tests"}
    assert data["gradable"] is True
    assert data["score"] == pytest.approx(2 / 7) and 0 <= data["score"] <= 1
    for test in data["tests"]:
        assert set(test) == {"name", "points", "max_points", "message", "output"}
        assert all(isinstance(test[key], str) for key in ("name", "message", "output"))
        assert 0 <= test["points"] <= test["max_points"]
    by_name = {test["name"]: test for test in data["tests"]}
    assert by_name["negatives"]["message"] == "error: exit 1"
    assert by_name["big"] == {
        "name": "big",
        "points": 0.0,
        "max_points": 2,
        "message": "",
        "output": "",
    }
    assert by_name["easy hidden"]["points"] == 1
    assert not [secret for secret in SECRETS if secret in json.dumps(data)]
    assert "expected 6" in prairielearn(_visible_wrong())["tests"][0]["output"]
    broken = Graded(student="x", cases=(), note="x/ has no main.py")
    assert prairielearn(broken)["gradable"] is False
    assert prairielearn(broken)["score"] == 0.0


def test_canvas_is_a_gradebook_import_csv_with_formulas_defused() -> None:
    text = canvas_csv(
        [_graded("zed"), _graded("=HYPERLINK(1)"), _visible_wrong()], assignment="hw3"
    )
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "hw3"]
    assert rows[1] == ["Points Possible", "", "", "", "", "7"]
    assert rows[2][0] == "'=HYPERLINK(1)" and rows[2][3] == "'=HYPERLINK(1)"
    assert rows[3] == ["bob", "", "", "bob", "", "0"]
    assert rows[4] == ["zed", "", "", "zed", "", "2"]
    assert "SECRET" not in text


def _check_result(cases: tuple[CaseResult, ...]) -> CheckResult:
    run = RunResult(
        status=RunStatus.OK,
        exit_code=0,
        signal=None,
        stdout="",
        stderr="",
        duration=0.75,
        truncated=False,
        limits=Limits(),
        image="i",
        peak_memory=3 * 2**20,
    )
    return CheckResult(cases=cases, run=run)


def test_the_json_record_reads_back_into_the_same_results(tmp_path: Path) -> None:
    cases = load_cases(
        [
            {"name": n, "stdin": "", "expected": "", "points": p, "hidden": h}
            for n, p, h in [
                ("small", 1, False),
                ("negatives", 1, False),
                ("big", 2, True),
                ("tricky", 2, True),
                ("easy hidden", 1, True),
            ]
        ]
    )
    path = tmp_path / "results.json"
    records = Records(path, cases)
    result = _check_result(_graded().cases)
    records.add(Submission("ada", tmp_path / "ada.py", b"print(6)\n"), result)
    (back,) = read_record(path)
    assert back.student == "ada" and back.cases == result.cases
    assert back.peak_memory == 3 * 2**20 and back.duration == 0.75 and back.late is None
    assert gradescope(back) == gradescope(Graded.of("ada", result))
    written = write_export("prairielearn", [back], tmp_path / "pl")
    assert written == [tmp_path / "pl" / "ada" / "results.json"]
    assert json.loads(written[0].read_text()) == prairielearn(back)
    with pytest.raises(InvalidValueError):
        write_export("gradescope", [Graded(student="..", cases=())], tmp_path / "gs")
    for bad in ("{}", "[]", '{"submissions": {"a": {"cases": 3}}}'):
        path.write_text(bad)
        with pytest.raises(InvalidValueError):
            read_record(path)
    with pytest.raises(InvalidValueError):
        read_record(tmp_path / "results.csv")


def test_grade_keeps_its_record_beside_an_export(tmp_path: Path) -> None:
    assert _grade_record(None, tmp_path / "r.csv") == ("csv", tmp_path / "r.csv")
    assert _grade_record(None, tmp_path / "r.json") == ("json", tmp_path / "r.json")
    assert _grade_record("gradescope", tmp_path / "gs") == (
        "gradescope",
        tmp_path / "gs" / "codedock-results.json",
    )
    assert _grade_record("canvas", tmp_path / "c.csv") == ("canvas", tmp_path / "c.json")
    for form, out in [("json", "r.csv"), ("canvas", "c.txt"), ("prairielearn", "p.json")]:
        with pytest.raises(InvalidValueError):
            _grade_record(form, tmp_path / out)


INDEPENDENT = ["ada", "bo", "cy", "dee", "eve", "fox", "gus", "hal"]
# Each copy, of whom, and how it was disguised.
COPIES = {
    ("ada", "ivy"): "renamed every name, added comments",
    ("cy", "jo"): "reordered the functions and methods",
    ("eve", "kit"): "renamed, reordered, commented, a docstring",
}


def _fingerprints(folder: Path = SIMILAR, starter: str = "") -> list[Any]:
    hashes = starter_hashes(starter) if starter else frozenset()
    return [
        fingerprint(path.stem, path.read_text(), starter=hashes)
        for path in sorted(folder.glob("*.py"))
    ]


def test_planted_copies_rank_first_and_no_independent_pair_comes_near() -> None:
    pairs = compare(_fingerprints())
    assert len(pairs) == 11 * 10 // 2
    top = {(p.a, p.b) for p in pairs[: len(COPIES)]}
    assert top == set(COPIES)
    assert all(p.similarity >= THRESHOLD for p in pairs[: len(COPIES)])
    independent = [p for p in pairs if (p.a, p.b) not in COPIES]
    # The stated bound: no two independent solutions reach half the flagging threshold.
    assert max(p.similarity for p in independent) < THRESHOLD / 2


def test_starter_code_is_left_out(tmp_path: Path) -> None:
    starter = (SIMILAR / "cy.py").read_text()
    for name in ("bo", "dee"):
        (tmp_path / f"{name}.py").write_text(starter + "\n" + (SIMILAR / f"{name}.py").read_text())
    with_it = compare(_fingerprints(tmp_path))
    assert with_it[0].similarity > THRESHOLD
    without = compare(_fingerprints(tmp_path, starter=starter))
    assert without[0].similarity < THRESHOLD / 2


def test_the_similarity_report_is_self_contained_and_escapes_students(tmp_path: Path) -> None:
    for path in SIMILAR.glob("*.py"):
        shutil.copy(path, tmp_path / path.name)
    hostile = "<img src=x onerror=alert(1)>"
    (tmp_path / "ivy.py").write_text(
        (tmp_path / "ivy.py").read_text() + f"# {hostile} </pre></div>\n"
    )
    prints = _fingerprints(tmp_path)
    prints[0].name = "<script>alert('ada')</script>"
    pairs = compare(prints)
    page = report(prints, pairs, skipped=[("<b>x</b>", "x/ has no main.py")], starter="s.py")
    assert "<script" not in page and "<img" not in page and "<b>x" not in page
    assert "&lt;script&gt;alert(&#x27;ada&#x27;)&lt;/script&gt;" in page
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page) and "<link" not in page
    # Pairs that share nothing are ranked, not shown.
    assert page.count("<details") == min(20, sum(p.similarity > 0 for p in pairs)) == 13
    # The matching lines are marked, on both sides.
    first = page.split("<details", 2)[1]
    assert first.count('class="m"') > 20


def _class() -> list[Graded]:
    return [
        _graded("ada"),
        Graded(
            student="<script>x</script>",
            cases=tuple(_case(n, Verdict.PASSED, p) for n, p in [("small", 1), ("big", 6)]),
            duration=9.0,
            peak_memory=300 * 2**20,
        ),
        Graded(student="cy", cases=(), note="cy/ has no main.py"),
    ]


def test_the_class_report_draws_scores_and_ranks_without_inventing_lateness() -> None:
    page = class_report(_class(), title="hw3 <x>")
    assert "<script" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "hw3 &lt;x&gt;" in page and "<svg" in page and page.count("<rect") == 8
    assert "no hand-in times" in page
    assert "<td>small</td><td class='n'>2/2</td><td class='n'>100%</td>" in page
    assert "<td>big (hidden)</td><td class='n'>1/2</td>" in page
    slow = page.split("Slowest submissions")[1].split("</section>")[0]
    assert slow.index("&lt;script&gt;") < slow.index("ada") and "9.00 s" in slow
    assert "cy" not in slow  # never run: no time to rank
    hungry = page.split("memory-hungry")[1].split("</section>")[0]
    assert "300m" in hungry.lower() or "300 m" in hungry.lower()
    assert "cy/ has no main.py" in page
    late = [Graded(student="a", cases=(), late=True), Graded(student="b", cases=(), late=False)]
    assert "<li>a (0/0)</li>" in class_report(late)


@given(st.lists(st.integers(0, 40), max_size=50), st.integers(1, 40))
def test_every_score_lands_in_one_bar(scores: list[int], top: int) -> None:
    kept = [s for s in scores if s <= top]
    bins = score_bins([float(s) for s in kept], float(top))
    assert sum(n for _, _, n in bins) == len(kept)
    assert bins[0][0] == 0 and bins[-1][1] >= top


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name not in dir(__builtins__) and not __import__("keyword").iskeyword(name)
)


@given(st.lists(_NAMES, min_size=12, max_size=12, unique=True))
def test_renaming_every_name_and_adding_comments_changes_nothing(names: list[str]) -> None:
    original = (SIMILAR / "gus.py").read_text()
    # gus's own names, in the order they first appear, each given another.
    own = ["split_words", "s", "out", "buf", "c", "merge", "acc", "w", "counts", "keys", "k"]
    renamed = original
    for old, new in zip(own, names, strict=False):
        # Not attributes: `counts.keys()` is a method, not gus's name.
        renamed = re.sub(rf"(?<!\.)\b{old}\b", f"{new}_", renamed)
    renamed = "\n".join(f"{line}  # {names[-1]}" for line in renamed.splitlines())
    (pair,) = compare([fingerprint("a", original), fingerprint("b", renamed)])
    assert pair.similarity == 1.0
