"""Side-by-side timings of a trivial sandboxed run, as ratios to docker-py's containers.run.

    .venv/bin/python benchmarks/bench.py [--runs N] [--rounds N] [--kernels N]

Every row is measured in the same process and run, so the ratios hold on a noisy
machine even when the milliseconds do not: the timing rows in ``--rounds`` rounds,
each against its own containers.run, reported as the median and range of those
ratios beside the target. It reports; it never fails on a number.
The throughput rows set the pool against the engine's own bound: the create,
start, wait and remove of a minimal container (the same image, ``true``), 8 at a
time; ``--throughput`` measures those rows alone. The last rows are what a kernel
holds while idle, from real kernels: after
``%load_ext`` and one cell, its resident growth, its watchdog and its pooled
containers, in local mode and with a sandbox service (``codedock serve``).
"""

from __future__ import annotations

import argparse
import compileall
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

import codedock_magic
from codedock_magic import DEFAULT_IMAGE, Limits, run
from codedock_magic.engines.watchdog import watchdog_command
from codedock_magic.local.pool import Pool

CODE = "print(1)"
ENGINE_BOUND = "throughput, engine bound: create, start, remove of `true`, 8 threads"
POOL_ROW = "throughput, runner with a pool of 2 to 16, 100 runs / 8 threads"
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


def bare_container(client: docker.DockerClient) -> None:
    """The least a fresh container costs the engine: create, start, wait, remove."""
    container = client.containers.create(DEFAULT_IMAGE, ["true"], network_mode="none")
    try:
        container.start()
        container.wait()
    finally:
        container.remove(force=True)


def throughput_rows(client: docker.DockerClient, row: Callable[[str, float, str], None]) -> None:
    """The engine's bound, and the pool's throughput against it and ``containers.run``."""
    for _ in range(8):  # the image's layers and the engine's caches, warm
        bare_container(client)
    row(ENGINE_BOUND, throughput(lambda: bare_container(client)), "runs/s")
    # A pool that follows the load, as the magic and the service keep one: it
    # starts at 2 and grows with the runs that find it empty.
    busy = Pool(size=2, max_size=16).start()
    busy.wait_ready()
    rate = throughput(lambda: run(CODE, pool=busy))
    row(POOL_ROW, rate, "runs/s")
    print(f"  pool: {busy.hits} warm, {busy.misses} cold, grew to {busy.target}", file=sys.stderr)
    busy.close()


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


# Resident memory of the kernel itself, read where it lives, after a collection.
KERNEL_RSS = """
import gc

def _rss_kib():
    gc.collect()
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

_before = _rss_kib()
"""
# After the cell: the kernel's growth, and the ids of its pooled containers once
# they wait (none in service mode, where the kernel keeps no pool).
KERNEL_AFTER = """
import time
_magics = get_ipython().magics_manager.registry["SandboxMagics"]
_pool = _magics._pool
if _pool is not None:
    _pool.wait_ready(timeout=60)
    time.sleep(1)
print(_rss_kib() - _before, *([s.id for s in _pool._ready] if _pool is not None else []))
"""


def kernel_execute(client: Any, code: str) -> str:
    """Run ``code`` in the kernel; what it printed (a failure stops the benchmark)."""
    shown: list[str] = []

    def hook(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            shown.append(message["content"]["text"])

    reply = client.execute_interactive(code, timeout=120, output_hook=hook)
    if reply["content"]["status"] != "ok":
        raise SystemExit(f"the kernel failed on {code[:40]!r}: {reply['content']}")
    return "".join(shown)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def watchdogs_of(pid: int) -> list[int]:
    """The watchdog processes ``pid`` started (its children running the watchdog's source)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                args = cmdline.read().split(b"\0")
            if parent == pid and any(b"The watchdog:" in arg for arg in args):
                found.append(int(entry))
    return found


def container_mib(client: docker.DockerClient, container: str) -> float:
    """The engine's figure for a container's memory, page cache excluded."""
    memory = client.api.stats(container, stream=False)["memory_stats"]
    return float(memory.get("usage", 0) - memory.get("stats", {}).get("cache", 0)) / 1024**2


def kernel_idle_cost(
    client: docker.DockerClient, service_url: str = ""
) -> tuple[float, float, list[float]]:
    """What one kernel holds after ``%load_ext`` and one cell, with the pool refilled.

    Its resident growth from before the extension, its watchdog's resident memory
    (0 when it has none) and each of its pooled containers', all in MiB.
    """
    from jupyter_client.manager import KernelManager

    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEDOCK_SERVICE")}
    if service_url:
        env |= {"CODEDOCK_SERVICE_URL": service_url, "CODEDOCK_SERVICE_TOKEN": "tok-0"}
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    kernel = manager.client()
    kernel.start_channels()
    try:
        kernel.wait_for_ready(timeout=60)
        kernel_execute(kernel, KERNEL_RSS)
        kernel_execute(kernel, "%load_ext codedock_magic")
        kernel_execute(kernel, "%%sandbox\nprint(1)")
        growth, *pooled = kernel_execute(kernel, KERNEL_AFTER).split()
        pid = int(manager.provisioner.process.pid)  # type: ignore[union-attr]
        watchdog = sum(rss_mib(found) for found in watchdogs_of(pid))
        containers = [container_mib(client, container) for container in pooled]
        return int(growth) / 1024, watchdog, containers
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)


def idle_costs(client: docker.DockerClient, kernels: int) -> list[tuple[str, list[float]]]:
    """Each part of a kernel's idle cost, over ``kernels`` kernels of each mode."""
    import tempfile
    from pathlib import Path

    from service_bench import start_service

    # Bytecode, as pip writes it when it installs the wheel: a kernel compiling the
    # sources would spend memory a user's kernel never does.
    compileall.compile_dir(Path(codedock_magic.__file__).parent, quiet=1)
    local = [kernel_idle_cost(client) for _ in range(kernels)]
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_service(Path(folder), pool_size=1)
        try:
            remote = [kernel_idle_cost(client, url)[0] for _ in range(kernels)]
        finally:
            process.terminate()
            process.wait(timeout=30)
    size = min(len(containers) for _, _, containers in local)
    parts = [
        ("a kernel's growth after one cell, service mode (target: at most 5 MiB)", remote),
        ("a kernel's growth after one cell, local mode", [k for k, _, _ in local]),
        ("its watchdog, local mode", [w for _, w, _ in local]),
    ]
    parts += [
        (f"its pooled container {i + 1} of {size}, local mode", [c[i] for _, _, c in local])
        for i in range(size)
    ]
    totals = [k + w + sum(c[:size]) for k, w, c in local]
    parts.append(("a kernel's idle cost in all, local mode (target: at most 33.5 MiB)", totals))
    return parts


def magic_shell(pool_size: int) -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.config.SandboxMagics.pool_size = pool_size
    shell.run_line_magic("load_ext", "codedock_magic")
    return shell


# Issue targets, by row: each a ratio to containers.run in the same round, or
# a figure of the same run.
TARGETS = {
    "runner, warm": "",
    "%%sandbox end to end, warm": "at most 0.04x",
    "%%sandbox, 20 cells back to back (per cell)": "at most 0.3x",
    "%%sandbox end to end, cold": "at most 0.5x",
}


def timing_round(client: docker.DockerClient, runs: int, shell: Any) -> dict[str, float]:
    """One round of the timing rows, each a median over ``runs``, in milliseconds."""
    out: dict[str, float] = {}
    out["host python -c pass (process start floor)"] = median_ms(
        lambda: subprocess.run([sys.executable, "-c", "pass"]), runs
    )
    out["docker-py containers.run"] = median_ms(lambda: docker_run(client), runs)
    keeper = client.containers.run(
        DEFAULT_IMAGE, ["sleep", "600"], detach=True, remove=True, network_mode="none"
    )
    try:
        out["exec_run in a running container"] = median_ms(
            lambda: keeper.exec_run(["python3", "-c", CODE]), runs
        )
    finally:
        keeper.kill()
    out["runner, cold"] = median_ms(lambda: run(CODE), runs)
    warm = Pool(size=1).start()
    out["runner, warm"] = median_ms(
        lambda: run(CODE, pool=warm), runs, before=lambda: warm.wait_ready()
    )
    warm.close()

    shell.run_line_magic("config", "SandboxMagics.pool_size = 1")
    magics = shell.magics_manager.registry["SandboxMagics"]

    def cell() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            shell.run_cell_magic("sandbox", "--no-widgets", CODE)

    # As a user runs cells, seconds apart: the pool is full again (as grown by the
    # last round's burst, if it grew) when each one comes.
    out["%%sandbox end to end, warm"] = median_ms(
        cell, runs, before=lambda: magics.pool.wait_ready(magics.pool.target)
    )
    back_to_back = []
    magics.pool.wait_ready()
    for _ in range(20):
        start = time.perf_counter()
        cell()
        back_to_back.append(time.perf_counter() - start)
    out["%%sandbox, 20 cells back to back (per cell)"] = statistics.median(back_to_back) * 1000
    shell.run_line_magic("config", "SandboxMagics.pool_size = 0")
    out["%%sandbox end to end, cold"] = median_ms(cell, runs)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per row (median taken)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the timing rows, each with its own containers.run (median and range)",
    )
    parser.add_argument(
        "--kernels", type=int, default=3, help="kernels per mode for the idle cost (median taken)"
    )
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="only containers.run, the engine's bound and the pool's throughput",
    )
    args = parser.parse_args()
    runs = args.runs
    client = docker.from_env(version="auto")
    rows: list[tuple[str, float, str]] = []

    def row(name: str, ms: float, unit: str = "ms") -> None:
        rows.append((name, ms, unit))
        print(f"  measured {name}: {ms:.1f} {unit}", file=sys.stderr)

    if args.throughput:
        baseline_rate = throughput(lambda: docker_run(client))
        row("throughput, containers.run, 100 runs / 8 threads", baseline_rate, "runs/s")
        throughput_rows(client, row)
        print_table(rows, client, runs, baseline_rate)
        return 0
    shell = magic_shell(pool_size=1)
    rounds = []
    for index in range(args.rounds):
        rounds.append(timing_round(client, runs, shell))
        print(f"  round {index + 1} of {args.rounds} done", file=sys.stderr)
    spans: dict[str, str] = {}
    for name in rounds[0]:
        values = [each[name] for each in rounds]
        row(name, statistics.median(values))
        ratios = [each[name] / each["docker-py containers.run"] for each in rounds]
        spans[name] = (
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f} to {max(ratios):.2f}x"
            f" over {len(ratios)} rounds)"
        )
        if TARGETS.get(name):
            spans[name] += f"; target {TARGETS[name]}"

    baseline_rate = throughput(lambda: docker_run(client))
    row("throughput, containers.run, 100 runs / 8 threads", baseline_rate, "runs/s")
    throughput_rows(client, row)

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

    for name, values in idle_costs(client, args.kernels):
        row(name, statistics.median(values), "MiB")
        spans[name] = f"{len(values)} kernels: {min(values):.1f} to {max(values):.1f} MiB"

    print_table(rows, client, runs, baseline_rate, spans)
    return 0


def print_table(
    rows: list[tuple[str, float, str]],
    client: docker.DockerClient,
    runs: int,
    base_rate: float,
    spans: dict[str, str] | None = None,
) -> None:
    """The table the README shows, ratios to ``containers.run`` measured in this run."""
    spans = spans or {}
    base = next((ms for name, ms, _ in rows if name == "docker-py containers.run"), 0.0)
    bare_mib = next((v for name, v, _ in rows if name.startswith("memory of a bare python")), 0.0)
    bound = next((v for name, v, _ in rows if name == ENGINE_BOUND), 0.0)
    engine_version = client.version()["Version"]
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, Docker engine "
        f"{engine_version}; {runs} runs per row, medians (timing rows: the median of"
        " the rounds' medians, and each round's ratio to its own containers.run)"
    )
    print()
    print("| what | median | vs containers.run (median, range) |")
    print("|---|---:|---:|")
    for name, value, unit in rows:
        if name in spans:
            ratio = spans[name]
        elif unit == "ms":
            ratio = f"{value / base:.2f}x"
        elif unit == "runs/s" and name == POOL_ROW and bound:
            ratio = f"{value / base_rate:.2f}x; {value / bound:.0%} of the engine's bound"
        elif unit == "runs/s":
            ratio = f"{value / base_rate:.2f}x"
        elif name.startswith("memory of the per-kernel watchdog"):
            ratio = f"{value / bare_mib:.2f}x bare python"
        else:
            ratio = ""
        print(f"| {name} | {value:.1f} {unit} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
