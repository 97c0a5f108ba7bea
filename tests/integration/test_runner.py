"""The runner against the real engine: statuses, streams, stdin, limits, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from codedock_magic import (
    DEFAULT_IMAGE,
    DockerEngine,
    EngineUnavailableError,
    ImageNotFoundError,
    Limits,
    RunStatus,
    run,
)
from codedock_magic.labels import MANAGED, SESSION, SESSION_ID


def test_ok_run_reports_output_and_exit_zero(engine: DockerEngine) -> None:
    result = run("print('hello')", engine=engine)
    assert result.status is RunStatus.OK and result.ok
    assert (result.exit_code, result.signal) == (0, None)
    assert result.stdout == "hello\n"
    assert result.stderr == ""
    assert result.image == DEFAULT_IMAGE
    assert 0 < result.duration < 5


def test_exit_code_three_is_an_error_with_the_programs_traceback(engine: DockerEngine) -> None:
    result = run("import sys\nsys.exit(3)", engine=engine)
    assert (result.status, result.exit_code) == (RunStatus.ERROR, 3)
    crash = run("def f():\n    return 1 / 0\nf()\n", engine=engine)
    assert (crash.status, crash.exit_code) == (RunStatus.ERROR, 1)
    assert "ZeroDivisionError: division by zero" in crash.stderr
    assert 'File "/sandbox/main.py", line 2, in f' in crash.stderr
    assert "return 1 / 0" in crash.stderr


def test_a_warning_on_stderr_alone_is_still_ok(engine: DockerEngine) -> None:
    result = run("import warnings\nwarnings.warn('careful')\nprint('done')", engine=engine)
    assert result.status is RunStatus.OK
    assert "UserWarning: careful" in result.stderr
    assert result.stdout == "done\n"


def test_printed_text_cannot_fake_the_status(engine: DockerEngine) -> None:
    code = (
        "import sys\n"
        "frame = bytes([120, 0, 0, 0, 6]) + b'exit 0'\n"
        "sys.stdout.buffer.write(frame + bytes([1, 0, 0, 0, 0, 0, 0, 6]) + b'exit 0')\n"
        "sys.stdout.flush()\n"
        "sys.exit(5)\n"
    )
    result = run(code, engine=engine)
    assert (result.status, result.exit_code) == (RunStatus.ERROR, 5)
    assert "exit 0" in result.stdout


def test_exit_137_by_choice_is_not_a_signal(engine: DockerEngine) -> None:
    chosen = run("raise SystemExit(137)", engine=engine)
    assert (chosen.status, chosen.exit_code, chosen.signal) == (RunStatus.ERROR, 137, None)
    killed = run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", engine=engine)
    assert (killed.status, killed.exit_code, killed.signal) == (RunStatus.SIGNALED, None, 11)
    assert killed.describe() == "killed by SIGSEGV"


def test_stdin_reaches_the_program_as_text_or_bytes(engine: DockerEngine) -> None:
    result = run(
        "import sys\nprint(sys.stdin.read().upper(), end='')", stdin="abc\ndéf\n", engine=engine
    )
    assert result.stdout == "ABC\nDÉF\n"
    raw = run(
        "import sys\nprint(sys.stdin.buffer.read().hex())", stdin=bytes(range(256)), engine=engine
    )
    assert raw.stdout.strip() == bytes(range(256)).hex()
    empty = run("import sys\nprint(repr(sys.stdin.read()))", engine=engine)
    assert empty.stdout == "''\n"


def test_large_stdin_and_code_arrive_whole(engine: DockerEngine) -> None:
    data = "x" * (3 * 1024 * 1024)
    filler = "# " + "y" * 200_000 + "\n"
    result = run(filler + "import sys\nprint(len(sys.stdin.read()))", stdin=data, engine=engine)
    assert result.stdout == f"{len(data)}\n"


def test_output_streams_live_and_separately(engine: DockerEngine) -> None:
    seen: list[tuple[float, str, str]] = []
    start = time.monotonic()
    code = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    print('out', i)\n"
        "    print('err', i, file=sys.stderr)\n"
        "    time.sleep(0.4)\n"
    )
    result = run(
        code, engine=engine, on_output=lambda s, t: seen.append((time.monotonic() - start, s, t))
    )
    assert result.stdout == "out 0\nout 1\nout 2\n"
    assert result.stderr == "err 0\nerr 1\nerr 2\n"
    assert "".join(t for _, s, t in seen if s == "stdout") == result.stdout
    assert "".join(t for _, s, t in seen if s == "stderr") == result.stderr
    first_out = next(at for at, s, _ in seen if s == "stdout")
    last_out = max(at for at, s, _ in seen if s == "stdout")
    # The first line arrived while the program was still sleeping between lines.
    assert last_out - first_out > 0.6


def test_bad_bytes_are_replaced_and_unicode_survives(engine: DockerEngine) -> None:
    result = run(
        "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe ')\nprint('☃ π')", engine=engine
    )
    assert result.stdout == "ok \ufffd\ufffd ☃ π\n"


def test_timeout_stops_a_busy_loop_fast_and_keeps_earlier_output(engine: DockerEngine) -> None:
    start = time.monotonic()
    result = run(
        "print('before', flush=True)\nwhile True: pass", limits=Limits(timeout=1), engine=engine
    )
    took = time.monotonic() - start
    assert result.status is RunStatus.TIMEOUT
    assert (result.exit_code, result.signal) == (None, None)
    assert result.stdout == "before\n"
    assert took < 1.5, f"a 1 s timeout took {took:.2f} s"
    assert result.describe() == "timeout after 1s"


def test_timeout_stops_code_that_ignores_sigterm_and_forks(engine: DockerEngine) -> None:
    code = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "for _ in range(5):\n"
        "    if os.fork() == 0:\n"
        "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "        while True: time.sleep(0.1)\n"
        "while True: pass\n"
    )
    start = time.monotonic()
    result = run(code, limits=Limits(timeout=1), engine=engine)
    assert result.status is RunStatus.TIMEOUT
    assert time.monotonic() - start < 2.5


def test_background_children_do_not_hold_the_run_open(engine: DockerEngine) -> None:
    code = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('parent done')\n"
    )
    start = time.monotonic()
    result = run(code, limits=Limits(timeout=20), engine=engine)
    assert result.status is RunStatus.OK
    assert result.stdout == "parent done\n"
    assert time.monotonic() - start < 5


def test_memory_limit_without_swap_is_reported_as_such(engine: DockerEngine) -> None:
    result = run(
        "print('allocating', flush=True)\nhog = bytearray(300 * 1024 * 1024)\nprint('survived')",
        limits=Limits(memory="100m", timeout=20),
        engine=engine,
    )
    assert result.status is RunStatus.MEMORY_LIMIT
    assert result.stdout == "allocating\n"
    assert result.describe() == "memory limit (100m) exceeded"


def test_within_the_memory_limit_is_fine(engine: DockerEngine) -> None:
    result = run(
        "hog = bytearray(50 * 1024 * 1024)\nprint(len(hog))",
        limits=Limits(memory="150m"),
        engine=engine,
    )
    assert result.status is RunStatus.OK


def test_output_past_the_cap_keeps_head_and_tail(engine: DockerEngine) -> None:
    code = "for i in range(200000):\n    print(f'line {i:06d}')\n"
    result = run(code, limits=Limits(output="64k"), engine=engine)
    assert result.status is RunStatus.OK and result.truncated
    assert result.stdout.startswith("line 000000\nline 000001\n")
    assert result.stdout.endswith("line 199999\n")
    assert "bytes of output cut ...]" in result.stdout
    assert len(result.stdout) < 70_000


def test_a_gigabyte_of_output_keeps_the_host_flat(engine: DockerEngine) -> None:
    probe = (
        "import resource\n"
        "from codedock_magic import run, Limits\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        'code = \'import sys\\nblock = b"x" * 1048575 + b"\\\\n"\\n\''
        " 'for _ in range(1024): sys.stdout.buffer.write(block)\\n'\n"
        "r = run(code, limits=Limits(timeout=120, output='1m'))\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(r.status.value, r.truncated, len(r.stdout), (after - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    status, truncated, kept, grown_mb = out.stdout.split()
    assert (status, truncated) == ("ok", "True")
    assert int(kept) < 1_100_000
    assert int(grown_mb) <= 64, f"the host grew by {grown_mb} MB"


def test_keyboard_interrupt_stops_and_removes_the_container(engine: DockerEngine) -> None:
    # A real SIGINT, as Jupyter sends it, which any thread may receive.
    timer = threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    result = run(
        "import time\nprint('started', flush=True)\ntime.sleep(60)",
        engine=engine,
        limits=Limits(timeout=60),
    )
    took = time.monotonic() - start
    assert result.status is RunStatus.INTERRUPTED
    assert result.stdout == "started\n"
    assert took < 3
    assert engine.list({SESSION: SESSION_ID}) == []


class _HostBug(Exception):
    pass


def test_an_exception_in_the_host_still_removes_the_container(engine: DockerEngine) -> None:
    def explode(stream: str, text: str) -> None:
        raise _HostBug(text)

    with pytest.raises(_HostBug):
        run("import time\nprint('x', flush=True)\ntime.sleep(60)", on_output=explode, engine=engine)
    assert engine.list({SESSION: SESSION_ID}) == []


def test_containers_carry_our_labels_while_running(engine: DockerEngine) -> None:
    found: list[dict[str, str]] = []

    def look(stream: str, text: str) -> None:
        # print() may arrive as two writes ("look now", "\n"): look at the first only.
        if not found:
            found.extend(dict(c.labels) for c in engine.list({SESSION: SESSION_ID}))

    run(
        "print('look now', flush=True)\nimport time\ntime.sleep(0.3)", on_output=look, engine=engine
    )
    assert len(found) == 1
    labels = found[0]
    assert labels[MANAGED] == "1"
    for key in ("owner-pid", "host", "created", "expires"):
        assert labels[f"io.codedock.{key}"]
    assert float(labels["io.codedock.expires"]) > float(labels["io.codedock.created"])


def test_a_missing_image_is_named_with_the_build_command(engine: DockerEngine) -> None:
    image = f"codedock-missing-{uuid.uuid4().hex[:8]}:latest"
    start = time.monotonic()
    with pytest.raises(ImageNotFoundError) as info:
        run("print(1)", image=image, engine=engine)
    assert time.monotonic() - start < 5, "a missing image must not wait for a pull"
    assert image in str(info.value)
    assert "codedock image build" in str(info.value)


def test_no_engine_says_where_it_looked_and_how_to_start_one(tmp_path: object) -> None:
    # Made without reaching it; the first call that needs it says so.
    with pytest.raises(EngineUnavailableError) as info:
        DockerEngine(base_url="unix:///nonexistent/docker.sock").ping()
    message = str(info.value)
    assert message.startswith("no Docker engine answered at unix:///nonexistent/docker.sock")
    assert "start one" in message and "DOCKER_HOST" in message
    assert "Traceback" not in message


def test_bad_code_type_is_refused_before_anything_starts(engine: DockerEngine) -> None:
    with pytest.raises(ValueError, match="code 'int' is not str or bytes"):
        run(42, engine=engine)  # type: ignore[arg-type]


def test_stdin_is_streamed_so_it_does_not_count_against_the_program(engine: DockerEngine) -> None:
    # 60 MiB of stdin under a 100m limit: the supervisor never holds it whole.
    data = b"x" * (60 * 1024 * 1024)
    ignored = run("print('never read')", stdin=data, limits=Limits(memory="100m"), engine=engine)
    assert (ignored.status, ignored.stdout) == (RunStatus.OK, "never read\n")
    counted = run(
        "import sys\nn = 0\n"
        "while chunk := sys.stdin.buffer.read(65536):\n    n += len(chunk)\nprint(n)",
        stdin=data,
        limits=Limits(memory="100m", timeout=60),
        engine=engine,
    )
    assert (counted.status, counted.stdout) == (RunStatus.OK, f"{len(data)}\n")
    closed = run("import os\nos.close(0)\nprint('closed')", stdin=data, engine=engine)
    assert (closed.status, closed.stdout) == (RunStatus.OK, "closed\n")


def test_a_program_that_lowers_its_oom_score_is_still_a_memory_limit(engine: DockerEngine) -> None:
    code = (
        "try:\n"
        "    open('/proc/self/oom_score_adj', 'w').write('0')\n"
        "except PermissionError:\n"
        "    print('refused', end=' ')\n"
        "print(open('/proc/self/oom_score_adj').read().strip(), flush=True)\n"
        "hog = [bytearray(10 * 1024 * 1024) for _ in range(40)]\n"
    )
    result = run(code, limits=Limits(memory="100m", timeout=20), engine=engine)
    assert result.stdout == "refused 1000\n"
    assert result.status is RunStatus.MEMORY_LIMIT, (result.describe(), result.stderr)
