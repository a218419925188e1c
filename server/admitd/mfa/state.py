"""Small MFA state (replay marks, failure counts, sealed secrets): Redis, or memory for one process.

Every value is a string under a key built with `admitd.sessions.keys.user_key`, so
one user's MFA state shares the user's Redis Cluster slot. TTLs only bound how
long state lingers; decisions that depend on time compare stored timestamps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as redis

from admitd.sessions.redis_client import store_errors

__all__ = ["MemoryMfaState", "MfaStateStore", "RedisMfaState"]


class MfaStateStore(Protocol):
    """Every method may raise `StoreUnavailable`. `ttl` is in seconds."""

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        """Store `value` unless `key` exists; True when this call stored it."""

    async def incr(self, key: str, ttl: float) -> int:
        """Add one to the counter at `key` (absent = 0) and (re)start its TTL."""

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, ttl: float | None = None) -> None:
        """Store `value`, replacing any; `ttl=None` keeps it until deleted."""

    async def delete(self, *keys: str) -> None: ...


def _ttl_ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisMfaState:
    """Shared by every replica: a replay refused on one is refused on all."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        with store_errors("MFA state set-if-absent"):
            return bool(await self._redis.set(key, value, nx=True, px=_ttl_ms(ttl)))

    async def incr(self, key: str, ttl: float) -> int:
        with store_errors("MFA state increment"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, _ttl_ms(ttl))
                count, _ = await pipe.execute()
        return int(count)

    async def get(self, key: str) -> str | None:
        with store_errors("MFA state read"):
            value = await self._redis.get(key)
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, value: str, ttl: float | None = None) -> None:
        with store_errors("MFA state write"):
            await self._redis.set(key, value, px=None if ttl is None else _ttl_ms(ttl))

    async def delete(self, *keys: str) -> None:
        if keys:
            with store_errors("MFA state delete"):
                await self._redis.delete(*keys)


class MemoryMfaState:
    """Single process only (the dev mode without Redis); `clock` is monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[str, float | None]] = {}

    def raw_values(self) -> dict[str, str]:
        """Everything stored, for tests that check nothing is kept in clear."""
        return {key: value for key, (value, _) in self._values.items()}

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        self._values[key] = (value, self._clock() + ttl)
        return True

    async def incr(self, key: str, ttl: float) -> int:
        count = int(self._live(key) or 0) + 1
        self._values[key] = (str(count), self._clock() + ttl)
        return count

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def put(self, key: str, value: str, ttl: float | None = None) -> None:
        self._values[key] = (value, None if ttl is None else self._clock() + ttl)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._values.pop(key, None)

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and self._clock() >= expires:
            del self._values[key]
            return None
        return value
