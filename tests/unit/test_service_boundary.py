"""The service's HTTP boundary, attacked as an anonymous visitor or a hostile hub user would.

The service runs in this process on 127.0.0.1 with the fake engine, as in
``test_service_logic``; the attacks come over real sockets. Anonymous
connections come from 127.0.0.2 (also this machine's loopback), so that the
honest user's own connections from 127.0.0.1 show what the attack leaves them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codedock_magic import (
    CaseInput,
    InvalidValueError,
    Limits,
    RunRequest,
    RunStatus,
    ServiceBackend,
    ServiceRefusedError,
    run,
)
from codedock_magic.service import handlers as handlers_module
from codedock_magic.service.app import SandboxService
from codedock_magic.service.boundary import LOG_BURST
from codedock_magic.service.policy import Policy
from codedock_magic.service.refusals import RefusalLimiter

from .fakes import FakeContainer, FakeEngine, program

ALICE = {"Authorization": "Bearer tok-alice"}
FLOOD = 24 * 1024 * 1024


def _supervisor(container: FakeContainer) -> None:
    """Echo the code; for code ``flood``, print 24 MiB first; for cases, end each at once."""
    control = program.Control(container.fd)
    code, header = program.read_request(control, 5.0)
    until = time.monotonic() + 30.0
    cases = int(header.get("cases", 0))
    if not cases:
        control.exact(int(header["stdin_bytes"]), until)
        if code == b"flood":
            line = b"x" * 65535 + b"\n"
            for _ in range(FLOOD // len(line)):
                container.emit(program.OUT, line)
        else:
            container.emit(program.OUT, code + b"\n")
        container.emit(program.END, b"exit 0")
        container.exit(0)
        return
    for _ in range(cases):
        fields = program.parse_header(control.line(until))
        control.exact(int(fields["stdin_bytes"]), until)
        container.emit(program.CASE, b"exit 0 0.0100")
    container.emit(program.END, b"exit 0")
    container.exit(0)


@dataclass
class Service:
    app: SandboxService
    url: str
    loop: asyncio.AbstractEventLoop

    def on_loop(self, function: Callable[[], Any]) -> Any:
        """``function()`` on the service's event loop, where its state lives."""

        async def call() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    stops: list[Callable[[], None]] = []

    def starting(**settings: Any) -> Service:
        app = SandboxService(
            engine=FakeEngine(_supervisor),
            ip="127.0.0.1",
            port=0,
            pool_size=0,
            api_tokens={"tok-alice": "alice", "tok-bob": "bob"},
            audit_log=str(tmp_path / "audit.log"),
            db_url=f"sqlite:///{tmp_path / 'gradebook.sqlite'}",
            **settings,
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

        def stop() -> None:
            loop.call_soon_threadsafe(task.cancel)
            thread.join(10)
            loop.close()

        stops.append(stop)
        return Service(app, f"http://127.0.0.1:{app.bound_port}", loop)

    yield starting
    for stop in stops:
        stop()


def _connect(service: Service, source: str = "127.0.0.2") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", service.app.bound_port))
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (what it sent is read)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass
    return True


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_stalled_bodies_without_a_token_are_refused_before_a_byte_is_kept(
    start: Callable[..., Service],
) -> None:
    service = start()
    before = _rss()
    held = []
    for _ in range(30):
        sock = _connect(service)
        sock.sendall(
            b"POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n"
            + b"{" * 1024 * 1024
        )
        held.append(sock)
    for sock in held:
        answer = b""
        with pytest.raises(OSError):
            while True:  # until the server closes it, or resets it mid-body
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionResetError
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 401"), answer[:80]
        sock.close()
    # 30 MiB were sent; none of it was kept.
    assert _rss() - before < 12 * 1024 * 1024
    assert service.on_loop(lambda: service.app.connections.open) == 0


def test_a_body_over_the_callers_cap_is_refused_from_its_headers(
    start: Callable[..., Service],
) -> None:
    service = start(max_code_bytes="64k", max_stdin_bytes="64k")
    sock = _connect(service, "127.0.0.1")
    sock.sendall(
        b"POST /api/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\n"
        b"Content-Length: 900000000\r\n\r\n"
    )
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert b"max_code_bytes = 65536" in answer
    sock.close()
    # Other endpoints keep no body at all, and take at most a few KiB of one.
    other = _connect(service, "127.0.0.1")
    other.sendall(
        b"GET /api/info HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    assert other.recv(65536).startswith(b"HTTP/1.1 400")
    assert _closed_by_server(other, 5)


def test_idle_connections_are_capped_per_address_and_closed_after_the_header_timeout(
    start: Callable[..., Service],
) -> None:
    service = start(header_timeout=3.0, max_connections_per_address=20)
    connected = time.monotonic()
    idle = [_connect(service) for _ in range(40)]
    # A slow loris, from another address: its headers a byte every 0.1 s, never ending.
    slow = _connect(service, "127.0.0.3")
    slow_closed: list[float] = []

    def dribble() -> None:
        try:
            slow.sendall(b"GET /api/info HTTP/1.1\r\nX-Slow: ")
            while True:
                slow.sendall(b"a")
                time.sleep(0.1)
        except OSError:
            slow_closed.append(time.monotonic())

    loris = threading.Thread(target=dribble, daemon=True)
    loris.start()
    time.sleep(0.3)
    opened = service.on_loop(lambda: service.app.connections.anonymous("127.0.0.2"))
    assert opened == 20, opened
    # The honest user, from another address, is served all along.
    assert run("print(1)", backend=ServiceBackend(service.url, "tok-alice")).ok
    for sock in idle:
        with sock:
            assert _closed_by_server(sock, 10)
    loris.join(10)
    assert slow_closed and slow_closed[0] - connected < 3.0 + 3, "the slow loris was kept"
    slow.close()
    assert service.on_loop(lambda: service.app.connections.open) == 0


def test_the_connections_in_all_are_capped(start: Callable[..., Service]) -> None:
    service = start(max_connections=10, max_connections_per_address=100, header_timeout=5.0)
    held = [_connect(service) for _ in range(15)]
    time.sleep(0.3)
    assert service.on_loop(lambda: service.app.connections.open) == 10
    for sock in held:
        sock.close()


def test_a_client_that_never_reads_costs_its_quota_not_the_services_memory(
    start: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers_module, "DRAIN_TIMEOUT", 3.0)
    monkeypatch.setattr(handlers_module, "OVERRUN_GRACE", 1.0)
    service = start(max_output="64m", max_concurrent_per_user=1, max_queued_per_user=0)
    sock = _connect(service, "127.0.0.1")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = json.dumps(
        {
            "code": base64.b64encode(b"flood").decode(),
            "limits": {"output": 32 * 1024**2, "timeout": 2},
        }
    ).encode()
    sock.sendall(
        b"POST /api/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

    def buffered() -> int:
        streams = list(service.app.connections._open)
        return sum(len(stream._write_buffer) for stream in streams)  # type: ignore[attr-defined]

    most = 0
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        most = max(most, service.on_loop(buffered))
        time.sleep(0.05)
    # 24 MiB of output, then as much again in the result: the service holds
    # about its bound of 1 MiB of it, however long the client does not read.
    assert 0 < most <= 2 * 1024 * 1024, most
    assert service.app.unread.unread("alice") <= 1024 * 1024 + 128 * 1024
    # The run counts as alice's: her next is refused by her quota (none may queue).
    with pytest.raises(ServiceRefusedError, match="max_queued_per_user"):
        run("print(1)", backend=ServiceBackend(service.url, "tok-alice"))
    # Bob is served.
    assert run("print(2)", backend=ServiceBackend(service.url, "tok-bob")).ok
    # The service's clock stops the run while it waits; its result then waits
    # DRAIN_TIMEOUT for the client, and the connection goes (seen from the
    # service's side: what the kernel's socket buffers hold drains slowly).
    mine = sock.getsockname()

    def still_open() -> bool:
        streams = list(service.app.connections._open)
        return any(
            stream.socket is not None and stream.socket.getpeername() == mine
            for stream in streams  # type: ignore[attr-defined]
        )

    deadline = time.monotonic() + 30
    while service.on_loop(still_open) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not service.on_loop(still_open)
    sock.close()
    assert run("print(3)", backend=ServiceBackend(service.url, "tok-alice")).ok
    assert service.app.unread.unread("alice") == 0


def test_a_client_that_reads_gets_everything_under_the_bound(
    start: Callable[..., Service],
) -> None:
    service = start(max_output="64m")
    started = time.monotonic()
    backend = ServiceBackend(service.url, "tok-alice")
    result = run("flood", backend=backend, limits=Limits(output="32m"))
    assert result.status is RunStatus.OK
    assert len(result.stdout) == FLOOD // 65536 * 65536
    assert time.monotonic() - started < 20
    assert service.app.unread.unread("alice") == 0


def test_a_flood_of_refusals_with_a_huge_image_costs_a_few_lines(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    service = start()
    image = "x" * (1024 * 1024) + "\n\x1b[31mforged"
    body = json.dumps({"code": base64.b64encode(b"1").decode(), "image": image})
    statuses = []
    session = requests.Session()
    started = time.monotonic()
    for _ in range(100):
        answer = session.post(service.url + "/api/runs", data=body, headers=ALICE, timeout=10)
        statuses.append(answer.status_code)
        message = answer.json()["message"]
        assert "\n" not in message and len(message) < 1000, message[:100]
    elapsed = time.monotonic() - started
    assert statuses[:30] == [422] * 30
    # The burst of 30, then one a second: on a loaded machine the 100 take longer.
    assert set(statuses[30:]) <= {422, 429}
    assert 30 <= statuses.count(422) <= 30 + int(elapsed) + 2, (statuses, elapsed)
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) <= 30 + int(elapsed) + 2
    assert all(len(line) < 1200 for line in lines)
    record = json.loads(lines[0])
    assert record["status"] == "refused" and "more characters" in record["image"]
    assert "\x1b" not in (tmp_path / "audit.log").read_text()
    # Bob is not held back by alice's refusals.
    assert run("print(1)", backend=ServiceBackend(service.url, "tok-bob")).ok


def test_a_refusal_budget_refills_and_says_what_it_left_out() -> None:
    now = [0.0]
    limiter = RefusalLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    assert limiter.wait("a") == 0 and limiter.take("a") == 0
    assert limiter.take("a") == 0
    assert limiter.wait("a") == pytest.approx(1.0)
    limiter.suppress("a")
    limiter.suppress("a")
    now[0] = 1.0
    assert limiter.wait("a") == 0
    assert limiter.take("a") == 2
    assert limiter.wait("b") == 0


# -- malformed bodies: a 4xx with one line, never a 500 ---------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.sampled_from(
    ["code", "stdin", "image", "limits", "cases", "values", "returns", "files", "colour"]
)
_limit_names = st.sampled_from(["timeout", "memory", "cpus", "pids", "output", "workdir", "x"])
_b64 = st.binary(max_size=20).map(lambda data: base64.b64encode(data).decode())
_case = st.dictionaries(
    st.sampled_from(["stdin", "timeout", "memory", "name"]), _json | _b64, max_size=3
)
_values = {
    "code": _b64 | _json,
    "stdin": _b64 | _json,
    "image": st.sampled_from(["codedock/pybuntu:latest", ""]) | _json,
    "limits": st.dictionaries(_limit_names, _json | st.sampled_from(["1g", "2", "-1"])) | _json,
    "cases": st.lists(_case, max_size=3) | _json,
    "values": st.sampled_from(['{"a": 1}', "[1]", "{", "[" * 5000 + "]" * 5000]) | _json,
    "returns": st.text(max_size=8) | _json,
    "files": st.lists(st.fixed_dictionaries({"name": _json, "data": _b64 | _json})) | _json,
    "colour": _json,
}


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["object", "raw", "nested", "number"]))
    if kind == "raw":
        return draw(st.binary(max_size=40))
    if kind == "nested":
        depth = draw(st.integers(min_value=1, max_value=200_000))
        return b'{"code": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "number":
        digits = draw(st.integers(min_value=1, max_value=100_000))
        where = draw(st.sampled_from(["timeout", "memory", "cpus", "top"]))
        number = b"9" * digits
        if where == "top":
            return number
        return b'{"code": "MQ==", "limits": {"' + where.encode() + b'": ' + number + b"}}"
    names = draw(st.lists(_fields, unique=True, max_size=6))
    body = {name: draw(_values[name]) for name in names}
    return json.dumps(body).encode()


@pytest.fixture
def lenient(start: Callable[..., Service]) -> Service:
    # Refusals unlimited, so that each body meets the parser.
    return start(refusals_per_second=1e6, refusal_burst=10**6, max_concurrent_per_user=8)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_bodies())
def test_every_malformed_body_gets_a_4xx_with_one_line(lenient: Service, body: bytes) -> None:
    # Generous: a 200 000-deep body on a loaded machine is slow to parse, not wrong.
    answer = requests.post(lenient.url + "/api/runs", data=body, headers=ALICE, timeout=120)
    assert answer.status_code < 500, (body[:200], answer.text[:300])
    if answer.status_code >= 400:
        message = answer.json()["message"]
        assert message and "\n" not in message and len(message) <= 600, message[:200]
        assert "Traceback" not in answer.text


def test_the_known_bad_bodies_get_400s(lenient: Service) -> None:
    for body, named in (
        (b'{"code": "MQ==", "limits": {"timeout": ' + b"9" * 5000 + b"}}", "30 digits"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"code": "MQ==", "limits": {"timeout": NaN}}', "NaN"),
        (b'{"code": "MQ==", "limits": {"timeout": 1e999}}', "out of range"),
        (json.dumps({"code": "MQ==", "values": "[" * 5000 + "]" * 5000}).encode(), "malformed"),
        (json.dumps({"code": "MQ==", "cases": [{"timeout": 10**25}]}).encode(), "timeout"),
    ):
        answer = requests.post(lenient.url + "/api/runs", data=body, headers=ALICE, timeout=30)
        assert 400 <= answer.status_code < 500, (body[:60], answer.text)
        assert named in answer.json()["message"], answer.text


# -- group settings that merge into an invalid tier --------------------------------


def test_a_mix_of_groups_that_makes_a_bad_tier_stops_the_service_at_start() -> None:
    groups = {
        "big": {"default_memory": "1g", "max_memory": "2g"},
        "small": {"max_memory": "512m", "default_memory": "256m"},
        "images": {"default_image": "other:latest", "allowed_images": ["other:latest"]},
    }
    # Each group alone holds; "big" with "small" gives default 1g under max 2g (fine),
    # but a default from one and a ceiling from another can break.
    Policy({}, {"big": groups["big"], "small": groups["small"]})
    with pytest.raises(InvalidValueError, match=r"'lone'\] with \['small'\]|'small'\] with"):
        Policy({}, {"lone": {"default_memory": "1g"}, "small": groups["small"]})
    with pytest.raises(InvalidValueError, match="default_image"):
        Policy({}, {"images": groups["images"], "narrow": {"allowed_images": ["a:1"]}})


_group = st.fixed_dictionaries(
    {},
    optional={
        "default_memory": st.sampled_from(["64m", "256m", "1g"]),
        "max_memory": st.sampled_from(["128m", "512m", "2g", ""]),
        "default_timeout": st.sampled_from([1.0, 10.0, 100.0]),
        "max_timeout": st.sampled_from([5.0, 60.0, 0]),
        "default_image": st.sampled_from(["codedock/pybuntu:latest", "b:1"]),
        "allowed_images": st.sampled_from([[], ["codedock/pybuntu:latest"], ["b:1"]]),
        "max_run_seconds": st.sampled_from([0, 30.0, 600.0]),
    },
)


@settings(max_examples=300, deadline=None)
@given(groups=st.dictionaries(st.sampled_from("abcd"), _group, max_size=4))
def test_a_policy_that_starts_gives_every_mix_of_groups_a_tier(
    groups: dict[str, dict[str, Any]],
) -> None:
    try:
        policy = Policy({}, groups)
    except InvalidValueError:
        return
    names = sorted(groups)
    for mask in range(1, 2 ** len(names)):
        policy.tier([name for i, name in enumerate(names) if mask >> i & 1])


# -- a whole run's ceiling -----------------------------------------------------------


def test_a_run_with_cases_is_bounded_as_a_whole(start: Callable[..., Service]) -> None:
    service = start(max_timeout=10.0, max_run_seconds=30.0)

    backend = ServiceBackend(service.url, "tok-alice")
    many = tuple(CaseInput(b"", timeout=10.0) for _ in range(4))
    with pytest.raises(ServiceRefusedError, match="max_run_seconds = 30") as caught:
        backend.run(RunRequest(code=b"1", cases=many))
    assert caught.value.status == 422
    # Each case's default timeout counts too.
    unset = tuple(CaseInput(b"") for _ in range(40))
    with pytest.raises(ServiceRefusedError, match="max_run_seconds"):
        backend.run(RunRequest(code=b"1", cases=unset))
    few = tuple(CaseInput(b"", timeout=10.0) for _ in range(3))
    assert backend.run(RunRequest(code=b"1", cases=few)).status is RunStatus.OK
    assert service.app.policy.tier().describe()["max_run_seconds"] == 30.0


def test_malformed_requests_write_few_short_lines(
    start: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    service = start()
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    for _ in range(200):
        sock = _connect(service)
        sock.sendall(
            b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Forged: \x01"
            + b"\x1b[2J" * 3000
            + b"\r\n\r\n"
        )
        assert _closed_by_server(sock, 5)
        sock.close()
    seconds = time.monotonic() - started
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("tornado")]
    assert lines, "tornado said nothing of the malformed requests"
    assert all(len(line) < 600 and "\x1b" not in line for line in lines), lines[:2]
    assert len(lines) <= LOG_BURST * (int(seconds) + 2) + 2, (len(lines), seconds)


def test_the_hub_fragment_gives_the_public_proxy_no_route_to_the_service() -> None:
    from traitlets.config import Config

    from codedock_magic.core.shipped import hub_fragment

    config = Config()
    config.JupyterHub.services = []
    config.JupyterHub.load_roles = []
    config.Spawner.server_token_scopes = []
    config.Spawner.environment = {}
    fragment = hub_fragment()
    exec(compile(fragment.read_text(), str(fragment), "exec"), {"get_config": lambda: config})
    (service,) = config.JupyterHub.services
    # With a url, the hub would route /services/codedock/ of its public proxy to it.
    assert service["name"] == "codedock" and "url" not in service
    assert "--ip=127.0.0.1" in service["command"]
    assert config.Spawner.environment["CODEDOCK_SERVICE_URL"].startswith("http://127.0.0.1:")
