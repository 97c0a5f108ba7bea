"""The Kubernetes engine on the emulated API server and test kubelet, against Docker.

    .venv/bin/python benchmarks/kube_bench.py [--runs N]

It measures, in one run:

- the API requests one cold run makes, and one warm run (a Pod the pool started
  ahead of time), counted by the API server (target: at most 3 for a warm run);
- the host's own time per run: this process's CPU seconds (every thread), and the
  wall time, on the Kubernetes engine against the Docker engine, cold and warm.

The test kubelet is **not a real kubelet**: it runs each Pod as a container on
the local Docker engine, with no scheduler, no image pulls and no node in between.
Its numbers measure our side only (the client, the watch, the websocket); a real
cluster adds its own start time (about 1 s for a Pod on a warm node). It reports;
it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from codedock_magic import DockerEngine, Limits, run
from codedock_magic.engines.kubernetes.engine import KubernetesEngine
from codedock_magic.local.pool import Pool

ROOT = Path(__file__).resolve().parents[1]
CODE = "print(1)"
LIMITS = Limits(timeout=10)


def _emulator() -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "integration" / "kubeemu.py")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    kubeconfig = process.stdout.readline().strip()
    server = json.loads(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    return process, kubeconfig, server


def _counted(server: str) -> dict[str, int]:
    return dict(requests.get(server + "/emulator/requests", timeout=5).json())


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def _timed(runs: int, once: Callable[[], Any]) -> tuple[float, float]:
    """Median wall ms and median host CPU ms of ``runs`` calls."""
    walls, cpus = [], []
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        result = once()
        assert result.ok, result.stderr
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    process, kubeconfig, server = _emulator()
    try:
        kube = KubernetesEngine(kubeconfig=kubeconfig)
        run(CODE, engine=kube, limits=LIMITS)  # the first run loads the client
        before = _counted(server)
        run(CODE, engine=kube, limits=LIMITS)
        time.sleep(1.0)
        cold = _diff(_counted(server), before)
        pool = Pool(kube, size=1).start()
        try:
            time.sleep(5.0)  # the pool's Pod is created, running and attached
            before = _counted(server)
            run(CODE, pool=pool, limits=LIMITS)
            warm = _diff(_counted(server), before)
            time.sleep(5.0)  # the refill's Pod is created, running and attached
            refilled = _diff(_counted(server), before)
        finally:
            pool.close()
        print("API requests (the test kubelet is not a real kubelet; these count our side)")
        print(f"  cold run: {sum(cold.values())}  {cold}")
        print(f"  warm run, until its result: {sum(warm.values())}  {warm}")
        print(f"  warm run, with the pool's refill: {sum(refilled.values())}  {refilled}")
        docker = DockerEngine()
        print(f"host time per run, median of {runs} (wall ms / this process's CPU ms)")
        for name, engine in (("docker", docker), ("kubernetes", kube)):
            wall, cpu = _timed(runs, lambda e=engine: run(CODE, engine=e, limits=LIMITS))
            print(f"  {name:<10} cold: {wall:7.1f} / {cpu:6.1f}")
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
