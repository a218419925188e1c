"""Fuzz the small token readers: session tokens, the cookie/bearer carrier, CSRF tokens,
signed return_to tokens and the step-up reason.

Correct means: each reader answers None/False/"" for what it cannot accept and never raises;
what admitd signed reads back; an edited token is never accepted as another valid one; and a
verified return_to is always a safe relative path.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from admitd.core.context import RequestContext
from admitd.core.risk import Signal
from admitd.sessions.carrier import carries_session_bearer, session_token_from_request
from admitd.sessions.tokens import is_session_token, new_session_token, parse_session_token
from admitd.web.csrf import csrf_token, is_valid_csrf
from admitd.web.return_to import ReturnToSigner, is_safe_relative_path
from admitd.web.step_up_reason import StepUpReason, sign_reason, verify_reason
from tests.fuzz.budget import FUZZ, bounded

pytestmark = pytest.mark.timeout(120)

KEY = bytes(range(32))
NOW = 1_800_000_000.0
COOKIE = "__Host-admitd_session"
# Text as aiohttp hands it over: any code point, and lone surrogates (surrogateescape) for
# bytes that are not UTF-8.
_WIRE_TEXT = st.text(max_size=120) | st.binary(max_size=60).map(
    lambda b: b.decode("utf-8", "surrogateescape")
)
_TOKEN_CHARS = st.sampled_from(list("0123456789abcdefABCDEF._-=+/ \t;\"'\u00e9\u0660\u00b2"))


def _edit(text: str, at: int, replacement: str) -> str:
    at %= len(text) + 1
    return text[:at] + replacement + text[at + len(replacement) :]


# --- session tokens and their carrier ----------------------------------------------------


@FUZZ
@given(token=st.one_of(_WIRE_TEXT, st.text(_TOKEN_CHARS, max_size=80)))
def test_session_token_readers_never_raise(token: str) -> None:
    ref = bounded(lambda: parse_session_token(token), "parse_session_token")
    assert (ref is not None) == is_session_token(token)
    if ref is not None:
        assert len(ref.tag) == 16 and len(ref.session_id) == 64


@FUZZ
@given(
    user=st.text(max_size=40),
    at=st.integers(0, 80),
    replacement=st.text(_TOKEN_CHARS, min_size=1, max_size=3),
)
def test_an_edited_session_token_never_names_the_same_session(
    user: str, at: int, replacement: str
) -> None:
    token, ref = new_session_token(user.encode("utf-8", "replace").decode())
    assert parse_session_token(token) == ref
    edited = _edit(token, at, replacement)
    other = parse_session_token(edited)
    assert other is None or edited == token or other.session_id != ref.session_id


@FUZZ
@given(authorization=_WIRE_TEXT, cookie=_WIRE_TEXT, extra=st.text(_TOKEN_CHARS, max_size=60))
def test_the_carrier_reads_any_headers(authorization: str, cookie: str, extra: str) -> None:
    token, _ = new_session_token("alice")
    headers = {
        "authorization": authorization,
        "cookie": f"{cookie}; {COOKIE}={extra}{token}; {extra}",
    }
    ctx = RequestContext("GET", "https", "api.test", "/", headers=MappingProxyType(headers))
    found, carrier = bounded(lambda: session_token_from_request(ctx, COOKIE), "carrier")
    assert carrier in ("bearer", "cookie", "") and (found == "" or carrier)
    bearer = authorization.partition(" ")[0].lower() == "bearer" and authorization[7:].strip()
    if not bearer and ";" not in extra and COOKIE not in cookie:
        assert carrier == "cookie" and token in found
    assert isinstance(bounded(lambda: carries_session_bearer(authorization), "bearer"), bool)


# --- CSRF ----------------------------------------------------------------------------------


@FUZZ
@given(session_id=st.text(max_size=64), submitted=_WIRE_TEXT, cookie=st.none() | _WIRE_TEXT)
def test_csrf_check_never_raises_and_accepts_only_the_token(
    session_id: str, submitted: str, cookie: str | None
) -> None:
    expected = csrf_token(KEY, session_id)
    valid = bounded(lambda: is_valid_csrf(KEY, session_id, submitted, cookie), "csrf")
    assert valid == (submitted == expected and cookie == expected)
    assert is_valid_csrf(KEY, session_id, expected, expected)


def test_csrf_token_with_invalid_utf8_is_refused_not_raised() -> None:
    """aiohttp decodes header bytes with surrogateescape: `X-CSRF-Token: \\xff` is '\\udcff'."""
    assert is_valid_csrf(KEY, "sid", "\udcff", csrf_token(KEY, "sid")) is False


# --- return_to -------------------------------------------------------------------------------

_SIGNER = ReturnToSigner(KEY)


@FUZZ
@given(token=_WIRE_TEXT, host=_WIRE_TEXT)
@example(token="v1.1800000100.Lw.AAAA", host="api.test")
def test_return_to_verify_never_raises(token: str, host: str) -> None:
    path = bounded(lambda: _SIGNER.verify(token, host, NOW), "return_to verify")
    assert path is None or is_safe_relative_path(path)


@FUZZ
@given(
    path=st.text(st.characters(codec="ascii"), max_size=60).map(lambda p: "/" + p),
    at=st.integers(0, 200),
    replacement=st.text(_TOKEN_CHARS, min_size=1, max_size=3),
)
def test_return_to_round_trips_and_an_edit_is_refused(path: str, at: int, replacement: str) -> None:
    if not is_safe_relative_path(path):
        with pytest.raises(ValueError):
            _SIGNER.sign("api.test", path, NOW)
        return
    token = _SIGNER.sign("api.test", path, NOW)
    assert _SIGNER.verify(token, "API.test", NOW) == path
    assert _SIGNER.verify(token, "other.test", NOW) is None
    edited = _edit(token, at, replacement)
    back = _SIGNER.verify(edited, "api.test", NOW)
    assert back is None or edited == token


@FUZZ
@given(path=_WIRE_TEXT)
def test_only_safe_paths_are_safe(path: str) -> None:
    if bounded(lambda: is_safe_relative_path(path), "is_safe_relative_path"):
        assert path.startswith("/") and not path.startswith(("//", "/\\"))
        assert path.isascii() and path.isprintable() and " " not in path


def test_return_to_with_a_non_ascii_mac_is_refused_not_raised() -> None:
    """GET /.admitd/step-up?return_to=v1.1.x.%C3%A9 (any signed-in user): was a 500."""
    assert _SIGNER.verify("v1.1800000100.Lw.\u00e9", "api.test", NOW) is None


def test_return_to_for_a_host_with_invalid_utf8_is_refused_not_raised() -> None:
    """`Host: api.test\\xff` reaches `_mac` as 'api.test\\udcff'."""
    assert _SIGNER.verify("v1.1800000100.Lw.AAAA", "api.test\udcff", NOW) is None


# --- the step-up reason ------------------------------------------------------------------------

_REASON_KEY = _SIGNER.subkey("step-up-reason")


@FUZZ
@given(
    value=st.one_of(_WIRE_TEXT, st.text(_TOKEN_CHARS, max_size=40)),
    return_to=st.text(max_size=40),
)
def test_step_up_reason_verify_never_raises(value: str, return_to: str) -> None:
    reason = bounded(lambda: verify_reason(_REASON_KEY, return_to, value), "verify_reason")
    assert reason is None or 0 < reason.max_age <= 86_400


@FUZZ
@given(
    max_age=st.integers(1, 86_400),
    signals=st.lists(st.sampled_from(list(Signal)), max_size=4, unique=True),
    at=st.integers(0, 200),
    replacement=st.text(_TOKEN_CHARS, min_size=1, max_size=2),
)
def test_step_up_reason_round_trips_and_an_edit_is_refused(
    max_age: int, signals: list[Signal], at: int, replacement: str
) -> None:
    reason = StepUpReason(max_age, tuple(signals))
    signed = sign_reason(_REASON_KEY, "token", reason)
    assert verify_reason(_REASON_KEY, "token", signed) == reason
    assert verify_reason(_REASON_KEY, "other", signed) is None
    edited = _edit(signed, at, replacement)
    back = verify_reason(_REASON_KEY, "token", edited)
    assert back is None or edited == signed


def test_step_up_reason_with_a_superscript_digit_is_refused_not_raised() -> None:
    """GET /.admitd/step-up?return_to=<valid>&reason=%C2%B2.x.y: "²".isdigit() is True."""
    assert verify_reason(_REASON_KEY, "token", "\u00b2.x.y") is None


def test_step_up_reason_with_a_non_ascii_mac_is_refused_not_raised() -> None:
    assert verify_reason(_REASON_KEY, "token", "60..\u00e9") is None
