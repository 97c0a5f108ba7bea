"""Finding a class's submissions in a folder, in the three forms students hand them in.

- ``NAME.py``: one file per student;
- ``NAME/main.py``: a folder per student;
- ``NAME.ipynb``: a notebook, whose code cells tagged ``answer`` (in order) are
  the submission. In JupyterLab a tag is added in the right sidebar's
  *Property Inspector* (*Common Tools* > *Cell Tags*); in Notebook 7, *View* >
  *Cell Toolbar* > *Tags*. IPython syntax (``%magic``, ``!shell``) is not
  Python and fails as a syntax error.

A submission that cannot be read as code (a folder without ``main.py``, a
broken notebook, a file over the size cap) is still listed, with the problem,
so that it gets a verdict rather than silence. Hidden files and anything else
are left out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InvalidValueError
from ..core.limits import format_size

__all__ = ["ANSWER_TAG", "MAX_CODE", "Submission", "find_submissions"]

#: The cell tag that marks a notebook's answer cells.
ANSWER_TAG = "answer"
#: The largest submission run; a larger one is listed with that problem.
MAX_CODE = 1024 * 1024


@dataclass(frozen=True)
class Submission:
    """One student's submission.

    Attributes:
        student: the name it is filed under (the file's or folder's stem).
        path: where it was read from.
        code: its Python source; empty when ``problem`` is set.
        problem: why it could not be read as code, else empty.
    """

    student: str
    path: Path
    code: bytes
    problem: str = ""

    @property
    def digest(self) -> str:
        """A SHA-256 of what is graded, so that a changed submission is graded again."""
        return hashlib.sha256(self.code + self.problem.encode()).hexdigest()


def _read_capped(path: Path) -> bytes | None:
    with path.open("rb") as handle:
        data = handle.read(MAX_CODE + 1)
    return None if len(data) > MAX_CODE else data


def _too_big(path: Path) -> str:
    return f"{path.name} is over {format_size(MAX_CODE)}; it was not run"


def _from_notebook(path: Path, tag: str) -> tuple[bytes, str]:
    raw = _read_capped(path)
    if raw is None:
        return b"", _too_big(path)
    try:
        notebook = json.loads(raw)
        cells = notebook["cells"]
        sources = []
        for cell in cells:
            tags = (cell.get("metadata") or {}).get("tags") or []
            if cell.get("cell_type") == "code" and tag in tags:
                source = cell.get("source", "")
                sources.append("".join(source) if isinstance(source, list) else str(source))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return b"", f"{path.name} is not a readable notebook ({type(exc).__name__})"
    if not sources:
        return b"", f"{path.name} has no code cell tagged {tag!r}"
    return ("\n\n".join(sources) + "\n").encode("utf-8"), ""


def find_submissions(folder: Path, *, tag: str = ANSWER_TAG) -> list[Submission]:
    """Every submission in ``folder``, sorted by student.

    Raises:
        InvalidValueError: ``folder`` is not a folder, or two submissions share
            a student's name (``ada.py`` and ``ada/``).
    """
    if not folder.is_dir():
        raise InvalidValueError("submissions", str(folder), "a folder of submissions")
    found: dict[str, Submission] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        code, problem = b"", ""
        if entry.is_dir():
            main = entry / "main.py"
            if not main.is_file():
                problem = f"{entry.name}/ has no main.py"
            else:
                data = _read_capped(main)
                code, problem = (data, "") if data is not None else (b"", _too_big(main))
        elif entry.suffix == ".py" and entry.is_file():
            data = _read_capped(entry)
            code, problem = (data, "") if data is not None else (b"", _too_big(entry))
        elif entry.suffix == ".ipynb" and entry.is_file():
            code, problem = _from_notebook(entry, tag)
        else:
            continue
        student = entry.stem if entry.is_file() else entry.name
        if student in found:
            raise InvalidValueError(
                "submissions",
                f"{found[student].path.name} and {entry.name}",
                "one submission per student",
            )
        found[student] = Submission(student, entry, code, problem)
    return [found[name] for name in sorted(found)]
