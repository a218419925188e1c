"""`device_risk_events_total{level,signal}` and the risk entries of `security_events_total`.

Labels stay few: 4 levels x (7 signals + "none"). Children are resolved once per
(level, signal) and kept, because resolving labels costs more than the increment.
"""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from admitd.kms.audit import AuditEvents
from admitd.risk.model import RiskAssessment, RiskLevel, Signal

__all__ = ["MeteredAudit", "RiskMetrics", "security_events_counter"]

log = logging.getLogger(__name__)

NO_SIGNAL = "none"


def security_events_counter(registry: CollectorRegistry = REGISTRY) -> Counter:
    """Only for a registry without admitd.metrics.Metrics (which declares the same counter)."""
    return Counter(
        "security_events_total",
        "Security-relevant events (denials, certificate problems, reloads).",
        ["event", "outcome"],
        registry=registry,
    )


class RiskMetrics:
    """Pass the existing `Metrics.security_events` counter as `security_events`."""

    def __init__(
        self, registry: CollectorRegistry = REGISTRY, *, security_events: Counter | None = None
    ) -> None:
        self.risk_events = Counter(
            "device_risk_events",
            "Risk assessments: one per raised signal (or signal=none), by level.",
            ["level", "signal"],
            registry=registry,
        )
        self._security = security_events
        self._children: dict[tuple[RiskLevel, str], Counter] = {}

    def observe(self, assessment: RiskAssessment) -> None:
        """Count one assessment. High and critical levels and baseline deviations are
        also security events; a deviation is logged (without user details)."""
        for signal in assessment.signals or (NO_SIGNAL,):
            self._child(assessment.level, signal).inc()
        if self._security is None:
            return
        if assessment.level.at_least(RiskLevel.HIGH):
            self._security.labels(f"risk_{assessment.level.value}", "raised").inc()
        if Signal.BASELINE_DEVIATION in assessment.signals:
            self._security.labels("baseline_deviation", "raised").inc()
            log.warning(
                "device deviates from its organisation's baseline: deviation=%.2f level=%s",
                assessment.baseline_deviation,
                assessment.level.value,
            )

    def security_event(self, event: str, outcome: str) -> None:
        if self._security is not None:
            self._security.labels(event, outcome).inc()

    def _child(self, level: RiskLevel, signal: str) -> Counter:
        child = self._children.get((level, signal))
        if child is None:
            child = self._children[(level, signal)] = self.risk_events.labels(level.value, signal)
        return child


class MeteredAudit:
    """Records every override step in `inner` and counts it as a security event
    (`risk.override.requested` -> event="risk_override_requested")."""

    def __init__(self, inner: AuditEvents, metrics: RiskMetrics) -> None:
        self._inner, self._metrics = inner, metrics

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        self._inner.record(event_type, fields)
        self._metrics.security_event(event_type.replace(".", "_"), "recorded")
