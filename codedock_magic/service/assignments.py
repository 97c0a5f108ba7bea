"""Assignments the service holds: students check against cases they can never read.

==================================  ===============================================
``GET  /api/assignments``           each assignment with its state, and the
                                    caller's attempts left and next allowed time
``POST /api/assignments/NAME/check`` ``{"code": ...}``: check it; the answer is one
                                    JSON object, the result as the caller may see it
==================================  ===============================================

The cases never leave the service. A caller outside the assignment's ``reveal_to``
gets, of a hidden case, its name, verdict and points alone (see
:func:`~codedock_magic.grading.check.verdict_of`); the visible cases run first,
then the hidden ones, and the answer waits until the hidden ones have had their
time limits together (plus :data:`START_ALLOWANCE` per case for its container),
so how long it takes says nothing of what a program did in a hidden case.

Attempts go to the gradebook before the answer, and are counted from it: limits
and cooldowns hold across kernels, servers and service restarts. One attempt of
a user at an assignment is under way at a time.

A ``reveal_to`` user (a teacher) has no attempt limit and no cooldown. Their
attempts are still recorded, marked as a teacher's, so that the gradebook's
exports, regrades and the students' counts leave them out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

from ..core.errors import CheckerError, CodedockError
from ..core.interrupts import Stop
from ..gradebook import Attempt, code_sha256
from ..gradebook.history import checkers_digest
from ..gradebook.store import CaseScore
from ..grading.assignments import Assignment, Standing, State
from ..grading.check import CaseResult, check, not_judged
from ..grading.records import cases_digest
from ..remote.wire import limits_to_json
from .audit import audit_record, clip
from .auth import Caller
from .handlers import BaseHandler
from .scheduler import QueueFullError, Slot

__all__ = ["START_ALLOWANCE", "assignment_handlers"]

#: Seconds a hidden case's container may take to start, counted in the fixed time
#: the hidden verdicts arrive after.
START_ALLOWANCE = 2.0
# The largest code a check takes is the caller's max_code_bytes; its JSON, a bit more.
_BODY_SLACK = 64 * 1024


_log = logging.getLogger("codedock.service")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC") if at is not None else "now"


class _Held(BaseHandler):
    @property
    def assignments(self) -> dict[str, Assignment]:
        held: dict[str, Assignment] = self.settings["codedock_assignments"]
        return held

    async def standing(self, user: str, assignment: Assignment, now: datetime) -> Standing:
        attempts = await asyncio.to_thread(self.service.gradebook.attempts, user, assignment.name)
        return assignment.standing([a.at for a in attempts if not a.teacher], now)


class AssignmentsHandler(_Held):
    """The assignments the caller can see, with their states and the caller's attempts."""

    async def get(self) -> None:
        caller = self.the_caller
        now = _now()
        listed = []
        for assignment in self.assignments.values():
            entry = assignment.describe(now)
            entry.update((await self.standing(caller.name, assignment, now)).to_dict())
            entry["revealed"] = assignment.reveals_to(caller.groups)
            listed.append(entry)
        self.finish({"assignments": listed, "now": now.isoformat()})


class CheckHandler(_Held):
    """Check the caller's code against an assignment's cases, within its rules."""

    _stop: Stop | None = None

    async def prepare(self) -> None:
        await super().prepare()
        tier = self.service.policy.tier(self.the_caller.groups)
        self.keep_body(tier.max_code_bytes * 4 // 3 + _BODY_SLACK)

    def on_connection_close(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def post(self, name: str) -> None:
        caller = self.the_caller
        assignment = self.assignments.get(name)
        if assignment is None:
            self.fail(404, f"there is no assignment {name}; %sandbox_assignments lists them")
        code = self._code()
        now = _now()
        state = assignment.state(now)
        if not state.takes_attempts:
            when = assignment.opens if state is State.NOT_OPEN else None
            self.fail(
                403,
                f"{name} is {state}: "
                + (f"it opens at {_when(when)}" if when else "it takes no more attempts"),
            )
        key = (caller.name, name)
        under_way: set[tuple[str, str]] = self.settings["codedock_attempts_under_way"]
        if key in under_way:
            self.fail(429, f"an attempt at {name} is under way; wait for its result")
        under_way.add(key)
        try:
            await self._attempt(caller, assignment, code, now)
        finally:
            under_way.discard(key)

    def _code(self) -> str:
        body = self.body_json()
        code = body.get("code")
        if not isinstance(code, str):
            self.fail(400, "send the code as {'code': TEXT}")
        if "\0" in code:
            # Python runs no source with a NUL, and PostgreSQL keeps no text with
            # one: refused here, before a check runs that could not be recorded.
            self.fail(400, "the code holds a NUL character; remove it")
        tier = self.service.policy.tier(self.the_caller.groups)
        if len(code.encode()) > tier.max_code_bytes:
            self.fail(413, f"the code is over the service's max_code_bytes = {tier.max_code_bytes}")
        return code

    async def _attempt(
        self, caller: Caller, assignment: Assignment, code: str, now: datetime
    ) -> None:
        revealed = assignment.reveals_to(caller.groups)
        standing = await self.standing(caller.name, assignment, now)
        if not revealed and (standing.attempts_left == 0 or standing.next_at is not None):
            if standing.attempts_left == 0 and standing.next_at is None:
                message = (
                    f"{assignment.name}: no attempts left (the limit is "
                    f"{assignment.max_attempts}); no further attempt is allowed"
                )
            else:
                why = (
                    f"no attempts left (the limit is {assignment.max_attempts} in "
                    f"{assignment.window:g} s)"
                    if standing.attempts_left == 0
                    else f"the cooldown is {assignment.cooldown:g} s"
                )
                message = (
                    f"{assignment.name}: {why}; the next attempt is allowed at "
                    f"{_when(standing.next_at)}"
                )
            self.service.metrics.refused.labels("attempts").inc()
            closes = assignment.closes
            if standing.next_at is not None and closes is not None and standing.next_at >= closes:
                standing_next, message = None, f"{message}, after it closes at {_when(closes)}"
            else:
                standing_next = standing.next_at
            if standing_next is None:
                # Never again: no wait would help, so no Retry-After to promise one.
                self.fail(403, message)
            self.busy((standing_next - now).total_seconds(), message)
        slot = await self._slot(caller)
        try:
            results = await self._run(caller, assignment, code, revealed)
        finally:
            self.service.scheduler.release(slot)
        if results is None:
            return  # the client went: nothing was shown, nothing is counted
        score = sum(case.points for case in results)
        late = assignment.state(now) is State.DUE
        await asyncio.to_thread(
            self._record, caller, assignment, code, now, results, late, revealed
        )
        after = (
            Standing(None, None)
            if revealed
            else await self.standing(caller.name, assignment, _now())
        )
        self._audit(caller, assignment, code, score)
        if not self._finished:
            self.finish(
                {
                    "assignment": assignment.name,
                    "revealed": revealed,
                    "late": late,
                    "score": score,
                    "max_score": sum(case.max_points for case in results),
                    "cases": [case.to_dict() for case in results],
                    **after.to_dict(),
                }
            )

    async def _slot(self, caller: Caller) -> Slot:
        tier = self.service.policy.tier(caller.groups)
        try:
            admitted = self.service.scheduler.admit(
                caller.name, max_concurrent=tier.max_concurrent, max_queued=tier.max_queued
            )
        except QueueFullError as exc:
            self.fail(429, str(exc))
        if not isinstance(admitted, Slot):
            await admitted
            return Slot(caller.name)
        return admitted

    async def _run(
        self, caller: Caller, assignment: Assignment, code: str, revealed: bool
    ) -> list[CaseResult] | None:
        """Each case's result as the caller may see it; None when the client went."""
        tier = self.service.policy.tier(caller.groups)
        limits = tier.defaults.replace(**assignment.limits)
        stop = self._stop = Stop()
        visible = [i for i, case in enumerate(assignment.cases) if not case.hidden]
        hidden = [i for i, case in enumerate(assignment.cases) if case.hidden]
        judged: dict[int, CaseResult] = {}
        try:
            for group in (visible, hidden):
                if not group:
                    continue
                started = time.monotonic()
                try:
                    result = await asyncio.get_running_loop().run_in_executor(
                        self.service.executor,
                        lambda group=group: check(  # type: ignore[misc]
                            code,
                            [assignment.cases[i] for i in group],
                            limits=limits,
                            image=tier.default_image,
                            backend=self.service.backend,
                            asked=(),
                            reveal_hidden=revealed,
                            stop=stop,
                        ),
                    )
                    judged.update(zip(group, result.cases, strict=True))
                except CodedockError as exc:
                    if group is not hidden or revealed:
                        raise
                    # A failure among the hidden cases (the checker raised on what
                    # the program printed, the sandbox ended) must not answer sooner,
                    # say which case, or go uncounted: a student could otherwise ask
                    # about hidden inputs without limit. Every hidden case is then an
                    # error, after the fixed time, and the attempt counts.
                    _log.warning(
                        "%s: the hidden cases of %s failed: %s",
                        clip(caller.name),
                        clip(assignment.name),
                        clip(str(exc)),
                    )
                    judged.update(
                        (i, not_judged(assignment.cases[i], withheld=True)) for i in hidden
                    )
                if group is hidden and not revealed:
                    # Fixed: the hidden cases' time limits, however the program spent them.
                    fixed = assignment.hidden_seconds(limits.timeout) + START_ALLOWANCE * len(
                        hidden
                    )
                    await asyncio.sleep(max(started + fixed - time.monotonic(), 0.0))
        except CheckerError as exc:
            self.fail(500, f"the assignment's checker failed: {exc}; tell your teacher")
        except CodedockError as exc:
            self.fail(503, f"the check could not run: {exc}")
        if stop.is_set():
            return None
        return [judged[i] for i in range(len(assignment.cases))]

    def _record(
        self,
        caller: Caller,
        assignment: Assignment,
        code: str,
        at: datetime,
        results: list[CaseResult],
        late: bool,
        teacher: bool,
    ) -> None:
        tier = self.service.policy.tier(caller.groups)
        self.service.gradebook.record(
            Attempt(
                user=caller.name,
                assignment=assignment.name,
                at=at,
                code=code,
                code_sha256=code_sha256(code),
                score=sum(case.points for case in results),
                max_score=sum(case.max_points for case in results),
                verdicts={case.name: case.verdict.value for case in results},
                late=late,
                cases=tuple(CaseScore(c.name, c.points, c.max_points, c.hidden) for c in results),
                teacher=teacher,
                cases_sha256=cases_digest(assignment.cases),
                checkers_sha256=checkers_digest(assignment.cases),
                # What it ran with, so that a regrade runs it alike (a group's tier
                # may give more time than the base).
                defaults=limits_to_json(tier.defaults),
                image=tier.default_image,
            )
        )

    def _audit(self, caller: Caller, assignment: Assignment, code: str, score: float) -> None:
        # What a hidden case did stays out: no exit code, no duration, no output size.
        self.service.metrics.runs.labels("assignment").inc()
        tier = self.service.policy.tier(caller.groups)
        record = audit_record(
            user=caller.name,
            image=tier.default_image,
            code=code.encode(),
            limits_requested={},
            limits_applied=limits_to_json(tier.defaults.replace(**assignment.limits)),
            status="checked",
        )
        record["assignment"] = assignment.name
        record["score"] = score
        self.service.audit.write(record)


def assignment_handlers() -> list[tuple[str, type[BaseHandler]]]:
    """The routes of assignments."""
    return [
        (r"/api/assignments", AssignmentsHandler),
        (r"/api/assignments/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/check", CheckHandler),
    ]
