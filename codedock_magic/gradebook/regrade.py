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
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

from ..core.errors import CheckerError, GradebookError, InvalidValueError
from ..core.interrupts import Stop
from ..core.limits import LIMIT_FIELDS, Limits
from ..core.profile import DEFAULT_IMAGE, Profile
from ..core.request import Backend
from ..core.result import RunStatus
from ..grading.assignments import Assignment
from ..grading.check import CaseResult, CheckResult, check, not_judged
from ..grading.records import cases_digest
from ..local.pool import Pool
from ..runner import choose_backend
from .export import choose
from .history import Run, Standing, checkers_digest, compare
from .store import Attempt, CaseScore, Gradebook, Regrade, Regraded

__all__ = ["base_runs", "not_judged_in", "regrade", "scores_of"]


def scores_of(cases: Sequence[CaseResult]) -> tuple[CaseScore, ...]:
    """Each case's points, as the gradebook keeps them."""
    return tuple(
        CaseScore(name=c.name, points=c.points, max_points=c.max_points, hidden=c.hidden)
        for c in cases
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
        # One it could not judge stands as recorded, as in the export.
        if result.user in bases and result.judged:
            bases[result.user] = _run_of_regrade(found[0], result, attempts)
    return against, bases


def not_judged_in(book: Gradebook, name: str, number: int) -> dict[str, str]:
    """Per student regrade ``number`` of ``name`` could not judge, why (0: none)."""
    return {
        r.user: "; ".join(r.why)
        for done in book.regrades(name)
        if done.number == number
        for r in done.results
        if not r.judged
    }


def regrade(
    book: Gradebook,
    assignment: Assignment,
    *,
    policy: str = "best",
    against: int | None = None,
    jobs: int = 4,
    image: str | None = None,
    defaults: Limits | None = None,
    default_image: str = DEFAULT_IMAGE,
    backend: Backend | None = None,
    progress: Callable[[str], Any] | None = None,
) -> Regrade:
    """Run each student's standing attempt at ``assignment`` again; keep and return the regrade.

    Each attempt runs with the limits and image it ran with (its user's tier's
    defaults, then the assignment's own limits as they are now), so that a group
    the service gives more time is regraded with it too.

    Args:
        book: the gradebook the attempts are in, and the regrade goes to.
        assignment: the assignment as it is now (its cases and checkers).
        policy: which attempt stands for a student: ``best`` or ``last``, as the export.
        against: the regrade to compare with (0: the recorded attempts; ``None``:
            the newest regrade, else the recorded attempts).
        jobs: attempts checked at once.
        image: the image every attempt runs in, whatever it ran in (``None``: its own).
        defaults: the limits before the assignment's own for an attempt recorded
            without its own (the service's base defaults; the package's when None).
        default_image: the image of an attempt recorded without one.
        backend: what runs the checks; by default the local engine, ``jobs``
            containers kept warm per image and memory.
        progress: called with each student's name once their attempt has run.

    A student whose output a checker cannot read is kept as not judged (every
    case an error, ``why`` saying what failed), and stands nowhere. A check whose
    sandbox broke before its cases ended runs once more, and is then judged as it
    ends. A failure the engine raises is no student's doing: it stops the
    regrade, keeping nothing.

    Raises:
        CodedockError: the engine failed; the attempts still to run are not
            started, and nothing is kept.
    """
    if jobs < 1:
        raise InvalidValueError("--jobs", jobs, "a whole number, 1 or more")
    cases = list(assignment.cases)
    chosen = choose(book.all_attempts(assignment.name), policy)
    number, bases = base_runs(book, assignment.name, chosen, against)
    settings = {
        user: _settings_of(attempt, assignment, image, defaults, default_image)
        for user, attempt in chosen.items()
    }
    results = _check_all(
        [chosen[user] for user in sorted(chosen)],
        cases,
        settings,
        jobs=jobs,
        backend=backend,
        progress=progress,
    )
    digest, checkers = cases_digest(cases), checkers_digest(cases)
    regraded = []
    for user in sorted(chosen):
        attempt, (judged, failure) = chosen[user], results[user]
        now = Run(
            id=-1,
            at="",
            cases_sha256=digest,
            checkers_sha256=checkers,
            students={
                user: Standing(
                    sum(c.points for c in judged),
                    sum(c.max_points for c in judged),
                    {c.name: c.verdict.value for c in judged},
                    attempt.code_sha256,
                )
            },
        )
        base = bases[user]
        changes = compare(base, now)
        old, new = base.students[user], now.students[user]
        # A check that failed is the one reason: the cases' errors are its doing.
        why = (failure,) if failure else tuple(changes[0].why) if changes else ()
        assert attempt.id is not None
        regraded.append(
            Regraded(
                user=user,
                attempt_id=attempt.id,
                score=new.score,
                max_score=new.max_score,
                verdicts=dict(new.verdicts),
                cases=scores_of(judged),
                old_score=old.score,
                old_max_score=old.max_score,
                # Not judged, nothing flipped: its errors are the check's, not the code's.
                flipped=tuple(changes[0].flipped) if changes and not failure else (),
                why=why,
                judged=not failure,
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


def _settings_of(
    attempt: Attempt,
    assignment: Assignment,
    image: str | None,
    defaults: Limits | None,
    default_image: str,
) -> tuple[Limits, str]:
    """The limits and image ``attempt`` runs with again."""
    base = defaults or Limits()
    if attempt.defaults is not None:
        try:
            # A limit the gradebook did not yet keep when it ran comes from ``defaults``.
            base = base.replace(**{k: v for k, v in attempt.defaults.items() if k in LIMIT_FIELDS})
        except InvalidValueError as exc:
            raise GradebookError(
                f"attempt {attempt.id} in the gradebook has run settings that are not limits "
                f"({exc}); restore the database from a backup"
            ) from None
    return base.replace(**assignment.limits), image or attempt.image or default_image


#: Each student's cases as judged now, and why they could not all be judged ("" if they were).
Judged = tuple[tuple[CaseResult, ...], str]


def _check_all(
    attempts: Sequence[Attempt],
    cases: list[Any],
    settings: dict[str, tuple[Limits, str]],
    *,
    jobs: int,
    backend: Backend | None,
    progress: Callable[[str], Any] | None,
) -> dict[str, Judged]:
    """Every attempt checked with its own settings, one group of like settings at a time."""
    groups: dict[tuple[Limits, str], list[Attempt]] = {}
    for attempt in attempts:
        groups.setdefault(settings[attempt.user], []).append(attempt)
    results: dict[str, Judged] = {}
    for (limits, image), group in groups.items():
        results.update(_check_group(group, cases, limits, image, jobs, backend, progress))
    return results


def _broke(result: CheckResult) -> bool:
    """Whether a case of ``result`` did not run to its end (its sandbox broke)."""
    return any(end.status is RunStatus.INTERRUPTED for end in result.run.cases)


def _check_group(
    attempts: Sequence[Attempt],
    cases: list[Any],
    limits: Limits,
    image: str,
    jobs: int,
    backend: Backend | None,
    progress: Callable[[str], Any] | None,
) -> dict[str, Judged]:
    pool: Pool | None = None
    if backend is None:
        memory = max([limits.memory, *(c.memory for c in cases if isinstance(c.memory, int))])
        pool = Pool(
            size=min(jobs, len(attempts)),
            profile=Profile(image, limits.replace(memory=memory).container),
        )
        backend = choose_backend(pool=pool)
        pool.start()
    stop = Stop()

    def one(attempt: Attempt) -> tuple[str, Judged]:
        if stop.is_set():
            return attempt.user, ((), "stopped")  # another failed: thrown away

        def run() -> CheckResult:
            return check(
                attempt.code,
                cases,
                limits=limits,
                image=image,
                backend=backend,
                reveal_hidden=True,
                stop=stop,
            )

        try:
            result = run()
            if _broke(result) and not stop.is_set():
                # A host's hiccup passes; a program that breaks its sandbox (one
                # that will not be made clean between cases) does so again, and is
                # judged as the service judged it: those cases killed, 0 points.
                result = run()
            judged: Judged = (result.cases, "")
        except CheckerError as exc:
            # The student's output broke a checker: their cases are errors, saying
            # why, and the others' results stand. A failure the engine raises is
            # no student's doing, and stops the regrade.
            failure = str(exc)
            judged = (tuple(not_judged(case, failure) for case in cases), failure)
        except BaseException:
            stop.set()  # before this one is seen to fail, so that no other starts
            raise
        if progress is not None:
            progress(attempt.user)
        return attempt.user, judged

    workers = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="codedock-regrade")
    try:
        futures = [workers.submit(one, attempt) for attempt in attempts]
        for future in as_completed(futures):
            future.result()  # the first failure, as soon as it comes
        return dict(future.result() for future in futures)
    except BaseException:
        # Its results would be thrown away: the rest neither starts nor runs on.
        stop.set()
        raise
    finally:
        workers.shutdown(wait=True, cancel_futures=True)
        if pool is not None:
            pool.close()
