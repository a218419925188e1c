"""The pure decision: reasons, statuses and the headers that go upstream."""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from types import MappingProxyType

import pytest
from cryptography.hazmat.primitives import hashes
from hypothesis import given
from hypothesis import strategies as st

from admitd.core.context import RequestContext
from admitd.core.decide import decide
from admitd.core.decision import Decision, Reason
from admitd.core.facts import Facts
from admitd.core.identity import CertificateFacts, CertificateProblem, ClientIdentity
from admitd.core.route import PolicySet
from admitd.engine import Engine
from admitd.policy.loader import policy_set_from_documents
from admitd.yamlsource import yaml_document_from_text
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


# --- properties of decide() over generated requests and certificate facts ---------------

PROPERTY_POLICY = """
routes:
  - name: health
    match: {path_exact: /healthz}
    public: true
  - name: admin
    match: {path_prefix: /admin/, methods: [GET, POST]}
    identities: {spiffe: ["spiffe://test.example/user/alice"]}
  - name: batch
    match: {path_prefix: /batch/}
    identities: {subjects: ["CN=batch-job,O=admitd dev"]}
  - name: team
    match: {path_prefix: /team/}
    identities: any
    conditions: ['request.headers["x-team"] == "blue"']
  - name: trial
    match: {path_prefix: /trial/}
    identities: {spiffe: ["spiffe://test.example/user/alice"]}
    shadow: true
  - name: api
    match: {path_prefix: /api/}
    identities: {spiffe: ["spiffe://test.example/user/*"]}
"""


def load_property_policy() -> PolicySet:
    return policy_set_from_documents([yaml_document_from_text(PROPERTY_POLICY, "p.yaml")])


property_policy = cache(load_property_policy)


HEADER_NAMES = (
    "x-admitd-principal",
    "x-admitd-route",
    "x-admitd-mfa",
    "x-client-cert",
    "x-team",
    "accept",
    "authorization",
    "user-agent",
)
header_values = st.sampled_from(["", "blue", "spiffe://evil", "*/*", "Bearer x"]) | st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12
)
# Mostly the policy's own routes, so that most examples get past the route lookup.
paths = st.builds(
    str.__add__,
    st.sampled_from(["/healthz", "/admin/", "/batch/", "/team/", "/trial/", "/api/", "/x/"]),
    st.sampled_from(["", "items", "a/b", "x;p=1", "q?token=1"]),
)
contexts = st.builds(
    lambda method, path, proto, headers: request(path, method=method, proto=proto, headers=headers),
    st.sampled_from(["GET", "POST", "DELETE"]),
    paths,
    st.sampled_from(["https"] * 5 + ["http"]),
    st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=6),
)
identities = st.builds(
    ClientIdentity,
    fingerprint_sha256=st.just("ab" * 32),
    spki_sha256=st.just("cd" * 32),
    serial_hex=st.just("01"),
    subject=st.sampled_from(["CN=batch-job,O=admitd dev", "CN=someone"]),
    uris=st.lists(
        st.sampled_from(
            ["spiffe://test.example/user/alice", "spiffe://test.example/user/bob", "spiffe://x/y"]
        ),
        max_size=2,
    ).map(tuple),
    dns_names=st.lists(st.sampled_from(["svc.test"]), max_size=1).map(tuple),
)
certificates = st.builds(lambda identity: CertificateFacts(identity, None), identities) | st.builds(
    lambda problem: CertificateFacts(None, problem, f"because {problem}"),
    st.sampled_from(CertificateProblem),
)
all_facts = st.builds(Facts, certificate=certificates, now=st.floats(1.6e9, 2.0e9, allow_nan=False))


def reordered(ctx: RequestContext) -> RequestContext:
    """The same request, its headers inserted in the opposite order (as another Envoy might)."""
    headers = dict(reversed(list(ctx.headers.items())))
    return dataclasses.replace(ctx, headers=MappingProxyType(headers))


def unordered(decision: Decision) -> Decision:
    """Envoy removes a set of headers: the order of `headers_to_remove` carries nothing
    (it follows the request's header order), every other field must match exactly."""
    return dataclasses.replace(
        decision, headers_to_remove=tuple(sorted(decision.headers_to_remove))
    )


@given(ctx=contexts, facts=all_facts, other=contexts)
def test_decide_depends_only_on_its_arguments(
    ctx: RequestContext, facts: Facts, other: RequestContext
) -> None:
    """Same request, policy and facts: the same decision, whatever else was decided before,
    however the headers were ordered, and from the same policy loaded a second time."""
    policy = property_policy()
    first = decide(ctx, policy, facts)
    decide(other, policy, facts)  # any state kept between calls would show here
    assert decide(ctx, policy, facts) == first
    assert unordered(decide(reordered(ctx), policy, facts)) == unordered(first)
    assert decide(ctx, load_property_policy(), facts) == first


@given(ctx=contexts, facts=all_facts)
def test_the_answer_agrees_with_the_reason(ctx: RequestContext, facts: Facts) -> None:
    decision = decide(ctx, property_policy(), facts)
    assert decision.allowed == (decision.reason in {Reason.ALLOWED, Reason.PUBLIC_ROUTE})
    assert decision.allowed == (decision.status == 200)


@given(ctx=contexts, facts=all_facts)
def test_no_client_copy_of_an_admitd_header_reaches_the_upstream(
    ctx: RequestContext, facts: Facts
) -> None:
    decision = decide(ctx, property_policy(), facts)
    if not decision.allowed:
        return
    upstream = dict(decision.upstream_headers)
    removed = set(decision.headers_to_remove)
    assert not removed & upstream.keys(), "a header both set and removed depends on Envoy's order"
    for name in ctx.headers:
        if name.startswith("x-admitd-") or name == "x-client-cert":
            assert name in removed or name in upstream, f"the client's {name} passes through"
    # A shadow route admits what it would have denied, even without a certificate.
    if decision.reason is Reason.ALLOWED and decision.shadow_reason is None:
        assert_principal_is_the_certificates(decision, facts)


def assert_principal_is_the_certificates(decision: Decision, facts: Facts) -> None:
    identity = facts.certificate.identity
    assert identity is not None, "admitted on a non-public route without a certificate"
    assert dict(decision.upstream_headers)["x-admitd-principal"] == identity.principal


async def test_unmatched_any_certificate(pki: PkiSet, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "unmatched: any_certificate\nroutes: [{name: o, match: {path_prefix: /o/}, public: true}]\n"
    )
    engine, _ = engine_for(pki.trust_bundle, tmp_path)
    assert (await engine.check(request("/x", cert=url_pem(pki.bob))))[0].allowed
    assert (await engine.check(request("/x")))[0].reason is Reason.CERTIFICATE_MISSING
