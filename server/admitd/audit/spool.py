"""The local append-only spool: fsync'd JSON lines, drained in order when Redis returns.

Layout: `<spool>` holds one `SealedEntry.spool_line()` per line (`{"digest", "envelope"}`,
plus `"count"` for a coalesced entry); `<spool>.offset`
holds how many bytes of it are already in Redis (written atomically, fsync'd).
When the whole file has been replayed both are emptied. A line that cannot be
parsed, or (checked by the writer before replaying it, `AuditLog`) whose envelope does not
authenticate or open to its digest, is copied with its byte offset to `<spool>.corrupt`,
logged at ERROR, counted in `admitd_audit_spool_quarantined_total{reason}` and skipped,
so one bad record never blocks the rest, never enters the chain, and no byte is thrown away.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from admitd.audit.metrics import (
    DROPPED,
    SPOOLED,
    TORN,
    UNAUTHENTIC,
    UNREADABLE,
    AuditMetrics,
    QuarantineReason,
)
from admitd.audit.sealed import SealedEntry

__all__ = ["Spool", "SpoolBatch", "sealed_entry_from_line"]

logger = logging.getLogger("admitd.audit")

ALERT_RATIO = 0.8


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """Records read from the spool (each with its byte offset, for a quarantine) and the
    offset to commit once they are in Redis."""

    entries: tuple[SealedEntry, ...]
    positions: tuple[int, ...]
    end_offset: int


def sealed_entry_from_line(line: bytes) -> SealedEntry:
    """Parse one spool line; ValueError (with the reason) when it is not a spool record."""
    doc = json.loads(line)
    if not isinstance(doc, dict) or not {"digest", "envelope"} <= set(doc) <= _LINE_KEYS:
        raise ValueError("not a spool record (expected digest, envelope and maybe count)")
    digest, envelope, count = doc["digest"], doc["envelope"], doc.get("count", 1)
    if not isinstance(digest, str) or not isinstance(envelope, str):
        raise ValueError("spool record fields must be strings")
    if type(count) is not int or count < 1:
        raise ValueError("spool record count must be a positive integer")
    raw = bytes.fromhex(digest)
    if len(raw) != 32:
        raise ValueError("spool record digest is not 32 bytes")
    return SealedEntry(raw, envelope, count)


_LINE_KEYS = {"digest", "envelope", "count"}


class Spool:
    """Thread-safe: the hot path may spill into it while the writer task drains it."""

    def __init__(self, path: Path, max_bytes: int, metrics: AuditMetrics) -> None:
        self.path, self._max, self._metrics = path, max_bytes, metrics
        self._offset_path = path.with_name(path.name + ".offset")
        self._corrupt_path = path.with_name(path.name + ".corrupt")
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._size = self._recover_torn_tail()
        self._offset = self._read_offset()
        self._alerted = False
        self._quarantined: set[int] = set()  # offsets already copied to .corrupt
        self._publish()

    @property
    def full_ratio(self) -> float:
        """How full the spool is, 0.0 to 1.0 (of `max_bytes`)."""
        with self._lock:
            return self._size / self._max

    @property
    def pending(self) -> bool:
        with self._lock:
            return self._offset < self._size

    def append(self, entries: Sequence[SealedEntry]) -> int:
        """Write and fsync `entries`; returns how many fit under `max_bytes` (the rest are lost,
        counted and logged: the bound protects the disk the node needs to keep running)."""
        data = [entry.spool_line() for entry in entries]
        with self._lock:
            room, kept = self._max - self._size, []
            for line in data:
                if len(line) > room:
                    break
                kept.append(line)
                room -= len(line)
            self._write(b"".join(kept))
        decisions = [entry.count for entry in entries]
        self._count(sum(decisions[: len(kept)]), sum(decisions[len(kept) :]))
        return len(kept)

    def read_batch(self, limit: int) -> SpoolBatch:
        """Up to `limit` records after the committed offset (corrupt lines quarantined)."""
        with self._lock:
            start, end = self._offset, self._size
        entries: list[SealedEntry] = []
        positions: list[int] = []
        with self.path.open("rb") as handle:
            handle.seek(start)
            position = start
            while len(entries) < limit and position < end:
                line = handle.readline()
                if self._parse(line, position, entries):
                    positions.append(position)
                position += len(line)
        return SpoolBatch(tuple(entries), tuple(positions), position)

    def quarantine(self, position: int, entry: SealedEntry, why: str) -> None:
        """A record that parsed but must not be replayed: its envelope does not
        authenticate, or opens to another digest (`why`)."""
        self._quarantine(position, entry.spool_line(), "unauthentic record", why, UNAUTHENTIC)

    def commit(self, end_offset: int) -> None:
        """Everything before `end_offset` is in Redis; empty the spool once fully replayed."""
        with self._lock:
            if end_offset >= self._size:
                with self.path.open("r+b") as handle:
                    handle.truncate(0)
                    os.fsync(handle.fileno())
                self._offset_path.unlink(missing_ok=True)
                self._size = self._offset = 0
                self._quarantined.clear()
            else:
                self._write_offset(end_offset)
                self._offset = end_offset
        self._publish()

    def _parse(self, line: bytes, position: int, entries: list[SealedEntry]) -> bool:
        try:
            entries.append(sealed_entry_from_line(line))
        except ValueError as exc:
            self._quarantine(position, line, "unreadable record", str(exc), UNREADABLE)
            return False
        return True

    def _quarantine(
        self, position: int, line: bytes, problem: str, why: str, reason: QuarantineReason
    ) -> None:
        # A batch whose append failed is read again: each record is quarantined once.
        if position in self._quarantined:
            return
        self._quarantined.add(position)
        logger.error(
            "audit spool %s: %s at byte %d (%s), not replayed; kept in %s",
            self.path,
            problem,
            position,
            why,
            self._corrupt_path,
        )
        note = f"# offset {position}: {problem} ({why})\n".encode()
        with self._corrupt_path.open("ab") as bad:
            bad.write(note + line.rstrip(b"\n") + b"\n")
            os.fsync(bad.fileno())
        self._metrics.quarantined.labels(reason).inc()

    def _write(self, data: bytes) -> None:
        if not data:
            return
        with self.path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self._size += len(data)

    def _count(self, kept: int, lost: int) -> None:
        """Counted in decisions (an entry with a count stands for that many)."""
        self._metrics.appends.labels(SPOOLED).inc(kept)
        if lost:
            self._metrics.appends.labels(DROPPED).inc(lost)
            logger.critical(
                "audit spool %s is full (%d bytes): %d decisions LOST", self.path, self._max, lost
            )
        self._publish()

    def _publish(self) -> None:
        ratio = self._size / self._max
        self._metrics.spool_bytes.set(self._size)
        self._metrics.spool_full_ratio.set(ratio)
        if ratio >= ALERT_RATIO and not self._alerted:
            logger.warning(
                "audit spool %s is %.0f%% full (%d of %d bytes): Redis has been unreachable",
                self.path,
                ratio * 100,
                self._size,
                self._max,
            )
        self._alerted = ratio >= ALERT_RATIO

    def _recover_torn_tail(self) -> int:
        """A crash mid-write leaves a line without its newline: quarantine it, keep the rest."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            logger.error("audit spool %s: torn record at byte %d quarantined", self.path, cut)
            with self._corrupt_path.open("ab") as bad:
                bad.write(f"# offset {cut} (torn)\n".encode() + data[cut:] + b"\n")
            self._metrics.quarantined.labels(TORN).inc()
            with self.path.open("r+b") as handle:
                handle.truncate(cut)
                os.fsync(handle.fileno())
        return cut

    def _read_offset(self) -> int:
        try:
            offset = int(self._offset_path.read_text().strip() or "0")
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            # Replaying from the start duplicates entries; skipping could lose them.
            logger.error("audit spool offset %s unreadable (%s): replaying all", self.path, exc)
            return 0
        return offset if 0 <= offset <= self._size else 0

    def _write_offset(self, offset: int) -> None:
        temporary = self._offset_path.with_name(self._offset_path.name + ".tmp")
        with temporary.open("w") as handle:
            handle.write(str(offset))
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self._offset_path)
