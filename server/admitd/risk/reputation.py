"""IP reputation lists: CIDR files in the common blocklist formats, reloaded when they change.

Accepted per line: an IPv4/IPv6 address or CIDR, optionally followed by a comment
(`#` or `;`, so Spamhaus DROP's `192.0.2.0/24 ; SBL123456` works); blank and
comment-only lines are skipped. Host bits in a CIDR are ignored (`10.0.0.1/8` means
10.0.0.0/8), as firewall tools read them. Anything else is an error naming the
file and line: at start-up a ConfigError, on reload a warning and the previous data kept.

Lookups bisect merged, sorted ranges per address family: O(log n).
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from admitd.errors import ConfigError

__all__ = ["ReputationList", "ip_ranges_from_text"]

log = logging.getLogger(__name__)

_COMMENT = re.compile(r"[#;]")
Range = tuple[int, int]  # first and last address, inclusive


@dataclass(frozen=True, slots=True)
class _Ranges:
    """Merged, sorted, non-overlapping ranges; `starts` mirrors them for bisect."""

    starts: tuple[int, ...]
    ranges: tuple[Range, ...]

    @classmethod
    def of(cls, ranges: Iterable[Range]) -> _Ranges:
        merged: list[Range] = []
        for first, last in sorted(ranges):
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        return cls(tuple(first for first, _ in merged), tuple(merged))

    def __contains__(self, address: int) -> bool:
        index = bisect.bisect_right(self.starts, address) - 1
        return index >= 0 and address <= self.ranges[index][1]


def ip_ranges_from_text(text: str, file: str) -> tuple[list[Range], list[Range]]:
    """(IPv4 ranges, IPv6 ranges) of one list file; ConfigError names the bad line."""
    v4: list[Range] = []
    v6: list[Range] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = _COMMENT.split(raw, maxsplit=1)[0].strip()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            shown = entry if len(entry) <= 60 else entry[:60] + "..."
            raise ConfigError(
                f"not an IP address or CIDR: {shown!r}",
                file=file,
                line=number,
                fix="one address or CIDR per line; comments start with # or ;",
            ) from None
        first, last = int(network.network_address), int(network.broadcast_address)
        (v4 if network.version == 4 else v6).append((first, last))
    return v4, v6


class ReputationList:
    """The union of the configured list files. `contains` is safe from any thread:
    a reload replaces one tuple reference."""

    def __init__(self, files: Sequence[Path]) -> None:
        """Reads every file now; raises ConfigError naming the file (and line) on error."""
        self._files = tuple(files)
        self._signature = self._stat()
        self._data = self._load()
        # Moves with every reload that takes effect: answers derived from the lists
        # (risk.reuse) are only reused within one generation.
        self.generation = 0

    @property
    def size(self) -> int:
        """Merged ranges held (for logs and tests)."""
        v4, v6 = self._data
        return len(v4.ranges) + len(v6.ranges)

    def contains(self, ip: str) -> bool:
        """True if `ip` is listed, or if it is not a parseable address (fail closed)."""
        try:
            address = ipaddress.ip_address(ip.strip().split("%", 1)[0])
        except ValueError:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        v4, v6 = self._data
        return int(address) in (v4 if address.version == 4 else v6)

    def reload_if_changed(self) -> bool:
        """Re-read the files if any changed; True if new data is in use.

        A file that fails to read or parse is logged (file and line) and the
        previous data kept, so a half-written update never empties the list.
        """
        signature = self._stat()
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            self._data = self._load()
            self.generation += 1
        except ConfigError as exc:
            log.warning("reputation lists not reloaded, keeping the previous data: %s", exc)
            return False
        log.info("reputation lists reloaded: %d ranges", self.size)
        return True

    async def watch(self, interval: float) -> None:
        """Poll for changes until cancelled (run it as a background task)."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.reload_if_changed)

    def _stat(self) -> tuple[tuple[int, int, int] | None, ...]:
        signature: list[tuple[int, int, int] | None] = []
        for path in self._files:
            try:
                st = os.stat(path)
            except OSError:
                signature.append(None)
            else:
                signature.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(signature)

    def _load(self) -> tuple[_Ranges, _Ranges]:
        v4: list[Range] = []
        v6: list[Range] = []
        for path in self._files:
            try:
                text = path.read_text(encoding="utf-8", errors="strict")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(
                    f"cannot read reputation list: {reason}",
                    file=str(path),
                    key="risk.reputation_files",
                ) from None
            more_v4, more_v6 = ip_ranges_from_text(text, str(path))
            v4 += more_v4
            v6 += more_v6
        return _Ranges.of(v4), _Ranges.of(v6)
