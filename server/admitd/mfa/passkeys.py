"""Passkeys (WebAuthn Level 2) with the `webauthn` package: `PasskeyService` is a `PasskeyFactor`.

Both ceremonies require user verification (the authenticator checked a PIN or
biometric, not just presence), so a passkey is a whole second factor on its own.
Challenges are single use and live `challenge_ttl` seconds; credentials (public
key, sign count, transports) are sealed per user under RecordType.PASSKEY_CREDENTIAL.
Each answered challenge reserves an attempt (atomically, before it is checked) that
counts as a failure until it succeeds; `max_failures` lock the factor out for a while.
Each credential keeps the AAGUID its authenticator reported at registration, and each
successful authentication leaves a receipt (when, which credential, that AAGUID) that
key custody (`admitd.custody`) requires as its just-in-time proof.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from admitd.envelope import Context, RecordType, Sealer, envelope_from_json, json_from_envelope
from admitd.mfa.passkey_store import PasskeyStore, PasskeyVerification
from admitd.mfa.ports import MfaResult
from admitd.sessions.model import MfaMethod
from admitd.sessions.store import SessionStore

__all__ = ["PasskeyPolicy", "PasskeyService", "webauthn_user_handle"]

_REGISTER, _AUTHENTICATE = "register", "authenticate"
# What untrusted credential JSON can make the parser or the verifier raise.
_BAD_INPUT = (WebAuthnException, ValueError, TypeError, KeyError, IndexError)


@dataclass(frozen=True, slots=True)
class PasskeyPolicy:
    rp_id: str  # the registrable domain the credentials are scoped to, e.g. "example.com"
    rp_name: str
    origins: tuple[str, ...]  # exact origins the browser may report, e.g. "https://example.com"
    challenge_ttl: float = 120.0
    max_failures: int = 5
    failure_window: float = 900.0  # the lockout lasts until this window ends


@dataclass(frozen=True, slots=True)
class _Credential:
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    created_at: float
    # The authenticator model (registration's attested credential data); "" for
    # credentials registered before admitd kept it.
    aaguid: str = ""

    def to_json(self) -> bytes:
        record = {
            "public_key": bytes_to_base64url(self.public_key),
            "sign_count": self.sign_count,
            "transports": list(self.transports),
            "created_at": self.created_at,
            "aaguid": self.aaguid,
        }
        return json.dumps(record, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> _Credential:
        record = json.loads(data)
        return cls(
            public_key=base64url_to_bytes(record["public_key"]),
            sign_count=int(record["sign_count"]),
            transports=tuple(record["transports"]),
            created_at=float(record["created_at"]),
            aaguid=str(record.get("aaguid", "")),
        )


def webauthn_user_handle(user_id: str) -> bytes:
    """The WebAuthn user.id: stable per user, but not the user ID itself (it is not secret-free)."""
    return hashlib.sha256(b"admitd-webauthn-user\x00" + user_id.encode()).digest()


class PasskeyService:
    """Registration and authentication ceremonies; every outcome is an `MfaResult`."""

    def __init__(
        self, store: PasskeyStore, sealer: Sealer, sessions: SessionStore, policy: PasskeyPolicy
    ) -> None:
        self._store, self._sealer, self._sessions, self._policy = store, sealer, sessions, policy

    async def registration_options(self, user_id: str, user_name: str, now: float) -> str:
        challenge = secrets.token_bytes(32)
        existing = await self._store.credential_ids(user_id)
        options = generate_registration_options(
            rp_id=self._policy.rp_id,
            rp_name=self._policy.rp_name,
            user_name=user_name,
            user_id=webauthn_user_handle(user_id),
            challenge=challenge,
            timeout=int(self._policy.challenge_ttl * 1000),
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            # The same authenticator must not be enrolled twice for one user.
            exclude_credentials=[_descriptor(c) for c in existing],
        )
        await self._put_challenge(user_id, _REGISTER, challenge, now)
        return options_to_json(options)

    async def register(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult:
        challenge = await self._store.take_challenge(user_id, _REGISTER, now=now)
        if challenge is None:
            return MfaResult.INVALID  # expired or already used: not counted as a guess
        attempt = await self._reserve(user_id, now)
        if attempt is None:
            return MfaResult.LOCKED_OUT
        try:
            parsed = parse_registration_credential_json(credential_json)
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._policy.rp_id,
                expected_origin=list(self._policy.origins),
                require_user_verification=True,
            )
        except _BAD_INPUT:
            return self._failed(attempt)
        had_any = bool(await self._store.credential_ids(user_id))
        transports = tuple(t.value for t in parsed.response.transports or ())
        record = _Credential(
            verified.credential_public_key, verified.sign_count, transports, now, verified.aaguid
        )
        credential_id = bytes_to_base64url(verified.credential_id)
        sealed = await self._seal(user_id, organisation, credential_id, record)
        if not await self._store.save_credential(user_id, credential_id, sealed, expected=None):
            return self._failed(attempt)  # this credential is already enrolled
        if not had_any:
            await self._sessions.set_factor(user_id, MfaMethod.PASSKEY, active=True, at=now)
        await self._store.clear_failures(user_id)  # the reservation counted it as a failure
        return MfaResult.OK

    async def authentication_options(self, user_id: str, now: float) -> str:
        challenge = secrets.token_bytes(32)
        options = generate_authentication_options(
            rp_id=self._policy.rp_id,
            challenge=challenge,
            timeout=int(self._policy.challenge_ttl * 1000),
            allow_credentials=[_descriptor(c) for c in await self._store.credential_ids(user_id)],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        await self._put_challenge(user_id, _AUTHENTICATE, challenge, now)
        return options_to_json(options)

    async def authenticate(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult:
        challenge = await self._store.take_challenge(user_id, _AUTHENTICATE, now=now)
        if challenge is None:
            return MfaResult.INVALID
        if not await self._store.credential_ids(user_id):
            return MfaResult.NOT_ENROLLED  # nothing to guess: not counted
        # Reserved before anything is checked, atomically: concurrent ceremonies on any
        # replica cannot all pass one look at the count.
        attempt = await self._reserve(user_id, now)
        if attempt is None:
            return MfaResult.LOCKED_OUT
        try:
            parsed = parse_authentication_credential_json(credential_json)
        except _BAD_INPUT:
            return self._failed(attempt)
        sealed = await self._store.credential(user_id, parsed.id)
        if sealed is None:
            return self._failed(attempt)  # another user's or an unknown credential
        if parsed.response.user_handle not in (None, webauthn_user_handle(user_id)):
            return self._failed(attempt)
        record = await self._open(user_id, organisation, parsed.id, sealed)
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._policy.rp_id,
                expected_origin=list(self._policy.origins),
                credential_public_key=record.public_key,
                # The library refuses a count that did not increase (when either is
                # non-zero): the sign of a cloned authenticator (WebAuthn §6.1.1).
                credential_current_sign_count=record.sign_count,
                require_user_verification=True,
            )
        except _BAD_INPUT:
            return self._failed(attempt)
        updated = _Credential(
            record.public_key,
            verified.new_sign_count,
            record.transports,
            record.created_at,
            record.aaguid,
        )
        new_sealed = await self._seal(user_id, organisation, parsed.id, updated)
        # Compare-and-set: two assertions racing with the same count cannot both win.
        if not await self._store.save_credential(user_id, parsed.id, new_sealed, expected=sealed):
            return self._failed(attempt)
        await self._store.clear_failures(user_id)
        # Only ever written here, after an assertion with user verification passed.
        await self._store.record_verification(
            user_id, PasskeyVerification(now, parsed.id, record.aaguid)
        )
        return MfaResult.OK

    async def _put_challenge(
        self, user_id: str, ceremony: str, challenge: bytes, now: float
    ) -> None:
        ttl = self._policy.challenge_ttl
        await self._store.put_challenge(user_id, ceremony, challenge, ttl=ttl, now=now)

    async def _reserve(self, user_id: str, now: float) -> int | None:
        """The attempt's number in the failure window, or None when the factor is locked out."""
        policy = self._policy
        return await self._store.reserve_attempt(
            user_id, max_failures=policy.max_failures, window=policy.failure_window, now=now
        )

    def _failed(self, attempt: int) -> MfaResult:
        # The reservation already counted this attempt; the last one allowed locks out.
        return MfaResult.LOCKED_OUT if attempt >= self._policy.max_failures else MfaResult.INVALID

    async def _seal(
        self, user_id: str, organisation: str, credential_id: str, rec: _Credential
    ) -> str:
        context = _context(user_id, organisation, credential_id)
        return json_from_envelope(await self._sealer.seal(rec.to_json(), context))

    async def _open(
        self, user_id: str, organisation: str, credential_id: str, sealed: str
    ) -> _Credential:
        context = _context(user_id, organisation, credential_id)
        return _Credential.from_json(await self._sealer.open(envelope_from_json(sealed), context))


def _context(user_id: str, organisation: str, credential_id: str) -> Context:
    # Bound to the user too: a record copied under another user's key will not open.
    return Context(RecordType.PASSKEY_CREDENTIAL, credential_id, organisation, (("user", user_id),))


def _descriptor(credential_id: str) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(credential_id))
