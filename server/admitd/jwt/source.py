"""The JWT identity source: `Authorization: Bearer <JWT>` from a configured issuer -> `User`.

Verified tokens are cached by the SHA-256 of the token until their `exp`, in a bounded LRU,
so a repeated token costs no signature check and no I/O. The token itself is never logged
and never kept: only its digest.

The upstream keeps the JWT (`carries_own_bearer` is False): unlike an admitd session token,
it is the upstream's own API credential too, scoped by its `aud` and `exp`, and it is what
oauth2-proxy and Envoy's jwt_authn forward by default.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping

import aiohttp

from admitd.core.context import RequestContext
from admitd.core.identity import User, UserLookup, UserState
from admitd.identity import NOBODY, Found
from admitd.jwt.claims import ClaimsError, user_from_claims
from admitd.jwt.config import JwtConfig
from admitd.jwt.keys import Fetch, IssuerKeys, http_fetch
from admitd.jwt.verifier import JwtVerifier, Refused, TokenProblem

__all__ = ["CARRIER", "JwtIdentity", "jwt_from_request"]

CARRIER = "jwt"
# Three base64url segments, the header a JSON object ("eyJ" is base64url for '{"').
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MAX_TOKEN = 16_384
# A fetch may outlive the Check that started it (that one waits `fetch_timeout_seconds`):
# a slow IdP's keys still arrive for the next Check.
_HTTP_TIMEOUT = 10.0
_STATES = {
    TokenProblem.MALFORMED: UserState.MALFORMED,
    TokenProblem.EXPIRED: UserState.EXPIRED,
    TokenProblem.KEYS_UNAVAILABLE: UserState.UNAVAILABLE,
}


def jwt_from_request(ctx: RequestContext) -> str:
    """The JWT in `Authorization: Bearer`, or "" when the bearer token is not shaped like one."""
    scheme, _, credentials = ctx.header("authorization").partition(" ")
    token = credentials.strip()
    if scheme.lower() != "bearer" or len(token) > _MAX_TOKEN:
        return ""
    return token if _JWT_SHAPE.fullmatch(token) else ""


class JwtIdentity:
    """Verifies JWT bearer tokens; owns the HTTP session its JWKS fetches use."""

    cookie_name = ""  # a bearer-only source

    def __init__(self, config: JwtConfig, fetch: Fetch | None = None) -> None:
        self.config = config
        self._http: aiohttp.ClientSession | None = None
        fetch = fetch or http_fetch(self._session, _HTTP_TIMEOUT)
        self.keys: Mapping[str, IssuerKeys] = {
            issuer.issuer: IssuerKeys(
                issuer,
                fetch,
                min_interval=config.refresh_interval_seconds,
                wait=config.fetch_timeout_seconds,
            )
            for issuer in config.issuers
        }
        self.verifier = JwtVerifier(self.keys)
        self._cache: OrderedDict[str, tuple[User, float]] = OrderedDict()
        self.verifications = 0  # signature checks run (a cache hit runs none)

    def carries_own_bearer(self, ctx: RequestContext) -> bool:
        return False  # the upstream keeps the JWT: see the module docstring

    async def start(self) -> None:
        """Fetch every issuer's keys; an unreachable one is logged and retried on demand."""
        for keys in self.keys.values():
            await keys.refresh(force=True)

    async def close(self) -> None:
        for keys in self.keys.values():
            await keys.close()
        if self._http is not None:
            await self._http.close()

    async def lookup(self, ctx: RequestContext, now: float) -> Found:
        token = jwt_from_request(ctx)
        if not token:
            return NOBODY
        digest = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cached(digest, now)
        if cached is not None:
            return Found(UserLookup(UserState.ACTIVE, cached, CARRIER))
        self.verifications += 1
        result = await self.verifier.verify(token, now)
        if isinstance(result, Refused):
            state = _STATES.get(result.problem, UserState.UNKNOWN)
            return Found(UserLookup.of(state, CARRIER, _detail(result)))
        try:
            user = user_from_claims(result.claims, result.issuer, digest[:16])
        except ClaimsError as exc:
            return Found(UserLookup.of(UserState.UNKNOWN, CARRIER, f"jwt: {exc}"))
        self._remember(digest, user, result.expires_at)
        return Found(UserLookup(UserState.ACTIVE, user, CARRIER))

    async def flush_last_seen(self) -> None:
        return None  # a token has no last-seen time to write

    def _cached(self, digest: str, now: float) -> User | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        user, expires_at = entry
        if now >= expires_at:
            del self._cache[digest]  # re-verified: the leeway may still admit it, briefly
            return None
        self._cache.move_to_end(digest)
        return user

    def _remember(self, digest: str, user: User, expires_at: float) -> None:
        self._cache[digest] = (user, expires_at)
        if len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http


def _detail(refused: Refused) -> str:
    return f"jwt: {refused.problem.value}" + (f" ({refused.detail})" if refused.detail else "")
