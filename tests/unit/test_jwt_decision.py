"""JWT users through the engine: each refused token's status and reason, step-up, the chain."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from admitd.core.decision import Decision, Reason
from admitd.engine import Engine
from admitd.identity_chain import ChainedIdentity
from admitd.jwt.config import IssuerConfig, JwtConfig
from admitd.jwt.keys import KeyFetchError
from admitd.jwt.source import JwtIdentity
from admitd.sessions.identity import SessionIdentity
from admitd.sessions.memory_store import MemorySessionStore
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request
from tests.unit.jwt_tokens import AUDIENCE, ISSUER, JWKS_URI, NOW, Idp, tampered

POLICY = """
routes:
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
  - name: payouts
    match: {path_prefix: /payouts/}
    identities: any
    mfa_max_age: 60
"""


async def engine_with(pki: PkiSet, tmp_path: Path, idp: Idp, **issuer: Any) -> Engine:
    (tmp_path / "p.yaml").write_text(POLICY)
    store = MemorySessionStore()
    engine = engine_for(pki.trust_bundle, tmp_path, clock=NOW, store=store)[0]
    settings: dict[str, Any] = {
        "issuer": ISSUER, "audiences": (AUDIENCE,), "jwks_uri": JWKS_URI,
        "organisation_claim": "org", "role_map": MappingProxyType({}), **issuer,
    }  # fmt: skip
    jwt = JwtIdentity(JwtConfig(issuers=(IssuerConfig(**settings),)), idp.fetch)
    await jwt.start()
    engine.identity = ChainedIdentity(SessionIdentity(store, "__Host-admitd_session"), jwt)
    return engine


@pytest.fixture
def idp() -> Idp:
    return Idp()


async def check(engine: Engine, pki: PkiSet, path: str, token: str) -> Decision:
    headers = {"authorization": f"Bearer {token}"}
    decision, _ = await engine.check(request(path, cert=url_pem(pki.alice), headers=headers))
    return decision


async def test_a_valid_token_is_admitted_and_kept_for_the_upstream(
    pki: PkiSet, tmp_path: Path, idp: Idp
) -> None:
    engine = await engine_with(pki, tmp_path, idp)
    decision = await check(engine, pki, "/reports/q3", idp.token(groups=["viewer"]))
    assert decision.allowed and decision.reason is Reason.ALLOWED
    upstream = dict(decision.upstream_headers)
    assert upstream["x-admitd-user"] == "alice" and upstream["x-admitd-org"] == "acme"
    assert "authorization" not in decision.headers_to_remove  # the upstream's API credential


@pytest.mark.parametrize(
    ("claims", "reason", "detail"),
    [
        pytest.param({"exp": NOW - 600}, Reason.TOKEN_EXPIRED, "jwt: expired (exp)", id="expired"),
        pytest.param(
            {"nbf": NOW + 600}, Reason.TOKEN_INVALID, "jwt: not_yet_valid (nbf)", id="nbf"
        ),
        pytest.param({"aud": "x"}, Reason.TOKEN_INVALID, "jwt: wrong_audience (aud)", id="aud"),
    ],
)
async def test_refused_tokens_get_401_and_an_rfc6750_challenge(
    pki: PkiSet, tmp_path: Path, idp: Idp, claims: dict[str, Any], reason: Reason, detail: str
) -> None:
    engine = await engine_with(pki, tmp_path, idp)
    decision = await check(engine, pki, "/reports/q3", idp.token(**claims))
    assert (decision.reason, decision.status, decision.log_detail) == (reason, 401, detail)
    assert dict(decision.client_headers)["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_a_tampered_token_is_token_invalid(pki: PkiSet, tmp_path: Path, idp: Idp) -> None:
    engine = await engine_with(pki, tmp_path, idp)
    decision = await check(engine, pki, "/reports/q3", tampered(idp.token(), sub="bob"))
    assert (decision.reason, decision.code, decision.status) == (
        Reason.TOKEN_INVALID, "token_invalid", 401,
    )  # fmt: skip


async def test_unreachable_keys_are_503_identity_provider_unavailable(
    pki: PkiSet, tmp_path: Path, idp: Idp
) -> None:
    async def down(url: str) -> object:
        raise KeyFetchError("refused")

    idp.fetch = down  # type: ignore[method-assign]
    engine = await engine_with(pki, tmp_path, idp)
    decision = await check(engine, pki, "/reports/q3", idp.token())
    assert (decision.reason, decision.status) == (Reason.IDENTITY_PROVIDER_UNAVAILABLE, 503)


async def test_stale_mfa_gets_the_rfc9470_challenge_with_acr_values(
    pki: PkiSet, tmp_path: Path, idp: Idp
) -> None:
    engine = await engine_with(pki, tmp_path, idp, acr_values="urn:mfa")
    decision = await check(engine, pki, "/payouts/1", idp.token(auth_time=NOW - 3600))
    assert (decision.reason, decision.status) == (Reason.MFA_STEP_UP_REQUIRED, 428)
    assert dict(decision.client_headers)["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", max_age=60, acr_values="urn:mfa"'
    )


async def test_step_up_status_401_for_strict_rfc9470_clients(
    pki: PkiSet, tmp_path: Path, idp: Idp
) -> None:
    engine = await engine_with(pki, tmp_path, idp, step_up_status=401)
    decision = await check(engine, pki, "/payouts/1", idp.token(amr=["pwd"]))
    assert (decision.reason, decision.status) == (Reason.MFA_STEP_UP_REQUIRED, 401)


async def test_fresh_mfa_admits_a_privileged_route(pki: PkiSet, tmp_path: Path, idp: Idp) -> None:
    engine = await engine_with(pki, tmp_path, idp)
    decision = await check(engine, pki, "/payouts/1", idp.token(auth_time=NOW - 10))
    assert decision.allowed and dict(decision.upstream_headers)["x-admitd-mfa-method"] == "totp"


async def test_without_enrolment_assumed_a_privileged_user_without_mfa_is_403(
    pki: PkiSet, tmp_path: Path, idp: Idp
) -> None:
    engine = await engine_with(pki, tmp_path, idp, assume_mfa_enrolled=False)
    decision = await check(engine, pki, "/payouts/1", idp.token(amr=["pwd"]))
    assert (decision.reason, decision.status) == (Reason.MFA_ENROLLMENT_REQUIRED, 403)


async def test_a_session_bearer_still_goes_to_the_session_source(
    pki: PkiSet, tmp_path: Path, idp: Idp
) -> None:
    engine = await engine_with(pki, tmp_path, idp)
    decision = await check(engine, pki, "/reports/q3", "0123456789abcdef." + "A" * 43)
    assert decision.reason is Reason.SESSION_INVALID
