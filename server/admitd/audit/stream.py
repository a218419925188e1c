"""Compare-and-append into one Redis stream shared by every replica (one Lua call per batch).

Redis Lua has no SHA-256, so hashes are computed here; the script only checks
that the stream's last entry is still the head this replica chained onto and,
if so, adds the whole batch atomically, one stream entry (one chain link) per
audit entry. Otherwise it answers the real head and the batch is re-chained
(cheap: the envelopes do not depend on the position).

An append that timed out may still have gone through (Redis was frozen or slow, not
gone), and the writer then spools and replays that batch. So the script also keeps the
digests of the last `RECENT_DIGESTS` entries in a sorted set beside the stream and
refuses a batch holding one of them, naming which: those entries are dropped and the
rest re-chained, so an entry is never in the chain twice.

The batch travels as one packed argument, not five per entry: redis-py's
per-argument encoding cost ~10 us of CPU per entry, packing ~1.5 us.
Per entry: `<seq> <envelope bytes> <prev hex><digest hex><hash hex><envelope>`;
the length prefix keeps any envelope text from being read as a separator.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import cast

import redis.asyncio as redis

from admitd.audit.chain import GENESIS, ChainHead, Link, links_after
from admitd.audit.sealed import SealedEntry
from admitd.errors import StoreUnavailable

__all__ = ["FORMAT", "AuditStreamCorrupted", "StreamAppender", "stream_fields"]

logger = logging.getLogger("admitd.audit")

FORMAT = "1"
_MAX_ATTEMPTS = 50  # each failed attempt means another replica appended meanwhile
# Digests remembered for the duplicate check: far more than a spool replays at once
# after a timed-out append (~100 bytes each in Redis).
RECENT_DIGESTS = 20_000
_GENESIS_HEX = GENESIS.hex()

_APPEND = """
local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq, hash = '0', ARGV[3]
if #tail > 0 then
  seq, hash = nil, nil
  local f = tail[1][2]
  for i = 1, #f, 2 do
    if f[i] == 'seq' then seq = f[i + 1] elseif f[i] == 'hash' then hash = f[i + 1] end
  end
  if seq == nil or hash == nil then return {-1, tail[1][1], ''} end
end
if seq ~= ARGV[1] or hash ~= ARGV[2] then return {0, seq, hash} end
local packed = ARGV[4]
local function each(visit)
  local pos, n = 1, 0
  while pos <= #packed do
    local gap = string.find(packed, ' ', pos, true)
    local gap2 = string.find(packed, ' ', gap + 1, true)
    local size = tonumber(string.sub(packed, gap + 1, gap2 - 1))
    n = n + 1
    visit(n, string.sub(packed, pos, gap - 1), gap2 + 1, size)
    pos = gap2 + 1 + 192 + size
  end
  return n
end
local seen = {}
each(function(n, s, links, size)
  if redis.call('ZSCORE', KEYS[2], string.sub(packed, links + 64, links + 127)) then
    seen[#seen + 1] = n
  end
end)
if #seen > 0 then return {2, table.concat(seen, ','), ''} end
local added = each(function(n, s, links, size)
  local digest = string.sub(packed, links + 64, links + 127)
  redis.call('XADD', KEYS[1], '*', 'v', '1', 'seq', s,
    'prev', string.sub(packed, links, links + 63), 'digest', digest,
    'hash', string.sub(packed, links + 128, links + 191),
    'env', string.sub(packed, links + 192, links + 191 + size))
  redis.call('ZADD', KEYS[2], tonumber(s), digest)
end)
local kept = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if kept > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, kept - 1) end
return {1, added, ''}
"""


def digests_key(stream_key: str) -> str:
    """The sorted set of recent digests, in the stream's Redis Cluster slot (hash tag)."""
    start = stream_key.find("{")
    if start != -1 and stream_key.find("}", start + 1) > start + 1:
        return stream_key + ":digests"  # the stream's own tag decides the slot
    return "{" + stream_key + "}:digests"


class AuditStreamCorrupted(StoreUnavailable):
    """The stream's last entry has no seq/hash: nothing can chain onto it until fixed."""


def stream_fields(link: Link, envelope: str) -> dict[str, str]:
    """The fields of one stream entry (also what `verify` reads back)."""
    return {
        "v": FORMAT,
        "seq": str(link.seq),
        "prev": link.prev.hex(),
        "digest": link.digest.hex(),
        "hash": link.hash.hex(),
        "env": envelope,
    }


class StreamAppender:
    """Appends sealed entries to `key`, keeping the last head it saw to skip a read."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._client, self._key = client, key
        self._keys = [key, digests_key(key)]
        self._script = client.register_script(_APPEND)
        self._head = ChainHead.genesis()

    async def append(self, entries: Sequence[SealedEntry]) -> int:
        """Chain and add `entries` in order (how many were added); StoreUnavailable when
        Redis cannot take them."""
        for attempt in range(_MAX_ATTEMPTS):
            if not entries:
                return 0
            links = list(links_after(self._head, (e.digest for e in entries)))
            head = self._head
            args: list[int | str | bytes] = [head.seq, head.hash.hex(), _GENESIS_HEX]
            args += [_packed(links, entries), RECENT_DIGESTS]
            reply = await self._script(keys=self._keys, args=args)
            status, value, extra = cast(list[object], reply)
            if status == 1:
                self._head = ChainHead(links[-1].seq, links[-1].hash)
                return int(cast(int, value))
            if status == 2:
                entries = _without_written(self._key, entries, value)
                continue
            if status == -1:
                raise AuditStreamCorrupted(
                    f"audit stream {self._key}: tail {value} has no seq/hash"
                )
            self._head = _head_from_reply(self._key, value, extra)
            # Lost a race: back off a random, growing moment so racing replicas spread out.
            await asyncio.sleep(random.uniform(0, 0.001 * (attempt + 1)))  # noqa: S311
        raise StoreUnavailable(f"audit append: head kept moving after {_MAX_ATTEMPTS} attempts")


def _without_written(
    key: str, entries: Sequence[SealedEntry], numbers: object
) -> list[SealedEntry]:
    """`entries` less those the script found in the stream already (1-based numbers)."""
    text = numbers.decode() if isinstance(numbers, bytes) else str(numbers)
    written = {int(n) - 1 for n in text.split(",")}
    logger.warning(
        "audit: %d entries already in %s (an append that timed out had gone through);"
        " not written twice",
        len(written),
        key,
    )
    return [entry for n, entry in enumerate(entries) if n not in written]


def _packed(links: Sequence[Link], entries: Sequence[SealedEntry]) -> bytes:
    parts: list[bytes] = []
    for link, entry in zip(links, entries, strict=True):
        envelope = entry.envelope.encode()
        hashes = (link.prev + link.digest + link.hash).hex().encode()
        parts += [b"%d %d " % (link.seq, len(envelope)), hashes, envelope]
    return b"".join(parts)


def _head_from_reply(key: str, seq: object, hash_hex: object) -> ChainHead:
    try:
        head = ChainHead(int(str(seq)), bytes.fromhex(str(hash_hex)))
    except ValueError:
        raise AuditStreamCorrupted(f"audit stream {key}: tail seq/hash unreadable") from None
    if len(head.hash) != 32:
        raise AuditStreamCorrupted(f"audit stream {key}: tail hash is not 32 bytes")
    return head
