"""Malformed client certificates are a 495 `malformed`, never a 503; public routes never parse."""

from __future__ import annotations

import base64
import inspect
import json
from datetime import UTC, datetime
from pathlib import Path
from unittest.mock import Mock
from urllib.parse import quote

import cryptography.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from admitd.admin.authz import authorized_principal
from admitd.certs.decoding import CERTIFICATE_ERRORS
from admitd.certs.forwarding import ForwardHeader, TrustedProxy
from admitd.core.context import RequestContext
from admitd.core.identity import CertificateFacts, CertificateProblem
from admitd.engine import Engine
from admitd.extauthz.service import AuthorizationService
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from admitd.pki import Issued, issue_leaf
from tests.malformed_certs import MALFORMED_KINDS, malformed_leaf_pem, resigned_with_edit
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request
from tests.unit.test_check_service import golden_request

EDGE = "spiffe://test.example/proxy/edge"
PROXIES = [
    TrustedProxy("edge", ForwardHeader.XFCC, principals=frozenset({EDGE})),
    TrustedProxy("lb", ForwardHeader.CLIENT_CERT, principals=frozenset({"lb.test"})),
]


def b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


@pytest.fixture(scope="module")
def lb(pki: PkiSet) -> Issued:
    """A trusted proxy that forwards RFC 9440 headers."""
    return issue_leaf(pki.client_ca, "lb", dns_names=("lb.test",))


@pytest.fixture
def engine(pki: PkiSet, policy_dir: Path) -> Engine:
    return engine_for(pki.trust_bundle, policy_dir, crl_files=[pki.crl], proxies=PROXIES)[0]


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_a_malformed_peer_certificate_is_malformed(pki: PkiSet, engine: Engine, kind: str) -> None:
    cert = quote(malformed_leaf_pem(kind, pki.client_ca), safe="")
    facts = engine.certificates.facts_for(request(cert=cert), datetime.now(UTC))
    assert (facts.identity, facts.problem) == (None, CertificateProblem.MALFORMED)
    assert 0 < len(facts.detail) < 250 and "BEGIN" not in facts.detail  # shown to the client


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_a_malformed_forwarded_certificate_is_malformed(
    pki: PkiSet, engine: Engine, kind: str
) -> None:
    pem = malformed_leaf_pem(kind, pki.client_ca)
    xfcc = f'Hash=00;Cert="{quote(pem, safe="")}"'
    ctx = request(cert=url_pem(pki.proxy), headers={"x-forwarded-client-cert": xfcc})
    assert engine.certificates.facts_for(ctx, datetime.now(UTC)).problem is (
        CertificateProblem.MALFORMED
    )


async def test_the_check_answers_495_malformed_and_public_routes_200(
    pki: PkiSet, engine: Engine
) -> None:
    service = AuthorizationService(engine, Metrics(CollectorRegistry()), DecisionLog())
    for kind in MALFORMED_KINDS:
        cert = quote(malformed_leaf_pem(kind, pki.client_ca), safe="")
        denied = (await service.Check(golden_request(cert), Mock())).denied_response
        assert denied.status.code == 495, kind
        error = json.loads(denied.body)["error"]
        assert (error["code"], error["reason"]) == ("client_certificate_invalid", "malformed")
        public = await service.Check(golden_request(cert, path="/healthz"), Mock())
        assert public.HasField("ok_response"), kind


@pytest.mark.parametrize("kind", ["reserved-tag-subject", "duplicate-extension"])
def test_the_admin_guard_treats_a_malformed_peer_as_no_principal(pki: PkiSet, kind: str) -> None:
    pem = malformed_leaf_pem(kind, pki.client_ca).encode()
    assert authorized_principal({"x509_pem_cert": [pem]}, {"CN=x"}) is None


class NeverParsed:
    """Certificates that must not be looked at: a public route decides without them."""

    def facts_for(self, ctx: RequestContext, now: datetime) -> CertificateFacts:
        raise AssertionError("a public route parsed the client certificate")

    def invalidate(self) -> None:
        return None


async def test_a_public_route_does_not_parse_the_certificate(pki: PkiSet, engine: Engine) -> None:
    engine.certificates = NeverParsed()  # type: ignore[assignment]
    decision, facts = await engine.check(request("/healthz", cert="%%%garbage"))
    assert decision.allowed and decision.reason.value == "public_route"
    assert facts.certificate.identity is None and facts.certificate.source == "not_examined"


def test_every_cryptography_exception_is_mapped() -> None:
    """A new exception class in `cryptography` must be added to CERTIFICATE_ERRORS."""
    modules = (x509, cryptography.exceptions, verification)
    classes = {
        obj
        for module in modules
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Exception)
    }
    assert classes
    # ExtensionNotFound / AttributeNotFound are lookups admitd handles where it looks.
    unmapped = {c for c in classes if not issubclass(c, CERTIFICATE_ERRORS)}
    assert unmapped == set()


@pytest.mark.parametrize("members", [8, 9, 30], ids=["limit-with-leaf", "limit+1", "far-over"])
def test_rfc9440_chain_longer_than_the_limit_is_chain_too_long(
    pki: PkiSet, engine: Engine, lb: Issued, members: int
) -> None:
    ca = f":{b64(pki.client_ca.cert.public_bytes(Encoding.DER))}:"
    headers = {
        "client-cert": f":{b64(pki.alice.cert.public_bytes(Encoding.DER))}:",
        "client-cert-chain": ", ".join([ca] * members),  # tls.max_chain_length is 8 here
    }
    facts = engine.certificates.facts_for(request(cert=url_pem(lb), headers=headers), _now())
    assert facts.problem is CertificateProblem.CHAIN_TOO_LONG


def _now() -> datetime:
    return datetime.now(UTC)


# --- fuzzing: no input reaches the fail-closed exception path -------------------------

_ANY_PROBLEM = set(CertificateProblem)
_FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _facts(engine: Engine, ctx: RequestContext) -> CertificateFacts:
    facts = engine.certificates.facts_for(ctx, datetime.now(UTC))
    assert (facts.identity is None) != (facts.problem is None)
    assert facts.problem is None or facts.problem in _ANY_PROBLEM
    return facts


@_FUZZ
@given(text=st.text(max_size=400))
def test_fuzz_any_peer_text(engine: Engine, text: str) -> None:
    _facts(engine, request(cert=text))


@_FUZZ
@given(data=st.data())
def test_fuzz_edited_and_resigned_certificates(
    pki: PkiSet, engine: Engine, lb: Issued, data: st.DataObject
) -> None:
    """Edits inside the TBSCertificate, signed again by the trusted CA: past the signature."""
    tbs = pki.alice.cert.tbs_certificate_bytes
    position = data.draw(st.integers(0, len(tbs) - 1), label="position")
    replacement = data.draw(st.binary(min_size=1, max_size=3), label="bytes")
    pem = resigned_with_edit(pki.alice, pki.client_ca, position, replacement)
    _facts(engine, request(cert=quote(pem, safe="")))
    via_xfcc = {"x-forwarded-client-cert": f'Hash=00;Cert="{quote(pem, safe="")}"'}
    _facts(engine, request(cert=url_pem(pki.proxy), headers=via_xfcc))
    der = "".join(pem.splitlines()[1:-1])
    via_rfc9440 = {"client-cert": f":{der}:"}
    _facts(engine, request(cert=url_pem(lb), headers=via_rfc9440))


@_FUZZ
@given(header=st.text(max_size=300))
def test_fuzz_any_xfcc_header(pki: PkiSet, engine: Engine, header: str) -> None:
    _facts(engine, request(cert=url_pem(pki.proxy), headers={"x-forwarded-client-cert": header}))


_BYTE_SEQUENCE = st.binary(max_size=300).map(lambda blob: f":{b64(blob)}:")


@_FUZZ
@given(
    cert=st.one_of(st.text(max_size=200), _BYTE_SEQUENCE),
    chain=st.one_of(st.text(max_size=200), st.lists(_BYTE_SEQUENCE, max_size=10).map(", ".join)),
)
def test_fuzz_any_rfc9440_headers(engine: Engine, lb: Issued, cert: str, chain: str) -> None:
    headers = {"client-cert": cert, "client-cert-chain": chain}
    _facts(engine, request(cert=url_pem(lb), headers=headers))
