"""The backend that runs on a local engine.

A backend (:class:`~codedock_magic.core.request.Backend`, the seam at the level of a
whole run) takes a :class:`RunRequest` (code, stdin, a container profile and run
limits), streams output back through ``on_output`` and returns a
:class:`~codedock_magic.core.result.RunResult`, as an httpx transport takes a request
and returns a response. :func:`~codedock_magic.run`, the magic and the
pycodedock API all go through one, so a backend that asks a remote sandbox
service can take the place of :class:`LocalBackend` with no change above it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from ..core.request import Listener, RunRequest
from ..core.result import RunResult
from ..engines import Engine, connect
from .caserun import CasesConversation
from .conversation import RunConversation
from .pool import Pool, Pools
from .sandbox import Sandbox, start_sandbox

__all__ = [
    "Conversation",
    "LocalBackend",
    "RunRequest",
    "StartGate",
    "conversation_for",
]


class Conversation(Protocol):
    """A run or a run with cases, chosen from its request before there is a sandbox."""

    #: What it runs.
    request: RunRequest
    #: Once set, it ends with status ``interrupted``.
    stop: threading.Event | None
    #: The longest it may take, in seconds: its timeout, or for cases all of theirs.
    longest: float

    def not_started(self) -> RunResult:
        """Its result when it was stopped before it had a sandbox."""
        ...

    def execute(self, sandbox: Sandbox) -> RunResult:
        """Run in ``sandbox``, which it uses up; return what happened."""
        ...


class StartGate(Protocol):
    """What a cold start waits for: entered around the start, it yields whether to go on.

    It yields False when ``stop`` was set while it waited, and the run then ends
    without a sandbox.
    """

    def __call__(self, stop: threading.Event | None) -> AbstractContextManager[bool]: ...


@contextlib.contextmanager
def _open_gate(stop: threading.Event | None) -> Iterator[bool]:
    yield True


def conversation_for(
    request: RunRequest, listener: Listener | None = None, stop: threading.Event | None = None
) -> Conversation:
    """The conversation ``request`` needs: a run, or a run with cases.

    Raises:
        InvalidValueError: a case asks for more memory than its container has.
    """
    listener = listener if listener is not None else Listener()
    if request.cases:
        return CasesConversation(request, listener, stop)
    return RunConversation(request, listener, stop)


class LocalBackend:
    """Runs each request in a fresh container on an engine this process holds.

    Args:
        engine: the engine; the pool's, else the one ``$CODEDOCK_ENGINE``
            names (Docker by default).
        pool: where to take a container started ahead of time; a request it has
            none for starts a container of its own.
        gate: what a cold start waits for (a service makes one user's starts take
            turns); none by default.
    """

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        pool: Pool | Pools | None = None,
        gate: StartGate | None = None,
    ) -> None:
        self._engine = engine
        self.pool = pool
        self.gate: StartGate = gate if gate is not None else _open_gate

    @property
    def engine(self) -> Engine:
        """The engine cold starts use; looked up on first use."""
        if self._engine is None:
            self._engine = self.pool.engine if self.pool is not None else connect()
        return self._engine

    def run(
        self,
        request: RunRequest,
        *,
        listener: Listener | None = None,
        stop: threading.Event | None = None,
    ) -> RunResult:
        """Run ``request`` in a pooled container when one fits, else in a new one.

        A local run never waits in a queue, so the listener hears no state.
        """
        return self.execute(conversation_for(request, listener, stop))

    def execute(self, conversation: Conversation) -> RunResult:
        """Hold ``conversation`` (chosen by its caller) in a pooled or a new sandbox."""
        profile, stop = conversation.request.profile, conversation.stop
        sandbox = None
        if self.pool is not None:
            sandbox = self.pool.checkout(profile, conversation.longest)
        if sandbox is None:
            with self.gate(stop) as go_on:
                if not go_on or (stop is not None and stop.is_set()):
                    return conversation.not_started()
                sandbox = start_sandbox(self.engine, profile, longest_run=conversation.longest)
        return conversation.execute(sandbox)
