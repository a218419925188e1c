"""Find the session token a request carries: `Authorization: Bearer` (API clients) or a cookie."""

from __future__ import annotations

from admitd.core.context import RequestContext
from admitd.sessions.tokens import is_session_token

__all__ = ["carries_session_bearer", "session_token_from_request"]


def session_token_from_request(ctx: RequestContext, cookie_name: str) -> tuple[str, str]:
    """(token, carrier) with carrier "bearer" or "cookie"; ("", "") when there is none."""
    authorization = ctx.header("authorization")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), "bearer"
    cookies = ctx.header("cookie")
    if cookie_name in cookies:
        for pair in cookies.split(";"):
            name, _, value = pair.strip().partition("=")
            if name == cookie_name and value:
                return value.strip('"'), "cookie"
    return "", ""


def carries_session_bearer(authorization: str) -> bool:
    """Whether `authorization` holds an admitd session token (kept from the upstream)."""
    # Each of repeated fields (Envoy joins them with ","), and any whitespace after the
    # scheme: an upstream may be laxer than admitd's own carrier.
    for field in authorization.split(",") if authorization else ():
        scheme, _, credentials = field.strip().replace("\t", " ").partition(" ")
        if scheme.lower() == "bearer" and is_session_token(credentials.strip()):
            return True
    return False
