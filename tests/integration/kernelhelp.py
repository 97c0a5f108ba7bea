"""What tests that drive a kernel through jupyter_client share."""

from __future__ import annotations

import time
from queue import Empty
from typing import Any


def wait_for_output(client: Any, text: str, within: float = 30) -> None:
    """Read iopub until a stream message holds ``text``; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            message = client.get_iopub_msg(timeout=1)
        except Empty:
            continue
        if text in message["content"].get("text", ""):
            return
    raise AssertionError(f"{text!r} never appeared")
