"""Prometheus metrics of the audit log, declared once per registry."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["AuditMetrics", "Outcome"]

# Label values of admitd_audit_appends_total{outcome}.
Outcome = str
REDIS: Outcome = "redis"  # chained into the Redis stream
SPOOLED: Outcome = "spooled"  # written to the local spool (Redis down or spool draining)
REPLAYED: Outcome = "replayed"  # moved from the spool into the stream
DROPPED: Outcome = "dropped"  # spool at its size bound or unwritable: the entry is lost


class AuditMetrics:
    """`admitd_audit_appends_total{outcome}`, spool size and fill ratio (alert above 0.8)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.appends = Counter(
            "admitd_audit_appends_total",
            "Audit entries by where they went",
            ["outcome"],
            registry=registry,
        )
        for outcome in (REDIS, SPOOLED, REPLAYED, DROPPED):
            self.appends.labels(outcome)
        self.spool_bytes = Gauge(
            "admitd_audit_spool_bytes", "Size of the local audit spool file", registry=registry
        )
        self.spool_full_ratio = Gauge(
            "admitd_audit_spool_full_ratio",
            "Audit spool size over spool_max_bytes; alert above 0.8",
            registry=registry,
        )
