"""TOTP: RFC 6238 known answers, drift, replay, back-off and lockout, sealed secrets."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from admitd.envelope import ContextMismatch, Sealer, is_envelope_json
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa import totp as totp_module
from admitd.mfa.config import MfaConfig
from admitd.mfa.ports import MfaResult, TotpFactor
from admitd.mfa.state import MemoryMfaState
from admitd.mfa.totp import TotpService, matching_step, new_totp_secret
from admitd.sessions.memory_store import MemorySessionStore
from admitd.sessions.model import MfaMethod

T0 = 1_700_000_010.0  # the start of a 30-second step
USER, ORG = "u-42", "acme"
# RFC 6238 appendix B: the SHA-1 seed "12345678901234567890", codes truncated to 6 digits.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_service(
    config: MfaConfig | None = None,
) -> tuple[TotpService, MemoryMfaState, MemorySessionStore]:
    state, sessions = MemoryMfaState(Clock()), MemorySessionStore()
    sealer = Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))
    service = TotpService(state, sealer, sessions, config or MfaConfig(backoff_base_seconds=0))
    return service, state, sessions


def secret_of(uri: str) -> str:
    return parse_qs(urlsplit(uri).query)["secret"][0]


def code_at(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(when)


async def enrolled(service: TotpService, now: float = T0) -> str:
    """Enrol USER and confirm with the code of the step before `now` (so `now`'s is unused)."""
    secret = secret_of((await service.begin_enrolment(USER, ORG, now - 30)).provisioning_uri)
    assert await service.confirm_enrolment(USER, ORG, code_at(secret, now - 30), now - 30) == "ok"
    return secret


def test_service_implements_the_port() -> None:
    service: TotpFactor = make_service()[0]
    assert service is not None


@pytest.mark.parametrize(
    ("when", "code"),
    [(59, "287082"), (1111111109, "081804"), (1111111111, "050471"), (1234567890, "005924")],
    ids=["t59", "t1111111109", "t1111111111", "t1234567890"],
)
def test_rfc6238_known_answers(when: int, code: str) -> None:
    assert matching_step(RFC_SECRET, code, when) == when // 30


def test_new_secret_is_160_bits_base32() -> None:
    secret = new_totp_secret()
    assert len(base64.b32decode(secret)) == 20
    assert secret != new_totp_secret()


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-60, "invalid"), (-30, "ok"), (0, "ok"), (29, "ok"), (30, "ok"), (60, "invalid")],
    ids=["minus-2-steps", "minus-1-step", "now", "end-of-step", "plus-1-step", "plus-2-steps"],
)
async def test_drift_of_one_step_each_way(offset: float, expected: str) -> None:
    service, _, _ = make_service()
    secret = await enrolled(service, T0 - 120)  # confirmed long before: no replay overlap
    assert await service.verify(USER, ORG, code_at(secret, T0 + offset), T0) == expected


async def test_a_code_is_accepted_once() -> None:
    service, _, _ = make_service()
    secret = await enrolled(service)
    code = code_at(secret, T0)
    assert await service.verify(USER, ORG, code, T0) is MfaResult.OK
    assert await service.verify(USER, ORG, code, T0 + 5) is MfaResult.REPLAYED


async def test_the_confirmation_code_cannot_be_replayed() -> None:
    service, _, _ = make_service()
    secret = secret_of((await service.begin_enrolment(USER, ORG, T0)).provisioning_uri)
    code = code_at(secret, T0)
    assert await service.confirm_enrolment(USER, ORG, code, T0) is MfaResult.OK
    assert await service.verify(USER, ORG, code, T0 + 1) is MfaResult.REPLAYED


async def test_replay_marks_are_per_user() -> None:
    service, _, _ = make_service()
    secret = await enrolled(service)
    assert await service.verify(USER, ORG, code_at(secret, T0), T0) is MfaResult.OK
    other = secret_of((await service.begin_enrolment("u-7", ORG, T0)).provisioning_uri)
    assert await service.confirm_enrolment("u-7", ORG, code_at(other, T0), T0) is MfaResult.OK


async def test_codes_typed_with_a_space_are_accepted() -> None:
    service, _, _ = make_service()
    secret = await enrolled(service)
    code = code_at(secret, T0)
    assert await service.verify(USER, ORG, f"{code[:3]} {code[3:]}", T0) is MfaResult.OK


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "abcdef", "\uff11\uff12\uff13\uff14\uff15\uff16"]
)
async def test_malformed_codes_are_invalid(code: str) -> None:
    service, _, _ = make_service()
    await enrolled(service)
    assert await service.verify(USER, ORG, code, T0) is MfaResult.INVALID


async def test_not_enrolled_until_confirmed() -> None:
    service, _, sessions = make_service()
    assert await service.verify(USER, ORG, "123456", T0) is MfaResult.NOT_ENROLLED
    assert await service.confirm_enrolment(USER, ORG, "123456", T0) is MfaResult.NOT_ENROLLED
    secret = secret_of((await service.begin_enrolment(USER, ORG, T0)).provisioning_uri)
    assert await service.verify(USER, ORG, code_at(secret, T0), T0) is MfaResult.NOT_ENROLLED
    assert await sessions.factors(USER) == frozenset()


async def test_confirm_activates_the_factor() -> None:
    service, _, sessions = make_service()
    secret = secret_of((await service.begin_enrolment(USER, ORG, T0)).provisioning_uri)
    assert await service.confirm_enrolment(USER, ORG, "000000", T0) is not MfaResult.OK
    assert await sessions.factors(USER) == frozenset()
    assert await service.confirm_enrolment(USER, ORG, code_at(secret, T0), T0) is MfaResult.OK
    assert await sessions.factors(USER) == {MfaMethod.TOTP}
    # The pending secret is gone: confirming again has nothing to confirm.
    assert await service.confirm_enrolment(USER, ORG, code_at(secret, T0 + 30), T0 + 30) == (
        MfaResult.NOT_ENROLLED
    )


async def test_re_enrolment_keeps_the_old_secret_until_confirmed() -> None:
    service, _, _ = make_service()
    old = await enrolled(service)
    new = secret_of((await service.begin_enrolment(USER, ORG, T0)).provisioning_uri)
    assert await service.verify(USER, ORG, code_at(old, T0), T0) is MfaResult.OK
    assert await service.confirm_enrolment(USER, ORG, code_at(new, T0 + 30), T0 + 30) == "ok"
    assert await service.verify(USER, ORG, code_at(old, T0 + 60), T0 + 60) is MfaResult.INVALID
    assert await service.verify(USER, ORG, code_at(new, T0 + 60), T0 + 60) is MfaResult.OK


async def test_provisioning_uri_names_issuer_and_account() -> None:
    service, _, _ = make_service(MfaConfig(totp_issuer="Example Corp"))
    enrolment = await service.begin_enrolment(USER, ORG, T0)
    uri = urlsplit(enrolment.provisioning_uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert parse_qs(uri.query)["issuer"] == ["Example Corp"]
    assert USER in uri.path
    assert base64.b64decode(enrolment.qr_png_base64).startswith(b"\x89PNG\r\n\x1a\n")


async def test_secrets_are_stored_sealed_only() -> None:
    service, state, _ = make_service()
    pending = secret_of((await service.begin_enrolment(USER, ORG, T0)).provisioning_uri)
    await service.confirm_enrolment(USER, ORG, code_at(pending, T0), T0)
    active_too = secret_of((await service.begin_enrolment(USER, ORG, T0)).provisioning_uri)
    stored = state.raw_values()
    sealed = [v for k, v in stored.items() if k.endswith(("totp:secret", "totp:pending"))]
    assert len(sealed) == 2
    assert all(is_envelope_json(v) for v in sealed)
    for secret in (pending, active_too):
        assert not any(secret in key or secret in value for key, value in stored.items())
        assert not any(secret.lower() in value.lower() for value in stored.values())


async def test_the_secret_is_bound_to_the_organisation() -> None:
    service, _, _ = make_service()
    secret = await enrolled(service)
    with pytest.raises(ContextMismatch):
        await service.verify(USER, "other-org", code_at(secret, T0), T0)


async def test_lockout_after_max_failures() -> None:
    config = MfaConfig(max_failures=3, lockout_seconds=600, backoff_base_seconds=0)
    service, _, _ = make_service(config)
    secret = await enrolled(service)
    for _ in range(3):
        assert await service.verify(USER, ORG, "000000", T0) is MfaResult.INVALID
    # Locked out: even the right code is not tried.
    assert await service.verify(USER, ORG, code_at(secret, T0 + 1), T0 + 1) is MfaResult.LOCKED_OUT
    later = T0 + 599
    assert await service.verify(USER, ORG, code_at(secret, later), later) is MfaResult.LOCKED_OUT
    after = T0 + 600
    assert await service.verify(USER, ORG, code_at(secret, after), after) is MfaResult.OK


async def test_failures_after_a_lockout_lock_out_again_at_once() -> None:
    config = MfaConfig(max_failures=2, lockout_seconds=100, backoff_base_seconds=0)
    service, _, _ = make_service(config)
    await enrolled(service)
    for _ in range(2):
        await service.verify(USER, ORG, "000000", T0)
    assert await service.verify(USER, ORG, "000000", T0 + 100) is MfaResult.INVALID
    assert await service.verify(USER, ORG, "000000", T0 + 101) is MfaResult.LOCKED_OUT


async def test_backoff_grows_between_failures() -> None:
    config = MfaConfig(max_failures=5, backoff_base_seconds=1)
    service, _, _ = make_service(config)
    secret = await enrolled(service)
    assert await service.verify(USER, ORG, "000000", T0) is MfaResult.INVALID  # wait 1 s
    assert await service.verify(USER, ORG, "000000", T0 + 0.5) is MfaResult.LOCKED_OUT
    assert await service.verify(USER, ORG, "000000", T0 + 1) is MfaResult.INVALID  # wait 2 s
    assert await service.verify(USER, ORG, "000000", T0 + 2.9) is MfaResult.LOCKED_OUT
    assert await service.verify(USER, ORG, "000000", T0 + 3) is MfaResult.INVALID  # wait 4 s
    assert await service.verify(USER, ORG, code_at(secret, T0 + 6), T0 + 6) is MfaResult.LOCKED_OUT
    assert await service.verify(USER, ORG, code_at(secret, T0 + 7), T0 + 7) is MfaResult.OK


async def test_success_resets_the_failure_count() -> None:
    config = MfaConfig(max_failures=2, backoff_base_seconds=0)
    service, _, _ = make_service(config)
    secret = await enrolled(service)
    assert await service.verify(USER, ORG, "000000", T0) is MfaResult.INVALID
    assert await service.verify(USER, ORG, code_at(secret, T0), T0) is MfaResult.OK
    assert await service.verify(USER, ORG, "000000", T0 + 30) is MfaResult.INVALID
    assert await service.verify(USER, ORG, code_at(secret, T0 + 30), T0 + 30) is MfaResult.OK


async def test_a_replay_counts_as_a_failure() -> None:
    config = MfaConfig(max_failures=2, backoff_base_seconds=0)
    service, _, _ = make_service(config)
    secret = await enrolled(service)
    code = code_at(secret, T0)
    assert await service.verify(USER, ORG, code, T0) is MfaResult.OK
    assert await service.verify(USER, ORG, code, T0) is MfaResult.REPLAYED
    assert await service.verify(USER, ORG, code, T0) is MfaResult.REPLAYED
    assert await service.verify(USER, ORG, code_at(secret, T0 + 30), T0 + 30) == "locked_out"


async def test_failures_are_counted_per_user() -> None:
    config = MfaConfig(max_failures=1, backoff_base_seconds=0)
    service, _, _ = make_service(config)
    await enrolled(service)
    other = secret_of((await service.begin_enrolment("u-7", ORG, T0)).provisioning_uri)
    assert await service.verify(USER, ORG, "000000", T0) is MfaResult.INVALID
    assert await service.verify(USER, ORG, "000000", T0) is MfaResult.LOCKED_OUT
    assert await service.confirm_enrolment("u-7", ORG, code_at(other, T0), T0) is MfaResult.OK


class YieldingState(MemoryMfaState):
    """Gives the event loop a turn before every call, as a Redis round trip would."""

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        await asyncio.sleep(0)
        return await super().set_if_absent(key, value, ttl)

    async def incr(self, key: str, ttl: float) -> int:
        await asyncio.sleep(0)
        return await super().incr(key, ttl)

    async def get(self, key: str) -> str | None:
        await asyncio.sleep(0)
        return await super().get(key)

    async def put(self, key: str, value: str, ttl: float | None = None) -> None:
        await asyncio.sleep(0)
        await super().put(key, value, ttl)

    async def delete(self, *keys: str) -> None:
        await asyncio.sleep(0)
        await super().delete(*keys)

    async def reserve_attempt(self, *args: Any, **kwargs: Any) -> float:
        await asyncio.sleep(0)
        return await super().reserve_attempt(*args, **kwargs)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("config", "evaluated"),
    [
        (MfaConfig(max_failures=3, backoff_base_seconds=0), 3),
        (MfaConfig(max_failures=3, backoff_base_seconds=1), 1),
    ],
    ids=["no-backoff", "backoff"],
)
async def test_concurrent_guesses_are_limited_before_they_are_evaluated(
    monkeypatch: pytest.MonkeyPatch, config: MfaConfig, evaluated: int
) -> None:
    state = YieldingState(Clock())
    sealer = Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))
    service = TotpService(state, sealer, MemorySessionStore(), config)
    secret = await enrolled(service)
    calls: list[str] = []

    def counting(secret: str, code: str, now: float) -> int | None:
        calls.append(code)
        return matching_step(secret, code, now)

    monkeypatch.setattr(totp_module, "matching_step", counting)
    guesses = [service.verify(USER, ORG, f"{n:06d}", T0) for n in range(40)]
    results = await asyncio.gather(*guesses)
    assert len(calls) == evaluated
    assert results.count(MfaResult.LOCKED_OUT) == 40 - evaluated
    assert await service.verify(USER, ORG, code_at(secret, T0), T0) is MfaResult.LOCKED_OUT
