"""The port every identity source implements: a request's user credential -> who is asking.

Today's source is the admitd session (`admitd.sessions.identity`); an IdP token source is
another module implementing `IdentitySource`, wired in `admitd.runtime`. The core only
sees the `UserLookup` it produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from admitd.core.context import RequestContext
from admitd.core.identity import UserLookup, UserState

__all__ = ["NOBODY", "Found", "IdentitySource"]


@dataclass(frozen=True, slots=True)
class Found:
    """What the core gets (`user`), and the user's device-risk history when the source
    read it on the way (the session pipeline does); None: device risk reads it itself."""

    user: UserLookup
    risk_state: Mapping[str, str] | None = None


NOBODY = Found(UserLookup(UserState.NOT_PRESENTED))


class IdentitySource(Protocol):
    @property
    def cookie_name(self) -> str:
        """The source's own cookie, kept from the upstream ("" when it has none)."""
        ...

    def carries_own_bearer(self, ctx: RequestContext) -> bool:
        """Whether `authorization` carries this source's bearer token (kept from the upstream)."""
        ...

    async def lookup(self, ctx: RequestContext, now: float) -> Found:
        """Reads only; a source that cannot answer says UNAVAILABLE (fail closed)."""
        ...

    async def flush_last_seen(self) -> None:
        """Write what lookups batched (off the hot path)."""
        ...
