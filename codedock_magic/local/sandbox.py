"""A sandbox for the supervisor: launched ahead of its code, then waited for.

:func:`start_sandbox` has the engine launch a sandbox whose main process is the
supervisor, with a lifetime its labels state, then greets the supervisor: it says
it is ready only after the host's first byte, so an engine whose attach does not
replay earlier output loses nothing. A pool can do all of that ahead of time.
:meth:`Sandbox.end <codedock_magic.engines.base.Sandbox.end>` is the one way a
sandbox is ended, used or not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core.errors import EngineError
from ..core.profile import Profile
from ..engines.base import REMOVE_WAIT, STDOUT, Engine, Sandbox, SandboxSpec
from ..supervisor import COLD_IDLE, SUPERVISOR_HASH, baked_command, supervisor_command
from ..supervisor.protocol import HELLO, FrameDecoder, FrameKind

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
# How long to keep reading after a kill.
KILL_GRACE = 3.0
# How long a pooled container's supervisor may take to set itself up, and how
# often the pool looks up from waiting for it.
READY_WAIT = 30.0
_READY_SLICE = 0.02


def start_sandbox(
    engine: Engine,
    profile: Profile,
    *,
    idle: float = COLD_IDLE,
    longest_run: float,
    warm: bool = False,
) -> Sandbox:
    """Launch one hardened sandbox for the supervisor, and greet it.

    Its supervisor waits ``idle`` seconds for code, which may then run for up to
    ``longest_run`` seconds; its lifetime lets a sweep reap it after that. Its
    supervisor may still be setting itself up (see :class:`ReadyWait`); with
    ``warm`` that includes starting the program's interpreter. Nothing is left
    behind if any step fails.
    """
    spec = SandboxSpec(
        profile=profile,
        command=supervisor_command(idle, profile.limits, warm=warm),
        lifetime=idle + longest_run + SUPERVISOR_GRACE,
        baked=(SUPERVISOR_HASH, baked_command(idle, profile.limits, warm=warm)),
    )
    sandbox = engine.launch(spec)
    try:
        # The supervisor speaks only after this: nothing it says is written
        # before the host listens.
        sandbox.channel.send(HELLO)
    except OSError as exc:
        sandbox.end(kill=True)
        raise EngineError(f"the sandbox ended as it started ({exc})") from None
    except BaseException:
        sandbox.end(kill=True)
        raise
    return sandbox


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
