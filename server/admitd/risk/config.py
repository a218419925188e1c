"""The `risk:` config section: per-signal weights and thresholds, level thresholds, sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from admitd.certs.principals import principal_from_text
from admitd.risk.model import RiskLevel, Signal

if TYPE_CHECKING:
    from admitd.fields import Fields

__all__ = [
    "DEFAULT_WEIGHTS",
    "SECTION_KEYS",
    "LevelThresholds",
    "RiskConfig",
    "risk_config_from_fields",
]

SECTION_KEYS = {
    "approvers",
    "signals",
    "levels",
    "organisations",
    "impossible_travel_kmh",
    "impossible_travel_min_km",
    "reputation_files",
    "reputation_poll_seconds",
    "mmdb_file",
    "trusted_geo_headers",
    "device_id_header",
    "anomaly_score_header",
    "telemetry_retention_seconds",
    "max_known_devices",
    "baseline_cache_seconds",
    "override_ttl_seconds",
}
_THRESHOLD_SIGNALS = {Signal.ANOMALY_SCORE, Signal.BASELINE_DEVIATION}

# Chosen so one weak signal is `medium`, two or one strong one `high`, and a
# listed IP plus impossible travel (or any three) `critical`.
DEFAULT_WEIGHTS: Mapping[Signal, float] = MappingProxyType(
    {
        Signal.NEW_DEVICE: 20,
        Signal.MISSING_USER_AGENT: 20,
        Signal.IP_REPUTATION: 50,
        Signal.IMPOSSIBLE_TRAVEL: 60,
        Signal.PRIVILEGED_WITHOUT_MFA: 30,
        Signal.ANOMALY_SCORE: 40,
        # High on its own: a deviating device steps up every time until an override.
        Signal.BASELINE_DEVIATION: 50,
    }
)


@dataclass(frozen=True, slots=True)
class LevelThresholds:
    """The lowest score of each level above `low`."""

    medium: float = 20
    high: float = 50
    critical: float = 80

    def level_for(self, score: float) -> RiskLevel:
        if score >= self.critical:
            return RiskLevel.CRITICAL
        if score >= self.high:
            return RiskLevel.HIGH
        return RiskLevel.MEDIUM if score >= self.medium else RiskLevel.LOW


@dataclass(frozen=True, slots=True)
class RiskConfig:
    weights: Mapping[Signal, float] = field(default_factory=lambda: DEFAULT_WEIGHTS)
    anomaly_threshold: float = 0.8  # scores are 0..1
    baseline_threshold: float = 0.5  # default per-organisation deviation threshold
    levels: LevelThresholds = LevelThresholds()
    org_levels: Mapping[str, LevelThresholds] = field(default_factory=dict)
    impossible_travel_kmh: float = 900.0  # a little above airliner cruise speed
    # Geo-IP is city-level at best: shorter hops are noise, never "travel".
    impossible_travel_min_km: float = 100.0
    reputation_files: tuple[Path, ...] = ()
    reputation_poll_seconds: float = 5.0
    mmdb_file: Path | None = None
    trusted_geo_headers: bool = False
    device_id_header: str = "x-device-id"
    anomaly_score_header: str = "x-anomaly-score"
    telemetry_retention_seconds: int = 30 * 86_400
    max_known_devices: int = 20
    baseline_cache_seconds: float = 30.0
    override_ttl_seconds: int = 86_400
    # Who may call `admitd.v1.Risk` (request, approve, list, read baselines): SAN URIs,
    # DNS names or RFC 4514 subjects of admin-port client certificates. Empty: nobody,
    # so an unconfigured deployment has no override path rather than one that counts
    # every admin-API caller (the login service too) as an approver.
    approvers: frozenset[str] = frozenset()

    def levels_for(self, organisation: str) -> LevelThresholds:
        return self.org_levels.get(organisation, self.levels)


_DEFAULTS = RiskConfig()  # the parser's defaults, so each is written once, above


def risk_config_from_fields(fields: Fields) -> RiskConfig:
    """`fields` reads the `risk:` mapping (allowed keys: SECTION_KEYS)."""
    base = Path(fields.doc.file).resolve().parent
    weights, anomaly, baseline = _signals(fields.sub("signals", {s.value for s in Signal}))
    mmdb = fields.optional_text("mmdb_file")
    return RiskConfig(
        weights=weights,
        anomaly_threshold=anomaly,
        baseline_threshold=baseline,
        levels=_levels(fields.sub("levels", {"medium", "high", "critical"})),
        org_levels=_organisations(fields),
        impossible_travel_kmh=fields.number(
            "impossible_travel_kmh", _DEFAULTS.impossible_travel_kmh, minimum=1.0
        ),
        impossible_travel_min_km=fields.number(
            "impossible_travel_min_km", _DEFAULTS.impossible_travel_min_km
        ),
        reputation_files=tuple(base / f for f in fields.texts("reputation_files")),
        reputation_poll_seconds=fields.number(
            "reputation_poll_seconds", _DEFAULTS.reputation_poll_seconds, minimum=0.1
        ),
        mmdb_file=base / mmdb if mmdb else None,
        trusted_geo_headers=fields.flag("trusted_geo_headers", _DEFAULTS.trusted_geo_headers),
        device_id_header=_header(fields, "device_id_header", _DEFAULTS.device_id_header),
        anomaly_score_header=_header(
            fields, "anomaly_score_header", _DEFAULTS.anomaly_score_header
        ),
        telemetry_retention_seconds=fields.integer(
            "telemetry_retention_seconds",
            _DEFAULTS.telemetry_retention_seconds,
            minimum=60,
            maximum=400 * 86_400,
        ),
        max_known_devices=fields.integer(
            "max_known_devices", _DEFAULTS.max_known_devices, minimum=1, maximum=1000
        ),
        baseline_cache_seconds=fields.number(
            "baseline_cache_seconds", _DEFAULTS.baseline_cache_seconds
        ),
        override_ttl_seconds=fields.integer(
            "override_ttl_seconds", _DEFAULTS.override_ttl_seconds, minimum=60, maximum=30 * 86_400
        ),
        approvers=frozenset(
            principal_from_text(fields, "approvers", p) for p in fields.texts("approvers")
        ),
    )


def _signals(fields: Fields) -> tuple[Mapping[Signal, float], float, float]:
    weights = dict(DEFAULT_WEIGHTS)
    thresholds = {
        Signal.ANOMALY_SCORE: _DEFAULTS.anomaly_threshold,
        Signal.BASELINE_DEVIATION: _DEFAULTS.baseline_threshold,
    }
    for signal in Signal:
        allowed = {"weight", "threshold"} if signal in _THRESHOLD_SIGNALS else {"weight"}
        rule = fields.sub(signal.value, allowed)
        weights[signal] = rule.number("weight", DEFAULT_WEIGHTS[signal])
        if signal in _THRESHOLD_SIGNALS:
            thresholds[signal] = _fraction(rule, "threshold", thresholds[signal])
    return (
        MappingProxyType(weights),
        thresholds[Signal.ANOMALY_SCORE],
        thresholds[Signal.BASELINE_DEVIATION],
    )


def _levels(fields: Fields, default: LevelThresholds = LevelThresholds()) -> LevelThresholds:
    levels = LevelThresholds(
        medium=fields.number("medium", default.medium),
        high=fields.number("high", default.high),
        critical=fields.number("critical", default.critical),
    )
    if not 0 < levels.medium <= levels.high <= levels.critical:
        raise fields.error("medium", "need 0 < medium <= high <= critical", "e.g. 20, 50, 80")
    return levels


def _organisations(fields: Fields) -> Mapping[str, LevelThresholds]:
    orgs = fields.raw.get("organisations") or {}
    if not isinstance(orgs, Mapping):
        raise fields.error("organisations", "expected a mapping of organisation -> {levels}")
    section = fields.sub("organisations", {str(name) for name in orgs})
    return MappingProxyType(
        {
            str(name): _levels(
                section.sub(str(name), {"levels"}).sub("levels", {"medium", "high", "critical"}),
                _levels(fields.sub("levels", {"medium", "high", "critical"})),
            )
            for name in orgs
        }
    )


def _fraction(fields: Fields, key: str, default: float) -> float:
    value = fields.number(key, default)
    if value > 1:
        raise fields.error(key, f"expected a number from 0 to 1, got {value}")
    return value


def _header(fields: Fields, key: str, default: str) -> str:
    name = fields.text(key, default).lower()
    if not name.replace("-", "").isalnum():
        raise fields.error(key, f"not an HTTP header name: {name!r}", f"e.g. {default}")
    return name
