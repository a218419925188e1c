"""Verify a JWT with joserfc: issuer, allowed algorithm, key by `kid`, signature, then claims.

Every signature and claims check is the library's; this module only chooses the issuer's
keys and allow-list, and names what went wrong. The unverified header and payload are read
(by joserfc) only to pick the issuer and the key; nothing from them is trusted before the
signature is checked.

A payload nested past the interpreter's recursion limit makes `json.loads` raise
RecursionError, not ValueError: it is refused as malformed like any other bad JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)
from joserfc.jws import extract_compact

from admitd.jwt.config import IssuerConfig
from admitd.jwt.keys import IssuerKeys

__all__ = ["JwtVerifier", "Refused", "TokenProblem", "Verified"]


class TokenProblem(StrEnum):
    """Why a token was refused (the decision log's detail; the client sees token_invalid)."""

    MALFORMED = "malformed"
    UNKNOWN_ISSUER = "unknown_issuer"
    ALGORITHM_REFUSED = "algorithm_refused"
    UNKNOWN_KID = "unknown_kid"
    KEYS_UNAVAILABLE = "keys_unavailable"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_ISSUER = "wrong_issuer"
    CLAIM_MISSING = "claim_missing"
    CLAIM_INVALID = "claim_invalid"


@dataclass(frozen=True, slots=True)
class Verified:
    claims: Mapping[str, object]
    issuer: IssuerConfig
    expires_at: float


@dataclass(frozen=True, slots=True)
class Refused:
    problem: TokenProblem
    detail: str = ""


class JwtVerifier:
    """Verifies tokens of the configured issuers, each with its own keys and allow-list."""

    def __init__(self, issuers: Mapping[str, IssuerKeys]) -> None:
        self.issuers = issuers

    async def verify(self, token: str, now: float) -> Verified | Refused:
        try:
            unverified = extract_compact(token.encode("ascii"))
            header, payload = unverified.headers(), json.loads(unverified.payload)  # untrusted
        except (JoseError, ValueError, UnicodeError, RecursionError):
            return Refused(TokenProblem.MALFORMED)
        iss = payload.get("iss") if isinstance(payload, dict) else None
        keys = self.issuers.get(iss) if isinstance(iss, str) else None
        if keys is None:
            return Refused(TokenProblem.UNKNOWN_ISSUER)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in keys.issuer.algorithms:
            # Never `none`, never HMAC: the allow-list holds asymmetric algorithms only.
            return Refused(TokenProblem.ALGORITHM_REFUSED, f"alg {str(alg)[:16]!r}")
        if not keys.has_kid(kid if isinstance(kid, str) else None):
            await keys.refresh()  # an unknown kid may be a rotated key: fetch, rate-limited
            if keys.keys is None:
                return Refused(TokenProblem.KEYS_UNAVAILABLE)
            if not keys.has_kid(kid if isinstance(kid, str) else None):
                return Refused(TokenProblem.UNKNOWN_KID)
        return _checked(token, keys, now)


def _checked(token: str, keys: IssuerKeys, now: float) -> Verified | Refused:
    issuer = keys.issuer
    assert keys.keys is not None  # has_kid() held
    try:
        decoded = jwt.decode(token, keys.keys, algorithms=list(issuer.algorithms))
    except BadSignatureError:
        return Refused(TokenProblem.BAD_SIGNATURE)
    except (JoseError, ValueError, RecursionError):  # joserfc parses the claims again
        return Refused(TokenProblem.MALFORMED)
    registry = jwt.JWTClaimsRegistry(
        now=int(now),
        leeway=issuer.leeway_seconds,
        iss={"essential": True, "value": issuer.issuer},
        aud={"essential": True, "values": list(issuer.audiences)},
        exp={"essential": True},  # a token that never expires is refused
    )
    try:
        registry.validate(decoded.claims)
    except ClaimError as exc:
        return Refused(_claim_problem(exc), exc.claim)
    return Verified(decoded.claims, issuer, float(decoded.claims["exp"]))


def _claim_problem(exc: ClaimError) -> TokenProblem:
    if isinstance(exc, ExpiredTokenError):
        return TokenProblem.EXPIRED
    if isinstance(exc, MissingClaimError):
        return TokenProblem.CLAIM_MISSING
    return {
        "nbf": TokenProblem.NOT_YET_VALID,
        "aud": TokenProblem.WRONG_AUDIENCE,
        "iss": TokenProblem.WRONG_ISSUER,
    }.get(exc.claim, TokenProblem.CLAIM_INVALID)
