"""The sandbox service against the local engine, side by side in one run.

    .venv/bin/python benchmarks/service_bench.py [--runs N]

Three comparisons, each measured in this same run so that it holds on a noisy
machine:

- a warm ``%%sandbox`` cell through ``codedock serve`` against the same cell on
  the kernel's own warm pool (target: at most +10 ms median);
- 20 simulated users, each running cells back to back, through the service
  against 20 threads on one local pool of the same size (target: at least 0.9x);
- a light user's wait while a heavy user floods the service, against its wait
  on the idle service (target: p95 at most 2x).

It reports; it never fails on a number.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from codedock_magic import ServiceBackend, run
from codedock_magic.local.pool import Pool

CODE = "print(1)"
# A heavy user: 8 threads sending cells back to back until terminated.
FLOOD = """
import sys, threading
from codedock_magic import ServiceBackend, run
backend = ServiceBackend(sys.argv[1], "tok-heavy")
def flood():
    while True:
        run("print(1)", backend=backend)
for _ in range(8):
    threading.Thread(target=flood, daemon=True).start()
threading.Event().wait()
"""
USERS = 20
POOL = 4


def start_service(folder: Path, **settings: Any) -> tuple[subprocess.Popen[bytes], str]:
    tokens = {f"tok-{i}": f"user{i}" for i in range(USERS)} | {"tok-heavy": "heavy"}
    # Its gradebook in the folder too, not wherever the benchmark was started.
    merged = {
        "port": 0,
        "api_tokens": tokens,
        "metrics_token": "tok-metrics",
        "db_url": f"sqlite:///{folder / 'gradebook.sqlite'}",
        **settings,
    }
    config = folder / "codedock_service_config.py"
    config.write_text("".join(f"c.SandboxService.{k} = {v!r}\n" for k, v in merged.items()))
    log = folder / "service.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "codedock_magic", "serve", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.findall(r"on (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            return process, found[-1]
        time.sleep(0.05)
    raise SystemExit("codedock serve did not start: " + log.read_text())


def pool_ready(url: str) -> int:
    text = requests.get(
        url + "/metrics", headers={"Authorization": "Bearer tok-metrics"}, timeout=5
    ).text
    match = re.search(r"^codedock_pool_ready_containers (\S+)", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def wait_pool(url: str, size: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while pool_ready(url) < size and time.monotonic() < deadline:
        time.sleep(0.02)


def median_ms(action: Callable[[], object], runs: int, before: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        before()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def magic_cell(service_url: str = "") -> tuple[Callable[[], None], Any]:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    magics = shell.magics_manager.registry.get("SandboxMagics")
    if magics is None:
        shell.config.SandboxMagics.pool_size = 1
        shell.run_line_magic("load_ext", "codedock_magic")
        magics = shell.magics_manager.registry["SandboxMagics"]
    magics.service_token = "tok-0"
    magics.service_url = service_url
    magics.pool_size = 0 if service_url else 1
    if not service_url:
        magics.start_pool()

    def cell() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            shell.run_cell_magic("sandbox", "--no-widgets", CODE)

    return cell, magics


def users_back_to_back(action: Callable[[int], object], users: int, each: int) -> float:
    """Runs per second with ``users`` threads, each doing ``each`` runs in a row."""
    start = time.perf_counter()
    threads = [
        threading.Thread(target=lambda i=i: [action(i) for _ in range(each)]) for i in range(users)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return users * each / (time.perf_counter() - start)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per timing row")
    parser.add_argument("--each", type=int, default=5, help="cells per simulated user")
    parser.add_argument("--rounds", type=int, default=4, help="throughput rounds per side")
    args = parser.parse_args()
    rows: list[tuple[str, str, str]] = []

    with tempfile.TemporaryDirectory() as root:
        process, url = start_service(
            Path(root),
            pool_size=POOL,
            max_concurrent=USERS,
            max_concurrent_per_user=2,
            max_queued_per_user=64,
        )
        try:
            local_cell, magics = magic_cell()
            local = median_ms(local_cell, args.runs, before=lambda: magics.pool.wait_ready())
            remote_cell, _ = magic_cell(url)
            remote = median_ms(remote_cell, args.runs, before=lambda: wait_pool(url, POOL))
            magics.pool.close()
            rows.append(("warm %%sandbox, local pool", f"{local:.1f} ms", ""))
            rows.append(
                (
                    "warm %%sandbox, through the service",
                    f"{remote:.1f} ms",
                    f"{remote - local:+.1f} ms",
                )
            )

            backends = [ServiceBackend(url, f"tok-{i}") for i in range(USERS)]
            local_rates, remote_rates = [], []
            # In turns, the service first every other round, so that neither side
            # gets the engine in a better state (fewer removals pending) by its order.
            for round_ in range(args.rounds):
                for side in ("remote", "local") if round_ % 2 == 0 else ("local", "remote"):
                    if side == "local":
                        shared = Pool(size=POOL).start()
                        shared.wait_ready()
                        local_rates.append(
                            users_back_to_back(
                                lambda i, pool=shared: run(CODE, pool=pool), USERS, args.each
                            )
                        )
                        shared.close()
                    else:
                        wait_pool(url, POOL)
                        remote_rates.append(
                            users_back_to_back(
                                lambda i: run(CODE, backend=backends[i]), USERS, args.each
                            )
                        )
                    time.sleep(2)  # let the engine finish removing the round's containers
            print(f"  rates, local {local_rates}, service {remote_rates}", file=sys.stderr)
            local_rate = statistics.mean(local_rates)
            remote_rate = statistics.mean(remote_rates)
            rows.append(
                (
                    f"{USERS} users back to back, local pool of {POOL}",
                    f"{local_rate:.1f} runs/s",
                    "",
                )
            )
            rows.append(
                (
                    f"{USERS} users back to back, through the service (pool {POOL})",
                    f"{remote_rate:.1f} runs/s",
                    f"{remote_rate / local_rate:.2f}x",
                )
            )

            light = ServiceBackend(url, "tok-1")

            def waits(count: int) -> tuple[list[float], list[float]]:
                times, starts = [], []
                for _ in range(count):
                    start = time.perf_counter()
                    began: list[float] = []

                    def on_state(state: str, began: list[float] = began) -> None:
                        if state == "running":
                            began.append(time.perf_counter())

                    run(CODE, backend=light, on_state=on_state)
                    times.append(time.perf_counter() - start)
                    starts.append(began[0] - start)
                    # A person reads the output before the next cell.
                    time.sleep(0.3)
                return times, starts

            wait_pool(url, POOL)
            alone, alone_start = waits(60)
            # The heavy user is another kernel: another process, as in a hub.
            flood = subprocess.Popen([sys.executable, "-c", FLOOD, url])
            time.sleep(2)
            loaded, loaded_start = waits(60)
            flood.terminate()
            flood.wait(30)
            for what, idle_times, busy_times in (
                ("wait until its run starts", alone_start, loaded_start),
                ("cell, end to end", alone, loaded),
            ):
                rows.append(
                    (
                        f"light user's p95 {what}, idle service",
                        f"{p95(idle_times) * 1000:.1f} ms",
                        "",
                    )
                )
                rows.append(
                    (
                        f"light user's p95 {what}, while a heavy user floods (8 at once)",
                        f"{p95(busy_times) * 1000:.1f} ms",
                        f"{p95(busy_times) / p95(idle_times):.2f}x",
                    )
                )
        finally:
            process.terminate()
            process.wait(30)

    print()
    print("| what | measured | against the row above |")
    print("|---|---:|---:|")
    for name, value, ratio in rows:
        print(f"| {name} | {value} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
