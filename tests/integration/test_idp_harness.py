"""The test IdP (panva's oidc-provider via tests/idp) issues what the OIDC and JWT tests rely on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import KeySet

from tests.idp.harness import API, CLIENT_ID, Idp, IdpBrowser, IdpError, has_node, start_idp

pytestmark = pytest.mark.integration


def verified(token: str, idp: Idp) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of `token`, its signature checked against the IdP's published JWKS."""
    decoded = jwt.decode(token, KeySet.import_key_set(idp.jwks()), algorithms=["RS256"])  # type: ignore[arg-type]
    return dict(decoded.header), dict(decoded.claims)


def test_discovery_names_the_loopback_issuer_and_its_endpoints(idp: Idp) -> None:
    meta = idp.discovery()
    assert meta["issuer"] == idp.issuer == f"http://127.0.0.1:{idp.port}"
    assert meta["jwks_uri"] == f"{idp.issuer}/jwks"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "end_session_endpoint" in meta
    assert [key["kid"] for key in idp.jwks()["keys"]] == [key["kid"] for key in idp.keys]
    assert all("d" not in key for key in idp.jwks()["keys"])  # public halves only


def test_alice_id_token_says_otp_and_a_fresh_auth_time(idp: Idp) -> None:
    tokens = idp.user_tokens("alice")
    _, claims = verified(tokens["id_token"], idp)
    assert (claims["iss"], claims["aud"], claims["sub"]) == (idp.issuer, CLIENT_ID, "alice")
    assert "otp" in claims["amr"]
    assert claims["acr"] == "mfa"
    assert abs(time.time() - claims["auth_time"]) < 30
    assert (claims["org"], claims["groups"]) == ("acme", ["admin"])
    assert claims["realm_access"] == {"roles": ["admin"]}


def test_bob_id_token_has_a_password_only(idp: Idp) -> None:
    _, claims = verified(idp.user_tokens("bob")["id_token"], idp)
    assert claims["amr"] == ["pwd"]
    assert (claims["sub"], claims["groups"]) == ("bob", ["viewer"])


def test_auth_age_backdates_the_login(idp: Idp) -> None:
    _, claims = verified(idp.user_tokens("alice", auth_age=7200)["id_token"], idp)
    assert 7170 < time.time() - claims["auth_time"] < 7230


def test_user_access_token_for_the_api_is_a_jwt_with_the_login_facts(idp: Idp) -> None:
    tokens = idp.user_tokens("alice", resource=API, scope="openid api:read")
    header, claims = verified(tokens["access_token"], idp)
    assert (header["typ"], header["alg"], header["kid"]) == ("at+jwt", "RS256", idp.signing_kid)
    assert (claims["aud"], claims["iss"], claims["sub"]) == (API, idp.issuer, "alice")
    assert (claims["org"], claims["groups"], claims["scope"]) == ("acme", ["admin"], "api:read")
    assert (claims["amr"], claims["acr"]) == (["pwd", "otp"], "mfa")
    assert abs(time.time() - claims["auth_time"]) < 30


def test_machine_token_is_a_jwt_for_the_client(idp: Idp) -> None:
    header, claims = verified(idp.machine_token(scope="api:read api:write")["access_token"], idp)
    assert header["typ"] == "at+jwt"
    assert (claims["sub"], claims["aud"], claims["org"]) == (CLIENT_ID, API, "acme")
    assert claims["scope"] == "api:read api:write"
    assert "auth_time" not in claims


def test_client_secret_post_client_gets_tokens_too(idp: Idp) -> None:
    _, claims = verified(idp.user_tokens("bob", client_id="admitd-post")["id_token"], idp)
    assert claims["aud"] == "admitd-post"


def test_max_age_past_the_old_login_makes_the_idp_log_in_again(idp: Idp) -> None:
    browser = IdpBrowser()  # one browser: the second authorization meets the IdP session
    idp.user_tokens("alice", auth_age=7200, browser=browser)
    reused = idp.user_tokens("alice", browser=browser)
    assert time.time() - verified(reused["id_token"], idp)[1]["auth_time"] > 7000
    stepped_up = idp.user_tokens("alice", extra={"max_age": "300"}, browser=browser)
    assert time.time() - verified(stepped_up["id_token"], idp)[1]["auth_time"] < 30


def test_a_browser_naming_nobody_signs_in_as_login_as_says(idp: Idp) -> None:
    params = {"client_id": CLIENT_ID, "redirect_uri": idp.redirect_uris[0]}
    params |= {"response_type": "code", "scope": "openid", "code_challenge": "y" * 43}
    params |= {"code_challenge_method": "S256", "state": "s"}
    idp.login_as(None)
    with pytest.raises(IdpError, match="expected a redirect, got 200"):  # the chooser page
        idp.sign_in(idp.authorization_url(**params), None)
    idp.login_as("bob")
    try:
        assert idp.sign_in(idp.authorization_url(**params), None).startswith(idp.redirect_uris[0])
    finally:
        idp.login_as(None)


def test_logout_ends_the_idp_session_and_returns_to_the_client(idp: Idp) -> None:
    browser = IdpBrowser()
    tokens = idp.user_tokens("alice", browser=browser)
    assert idp.sign_out(tokens["id_token"], "https://admitd.test/", browser).startswith(
        "https://admitd.test/"
    )
    # No IdP session any more: the next authorization needs a login (the chooser page).
    with pytest.raises(IdpError, match="expected a redirect, got 200"):
        idp.user_tokens(None, browser=browser)


def test_pkce_is_required(idp: Idp) -> None:
    params = {"client_id": CLIENT_ID, "redirect_uri": idp.redirect_uris[0]}
    params |= {"response_type": "code", "scope": "openid", "state": "s"}
    callback = idp.sign_in(idp.authorization_url(**params), "alice")
    assert "error=invalid_request" in callback


def test_registered_client_gets_its_own_redirect_uri(idp: Idp) -> None:
    client = idp.register_client(["https://localhost:8443/.admitd/oidc/callback"])
    assert client["redirect_uris"] == ["https://localhost:8443/.admitd/oidc/callback"]
    assert client["client_secret"]


@pytest.mark.skipif(not has_node(), reason="node/npm not installed")
def test_rotated_keys_sign_with_a_new_kid_the_refreshed_jwks_holds(tmp_path: Path) -> None:
    with start_idp(tmp_path) as idp:
        old_token = idp.machine_token()["access_token"]
        old_kid = idp.signing_kid
        new_kid = idp.rotate_keys()
        header, _ = verified(idp.machine_token()["access_token"], idp)
        published = [key["kid"] for key in idp.jwks()["keys"]]
        assert header["kid"] == new_kid != old_kid
        assert published == [new_kid, old_kid]
        verified(old_token, idp)  # the previous signer is still published
        idp.rotate_keys(keep_old=False)
        with pytest.raises(InvalidKeyIdError):  # no published key has the old kid any more
            verified(old_token, idp)
