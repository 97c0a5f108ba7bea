"""Finding a class's submissions in a folder, in the three forms students hand them in.

- ``NAME.py``: one file per student;
- ``NAME/main.py``: a folder per student;
- ``NAME.ipynb``: a notebook, whose code cells tagged ``answer`` (in order) are
  the submission. In JupyterLab a tag is added in the right sidebar's
  *Property Inspector* (*Common Tools* > *Cell Tags*); in Notebook 7, *View* >
  *Cell Toolbar* > *Tags*. IPython syntax (``%magic``, ``!shell``) is not
  Python and fails as a syntax error.

Every other entry of the folder is listed too, with why it was not run (a
folder without ``main.py``, a notebook that is not one, a file over the size
cap, a file that is not a submission, one that cannot be read, two submissions
of one student), so that it gets a row of ``error`` verdicts rather than silence
or a stopped batch. Entries whose names start with ``.`` or ``_`` are left out.

A symlink is followed only to a file inside the folder: one that leads out of it
(to a teacher's solution, say) is not opened, and its row says so. The check
holds while the folder changes underneath: what is read is the file actually
opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
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


class _Unfit(Exception):
    """Why an entry cannot be read as code: the row's note."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _read_capped(path: Path, root: str) -> bytes | None:
    """The file's bytes (``None`` past :data:`MAX_CODE`), if it really lies in ``root``.

    Raises:
        _Unfit: it leads out of ``root``, or is not a regular file.
        OSError: it cannot be read.
    """
    real = os.path.realpath(path)
    if not _inside(real, root):
        raise _Unfit(_outside(path, root))
    # The last component cannot be swapped for a symlink once resolved (O_NOFOLLOW),
    # nor a FIFO make the read block (O_NONBLOCK); what was opened is checked below.
    fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        opened = _opened_path(fd)
        if opened is not None and not _inside(opened, root):
            raise _Unfit(_outside(path, root))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Unfit(f"{_shown(path, root)} is not a regular file; it was not run")
        chunks, size = [], 0
        while size <= MAX_CODE:
            chunk = os.read(fd, MAX_CODE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return None if len(data) > MAX_CODE else data


def _opened_path(fd: int) -> str | None:
    # Where the kernel says the descriptor leads: the truth, whatever was renamed
    # or replaced by a symlink since the path was resolved (Linux).
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _shown(path: Path, root: str) -> str:
    relative = os.path.relpath(os.path.abspath(path), root)
    return relative if not relative.startswith("..") else path.name


def _outside(path: Path, root: str) -> str:
    return (
        f"{_shown(path, root)} is a symlink leading out of the submissions folder; "
        "it was not followed"
    )


def _too_big(path: Path, root: str) -> str:
    return f"{_shown(path, root)} is over {format_size(MAX_CODE)}; it was not run"


def _code_of(path: Path, root: str) -> tuple[bytes, str]:
    data = _read_capped(path, root)
    return (data, "") if data is not None else (b"", _too_big(path, root))


def _from_notebook(path: Path, root: str, tag: str) -> tuple[bytes, str]:
    raw = _read_capped(path, root)
    if raw is None:
        return b"", _too_big(path, root)
    try:
        notebook = json.loads(raw)
        sources = []
        for cell in notebook["cells"]:
            tags = (cell.get("metadata") or {}).get("tags") or []
            if cell.get("cell_type") == "code" and isinstance(tags, list) and tag in tags:
                source = cell.get("source", "")
                sources.append("".join(source) if isinstance(source, list) else str(source))
    except Exception as exc:  # a student's file: whatever it holds is a note
        # Deep nesting (RecursionError), huge numbers, cells of any shape...
        return b"", f"{path.name} is not a readable notebook ({type(exc).__name__})"
    if not sources:
        return b"", f"{path.name} has no code cell tagged {tag!r}"
    return ("\n\n".join(sources) + "\n").encode("utf-8", "replace"), ""


def _student(name: str) -> str:
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix in (".py", ".ipynb") and name != suffix else name


def _read(entry: Path, root: str, tag: str) -> tuple[bytes, str]:
    """The code of one entry of the folder, or why there is none."""
    name = entry.name
    if not _inside(os.path.realpath(entry), root):
        return b"", _outside(entry, root)
    if entry.is_dir():
        if entry.suffix in (".py", ".ipynb"):
            return b"", f"{name}/ is a folder, not a file"
        main = entry / "main.py"
        if not main.exists() and not main.is_symlink():
            return b"", f"{name}/ has no main.py"
        return _code_of(main, root)
    if entry.suffix == ".py":
        return _code_of(entry, root)
    if entry.suffix == ".ipynb":
        return _from_notebook(entry, root, tag)
    return b"", f"{name} is not a submission: hand in NAME.py, NAME.ipynb or NAME/main.py"


def find_submissions(folder: Path, *, tag: str = ANSWER_TAG) -> list[Submission]:
    """Every submission in ``folder``, sorted by student; each entry is one.

    Raises:
        InvalidValueError: ``folder`` is not a folder, or cannot be listed.
    """
    if not folder.is_dir():
        raise InvalidValueError("submissions", str(folder), "a folder of submissions")
    root = os.path.realpath(folder)
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise InvalidValueError(
            "submissions", str(folder), f"a folder we can read ({exc})"
        ) from None
    found: dict[str, Submission] = {}
    for entry in entries:
        if entry.name.startswith((".", "_")):
            continue
        try:
            code, problem = _read(entry, root, tag)
        except _Unfit as exc:
            code, problem = b"", str(exc)
        except Exception as exc:  # one entry must never stop the batch
            why = getattr(exc, "strerror", None) or type(exc).__name__
            code, problem = b"", f"{entry.name} could not be read ({why}); it was not run"
        student = _student(entry.name)
        if student in found:
            first = found[student]
            # Which one the student meant is not ours to guess.
            problem = (
                f"{first.path.name} and {entry.name} are both submissions of {student!r}; keep one"
            )
            found[student] = Submission(student, first.path, b"", problem)
            continue
        found[student] = Submission(student, entry, code, problem)
    return [found[name] for name in sorted(found)]
