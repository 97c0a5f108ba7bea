"""The static rendering of a finished run: HTML for notebooks, text for terminals.

Pure functions of a :class:`~codedock_magic.result.RunResult`: what stays in a saved
notebook, nbconvert output and a terminal. Everything the program wrote is
escaped before it is placed in HTML.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from ..limits import Limits
from ..result import RunResult, RunStatus
from ..safetext import MARKER, neutralise

__all__ = [
    "COLOURS",
    "PRE_STYLE",
    "STDERR_STYLE",
    "badge",
    "details",
    "meta",
    "render_html",
    "render_text",
    "status_line",
]

#: Badge colours (white text on each has a contrast ratio of at least 4.5).
COLOURS = {
    "running": "#1565c0",
    "queued": "#4b5563",
    RunStatus.OK.value: "#2e7d32",
    RunStatus.ERROR.value: "#c62828",
    RunStatus.TIMEOUT.value: "#b45309",
    RunStatus.MEMORY_LIMIT.value: "#6a1b9a",
    RunStatus.SIGNALED.value: "#7f1d1d",
    RunStatus.INTERRUPTED.value: "#475569",
}

STDERR_STYLE = "background:#fdecea;color:#7f1d1d;"
PRE_STYLE = (
    "margin:0.2em 0;padding:0.3em 0.5em;white-space:pre-wrap;overflow-wrap:anywhere;"
    "max-height:40em;overflow-y:auto;font-family:var(--jp-code-font-family,monospace);"
    "font-size:var(--jp-code-font-size,13px);"
)


def details(limits: Limits | None, image: str, duration: float | None) -> str:
    """``0.12 s · timeout 2s · memory 100m · cpus 1 · pids 64 · image NAME``.

    Without ``limits`` (a sandbox service decides them, and says so with the
    result) it says whose they are instead.
    """
    took = f"{duration:.2f} s · " if duration is not None else ""
    applied = limits.describe() if limits is not None else "limits of the sandbox service"
    return f"{took}{applied} · image {image}"


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


def _cut_marker(count: int) -> str:
    return f"\n[... {count:,} characters cut from the saved view; --result keeps them ...]\n"


def _fit(text: str, budget: int, size: Callable[[str], int]) -> str:
    """``text``, or a head and a tail of it, whose rendered ``size`` is within ``budget``."""
    if size(text) <= budget:
        return text
    low, high, keep = 0, len(text) // 2, 0
    while low <= high:
        middle = (low + high) // 2
        cut = len(text) - 2 * middle
        if size(text[:middle] + _cut_marker(cut) + text[len(text) - middle :]) <= budget:
            keep, low = middle, middle + 1
        else:
            high = middle - 1
    return text[:keep] + _cut_marker(len(text) - 2 * keep) + text[len(text) - keep :]


def _fit_streams(
    stdout: str, stderr: str, budget: int, size: Callable[[str], int]
) -> tuple[str, str]:
    """Both streams within one ``budget``: a stream that needs less leaves the rest to the other.

    So that a saved notebook stays near the output cap however the output is made
    (escaping can make HTML five times the text, and there are two renderings).
    """
    out, err = size(stdout), size(stderr)
    if out + err <= budget:
        return stdout, stderr
    half = budget // 2
    if out <= half:
        return stdout, _fit(stderr, budget - out, size)
    if err <= half:
        return _fit(stdout, budget - err, size), stderr
    return _fit(stdout, half, size), _fit(stderr, budget - half, size)


def _html_size(text: str) -> int:
    return len(html.escape(text).encode())


def _text_size(text: str) -> int:
    return len(text.encode())


def render_html(result: RunResult) -> str:
    """The static rendering of a finished run: badge, details, stdout, stderr.

    The program's text is neutralised (see :mod:`codedock_magic.safetext`), then escaped;
    together the streams take at most the output cap in bytes.
    """
    stdout, stderr = _fit_streams(
        neutralise(result.stdout), neutralise(result.stderr), result.limits.output, _html_size
    )
    parts = [
        f'<div class="codedock-result" data-status="{html.escape(result.status.value)}">',
        f"<div>{badge(result.status.value, result.describe())}"
        f"{meta(details(result.limits, result.image, result.duration))}</div>",
    ]
    if stdout:
        shown = html.escape(stdout)
        parts.append(f'<pre class="codedock-stdout" style="{PRE_STYLE}">{shown}</pre>')
    if stderr:
        parts.append(
            f'<pre class="codedock-stderr" style="{PRE_STYLE}{STDERR_STYLE}">'
            f"{html.escape(stderr)}</pre>"
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

    The program's text is neutralised, so only the status line starts with the marker;
    together the streams take at most the output cap in bytes.
    """
    safe = _fit_streams(
        neutralise(result.stdout), neutralise(result.stderr), result.limits.output, _text_size
    )
    pieces = [p if p.endswith("\n") else p + "\n" for p in safe if p]
    return "".join(pieces) + status_line(result)
