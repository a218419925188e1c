"""Does a PEM private key belong to a PEM certificate? (admitd's own TLS identities)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from admitd.certs.decoding import CERTIFICATE_ERRORS

__all__ = ["key_pair_problem"]

_READ_ERRORS: tuple[type[Exception], ...] = (OSError, *CERTIFICATE_ERRORS)


def key_pair_problem(cert_file: Path, key_file: Path) -> str | None:
    """What is wrong with a PEM certificate and private key pair, or None if they match."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        cert_public = cert.public_key()
    except _READ_ERRORS as exc:
        return f"{cert_file} is not a readable PEM certificate ({_why(exc)})"
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except _READ_ERRORS as exc:
        return f"{key_file} is not a readable, unencrypted PEM private key ({_why(exc)})"
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != cert_public.public_bytes(*raw):
        return f"{key_file} is not the private key of {cert_file}"
    return None


def _why(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
