"""Where passkey state lives: pending challenges (short TTL), sealed credentials, failures.

`RedisPasskeyStore` keeps every key under the user's hash tag (`user_key`), so one
user's passkey state sits on one Redis Cluster slot; `MemoryPasskeyStore` serves one
development process and the unit tests. Credentials are opaque sealed strings here:
sealing and opening is `PasskeyService`'s business. The last successful verification
(a `PasskeyVerification`, public facts only) is kept per user for key custody.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis.asyncio as redis

from admitd.sessions.keys import user_key
from admitd.sessions.tokens import user_tag

__all__ = ["MemoryPasskeyStore", "PasskeyStore", "PasskeyVerification", "RedisPasskeyStore"]

# A receipt is only ever looked at for minutes (keys.mfa_max_age_seconds); a day is plenty.
_RECEIPT_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class PasskeyVerification:
    """One successful assertion with user verification (UV): when, with which credential,
    and the AAGUID its authenticator reported at registration ("" if unknown)."""

    verified_at: float
    credential_id: str
    aaguid: str


class PasskeyStore(Protocol):
    """Every method may raise `StoreUnavailable`. `ceremony` is "register" or "authenticate"."""

    async def put_challenge(
        self, user_id: str, ceremony: str, challenge: bytes, *, ttl: float, now: float
    ) -> None:
        """Replace the user's pending challenge for `ceremony`; it expires after `ttl` s."""

    async def take_challenge(self, user_id: str, ceremony: str, *, now: float) -> bytes | None:
        """The pending challenge, removed so it can be answered only once; None if none."""

    async def credential_ids(self, user_id: str) -> list[str]: ...

    async def credential(self, user_id: str, credential_id: str) -> str | None: ...

    async def save_credential(
        self, user_id: str, credential_id: str, sealed: str, *, expected: str | None
    ) -> bool:
        """Compare-and-set: write only if the stored value is still `expected` (None: absent)."""

    async def reserve_attempt(
        self, user_id: str, *, max_failures: int, window: float, now: float
    ) -> int | None:
        """Atomically count one attempt, before it is evaluated; None when the count already
        reached `max_failures` within the window (which begins at the first attempt).

        Returns the attempt's number in the window (1 = the first). It counts as a failure
        until `clear_failures`, which a success calls.
        """

    async def clear_failures(self, user_id: str) -> None: ...

    async def record_verification(self, user_id: str, verification: PasskeyVerification) -> None:
        """Replace the user's last verification receipt."""

    async def last_verification(self, user_id: str) -> PasskeyVerification | None: ...


class MemoryPasskeyStore:
    """Single process only; expiry is judged against the `now` the caller passes."""

    def __init__(self) -> None:
        self._challenges: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._credentials: dict[str, dict[str, str]] = {}
        self._failures: dict[str, tuple[int, float]] = {}
        self._receipts: dict[str, PasskeyVerification] = {}

    async def put_challenge(
        self, user_id: str, ceremony: str, challenge: bytes, *, ttl: float, now: float
    ) -> None:
        self._challenges[(user_id, ceremony)] = (challenge, now + ttl)

    async def take_challenge(self, user_id: str, ceremony: str, *, now: float) -> bytes | None:
        found = self._challenges.pop((user_id, ceremony), None)
        return found[0] if found is not None and now < found[1] else None

    async def credential_ids(self, user_id: str) -> list[str]:
        return sorted(self._credentials.get(user_id, {}))

    async def credential(self, user_id: str, credential_id: str) -> str | None:
        return self._credentials.get(user_id, {}).get(credential_id)

    async def save_credential(
        self, user_id: str, credential_id: str, sealed: str, *, expected: str | None
    ) -> bool:
        records = self._credentials.setdefault(user_id, {})
        if records.get(credential_id) != expected:
            return False
        records[credential_id] = sealed
        return True

    async def reserve_attempt(
        self, user_id: str, *, max_failures: int, window: float, now: float
    ) -> int | None:
        # No await in here: on one event loop this runs as one step, like the Lua script.
        count, until = self._failures.get(user_id, (0, 0.0))
        if now >= until:
            count, until = 0, now + window
        if count >= max_failures:
            return None
        self._failures[user_id] = (count + 1, until)
        return count + 1

    async def clear_failures(self, user_id: str) -> None:
        self._failures.pop(user_id, None)

    async def record_verification(self, user_id: str, verification: PasskeyVerification) -> None:
        self._receipts[user_id] = verification

    async def last_verification(self, user_id: str) -> PasskeyVerification | None:
        return self._receipts.get(user_id)


class RedisPasskeyStore:
    """Challenges are strings with PX expiry taken by GETDEL; credentials one HASH per user."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client  # built by `client_from_url` (decode_responses=True)

    async def put_challenge(
        self, user_id: str, ceremony: str, challenge: bytes, *, ttl: float, now: float
    ) -> None:
        value = base64.b64encode(challenge).decode("ascii")
        await self._redis.set(_challenge_key(user_id, ceremony), value, px=int(ttl * 1000))

    async def take_challenge(self, user_id: str, ceremony: str, *, now: float) -> bytes | None:
        value = await self._redis.getdel(_challenge_key(user_id, ceremony))
        return None if value is None else base64.b64decode(value)

    async def credential_ids(self, user_id: str) -> list[str]:
        names = await self._redis.hkeys(_credentials_key(user_id))
        return sorted(n.decode() if isinstance(n, bytes) else n for n in names)

    async def credential(self, user_id: str, credential_id: str) -> str | None:
        value = await self._redis.hget(_credentials_key(user_id), credential_id)
        return value.decode() if isinstance(value, bytes) else value

    async def save_credential(
        self, user_id: str, credential_id: str, sealed: str, *, expected: str | None
    ) -> bool:
        done = await self._redis.eval(
            _HASH_CAS, 1, _credentials_key(user_id), credential_id, expected or "", sealed
        )
        return bool(done)

    async def reserve_attempt(
        self, user_id: str, *, max_failures: int, window: float, now: float
    ) -> int | None:
        # Check and increment in one script: concurrent ceremonies on any replica meet
        # one count (two checks before two increments would let both through).
        count = await self._redis.eval(
            _RESERVE_IN_WINDOW, 1, _failures_key(user_id), max_failures, int(window * 1000)
        )
        return int(count) or None

    async def clear_failures(self, user_id: str) -> None:
        await self._redis.delete(_failures_key(user_id))

    async def record_verification(self, user_id: str, verification: PasskeyVerification) -> None:
        key = _receipt_key(user_id)
        fields = {
            "verified_at": repr(verification.verified_at),
            "credential_id": verification.credential_id,
            "aaguid": verification.aaguid,
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=cast(Any, fields))
            pipe.expire(key, _RECEIPT_SECONDS)
            await pipe.execute()

    async def last_verification(self, user_id: str) -> PasskeyVerification | None:
        raw = await cast(Any, self._redis.hgetall(_receipt_key(user_id)))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        try:
            return PasskeyVerification(
                float(fields["verified_at"]), fields["credential_id"], fields.get("aaguid", "")
            )
        except (KeyError, ValueError):
            return None  # none, or damaged: no proof


# An empty ARGV[2] means "the field must not exist yet" (a new credential).
_HASH_CAS = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current == false and ARGV[2] ~= '') or (current ~= false and current ~= ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""
# ARGV: max attempts, window (ms). The window starts at the first attempt and is not
# extended by later ones. Returns the attempt's number, or 0 when none is left.
_RESERVE_IN_WINDOW = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if n >= tonumber(ARGV[1]) then return 0 end
n = redis.call('INCR', KEYS[1])
-- Also a count that somehow lost its TTL: it must not lock the factor out for good.
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
"""


def _challenge_key(user_id: str, ceremony: str) -> str:
    return user_key(user_tag(user_id), f"passkey:challenge:{ceremony}")


def _credentials_key(user_id: str) -> str:
    return user_key(user_tag(user_id), "passkeys")


def _failures_key(user_id: str) -> str:
    return user_key(user_tag(user_id), "passkey:failures")


def _receipt_key(user_id: str) -> str:
    return user_key(user_tag(user_id), "passkey:verified")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
