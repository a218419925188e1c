"""The audited factor wrappers record every enrolment and verification, and only those."""

from __future__ import annotations

import pytest

from admitd.audit.entry import AuditEntry, AuditEvent
from admitd.audit.hooks import AuditedPasskeys, AuditedTotp
from admitd.mfa.ports import MfaResult, TotpEnrolment

ENROLMENT = TotpEnrolment(provisioning_uri="otpauth://totp/x", qr_png_base64="")


class FixedTotp:
    """Answers every call with `result`; what the wrapper records is under test."""

    def __init__(self, result: MfaResult) -> None:
        self.result = result

    async def begin_enrolment(self, user_id: str, organisation: str, now: float) -> TotpEnrolment:
        return ENROLMENT

    async def confirm_enrolment(
        self, user_id: str, organisation: str, code: str, now: float
    ) -> MfaResult:
        return self.result

    async def verify(self, user_id: str, organisation: str, code: str, now: float) -> MfaResult:
        return self.result


class FixedPasskeys:
    def __init__(self, result: MfaResult) -> None:
        self.result = result

    async def registration_options(self, user_id: str, user_name: str, now: float) -> str:
        return '{"challenge": "register"}'

    async def register(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult:
        return self.result

    async def authentication_options(self, user_id: str, now: float) -> str:
        return '{"challenge": "authenticate"}'

    async def authenticate(
        self, user_id: str, organisation: str, credential_json: str, now: float
    ) -> MfaResult:
        return self.result


async def attempt(call: str, result: MfaResult, entries: list[AuditEntry]) -> MfaResult:
    """One enrolment or verification through the audited wrappers, each factor answering `result`."""
    totp = AuditedTotp(FixedTotp(result), entries.append)
    passkeys = AuditedPasskeys(FixedPasskeys(result), entries.append)
    match call:
        case "totp-confirm":
            return await totp.confirm_enrolment("alice", "acme", "123456", 0.0)
        case "totp-verify":
            return await totp.verify("alice", "acme", "123456", 0.0)
        case "passkey-register":
            return await passkeys.register("alice", "acme", "{}", 0.0)
    return await passkeys.authenticate("alice", "acme", "{}", 0.0)


@pytest.mark.parametrize(
    ("call", "method", "step"),
    [
        ("totp-confirm", "totp", "enrol"),
        ("totp-verify", "totp", "verify"),
        ("passkey-register", "passkey", "enrol"),
        ("passkey-authenticate", "passkey", "verify"),
    ],
    ids=["totp-confirm", "totp-verify", "passkey-register", "passkey-authenticate"],
)
@pytest.mark.parametrize(
    ("result", "event", "decision"),
    [
        (MfaResult.OK, AuditEvent.MFA_SUCCEEDED, "allow"),
        (MfaResult.REPLAYED, AuditEvent.MFA_FAILED, "deny"),
    ],
    ids=["ok", "replayed"],
)
async def test_each_attempt_is_one_entry_naming_factor_and_step(
    call: str, method: str, step: str, result: MfaResult, event: AuditEvent, decision: str
) -> None:
    entries: list[AuditEntry] = []
    assert await attempt(call, result, entries) is result
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.event_type, entry.decision, entry.reason) == (event, decision, result.value)
    assert (entry.user, entry.organisation) == ("alice", "acme")
    assert entry.details == (("method", method), ("step", step))


async def test_option_requests_pass_through_unrecorded() -> None:
    entries: list[AuditEntry] = []
    totp = AuditedTotp(FixedTotp(MfaResult.OK), entries.append)
    passkeys = AuditedPasskeys(FixedPasskeys(MfaResult.OK), entries.append)
    assert await totp.begin_enrolment("alice", "acme", 0.0) is ENROLMENT
    assert await passkeys.registration_options("alice", "alice", 0.0) == '{"challenge": "register"}'
    assert await passkeys.authentication_options("alice", 0.0) == '{"challenge": "authenticate"}'
    assert entries == []


async def test_verification_entries_name_the_replica_that_checked_the_code() -> None:
    entries: list[AuditEntry] = []
    totp = AuditedTotp(FixedTotp(MfaResult.OK), entries.append, "admitd-1")
    passkeys = AuditedPasskeys(FixedPasskeys(MfaResult.INVALID), entries.append, "admitd-1")
    await totp.verify("alice", "acme", "123456", 0.0)
    await passkeys.authenticate("alice", "acme", "{}", 0.0)
    assert [entry.instance for entry in entries] == ["admitd-1", "admitd-1"]
