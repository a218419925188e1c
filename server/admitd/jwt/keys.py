"""Each issuer's signing keys (JWKS), fetched with aiohttp at start and on an unknown `kid`.

A fetch is single-flight (concurrent Checks that miss a `kid` share one request),
rate-limited (at most one per `refresh_interval_seconds` per issuer: a stream of tokens
with made-up `kid`s cannot make admitd hammer the IdP), and a Check waits for it at most
`fetch_timeout_seconds`; the fetch itself goes on, so the next Check finds the keys.
Each fetch is counted in `admitd_jwks_fetches_total{issuer, outcome}` (jwt/metrics.py), and so
is a fetch the rate limit held back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from admitd.jwt.config import IssuerConfig
from admitd.jwt.metrics import FetchOutcome, IdpMetrics

__all__ = ["Fetch", "IssuerKeys", "KeyFetchError", "http_fetch"]

log = logging.getLogger(__name__)
_DISCOVERY = "/.well-known/openid-configuration"
_MAX_DOCUMENT = 1 << 20  # a JWKS or discovery document larger than 1 MiB is not one

Fetch = Callable[[str], Awaitable[object]]


class KeyFetchError(Exception):
    """The JWKS (or the discovery document naming it) could not be fetched or read."""


def http_fetch(session_factory: Callable[[], aiohttp.ClientSession], timeout: float) -> Fetch:
    """A JSON GET over the given aiohttp session; every failure is a KeyFetchError."""

    async def fetch(url: str) -> object:
        try:
            async with session_factory().get(
                url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
            ) as response:
                if response.status != 200:
                    raise KeyFetchError(f"{url}: HTTP {response.status}")
                body = await response.content.read(_MAX_DOCUMENT + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KeyFetchError(f"{url}: {type(exc).__name__}") from None
        if len(body) > _MAX_DOCUMENT:
            raise KeyFetchError(f"{url}: document too large")
        try:
            return json.loads(body)
        except ValueError:
            raise KeyFetchError(f"{url}: not JSON") from None

    return fetch


class IssuerKeys:
    """One issuer's key set; `None` until a fetch has succeeded."""

    def __init__(
        self,
        issuer: IssuerConfig,
        fetch: Fetch,
        *,
        min_interval: float,
        wait: float,
        clock: Callable[[], float] = time.monotonic,
        metrics: IdpMetrics | None = None,
    ) -> None:
        self.issuer = issuer
        self.metrics = metrics or IdpMetrics()
        self.keys: KeySet | None = None
        self._fetch = fetch
        self._min_interval = min_interval
        self._wait = wait
        self._clock = clock
        self._jwks_uri = issuer.jwks_uri
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0  # completed fetch attempts (tests and metrics read it)

    def has_kid(self, kid: str | None) -> bool:
        if self.keys is None:
            return False
        if kid is None:  # RFC 7515 §4.1.4: `kid` is optional when there is one key
            return len(self.keys.keys) == 1
        return any(key.kid == kid for key in self.keys)

    async def refresh(self, *, force: bool = False) -> None:
        """Fetch unless an on-demand fetch ran less than `min_interval` ago (`force`: the fetch at
        start, which does not count, so a key rotated just after start is still picked up);
        wait for it at most `wait` seconds."""
        now = self._clock()
        recent = self._last_attempt is not None and now - self._last_attempt < self._min_interval
        if self._inflight is None and (force or not recent):
            if not force:
                self._last_attempt = now
            self._inflight = asyncio.get_running_loop().create_task(self._run())
        elif self._inflight is None:
            self.metrics.jwks_fetch(self.issuer.issuer, FetchOutcome.RATE_LIMITED)
        if self._inflight is not None:
            # shield: a Check that stops waiting does not cancel the fetch the next one needs.
            await asyncio.wait([asyncio.shield(self._inflight)], timeout=self._wait)

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()

    async def _run(self) -> None:
        try:
            self.keys = await self._load()
            self.metrics.jwks_fetch(self.issuer.issuer, FetchOutcome.OK)
        except KeyFetchError as exc:
            # Keys already held stay in use: a flaky IdP does not take verified tokens down.
            log.warning("jwks for %s unavailable: %s", self.issuer.issuer, exc)
            self.metrics.jwks_fetch(self.issuer.issuer, FetchOutcome.ERROR)
        finally:
            self.fetches += 1
            self._inflight = None

    async def _load(self) -> KeySet:
        uri = self._jwks_uri or await self._discover()
        document = await self._fetch(uri)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise KeyFetchError(f"{uri}: not a JWKS")
        try:
            keys = KeySet.import_key_set({"keys": document["keys"]})
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise KeyFetchError(f"{uri}: {type(exc).__name__}") from None
        self._jwks_uri = uri
        return keys

    async def _discover(self) -> str:
        # OpenID Connect Discovery 1.0 §4: the metadata lives under the issuer URL.
        url = self.issuer.issuer.rstrip("/") + _DISCOVERY
        metadata = await self._fetch(url)
        if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer.issuer:
            raise KeyFetchError(f"{url}: metadata for another issuer")
        uri = metadata.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
            raise KeyFetchError(f"{url}: no jwks_uri")
        return uri
