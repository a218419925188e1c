"""The hash chain: each link is SHA-256 over a label, its position, the previous hash and
the entry's plaintext digest; the first link chains to GENESIS."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["GENESIS", "ChainHead", "Link", "chain_hash", "links_after"]

_LABEL = b"admitd-audit-chain-v1\x00"
GENESIS = hashlib.sha256(b"admitd-audit-genesis-v1").digest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last link of a chain: its position (0 before the first entry) and hash."""

    seq: int
    hash: bytes

    @classmethod
    def genesis(cls) -> ChainHead:
        return cls(0, GENESIS)


@dataclass(frozen=True, slots=True)
class Link:
    """One entry's place in the chain."""

    seq: int
    prev: bytes
    digest: bytes
    hash: bytes


def chain_hash(seq: int, prev: bytes, digest: bytes) -> bytes:
    """SHA-256(label || seq as u64 big-endian || prev (32) || digest (32)).

    Fixed-size fields after a fixed label make the encoding injective; the
    position inside the hash makes a moved entry fail even with a valid prev.
    """
    return hashlib.sha256(_LABEL + seq.to_bytes(8, "big") + prev + digest).digest()


def links_after(head: ChainHead, digests: Iterable[bytes]) -> Iterator[Link]:
    """The links that append `digests`, in order, after `head`."""
    seq, prev = head.seq, head.hash
    for digest in digests:
        seq += 1
        link = Link(seq, prev, digest, chain_hash(seq, prev, digest))
        prev = link.hash
        yield link
