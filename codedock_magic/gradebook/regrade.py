"""Regrades of an assignment held by the service: each student's standing attempt run
again against the assignment's cases as they are now, beside the old result.

``codedock gradebook regrade NAME`` picks, per student, the attempt the export
would (best or last), runs its code on the local engine as ``codedock grade``
does, and keeps the new result in the gradebook's regrade tables: the recorded
attempts are never rewritten. What changed and why is what ``codedock grade``'s
history computes (:func:`~codedock_magic.gradebook.history.compare`), here per
student, against the newest earlier regrade (or one named), or the attempts as
recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.errors import InvalidValueError
from ..core.limits import Limits
from ..core.profile import DEFAULT_IMAGE, Profile
from ..core.request import Backend
from ..grading.assignments import Assignment
from ..grading.check import CheckResult, check
from ..grading.records import cases_digest
from ..local.pool import Pool
from ..runner import choose_backend
from .export import choose
from .history import Run, Standing, checkers_digest, compare
from .store import Attempt, CaseScore, Gradebook, Regrade, Regraded

__all__ = ["base_runs", "regrade", "scores_of"]


def scores_of(result: CheckResult) -> tuple[CaseScore, ...]:
    """Each case's points in ``result``, as the gradebook keeps them."""
    return tuple(
        CaseScore(name=c.name, points=c.points, max_points=c.max_points, hidden=c.hidden)
        for c in result.cases
    )


def _run_of_attempt(attempt: Attempt) -> Run:
    standing = Standing(
        attempt.score, attempt.max_score, dict(attempt.verdicts), attempt.code_sha256
    )
    return Run(
        id=0,
        at=attempt.at.isoformat(),
        cases_sha256=attempt.cases_sha256 or "",
        checkers_sha256=attempt.checkers_sha256,
        students={attempt.user: standing},
    )


def _run_of_regrade(regrade: Regrade, result: Regraded, attempts: dict[int, Attempt]) -> Run:
    ran = attempts.get(result.attempt_id)
    standing = Standing(
        result.score, result.max_score, dict(result.verdicts), ran.code_sha256 if ran else ""
    )
    return Run(
        id=regrade.number,
        at=regrade.at.isoformat(),
        cases_sha256=regrade.cases_sha256,
        checkers_sha256=regrade.checkers_sha256,
        students={result.user: standing},
    )


def base_runs(
    book: Gradebook, name: str, chosen: dict[str, Attempt], against: int | None
) -> tuple[int, dict[str, Run]]:
    """Per student, what a regrade compares with: regrade ``against`` (0: the recorded
    attempts; ``None``: the newest regrade, else the attempts), falling back to the
    student's recorded attempt where that regrade has no result for them; and its number.
    """
    regrades = book.regrades(name)
    if against is None:
        against = regrades[-1].number if regrades else 0
    bases = {user: _run_of_attempt(attempt) for user, attempt in chosen.items()}
    if against == 0:
        return 0, bases
    found = [r for r in regrades if r.number == against]
    if not found:
        known = ", ".join(str(r.number) for r in regrades) or "none yet"
        raise InvalidValueError(
            "--compare", against, f"0 (the recorded attempts) or a regrade of {name} ({known})"
        )
    attempts = {a.id: a for a in book.all_attempts(name) if a.id is not None}
    for result in found[0].results:
        if result.user in bases:
            bases[result.user] = _run_of_regrade(found[0], result, attempts)
    return against, bases


def regrade(
    book: Gradebook,
    assignment: Assignment,
    *,
    policy: str = "best",
    against: int | None = None,
    jobs: int = 4,
    image: str = DEFAULT_IMAGE,
    defaults: Limits | None = None,
    backend: Backend | None = None,
    progress: Callable[[str], Any] | None = None,
) -> Regrade:
    """Run each student's standing attempt at ``assignment`` again; keep and return the regrade.

    Args:
        book: the gradebook the attempts are in, and the regrade goes to.
        assignment: the assignment as it is now (its cases and checkers).
        policy: which attempt stands for a student: ``best`` or ``last``, as the export.
        against: the regrade to compare with (0: the recorded attempts; ``None``:
            the newest regrade, else the recorded attempts).
        jobs: attempts checked at once.
        image: the image the code runs in.
        defaults: the limits before the assignment's own (the service's defaults,
            which its attempts ran with; the package's when None).
        backend: what runs the checks; by default the local engine, ``jobs``
            containers kept warm.
        progress: called with each student's name once their attempt has run.
    """
    if jobs < 1:
        raise InvalidValueError("--jobs", jobs, "a whole number, 1 or more")
    cases = list(assignment.cases)
    chosen = choose(book.all_attempts(assignment.name), policy)
    number, bases = base_runs(book, assignment.name, chosen, against)
    limits = (defaults or Limits()).replace(**assignment.limits)
    results = _check_all(
        [chosen[user] for user in sorted(chosen)],
        cases,
        limits=limits,
        image=image,
        jobs=jobs,
        backend=backend,
        progress=progress,
    )
    digest, checkers = cases_digest(cases), checkers_digest(cases)
    regraded = []
    for user in sorted(chosen):
        attempt, result = chosen[user], results[user]
        now = Run(
            id=-1,
            at="",
            cases_sha256=digest,
            checkers_sha256=checkers,
            students={
                user: Standing(
                    result.score,
                    result.max_score,
                    {c.name: c.verdict.value for c in result.cases},
                    attempt.code_sha256,
                )
            },
        )
        base = bases[user]
        changes = compare(base, now)
        old = base.students[user]
        assert attempt.id is not None
        regraded.append(
            Regraded(
                user=user,
                attempt_id=attempt.id,
                score=result.score,
                max_score=result.max_score,
                verdicts=dict(now.students[user].verdicts),
                cases=scores_of(result),
                old_score=old.score,
                old_max_score=old.max_score,
                flipped=tuple(changes[0].flipped) if changes else (),
                why=tuple(changes[0].why) if changes else (),
            )
        )
    return book.record_regrade(
        Regrade(
            assignment=assignment.name,
            at=dt.datetime.now(dt.timezone.utc),
            policy=policy,
            cases_sha256=digest,
            checkers_sha256=checkers,
            compared_with=number,
            results=tuple(regraded),
        )
    )


def _check_all(
    attempts: Sequence[Attempt],
    cases: list[Any],
    *,
    limits: Limits,
    image: str,
    jobs: int,
    backend: Backend | None,
    progress: Callable[[str], Any] | None,
) -> dict[str, CheckResult]:
    pool: Pool | None = None
    if backend is None and attempts:
        memory = max([limits.memory, *(c.memory for c in cases if isinstance(c.memory, int))])
        pool = Pool(
            size=min(jobs, len(attempts)),
            profile=Profile(image, limits.replace(memory=memory).container),
        )
        backend = choose_backend(pool=pool)
        pool.start()

    def one(attempt: Attempt) -> tuple[str, CheckResult]:
        result = check(
            attempt.code,
            cases,
            limits=limits,
            image=image,
            backend=backend,
            reveal_hidden=True,
        )
        if progress is not None:
            progress(attempt.user)
        return attempt.user, result

    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="codedock-regrade") as pool_:
            return dict(pool_.map(one, attempts))
    finally:
        if pool is not None:
            pool.close()
