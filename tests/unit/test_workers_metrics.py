"""Merging workers' metric files: sums survive a dead worker, its gauges do not; what a
worker's own /metrics keeps is only what is in no file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.registry import Collector

from admitd.ops_http import MULTIPROC_ENV, _ScrapeTimeOnly, multiprocess_dir
from admitd.workers_metrics import WorkerFiles, WorkerView, supervisor_exposition

DECISIONS = ("admitd_decisions", "admitd_decisions_total", "Check decisions.")
LATENCY = "admitd_check_duration_seconds"


def write(
    directory: Path, file: str, entries: list[tuple[str, str, dict[str, str], float]]
) -> None:
    """Entries as prometheus-client writes them: (metric, sample, labels, value)."""
    values = MmapedDict(str(directory / file))  # type: ignore[no-untyped-call]
    for metric, sample, labels, value in entries:
        key = mmap_key(metric, sample, list(labels), list(labels.values()), "help")
        values.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    values.close()  # type: ignore[no-untyped-call]


def worker_files(directory: Path, pid: int, denials: float, fast: float, slow: float) -> None:
    deny = {"outcome": "deny", "reason": "missing"}
    write(directory, f"counter_{pid}.db", [(DECISIONS[0], DECISIONS[1], deny, denials)])
    write(
        directory,
        f"histogram_{pid}.db",
        [
            (LATENCY, f"{LATENCY}_bucket", {"outcome": "deny", "le": "0.0001"}, fast),
            (LATENCY, f"{LATENCY}_bucket", {"outcome": "deny", "le": "+Inf"}, slow),
            (LATENCY, f"{LATENCY}_sum", {"outcome": "deny"}, 0.001 * (fast + slow)),
        ],
    )
    write(
        directory,
        f"gauge_all_{pid}.db",
        [("admitd_ready_check", "admitd_ready_check", {"check": "redis"}, 1.0)],
    )
    write(directory, f"gauge_livesum_{pid}.db", [("spool", "spool", {}, 10.0)])


def value(text: str, sample: str) -> float:
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, flags=re.MULTILINE)
    assert found is not None, text
    return float(found.group(1))


def test_sums_survive_a_dead_worker_and_its_gauges_go(tmp_path: Path) -> None:
    worker_files(tmp_path, 101, denials=2, fast=1, slow=1)
    worker_files(tmp_path, 202, denials=3, fast=2, slow=1)
    files = WorkerFiles(tmp_path)
    denied = 'admitd_decisions_total{outcome="deny",reason="missing"}'
    count = f'{LATENCY}_count{{outcome="deny"}}'
    fast = f'{LATENCY}_bucket{{le="0.0001",outcome="deny"}}'
    before = files.merged().decode()
    assert (value(before, denied), value(before, count), value(before, fast)) == (5, 5, 3)
    assert 'pid="101"' in before and files.checks_of(202) == 3

    files.forget(101)
    after = files.merged().decode()
    assert (value(after, denied), value(after, count), value(after, fast)) == (5, 5, 3)
    assert 'pid="101"' not in after and 'pid="202"' in after  # a dead worker's gauges go
    assert value(after, "spool") == 10.0  # the live worker's, alone
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_202.db",
        "counter_archive.db",
        "gauge_all_202.db",
        "gauge_livesum_202.db",
        "histogram_202.db",
        "histogram_archive.db",
    ]
    worker_files(tmp_path, 303, denials=1, fast=0, slow=1)  # the restarted worker
    files.forget(202)  # a second fold adds to the archive
    final = files.merged().decode()
    assert (value(final, denied), value(final, count), value(final, fast)) == (6, 6, 3)
    assert files.checks_of(202) == 0 and files.checks_of(303) == 1


def test_the_supervisor_adds_its_own_families(tmp_path: Path) -> None:
    worker_files(tmp_path, 101, denials=4, fast=1, slow=3)
    views = [WorkerView(0, 101, "ready", 0), WorkerView(1, None, "restarting", 2, last_exit=1)]
    text = supervisor_exposition(WorkerFiles(tmp_path), lambda: views).decode()
    assert value(text, "admitd_workers") == 2
    assert value(text, 'admitd_worker_up{worker="0"}') == 1
    assert value(text, 'admitd_worker_up{worker="1"}') == 0
    assert value(text, 'admitd_worker_restarts_total{worker="1"}') == 2
    assert value(text, 'admitd_worker_checks_total{worker="0"}') == 4
    assert value(text, 'admitd_worker_checks_total{worker="1"}') == 0


class _Expiry(Collector):
    def collect(self) -> list[Metric]:
        family = GaugeMetricFamily("admitd_ca_certificate_expiry_seconds", "x", labels=["kind"])
        family.add_metric(["root"], 100.0)
        return [family]


def test_a_worker_serves_only_what_is_in_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = CollectorRegistry()
    used = Counter("admitd_policy_reloads", "x", ["outcome"], registry=registry)
    used.labels("applied").inc()
    Counter("admitd_shadow_denials", "x", ["route"], registry=registry)  # no samples yet
    registry.register(_Expiry())
    # This process's file holds the counter (as multiprocess mode would have written it).
    pid = os.getpid()
    entry = ("admitd_policy_reloads", "admitd_policy_reloads_total", {"outcome": "applied"}, 1.0)
    write(tmp_path, f"counter_{pid}.db", [entry])
    text = generate_latest(_ScrapeTimeOnly(registry, tmp_path)).decode()  # type: ignore[arg-type]
    assert "admitd_ca_certificate_expiry_seconds" in text
    assert "admitd_policy_reloads" not in text and "admitd_shadow_denials" not in text
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    assert multiprocess_dir() == tmp_path
    monkeypatch.delenv(MULTIPROC_ENV)
    assert multiprocess_dir() is None
