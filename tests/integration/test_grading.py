"""check() against the real engine: verdicts, per-case limits, isolation between cases, stopping."""

from __future__ import annotations

import hashlib
import random
import string
import threading
import time

import pytest

from codedock_magic import DockerEngine, Limits, Pool, Profile, Verdict, check
from codedock_magic.core.interrupts import Stop

MB = 1024**2

KINDS = r"""
import os, signal, sys, time
kind = sys.stdin.read().strip()
if kind == "sum":
    print(2 + 2)
elif kind == "wrong":
    print(5)
elif kind == "crash":
    raise SystemExit("bad input")
elif kind == "loop":
    while True:
        pass
elif kind == "hog":
    hog = bytearray(80 * 1024 * 1024)
    for i in range(0, len(hog), 4096):
        hog[i] = 1
    print(4)
elif kind == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_every_verdict_in_one_check_and_a_slow_case_stops_only_itself(
    engine: DockerEngine,
) -> None:
    cases = [
        {"name": "ok", "stdin": "sum", "expected": "4\n"},
        {"name": "loop", "stdin": "loop", "expected": "4", "timeout": 0.5},
        {"name": "wrong", "stdin": "wrong", "expected": "4\n"},
        {"name": "crash", "stdin": "crash", "expected": "4"},
        {"name": "hog", "stdin": "hog", "expected": "4", "memory": "48m"},
        {"name": "hog with room", "stdin": "hog", "expected": "4"},
        {"name": "kill", "stdin": "kill", "expected": "4"},
        {"name": "ok again", "stdin": "sum", "expected": "4", "points": 3},
    ]
    seen: list[tuple[int, Verdict]] = []
    started = time.monotonic()
    result = check(
        KINDS,
        cases,
        limits=Limits(timeout=5, memory="160m"),
        on_case=lambda i, c: seen.append((i, c.verdict)),
    )
    took = time.monotonic() - started
    verdicts = [case.verdict for case in result.cases]
    assert verdicts == [
        Verdict.PASSED,
        Verdict.TIMEOUT,
        Verdict.WRONG_ANSWER,
        Verdict.ERROR,
        Verdict.MEMORY_LIMIT,
        Verdict.PASSED,
        Verdict.KILLED,
        Verdict.PASSED,
    ]
    assert seen == list(enumerate(verdicts))
    assert (result.score, result.max_score, result.passed) == (5, 10, 3)
    assert result.summary() == "3/8 passed · 5/10 points"
    by_name = {case.name: case for case in result.cases}
    assert 0.5 <= by_name["loop"].duration < 1.5 and took < 5
    assert by_name["crash"].detail == "exit 1" and "bad input" in by_name["crash"].stderr
    assert by_name["wrong"].diff.splitlines()[-2:] == ["-4", "+5"]
    assert by_name["kill"].detail == "killed by SIGKILL"
    assert by_name["hog"].detail == "over 48m"
    assert result.run.limits.memory == 160 * MB
    assert result.to_dict()["cases"][1]["verdict"] == "timeout"


LEAVER = r"""
import ctypes, glob, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
if sys.stdin.read() == "leave":
    open("left.txt", "w").write("x")
    os.makedirs("deep/er/still")
    os.chmod("deep/er", 0)
    os.symlink("/etc/passwd", "link")
    open("/dev/shm/note", "w").write("y")
    assert libc.mq_open(b"/q", os.O_CREAT | os.O_RDWR, 0o600, None) >= 0
    assert libc.shmget(1234, 4096, 0o1000 | 0o600) >= 0
    assert libc.msgget(99, 0o1000 | 0o600) >= 0
    assert libc.semget(77, 1, 0o1000 | 0o600) >= 0
    subprocess.Popen(["sleep", "60"], start_new_session=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            import time
            time.sleep(60)
        os._exit(0)
    os.environ["LEFT"] = "1"
    hog = bytearray(60 * 1024 * 1024)
    print("left")
else:
    mine = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            if f"Uid:\t{os.getuid()}" in open(status).read():
                mine.append(status)
        except OSError:
            pass
    ipc = [open(f"/proc/sysvipc/{k}").read().count("\n") - 1 for k in ("shm", "msg", "sem")]
    print(sorted(os.listdir(".")), os.listdir("/dev/shm"), os.listdir("/dev/mqueue"), ipc,
          len(mine), os.environ.get("LEFT"))
"""


def test_nothing_of_one_case_reaches_the_next(engine: DockerEngine) -> None:
    clean = "['main.py'] [] [] [0, 0, 0] 1 None\n"
    cases = [
        {"name": "leave", "stdin": "leave", "expected": "left"},
        {"name": "look", "stdin": "look", "expected": clean},
        {"name": "leave again", "stdin": "leave", "expected": "left"},
        {"name": "look again", "stdin": "look", "expected": clean},
    ]
    result = check(LEAVER, cases, limits=Limits(timeout=10, memory="100m"))
    assert [c.verdict for c in result.cases] == [Verdict.PASSED] * 4, [
        (c.stdout, c.stderr) for c in result.cases
    ]


SNOOP = r"""
import glob, os, sys
token = "zebra-" + "4711"
places = [sys.stdin.read()] + list(os.environ.values())
for top in ("/sandbox", "/tmp", "/dev/shm", "/root", "/home"):
    for folder, _, names in os.walk(top):
        for name in names:
            try:
                places.append(open(os.path.join(folder, name), errors="replace").read())
            except OSError:
                pass
for name in glob.glob("/proc/[0-9]*/cmdline") + glob.glob("/proc/[0-9]*/environ"):
    try:
        places.append(open(name, "rb").read().decode("utf-8", "replace"))
    except OSError:
        pass
print("found" if any(token in place for place in places) else "clean")
"""


def test_the_expected_outputs_are_nowhere_in_the_sandbox(engine: DockerEngine) -> None:
    cases = [{"name": f"c{i}", "stdin": f"{i}", "expected": "zebra-4711"} for i in range(3)]
    result = check(SNOOP, cases, limits=Limits(timeout=10), reveal_hidden=True)
    assert [c.stdout for c in result.cases] == ["clean\n"] * 3


def test_a_stopped_check_ends_its_cases_and_leaves_nothing(engine: DockerEngine) -> None:
    stop = Stop()
    cases = [{"name": f"c{i}", "stdin": "", "expected": "1"} for i in range(20)]
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    result = check("import time; time.sleep(0.3); print(1)", cases, stop=stop)
    assert time.monotonic() - started < 4
    verdicts = [c.verdict for c in result.cases]
    assert Verdict.PASSED in verdicts and verdicts[-1] is Verdict.KILLED
    assert result.cases[-1].detail == "interrupted"
    assert result.run.status.value == "interrupted"


def test_a_check_takes_a_warm_container_of_its_profile(engine: DockerEngine) -> None:
    limits = Limits(timeout=5)
    pool = Pool(engine, size=1, profile=Profile(limits=limits.container)).start()
    try:
        deadline = time.monotonic() + 30
        while pool.ready < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        result = check(
            "print(input())",
            [{"name": "a", "stdin": "x", "expected": "x"}],
            limits=limits,
            pool=pool,
        )
        assert result.all_passed and pool.hits == 1
    finally:
        pool.close()


@pytest.mark.parametrize("cases", [1, 40])
def test_many_cases_in_one_container_all_pass(engine: DockerEngine, cases: int) -> None:
    result = check(
        "print(int(input()) * 2)",
        [{"name": str(i), "stdin": f"{i}\n", "expected": f"{2 * i}"} for i in range(cases)],
    )
    assert result.passed == cases


# Each case reads its own stdin to its end, or leaves it unread ("q"); the next case
# goes into the stream while one runs when both are small, so the boundaries of
# small, large and unread inputs must hold wherever they fall.
BOUNDARIES = r"""
import hashlib, sys
head = sys.stdin.buffer.read(1)
if head == b"q":
    print("quit")
    sys.exit(0)
data = head + sys.stdin.buffer.read()
print(len(data), hashlib.sha256(data).hexdigest()[:16])
"""


def test_each_case_reads_exactly_its_own_stdin(engine: DockerEngine) -> None:
    rng = random.Random(7)
    sizes = [0, 3, 20_000, 5, 16_384, 300_000, 2, 16_300, 1, 70_000, 4]
    inputs = ["".join(rng.choices(string.ascii_letters, k=size)) for size in sizes]
    inputs[3] = "q" + inputs[3]
    inputs[5] = "q" + inputs[5]
    inputs[8] = "q"

    def expected(text: str) -> str:
        data = text.encode()
        if data[:1] == b"q":
            return "quit"
        return f"{len(data)} {hashlib.sha256(data).hexdigest()[:16]}"

    cases = [
        {"name": str(i), "stdin": text, "expected": expected(text)} for i, text in enumerate(inputs)
    ]
    result = check(BOUNDARIES, cases, limits=Limits(timeout=10))
    assert [case.verdict for case in result.cases] == [Verdict.PASSED] * len(inputs), [
        (case.stdout, case.detail) for case in result.cases
    ]


# Case 1 leaves a process whose main thread has exited (a zombie to /proc) while
# another thread of it runs on; case 2 looks for what that thread writes.
LINGERER = r"""
import ctypes, os, platform, threading, time
if input() == "leave":
    if os.fork() == 0:
        def linger():
            while True:
                try:
                    with open("/sandbox/lingering", "w") as handle:
                        handle.write("x")
                except OSError:
                    pass
                time.sleep(0.02)
        threading.Thread(target=linger).start()
        time.sleep(0.1)
        # SYS_exit: the main thread alone ends.
        ctypes.CDLL(None).syscall({"x86_64": 60, "aarch64": 93}[platform.machine()], 0)
    time.sleep(0.3)
    print("left")
else:
    time.sleep(0.5)
    print("lingering" if os.path.exists("/sandbox/lingering") else "clean")
"""


def test_a_process_whose_main_thread_ended_does_not_outlive_its_case(
    engine: DockerEngine,
) -> None:
    cases = [
        {"name": "leave", "stdin": "leave\n", "expected": "left"},
        {"name": "look", "stdin": "look\n", "expected": "clean"},
    ]
    result = check(LINGERER, cases, limits=Limits(timeout=10), reveal_hidden=True)
    assert [case.stdout.strip() for case in result.cases] == ["left", "clean"], [
        (case.stdout, case.stderr, case.detail) for case in result.cases
    ]


# A hidden case writes its input into a cgroup counter of the container (failed
# forks at the pids limit); the next visible case reads the counter back and prints it.
CGROUP_SMUGGLER = r"""
import os, sys, time
line = sys.stdin.read().strip()
events = next(p for p in ("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events")
              if os.path.exists(p))
if line == "tell":
    print(open(events).read().split()[-1])
else:
    failed = 0
    while failed < int(line):
        try:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
        except OSError:
            failed += 1
    print("hid", failed)
"""


def test_a_hidden_case_cannot_reach_the_next_visible_case(engine: DockerEngine) -> None:
    secret = 37
    cases = [
        {"name": "warm up", "stdin": "tell", "expected": "0"},
        {"name": "secret", "stdin": str(secret), "expected": f"hid {secret}", "hidden": True},
        {"name": "look", "stdin": "tell", "expected": "0"},
    ]
    result = check(CGROUP_SMUGGLER, cases, limits=Limits(timeout=10, pids=16))
    assert result.cases[1].verdict is Verdict.PASSED
    seen = [(c.name, c.stdout.strip()) for c in result.cases if not c.hidden]
    assert seen == [("warm up", "0"), ("look", "0")], seen
    # What a student is shown of the run's usage is not the hidden case's either.
    assert str(secret) not in result.run.stderr
