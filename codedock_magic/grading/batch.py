"""Grading a whole class: every submission in a folder, checked against one set of cases.

``codedock grade SUBMISSIONS --cases FILE --out PATH`` (see :func:`grade`) checks
N submissions at once, each in fresh containers of its own, and writes the results
after each one. ``PATH`` ending in ``.csv`` gets a row per student (score,
maximum, one column per case's verdict); ``.json`` gets each student's full
:class:`~codedock_magic.grading.check.CheckResult`. A re-run skips the students
already graded against the same cases, and grades again the ones whose
submission changed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import CheckerError, CodedockError, InvalidValueError
from ..core.interrupts import Stop
from ..core.limits import Limits
from ..core.profile import DEFAULT_IMAGE, Profile
from ..core.request import Backend
from ..local.pool import Pool
from ..runner import choose_backend, service_backend
from .cases import load_cases
from .check import CheckResult, check, not_run
from .records import Records, cases_digest
from .submissions import ANSWER_TAG, Submission, find_submissions

__all__ = ["GradeReport", "Records", "cases_digest", "grade"]


@dataclass
class GradeReport:
    """What a batch did.

    Attributes:
        graded: students graded in this run.
        skipped: students already graded (same submission, same cases).
        failed: students not graded, with why (a checker raised, the engine
            failed); a re-run tries them again.
        untrusted: students whose rows in the file could not be trusted (see
            :mod:`codedock_magic.grading.records`), graded again.
        interrupted: whether the batch was stopped before its end.
    """

    graded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    untrusted: list[str] = field(default_factory=list)
    interrupted: bool = False


def grade(
    submissions: Path,
    cases: object,
    out: Path,
    *,
    jobs: int = 4,
    limits: Limits | None = None,
    image: str = DEFAULT_IMAGE,
    tag: str = ANSWER_TAG,
    fresh: bool = False,
    backend: Backend | None = None,
    progress: Callable[[int, int], Any] | None = None,
    stop: Stop | None = None,
) -> GradeReport:
    """Check every submission in ``submissions`` against ``cases``; record each in ``out``.

    Args:
        submissions: the folder (see :mod:`codedock_magic.grading.submissions`).
        cases: as for :func:`~codedock_magic.grading.check.check`.
        out: ``*.csv`` or ``*.json``; a re-run resumes from it.
        jobs: submissions checked at once.
        limits: each case's limits (a case's own timeout and memory win).
        image: the image every submission runs in.
        tag: the cell tag of a notebook's answer cells.
        fresh: grade everyone again, whatever ``out`` holds.
        backend: what runs the checks; by default the sandbox service at
            ``$CODEDOCK_SERVICE_URL``, else the local engine with ``jobs``
            containers kept warm.
        progress: for a progress bar: called with ``(0, total)`` once everything
            is checked and the grading starts, then with ``(n, total)`` for each
            ``n`` submissions finished (or skipped) since.
        stop: once set, the checks under way end and the rest are not started;
            what is finished is kept.

    Raises:
        CaseError, InvalidValueError: the cases, the folder or ``out`` are unusable.
    """
    if jobs < 1:
        raise InvalidValueError("--jobs", jobs, "a whole number, 1 or more")
    loaded = load_cases(cases)
    records = Records(out, loaded, fresh=fresh)
    found = find_submissions(submissions, tag=tag)
    report = GradeReport(untrusted=list(records.untrusted))
    todo: list[Submission] = []
    for submission in found:
        if records.graded(submission):
            report.skipped.append(submission.student)
        else:
            todo.append(submission)
    if progress is not None:
        progress(len(report.skipped), len(found))
    limits = limits if limits is not None else Limits()
    stop = stop if stop is not None else Stop()
    pool: Pool | None = None
    if backend is None:
        backend = service_backend()
    if backend is None:
        memory = max([limits.memory, *(c.memory for c in loaded if isinstance(c.memory, int))])
        profile = Profile(image, limits.replace(memory=memory).container)
        pool = Pool(size=min(jobs, len(todo)), profile=profile) if todo else None
        backend = choose_backend(pool=pool)
        if pool is not None:
            pool.start()

    def one(submission: Submission) -> CheckResult:
        if submission.problem:
            return not_run(loaded, submission.problem, limits=limits, image=image)
        return check(
            submission.code,
            loaded,
            limits=limits,
            image=image,
            backend=backend,
            reveal_hidden=True,
            stop=stop,
        )

    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="codedock-grade") as workers:
            pending: dict[Future[CheckResult], Submission] = {}
            queue = list(reversed(todo))
            while pending or (queue and not stop.is_set()):
                try:
                    while queue and len(pending) < jobs and not stop.is_set():
                        submission = queue.pop()
                        pending[workers.submit(one, submission)] = submission
                    done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    # The checks under way see the flag and end; what is done is kept.
                    stop.set()
                    continue
                for future in done:
                    submission = pending.pop(future)
                    _collect(future, submission, records, report, stop)
                    if progress is not None:
                        progress(1, len(found))
    finally:
        if pool is not None:
            pool.close()
    report.interrupted = stop.is_set()
    return report


def _collect(
    future: Future[CheckResult],
    submission: Submission,
    records: Records,
    report: GradeReport,
    stop: Stop,
) -> None:
    try:
        result = future.result()
    except CheckerError as exc:
        report.failed[submission.student] = str(exc)
        return
    except CodedockError as exc:
        report.failed[submission.student] = f"{type(exc).__name__}: {exc}"
        return
    if result.interrupted:
        # Cut short: a re-run grades it whole.
        report.failed[submission.student] = "interrupted"
        return
    records.add(submission, result)
    report.graded.append(submission.student)
