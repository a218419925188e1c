"""Expiry and age metrics: computed at scrape time, per CA / CRL / listener / alias."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry

from admitd.certs.expiring import EXPIRING_WITHIN, ExpiringClients
from admitd.certs.revocation import RevocationSource
from admitd.certs.truststore import trust_store_from_files
from admitd.expiry import ExpiryCollector
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.pki import issue_leaf
from tests.pki_fixtures import PkiSet, url_pem
from tests.unit.helpers import engine_for, request

DAY = 86400.0


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_expiring_clients_counts_the_last_hour_within_30_days() -> None:
    clients = ExpiringClients(max_entries=3)
    now = 1_000_000.0
    clients.saw("a", "CN=ca1", now + 10 * DAY, now)
    clients.saw("a", "CN=ca1", now + 10 * DAY, now + 5)  # the same certificate again
    clients.saw("b", "CN=ca1", now + 29 * DAY, now)
    clients.saw("c", "CN=ca2", now + 40 * DAY, now)  # not within 30 days
    assert clients.counts(now + 10) == {"CN=ca1": 2}
    assert clients.counts(now + 3601) == {"CN=ca1": 1}  # only "a" was seen within the hour
    assert clients.counts(now + 7300) == {}


def test_expiring_clients_is_bounded() -> None:
    clients = ExpiringClients(max_entries=2)
    for index in range(5):
        clients.saw(str(index), "CN=ca", 100.0 + DAY, 100.0)
    assert clients.counts(100.0) == {"CN=ca": 2}


def test_checks_feed_only_certificates_that_expire_soon(pki: PkiSet, policy_dir: Path) -> None:
    expiring = ExpiringClients()
    engine, _ = engine_for(pki.trust_bundle, policy_dir, expiring=expiring)
    soon = issue_leaf(
        pki.client_ca,
        "soon",
        uris=("spiffe://test.example/user/soon",),
        not_after=datetime.now(UTC) + timedelta(days=10),
    )
    now = datetime.now(UTC)
    for _ in range(3):  # repeated (cached) Checks are one certificate
        engine.certificates.facts_for(request(cert=url_pem(soon)), now)
    engine.certificates.facts_for(request(cert=url_pem(pki.alice)), now)  # a year left
    engine.certificates.facts_for(request(cert=url_pem(pki.expired)), now)  # refused
    issuer = pki.client_ca.cert.subject.rfc4514_string()
    assert expiring.counts(now.timestamp()) == {issuer: 1}
    assert EXPIRING_WITHIN == 30 * DAY


def test_the_collector_reports_cas_crls_servers_clients_and_keys(
    pki: PkiSet, tmp_path: Path
) -> None:
    trust = trust_store_from_files([pki.trust_bundle], config_file="t", key="tls.trust_bundle")
    revocation = RevocationSource([pki.crl], None, trust)
    revocation.load()
    kms = MemoryKms.with_aliases(DEFAULT_ALIASES)
    alias = DEFAULT_ALIASES[0]
    kms.rotate(alias)  # the first version is now kept only to decrypt
    clients = ExpiringClients()
    now = datetime.now(UTC).timestamp()
    clients.saw("fp", "CN=issuer", now + 5 * DAY, now)
    registry = CollectorRegistry()
    registry.register(
        ExpiryCollector(
            trust,
            lambda: revocation.data,
            server_certificates=[("check_tls", pki.directory / "server.pem")],
            kms=kms,
            clients=clients,
            clock=lambda: now,
        )
    )
    root = pki.root.cert
    root_left = sample(
        registry,
        "admitd_ca_certificate_expiry_seconds",
        kind="root",
        subject=root.subject.rfc4514_string(),
        serial=f"{root.serial_number:x}",
    )
    assert root_left is not None
    assert abs(root_left - (root.not_valid_after_utc.timestamp() - now)) < 1
    intermediate = pki.client_ca.cert
    assert sample(
        registry,
        "admitd_ca_certificate_expiry_seconds",
        kind="intermediate",
        subject=intermediate.subject.rfc4514_string(),
        serial=f"{intermediate.serial_number:x}",
    )
    crl_left = sample(
        registry, "admitd_crl_next_update_seconds", issuer=intermediate.subject.rfc4514_string()
    )
    assert crl_left is not None and 29 * DAY < crl_left <= 30 * DAY  # issue_crl: 30 days
    server = pki.server.cert
    server_left = sample(
        registry,
        "admitd_server_certificate_expiry_seconds",
        listener="check_tls",
        subject=server.subject.rfc4514_string(),
    )
    assert server_left is not None and server_left > 300 * DAY
    assert sample(registry, "admitd_client_certificates_expiring", issuer="CN=issuer") == 1
    age = sample(registry, "admitd_kms_active_key_age_seconds", alias=alias)
    assert age is not None and 0 <= age < 120
    assert sample(registry, "admitd_kms_decrypt_only_versions", alias=alias) == 1
    assert sample(registry, "admitd_kms_decrypt_only_versions", alias=DEFAULT_ALIASES[1]) == 0


def test_an_expired_ca_is_negative(pki: PkiSet, tmp_path: Path) -> None:
    trust = trust_store_from_files([pki.trust_bundle], config_file="t", key="tls.trust_bundle")
    revocation = RevocationSource([], None, trust)
    revocation.load()
    later = pki.root.cert.not_valid_after_utc.timestamp() + DAY
    registry = CollectorRegistry()
    registry.register(ExpiryCollector(trust, lambda: revocation.data, clock=lambda: later))
    root = pki.root.cert
    left = sample(
        registry,
        "admitd_ca_certificate_expiry_seconds",
        kind="root",
        subject=root.subject.rfc4514_string(),
        serial=f"{root.serial_number:x}",
    )
    assert left is not None and -DAY - 1 < left < 0
