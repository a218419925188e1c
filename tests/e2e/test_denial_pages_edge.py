"""Denials through a real Envoy: a browser navigation gets an HTML page, an API client the
JSON it always got, byte for byte; same status and reason either way."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from admitd.sessions import new_session_token
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from tests.e2e.axe import assert_accessible
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.stack import EdgeStack, Response, start_edge
from tests.integration.redis_server import RedisServer
from tests.pki_fixtures import PkiSet
from tests.sessions import make_session

pytestmark = pytest.mark.e2e

POLICY = """
routes:
  - name: api
    match: {path_prefix: /api/}
    identities: any
  - name: admin
    match: {path_prefix: /admin/}
    identities: {uris: ["spiffe://test.example/user/alice"]}
  - name: reports
    match: {path_prefix: /reports/}
    identities: any
    session: required
  - name: finance
    match: {path_prefix: /finance/}
    identities: any
    roles: [finance]
  - name: readonly
    match: {path_prefix: /readonly/}
    identities: any
    conditions: ['request.method == "HEAD"']
"""
BROWSER = {"sec-fetch-mode": "navigate", "accept": "text/html,application/xhtml+xml"}
API = {"accept": "application/json"}
COOKIE = "__Host-admitd_session"


@pytest.fixture(scope="module")
def edge(
    pki: PkiSet, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EdgeStack]:
    work = tmp_path_factory.mktemp("denial-pages")
    (work / "policies.yaml").write_text(POLICY)
    stack = start_edge(pki, work / "policies.yaml", work, redis_url=redis_server.url)
    yield stack
    stack.group.stop_all()


@pytest.fixture(scope="module")
def certs(pki: PkiSet) -> dict[str, tuple[Path, Path]]:
    return {
        name: pki.write_leaf(f"pages-{name}", getattr(pki, name), pki.client_ca)
        for name in ("alice", "bob", "expired", "revoked")
    } | {"untrusted": pki.write_leaf("pages-untrusted", pki.untrusted, pki.foreign_root)}


@pytest.fixture(scope="module")
def sessions(redis_server: RedisServer) -> dict[str, str]:
    """Session tokens in the edge's Redis: a viewer, and an admin with no second factor."""

    async def create() -> dict[str, str]:
        store = RedisSessionStore(client_from_url(redis_server.url), cache_ttl=0.0)
        tokens = {}
        for user, roles in (("vic", {"viewer"}), ("ada", {"admin"})):
            token, ref = new_session_token(user)
            await store.create(ref, make_session(ref.session_id, user_id=user, roles=roles))
            tokens[user] = token
        await store.close()
        return tokens

    return asyncio.run(create())


# (path, certificate, session user or a bogus token, status, reason)
CASES = [
    ("/api/x", None, None, 495, "missing"),
    ("/api/x", "expired", None, 495, "expired"),
    ("/api/x", "untrusted", None, 495, "untrusted"),
    ("/api/x", "revoked", None, 495, "revoked"),
    ("/admin/x", "bob", None, 495, "identity_not_allowed"),
    ("/nowhere", "alice", None, 403, "no_matching_route"),
    ("/reports/q", "alice", None, 401, "session_required"),
    ("/reports/q", "alice", "bogus", 401, "session_invalid"),
    ("/finance/q", "alice", "vic", 403, "role_required"),
    ("/reports/q", "alice", "ada", 403, "mfa_enrollment_required"),
    ("/readonly/q", "alice", None, 403, "condition_failed"),
]
IDS = [case[4] for case in CASES]


def ask(
    edge: EdgeStack,
    certs: dict[str, tuple[Path, Path]],
    sessions: dict[str, str],
    case: tuple[str, str | None, str | None, int, str],
    headers: dict[str, str],
) -> Response:
    path, cert, user, _, _ = case
    sent = dict(headers)
    if user is not None:
        sent["cookie"] = f"{COOKIE}={sessions.get(user, user)}"
    return edge.get(path, cert=certs[cert] if cert else None, headers=sent)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_a_browser_gets_a_page_with_the_same_status_and_reason(
    edge: EdgeStack,
    certs: dict[str, tuple[Path, Path]],
    sessions: dict[str, str],
    case: tuple[str, str | None, str | None, int, str],
) -> None:
    reply = ask(edge, certs, sessions, case, BROWSER)
    status, reason = case[3], case[4]
    assert (reply.status, reply.headers["x-admitd-reason"]) == (status, reason)
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    csp = reply.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "'unsafe-inline'" not in csp
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["strict-transport-security"].startswith("max-age=31536000")
    assert reply.headers["x-frame-options"] == "DENY"
    page = reply.body.decode()
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert f"<dd>{reason}</dd>" in page
    request_id = re.search(r"<dt>Request ID</dt><dd>([^<]+)</dd>", page)
    assert request_id is not None and request_id[1] != "-"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_an_api_client_keeps_the_json(
    edge: EdgeStack,
    certs: dict[str, tuple[Path, Path]],
    sessions: dict[str, str],
    case: tuple[str, str | None, str | None, int, str],
) -> None:
    reply = ask(edge, certs, sessions, case, API)
    assert (reply.status, reply.headers["x-admitd-reason"]) == (case[3], case[4])
    assert reply.headers["content-type"] == "application/json"
    error = json.loads(reply.body)["error"]
    assert case[4] in (error["code"], error.get("reason"))


# What these answered before pages existed, byte for byte.
GOLDEN = {
    "missing": b'{"error":{"code":"client_certificate_required","message":"This route requires'
    b' a client certificate.","reason":"missing"}}',
    "session_required": b'{"error":{"code":"session_required","message":"This route requires'
    b' a signed-in session."}}',
    "role_required": b'{"error":{"code":"role_required","message":"Your roles do not include'
    b' one this route requires."}}',
}


@pytest.mark.parametrize("reason", sorted(GOLDEN))
def test_the_json_is_unchanged_byte_for_byte(
    edge: EdgeStack,
    certs: dict[str, tuple[Path, Path]],
    sessions: dict[str, str],
    reason: str,
) -> None:
    case = next(c for c in CASES if c[4] == reason)
    for headers in (API, {}, {"sec-fetch-mode": "cors", "accept": "text/html"}):
        assert ask(edge, certs, sessions, case, headers).body == GOLDEN[reason]


def test_a_certificate_page_names_the_accepted_cas(
    edge: EdgeStack, certs: dict[str, tuple[Path, Path]], sessions: dict[str, str]
) -> None:
    page = ask(edge, certs, sessions, CASES[0], BROWSER).body.decode()
    assert "Certificates are accepted from:" in page
    assert "<li>test root CA</li>" in page and "<li>test client CA</li>" in page


def test_a_page_names_the_signed_in_user(
    edge: EdgeStack, certs: dict[str, tuple[Path, Path]], sessions: dict[str, str]
) -> None:
    case = next(c for c in CASES if c[4] == "role_required")
    page = ask(edge, certs, sessions, case, BROWSER).body.decode()
    assert "<dt>Signed in as</dt><dd>vic (acme)</dd>" in page


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium")
def test_the_pages_are_accessible_in_a_real_browser(
    edge: EdgeStack, certs: dict[str, tuple[Path, Path]], sessions: dict[str, str]
) -> None:
    origin = f"https://localhost:{edge.https_port}"
    cert, key = certs["alice"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            # No certificate: the 495 page, as a person without one meets it.
            page = browser.new_context(ignore_https_errors=True).new_page()
            reply = page.goto(f"{origin}/api/x")
            assert reply is not None and reply.status == 495
            assert page.get_by_role("heading", name="Certificate required").is_visible()
            assert_accessible(page, "denied-certificate-required")
            with_cert = browser.new_context(
                ignore_https_errors=True,
                client_certificates=[
                    {"origin": origin, "certPath": str(cert), "keyPath": str(key)}
                ],
            )
            with_cert.add_cookies(
                [{"name": COOKIE, "value": sessions["vic"], "url": origin, "secure": True}]
            )
            page = with_cert.new_page()
            for path, status, name in (
                ("/finance/q", 403, "denied-role-required"),
                ("/nowhere", 403, "denied-no-matching-route"),
            ):
                reply = page.goto(f"{origin}{path}")
                assert reply is not None and reply.status == status
                assert_accessible(page, name)
        finally:
            browser.close()
