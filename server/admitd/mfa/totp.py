"""TOTP (RFC 6238) second factor: sealed secrets, single-use codes, rate-limited attempts.

A code is accepted for the current 30-second step or one step either side
(RFC 6238 section 5.2 recommends at most one step of network delay). Each
accepted step is marked in the shared state store with SET NX, so the same code
is refused on every replica afterwards (section 5.2: "MUST NOT accept the second
attempt of the OTP after the successful validation"). Secrets are 160 bits
(RFC 4226 section 4 recommends that length) and are kept only sealed.
"""

from __future__ import annotations

import base64
import hmac
import secrets

import pyotp

from admitd.envelope import Context, RecordType, Sealer, envelope_from_json, json_from_envelope
from admitd.mfa.attempts import AttemptLimiter
from admitd.mfa.config import MfaConfig
from admitd.mfa.ports import MfaResult, TotpEnrolment
from admitd.mfa.qr import qr_png_base64
from admitd.mfa.state import MfaStateStore
from admitd.sessions.keys import user_key
from admitd.sessions.model import MfaMethod
from admitd.sessions.store import SessionStore
from admitd.sessions.tokens import user_tag

__all__ = [
    "DIGITS",
    "DRIFT_STEPS",
    "STEP_SECONDS",
    "TotpService",
    "matching_step",
    "new_totp_secret",
]

STEP_SECONDS = 30
DRIFT_STEPS = 1
DIGITS = 6
SECRET_BYTES = 20  # 160 bits
# A code for step s is acceptable from step s - 1 until step s + 1 ends (90 s);
# its replay mark outlives that window by one more step.
_USED_TTL = (2 * DRIFT_STEPS + 2) * STEP_SECONDS


def new_totp_secret() -> str:
    """A fresh base32 secret (32 characters, no padding)."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


class TotpService:
    """Implements `admitd.mfa.ports.TotpFactor`."""

    def __init__(
        self, state: MfaStateStore, sealer: Sealer, sessions: SessionStore, config: MfaConfig
    ) -> None:
        self._state = state
        self._sealer = sealer
        self._sessions = sessions
        self._config = config
        self._limiter = AttemptLimiter(state, config, factor="totp")

    async def begin_enrolment(self, user_id: str, organisation: str, now: float) -> TotpEnrolment:
        """A new pending secret replaces any earlier pending one; the active one stays."""
        secret = new_totp_secret()
        sealed = await self._seal(secret, user_id, organisation)
        ttl = self._config.enrolment_ttl_seconds
        await self._state.put(_key(user_id, "pending"), sealed, ttl=ttl)
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
            name=user_id, issuer_name=self._config.totp_issuer
        )
        return TotpEnrolment(provisioning_uri=uri, qr_png_base64=qr_png_base64(uri))

    async def confirm_enrolment(
        self, user_id: str, organisation: str, code: str, now: float
    ) -> MfaResult:
        """Activate the pending secret if `code` is valid for it."""
        sealed = await self._state.get(_key(user_id, "pending"))
        if sealed is None:
            return MfaResult.NOT_ENROLLED
        result = await self._check(user_id, organisation, sealed, code, now)
        if result is MfaResult.OK:
            await self._state.put(_key(user_id, "secret"), sealed)
            await self._state.delete(_key(user_id, "pending"))
            await self._sessions.set_factor(user_id, MfaMethod.TOTP, active=True, at=now)
        return result

    async def verify(self, user_id: str, organisation: str, code: str, now: float) -> MfaResult:
        """Check a code against the active secret: ±1 step, single use, rate-limited."""
        sealed = await self._state.get(_key(user_id, "secret"))
        if sealed is None:
            return MfaResult.NOT_ENROLLED
        return await self._check(user_id, organisation, sealed, code, now)

    async def _check(
        self, user_id: str, organisation: str, sealed: str, code: str, now: float
    ) -> MfaResult:
        # The attempt is reserved (and counted as a failure) before the code is tried,
        # atomically: a burst of guesses cannot all slip past one check of the count.
        if await self._limiter.reserve(user_id, now) > 0:
            return MfaResult.LOCKED_OUT
        secret = await self._open(sealed, user_id, organisation)
        step = matching_step(secret, code, now)
        if step is None:
            return MfaResult.INVALID
        if not await self._state.set_if_absent(_key(user_id, f"used:{step}"), "1", _USED_TTL):
            # Someone already used this code: possibly an observer replaying it.
            return MfaResult.REPLAYED
        await self._limiter.reset(user_id)
        return MfaResult.OK

    async def _seal(self, secret: str, user_id: str, organisation: str) -> str:
        plaintext = secret.encode("ascii")
        envelope = await self._sealer.seal(plaintext, _context(user_id, organisation))
        return json_from_envelope(envelope)

    async def _open(self, sealed: str, user_id: str, organisation: str) -> str:
        envelope = envelope_from_json(sealed)
        plaintext = await self._sealer.open(envelope, _context(user_id, organisation))
        return plaintext.decode("ascii")


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step within ±DRIFT_STEPS whose code equals `code`, else None.

    Every candidate is computed and compared in constant time, so the time taken
    says nothing about which step (if any) matched.
    """
    # Authenticator apps show "123 456"; people type what they see.
    candidate = code.replace(" ", "").encode("utf-8")
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int(now // STEP_SECONDS)
    matched: int | None = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        expected = totp.generate_otp(step).encode("ascii")
        if hmac.compare_digest(expected, candidate) and matched is None:
            matched = step
    return matched


def _key(user_id: str, name: str) -> str:
    return user_key(user_tag(user_id), f"totp:{name}")


def _context(user_id: str, organisation: str) -> Context:
    return Context(RecordType.TOTP_SECRET, user_id, organisation)
