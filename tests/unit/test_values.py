"""The value types: limits in two kinds, profiles, requests, and errors that pickle."""

from __future__ import annotations

import pickle
import signal
import threading

import pytest

from codedock_magic import (
    CodedockError,
    ContainerLimits,
    EngineError,
    EngineUnavailableError,
    ImageNotFoundError,
    InvalidValueError,
    Limits,
    Profile,
    RunFailedError,
    RunLimits,
    RunRequest,
    RunResult,
    RunStatus,
)
from codedock_magic.core.interrupts import signals_as_flag


def test_limits_hold_one_of_each_kind_and_read_through() -> None:
    limits = Limits(timeout=2, memory="100m", cpus="0.5", pids="20", output="64k", workdir="8m")
    assert limits.container == ContainerLimits(memory="100m", cpus=0.5, pids=20, workdir="8m")
    assert limits.run == RunLimits(timeout=2, output="64k")
    assert (limits.timeout, limits.memory, limits.cpus, limits.pids) == (2, 100 * 1024**2, 0.5, 20)
    assert Limits.of(limits.container, limits.run) == limits
    assert limits.replace(timeout=5).container == limits.container
    assert limits.describe() == "timeout 2s · memory 100m · cpus 0.5 · pids 20"


def test_a_profile_ignores_run_limits_so_any_timeout_shares_a_pool() -> None:
    slow, quick = Limits(timeout=600), Limits(timeout=1, output="2k")
    assert Profile(limits=slow.container) == Profile(limits=quick.container) == Profile()
    assert hash(Profile(limits=slow.container)) == hash(Profile())
    assert Profile(limits=Limits(memory="100m").container) != Profile()
    assert Profile("other:1") != Profile()
    with pytest.raises(InvalidValueError, match="image '' is not an image name"):
        Profile("")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ContainerLimits(memory="8m"), "memory '8m' is not at least 16m"),
        (lambda: ContainerLimits(pids=2), "pids 2 is not at least 4"),
        (lambda: ContainerLimits(cpus=0), "cpus 0 is not a positive number of CPUs"),
        (lambda: RunLimits(timeout="soon"), "timeout 'soon' is not a number of seconds"),
        (lambda: RunLimits(output="10"), "output '10' is not at least 1k"),
        (lambda: Limits().replace(speed=2), "limit 'speed' is not one of timeout, output"),
        (lambda: RunRequest(code=42), "code 'int' is not str or bytes"),  # type: ignore[arg-type]
    ],
)
def test_bad_values_are_refused_with_one_line(make: object, message: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        make()  # type: ignore[operator]
    assert str(info.value).startswith(message)


def test_a_request_takes_text_as_utf8() -> None:
    request = RunRequest(code="print('☃')", stdin="π")
    assert (request.code, request.stdin) == ("print('☃')".encode(), "π".encode())


def _result() -> RunResult:
    return RunResult(
        status=RunStatus.ERROR,
        exit_code=3,
        signal=None,
        stdout="",
        stderr="boom\n",
        duration=0.1,
        truncated=False,
        limits=Limits(),
        image="img",
    )


@pytest.mark.parametrize(
    "error",
    [
        CodedockError("plain"),
        InvalidValueError("memory", "10x", "a size such as 100m or 1g"),
        EngineError("the Docker engine could not start a sandbox: no"),
        EngineUnavailableError("unix:///x.sock", "refused"),
        ImageNotFoundError("img:latest"),
        RunFailedError(_result()),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_error_survives_pickling(error: CodedockError) -> None:
    # A remote backend or a worker process hands errors back across a process boundary.
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.__dict__ == error.__dict__


def test_signals_as_flag_restores_the_handler_and_sets_the_flag() -> None:
    before = signal.getsignal(signal.SIGINT)
    with signals_as_flag() as stop:
        assert signal.getsignal(signal.SIGINT) is not before
        signal.raise_signal(signal.SIGINT)
        assert stop.is_set() and stop.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before


def test_signals_as_flag_off_the_main_thread_changes_nothing() -> None:
    seen: list[object] = []

    def worker() -> None:
        with signals_as_flag() as stop:
            seen.append(signal.getsignal(signal.SIGINT))
            seen.append(stop.is_set())

    before = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before, False]
