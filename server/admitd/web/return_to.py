"""Signed `return_to` tokens: where the step-up page sends the browser back (same host only).

A token is `v1.<expires>.<base64url(path)>.<base64url(HMAC-SHA256)>`; the MAC binds the
host, the expiry and the path, so a token minted for one host is worthless on another.
Only a relative path starting with exactly one "/" is ever signed or accepted, and the
redirect built from it is relative, so the browser can never be sent to another origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import quote

from admitd.web.step_up_reason import REASON_KEY_LABEL, StepUpReason, sign_reason

__all__ = [
    "RETURN_TO_TTL",
    "STEP_UP_PATH",
    "STEP_UP_PREFIX",
    "ReturnToSigner",
    "is_safe_relative_path",
    "step_up_location",
]

STEP_UP_PREFIX = "/.admitd"  # reserved: Envoy routes it to admitd's web port, ext_authz off
STEP_UP_PATH = f"{STEP_UP_PREFIX}/step-up"
RETURN_TO_TTL = 600.0  # seconds: long enough to find the phone, short enough to limit replay
_MIN_KEY_BYTES = 32
_MAX_PATH = 4096
_LABEL = b"admitd/return-to/v1\x00"
# Visible ASCII only, no backslash: browsers strip tabs/newlines and treat "\" as "/",
# so "/\t/evil" or "/\evil" would become the protocol-relative "//evil".
_SAFE_PATH = re.compile(r"/(?![/\\])[\x21-\x5b\x5d-\x7e]*")


def is_safe_relative_path(path: str) -> bool:
    """True for "/x?y" style paths; False for "//host", "/\\host", absolute URLs, controls."""
    return len(path) <= _MAX_PATH and _SAFE_PATH.fullmatch(path) is not None


class ReturnToSigner:
    """Signs and verifies return_to tokens with one HMAC key (32+ random bytes)."""

    __slots__ = ("_key", "_ttl")

    def __init__(self, key: bytes, *, ttl: float = RETURN_TO_TTL) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise ValueError(f"the return_to signing key needs at least {_MIN_KEY_BYTES} bytes")
        self._key = key
        self._ttl = ttl

    def __repr__(self) -> str:
        return "ReturnToSigner(<key>)"

    def subkey(self, label: str) -> bytes:
        """A key for another purpose (e.g. CSRF tokens), independent of the signing key."""
        return hmac.new(self._key, b"admitd/subkey\x00" + label.encode(), hashlib.sha256).digest()

    def sign(self, host: str, path_and_query: str, now: float) -> str:
        """A token for `path_and_query` on `host`; ValueError if the path is not safe."""
        if not is_safe_relative_path(path_and_query):
            raise ValueError("return_to must be a relative path starting with a single '/'")
        expires = str(int(now + self._ttl))
        encoded = _b64(path_and_query.encode())
        return f"v1.{expires}.{encoded}.{_b64(self._mac(host, expires, encoded))}"

    def verify(self, token: str, host: str, now: float) -> str | None:
        """The signed path if `token` is authentic, unexpired and for `host`; else None."""
        # The token is the client's: only ASCII can be one admitd signed, and a host that is
        # not Unicode text (aiohttp's surrogateescape for bytes that are not UTF-8) was never
        # signed either. Both are refused before anything is encoded or compared.
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not _is_decimal(parts[1]):
            return None
        if len(token) > 8192 or not token.isascii() or not _is_utf8_text(host):
            return None
        _, expires, encoded, mac = parts
        expected = _b64(self._mac(host, expires, encoded)).encode("ascii")
        if not hmac.compare_digest(expected, mac.encode("ascii")):
            return None
        if not now < int(expires) <= now + self._ttl + 60:  # 60 s of clock skew between replicas
            return None
        try:
            path = _unb64(encoded).decode("ascii")
        except (binascii.Error, ValueError):
            return None
        return path if is_safe_relative_path(path) else None

    def _mac(self, host: str, expires: str, encoded_path: str) -> bytes:
        message = b"\x00".join((host.lower().encode(), expires.encode(), encoded_path.encode()))
        return hmac.new(self._key, _LABEL + message, hashlib.sha256).digest()


def step_up_location(
    signer: ReturnToSigner,
    host: str,
    path: str,
    now: float,
    reason: StepUpReason | None = None,
) -> str:
    """Where a browser with stale MFA is sent: the step-up page, remembering `path`, and
    (when given) why, signed together with that return_to (web/step_up_reason.py).

    A path that is not a safe relative path (should not happen behind Envoy's path
    normalisation) is replaced by "/" rather than signed.
    """
    target = path if is_safe_relative_path(path) else "/"
    token = signer.sign(host, target, now)
    location = f"{STEP_UP_PATH}?return_to={quote(token, safe='')}"
    if reason is None:
        return location
    signed = sign_reason(signer.subkey(REASON_KEY_LABEL), token, reason)
    return f"{location}&reason={quote(signed, safe='')}"


def _is_decimal(text: str) -> bool:
    """ASCII digits only: str.isdigit() is also true for "²", which int() refuses."""
    return text.isascii() and text.isdigit()


def _is_utf8_text(text: str) -> bool:
    """False for text holding lone surrogates, which have no UTF-8 encoding."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
