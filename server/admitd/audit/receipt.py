"""A receipt for a queued audit entry (durable answers, docs/audit.md): a future the
writer settles once the entry is in Redis or the fsync'd spool, never with an exception."""

from __future__ import annotations

import asyncio

__all__ = ["Receipt", "wait_durable"]

Receipt = asyncio.Future[None]


async def wait_durable(receipt: Receipt | None) -> None:
    """Wait for the entry; shielded, so a caller cancelled meanwhile (Envoy gave up on the
    Check) leaves the receipt, and what is chained to it, to settle with the entry."""
    if receipt is not None:
        await asyncio.shield(receipt)
