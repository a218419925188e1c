"""Small MFA state (replay marks, failure counts, sealed secrets): Redis, or memory for one process.

Every value is a string under a key built with `admitd.sessions.keys.user_key`, so
one user's MFA state shares the user's Redis Cluster slot. TTLs only bound how
long state lingers; decisions that depend on time compare stored timestamps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import redis.asyncio as redis

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

    async def reserve_attempt(
        self, counter_key: str, not_before_key: str, *, now: float, waits: Sequence[float]
    ) -> float:
        """Take one attempt in a single atomic step, before the attempt is evaluated.

        While `not_before_key` holds a time after `now`, nothing changes and the seconds
        left are returned. Else the counter at `counter_key` goes up by one to n (its TTL
        restarts at `waits[-1] * 2`), `not_before_key` becomes `now + waits[min(n,
        len(waits)) - 1]`, and 0.0 is returned: the attempt is granted. An unreadable
        `not_before` counts as absent (it must not lock anyone out for good).
        """


def _ttl_ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisMfaState:
    """Shared by every replica: a replay refused on one is refused on all."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    async def set_if_absent(self, key: str, value: str, ttl: float) -> bool:
        return bool(await self._redis.set(key, value, nx=True, px=_ttl_ms(ttl)))

    async def incr(self, key: str, ttl: float) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.pexpire(key, _ttl_ms(ttl))
            count, _ = await pipe.execute()
        return int(count)

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(key)
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, value: str, ttl: float | None = None) -> None:
        await self._redis.set(key, value, px=None if ttl is None else _ttl_ms(ttl))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._redis.delete(*keys)

    async def reserve_attempt(
        self, counter_key: str, not_before_key: str, *, now: float, waits: Sequence[float]
    ) -> float:
        # One Lua script: no replica can read the count between another's check and
        # increment (Redis runs a script atomically, and both keys share a hash tag).
        left = await self._redis.eval(
            _RESERVE_ATTEMPT, 2, counter_key, not_before_key, repr(now), *map(repr, waits)
        )
        return float(left)


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

    async def reserve_attempt(
        self, counter_key: str, not_before_key: str, *, now: float, waits: Sequence[float]
    ) -> float:
        # No await in here: on one event loop this runs as one step, like the Lua script.
        left = _seconds_left(self._live(not_before_key), now)
        if left > 0:
            return left
        count = int(self._live(counter_key) or 0) + 1
        self._values[counter_key] = (str(count), self._clock() + 2 * waits[-1])
        wait = waits[min(count, len(waits)) - 1]
        if wait > 0:
            self._values[not_before_key] = (repr(now + wait), self._clock() + wait + 1)
        return 0.0

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and self._clock() >= expires:
            del self._values[key]
            return None
        return value


def _seconds_left(not_before: str | None, now: float) -> float:
    try:
        return max(0.0, float(not_before) - now) if not_before is not None else 0.0
    except ValueError:
        return 0.0


# KEYS: counter, not_before. ARGV: now, then the wait after the 1st, 2nd... attempt (the
# last one repeats). `now` is the replica's clock: replicas must keep time (NTP), or one
# running ahead by more than a lockout's remainder would evaluate a code during it.
# Returns the seconds left as a string ("0" = granted): a Lua number would reach the
# client truncated to an integer.
_RESERVE_ATTEMPT = """
local now = tonumber(ARGV[1])
local not_before = tonumber(redis.call('GET', KEYS[2]) or '') or 0
if not_before > now then return string.format('%.17g', not_before - now) end
local count = redis.call('INCR', KEYS[1])
local waits = #ARGV - 1
redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(tonumber(ARGV[1 + waits]) * 2000)))
local wait = tonumber(ARGV[1 + math.min(count, waits)])
if wait > 0 then
  local ttl = string.format('%d', math.ceil((wait + 1) * 1000))
  redis.call('SET', KEYS[2], string.format('%.17g', now + wait), 'PX', ttl)
end
return '0'
"""
