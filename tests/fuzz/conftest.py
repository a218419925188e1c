"""Fixtures for the fuzz tests: the certificate-only policy, its oracle, a Check service."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client import CollectorRegistry

from admitd.extauthz.service import AuthorizationService
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from tests.fuzz.budget import grpc_fuzz_count, grpc_fuzz_seconds
from tests.fuzz.check_requests import RequestSpec
from tests.fuzz.oracle import ALICE, BOB, CERT_ONLY_POLICY, CertOnlyOracle
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for


def pytest_addoption(parser: pytest.Parser) -> None:
    # Read only when tests/fuzz is named on the command line (an initial conftest);
    # ADMITD_FUZZ_COUNT works in every case.
    parser.addoption(
        "--fuzz-count",
        dest="fuzz_count",
        default=None,
        help="requests the gRPC Check fuzz sends (default: ADMITD_FUZZ_COUNT or 2000)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The gRPC fuzz runs as long as its count asks (a million in `make fuzz-long`).
    seconds = grpc_fuzz_seconds(grpc_fuzz_count(config))
    for item in items:
        if item.nodeid.startswith("tests/fuzz/test_grpc_check_fuzz.py"):
            item.add_marker(pytest.mark.timeout(int(seconds) + 120))


@pytest.fixture(scope="session")
def cert_only_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cert-only-policy")
    (directory / "routes.yaml").write_text(CERT_ONLY_POLICY)
    return directory


@pytest.fixture(scope="session")
def oracle(pki: PkiSet) -> CertOnlyOracle:
    return CertOnlyOracle(
        {
            pki.alice.cert.public_bytes(Encoding.DER): ALICE,
            pki.bob.cert.public_bytes(Encoding.DER): BOB,
        }
    )


@pytest.fixture(scope="session")
def golden(pki: PkiSet) -> RequestSpec:
    return RequestSpec.golden(url_pem(pki.alice))


@pytest.fixture(scope="session")
def other_certificates(pki: PkiSet) -> tuple[str, ...]:
    """Every other certificate the test PKI has, and alice with her issuing CA."""
    return (
        url_pem(pki.bob),
        url_pem(pki.alice, pki.client_ca),
        url_pem(pki.expired),
        url_pem(pki.not_yet_valid),
        url_pem(pki.untrusted),
        url_pem(pki.no_client_eku),
        url_pem(pki.subject_only),
        url_pem(pki.revoked),
        url_pem(pki.server),
        url_pem(pki.client_ca),
        url_pem(pki.root),
        url_pem(pki.foreign_root),
    )


@pytest.fixture
def check_service(pki: PkiSet, cert_only_policy: Path) -> AuthorizationService:
    engine, _ = engine_for(pki.trust_bundle, cert_only_policy, crl_files=[pki.crl])
    return AuthorizationService(engine, Metrics(CollectorRegistry()), DecisionLog())
