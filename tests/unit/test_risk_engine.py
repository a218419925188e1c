"""assess(): each signal on its own, the score, the levels and per-organisation thresholds."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admitd.risk.config import DEFAULT_WEIGHTS, LevelThresholds, RiskConfig
from admitd.risk.engine import assess, baseline_deviation, distance_km, is_impossible_travel
from admitd.risk.model import (
    DeviceTraits,
    GeoPoint,
    OrgBaseline,
    RiskAssessment,
    RiskHistory,
    RiskLevel,
    Signal,
    Telemetry,
)

PARIS = GeoPoint(48.8566, 2.3522, "FR")
LONDON = GeoPoint(51.5074, -0.1278, "GB")
SYDNEY = GeoPoint(-33.8688, 151.2093, "AU")
NOW = 1_700_000_000.0
CONFIG = RiskConfig()
MAC_SAFARI = DeviceTraits("macos", "safari")

CLEAN = Telemetry("dev-1", "Mozilla/5.0", "192.0.2.1", PARIS, None, NOW, True, MAC_SAFARI)
KNOWN = RiskHistory(frozenset({"dev-1"}), PARIS, NOW - 3600, "192.0.2.1")
NO_BASELINE = OrgBaseline("acme")


def run(
    telemetry: Telemetry = CLEAN,
    history: RiskHistory = KNOWN,
    baseline: OrgBaseline = NO_BASELINE,
    *,
    privileged: bool = False,
    mfa_fresh: bool = True,
    reputation_hit: bool = False,
    config: RiskConfig = CONFIG,
) -> RiskAssessment:
    return assess(
        telemetry,
        history,
        baseline,
        privileged=privileged,
        mfa_fresh=mfa_fresh,
        reputation_hit=reputation_hit,
        config=config,
    )


def test_a_known_device_in_the_usual_place_raises_nothing() -> None:
    assert run() == RiskAssessment(0.0, RiskLevel.LOW, (), 0.0)


@pytest.mark.parametrize(
    ("kwargs", "signal"),
    [
        ({"telemetry": dataclasses.replace(CLEAN, device_id="dev-2")}, Signal.NEW_DEVICE),
        ({"telemetry": dataclasses.replace(CLEAN, device_id="")}, Signal.NEW_DEVICE),
        ({"history": RiskHistory()}, Signal.NEW_DEVICE),
        ({"telemetry": dataclasses.replace(CLEAN, user_agent_ok=False)}, Signal.MISSING_USER_AGENT),
        ({"reputation_hit": True}, Signal.IP_REPUTATION),
        ({"telemetry": dataclasses.replace(CLEAN, ip="")}, Signal.IP_REPUTATION),
        ({"telemetry": dataclasses.replace(CLEAN, geo=SYDNEY)}, Signal.IMPOSSIBLE_TRAVEL),
        ({"privileged": True, "mfa_fresh": False}, Signal.PRIVILEGED_WITHOUT_MFA),
        ({"telemetry": dataclasses.replace(CLEAN, anomaly_score=0.8)}, Signal.ANOMALY_SCORE),
        (
            {"telemetry": dataclasses.replace(CLEAN, anomaly_score=float("nan"))},
            Signal.ANOMALY_SCORE,
        ),
        (
            {"baseline": OrgBaseline("acme", os_families=frozenset({"windows"}))},
            Signal.BASELINE_DEVIATION,
        ),
    ],
    ids=[
        "unknown-device",
        "malformed-device-id",
        "first-sighting",
        "no-user-agent",
        "listed-ip",
        "unparseable-ip",
        "paris-to-sydney-in-an-hour",
        "privileged-stale-mfa",
        "anomaly-at-threshold",
        "anomaly-nan",
        "os-not-in-baseline",
    ],
)
def test_each_signal_alone(kwargs: dict[str, object], signal: Signal) -> None:
    result = run(**kwargs)  # type: ignore[arg-type]
    assert result.signals == (signal,)
    assert result.score == DEFAULT_WEIGHTS[signal]


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {"privileged": True, "mfa_fresh": True},
        {"privileged": False, "mfa_fresh": False},
        {"telemetry": dataclasses.replace(CLEAN, anomaly_score=0.79)},
        {"telemetry": dataclasses.replace(CLEAN, geo=LONDON)},  # 344 km in an hour
        {"telemetry": dataclasses.replace(CLEAN, geo=None)},
        {"history": dataclasses.replace(KNOWN, last_geo=None)},
        {"baseline": OrgBaseline("acme", os_families=frozenset({"macos"}))},
    ],
    ids=[
        "fresh-mfa",
        "unprivileged",
        "anomaly-below",
        "plausible-trip",
        "geo-unknown",
        "no-last-geo",
        "matches-baseline",
    ],
)
def test_no_signal(kwargs: dict[str, object]) -> None:
    assert run(**kwargs).signals == ()  # type: ignore[arg-type]


def test_travel_speed_limit_and_minimum_distance() -> None:
    # Paris -> London is ~344 km: 20 minutes is ~1030 km/h, over 900.
    fast = dataclasses.replace(CLEAN, geo=LONDON, at=NOW)
    assert is_impossible_travel(fast, dataclasses.replace(KNOWN, last_seen_at=NOW - 1200), CONFIG)
    assert not is_impossible_travel(
        fast, dataclasses.replace(KNOWN, last_seen_at=NOW - 1500), CONFIG
    )
    slow_config = RiskConfig(impossible_travel_kmh=2000)
    assert not is_impossible_travel(
        fast, dataclasses.replace(KNOWN, last_seen_at=NOW - 1200), slow_config
    )
    # Geo-IP jitter: a short hop is never travel, even "instantly".
    near = dataclasses.replace(CLEAN, geo=GeoPoint(48.9, 2.4, "FR"))
    assert not is_impossible_travel(near, dataclasses.replace(KNOWN, last_seen_at=NOW), CONFIG)
    # Clock skew between replicas (now before last seen) counts as one second.
    skewed = dataclasses.replace(KNOWN, last_seen_at=NOW + 30)
    assert is_impossible_travel(fast, skewed, CONFIG)


def test_distance_is_the_great_circle() -> None:
    assert distance_km(PARIS, LONDON) == pytest.approx(343.5, abs=1)
    assert distance_km(PARIS, SYDNEY) == pytest.approx(16_960, rel=0.01)
    assert distance_km(PARIS, PARIS) == 0


def test_scores_add_and_map_to_levels() -> None:
    medium = run(telemetry=dataclasses.replace(CLEAN, device_id="dev-9"))
    assert (medium.score, medium.level) == (20, RiskLevel.MEDIUM)
    high = run(reputation_hit=True)
    assert high.level is RiskLevel.HIGH
    critical = run(telemetry=dataclasses.replace(CLEAN, geo=SYDNEY), reputation_hit=True)
    assert (critical.score, critical.level) == (110, RiskLevel.CRITICAL)
    assert critical.signals == (Signal.IP_REPUTATION, Signal.IMPOSSIBLE_TRAVEL)  # declaration order
    assert critical.signal_names == "ip_reputation,impossible_travel"


def test_levels_per_organisation() -> None:
    strict = RiskConfig(org_levels={"bank": LevelThresholds(medium=5, high=15, critical=30)})
    new_device = dataclasses.replace(CLEAN, device_id="dev-9")
    assert run(new_device, config=strict).level is RiskLevel.MEDIUM  # acme: defaults
    assert run(new_device, baseline=OrgBaseline("bank"), config=strict).level is RiskLevel.HIGH


def test_weights_come_from_config() -> None:
    config = RiskConfig(weights={**DEFAULT_WEIGHTS, Signal.NEW_DEVICE: 0})
    result = run(dataclasses.replace(CLEAN, device_id="dev-9"), config=config)
    # A zero weight still names the signal (observe-only) but adds nothing.
    assert (result.signals, result.score, result.level) == ((Signal.NEW_DEVICE,), 0, RiskLevel.LOW)


class TestBaselineDeviation:
    FULL = OrgBaseline(
        "acme",
        os_families=frozenset({"macos"}),
        browser_families=frozenset({"safari", "firefox"}),
        device_ids=frozenset({"dev-1"}),
    )

    @pytest.mark.parametrize(
        ("device", "traits", "expected"),
        [
            ("dev-1", MAC_SAFARI, 0.0),
            ("dev-1", DeviceTraits("macos", "chrome"), 0.25),
            ("dev-2", MAC_SAFARI, 0.5),
            ("dev-2", DeviceTraits("windows", "chrome"), 1.0),
            ("", DeviceTraits(), 1.0),
        ],
        ids=["match", "browser", "device", "everything", "unknown-counts-as-untrusted"],
    )
    def test_weighted_distance(self, device: str, traits: DeviceTraits, expected: float) -> None:
        telemetry = dataclasses.replace(CLEAN, device_id=device, traits=traits)
        assert baseline_deviation(telemetry, KNOWN, self.FULL) == expected

    def test_only_defined_attributes_count(self) -> None:
        browsers_only = OrgBaseline("acme", browser_families=frozenset({"safari"}))
        chrome = dataclasses.replace(CLEAN, traits=DeviceTraits("macos", "chrome"))
        assert baseline_deviation(chrome, KNOWN, browsers_only) == 1.0

    def test_a_device_trusted_for_the_user_does_not_deviate(self) -> None:
        history = dataclasses.replace(KNOWN, trusted_devices=frozenset({"dev-7"}))
        telemetry = dataclasses.replace(
            CLEAN, device_id="dev-7", traits=DeviceTraits("linux", "chrome")
        )
        result = run(telemetry, history, self.FULL)
        assert result.signals == ()
        assert result.baseline_deviation == 0.0

    def test_threshold_is_strictly_exceeded_and_per_organisation(self) -> None:
        telemetry = dataclasses.replace(CLEAN, device_id="dev-2")  # deviation 0.5
        assert run(telemetry, baseline=self.FULL).has(Signal.BASELINE_DEVIATION) is False
        lowered = RiskConfig(baseline_threshold=0.4)
        assert run(telemetry, baseline=self.FULL, config=lowered).has(Signal.BASELINE_DEVIATION)
        raised = dataclasses.replace(self.FULL, threshold=0.9)
        chrome = dataclasses.replace(telemetry, traits=DeviceTraits("macos", "chrome"))  # 0.75
        assert run(chrome, baseline=self.FULL).has(Signal.BASELINE_DEVIATION)
        assert not run(chrome, baseline=raised).has(Signal.BASELINE_DEVIATION)


def test_level_ordering_helpers() -> None:
    assert RiskLevel.HIGH.at_least(RiskLevel.MEDIUM)
    assert RiskLevel.HIGH.at_least(RiskLevel.HIGH)
    assert not RiskLevel.MEDIUM.above(RiskLevel.MEDIUM)
    assert RiskLevel.CRITICAL.above(RiskLevel.HIGH)
    assert (
        RiskLevel.highest(RiskLevel.MEDIUM, RiskLevel.CRITICAL, RiskLevel.LOW) is RiskLevel.CRITICAL
    )
    assert RiskLevel.highest() is RiskLevel.LOW
    assert [level.rank for level in RiskLevel] == [0, 1, 2, 3]


def test_level_thresholds_boundaries() -> None:
    levels = LevelThresholds()
    assert [levels.level_for(s) for s in (0, 19.9, 20, 49.9, 50, 79.9, 80, 500)] == [
        RiskLevel.LOW, RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.MEDIUM,
        RiskLevel.HIGH, RiskLevel.HIGH, RiskLevel.CRITICAL, RiskLevel.CRITICAL,
    ]  # fmt: skip


@given(
    device=st.text(max_size=20),
    ip=st.sampled_from(["", "192.0.2.1"]),
    anomaly=st.none() | st.floats(allow_nan=True),
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    dt=st.floats(-1e6, 1e6),
    privileged=st.booleans(),
    fresh=st.booleans(),
    hit=st.booleans(),
)
def test_never_crashes_and_is_deterministic(
    device: str, ip: str, anomaly: float | None, lat: float, lon: float, dt: float,
    privileged: bool, fresh: bool, hit: bool,
) -> None:  # fmt: skip
    telemetry = Telemetry(device, "ua", ip, GeoPoint(lat, lon), anomaly, NOW + dt)
    first = run(telemetry, privileged=privileged, mfa_fresh=fresh, reputation_hit=hit)
    assert first == run(telemetry, privileged=privileged, mfa_fresh=fresh, reputation_hit=hit)
    assert first.level is CONFIG.levels.level_for(first.score)
    assert 0.0 <= first.baseline_deviation <= 1.0
