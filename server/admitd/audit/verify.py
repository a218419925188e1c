"""Walk a chain in one pass and name its first broken link: modified, deleted, reordered,
truncated tail, corrupted or undecryptable entry, or a checkpoint that does not match."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from admitd.audit.chain import ChainHead, chain_hash
from admitd.audit.checkpoint import Checkpoint
from admitd.envelope import MalformedEnvelope, UnknownEnvelopeVersion
from admitd.errors import EnvelopeError, KmsError

__all__ = ["Problem", "Record", "Report", "verify_chain"]

Opener = Callable[[str], bytes]  # envelope JSON -> canonical plaintext


@dataclass(frozen=True, slots=True)
class Record:
    """One stored entry as read back; `error` says why it could not even be parsed."""

    position: int  # 1-based, in the order the source yields entries
    ident: str  # stream ID, or "line N" of an export file
    seq: int = 0
    prev: bytes = b""
    digest: bytes = b""
    hash: bytes = b""
    envelope: str = ""
    plaintext: bytes | None = None  # exports carry the decrypted entry
    error: str = ""
    error_kind: str = "corrupted"


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # modified | deleted | reordered | truncated | corrupted | undecryptable | checkpoint
    position: int
    ident: str
    seq: int | None
    why: str

    def __str__(self) -> str:
        seq = "" if self.seq is None else f", seq {self.seq}"
        return f"broken at position {self.position} ({self.ident}{seq}): {self.kind}: {self.why}"


@dataclass(frozen=True, slots=True)
class Report:
    entries: int
    head: ChainHead | None
    problem: Problem | None
    content_checked: bool
    seconds: float
    # Decisions and events the entries stand for (a coalesced entry counts its `count`);
    # None when the plaintext was not read (links only).
    decisions: int | None = None


def verify_chain(
    records: Iterable[Record],
    *,
    opener: Opener | None,
    checkpoints: Mapping[int, Checkpoint],
    start: ChainHead | None,
    check_tail: bool,
) -> Report:
    """`start` None trusts the first record's seq/prev (a range); genesis for a whole log.
    Memory stays bounded: one record and one look-ahead at a time."""
    began, walker = time.perf_counter(), _Walker(opener, checkpoints, start)
    problem = walker.walk(iter(records))
    if problem is None and check_tail:
        problem = walker.tail_problem()
    seconds = time.perf_counter() - began
    decisions = walker.decisions if walker.read_plaintext else None
    return Report(walker.count, walker.head, problem, opener is not None, seconds, decisions)


class _Walker:
    def __init__(
        self, opener: Opener | None, checkpoints: Mapping[int, Checkpoint], start: ChainHead | None
    ) -> None:
        self.opener, self.checkpoints, self.head = opener, checkpoints, start
        self.count = 0
        self.decisions, self.read_plaintext = 0, True  # False once an entry had none
        self.last: Record | None = None

    def walk(self, records: Iterator[Record]) -> Problem | None:
        record = next(records, None)
        while record is not None:
            following = next(records, None)
            problem = self.step(record, following)
            if problem is not None:
                return problem
            record = following
        return None

    def step(self, record: Record, following: Record | None) -> Problem | None:
        if record.error:
            return _problem(record, record.error_kind, record.error)
        head = self.head or _trusted_start(record)
        if record.seq != head.seq + 1:
            return _sequence_problem(record, head, following)
        problem = self.content_problem(record) or _link_problem(record, head)
        problem = problem or self.checkpoint_problem(record)
        if problem is None:
            self.head, self.count, self.last = (
                ChainHead(record.seq, record.hash),
                self.count + 1,
                record,
            )
        return problem

    def content_problem(self, record: Record) -> Problem | None:
        plaintext = record.plaintext
        if plaintext is None and self.opener is not None:
            try:
                plaintext = self.opener(record.envelope)
            except (MalformedEnvelope, UnknownEnvelopeVersion) as exc:
                return _problem(record, "corrupted", f"envelope unreadable: {exc}")
            except EnvelopeError as exc:
                return _problem(record, "modified", f"ciphertext fails authentication ({exc})")
            except KmsError as exc:
                return _problem(record, "undecryptable", f"cannot recompute the digest: {exc}")
        if plaintext is None:
            self.read_plaintext = False
            return None
        if hashlib.sha256(plaintext).digest() != record.digest:
            return _problem(record, "modified", "the plaintext does not match its stored digest")
        count = decisions_in(plaintext)
        if isinstance(count, str):
            return _problem(record, "corrupted", count)
        self.decisions += count
        return None

    def checkpoint_problem(self, record: Record) -> Problem | None:
        checkpoint = self.checkpoints.get(record.seq)
        if checkpoint is None or checkpoint.hash == record.hash.hex():
            return None
        return _problem(
            record,
            "checkpoint",
            f"differs from the hash signed at {checkpoint.time} by {checkpoint.instance}:"
            " the chain up to here was rewritten",
        )

    def tail_problem(self) -> Problem | None:
        if not self.checkpoints:
            return None
        newest = self.checkpoints[max(self.checkpoints)]
        seq = self.head.seq if self.head is not None else 0
        if newest.seq <= seq:
            return None
        last = self.last
        return Problem(
            "truncated",
            last.position + 1 if last else 1,
            f"after {last.ident}" if last else "start",
            seq + 1,
            f"the log ends at seq {seq} but a checkpoint signed at {newest.time} covers seq"
            f" {newest.seq}: {newest.seq - seq} entries deleted from the tail",
        )


def decisions_in(plaintext: bytes) -> int | str:
    """How many decisions an entry stands for: its `count` (a coalesced entry), else 1;
    a str says why the count is unreadable."""
    if b'"count":' not in plaintext:  # cheap: only coalesced entries (or a detail) have it
        return 1
    try:
        document = json.loads(plaintext)
    except (ValueError, RecursionError):  # an export's entry may nest past the limit
        return "the entry is not JSON"
    count = document.get("count") if isinstance(document, dict) else None
    if count is None:
        return 1
    if not isinstance(count, str) or not (count.isascii() and count.isdigit()):
        return f"count {count!r} is not a positive decimal integer"
    if count.startswith("0"):
        return f"count {count!r} is not a positive decimal integer"
    return int(count)


def _trusted_start(record: Record) -> ChainHead:
    # A range trusts its first link, except that seq 1 must chain to genesis.
    return ChainHead.genesis() if record.seq == 1 else ChainHead(record.seq - 1, record.prev)


def _problem(record: Record, kind: str, why: str) -> Problem:
    return Problem(kind, record.position, record.ident, record.seq or None, why)


def _sequence_problem(record: Record, head: ChainHead, following: Record | None) -> Problem:
    wanted = head.seq + 1
    if record.seq < wanted:
        return _problem(record, "reordered", f"seq {record.seq} appears after seq {head.seq}")
    if following is not None and following.seq == wanted:
        return _problem(
            record, "reordered", f"seq {record.seq} stands where seq {wanted} belongs (it follows)"
        )
    missing = f"seq {wanted}" if record.seq == wanted + 1 else f"seq {wanted}..{record.seq - 1}"
    return _problem(record, "deleted", f"{missing} missing before this entry")


def _link_problem(record: Record, head: ChainHead) -> Problem | None:
    if chain_hash(record.seq, record.prev, record.digest) != record.hash:
        return _problem(record, "modified", "stored hash does not match its seq, prev and digest")
    if record.prev != head.hash:
        return _problem(
            record,
            "modified",
            f"prev does not match the hash of seq {head.seq}: that entry was modified or replaced",
        )
    return None
