"""The in-memory MFA state store (dev mode), the attempt limiter's edges, and `mfa:` config."""

from __future__ import annotations

import pytest

from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.mfa.attempts import AttemptLimiter
from admitd.mfa.config import SECTION_KEYS, MfaConfig, mfa_config_from_fields
from admitd.mfa.qr import qr_png_from_text
from admitd.mfa.state import MemoryMfaState
from admitd.yamlsource import yaml_document_from_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_set_if_absent_until_the_ttl_ends() -> None:
    clock = Clock()
    state = MemoryMfaState(clock)
    assert await state.set_if_absent("k", "1", ttl=10)
    assert not await state.set_if_absent("k", "2", ttl=10)
    clock.now += 10
    assert await state.set_if_absent("k", "3", ttl=10)
    assert await state.get("k") == "3"


async def test_incr_restarts_the_ttl() -> None:
    clock = Clock()
    state = MemoryMfaState(clock)
    assert await state.incr("n", ttl=5) == 1
    clock.now += 4
    assert await state.incr("n", ttl=5) == 2
    clock.now += 4
    assert await state.incr("n", ttl=5) == 3
    clock.now += 5
    assert await state.get("n") is None


async def test_put_without_ttl_stays_and_delete_removes() -> None:
    clock = Clock()
    state = MemoryMfaState(clock)
    await state.put("a", "x")
    await state.put("b", "y", ttl=1)
    clock.now += 1_000_000
    assert await state.get("a") == "x"
    assert await state.get("b") is None
    await state.delete("a", "missing")
    assert await state.get("a") is None


async def test_an_unreadable_backoff_mark_does_not_lock_out() -> None:
    state = MemoryMfaState()
    limiter = AttemptLimiter(state, MfaConfig())
    await limiter.record_failure("u", 50.0)
    key = next(k for k in state.raw_values() if k.endswith("not_before"))
    await state.put(key, "garbage")
    assert await limiter.retry_after("u", 50.0) == 0.0


async def test_backoff_then_lockout_waits() -> None:
    limiter = AttemptLimiter(MemoryMfaState(), MfaConfig(max_failures=4, lockout_seconds=300))
    waits = [await limiter.record_failure("u", 0.0) for _ in range(5)]
    assert waits == [1.0, 2.0, 4.0, 300.0, 300.0]
    assert await limiter.retry_after("u", 100.0) == 200.0


def fields_of(text: str) -> Fields:
    doc = yaml_document_from_text(text, "admitd.yaml")
    assert isinstance(doc.data, dict)
    return Fields(doc, ("mfa",), doc.data.get("mfa"), SECTION_KEYS)


def test_mfa_config_defaults() -> None:
    assert mfa_config_from_fields(fields_of("listen: x\n")) == MfaConfig(
        totp_issuer="admitd", max_failures=5, lockout_seconds=900, backoff_base_seconds=1.0
    )


def test_mfa_config_values() -> None:
    config = mfa_config_from_fields(
        fields_of("mfa:\n  totp_issuer: Example\n  max_failures: 3\n  lockout_seconds: 60\n")
    )
    assert (config.totp_issuer, config.max_failures, config.lockout_seconds) == ("Example", 3, 60)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mfa:\n  max_failures: 0\n", r"admitd.yaml:2: mfa.max_failures: expected an integer"),
        ("mfa:\n  totp_issuer: 'a:b'\n", r"mfa.totp_issuer: must not contain ':'"),
        ("mfa:\n  lockout: 5\n", r"mfa.lockout: unknown key"),
        ("mfa:\n  backoff_base_seconds: -1\n", r"mfa.backoff_base_seconds: expected a number"),
    ],
    ids=["zero-failures", "colon-issuer", "unknown-key", "negative-backoff"],
)
def test_mfa_config_errors_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        mfa_config_from_fields(fields_of(text))


def test_qr_png_is_a_valid_png() -> None:
    png = qr_png_from_text("otpauth://totp/admitd:u?secret=ABC", scale=2)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png.endswith(b"IEND\xaeB`\x82")
