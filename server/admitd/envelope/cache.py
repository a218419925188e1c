"""A bounded, short-lived in-memory cache of unwrapped data keys (the hot-path shortcut)."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["DataKeys", "DekCache", "data_keys_from_dek"]

_CHECK_INFO = b"admitd/envelope/v1/context-check\x01"

CacheKey = tuple[str, int, bytes]  # alias, key version, wrapped DEK


@dataclass(frozen=True, slots=True)
class DataKeys:
    """What one DEK is used for: the record's AEAD and its context-check key."""

    aead: AESGCM = field(repr=False)
    check_key: bytes = field(repr=False)


def data_keys_from_dek(dek: bytes) -> DataKeys:
    """AEAD over the DEK and a context-check key derived from it.

    The check key is HKDF-Expand (RFC 5869, one block) with the DEK as PRK, so
    the DEK itself is never used as an HMAC key.
    """
    check_key = hmac.new(dek, _CHECK_INFO, hashlib.sha256).digest()
    return DataKeys(AESGCM(dek), check_key)


class DekCache:
    """LRU of at most `max_entries` unwrapped DEKs, each kept `ttl_seconds` at most.

    Keyed by the exact wrapped bytes, so only a DEK the KMS has already
    authenticated is ever served from here.
    """

    def __init__(
        self,
        max_entries: int = 4096,
        ttl_seconds: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_seconds <= 0:
            raise ValueError("DEK cache needs max_entries >= 1 and ttl_seconds > 0")
        self._max, self._ttl, self._clock = max_entries, ttl_seconds, clock
        self._entries: OrderedDict[CacheKey, tuple[float, DataKeys]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> DataKeys | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found[0] <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: CacheKey, keys: DataKeys) -> None:
        with self._lock:
            self._entries[key] = (self._clock() + self._ttl, keys)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every DEK (e.g. after retiring a key version)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
