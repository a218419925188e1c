"""Fuzz the JWT bearer path: `JwtVerifier.verify` and the whole Check with a JWT identity.

Correct means: `verify` returns Verified or Refused and never raises; only a token whose
signed part (header and payload, byte for byte) and decoded signature are the IdP's is
Verified; claims of any shape signed by the IdP give a decision, not an exception; and a
Check carrying any such token gets a specific reason (401 token_invalid, ...), never the
fail-closed path.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType
from typing import Any
from unittest.mock import Mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from admitd.extauthz.service import AuthorizationService
from admitd.identity_chain import ChainedIdentity
from admitd.jwt.config import IssuerConfig, JwtConfig
from admitd.jwt.source import JwtIdentity
from admitd.jwt.verifier import Refused, Verified
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from admitd.sessions.identity import SessionIdentity
from admitd.sessions.memory_store import MemorySessionStore
from tests.fuzz.budget import FUZZ, FUZZ_HEAVY, bounded_async
from tests.fuzz.check_requests import RequestSpec
from tests.fuzz.responses import FAIL_CLOSED_LOG, outcome_of
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for
from tests.unit.jwt_tokens import AUDIENCE, ISSUER, JWKS_URI, NOW, Idp

pytestmark = pytest.mark.timeout(120)

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
_REASONS = {
    "allowed", "token_invalid", "token_expired", "session_required", "session_invalid",
    "mfa_step_up_required", "mfa_enrollment_required", "role_required",
}  # fmt: skip


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


@pytest.fixture(scope="module")
def idp() -> Idp:
    return Idp()


@pytest.fixture
async def jwt_identity(idp: Idp) -> AsyncIterator[JwtIdentity]:
    issuer = IssuerConfig(
        issuer=ISSUER,
        audiences=(AUDIENCE,),
        jwks_uri=JWKS_URI,
        organisation_claim="org",
        role_map=MappingProxyType({}),
    )
    identity = JwtIdentity(JwtConfig(issuers=(issuer,)), idp.fetch)
    await identity.start()
    yield identity
    await identity.close()


@pytest.fixture
def jwt_service(
    pki: PkiSet, tmp_path_factory: pytest.TempPathFactory, jwt_identity: JwtIdentity
) -> AuthorizationService:
    policies = tmp_path_factory.mktemp("jwt-policy")
    (policies / "p.yaml").write_text(POLICY)
    store = MemorySessionStore()
    engine, _ = engine_for(pki.trust_bundle, Path(policies), clock=NOW, store=store)
    engine.identity = ChainedIdentity(SessionIdentity(store, "__Host-admitd_session"), jwt_identity)
    return AuthorizationService(engine, Metrics(CollectorRegistry()), DecisionLog())


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_CLAIM_NAMES = [
    "iss",
    "aud",
    "sub",
    "org",
    "groups",
    "iat",
    "exp",
    "nbf",
    "auth_time",
    "amr",
    "acr",
    "scope",
    "scp",
]


@st.composite
def _tokens(draw: st.DrawFn, idp: Idp) -> tuple[str, str]:
    """(token, the IdP-signed original it came from): signed claims of any shape, then
    perhaps an edit to one segment, a re-encoded header, or a payload nested up to 3,000
    deep (past the interpreter's recursion limit, ~1,000)."""
    claims: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(_CLAIM_NAMES), unique=True, max_size=6)):
        claims[name] = draw(_JSON)
    signed = _signed(draw, idp, claims)
    header, payload, signature = signed.split(".")
    kind = draw(st.sampled_from(["as-signed", "edit", "header", "payload", "signature", "nested"]))
    if kind == "edit":
        at = draw(st.integers(0, len(signed) - 1))
        replacement = draw(
            st.text(st.sampled_from(list("A_-.=+/eyJ0\u00e9 ")), min_size=1, max_size=3)
        )
        return signed[:at] + replacement + signed[at + len(replacement) :], signed
    if kind == "header":
        fields = draw(
            st.dictionaries(
                st.sampled_from(["alg", "kid", "typ", "crit", "jku", "b64"]), _JSON, max_size=4
            )
        )
        return f"{_b64(json.dumps(fields).encode())}.{payload}.{signature}", signed
    if kind == "payload":
        return f"{header}.{_b64(json.dumps(draw(_JSON)).encode())}.{signature}", signed
    if kind == "signature":
        return f"{header}.{payload}.{_b64(draw(st.binary(max_size=300)))}", signed
    if kind == "nested":
        depth = draw(st.integers(1, 3000))
        nested = '{"iss":"' + ISSUER + '","x":' + "[" * depth + "]" * depth + "}"
        return f"{header}.{_b64(nested.encode())}.{signature}", signed
    return signed, signed


def _signed(draw: st.DrawFn, idp: Idp, claims: dict[str, Any]) -> str:
    use_ec = draw(st.booleans())
    try:
        return idp.token(idp.ec if use_ec else idp.rsa, "ES256" if use_ec else "RS256", **claims)
    except (TypeError, ValueError):  # joserfc will not encode every value (e.g. NaN)
        return idp.token()


def _same_signed_token(token: str, signed: str) -> bool:
    """Header and payload byte-identical, signature decoding to the same bytes."""
    mine, theirs = token.split("."), signed.split(".")
    if len(mine) != 3:
        return False
    return mine[:2] == theirs[:2] and _unb64(mine[2]) == _unb64(theirs[2])


@FUZZ
@given(data=st.data())
async def test_verify_never_raises_and_verifies_only_the_signed_token(
    idp: Idp, jwt_identity: JwtIdentity, data: st.DataObject
) -> None:
    token, signed = data.draw(_tokens(idp), label="token")
    result = await bounded_async(lambda: jwt_identity.verifier.verify(token, NOW), "verify")
    assert isinstance(result, Verified | Refused)
    if isinstance(result, Verified):
        assert _same_signed_token(token, signed), "an altered token verified"


@FUZZ_HEAVY
@given(data=st.data())
async def test_checks_with_any_token_get_a_specific_answer(
    pki: PkiSet,
    idp: Idp,
    jwt_service: AuthorizationService,
    caplog: pytest.LogCaptureFixture,
    data: st.DataObject,
) -> None:
    token, _ = data.draw(_tokens(idp), label="token")
    scheme = data.draw(
        st.sampled_from(["Bearer ", "bearer ", "Bearer  ", "Basic ", "Bearer\t"]), label="scheme"
    )
    path = data.draw(st.sampled_from(["/reports/q3", "/payouts/1"]), label="path")
    spec = RequestSpec.golden(url_pem(pki.alice), path=path)
    spec.headers["authorization"] = scheme + token
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="admitd.extauthz.service"):
        response = await bounded_async(lambda: jwt_service.Check(spec.to_proto(), Mock()), "Check")
    failed = [r for r in caplog.records if r.getMessage() == FAIL_CLOSED_LOG]
    assert not failed, failed[0].exc_text
    outcome = outcome_of(response)
    assert outcome.reason in _REASONS, outcome


async def test_a_deeply_nested_payload_is_token_invalid_not_fail_closed(
    pki: PkiSet, idp: Idp, jwt_service: AuthorizationService, caplog: pytest.LogCaptureFixture
) -> None:
    """`Authorization: Bearer eyJ...<payload of 5,000 nested [>...`: 6.7 kB, no key needed.
    JwtVerifier.verify's json.loads raised RecursionError (not ValueError), the engine let it
    through, and the Check answered 503 authorization_unavailable with a logged traceback
    (fixed: refused as malformed, 401 token_invalid)."""
    header = _b64(b'{"alg":"RS256","kid":"rsa-1"}')
    token = f"{header}.{_b64(b'[' * 5000 + b']' * 5000)}.AAAA"
    spec = RequestSpec.golden(url_pem(pki.alice), path="/reports/q3")
    spec.headers["authorization"] = f"Bearer {token}"
    with caplog.at_level(logging.ERROR, logger="admitd.extauthz.service"):
        response = await jwt_service.Check(spec.to_proto(), Mock())
    assert not [r for r in caplog.records if r.getMessage() == FAIL_CLOSED_LOG]
    assert outcome_of(response).reason == "token_invalid"
