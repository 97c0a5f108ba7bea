"""What a run costs under each runtime: gVisor (runsc) as a ratio to runc, in the same run.

    .venv/bin/python benchmarks/runtime_bench.py [--runs N]

Each row runs the same program under both runtimes, alternating, so the ratio holds
on a noisy machine even when the milliseconds do not. It reports; it never fails on
a number. Without a runsc runtime registered with dockerd it says so and stops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import docker

from codedock_magic import DockerEngine, Limits, RunStatus, run
from codedock_magic.local.pool import Pool

LIMITS = Limits(timeout=60)
PROGRAMS = {
    "print(1), cold": "print(1)",
    "print(1), warm": "print(1)",
    "CPU: sum(range(10**7)), warm": "print(sum(range(10**7)))",
    "system calls: 2000 small files, warm": (
        "import os\n"
        "for i in range(2000):\n"
        "    with open(f'/sandbox/f{i}', 'w') as f: f.write('x')\n"
        "print(len(os.listdir('/sandbox')))\n"
    ),
    "processes: 20 forks, warm": (
        "import os\n"
        "for _ in range(20):\n"
        "    pid = os.fork()\n"
        "    if pid == 0: os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
        "print('forked')\n"
    ),
}


def timed(code: str, engine: DockerEngine, pool: Pool | None) -> float:
    if pool is not None:
        pool.wait_ready()
    start = time.perf_counter()
    result = run(code, limits=LIMITS, engine=engine, pool=pool)
    took = time.perf_counter() - start
    if result.status is not RunStatus.OK:
        raise SystemExit(f"a benchmark run failed: {result.status} {result.stderr[-300:]}")
    return took * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs per row and runtime")
    args = parser.parse_args()
    runtimes = docker.from_env(version="auto").info().get("Runtimes", {})
    if "runsc" not in runtimes:
        print("no runsc runtime registered with dockerd: scripts/engine.sh registers it as root")
        return 0
    engines = {name: DockerEngine(runtime=name) for name in ("runc", "runsc")}
    pools = {name: Pool(engine, size=1).start() for name, engine in engines.items()}
    rows = []
    try:
        for what, code in PROGRAMS.items():
            times: dict[str, list[float]] = {name: [] for name in engines}
            for _ in range(args.runs):
                for name, engine in engines.items():
                    pool = None if what.endswith("cold") else pools[name]
                    times[name].append(timed(code, engine, pool))
            runc, runsc = (statistics.median(times[name]) for name in ("runc", "runsc"))
            rows.append((what, runc, runsc))
            print(f"  measured {what}: {runc:.0f} / {runsc:.0f} ms", file=sys.stderr)
    finally:
        for pool in pools.values():
            pool.close()
    print()
    print(f"{args.runs} runs per row and runtime, medians; runsc with the ptrace platform")
    print()
    print("| run | runc | runsc (gVisor) | runsc / runc |")
    print("|---|---:|---:|---:|")
    for what, runc, runsc in rows:
        print(f"| {what} | {runc:.0f} ms | {runsc:.0f} ms | {runsc / runc:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
