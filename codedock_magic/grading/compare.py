"""Judging one case's output against what was expected, and showing how they differ.

Everything here runs on the host, on the output the program printed, as text:
never on the program's objects. A checker function is the teacher's own code; it
and a regex compare run in a child process with a time limit
(:mod:`.bounded`), as the student chooses the output they judge.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any

from ..core.errors import CheckerError
from .bounded import JUDGE_SECONDS, JudgeFailed, JudgeTimeout, bounded
from .cases import Case

__all__ = ["DIFF_LINES", "judge", "normalise_whitespace", "visible_diff"]

#: Lines of diff kept; a program printing a million wrong lines shows the start.
DIFF_LINES = 60
_LINE_CHARS = 300
# difflib is quadratic at worst: only the start of a huge output is compared.
_DIFFED_LINES = 2000


def normalise_whitespace(text: str) -> str:
    """``text`` without trailing whitespace on each line, or blank lines at its end."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _numbers_match(got: str, expected: str, tolerance: float) -> bool:
    got_words, expected_words = got.split(), expected.split()
    if len(got_words) != len(expected_words):
        return False
    for have, want in zip(got_words, expected_words, strict=True):
        try:
            a, b = float(have), float(want)
        except ValueError:
            if have != want:
                return False
            continue
        if math.isnan(b):
            if not math.isnan(a):
                return False
        elif not math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance):
            return False
    return True


def judge(case: Case, output: str, *, seconds: float = JUDGE_SECONDS) -> tuple[float, str]:
    """The fraction of ``case``'s points that ``output`` earns (0 to 1), and a message.

    A checker and a regex compare get ``seconds`` each, in a child process.

    Raises:
        CheckerError: the case's checker raised, returned something else than a
            bool, a fraction or either with a message, or it or the regex ran past
            ``seconds``.
    """
    expected = case.expected or ""
    if case.compare == "exact":
        return float(output == expected), ""
    if case.compare == "whitespace":
        return float(normalise_whitespace(output) == normalise_whitespace(expected)), ""
    if case.compare == "numeric":
        return float(_numbers_match(output, expected, case.tolerance)), ""
    if case.compare == "regex":
        text = normalise_whitespace(output)
        matched = _bounded(case, lambda: re.fullmatch(expected, text) is not None, seconds)
        return float(bool(matched)), ""
    assert case.checker is not None
    said = _bounded(case, lambda: _run_checker(case, output), seconds)
    if said[0] == "unfit":
        raise CheckerError(repr(case.name), said[1])
    return float(said[1]), str(said[2])


def _bounded(case: Case, judgement: Callable[[], Any], seconds: float) -> Any:
    try:
        return bounded(judgement, seconds=seconds)
    except JudgeTimeout:
        what = "the regex compare" if case.compare == "regex" else "it"
        hint = " (a pattern that backtracks catastrophically?)" if case.compare == "regex" else ""
        raise CheckerError(
            repr(case.name),
            f"a timeout: {what} ran past {seconds:g} s on the program's output and was "
            f"stopped{hint}",
        ) from None
    except JudgeFailed as exc:
        raise CheckerError(repr(case.name), str(exc)) from None


def _run_checker(case: Case, output: str) -> list[Any]:
    # Runs in the child (see judge): ``["ok", fraction, message]`` or ``["unfit", why]``;
    # what the checker raises is reported as its error.
    assert case.checker is not None
    said = case.checker(output, case)
    message = ""
    if isinstance(said, tuple) and len(said) == 2 and isinstance(said[1], str):
        said, message = said
    if isinstance(said, bool) or (isinstance(said, (int, float)) and 0 <= said <= 1):
        return ["ok", float(said), message[:2000]]
    shown = repr(said)
    shown = shown if len(shown) <= 200 else shown[:200] + "…"
    return [
        "unfit",
        f"nothing: it returned {shown}, not True/False, a fraction 0..1, or one with a message",
    ]


def _visible(line: str) -> str:
    shown = line.replace("\t", "→").replace("\r", "␍")
    # Trailing spaces, and runs of spaces inside, are where outputs differ unseen.
    stripped = shown.rstrip(" ")
    shown = stripped + "·" * (len(shown) - len(stripped))
    shown = re.sub(r" {2,}", lambda m: "·" * len(m.group()), shown)
    if len(shown) > _LINE_CHARS:
        shown = shown[:_LINE_CHARS] + f"… ({len(shown) - _LINE_CHARS} more characters)"
    return shown


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif text:
        lines[-1] += "⌁"  # no newline at the end
    return [_visible(line) for line in lines[:_DIFFED_LINES]]


def visible_diff(expected: str, got: str, *, label: str = "expected") -> str:
    """A unified diff of expected against got, with whitespace made visible.

    Spaces at line ends and in runs show as ``·``, tabs as ``→``, carriage
    returns as ``␍``, and a last line with no newline ends in ``⌁``.
    """
    lines = list(
        difflib.unified_diff(_lines(expected), _lines(got), label, "got", lineterm="", n=2)
    )
    if not lines:
        return ""
    if len(lines) > DIFF_LINES:
        lines = [*lines[:DIFF_LINES], f"… {len(lines) - DIFF_LINES} more lines of diff"]
    return "\n".join(lines)
