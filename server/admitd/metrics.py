"""Prometheus metrics, declared once. Labels take few values: reason codes, outcomes, phases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from admitd.core.decision import Decision, Reason
from admitd.core.mfa_rules import DEFAULT_PRIVILEGED_ROLES

__all__ = ["EventLoopTasks", "Metrics"]

# Check latency is dominated by gRPC; buckets span 25 µs to 250 ms, finest where the
# handler targets are (p50 <= 50/100 µs, p99 <= 300 µs), so quantiles can be read off them.
_LATENCY_BUCKETS = (
    0.000025,
    0.00005,
    0.000075,
    0.0001,
    0.00015,
    0.0002,
    0.0003,
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
    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        privileged_roles: frozenset[str] = DEFAULT_PRIVILEGED_ROLES,
    ) -> None:
        # mfa_policy_enforcement_total role labels: the configured privileged roles, sorted.
        self._privileged = tuple(sorted(privileged_roles))
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
        self.mfa_enforcement = Counter(
            "mfa_policy_enforcement_total",
            "MFA freshness checks on session routes, by the user's privileged role and outcome.",
            ["role", "outcome"],
            registry=registry,
        )
        self.policy_reloads = Counter(
            "admitd_policy_reloads_total",
            "Policy reloads: applied, or refused because the new files did not load.",
            ["outcome"],
            registry=registry,
        )
        self.shadow_denials = Counter(
            "admitd_shadow_denials_total",
            "Requests a shadow route admitted but would have denied, by route and reason.",
            ["route", "reason"],
            registry=registry,
        )
        self.revocation_reloads = Counter(
            "admitd_revocation_reloads_total",
            "Reloads of CRL and deny-list files.",
            ["outcome"],
            registry=registry,
        )

        # Resolving label values costs more than the increment; reasons are a small
        # fixed set, so each decision's children are looked up once and kept.
        self._children: dict[Reason, tuple[Counter, Histogram, Counter | None]] = {}

    def observe(self, decision: Decision, seconds: float) -> None:
        children = self._children.get(decision.reason)
        if children is None:
            children = self._children[decision.reason] = self._children_for(decision)
        decisions, latency, security = children
        decisions.inc()
        latency.observe(seconds)
        if security is not None:
            security.inc()
        if decision.shadow_reason is not None:
            self.shadow_denials.labels(decision.route, decision.shadow_reason.value).inc()
        if decision.mfa_checked:
            self.mfa_enforcement.labels(self._role_label(decision), _mfa_outcome(decision)).inc()

    def _role_label(self, decision: Decision) -> str:
        """One role per event keeps the label set small: the first privileged role, else `other`."""
        roles = decision.user.roles if decision.user else frozenset()
        return next((role for role in self._privileged if role in roles), "other")

    def _children_for(self, decision: Decision) -> tuple[Counter, Histogram, Counter | None]:
        outcome = decision.audit_verdict
        security = (
            None if decision.allowed else self.security_events.labels(decision.reason.value, "deny")
        )
        return (
            self.decisions.labels(outcome, decision.reason.value),
            self.check_seconds.labels(outcome),
            security,
        )


_MFA_OUTCOMES = {
    Reason.ALLOWED: "fresh",
    Reason.MFA_STEP_UP_REQUIRED: "step_up",
    Reason.MFA_ENROLLMENT_REQUIRED: "enrollment_required",
}


def _mfa_outcome(decision: Decision) -> str:
    return _MFA_OUTCOMES.get(decision.reason, "denied")


class EventLoopTasks(Collector):
    """`admitd_event_loop_tasks`, counted when scraped: a number that keeps growing under
    steady load is a task leak (the soak test reads it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "admitd_event_loop_tasks",
            "asyncio tasks alive on admitd's event loop",
            value=len(asyncio.all_tasks(self._loop)),
        )
