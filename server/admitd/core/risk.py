"""A device-risk verdict as the decision sees it: level, named signals, score."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RiskAssessment", "RiskLevel", "Signal"]


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
