"""Grading: cases (:mod:`.cases`), judging an output (:mod:`.compare`, with a time
limit from :mod:`.bounded`), a check and its verdicts (:mod:`.check`), a class's
folder (:mod:`.submissions`), the results file (:mod:`.records`) and the batch
behind ``codedock grade`` (:mod:`.batch`). It runs through :mod:`codedock_magic.runner`.
What teachers take away from a batch is pure: its exports (:mod:`.formats`), the
similarity check (:mod:`.similarity`) and the class report (:mod:`.classreport`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .check import (
        CaseResult,
        CheckFailedError,
        CheckResult,
        OnCaseResult,
        Verdict,
        not_run,
        verdict_of,
    )

# Before the wings, ``codedock_magic.grading`` was the module that is now
# :mod:`.check`: its names still work from here, found on first use so that
# reading a case file does not load the runner. All but ``check`` itself, which
# names that module here: the function is ``codedock_magic.check``.
__all__ = [
    "CaseResult",
    "CheckFailedError",
    "CheckResult",
    "OnCaseResult",
    "Verdict",
    "not_run",
    "verdict_of",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".check", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
