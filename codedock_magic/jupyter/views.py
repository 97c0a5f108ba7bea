"""How a run looks in a notebook or a terminal: live while it runs, static after.

:class:`WidgetView` streams into an ipywidgets ``Output`` under a status badge and,
when the run ends, replaces itself with static HTML and text, which survive
saving, reloading, untrusted notebooks and nbconvert (a widget there shows only
"model not found"). :class:`TextView` writes to stdout and stderr and ends with
one status line, for terminals and wherever no widget frontend listens.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any, Protocol, TextIO

from ..core.limits import Limits
from ..core.result import RunResult
from .render import (
    badge,
    details,
    extras_text,
    image_html,
    image_note,
    meta,
    render_html,
    render_text,
    status_line,
)
from .safetext import MARKER, Neutraliser

__all__ = ["LIVE_SHARE", "TextView", "View", "WidgetView"]

#: A run's live output stays in the widget's saved state only while it is under
#: this share of the output cap, in characters (so at most 12/64 of the cap in a
#: saved notebook, however it escapes).
LIVE_SHARE = 64


class View(Protocol):
    """What the magic drives: a start, streamed output, and the end."""

    def start(self, limits: Limits | None, image: str) -> None:
        """The run is about to start (under ``limits``, or a service's when ``None``)."""
        ...

    def on_output(self, stream: str, text: str) -> None:
        """Output arrived on ``"stdout"`` or ``"stderr"``."""
        ...

    def on_state(self, state: str) -> None:
        """The run is ``"queued"`` behind its user's other runs, or ``"running"``."""
        ...

    def on_image(self, mime: str, data: bytes) -> None:
        """The program showed an image (checked and within the caps)."""
        ...

    def finish(self, result: RunResult) -> None:
        """The run ended; show its final state."""
        ...

    def abandon(self, error: BaseException) -> None:
        """The run could not happen or broke in the host; leave nothing live behind."""
        ...


class TextView:
    """Plain streams: stdout to stdout, stderr to stderr, then one status line."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self._streams = {"stdout": stdout or sys.stdout, "stderr": stderr or sys.stderr}
        self._shown = {"stdout": 0, "stderr": 0}
        # The program's bytes never reach the terminal raw (see codedock_magic.jupyter.safetext).
        self._safe = {"stdout": Neutraliser(), "stderr": Neutraliser()}
        self._line_ended = True

    def start(self, limits: Limits | None, image: str) -> None:
        """Nothing to show before output arrives."""

    def on_state(self, state: str) -> None:
        """Say when the run waits in the service's queue (only then: a run is the rule)."""
        if state == "queued":
            out = self._streams["stdout"]
            out.write(f"{MARKER} queued: your other runs hold the service's quota; waiting\n")
            out.flush()

    def on_image(self, mime: str, data: bytes) -> None:
        """A terminal shows no images: one line saying there was one."""
        out = self._streams["stdout"]
        # The note is a line of its own, even after a line the program left open.
        out.write(("" if self._line_ended else "\n") + image_note(mime, data) + "\n")
        out.flush()
        self._line_ended = True

    def on_output(self, stream: str, text: str) -> None:
        """Write ``text``, neutralised, to the matching stream at once."""
        target = self._streams[stream]
        target.write(self._safe[stream].feed(text))
        target.flush()
        self._shown[stream] += len(text)
        if stream == "stdout" and text:
            self._line_ended = text.endswith("\n")

    def finish(self, result: RunResult) -> None:
        """Write what was not streamed (past the live head), then the status line."""
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            safe = self._safe[stream]
            rest = safe.feed(text[self._shown[stream] :]) + safe.flush()
            if rest:
                self._streams[stream].write(rest)
                self._streams[stream].flush()
        out = self._streams["stdout"]
        if (result.stdout and not result.stdout.endswith("\n")) or (
            result.stderr and not result.stderr.endswith("\n")
        ):
            out.write("\n")
        for line in extras_text(result):
            out.write(line + "\n")
        out.write(status_line(result) + "\n")
        out.flush()

    def abandon(self, error: BaseException) -> None:
        """Nothing to undo in plain text; the error is shown by IPython."""


class WidgetView:
    """A live ipywidgets view, replaced by static HTML and text when the run ends."""

    def __init__(self) -> None:
        import ipywidgets as widgets

        self.badge = widgets.HTML(badge("running", "running"))
        self.details = widgets.HTML("")
        self.output = widgets.Output(layout=widgets.Layout(max_height="40em", overflow="auto"))
        self.box = widgets.VBox(
            [widgets.HBox([self.badge, self.details]), self.output],
        )
        self.box.add_class("codedock-live")
        self._handle: Any = None
        self._safe = {"stdout": Neutraliser(), "stderr": Neutraliser()}
        self._limits: Limits | None = None
        self._live = False
        self._image = ""
        self._started = 0.0
        self._shown_at = 0.0

    def start(self, limits: Limits | None, image: str) -> None:
        """Show the view with a running badge."""
        from IPython.display import display

        self._limits, self._image, self._live = limits, image, True
        self._started = time.monotonic()
        self.details.value = meta(details(limits, image, None))
        self._handle = display(self.box, display_id=True)
        self._capture(True)

    def on_state(self, state: str) -> None:
        """Show ``queued`` on the badge while the service holds the run back."""
        if state == "queued":
            self.badge.value = badge("queued", "queued")
        elif state == "running":
            self.badge.value = badge("running", "running")
            self._started = time.monotonic()

    def _show_elapsed(self) -> None:
        # Only ever from the kernel's main thread: widget messages sent from another
        # thread race the kernel's own replies. So the time moves on with the output.
        now = time.monotonic()
        if self._live and now - self._shown_at >= 0.5:
            self._shown_at = now
            self.details.value = meta(details(self._limits, self._image, now - self._started))

    def _capture(self, on: bool) -> None:
        # What ``with output:`` does, without its __exit__, which swallows every
        # exception (a KeyboardInterrupt from the Interrupt button included). The
        # frontend routes output whose parent is this cell's request into the widget
        # while msg_id is set.
        sys.stdout.flush()
        sys.stderr.flush()
        parent: dict[str, Any] = {}
        if on:
            from IPython import get_ipython

            kernel = getattr(get_ipython(), "kernel", None)
            if kernel is not None and hasattr(kernel, "get_parent"):
                parent = kernel.get_parent() or {}
        self.output.msg_id = (parent.get("header") or {}).get("msg_id", "") if on else ""

    def on_output(self, stream: str, text: str) -> None:
        """Send ``text``, neutralised, as a stream message; the Output widget shows it."""
        target = sys.stdout if stream == "stdout" else sys.stderr
        target.write(self._safe[stream].feed(text))
        target.flush()
        self._show_elapsed()

    def on_image(self, mime: str, data: bytes) -> None:
        """Show the image in the live output, in order with the text; SVG only as an ``<img>``."""
        from IPython.display import HTML, display

        sys.stdout.flush()
        display(HTML(image_html(mime, data)))
        self._show_elapsed()

    def _stop(self) -> None:
        self._capture(False)

    def abandon(self, error: BaseException) -> None:
        """Replace the live view with a static line saying the run did not finish."""
        self._stop()
        if self._handle is not None:
            text = f"[sandbox] did not finish: {type(error).__name__}"
            self._handle.update(
                {"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}, raw=True
            )
        self._close()

    def _close(self) -> None:
        # The box holds the header row (badge, details) and the output.
        for widget in (self.box, *self.box.children, self.badge, self.details):
            widget.close()

    def finish(self, result: RunResult) -> None:
        """Freeze: replace the live widget with the static rendering, then close it."""
        self._stop()
        self.badge.value = badge(result.status.value, result.describe())
        if self._handle is not None:
            self._handle.update(
                {"text/html": render_html(result), "text/plain": render_text(result)},
                metadata={
                    "codedock": {
                        "status": result.status.value,
                        "exit_code": result.exit_code,
                        "summary": result.describe(),
                    }
                },
                raw=True,
            )
        if len(result.stdout) + len(result.stderr) > result.limits.output // LIVE_SHARE:
            # The static rendering holds the output now: a saved notebook's widget
            # state keeps no second copy of more than a sliver of it (sending the
            # kernel's empty list makes the frontend drop what it showed).
            self.output.send_state("outputs")
        self._close()
