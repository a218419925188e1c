"""Denial pages for browsers: every reason has words, user data is escaped, the CSP holds
the inline style's hash, and the service answers a browser's failure with a page too."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from unittest.mock import Mock

import pytest
from prometheus_client import CollectorRegistry

from admitd.core.decision import Decision, Reason
from admitd.core.identity import User
from admitd.engine import Engine
from admitd.extauthz.denial_page import DenialPages, page_text
from admitd.extauthz.service import AuthorizationService
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for
from tests.unit.test_check_service import golden_request

DENIALS = [r for r in Reason if r.status >= 400]
NAVIGATE = {"sec-fetch-mode": "navigate", "accept": "text/html"}


def denial(reason: Reason, user: User | None = None) -> Decision:
    return Decision(
        allowed=False,
        reason=reason,
        message="m",
        client_headers=(("x-admitd-reason", reason.value), ("content-type", "application/json")),
        user=user,
        page=True,
    )


@pytest.mark.parametrize("reason", DENIALS, ids=[r.value for r in DENIALS])
def test_every_denial_reason_has_its_own_words(reason: Reason) -> None:
    title, happened, next_step = page_text(reason)
    assert title and happened.endswith(".") and next_step.endswith(".")
    # None falls through to the words kept for a reason added without any.
    assert happened != "This page is not available to you."


def test_the_page_keeps_the_status_and_the_reason_headers_but_not_the_json_type() -> None:
    response = DenialPages(("Root CA",)).response(denial(Reason.CERTIFICATE_EXPIRED), "rid-1")
    denied = response.denied_response
    headers = {h.header.key: h.header.value for h in denied.headers}
    assert denied.status.code == 495
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["x-admitd-reason"] == "expired"
    assert "<li>Root CA</li>" in denied.body and "<dd>rid-1</dd>" in denied.body


def test_the_inline_style_is_allowed_by_its_hash_and_nothing_else_runs() -> None:
    response = DenialPages().response(denial(Reason.ROLE_REQUIRED), "r")
    headers = {h.header.key: h.header.value for h in response.denied_response.headers}
    style = re.search(r"<style>(.*?)</style>", response.denied_response.body, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style[1].encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in headers["content-security-policy"]
    assert "script" not in headers["content-security-policy"]


def test_what_the_request_carried_is_escaped() -> None:
    user = User(user_id="<script>x</script>", organisation="o&co", roles=frozenset(), session_id="")
    page = DenialPages().html(denial(Reason.ROLE_REQUIRED, user), '"><img src=x>')
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;x&lt;/script&gt; (o&amp;co)" in page


async def test_a_browser_gets_a_page_when_admitd_itself_fails(pki: PkiSet) -> None:
    broken = Mock(spec=Engine)
    broken.check.side_effect = RuntimeError("boom")
    service = AuthorizationService(broken, Metrics(CollectorRegistry()), DecisionLog())
    response = await service.Check(golden_request(url_pem(pki.alice), **NAVIGATE), Mock())
    assert response.denied_response.status.code == 503
    assert "<h1>Temporarily unavailable</h1>" in response.denied_response.body
    assert "boom" not in response.denied_response.body


async def test_the_engine_marks_only_browser_navigations(pki: PkiSet, policy_dir: Path) -> None:
    engine, _ = engine_for(pki.trust_bundle, policy_dir)
    ctx_headers = [({}, False), ({"sec-fetch-mode": "cors"}, False), (NAVIGATE, True)]
    for headers, page in ctx_headers:
        service = AuthorizationService(engine, Metrics(CollectorRegistry()), DecisionLog())
        response = await service.Check(golden_request("", **headers), Mock())
        body = response.denied_response.body
        assert response.denied_response.status.code == 495
        assert body.startswith("<!doctype html>") is page
        assert body.startswith('{"error":') is not page
