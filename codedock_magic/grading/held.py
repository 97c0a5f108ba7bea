"""Checks of an assignment the sandbox service holds: ``check(code, assignment="hw3")``.

The cases stay on the service, which runs them, judges them and answers with
what this user may see: of a hidden case its name, verdict and points alone
(unless the user is among the assignment's ``reveal_to``), and how many
attempts are left and when the next is allowed.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidValueError, ServiceUnavailableError
from ..core.limits import Limits
from ..core.profile import DEFAULT_IMAGE
from ..core.request import Backend
from ..core.result import RunResult, RunStatus
from ..remote.client import ServiceBackend, service_from_env
from .check import CaseResult, CheckResult, OnCaseResult, Verdict

__all__ = ["check_assignment", "held_by"]


def held_by(backend: Backend | None, assignment: str) -> ServiceBackend:
    """The service that holds ``assignment``: ``backend``, or the one of ``$CODEDOCK_SERVICE_URL``.

    Raises:
        InvalidValueError: there is no sandbox service to ask.
    """
    service = backend if isinstance(backend, ServiceBackend) else None
    if service is None and backend is None:
        service = service_from_env()
    if service is None:
        raise InvalidValueError(
            "assignment",
            assignment,
            "checkable here: assignments are held by the sandbox service; set "
            "CODEDOCK_SERVICE_URL (a JupyterHub with codedock sets it) or "
            "SandboxMagics.service_url",
        )
    return service


def check_assignment(
    code: str | bytes,
    assignment: str,
    *,
    backend: Backend | None = None,
    on_case: OnCaseResult | None = None,
) -> CheckResult:
    """Send ``code`` to the service to be checked against ``assignment``'s cases.

    Raises:
        InvalidValueError: no sandbox service is set.
        ServiceRefusedError: the service refused: no such assignment, not open, or
            no attempt allowed now (the message says when the next is).
    """
    service = held_by(backend, assignment)
    text = code.decode("utf-8", "replace") if isinstance(code, bytes) else code
    answer = service.check_assignment(assignment, text)
    try:
        cases = tuple(_case(item) for item in answer["cases"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceUnavailableError(service.url, f"it sent a malformed check ({exc})") from None
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
        image=DEFAULT_IMAGE,
    )
    return CheckResult(
        cases=cases,
        run=run,
        assignment=assignment,
        attempts_left=answer.get("attempts_left"),
        next_at=answer.get("next_at"),
        late=bool(answer.get("late")),
    )


def _case(item: dict[str, Any]) -> CaseResult:
    withheld = bool(item.get("withheld"))
    return CaseResult(
        name=str(item["name"]),
        verdict=Verdict(item["verdict"]),
        points=float(item["points"]),
        max_points=float(item["max_points"]),
        stdout="" if withheld else str(item.get("stdout", "")),
        stderr="" if withheld else str(item.get("stderr", "")),
        duration=0.0 if withheld else float(item.get("duration", 0.0)),
        diff="" if withheld else str(item.get("diff", "")),
        hidden=bool(item.get("hidden")),
        detail="" if withheld else str(item.get("detail", "")),
        withheld=withheld,
    )
