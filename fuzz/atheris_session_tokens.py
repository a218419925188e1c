"""atheris: session tokens, the cookie/bearer carrier and CSRF tokens never raise."""

from __future__ import annotations

from types import MappingProxyType

import atheris
from harness import main, tolerated

with atheris.instrument_imports(include=["admitd"]):
    from admitd.core.context import RequestContext
    from admitd.sessions.carrier import carries_session_bearer, session_token_from_request
    from admitd.sessions.tokens import is_session_token, parse_session_token
    from admitd.web.csrf import csrf_token, is_valid_csrf

KEY = bytes(range(32))
COOKIE = "__Host-admitd_session"
SEEDS = [
    b"0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    b"Bearer 0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    b'a=b; __Host-admitd_session="x"; c',
]


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    # Header text as aiohttp decodes it: invalid UTF-8 becomes lone surrogates.
    text = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 400)).decode(
        "utf-8", "surrogateescape"
    )
    other = provider.ConsumeBytes(provider.remaining_bytes()).decode("utf-8", "surrogateescape")
    try:
        ref = parse_session_token(text)
        assert (ref is not None) == is_session_token(text)
        headers = MappingProxyType({"authorization": text, "cookie": other})
        ctx = RequestContext("GET", "https", "api.test", "/", headers=headers)
        session_token_from_request(ctx, COOKIE)
        carries_session_bearer(text)
        expected = csrf_token(KEY, "sid")
        assert is_valid_csrf(KEY, "sid", text, other) == (text == other == expected)
    except Exception as exc:
        if tolerated(exc):
            return
        raise


if __name__ == "__main__":
    main("session_tokens", one_input, SEEDS)
