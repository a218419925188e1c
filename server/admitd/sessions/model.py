"""The session record admitd stores, and the user it vouches for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from admitd.core.identity import MfaMethod, User

__all__ = ["MfaMethod", "Session", "user_from_session"]


def _no_state() -> Mapping[str, str]:
    return MappingProxyType({})


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
    # The factors the IdP vouched for at an OIDC sign-in (its `amr`, or `assume_mfa_enrolled`):
    # the user's second factor lives there, so admitd holds no enrolment of its own.
    idp_factors: frozenset[MfaMethod] = frozenset()
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


def user_from_session(session: Session) -> User:
    """The user a live admitd session vouches for (the core's view of it)."""
    return User(
        user_id=session.user_id,
        organisation=session.organisation,
        roles=session.roles,
        session_id=session.session_id,
        device_id=session.device_id,
        factors=session.factors | session.idp_factors,
        mfa_verified_at=session.mfa_verified_at,
        mfa_method=session.mfa_method,
    )
