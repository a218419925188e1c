"""Expiry and age as metrics, computed when Prometheus scrapes (never stale, no timers).

- every CA certificate in the trust bundle: seconds to its notAfter;
- every loaded CRL: seconds to its nextUpdate;
- admitd's own server certificates (admin API, Check over TLS): seconds to notAfter;
- client certificates seen in the last hour that expire within 30 days, counted per
  issuing CA (a gauge per CA, never a series per certificate);
- each master-key alias: the age of its active version, and how many versions are kept
  only to decrypt older records (retire them once `admitd keys reencrypt` has run).

Bounded everywhere: the bundle and CRLs are what the operator configured, the seen
clients at most `max_entries`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from admitd.certs.expiring import ExpiringClients
from admitd.certs.revocation import RevocationData
from admitd.certs.truststore import TrustStore
from admitd.kms.base import KeyState, ManagedKms

__all__ = ["ExpiryCollector"]

log = logging.getLogger(__name__)

KEY_LISTING_SECONDS = 60.0  # an HSM's key listing is not for every scrape


class ExpiryCollector(Collector):
    def __init__(
        self,
        trust: TrustStore,
        revocation: Callable[[], RevocationData],
        *,
        server_certificates: Sequence[tuple[str, Path]] = (),
        kms: object | None = None,
        clients: ExpiringClients | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._trust = trust
        self._revocation = revocation
        # What admitd serves: the files as read at start-up (a replaced file takes a restart).
        self._servers = [(name, _read_leaf(path)) for name, path in server_certificates]
        self._kms = kms if isinstance(kms, ManagedKms) else None
        self._clients = clients
        self._clock = clock
        self._keys: tuple[float, list[tuple[str, float | None, int]]] = (-KEY_LISTING_SECONDS, [])

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = self._clock()
        families = self._families()
        ca, crl, server, clients, age, decrypt_only = families
        for kind, certs in (
            ("root", self._trust.roots),
            ("intermediate", self._trust.intermediates),
        ):
            for cert in certs:
                labels = [kind, cert.subject.rfc4514_string(), f"{cert.serial_number:x}"]
                ca.add_metric(labels, _until(cert.not_valid_after_utc, now))
        for freshness in self._revocation().crl_freshness():
            if freshness.next_update is not None:
                crl.add_metric([freshness.issuer], _until(freshness.next_update, now))
        for name, served in self._servers:
            if served is not None:
                labels = [name, served.subject.rfc4514_string()]
                server.add_metric(labels, _until(served.not_valid_after_utc, now))
        if self._clients is not None:
            for issuer, count in sorted(self._clients.counts(now).items()):
                clients.add_metric([issuer], count)
        for alias, created, kept in self._key_ages(now):
            if created is not None:
                age.add_metric([alias], now - created)
            decrypt_only.add_metric([alias], kept)
        return families

    def _families(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "admitd_ca_certificate_expiry_seconds",
                "Seconds until each CA certificate of tls.trust_bundle expires (negative: expired)",
                labels=["kind", "subject", "serial"],
            ),
            GaugeMetricFamily(
                "admitd_crl_next_update_seconds",
                "Seconds until each loaded CRL reaches its nextUpdate",
                labels=["issuer"],
            ),
            GaugeMetricFamily(
                "admitd_server_certificate_expiry_seconds",
                "Seconds until admitd's own server certificates expire (admin API, Check TLS)",
                labels=["listener", "subject"],
            ),
            GaugeMetricFamily(
                "admitd_client_certificates_expiring",
                "Client certificates seen in the last hour that expire within 30 days",
                labels=["issuer"],
            ),
            GaugeMetricFamily(
                "admitd_kms_active_key_age_seconds",
                "Age of each master-key alias's active version",
                labels=["alias"],
            ),
            GaugeMetricFamily(
                "admitd_kms_decrypt_only_versions",
                "Master-key versions kept only to decrypt older records (retire after reencrypt)",
                labels=["alias"],
            ),
        ]

    def _key_ages(self, now: float) -> list[tuple[str, float | None, int]]:
        listed_at, ages = self._keys
        if self._kms is None or now - listed_at < KEY_LISTING_SECONDS:
            return ages
        try:
            ages = [_alias_age(self._kms, alias) for alias in self._kms.aliases()]
        except Exception:  # a provider that cannot list keys must not break /metrics
            log.warning("cannot list master-key versions for the key-age metrics", exc_info=True)
        self._keys = (now, ages)
        return ages


def _alias_age(kms: ManagedKms, alias: str) -> tuple[str, float | None, int]:
    versions = kms.versions(alias)
    active = [v for v in versions if v.state is KeyState.ACTIVE]
    created = _timestamp(active[-1].created) if active else None
    kept = sum(1 for v in versions if v.state is KeyState.DECRYPT_ONLY)
    return alias, created, kept


def _timestamp(rfc3339: str) -> float | None:
    if not rfc3339:
        return None  # the provider does not know when the version was made
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _until(moment: datetime, now: float) -> float:
    return moment.timestamp() - now


def _read_leaf(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return None  # start-up already refused an unreadable certificate
