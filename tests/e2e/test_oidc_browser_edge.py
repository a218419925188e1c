"""Sign-in and step-up at a real IdP in a real browser: Chromium -> Envoy (mTLS, ext_authz)
-> admitd (Check, and its /.admitd/ pages) -> panva's oidc-provider -> back.

(a) a protected page with no session -> IdP sign-in -> back -> 200; (b) a route that needs
MFA within 5 minutes, reached with a login an hour old -> step-up at the IdP with
`max_age=300` and `prompt=login` -> 200; (c) a login without a second factor on that route
-> the IdP is asked once, then an explanation page (403), never a loop; its sign-out button
ends the session at admitd and at the IdP. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Request, sync_playwright

from admitd.devstack.processes import free_port
from tests.e2e.axe import assert_accessible, axe_available
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.stack import EdgeStack, start_edge
from tests.idp.harness import Idp, has_node
from tests.integration.redis_server import RedisServer
from tests.pki_fixtures import PkiSet

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not has_node(), reason="node/npm not installed"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
POLICY = """
routes:
  - name: bye
    match: {path_exact: /bye}
    public: true
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
  - name: admin
    match: {path_prefix: /admin/}
    identities: any
    mfa_max_age: 300
"""
SESSION_COOKIE = "__Host-admitd_session"


@dataclass
class Stack:
    edge: EdgeStack
    idp: Idp
    origin: str
    client_cert: tuple[Path, Path]


@pytest.fixture(scope="module")
def stack(
    pki: PkiSet, idp: Idp, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("oidc-browser")
    https_port, web_port = free_port(), free_port()
    origin = f"https://localhost:{https_port}"
    client = idp.register_client([f"{origin}/.admitd/oidc/callback"], [f"{origin}/bye"])
    secret = work / "oidc-client.secret"
    secret.write_text(str(client["client_secret"]))
    secret.chmod(0o600)
    key = work / "web-signing.key"
    key.write_bytes(b"oidc-browser-e2e-signing-key!!!!")
    key.chmod(0o600)
    (work / "policies.yaml").write_text(POLICY)
    extra: dict[str, object] = {
        "redis_url": redis_server.url,
        "dev_mode": True,  # the dev KMS seals factor secrets; nothing else here is dev-only
        # alice (admin) needs MFA only where a route asks: /reports/ takes any login.
        "sessions": {"privileged_roles": ["finance"]},
        "web": {
            "listen": f"127.0.0.1:{web_port}",
            "signing_key_file": str(key),
            "rp_id": "localhost",
            "origins": [origin],
        },
        "oidc": {
            "issuer": idp.issuer,
            "client_id": client["client_id"],
            "client_secret_file": str(secret),
            "organisation_claim": "org",
            "roles_claim": "groups",
            "post_logout_redirect_uri": f"{origin}/bye",
        },
    }
    edge = start_edge(
        pki, work / "policies.yaml", work, extra_config=extra, https_port=https_port,
        web_port=web_port,
    )  # fmt: skip
    try:
        cert = pki.write_leaf("oidc-browser", pki.alice, pki.client_ca)
        yield Stack(edge, idp, origin, cert)
    finally:
        edge.group.stop_all()
        idp.login_as(None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser, stack: Stack) -> Iterator[BrowserContext]:
    cert, key = stack.client_cert
    context = browser.new_context(
        ignore_https_errors=True,
        client_certificates=[{"origin": stack.origin, "certPath": str(cert), "keyPath": str(key)}],
    )
    yield context
    context.close()


def idp_requests(context: BrowserContext, stack: Stack) -> list[dict[str, str]]:
    """The query of every authorization request the browser makes to the IdP."""
    seen: list[dict[str, str]] = []
    endpoint = str(stack.idp.discovery()["authorization_endpoint"])

    def record(request: Request) -> None:
        if request.url.startswith(endpoint + "?"):
            seen.append(dict(parse_qsl(urlsplit(request.url).query)))

    context.on("request", record)
    return seen


def session_cookie(context: BrowserContext) -> str:
    values = [c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE]
    return values[0] if values else ""


def test_a_protected_page_signs_in_at_the_idp_and_comes_back(
    stack: Stack, context: BrowserContext
) -> None:
    stack.idp.login_as("alice")
    asked = idp_requests(context, stack)
    page = context.new_page()
    reply = page.goto(f"{stack.origin}/reports/q3?year=2026")
    assert reply is not None and reply.status == 200
    assert page.url == f"{stack.origin}/reports/q3?year=2026"
    echoed = reply.json()
    assert echoed["headers"]["x-admitd-user"] == "alice"
    assert echoed["headers"]["x-admitd-org"] == "acme"
    assert SESSION_COOKIE not in echoed["headers"].get("cookie", "")  # never upstream
    assert len(asked) == 1 and asked[0]["code_challenge_method"] == "S256"
    assert "max_age" not in asked[0]
    assert session_cookie(context)
    # An API client (no navigation) with no session keeps its 401: no redirect to follow.
    api = stack.edge.get("/reports/q3", cert=stack.client_cert, headers={"accept": "*/*"})
    assert api.status == 401 and "location" not in api.headers


def test_an_hour_old_login_steps_up_at_the_idp_with_max_age(
    stack: Stack, context: BrowserContext
) -> None:
    stack.idp.login_as("alice", auth_age=3600)
    page = context.new_page()
    reply = page.goto(f"{stack.origin}/reports/")
    assert reply is not None and reply.status == 200  # signed in; the login is an hour old
    first = session_cookie(context)
    stack.idp.login_as("alice")  # the IdP asks again, and this login is fresh
    asked = idp_requests(context, stack)
    reply = page.goto(f"{stack.origin}/admin/keys")
    assert reply is not None and reply.status == 200
    assert page.url == f"{stack.origin}/admin/keys"
    assert len(asked) == 1
    assert (asked[0]["max_age"], asked[0]["prompt"]) == ("300", "login")
    assert session_cookie(context) not in ("", first)  # a new session replaced the old
    headers = reply.json()["headers"]
    assert headers["x-admitd-mfa-method"] == "totp"  # amr otp, from the IdP


def test_a_login_without_a_second_factor_is_explained_not_looped(
    stack: Stack, context: BrowserContext
) -> None:
    stack.idp.login_as("alice", amr=["pwd"], acr="pwd")
    asked = idp_requests(context, stack)
    page = context.new_page()
    reply = page.goto(f"{stack.origin}/admin/keys")
    assert reply is not None and reply.status == 403
    assert page.url.startswith(f"{stack.origin}/.admitd/oidc/callback?")
    # Sign-in, then one step-up: the IdP was asked twice, and the browser stopped here.
    assert len(asked) == 2 and asked[1]["max_age"] == "300" and "max_age" not in asked[0]
    assert page.get_by_role("heading", name="Second factor not confirmed").is_visible()
    assert "without a second factor" in page.get_by_role("alert").inner_text()
    assert reply.headers["content-security-policy"].startswith("default-src 'none'")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "oidc-step-up-refused.png"), full_page=True)
    if axe_available():
        assert_accessible(page, "a11y-oidc-step-up-refused")
    signed_in = session_cookie(context)
    assert signed_in  # the sign-in's session stands; only the step-up did not count

    # admitd's logout -> the IdP's end-session page (which submits itself) -> /bye.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{stack.origin}/bye", timeout=10_000)
    assert session_cookie(context) == ""
    # Revoked at admitd: the old cookie, sent again by hand, is refused.
    replay = stack.edge.get(
        "/reports/", cert=stack.client_cert, headers={"cookie": f"{SESSION_COOKIE}={signed_in}"}
    )
    assert replay.status == 401 and replay.headers["x-admitd-reason"] == "session_invalid"


def test_a_privileged_idp_user_steps_up_with_the_factor_the_idp_holds(
    stack: Stack, context: BrowserContext
) -> None:
    # carol (finance: privileged here) has no factor enrolled at admitd; her IdP vouched
    # for a hardware key, so a stale login is stepped up there, not refused as unenrolled.
    stack.idp.login_as("carol", auth_age=3600)
    page = context.new_page()
    page.goto(f"{stack.origin}/.admitd/oidc/start")  # signed in, then sent to "/" (no route)
    assert session_cookie(context)
    stack.idp.login_as("carol")
    asked = idp_requests(context, stack)
    reply = page.goto(f"{stack.origin}/reports/ledger")
    assert reply is not None and reply.status == 200
    assert reply.json()["headers"]["x-admitd-mfa-method"] == "passkey"  # amr hwk
    # An unknown device with stale privileged MFA is high risk: MFA within 5 minutes
    # (sessions.high_risk_mfa_max_age), asked of the IdP like any other step-up.
    first = reply.request.redirected_from
    while first is not None and first.redirected_from is not None:
        first = first.redirected_from
    assert first is not None and first.url == f"{stack.origin}/reports/ledger"
    refused = first.response()
    assert refused is not None and refused.headers["x-admitd-risk-level"] == "high"
    assert len(asked) == 1 and asked[0]["max_age"] == "300"
