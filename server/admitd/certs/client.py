"""Turn a request into CertificateFacts: pick the certificate source, verify, cache."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import datetime

from cryptography import x509

from admitd.certs.cache import VerdictCache
from admitd.certs.callers import CheckCaller
from admitd.certs.expiring import EXPIRING_WITHIN, ExpiringClients
from admitd.certs.forwarding import (
    ForwardedCertificateError,
    ForwardHeader,
    TrustedProxy,
    chain_from_forwarded,
)
from admitd.certs.mesh import MESH_SOURCE, XFCC, MeshVerifier
from admitd.certs.pem import CertificateParseError, certificates_from_pem
from admitd.certs.verify import Verdict, failed_verdict
from admitd.core.context import RequestContext
from admitd.core.identity import CertificateFacts, CertificateProblem

__all__ = ["ClientCertificates"]

_HEADER_NAMES: dict[ForwardHeader, tuple[str, str]] = {
    ForwardHeader.XFCC: ("x-forwarded-client-cert", ""),
    ForwardHeader.X_CLIENT_CERT: ("x-client-cert", ""),
    ForwardHeader.CLIENT_CERT: ("client-cert", "client-cert-chain"),
}

Verify = Callable[[Sequence[x509.Certificate], datetime], Verdict]


class ClientCertificates:
    """The certificate facts of a request; the hot path is one dict lookup per request."""

    def __init__(
        self,
        verify: Verify,
        proxies: Sequence[TrustedProxy],
        *,
        cache_size: int,
        max_chain_length: int,
        mesh: MeshVerifier | None = None,
        expiring: ExpiringClients | None = None,
    ) -> None:
        self._verify = verify
        self._expiring = expiring
        self._proxies = tuple(proxies)
        self._mesh = mesh
        self._cache = VerdictCache(cache_size)
        self._max_chain = max_chain_length

    def invalidate(self) -> None:
        """Forget every cached verdict (revocation data changed)."""
        self._cache.clear()

    def facts_for(self, ctx: RequestContext, now: datetime) -> CertificateFacts:
        if self._mesh is not None:
            vouching = self._mesh.caller_for(ctx.caller)
            if vouching is not None:
                return self._mesh_facts(ctx, vouching, self._mesh, now)
        by_call = self._proxy_by_call(ctx)
        if by_call is not None:
            # The asking Envoy is the proxy: the peer certificate it saw is its client's
            # (the user's), so no XFCC element is skipped as "the proxy's own".
            return self._forwarded_facts(ctx, by_call, None, now)
        if self._mesh is not None and self._mesh.settings.unnamed_callers == "refuse":
            return _UNNAMED_CALLER
        peer = self._peer_verdict(ctx.peer_certificate, now) if ctx.peer_certificate else None
        proxy = self._trusted_proxy(ctx, peer)
        if proxy is None:
            if peer is None:
                return CertificateFacts.missing()
            return _facts(peer, "peer", "")
        return self._forwarded_facts(ctx, proxy, peer, now)

    def verdict_for_pem(self, leaf: bytes, chain: Sequence[bytes], now: datetime) -> Verdict:
        """The verdict for a TLS peer's PEM leaf and further PEM certificates (the admin
        API's mTLS caller): the same verifier, revocation data and cache as a Check."""
        key = ("tls-peer", leaf, tuple(chain))
        return self._cached(key, now, lambda: self._parse_pem_blocks(leaf, chain))

    def _peer_verdict(self, raw: str, now: datetime) -> Verdict:
        return self._cached(("peer", raw), now, lambda: self._parse_pem(raw))

    def _trusted_proxy(self, ctx: RequestContext, peer: Verdict | None) -> TrustedProxy | None:
        names: set[str] = set()
        if peer is not None and peer.identity is not None:
            names = {*peer.identity.uris, *peer.identity.dns_names, peer.identity.subject}
        for proxy in self._proxies:
            if proxy.principals & names or proxy.has_address(ctx.source_address):
                return proxy
        return None

    def _proxy_by_call(self, ctx: RequestContext) -> TrustedProxy | None:
        if not ctx.caller.transport:
            return None
        for proxy in self._proxies:
            if proxy.caller is not None and proxy.caller.recognises(ctx.caller):
                return proxy
        return None

    def _forwarded_facts(
        self, ctx: RequestContext, proxy: TrustedProxy, peer: Verdict | None, now: datetime
    ) -> CertificateFacts:
        primary, secondary = _HEADER_NAMES[proxy.header]
        values = (ctx.header(primary), ctx.header(secondary) if secondary else "")
        if not values[0]:
            return CertificateFacts.missing(proxy.header.value, proxy.name)
        peer_fp = peer.identity.fingerprint_sha256 if peer and peer.identity else ""
        verdict = self._cached(
            (proxy.header.value, values, peer_fp),
            now,
            lambda: self._parse_forwarded(proxy, values, peer_fp),
        )
        return _facts(verdict, proxy.header.value, proxy.name)

    def _mesh_facts(
        self, ctx: RequestContext, caller: CheckCaller, mesh: MeshVerifier, now: datetime
    ) -> CertificateFacts:
        """The identity the asking Envoy verified; its own deny list and checks still apply."""
        values = (ctx.envoy_principal, ctx.peer_certificate, ctx.header(XFCC))
        verdict = self._cached((MESH_SOURCE, *values), now, lambda: mesh.verdict(*values, now))
        return _facts(verdict, MESH_SOURCE, caller.name)

    def _cached(
        self, key: Hashable, now: datetime, chain: Callable[[], list[x509.Certificate] | Verdict]
    ) -> Verdict:
        timestamp = now.timestamp()
        verdict = self._cache.get(key, timestamp)
        if verdict is None:
            parsed = chain()
            verdict = parsed if isinstance(parsed, Verdict) else self._verify(parsed, now)
            self._cache.put(key, verdict)
        if verdict.leaf_not_after - timestamp < EXPIRING_WITHIN:  # one compare for the rest
            self._note_expiring(verdict, timestamp)
        return verdict

    def _note_expiring(self, verdict: Verdict, timestamp: float) -> None:
        identity = verdict.identity  # set whenever leaf_not_after is (an accepted leaf)
        if self._expiring is not None and identity is not None:
            fingerprint = identity.fingerprint_sha256
            self._expiring.saw(fingerprint, verdict.issuer, verdict.leaf_not_after, timestamp)

    def _parse_pem(self, raw: str) -> list[x509.Certificate] | Verdict:
        try:
            return certificates_from_pem(raw, max_count=self._max_chain)
        except CertificateParseError as exc:
            return _parse_failure(str(exc), too_long=exc.too_long)

    def _parse_pem_blocks(
        self, leaf: bytes, chain: Sequence[bytes]
    ) -> list[x509.Certificate] | Verdict:
        text = b"\n".join((leaf, *chain)).decode("ascii", errors="replace")
        try:
            return certificates_from_pem(text, max_count=self._max_chain, url_encoded=False)
        except CertificateParseError as exc:
            return _parse_failure(str(exc), too_long=exc.too_long)

    def _parse_forwarded(
        self, proxy: TrustedProxy, values: tuple[str, str], peer_fp: str
    ) -> list[x509.Certificate] | Verdict:
        try:
            return chain_from_forwarded(
                proxy.header, values, peer_fingerprint=peer_fp, max_count=self._max_chain
            )
        except ForwardedCertificateError as exc:
            return _parse_failure(str(exc), too_long=exc.too_long)


_UNNAMED_CALLER = CertificateFacts(
    None,
    CertificateProblem.MISSING,
    "the Check came from a caller that mesh.callers does not name (mesh.unnamed_callers)",
    MESH_SOURCE,
)


def _parse_failure(detail: str, *, too_long: bool) -> Verdict:
    problem = CertificateProblem.CHAIN_TOO_LONG if too_long else CertificateProblem.MALFORMED
    return failed_verdict(problem, detail)


def _facts(verdict: Verdict, source: str, proxy: str) -> CertificateFacts:
    return CertificateFacts(verdict.identity, verdict.problem, verdict.detail, source, proxy)
