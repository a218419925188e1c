"""The session record and the outcome of looking one up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

__all__ = ["MfaMethod", "Session", "SessionLookup", "SessionState"]


def _no_state() -> Mapping[str, str]:
    return MappingProxyType({})


class MfaMethod(StrEnum):
    TOTP = "totp"
    PASSKEY = "passkey"


@dataclass(frozen=True, slots=True)
class Session:
    """One login of one user on one device. Times are Unix seconds (UTC).

    `session_id` is the SHA-256 of the token the client holds; the token itself
    is never stored. `factors` are the user's active second factors at lookup time.
    """

    session_id: str
    user_id: str
    organisation: str
    roles: frozenset[str]
    device_id: str
    created_at: float
    last_seen_at: float
    idle_timeout: float
    absolute_expires_at: float
    mfa_verified_at: float | None = None
    mfa_method: MfaMethod | None = None
    factors: frozenset[MfaMethod] = frozenset()
    # Until when this session may enrol the user's first second factor: set only by the
    # login service right after primary authentication (CreateSession), used up by the
    # first registration attempt (SessionStore.take_enrolment_grant).
    enrolment_grant_until: float | None = None
    # The user's device-risk state (known devices, last location), read in the same
    # pipeline as the session so risk evaluation costs no extra round trip.
    risk_state: Mapping[str, str] = field(default_factory=_no_state, compare=False)

    def is_expired(self, now: float) -> bool:
        return now >= self.absolute_expires_at or now >= self.last_seen_at + self.idle_timeout

    def mfa_age(self, now: float) -> float | None:
        """Seconds since the last MFA verification, or None if never verified."""
        return None if self.mfa_verified_at is None else max(0.0, now - self.mfa_verified_at)

    def has_enrolment_grant(self, now: float) -> bool:
        return self.enrolment_grant_until is not None and now < self.enrolment_grant_until

    def with_mfa(self, verified_at: float, method: MfaMethod) -> Session:
        return replace(self, mfa_verified_at=verified_at, mfa_method=method)


class SessionState(StrEnum):
    """What looking up the request's session found."""

    NOT_PRESENTED = "not_presented"  # the request carries no session token
    MALFORMED = "malformed"  # a token, but not one admitd could have issued
    UNKNOWN = "unknown"  # well-formed, but no such session (revoked, expired, never existed)
    EXPIRED = "expired"
    ACTIVE = "active"
    UNAVAILABLE = "unavailable"  # the store could not answer: fail closed


@dataclass(frozen=True, slots=True)
class SessionLookup:
    state: SessionState
    session: Session | None = None
    carrier: str = ""  # "cookie" or "bearer"

    @classmethod
    def of(cls, state: SessionState, carrier: str = "") -> SessionLookup:
        return cls(state, None, carrier)
