"""The static rendering of a check: a summary badge, a badge per case, diffs, in HTML or text.

Pure functions of a :class:`~codedock_magic.grading.check.CheckResult`. A hidden case
shows its name, verdict and points only (its result holds nothing more); one a
teacher's ``reveal_hidden`` check kept shows everything, marked hidden. The
program's text is neutralised, and escaped in HTML, as for any run.
"""

from __future__ import annotations

import html

from ..grading.check import CaseResult, CheckResult, Verdict
from .render import PRE_STYLE, STDERR_STYLE, badge, details, meta, usage
from .safetext import MARKER, neutralise, one_line

__all__ = [
    "VERDICT_COLOURS",
    "case_html",
    "case_text",
    "check_html",
    "check_text",
    "summary_badge",
]

#: Badge colours by verdict (white text on each has a contrast ratio of at least 4.5).
VERDICT_COLOURS = {
    Verdict.PASSED.value: "#2e7d32",
    Verdict.WRONG_ANSWER.value: "#c62828",
    Verdict.ERROR.value: "#9a3412",
    Verdict.TIMEOUT.value: "#b45309",
    Verdict.MEMORY_LIMIT.value: "#6a1b9a",
    Verdict.KILLED.value: "#475569",
}
# Lines of a failing case's stderr kept in the view: the end of a traceback.
_STDERR_LINES = 15
# Characters kept of each line shown of a case (its stderr's tail, its diff), and of
# all of them together: a case's view weighs at most a few KiB, whatever it printed.
_LINE_CHARS = 300
_SHOWN_CHARS = 4 * 1024


def _pill(colour: str, label: str, kind: str) -> str:
    return (
        f'<span class="codedock-badge" data-verdict="{html.escape(kind)}" '
        f'style="display:inline-block;background:{colour};color:#fff;border-radius:1em;'
        "padding:0.05em 0.7em;font-weight:600;font-family:var(--jp-ui-font-family,sans-serif);"
        f'font-size:0.85em;white-space:nowrap">{html.escape(label)}</span>'
    )


def summary_badge(result: CheckResult) -> str:
    """``7/9 passed · 12/15 points``, green when every case passed, red otherwise."""
    status = "ok" if result.all_passed else "error"
    return badge(status, result.summary())


def _tail(text: str) -> str:
    lines = text.rstrip("\n").split("\n")
    if len(lines) <= _STDERR_LINES:
        return "\n".join(lines)
    return f"[... {len(lines) - _STDERR_LINES} lines ...]\n" + "\n".join(lines[-_STDERR_LINES:])


def _shown(text: str) -> str:
    """What a case's view shows of ``text`` (a diff, a tail): each line and the whole clipped.

    Neutralised: every control visible (newlines stay), a line starting with the
    marker escaped.
    """
    lines = [
        line if len(line) <= _LINE_CHARS else line[: _LINE_CHARS - 1] + "…"
        for line in text.split("\n")
    ]
    kept: list[str] = []
    size = 0
    for line in lines:
        size += len(line) + 1
        if size > _SHOWN_CHARS:
            kept.append(f"[... {len(lines) - len(kept)} more lines ...]")
            break
        kept.append(line)
    return neutralise("\n".join(kept))


def _facts(case: CaseResult) -> str:
    parts = [f"{case.points:g}/{case.max_points:g} points"]
    if not case.withheld:
        parts.append(f"{case.duration:.2f} s")
    if case.detail and not case.withheld:
        parts.append(one_line(case.detail))
    if case.hidden:
        parts.append("hidden")
    return " · ".join(parts)


def case_html(case: CaseResult) -> str:
    """One case: its verdict badge, name and facts, and for a failure the diff or stderr."""
    colour = VERDICT_COLOURS[case.verdict.value]
    parts = [
        f'<div class="codedock-case" data-verdict="{html.escape(case.verdict.value)}" '
        'style="margin:0.15em 0">',
        _pill(colour, case.verdict.value, case.verdict.value),
        f' <b style="margin-left:0.4em">{html.escape(one_line(case.name))}</b>',
        meta(_facts(case)),
    ]
    if not case.passed and not case.withheld:
        if case.diff:
            parts.append(
                f'<pre class="codedock-diff" style="{PRE_STYLE}">'
                f"{html.escape(_shown(case.diff))}</pre>"
            )
        if case.stderr and case.verdict is not Verdict.WRONG_ANSWER:
            parts.append(
                f'<pre class="codedock-stderr" style="{PRE_STYLE}{STDERR_STYLE}">'
                f"{html.escape(_shown(_tail(case.stderr)))}</pre>"
            )
    parts.append("</div>")
    return "".join(parts)


def check_html(result: CheckResult) -> str:
    """The whole check: the summary badge and details, then each case."""
    run = result.run
    parts = [
        f'<div class="codedock-check" data-passed="{result.passed}" '
        f'data-total="{len(result.cases)}">',
        f"<div>{summary_badge(result)}"
        f"{meta(details(run.limits, run.image, run.duration, usage(run)))}</div>",
        *(case_html(case) for case in result.cases),
        "</div>",
    ]
    return "".join(parts)


def case_text(case: CaseResult) -> str:
    """One case as text: a marker line, then (for a visible failure) the diff or stderr."""
    lines = [f"{MARKER} {case.verdict.value}: {one_line(case.name)} · {_facts(case)}"]
    if not case.passed and not case.withheld:
        shown = case.diff or (
            _tail(case.stderr) if case.verdict is not Verdict.WRONG_ANSWER else ""
        )
        lines += ["    " + line for line in _shown(shown).split("\n") if shown]
    return "\n".join(lines)


def check_text(result: CheckResult) -> str:
    """The whole check as text: each case, then the summary line."""
    run = result.run
    shown = details(run.limits, run.image, run.duration, usage(run))
    summary = f"{MARKER} {result.summary()} · {shown}"
    return "\n".join([*(case_text(case) for case in result.cases), summary])
