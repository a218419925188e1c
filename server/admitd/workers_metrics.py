"""Metrics of a supervised admitd: every worker's metric files merged, and the supervisor's own.

Workers run prometheus-client's multiprocess mode: each value lives in a memory-mapped
file per process in the supervisor's private directory. Counters and histograms are
summed over the files, so a total never drops when a worker restarts: the dead worker's
files are folded into one archive per kind (so the directory does not grow with every
restart). Its gauges are dropped: a dead process says nothing about now.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

__all__ = ["WorkerFiles", "WorkerView", "supervisor_exposition"]

_SUMMED_KINDS = ("counter", "histogram", "summary")
_DECISIONS = "admitd_decisions"  # admitd.metrics: one sample per Check decision
_DECISIONS_TOTAL = f"{_DECISIONS}_total"


@dataclass(frozen=True, slots=True)
class WorkerView:
    """What the supervisor knows of one worker, for its metrics and health answers."""

    index: int
    pid: int | None  # None while it is not running
    state: str  # starting | ready | restarting | stopping | stopped
    restarts: int
    last_exit: int | None = None  # exit code (negative: the signal) of its last process


class WorkerFiles:
    """The metric files of every worker, in the supervisor's private directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(self._merged, path=str(directory))  # type: ignore[no-untyped-call]

    def merged(self) -> bytes:
        """Every worker's counters, histograms and gauges, in the text format."""
        return generate_latest(self._merged)

    def checks_of(self, pid: int) -> float:
        """Check decisions of the process `pid` so far."""
        path = self.directory / f"counter_{pid}.db"
        if not path.exists():
            return 0.0
        for metric in _merge([str(path)], accumulate=True):
            if metric.name == _DECISIONS:
                return float(sum(s.value for s in metric.samples if s.name == _DECISIONS_TOTAL))
        return 0.0

    def forget(self, pid: int) -> None:
        """After process `pid` exited: fold its sums into the archive, drop its gauges."""
        mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]
        for gauge in self.directory.glob(f"gauge_*_{pid}.db"):
            gauge.unlink(missing_ok=True)
        for kind in _SUMMED_KINDS:
            dead = self.directory / f"{kind}_{pid}.db"
            if dead.exists():
                self._fold(kind, dead)

    def _fold(self, kind: str, dead: Path) -> None:
        # Synchronous, in the loop that answers scrapes: no scrape sees a value twice.
        archive = self.directory / f"{kind}_archive.db"
        scratch = self.directory / f"{kind}_archive.partial"  # not *.db: scrapes skip it
        sources = [str(path) for path in (archive, dead) if path.exists()]
        merged = _merge(sources, accumulate=False)  # buckets as stored, not cumulative
        scratch.unlink(missing_ok=True)
        out = MmapedDict(str(scratch))  # type: ignore[no-untyped-call]
        try:
            for metric in merged:
                for sample in metric.samples:
                    names, values = list(sample.labels), list(sample.labels.values())
                    key = mmap_key(metric.name, sample.name, names, values, metric.documentation)
                    out.write_value(key, sample.value, 0.0)  # type: ignore[no-untyped-call]
        finally:
            out.close()  # type: ignore[no-untyped-call]
        os.replace(scratch, archive)
        dead.unlink()


def _merge(files: Sequence[str], *, accumulate: bool) -> list[Metric]:
    """prometheus-client's own merge of metric files (the library leaves it untyped)."""
    merged: Iterable[Metric] = MultiProcessCollector.merge(files, accumulate)  # type: ignore[no-untyped-call]
    return list(merged)


def supervisor_exposition(files: WorkerFiles, workers: Callable[[], Sequence[WorkerView]]) -> bytes:
    """The merged files and the supervisor's own families (text format)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SupervisorCollector(files, workers))
    return files.merged() + generate_latest(registry)


class _SupervisorCollector(Collector):
    def __init__(self, files: WorkerFiles, workers: Callable[[], Sequence[WorkerView]]) -> None:
        self._files = files
        self._workers = workers

    def collect(self) -> Iterable[Metric]:
        views = self._workers()
        configured = GaugeMetricFamily("admitd_workers", "Worker processes configured (workers)")
        configured.add_metric([], len(views))
        up = GaugeMetricFamily(
            "admitd_worker_up",
            "1 while the worker serves, 0 while it starts or restarts",
            labels=["worker"],
        )
        restarts = CounterMetricFamily(
            "admitd_worker_restarts",
            "Workers restarted by the supervisor after they exited",
            labels=["worker"],
        )
        checks = CounterMetricFamily(
            "admitd_worker_checks",
            "Check decisions of the worker's current process (from 0 after a restart)",
            labels=["worker"],
        )
        for view in views:
            label = [str(view.index)]
            up.add_metric(label, 1 if view.state == "ready" else 0)
            restarts.add_metric(label, view.restarts)
            checks.add_metric(label, self._files.checks_of(view.pid) if view.pid else 0.0)
        return [configured, up, restarts, checks]
