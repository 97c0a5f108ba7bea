"""The program's output made safe to show beside the product's own words.

A program can print anything, including terminal control sequences that move the
cursor, clear lines or recolour text, which in a terminal (and in a notebook's
ANSI rendering) can hide the real status line and paint a fake one. Every view
shows program output through :class:`Neutraliser`:

- newlines and tabs stay; every other control character (C0, DEL, C1) and the
  bidirectional overrides that reorder a line are shown visibly, as ``\\x1b`` or
  ``\\u202e``;
- a line of the program's that starts with the product's own marker
  (``[sandbox]``) is shown with the marker escaped, ``\\[sandbox]``, so that a line
  starting with the marker is always the product's.

A string that the view places inside one of its own lines (a file's name, a
note, a case's name, a checker's message) goes through :func:`one_line` instead:
there a newline or a tab is shown visibly too, and the string is clipped, so it
can neither start a line of its own nor push the real one away.
"""

from __future__ import annotations

import re

__all__ = ["MARKER", "NAME_CHARS", "Neutraliser", "neutralise", "one_line"]

#: How the product's own lines start (the status line of the text view).
MARKER = "[sandbox]"

_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_ANY_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: Characters of a string from the sandbox kept inside one of the view's lines.
NAME_CHARS = 300
_LINES = re.compile("[^\n]*\n|[^\n]+")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Neutraliser:
    """Neutralises one stream fed in pieces (a marker split across pieces is still caught)."""

    def __init__(self) -> None:
        self._line_start = True
        self._held = ""

    def feed(self, text: str) -> str:
        """Return the safe form of ``text``; a possible marker's start is held back."""
        text = self._held + _CONTROL.sub(_visible, text)
        self._held = ""
        out: list[str] = []
        for line in _LINES.findall(text):
            if self._line_start:
                if line.startswith(MARKER):
                    line = "\\" + line
                elif MARKER.startswith(line) and not line.endswith("\n"):
                    # It may yet become the marker: wait for the next piece.
                    self._held = line
                    break
            out.append(line)
            self._line_start = line.endswith("\n")
        return "".join(out)

    def flush(self) -> str:
        """Whatever was held back, now that nothing more comes."""
        held, self._held = self._held, ""
        if held:
            self._line_start = False
        return held


def neutralise(text: str) -> str:
    """The safe form of a whole stream's text."""
    neutraliser = Neutraliser()
    return neutraliser.feed(text) + neutraliser.flush()


def one_line(text: str, most: int = NAME_CHARS) -> str:
    """``text`` safe inside one of the view's lines: every control visible, clipped to ``most``.

    It is clipped first, so that what is shown stays within about four times ``most``.
    """
    if len(text) > most:
        text = text[: max(0, most - 1)] + "…"
    return _ANY_CONTROL.sub(_visible, text)
