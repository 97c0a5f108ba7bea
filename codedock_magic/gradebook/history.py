"""Every run of ``codedock grade`` on a results file, kept beside it, and what changed.

Each run is one JSON file, ``RESULTS.history/run-NNNN.json``: when it ran, the
digests of the cases and of the checkers' source, and per student the score, each
case's verdict and the submission's digest, with the changes from the run before.
So a regrade never loses the results it replaces, and any two runs compare:
per student the old and new score, the cases that flipped, and why (the cases,
a checker or the submission changed; none of them: a case that does not always
end alike, such as one near its time limit).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import InvalidValueError
from ..grading.cases import Case
from ..grading.formats import _atomic_write
from ..grading.records import from_cell

__all__ = ["Change", "History", "Run", "Standing", "checkers_digest", "compare", "describe"]

_FIXED = ("student", "score", "max_score", "passed", "total")
_TRAILING = ("note", "submission_sha256", "cases_sha256", "signature")
_RUN = re.compile(r"run-(\d{4,})\.json")


def checkers_digest(cases: Sequence[Case]) -> str:
    """A SHA-256 of every checker's source file (its code, if it has no file)."""
    digest = hashlib.sha256()
    for case in cases:
        checker = case.checker
        if checker is None:
            continue
        code = getattr(checker, "__code__", None)
        try:
            body = Path(code.co_filename).read_bytes() if code is not None else b""
        except OSError:
            body = code.co_code if code is not None else b""
        digest.update(f"{case.name}\0{getattr(checker, '__name__', '')}\0".encode())
        digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class Standing:
    """One student's result in one run."""

    score: float
    max_score: float
    verdicts: dict[str, str]
    submission_sha256: str


@dataclass(frozen=True)
class Run:
    """One run of ``codedock grade``: its digests and every student's standing."""

    id: int
    at: str
    cases_sha256: str
    checkers_sha256: str | None
    students: dict[str, Standing]
    changes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    """What changed for one student between two runs."""

    student: str
    old: Standing | None
    new: Standing | None
    flipped: list[tuple[str, str, str]]
    why: list[str]


def read_results(path: Path) -> tuple[dict[str, Standing], str]:
    """Every student's standing in a results file (CSV or JSON), and its cases' digest."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValueError("--out", str(path), f"readable ({exc})") from None
    students: dict[str, Standing] = {}
    digest = ""
    if not text.strip():
        return students, digest
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        digest = str(data.get("cases_sha256", ""))
        for name, row in data.get("submissions", {}).items():
            cases = row.get("cases", [])
            students[name] = Standing(
                score=sum(float(c.get("points", 0)) for c in cases),
                max_score=sum(float(c.get("max_points", 0)) for c in cases),
                verdicts={str(c.get("name")): str(c.get("verdict")) for c in cases},
                submission_sha256=str(row.get("submission_sha256", "")),
            )
        return students, digest
    for raw in csv.DictReader(io.StringIO(text, newline="")):
        row = {from_cell(k): from_cell(v or "") for k, v in raw.items() if k is not None}
        digest = row.get("cases_sha256", digest)
        try:
            score, top = float(row["score"]), float(row["max_score"])
        except (KeyError, ValueError):
            continue
        cases = {k: v for k, v in row.items() if k not in (*_FIXED, *_TRAILING)}
        students[row["student"]] = Standing(score, top, cases, row.get("submission_sha256", ""))
    return students, digest


class History:
    """The runs kept beside ``results`` (in ``RESULTS.history/``, or ``folder``)."""

    def __init__(self, results: Path, folder: Path | None = None) -> None:
        self.results = results
        self.folder = folder or results.with_name(results.name + ".history")

    def runs(self) -> list[Run]:
        """Every run, oldest first."""
        if not self.folder.is_dir():
            return []
        found = sorted(
            (int(m.group(1)), p) for p in self.folder.iterdir() if (m := _RUN.fullmatch(p.name))
        )
        return [self._read(path) for _, path in found]

    def run(self, number: int) -> Run:
        """Run ``number``."""
        path = self.folder / f"run-{number:04d}.json"
        if not path.is_file():
            known = ", ".join(str(r.id) for r in self.runs()) or "none yet"
            raise InvalidValueError("run", number, f"a run kept in {self.folder} ({known})")
        return self._read(path)

    def _read(self, path: Path) -> Run:
        data = json.loads(path.read_text(encoding="utf-8"))
        students = {name: Standing(**s) for name, s in data["students"].items()}
        return Run(
            id=int(data["id"]),
            at=str(data["at"]),
            cases_sha256=str(data["cases_sha256"]),
            checkers_sha256=data.get("checkers_sha256"),
            students=students,
            changes=list(data.get("changes", [])),
        )

    def keep(
        self, checkers_sha256: str | None, *, against: Run | None = None
    ) -> tuple[Run, list[Change]]:
        """Keep the results file as it is now as a new run, with its changes from
        ``against`` (by default the run before); the run and those changes."""
        students, digest = read_results(self.results)
        runs = self.runs()
        number = runs[-1].id + 1 if runs else 1
        base = against if against is not None else (runs[-1] if runs else None)
        run = Run(
            id=number,
            at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            cases_sha256=digest,
            checkers_sha256=checkers_sha256,
            students=students,
        )
        changed = [] if base is None else compare(base, run)
        run = Run(**{**run.__dict__, "changes": [_stored(c) for c in changed]})
        data = asdict(run)
        data["compared_with"] = base.id if base is not None else None
        _atomic_write(self.folder / f"run-{number:04d}.json", json.dumps(data, indent=1) + "\n")
        return run, changed


def _stored(change: Change) -> dict[str, Any]:
    return {
        "student": change.student,
        "old_score": change.old.score if change.old else None,
        "new_score": change.new.score if change.new else None,
        "flipped": [list(f) for f in change.flipped],
        "why": change.why,
    }


def compare(old: Run, new: Run) -> list[Change]:
    """Per student whose score or verdicts differ between ``old`` and ``new``: what and why."""
    changes = []
    for student in sorted(set(old.students) | set(new.students)):
        before, after = old.students.get(student), new.students.get(student)
        if before is None or after is None:
            why = ["not graded before" if before is None else "not graded now"]
            changes.append(Change(student, before, after, [], why))
            continue
        names = list(dict.fromkeys([*before.verdicts, *after.verdicts]))
        flipped = [
            (name, before.verdicts.get(name, "-"), after.verdicts.get(name, "-"))
            for name in names
            if before.verdicts.get(name) != after.verdicts.get(name)
        ]
        if not flipped and (before.score, before.max_score) == (after.score, after.max_score):
            continue
        why = []
        if old.cases_sha256 != new.cases_sha256:
            why.append("cases changed")
        if (
            old.checkers_sha256 is not None
            and new.checkers_sha256 is not None
            and old.checkers_sha256 != new.checkers_sha256
        ):
            why.append("checker changed")
        if before.submission_sha256 != after.submission_sha256:
            why.append("submission changed")
        changes.append(Change(student, before, after, flipped, why or ["nothing changed: flaky?"]))
    return changes


def describe(change: Change) -> str:
    """One line: ``alice: 3 -> 5 (cases changed); big: wrong answer -> passed``."""
    old = f"{change.old.score:g}/{change.old.max_score:g}" if change.old else "-"
    new = f"{change.new.score:g}/{change.new.max_score:g}" if change.new else "-"
    flips = "; ".join(f"{name}: {a} -> {b}" for name, a, b in change.flipped)
    return f"{change.student}: {old} -> {new} ({', '.join(change.why)})" + (
        f"; {flips}" if flips else ""
    )
