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


def execute(client: Any, code: str, timeout: float = 60) -> tuple[dict[str, Any], str]:
    """Run a cell; its reply's content, and every text it showed.

    After an error reply ipykernel 7 aborts requests until a message it posts to
    itself comes round, and one sent at once can land before it. An aborted
    request never ran, so it is sent again, as a client would.
    """
    for _ in range(3):
        content, shown = _execute_once(client, code, timeout)
        if content["status"] != "aborted":
            break
        time.sleep(0.1)
    return content, shown


def _execute_once(client: Any, code: str, timeout: float) -> tuple[dict[str, Any], str]:
    shown: list[str] = []

    def hook(message: dict[str, Any]) -> None:
        content = message["content"]
        shown.append(content.get("text", ""))
        data = content.get("data", {})
        shown.append(data.get("text/plain", ""))
        if message["msg_type"] == "error":
            shown.extend(content.get("traceback", []))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook)
    return reply["content"], "".join(shown)
