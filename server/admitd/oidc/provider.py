"""The OpenID Provider as admitd's client sees it: discovery (cached), code exchange, ID token.

Discovery (OpenID Connect Discovery 1.0 §4) is fetched once and kept; a failed fetch is
retried by the next sign-in, never more often than `_RETRY_SECONDS`. The ID token is
verified by the JWT verifier (joserfc: signature from the JWKS, allowed algorithm, `iss`,
`aud`, `exp` with leeway), then by the checks OpenID Connect Core §3.1.3.7 adds for an
ID token: `iat`, `azp`, `nonce`.

Discovery is counted in `admitd_oidc_discovery_total`, the JWKS fetches with the JWT issuers'
in `admitd_jwks_fetches_total`; `metrics.callback()` is for the callback handler.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote

import aiohttp

from admitd.jwt.keys import Fetch, IssuerKeys, KeyFetchError, http_fetch
from admitd.jwt.metrics import DiscoveryOutcome, IdpMetrics
from admitd.jwt.verifier import JwtVerifier, Refused
from admitd.oidc.config import OidcConfig

__all__ = [
    "CallbackRefused",
    "HttpClient",
    "OidcProvider",
    "ProviderMetadata",
    "ProviderUnavailable",
]

_DISCOVERY = "/.well-known/openid-configuration"
_RETRY_SECONDS = 5.0
_MAX_REPLY = 1 << 20


class ProviderUnavailable(Exception):
    """The IdP could not be reached or answered nonsense (the browser gets a 503 page)."""


class CallbackRefused(Exception):
    """A callback that must not create a session (the browser gets a 400 page).

    The message is for the log: it names the check, never a token or a code."""


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str = ""


class HttpClient:
    """One aiohttp client session, opened on first use (it needs the running loop)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class OidcProvider:
    """One configured IdP; `session_factory` gives the aiohttp client session to use."""

    def __init__(
        self,
        config: OidcConfig,
        session_factory: Callable[[], aiohttp.ClientSession],
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: IdpMetrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or IdpMetrics()
        self._session_factory = session_factory
        self._fetch: Fetch = http_fetch(session_factory, config.fetch_timeout_seconds)
        self._clock = clock
        self._metadata: ProviderMetadata | None = None
        self._keys: IssuerKeys | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()

    async def metadata(self) -> ProviderMetadata:
        """The discovery document (fetched once); ProviderUnavailable when it cannot be had."""
        if self._metadata is not None:
            return self._metadata
        async with self._lock:  # single flight: a burst of sign-ins fetches it once
            if self._metadata is None:
                self._metadata = await self._discover()
        return self._metadata

    async def exchange(self, code: str, verifier: str) -> str:
        """Redeem the code (RFC 6749 §4.1.3 with PKCE's `code_verifier`) for the ID token.
        CallbackRefused when the IdP refuses it (a reused or forged code)."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": verifier,
        }
        status, body = await self._post(meta.token_endpoint, form)
        if status in (400, 401):
            raise CallbackRefused(f"token endpoint refused the code: {_oauth_error(body)}")
        token = body.get("id_token") if status == 200 else None
        if not isinstance(token, str):
            raise ProviderUnavailable(f"token endpoint answered HTTP {status} without an ID token")
        return token

    async def verify_id_token(self, token: str, nonce: str, now: float) -> Mapping[str, object]:
        """The ID token's claims when every check passes; CallbackRefused otherwise."""
        keys = await self._issuer_keys()
        verified = await JwtVerifier({self.config.issuer: keys}).verify(token, now)
        if isinstance(verified, Refused):
            raise CallbackRefused(f"ID token refused: {verified.problem.value} {verified.detail}")
        claims = verified.claims
        _check_id_token(claims, self.config, nonce, now)
        return claims

    async def _issuer_keys(self) -> IssuerKeys:
        if self._keys is None:
            meta = await self.metadata()
            issuer = replace(self.config.claims, jwks_uri=meta.jwks_uri)
            wait = self.config.fetch_timeout_seconds
            self._keys = IssuerKeys(
                issuer, self._fetch, min_interval=30.0, wait=wait, metrics=self.metrics
            )
            await self._keys.refresh(force=True)
        return self._keys

    async def _discover(self) -> ProviderMetadata:
        now = self._clock()
        if self._failed_at is not None and now - self._failed_at < _RETRY_SECONDS:
            raise ProviderUnavailable("discovery failed moments ago")
        try:
            document = await self._fetch(self.config.issuer.rstrip("/") + _DISCOVERY)
            metadata = _metadata_from(document, self.config.issuer)
        except (KeyFetchError, ProviderUnavailable) as exc:
            self._failed_at = now
            self.metrics.discovery(DiscoveryOutcome.ERROR)
            raise ProviderUnavailable(f"discovery: {exc}") from None
        self.metrics.discovery(DiscoveryOutcome.OK)
        return metadata

    async def _post(self, url: str, form: Mapping[str, str]) -> tuple[int, dict[str, object]]:
        # client_secret_basic (RFC 6749 §2.3.1): id and secret form-urlencoded, then Basic.
        pair = (
            f"{quote(self.config.client_id, safe='')}:{quote(self.config.client_secret, safe='')}"
        )
        headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        timeout = aiohttp.ClientTimeout(total=self.config.fetch_timeout_seconds)
        try:
            async with self._session_factory().post(
                url, data=dict(form), headers=headers, timeout=timeout, allow_redirects=False
            ) as reply:
                raw = await reply.content.read(_MAX_REPLY)
                status = reply.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(f"token endpoint: {type(exc).__name__}") from None
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        return status, body if isinstance(body, dict) else {}


def _metadata_from(document: object, issuer: str) -> ProviderMetadata:
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        # Discovery §4.3: the metadata must name exactly the issuer it was fetched for.
        raise ProviderUnavailable("metadata for another issuer")
    urls = {}
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "end_session_endpoint"):
        value = document.get(key, "")
        if not isinstance(value, str) or (value and not value.startswith(("https://", "http://"))):
            raise ProviderUnavailable(f"metadata: bad {key}")
        urls[key] = value
    if not all(urls[k] for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")):
        raise ProviderUnavailable("metadata: an endpoint is missing")
    return ProviderMetadata(issuer=issuer, **urls)


def _check_id_token(
    claims: Mapping[str, object], config: OidcConfig, nonce: str, now: float
) -> None:
    """OpenID Connect Core §3.1.3.7 beyond what the JWT verifier checked."""
    leeway = config.claims.leeway_seconds
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float) or iat > now + leeway:
        raise CallbackRefused("ID token: iat missing or in the future")
    aud = claims.get("aud")
    azp = claims.get("azp")
    several = isinstance(aud, list) and len(aud) > 1
    if (several or azp is not None) and azp != config.client_id:
        raise CallbackRefused("ID token: azp is not this client")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise CallbackRefused("ID token: nonce mismatch")


def _oauth_error(body: Mapping[str, object]) -> str:
    error = body.get("error")
    return error[:64] if isinstance(error, str) else "no error code"
