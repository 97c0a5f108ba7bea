"""The sandbox service in this process, on the fake engine, with ServiceBackend against it.

The service listens on a port of 127.0.0.1 with its own event loop in a thread;
the fake engine plays each sandbox's supervisor with the program's own code. No
Docker is needed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from codedock_magic import (
    CaseEnding,
    CaseInput,
    Limits,
    Listener,
    RunRequest,
    RunStatus,
    ServiceAuthError,
    ServiceBackend,
    ServiceRefusedError,
    run,
)
from codedock_magic.remote.wire import Event
from codedock_magic.service.app import SandboxService
from codedock_magic.service.audit import clip

from .fakes import FakeContainer, FakeEngine, program


def _supervisor(container: FakeContainer) -> None:
    """Echo the code on stdout (upper-cased per case, for a run with cases)."""
    control = program.Control(container.fd)
    code, header = program.read_request(control, 5.0)
    until = time.monotonic() + 5.0
    cases = int(header.get("cases", 0))
    if not cases:
        control.exact(int(header["stdin_bytes"]), until)
        container.emit(program.OUT, code + b"\n")
        container.emit(program.ERR, b"warn\n")
        container.emit(program.END, b"exit 0")
        container.exit(0)
        return
    for _ in range(cases):
        fields = program.parse_header(control.line(until))
        stdin = control.exact(int(fields["stdin_bytes"]), until)
        container.emit(program.OUT, stdin.upper())
        container.emit(program.CASE, b"exit 0 0.0100")
    container.emit(program.END, b"exit 0")
    container.exit(0)


@dataclass
class Service:
    app: SandboxService
    engine: FakeEngine
    url: str


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    engine = FakeEngine(_supervisor)
    app = SandboxService(
        engine=engine,
        ip="127.0.0.1",
        port=0,
        pool_size=0,
        api_tokens={"tok-alice": "alice"},
        db_url=f"sqlite:///{tmp_path / 'gradebook.sqlite'}",
    )
    app.initialize([])
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    task = loop.create_task(app.serve(ready))
    thread = threading.Thread(
        target=lambda: loop.run_until_complete(asyncio.gather(task, return_exceptions=True)),
        daemon=True,
    )
    thread.start()
    assert ready.wait(10), "the service did not start"
    try:
        yield Service(app, engine, f"http://127.0.0.1:{app.bound_port}")
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(10)
        loop.close()


def alice(service: Service) -> ServiceBackend:
    return ServiceBackend(service.url, "tok-alice")


def test_a_run_comes_back_with_its_output_in_order(service: Service) -> None:
    seen: list[tuple[str, str]] = []
    states: list[str] = []
    result = run(
        "print(1)",
        backend=alice(service),
        on_output=lambda stream, text: seen.append((stream, text)),
        on_state=states.append,
    )
    assert (result.status, result.exit_code) == (RunStatus.OK, 0)
    assert (result.stdout, result.stderr) == ("print(1)\n", "warn\n")
    assert seen == [("stdout", "print(1)\n"), ("stderr", "warn\n")]
    assert states == ["running"]
    # Nothing was asked: the service's defaults, not the library's.
    assert result.limits.memory == service.app.policy.tier().defaults.memory


def test_the_events_come_in_order_under_their_one_vocabulary(service: Service) -> None:
    body = {"code": base64.b64encode(b"x = 1").decode(), "limits": {}}
    response = requests.post(
        service.url + "/api/runs",
        json=body,
        headers={"Authorization": "Bearer tok-alice"},
        stream=True,
        timeout=10,
    )
    events = [json.loads(line) for line in response.iter_lines() if line]
    names = [event["event"] for event in events]
    assert names == ["accepted", "running", "output", "output", "result"]
    assert set(names) <= {str(event) for event in Event}
    assert events[0]["user"] == "alice" and events[-1]["result"]["status"] == "ok"


def test_a_run_over_a_ceiling_is_refused_and_starts_nothing(service: Service) -> None:
    with pytest.raises(ServiceRefusedError, match="max_memory"):
        run("print(1)", limits=Limits(memory="2g"), backend=alice(service))
    assert service.engine.containers == {}


def test_a_run_with_cases_reports_each_case_as_it_ends(service: Service) -> None:
    seen: list[tuple[int, CaseEnding]] = []
    request = RunRequest(code=b"print(input())", cases=(CaseInput(b"a\n"), CaseInput(b"b\n")))
    result = alice(service).run(
        request, listener=Listener(on_case=lambda i, ending: seen.append((i, ending)))
    )
    assert result.status is RunStatus.OK
    assert [ending.stdout for ending in result.cases] == ["A\n", "B\n"]
    assert [index for index, _ in seen] == [0, 1]
    assert all(ending.status is RunStatus.OK for _, ending in seen)


def test_a_missing_or_unknown_token_is_refused(service: Service) -> None:
    with pytest.raises(ServiceAuthError) as missing:
        ServiceBackend(service.url, "").run(RunRequest(code=b"1"))
    assert missing.value.status == 401
    with pytest.raises(ServiceAuthError):
        ServiceBackend(service.url, "tok-mallory").run(RunRequest(code=b"1"))
    assert service.engine.containers == {}


def test_a_malformed_run_is_a_400_naming_the_field(service: Service) -> None:
    response = requests.post(
        service.url + "/api/runs",
        json={"code": "", "colour": "red"},
        headers={"Authorization": "Bearer tok-alice"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "unknown field 'colour'" in response.json()["message"]


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=800), limit=st.integers(min_value=1, max_value=300))
def test_a_clipped_string_stays_within_its_bound_escapes_included(text: str, limit: int) -> None:
    shown = clip(text, limit)
    kept, _, rest = shown.partition("... (")
    assert len(kept) <= limit
    assert all(" " <= ch <= "~" for ch in shown), shown
    if not rest:
        assert kept.encode().decode("unicode_escape") == text
