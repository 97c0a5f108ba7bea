"""The static rendering of a finished run: HTML for notebooks, text for terminals.

Pure functions of a :class:`~codedock_magic.result.RunResult`: what stays in a saved
notebook, nbconvert output and a terminal. Everything the program wrote is
escaped before it is placed in HTML.
"""

from __future__ import annotations

import html

from ..limits import Limits
from ..result import RunResult, RunStatus
from ..safetext import MARKER, neutralise

__all__ = ["COLOURS", "badge", "details", "meta", "render_html", "render_text", "status_line"]

#: Badge colours (white text on each has a contrast ratio of at least 4.5).
COLOURS = {
    "running": "#1565c0",
    RunStatus.OK.value: "#2e7d32",
    RunStatus.ERROR.value: "#c62828",
    RunStatus.TIMEOUT.value: "#b45309",
    RunStatus.MEMORY_LIMIT.value: "#6a1b9a",
    RunStatus.SIGNALED.value: "#7f1d1d",
    RunStatus.INTERRUPTED.value: "#475569",
}

_STDERR_STYLE = "background:#fdecea;color:#7f1d1d;"
_PRE_STYLE = (
    "margin:0.2em 0;padding:0.3em 0.5em;white-space:pre-wrap;overflow-wrap:anywhere;"
    "max-height:40em;overflow-y:auto;font-family:var(--jp-code-font-family,monospace);"
    "font-size:var(--jp-code-font-size,13px);"
)


def details(limits: Limits, image: str, duration: float | None) -> str:
    """``0.12 s · timeout 2s · memory 100m · cpus 1 · pids 64 · image NAME``."""
    took = f"{duration:.2f} s · " if duration is not None else ""
    return f"{took}{limits.describe()} · image {image}"


def status_line(result: RunResult) -> str:
    """``[sandbox] ok · 0.12 s · timeout 2s · memory 100m · cpus 1 · pids 64 · image ...``

    It alone starts with the marker: program lines that do are shown escaped.
    """
    line = f"{MARKER} {result.describe()} · {details(result.limits, result.image, result.duration)}"
    if result.truncated:
        line += f" · output cut to a head and a tail of {result.limits.output // 1024} KiB"
    return line


def badge(status: str, label: str) -> str:
    """A coloured status pill; ``label`` is escaped."""
    colour = COLOURS.get(status, COLOURS["running"])
    return (
        f'<span class="codedock-badge" data-status="{html.escape(status)}" '
        f'style="display:inline-block;background:{colour};color:#fff;border-radius:1em;'
        "padding:0.1em 0.8em;font-weight:600;font-family:var(--jp-ui-font-family,sans-serif);"
        f'font-size:0.9em;white-space:nowrap">{html.escape(label)}</span>'
    )


def meta(text: str) -> str:
    """Grey details beside a badge; ``text`` is escaped."""
    return (
        '<span class="codedock-meta" style="color:var(--jp-ui-font-color2,#555);'
        f'font-size:0.85em;margin-left:0.6em">{html.escape(text)}</span>'
    )


def render_html(result: RunResult) -> str:
    """The static rendering of a finished run: badge, details, stdout, stderr.

    The program's text is neutralised (see :mod:`codedock_magic.safetext`), then escaped.
    """
    parts = [
        f'<div class="codedock-result" data-status="{html.escape(result.status.value)}">',
        f"<div>{badge(result.status.value, result.describe())}"
        f"{meta(details(result.limits, result.image, result.duration))}</div>",
    ]
    if result.stdout:
        shown = html.escape(neutralise(result.stdout))
        parts.append(f'<pre class="codedock-stdout" style="{_PRE_STYLE}">{shown}</pre>')
    if result.stderr:
        parts.append(
            f'<pre class="codedock-stderr" style="{_PRE_STYLE}{_STDERR_STYLE}">'
            f"{html.escape(neutralise(result.stderr))}</pre>"
        )
    if result.truncated:
        parts.append(
            '<div class="codedock-notice" style="color:#b45309;font-size:0.85em">'
            f"Output passed the {result.limits.output // 1024} KiB cap: only its head and tail "
            "are shown.</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def render_text(result: RunResult) -> str:
    """The plain-text rendering: stdout, stderr, then the status line.

    The program's text is neutralised, so only the status line starts with the marker.
    """
    safe = [neutralise(text) for text in (result.stdout, result.stderr)]
    pieces = [p if p.endswith("\n") else p + "\n" for p in safe if p]
    return "".join(pieces) + status_line(result)
