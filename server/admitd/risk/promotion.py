"""A successful MFA verification of a session makes its refused attempt's device known."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from admitd.errors import AdmitdError
from admitd.sessions.model import MfaMethod
from admitd.sessions.store import DelegatingSessionStore, SessionStore
from admitd.sessions.tokens import SessionRef

__all__ = ["PromotingSessionStore"]

log = logging.getLogger(__name__)

Promote = Callable[[str, str], Awaitable[None]]  # (user tag, session id)


class PromotingSessionStore(DelegatingSessionStore):
    """Wraps the store the step-up pages and the admin API verify through.

    `set_mfa` is the one place every verification (TOTP or passkey on the step-up
    page, TOTP over the admin API) lands, so promoting there covers them all.
    """

    def __init__(self, inner: SessionStore, promote: Promote) -> None:
        super().__init__(inner)
        self._promote = promote

    async def set_mfa(self, ref: SessionRef, verified_at: float, method: MfaMethod) -> bool:
        if not await self._inner.set_mfa(ref, verified_at, method):
            return False
        try:
            await self._promote(ref.tag, ref.session_id)
        except AdmitdError as exc:
            # The verification stands; the device stays unknown, so the next Check
            # may step up again (fail closed), never the other way round.
            log.warning("device sighting not promoted after MFA (%s)", exc)
        return True
