"""Identity-provider metrics: JWKS fetches, OIDC discovery and OIDC callbacks, declared once.

Labels stay few: `issuer` takes only the configured issuers (`jwt.issuers` and `oidc.issuer`),
`outcome` a fixed set per counter. An outcome outside that set is a programming error
(ValueError), so a typo cannot add a series.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter

__all__ = ["CallbackOutcome", "DiscoveryOutcome", "FetchOutcome", "IdpMetrics"]


class FetchOutcome(StrEnum):
    OK = "ok"
    ERROR = "error"  # unreachable, timed out, not 200, or not a key set: the old keys stay
    RATE_LIMITED = "rate_limited"  # an unknown kid wanted a fetch within refresh_interval


class DiscoveryOutcome(StrEnum):
    OK = "ok"
    ERROR = "error"  # unreachable or bad metadata; retried after provider._RETRY_SECONDS


class CallbackOutcome(StrEnum):
    SESSION = "session"  # a session was created
    REFUSED = "refused"  # the 400 page: bad state, reused code, ID token refused
    UNAVAILABLE = "unavailable"  # the 503 page: the IdP could not be reached
    STEP_UP_REFUSED = "step_up_refused"  # a step-up sign-in that did not prove the factor


class IdpMetrics:
    """One per runtime, on its registry. Without one, a private registry nobody scrapes
    (tests and tools that build a provider or a key set alone): never the process-wide
    default, where a second instance would clash."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.jwks_fetches = Counter(
            "admitd_jwks_fetches_total",
            "JWKS fetches per configured issuer (JWT issuers and the OIDC provider), by outcome.",
            ["issuer", "outcome"],
            registry=registry,
        )
        self.oidc_discovery = Counter(
            "admitd_oidc_discovery_total",
            "OIDC discovery document fetches, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.oidc_callbacks = Counter(
            "admitd_oidc_callbacks_total",
            "OIDC sign-in callbacks, by what the browser got.",
            ["outcome"],
            registry=registry,
        )
        # Every series exists from the start at 0, so rate() and absent() alerts work.
        for discovery in DiscoveryOutcome:
            self.oidc_discovery.labels(discovery.value)
        for callback in CallbackOutcome:
            self.oidc_callbacks.labels(callback.value)

    def jwks_fetch(self, issuer: str, outcome: str) -> None:
        self.jwks_fetches.labels(issuer, FetchOutcome(outcome).value).inc()

    def discovery(self, outcome: str) -> None:
        self.oidc_discovery.labels(DiscoveryOutcome(outcome).value).inc()

    def callback(self, outcome: str) -> None:
        """Count one callback: `session`, `refused`, `unavailable` or `step_up_refused`."""
        self.oidc_callbacks.labels(CallbackOutcome(outcome).value).inc()
