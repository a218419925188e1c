"""Step-up at the IdP: the signed request in the sign-in link, and what the result must show.

A Check that finds MFA too old for a route sends the browser to
`/.admitd/oidc/start?return_to=<token>&step_up=<N>.<mac>`. N (seconds) is what the route
asked for; the MAC binds it to the signed return_to token (itself bound to the host and an
expiry), so a browser cannot ask for a laxer step-up than the route's. The start handler
asks the IdP for a new login (`max_age=N`, `prompt=login`, `acr_values`), and the callback
accepts the ID token only when `auth_time` is within N seconds and `amr`/`acr` name a
second factor (`is_fresh_mfa`). Anything else is an explanation page, never another
redirect: an IdP that will not re-authenticate would otherwise loop the browser forever.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from admitd.core.identity import User

__all__ = ["MAX_STEP_UP_AGE", "sign_step_up", "step_up_problem", "verify_step_up"]

MAX_STEP_UP_AGE = 86_400  # the policy loader's bound on `mfa_max_age`
_LABEL = b"admitd/oidc-step-up/v1\x00"


def sign_step_up(key: bytes, return_to: str, max_age: int) -> str:
    """The `step_up` query value for a sign-in link carrying `return_to` (the signed token)."""
    return f"{max_age}.{_mac(key, return_to, max_age)}"


def verify_step_up(key: bytes, return_to: str, value: str) -> int | None:
    """The max_age `value` asks for, if it was signed with `return_to`; else None."""
    # Both come from the query string; what admitd signed is ASCII, so anything else is
    # refused before it is encoded ("²".isdigit() is true too, and int() refuses it).
    if not value.isascii() or not return_to.isascii():
        return None
    age, _, mac = value.partition(".")
    if not age.isdigit() or len(age) > 6 or not 0 < int(age) <= MAX_STEP_UP_AGE:
        return None
    if not hmac.compare_digest(_mac(key, return_to, int(age)).encode("ascii"), mac.encode("ascii")):
        return None
    return int(age)


def step_up_problem(
    claims: Mapping[str, object], user: User, max_age: int, now: float, leeway: int
) -> str | None:
    """None when the ID token shows a second factor within `max_age` seconds; else what it
    lacks, in words for the person (the explanation page) and the log."""
    auth_time = claims.get("auth_time")
    if isinstance(auth_time, bool) or not isinstance(auth_time, int | float):
        return "The identity provider did not say when you signed in."
    if auth_time > now + leeway:
        return "The identity provider reported a sign-in time in the future."
    if now - auth_time > max_age + leeway:
        return "The identity provider did not ask you to sign in again."
    if user.mfa_verified_at is None:
        # jwt.claims sets it only when `amr` names an MFA method or `acr` is an MFA level.
        return "The identity provider signed you in without a second factor."
    return None


def _mac(key: bytes, return_to: str, max_age: int) -> str:
    message = _LABEL + return_to.encode() + b"\x00" + str(max_age).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
