"""The program every sandbox container runs as its main process, and its protocol.

:mod:`.program` is stand-alone: it is sent to the container as source and run by
the image's own ``python3``, so it imports nothing of this package.
:mod:`.protocol` is the host's side of the conversation with it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["COLD_IDLE", "supervisor_command"]

#: A container started for one run gets its code at once; this only bounds a host
#: that stalls between start and send.
COLD_IDLE = 60.0

_SOURCE = Path(__file__).with_name("program.py").read_text(encoding="utf-8")


def supervisor_command(idle: float = COLD_IDLE) -> list[str]:
    """The container command: the supervisor, run by the image's own python3.

    ``idle`` is how long it waits for its code before ending itself.
    """
    return ["python3", "-I", "-S", "-c", _SOURCE, f"{idle:.0f}"]
