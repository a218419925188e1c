"""`assess`: the pure risk rules. No I/O and no clock: every input is an argument.

Each signal is one small predicate below; `assess` adds the weights of the raised
signals and maps the sum to a level with the organisation's thresholds.
"""

from __future__ import annotations

import math

from admitd.risk.config import RiskConfig
from admitd.risk.model import (
    GeoPoint,
    OrgBaseline,
    RiskAssessment,
    RiskHistory,
    Signal,
    Telemetry,
)

__all__ = [
    "assess",
    "baseline_deviation",
    "distance_km",
    "is_impossible_travel",
    "is_new_device",
]

_EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
# Share of each baseline attribute in the deviation: the device ID says most.
_ATTRIBUTE_WEIGHTS = {"device_id": 0.5, "os_family": 0.25, "browser_family": 0.25}
# Replicas' clocks disagree a little; never divide by less than a second.
_MIN_INTERVAL_SECONDS = 1.0


def assess(
    telemetry: Telemetry,
    history: RiskHistory,
    baseline: OrgBaseline,
    *,
    privileged: bool,
    mfa_fresh: bool,
    reputation_hit: bool,
    config: RiskConfig,
) -> RiskAssessment:
    """Score one attempt. `reputation_hit` is `ReputationList.contains(telemetry.ip)`;
    `baseline.organisation` selects the level thresholds. Deterministic."""
    deviation = baseline_deviation(telemetry, history, baseline)
    threshold = baseline.threshold if baseline.threshold is not None else config.baseline_threshold
    raised = {
        Signal.NEW_DEVICE: is_new_device(telemetry, history),
        Signal.MISSING_USER_AGENT: not telemetry.user_agent_ok,
        # An unparseable source IP cannot be shown to be clean: fail closed.
        Signal.IP_REPUTATION: reputation_hit or not telemetry.ip,
        Signal.IMPOSSIBLE_TRAVEL: is_impossible_travel(telemetry, history, config),
        Signal.PRIVILEGED_WITHOUT_MFA: privileged and not mfa_fresh,
        Signal.ANOMALY_SCORE: _is_anomalous(telemetry.anomaly_score, config.anomaly_threshold),
        Signal.BASELINE_DEVIATION: baseline.is_defined and deviation > threshold,
    }
    signals = tuple(signal for signal in Signal if raised[signal])
    score = float(sum(config.weights[signal] for signal in signals))
    level = config.levels_for(baseline.organisation).level_for(score)
    return RiskAssessment(score, level, signals, deviation)


def is_new_device(telemetry: Telemetry, history: RiskHistory) -> bool:
    """Absent or malformed IDs (empty) are never known."""
    device = telemetry.device_id
    return not device or (
        device not in history.known_devices and device not in history.trusted_devices
    )


def is_impossible_travel(telemetry: Telemetry, history: RiskHistory, config: RiskConfig) -> bool:
    """Faster than `impossible_travel_kmh` from the last recorded location.

    Unknown locations (no geo now or before) are not evaluated: geo is often
    unknown (private addresses, no database), and the other signals still apply.
    """
    here, before, then = telemetry.geo, history.last_geo, history.last_seen_at
    if here is None or before is None or then is None:
        return False
    km = distance_km(before, here)
    if km < config.impossible_travel_min_km:
        return False
    hours = max(telemetry.at - then, _MIN_INTERVAL_SECONDS) / 3600.0
    return km / hours > config.impossible_travel_kmh


def distance_km(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance (haversine)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def baseline_deviation(telemetry: Telemetry, history: RiskHistory, baseline: OrgBaseline) -> float:
    """0..1: the weighted share of baseline attributes whose value the org does not trust.

    Only attributes the baseline defines count (weights renormalised over them);
    an unknown value (empty) is untrusted. A device trusted for this user by an
    approved override, or an undefined baseline, deviates by 0.
    """
    if not baseline.is_defined or (
        telemetry.device_id and telemetry.device_id in history.trusted_devices
    ):
        return 0.0
    checks = {
        "device_id": (baseline.device_ids, telemetry.device_id),
        "os_family": (baseline.os_families, telemetry.traits.os_family),
        "browser_family": (baseline.browser_families, telemetry.traits.browser_family),
    }
    total = missed = 0.0
    for name, (trusted, value) in checks.items():
        if trusted:
            total += _ATTRIBUTE_WEIGHTS[name]
            missed += _ATTRIBUTE_WEIGHTS[name] if value not in trusted else 0.0
    return round(missed / total, 6)


def _is_anomalous(score: float | None, threshold: float) -> bool:
    # `not score < threshold` also raises NaN, which no honest scorer sends.
    return score is not None and not score < threshold
