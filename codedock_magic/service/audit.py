"""The audit log: one JSON line per run, and nothing of a user's but what it says.

It records who ran what, under which limits, and how it ended: the code only as
its SHA-256, and of the output only its size.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["AuditLog", "audit_record"]


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
        "user": user,
        "image": image,
        "limits_requested": dict(limits_requested),
        "limits_applied": dict(limits_applied) if limits_applied is not None else None,
        "status": status,
        "exit_code": exit_code,
        "duration": round(duration, 4),
        "code_sha256": hashlib.sha256(code).hexdigest(),
        "output_bytes": output_bytes,
    }
    if reason:
        record["reason"] = reason
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
