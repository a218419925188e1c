"""The signed `reason` of a step-up link, and the words the page shows for it."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from admitd.core.risk import Signal
from admitd.web import ReturnToSigner, step_up_location
from admitd.web.risk_words import SIGNAL_WORDS, age_in_words, minutes_in_words
from admitd.web.step_up_reason import StepUpReason, sign_reason, verify_reason

KEY = b"k" * 32
TOKEN = "v1.123.L2E.mac"
RISKY = StepUpReason(300, (Signal.NEW_DEVICE, Signal.IP_REPUTATION))


def test_a_signed_reason_verifies_with_its_return_to() -> None:
    assert verify_reason(KEY, TOKEN, sign_reason(KEY, TOKEN, RISKY)) == RISKY
    plain = StepUpReason(60)
    assert verify_reason(KEY, TOKEN, sign_reason(KEY, TOKEN, plain)) == plain


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("300..", id="no-mac"),
        pytest.param("300.new_device.00", id="forged-mac"),
        pytest.param("abc.new_device.00", id="not-a-number"),
        pytest.param("0.." + "0" * 64, id="zero-age"),
    ],
)
def test_an_unsigned_or_malformed_reason_is_dropped(value: str) -> None:
    assert verify_reason(KEY, TOKEN, value) is None


def test_a_reason_is_bound_to_its_token_key_and_content() -> None:
    signed = sign_reason(KEY, TOKEN, RISKY)
    assert verify_reason(KEY, "v1.999.L2I.mac", signed) is None  # copied onto another token
    assert verify_reason(b"x" * 32, TOKEN, signed) is None
    age, names, mac = signed.split(".")
    assert verify_reason(KEY, TOKEN, f"3600.{names}.{mac}") is None  # laxer age
    assert verify_reason(KEY, TOKEN, f"{age}.new_device.{mac}") is None  # fewer signals
    assert verify_reason(KEY, "", signed) is None  # no return_to: no reason either


def test_step_up_location_carries_the_reason_only_when_given() -> None:
    signer = ReturnToSigner(KEY)
    now = time.time()
    plain = parse_qs(urlsplit(step_up_location(signer, "h", "/a", now)).query)
    assert set(plain) == {"return_to"}
    query = parse_qs(urlsplit(step_up_location(signer, "h", "/a", now, RISKY)).query)
    key = signer.subkey("step-up-reason")
    assert verify_reason(key, query["return_to"][0], query["reason"][0]) == RISKY


def test_every_signal_has_plain_words() -> None:
    assert set(SIGNAL_WORDS) == set(Signal)
    assert all(words and "_" not in words for words in SIGNAL_WORDS.values())


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "1 second"), (45, "45 seconds"), (60, "1 minute"), (900, "15 minutes")],
)
def test_minutes_in_words(seconds: int, words: str) -> None:
    assert minutes_in_words(seconds) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(5, "just now"), (61, "1 minute ago"), (7200, "2 hours ago"), (200_000, "2 days ago")],
)
def test_age_in_words(seconds: float, words: str) -> None:
    assert age_in_words(seconds) == words


@pytest.mark.parametrize(
    ("return_to", "value"),
    [
        pytest.param(TOKEN, "\u00b2.x.y", id="superscript-age"),  # "²".isdigit(), int() refuses
        pytest.param(TOKEN, "\u0660.x.y", id="arabic-indic-age"),  # int() takes it: still no
        pytest.param(TOKEN, "60..\u00e9", id="non-ascii-mac"),
        pytest.param(TOKEN, "60..\udcff", id="surrogate-mac"),
        pytest.param(TOKEN + "\udcff", "60..abc", id="surrogate-return-to"),
    ],
)
def test_text_that_admitd_never_signs_is_dropped_not_raised(return_to: str, value: str) -> None:
    assert verify_reason(KEY, return_to, value) is None
