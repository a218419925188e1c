"""The one builder of test sessions: every field has a default, times count back from `now`."""

from __future__ import annotations

import time
from collections.abc import Iterable

from admitd.sessions import MfaMethod, Session

__all__ = ["make_session"]


def make_session(
    session_id: str = "ab" * 32,
    *,
    user_id: str = "alice",
    organisation: str = "acme",
    roles: Iterable[str] = (),
    device_id: str = "d1",
    now: float | None = None,
    created_ago: float = 0.0,
    seen_ago: float = 0.0,
    idle_timeout: float = 600.0,
    expires_in: float = 3600.0,
    mfa_ago: float | None = None,
    mfa_method: MfaMethod = MfaMethod.TOTP,
    factors: Iterable[MfaMethod] = (),
    enrolment_grant_for: float | None = None,
) -> Session:
    """A session just created at `now` (default: the wall clock, for tests against real stores).

    `mfa_ago=None` means never verified (and then `mfa_method` is ignored);
    `enrolment_grant_for` is how many more seconds it may enrol a first factor.
    """
    at = time.time() if now is None else now
    return Session(
        session_id=session_id,
        user_id=user_id,
        organisation=organisation,
        roles=frozenset(roles),
        device_id=device_id,
        created_at=at - created_ago,
        last_seen_at=at - seen_ago,
        idle_timeout=idle_timeout,
        absolute_expires_at=at + expires_in,
        mfa_verified_at=None if mfa_ago is None else at - mfa_ago,
        mfa_method=None if mfa_ago is None else mfa_method,
        factors=frozenset(factors),
        enrolment_grant_until=None if enrolment_grant_for is None else at + enrolment_grant_for,
    )
