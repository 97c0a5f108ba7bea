"""What a backend is asked to run, and how it reports output as it comes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import InvalidValueError
from .limits import RunLimits
from .profile import Profile

if TYPE_CHECKING:
    from .result import CaseRun

__all__ = ["CaseInput", "OnCase", "OnOutput", "OnState", "RunRequest", "as_bytes"]

#: ``on_output(stream, text)``: ``stream`` is ``"stdout"`` or ``"stderr"``.
OnOutput = Callable[[str, str], None]
#: ``on_state(state)``: ``"queued"`` while a service holds the run back for its
#: user's quota, ``"running"`` once it has a container.
OnState = Callable[[str], None]
#: ``on_case(index, run)``: case ``index`` of a run with cases has ended.
OnCase = Callable[[int, "CaseRun"], None]


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
        asked: which of the limits' fields (and ``"image"``) the caller chose;
            ``None`` for all. A local backend uses every value as it is; a sandbox
            service fills the fields not asked for from its own defaults, and
            refuses an asked value over its ceiling.
    """

    code: bytes
    stdin: bytes = b""
    profile: Profile = field(default_factory=Profile)
    limits: RunLimits = field(default_factory=RunLimits)
    asked: frozenset[str] | None = None
    cases: tuple[CaseInput, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", as_bytes(self.code, "code"))
        object.__setattr__(self, "stdin", as_bytes(self.stdin, "stdin"))
