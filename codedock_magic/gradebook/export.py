"""The gradebook's best (or last) attempt per student, in every form ``codedock grade`` writes.

The gradebook keeps each case's verdict and points, and the attempt's score, but
no output: the exports carry each case's points and max points, and nothing of
what a program printed, so a hidden case shows nothing but its verdict and
points, as the student saw it (and the per-student formats mark it hidden, as
``codedock grade --format`` does). Attempts recorded before the gradebook kept
points carry 0 points per case. After a regrade, the newest regrade's result of
an attempt stands in for the one recorded.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.errors import InvalidValueError
from ..grading.check import CaseResult, Verdict
from ..grading.formats import EXPORTS, FORMATS, Graded, write_export
from ..grading.formats import _atomic_write as _write
from ..grading.records import to_cell
from . import POLICIES
from .store import Attempt, Regraded

__all__ = ["POLICIES", "AttemptGraded", "choose", "export", "graded", "regraded"]

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
    "case_points",
    "regraded",
)


@dataclass(frozen=True, kw_only=True)
class AttemptGraded(Graded):
    """A :class:`~codedock_magic.grading.formats.Graded` scored as its attempt was."""

    attempt: Attempt

    @property
    def score(self) -> float:
        """The attempt's score (also for attempts recorded without points per case)."""
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
    scores = {case.name: case for case in attempt.cases}
    # The verdicts are kept sorted by name; the points, in the cases' order.
    names = [*(n for n in scores if n in attempt.verdicts), *attempt.verdicts]
    cases = tuple(
        CaseResult(
            name=name,
            verdict=_verdict(verdict),
            points=scores[name].points if name in scores else 0.0,
            max_points=scores[name].max_points if name in scores else 0.0,
            stdout="",
            stderr="",
            duration=0.0,
            diff="",
            hidden=scores[name].hidden if name in scores else False,
            detail="" if verdict in (v.value for v in Verdict) else verdict,
        )
        for name, verdict in ((n, attempt.verdicts[n]) for n in dict.fromkeys(names))
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
        "case_points": {c.name: [c.points, c.max_points] for c in attempt.cases},
    }


def regraded(attempt: Attempt, result: Regraded) -> Attempt:
    """``attempt`` as a regrade scored it: its score, verdicts and points."""
    return replace(
        attempt,
        score=result.score,
        max_score=result.max_score,
        verdicts=dict(result.verdicts),
        cases=result.cases,
    )


def export(
    form: str,
    attempts: Sequence[Attempt],
    out: Path,
    *,
    assignment: str,
    policy: str = "best",
    newest: Mapping[int, Regraded] | None = None,
) -> list[Path]:
    """Write the attempt standing for each user, as ``form``, to ``out``; the paths written.

    ``csv`` and ``json`` write one file (the JSON also holds each attempt's code
    and each case's points); the exports write what
    :func:`~codedock_magic.grading.formats.write_export` does. ``newest`` maps an
    attempt's id to its newest regrade's result, which stands in for the attempt.
    """
    if form not in FORMATS:
        raise InvalidValueError("--format", form, f"one of {', '.join(FORMATS)}")
    newest = newest or {}
    chosen = choose(attempts, policy)
    marked = {u for u, a in chosen.items() if a.id in newest}
    chosen = {
        u: regraded(a, newest[a.id]) if a.id is not None and a.id in newest else a
        for u, a in chosen.items()
    }
    tries: dict[str, int] = {}
    for attempt in attempts:
        tries[attempt.user] = tries.get(attempt.user, 0) + 1
    ordered = [chosen[user] for user in sorted(chosen)]
    if form in EXPORTS:
        return write_export(form, [graded(a) for a in ordered], out, assignment=assignment)
    rows = [{**_row(a, tries[a.user]), "regraded": a.user in marked} for a in ordered]
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
        row["case_points"] = json.dumps(row["case_points"], sort_keys=True)
        writer.writerow({name: to_cell(str(value)) for name, value in row.items()})
    _write(out, buffer.getvalue())
    return [out]
