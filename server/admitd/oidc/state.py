"""The sign-in in flight: `state`, `nonce`, PKCE verifier and return path, in a signed cookie.

The cookie (`__Host-admitd_oidc`: HttpOnly, Secure, SameSite=Lax, ten minutes) is
`v1.<base64url(JSON)>.<base64url(HMAC-SHA256)>`. Lax, not Strict: the IdP's redirect back
to the callback is a cross-site top-level navigation, which a Strict cookie would miss.
Signed, not encrypted: it holds nothing a browser's owner may not see, and the PKCE
verifier in it is useless without the code the IdP gives that same browser.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

__all__ = ["STATE_COOKIE", "STATE_TTL", "LoginState", "new_login_state", "pkce_challenge"]

STATE_COOKIE = "__Host-admitd_oidc"
STATE_TTL = 600  # seconds a browser may spend at the IdP
_LABEL = b"admitd/oidc-state/v1\x00"
_MAX_COOKIE = 4096


@dataclass(frozen=True, slots=True)
class LoginState:
    state: str
    nonce: str
    verifier: str  # RFC 7636 code_verifier
    return_path: str  # an already verified same-host path
    expires: int
    step_up_max_age: int = 0  # > 0: a step-up, accepted only with MFA that recent

    def seal(self, key: bytes) -> str:
        body = json.dumps(
            [
                self.state,
                self.nonce,
                self.verifier,
                self.return_path,
                self.expires,
                self.step_up_max_age,
            ],
            separators=(",", ":"),
        ).encode()
        encoded = _b64(body)
        return f"v1.{encoded}.{_b64(_mac(key, encoded))}"

    @classmethod
    def unseal(cls, key: bytes, cookie: str, now: float) -> LoginState | None:
        """The state the cookie holds if it is authentic and unexpired; else None."""
        parts = cookie.split(".")
        if len(cookie) > _MAX_COOKIE or len(parts) != 3 or parts[0] != "v1":
            return None
        if not cookie.isascii():  # what admitd seals is; aiohttp may hand over lone surrogates
            return None
        expected = _b64(_mac(key, parts[1])).encode("ascii")
        if not hmac.compare_digest(expected, parts[2].encode("ascii")):
            return None
        try:
            state, nonce, verifier, path, expires, max_age = json.loads(_unb64(parts[1]))
        except (ValueError, TypeError, binascii.Error):
            return None
        if not isinstance(expires, int) or not now < expires or not isinstance(max_age, int):
            return None
        return cls(str(state), str(nonce), str(verifier), str(path), expires, max_age)


def new_login_state(return_path: str, now: float, step_up_max_age: int = 0) -> LoginState:
    """Fresh random values (256 bits each, RFC 7636 §7.1 asks for at least that)."""
    return LoginState(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(48),
        return_path=return_path,
        expires=int(now) + STATE_TTL,
        step_up_max_age=step_up_max_age,
    )


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2, S256: base64url(SHA-256(verifier)) without padding."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def _mac(key: bytes, encoded: str) -> bytes:
    return hmac.new(key, _LABEL + encoded.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
