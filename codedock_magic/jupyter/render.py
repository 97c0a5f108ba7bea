"""The static rendering of a finished run: HTML for notebooks, text for terminals.

Pure functions of a :class:`~codedock_magic.core.result.RunResult`: what stays in a saved
notebook, nbconvert output and a terminal. Everything the program wrote is
escaped before it is placed in HTML.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable

from ..core.budget import MAX_NOTES
from ..core.limits import Limits
from ..core.result import RunResult, RunStatus
from ..local.display import MAX_IMAGE_BYTES, check_image
from .safetext import MARKER, neutralise, one_line

__all__ = [
    "COLOURS",
    "PRE_STYLE",
    "STDERR_STYLE",
    "badge",
    "details",
    "extras_text",
    "image_html",
    "image_note",
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


def usage(result: RunResult) -> str:
    """``cpu 0.03 s · peak 14.2 MiB``: what the container's cgroup counted, as far as known."""
    parts = []
    if result.cpu_seconds is not None:
        parts.append(f"cpu {result.cpu_seconds:.2f} s")
    if result.peak_memory is not None:
        parts.append(f"peak {result.peak_memory / 1024**2:.1f} MiB")
    return " · ".join(parts)


def details(limits: Limits | None, image: str, duration: float | None, used: str = "") -> str:
    """``0.12 s · cpu 0.03 s · peak 14.2 MiB · timeout 2s · memory 100m · ... · image NAME``.

    Without ``limits`` (a sandbox service decides them, and says so with the
    result) it says whose they are instead. ``used`` is :func:`usage`'s text.
    """
    took = f"{duration:.2f} s · " if duration is not None else ""
    took += f"{used} · " if used else ""
    applied = limits.describe() if limits is not None else "limits of the sandbox service"
    return f"{took}{applied} · image {image}"


def status_line(result: RunResult) -> str:
    """``[sandbox] ok · 0.12 s · timeout 2s · memory 100m · cpus 1 · pids 64 · image ...``

    It alone starts with the marker: program lines that do are shown escaped.
    """
    shown = details(result.limits, result.image, result.duration, usage(result))
    line = f"{MARKER} {result.describe()} · {shown}"
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
    """``text``, or a head and a tail of it, whose rendered ``size`` is within ``budget``.

    Every character costs at least a byte, so no more than ``budget`` characters
    are ever measured: rendering stays cheap however long ``text`` is.
    """
    if _size_within(text, budget, size) <= budget:
        return text
    low, high, keep = 0, min(len(text), budget) // 2, 0
    while low <= high:
        middle = (low + high) // 2
        cut = len(text) - 2 * middle
        if size(text[:middle] + _cut_marker(cut) + text[len(text) - middle :]) <= budget:
            keep, low = middle, middle + 1
        else:
            high = middle - 1
    return text[:keep] + _cut_marker(len(text) - 2 * keep) + text[len(text) - keep :]


def _size_within(text: str, budget: int, size: Callable[[str], int]) -> int:
    """``size(text)``, or ``budget + 1`` when ``text`` is plainly over it."""
    return budget + 1 if len(text) > budget else size(text)


def _fit_streams(
    stdout: str, stderr: str, budget: int, size: Callable[[str], int]
) -> tuple[str, str]:
    """Both streams within one ``budget``: a stream that needs less leaves the rest to the other.

    So that a saved notebook stays near the output cap however the output is made
    (escaping can make HTML five times the text, and there are two renderings).
    """
    out, err = _size_within(stdout, budget, size), _size_within(stderr, budget, size)
    if out + err <= budget:
        return stdout, stderr
    half = budget // 2
    if out <= half:
        return stdout, _fit(stderr, budget - out, size)
    if err <= half:
        return _fit(stdout, budget - err, size), stderr
    return _fit(stdout, half, size), _fit(stderr, budget - half, size)


def _saved_size(text: str) -> int:
    """What ``text`` weighs in a saved notebook: JSON-escaped, a line of the file per line."""
    return len(json.dumps(text, ensure_ascii=False).encode()) + _LINE_COST * text.count("\n")


# A saved notebook keeps a multi-line text as a list of lines, one a line of its
# file: the quotes, the comma and the indent each line adds.
_LINE_COST = 10


def _html_size(text: str) -> int:
    return _saved_size(html.escape(text))


def _text_size(text: str) -> int:
    return _saved_size(text)


def render_html(result: RunResult) -> str:
    """The static rendering of a finished run: badge, details, stdout, stderr.

    The program's text is neutralised (see :mod:`codedock_magic.jupyter.safetext`), then escaped;
    together the streams weigh at most the output cap in a saved notebook.
    """
    stdout, stderr = _fit_streams(
        neutralise(result.stdout), neutralise(result.stderr), result.limits.output, _html_size
    )
    parts = [
        f'<div class="codedock-result" data-status="{html.escape(result.status.value)}">',
        f"<div>{badge(result.status.value, result.describe())}"
        f"{meta(details(result.limits, result.image, result.duration, usage(result)))}</div>",
    ]
    parts += _stdout_and_images(result, stdout)
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
    parts += _files_html(result)
    parts += [
        f'<div class="codedock-notice" style="{_NOTE_STYLE}">{html.escape(one_line(note))}</div>'
        for note in result.notes[:_MOST_NOTES]
    ]
    parts.append("</div>")
    return "".join(parts)


_NOTE_STYLE = "color:#b45309;font-size:0.85em"
# A result holds at most MAX_NOTES notes and a closing one when it comes from a
# run; one built by hand is held to the same in the view.
_MOST_NOTES = MAX_NOTES + 1
# Characters of a file's name shown (RunResult.files keeps it whole).
_FILE_NAME_CHARS = 120
# Files up to this size get a download link in the saved view; larger ones are
# listed, and kept whole in RunResult.files.
LINK_BYTES = 1024 * 1024


def _size(count: int) -> str:
    return f"{count / 1024:.1f} KiB" if count < 1024**2 else f"{count / 1024**2:.1f} MiB"


def image_note(mime: str, data: bytes) -> str:
    """``[sandbox] image: image/png, 12.3 KiB``: an image, where none can be shown."""
    return f"{MARKER} image: {mime}, {_size(len(data))}"


def image_html(mime: str, data: bytes) -> str:
    """An ``<img>`` with a data URL: the one way a program's image is shown, SVG too.

    ``mime`` is one of :data:`~codedock_magic.local.display.IMAGE_TYPES`, checked before.
    """
    encoded = base64.b64encode(data).decode("ascii")
    alt = html.escape(f"image from the sandbox ({mime}, {_size(len(data))})")
    return (
        f'<img class="codedock-image" alt="{alt}" src="data:{html.escape(mime)};base64,{encoded}" '
        'style="max-width:100%;display:block;margin:0.2em 0">'
    )


def _pre(text: str) -> str:
    return f'<pre class="codedock-stdout" style="{PRE_STYLE}">{html.escape(text)}</pre>'


def _stdout_and_images(result: RunResult, fitted: str) -> list[str]:
    """Stdout with each image where it came; after it all when the saved view had to cut it."""
    images = list(result.images)
    if not images:
        return [_pre(fitted)] if fitted else []
    raw = result.stdout
    if neutralise(raw) != fitted:
        return ([_pre(fitted)] if fitted else []) + [image_html(*image) for image in images]
    parts, start = [], 0
    for (mime, data), at in zip(images, result.image_positions, strict=False):
        at = min(max(at, start), len(raw))
        if raw[start:at]:
            parts.append(_pre(neutralise(raw[start:at])))
        parts.append(image_html(mime, data))
        start = at
    parts += [image_html(*image) for image in images[len(result.image_positions) :]]
    if raw[start:]:
        parts.append(_pre(neutralise(raw[start:])))
    return parts


def _files_html(result: RunResult) -> list[str]:
    if not result.files:
        return []
    rows = []
    for name, data in sorted(result.files.items()):
        mime = _image_type(name, data)
        shown = html.escape(f"out/{one_line(name, _FILE_NAME_CHARS)}")
        row = f"<li><code>{shown}</code> · {_size(len(data))}"
        if len(data) <= LINK_BYTES:
            encoded = base64.b64encode(data).decode("ascii")
            leaf = one_line(name.rsplit("/", 1)[-1], _FILE_NAME_CHARS)
            row += (
                f' · <a download="{html.escape(leaf)}" '
                f'href="data:application/octet-stream;base64,{encoded}">download</a>'
            )
        if mime:
            row += image_html(mime, data)
        rows.append(row + "</li>")
    return [f'<ul class="codedock-files" style="margin:0.2em 0">{"".join(rows)}</ul>']


def _image_type(name: str, data: bytes) -> str:
    mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "svg": "image/svg+xml"}
    found = mime.get(name.rsplit(".", 1)[-1].lower(), "")
    return found if found and not check_image(found, data) and len(data) <= MAX_IMAGE_BYTES else ""


def extras_text(result: RunResult) -> list[str]:
    """Lines for the text view's end: the files that came back and the notes."""
    lines = [
        f"{MARKER} file: out/{one_line(name, _FILE_NAME_CHARS)}, {_size(len(data))}"
        for name, data in sorted(result.files.items())
    ]
    return lines + [f"{MARKER} note: {one_line(note)}" for note in result.notes[:_MOST_NOTES]]


def render_text(result: RunResult) -> str:
    """The plain-text rendering: stdout, stderr, then the status line.

    The program's text is neutralised, so only the status line starts with the marker;
    together the streams weigh at most the output cap in a saved notebook.
    """
    safe = _fit_streams(
        neutralise(result.stdout), neutralise(result.stderr), result.limits.output, _text_size
    )
    pieces = [p if p.endswith("\n") else p + "\n" for p in safe if p]
    notes = [image_note(mime, data) + "\n" for mime, data in result.images]
    notes += [line + "\n" for line in extras_text(result)]
    return "".join(pieces) + "".join(notes) + status_line(result)
