"""Sealed records in Redis: walk them, re-wrap old key versions, count versions in use.

A sealed record is a Redis string value, or a hash field value, holding the JSON
envelope form (`json_from_envelope`), under a key matching one of the configured
patterns (default `admitd:*`). Anything else found there is skipped.

These walks run from `admitd keys` commands, not from the server: re-encryption
awaits the KMS port but keeps the synchronous Redis client, since the command's
own event loop has nothing else to run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from admitd.envelope.format import envelope_from_json, is_envelope_json, json_from_envelope
from admitd.envelope.rewrap import is_current, rewrap_envelope
from admitd.errors import EnvelopeError, KmsError
from admitd.kms.base import AsyncKms

__all__ = ["ReencryptReport", "reencrypt_records", "state_key", "versions_in_use"]

logger = logging.getLogger(__name__)

# Compare-and-set, so a writer that replaced the record since we read it wins.
_CAS_STRING = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end
return 0"""
_CAS_HASH = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end
return 0"""
_CAS_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class _Item:
    key: bytes
    field: bytes | None  # None for a string value
    value: bytes


@dataclass(slots=True)
class ReencryptReport:
    """Running counts of one re-encryption pass (mutable: updated per record)."""

    alias: str
    target_version: int
    scanned_keys: int = 0
    rewrapped: int = 0
    current: int = 0
    other: int = 0  # not an envelope, or another alias
    malformed: int = 0
    failed: int = 0  # old version that would not unwrap (retired, wrong key)
    conflicts: int = 0  # kept changing under us; the next run retries them
    resumed: bool = False

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.conflicts == 0 and self.malformed == 0


def state_key(alias: str) -> str:
    """Where the SCAN position of an interrupted re-encryption is kept."""
    return f"admitd:kms:reencrypt:{alias}"


def _scan(
    client: redis.Redis, patterns: Sequence[str], batch: int, start: tuple[int, int]
) -> Iterator[tuple[int, int, list[_Item], int]]:
    """Yield (pattern index, next cursor, items, keys scanned) per SCAN batch."""
    for index in range(start[0], len(patterns)):
        cursor = start[1] if index == start[0] else 0
        while True:
            cursor, keys = cast(
                tuple[int, list[bytes]], client.scan(cursor, match=patterns[index], count=batch)
            )
            yield index, cursor, _items(client, keys), len(keys)
            if cursor == 0:
                break


def _items(client: redis.Redis, keys: list[bytes]) -> list[_Item]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    types = cast(list[bytes], pipe.execute())
    strings = [k for k, t in zip(keys, types, strict=True) if t == b"string"]
    values = cast(list[bytes | None], client.mget(strings)) if strings else []
    items = [_Item(k, None, v) for k, v in zip(strings, values, strict=True) if v is not None]
    for key in (k for k, t in zip(keys, types, strict=True) if t == b"hash"):
        fields = cast(Iterator[tuple[bytes, bytes]], client.hscan_iter(key, count=100))
        items += [_Item(key, f, v) for f, v in fields]
    return items


def versions_in_use(
    client: redis.Redis, alias: str, *, patterns: Sequence[str], batch: int = 500
) -> Counter[int]:
    """Number of sealed records per key version of `alias` (a full SCAN, no index)."""
    counts: Counter[int] = Counter()
    for _index, _cursor, items, _scanned in _scan(client, patterns, batch, (0, 0)):
        for item in items:
            if is_envelope_json(item.value):
                try:
                    envelope = envelope_from_json(item.value)
                except EnvelopeError:
                    continue
                if envelope.alias == alias:
                    counts[envelope.key_version] += 1
    return counts


async def reencrypt_records(
    client: redis.Redis,
    kms: AsyncKms,
    alias: str,
    *,
    patterns: Sequence[str],
    batch: int = 500,
    restart: bool = False,
    progress: Callable[[ReencryptReport], None] | None = None,
) -> ReencryptReport:
    """Re-wrap every record of `alias` not under the active version; resumable, idempotent.

    The SCAN position is saved in `state_key(alias)` after each batch, so an
    interrupted run continues where it stopped; records it re-wrapped already
    are simply found current again.
    """
    report = ReencryptReport(alias, await kms.active_version(alias))
    start = (0, 0) if restart else _load_state(client, report, patterns)
    cas = (client.register_script(_CAS_STRING), client.register_script(_CAS_HASH))
    for index, cursor, items, scanned in _scan(client, patterns, batch, start):
        for item in items:
            await _visit(client, kms, cas, item, report)
        report.scanned_keys += scanned
        _save_state(client, report, patterns, index, cursor)
        if progress is not None:
            progress(report)
    client.delete(state_key(alias))
    return report


def _load_state(
    client: redis.Redis, report: ReencryptReport, patterns: Sequence[str]
) -> tuple[int, int]:
    raw = cast(dict[bytes, bytes], client.hgetall(state_key(report.alias)))
    # A rotation since the interrupted run moves the target: start over.
    same = raw.get(b"target_version") == str(report.target_version).encode()
    if not same or raw.get(b"patterns") != "\n".join(patterns).encode():
        return (0, 0)
    report.resumed = True
    return (int(raw[b"pattern_index"]), int(raw[b"cursor"]))


def _save_state(
    client: redis.Redis, report: ReencryptReport, patterns: Sequence[str], index: int, cursor: int
) -> None:
    if cursor == 0:  # pattern finished: resume at the next one
        index, cursor = index + 1, 0
    items: list[str | int] = ["target_version", report.target_version]
    items += ["patterns", "\n".join(patterns), "pattern_index", index, "cursor", cursor]
    client.hset(state_key(report.alias), items=items)


async def _visit(
    client: redis.Redis, kms: AsyncKms, cas: tuple[Any, Any], item: _Item, report: ReencryptReport
) -> None:
    for _attempt in range(_CAS_ATTEMPTS):
        outcome = await _rewrap_one(kms, item, report)
        if outcome is None:
            return
        if _compare_and_set(cas, item, outcome):
            report.rewrapped += 1
            return
        fresh = _reread(client, item)
        if fresh is None:
            return  # deleted meanwhile: nothing left to protect
        item = fresh
    report.conflicts += 1
    logger.warning("re-encrypt: %r kept changing; left for the next run", item.key)


async def _rewrap_one(kms: AsyncKms, item: _Item, report: ReencryptReport) -> bytes | None:
    """The re-wrapped JSON for `item`, or None after counting why there is none."""
    if not is_envelope_json(item.value):
        report.other += 1
        return None
    try:
        envelope = envelope_from_json(item.value)
    except EnvelopeError as exc:
        report.malformed += 1
        logger.warning("re-encrypt: %r is a malformed envelope: %s", item.key, exc)
        return None
    if envelope.alias != report.alias:
        report.other += 1
        return None
    if await is_current(envelope, kms):
        report.current += 1
        return None
    try:
        return json_from_envelope(await rewrap_envelope(envelope, kms)).encode()
    except KmsError as exc:
        report.failed += 1
        logger.error("re-encrypt: %r v%d: %s", item.key, envelope.key_version, exc)
        return None


def _compare_and_set(cas: tuple[Any, Any], item: _Item, new: bytes) -> bool:
    if item.field is None:
        return bool(cas[0](keys=[item.key], args=[item.value, new]))
    return bool(cas[1](keys=[item.key], args=[item.field, item.value, new]))


def _reread(client: redis.Redis, item: _Item) -> _Item | None:
    if item.field is None:
        value = cast(bytes | None, client.get(item.key))
    else:
        value = cast(bytes | None, client.hmget(item.key, [item.field])[0])
    return None if value is None else _Item(item.key, item.field, value)
