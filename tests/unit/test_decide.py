"""The pure decision: reasons, statuses and the headers that go upstream."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from admitd.core.decide import decide
from admitd.core.decision import Reason
from admitd.core.facts import Facts
from admitd.engine import Engine
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request


@pytest.fixture
def engine(pki: PkiSet, policy_dir: Path) -> Engine:
    return engine_for(pki.trust_bundle, policy_dir, crl_files=[pki.crl])[0]


@pytest.mark.parametrize(
    ("who", "path", "reason", "status"),
    [
        pytest.param("alice", "/admin/users", Reason.ALLOWED, 200, id="alice-admin"),
        pytest.param("bob", "/admin/users", Reason.IDENTITY_NOT_ALLOWED, 495, id="bob-admin"),
        pytest.param("bob", "/api/items", Reason.ALLOWED, 200, id="bob-api-glob"),
        pytest.param("subject_only", "/batch/run", Reason.ALLOWED, 200, id="subject-match"),
        pytest.param(
            "alice", "/batch/run", Reason.IDENTITY_NOT_ALLOWED, 495, id="subject-mismatch"
        ),
        pytest.param(None, "/api/items", Reason.CERTIFICATE_MISSING, 495, id="no-cert"),
        pytest.param(None, "/healthz", Reason.PUBLIC_ROUTE, 200, id="public"),
        pytest.param("alice", "/nowhere", Reason.NO_MATCHING_ROUTE, 403, id="unmatched"),
        pytest.param("expired", "/api/items", Reason.CERTIFICATE_EXPIRED, 495, id="expired"),
        pytest.param("untrusted", "/api/items", Reason.CERTIFICATE_UNTRUSTED, 495, id="untrusted"),
        pytest.param("revoked", "/api/items", Reason.CERTIFICATE_REVOKED, 495, id="revoked"),
    ],
)
async def test_decisions(
    engine: Engine, pki: PkiSet, who: str | None, path: str, reason: Reason, status: int
) -> None:
    cert = url_pem(getattr(pki, who)) if who else ""
    decision, _ = await engine.check(request(path, cert=cert))
    assert (decision.reason, decision.status) == (reason, status)
    assert decision.allowed == (status == 200)


async def test_method_must_match(engine: Engine, pki: PkiSet) -> None:
    decision, _ = await engine.check(
        request("/admin/users", method="DELETE", cert=url_pem(pki.alice))
    )
    assert decision.reason is Reason.NO_MATCHING_ROUTE


async def test_plain_http_is_refused(engine: Engine, pki: PkiSet) -> None:
    decision, _ = await engine.check(request(cert=url_pem(pki.alice), proto="http"))
    assert (decision.reason, decision.code, decision.status) == (
        Reason.HTTPS_REQUIRED,
        "https_required",
        403,
    )


async def test_malformed_request_is_400(engine: Engine) -> None:
    bad = dataclasses.replace(request(), malformed=("no HTTP request attributes",))
    decision, _ = await engine.check(bad)
    assert (decision.reason, decision.status) == (Reason.REQUEST_MALFORMED, 400)


async def test_allow_sets_identity_headers_and_strips_client_copies(
    engine: Engine, pki: PkiSet
) -> None:
    forged = {
        "x-admitd-principal": "spiffe://evil",
        "x-admitd-mfa": "fresh",
        "x-client-cert": "x",
        "accept": "*/*",
    }
    decision, _ = await engine.check(request(cert=url_pem(pki.alice), headers=forged))
    upstream = dict(decision.upstream_headers)
    assert upstream["x-admitd-principal"] == "spiffe://test.example/user/alice"
    assert upstream["x-admitd-cert-sha256"] == pki.alice.cert.fingerprint(hashes.SHA256()).hex()
    assert upstream["x-admitd-route"] == "api"
    # Overwritten headers are not also removed: the result must not depend on Envoy's order.
    assert set(decision.headers_to_remove) == {"x-admitd-mfa", "x-client-cert"}


async def test_public_route_strips_forged_principal(engine: Engine) -> None:
    decision, _ = await engine.check(
        request("/healthz", headers={"x-admitd-principal": "spiffe://evil"})
    )
    assert decision.allowed
    assert "x-admitd-principal" in decision.headers_to_remove


def test_decide_is_pure_given_facts(engine: Engine, pki: PkiSet) -> None:
    ctx = request(cert=url_pem(pki.alice))
    facts = Facts(certificate=engine.certificates.facts_for(ctx, datetime.now(UTC)))
    assert decide(ctx, engine.policy, facts) == decide(ctx, engine.policy, facts)


async def test_unmatched_any_certificate(pki: PkiSet, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "unmatched: any_certificate\nroutes: [{name: o, match: {path_prefix: /o/}, public: true}]\n"
    )
    engine, _ = engine_for(pki.trust_bundle, tmp_path)
    assert (await engine.check(request("/x", cert=url_pem(pki.bob))))[0].allowed
    assert (await engine.check(request("/x")))[0].reason is Reason.CERTIFICATE_MISSING
