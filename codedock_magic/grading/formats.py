"""A class's results in the forms other graders and LMSs take: pure, no engine, no I/O
but :func:`write_export`.

- ``gradescope``: Gradescope's autograder ``results.json``, one per submission (its
  autograder writes one file, ``/autograder/results/results.json``, for the one
  submission it runs on): ``score``, ``output``, ``visibility`` and ``tests[]`` with
  ``name``, ``score``, ``max_score``, ``status``, ``output`` and ``visibility``.
- ``prairielearn``: PrairieLearn's external-grader ``results.json``, one per
  submission (written to ``/grade/results/results.json`` for the one submission
  graded): ``gradable``, ``score`` from 0 to 1, ``message``, ``output`` and
  ``tests[]`` with ``name``, ``points``, ``max_points``, ``message`` and ``output``.
- ``canvas``: one CSV for the class, as Canvas's gradebook import takes it:
  ``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``, then one column
  for the assignment, with a ``Points Possible`` row first.

Both per-submission formats are shown to students, so of a hidden case they carry
its name, pass or fail and points alone: never its input, expected output, what
the program printed, a diff, an exit code or a time.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InvalidValueError
from .check import CaseResult, CheckResult, Scored, Verdict

__all__ = [
    "EXPORTS",
    "FORMATS",
    "GRADESCOPE_HIDDEN",
    "Graded",
    "canvas_csv",
    "graded_from_record",
    "gradescope",
    "prairielearn",
    "read_record",
    "write_export",
]

#: Every ``--format``: the two records ``codedock grade`` keeps, and the exports.
FORMATS = ("csv", "json", "gradescope", "prairielearn", "canvas")
#: The formats written from the record, for another system.
EXPORTS = ("gradescope", "prairielearn", "canvas")
#: Gradescope's visibility of a hidden case: its name and score once grades are
#: published, never its output.
GRADESCOPE_HIDDEN = "after_published"

# Cells a spreadsheet would run as a formula; Canvas's CSV is opened in one first.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, kw_only=True)
class Graded(Scored):
    """One student's graded submission, as the exports and the class report need it.

    Attributes:
        student: the name the submission is filed under.
        cases: each case's result, in the order of the cases (a hidden case's
            output may be there: it is the teacher's record, and each export
            decides what it shows).
        note: why the submission could not be run, else empty.
        duration: seconds the whole check took, if known.
        peak_memory: the container's memory high-water mark in bytes, if known.
        late: whether it was handed in late; ``None`` when nothing says.
    """

    student: str
    cases: tuple[CaseResult, ...]
    note: str = ""
    duration: float | None = None
    peak_memory: int | None = None
    late: bool | None = None

    @classmethod
    def of(cls, student: str, result: CheckResult, *, note: str = "") -> Graded:
        """From a :class:`~codedock_magic.grading.check.CheckResult`."""
        return cls(
            student=student,
            cases=result.cases,
            note=note,
            duration=result.run.duration,
            peak_memory=result.run.peak_memory,
        )


def _number(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _case_from_dict(data: Mapping[str, Any]) -> CaseResult:
    try:
        verdict = Verdict(data.get("verdict"))
    except ValueError:
        verdict = Verdict.ERROR
    return CaseResult(
        name=str(data.get("name", "")),
        verdict=verdict,
        points=_number(data.get("points")),
        max_points=_number(data.get("max_points")),
        stdout=str(data.get("stdout", "")),
        stderr=str(data.get("stderr", "")),
        duration=_number(data.get("duration")),
        diff=str(data.get("diff", "")),
        hidden=bool(data.get("hidden", False)),
        detail=str(data.get("detail", "")),
    )


def graded_from_record(student: str, row: Mapping[str, Any]) -> Graded:
    """A :class:`Graded` from one student's row of the JSON record ``codedock grade`` writes.

    Raises:
        InvalidValueError: the row is not a check result's record.
    """
    cases = row.get("cases") if isinstance(row, Mapping) else None
    if not isinstance(cases, list) or not all(isinstance(c, Mapping) for c in cases):
        raise InvalidValueError(
            "results", student, "a student's record from codedock grade --out PATH.json"
        )
    memory = row.get("peak_memory")
    late = row.get("late")
    return Graded(
        student=student,
        cases=tuple(_case_from_dict(case) for case in cases),
        note=str(row.get("note") or ""),
        duration=_number(row["duration"]) if row.get("duration") is not None else None,
        peak_memory=int(memory) if isinstance(memory, int | float) else None,
        late=late if isinstance(late, bool) else None,
    )


def read_record(path: Path) -> list[Graded]:
    """Every student in the JSON record ``codedock grade --out PATH.json`` writes.

    Raises:
        InvalidValueError: ``path`` cannot be read, or is not such a record (a CSV
            record holds only verdicts: grade to ``.json`` for what needs more).
    """
    wrong = InvalidValueError(
        "results", str(path), "the JSON record of codedock grade (--out PATH.json)"
    )
    if path.suffix.lower() != ".json":
        raise wrong
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise wrong from None
    submissions = data.get("submissions") if isinstance(data, dict) else None
    if not isinstance(submissions, dict):
        raise wrong
    return [graded_from_record(str(name), row) for name, row in sorted(submissions.items())]


def _case_output(case: CaseResult) -> str:
    """What a student may read of a visible case: how it ended, the diff, stderr's end."""
    parts = [f"{case.verdict.value}" + (f": {case.detail}" if case.detail else "")]
    if case.diff:
        parts.append(case.diff)
    if case.stderr and not case.passed:
        parts.append(case.stderr)
    return "\n".join(parts)


def gradescope(graded: Graded, *, hidden: str = GRADESCOPE_HIDDEN) -> dict[str, Any]:
    """Gradescope's ``results.json`` for one submission.

    ``hidden`` is the ``visibility`` of a hidden case: ``after_published`` (its
    name, status and score once grades are published) or ``hidden`` (never shown
    to the student).

    Raises:
        InvalidValueError: ``hidden`` is neither.
    """
    if hidden not in ("after_published", "hidden"):
        raise InvalidValueError("hidden", hidden, "after_published or hidden")
    tests: list[dict[str, Any]] = []
    for case in graded.cases:
        test: dict[str, Any] = {
            "name": case.name,
            "score": case.points,
            "max_score": case.max_points,
            "status": "passed" if case.passed else "failed",
            "visibility": hidden if case.hidden else "visible",
        }
        if not case.hidden:
            test["output"] = _case_output(case)
        tests.append(test)
    summary = f"{graded.passed}/{len(graded.cases)} passed · {graded.score:g}/{graded.max_score:g}"
    return {
        "score": graded.score,
        "output": f"{summary}\n{graded.note}" if graded.note else summary,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def prairielearn(graded: Graded) -> dict[str, Any]:
    """PrairieLearn's external-grader ``results.json`` for one submission."""
    tests: list[dict[str, Any]] = []
    for case in graded.cases:
        test: dict[str, Any] = {
            "name": case.name,
            "points": case.points,
            "max_points": case.max_points,
        }
        if case.hidden:
            # PrairieLearn shows every field to the student: the name and points say
            # whether it passed, and nothing else goes out.
            test["message"] = ""
            test["output"] = ""
        else:
            test["message"] = case.verdict.value + (f": {case.detail}" if case.detail else "")
            test["output"] = "\n".join(p for p in (case.diff, case.stderr) if p and not case.passed)
        tests.append(test)
    top = graded.max_score
    return {
        "gradable": not graded.note,
        "score": graded.score / top if top else 0.0,
        "message": graded.note or f"{graded.passed}/{len(graded.cases)} cases passed",
        "output": "",
        "tests": tests,
    }


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def canvas_csv(graded: Iterable[Graded], *, assignment: str) -> str:
    """A Canvas gradebook CSV: one row per student, one column for ``assignment``.

    Canvas matches a row to a student by ``ID``, ``SIS User ID`` or ``SIS Login ID``;
    the name a submission is filed under goes in ``SIS Login ID`` (and ``Student``),
    so files named by login match as they are.
    """
    rows = sorted(graded, key=lambda g: g.student)
    top = max((g.max_score for g in rows), default=0.0)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", _cell(assignment)]
    writer.writerow(header)
    writer.writerow(["Points Possible", "", "", "", "", f"{top:g}"])
    for row in rows:
        name = _cell(row.student)
        writer.writerow([name, "", "", name, "", f"{row.score:g}"])
    return buffer.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_export(
    form: str, graded: Sequence[Graded], out: Path, *, assignment: str = "codedock"
) -> list[Path]:
    """Write ``graded`` as ``form`` (one of :data:`EXPORTS`) under ``out``; the paths written.

    ``gradescope`` and ``prairielearn`` write ``out/STUDENT/results.json`` for each
    student; ``canvas`` writes the CSV ``out``.

    Raises:
        InvalidValueError: an unknown form, or a student's name that is not a plain
            file name.
    """
    if form not in EXPORTS:
        raise InvalidValueError("--format", form, f"one of {', '.join(FORMATS)}")
    if form == "canvas":
        _atomic_write(out, canvas_csv(graded, assignment=assignment))
        return [out]
    written = []
    for one in graded:
        if one.student in ("", ".", "..") or "/" in one.student or "\\" in one.student:
            raise InvalidValueError("student", one.student, "a plain file name")
        data = gradescope(one) if form == "gradescope" else prairielearn(one)
        path = out / one.student / "results.json"
        _atomic_write(path, json.dumps(data, indent=1) + "\n")
        written.append(path)
    return written
