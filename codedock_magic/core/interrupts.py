"""Signals that stop a run become a flag the run loop reads, never an exception.

Python raises KeyboardInterrupt at whatever bytecode the main thread is running:
inside a lock's wait in the kernel's output stream, in the middle of starting a
thread, deep in the engine client. Not all of that code survives an exception
there (python/cpython#118433). So for the length of a run, on the main thread,
the stopping signals only set an event; the run loop looks at it every poll and
ends the run itself. The old handlers come back afterwards.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["Stop", "signals_as_flag"]


class Stop(threading.Event):
    """Set when the run should stop; :attr:`signum` tells which signal asked, if one did."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None


@contextmanager
def signals_as_flag(
    signals: Sequence[int] = (signal.SIGINT,), stop: Stop | None = None
) -> Iterator[Stop]:
    """Within the block, each of ``signals`` sets the yielded :class:`Stop` instead.

    Off the main thread, where Python cannot install handlers, nothing changes
    and the event is only set by whoever else holds it.
    """
    stop = stop if stop is not None else Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def flag(signum: int, frame: FrameType | None) -> None:
        if stop.signum is None:
            stop.signum = signum
        stop.set()

    previous: dict[int, Any] = {}
    try:
        for number in signals:
            previous[number] = signal.signal(number, flag)
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
