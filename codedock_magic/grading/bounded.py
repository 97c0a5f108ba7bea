"""Running judging code that could take forever in a child process with a time limit.

A checker is the teacher's function, and a regex compare runs the teacher's
pattern, both on what a student's program printed. A student can print the one
output that makes either take hours (catastrophic backtracking is the classic),
and Python's ``re`` holds the interpreter while it matches: in the kernel's own
process, no thread and no signal could stop it. So each such judgement runs in a
forked child of its own, which is killed at :data:`JUDGE_SECONDS`; the kernel or
the grading worker only waits on a pipe.

A fork copies the caller as it is, so a checker defined in a notebook cell, with
its closures, needs no pickling. What the checker changes in the kernel (a
global it counts in) is not kept: it changes its own copy.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["JUDGE_SECONDS", "JudgeFailed", "JudgeTimeout", "bounded"]

#: The seconds one checker call or one regex compare may take.
JUDGE_SECONDS = 5.0
# What the child may send back: a fraction and a short message, or an error's line.
_MAX_ANSWER = 64 * 1024
_MAX_TEXT = 2000

# The child only runs the judgement and leaves by os._exit; it takes no lock the
# other threads could hold except by the judging code's own choice, which the
# time limit bounds. Python 3.12 warns about forking with threads all the same.
warnings.filterwarnings(
    "ignore",
    message=r".*use of fork\(\) may lead to deadlocks",
    category=DeprecationWarning,
    module=__name__.replace(".", r"\."),
)


class JudgeTimeout(Exception):
    """The judgement took longer than its time limit and was killed."""


class JudgeFailed(Exception):
    """The judgement raised, or its child ended without an answer; ``str()`` says which."""


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def _answer(judgement: Callable[[], Any]) -> bytes:
    try:
        value = judgement()
        answer = json.dumps({"value": value})
    except BaseException as exc:  # everything the judging code does is reported, not raised
        answer = json.dumps({"error": _cut(f"{type(exc).__name__}: {exc}")})
    return answer.encode("utf-8")[:_MAX_ANSWER]


def bounded(judgement: Callable[[], Any], *, seconds: float = JUDGE_SECONDS) -> Any:
    """``judgement()``, run in a forked child and killed after ``seconds``.

    It must return JSON values (its own messages already cut short); what it
    returns is returned here.

    Raises:
        JudgeTimeout: it ran past ``seconds``.
        JudgeFailed: it raised (the message is ``Type: text``), or the child
            died without answering.
    """
    if not hasattr(os, "fork"):
        return _in_a_thread(judgement, seconds)
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read)
        os.close(write)
        raise JudgeFailed(f"no process could be started to judge in ({exc})") from None
    if pid == 0:  # pragma: no cover - the child, which never returns
        try:
            os.close(read)
            # Ctrl+C is for the parent, which kills this child when it stops.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            # Whatever the judging code prints goes nowhere: the parent's streams
            # may belong to threads that do not exist here.
            sys.stdout = sys.stderr = io.StringIO()
            sent = _answer(judgement)
            while sent:
                sent = sent[os.write(write, sent) :]
        finally:
            os._exit(0)
    os.close(write)
    try:
        data = _read_until(read, time.monotonic() + seconds)
    finally:
        os.close(read)
        _end(pid)
    if data is None:
        raise JudgeTimeout(f"it took longer than {seconds:g} s and was stopped")
    try:
        answer = json.loads(data)
    except ValueError:
        raise JudgeFailed("it ended without an answer") from None
    if "error" in answer:
        raise JudgeFailed(str(answer["error"]))
    return answer.get("value")


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything the child writes up to its end, or ``None`` past ``deadline``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > _MAX_ANSWER:
            return b""
        chunks.append(chunk)


def _end(pid: int) -> None:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _in_a_thread(judgement: Callable[[], Any], seconds: float) -> Any:
    # Without fork, a thread bounds what yields the interpreter; it cannot be killed.
    box: dict[str, Any] = {}

    def work() -> None:
        box["answer"] = _answer(judgement)

    worker = threading.Thread(target=work, name="codedock-judge", daemon=True)
    worker.start()
    worker.join(seconds)
    if "answer" not in box:
        raise JudgeTimeout(f"it took longer than {seconds:g} s and was abandoned")
    answer = json.loads(box["answer"])
    if "error" in answer:
        raise JudgeFailed(str(answer["error"]))
    return answer.get("value")
