"""The audit log: one JSON line per run, and nothing of a user's but what it says.

It records who ran what, under which limits, and how it ended: the code only as
its SHA-256, and of the output only its size. Every string in it that a user
could have chosen (an image name, a limit's value, a reason quoting them) is cut
to :data:`CLIP` characters and escaped by :func:`clip`, so a refused request
with a megabyte of image name writes a line of the usual size.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["CLIP", "AuditLog", "audit_record", "clip", "clip_limits"]

#: The most characters of a user's string that a record or a log line keeps.
CLIP = 200


def clip(value: object, limit: int = CLIP) -> str:
    """``value`` as one line of at most ``limit`` characters of its own (escapes
    included), its control characters and non-ASCII escaped, so that it can forge
    no line of a log and never grow a message past its bound."""
    text = _text_of(value)
    shown: list[str] = []
    used = 0
    for kept, ch in enumerate(text):
        # unicode_escape doubles a backslash too, so that a string can pass for no
        # escape of ours.
        piece = ch if " " <= ch <= "~" and ch != "\\" else ch.encode("unicode_escape").decode()
        if used + len(piece) > limit:
            return "".join(shown) + f"... ({len(text) - kept} more characters)"
        shown.append(piece)
        used += len(piece)
    return "".join(shown)


def _text_of(value: object) -> str:
    # Never the repr of a container: it may be nested past the recursion limit.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**100:
        return f"<a number of {value.bit_length()} bits>"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"<{type(value).__name__}>"


def clip_limits(requested: object) -> dict[str, Any]:
    """The limits a request asked for, as a record may keep them: at most 16 fields,
    each name and each value that is not a plain number clipped."""
    if not isinstance(requested, Mapping):
        return {}
    kept: dict[str, Any] = {}
    for name, value in list(requested.items())[:16]:
        plain = isinstance(value, (int, float)) and abs(value) < 10**18
        kept[clip(name, 40)] = value if plain else clip(value, 40)
    return kept


def audit_record(
    *,
    user: str,
    image: str,
    code: bytes,
    limits_requested: Mapping[str, Any],
    limits_applied: Mapping[str, Any] | None,
    status: str,
    exit_code: int | None = None,
    duration: float = 0.0,
    output_bytes: int = 0,
    reason: str = "",
) -> dict[str, Any]:
    """One line of the log, as a dict."""
    record: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "user": clip(user),
        "image": clip(image),
        "limits_requested": clip_limits(limits_requested),
        "limits_applied": dict(limits_applied) if limits_applied is not None else None,
        "status": status,
        "exit_code": exit_code,
        "duration": round(duration, 4),
        "code_sha256": hashlib.sha256(code).hexdigest(),
        "output_bytes": output_bytes,
    }
    if reason:
        record["reason"] = clip(reason, 2 * CLIP)
    return record


class AuditLog:
    """Appends records to ``path`` (made readable by its owner only); ``""`` keeps none."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record as one line, whole (a single write on an O_APPEND file)."""
        if self._fd is None:
            return
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
