"""The in-memory MFA state store (dev mode), the attempt limiter's edges, and `mfa:` config."""

from __future__ import annotations

import pytest

from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.mfa.attempts import AttemptLimiter, waits_after_failures
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
    assert await limiter.reserve("u", 50.0) == 0.0
    key = next(k for k in state.raw_values() if k.endswith("not_before"))
    await state.put(key, "garbage")
    assert await limiter.reserve("u", 50.0) == 0.0


async def test_each_reserved_attempt_imposes_the_next_wait() -> None:
    limiter = AttemptLimiter(MemoryMfaState(), MfaConfig(max_failures=4, lockout_seconds=300))
    now, waits = 0.0, []
    for _ in range(5):
        assert await limiter.reserve("u", now) == 0.0  # granted, counted as a failure
        wait = await limiter.reserve("u", now)  # refused until the back-off ends
        waits.append(wait)
        now += wait
    assert waits == [1.0, 2.0, 4.0, 300.0, 300.0]
    assert await limiter.reserve("u", now - 100) == 100.0


async def test_reset_clears_the_series() -> None:
    limiter = AttemptLimiter(MemoryMfaState(), MfaConfig(max_failures=2, lockout_seconds=300))
    assert await limiter.reserve("u", 0.0) == 0.0
    await limiter.reset("u")
    assert await limiter.reserve("u", 0.0) == 0.0
    assert await limiter.reserve("u", 0.0) == 1.0  # the series started again at one


async def test_the_failure_count_outlives_a_lockout_by_one_lockout() -> None:
    clock = Clock()
    limiter = AttemptLimiter(MemoryMfaState(clock), MfaConfig(max_failures=1, lockout_seconds=60))
    assert await limiter.reserve("u", 0.0) == 0.0
    clock.now += 119  # the count is still there: the next failure locks out at once
    assert await limiter.reserve("u", 60.0) == 0.0
    assert await limiter.reserve("u", 60.0) == 60.0
    clock.now += 120  # two lockouts without an attempt: forgotten
    assert await limiter.reserve("u", 300.0) == 0.0


@pytest.mark.parametrize(
    ("config", "waits"),
    [
        (MfaConfig(max_failures=1, lockout_seconds=60), (60.0,)),
        (MfaConfig(max_failures=3, backoff_base_seconds=0), (0.0, 0.0, 900.0)),
        (MfaConfig(max_failures=5, lockout_seconds=5), (1.0, 2.0, 4.0, 5.0, 5.0)),
        (MfaConfig(max_failures=100, lockout_seconds=60), (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)),
    ],
    ids=["one-failure", "no-backoff", "capped-by-lockout", "many-failures"],
)
def test_waits_after_failures(config: MfaConfig, waits: tuple[float, ...]) -> None:
    computed = waits_after_failures(config)
    assert computed[: len(waits)] == waits
    assert len(computed) == config.max_failures and computed[-1] == config.lockout_seconds
    assert max(computed) == config.lockout_seconds


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
