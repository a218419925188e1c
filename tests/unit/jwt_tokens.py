"""Locally generated signing keys and tokens for the JWT tests, and an in-memory JWKS fetch."""

from __future__ import annotations

import base64
import json
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

ISSUER = "https://idp.test"
AUDIENCE = "https://api.test"
JWKS_URI = "https://idp.test/jwks"
NOW = 1_800_000_000


class Idp:
    """Signs tokens with its current key; `documents` is what the fake fetch serves."""

    def __init__(self, kid: str = "rsa-1") -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": kid})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
        self.published = [self.rsa, self.ec]
        self.fetched: list[str] = []

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet(self.published).as_dict(private=False))

    async def fetch(self, url: str) -> object:
        self.fetched.append(url)
        if url == JWKS_URI:
            return self.jwks()
        if url == ISSUER + "/.well-known/openid-configuration":
            return {"issuer": ISSUER, "jwks_uri": JWKS_URI}
        raise AssertionError(url)

    def token(self, key: Any = None, alg: str = "RS256", **claims: Any) -> str:
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "org": "acme",
            "groups": ["admin"],
            "iat": NOW - 10,
            "exp": NOW + 300,
            "auth_time": NOW - 30,
            "amr": ["pwd", "otp"],
        }
        body.update(claims)
        for name in [k for k, v in body.items() if v is None]:
            del body[name]
        key = key or self.rsa
        return jwt.encode({"alg": alg, "kid": key.kid}, body, key, algorithms=[alg])


def unsigned(claims: dict[str, Any]) -> str:
    """An `alg: none` token, built by hand because no JOSE library will produce one."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def tampered(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key(idp: Idp, claims: dict[str, Any]) -> str:
    """The key-confusion attack: HS256 keyed with the issuer's public key (joserfc refuses to
    build one, rightly, so the attacker's HMAC is computed here)."""
    import hashlib
    import hmac

    header = _b64(json.dumps({"alg": "HS256", "kid": idp.rsa.kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    secret = idp.rsa.as_pem(private=False)
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"
