"""The warm pool: fresh single-use containers started ahead of time."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from codedock_magic import (
    DEFAULT_IMAGE,
    DockerEngine,
    ImageNotFoundError,
    Limits,
    Profile,
    RunStatus,
    run,
)
from codedock_magic.labels import SESSION, SESSION_ID
from codedock_magic.local.pool import Pool

from ..conftest import wait_until_gone


@pytest.fixture
def pool(engine: DockerEngine) -> Iterator[Pool]:
    warm = Pool(engine, size=1).start()
    assert warm.wait_ready(timeout=30), warm.last_error
    yield warm
    warm.close()


def _idle_ids(engine: DockerEngine) -> set[str]:
    return {c.id for c in engine.list({SESSION: SESSION_ID}) if c.state == "running"}


def test_a_warm_run_uses_a_started_container_and_the_pool_refills(
    engine: DockerEngine, pool: Pool
) -> None:
    waiting = _idle_ids(engine)
    assert len(waiting) == 1
    result = run("print('warm')", pool=pool)
    assert result.status is RunStatus.OK and result.stdout == "warm\n"
    assert (pool.hits, pool.misses) == (1, 0)
    assert pool.wait_ready(timeout=30)
    assert _idle_ids(engine).isdisjoint(waiting), "the used container came back"


def test_each_run_is_fresh(engine: DockerEngine, pool: Pool) -> None:
    dirty = textwrap.dedent(
        """
        import os, subprocess, sys
        open('/sandbox/left-behind', 'w').write('secret')
        subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],
                         start_new_session=True)
        os.environ['LEFT_BEHIND'] = '1'
        import builtins
        builtins.left_behind = True
        print(os.getpid())
        """
    )
    check = textwrap.dedent(
        """
        import builtins, os
        print(os.path.exists('/sandbox/left-behind'))
        print(os.environ.get('LEFT_BEHIND'))
        print(hasattr(builtins, 'left_behind'))
        others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]
        cmds = [open(f'/proc/{p}/cmdline', 'rb').read() for p in others]
        print(any(b'time.sleep(60)' in c for c in cmds))
        """
    )
    first = run(dirty, pool=pool)
    assert first.ok, first.stderr
    assert pool.wait_ready(timeout=30)
    second = run(check, pool=pool)
    assert second.ok, second.stderr
    assert second.stdout.split() == ["False", "None", "False", "False"]
    assert pool.hits == 2


def test_other_limits_start_cold_with_their_own_limits(engine: DockerEngine, pool: Pool) -> None:
    probe = "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip())"
    result = run(probe, limits=Limits(memory="100m"), pool=pool)
    assert result.stdout.strip() == str(100 * 1024**2)
    assert (pool.hits, pool.misses) == (0, 0)
    # The timeout and output cap travel with the code: the pool serves them.
    quick = run(probe, limits=Limits(timeout=3, output="64k"), pool=pool)
    assert quick.stdout.strip() == str(Limits().memory)
    assert pool.hits == 1


def test_warm_runs_keep_every_status(engine: DockerEngine, pool: Pool) -> None:
    cases = [
        ("import sys\nsys.exit(3)", Limits(), RunStatus.ERROR),
        ("while True: pass", Limits(timeout=1), RunStatus.TIMEOUT),
        ("x = bytearray(400 * 1024 * 1024)", Limits(), RunStatus.MEMORY_LIMIT),
        ("import os\nos.kill(os.getpid(), 9)", Limits(), RunStatus.SIGNALED),
    ]
    for code, limits, status in cases:
        assert pool.wait_ready(timeout=30)
        assert run(code, limits=limits, pool=pool).status is status, code
    assert pool.hits == len(cases)


def test_idle_containers_are_replaced_after_their_idle_time(engine: DockerEngine) -> None:
    short = Pool(engine, size=1, idle=1.0).start()
    try:
        assert short.wait_ready(timeout=30)
        first = _idle_ids(engine)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (_idle_ids(engine) & first):
            time.sleep(0.1)
        assert not (_idle_ids(engine) & first), "the idle container was never replaced"
        assert short.wait_ready(timeout=30)
    finally:
        short.close()


def test_size_zero_keeps_nothing(engine: DockerEngine) -> None:
    off = Pool(engine, size=0).start()
    try:
        time.sleep(0.5)
        assert off.ready == 0 and not _idle_ids(engine)
        assert run("print(1)", pool=off).ok
        assert (off.hits, off.misses) == (0, 0)
    finally:
        off.close()


def test_close_removes_idle_containers(engine: DockerEngine) -> None:
    warm = Pool(engine, size=2).start()
    assert warm.wait_ready(timeout=30)
    assert len(_idle_ids(engine)) == 2
    warm.close()
    assert wait_until_gone(engine, SESSION_ID, within=5.0) == []


def test_engine_trouble_in_refill_never_breaks_a_run(engine: DockerEngine) -> None:
    image = f"codedock-pool-test-{uuid.uuid4().hex[:8]}:latest"
    engine.api.tag(DEFAULT_IMAGE, *image.split(":"))
    doomed = Pool(engine, size=1, profile=Profile(image)).start()
    try:
        assert doomed.wait_ready(timeout=30)
        engine.api.remove_image(image)
        # The container started before the image went still serves its run.
        assert run("print('still fine')", image=image, pool=doomed).stdout == "still fine\n"
        deadline = time.monotonic() + 10
        while doomed.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert isinstance(doomed.last_error, ImageNotFoundError)
        # The next run finds no warm container, starts cold and says what is wrong.
        with pytest.raises(ImageNotFoundError, match=image):
            run("print(1)", image=image, pool=doomed)
    finally:
        doomed.close()


def test_idle_pool_containers_die_with_a_sigkilled_host(engine: DockerEngine) -> None:
    host = textwrap.dedent(
        """
        import time
        from codedock_magic.labels import SESSION_ID
        from codedock_magic.local.pool import Pool
        pool = Pool(size=3).start()
        assert pool.wait_ready(timeout=60), pool.last_error
        print(SESSION_ID, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", host], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    session = proc.stdout.readline().strip()
    assert len(engine.list({SESSION: session})) == 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_until_gone(engine, session, within=5.0) == []


def test_a_burst_grows_the_pool_to_its_ceiling_and_idle_shrinks_it(engine: DockerEngine) -> None:
    # Counts the pool and the engine report, never timings: the machine may be loaded.
    elastic = Pool(engine, size=1, max_size=4, shrink_after=10.0).start()
    try:
        assert elastic.wait_ready(timeout=60), elastic.last_error
        assert elastic.target == 1
        with ThreadPoolExecutor(6) as burst:
            results = list(burst.map(lambda _: run("print('burst')", pool=elastic), range(6)))
        assert all(result.ok for result in results)
        assert elastic.misses >= 3, (elastic.hits, elastic.misses)
        assert elastic.target == 4
        # While runs keep coming the grown size holds, and the pool fills to it.
        seen = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and seen < 4:
            assert run("print('steady')", pool=elastic).ok
            for _ in range(20):
                seen = max(seen, elastic.ready)
                if seen >= 4:
                    break
                time.sleep(0.1)
        assert seen == 4, f"the pool never held 4 ({elastic.last_error})"
        assert elastic.target == 4
        # No run for shrink_after seconds: back to its size, on the engine too.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (elastic.ready > 1 or len(_idle_ids(engine)) > 1):
            time.sleep(0.5)
        assert elastic.target == 1
        assert elastic.ready == 1
        assert len(_idle_ids(engine)) == 1
    finally:
        elastic.close()
