"""The CAs that issue client certificates, loaded from a PEM bundle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from admitd.errors import ConfigError

__all__ = ["TrustStore", "trust_store_from_files"]


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Self-signed roots are trust anchors; other CAs in the bundle only help build paths.

    Keeping intermediates out of the anchor set means a chain must still reach a
    root the operator trusts, as OpenSSL and Envoy require without PARTIAL_CHAIN.
    """

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]

    def issuer_certificates(self) -> tuple[x509.Certificate, ...]:
        return self.roots + self.intermediates

    def issuer_names(self) -> tuple[str, ...]:
        """Each CA's common name (else its whole subject), for people: which CA issues
        the certificates this bundle accepts. Distinct, in bundle order."""
        names = (_display_name(c.subject) for c in self.issuer_certificates())
        return tuple(dict.fromkeys(names))


def _display_name(subject: x509.Name) -> str:
    common = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = common[0].value if common else subject.rfc4514_string()
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def trust_store_from_files(paths: list[Path], *, config_file: str, key: str) -> TrustStore:
    """Load one or more PEM bundles; errors name the config file, key and fix."""
    roots: list[x509.Certificate] = []
    intermediates: list[x509.Certificate] = []
    for path in paths:
        for cert in _load_bundle(path, config_file=config_file, key=key):
            (roots if _is_self_signed(cert) else intermediates).append(cert)
    if not roots:
        raise ConfigError(
            "the trust bundle holds no self-signed root CA",
            file=config_file,
            key=key,
            fix="add the root CA certificate that your client certificates chain to",
        )
    return TrustStore(tuple(roots), tuple(intermediates))


def _load_bundle(path: Path, *, config_file: str, key: str) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read trust bundle {path}: {exc.strerror}",
            file=config_file,
            key=key,
            fix="point it at a readable PEM file of CA certificates",
        ) from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(
            f"{path} is not a PEM bundle of certificates",
            file=config_file,
            key=key,
            fix="use PEM ('-----BEGIN CERTIFICATE-----'), one or more CA certificates",
        ) from None


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
