"""The service's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    """Runs by status, their durations, the queue, the runs under way and the warm pool."""

    def __init__(self, pool_ready: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "codedock_runs", "Runs that ended, by status.", ["status"], registry=self.registry
        )
        self.refused = Counter(
            "codedock_refused_runs",
            "Runs refused before they started, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "codedock_run_duration_seconds",
            "Wall-clock seconds of a run, from its request to its end.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.queued = Gauge(
            "codedock_queued_runs", "Runs waiting for a slot.", registry=self.registry
        )
        self.active = Gauge("codedock_active_runs", "Runs under way.", registry=self.registry)
        self.pool = Gauge(
            "codedock_pool_ready_containers",
            "Warm containers ready to take a run.",
            registry=self.registry,
        )
        self.pool.set_function(pool_ready)
