"""A bounded cache of verification verdicts, keyed by the raw forwarded certificate text."""

from __future__ import annotations

from collections.abc import Hashable

from admitd.certs.verify import Verdict

__all__ = ["VerdictCache"]


class VerdictCache:
    """First-in-first-out eviction: cheap on the hot path, and the bound is what matters.

    Keying by the raw text (not the parsed certificate) is what lets a cache hit
    skip URL-decoding, PEM parsing and hashing entirely. Each verdict carries
    the window in which it holds (never past the chain's expiry, nor past the
    nextUpdate of a CRL it was checked against); `clear()` is called whenever
    revocation data changes.
    """

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: dict[Hashable, Verdict] = {}

    def get(self, key: Hashable, timestamp: float) -> Verdict | None:
        verdict = self._entries.get(key)
        if verdict is None or verdict.holds_at(timestamp):
            return verdict
        del self._entries[key]
        return None

    def put(self, key: Hashable, verdict: Verdict) -> None:
        if self._max <= 0:
            return
        if key not in self._entries and len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = verdict

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
