"""Prometheus metrics, declared once. Labels take few values: reason codes, outcomes, phases."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

from admitd.core.decision import Decision

__all__ = ["Metrics", "serve_metrics"]

# Check latency is dominated by gRPC; buckets span 50 µs to 250 ms.
_LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
)


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.decisions = Counter(
            "admitd_decisions_total",
            "Check decisions by outcome and reason code.",
            ["outcome", "reason"],
            registry=registry,
        )
        self.security_events = Counter(
            "security_events_total",
            "Security-relevant events (denials, certificate problems, reloads).",
            ["event", "outcome"],
            registry=registry,
        )
        self.check_seconds = Histogram(
            "admitd_check_duration_seconds",
            "Time admitd spent deciding one Check.",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.revocation_reloads = Counter(
            "admitd_revocation_reloads_total",
            "Reloads of CRL and deny-list files.",
            ["outcome"],
            registry=registry,
        )

    def observe(self, decision: Decision, seconds: float) -> None:
        outcome = decision.audit_verdict
        self.decisions.labels(outcome, decision.reason.value).inc()
        self.check_seconds.labels(outcome).observe(seconds)
        if not decision.allowed:
            self.security_events.labels(decision.reason.value, "deny").inc()


def serve_metrics(address: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics on HOST:PORT in a daemon thread."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host.strip("[]"), registry=registry)
