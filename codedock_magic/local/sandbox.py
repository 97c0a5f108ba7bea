"""One sandbox container's life: started ahead of its code, ended by one method.

:func:`start_sandbox` creates the container (auto-remove, hardened, labelled),
subscribes to its fate before it can die, attaches to its streams and keeps that
channel open (the dead-man's switch: when this process dies, the engine closes
the container's stdin and the supervisor ends the run), then starts it: the
supervisor now waits for its code. A pool can do all of that ahead of time.
:meth:`Sandbox.end` is the one way a container is ended, used or not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import EngineError
from ..core.profile import Profile
from ..engines.base import STDOUT, Channel, Engine, SandboxSpec, Watch
from ..engines.labels import make_labels
from ..engines.watchdog import ensure_watchdog
from ..supervisor import COLD_IDLE, supervisor_command
from ..supervisor.protocol import FrameDecoder, FrameKind

__all__ = [
    "KILL_GRACE",
    "REMOVE_WAIT",
    "SUPERVISOR_GRACE",
    "ReadyWait",
    "Sandbox",
    "start_sandbox",
]

# The supervisor ends a run at its timeout (and can then still say what the
# cgroup counted); the host's own deadline trails it by this much, and kills the
# container only when the supervisor is stuck.
SUPERVISOR_GRACE = 2.0
# How long to keep reading after a kill, and to wait for the engine's removal.
KILL_GRACE = 3.0
REMOVE_WAIT = 5.0
# How long a pooled container's supervisor may take to set itself up, and how
# often the pool looks up from waiting for it.
READY_WAIT = 30.0
_READY_SLICE = 0.02


@dataclass(eq=False)
class Sandbox:
    """A started container whose supervisor waits for code. Single use.

    Attributes:
        engine: the engine it lives on.
        container: its id.
        channel: its streams; closing them ends the container.
        watch: the engine's account of it.
        profile: its image and container limits.
        ready_at: ``time.monotonic()`` when it was started.
    """

    engine: Engine
    container: str
    channel: Channel
    watch: Watch
    profile: Profile
    ready_at: float

    def alive(self) -> bool:
        """Whether the container is still waiting (it may end itself when idle)."""
        return not self.watch.died.is_set()

    def end(self, *, kill: bool = False, wait: bool = False) -> None:
        """End the container and make sure the engine removes it.

        Closing the channel makes its supervisor exit, which is enough for one
        that is idle or has finished; ``kill`` is for one that may still run.
        The removal is confirmed (and forced if it does not come) in the
        background, unless ``wait``.
        """
        self.channel.close()
        if kill:
            self.engine.kill(self.container)
        if wait:
            self._confirm_removal()
        else:
            threading.Thread(
                target=self._confirm_removal, name="codedock-reap", daemon=True
            ).start()

    def _confirm_removal(self) -> None:
        try:
            if not self.watch.removed.wait(REMOVE_WAIT):
                self.engine.remove(self.container)
        finally:
            self.watch.close()


def start_sandbox(
    engine: Engine,
    profile: Profile,
    *,
    idle: float = COLD_IDLE,
    longest_run: float,
) -> Sandbox:
    """Create, watch, attach and start one hardened container, ready for code.

    Its supervisor waits ``idle`` seconds for code, which may then run for up to
    ``longest_run`` seconds; its labels let a sweep reap it after that. Its
    supervisor may still be setting itself up (see :class:`ReadyWait`). Nothing is
    left behind if any step fails.
    """
    lifetime = idle + longest_run + SUPERVISOR_GRACE
    spec = SandboxSpec(
        profile=profile, command=supervisor_command(idle), labels=make_labels(lifetime)
    )
    ensure_watchdog()
    container = engine.create(spec)
    watch: Watch | None = None
    channel: Channel | None = None
    try:
        watch = engine.watch(container)
        channel = engine.attach(container)
        engine.start(container)
    except BaseException:
        if channel is not None:
            channel.close()
        engine.remove(container)
        if watch is not None:
            watch.close()
        raise
    return Sandbox(engine, container, channel, watch, profile, time.monotonic())


class ReadyWait:
    """Waiting for a started sandbox's supervisor to say it has set itself up.

    :meth:`wait` may be left early (``give_way``) and taken up again, so that a pool
    can hand a started container to a run that needs one now: the run ignores the
    ready frame if it comes later.
    """

    def __init__(self, sandbox: Sandbox, within: float | None = None) -> None:
        self.sandbox = sandbox
        self._frames = FrameDecoder()
        self._said = b""
        self._deadline = time.monotonic() + (READY_WAIT if within is None else within)

    def wait(self, give_way: Callable[[], bool] = lambda: False) -> bool:
        """True once ready; False when ``give_way()`` said to stop looking for now.

        Raises:
            EngineError: the supervisor ended or said nothing in time.
        """
        while time.monotonic() < self._deadline:
            if give_way():
                return False
            chunks = self.sandbox.channel.receive(
                min(_READY_SLICE, max(0.0, self._deadline - time.monotonic()))
            )
            if chunks is None:
                break
            for stream, payload in chunks:
                if stream != STDOUT:
                    self._said += payload
                    continue
                if any(kind == FrameKind.READY.value for kind, _ in self._frames.feed(payload)):
                    return True
        detail = self._said.decode("utf-8", "replace").strip()[:200] or "no word from it"
        raise EngineError(
            f"the sandbox's supervisor did not come up ({detail}); does the image have python3?"
        )
