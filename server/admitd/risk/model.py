"""Risk values: levels, signal names, one attempt's telemetry, a user's history, the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "BaselineAttribute",
    "DeviceTraits",
    "GeoPoint",
    "OrgBaseline",
    "RiskAssessment",
    "RiskHistory",
    "RiskLevel",
    "Signal",
    "Telemetry",
]


class RiskLevel(StrEnum):
    """Ordered low < medium < high < critical; compare with `rank` / `at_least`, not `<`
    (a StrEnum's `<` compares the strings)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: RiskLevel) -> bool:
        return _RANK[self] >= _RANK[other]

    def above(self, other: RiskLevel) -> bool:
        return _RANK[self] > _RANK[other]

    @classmethod
    def highest(cls, *levels: RiskLevel) -> RiskLevel:
        return max(levels, key=_RANK.__getitem__, default=cls.LOW)


_RANK = {RiskLevel.LOW: 0, RiskLevel.MEDIUM: 1, RiskLevel.HIGH: 2, RiskLevel.CRITICAL: 3}


class Signal(StrEnum):
    """The named risk rules; each value doubles as a metric label and a header token."""

    NEW_DEVICE = "new_device"  # device ID absent, malformed, or not among the user's known
    MISSING_USER_AGENT = "missing_user_agent"  # absent, empty, oversized or control chars
    IP_REPUTATION = "ip_reputation"  # on a configured list, or not a parseable IP
    IMPOSSIBLE_TRAVEL = "impossible_travel"  # faster than impossible_travel_kmh since last
    PRIVILEGED_WITHOUT_MFA = "privileged_without_mfa"
    ANOMALY_SCORE = "anomaly_score"  # upstream behavioural score >= threshold (or unreadable)
    BASELINE_DEVIATION = "baseline_deviation"  # device far from the org's trusted baseline


@dataclass(frozen=True, slots=True)
class GeoPoint:
    lat: float
    lon: float
    country: str = ""  # ISO 3166-1 alpha-2 when known


@dataclass(frozen=True, slots=True)
class DeviceTraits:
    """Coarse attributes of a device, derived from its user agent (for the baseline)."""

    os_family: str = ""
    browser_family: str = ""


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One authentication attempt. Empty `device_id` / `ip` mean absent or malformed;
    `user_agent_ok` is False when the user agent was absent, oversized or malformed."""

    device_id: str
    user_agent: str
    ip: str
    geo: GeoPoint | None
    anomaly_score: float | None
    at: float
    user_agent_ok: bool = True
    traits: DeviceTraits = DeviceTraits()


@dataclass(frozen=True, slots=True)
class RiskHistory:
    """What admitd remembers of one user (read with the session, in one pipeline).

    `trusted_devices` are devices an approved override trusted for this user: they
    count as known and never deviate from the organisation's baseline.
    """

    known_devices: frozenset[str] = frozenset()
    last_geo: GeoPoint | None = None
    last_seen_at: float | None = None
    last_ip: str = ""
    trusted_devices: frozenset[str] = frozenset()

    @classmethod
    def empty(cls) -> RiskHistory:
        return cls()


class BaselineAttribute(StrEnum):
    """The device attributes an organisation's baseline can trust values of."""

    OS_FAMILY = "os_family"
    BROWSER_FAMILY = "browser_family"
    DEVICE_ID = "device_id"


@dataclass(frozen=True, slots=True)
class OrgBaseline:
    """An organisation's trusted-device baseline: the attribute values it trusts.

    An empty attribute set means "not part of the baseline" (it never deviates);
    a baseline with every set empty is not evaluated at all. `threshold` (0..1)
    replaces `risk.signals.baseline_deviation.threshold` when set (by an override).
    """

    organisation: str
    os_families: frozenset[str] = frozenset()
    browser_families: frozenset[str] = frozenset()
    device_ids: frozenset[str] = frozenset()
    threshold: float | None = None

    @property
    def is_defined(self) -> bool:
        return bool(self.os_families or self.browser_families or self.device_ids)


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    score: float
    level: RiskLevel
    signals: tuple[Signal, ...]  # in Signal declaration order, so headers are stable
    baseline_deviation: float  # 0 (matches the baseline) .. 1 (matches nothing)

    def has(self, signal: Signal) -> bool:
        return signal in self.signals

    @property
    def signal_names(self) -> str:
        """Comma-separated, for headers and logs ("" when none)."""
        return ",".join(self.signals)
