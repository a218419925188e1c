"""Rotation steps (rotate, re-encrypt, retire), each recorded as an audit event.

Rotating and retiring administer the provider's keys (synchronous `ManagedKms`);
re-encrypting moves data keys, through the awaitable port like every seal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis

from admitd.envelope.records import ReencryptReport, reencrypt_records, versions_in_use
from admitd.kms.adapter import async_kms
from admitd.kms.audit import AuditEvents
from admitd.kms.base import ALIAS_AUDIT_LOG, KeyVersion, ManagedKms
from admitd.kms.errors import KeyInUse, KeyVersionNotFound

__all__ = ["reencrypt_alias", "retire_version", "rotate_alias"]


def rotate_alias(kms: ManagedKms, alias: str, audit: AuditEvents) -> KeyVersion:
    """Create a new active version of `alias`; the previous one becomes decrypt-only."""
    previous = kms.active_version(alias)
    created = kms.rotate(alias)
    audit.record(
        "kms.key.rotated",
        {"alias": alias, "previous_version": str(previous), "active_version": str(created.version)},
    )
    return created


async def reencrypt_alias(
    kms: ManagedKms,
    client: redis.Redis,
    alias: str,
    audit: AuditEvents,
    *,
    patterns: Sequence[str],
    batch: int = 500,
    restart: bool = False,
    progress: Callable[[ReencryptReport], None] | None = None,
) -> ReencryptReport:
    """Re-wrap every record of `alias` under its active version, with start/end events."""
    port = async_kms(kms)
    fields = {"alias": alias, "target_version": str(await port.active_version(alias))}
    audit.record("kms.reencrypt.started", {**fields, "patterns": ",".join(patterns)})
    report = await reencrypt_records(
        client,
        port,
        alias,
        patterns=patterns,
        batch=batch,
        restart=restart,
        progress=progress,
    )
    counts = {
        "resumed": str(report.resumed).lower(),
        "rewrapped": str(report.rewrapped),
        "current": str(report.current),
        "failed": str(report.failed),
        "malformed": str(report.malformed),
        "conflicts": str(report.conflicts),
    }
    audit.record("kms.reencrypt.completed", {**fields, **counts})
    return report


def retire_version(
    kms: ManagedKms,
    client: redis.Redis,
    alias: str,
    version: int,
    audit: AuditEvents,
    *,
    patterns: Sequence[str],
) -> KeyVersion:
    """Destroy `version` of `alias`, refused (`KeyInUse`) while any record still uses it."""
    fields = {"alias": alias, "version": str(version)}
    if not any(v.version == version and v.state != "retired" for v in kms.versions(alias)):
        raise KeyVersionNotFound(f"{alias} has no live version {version}")
    if alias == ALIAS_AUDIT_LOG:
        # Audit entries live in a stream that is appended to, never re-wrapped: every
        # version that ever sealed one is needed for as long as the log is kept.
        audit.record("kms.key.retire_refused", {**fields, "reason": "audit_log"})
        raise KeyInUse(
            f"{alias} v{version} may still seal audit entries, which are never re-wrapped:"
            " audit-log key versions are kept for as long as the log is"
        )
    in_use = versions_in_use(client, alias, patterns=patterns)[version]
    if version == kms.active_version(alias) or in_use:
        reason = "active" if not in_use else f"{in_use} records"
        audit.record("kms.key.retire_refused", {**fields, "reason": reason})
        raise KeyInUse(
            f"{alias} v{version} is still in use ({reason}); rotate and run"
            f" `admitd keys reencrypt --alias {alias}` first"
        )
    retired = kms.retire(alias, version)
    audit.record("kms.key.retired", fields)
    return retired
