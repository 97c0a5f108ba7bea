"""The gradebook's best (or last) attempt per student, in every form ``codedock grade`` writes.

The gradebook keeps each case's verdict and the attempt's score, not each case's
points nor any output: the exports carry the score, and each case as passed or
failed with no points of its own and no output, so a hidden case shows nothing
but its verdict, as the student saw it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InvalidValueError
from ..grading.check import CaseResult, Verdict
from ..grading.formats import EXPORTS, FORMATS, Graded, write_export
from ..grading.formats import _atomic_write as _write
from ..grading.records import to_cell
from .store import Attempt

__all__ = ["POLICIES", "AttemptGraded", "choose", "export", "graded"]

_NAMES = (
    "student",
    "assignment",
    "attempt",
    "attempts",
    "at",
    "score",
    "max_score",
    "late",
    "code_sha256",
    "verdicts",
)

#: Which attempt stands for a student: the best (the last of equal best), or the last.
POLICIES = ("best", "last")


@dataclass(frozen=True, kw_only=True)
class AttemptGraded(Graded):
    """A :class:`~codedock_magic.grading.formats.Graded` scored as its attempt was."""

    attempt: Attempt

    @property
    def score(self) -> float:
        """The attempt's score (the gradebook keeps no points per case)."""
        return self.attempt.score

    @property
    def max_score(self) -> float:
        """The attempt's most points."""
        return self.attempt.max_score


def choose(attempts: Iterable[Attempt], policy: str = "best") -> dict[str, Attempt]:
    """The attempt that stands for each user: ``best`` or ``last``, by time."""
    if policy not in POLICIES:
        raise InvalidValueError("--policy", policy, "best or last")
    chosen: dict[str, Attempt] = {}
    for attempt in sorted(attempts, key=lambda a: (a.at, a.id or 0)):
        held = chosen.get(attempt.user)
        if held is None or policy == "last" or _ratio(attempt) >= _ratio(held):
            chosen[attempt.user] = attempt
    return chosen


def _ratio(attempt: Attempt) -> float:
    return attempt.score / attempt.max_score if attempt.max_score else attempt.score


def _verdict(text: str) -> Verdict:
    try:
        return Verdict(text)
    except ValueError:
        return Verdict.PASSED if text == "passed" else Verdict.WRONG_ANSWER


def graded(attempt: Attempt) -> AttemptGraded:
    """``attempt`` as the exports of :mod:`codedock_magic.grading.formats` take it."""
    cases = tuple(
        CaseResult(
            name=name,
            verdict=_verdict(verdict),
            points=0.0,
            max_points=0.0,
            stdout="",
            stderr="",
            duration=0.0,
            diff="",
            hidden=False,
            detail="" if verdict in (v.value for v in Verdict) else verdict,
        )
        for name, verdict in attempt.verdicts.items()
    )
    return AttemptGraded(student=attempt.user, cases=cases, late=attempt.late, attempt=attempt)


def _row(attempt: Attempt, tries: int) -> dict[str, Any]:
    return {
        "student": attempt.user,
        "assignment": attempt.assignment,
        "attempt": attempt.id,
        "attempts": tries,
        "at": attempt.at.isoformat(),
        "score": attempt.score,
        "max_score": attempt.max_score,
        "late": attempt.late,
        "code_sha256": attempt.code_sha256,
        "verdicts": attempt.verdicts,
    }


def export(
    form: str,
    attempts: Sequence[Attempt],
    out: Path,
    *,
    assignment: str,
    policy: str = "best",
) -> list[Path]:
    """Write the attempt standing for each user, as ``form``, to ``out``; the paths written.

    ``csv`` and ``json`` write one file (the JSON also holds each attempt's code);
    the exports write what :func:`~codedock_magic.grading.formats.write_export` does.
    """
    if form not in FORMATS:
        raise InvalidValueError("--format", form, f"one of {', '.join(FORMATS)}")
    chosen = choose(attempts, policy)
    tries: dict[str, int] = {}
    for attempt in attempts:
        tries[attempt.user] = tries.get(attempt.user, 0) + 1
    ordered = [chosen[user] for user in sorted(chosen)]
    if form in EXPORTS:
        return write_export(form, [graded(a) for a in ordered], out, assignment=assignment)
    rows = [_row(a, tries[a.user]) for a in ordered]
    if form == "json":
        for row, attempt in zip(rows, ordered, strict=True):
            row["code"] = attempt.code
        text = json.dumps({"assignment": assignment, "policy": policy, "students": rows}, indent=1)
        _write(out, text + "\n")
        return [out]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_NAMES, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        row["verdicts"] = json.dumps(row["verdicts"], sort_keys=True)
        writer.writerow({name: to_cell(str(value)) for name, value in row.items()})
    _write(out, buffer.getvalue())
    return [out]
