"""What a backend is asked to run, whom it tells as the run goes on, and the backend seam.

``asked`` has one meaning throughout the package: the set of names, of the limits'
fields and ``"image"``, whose values the caller chose rather than left to a
default (:attr:`RunRequest.asked`). The values themselves travel as limits, and
the wire sends only the asked ones, so that a sandbox service fills the rest
from its own defaults.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .errors import InvalidValueError
from .limits import RunLimits
from .profile import Profile

if TYPE_CHECKING:
    from .result import CaseEnding, RunResult

__all__ = [
    "Backend",
    "CaseInput",
    "Listener",
    "OnCase",
    "OnImage",
    "OnOutput",
    "OnState",
    "RunRequest",
    "as_bytes",
    "check_file_name",
]

#: ``on_output(stream, text)``: ``stream`` is ``"stdout"`` or ``"stderr"``.
OnOutput = Callable[[str, str], None]
#: ``on_state(state)``: ``"queued"`` while a service holds the run back for its
#: user's quota, ``"running"`` once it has a container.
OnState = Callable[[str], None]
#: ``on_case(index, ending)``: case ``index`` of a run with cases has ended.
OnCase = Callable[[int, "CaseEnding"], None]
#: ``on_image(mime, data)``: the program showed an image (checked, within the caps).
OnImage = Callable[[str, bytes], None]


@dataclass(frozen=True)
class Listener:
    """Whom a backend tells what happens while a run goes on, in the order it happens.

    Give the callbacks wanted (the others are not called), or override the methods.

    Attributes:
        on_output: output as it arrives (not for a run with cases, whose output is
            in each case's end).
        on_state: ``"queued"`` and ``"running"``, when a service holds the run back.
        on_image: each image the program shows, as it comes.
        on_case: each case's end, for a run with cases, as it comes.
    """

    on_output: OnOutput | None = None
    on_state: OnState | None = None
    on_image: OnImage | None = None
    on_case: OnCase | None = None

    def output(self, stream: str, text: str) -> None:
        """``stream`` (``"stdout"`` or ``"stderr"``) brought ``text``."""
        if self.on_output is not None:
            self.on_output(stream, text)

    def state(self, state: str) -> None:
        """The run is ``"queued"`` or ``"running"``."""
        if self.on_state is not None:
            self.on_state(state)

    def image(self, mime: str, data: bytes) -> None:
        """The program showed an image (checked, within the caps)."""
        if self.on_image is not None:
            self.on_image(mime, data)

    def case(self, index: int, ending: CaseEnding) -> None:
        """Case ``index`` ended."""
        if self.on_case is not None:
            self.on_case(index, ending)


@dataclass(frozen=True)
class CaseInput:
    """One case of a run with cases: what the program reads, and its own limits.

    Attributes:
        stdin: what the program reads on standard input in this case.
        timeout: its wall-clock seconds; ``None`` for the run's timeout.
        memory: its memory cap in bytes, at most the container's; ``None`` for the
            container's.
    """

    stdin: bytes = b""
    timeout: float | None = None
    memory: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "stdin", as_bytes(self.stdin, "stdin"))


def as_bytes(value: object, name: str) -> bytes:
    """Text as UTF-8, bytes as they are; anything else is refused, naming ``name``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise InvalidValueError(name, type(value).__name__, "str or bytes")


@dataclass(frozen=True)
class RunRequest:
    """One run as a backend takes it.

    Attributes:
        code: the Python source (text is sent as UTF-8).
        stdin: what the program reads on standard input.
        profile: the image and container limits it runs in.
        limits: its timeout and output cap.
        cases: when given, the code runs once per case, all in one container, each
            in a fresh process with a fresh work dir; ``stdin`` is then unused.
        values: JSON text of an object whose names are bound in the program's
            ``__main__`` before its code runs (empty: none).
        returns: the name of a variable whose JSON value comes back as
            ``RunResult.value`` (empty: none).
        files: ``(name, bytes)`` put into ``/sandbox`` before the run.
        asked: the names of the limits' fields (and ``"image"``) whose values the
            caller chose; ``None`` for all. A local backend uses every value as it
            is; a sandbox service fills the fields not asked for from its own
            defaults, and refuses an asked value over its ceiling.
    """

    code: bytes
    stdin: bytes = b""
    profile: Profile = field(default_factory=Profile)
    limits: RunLimits = field(default_factory=RunLimits)
    asked: frozenset[str] | None = None
    cases: tuple[CaseInput, ...] = ()
    values: bytes = b""
    returns: str = ""
    files: tuple[tuple[str, bytes], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", as_bytes(self.code, "code"))
        object.__setattr__(self, "stdin", as_bytes(self.stdin, "stdin"))
        if self.cases and (self.values or self.returns or self.files):
            raise InvalidValueError(
                "cases", len(self.cases), "given without values, returns or files"
            )
        for name, data in self.files:
            check_file_name(name)
            if not isinstance(data, bytes):
                raise InvalidValueError(f"file {name}", type(data).__name__, "bytes")
        if self.returns and not self.returns.isidentifier():
            raise InvalidValueError("returns", self.returns, "a variable name")


def check_file_name(name: str) -> str:
    """``name`` if it is a file name relative to ``/sandbox``; else InvalidValueError."""
    parts = name.split("/") if isinstance(name, str) else []
    if (
        not parts
        or name.startswith("/")
        or "\0" in name
        or any(part in ("", ".", "..") for part in parts)
        or name == "main.py"
    ):
        raise InvalidValueError(
            "file name", name, "a relative path inside /sandbox, without '..', other than main.py"
        )
    return name


class Backend(Protocol):
    """Something that runs a :class:`RunRequest` to its end."""

    def run(
        self,
        request: RunRequest,
        *,
        listener: Listener | None = None,
        stop: threading.Event | None = None,
    ) -> RunResult:
        """Run ``request``; return its result.

        ``listener`` hears the run as it goes (its output, images, state changes
        and each case's end); once ``stop`` is set the run is ended and returned
        with status ``interrupted``. Failures of the program are results, not
        exceptions; only the backend's own failures raise, as
        :class:`~codedock_magic.core.errors.CodedockError`.
        """
        ...
