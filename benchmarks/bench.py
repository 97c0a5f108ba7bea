"""Side-by-side timings of a trivial sandboxed run, as ratios to docker-py's containers.run.

    .venv/bin/python benchmarks/bench.py [--runs N]

Every row is measured in the same process and run, so the ratios hold on a noisy
machine even when the milliseconds do not. It reports; it never fails on a number.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import docker

from codedock_magic import DEFAULT_IMAGE, Limits, run
from codedock_magic.engines.watchdog import watchdog_command
from codedock_magic.local.pool import Pool

CODE = "print(1)"
LIMITS = Limits()


def median_ms(
    action: Callable[[], object], runs: int, before: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def docker_run(client: docker.DockerClient) -> None:
    client.containers.run(
        DEFAULT_IMAGE,
        ["python3", "-c", CODE],
        remove=True,
        network_mode="none",
        mem_limit=LIMITS.memory,
        memswap_limit=LIMITS.memory,
        nano_cpus=int(LIMITS.cpus * 1e9),
        pids_limit=LIMITS.pids,
    )


def throughput(action: Callable[[], object], total: int = 100, threads: int = 8) -> float:
    left = [total]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            action()

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return total / (time.perf_counter() - start)


def idle_rss_mib(command: list[str]) -> float:
    """Resident memory of ``command`` once it waits on its stdin, as the watchdog does."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        with open(f"/proc/{proc.pid}/status") as status:
            kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    return kib / 1024


def magic_shell(pool_size: int) -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.config.SandboxMagics.pool_size = pool_size
    shell.run_line_magic("load_ext", "codedock_magic")
    return shell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per row (median taken)")
    args = parser.parse_args()
    runs = args.runs
    client = docker.from_env(version="auto")
    rows: list[tuple[str, float, str]] = []

    def row(name: str, ms: float, unit: str = "ms") -> None:
        rows.append((name, ms, unit))
        print(f"  measured {name}: {ms:.1f} {unit}", file=sys.stderr)

    row(
        "host python -c pass (process start floor)",
        median_ms(lambda: subprocess.run([sys.executable, "-c", "pass"]), runs),
    )
    row("docker-py containers.run", median_ms(lambda: docker_run(client), runs))
    keeper = client.containers.run(
        DEFAULT_IMAGE, ["sleep", "600"], detach=True, remove=True, network_mode="none"
    )
    try:
        row(
            "exec_run in a running container",
            median_ms(lambda: keeper.exec_run(["python3", "-c", CODE]), runs),
        )
    finally:
        keeper.kill()
    row("runner, cold", median_ms(lambda: run(CODE), runs))
    warm = Pool(size=1).start()
    row(
        "runner, warm",
        median_ms(lambda: run(CODE, pool=warm), runs, before=lambda: warm.wait_ready()),
    )
    warm.close()

    shell = magic_shell(pool_size=1)
    magics = shell.magics_manager.registry["SandboxMagics"]

    def cell() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            shell.run_cell_magic("sandbox", "--no-widgets", CODE)

    row(
        "%%sandbox end to end, warm", median_ms(cell, runs, before=lambda: magics.pool.wait_ready())
    )
    back_to_back = []
    magics.pool.wait_ready()
    for _ in range(20):
        start = time.perf_counter()
        cell()
        back_to_back.append(time.perf_counter() - start)
    row("%%sandbox, 20 cells back to back (per cell)", statistics.median(back_to_back) * 1000)
    shell.run_line_magic("config", "SandboxMagics.pool_size = 0")
    row("%%sandbox end to end, cold", median_ms(cell, runs))

    baseline_rate = throughput(lambda: docker_run(client))
    row("throughput, containers.run, 100 runs / 8 threads", baseline_rate, "runs/s")
    busy = Pool(size=8).start()
    busy.wait_ready()
    rate = throughput(lambda: run(CODE, pool=busy))
    row("throughput, runner with a pool of 8", rate, "runs/s")
    busy.close()

    idle = Pool(size=1).start()
    idle.wait_ready()
    time.sleep(1)
    sandbox = idle._ready[0]
    stats = client.api.stats(sandbox.id, stream=False)
    memory = stats["memory_stats"]
    usage = memory.get("usage", 0) - memory.get("stats", {}).get("cache", 0)
    idle.close()
    row("memory of one idle pooled container", usage / 1024**2, "MiB")
    bare = idle_rss_mib([sys.executable, "-I", "-c", "import sys; sys.stdin.read()"])
    row("memory of a bare python waiting on stdin", bare, "MiB")
    # A session of its own, so that its final sweep touches nothing of ours.
    watchdog = idle_rss_mib(watchdog_command("bench-" + os.urandom(4).hex()))
    row("memory of the per-kernel watchdog (target: at most 15 MiB)", watchdog, "MiB")

    base = next(ms for name, ms, _ in rows if name == "docker-py containers.run")
    base_rate = baseline_rate
    bare_mib = next(v for name, v, _ in rows if name.startswith("memory of a bare python"))
    engine_version = client.version()["Version"]
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, Docker engine "
        f"{engine_version}; {runs} runs per row, medians"
    )
    print()
    print("| what | median | vs containers.run |")
    print("|---|---:|---:|")
    for name, value, unit in rows:
        if unit == "ms":
            ratio = f"{value / base:.2f}x"
        elif unit == "runs/s":
            ratio = f"{value / base_rate:.2f}x"
        elif name.startswith("memory of the per-kernel watchdog"):
            ratio = f"{value / bare_mib:.2f}x bare python"
        else:
            ratio = ""
        print(f"| {name} | {value:.1f} {unit} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
