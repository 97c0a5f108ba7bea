"""The runner's status, timeout, stop and cleanup logic, on the fake engine: no Docker."""

from __future__ import annotations

import os
import select
import signal
import threading
import time

import pytest

from codedock_magic import (
    EngineError,
    Limits,
    LocalBackend,
    Pool,
    Profile,
    RunLimits,
    RunRequest,
    RunStatus,
    run,
)
from codedock_magic.engines import SANDBOX_UID, Sandbox, SandboxSpec
from codedock_magic.local.sandbox import SUPERVISOR_GRACE

from .fakes import FakeContainer, FakeEngine

OUT, ERR, END = b"o", b"e", b"x"


def answer(*frames: tuple[bytes, bytes], exit_code: int | None = None) -> object:
    """A supervisor that reads the request, sends ``frames`` and exits."""

    def behave(container: FakeContainer) -> None:
        container.read_request()
        for kind, payload in frames:
            container.emit(kind, payload)
        if exit_code is not None:
            container.exit(exit_code)

    return behave


def test_an_ok_run_relays_both_streams_and_the_exit() -> None:
    engine = FakeEngine(answer((OUT, b"hi\n"), (ERR, b"warn\n"), (END, b"exit 0"), exit_code=0))
    seen: list[tuple[str, str]] = []
    result = run("print('hi')", engine=engine, on_output=lambda s, t: seen.append((s, t)))
    assert (result.status, result.exit_code, result.signal) == (RunStatus.OK, 0, None)
    assert (result.stdout, result.stderr) == ("hi\n", "warn\n")
    assert seen == [("stdout", "hi\n"), ("stderr", "warn\n")]
    container = engine.only()
    code, stdin, timeout, uid = container.request or (b"", b"", 0.0, 0)
    assert (code, stdin, uid) == (b"print('hi')", b"", SANDBOX_UID)
    # The supervisor ends the program at the timeout itself; the host's own
    # deadline trails it, for a supervisor that is stuck.
    assert timeout == pytest.approx(Limits().timeout)


@pytest.mark.parametrize(
    ("end", "exit_code", "status", "describe"),
    [
        (b"exit 3", 3, RunStatus.ERROR, "error (exit 3)"),
        (b"signal 11", 139, RunStatus.SIGNALED, "killed by SIGSEGV"),
    ],
)
def test_the_end_frame_decides_exit_and_signal(
    end: bytes, exit_code: int, status: RunStatus, describe: str
) -> None:
    result = run("x", engine=FakeEngine(answer((END, end), exit_code=exit_code)))
    assert (result.status, result.describe()) == (status, describe)


def test_a_memory_kill_comes_from_the_watch_not_the_program() -> None:
    def behave(container: FakeContainer) -> None:
        container.read_request()
        container.emit(OUT, b"memory limit exceeded? no: printed\n")
        container.watch.record_memory_kill()
        container.emit(END, b"signal 9")
        container.exit(137)

    result = run("x", engine=FakeEngine(behave), limits=Limits(memory="100m"))
    assert result.status is RunStatus.MEMORY_LIMIT
    assert result.describe() == "memory limit (100m) exceeded"


def test_printed_bytes_cannot_forge_the_end() -> None:
    forged = b"x\x00\x00\x00\x06exit 0"
    engine = FakeEngine(answer((OUT, forged), (END, b"exit 5"), exit_code=5))
    result = run("x", engine=engine)
    assert (result.status, result.exit_code) == (RunStatus.ERROR, 5)


def _hang(container: FakeContainer) -> None:
    container.read_request()
    container.emit(OUT, b"before\n")
    container.killed.wait(30)


def test_the_host_deadline_kills_a_stuck_sandbox_and_keeps_earlier_output() -> None:
    engine = FakeEngine(_hang)
    started = time.monotonic()
    result = run("x", engine=engine, limits=Limits(timeout=0.3))
    assert result.status is RunStatus.TIMEOUT
    assert (result.exit_code, result.signal, result.stdout) == (None, None, "before\n")
    # The upper bound only shows the deadline, not the sandbox's 30 s, ended it.
    assert 0.3 + SUPERVISOR_GRACE <= time.monotonic() - started < 0.3 + SUPERVISOR_GRACE + 10
    assert engine.only().killed.is_set() and engine.only().removed


def test_the_supervisors_own_deadline_is_a_timeout_too() -> None:
    result = run("x", engine=FakeEngine(answer((END, b"deadline"), exit_code=124)))
    assert result.status is RunStatus.TIMEOUT


def test_a_stop_flag_ends_the_run_within_a_poll() -> None:
    engine = FakeEngine(_hang)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    request = RunRequest(code=b"x", limits=RunLimits(timeout=30))
    result = LocalBackend(engine).run(request, stop=stop)
    assert result.status is RunStatus.INTERRUPTED
    assert time.monotonic() - started < 10  # the stop, not the 30 s timeout
    assert engine.only().killed.is_set() and engine.only().removed


def test_sigint_during_run_becomes_a_flag_and_the_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    engine = FakeEngine(_hang)
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        result = run("x", engine=engine, limits=Limits(timeout=30))
    finally:
        timer.cancel()
    assert result.status is RunStatus.INTERRUPTED
    assert result.stdout == "before\n"
    assert signal.getsignal(signal.SIGINT) is before
    assert engine.only().removed


def test_a_stop_before_any_container_starts_nothing() -> None:
    engine = FakeEngine(_hang)
    stop = threading.Event()
    stop.set()
    result = LocalBackend(engine).run(RunRequest(code=b"x"), stop=stop)
    assert result.status is RunStatus.INTERRUPTED
    assert engine.containers == {}


def test_without_an_end_frame_the_engines_exit_code_counts() -> None:
    result = run("x", engine=FakeEngine(answer(exit_code=3)))
    assert (result.status, result.exit_code) == (RunStatus.ERROR, 3)
    # And the result says whose code it is.
    assert any("no report from its supervisor" in note for note in result.notes), result.notes
    killed = run("x", engine=FakeEngine(answer(exit_code=137)))
    assert (killed.status, killed.signal) == (RunStatus.SIGNALED, 9)


def test_no_report_at_all_is_an_engine_error() -> None:
    def vanish(container: FakeContainer) -> None:
        container.read_request()
        container.channel.container.shutdown(2)
        # Gone with no exit code, as after an engine restart.
        container.watch.record_removed()

    with pytest.raises(EngineError, match="no report from its supervisor or the engine"):
        run("x", engine=FakeEngine(vanish))


def test_a_refusal_by_the_supervisor_is_an_engine_error() -> None:
    engine = FakeEngine(answer((END, b"refused protocol version 9"), exit_code=126))
    with pytest.raises(EngineError, match="refused the run"):
        run("x", engine=engine)


class _HostBug(Exception):
    pass


def test_a_host_exception_still_kills_and_removes() -> None:
    def explode(stream: str, text: str) -> None:
        raise _HostBug(text)

    engine = FakeEngine(_hang)
    with pytest.raises(_HostBug):
        run("x", engine=engine, on_output=explode)
    assert engine.only().killed.is_set() and engine.only().removed


def test_large_stdin_arrives_whole_while_output_is_read() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: more than a socket buffer holds

    def echo_length(container: FakeContainer) -> None:
        _, stdin, _, _ = container.read_request()
        container.emit(OUT, b"%d\n" % len(stdin))
        container.emit(END, b"exit 0")
        container.exit(0)

    engine = FakeEngine(echo_length)
    result = run("x", stdin=data, engine=engine)
    assert result.stdout == f"{len(data)}\n"
    assert engine.only().request is not None and engine.only().request[1] == data


def test_output_past_the_cap_keeps_head_and_tail() -> None:
    lines = b"".join(b"line %06d\n" % i for i in range(2000))
    engine = FakeEngine(answer((OUT, lines), (END, b"exit 0"), exit_code=0))
    result = run("x", engine=engine, limits=Limits(output="2k"))
    assert result.truncated
    assert result.stdout.startswith("line 000000\n") and result.stdout.endswith("line 001999\n")


def test_the_pool_serves_its_profile_once_and_starts_others_cold() -> None:
    engine = FakeEngine(answer((OUT, b"ok\n"), (END, b"exit 0"), exit_code=0))
    pool = Pool(engine, size=1, profile=Profile()).start()
    try:
        assert pool.wait_ready(timeout=10)
        warm = run("x", pool=pool)
        assert warm.ok and (pool.hits, pool.misses) == (1, 0)
        other = run("x", pool=pool, limits=Limits(memory="100m"))
        assert other.ok and (pool.hits, pool.misses) == (1, 0)
        # Any timeout is served warm: it travels with the code.
        assert pool.wait_ready(timeout=10)
        long = run("x", pool=pool, limits=Limits(timeout=900))
        assert long.ok and pool.hits == 2
        profiles = [c.spec.profile for c in engine.containers.values()]
        assert profiles.count(Profile()) >= 2
        assert Profile(limits=Limits(memory="100m").container) in profiles
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("hold", "burst", "waits"), [(0.1, False, True), (2.0, False, False), (1.0, True, False)]
)
def test_a_refill_waits_a_moment_for_the_one_run_under_way(
    hold: float, burst: bool, waits: bool
) -> None:
    def slow(container: FakeContainer) -> None:
        # Once the request is there: the run is under way.
        select.select([container.fd], [], [], 30)
        time.sleep(hold)
        ending.append(time.monotonic())
        answer((OUT, b"ok\n"), (END, b"exit 0"), exit_code=0)(container)  # type: ignore[operator]

    engine = FakeEngine(slow)
    ending: list[float] = []
    launched: list[float] = []
    launch = engine.launch

    def counted(spec: SandboxSpec) -> Sandbox:
        launched.append(time.monotonic())
        return launch(spec)

    engine.launch = counted  # type: ignore[method-assign]
    pool = Pool(engine, size=1).start()
    try:
        assert pool.wait_ready(timeout=10)
        if burst:
            pool._missed_at = time.monotonic()  # a run just found it empty
        started = time.monotonic()
        assert run("x", pool=pool).ok
        assert pool.wait_ready(timeout=10) and len(launched) == 2
        if waits:
            # The refill's engine work came as the run ended, not beside it.
            assert launched[1] >= ending[0]
        elif burst:
            # Cells back to back: the refill starts at once, beside the run.
            assert launched[1] <= started + 0.15
        else:
            # A long run does not hold the pool empty: the refill waited only a moment.
            assert started + 0.2 <= launched[1] <= started + 1.0
    finally:
        pool.close()


def test_backend_goes_alone() -> None:
    with pytest.raises(ValueError, match="given alone, without engine=, pool= or a service"):
        run("x", backend=LocalBackend(FakeEngine()), engine=FakeEngine())


def test_one_place_chooses_a_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from codedock_magic.remote.client import ServiceBackend
    from codedock_magic.runner import choose_backend

    monkeypatch.setenv("CODEDOCK_SERVICE_URL", "http://127.0.0.1:9")
    # The environment's service, unless told otherwise.
    assert isinstance(choose_backend(), ServiceBackend)
    # "" is this process's own engine, whatever the environment says.
    assert isinstance(choose_backend(service_url=""), LocalBackend)
    assert isinstance(choose_backend(engine=FakeEngine()), LocalBackend)
    chosen = choose_backend(service_url="http://127.0.0.1:8", service_token="tok")
    assert isinstance(chosen, ServiceBackend) and chosen.url == "http://127.0.0.1:8"
    with pytest.raises(ValueError, match="service_url 'ftp://x' is not an http"):
        choose_backend(service_url="ftp://x")
    with pytest.raises(ValueError, match="without engine= or pool="):
        choose_backend(service_url="http://127.0.0.1:8", engine=FakeEngine())


def test_the_pool_hands_out_only_supervisors_that_said_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("codedock_magic.local.sandbox.READY_WAIT", 0.3)
    engine = FakeEngine(answer((OUT, b"cold\n"), (END, b"exit 0"), exit_code=0), ready=False)
    pool = Pool(engine, size=1).start()
    try:
        assert not pool.wait_ready(timeout=1.0)
        assert isinstance(pool.last_error, EngineError)
        assert "did not come up" in str(pool.last_error)
        # A cold run does not wait for the word: it sends its code at once.
        result = run("x", pool=pool)
        assert (result.ok, result.stdout, pool.hits) == (True, "cold\n", 0)
    finally:
        pool.close()


def test_a_started_container_still_setting_up_is_handed_to_a_run_that_needs_one() -> None:
    def slow_supervisor(container: FakeContainer) -> None:
        time.sleep(0.5)  # still importing, as a real one may be right after its start
        container.emit(b"r", b"")
        answer((OUT, b"ok\n"), (END, b"exit 0"), exit_code=0)(container)  # type: ignore[operator]

    engine = FakeEngine(slow_supervisor, ready=False)
    pool = Pool(engine, size=1).start()
    try:
        deadline = time.monotonic() + 5
        while not pool._readying and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool._readying
        result = run("x", pool=pool)
        assert (result.ok, result.stdout) == (True, "ok\n")
        assert (pool.hits, pool.misses) == (1, 0)
        # Handed over rather than a cold start beside it.
        first = next(iter(engine.containers.values()))
        assert first.request is not None
    finally:
        pool.close()


def test_what_the_supervisor_says_on_stderr_is_shown_as_the_programs() -> None:
    def behave(container: FakeContainer) -> None:
        container.read_request()
        container.complain(b"supervisor: cannot set up\n")
        container.exit(126)

    result = run("x", engine=FakeEngine(behave))
    assert result.status is RunStatus.ERROR and result.exit_code == 126
    assert "cannot set up" in result.stderr


def test_cases_a_sandbox_did_not_get_to_say_what_it_said_on_stderr() -> None:
    from codedock_magic import CaseInput

    def behave(container: FakeContainer) -> None:
        container.read_request()
        container.complain(b"broken pipe")
        container.exit(126)

    request = RunRequest(code=b"x", cases=(CaseInput(b"1"), CaseInput(b"2")))
    result = LocalBackend(FakeEngine(behave)).run(request)
    assert result.status is RunStatus.ERROR and result.stderr == "broken pipe"
    assert [case.status for case in result.cases] == [RunStatus.INTERRUPTED] * 2
    assert all("(broken pipe)" in case.note for case in result.cases)


def test_the_supervisors_paths_and_caps_are_the_hosts() -> None:
    from codedock_magic.engines.base import RUNTIME_DIR, WORKDIR
    from codedock_magic.local import display

    from .fakes import program

    assert program.RUNTIME == RUNTIME_DIR
    assert f"{WORKDIR}/main.py" == program.SCRIPT and f"{WORKDIR}/out" == program.OUT_DIR
    assert program.WIPED[0] == WORKDIR
    assert (program.OUT_FILES, program.OUT_FILE_BYTES, program.OUT_BYTES) == (
        display.MAX_FILES,
        display.MAX_FILE_BYTES,
        display.MAX_FILES_BYTES,
    )
