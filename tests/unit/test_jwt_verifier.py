"""JWT verification with locally generated keys: each way a token can be wrong, and the cache."""

from __future__ import annotations

import base64
import json
from types import MappingProxyType
from typing import Any

import pytest
from joserfc import jws

from admitd.core.identity import UserState
from admitd.jwt.config import IssuerConfig, JwtConfig
from admitd.jwt.source import JwtIdentity
from tests.unit.helpers import request
from tests.unit.jwt_tokens import (
    AUDIENCE,
    ISSUER,
    JWKS_URI,
    NOW,
    Idp,
    hs256_with_public_key,
    tampered,
    unsigned,
)

BASE_CLAIMS: dict[str, Any] = {
    "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": NOW + 300, "iat": NOW - 10,
}  # fmt: skip


def config(**issuer: Any) -> JwtConfig:
    settings: dict[str, Any] = {
        "issuer": ISSUER, "audiences": (AUDIENCE,), "organisation_claim": "org",
        "role_map": MappingProxyType({}), **issuer,
    }  # fmt: skip
    return JwtConfig(issuers=(IssuerConfig(**settings),), cache_size=4)


@pytest.fixture
def idp() -> Idp:
    return Idp()


@pytest.fixture
async def source(idp: Idp) -> JwtIdentity:
    source = JwtIdentity(config(jwks_uri=JWKS_URI), idp.fetch)
    await source.start()
    return source


async def look(source: JwtIdentity, token: str, now: float = NOW) -> tuple[UserState, str]:
    found = await source.lookup(request(headers={"authorization": f"Bearer {token}"}), now)
    assert found.user.carrier == "jwt" and found.risk_state is None
    return found.user.state, found.user.detail


async def test_a_valid_token_names_the_user(source: JwtIdentity, idp: Idp) -> None:
    found = await source.lookup(request(headers={"authorization": f"Bearer {idp.token()}"}), NOW)
    user = found.user.user
    assert found.user.state is UserState.ACTIVE and user is not None
    assert (user.user_id, user.organisation, user.roles) == ("alice", "acme", {"admin"})
    assert user.mfa_verified_at == NOW - 30 and user.source == "jwt"


async def test_an_es256_token_verifies(source: JwtIdentity, idp: Idp) -> None:
    assert (await look(source, idp.token(idp.ec, "ES256")))[0] is UserState.ACTIVE


@pytest.mark.parametrize(
    ("claims", "state", "detail"),
    [
        pytest.param({"exp": NOW - 120}, UserState.EXPIRED, "jwt: expired (exp)", id="expired"),
        pytest.param({"nbf": NOW + 600}, UserState.UNKNOWN, "jwt: not_yet_valid (nbf)", id="nbf"),
        pytest.param(
            {"aud": "https://other.test"}, UserState.UNKNOWN, "jwt: wrong_audience (aud)",
            id="wrong-aud",
        ),
        pytest.param(
            {"iss": "https://evil.test"}, UserState.UNKNOWN, "jwt: unknown_issuer", id="wrong-iss"
        ),
        pytest.param({"exp": None}, UserState.UNKNOWN, "jwt: claim_missing (exp)", id="no-exp"),
    ],
)  # fmt: skip
async def test_claims_are_checked(
    source: JwtIdentity, idp: Idp, claims: dict[str, Any], state: UserState, detail: str
) -> None:
    assert await look(source, idp.token(**claims)) == (state, detail)


async def test_expiry_has_leeway(source: JwtIdentity, idp: Idp) -> None:
    assert (await look(source, idp.token(exp=NOW - 30)))[0] is UserState.ACTIVE


async def test_alg_none_is_refused(source: JwtIdentity) -> None:
    assert await look(source, unsigned(BASE_CLAIMS)) == (
        UserState.UNKNOWN, "jwt: algorithm_refused (alg 'none')",
    )  # fmt: skip


async def test_hs256_signed_with_the_public_key_is_refused(source: JwtIdentity, idp: Idp) -> None:
    token = hs256_with_public_key(idp, BASE_CLAIMS)
    assert await look(source, token) == (UserState.UNKNOWN, "jwt: algorithm_refused (alg 'HS256')")


async def test_an_algorithm_outside_the_issuers_list_is_refused(idp: Idp) -> None:
    source = JwtIdentity(config(jwks_uri=JWKS_URI, algorithms=("ES256",)), idp.fetch)
    assert (await look(source, idp.token()))[1] == "jwt: algorithm_refused (alg 'RS256')"


async def test_a_tampered_payload_is_refused(source: JwtIdentity, idp: Idp) -> None:
    token = tampered(idp.token(), sub="mallory", groups=["admin", "finance"])
    assert await look(source, token) == (UserState.UNKNOWN, "jwt: bad_signature")


async def test_a_token_signed_by_another_key_with_a_known_kid_is_refused(
    source: JwtIdentity,
) -> None:
    other = Idp()  # same kid "rsa-1", another key
    assert await look(source, other.token()) == (UserState.UNKNOWN, "jwt: bad_signature")


async def test_an_unknown_kid_refetches_the_jwks(idp: Idp) -> None:
    source = JwtIdentity(config(jwks_uri=JWKS_URI), idp.fetch)
    await source.start()
    rotated = Idp("rsa-2").rsa
    idp.published = [rotated, idp.rsa]  # the IdP rotates: a new key first
    assert (await look(source, idp.token(rotated)))[0] is UserState.ACTIVE
    assert idp.fetched == [JWKS_URI, JWKS_URI]


async def test_unknown_kid_refetches_are_rate_limited(source: JwtIdentity, idp: Idp) -> None:
    stranger = Idp("nobody").rsa
    for _ in range(3):
        assert await look(source, idp.token(stranger)) == (UserState.UNKNOWN, "jwt: unknown_kid")
    assert idp.fetched == [JWKS_URI, JWKS_URI]  # start, then one refetch within the interval


async def test_the_jwks_is_discovered_from_the_issuer(idp: Idp) -> None:
    source = JwtIdentity(config(), idp.fetch)
    await source.start()
    assert (await look(source, idp.token()))[0] is UserState.ACTIVE
    assert idp.fetched == [ISSUER + "/.well-known/openid-configuration", JWKS_URI]


async def test_unreachable_keys_make_the_source_unavailable(idp: Idp) -> None:
    async def down(url: str) -> object:
        from admitd.jwt.keys import KeyFetchError

        raise KeyFetchError(f"{url}: ClientConnectorError")

    source = JwtIdentity(config(jwks_uri=JWKS_URI), down)
    await source.start()  # logged, not raised: admitd starts
    assert await look(source, idp.token()) == (UserState.UNAVAILABLE, "jwt: keys_unavailable")


async def test_a_repeated_token_costs_no_verification(source: JwtIdentity, idp: Idp) -> None:
    token = idp.token()
    for _ in range(3):
        assert (await look(source, token))[0] is UserState.ACTIVE
    assert source.verifications == 1


async def test_a_cached_token_is_dropped_at_exp(source: JwtIdentity, idp: Idp) -> None:
    token = idp.token(exp=NOW + 5)
    await look(source, token)
    assert await look(source, token, now=NOW + 200) == (UserState.EXPIRED, "jwt: expired (exp)")
    assert source.verifications == 2


async def test_the_cache_is_bounded(source: JwtIdentity, idp: Idp) -> None:
    tokens = [idp.token(jti=str(n)) for n in range(6)]
    for token in tokens:
        await look(source, token)
    assert len(source._cache) == 4
    await look(source, tokens[0])  # evicted (least recently used): verified again
    assert source.verifications == 7


async def test_a_bearer_token_not_shaped_like_a_jwt_is_not_looked_at(source: JwtIdentity) -> None:
    found = await source.lookup(request(headers={"authorization": "Bearer abc.def"}), NOW)
    assert found.user.state is UserState.NOT_PRESENTED


async def test_a_token_without_the_user_claim_is_refused(source: JwtIdentity, idp: Idp) -> None:
    assert await look(source, idp.token(sub=None)) == (
        UserState.UNKNOWN, "jwt: claim 'sub' missing",
    )  # fmt: skip


@pytest.mark.parametrize("signed", [False, True], ids=["forged", "idp-signed"])
async def test_a_payload_nested_past_the_recursion_limit_is_malformed(
    source: JwtIdentity, idp: Idp, signed: bool
) -> None:
    """json.loads raises RecursionError (not ValueError) for 5,000 nested `[`: refused as
    malformed, never an exception (the Check would take its fail-closed path)."""
    nested = b"[" * 5000 + b"]" * 5000
    if signed:  # even the IdP's own signature over such a payload does not make it readable
        token = jws.serialize_compact({"alg": "RS256", "kid": idp.rsa.kid}, nested, idp.rsa)
    else:
        header = _b64(json.dumps({"alg": "RS256", "kid": idp.rsa.kid}).encode())
        token = f"{header}.{_b64(nested)}.AAAA"
    assert await look(source, token) == (UserState.MALFORMED, "jwt: malformed")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
