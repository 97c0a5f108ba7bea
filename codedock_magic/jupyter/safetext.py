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


def _table(codes: list[int]) -> dict[int, str]:
    return {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in codes}


# What is shown visibly, as str.translate takes it: it works in one pass without a
# string per character, so a megabyte of escapes costs a few megabytes, not dozens.
_BIDI = [0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_CONTROL = _table([*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *_BIDI])
_ANY_CONTROL = _table([*range(0x00, 0x20), *range(0x7F, 0xA0), *_BIDI])
#: Characters of a string from the sandbox kept inside one of the view's lines.
NAME_CHARS = 300
_MARKER_AT_LINE_START = re.compile("^" + re.escape(MARKER), re.MULTILINE)


def _escape_markers(text: str) -> str:
    return _MARKER_AT_LINE_START.sub(lambda match: "\\" + match.group(), text)


class Neutraliser:
    """Neutralises one stream fed in pieces (a marker split across pieces is still caught)."""

    def __init__(self) -> None:
        self._line_start = True
        self._held = ""

    def feed(self, text: str) -> str:
        """Return the safe form of ``text``; a possible marker's start is held back."""
        text = self._held + text.translate(_CONTROL)
        self._held = ""
        if not text:
            return ""
        last = text.rfind("\n") + 1
        tail_at_start = self._line_start if last == 0 else True
        tail = text[last:]
        if tail and tail_at_start and len(tail) < len(MARKER) and MARKER.startswith(tail):
            # It may yet become the marker: wait for the next piece.
            self._held, text = tail, text[:last]
        if self._line_start:
            out = _escape_markers(text)
        else:
            # Up to the first newline the text continues a line: no marker there.
            first = text.find("\n") + 1
            out = text if first == 0 else text[:first] + _escape_markers(text[first:])
        if self._held:
            self._line_start = True
        elif out:
            self._line_start = out.endswith("\n")
        return out

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
    return text.translate(_ANY_CONTROL)
