"""Per-organisation trusted-device baselines in Redis, and the dual-control overrides on them.

    admitd:risk:baseline:<org>:os_family       SET of trusted OS families (e.g. macos)
    admitd:risk:baseline:<org>:browser_family  SET of trusted browser families
    admitd:risk:baseline:<org>:device_id       SET of trusted device IDs
    admitd:risk:baseline:<org>                 HASH: threshold (set by an approved override)

Baselines change only through approved overrides (see `risk.overrides`), so a
replica may use its copy for `cache_seconds`; the replica that applies a change
drops its copy at once, the others within `cache_seconds`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import redis.asyncio as redis

from admitd.admin.errors import AdminRequestError
from admitd.kms.audit import AuditEvents
from admitd.risk.errors import OverrideNotFound, PreconditionFailed, SameApprover
from admitd.risk.model import BaselineAttribute, OrgBaseline
from admitd.risk.overrides import (
    APPROVE_SCRIPT,
    OVERRIDE_INDEX,
    Override,
    OverrideKind,
    OverrideRequest,
    OverrideStatus,
    audit_fields,
    check_organisation,
    check_request,
    fields_from_override,
    is_override_id,
    new_override_id,
    override_from_fields,
    override_key,
)
from admitd.risk.state import RiskStateStore

__all__ = ["BaselineStore", "baseline_key"]

log = logging.getLogger(__name__)

_KEEP_SECONDS = 30 * 86_400  # final overrides stay listable this long (the audit log keeps them)
_REFUSALS: dict[str, tuple[type[AdminRequestError], str]] = {
    "missing": (OverrideNotFound, "no such override"),
    "same_admin": (SameApprover, "dual control: a different admin must approve this override"),
    "expired": (PreconditionFailed, "the override expired before it was approved"),
    "approved": (PreconditionFailed, "the override was already approved"),
}


def baseline_key(organisation: str, attribute: BaselineAttribute | None = None) -> str:
    key = f"admitd:risk:baseline:{organisation}"
    return key if attribute is None else f"{key}:{attribute.value}"


class BaselineStore:
    def __init__(
        self,
        client: redis.Redis,
        state: RiskStateStore,
        audit: AuditEvents,
        *,
        default_threshold: float = 0.5,
        override_ttl_seconds: int = 86_400,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis, self._state, self._audit, self._clock = client, state, audit, clock
        self._default_threshold, self._override_ttl = default_threshold, override_ttl_seconds
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, OrgBaseline]] = {}
        self._approve = self._redis.register_script(APPROVE_SCRIPT)

    @property
    def default_threshold(self) -> float:
        return self._default_threshold

    def cached(self, organisation: str) -> OrgBaseline | None:
        """The cached baseline if still fresh (no I/O: for the hot path), else None."""
        entry = self._cache.get(organisation)
        if entry is None or time.monotonic() - entry[0] >= self._cache_seconds:
            return None
        return entry[1]

    async def get(self, organisation: str) -> OrgBaseline:
        """The cached copy, or one pipelined read; an org without one gets an empty baseline."""
        cached = self.cached(organisation)
        if cached is not None:
            return cached
        baseline = await self.load(organisation)
        self._cache[organisation] = (time.monotonic(), baseline)
        return baseline

    async def load(self, organisation: str) -> OrgBaseline:
        """Always read from Redis."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for attribute in BaselineAttribute:
                pipe.smembers(baseline_key(organisation, attribute))
            pipe.hget(baseline_key(organisation), "threshold")
            os_families, browsers, devices, threshold = await pipe.execute()
        return OrgBaseline(
            organisation,
            os_families=frozenset(os_families),
            browser_families=frozenset(browsers),
            device_ids=frozenset(devices),
            threshold=float(threshold) if threshold is not None else None,
        )

    async def request_override(self, request: OverrideRequest, requested_by: str) -> Override:
        """Store a pending override (it does nothing until another admin approves it)."""
        request = check_request(request)
        if request.kind is OverrideKind.RAISE_THRESHOLD:
            current = await self._threshold(request.organisation)
            if request.threshold is None or request.threshold <= current:
                raise PreconditionFailed(f"the threshold is already {current}; ask for more")
        now = self._clock()
        override = Override(
            new_override_id(), request, requested_by, now, now + self._override_ttl,
            OverrideStatus.PENDING,
        )  # fmt: skip
        key = override_key(override.override_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=cast(Any, fields_from_override(override)))
            pipe.expire(key, self._override_ttl + _KEEP_SECONDS)
            pipe.zadd(OVERRIDE_INDEX, {override.override_id: now})
            await pipe.execute()
        self._audit.record("risk.override.requested", audit_fields(override))
        return override

    async def approve_override(self, override_id: str, approved_by: str) -> Override:
        """Approve and apply. Refused (and audited) for the requester, or when the
        override is unknown, expired or already approved."""
        now, outcome = self._clock(), "missing"
        if is_override_id(override_id):
            outcome = await cast(
                Any,
                self._approve(
                    keys=[override_key(override_id)], args=[approved_by, now, _KEEP_SECONDS]
                ),
            )
        if outcome != "ok":
            self._audit.record(
                "risk.override.refused",
                {"override_id": override_id[:64], "by": approved_by, "why": str(outcome)},
            )
            kind, message = _REFUSALS.get(
                str(outcome), (PreconditionFailed, f"override is {outcome}")
            )
            raise kind(message)
        override = await self.get_override(override_id)
        await self._apply(override)
        await cast(Any, self._redis.hset(override_key(override_id), "applied", "1"))
        self._audit.record(
            "risk.override.approved", audit_fields(override, approved_by=approved_by)
        )
        return override

    async def get_override(self, override_id: str) -> Override:
        if not is_override_id(override_id):
            raise OverrideNotFound("no such override")
        fields = await cast(Any, self._redis.hgetall(override_key(override_id)))
        if not fields:
            raise OverrideNotFound("no such override")
        return override_from_fields(override_id, fields, self._clock())

    async def list_overrides(
        self, organisation: str = "", *, pending_only: bool = False
    ) -> list[Override]:
        """Newest first; damaged or vanished records are skipped (and logged)."""
        ids = await cast(Any, self._redis.zrevrange(OVERRIDE_INDEX, 0, 999))
        async with self._redis.pipeline(transaction=False) as pipe:
            for override_id in ids:
                pipe.hgetall(override_key(override_id))
            records = await pipe.execute()
        overrides, now = [], self._clock()
        for override_id, fields in zip(ids, records, strict=True):
            try:
                overrides.append(override_from_fields(override_id, fields, now))
            except (KeyError, ValueError):
                if fields:
                    log.warning("skipping damaged override record %s", override_id)
        return [
            o
            for o in overrides
            if (not organisation or o.request.organisation == organisation)
            and (not pending_only or o.status is OverrideStatus.PENDING)
        ]

    async def _threshold(self, organisation: str) -> float:
        baseline = await self.load(check_organisation(organisation))
        return baseline.threshold if baseline.threshold is not None else self._default_threshold

    async def _apply(self, override: Override) -> None:
        r, now = override.request, self._clock()
        if r.kind is OverrideKind.TRUST_DEVICE:
            await self._state.trust_device(r.user_id, r.device_id, now)
            return
        if r.kind is OverrideKind.RAISE_THRESHOLD and r.threshold is not None:
            # Only ever raises: a later, higher approval is not undone by an older one.
            current = await self._threshold(r.organisation)
            if r.threshold > current:
                key = baseline_key(r.organisation)
                await cast(Any, self._redis.hset(key, "threshold", repr(r.threshold)))
        elif r.attribute is not None:
            await cast(Any, self._redis.sadd(baseline_key(r.organisation, r.attribute), r.value))
        self._cache.pop(r.organisation, None)
