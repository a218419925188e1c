"""Client certificates that expire soon, seen recently: whom to remind, per issuing CA."""

from __future__ import annotations

__all__ = ["EXPIRING_WITHIN", "SEEN_WITHIN", "ExpiringClients"]

EXPIRING_WITHIN = 30 * 86400.0  # the security policy's rotation lead time
SEEN_WITHIN = 3600.0


class ExpiringClients:
    """Client certificates that expire soon, by fingerprint: whom to remind, per CA.

    `saw` is on the Check path, but only for a certificate within 30 days of expiry
    (ClientCertificates compares one float first); the rest cost nothing here.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._seen: dict[str, tuple[str, float, float]] = {}  # fp -> issuer, notAfter, seen

    def saw(self, fingerprint: str, issuer: str, not_after: float, now: float) -> None:
        if self._seen.pop(fingerprint, None) is None and len(self._seen) >= self._max:
            del self._seen[next(iter(self._seen))]  # the least recently seen
        self._seen[fingerprint] = (issuer, not_after, now)

    def counts(self, now: float) -> dict[str, int]:
        """Per issuer: seen within the last hour, not yet expired, expiring within 30 days."""
        stale = [fp for fp, (_, _, seen) in self._seen.items() if now - seen > SEEN_WITHIN]
        for fingerprint in stale:
            del self._seen[fingerprint]
        counts: dict[str, int] = {}
        for issuer, not_after, _ in self._seen.values():
            if now < not_after <= now + EXPIRING_WITHIN:
                counts[issuer] = counts.get(issuer, 0) + 1
        return counts
