"""Which cases share a sandbox, and the one run result their sandboxes make together.

The supervisor resets a sandbox between cases (processes, files, IPC), but some
of what a case can change it cannot reset: the container's cgroup counters
(failed forks, CPU time, memory high-water marks, fail counts), the next pid and
inode numbers. A hidden case could write its input into one of them and the next
case read it back and print it. So each hidden case runs in a sandbox of its own,
and the visible cases after it start in a fresh one: a visible case never shares
a sandbox with a hidden case that ran before it, and the usage figures a student
sees are never a hidden case's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..core.result import RunResult, RunStatus

__all__ = ["merge_runs", "sandbox_groups"]


def sandbox_groups(hidden: Sequence[bool]) -> list[range]:
    """The cases (by index) that run together in one sandbox, in order.

    A run of visible cases shares one; each hidden case has one of its own.
    """
    groups: list[range] = []
    start = 0
    for index, secret in enumerate(hidden):
        if secret or (index > start and hidden[index - 1]):
            if index > start:
                groups.append(range(start, index))
            start = index
    if start < len(hidden):
        groups.append(range(start, len(hidden)))
    return groups


def merge_runs(parts: Sequence[tuple[RunResult, bool]]) -> RunResult:
    """One result for the sandboxes of one check, each given with whether it is shown.

    The cases come in order. The status is the first that is not ``ok`` (an
    interruption wins). Durations add up. Usage figures (CPU seconds added up,
    the highest memory peak) and the supervisor's complaints come only from the
    shown parts: a hidden case's must not reach the student.
    """
    first, _ = parts[0]
    statuses = [result.status for result, _ in parts]
    failing = next((result for result, _ in parts if result.status is not RunStatus.OK), None)
    if RunStatus.INTERRUPTED in statuses:
        failing = next(result for result, _ in parts if result.status is RunStatus.INTERRUPTED)
    shown = [result for result, show in parts if show]
    cpu = [r.cpu_seconds for r in shown if r.cpu_seconds is not None]
    peaks = [r.peak_memory for r in shown if r.peak_memory is not None]
    return replace(
        first,
        status=failing.status if failing is not None else RunStatus.OK,
        exit_code=failing.exit_code if failing is not None else first.exit_code,
        signal=failing.signal if failing is not None else first.signal,
        stderr="".join(r.stderr for r in shown),
        duration=sum(result.duration for result, _ in parts),
        cases=tuple(case for result, _ in parts for case in result.cases),
        cpu_seconds=sum(cpu) if cpu else None,
        peak_memory=max(peaks) if peaks else None,
    )
