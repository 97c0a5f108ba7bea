"""How a check looks while it runs and after: a badge per case as each one ends, then the summary.

As for a single run, :class:`CheckWidgetView` is replaced by static HTML and text
at the end (which survive saving, reloading and nbconvert), and
:class:`CheckTextView` writes lines to stdout for terminals.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any, Protocol, TextIO

from ..core.errors import ServiceRefusedError
from ..core.limits import Limits
from ..grading.check import CaseResult, CheckResult
from .checkrender import case_html, case_text, check_html, check_text
from .render import badge, details, meta
from .safetext import MARKER

__all__ = ["CheckTextView", "CheckView", "CheckWidgetView", "check_metadata"]


class CheckView(Protocol):
    """What the magic drives for ``%%sandbox --cases``."""

    def start(self, limits: Limits | None, image: str, count: int) -> None:
        """``count`` cases are about to run (under ``limits``, or a service's when ``None``)."""
        ...

    def on_case(self, index: int, case: CaseResult) -> None:
        """Case ``index`` has been judged."""
        ...

    def finish(self, result: CheckResult) -> None:
        """Every case has been judged; show the final state."""
        ...

    def abandon(self, error: BaseException) -> None:
        """The check broke in the host; leave nothing live behind."""
        ...


def check_metadata(result: CheckResult) -> dict[str, Any]:
    """What a saved notebook keeps of a check beside its rendering, for tools that read it."""
    return {
        "codedock": {
            "status": "passed" if result.all_passed else "failed",
            "summary": result.summary(),
            "score": result.score,
            "max_score": result.max_score,
            "verdicts": [case.verdict.value for case in result.cases],
        }
    }


class CheckTextView:
    """A line per case as it ends, then the summary line."""

    def __init__(self, stdout: TextIO | None = None) -> None:
        self._out = stdout or sys.stdout

    def start(self, limits: Limits | None, image: str, count: int) -> None:
        """Nothing to show before the first case ends."""

    def on_case(self, index: int, case: CaseResult) -> None:
        """Write the case's line (and diff) at once."""
        self._out.write(case_text(case) + "\n")
        self._out.flush()

    def finish(self, result: CheckResult) -> None:
        """Write the summary line (the cases are already shown)."""
        self._out.write(check_text(result).rsplit("\n", 1)[-1] + "\n")
        self._out.flush()

    def abandon(self, error: BaseException) -> None:
        """Nothing to undo in plain text."""


class CheckWidgetView:
    """A live list of case badges under a running summary, frozen to static HTML at the end."""

    def __init__(self) -> None:
        import ipywidgets as widgets

        self.badge = widgets.HTML(badge("running", "running"))
        self.details = widgets.HTML("")
        self.cases = widgets.HTML("")
        self.box = widgets.VBox([widgets.HBox([self.badge, self.details]), self.cases])
        self.box.add_class("codedock-live")
        self._handle: Any = None
        self._rows: list[str] = []
        self._count = 0
        self._limits: Limits | None = None
        self._image = ""
        self._started = 0.0

    def start(self, limits: Limits | None, image: str, count: int) -> None:
        """Show the view with a running badge."""
        from IPython.display import display

        self._limits, self._image, self._count = limits, image, count
        self._started = time.monotonic()
        self.badge.value = badge("running", f"running · 0/{count} cases")
        self.details.value = meta(details(limits, image, None))
        self._handle = display(self.box, display_id=True)

    def on_case(self, index: int, case: CaseResult) -> None:
        """Add the case's badge, and move the count on."""
        self._rows.append(case_html(case))
        self.cases.value = "".join(self._rows)
        self.badge.value = badge("running", f"running · {len(self._rows)}/{self._count} cases")
        self.details.value = meta(
            details(self._limits, self._image, time.monotonic() - self._started)
        )

    def abandon(self, error: BaseException) -> None:
        """Replace the live view with a static line saying the check did not finish."""
        if self._handle is not None:
            text = f"{MARKER} check did not finish: {type(error).__name__}"
            if isinstance(error, ServiceRefusedError):
                # The service's one line: for an assignment, when the next attempt is allowed.
                text = f"{MARKER} refused: {error}"
            self._handle.update(
                {"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}, raw=True
            )
        self._close()

    def finish(self, result: CheckResult) -> None:
        """Freeze: the static rendering replaces the widget."""
        if self._handle is not None:
            self._handle.update(
                {"text/html": check_html(result), "text/plain": check_text(result)},
                metadata=check_metadata(result),
                raw=True,
            )
        self._close()

    def _close(self) -> None:
        # The rows are in the static rendering now: a saved notebook's widget state
        # need not keep a second copy of them.
        self.cases.value = ""
        for widget in (self.box, *self.box.children, self.badge, self.details, self.cases):
            widget.close()
