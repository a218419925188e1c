"""Claims -> User: user, organisation, roles by dotted path and table, MFA only from amr/acr."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from admitd.core.identity import MfaMethod
from admitd.jwt.claims import ClaimsError, claim_at, user_from_claims
from admitd.jwt.config import IssuerConfig

BASE = IssuerConfig(issuer="https://idp", audiences=("api",), organisation_claim="org")
CLAIMS: dict[str, Any] = {"sub": "alice", "org": "acme", "groups": ["admin"], "auth_time": 1000}


def issuer(**changes: Any) -> IssuerConfig:
    settings = {f: getattr(BASE, f) for f in BASE.__slots__} | changes
    return IssuerConfig(**settings)


def test_dotted_paths() -> None:
    assert claim_at({"realm_access": {"roles": ["a"]}}, "realm_access.roles") == ["a"]
    assert claim_at({"realm_access": ["a"]}, "realm_access.roles") is None


@pytest.mark.parametrize(
    ("amr", "acr", "verified"),
    [
        pytest.param(["pwd", "otp"], None, True, id="otp"),
        pytest.param(["pwd", "mfa"], None, True, id="mfa"),
        pytest.param(["hwk"], None, True, id="hwk"),
        pytest.param(["pwd"], None, False, id="password-only"),
        pytest.param(["pwd", "sms"], None, False, id="sms-off-by-default"),
        pytest.param(["pwd"], "urn:mfa", True, id="acr-in-set"),
        pytest.param(["pwd"], "urn:other", False, id="acr-not-in-set"),
    ],
)
def test_auth_time_counts_only_with_mfa(amr: list[str], acr: str | None, verified: bool) -> None:
    claims = {**CLAIMS, "amr": amr, **({"acr": acr} if acr else {})}
    user = user_from_claims(claims, issuer(mfa_acr=frozenset({"urn:mfa"})), "t")
    assert user.mfa_verified_at == (1000.0 if verified else None)
    assert user.mfa_verified_by == "idp" and user.source == "jwt" and user.session_id == "t"


def test_an_elevated_acr_without_auth_time_is_not_a_verification() -> None:
    claims = {k: v for k, v in CLAIMS.items() if k != "auth_time"} | {"amr": ["otp"]}
    assert user_from_claims(claims, BASE, "t").mfa_verified_at is None


def test_method_from_amr() -> None:
    assert user_from_claims({**CLAIMS, "amr": ["fido"]}, BASE, "t").mfa_method is MfaMethod.PASSKEY
    assert user_from_claims({**CLAIMS, "amr": ["otp"]}, BASE, "t").mfa_method is MfaMethod.TOTP


def test_roles_by_path_and_table() -> None:
    claims = {**CLAIMS, "realm_access": {"roles": ["platform-admins", "other-app-admin"]}}
    mapped = issuer(
        roles_claim="realm_access.roles",
        role_map=MappingProxyType({"platform-admins": ("admin", "auditor")}),
    )
    assert user_from_claims(claims, mapped, "t").roles == {"admin", "auditor"}
    assert user_from_claims({**CLAIMS, "groups": "a b"}, BASE, "t").roles == {"a", "b"}


def test_enrolment_follows_the_issuer_setting() -> None:
    pwd = {**CLAIMS, "amr": ["pwd"]}
    assert user_from_claims(pwd, BASE, "t").factors  # the IdP can step the user up
    assert not user_from_claims(pwd, issuer(assume_mfa_enrolled=False), "t").factors


def test_missing_claims() -> None:
    with pytest.raises(ClaimsError, match="'org'"):
        user_from_claims({"sub": "alice"}, BASE, "t")
    assert user_from_claims({"sub": "a"}, issuer(default_organisation="x"), "t").organisation == "x"
    with pytest.raises(ClaimsError, match="'email'"):
        user_from_claims(CLAIMS, issuer(user_claim="email"), "t")
