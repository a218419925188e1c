"""Risk state fields <-> RiskHistory, when to record, metrics, and the admin API conversions."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from admitd._proto import risk_pb2 as pb
from admitd.risk.cli import line_from_override, register, request_from_args
from admitd.risk.convert import override_request_from_proto, proto_from_override
from admitd.risk.errors import InvalidRequest
from admitd.risk.metrics import MeteredAudit, RiskMetrics, security_events_counter
from admitd.risk.model import (
    BaselineAttribute,
    GeoPoint,
    RiskAssessment,
    RiskHistory,
    RiskLevel,
    Signal,
    Telemetry,
)
from admitd.risk.overrides import (
    Override,
    OverrideKind,
    OverrideRequest,
    OverrideStatus,
    check_request,
    fields_from_override,
    override_from_fields,
)
from admitd.risk.state import needs_record, risk_history_from_fields, risk_state_key
from admitd.sessions.tokens import user_tag

NOW = 1_700_000_000.0
PARIS = GeoPoint(48.8566, 2.3522, "FR")


def test_state_key_carries_the_user_hash_tag() -> None:
    tag = user_tag("u-1")
    assert risk_state_key(tag) == f"admitd:{{{tag}}}:risk"


def test_history_from_fields() -> None:
    fields = {
        "d:dev-1": "1699990000.0",
        "d:dev-2": "1699999000.0",
        "t:dev-9": "1699000000.0",
        "geo": "48.8566,2.3522,FR",
        "seen_at": "1699999000.5",
        "ip": "192.0.2.1",
    }
    assert risk_history_from_fields(fields) == RiskHistory(
        frozenset({"dev-1", "dev-2"}), PARIS, 1699999000.5, "192.0.2.1", frozenset({"dev-9"})
    )
    assert risk_history_from_fields({}) == RiskHistory()


@pytest.mark.parametrize(
    "fields",
    [
        {"geo": "x,y,FR"},
        {"geo": "91,0,FR"},
        {"geo": "1,2"},
        {"seen_at": "nan"},
        {"seen_at": "soon"},
    ],
)
def test_damaged_fields_are_ignored(fields: dict[str, str]) -> None:
    history = risk_history_from_fields(fields)
    assert history.last_geo is None and history.last_seen_at is None


def test_needs_record_only_when_something_changed() -> None:
    t = Telemetry("dev-1", "ua", "192.0.2.1", PARIS, None, NOW)
    same = RiskHistory(
        frozenset({"dev-1"}), GeoPoint(48.85661, 2.35219, "FR"), NOW - 60, "192.0.2.1"
    )
    assert not needs_record(t, same, refresh_seconds=900)
    assert needs_record(t, dataclasses.replace(same, last_seen_at=NOW - 900), refresh_seconds=900)
    assert needs_record(dataclasses.replace(t, device_id="dev-2"), same, refresh_seconds=900)
    assert needs_record(dataclasses.replace(t, ip="192.0.2.2"), same, refresh_seconds=900)
    assert needs_record(dataclasses.replace(t, geo=GeoPoint(40.0, 2.0)), same, refresh_seconds=900)
    assert not needs_record(dataclasses.replace(t, geo=None), same, refresh_seconds=900)
    assert needs_record(t, RiskHistory(), refresh_seconds=900)


def test_metrics_count_each_signal_by_level() -> None:
    registry = CollectorRegistry()
    security = security_events_counter(registry)
    metrics = RiskMetrics(registry, security_events=security)
    metrics.observe(RiskAssessment(0, RiskLevel.LOW, (), 0.0))
    metrics.observe(
        RiskAssessment(90, RiskLevel.CRITICAL, (Signal.NEW_DEVICE, Signal.BASELINE_DEVIATION), 1.0)
    )

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("device_risk_events_total", level="low", signal="none") == 1
    assert value("device_risk_events_total", level="critical", signal="new_device") == 1
    assert value("device_risk_events_total", level="critical", signal="baseline_deviation") == 1
    assert value("security_events_total", event="risk_critical", outcome="raised") == 1
    assert value("security_events_total", event="baseline_deviation", outcome="raised") == 1

    recorded: list[tuple[str, dict[str, str]]] = []

    class Sink:
        def record(self, event_type: str, fields: dict[str, str]) -> None:
            recorded.append((event_type, fields))

    MeteredAudit(Sink(), metrics).record("risk.override.requested", {"override_id": "x"})
    assert recorded == [("risk.override.requested", {"override_id": "x"})]
    assert value("security_events_total", event="risk_override_requested", outcome="recorded") == 1


def _override(request: OverrideRequest) -> Override:
    return Override(
        "0123456789abcdef", request, "spiffe://a", NOW, NOW + 60, OverrideStatus.PENDING
    )


@pytest.mark.parametrize(
    "request_",
    [
        OverrideRequest(
            OverrideKind.TRUST_DEVICE, "acme", "lost phone", user_id="u-1", device_id="dev-1"
        ),
        OverrideRequest(OverrideKind.RAISE_THRESHOLD, "acme", "travel season", threshold=0.8),
        OverrideRequest(
            OverrideKind.EXTEND_BASELINE,
            "acme",
            "linux rollout",
            attribute=BaselineAttribute.OS_FAMILY,
            value="linux",
        ),
    ],
    ids=["trust", "raise", "extend"],
)
def test_overrides_round_trip_through_redis_fields_and_protobuf(request_: OverrideRequest) -> None:
    override = _override(check_request(request_))
    assert (
        override_from_fields(override.override_id, fields_from_override(override), NOW) == override
    )
    expired = override_from_fields(override.override_id, fields_from_override(override), NOW + 60)
    assert expired.status is OverrideStatus.EXPIRED
    message = proto_from_override(override)
    back = pb.RequestOverrideRequest(
        kind=message.kind, organisation=message.organisation, reason=message.reason,
        user_id=message.user_id, device_id=message.device_id, attribute=message.attribute,
        value=message.value,
    )  # fmt: skip
    if message.HasField("threshold"):
        back.threshold = message.threshold
    assert override_request_from_proto(back) == override.request
    assert override.override_id in line_from_override(message)


@pytest.mark.parametrize(
    "request_",
    [
        OverrideRequest(OverrideKind.TRUST_DEVICE, "acme", "r", user_id="u-1", device_id="bad id"),
        OverrideRequest(OverrideKind.TRUST_DEVICE, "acme", "r", device_id="dev-1"),
        OverrideRequest(OverrideKind.TRUST_DEVICE, "acme", "", user_id="u", device_id="d"),
        OverrideRequest(OverrideKind.TRUST_DEVICE, "acme", "a\nb", user_id="u", device_id="d"),
        OverrideRequest(OverrideKind.RAISE_THRESHOLD, "acme", "r", threshold=1.5),
        OverrideRequest(OverrideKind.RAISE_THRESHOLD, "acme", "r"),
        OverrideRequest(OverrideKind.EXTEND_BASELINE, "acme", "r", value="linux"),
        OverrideRequest(
            OverrideKind.EXTEND_BASELINE,
            "ac me",
            "r",
            attribute=BaselineAttribute.OS_FAMILY,
            value="x",
        ),
    ],
    ids=[
        "bad-device",
        "no-user",
        "no-reason",
        "newline-reason",
        "threshold>1",
        "no-threshold",
        "no-attribute",
        "bad-org",
    ],
)
def test_invalid_override_requests(request_: OverrideRequest) -> None:
    with pytest.raises(InvalidRequest):
        check_request(request_)


def test_unspecified_kind_is_invalid() -> None:
    with pytest.raises(InvalidRequest):
        override_request_from_proto(pb.RequestOverrideRequest(organisation="acme", reason="r"))


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser(prog="admitd")
    register(parser.add_subparsers(dest="command", required=True))
    tls = ["--cert", "c.pem", "--key", "k.pem", "--ca", "ca.pem"]
    args = parser.parse_args(
        [
            "risk",
            "request",
            "raise-threshold",
            "--org",
            "acme",
            "--reason",
            "why",
            "--threshold",
            "0.7",
            *tls,
        ]
    )
    request = request_from_args(args)
    assert (request.kind, request.organisation, request.threshold) == (
        pb.OVERRIDE_KIND_RAISE_THRESHOLD,
        "acme",
        pytest.approx(0.7),
    )
    args = parser.parse_args(["risk", "approve", "0123456789abcdef", *tls])
    assert args.override_id == "0123456789abcdef"
    assert parser.parse_args(["risk", "list", "--pending", *tls]).pending is True
    assert parser.parse_args(["risk", "baseline", "--org", "acme", *tls]).org == "acme"
