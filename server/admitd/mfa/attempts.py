"""Per-user rate limit of second-factor attempts: growing back-off, then a lockout.

An attempt is reserved in the shared state store, in one atomic step, before the
code is even looked at, and counts as a failure until a success resets the series.
So guesses sent all at once, to any number of replicas, meet one limit: the first
takes the slot and sets the back-off, the others are refused unevaluated.

The count is forgotten only after twice the lockout period without an attempt: once
a lockout ends, the next failure locks the user out again at once instead of
granting another full series of guesses.
"""

from __future__ import annotations

from admitd.mfa.config import MfaConfig
from admitd.mfa.state import MfaStateStore
from admitd.sessions.keys import user_key
from admitd.sessions.tokens import user_tag

__all__ = ["AttemptLimiter", "waits_after_failures"]


def waits_after_failures(config: MfaConfig) -> tuple[float, ...]:
    """The wait after the 1st, 2nd ... failure; the last (the lockout) repeats from then on.

    A back-off never exceeds the lockout: past that point doubling would only
    postpone the lockout's own, shorter, verdict.
    """
    lockout = float(config.lockout_seconds)
    base = config.backoff_base_seconds
    backoffs = (min(lockout, base * 2.0 ** (n - 1)) for n in range(1, config.max_failures))
    return (*backoffs, lockout)


class AttemptLimiter:
    def __init__(self, state: MfaStateStore, config: MfaConfig, *, factor: str = "totp") -> None:
        self._state = state
        self._waits = waits_after_failures(config)
        self._factor = factor

    def _keys(self, user_id: str) -> tuple[str, str]:
        tag = user_tag(user_id)
        return (
            user_key(tag, f"{self._factor}:failures"),
            user_key(tag, f"{self._factor}:not_before"),
        )

    async def reserve(self, user_id: str, now: float) -> float:
        """Take one attempt before evaluating it: 0.0 when granted, else seconds to wait.

        A granted attempt already counts as a failure, with the back-off it imposes;
        only `reset` (after a success) takes that back.
        """
        failures_key, not_before_key = self._keys(user_id)
        return await self._state.reserve_attempt(
            failures_key, not_before_key, now=now, waits=self._waits
        )

    async def reset(self, user_id: str) -> None:
        """A success clears the failure series."""
        await self._state.delete(*self._keys(user_id))
