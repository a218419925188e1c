"""Carrying out an approved change with the rotation functions the offline commands use.

Rotating, retiring and re-encrypting block (the provider, a synchronous Redis walk),
so each runs on a worker thread, never on the event loop. The rotation functions'
own audit events are buffered there and replayed on the loop afterwards: the audit
log is not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import redis

from admitd.custody.changes import ChangeKind, ChangeRequest
from admitd.custody.provider import PROVIDER_KEY, provider_record
from admitd.errors import AdmitdError
from admitd.kms.audit import AuditEvents
from admitd.kms.base import KeyState, KeyVersion, ManagedKms
from admitd.kms.errors import AliasNotFound, KeyInUse, KeyVersionNotFound
from admitd.kms.rotation import reencrypt_alias, retire_version, rotate_alias

__all__ = ["BufferedEvents", "KmsChanges"]


class BufferedEvents:
    """Collects events on a worker thread; `replay` hands them to the real audit."""

    def __init__(self, **extra: str) -> None:
        self.events: list[tuple[str, dict[str, str]]] = []
        self.extra = extra

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        self.events.append((event_type, {**fields, **self.extra}))

    def replay(self, audit: AuditEvents) -> None:
        for event_type, fields in self.events:
            audit.record(event_type, fields)
        self.events.clear()


class KmsChanges:
    """The provider and the records it seals; `sync_redis` builds a client per change."""

    def __init__(
        self,
        kms: ManagedKms,
        sync_redis: Callable[[], redis.Redis],
        *,
        patterns: Sequence[str],
    ) -> None:
        self._kms, self._sync_redis, self._patterns = kms, sync_redis, tuple(patterns)

    async def versions(self) -> list[KeyVersion]:
        """Every alias's versions, oldest first: public facts only."""
        return await asyncio.to_thread(self._versions)

    async def check(self, request: ChangeRequest) -> None:
        """Refuse at request time what could never apply (unknown alias or version)."""
        await asyncio.to_thread(self._check, request)

    async def apply(self, request: ChangeRequest, audit: BufferedEvents) -> str:
        """Carry it out once; the result line for the record. Raises what the KMS raised."""
        return await asyncio.to_thread(self._apply, request, audit)

    def _versions(self) -> list[KeyVersion]:
        return [v for alias in self._kms.aliases() for v in self._kms.versions(alias)]

    def _check(self, request: ChangeRequest) -> None:
        if request.kind is ChangeKind.PROVIDER:
            return  # nothing to look up here: the settings are checked, the new keys are elsewhere
        if request.alias not in self._kms.aliases():
            raise AliasNotFound(f"no master key for alias {request.alias}")
        if request.kind is not ChangeKind.RETIRE:
            return
        versions = {v.version: v for v in self._kms.versions(request.alias)}
        found = versions.get(request.version)
        if found is None or found.state is KeyState.RETIRED:
            raise KeyVersionNotFound(f"{request.alias} has no live version {request.version}")
        if found.state is KeyState.ACTIVE:
            raise KeyInUse(
                f"{request.alias} v{request.version} is the active version; rotate first"
            )

    def _apply(self, request: ChangeRequest, audit: BufferedEvents) -> str:
        alias = request.alias
        if request.kind is ChangeKind.PROVIDER:
            return self._approve_provider(request, audit)
        if request.kind is ChangeKind.ROTATE:
            created = rotate_alias(self._kms, alias, audit)
            return f"v{created.version} active"
        client = self._sync_redis()
        try:
            if request.kind is ChangeKind.RETIRE:
                retire_version(
                    self._kms, client, alias, request.version, audit, patterns=self._patterns
                )
                return f"v{request.version} retired"
            # This worker thread's own event loop: re-encryption awaits the KMS port.
            report = asyncio.run(
                reencrypt_alias(self._kms, client, alias, audit, patterns=self._patterns)
            )
        finally:
            client.close()
        counts = (
            f"{report.rewrapped} re-wrapped, {report.current} already current,"
            f" {report.failed} failed, {report.malformed} malformed, {report.conflicts} conflicts"
        )
        if not report.complete:
            raise _Incomplete(counts)
        return counts

    def _approve_provider(self, request: ChangeRequest, audit: BufferedEvents) -> str:
        """Store the approved fingerprint: the next start with that kms: may proceed."""
        settings = request.provider
        change_id = audit.extra.get("change_id", "")
        client = self._sync_redis()
        try:
            previous = client.hget(PROVIDER_KEY, "fingerprint")
            record = provider_record(settings, "approved", change_id)
            client.hset(PROVIDER_KEY, mapping=record)  # type: ignore[arg-type]
        finally:
            client.close()
        old = previous.decode() if isinstance(previous, bytes) else str(previous or "")
        audit.record(
            "kms.provider.approved",
            {
                "fingerprint": settings.fingerprint,
                "summary": settings.summary,
                "previous_fingerprint": old,
            },
        )
        return f"provider {settings.fingerprint[:16]} approved; restart with that kms:"


class _Incomplete(AdmitdError):
    """A re-encryption pass that left records behind (its counts say how many)."""

    def __init__(self, counts: str) -> None:
        super().__init__(f"re-encryption incomplete: {counts}; request another reencrypt")
