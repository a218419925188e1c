"""Key custody without the network: the `keys:` section, change records, the passkey proof,
the AAGUID a passkey verification leaves behind, and `admitd keys` refusing offline work."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from webauthn.helpers import encode_cbor

from admitd.admin.errors import InvalidRequest
from admitd.cli import main
from admitd.cli_setup import config_file
from admitd.config import load_config
from admitd.custody.changes import (
    ChangeKind,
    ChangeRequest,
    ChangeStatus,
    Custodian,
    KeyChange,
    audit_fields,
    change_from_fields,
    check_request,
    fields_from_change,
)
from admitd.custody.proof import MfaRefused, ProofChecker
from admitd.custody.provider import ProviderSettings, settings_from_config, settings_from_json
from admitd.envelope import Sealer
from admitd.errors import ConfigError
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa.passkey_store import MemoryPasskeyStore, PasskeyVerification
from admitd.mfa.passkeys import PasskeyPolicy, PasskeyService
from admitd.mfa.ports import MfaResult
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import MfaMethod
from admitd.sessions.tokens import new_session_token
from tests.pki_fixtures import PkiSet
from tests.sessions import make_session
from tests.unit.test_passkeys import AT, ORIGIN, RP_ID, SoftAuthenticator, bytes_to_base64url

NOW = 1_700_000_000.0
YUBIKEY = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
ALICE, BOB = "spiffe://example.org/admin/alice", "spiffe://example.org/admin/bob"


# --- the keys: section --------------------------------------------------------------------


def write_config(tmp_path: Path, pki: PkiSet, keys: str, *, admin: bool = True) -> Path:
    (tmp_path / "policies.yaml").write_text("routes: []\n")
    text = "policies: policies.yaml\ntls:\n  trust_bundle: ca.pem\n"
    text += "redis_url: redis://127.0.0.1:6379/0\n"
    text += f"kms:\n  provider: local\n  keyring: {tmp_path / 'keyring.json'}\n"
    if admin:
        d = pki.directory
        text += f"admin:\n  server_cert: {d / 'server.pem'}\n  server_key: {d / 'server.key'}\n"
        text += "  principals: [spiffe://example.org/login]\n"
    path = tmp_path / "admitd.yaml"
    path.write_text(text + keys)
    return path


def test_keys_defaults_without_a_section(tmp_path: Path, pki: PkiSet) -> None:
    keys = load_config(write_config(tmp_path, pki, ""), environ={}).keys
    assert dict(keys.custodians) == {}
    assert (keys.mfa_max_age_seconds, keys.aaguids, keys.change_ttl_seconds) == (
        300,
        frozenset(),
        3600,
    )


def test_keys_section(tmp_path: Path, pki: PkiSet) -> None:
    text = (
        "keys:\n  custodians:\n"
        f"    {ALICE}: alice@acme\n    {BOB}: bob@acme\n"
        "    'CN=carol,  O=Acme': carol@acme\n"
        f"  aaguids: [{YUBIKEY.upper()}]\n  mfa_max_age_seconds: 120\n"
        "  change_ttl_seconds: 600\n"
    )
    keys = load_config(write_config(tmp_path, pki, text), environ={}).keys
    assert dict(keys.custodians) == {
        ALICE: "alice@acme",
        BOB: "bob@acme",
        "CN=carol,O=Acme": "carol@acme",  # normalised as the guard compares it
    }
    assert keys.aaguids == {YUBIKEY} and keys.mfa_max_age_seconds == 120
    assert keys.change_ttl_seconds == 600


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"keys:\n  custodians:\n    {ALICE}: alice\n", "at least two custodians"),
        (f"keys:\n  custodians:\n    {ALICE}: a\n    {BOB}: a\n", "different user IDs"),
        ("keys:\n  custodians: [a, b]\n", "expected a mapping"),
        (f"keys:\n  custodians:\n    {ALICE}: a\n    {BOB}: 7\n", "non-empty strings"),
        ("keys:\n  aaguids: [yubikey]\n", "not an AAGUID"),
        ("keys:\n  mfa_max_age_seconds: 86400\n", "keys.mfa_max_age_seconds"),
        ("keys:\n  change_ttl_seconds: 5\n", "keys.change_ttl_seconds"),
        ("keys:\n  custodian: {}\n", "unknown key"),
    ],
)
def test_keys_section_errors_name_file_key_and_fix(
    tmp_path: Path, pki: PkiSet, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as error:
        load_config(write_config(tmp_path, pki, text), environ={})
    assert "admitd.yaml" in str(error.value) and "keys" in str(error.value)


def test_custodians_need_the_admin_api(tmp_path: Path, pki: PkiSet) -> None:
    text = f"keys:\n  custodians:\n    {ALICE}: a\n    {BOB}: b\n"
    with pytest.raises(ConfigError, match=r"keys\.custodians needs admin") as error:
        load_config(write_config(tmp_path, pki, text, admin=False), environ={})
    assert "or remove keys:" in str(error.value)


# --- change records -------------------------------------------------------------------------


def test_check_request_normalises_and_refuses() -> None:
    assert check_request(ChangeRequest(ChangeKind.ROTATE, "kms/a", "  why ")).reason == "why"
    retire = check_request(ChangeRequest(ChangeKind.RETIRE, "kms/a", "r", 2))
    assert retire.version == 2
    for bad, message in [
        (ChangeRequest(ChangeKind.ROTATE, "a", "r"), "alias"),
        (ChangeRequest(ChangeKind.ROTATE, "kms/a", " "), "reason"),
        (ChangeRequest(ChangeKind.ROTATE, "kms/a", "r\x00s"), "reason"),
        (ChangeRequest(ChangeKind.RETIRE, "kms/a", "r"), "version"),
        (ChangeRequest(ChangeKind.REENCRYPT, "kms/a", "r", 3), "no version"),
    ]:
        with pytest.raises(InvalidRequest, match=message):
            check_request(bad)


def test_change_round_trip_and_expiry() -> None:
    change = KeyChange(
        "0123456789abcdef",
        ChangeRequest(ChangeKind.RETIRE, "kms/a", "r", 1),
        Custodian(ALICE, "alice"),
        NOW,
        NOW + 60,
        ChangeStatus.PENDING,
    )
    fields = fields_from_change(change)
    assert change_from_fields(change.change_id, fields, NOW + 59) == change
    assert change_from_fields(change.change_id, fields, NOW + 60).status is ChangeStatus.EXPIRED
    fields |= {"status": "approved", "approved_by": BOB, "approved_user": "bob"}
    approved = change_from_fields(change.change_id, fields, NOW + 600)
    assert approved.status is ChangeStatus.APPROVED
    assert approved.approved_by == Custodian(BOB, "bob")


# --- the passkey proof ------------------------------------------------------------------------


@dataclass
class Rig:
    sessions: MemorySessionStore
    passkeys: MemoryPasskeyStore
    checker: ProofChecker

    async def session(
        self,
        user: str = "alice",
        *,
        mfa_ago: float | None = 10,
        method: MfaMethod = MfaMethod.PASSKEY,
    ) -> str:
        token, ref = new_session_token(user)
        session = make_session(
            ref.session_id, user_id=user, now=NOW, mfa_ago=mfa_ago, mfa_method=method
        )
        await self.sessions.create(ref, session)
        return token


@pytest.fixture
def rig() -> Rig:
    sessions, passkeys = MemorySessionStore(), MemoryPasskeyStore()
    checker = ProofChecker(sessions, passkeys, max_age_seconds=300, aaguids=frozenset({YUBIKEY}))
    return Rig(sessions, passkeys, checker)


async def test_a_fresh_allowed_passkey_is_proof(rig: Rig) -> None:
    token = await rig.session()
    await rig.passkeys.record_verification("alice", PasskeyVerification(NOW - 10, "c", YUBIKEY))
    proof = await rig.checker.check("alice", token, NOW)
    assert (proof.verified_at, proof.aaguid) == (NOW - 10, YUBIKEY)


@pytest.mark.parametrize(
    ("mfa_ago", "method", "receipt", "user", "why"),
    [
        (10, MfaMethod.PASSKEY, (NOW - 10, YUBIKEY), "bob", "other_user"),
        (None, MfaMethod.PASSKEY, (NOW - 10, YUBIKEY), "alice", "no_mfa"),
        (10, MfaMethod.TOTP, (NOW - 10, YUBIKEY), "alice", "totp_only"),
        (301, MfaMethod.PASSKEY, (NOW - 10, YUBIKEY), "alice", "stale"),
        (10, MfaMethod.PASSKEY, None, "alice", "no_receipt"),
        (10, MfaMethod.PASSKEY, (NOW - 301, YUBIKEY), "alice", "stale"),
        (10, MfaMethod.PASSKEY, (NOW + 5, YUBIKEY), "alice", "stale"),  # from the future
        (
            10,
            MfaMethod.PASSKEY,
            (NOW - 10, "00000000-0000-0000-0000-000000000000"),
            "alice",
            "aaguid",
        ),
        (10, MfaMethod.PASSKEY, (NOW - 10, ""), "alice", "aaguid"),
    ],
)
async def test_no_proof(
    rig: Rig,
    mfa_ago: float | None,
    method: MfaMethod,
    receipt: tuple[float, str] | None,
    user: str,
    why: str,
) -> None:
    token = await rig.session(user, mfa_ago=mfa_ago, method=method)
    if receipt is not None:
        await rig.passkeys.record_verification(
            "alice", PasskeyVerification(receipt[0], "c", receipt[1])
        )
    with pytest.raises(MfaRefused) as error:
        await rig.checker.check("alice", token, NOW)
    assert error.value.why == why and "step up with a passkey" in str(error.value)


async def test_no_session_is_no_proof(rig: Rig) -> None:
    for token in ("", "not-a-token", new_session_token("alice")[0]):
        with pytest.raises(MfaRefused) as error:
            await rig.checker.check("alice", token, NOW)
        assert error.value.why == "no_session"


async def test_any_authenticator_without_an_allow_list(rig: Rig) -> None:
    checker = ProofChecker(rig.sessions, rig.passkeys, max_age_seconds=300)
    token = await rig.session()
    await rig.passkeys.record_verification("alice", PasskeyVerification(NOW - 1, "c", ""))
    assert (await checker.check("alice", token, NOW)).aaguid == ""


# --- the AAGUID a passkey verification leaves behind ---------------------------------------


@dataclass
class ModelAuthenticator(SoftAuthenticator):
    """The soft authenticator, reporting a real authenticator model's AAGUID."""

    aaguid: bytes = bytes.fromhex(YUBIKEY.replace("-", ""))

    def create(self, options_json: str) -> str:
        created = json.loads(super().create(options_json))
        from webauthn.helpers import base64url_to_bytes, parse_cbor

        attestation = parse_cbor(base64url_to_bytes(created["response"]["attestationObject"]))
        auth_data = attestation["authData"]
        # rpIdHash(32) flags(1) signCount(4), then the AAGUID (16): replace the zeros.
        assert auth_data[32] & AT and auth_data[37:53] == bytes(16)
        attestation["authData"] = auth_data[:37] + self.aaguid + auth_data[53:]
        created["response"]["attestationObject"] = bytes_to_base64url(encode_cbor(attestation))
        return json.dumps(created)


def passkey_service() -> tuple[PasskeyService, MemoryPasskeyStore]:
    store = MemoryPasskeyStore()
    sealer = Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))
    policy = PasskeyPolicy(rp_id=RP_ID, rp_name="admitd", origins=(ORIGIN,))
    return PasskeyService(store, sealer, MemorySessionStore(), policy), store


async def test_a_verification_records_the_credentials_aaguid() -> None:
    service, store = passkey_service()
    authenticator = ModelAuthenticator()
    options = await service.registration_options("alice", "alice", NOW)
    assert (
        await service.register("alice", "acme", authenticator.create(options), NOW + 1)
        is MfaResult.OK
    )
    assert await store.last_verification("alice") is None  # registering is no verification
    options = await service.authentication_options("alice", NOW + 10)
    result = await service.authenticate("alice", "acme", authenticator.get(options), NOW + 11)
    assert result is MfaResult.OK
    receipt = await store.last_verification("alice")
    assert receipt == PasskeyVerification(
        NOW + 11, bytes_to_base64url(authenticator.credential_id), YUBIKEY
    )


async def test_a_failed_verification_leaves_no_receipt() -> None:
    service, store = passkey_service()
    authenticator = ModelAuthenticator()
    options = await service.registration_options("alice", "alice", NOW)
    await service.register("alice", "acme", authenticator.create(options), NOW + 1)
    authenticator.user_verified = False  # presence only: not enough
    options = await service.authentication_options("alice", NOW + 10)
    result = await service.authenticate("alice", "acme", authenticator.get(options), NOW + 11)
    assert result is MfaResult.INVALID and await store.last_verification("alice") is None


# --- `admitd keys` offline sub-commands are explicit ----------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["rotate", "--alias", "kms/a"],
        ["reencrypt", "--alias", "kms/a"],
        ["retire", "--alias", "kms/a", "--version", "1"],
    ],
)
def test_offline_commands_refuse_without_offline(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "admitd.yaml"  # never read: refused before anything is opened
    assert main(["keys", *argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "--offline" in err and f"admitd keys request {argv[0]} --alias kms/a" in err
    assert "admitd keys approve" in err and not config.exists()


# --- start-up -----------------------------------------------------------------------------


def test_keys_handler_needs_redis_and_a_managed_provider() -> None:
    from admitd.custody.config import KeysConfig
    from admitd.custody.wiring import keys_handler_from_parts
    from admitd.kms.dev import DevKms

    parts = {
        "config_file": "admitd.yaml",
        "redis_url": None,
        "client": None,
        "record_patterns": ("admitd:*",),
        "sessions": MemorySessionStore(),
        "audit": None,
    }
    assert keys_handler_from_parts(KeysConfig(), kms=None, **parts) is None  # type: ignore[arg-type]
    custodians = KeysConfig(custodians={ALICE: "alice", BOB: "bob"})
    for kms in (None, DevKms(DEFAULT_ALIASES, dev_mode=True)):
        with pytest.raises(ConfigError, match=r"keys\.custodians") as error:
            keys_handler_from_parts(custodians, kms=kms, **parts)  # type: ignore[arg-type]
        assert "admitd.yaml" in str(error.value) and "remove keys:" in str(error.value)


# --- provider changes: the fingerprint of where keys live ------------------------------------


def kms_settings(tmp_path: Path, text: str, name: str = "admitd.yaml") -> ProviderSettings:
    path = tmp_path / name
    path.write_text(text)
    return settings_from_config(config_file(path).kms())


LOCAL = """kms:
  provider: local
  keyring: /etc/admitd/keyring.json
  aliases: [kms/session-secrets, kms/audit-log]
  record_patterns: ['admitd:*']
  dek_cache: {max_entries: 10}
"""
HSM = """kms:
  provider: pkcs11
  pkcs11: {module: /usr/lib/softhsm/libsofthsm2.so, token_label: admitd, pin_env: HSM_PIN}
  aliases: [kms/session-secrets]
"""


def test_fingerprint_ignores_key_order_whitespace_and_what_is_not_location(
    tmp_path: Path,
) -> None:
    same = kms_settings(tmp_path, LOCAL)
    reordered = kms_settings(
        tmp_path,
        "# the same, spelled differently\n"
        "kms:\n    dek_cache:   {ttl_seconds: 5}\n"
        "    record_patterns:   ['admitd:*', 'admitd:*']\n"
        "    aliases:\n      - kms/audit-log\n      - kms/session-secrets\n"
        "    keyring: /etc/admitd//keyring.json\n    provider: local\n",
        "other.yaml",
    )
    assert reordered == same and reordered.fingerprint == same.fingerprint
    assert len(same.fingerprint) == 64 and int(same.fingerprint, 16) >= 0
    assert settings_from_json(same.canonical()) == same  # what the server recomputes
    spaced = json.dumps(json.loads(same.canonical()), indent=4)
    assert settings_from_json(spaced).fingerprint == same.fingerprint
    # The same settings, another PIN variable: no change (it says nothing about where keys live)
    hsm = kms_settings(tmp_path, HSM)
    assert kms_settings(tmp_path, HSM.replace("HSM_PIN", "OTHER_PIN")) == hsm


@pytest.mark.parametrize(
    ("base", "old", "new"),
    [
        (LOCAL, "provider: local\n  keyring: /etc/admitd/", "provider: local\n  keyring: /mnt/x/"),
        (LOCAL, "kms/audit-log]", "kms/audit-log, kms/device-telemetry]"),
        (LOCAL, "'admitd:*'", "'admitd:*', 'other:*'"),
        (HSM, "libsofthsm2.so", "libotherhsm.so"),
        (HSM, "token_label: admitd", "token_label: admitd-2"),
        (HSM, "provider: pkcs11", "provider: local\n  keyring: /etc/admitd/keyring.json"),
    ],
    ids=["keyring", "aliases", "record-patterns", "module", "token", "provider"],
)
def test_fingerprint_changes_with_where_keys_live(
    tmp_path: Path, base: str, old: str, new: str
) -> None:
    assert old in base
    before = kms_settings(tmp_path, base)
    after = kms_settings(tmp_path, base.replace(old, new), "new.yaml")
    assert after.fingerprint != before.fingerprint and after.summary != before.summary


def test_fingerprint_and_summary_never_hold_the_pin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin = "PIN-4711-SECRET"
    monkeypatch.setenv("HSM_PIN", pin)
    settings = kms_settings(tmp_path, HSM)
    for text in (settings.canonical(), settings.summary, settings.fingerprint, repr(settings)):
        assert pin not in text and "HSM_PIN" not in text and "pin" not in text.lower()
    assert settings.summary == (
        "provider=pkcs11 module=/usr/lib/softhsm/libsofthsm2.so token_label=admitd"
        " aliases=kms/session-secrets record_patterns=admitd:*"
    )
    # A request cannot smuggle a PIN (or anything else) into the approved settings either.
    raw = json.loads(settings.canonical())
    raw["pkcs11"]["pin"] = pin
    with pytest.raises(InvalidRequest, match="exactly module, token_label"):
        settings_from_json(json.dumps(raw))


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("", "needs provider_settings"),
        ("[1]", "format 1"),
        ('{"format": 1, "provider": "dev", "aliases": ["kms/a"], "record_patterns": ["*"]}',
         "local or pkcs11"),
        ('{"format": 1, "provider": "local", "aliases": ["kms/a"], "record_patterns": ["*"]}',
         "exactly"),
        ('{"format": 1, "provider": "local", "keyring": "", "aliases": ["kms/a"],'
         ' "record_patterns": ["*"]}', "keyring must be"),
        ('{"format": 1, "provider": "local", "keyring": "k", "aliases": ["A"],'
         ' "record_patterns": ["*"]}', "kms/<name>"),
        ('{"format": 1, "provider": "local", "keyring": "k", "aliases": ["kms/a"],'
         ' "record_patterns": []}', "non-empty list"),
    ],
)  # fmt: skip
def test_provider_settings_are_checked(text: str, phrase: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(phrase)):
        settings_from_json(text)


def test_provider_change_requests(tmp_path: Path) -> None:
    settings = kms_settings(tmp_path, LOCAL)
    spaced = json.dumps(json.loads(settings.canonical()), indent=2)
    checked = check_request(ChangeRequest(ChangeKind.PROVIDER, "", " new hsm ", settings=spaced))
    assert (checked.reason, checked.settings) == ("new hsm", settings.canonical())
    for bad in (
        ChangeRequest(ChangeKind.PROVIDER, "kms/a", "r", settings=spaced),
        ChangeRequest(ChangeKind.PROVIDER, "", "r", version=1, settings=spaced),
        ChangeRequest(ChangeKind.PROVIDER, "", "r"),
        ChangeRequest(ChangeKind.ROTATE, "kms/a", "r", settings=spaced),
    ):
        with pytest.raises(InvalidRequest):
            check_request(bad)
    change = KeyChange("0" * 16, checked, Custodian(ALICE, "alice"), NOW, NOW + 60,
                       ChangeStatus.PENDING)  # fmt: skip
    again = change_from_fields(change.change_id, fields_from_change(change), NOW)
    assert again == change
    fields = audit_fields(change)
    assert fields["provider_fingerprint"] == settings.fingerprint and "alias" not in fields
    assert fields["provider_summary"] == settings.summary


def test_provider_accept_refuses_without_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "admitd.yaml"  # never read
    assert main(["keys", "provider-accept", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "--offline" in err and "admitd keys request provider --config NEW.yaml" in err
    assert "admitd keys approve" in err and not config.exists()


def test_request_provider_needs_its_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    tls = [
        "--cert",
        "c.pem",
        "--key",
        "k.pem",
        "--ca",
        "ca.pem",
        "--session-token-file",
        str(token),
    ]
    for argv, phrase in (
        (["request", "provider", "--reason", "r"], "--config NEW.yaml"),
        (["request", "rotate", "--reason", "r"], "needs --alias"),
        (["request", "rotate", "--alias", "kms/a", "--config", "x.yaml", "--reason", "r"],
         "provider changes only"),
    ):  # fmt: skip
        assert main(["keys", *argv, *tls]) == 2
        assert phrase in capsys.readouterr().err
