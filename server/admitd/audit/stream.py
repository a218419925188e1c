"""Compare-and-append into one Redis stream shared by every replica (one Lua call per batch).

Redis Lua has no SHA-256, so hashes are computed here; the script only checks
that the stream's last entry is still the head this replica chained onto and,
if so, adds the whole batch atomically. Otherwise it answers the real head and
the batch is re-chained (cheap: the envelopes do not depend on the position).
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
local ids = {}
for i = 4, #ARGV, 5 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'v', '1', 'seq', ARGV[i],
    'prev', ARGV[i + 1], 'digest', ARGV[i + 2], 'hash', ARGV[i + 3], 'env', ARGV[i + 4])
end
return {1, ids, ''}
"""


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
        self._script = client.register_script(_APPEND)
        self._head = ChainHead.genesis()

    async def append(self, entries: Sequence[SealedEntry]) -> list[str]:
        """Chain and add `entries` in order; StoreUnavailable when Redis cannot take them."""
        for attempt in range(_MAX_ATTEMPTS):
            links = list(links_after(self._head, (e.digest for e in entries)))
            args: list[str | int] = [self._head.seq, self._head.hash.hex(), GENESIS.hex()]
            for link, entry in zip(links, entries, strict=True):
                args += [link.seq, link.prev.hex(), link.digest.hex(), link.hash.hex()]
                args.append(entry.envelope)
            reply = await self._script(keys=[self._key], args=args)
            status, value, extra = cast(list[object], reply)
            if status == 1:
                self._head = ChainHead(links[-1].seq, links[-1].hash)
                return [str(i) for i in cast(list[object], value)]
            if status == -1:
                raise AuditStreamCorrupted(
                    f"audit stream {self._key}: tail {value} has no seq/hash"
                )
            self._head = _head_from_reply(self._key, value, extra)
            # Lost a race: back off a random, growing moment so racing replicas spread out.
            await asyncio.sleep(random.uniform(0, 0.001 * (attempt + 1)))  # noqa: S311
        raise StoreUnavailable(f"audit append: head kept moving after {_MAX_ATTEMPTS} attempts")


def _head_from_reply(key: str, seq: object, hash_hex: object) -> ChainHead:
    try:
        head = ChainHead(int(str(seq)), bytes.fromhex(str(hash_hex)))
    except ValueError:
        raise AuditStreamCorrupted(f"audit stream {key}: tail seq/hash unreadable") from None
    if len(head.hash) != 32:
        raise AuditStreamCorrupted(f"audit stream {key}: tail hash is not 32 bytes")
    return head
