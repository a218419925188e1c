"""Read a chain back for verification: from the Redis stream (paged) or an export file."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import cast

import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from admitd.audit.checkpoint import Checkpoint, checkpoint_from_fields, key_id, verify_checkpoint
from admitd.audit.entry import canonical_bytes_from_mapping
from admitd.audit.verify import Problem, Record

__all__ = [
    "CheckpointSet",
    "checkpoints_from_file",
    "checkpoints_from_stream",
    "record_from_fields",
    "records_from_file",
    "records_from_stream",
    "stream_items",
]

PAGE = 1000
StreamPage = list[tuple[str, dict[str, str]]]


def record_from_fields(position: int, ident: str, fields: Mapping[str, str]) -> Record:
    """A stream entry (or export line) as a Record; a missing or garbled field is `corrupted`."""
    try:
        return Record(
            position,
            ident,
            seq=int(fields["seq"]),
            prev=_hash(fields["prev"]),
            digest=_hash(fields["digest"]),
            hash=_hash(fields["hash"]),
            envelope=fields.get("env", ""),
        )
    except KeyError as exc:
        return Record(position, ident, error=f"field {exc.args[0]!r} is missing")
    except (ValueError, TypeError) as exc:
        return Record(position, ident, error=f"field unreadable: {exc}")


def _hash(value: object) -> bytes:
    raw = bytes.fromhex(str(value))
    if len(raw) != 32:
        raise ValueError(f"{value!r} is not a 32-byte hex hash")
    return raw


def records_from_stream(
    client: redis.Redis, key: str, *, start: str = "-", end: str = "+"
) -> Iterator[Record]:
    """Every entry from `start` to `end` (stream IDs), PAGE at a time: bounded memory."""
    position, cursor = 0, start
    while True:
        page = cast(StreamPage, client.xrange(key, min=cursor, max=end, count=PAGE))
        for ident, fields in page:
            position += 1
            yield record_from_fields(position, ident, fields)
        if len(page) < PAGE:
            return
        cursor = "(" + page[-1][0]


class CheckpointSet:
    """Checkpoints by seq, each signature checked; the first bad one is kept as a Problem."""

    def __init__(self, public_key: Ed25519PublicKey | None) -> None:
        self.public_key, self.by_seq = public_key, cast(dict[int, Checkpoint], {})
        self.problem: Problem | None = None
        self.expected_key_id = key_id(public_key) if public_key is not None else ""

    def add(self, position: int, ident: str, fields: Mapping[str, str]) -> None:
        if self.problem is not None or self.public_key is None:
            return  # without the published key a checkpoint proves nothing
        try:
            checkpoint = checkpoint_from_fields(fields)
        except ValueError as exc:
            self._fail(position, ident, None, f"unreadable checkpoint: {exc}")
            return
        if checkpoint.key_id != self.expected_key_id:
            why = f"signed by key {checkpoint.key_id}, expected {self.expected_key_id}"
            self._fail(position, ident, checkpoint.seq, why)
        elif not verify_checkpoint(self.public_key, checkpoint):
            self._fail(position, ident, checkpoint.seq, "signature invalid: forged or altered")
        else:
            self.by_seq[checkpoint.seq] = checkpoint

    def _fail(self, position: int, ident: str, seq: int | None, why: str) -> None:
        self.problem = Problem("checkpoint", position, f"checkpoint {ident}", seq, why)


def checkpoints_from_stream(
    client: redis.Redis, key: str, public_key: Ed25519PublicKey | None
) -> CheckpointSet:
    found = CheckpointSet(public_key)
    for position, (ident, fields) in enumerate(stream_items(client, key), start=1):
        found.add(position, ident, fields)
    return found


def stream_items(client: redis.Redis, key: str) -> Iterator[tuple[str, dict[str, str]]]:
    cursor = "-"
    while True:
        page = cast(StreamPage, client.xrange(key, min=cursor, max="+", count=PAGE))
        yield from page
        if len(page) < PAGE:
            return
        cursor = "(" + page[-1][0]


def _lines(path: Path) -> Iterator[tuple[int, dict[str, object] | None, str]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                doc = json.loads(line)
            except (ValueError, UnicodeDecodeError) as exc:
                yield number, None, f"not JSON: {exc}"
                continue
            except RecursionError:  # nested past the interpreter's limit; admitd writes none
                yield number, None, "not JSON: nested too deeply"
                continue
            yield (number, doc, "") if isinstance(doc, dict) else (number, None, "not an object")


def checkpoints_from_file(path: Path, public_key: Ed25519PublicKey | None) -> CheckpointSet:
    found = CheckpointSet(public_key)
    for number, doc, _error in _lines(path):
        if doc is not None and doc.get("type") == "checkpoint":
            fields = {k: str(v) for k, v in doc.items() if k != "type"}
            found.add(number, f"line {number}", fields)
    return found


def records_from_file(path: Path) -> Iterator[Record]:
    """Entry lines of an export, plaintext re-encoded canonically (one line at a time)."""
    position = 0
    for number, doc, error in _lines(path):
        if doc is not None and doc.get("type") == "checkpoint":
            continue
        position += 1
        ident = f"line {number}"
        if doc is None:
            yield Record(position, ident, error=error)
            continue
        yield _record_from_export(position, ident, doc)


def _record_from_export(position: int, ident: str, doc: Mapping[str, object]) -> Record:
    fields = {k: str(doc[k]) for k in ("seq", "prev", "digest", "hash") if k in doc}
    record = record_from_fields(position, f"{ident} ({doc.get('id', '?')})", fields)
    entry = doc.get("entry")
    if record.error:
        return record
    if not isinstance(entry, dict):
        why = str(doc.get("error") or "no decrypted entry")
        return Record(position, record.ident, seq=record.seq, error=why, error_kind="undecryptable")
    try:
        plaintext = canonical_bytes_from_mapping(entry)
    except (UnicodeEncodeError, RecursionError, ValueError) as exc:
        # A lone surrogate ("\ud800") has no UTF-8, so admitd never sealed one (and a
        # document deep enough to load may still be too deep to re-encode).
        why = f"entry cannot be re-encoded as UTF-8 JSON ({type(exc).__name__})"
        return Record(position, record.ident, seq=record.seq, error=why)
    return Record(
        position,
        record.ident,
        seq=record.seq,
        prev=record.prev,
        digest=record.digest,
        hash=record.hash,
        plaintext=plaintext,
    )
