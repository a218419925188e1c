"""A small X.509 toolkit for development PKI and tests: CAs, leaf certificates, CRLs.

Keys are ECDSA P-256: fast to generate and what most meshes issue today.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEV_FILES", "Issued", "issue_ca", "issue_crl", "issue_leaf", "write_dev_pki"]


@dataclass(frozen=True, slots=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "admitd dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(120) | 1 << 120)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def issue_ca(common_name: str, parent: Issued | None = None, *, days: int = 3650) -> Issued:
    """A root CA (no parent) or an intermediate CA signed by `parent`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC) - timedelta(minutes=5)
    issuer = parent.cert.subject if parent else _name(common_name)
    signer = parent.key if parent else key
    builder = (
        _builder(_name(common_name), issuer, key, now, now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    )
    if parent is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()),
            critical=False,
        )
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def issue_leaf(
    issuer: Issued,
    common_name: str,
    *,
    uris: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    client: bool = True,
    server: bool = False,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Issued:
    """An end-entity certificate; `client` adds the clientAuth EKU, `server` serverAuth."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    end = not_after or start + timedelta(days=365)
    usages = [
        u
        for u, on in (
            (ExtendedKeyUsageOID.CLIENT_AUTH, client),
            (ExtendedKeyUsageOID.SERVER_AUTH, server),
        )
        if on
    ]
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (
        _builder(_name(common_name), issuer.cert.subject, key, start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def issue_crl(issuer: Issued, revoked: list[x509.Certificate], *, days: int = 30) -> bytes:
    """A PEM CRL from `issuer` listing `revoked`."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now)
        .next_update(now + timedelta(days=days))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now)
            .build()
        )
    return builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


DEV_FILES = {
    "trust": "trust-bundle.pem",
    "server_cert": "server.pem",
    "server_key": "server.key",
    "crl": "client-ca.crl.pem",
    "deny_list": "denylist.txt",
}
DEV_CLIENTS = {
    "alice": ("spiffe://admitd.dev/user/alice",),
    "mallory": ("spiffe://admitd.dev/user/mallory",),
    "edge-proxy": ("spiffe://admitd.dev/proxy/edge",),
    "ops": ("spiffe://admitd.dev/admin/ops",),  # may call the admin API in `admitd dev`
}


def write_dev_pki(directory: Path) -> list[Path]:
    """Root CA -> client CA -> client certs; root -> server cert. Returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    root = issue_ca("admitd dev root CA")
    client_ca = issue_ca("admitd dev client CA", root)
    server = issue_leaf(
        root,
        "localhost",
        dns_names=("localhost",),
        ips=("127.0.0.1", "::1"),
        client=False,
        server=True,
    )
    written = [
        _write(directory / DEV_FILES["trust"], root.cert_pem + client_ca.cert_pem),
        _write(directory / "root-ca.pem", root.cert_pem),
        _write(directory / DEV_FILES["server_cert"], server.cert_pem + root.cert_pem),
        _write(directory / DEV_FILES["server_key"], server.key_pem, private=True),
        _write(directory / DEV_FILES["crl"], issue_crl(client_ca, [])),
        _write(
            directory / DEV_FILES["deny_list"], b"# serial:<hex> or sha256:<hex>, one per line\n"
        ),
    ]
    for name, uris in DEV_CLIENTS.items():
        leaf = issue_leaf(client_ca, name, uris=uris)
        written.append(_write(directory / f"{name}.pem", leaf.cert_pem + client_ca.cert_pem))
        written.append(_write(directory / f"{name}.key", leaf.key_pem, private=True))
    return written


def _write(path: Path, data: bytes, *, private: bool = False) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path
