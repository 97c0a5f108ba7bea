"""Checks of an assignment the sandbox service holds: ``check(code, assignment="hw3")``.

The cases stay on the service, which runs them, judges them and answers with
what this user may see: of a hidden case its name, verdict and points alone
(unless the user is among the assignment's ``reveal_to``), and how many
attempts are left and when the next is allowed. This module finds the service
and asks it; :func:`~codedock_magic.grading.check.check` reads the answer.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidValueError, ServiceUnavailableError
from ..core.request import Backend
from ..remote.client import ServiceBackend, service_from_env

__all__ = ["ask", "held_by"]


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


def ask(code: str | bytes, assignment: str, backend: Backend | None) -> dict[str, Any]:
    """The service's answer to ``code`` for ``assignment``: score, cases, attempts.

    Raises:
        InvalidValueError: no sandbox service is set.
        ServiceRefusedError: the service refused: no such assignment, not open, or
            no attempt allowed now (the message says when the next is).
        ServiceUnavailableError: the answer is not one.
    """
    service = held_by(backend, assignment)
    text = code.decode("utf-8", "replace") if isinstance(code, bytes) else code
    answer = service.check_assignment(assignment, text)
    if not isinstance(answer, dict) or not isinstance(answer.get("cases"), list):
        raise ServiceUnavailableError(service.url, "it sent a malformed check")
    return answer
