"""Checking a submission against test cases: :func:`check` and what it returns.

The visible cases of one submission share a fresh container, and each hidden case
has one of its own (see :mod:`.isolation`); each case runs in a fresh process with
a fresh, empty work dir (see :mod:`codedock_magic.local.caserun`); only their
inputs go into the sandbox. Each case's output is then judged on the host
(:mod:`codedock_magic.grading.compare`) into a :class:`Verdict` and points.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..core.errors import CheckerError, CodedockError
from ..core.interrupts import Stop, signals_as_flag
from ..core.limits import LIMIT_FIELDS, Limits, format_size
from ..core.profile import DEFAULT_IMAGE, Profile
from ..core.request import Backend, CaseInput, Listener, RunRequest, as_bytes
from ..core.result import CaseEnding, RunResult, RunStatus, cases_not_run, signal_name
from ..engines import Engine
from ..local.pool import Pool
from ..runner import choose_backend, default_asked
from .cases import Case, load_cases
from .compare import judge, visible_diff
from .held import ask
from .isolation import merge_runs, sandbox_groups

__all__ = [
    "CaseResult",
    "CheckFailedError",
    "CheckResult",
    "OnCaseResult",
    "Scored",
    "Verdict",
    "check",
    "not_run",
    "verdict_of",
]


class Verdict(str, enum.Enum):
    """What one case came to."""

    PASSED = "passed"
    WRONG_ANSWER = "wrong answer"
    ERROR = "error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory limit"
    KILLED = "killed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, kw_only=True)
class CaseResult:
    """One case's verdict, and what the program did in it.

    Of a hidden case (unless the check was told to reveal them) only the name,
    verdict and points remain: ``withheld`` is set, ``stdout``, ``stderr``, ``diff``
    and ``detail`` are empty and ``duration`` is 0, and :meth:`to_dict` leaves them out.

    Attributes:
        name: the case's name.
        verdict: see :class:`Verdict`.
        points: the points earned.
        max_points: the points it is worth.
        stdout: what the program printed.
        stderr: what it wrote to standard error.
        duration: seconds the program ran.
        diff: for a wrong answer, expected against got, whitespace made visible.
        hidden: whether the case is hidden from the student.
        detail: a short phrase on how it ended (``exit 1``, ``killed by SIGKILL``,
            the checker's message...).
        withheld: whether what the program did was withheld (a hidden case, in a
            result for the student).
    """

    name: str
    verdict: Verdict
    points: float
    max_points: float
    stdout: str
    stderr: str
    duration: float
    diff: str
    hidden: bool
    detail: str = ""
    withheld: bool = False

    @property
    def passed(self) -> bool:
        """Whether the verdict is ``passed``."""
        return self.verdict is Verdict.PASSED

    @classmethod
    def from_dict(cls, item: dict[str, Any]) -> CaseResult:
        """A case's result from :meth:`to_dict`'s JSON values (a withheld one stays withheld)."""
        withheld = bool(item.get("withheld"))
        kept = {} if withheld else item
        return cls(
            name=str(item["name"]),
            verdict=Verdict(item["verdict"]),
            points=float(item["points"]),
            max_points=float(item["max_points"]),
            stdout=str(kept.get("stdout", "")),
            stderr=str(kept.get("stderr", "")),
            duration=float(kept.get("duration", 0.0)),
            diff=str(kept.get("diff", "")),
            hidden=bool(item.get("hidden")),
            detail=str(kept.get("detail", "")),
            withheld=withheld,
        )

    def to_dict(self) -> dict[str, Any]:
        """The case's result as JSON values (of a withheld case, its name, verdict and points)."""
        if self.withheld:
            return {
                "name": self.name,
                "verdict": self.verdict.value,
                "points": self.points,
                "max_points": self.max_points,
                "hidden": self.hidden,
                "withheld": True,
            }
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "points": self.points,
            "max_points": self.max_points,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "duration": round(self.duration, 4),
            "diff": self.diff,
            "hidden": self.hidden,
            "detail": self.detail,
        }


class Scored:
    """What a submission's judged cases add up to: its score, the most it could get, its passes."""

    cases: tuple[CaseResult, ...]

    @property
    def score(self) -> float:
        """The points earned."""
        return sum(case.points for case in self.cases)

    @property
    def max_score(self) -> float:
        """The points there are."""
        return sum(case.max_points for case in self.cases)

    @property
    def passed(self) -> int:
        """How many cases passed."""
        return sum(case.passed for case in self.cases)


@dataclass(frozen=True, kw_only=True)
class CheckResult(Scored):
    """A submission's verdicts over a set of cases.

    Attributes:
        cases: each case's result, in the order of the cases.
        run: the run that served them (its ``cases`` hold the raw ends).
    """

    cases: tuple[CaseResult, ...]
    run: RunResult
    #: For a check of an assignment the service holds: its name, the attempts
    #: left (``None``: no limit), when the next is allowed (ISO 8601, ``None``:
    #: now), and whether this one was late.
    assignment: str = ""
    attempts_left: int | None = None
    next_at: str | None = None
    late: bool = False

    @property
    def interrupted(self) -> bool:
        """Whether the check was stopped before every case had run."""
        return self.run.status is RunStatus.INTERRUPTED

    @property
    def all_passed(self) -> bool:
        """Whether every case passed."""
        return self.passed == len(self.cases)

    def summary(self) -> str:
        """``7/9 passed · 12/15 points`` (of an assignment: ``· 2 attempts left``, ...)."""
        line = (
            f"{self.passed}/{len(self.cases)} passed · "
            f"{_points(self.score)}/{_points(self.max_score)} points"
        )
        if self.assignment:
            if self.late:
                line += " · late"
            if self.attempts_left is not None:
                line += f" · {self.attempts_left} attempt{'s' * (self.attempts_left != 1)} left"
            if self.next_at is not None:
                line += f" · next attempt at {self.next_at}"
        return line

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON values: score, max_score, passed, and each case."""
        return {
            "score": self.score,
            "max_score": self.max_score,
            "passed": self.passed,
            "total": len(self.cases),
            "summary": self.summary(),
            "duration": round(self.run.duration, 4),
            "image": self.run.image,
            "limits": {name: getattr(self.run.limits, name) for name in LIMIT_FIELDS},
            "cases": [case.to_dict() for case in self.cases],
        }

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text; ``kwargs`` go to :func:`json.dumps`."""
        return json.dumps(self.to_dict(), **kwargs)


class CheckFailedError(CodedockError):
    """A ``%%sandbox --cases`` cell's code did not pass every case (raised after the verdicts).

    So that *Run All* stops there, as at a failing assert; the verdicts are above.
    """

    def __init__(self, result: CheckResult) -> None:
        self.result = result
        self._init_args = (result,)
        how = "the check was interrupted" if result.interrupted else "not every case passed"
        super().__init__(
            f"{how}: {result.summary()}; the verdicts are above (use --no-raise-error to carry on)"
        )


def _points(value: float) -> str:
    return f"{value:g}"


#: ``on_case(index, result)``: case ``index`` has been judged.
OnCaseResult = Callable[[int, CaseResult], None]


def verdict_of(case: Case, ran: CaseEnding, *, reveal: bool = True) -> CaseResult:
    """Judge one case's run: its verdict, points, diff and detail.

    Raises:
        CheckerError: the case's checker raised.
    """
    fraction, detail, diff = 0.0, "", ""
    if ran.status is RunStatus.OK:
        try:
            fraction, detail = judge(case, ran.stdout)
        except CheckerError as exc:
            if not case.hidden or reveal:
                raise
            # A checker's error can quote the output, and so what a hidden case's
            # program made of its input.
            if exc.error.startswith("a timeout"):
                raise
            kind = exc.error.split(":", 1)[0] if exc.error[:1].isupper() else "an error"
            raise CheckerError(
                exc.case, f"{kind} (on a hidden case: its message is withheld)"
            ) from None
        verdict = Verdict.PASSED if fraction == 1 else Verdict.WRONG_ANSWER
        if verdict is Verdict.WRONG_ANSWER and case.expected is not None:
            label = "pattern" if case.compare == "regex" else "expected"
            diff = visible_diff(case.expected, ran.stdout, label=label)
    elif ran.status is RunStatus.ERROR:
        verdict, detail = Verdict.ERROR, f"exit {ran.exit_code}"
    elif ran.status is RunStatus.TIMEOUT:
        verdict, detail = Verdict.TIMEOUT, f"over {ran.timeout:g}s"
    elif ran.status is RunStatus.MEMORY_LIMIT:
        verdict, detail = Verdict.MEMORY_LIMIT, f"over {format_size(ran.memory)}"
    else:
        verdict = Verdict.KILLED
        detail = ran.note or (f"killed by {signal_name(ran.signal)}" if ran.signal else "killed")
    if case.hidden and not reveal:
        return _withheld(case, verdict, case.points * fraction)
    return CaseResult(
        name=case.name,
        verdict=verdict,
        points=case.points * fraction,
        max_points=case.points,
        stdout=ran.stdout,
        stderr=ran.stderr,
        duration=ran.duration,
        diff=diff,
        hidden=case.hidden,
        detail=detail,
    )


def _withheld(case: Case, verdict: Verdict, points: float) -> CaseResult:
    return CaseResult(
        name=case.name,
        verdict=verdict,
        points=points,
        max_points=case.points,
        stdout="",
        stderr="",
        duration=0.0,
        diff="",
        hidden=True,
        withheld=True,
    )


def _sealed(run: RunResult, cases: list[Case]) -> RunResult:
    """``run`` as a student may see it: nothing of what the program did in a hidden case.

    Its endings keep only their status (which the verdict tells anyway) and the
    limits the case was given. The run's CPU time and peak memory go too: a
    hidden case's program could make them tell its input.
    """
    if not any(case.hidden for case in cases):
        return run
    endings = tuple(
        replace(
            ran,
            exit_code=None,
            signal=None,
            stdout="",
            stderr="",
            duration=0.0,
            truncated=False,
            note="",
        )
        if index < len(cases) and cases[index].hidden
        else ran
        for index, ran in enumerate(run.cases)
    )
    return replace(run, cases=endings, cpu_seconds=None, peak_memory=None)


def not_run(
    cases: object, reason: str, *, limits: Limits | None = None, image: str = DEFAULT_IMAGE
) -> CheckResult:
    """The result of a submission that could not be run at all: every case ``error``.

    ``reason`` (an empty file is fine to run; a missing one is not) is each case's detail.
    """
    loaded = load_cases(cases)
    limits = limits if limits is not None else Limits()
    run = RunResult(
        status=RunStatus.ERROR,
        exit_code=None,
        signal=None,
        stdout="",
        stderr=reason,
        duration=0.0,
        truncated=False,
        limits=limits,
        image=image,
        cases=cases_not_run(
            (
                (
                    case.timeout if case.timeout is not None else limits.timeout,
                    case.memory if isinstance(case.memory, int) else limits.memory,
                )
                for case in loaded
            ),
            reason,
            status=RunStatus.ERROR,
        ),
    )
    results = tuple(not_judged(case, reason) for case in loaded)
    return CheckResult(cases=results, run=run)


def not_judged(case: Case, detail: str = "", *, withheld: bool = False) -> CaseResult:
    """A case that could not be judged: an error, 0 of its points, ``detail`` saying why."""
    return CaseResult(
        name=case.name,
        verdict=Verdict.ERROR,
        points=0.0,
        max_points=case.points,
        stdout="",
        stderr="",
        duration=0.0,
        diff="",
        hidden=case.hidden,
        detail=detail,
        withheld=withheld,
    )


def _held_check(
    code: str | bytes, assignment: str, backend: Backend | None, on_case: OnCaseResult | None
) -> CheckResult:
    """The check of an assignment the service holds, as the service answered it."""
    answer = ask(code, assignment, backend)
    try:
        cases = tuple(CaseResult.from_dict(item) for item in answer["cases"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CodedockError(
            f"the sandbox service sent a malformed check ({exc}); tell your administrator"
        ) from None
    if on_case is not None:
        for index, case in enumerate(cases):
            on_case(index, case)
    run = RunResult(
        status=RunStatus.OK,
        exit_code=None,
        signal=None,
        stdout="",
        stderr="",
        duration=0.0,
        truncated=False,
        limits=Limits(),
        image="",
    )
    return CheckResult(
        cases=cases,
        run=run,
        assignment=assignment,
        attempts_left=answer.get("attempts_left"),
        next_at=answer.get("next_at"),
        late=bool(answer.get("late")),
    )


def check(
    code: str | bytes,
    cases: object = None,
    *,
    assignment: str | None = None,
    limits: Limits | None = None,
    image: str = DEFAULT_IMAGE,
    on_case: OnCaseResult | None = None,
    reveal_hidden: bool = False,
    engine: Engine | None = None,
    pool: Pool | None = None,
    backend: Backend | None = None,
    asked: Iterable[str] | None = None,
    stop: Stop | None = None,
) -> CheckResult:
    """Run ``code`` against every case, in fresh containers, and judge each.

    Visible cases share a container; each hidden case has one of its own, and
    the visible cases after it start in a fresh one (see :mod:`.isolation`).

    Args:
        code: the submission's Python source.
        cases: :class:`~codedock_magic.grading.cases.Case` objects, dicts or objects with
            their fields, or the path of a JSON or YAML file of them (see
            :func:`~codedock_magic.grading.cases.load_cases`).
        limits: the limits of each case (a case's own timeout and memory win);
            the container gets the most memory any case needs.
        image: an image with ``python3``; never pulled.
        on_case: called with each case's result as soon as it is judged.
        reveal_hidden: keep everything of hidden cases too: output, diff, exit
            code, duration, and the run's usage (for a grader's own records; never
            for what a student sees). Without it, a hidden case's result and its
            ending in ``run.cases`` keep only the name, verdict and points.
        engine, pool, backend, asked: as for :func:`~codedock_magic.run`; with
            ``$CODEDOCK_SERVICE_URL`` set and none given, the sandbox service runs it.
        stop: once set, the check ends; for a caller that runs checks in threads,
            where Ctrl+C cannot reach them.

    With ``assignment`` instead of ``cases``, the sandbox service (``backend``, or
    ``$CODEDOCK_SERVICE_URL``) checks the code against that assignment's cases,
    which never leave it (see :mod:`.held`); the result holds what this user may see.

    Ctrl+C, or ``stop``, ends the check: the cases not yet run get verdict
    ``killed``, with detail ``interrupted``.

    Raises:
        CaseError: a case is malformed (nothing has run).
        CheckerError: a checker raised on a case's output.
        EngineError: the engine failed; no container is left behind.
    """
    if assignment is not None:
        return _held_check(code, assignment, backend, on_case)
    loaded = load_cases(cases)
    if asked is None:
        asked = default_asked(limits, image)
    limits = limits if limits is not None else Limits()
    own = [case.memory for case in loaded if isinstance(case.memory, int)]
    if own and max(own) > limits.memory:
        limits = limits.replace(memory=max(own))
        asked = {*asked, "memory"}
    inputs = [
        CaseInput(
            stdin=as_bytes(case.stdin, "stdin"),
            timeout=case.timeout,
            memory=case.memory if isinstance(case.memory, int) else None,
        )
        for case in loaded
    ]
    backend = choose_backend(backend, engine=engine, pool=pool)
    judged: dict[int, CaseResult] = {}

    def take(index: int, ran: CaseEnding) -> None:
        judged[index] = verdict_of(loaded[index], ran, reveal=reveal_hidden)
        if on_case is not None:
            on_case(index, judged[index])

    # A hidden case's sandbox is its own (see .isolation).
    parts: list[tuple[RunResult, bool]] = []
    with signals_as_flag(stop=stop) as flag:
        for group in sandbox_groups([case.hidden for case in loaded]):
            request = RunRequest(
                code=as_bytes(code, "code"),
                profile=Profile(image, limits.container),
                limits=limits.run,
                asked=frozenset(asked),
                cases=tuple(inputs[index] for index in group),
            )

            def take_in_group(index: int, ran: CaseEnding, start: int = group.start) -> None:
                take(start + index, ran)

            ran_group = backend.run(request, listener=Listener(on_case=take_in_group), stop=flag)
            parts.append((ran_group, reveal_hidden or not loaded[group.start].hidden))
    result = merge_runs(parts)
    for index, ran in enumerate(result.cases):
        if index not in judged:
            # Cases that never ended: their verdicts come with the run's end.
            take(index, ran)
    if not reveal_hidden:
        result = _sealed(result, loaded)
    return CheckResult(cases=tuple(judged[i] for i in range(len(loaded))), run=result)
