"""web/csrf.py: the double-submitted token, and copies of it that are not even text."""

from __future__ import annotations

import pytest

from admitd.web.csrf import csrf_token, is_valid_csrf

KEY = bytes(range(32))


def test_both_copies_of_this_sessions_token_are_valid() -> None:
    token = csrf_token(KEY, "sid")
    assert is_valid_csrf(KEY, "sid", token, token)
    assert not is_valid_csrf(KEY, "other", token, token)
    assert not is_valid_csrf(KEY, "sid", token, None)


@pytest.mark.parametrize(
    ("submitted", "cookie"),
    [
        pytest.param("\udcff", "TOKEN", id="surrogate-field"),  # aiohttp: `X-CSRF-Token: \xff`
        pytest.param("TOKEN", "\udcff", id="surrogate-cookie"),
        pytest.param("TOKEN", "TOKEN\udcff", id="token-then-surrogate"),
        pytest.param("\u00e9", "TOKEN", id="non-ascii"),
    ],
)
def test_a_copy_that_cannot_be_the_token_is_refused_not_raised(submitted: str, cookie: str) -> None:
    token = csrf_token(KEY, "sid")
    assert not is_valid_csrf(
        KEY, "sid", submitted.replace("TOKEN", token), cookie.replace("TOKEN", token)
    )
