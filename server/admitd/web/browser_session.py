"""A session started by a browser sign-in (the IdP's callback, the dev sign-in page).

Both make the same session a login service's CreateSession would, record the login's device
telemetry, and hand the browser the same cookie; written once here so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from admitd.core.identity import MfaMethod
from admitd.sessions import Session, SessionRef, SessionStore, new_session_token
from admitd.sessions.config import SessionsConfig
from admitd.sessions.store import LoginHook

__all__ = ["BrowserSessions", "LoginHook", "NewUser", "client_ip"]


@dataclass(frozen=True, slots=True)
class NewUser:
    """Who signed in, and what their login proved."""

    user_id: str
    organisation: str
    roles: frozenset[str]
    mfa_verified_at: float | None = None
    mfa_method: MfaMethod | None = None
    idp_factors: frozenset[MfaMethod] = frozenset()
    enrolment_grant_until: float | None = None


@dataclass(frozen=True, slots=True)
class BrowserSessions:
    store: SessionStore
    sessions: SessionsConfig
    on_login: LoginHook | None = None
    device_header: str = "x-device-id"

    async def start(
        self, request: web.Request, user: NewUser, now: float
    ) -> tuple[Session, SessionRef, str]:
        """Store a new session for `user`; (session, ref, token). The token goes only into
        the cookie (`set_cookie`), never into a log."""
        token, ref = new_session_token(user.user_id)
        session = Session(
            session_id=ref.session_id,
            user_id=user.user_id,
            organisation=user.organisation,
            roles=user.roles,
            device_id=request.headers.get(self.device_header, "")[:128],
            created_at=now,
            last_seen_at=now,
            idle_timeout=float(self.sessions.idle_timeout),
            absolute_expires_at=now + self.sessions.absolute_timeout,
            mfa_verified_at=user.mfa_verified_at,
            mfa_method=user.mfa_method,
            idp_factors=user.idp_factors,
            enrolment_grant_until=user.enrolment_grant_until,
        )
        await self.store.create(ref, session)
        if self.on_login is not None:
            agent = request.headers.get("User-Agent", "")
            await self.on_login(session, agent, client_ip(request), now)
        return session, ref, token

    def set_cookie(self, response: web.StreamResponse, session: Session, token: str) -> None:
        response.set_cookie(
            self.sessions.cookie_name, token, path="/",
            max_age=int(session.absolute_expires_at - session.created_at),
            secure=True, httponly=True, samesite="Lax",
        )  # fmt: skip


def client_ip(request: web.Request) -> str:
    # Behind Envoy (the only way in), the address Envoy saw, as it sets it for us.
    return request.headers.get("x-envoy-external-address") or request.remote or ""
