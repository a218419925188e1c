"""`admitd.kms.audit.AuditEvents` on top of `AuditLog`, so key rotation lands in the chain."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from admitd.audit.entry import AuditEntry

__all__ = ["AuditLogEvents"]


class _Appends(Protocol):
    def append(self, entry: AuditEntry) -> object: ...  # a receipt this port does not await


class AuditLogEvents:
    """`record(event_type, fields)` -> one `AuditEntry`; `fields` go to `details`.

    Well-known field names (`user`, `principal`, `organisation`, `reason`...) also
    fill the entry's own columns, so a SIEM finds them where it looks for them.
    """

    _COLUMNS = (
        "decision",
        "reason",
        "principal",
        "user",
        "organisation",
        "session_hash",
        "device_id",
        "source_ip",
        "risk_level",
        "policy_version",
    )

    def __init__(
        self, log: _Appends, *, instance: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._log, self._instance, self._clock = log, instance, clock

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        columns = {name: str(fields[name]) for name in self._COLUMNS if name in fields}
        details = tuple(sorted((k, str(v)) for k, v in fields.items() if k not in columns))
        entry = AuditEntry(
            time=self._clock(),
            event_type=event_type,
            instance=self._instance,
            details=details,
            **columns,  # type: ignore[arg-type]
        )
        self._log.append(entry)
