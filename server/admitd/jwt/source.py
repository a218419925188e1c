"""The JWT identity source: `Authorization: Bearer <JWT>` from a configured issuer -> `User`.

Verified tokens are cached by the SHA-256 of the token until their `exp`, in a bounded LRU,
so a repeated token costs no signature check and no I/O. The token itself is never logged
and never kept: only its digest.

A user revoked with `revoke-user` has their tokens issued before that time refused: the
session store's record is read per user (cached by the store, dropped by its pub/sub
invalidation feed, so a repeated token costs no Redis call while the feed is up); when the
store cannot answer, the token is refused with a 503 (fail closed).

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
from admitd.errors import StoreUnavailable
from admitd.identity import NOBODY, Found
from admitd.jwt.claims import ClaimsError, user_from_claims
from admitd.jwt.config import JwtConfig
from admitd.jwt.keys import Fetch, IssuerKeys, http_fetch
from admitd.jwt.metrics import IdpMetrics
from admitd.jwt.revocation import RevocationTimes, is_revoked, issued_at
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
_Entry = tuple[User, float, float | None]  # a verified token's user, its exp, its iat


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

    def __init__(
        self,
        config: JwtConfig,
        fetch: Fetch | None = None,
        revocations: RevocationTimes | None = None,
        metrics: IdpMetrics | None = None,
    ) -> None:
        self.config = config
        self.revocations = revocations  # None: no store records revoke-user (tests only)
        self._http: aiohttp.ClientSession | None = None
        fetch = fetch or http_fetch(self._session, _HTTP_TIMEOUT)
        self.keys: Mapping[str, IssuerKeys] = {
            issuer.issuer: IssuerKeys(
                issuer,
                fetch,
                min_interval=config.refresh_interval_seconds,
                wait=config.fetch_timeout_seconds,
                metrics=metrics,
            )
            for issuer in config.issuers
        }
        self.verifier = JwtVerifier(self.keys)
        # digest -> (user, exp, iat): iat is kept to judge a later revocation of the user.
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
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
        entry = self._cached(digest, now)
        if entry is None:
            verified = await self._verified(token, digest, now)
            if isinstance(verified, UserLookup):
                return Found(verified)
            entry = verified
        return Found(await self._unless_revoked(entry[0], entry[2]))

    async def _verified(self, token: str, digest: str, now: float) -> _Entry | UserLookup:
        self.verifications += 1
        result = await self.verifier.verify(token, now)
        if isinstance(result, Refused):
            state = _STATES.get(result.problem, UserState.UNKNOWN)
            return UserLookup.of(state, CARRIER, _detail(result))
        try:
            user = user_from_claims(result.claims, result.issuer, digest[:16])
        except ClaimsError as exc:
            return UserLookup.of(UserState.UNKNOWN, CARRIER, f"jwt: {exc}")
        entry = (user, result.expires_at, issued_at(result.claims))
        self._remember(digest, entry)
        return entry

    async def _unless_revoked(self, user: User, issued: float | None) -> UserLookup:
        if self.revocations is None:
            return UserLookup(UserState.ACTIVE, user, CARRIER)
        try:
            revoked_at = await self.revocations.revoked_at(user.user_id)
        except StoreUnavailable:
            # Fail closed: without the store we cannot know the user was not revoked.
            return UserLookup.of(UserState.UNAVAILABLE, CARRIER, "jwt: revocation unknown")
        if is_revoked(issued, revoked_at):
            return UserLookup.of(UserState.UNKNOWN, CARRIER, "jwt: revoked")
        return UserLookup(UserState.ACTIVE, user, CARRIER)

    async def flush_last_seen(self) -> None:
        return None  # a token has no last-seen time to write

    def _cached(self, digest: str, now: float) -> _Entry | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        if now >= entry[1]:
            del self._cache[digest]  # re-verified: the leeway may still admit it, briefly
            return None
        self._cache.move_to_end(digest)
        return entry

    def _remember(self, digest: str, entry: _Entry) -> None:
        self._cache[digest] = entry
        if len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http


def _detail(refused: Refused) -> str:
    return f"jwt: {refused.problem.value}" + (f" ({refused.detail})" if refused.detail else "")
