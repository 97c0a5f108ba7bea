"""A host process that forks: each process its own session, engine client, watchdog and pool."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from codedock_magic import DockerEngine, Pool, RunResult, run
from codedock_magic.labels import SESSION, SESSION_ID

FORK = multiprocessing.get_context("fork")


def _grade(n: int) -> tuple[int, str, str]:
    result = run(f"print({n} * {n})")
    return n, result.status.value, result.stdout


def _run_on_inherited(pool: Pool, code: str, out: Any) -> None:
    result = run(code, pool=pool)
    out.put((result.status.value, result.stdout, pool.hits + pool.misses))


def _live_run(pool: Pool, results: list[RunResult]) -> threading.Thread:
    code = "import time\nprint('up', flush=True)\ntime.sleep(4)\nprint('parent')"
    thread = threading.Thread(target=lambda: results.append(run(code, pool=pool)))
    thread.start()
    return thread


def _wait_running(engine: DockerEngine, count: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        running = [c for c in engine.list({SESSION: SESSION_ID}) if c.state == "running"]
        if len(running) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the parent's run never started")


def test_parallel_grading_with_multiprocessing_just_works(engine: DockerEngine) -> None:
    pool = Pool(engine, size=1).start()
    try:
        assert pool.wait_ready(timeout=30)
        results: list[RunResult] = []
        live = _live_run(pool, results)
        _wait_running(engine, 1)
        with FORK.Pool(4) as workers:
            graded = workers.map(_grade, range(12))
        live.join(30)
    finally:
        pool.close()
    assert graded == [(n, "ok", f"{n * n}\n") for n in range(12)]
    # The workers' exits (and their watchdogs) left the parent's live run alone.
    assert results and results[0].ok, results
    assert results[0].stdout == "up\nparent\n"


def test_a_pool_inherited_across_fork_resets_itself(engine: DockerEngine) -> None:
    pool = Pool(engine, size=1).start()
    try:
        assert pool.wait_ready(timeout=30)
        out = FORK.Queue()
        child = FORK.Process(target=_run_on_inherited, args=(pool, "print('child')", out))
        child.start()
        status, stdout, served = out.get(timeout=60)
        child.join(30)
        assert (status, stdout) == ("ok", "child\n")
        assert served == 1  # counted afresh in the child
        # The parent's waiting container was never touched by the child.
        assert pool.ready == 1
        parent = run("print('parent')", pool=pool)
        assert (parent.ok, parent.stdout, pool.hits) == (True, "parent\n", 1)
    finally:
        pool.close()
