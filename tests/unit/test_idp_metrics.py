"""IdpMetrics: fixed outcome sets (a typo is an error, never a new series), zeros from the start."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from admitd.jwt.metrics import CallbackOutcome, IdpMetrics


def test_callback_outcomes_start_at_zero_and_count() -> None:
    registry = CollectorRegistry()
    metrics = IdpMetrics(registry)
    for outcome in ("session", "refused", "unavailable", "step_up_refused"):
        labels = {"outcome": outcome}
        assert registry.get_sample_value("admitd_oidc_callbacks_total", labels) == 0.0
    metrics.callback("session")
    metrics.callback(CallbackOutcome.STEP_UP_REFUSED)
    assert registry.get_sample_value("admitd_oidc_callbacks_total", {"outcome": "session"}) == 1.0
    step_up = {"outcome": "step_up_refused"}
    assert registry.get_sample_value("admitd_oidc_callbacks_total", step_up) == 1.0


@pytest.mark.parametrize(
    "count",
    [
        lambda m: m.callback("sesion"),
        lambda m: m.discovery("timeout"),
        lambda m: m.jwks_fetch("https://idp.test", "HTTP 500"),
    ],
    ids=["callback", "discovery", "jwks"],
)
def test_an_outcome_outside_the_set_is_refused(count: object) -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError):
        count(IdpMetrics(registry))  # type: ignore[operator]
    counts = [
        s for family in registry.collect() for s in family.samples if s.name.endswith("_total")
    ]
    assert counts and all(sample.value == 0.0 for sample in counts)


def test_two_runtimes_do_not_clash() -> None:
    IdpMetrics()
    IdpMetrics()  # each without a registry gets its own
