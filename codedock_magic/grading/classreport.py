"""A class's results on one HTML page (``codedock report``): the score distribution as an
SVG drawn here, the pass rate per case, the slowest and the most memory-hungry
submissions, and the late ones. No script and no outside file; every student
string is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from ..core.limits import format_size
from .formats import Graded

__all__ = ["TOP", "class_report", "score_bins"]

#: How many of the slowest and of the most memory-hungry submissions are listed.
TOP = 5

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:60em}
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{display:inline-block;height:.8em;background:#4a7bd0;vertical-align:middle}
.none{color:#777}section{margin:1.5em 0}
"""


def score_bins(scores: Sequence[float], top: float) -> list[tuple[float, float, int]]:
    """``(low, high, count)`` of each bar: one per point up to 20 points, else 10 bars.

    The last bar holds its high end (full marks).
    """
    if top <= 0:
        return [(0.0, 0.0, len(scores))]
    if top <= 20 and float(top).is_integer():
        edges = [float(i) for i in range(int(top) + 2)]
        bins = [(edges[i], edges[i + 1], 0) for i in range(int(top) + 1)]
    else:
        step = top / 10
        bins = [(i * step, (i + 1) * step, 0) for i in range(10)]
    counted = []
    for low, high, _ in bins:
        last = (low, high) == bins[-1][:2]
        n = sum(low <= s < high or (last and s >= high) for s in scores)
        counted.append((low, high, n))
    return counted


def _histogram(graded: Sequence[Graded]) -> str:
    top = max((g.max_score for g in graded), default=0.0)
    bins = score_bins([g.score for g in graded], top)
    most = max((n for _, _, n in bins), default=0) or 1
    width, height, left, bottom = 640, 240, 40, 40
    bar = (width - left - 10) / len(bins)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="score distribution">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
        f'y2="{height - bottom}" stroke="#333"/>',
        f'<text x="{left - 6}" y="16" text-anchor="end" font-size="11">{most}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end" font-size="11">0</text>',
    ]
    usable = height - bottom - 20
    for i, (low, high, n) in enumerate(bins):
        h = usable * n / most
        x = left + i * bar
        label = f"{low:g}" if high - low == 1 else f"{low:.3g}–{high:.3g}"
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{height - bottom - h:.1f}" width="{bar - 4:.1f}" '
            f'height="{h:.1f}" fill="#4a7bd0"><title>{html.escape(label)}: {n}</title></rect>'
        )
        if n:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom - h - 4:.1f}" '
                f'text-anchor="middle" font-size="11">{n}</text>'
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
            f'font-size="10">{html.escape(label)}</text>'
        )
    parts.append(
        f'<text x="{(width + left) / 2}" y="{height - 6}" text-anchor="middle" '
        f'font-size="12">score (of {top:g})</text></svg>'
    )
    return "".join(parts)


def _pass_rates(graded: Sequence[Graded]) -> str:
    names: list[str] = []
    for one in graded:
        for case in one.cases:
            if case.name not in names:
                names.append(case.name)
    rows = []
    for name in names:
        ran = [c for g in graded for c in g.cases if c.name == name]
        passed = sum(c.passed for c in ran)
        rate = passed / len(ran) if ran else 0.0
        hidden = any(c.hidden for c in ran)
        rows.append(
            f"<tr><td>{html.escape(name)}{' (hidden)' if hidden else ''}</td>"
            f"<td class='n'>{passed}/{len(ran)}</td><td class='n'>{rate:.0%}</td>"
            f"<td><span class='bar' style='width:{math.ceil(rate * 200)}px'></span></td></tr>"
        )
    return (
        "<table><tr><th>case</th><th>passed</th><th>rate</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _ranked(graded: Sequence[Graded], what: str) -> str:
    if what == "time":
        known = [(g, g.duration) for g in graded if g.duration is not None and not g.note]
        shown = [(g, f"{value:.2f} s") for g, value in sorted(known, key=lambda p: -p[1])]
        head = "time (whole check)"
    else:
        hungry = [(g, g.peak_memory) for g in graded if g.peak_memory is not None]
        ordered = sorted(hungry, key=lambda p: -(p[1] or 0))
        shown = [(g, format_size(value or 0)) for g, value in ordered]
        head = "peak memory (container)"
    if not shown:
        return "<p class='none'>These results do not record it.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(g.student)}</td><td class='n'>{html.escape(text)}</td>"
        f"<td class='n'>{g.score:g}/{g.max_score:g}</td></tr>"
        for g, text in shown[:TOP]
    )
    return f"<table><tr><th>student</th><th>{head}</th><th>score</th></tr>{rows}</table>"


def _late(graded: Sequence[Graded]) -> str:
    if all(g.late is None for g in graded):
        return (
            "<p class='none'>These results record no hand-in times, so no lateness: "
            "nothing here says who was late.</p>"
        )
    late = [g for g in graded if g.late]
    if not late:
        return "<p>None was late.</p>"
    items = "".join(
        f"<li>{html.escape(g.student)} ({g.score:g}/{g.max_score:g})</li>" for g in late
    )
    return f"<ul>{items}</ul>"


def class_report(graded: Sequence[Graded], *, title: str = "Class report") -> str:
    """The page, as HTML text."""
    esc = html.escape
    n = len(graded)
    scores = sorted(g.score for g in graded)
    top = max((g.max_score for g in graded), default=0.0)
    median = (scores[(n - 1) // 2] + scores[n // 2]) / 2 if n else 0.0
    mean = sum(scores) / n if n else 0.0
    full = sum(g.score == g.max_score and g.max_score > 0 for g in graded)
    not_run = [g for g in graded if g.note]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{n} submissions · mean {mean:.3g} · median {median:g} of {top:g} · "
        f"full marks {full}</p>",
        "<section><h2>Scores</h2>",
        _histogram(graded) if n else "<p class='none'>No submissions.</p>",
        "</section><section><h2>Pass rate per case</h2>",
        _pass_rates(graded),
        "</section><section><h2>Slowest submissions</h2>",
        _ranked(graded, "time"),
        "</section><section><h2>Most memory-hungry submissions</h2>",
        _ranked(graded, "memory"),
        "</section><section><h2>Late submissions</h2>",
        _late(graded),
        "</section>",
    ]
    if not_run:
        parts.append("<section><h2>Not run</h2><ul>")
        parts += [f"<li>{esc(g.student)}: {esc(g.note)}</li>" for g in not_run]
        parts.append("</ul></section>")
    parts.append("</body></html>\n")
    return "".join(parts)
