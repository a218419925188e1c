"""Per-user rate limit of second-factor attempts: growing back-off, then a lockout.

Failures are counted in the shared state store, so an attacker spreading guesses
over replicas meets one limit. The count is forgotten only after twice the
lockout period without a failure: once a lockout ends, the next failure locks
the user out again at once instead of granting another full series of guesses.
"""

from __future__ import annotations

from admitd.mfa.config import MfaConfig
from admitd.mfa.state import MfaStateStore
from admitd.sessions.keys import user_key
from admitd.sessions.tokens import user_tag

__all__ = ["AttemptLimiter"]


class AttemptLimiter:
    def __init__(self, state: MfaStateStore, config: MfaConfig, *, factor: str = "totp") -> None:
        self._state = state
        self._config = config
        self._factor = factor

    def _keys(self, user_id: str) -> tuple[str, str]:
        tag = user_tag(user_id)
        return (
            user_key(tag, f"{self._factor}:failures"),
            user_key(tag, f"{self._factor}:not_before"),
        )

    async def retry_after(self, user_id: str, now: float) -> float:
        """Seconds until the user may try again; 0 when an attempt is allowed now."""
        raw = await self._state.get(self._keys(user_id)[1])
        try:
            not_before = float(raw) if raw is not None else 0.0
        except ValueError:
            return 0.0  # an unreadable mark must not lock anyone out forever
        return max(0.0, not_before - now)

    async def record_failure(self, user_id: str, now: float) -> float:
        """Count one failure; returns the wait it imposes before the next attempt."""
        failures_key, not_before_key = self._keys(user_id)
        config = self._config
        count = await self._state.incr(failures_key, 2 * config.lockout_seconds)
        if count >= config.max_failures:
            wait = float(config.lockout_seconds)
        else:
            wait = config.backoff_base_seconds * 2 ** (count - 1)
        if wait > 0:
            await self._state.put(not_before_key, repr(now + wait), ttl=wait + 1)
        return wait

    async def reset(self, user_id: str) -> None:
        """A success clears the failure series."""
        await self._state.delete(*self._keys(user_id))
