"""A test PKI: root -> client CA -> leaves of every kind the tests need, plus a foreign CA."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization

from admitd.pki import Issued, issue_ca, issue_crl, issue_leaf


def pem(issued: Issued, *chain: Issued) -> str:
    return "".join(i.cert_pem.decode() for i in (issued, *chain))


def url_pem(issued: Issued, *chain: Issued) -> str:
    """What Envoy puts into attributes.source.certificate / XFCC Cert=."""
    return quote(pem(issued, *chain), safe="")


@dataclass
class PkiSet:
    root: Issued
    client_ca: Issued
    foreign_root: Issued
    alice: Issued
    bob: Issued
    proxy: Issued
    expired: Issued
    not_yet_valid: Issued
    untrusted: Issued
    no_client_eku: Issued
    subject_only: Issued
    revoked: Issued
    server: Issued
    directory: Path

    @property
    def trust_bundle(self) -> Path:
        return self.directory / "trust-bundle.pem"

    @property
    def root_only_bundle(self) -> Path:
        return self.directory / "root-only.pem"

    @property
    def crl(self) -> Path:
        return self.directory / "client-ca.crl.pem"

    def write_leaf(self, name: str, issued: Issued, *chain: Issued) -> tuple[Path, Path]:
        cert, key = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        cert.write_text(pem(issued, *chain))
        key.write_bytes(issued.key_pem)
        return cert, key


def build_test_pki(directory: Path) -> PkiSet:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    root = issue_ca("test root CA")
    client_ca = issue_ca("test client CA", root)
    foreign = issue_ca("foreign root CA")
    leaf = lambda name, **kw: issue_leaf(client_ca, name, **kw)  # noqa: E731
    pki = PkiSet(
        root=root,
        client_ca=client_ca,
        foreign_root=foreign,
        alice=leaf(
            "alice", uris=("spiffe://test.example/user/alice",), dns_names=("alice.clients.test",)
        ),
        bob=leaf("bob", uris=("spiffe://test.example/user/bob",)),
        proxy=leaf("proxy", uris=("spiffe://test.example/proxy/edge",)),
        expired=leaf(
            "expired",
            uris=("spiffe://test.example/user/old",),
            not_before=now - timedelta(days=30),
            not_after=now - timedelta(days=1),
        ),
        not_yet_valid=leaf(
            "future",
            uris=("spiffe://test.example/user/future",),
            not_before=now + timedelta(days=1),
            not_after=now + timedelta(days=30),
        ),
        untrusted=issue_leaf(foreign, "eve", uris=("spiffe://test.example/user/alice",)),
        no_client_eku=leaf(
            "server-only", uris=("spiffe://test.example/user/srv",), client=False, server=True
        ),
        subject_only=leaf("batch-job"),
        revoked=leaf("revoked", uris=("spiffe://test.example/user/revoked",)),
        server=issue_leaf(
            root,
            "localhost",
            dns_names=("localhost",),
            ips=("127.0.0.1",),
            client=False,
            server=True,
        ),
        directory=directory,
    )
    pki.trust_bundle.write_bytes(root.cert_pem + client_ca.cert_pem)
    pki.root_only_bundle.write_bytes(root.cert_pem)
    pki.crl.write_bytes(issue_crl(client_ca, [pki.revoked.cert]))
    (directory / "root.pem").write_bytes(root.cert_pem)
    (directory / "server.pem").write_bytes(pki.server.cert_pem + root.cert_pem)
    (directory / "server.key").write_bytes(
        pki.server.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki
