"""A real access token from panva's oidc-provider (tests/idp) verified by the JWT source."""

from __future__ import annotations

import time
from types import MappingProxyType

import pytest

from admitd.core.identity import UserState
from admitd.jwt.config import IssuerConfig, JwtConfig
from admitd.jwt.source import JwtIdentity
from tests.idp.harness import API, Idp
from tests.unit.helpers import request

pytestmark = pytest.mark.integration


def source_for(idp: Idp, audience: str = API) -> JwtIdentity:
    issuer = IssuerConfig(
        issuer=idp.issuer, audiences=(audience,), organisation_claim="org",
        default_organisation="machines", role_map=MappingProxyType({}),
    )  # fmt: skip
    return JwtIdentity(JwtConfig(issuers=(issuer,)))


async def test_alices_access_token_names_her_with_fresh_mfa(idp: Idp) -> None:
    token = idp.user_tokens("alice", resource=API, scope="openid api:read")["access_token"]
    source = source_for(idp)
    try:
        await source.start()  # discovery from the issuer, then its JWKS
        ctx = request(headers={"authorization": f"Bearer {token}"})
        found = await source.lookup(ctx, time.time())
        user = found.user.user
        assert found.user.state is UserState.ACTIVE and user is not None
        assert user.user_id == "alice" and "admin" in user.roles
        assert user.mfa_verified_at is not None and user.mfa_verified_at > time.time() - 120
    finally:
        await source.close()


async def test_a_token_for_another_audience_is_refused(idp: Idp) -> None:
    token = idp.machine_token()["access_token"]
    source = source_for(idp, audience="https://other.test")
    try:
        await source.start()
        found = await source.lookup(
            request(headers={"authorization": f"Bearer {token}"}), time.time()
        )
        assert (found.user.state, found.user.detail) == (
            UserState.UNKNOWN, "jwt: wrong_audience (aud)",
        )  # fmt: skip
    finally:
        await source.close()
