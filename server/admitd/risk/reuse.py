"""Reuse a risk assessment for an unchanged attempt within a second.

A client that sends many requests on one session sends the same device ID, user
agent and IP each time, and the user's history has not moved in between: assessing
again (parsing the IP twice, the user agent, the reputation lookup) costs more than
the rest of the Check. So an assessment is kept for `REUSE_SECONDS`, keyed by
everything it was computed from except the clock:

- the session, user, organisation and roles; whether the user is privileged and
  whether their MFA is fresh (both decided anew for each request),
- the raw header values the telemetry reads (device ID, user agent, anomaly score,
  the geo headers) and the source address,
- the user's risk history exactly as read with the session (compared for equality),
- the reputation lists' generation (a reload is a miss) and the organisation's
  baseline object (a new one is a miss).

Only the clock is left out, and time only ever lowers a risk score: the travel speed
from the last known place falls as time passes. So a reused answer is never laxer
than a fresh one. Its telemetry keeps the time of the first of the identical attempts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from admitd.core.identity import User
from admitd.risk.model import RiskAssessment, RiskHistory, Telemetry

__all__ = ["REUSE_SECONDS", "Assessed", "RecentAssessments", "ReuseKey", "reuse_key"]

REUSE_SECONDS = 1.0
MAX_ENTRIES = 10_000  # one per live (session, device, IP, user agent); bounded memory

ReuseKey = tuple[object, ...]
Assessed = tuple[Telemetry, RiskHistory, RiskAssessment]


@dataclass(frozen=True, slots=True)
class _Entry:
    at: float
    risk_state: Mapping[str, str]
    baseline: object
    telemetry: Telemetry
    history: RiskHistory
    assessment: RiskAssessment


class RecentAssessments:
    def __init__(self, seconds: float = REUSE_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self._seconds, self._max = seconds, max_entries
        self._entries: dict[ReuseKey, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, key: ReuseKey, risk_state: Mapping[str, str], baseline: object, now: float
    ) -> Assessed | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not 0.0 <= now - entry.at < self._seconds:  # stale, or the clock went back
            del self._entries[key]
            return None
        if entry.baseline is not baseline or entry.risk_state != risk_state:
            return None
        return entry.telemetry, entry.history, entry.assessment

    def put(
        self,
        key: ReuseKey,
        risk_state: Mapping[str, str],
        baseline: object,
        assessed: Assessed,
    ) -> None:
        if key not in self._entries and len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]  # the oldest insertion
        telemetry, history, assessment = assessed
        self._entries[key] = _Entry(
            telemetry.at, dict(risk_state), baseline, telemetry, history, assessment
        )

    def clear(self) -> None:
        self._entries.clear()


def reuse_key(
    user: User,
    headers: Mapping[str, str],
    source_address: str,
    header_names: tuple[str, ...],
    *,
    privileged: bool,
    mfa_fresh: bool,
    reputation_generation: int,
) -> ReuseKey:
    """Everything an assessment depends on but the history, the baseline and the clock."""
    return (
        user.session_id,
        user.user_id,
        user.organisation,
        user.roles,
        privileged,
        mfa_fresh,
        source_address,
        reputation_generation,
        *(headers.get(name) for name in header_names),
    )
