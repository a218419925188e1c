"""PasskeyService against a software authenticator: UV required, challenges, sign count, sealing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, encode_cbor

from admitd.envelope import Sealer, is_envelope_json
from admitd.errors import EnvelopeError
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa.passkey_store import MemoryPasskeyStore
from admitd.mfa.passkeys import PasskeyPolicy, PasskeyService, webauthn_user_handle
from admitd.mfa.ports import MfaResult
from admitd.sessions import MfaMethod
from admitd.sessions.memory_store import MemorySessionStore

RP_ID = "localhost"
ORIGIN = "https://localhost:8443"
NOW = 1_700_000_000.0
UP, UV, AT = 0x01, 0x04, 0x40


@dataclass
class SoftAuthenticator:
    """Just enough of a CTAP2 platform authenticator ("none" attestation, ES256)."""

    origin: str = ORIGIN
    user_verified: bool = True
    sign_count: int = 0
    count_step: int = 1
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = b"soft-credential-0001"
    user_handle: bytes = b""

    def create(self, options_json: str) -> str:
        options = json.loads(options_json)
        self.user_handle = base64url_to_bytes(options["user"]["id"])
        numbers = self.key.public_key().public_numbers()
        cose = {
            1: 2,
            3: -7,
            -1: 1,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
        attested = bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id
        auth_data = self._auth_data(options["rp"]["id"], AT) + attested + encode_cbor(cose)
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"])
        return json.dumps(
            {
                "id": bytes_to_base64url(self.credential_id),
                "rawId": bytes_to_base64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": bytes_to_base64url(client_data),
                    "attestationObject": bytes_to_base64url(attestation),
                    "transports": ["internal"],
                },
            }
        )

    def get(self, options_json: str) -> str:
        options = json.loads(options_json)
        self.sign_count += self.count_step
        auth_data = self._auth_data(options["rpId"], 0)
        client_data = self._client_data("webauthn.get", options["challenge"])
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": bytes_to_base64url(self.credential_id),
                "rawId": bytes_to_base64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": bytes_to_base64url(client_data),
                    "authenticatorData": bytes_to_base64url(auth_data),
                    "signature": bytes_to_base64url(signature),
                    "userHandle": bytes_to_base64url(self.user_handle),
                },
            }
        )

    def _auth_data(self, rp_id: str, extra_flags: int) -> bytes:
        flags = UP | (UV if self.user_verified else 0) | extra_flags
        rp_hash = hashlib.sha256(rp_id.encode()).digest()
        return rp_hash + bytes([flags]) + self.sign_count.to_bytes(4, "big")

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin}).encode()


@dataclass
class Rig:
    service: PasskeyService
    store: MemoryPasskeyStore
    sessions: MemorySessionStore
    sealer: Sealer


@pytest.fixture
def rig() -> Rig:
    store, sessions = MemoryPasskeyStore(), MemorySessionStore()
    sealer = Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))
    policy = PasskeyPolicy(rp_id=RP_ID, rp_name="admitd", origins=(ORIGIN,), max_failures=3)
    return Rig(PasskeyService(store, sealer, sessions, policy), store, sessions, sealer)


async def enrol(rig: Rig, authenticator: SoftAuthenticator, user: str = "alice") -> MfaResult:
    options = await rig.service.registration_options(user, user, NOW)
    return await rig.service.register(user, "acme", authenticator.create(options), NOW + 1)


async def sign_in(rig: Rig, authenticator: SoftAuthenticator, user: str = "alice") -> MfaResult:
    options = await rig.service.authentication_options(user, NOW + 10)
    return await rig.service.authenticate(user, "acme", authenticator.get(options), NOW + 11)


async def test_options_require_user_verification(rig: Rig) -> None:
    registration = json.loads(await rig.service.registration_options("alice", "alice", NOW))
    assert registration["authenticatorSelection"]["userVerification"] == "required"
    assert registration["rp"] == {"id": RP_ID, "name": "admitd"}
    assert base64url_to_bytes(registration["user"]["id"]) == webauthn_user_handle("alice")
    assert "alice" not in registration["user"]["id"]
    assert registration["timeout"] == 120_000
    authentication = json.loads(await rig.service.authentication_options("alice", NOW))
    assert authentication["userVerification"] == "required"
    assert authentication["rpId"] == RP_ID


async def test_register_then_authenticate(rig: Rig) -> None:
    authenticator = SoftAuthenticator()
    assert await enrol(rig, authenticator) is MfaResult.OK
    assert await rig.sessions.factors("alice") == {MfaMethod.PASSKEY}
    assert await sign_in(rig, authenticator) is MfaResult.OK
    assert await sign_in(rig, authenticator) is MfaResult.OK


async def test_credentials_are_sealed_and_bound_to_the_user(rig: Rig) -> None:
    authenticator = SoftAuthenticator()
    await enrol(rig, authenticator)
    (credential_id,) = await rig.store.credential_ids("alice")
    sealed = await rig.store.credential("alice", credential_id)
    assert sealed is not None and is_envelope_json(sealed)
    assert "public_key" not in sealed
    # The same record under another user does not open.
    await rig.store.save_credential("mallory", credential_id, sealed, expected=None)
    options = await rig.service.authentication_options("mallory", NOW)
    authenticator.user_handle = webauthn_user_handle("mallory")
    with pytest.raises(EnvelopeError):
        await rig.service.authenticate("mallory", "acme", authenticator.get(options), NOW)


async def test_excluded_credentials_on_second_registration(rig: Rig) -> None:
    await enrol(rig, SoftAuthenticator())
    options = json.loads(await rig.service.registration_options("alice", "alice", NOW))
    assert [c["id"] for c in options["excludeCredentials"]] == await rig.store.credential_ids(
        "alice"
    )


async def test_same_credential_cannot_be_registered_twice(rig: Rig) -> None:
    authenticator = SoftAuthenticator()
    assert await enrol(rig, authenticator) is MfaResult.OK
    assert await enrol(rig, authenticator) is MfaResult.INVALID


async def test_registration_without_user_verification_is_invalid(rig: Rig) -> None:
    assert await enrol(rig, SoftAuthenticator(user_verified=False)) is MfaResult.INVALID
    assert await rig.sessions.factors("alice") == frozenset()


async def test_assertion_without_user_verification_is_invalid(rig: Rig) -> None:
    authenticator = SoftAuthenticator()
    await enrol(rig, authenticator)
    authenticator.user_verified = False
    assert await sign_in(rig, authenticator) is MfaResult.INVALID


async def test_wrong_origin_is_invalid(rig: Rig) -> None:
    authenticator = SoftAuthenticator()
    await enrol(rig, authenticator)
    authenticator.origin = "https://evil.example"
    assert await sign_in(rig, authenticator) is MfaResult.INVALID


@pytest.mark.parametrize("step", [0, -1], ids=["same", "lower"])
async def test_sign_count_must_increase(rig: Rig, step: int) -> None:
    authenticator = SoftAuthenticator(sign_count=5)
    await enrol(rig, authenticator)
    assert await sign_in(rig, authenticator) is MfaResult.OK  # count 6 stored
    authenticator.count_step = step
    assert await sign_in(rig, authenticator) is MfaResult.INVALID


async def test_zero_sign_counts_are_allowed(rig: Rig) -> None:
    """Authenticators that do not count (always 0) are allowed, as WebAuthn says."""
    authenticator = SoftAuthenticator(count_step=0)
    await enrol(rig, authenticator)
    assert await sign_in(rig, authenticator) is MfaResult.OK
    assert await sign_in(rig, authenticator) is MfaResult.OK


async def test_challenge_is_single_use(rig: Rig) -> None:
    authenticator = SoftAuthenticator()
    await enrol(rig, authenticator)
    options = await rig.service.authentication_options("alice", NOW)
    response = authenticator.get(options)
    assert await rig.service.authenticate("alice", "acme", response, NOW + 1) is MfaResult.OK
    assert await rig.service.authenticate("alice", "acme", response, NOW + 2) is MfaResult.INVALID


async def test_challenge_expires_after_its_ttl(rig: Rig) -> None:
    authenticator = SoftAuthenticator()
    await enrol(rig, authenticator)
    options = await rig.service.authentication_options("alice", NOW)
    late = await rig.service.authenticate("alice", "acme", authenticator.get(options), NOW + 121)
    assert late is MfaResult.INVALID


async def test_registration_challenge_expires(rig: Rig) -> None:
    options = await rig.service.registration_options("alice", "alice", NOW)
    result = await rig.service.register(
        "alice", "acme", SoftAuthenticator().create(options), NOW + 120
    )
    assert result is MfaResult.INVALID


async def test_not_enrolled(rig: Rig) -> None:
    assert await sign_in(rig, SoftAuthenticator()) is MfaResult.NOT_ENROLLED


async def test_unknown_credential_for_an_enrolled_user_is_invalid(rig: Rig) -> None:
    await enrol(rig, SoftAuthenticator())
    stranger = SoftAuthenticator(credential_id=b"someone-else")
    assert await sign_in(rig, stranger) is MfaResult.INVALID


async def test_other_users_handle_is_refused(rig: Rig) -> None:
    authenticator = SoftAuthenticator()
    await enrol(rig, authenticator)
    authenticator.user_handle = webauthn_user_handle("bob")
    assert await sign_in(rig, authenticator) is MfaResult.INVALID


@pytest.mark.parametrize("garbage", ["", "{}", "[]", '{"id": 1}', "not json"])
async def test_garbage_credentials_are_invalid(rig: Rig, garbage: str) -> None:
    await enrol(rig, SoftAuthenticator())
    await rig.service.authentication_options("alice", NOW)
    assert await rig.service.authenticate("alice", "acme", garbage, NOW) is MfaResult.INVALID


async def test_failures_lock_the_factor_out_and_success_resets(rig: Rig) -> None:
    good = SoftAuthenticator()
    await enrol(rig, good)
    bad = SoftAuthenticator(user_verified=False, credential_id=good.credential_id, key=good.key)
    bad.user_handle = good.user_handle
    assert await sign_in(rig, bad) is MfaResult.INVALID
    assert await sign_in(rig, good) is MfaResult.OK  # resets the count
    assert [await sign_in(rig, bad) for _ in range(3)] == [
        MfaResult.INVALID,
        MfaResult.INVALID,
        MfaResult.LOCKED_OUT,
    ]
    assert await sign_in(rig, good) is MfaResult.LOCKED_OUT
    # The window passes: the factor works again.
    options = await rig.service.authentication_options("alice", NOW + 1000)
    assert (
        await rig.service.authenticate("alice", "acme", good.get(options), NOW + 1000)
        is MfaResult.OK
    )


async def test_first_registration_marks_the_factor_active_once(rig: Rig) -> None:
    await enrol(rig, SoftAuthenticator())
    await rig.sessions.set_factor("alice", MfaMethod.PASSKEY, active=False, at=NOW)
    await enrol(rig, SoftAuthenticator(credential_id=b"second-credential"))
    assert await rig.sessions.factors("alice") == frozenset()  # only the first one sets it


async def test_successful_ceremonies_do_not_use_up_the_limit(rig: Rig) -> None:
    """Each attempt is reserved as a failure before it is checked; a success gives it back."""
    for n in range(4):  # more than max_failures (3)
        assert await enrol(rig, SoftAuthenticator(credential_id=f"cred-{n}".encode())) == "ok"
    stranger = SoftAuthenticator(credential_id=b"unknown")
    # The count starts from zero: the third failure, not the first, locks out.
    assert [await sign_in(rig, stranger) for _ in range(3)] == [
        MfaResult.INVALID,
        MfaResult.INVALID,
        MfaResult.LOCKED_OUT,
    ]


async def test_not_enrolled_is_not_counted(rig: Rig) -> None:
    for _ in range(5):
        assert await sign_in(rig, SoftAuthenticator()) is MfaResult.NOT_ENROLLED
    assert await enrol(rig, SoftAuthenticator()) is MfaResult.OK
