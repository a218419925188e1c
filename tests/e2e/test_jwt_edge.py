"""JWT bearer tokens through a real Envoy and a real oidc-provider: each the documented answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.e2e.stack import EdgeStack, Response, start_edge
from tests.idp.harness import API, Idp, has_node
from tests.pki_fixtures import PkiSet

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not has_node(), reason="node/npm not installed"),
]

POLICY = """
routes:
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
  - name: payments
    match: {path_prefix: /payments/}
    identities: any
    mfa_max_age: 300
"""
INVALID = 'Bearer error="invalid_token"'


@pytest.fixture(scope="module")
def edge(pki: PkiSet, idp: Idp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStack]:
    work = tmp_path_factory.mktemp("jwt-edge")
    (work / "policies.yaml").write_text(POLICY)
    issuer = {
        "issuer": idp.issuer,
        "audiences": [API],
        "organisation_claim": "org",
        "default_organisation": "machines",
        # One second between on-demand JWKS fetches, so the rotation test need not wait 30.
    }
    extra: dict[str, object] = {"jwt": {"issuers": [issuer], "refresh_interval_seconds": 1}}
    stack = start_edge(pki, work / "policies.yaml", work, extra_config=extra)
    yield stack
    stack.group.stop_all()


@pytest.fixture(scope="module")
def client(pki: PkiSet) -> tuple[Path, Path]:
    return pki.write_leaf("jwt-client", pki.alice, pki.client_ca)


def user_token(idp: Idp, user: str, auth_age: int = 0) -> str:
    tokens = idp.user_tokens(user, auth_age=auth_age, resource=API, scope="openid api:read")
    return str(tokens["access_token"])


def signed(idp: Idp, **changes: Any) -> str:
    """A token signed with the IdP's own current key, claims as alice's but for `changes`."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": idp.issuer, "aud": API, "sub": "alice", "org": "acme", "groups": ["admin"],
        "iat": now - 5, "exp": now + 300, "auth_time": now - 5, "amr": ["pwd", "otp"],
    }  # fmt: skip
    claims.update(changes)
    key = RSAKey.import_key(idp.keys[0])
    return jwt.encode({"alg": "RS256", "kid": idp.signing_kid}, claims, key)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def call(edge: EdgeStack, client: tuple[Path, Path], token: str, path: str) -> Response:
    return edge.get(path, cert=client, headers={"authorization": f"Bearer {token}"})


def assert_refused(reply: Response, code: str = "token_invalid") -> None:
    assert reply.status == 401, reply.body
    error = reply.json()["error"]
    assert isinstance(error, dict) and error["code"] == code
    assert reply.headers["www-authenticate"].startswith(INVALID)


def test_alices_token_is_admitted_with_her_identity(
    edge: EdgeStack, idp: Idp, client: tuple[Path, Path]
) -> None:
    reply = call(edge, client, user_token(idp, "alice"), "/payments/run")
    assert reply.status == 200, reply.body
    seen = reply.json()["headers"]
    assert isinstance(seen, dict)
    assert (seen["x-admitd-user"], seen["x-admitd-org"]) == ("alice", "acme")
    assert seen["x-admitd-mfa-method"] == "totp"
    assert seen["authorization"].startswith("Bearer eyJ")  # the upstream keeps the JWT


def test_expired_token_is_token_expired(
    edge: EdgeStack, idp: Idp, client: tuple[Path, Path]
) -> None:
    token = signed(idp, iat=int(time.time()) - 900, exp=int(time.time()) - 600)
    assert_refused(call(edge, client, token, "/reports/q1"), "token_expired")


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"nbf": int(time.time()) + 600}, id="not-yet-valid"),
        pytest.param({"aud": "https://other.test"}, id="wrong-aud"),
        pytest.param({"iss": "https://impostor.test"}, id="wrong-iss"),
    ],
)
def test_a_bad_claim_is_token_invalid(
    edge: EdgeStack, idp: Idp, client: tuple[Path, Path], changes: dict[str, Any]
) -> None:
    assert_refused(call(edge, client, signed(idp, **changes), "/reports/q1"))


def test_tampered_payload_is_token_invalid(
    edge: EdgeStack, idp: Idp, client: tuple[Path, Path]
) -> None:
    header, _, signature = user_token(idp, "bob").split(".")
    forged = b64(json.dumps(signed_claims(idp, sub="alice", groups=["admin"])).encode())
    assert_refused(call(edge, client, f"{header}.{forged}.{signature}", "/reports/q1"))


def signed_claims(idp: Idp, **changes: Any) -> dict[str, Any]:
    payload = signed(idp, **changes).split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return claims


def test_alg_none_is_token_invalid(edge: EdgeStack, idp: Idp, client: tuple[Path, Path]) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    token = f"{header}.{b64(json.dumps(signed_claims(idp)).encode())}."
    assert_refused(call(edge, client, token, "/reports/q1"))


def test_hs256_keyed_with_the_public_key_is_token_invalid(
    edge: EdgeStack, idp: Idp, client: tuple[Path, Path]
) -> None:
    header = b64(json.dumps({"alg": "HS256", "kid": idp.signing_kid}).encode())
    payload = b64(json.dumps(signed_claims(idp)).encode())
    public_pem = RSAKey.import_key(idp.keys[0]).as_pem(private=False)
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert_refused(call(edge, client, f"{header}.{payload}.{b64(mac)}", "/reports/q1"))


def test_bob_without_mfa_on_a_privileged_route_is_asked_to_step_up(
    edge: EdgeStack, idp: Idp, client: tuple[Path, Path]
) -> None:
    reply = call(edge, client, user_token(idp, "bob"), "/payments/run")
    assert reply.status == 428, reply.body
    error = reply.json()["error"]
    assert isinstance(error, dict)
    assert (error["code"], error["max_age"]) == ("mfa_step_up_required", 300)
    assert reply.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", max_age=300'
    )


def test_stale_auth_time_on_a_privileged_route_is_asked_to_step_up(
    edge: EdgeStack, idp: Idp, client: tuple[Path, Path]
) -> None:
    reply = call(edge, client, user_token(idp, "alice", auth_age=3600), "/payments/run")
    assert reply.status == 428, reply.body
    assert reply.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", max_age=300'
    )
    # An old login of a non-privileged user is fine where the route asks for no MFA.
    assert call(edge, client, user_token(idp, "bob", auth_age=3600), "/reports/q1").status == 200


def test_unknown_kid_then_rotation_is_picked_up(
    edge: EdgeStack, idp: Idp, client: tuple[Path, Path]
) -> None:
    foreign = RSAKey.generate_key(2048, parameters={"kid": "not-published"}, private=True)
    claims = signed_claims(idp)
    made_up = jwt.encode({"alg": "RS256", "kid": "not-published"}, claims, foreign)
    assert_refused(call(edge, client, made_up, "/reports/q1"))
    idp.rotate_keys()  # new tokens carry a kid admitd has never seen
    time.sleep(1.2)  # past refresh_interval_seconds since the fetch the made-up kid caused
    reply = call(edge, client, user_token(idp, "alice"), "/reports/q1")
    assert reply.status == 200, reply.body
