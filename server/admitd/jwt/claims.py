"""Verified JWT claims -> the core's `User`: who, organisation, roles and second-factor time.

Pure: no I/O. `auth_time` counts as an MFA verification only when `amr` names a configured
MFA method or `acr` is in the configured set (an elevated `acr` alone is not enough without
`auth_time`: freshness is what the core judges).
"""

from __future__ import annotations

from collections.abc import Mapping

from admitd.core.identity import MfaMethod, User
from admitd.jwt.config import IssuerConfig

__all__ = ["ClaimsError", "claim_at", "user_from_claims"]

# RFC 8176 methods that are a possession factor bound to hardware or a key: a passkey.
_PASSKEY_AMR = frozenset({"hwk", "swk", "fido"})


class ClaimsError(ValueError):
    """A verified token lacks a claim admitd needs (the token is refused, not guessed at)."""


def claim_at(claims: Mapping[str, object], path: str) -> object:
    """The value at a dotted path (`realm_access.roles`), or None."""
    value: object = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def user_from_claims(claims: Mapping[str, object], issuer: IssuerConfig, token_id: str) -> User:
    """The user a verified token names; `token_id` (a digest, never the token) becomes its
    `session_id`. Raises ClaimsError when the user or organisation claim is missing."""
    amr = _strings(claims.get("amr"))
    acr = claims.get("acr")
    mfa = bool(set(amr) & issuer.mfa_amr) or (isinstance(acr, str) and acr in issuer.mfa_acr)
    verified_at = _time(claims.get("auth_time")) if mfa else None
    method = _method(amr) if verified_at is not None else None
    enrolled = verified_at is not None or issuer.assume_mfa_enrolled
    return User(
        user_id=_required_text(claims, issuer.user_claim),
        organisation=_organisation(claims, issuer),
        roles=_roles(claims, issuer),
        session_id=token_id,
        # The IdP owns the user's factors; "enrolled" lets the core ask it for a step-up.
        factors=frozenset({method or MfaMethod.TOTP}) if enrolled else frozenset(),
        mfa_verified_at=verified_at,
        mfa_method=method,
        mfa_verified_by="idp",
        source="jwt",
        step_up_acr_values=issuer.acr_values,
        step_up_status=issuer.step_up_status,
        scopes=_scopes(claims),
    )


def _scopes(claims: Mapping[str, object]) -> frozenset[str]:
    # RFC 9068 / RFC 8693: `scope` is one space-separated string; Okta and Entra ID send
    # `scp`, as a list or a string.
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        scopes.update(value.split() if isinstance(value, str) else _strings(value))
    return frozenset(scopes)


def _method(amr: tuple[str, ...]) -> MfaMethod:
    return MfaMethod.PASSKEY if _PASSKEY_AMR & set(amr) else MfaMethod.TOTP


def _organisation(claims: Mapping[str, object], issuer: IssuerConfig) -> str:
    if not issuer.organisation_claim:
        return issuer.default_organisation
    value = claim_at(claims, issuer.organisation_claim)
    if isinstance(value, str) and value:
        return value
    if issuer.default_organisation:
        return issuer.default_organisation
    raise ClaimsError(f"claim {issuer.organisation_claim!r} missing")


def _roles(claims: Mapping[str, object], issuer: IssuerConfig) -> frozenset[str]:
    raw = claim_at(claims, issuer.roles_claim)
    # Some IdPs send one space-separated string (like `scope`), most a list.
    names = tuple(raw.split()) if isinstance(raw, str) else _strings(raw)
    if not issuer.role_map:
        return frozenset(names)
    # With a table, only mapped roles count: another application's "admin" group is not ours.
    return frozenset(role for name in names for role in issuer.role_map.get(name, ()))


def _required_text(claims: Mapping[str, object], path: str) -> str:
    value = claim_at(claims, path)
    if not isinstance(value, str) or not value:
        raise ClaimsError(f"claim {path!r} missing")
    return value


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _time(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)
