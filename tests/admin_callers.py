"""The admin server's caller check for tests: the Check path's verifier over a trust bundle."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from admitd.admin.caller import PeerVerdict
from admitd.certs.client import ClientCertificates
from admitd.certs.revocation import RevocationSource
from admitd.certs.truststore import trust_store_from_files
from admitd.certs.verify import CertificateVerifier


def caller_check(
    trust_bundle: Path, *, crl_files: Sequence[Path] = (), deny_list: Path | None = None
) -> tuple[PeerVerdict, ClientCertificates, RevocationSource]:
    """Wired as `runtime_from_config` wires it; call `.invalidate()` after a reload."""
    trust = trust_store_from_files([trust_bundle], config_file="test", key="tls.trust_bundle")
    revocation = RevocationSource(crl_files, deny_list, trust)
    revocation.load()
    verifier = CertificateVerifier(trust, lambda: revocation.data, max_chain_depth=8)
    certificates = ClientCertificates(verifier.verify, (), cache_size=100, max_chain_length=8)
    return certificates.verdict_for_pem, certificates, revocation
