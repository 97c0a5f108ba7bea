"""Every run's CPU time and peak memory, from the container's cgroup, against the real engine."""

from __future__ import annotations

from codedock_magic import DockerEngine, Limits, RunStatus, run
from codedock_magic.jupyter.render import status_line

MB = 1024**2
LIMITS = Limits(timeout=10)
TOUCH_50MB = "hog = bytearray(50 * 1024 * 1024)\nfor i in range(0, len(hog), 4096):\n    hog[i] = 1"
# CPU time, not wall time: a busy machine gives the loop less of a core.
BUSY_1S = "import time\nwhile time.process_time() < 1.0:\n    pass"


def test_a_program_touching_50mb_peaks_50mb_above_an_idle_one(engine: DockerEngine) -> None:
    idle = run("pass", limits=LIMITS)
    hog = run(TOUCH_50MB, limits=LIMITS)
    assert idle.peak_memory is not None and hog.peak_memory is not None
    # The peak holds the interpreter and the supervisor too (about 9 MiB): the
    # program's own 50 MB is what it adds to an idle program's.
    grew = hog.peak_memory - idle.peak_memory
    assert abs(grew - 50 * MB) <= 0.15 * 50 * MB, grew / MB
    assert idle.peak_memory < 32 * MB


def test_a_busy_second_counts_a_second_and_a_sleep_none(engine: DockerEngine) -> None:
    busy = run(BUSY_1S, limits=LIMITS)
    assert busy.cpu_seconds is not None and 0.95 <= busy.cpu_seconds <= 1.3, busy.cpu_seconds
    asleep = run("import time\ntime.sleep(1)", limits=LIMITS)
    assert asleep.cpu_seconds is not None and asleep.cpu_seconds < 0.15, asleep.cpu_seconds
    assert "cpu 1." in status_line(busy) and " · peak " in status_line(busy)


def test_a_run_ended_at_its_timeout_or_memory_limit_still_reports(engine: DockerEngine) -> None:
    timed_out = run("while True:\n    pass", limits=Limits(timeout=1))
    assert timed_out.status is RunStatus.TIMEOUT
    assert timed_out.cpu_seconds is not None and 0.3 <= timed_out.cpu_seconds <= 1.3
    hog = run("b = bytearray(300 * 1024 * 1024)", limits=Limits(timeout=10, memory="100m"))
    assert hog.status is RunStatus.MEMORY_LIMIT
    assert hog.peak_memory is not None and 90 * MB <= hog.peak_memory <= 100 * MB
    children = (
        "import subprocess\nsubprocess.run(['python3', '-c', '"
        + BUSY_1S.replace("\n", "\\n")
        + "'])"
    )
    spawned = run(children, limits=LIMITS)
    # Every process of the container counts, not only the program's own.
    assert spawned.cpu_seconds is not None and spawned.cpu_seconds >= 0.95
