"""Risk inputs: one attempt's telemetry, a user's history, organisation baselines.

The verdict types (`RiskLevel`, `Signal`, `RiskAssessment`) belong to the decision core
(`admitd.core.risk`); they are re-exported here for the risk engine's callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from admitd.core.risk import RiskAssessment, RiskLevel, Signal

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
