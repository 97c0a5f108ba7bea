"""The results file of ``codedock grade``: a row per student, signed, safe in a spreadsheet.

Students choose their file names, and a results file may sit where they can
write. So:

- every CSV cell that could start a formula (``=``, ``+``, ``-``, ``@``, a tab, a
  carriage return, or their full-width forms) is written with a leading ``'``,
  which a spreadsheet shows as text (and a cell that starts with ``'`` gets one
  more, so that reading it back is exact);
- every row, in either format, carries an HMAC-SHA256 of its content made with
  a key kept in the grader's own config folder
  (``$XDG_CONFIG_HOME/codedock/grade.key``, else ``~/.config/codedock/grade.key``,
  created with mode 0600). On resume a row whose signature does not match, or
  whose fields do not add up (a score that is not the cases', a verdict that is
  none, a number out of range), is not trusted: its student is graded again.
  Without the key no one can write a row that passes for one of ours;
- a row that cannot be parsed is dropped the same way, never a crash, and so is
  every row of a file written before rows were signed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import io
import json
import math
import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..core.errors import InvalidValueError
from .cases import Case
from .check import CheckResult, Verdict
from .submissions import Submission

__all__ = ["Records", "cases_digest", "from_cell", "signing_key", "to_cell"]

_FIXED = ("student", "score", "max_score", "passed", "total")
_TRAILING = ("note", "submission_sha256", "cases_sha256", "signature")
# What a spreadsheet reads as the start of a formula, and the escape itself.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠", "'")
_VERDICTS = frozenset(verdict.value for verdict in Verdict)
_KEY_BYTES = 32


def to_cell(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs as a formula (see :func:`from_cell`)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def from_cell(cell: str) -> str:
    """The text :func:`to_cell` was given."""
    return cell[1:] if cell.startswith("'") else cell


def cases_digest(cases: Sequence[Case]) -> str:
    """A SHA-256 of the cases, so that results graded against other cases are not reused."""
    text = json.dumps([case.to_dict() for case in cases], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def signing_key() -> bytes:
    """The grader's key for signing rows, made on first use; a fresh one if it cannot be kept.

    With a fresh key nothing a file holds is trusted: every student is graded again.
    """
    try:
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        path = Path(config) / "codedock" / "grade.key"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(_KEY_BYTES))
        key = bytes.fromhex(path.read_text().strip())
        if len(key) >= _KEY_BYTES:
            return key
    except (OSError, ValueError, RuntimeError):
        pass
    return secrets.token_bytes(_KEY_BYTES)


def _sign(key: bytes, student: str, content: object) -> str:
    text = json.dumps([student, content], sort_keys=True, ensure_ascii=True)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _number(text: object) -> float:
    value = float(text)  # type: ignore[arg-type]
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a score")
    return value


class Records:
    """The output file's records by student, rewritten whole (atomically) after each change.

    Args:
        path: ``*.csv`` or ``*.json``.
        cases: the cases being graded against.
        fresh: ignore what the file holds and start over.
        key: the key rows are signed with (by default :func:`signing_key`).

    Attributes:
        untrusted: the students whose rows were dropped on reading (a bad
            signature, fields that do not add up, a row that cannot be read);
            they are graded again.

    Raises:
        InvalidValueError: the suffix is neither, or the file holds results for
            other cases (and ``fresh`` is not set), or cannot be read.
    """

    def __init__(
        self,
        path: Path,
        cases: Sequence[Case],
        *,
        fresh: bool = False,
        key: bytes | None = None,
    ) -> None:
        if path.suffix.lower() not in (".csv", ".json"):
            raise InvalidValueError("--out", str(path), "a path ending in .csv or .json")
        self.path = path
        self.cases = list(cases)
        self.digest = cases_digest(cases)
        self.key = key if key is not None else signing_key()
        self.rows: dict[str, dict[str, Any]] = {}
        self.untrusted: list[str] = []
        if path.exists() and not fresh:
            self._load()

    @property
    def is_csv(self) -> bool:
        return self.path.suffix.lower() == ".csv"

    def _columns(self) -> list[str]:
        return [to_cell(name) for name in (*_FIXED, *(c.name for c in self.cases), *_TRAILING)]

    def _other(self) -> InvalidValueError:
        return InvalidValueError(
            "--out",
            str(self.path),
            "a file of results for these cases (it holds other results); write to another "
            "--out, or pass --fresh to grade everyone again",
        )

    def _load(self) -> None:
        try:
            # newline="": a name with a carriage return in it reads back as it was.
            with self.path.open(encoding="utf-8", newline="") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidValueError("--out", str(self.path), f"readable ({exc})") from None
        if not text.strip():
            return
        found = self._load_csv(text) if self.is_csv else self._load_json(text)
        seen: dict[str, int] = {}
        for student, _ in found:
            seen[student] = seen.get(student, 0) + 1
        for student, row in found:
            if row is None or seen[student] > 1:
                if student not in self.untrusted:
                    self.untrusted.append(student)
            else:
                self.rows[student] = row

    def _load_csv(self, text: str) -> list[tuple[str, dict[str, Any] | None]]:
        found: list[tuple[str, dict[str, Any] | None]] = []
        reader = csv.reader(io.StringIO(text, newline=""))
        columns = self._columns()
        try:
            header = next(reader)
        except csv.Error:
            raise self._other() from None
        if header == columns[:-1]:
            # Written before rows were signed: none can be trusted, all are graded again.
            columns = header
        elif header != columns:
            raise self._other()
        try:
            for cells in reader:
                if not cells:
                    continue
                student = from_cell(cells[0])
                row = dict(zip(columns, cells, strict=False)) if len(cells) == len(columns) else {}
                if "signature" in row:
                    found.append((student, self._trusted_csv(student, row)))
                elif row and row["cases_sha256"] != self.digest:
                    raise self._other()
                else:
                    found.append((student, None))
        except csv.Error:
            # The rest of the file is past reading; those students are graded again.
            found.append(("(rows that could not be read)", None))
        return found

    def _trusted_csv(self, student: str, row: dict[str, Any]) -> dict[str, Any] | None:
        if not row or not student:
            return None
        content = [row[name] for name in self._columns()[:-1]]
        if not hmac.compare_digest(row["signature"], _sign(self.key, student, content)):
            return None
        if row["cases_sha256"] != self.digest:
            raise self._other()
        try:
            verdicts = [row[to_cell(case.name)] for case in self.cases]
            score = _number(row["score"])
            # Full points for each case passed, a share of them for a wrong answer
            # (a checker's fraction), none otherwise.
            pairs = list(zip(self.cases, verdicts, strict=True))
            least = sum(case.points for case, verdict in pairs if verdict == "passed")
            most = least + sum(case.points for case, verdict in pairs if verdict == "wrong answer")
            slack = 1e-5 * max(1.0, most)  # the :g of the written numbers
            sound = (
                set(verdicts) <= _VERDICTS
                and row["total"] == str(len(self.cases))
                and row["passed"] == str(verdicts.count(Verdict.PASSED.value))
                and row["max_score"] == f"{sum(c.points for c in self.cases):g}"
                and least - slack <= score <= most + slack
            )
        except (ValueError, TypeError):
            return None
        return row if sound else None

    def _load_json(self, text: str) -> list[tuple[str, dict[str, Any] | None]]:
        try:
            data = json.loads(text)
            submissions = data["submissions"]
            digest = data["cases_sha256"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise self._other() from None
        if digest != self.digest or not isinstance(submissions, dict):
            raise self._other()
        return [
            (str(student), self._trusted_json(str(student), row))
            for student, row in submissions.items()
        ]

    def _trusted_json(self, student: str, row: object) -> dict[str, Any] | None:
        if not isinstance(row, dict) or not isinstance(row.get("signature"), str):
            return None
        content = {name: value for name, value in row.items() if name != "signature"}
        try:
            signature = _sign(self.key, student, content)
        except (TypeError, ValueError, RecursionError):
            return None
        if not hmac.compare_digest(row["signature"], signature):
            return None
        try:
            cases = row["cases"]
            points = [_number(case["points"]) for case in cases]
            most = [_number(case["max_points"]) for case in cases]
            sound = (
                row["cases_sha256"] == self.digest
                and [case["name"] for case in cases] == [case.name for case in self.cases]
                and most == [case.points for case in self.cases]
                and all({case["verdict"]} <= _VERDICTS for case in cases)
                and all(p <= m for p, m in zip(points, most, strict=True))
                and math.isclose(_number(row["score"]), sum(points), abs_tol=1e-9)
                and row["passed"] == sum(case["verdict"] == "passed" for case in cases)
            )
        except (KeyError, TypeError, ValueError):
            return None
        return row if sound else None

    def graded(self, submission: Submission) -> bool:
        """Whether ``submission``, as it is now, has been graded against these cases."""
        row = self.rows.get(submission.student)
        return row is not None and row.get("submission_sha256") == submission.digest

    def add(self, submission: Submission, result: CheckResult) -> None:
        """Record ``result`` for ``submission``, signed, and write the file."""
        student = submission.student
        if self.is_csv:
            values = {
                "student": student,
                "score": f"{result.score:g}",
                "max_score": f"{result.max_score:g}",
                "passed": str(result.passed),
                "total": str(len(result.cases)),
                **{case.name: case.verdict.value for case in result.cases},
                "note": submission.problem,
                "submission_sha256": submission.digest,
                "cases_sha256": self.digest,
            }
            row: dict[str, Any] = {to_cell(name): to_cell(value) for name, value in values.items()}
            content: object = [row[name] for name in self._columns()[:-1]]
        else:
            row = result.to_dict()
            row.update(
                path=submission.path.name,
                note=submission.problem,
                submission_sha256=submission.digest,
                cases_sha256=self.digest,
                # For the class report's most memory-hungry submissions.
                peak_memory=result.run.peak_memory,
            )
            # As it will read back, so that its signature does too.
            row = json.loads(json.dumps(row, default=str))
            content = row
        row["signature"] = _sign(self.key, student, content)
        self.rows[student] = row
        self._write()

    def _write(self) -> None:
        ordered = [self.rows[name] for name in sorted(self.rows)]
        if self.is_csv:
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self._columns())
            writer.writeheader()
            writer.writerows(ordered)
            text = buffer.getvalue()
        else:
            data = {
                "cases_sha256": self.digest,
                "cases": [case.to_dict() for case in self.cases],
                "submissions": {name: self.rows[name] for name in sorted(self.rows)},
            }
            text = json.dumps(data, indent=1, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside it and renamed over it: a crash leaves the old file or the
        # new one, never half of one.
        handle, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
                out.write(text)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
