"""The sign-in state cookie (state, nonce, PKCE verifier, return path) and the sign-in redirect."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote

import pytest

from admitd.core.decision import Reason
from admitd.engine import Engine
from admitd.oidc.handlers import sign_in_location
from admitd.oidc.state import STATE_TTL, LoginState, new_login_state, pkce_challenge
from admitd.web import ReturnToSigner
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request

KEY = b"s" * 32
NOW = 1_700_000_000.0


def test_a_sealed_state_unseals_with_the_same_key() -> None:
    login = new_login_state("/app?x=1", NOW)
    assert LoginState.unseal(KEY, login.seal(KEY), NOW + 1) == login
    assert login.expires == int(NOW) + STATE_TTL


def test_fresh_states_never_repeat() -> None:
    a, b = new_login_state("/", NOW), new_login_state("/", NOW)
    assert len({a.state, a.nonce, a.verifier, b.state, b.nonce, b.verifier}) == 6
    assert len(a.verifier) >= 43  # RFC 7636 §4.1: 43 to 128 characters


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # the MAC
        lambda c: c.replace("v1.", "v2.", 1),
        lambda c: c.split(".")[0] + "." + c.split(".")[1],  # no MAC
        lambda c: "",
        lambda c: c + "." + c,
    ],
    ids=["mac", "version", "no-mac", "empty", "doubled"],
)
def test_a_tampered_cookie_is_refused(tamper: object) -> None:
    cookie = new_login_state("/", NOW).seal(KEY)
    assert callable(tamper)
    assert LoginState.unseal(KEY, tamper(cookie), NOW) is None


def test_another_key_or_a_changed_body_is_refused() -> None:
    login = new_login_state("/", NOW)
    assert LoginState.unseal(b"t" * 32, login.seal(KEY), NOW) is None
    version, _, mac = login.seal(KEY).split(".")
    other = replace(login, return_path="/elsewhere").seal(KEY).split(".")[1]
    assert LoginState.unseal(KEY, f"{version}.{other}.{mac}", NOW) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + "\u00e9",  # hmac.compare_digest on non-ASCII str: TypeError
        lambda c: c[:-1] + "\udcff",  # a cookie byte that is not UTF-8, as aiohttp decodes it
        lambda c: c.replace("v1.", "v1.\udcff", 1),  # ... inside the MAC'd part: encode() raised
    ],
    ids=["non-ascii-mac", "surrogate-mac", "surrogate-body"],
)
def test_a_cookie_that_admitd_never_sealed_is_refused_not_raised(tamper: object) -> None:
    cookie = new_login_state("/", NOW).seal(KEY)
    assert callable(tamper)
    assert LoginState.unseal(KEY, tamper(cookie), NOW) is None


def test_an_expired_state_is_refused() -> None:
    cookie = new_login_state("/", NOW).seal(KEY)
    assert LoginState.unseal(KEY, cookie, NOW + STATE_TTL) is None


def test_pkce_challenge_is_rfc_7636_s256() -> None:
    # RFC 7636 Appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    digest = hashlib.sha256(verifier.encode()).digest()
    assert pkce_challenge(verifier) == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_sign_in_location_signs_the_path_for_the_host() -> None:
    signer = ReturnToSigner(KEY)
    location = sign_in_location(signer, "app.test", "/reports?q=1", NOW)
    assert location.startswith("/.admitd/oidc/start?return_to=")
    token = unquote(location.split("=", 1)[1])
    assert signer.verify(token, "app.test", NOW) == "/reports?q=1"
    assert signer.verify(token, "other.test", NOW) is None
    unsafe = unquote(sign_in_location(signer, "app.test", "//evil", NOW).split("=", 1)[1])
    assert signer.verify(unsafe, "app.test", NOW) == "/"


def _engine(pki: PkiSet, tmp_path: Path) -> Engine:
    (tmp_path / "p.yaml").write_text(
        "routes:\n  - {name: app, match: {path_prefix: /app/}, identities: any, session: required}\n"
    )
    base, _ = engine_for(pki.trust_bundle, tmp_path)
    signer = ReturnToSigner(KEY)
    return Engine(
        base.policy,
        base.certificates,
        sign_in_url=lambda ctx, now: sign_in_location(signer, ctx.host, ctx.path, now),
    )


async def test_a_browser_without_a_session_is_sent_to_sign_in(pki: PkiSet, tmp_path: Path) -> None:
    engine = _engine(pki, tmp_path)
    ctx = request("/app/x", cert=url_pem(pki.alice), headers={"sec-fetch-mode": "navigate"})
    decision, _ = await engine.check(ctx)
    assert decision.reason is Reason.SESSION_REQUIRED and decision.status == 302
    assert decision.redirect_to.startswith("/.admitd/oidc/start?return_to=")
    assert ("location", decision.redirect_to) in decision.client_headers


async def test_an_api_client_without_a_session_keeps_its_401(pki: PkiSet, tmp_path: Path) -> None:
    engine = _engine(pki, tmp_path)
    for headers in ({"sec-fetch-mode": "cors"}, {"accept": "application/json"}):
        decision, _ = await engine.check(
            request("/app/x", cert=url_pem(pki.alice), headers=headers)
        )
        assert decision.reason is Reason.SESSION_REQUIRED and decision.status == 401
        assert decision.redirect_to == ""


@pytest.mark.parametrize("cookie", ["garbage", "v1.notatoken"])
async def test_a_browser_with_a_dead_session_signs_in_again(
    pki: PkiSet, tmp_path: Path, cookie: str
) -> None:
    engine = _engine(pki, tmp_path)
    headers = {"sec-fetch-mode": "navigate", "cookie": f"__Host-admitd_session={cookie}"}
    decision, _ = await engine.check(request("/app/x", cert=url_pem(pki.alice), headers=headers))
    assert decision.reason is Reason.SESSION_INVALID and decision.status == 302
    assert decision.redirect_to.startswith("/.admitd/oidc/start?return_to=")
