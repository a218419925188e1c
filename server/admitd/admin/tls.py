"""The admin API's own TLS certificate: it must be current, and say so before it lapses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from admitd.certs.decoding import CERTIFICATE_ERRORS

__all__ = ["EXPIRY_WARNING", "CertificateValidity", "server_certificate_validity"]

EXPIRY_WARNING = timedelta(days=30)
_UNREADABLE: tuple[type[Exception], ...] = (OSError, *CERTIFICATE_ERRORS)


@dataclass(frozen=True, slots=True)
class CertificateValidity:
    """`error`: the certificate cannot serve now; `warning`: it soon cannot. "" when fine."""

    error: str = ""
    warning: str = ""


def server_certificate_validity(cert_file: Path, now: datetime) -> CertificateValidity:
    """Whether the first certificate of `cert_file` is within its validity period at `now`.

    (That the file parses and matches its key is checked when the config loads.)
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    except _UNREADABLE as exc:
        return CertificateValidity(error=f"{cert_file} cannot be read as a certificate: {exc}")
    if now >= not_after:
        return CertificateValidity(error=f"{cert_file} expired at {not_after.isoformat()}")
    if now < not_before:
        return CertificateValidity(error=f"{cert_file} is valid only from {not_before.isoformat()}")
    if not_after - now < EXPIRY_WARNING:
        return CertificateValidity(warning=f"{cert_file} expires at {not_after.isoformat()}")
    return CertificateValidity()
