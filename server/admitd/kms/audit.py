"""The audit seam for key-management events, and its default: one JSON log line each."""

from __future__ import annotations

import json
import logging
from typing import Protocol, runtime_checkable

__all__ = ["AuditEvents", "LogAuditEvents"]

logger = logging.getLogger("admitd.audit")


@runtime_checkable
class AuditEvents(Protocol):
    """Receives one event per security-relevant step (rotate, re-encrypt, retire...).

    The hash-chained audit log implements this; `fields` never carries key material.
    """

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        """Record `event_type` with string `fields`; raise only if it cannot be recorded."""
        ...


class LogAuditEvents:
    """Logs each event as one JSON object on the `admitd.audit` logger at INFO."""

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        line = json.dumps({"event": event_type, **fields}, sort_keys=True)
        logger.info("%s", line)
