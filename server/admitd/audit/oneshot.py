"""Chain audit events from a short-lived command (e.g. `admitd keys rotate`) into the log.

The command records its events in memory while it runs; afterwards they are appended
to the shared chain with the server's own audit configuration. Without an `audit:`
section (or without Redis) they stay in the JSON log only, which is said on stderr.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from admitd.audit.entry import AuditEntry
from admitd.audit.log import AuditLog
from admitd.config import load_config
from admitd.errors import AdmitdError
from admitd.factors import sealer_from_config
from admitd.kms.audit import AuditEvents, LogAuditEvents
from admitd.sessions.redis_client import client_from_url

__all__ = ["RecordedEvents", "chain_recorded_events"]

log = logging.getLogger(__name__)


class RecordedEvents:
    """Logs each event at once (as before) and keeps it for the chain."""

    def __init__(self) -> None:
        self._log: AuditEvents = LogAuditEvents()
        self.entries: list[AuditEntry] = []

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        self._log.record(event_type, fields)
        self.entries.append(
            AuditEntry(
                time=time.time(), event_type=event_type, details=tuple(sorted(fields.items()))
            )
        )


def chain_recorded_events(config_file: Path | None, events: RecordedEvents) -> bool:
    """True when the events were appended to the hash chain."""
    if not events.entries or config_file is None:
        return False
    try:
        config = load_config(config_file)
        sealer = sealer_from_config(config)
        if config.audit is None or config.redis_url is None or sealer is None:
            log.warning(
                "no audit:, redis_url or kms: in %s; key events are in the JSON log only",
                config_file,
            )
            return False
        asyncio.run(
            _append(
                AuditLog(client_from_url(config.redis_url), sealer, config.audit), events.entries
            )
        )
    except AdmitdError as exc:
        log.warning("key events not chained (%s); they are in the JSON log", exc)
        return False
    return True


async def _append(audit: AuditLog, entries: list[AuditEntry]) -> None:
    await audit.start()
    for entry in entries:
        audit.append(entry)
    await audit.close()  # flushes (to Redis, or the spool when Redis is away)
    await audit.client.aclose()
