"""What the handlers hold of the service: the runs it keeps, and the parts they use.

The application (:mod:`.app`) builds these parts and the handlers
(:mod:`.handlers`) use them; this module lets the handlers name them without
importing the application, which imports the handlers.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..core.interrupts import Stop
from ..gradebook import Gradebook
from ..local.backend import LocalBackend
from ..local.pool import Pool
from .audit import AuditLog
from .auth import Caller, TokenChecker
from .boundary import ConnectionCaps
from .metrics import Metrics
from .policy import Policy
from .refusals import RefusalLimiter
from .scheduler import FairScheduler
from .starts import TurnTakingStarts
from .unread import UnreadLedger

__all__ = ["LiveRun", "ServiceState"]


@dataclass
class LiveRun:
    """A run the service holds: what it lists, and how to stop it. No code, no output."""

    id: str
    user: str
    image: str
    created: float
    state: str = "queued"
    stop: Stop = field(default_factory=Stop)
    #: While it waits for a slot: the scheduler's future, which a cancel takes away.
    waiting: asyncio.Future[None] | None = None
    #: Once it runs: when (monotonic) its timeout ends it.
    deadline: float | None = None

    def describe(self) -> dict[str, Any]:
        """The run as ``GET /api/runs`` shows it."""
        return {"id": self.id, "state": self.state, "image": self.image, "created": self.created}


class ServiceState(Protocol):
    """The parts of the running service that a handler uses (the application has them).

    Read-only, so that the application may hold what it likes behind each.
    """

    @property
    def runs(self) -> dict[str, LiveRun]: ...

    @property
    def policy(self) -> Policy: ...

    @property
    def scheduler(self) -> FairScheduler: ...

    @property
    def backend(self) -> LocalBackend: ...

    @property
    def cold_starts(self) -> TurnTakingStarts: ...

    @property
    def executor(self) -> ThreadPoolExecutor: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def gradebook(self) -> Gradebook: ...

    @property
    def tokens(self) -> TokenChecker: ...

    @property
    def metrics_token(self) -> str: ...

    @property
    def refusals(self) -> RefusalLimiter: ...

    @property
    def unread(self) -> UnreadLedger: ...

    @property
    def connections(self) -> ConnectionCaps: ...

    def is_admin(self, caller: Caller) -> bool:
        """Whether ``caller`` may warm the pools."""
        ...

    def check_warm(self, image: str, size: Any, name: str = "size") -> int:
        """``size`` if it is a pool size the policy allows for ``image``; else raise."""
        ...

    def warm(self, image: str, size: int) -> Pool:
        """Keep ``size`` containers of ``image`` ready from now on."""
        ...
