"""SessionStore on Redis, with a small in-process cache kept honest by pub/sub.

One Check costs at most one round trip (a pipeline of HGETALL + HKEYS), and
usually none: sessions are cached for `cache_ttl` seconds, and every write
publishes the user's tag on INVALIDATION_CHANNEL so each replica drops its copy
at once. While the invalidation subscription is down, nothing is served from
the cache: a revocation must never be missed. A user's revocation time (read for
their IdP tokens) is cached the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any, cast

import redis.asyncio as redis

from admitd.errors import StoreUnavailable
from admitd.sessions.keys import (
    INVALIDATION_CHANNEL,
    REVOKED_AT,
    RISK_STATE,
    session_key,
    user_factors_key,
    user_key,
    user_sessions_key,
)
from admitd.sessions.model import MfaMethod, Session
from admitd.sessions.store import (
    ENROLMENT_GRANT_FIELD,
    factors_from_names,
    fields_from_session,
    session_from_fields,
)
from admitd.sessions.tokens import SessionRef, user_tag
from admitd.tracing import tracing

__all__ = ["RedisSessionStore"]

log = logging.getLogger(__name__)


class RedisSessionStore:
    def __init__(
        self, client: redis.Redis, *, cache_ttl: float = 5.0, cache_size: int = 100_000
    ) -> None:
        self._redis = client
        self._ttl = cache_ttl
        self._size = cache_size
        self._cache: dict[SessionRef, tuple[float, Session | None]] = {}
        self._revoked: dict[str, tuple[float, float | None]] = {}  # tag -> (read at, time)
        self._listening = False
        self._closing = False
        self._listener: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the invalidation listener (the cache is off until it is subscribed)."""
        if self._ttl > 0 and self._listener is None:
            self._listener = asyncio.create_task(self._listen_forever())

    async def close(self) -> None:
        if self._listener is not None:
            # redis-py's get_message can swallow a cancellation that lands inside its read
            # timeout, so the loop also checks `_closing` each second: close never hangs.
            self._closing = True
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._listener, _LISTENER_STOP_SECONDS)
        await self._redis.aclose()

    async def get(self, ref: SessionRef) -> Session | None:
        now = time.monotonic()
        cached = self._cache.get(ref)
        if cached is not None and self._listening and now - cached[0] < self._ttl:
            return cached[1]
        key = session_key(ref.tag, ref.session_id)
        with tracing.span("redis session lookup"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(key)
                pipe.hkeys(user_factors_key(ref.tag))
                pipe.hgetall(user_key(ref.tag, RISK_STATE))
                fields, factor_names, risk_state = await pipe.execute()
        session = (
            session_from_fields(
                ref.session_id, fields, factors_from_names(factor_names), risk_state
            )
            if fields
            else None
        )
        if self._listening:
            self._remember(ref, now, session)
        return session

    async def create(self, ref: SessionRef, session: Session) -> None:
        key = session_key(ref.tag, ref.session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast(Any, fields_from_session(session)))
            pipe.expireat(key, int(session.absolute_expires_at) + 1)
            pipe.sadd(user_sessions_key(ref.tag), ref.session_id)
            await pipe.execute()
        await self._invalidate(ref.tag)

    async def set_mfa(self, ref: SessionRef, verified_at: float, method: MfaMethod) -> bool:
        key = session_key(ref.tag, ref.session_id)
        # HSET only if the session still exists: a revoked session stays revoked.
        updated = await self._redis.eval(
            _SET_IF_EXISTS,
            1,
            key,
            "mfa_verified_at",
            repr(verified_at),
            "mfa_method",
            method.value,
        )
        await self._invalidate(ref.tag)
        return bool(updated)

    async def touch(self, seen: Mapping[SessionRef, float]) -> None:
        if not seen:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for ref, at in seen.items():
                pipe.eval(
                    _SET_IF_EXISTS,
                    1,
                    session_key(ref.tag, ref.session_id),
                    "last_seen_at",
                    repr(at),
                )
            await pipe.execute()

    async def revoke(self, ref: SessionRef) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(session_key(ref.tag, ref.session_id))
            pipe.srem(user_sessions_key(ref.tag), ref.session_id)
            deleted, _ = await pipe.execute()
        await self._invalidate(ref.tag)
        return bool(deleted)

    async def revoke_user(self, user_id: str) -> int:
        tag = user_tag(user_id)
        ids = _texts(await self._redis.smembers(user_sessions_key(tag)))
        async with self._redis.pipeline(transaction=True) as pipe:
            for session_id in ids:
                pipe.delete(session_key(tag, session_id))
            pipe.delete(user_sessions_key(tag))
            pipe.set(user_key(tag, REVOKED_AT), repr(time.time()))
            results = await pipe.execute()
        await self._invalidate(tag)
        return sum(int(r) for r in results[: len(ids)])

    async def revoked_at(self, user_id: str) -> float | None:
        tag, now = user_tag(user_id), time.monotonic()
        cached = self._revoked.get(tag)
        if cached is not None and self._listening and now - cached[0] < self._ttl:
            return cached[1]
        raw = await self._redis.get(user_key(tag, REVOKED_AT))
        at = _float(raw)
        if self._listening:
            if len(self._revoked) >= self._size:
                self._revoked.clear()
            self._revoked[tag] = (now, at)
        return at

    async def list_user(self, user_id: str) -> list[Session]:
        tag = user_tag(user_id)
        ids = sorted(_texts(await self._redis.smembers(user_sessions_key(tag))))
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(session_key(tag, session_id))
            pipe.hkeys(user_factors_key(tag))
            *records, names = await pipe.execute()
        factors = factors_from_names(_texts(names))
        found = (session_from_fields(i, r, factors) for i, r in zip(ids, records, strict=True) if r)
        return [s for s in found if s is not None]

    async def factors(self, user_id: str) -> frozenset[MfaMethod]:
        names = await self._redis.hkeys(user_factors_key(user_tag(user_id)))
        return factors_from_names(_texts(names))

    async def set_factor(self, user_id: str, method: MfaMethod, *, active: bool, at: float) -> None:
        tag = user_tag(user_id)
        if active:
            await self._redis.hset(user_factors_key(tag), method.value, repr(at))
        else:
            await self._redis.hdel(user_factors_key(tag), method.value)
        await self._invalidate(tag)

    async def take_enrolment_grant(self, ref: SessionRef, now: float) -> bool:
        key = session_key(ref.tag, ref.session_id)
        # HGET + HDEL in one script: of two requests racing, only one gets the grant.
        taken = await self._redis.eval(_TAKE_FIELD_BEFORE, 1, key, ENROLMENT_GRANT_FIELD, repr(now))
        await self._invalidate(ref.tag)
        return bool(taken)

    async def invalidate_user(self, tag: str) -> None:
        """Drop every replica's cached sessions of this user (e.g. their risk state changed)."""
        await self._invalidate(tag)

    async def _invalidate(self, tag: str) -> None:
        """Tell every replica (this one included) to drop what it cached for this user.

        Published after the write, not inside its pipeline: Redis Cluster refuses
        PUBLISH in a pipeline.
        """
        self._forget(tag)
        await self._redis.publish(INVALIDATION_CHANNEL, tag)

    def _remember(self, ref: SessionRef, now: float, session: Session | None) -> None:
        if len(self._cache) >= self._size:
            self._cache.clear()
        self._cache[ref] = (now, session)

    def _forget(self, tag: str) -> None:
        for ref in [r for r in self._cache if r.tag == tag]:
            del self._cache[ref]
        self._revoked.pop(tag, None)

    async def _listen_forever(self) -> None:
        while not self._closing:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: stop trusting the cache, retry
                if self._listening:
                    # A StoreUnavailable's message names the Redis call and error kind only.
                    why = exc if isinstance(exc, StoreUnavailable) else type(exc).__name__
                    log.warning(
                        "session invalidation feed lost (%s); cache off until it returns", why
                    )
            self._listening = False
            self._cache.clear()
            self._revoked.clear()
            await asyncio.sleep(0.5)

    async def _listen_once(self) -> None:
        # Also initialises a cluster client's slot map, which subscribing needs.
        await self._redis.ping()
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(INVALIDATION_CHANNEL)
            self._cache.clear()
            self._revoked.clear()
            self._listening = True
            log.info("session invalidation feed subscribed; cache on")
            while not self._closing:
                # Raises when the connection dies; the client's health_check_interval
                # makes it ping a quiet connection, so a dead peer is noticed too.
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._forget(str(message["data"]))


# get_message waits at most 1 s, so a listener that missed its cancellation sees
# `_closing` within this.
_LISTENER_STOP_SECONDS = 3.0

_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


# Deletes field ARGV[1]; 1 when it held a time after ARGV[2] (still valid), else 0.
_TAKE_FIELD_BEFORE = """
local until_time = redis.call('HGET', KEYS[1], ARGV[1])
if not until_time then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if (tonumber(until_time) or 0) > tonumber(ARGV[2]) then return 1 end
return 0
"""


def _texts(values: Iterable[bytes | str]) -> list[str]:
    # The client decodes responses; this only narrows the type for mypy.
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def _float(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return math.inf  # unreadable: fail closed, every token of the user is refused
