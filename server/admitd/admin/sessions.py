"""What the admin API does, free of protobuf: create, list, revoke sessions; TOTP; step-up.

Rule: a user asking for a privileged role (admin, finance, analyst, auditor by
default) must already have an active second factor, else no session is created:
such a session could never pass a step-up check, and creating it anyway would
leave a privileged session that only a later MFA would constrain.

A user's first factor is enrolled either by the login service itself (TOTP via
BeginTotpEnrolment/ConfirmTotpEnrolment, authorised by its mTLS certificate) or, for
a passkey on the step-up page, by a session the login service created with an
enrolment grant (`enrolment_grant_seconds`): short, single use.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from admitd.admin.errors import InvalidRequest, PreconditionFailed, SessionNotFound
from admitd.mfa.ports import MfaResult, TotpEnrolment, TotpFactor
from admitd.sessions.model import MfaMethod, Session
from admitd.sessions.store import LoginHook, SessionStore
from admitd.sessions.tokens import SessionRef, new_session_token, parse_session_token, user_tag

__all__ = [
    "MAX_ENROLMENT_GRANT_SECONDS",
    "CreatedSession",
    "DeviceTelemetry",
    "NewSession",
    "SessionAdmin",
    "ref_for_session",
]

_MAX_TEXT = 256
# A first-factor enrolment grant is for "right after this login", not for the session's life.
MAX_ENROLMENT_GRANT_SECONDS = 3600
_FUTURE_SKEW = 60.0  # seconds an mfa_verified_at may run ahead of our clock
_SESSION_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class DeviceTelemetry:
    """As reported by the login service; kept for the device-risk checks."""

    user_agent: str | None = None
    ip: str | None = None
    geo: str | None = None


@dataclass(frozen=True, slots=True)
class NewSession:
    user_id: str
    organisation: str
    roles: frozenset[str]
    device_id: str
    telemetry: DeviceTelemetry = field(default_factory=DeviceTelemetry)
    mfa_verified_at: float | None = None
    mfa_method: MfaMethod | None = None
    # The session may enrol the user's first factor this long (single use); None: it may not.
    enrolment_grant_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class CreatedSession:
    token: str = field(repr=False)  # shown to the caller once, never stored
    session: Session


def ref_for_session(user_id: str, session_id: str) -> SessionRef:
    """The store key of a session named by its user and ID (as listed), not its token."""
    _text("user_id", user_id)
    if not _SESSION_ID.fullmatch(session_id):
        raise InvalidRequest("session_id must be 64 lowercase hex digits (as listed)")
    return SessionRef(user_tag(user_id), session_id)


def ref_for_token(token: str) -> SessionRef:
    ref = parse_session_token(token)
    if ref is None:
        raise InvalidRequest("not a session token admitd issued")
    return ref


class SessionAdmin:
    def __init__(
        self,
        store: SessionStore,
        totp: TotpFactor,
        *,
        idle_timeout: float,
        absolute_timeout: float,
        privileged_roles: Iterable[str],
        clock: Callable[[], float] = time.time,
        on_login: LoginHook | None = None,
    ) -> None:
        self._store, self._totp, self._clock = store, totp, clock
        self._on_login = on_login
        self._idle, self._absolute = float(idle_timeout), float(absolute_timeout)
        self._privileged = frozenset(privileged_roles)

    async def create(self, request: NewSession) -> CreatedSession:
        """Raises PreconditionFailed for a privileged role without an active factor."""
        now = self._clock()
        _check_new_session(request, now)
        privileged = request.roles & self._privileged
        if privileged and not await self._store.factors(request.user_id):
            raise PreconditionFailed(
                f"user has privileged role(s) {', '.join(sorted(privileged))} but no active"
                " second factor: enrol TOTP (BeginTotpEnrolment + ConfirmTotpEnrolment)"
                " or a passkey before creating a session"
            )
        token, ref = new_session_token(request.user_id)
        session = Session(
            session_id=ref.session_id,
            user_id=request.user_id,
            organisation=request.organisation,
            roles=request.roles,
            device_id=request.device_id,
            created_at=now,
            last_seen_at=now,
            idle_timeout=self._idle,
            absolute_expires_at=now + self._absolute,
            mfa_verified_at=request.mfa_verified_at,
            mfa_method=request.mfa_method,
            enrolment_grant_until=_grant_until(request, now),
        )
        await self._store.create(ref, session)
        if self._on_login is not None:
            # Device telemetry of this authentication attempt: assessed and recorded (sealed).
            telemetry = request.telemetry
            await self._on_login(session, telemetry.user_agent or "", telemetry.ip or "", now)
        return CreatedSession(token, session)

    async def list_user(self, user_id: str) -> tuple[list[Session], frozenset[MfaMethod]]:
        _text("user_id", user_id)
        sessions = await self._store.list_user(user_id)
        return sorted(sessions, key=lambda s: s.created_at), await self._store.factors(user_id)

    async def revoke(self, ref: SessionRef) -> bool:
        return await self._store.revoke(ref)

    async def revoke_user(self, user_id: str) -> int:
        _text("user_id", user_id)
        return await self._store.revoke_user(user_id)

    async def begin_totp(self, user_id: str, organisation: str) -> TotpEnrolment:
        _text("user_id", user_id)
        _text("organisation", organisation)
        return await self._totp.begin_enrolment(user_id, organisation, self._clock())

    async def confirm_totp(self, user_id: str, organisation: str, code: str) -> MfaResult:
        _text("user_id", user_id)
        _text("organisation", organisation)
        return await self._totp.confirm_enrolment(user_id, organisation, code, self._clock())

    async def verify_mfa(self, ref: SessionRef, code: str) -> tuple[MfaResult, float | None]:
        """Check a TOTP code for the session's user; OK refreshes the session's MFA time."""
        now = self._clock()
        session = await self._store.get(ref)
        if session is None or session.is_expired(now):
            raise SessionNotFound("no such session (revoked, expired or never issued)")
        result = await self._totp.verify(session.user_id, session.organisation, code, now)
        if result is not MfaResult.OK:
            return result, None
        if not await self._store.set_mfa(ref, now, MfaMethod.TOTP):
            raise SessionNotFound("the session was revoked while verifying")
        return result, now


def _check_new_session(request: NewSession, now: float) -> None:
    _text("user_id", request.user_id)
    _text("organisation", request.organisation)
    _text("device_id", request.device_id)
    for role in request.roles:
        # Roles are stored comma-separated.
        if "," in role:
            raise InvalidRequest("a role must not contain ','")
        _text("roles", role)
    for name in ("user_agent", "ip", "geo"):
        value = getattr(request.telemetry, name)
        if value is not None and len(value) > 1024:
            raise InvalidRequest(f"{name} is longer than 1024 characters")
    at, method = request.mfa_verified_at, request.mfa_method
    if (at is None) != (method is None):
        raise InvalidRequest("mfa_verified_at and mfa_method go together")
    if at is not None and not 0 < at <= now + _FUTURE_SKEW:
        raise InvalidRequest("mfa_verified_at must be a past Unix time")
    grant = request.enrolment_grant_seconds
    if grant is not None and not 1 <= grant <= MAX_ENROLMENT_GRANT_SECONDS:
        raise InvalidRequest(
            f"enrolment_grant_seconds must be 1-{MAX_ENROLMENT_GRANT_SECONDS} (600 is typical)"
        )


def _grant_until(request: NewSession, now: float) -> float | None:
    seconds = request.enrolment_grant_seconds
    return None if seconds is None else now + seconds


def _text(name: str, value: str) -> None:
    if not value or len(value) > _MAX_TEXT or not value.isprintable():
        raise InvalidRequest(f"{name} must be 1-{_MAX_TEXT} printable characters")
