"""What a run and a check may make the host keep beyond their output: the one budget.

A program decides how much it sends; the host decides how much of it it keeps.
Output has its cap (``limits.output``, per stream); images, files and a value
have theirs (:mod:`codedock_magic.local.display`). Everything else a program can
cause is a note, and notes are bounded here: at most :data:`MAX_NOTES` of at most
:data:`NOTE_CHARS` characters, then one closing note saying how much more was not
kept. A check's cases share one output budget (:class:`CheckBudget`).
"""

from __future__ import annotations

__all__ = [
    "CASE_FLOOR",
    "MAX_NOTES",
    "MAX_VALUE_DEPTH",
    "NAME_CHARS",
    "NOTE_CHARS",
    "CheckBudget",
    "NoteBudget",
    "clip",
]

#: Notes kept per run; past them only a count.
MAX_NOTES = 20
#: Characters kept of one note.
NOTE_CHARS = 300
#: Characters of a name (a file's, an image type's) placed in a note.
NAME_CHARS = 120
#: How deeply a returned value may nest (lists and objects); deeper is refused with a note.
MAX_VALUE_DEPTH = 100
#: Bytes per stream each case keeps once a check's budget is spent.
CASE_FLOOR = 1024


def clip(text: str, most: int) -> str:
    """``text``, or its first ``most`` characters and an ellipsis."""
    return text if len(text) <= most else text[: max(0, most - 1)] + "…"


class NoteBudget:
    """A run's notes, bounded however many the program causes.

    Attributes:
        kept: the first :data:`MAX_NOTES` notes, each clipped to :data:`NOTE_CHARS`.
        dropped: how many notes came after those.
        lost: bytes the program sent that were not kept (rejected images, values,
            files past their caps, a display stream after it broke), as far as known.
    """

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.dropped = 0
        self.lost = 0

    def add(self, text: str, lost: int = 0) -> None:
        """One more note; ``lost`` is how many of the program's bytes it stands for."""
        self.lost += max(0, lost)
        if len(self.kept) < MAX_NOTES:
            self.kept.append(clip(text, NOTE_CHARS))
        else:
            self.dropped += 1

    def closing(self) -> list[str]:
        """The kept notes, and one closing note when more were not kept."""
        if not self.dropped:
            return list(self.kept)
        closing = f"{self.dropped:,} more notes like these were not kept"
        if self.lost:
            closing += f"; {self.lost:,} bytes the program sent were not kept in all"
        return [*self.kept, closing]


class CheckBudget:
    """One output budget for all cases of a check, per stream.

    Each case keeps at most the output cap per stream, as a run does; together the
    cases keep at most the cap per stream, except that a case always keeps
    :data:`CASE_FLOOR` bytes per stream (a head and a tail), so that a later case
    can still be judged on a short answer.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.left = {"stdout": cap, "stderr": cap}

    def case_cap(self, stream: str) -> int:
        """What the next case may keep of ``stream``."""
        return min(self.cap, max(self.left[stream], CASE_FLOOR))

    def spend(self, stream: str, kept: int) -> None:
        """A case kept ``kept`` bytes of ``stream``."""
        self.left[stream] = max(0, self.left[stream] - kept)

    def most(self, cases: int) -> int:
        """The most a check of ``cases`` cases keeps per stream, in bytes."""
        return self.cap + cases * CASE_FLOOR
