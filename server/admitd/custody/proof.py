"""Just-in-time proof that a custodian verified a passkey, with user verification, just now.

The caller sends their own admitd session token. It must name a live session of the
custodian's user whose last step-up was a passkey within `keys.mfa_max_age_seconds`,
and the user's last passkey receipt (written by `PasskeyService` only after an
assertion with user verification passed) must be as fresh, from an authenticator on
`keys.aaguids` when that list is set. The receipt is required as well as the session
because a session's MFA fields can also be set by the login service (CreateSession);
the receipt cannot: only a verified WebAuthn assertion writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from admitd.admin.errors import PreconditionFailed
from admitd.mfa.passkey_store import PasskeyStore
from admitd.sessions.model import MfaMethod
from admitd.sessions.store import SessionStore
from admitd.sessions.tokens import parse_session_token

__all__ = ["MfaRefused", "PasskeyProof", "ProofChecker"]

_STEP_UP = "step up with a passkey (user verification required) on the step-up page, then retry"


class MfaRefused(PreconditionFailed):
    """No fresh passkey proof; `why` is the audit reason (the message says how to fix it)."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__(f"{message}: {_STEP_UP}")
        self.why = why


@dataclass(frozen=True, slots=True)
class PasskeyProof:
    """What the audit log records about the verification that vouched for a call."""

    session_id: str
    verified_at: float
    aaguid: str


class ProofChecker:
    def __init__(
        self,
        sessions: SessionStore,
        passkeys: PasskeyStore,
        *,
        max_age_seconds: float,
        aaguids: frozenset[str] = frozenset(),
    ) -> None:
        self._sessions, self._passkeys = sessions, passkeys
        self._max_age, self._aaguids = max_age_seconds, aaguids

    async def check(self, user_id: str, session_token: str, now: float) -> PasskeyProof:
        """The proof for `user_id`, or MfaRefused (FAILED_PRECONDITION) saying why not."""
        ref = parse_session_token(session_token)
        session = await self._sessions.get(ref) if ref is not None else None
        if ref is None or session is None or session.is_expired(now):
            raise MfaRefused("no_session", "no live admitd session in session_token")
        if session.user_id != user_id:
            # Someone else's session: as good as none (and named in the audit log).
            raise MfaRefused("other_user", "the session is not your custodian user's")
        age = session.mfa_age(now)
        if age is None or session.mfa_method is not MfaMethod.PASSKEY:
            why = "totp_only" if session.mfa_method is MfaMethod.TOTP else "no_mfa"
            raise MfaRefused(why, "the session's last step-up was not a passkey")
        if age > self._max_age:
            raise MfaRefused("stale", f"the passkey verification is older than {self._max_age:g} s")
        receipt = await self._passkeys.last_verification(user_id)
        if receipt is None:
            raise MfaRefused("no_receipt", "admitd has no record of a passkey verification")
        if not 0 <= now - receipt.verified_at <= self._max_age:
            raise MfaRefused("stale", f"the passkey verification is older than {self._max_age:g} s")
        if self._aaguids and receipt.aaguid not in self._aaguids:
            raise MfaRefused("aaguid", "the passkey's authenticator model is not on keys.aaguids")
        return PasskeyProof(ref.session_id, receipt.verified_at, receipt.aaguid)
