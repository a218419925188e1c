"""Sealing entries with the envelope module: ciphertext plus the plaintext digest beside it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from admitd.audit.entry import AuditEntry, canonical_bytes, entry_digest
from admitd.envelope import Context, RecordType, Sealer, envelope_from_json, json_from_envelope

__all__ = ["AUDIT_CONTEXT", "SealedEntry", "entry_opener", "open_entry", "seal_entry"]

# One context for every entry: the chain (seq, prev, digest) already binds each
# ciphertext to its position, and the envelope must open before the position is known.
AUDIT_CONTEXT = Context(RecordType.AUDIT_ENTRY, record_id="admitd-audit-entry", organisation="")


@dataclass(frozen=True, slots=True)
class SealedEntry:
    """An entry ready to chain: SHA-256 of its plaintext and its JSON envelope; `count`
    is how many decisions it stands for (metrics only: the count itself is sealed inside)."""

    digest: bytes
    envelope: str
    count: int = 1

    def spool_line(self) -> bytes:
        """One spool record: a JSON object on one line (`count` only when not 1)."""
        doc: dict[str, object] = {"digest": self.digest.hex(), "envelope": self.envelope}
        if self.count != 1:
            doc["count"] = self.count
        return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


async def seal_entry(sealer: Sealer, entry: AuditEntry) -> SealedEntry:
    """One entry, its own envelope: a fresh data key and nonce (Sealer.seal)."""
    plaintext = canonical_bytes(entry)
    envelope = json_from_envelope(await sealer.seal(plaintext, AUDIT_CONTEXT))
    return SealedEntry(entry_digest(plaintext), envelope, entry.decisions)


async def open_entry(sealer: Sealer, envelope: str) -> bytes:
    """The canonical plaintext; raises EnvelopeError / KmsError as `Sealer.open` does."""
    return await sealer.open(envelope_from_json(envelope), AUDIT_CONTEXT)


@contextmanager
def entry_opener(sealer: Sealer) -> Iterator[Callable[[str], bytes]]:
    """`open_entry` as a plain function, for the synchronous offline tools (verify, export).

    Every call runs on one event loop owned by the context; call it only where no
    loop is running (from async code, await `open_entry` instead).
    """
    # A bare loop, not asyncio.Runner: Runner.run re-installs a SIGINT handler on
    # every call, which tripled the cost of opening one entry.
    loop = asyncio.new_event_loop()
    try:
        yield lambda envelope: loop.run_until_complete(open_entry(sealer, envelope))
    finally:
        loop.close()
