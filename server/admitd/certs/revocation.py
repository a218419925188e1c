"""Revocation data: CRL files plus an operator deny list, reloaded when the files change.

The deny list is a text file, one entry per line; `#` starts a comment:

    serial:<hex>        the leaf's serial number (any issuer)
    tbs-sha256:<hex>    SHA-256 of the leaf's signed part (tbsCertificate): what
                        `admitd revoke --cert` writes. Unlike a fingerprint of the whole
                        DER, it survives re-encoding the signature (an ECDSA (r, s) is as
                        valid as (r, n - s)), which anyone holding the certificate can do
    sha256:<hex>        SHA-256 of one exact DER encoding (a fingerprint, as shown by
                        `openssl x509 -fingerprint -sha256`); prefer the other two
    spiffe:<SPIFFE ID>  every certificate whose URI SAN is that ID, and that workload
                        when a mesh caller vouches for it (docs/mesh.md)

`admitd revoke` appends to it; every admitd replica that mounts the file picks the
change up within `tls.revocation_poll_seconds`, without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from admitd.certs.spiffe import SpiffeIdError, spiffe_trust_domain, workload_id_problem
from admitd.certs.truststore import TrustStore

__all__ = [
    "CrlFreshness",
    "DenyList",
    "RevocationData",
    "RevocationError",
    "RevocationSource",
    "RevocationStatus",
    "append_deny_entry",
    "deny_list_from_text",
]

log = logging.getLogger(__name__)


class RevocationError(ValueError):
    """A CRL or deny-list file cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class DenyList:
    serials: frozenset[int] = frozenset()
    fingerprints: frozenset[str] = frozenset()
    signed_parts: frozenset[str] = frozenset()  # tbs-sha256 entries
    spiffe_ids: frozenset[str] = frozenset()

    def denies(self, leaf: x509.Certificate, fingerprint: str) -> bool:
        if fingerprint in self.fingerprints or leaf.serial_number in self.serials:
            return True
        if self.spiffe_ids and not self.spiffe_ids.isdisjoint(_uri_sans(leaf)):
            return True
        return bool(self.signed_parts) and _tbs_sha256(leaf) in self.signed_parts


@dataclass(frozen=True, slots=True)
class _Crl:
    revoked_serials: frozenset[int]
    next_update: datetime | None
    issuer: str = ""  # RFC 4514, for the nextUpdate metric


@dataclass(frozen=True, slots=True)
class CrlFreshness:
    """When one loaded CRL reaches its nextUpdate (None: it names none)."""

    issuer: str
    next_update: datetime | None


@dataclass(frozen=True, slots=True)
class RevocationStatus:
    """`problem`: "" (not revoked), "revoked" or "unknown: ...". `fresh_until` (epoch
    seconds): when the earliest CRL consulted reaches its nextUpdate, after which
    the same chain's status is unknown (RFC 5280 5.1.2.5)."""

    problem: str
    fresh_until: float = float("inf")


@dataclass(frozen=True, slots=True)
class RevocationData:
    """An immutable snapshot; a reload builds a new one and swaps the reference."""

    crls: dict[bytes, _Crl] = field(default_factory=dict)
    deny: DenyList = field(default_factory=DenyList)

    def crl_freshness(self) -> tuple[CrlFreshness, ...]:
        return tuple(CrlFreshness(crl.issuer, crl.next_update) for crl in self.crls.values())

    def status(
        self, chain: Sequence[x509.Certificate], fingerprint: str, now: datetime
    ) -> RevocationStatus:
        """The revocation status of a verified chain (leaf first) at `now`."""
        leaf = chain[0]
        if self.deny.denies(leaf, fingerprint):
            return RevocationStatus("revoked")
        fresh_until = float("inf")
        for cert in chain[:-1]:  # the root vouches for itself; nothing can revoke it here
            crl = self.crls.get(cert.issuer.public_bytes())
            if crl is None:
                continue
            if cert.serial_number in crl.revoked_serials:
                return RevocationStatus("revoked")
            if crl.next_update is not None:
                if now >= crl.next_update:
                    return RevocationStatus(
                        f"unknown: CRL of {cert.issuer.rfc4514_string()} expired"
                    )
                fresh_until = min(fresh_until, crl.next_update.timestamp())
        return RevocationStatus("", fresh_until)


def deny_list_from_text(text: str, *, source: str) -> DenyList:
    serials: set[int] = set()
    fingerprints: set[str] = set()
    signed_parts: set[str] = set()
    spiffe_ids: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, value = line.partition(":")
        kind = kind.strip().lower()
        if kind == "spiffe":
            spiffe_ids.add(_spiffe_entry(value.strip(), f"{source}:{number}"))
            continue
        value = value.strip().lower().replace(":", "")
        try:
            if kind == "serial":
                serials.add(int(value, 16))
            elif kind in ("sha256", "tbs-sha256") and len(value) == 64:
                digests = fingerprints if kind == "sha256" else signed_parts
                digests.add(f"{int(value, 16):064x}")
            else:
                raise ValueError
        except ValueError:
            raise RevocationError(
                f"{source}:{number}: expected 'serial:<hex>', 'tbs-sha256:<64 hex digits>',"
                " 'sha256:<64 hex digits>' or 'spiffe:spiffe://<trust domain>/<path>'"
            ) from None
    return DenyList(
        frozenset(serials), frozenset(fingerprints), frozenset(signed_parts), frozenset(spiffe_ids)
    )


def _spiffe_entry(value: str, where: str) -> str:
    try:
        spiffe_trust_domain(value)
    except SpiffeIdError as exc:
        raise RevocationError(f"{where}: {value!r} is not a SPIFFE ID: {exc}") from None
    problem = workload_id_problem(value)
    if problem:
        raise RevocationError(f"{where}: {value!r} {problem}; deny its workloads one by one")
    return value


def _uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def _tbs_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.tbs_certificate_bytes).hexdigest()


def _crl_from_file(path: Path, issuers: TrustStore) -> tuple[bytes, _Crl]:
    data = path.read_bytes()
    try:
        crl = (
            x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
        )
    except ValueError:
        raise RevocationError(f"{path}: not a PEM or DER CRL") from None
    issuer = next((c for c in issuers.issuer_certificates() if c.subject == crl.issuer), None)
    if issuer is None:
        raise RevocationError(
            f"{path}: issued by {crl.issuer.rfc4514_string()}, not in the trust bundle"
        )
    if not _signature_valid(crl, issuer.public_key()):
        raise RevocationError(f"{path}: signature does not verify with its issuer's key")
    revoked = frozenset(entry.serial_number for entry in crl)
    return crl.issuer.public_bytes(), _Crl(
        revoked, crl.next_update_utc, crl.issuer.rfc4514_string()
    )


def _signature_valid(crl: x509.CertificateRevocationList, key: object) -> bool:
    try:
        return crl.is_signature_valid(key)  # type: ignore[arg-type]
    except (TypeError, ValueError, InvalidSignature):
        return False


class RevocationSource:
    """Loads revocation files and reloads them when their stat signature changes."""

    def __init__(
        self, crl_files: Sequence[Path], deny_list: Path | None, issuers: TrustStore
    ) -> None:
        self._crl_files = tuple(crl_files)
        self._deny_list = deny_list
        self.issuers = issuers
        self._signature: tuple[object, ...] = ()
        self.data = RevocationData()

    def load(self) -> None:
        """Load everything now; raises RevocationError (start-up turns it into a ConfigError)."""
        signature = self._stat_signature()
        crls = dict(_crl_from_file(path, self.issuers) for path in self._crl_files)
        deny = DenyList()
        if self._deny_list is not None and self._deny_list.exists():
            deny = deny_list_from_text(self._deny_list.read_text(), source=str(self._deny_list))
        self.data = RevocationData(crls, deny)
        self._signature = signature

    def reload_if_changed(self) -> bool:
        """Reload when a file changed; keep the old data (and log) when the new one is bad."""
        if self._stat_signature() == self._signature:
            return False
        try:
            self.load()
        except (RevocationError, OSError) as exc:
            log.error("revocation reload failed, keeping previous data: %s", exc)
            self._signature = self._stat_signature()
            return False
        log.info("revocation data reloaded")
        return True

    def _stat_signature(self) -> tuple[object, ...]:
        paths = [*self._crl_files, *([self._deny_list] if self._deny_list else [])]
        return tuple(_stat(path) for path in paths)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def append_deny_entry(
    path: Path,
    *,
    serial: str | None = None,
    sha256: str | None = None,
    cert_file: Path | None = None,
    spiffe_id: str | None = None,
    comment: str = "",
) -> str:
    """Validate one entry and append it to the deny list (created if absent); return the entry.

    Written with a single O_APPEND write, so replicas polling the file never read
    half an entry.
    """
    if cert_file is not None:
        # The signed part, not the whole DER: a re-encoded signature must not escape it.
        entry = "tbs-sha256:" + _tbs_sha256(x509.load_pem_x509_certificate(cert_file.read_bytes()))
    elif spiffe_id is not None:
        entry = f"spiffe:{spiffe_id}"
    else:
        entry = f"serial:{serial}" if serial is not None else f"sha256:{sha256}"
    deny_list_from_text(entry, source="the new entry")  # raises RevocationError when malformed
    line = entry + (f"  # {' '.join(comment.split())}" if comment else "") + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return entry
