"""Grading's targets, measured side by side in one process and run, as ratios.

    .venv/bin/python benchmarks/grading_bench.py [--rounds N] [--class-size N] [--class-rounds N]

- a 10-case check against one cold run of the same code (target: at most 1.3x);
- what each further case costs when the code is trivial (target: at most 5 ms);
- a class of 100 submissions x 10 cases through ``grade`` (target: at most 12 s on
  2 cores), against one container per case for the same work.

Rounds alternate between the sides being compared, since the engine's state drifts
within a run; each figure is the median, with its range over the rounds. It
reports; it never fails on a number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from codedock_magic import Limits, check, grade, run

CODE = "print(int(input()) * 2)\n"
LIMITS = Limits(timeout=5)


def cases(count: int) -> list[dict[str, object]]:
    return [{"name": f"c{i}", "stdin": f"{i}\n", "expected": f"{2 * i}"} for i in range(count)]


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def spread(values: list[float], unit: str = "", scale: float = 1.0) -> str:
    """``median (min to max)`` of ``values``, times ``scale``."""
    low, mid, high = (scale * f(values) for f in (min, statistics.median, max))
    digits = 2 if unit == "x" else 1
    return f"{mid:.{digits}f}{unit} ({low:.{digits}f} to {high:.{digits}f}{unit})"


def check_against_a_run(rounds: int) -> tuple[list[float], list[float], list[float]]:
    ten = cases(10)
    runs, checks = [], []
    for _ in range(rounds):
        runs.append(timed(lambda: run(CODE, stdin="3\n", limits=LIMITS)))
        checks.append(timed(lambda: check(CODE, ten, limits=LIMITS)))
    return runs, checks, [c / r for c, r in zip(checks, runs, strict=True)]


def per_extra_case(rounds: int) -> list[float]:
    one, twenty_one = cases(1), cases(21)
    extra = []
    for _ in range(rounds):
        small = timed(lambda: check(CODE, one, limits=LIMITS))
        large = timed(lambda: check(CODE, twenty_one, limits=LIMITS))
        extra.append((large - small) / 20)
    return extra


def make_class(folder: Path, size: int) -> None:
    folder.mkdir()
    for i in range(size):
        # Mostly right, some wrong, a few crashing: what a class hands in.
        body = CODE if i % 5 else ("print(int(input()) + 2)\n" if i % 10 else "1/0\n")
        (folder / f"student{i:03}.py").write_text(body)


def one_container_per_case(folder: Path, count: int, jobs: int) -> float:
    ten = cases(10)
    paths = sorted(folder.glob("*.py"))[:count]

    def grade_one(path: Path) -> int:
        code = path.read_text()
        passed = 0
        for case in ten:
            result = run(code, stdin=str(case["stdin"]), limits=LIMITS)
            passed += result.ok and result.stdout.strip() == case["expected"]
        return passed

    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as workers:
        list(workers.map(grade_one, paths))
    return (time.perf_counter() - started) / count


def engine_floor(count: int, jobs: int) -> float:
    """Seconds the engine alone takes for ``count`` containers, ``jobs`` at a time.

    Each is what a submission cannot do without: create, start, wait and remove of
    a container of the same image that runs ``true``.
    """
    import docker
    from bench import bare_container

    client = docker.from_env(version="auto")
    started = time.perf_counter()
    with ThreadPoolExecutor(jobs) as workers:
        list(workers.map(lambda _: bare_container(client), range(count)))
    return time.perf_counter() - started


def batch(folder: Path, jobs: int, out: Path, count: int | None = None) -> float:
    if count is not None:
        subset = folder.parent / f"{folder.name}-{count}"
        if not subset.exists():
            subset.mkdir()
            for path in sorted(folder.glob("*.py"))[:count]:
                (subset / path.name).write_text(path.read_text())
        folder = subset
    started = time.perf_counter()
    report = grade(folder, cases(10), out, jobs=jobs, limits=LIMITS, fresh=True)
    took = time.perf_counter() - started
    assert not report.failed, report.failed
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--class-size", type=int, default=100)
    parser.add_argument("--class-rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    print(f"grading benchmark: {os.cpu_count()} CPUs, {args.rounds} rounds, jobs {args.jobs}")
    run(CODE, stdin="1\n", limits=LIMITS)  # the image in the page cache
    cold, ten, ratios = check_against_a_run(args.rounds)
    print(
        f"10-case check             {spread(ten, ' ms', 1000)}, one cold run "
        f"{spread(cold, ' ms', 1000)}: {spread(ratios, 'x')}  (target <= 1.3x)"
    )
    extra = per_extra_case(args.rounds)
    print(f"each further case          {spread(extra, ' ms', 1000)}  (target <= 5 ms)")
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root, "class")
        make_class(folder, args.class_size)
        wholes, floors = [], []
        for index in range(args.class_rounds):
            wholes.append(batch(folder, args.jobs, Path(root, f"all{index}.csv")))
            floors.append(engine_floor(args.class_size, args.jobs))
        print(
            f"{args.class_size} submissions x 10 cases  {spread(wholes, ' s')}  "
            f"({args.class_size / statistics.median(wholes):.1f} submissions/s; target <= 12 s)"
        )
        ratios = [whole / floor for whole, floor in zip(wholes, floors, strict=True)]
        print(
            f"the engine alone, {args.class_size} containers of `true`, {args.jobs} at a time  "
            f"{spread(floors, ' s')}; the class took {spread(ratios, 'x')} that"
        )
        # Side by side on a share of the class: one container per case is slow.
        share = max(4, args.class_size // 5)
        ours, theirs = [], []
        for index in range(2):
            ours.append(batch(folder, args.jobs, Path(root, f"share{index}.csv"), share) / share)
            theirs.append(one_container_per_case(folder, share, args.jobs))
        speedup = statistics.mean(theirs) / statistics.mean(ours)
        print(
            f"one container per case   {statistics.mean(theirs):7.2f} s/submission  grade "
            f"{statistics.mean(ours):.2f} s/submission  {speedup:.1f}x faster"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
