"""CSRF tokens for the step-up forms: a double-submitted value bound to the session.

The token is HMAC(key, session ID), so it is useless with any other session, and
it must arrive twice, in the `__Host-admitd_csrf` cookie (SameSite=Strict, which a
cross-site request does not carry) and in the form field or `X-CSRF-Token` header
(which a cross-site page cannot read).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "CSRF_HEADER", "csrf_token", "is_valid_csrf"]

CSRF_COOKIE = "__Host-admitd_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


def csrf_token(key: bytes, session_id: str) -> str:
    mac = hmac.new(key, b"admitd/csrf\x00" + session_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def is_valid_csrf(key: bytes, session_id: str, submitted: str, cookie: str | None) -> bool:
    """Both copies present and both equal to this session's token (constant time).

    The token is ASCII, so a copy that is not (e.g. aiohttp's lone surrogates for header
    bytes that are not UTF-8, which have no encoding) is refused, never encoded.
    """
    if cookie is None or not submitted.isascii() or not cookie.isascii():
        return False
    expected = csrf_token(key, session_id).encode("ascii")
    return hmac.compare_digest(submitted.encode("ascii"), expected) and hmac.compare_digest(
        cookie.encode("ascii"), expected
    )
