"""`admitd audit export`: decrypted entries as JSON lines, with their hashes and the
checkpoints that cover them, so the same `verify` command checks the file offline."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO, cast

import redis

from admitd.audit.sources import StreamPage, record_from_fields, records_from_stream, stream_items
from admitd.audit.verify import Record, decisions_in
from admitd.errors import EnvelopeError, KmsError

__all__ = ["ExportReport", "export_stream"]

Opener = Callable[[str], bytes]


@dataclass(frozen=True, slots=True)
class ExportReport:
    entries: int
    undecryptable: int  # written with `entry: null` and the reason: kept, never skipped
    checkpoints: int
    decisions: int = 0  # what the decrypted entries stand for (a coalesced one: its count)


def export_stream(
    client: redis.Redis, key: str, opener: Opener, out: TextIO, *, since_ms: int
) -> ExportReport:
    """Entries appended at or after `since_ms` (stream-ID time, so the range is contiguous)."""
    newest = cast(StreamPage, client.xrevrange(key, count=1))
    if not newest:
        return ExportReport(0, 0, 0)
    end = newest[0][0]  # a fixed end: checkpoints written meanwhile stay out of range
    first = cast(StreamPage, client.xrange(key, min=str(since_ms), max=end, count=1))
    if not first:
        return ExportReport(0, 0, 0)
    low = record_from_fields(0, first[0][0], first[0][1]).seq
    high = record_from_fields(0, end, newest[0][1]).seq
    checkpoints = _write_checkpoints(client, f"{key}:checkpoints", out, low, high)
    entries = failed = decisions = 0
    for record in records_from_stream(client, key, start=first[0][0], end=end):
        count = _write_entry(out, record, opener)
        failed, decisions = failed + (count == 0), decisions + count
        entries += 1
    return ExportReport(entries, failed, checkpoints, decisions)


def _write_checkpoints(client: redis.Redis, key: str, out: TextIO, low: int, high: int) -> int:
    written = 0
    for _ident, fields in stream_items(client, key):
        seq = fields.get("seq", "")
        if seq.isdigit() and low <= int(seq) <= high:
            out.write(json.dumps({"type": "checkpoint", **fields}, sort_keys=True) + "\n")
            written += 1
    return written


def _write_entry(out: TextIO, record: Record, opener: Opener) -> int:
    """Write one line; returns the decisions the entry stands for (its `count`, else 1),
    or 0 when it could not be decrypted (then it is kept sealed, with the reason)."""
    line: dict[str, object] = {"type": "entry", "id": record.ident, "seq": str(record.seq)}
    line |= {"prev": record.prev.hex(), "digest": record.digest.hex(), "hash": record.hash.hex()}
    failure, count = record.error, 0
    if not failure:
        try:
            plaintext = opener(record.envelope)
            line["entry"] = json.loads(plaintext)
        except (EnvelopeError, KmsError, ValueError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        else:
            found = decisions_in(plaintext)
            count = found if isinstance(found, int) else 1  # verify names a bad count
    if failure:
        line |= {"entry": None, "error": failure, "env": record.envelope}
    out.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
    return count
