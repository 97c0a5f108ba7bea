"""The exceptions codedock_magic raises.

Every error is a :class:`CodedockError`, and each message says what went wrong
and what to do next::

    CodedockError
    ├── InvalidValueError (also a ValueError)  a limit, option or setting is malformed
    │   ├── CaseError                          a test case is malformed (names case and field)
    │   └── AssignmentError                    an assignment's file is malformed (names the file)
    ├── EngineError                            the container engine failed us
    │   ├── EngineUnavailableError             no engine answered
    │   ├── ImageNotFoundError                 the sandbox image is not built
    │   └── ImageBuildError                    building a sandbox image failed
    ├── ServiceError                           the sandbox service failed us
    │   ├── ServiceUnavailableError            no service answered
    │   ├── ServiceAuthError                   it did not accept our token
    │   └── ServiceRefusedError                it refused the run (a ceiling, a quota, a value)
    ├── CheckerError                           a teacher's checker function raised
    ├── GradebookError                         the gradebook's database failed us
    ├── RunFailedError                         %%sandbox: the cell's program did not end ok
    └── CheckFailedError                       %%sandbox --cases: not every case passed

A sandboxed program that fails, times out or runs out of memory is not an
exception for :func:`~codedock_magic.run`: it is a
:class:`~codedock_magic.core.result.RunResult` with that status. Only the magic turns
it into :class:`RunFailedError`, so that "Run all" stops as at a failing cell.

:class:`RunFailedError` lives next to the result it carries
(:mod:`codedock_magic.core.result`), and :class:`CheckFailedError` next to its
:class:`~codedock_magic.grading.check.CheckResult` (:mod:`codedock_magic.grading.check`),
so that this module imports nothing; :mod:`codedock_magic.errors` offers all of them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AssignmentError",
    "CaseError",
    "CheckerError",
    "CodedockError",
    "EngineError",
    "EngineUnavailableError",
    "GradebookError",
    "ImageBuildError",
    "ImageNotFoundError",
    "InvalidValueError",
    "ServiceAuthError",
    "ServiceError",
    "ServiceRefusedError",
    "ServiceUnavailableError",
]

#: The command that builds the sandbox images, named by the errors that need them.
BUILD_HINT = "codedock image build"


class CodedockError(Exception):
    """Base class of every error raised by codedock_magic.

    In IPython these show as one line, ``ErrorName: message``: the message says
    what to do, and a traceback through the engine client would only hide it.
    """

    #: What the constructor was called with, so that the error pickles: a remote
    #: backend or a worker process hands it back across a process boundary.
    _init_args: tuple[object, ...] = ()

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return type(self), self._init_args or self.args

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class InvalidValueError(CodedockError, ValueError):
    """A value given by the user (a limit, an option, a setting) is malformed.

    Raised before anything starts, so nothing is created and nothing is lost.
    """

    def __init__(self, name: str, value: object, expected: str) -> None:
        self.name = name
        self.value = value
        self.expected = expected
        self._init_args = (name, value, expected)
        super().__init__(f"{name} {value!r} is not {expected}")


class CaseError(InvalidValueError):
    """A test case is malformed: the message names the case, the field and what it must be."""

    def __init__(self, case: str, field: str, value: object, expected: str) -> None:
        self.case = case
        self.field = field
        CodedockError.__init__(self)
        self.name, self.value, self.expected = field, value, expected
        self._init_args = (case, field, value, expected)
        self.args = (f"case {case}: {field} {value!r} is not {expected}",)


class AssignmentError(InvalidValueError):
    """An assignment's file is malformed: the message names the setting, the file and the fix."""

    def __init__(self, where: str, problem: str) -> None:
        CodedockError.__init__(self)
        self.name, self.value, self.expected = where, "", problem
        self._init_args = (where, problem)
        self.args = (f"{where}: {problem}",)


class CheckerError(CodedockError):
    """A checker function, written by the teacher, raised on a case's output.

    A fault of the grading, not of the program: no verdict is made up for it.
    """

    def __init__(self, case: str, error: str) -> None:
        self.case = case
        self.error = error
        self._init_args = (case, error)
        super().__init__(
            f"the checker of case {case} raised {error}; fix the checker (it gets the "
            "program's output as a str, and the case) and check again"
        )


class EngineError(CodedockError):
    """The container engine refused or failed an operation."""


class EngineUnavailableError(EngineError):
    """No container engine answered at the address we tried."""

    def __init__(self, address: str, detail: str = "") -> None:
        self.address = address
        self.detail = detail
        self._init_args = (address, detail)
        hint = (
            "start one (systemctl start docker; as root on Debian without one: apt-get install "
            "docker.io), or point DOCKER_HOST at a running engine"
        )
        extra = f" ({detail})" if detail else ""
        super().__init__(f"no Docker engine answered at {address}{extra}; {hint}")


class ImageNotFoundError(EngineError):
    """The image sandboxes run in does not exist on the engine."""

    def __init__(self, image: str) -> None:
        self.image = image
        self._init_args = (image,)
        super().__init__(
            f"the sandbox image {image!r} is not on this Docker engine; build it with "
            f"{BUILD_HINT}{' --sci' if 'pybuntu-sci' in image else ''}, or choose another "
            "image that has python3"
        )


class ImageBuildError(EngineError):
    """Building a sandbox image failed (``codedock image build``)."""

    def __init__(self, image: str, detail: str, hint: str = "") -> None:
        self.image = image
        self.detail = detail
        self.hint = hint
        self._init_args = (image, detail, hint)
        then = f"; {hint}" if hint else ""
        super().__init__(f"could not build the sandbox image {image!r}: {detail}{then}")


class ServiceError(CodedockError):
    """The sandbox service (``codedock serve``) failed or refused a request."""


class ServiceUnavailableError(ServiceError):
    """No sandbox service answered at its URL, or it went away during a run."""

    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        self.detail = detail
        self._init_args = (url, detail)
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"no sandbox service answered at {url}{extra}; run the cell again once it is "
            "back, or ask your administrator to start it (codedock serve)"
        )


class ServiceAuthError(ServiceError):
    """The sandbox service did not accept the token sent with the request."""

    def __init__(self, url: str, status: int, message: str) -> None:
        self.url = url
        self.status = status
        self._init_args = (url, status, message)
        super().__init__(
            f"the sandbox service at {url} refused the token (HTTP {status}: {message}); in a "
            "JupyterHub the hub gives kernels JUPYTERHUB_API_TOKEN, and the admin grants it "
            "access:services!service=codedock; without a hub, set CODEDOCK_SERVICE_TOKEN to a "
            "token from the service's api_tokens"
        )


class ServiceRefusedError(ServiceError):
    """The sandbox service refused a run: over a ceiling or a quota, or a bad value.

    The message is the service's own, one line naming what to change.
    """

    def __init__(self, message: str, status: int = 400, retry_after: float | None = None) -> None:
        self.status = status
        #: Seconds the service asked to wait before trying again (its ``Retry-After``).
        self.retry_after = retry_after
        self._init_args = (message, status, retry_after)
        super().__init__(message)


class GradebookError(CodedockError):
    """The gradebook's database refused, or holds what we cannot read."""

    def __init__(self, message: str) -> None:
        self._init_args = (message,)
        super().__init__(message)
