"""Prometheus metrics of the audit log, declared once per registry."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

__all__ = ["AuditMetrics", "Outcome", "QuarantineReason"]

# Label values of admitd_audit_appends_total{outcome}.
Outcome = str
REDIS: Outcome = "redis"  # chained into the Redis stream
SPOOLED: Outcome = "spooled"  # written to the local spool (Redis down or spool draining)
REPLAYED: Outcome = "replayed"  # moved from the spool into the stream
DROPPED: Outcome = "dropped"  # spool at its size bound or unwritable: the entry is lost

# Label values of admitd_audit_spool_quarantined_total{reason}: why a spool record was
# kept out of the chain (copied to <spool>.corrupt).
QuarantineReason = str
UNREADABLE: QuarantineReason = "unreadable"  # not a spool record (cut short, garbled)
TORN: QuarantineReason = "torn"  # the last line has no newline: a crash mid-write
UNAUTHENTIC: QuarantineReason = "unauthentic"  # envelope fails to open, or opens to another digest


class AuditMetrics:
    """`admitd_audit_appends_total{outcome}`, spool size and fill ratio (alert above 0.8).

    Appends count decisions and events, not entries: a coalesced entry standing for
    39 denials adds 39 (so the counter still counts what was audited, and a loss of
    that entry counts 39 as dropped). `admitd_audit_coalesced_total` counts the
    decisions that went into a follow-up entry instead of an entry of their own.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.appends = Counter(
            "admitd_audit_appends_total",
            "Audited decisions and events by where their entry went",
            ["outcome"],
            registry=registry,
        )
        for outcome in (REDIS, SPOOLED, REPLAYED, DROPPED):
            self.appends.labels(outcome)
        self.quarantined = Counter(
            "admitd_audit_spool_quarantined_total",
            "Spool records kept out of the chain (copied to <spool>.corrupt) by reason",
            ["reason"],
            registry=registry,
        )
        for reason in (UNREADABLE, TORN, UNAUTHENTIC):
            self.quarantined.labels(reason)
        self.coalesced = Counter(
            "admitd_audit_coalesced_total",
            "Identical plain denials counted into a follow-up entry instead of their own",
            registry=registry,
        )
        # With workers (prometheus multiprocess mode) each has its own spool: the bytes
        # add up, and the fullest one is what the alert is about.
        self.spool_bytes = Gauge(
            "admitd_audit_spool_bytes",
            "Size of the local audit spool file",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.spool_full_ratio = Gauge(
            "admitd_audit_spool_full_ratio",
            "Audit spool size over spool_max_bytes; alert above 0.8",
            registry=registry,
            multiprocess_mode="livemax",
        )
