"""Master keys held in process memory: the keyring value and the provider over it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType

from admitd.kms.base import KeyState, KeyVersion, WrappedDek, check_alias
from admitd.kms.errors import AliasNotFound, KeyInUse, KeyVersionNotFound, KmsError
from admitd.kms.wrap import MASTER_KEY_BYTES, WRAP_NONCE_BYTES, unwrap_with_key, wrap_with_key

__all__ = ["KeyEntry", "Keyring", "KeyringKms", "MemoryKms", "utc_now"]

RandBytes = Callable[[int], bytes]


def utc_now() -> str:
    """Current time as RFC 3339 UTC with second precision."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One master-key version; `key` is None once retired (material destroyed)."""

    version: int
    state: KeyState
    created: str
    key: bytes | None = field(default=None, repr=False)
    retired: str = ""


@dataclass(frozen=True, slots=True)
class Keyring:
    """Every alias's versions, oldest first; each alias has exactly one active version."""

    aliases: Mapping[str, tuple[KeyEntry, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def entries(self, alias: str) -> tuple[KeyEntry, ...]:
        try:
            return self.aliases[alias]
        except KeyError:
            raise AliasNotFound(f"no master key for alias {alias}") from None

    def active(self, alias: str) -> KeyEntry:
        return next(e for e in self.entries(alias) if e.state is KeyState.ACTIVE)

    def key_for(self, alias: str, version: int) -> bytes:
        for entry in self.entries(alias):
            if entry.version == version and entry.key is not None:
                return entry.key
            if entry.version == version:
                raise KeyVersionNotFound(f"{alias} v{version} is retired")
        raise KeyVersionNotFound(f"{alias} has no version {version}")

    def with_alias(self, alias: str, key: bytes, now: str) -> Keyring:
        check_alias(alias)
        if alias in self.aliases:
            raise KmsError(f"alias {alias} already exists")
        return self._with(alias, (KeyEntry(1, KeyState.ACTIVE, now, key),))

    def rotated(self, alias: str, key: bytes, now: str) -> Keyring:
        old = self.entries(alias)
        demoted = tuple(
            replace(e, state=KeyState.DECRYPT_ONLY) if e.state is KeyState.ACTIVE else e
            for e in old
        )
        new = KeyEntry(max(e.version for e in old) + 1, KeyState.ACTIVE, now, key)
        return self._with(alias, (*demoted, new))

    def retired(self, alias: str, version: int, now: str) -> Keyring:
        self.key_for(alias, version)  # raises if absent or already retired
        if self.active(alias).version == version:
            raise KeyInUse(f"{alias} v{version} is the active version; rotate first")
        entries = tuple(
            replace(e, state=KeyState.RETIRED, key=None, retired=now) if e.version == version else e
            for e in self.entries(alias)
        )
        return self._with(alias, entries)

    def _with(self, alias: str, entries: tuple[KeyEntry, ...]) -> Keyring:
        return Keyring(MappingProxyType({**self.aliases, alias: entries}))


def public_version(alias: str, entry: KeyEntry) -> KeyVersion:
    return KeyVersion(alias, entry.version, entry.state, entry.created)


class KeyringKms:
    """A `ManagedKms` over a `Keyring`; subclasses decide where the keyring lives."""

    def __init__(self, keyring: Keyring, *, randbytes: RandBytes = os.urandom) -> None:
        self._keyring = keyring
        self._randbytes = randbytes
        self._lock = threading.Lock()

    def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        entry = self._current().active(alias)
        assert entry.key is not None  # an active entry always holds its key
        nonce = self._randbytes(WRAP_NONCE_BYTES)
        return WrappedDek(entry.version, wrap_with_key(entry.key, alias, entry.version, dek, nonce))

    def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        key = self._current().key_for(alias, key_version)
        return unwrap_with_key(key, alias, key_version, wrapped)

    def active_version(self, alias: str) -> int:
        return self._current().active(alias).version

    def aliases(self) -> tuple[str, ...]:
        return tuple(sorted(self._current().aliases))

    def versions(self, alias: str) -> tuple[KeyVersion, ...]:
        return tuple(public_version(alias, e) for e in self._current().entries(alias))

    def create_alias(self, alias: str) -> KeyVersion:
        return self._change(alias, lambda ring, key, now: ring.with_alias(alias, key, now))

    def rotate(self, alias: str) -> KeyVersion:
        return self._change(alias, lambda ring, key, now: ring.rotated(alias, key, now))

    def retire(self, alias: str, version: int) -> KeyVersion:
        self._change(alias, lambda ring, _key, now: ring.retired(alias, version, now))
        return next(v for v in self.versions(alias) if v.version == version)

    def _change(self, alias: str, edit: Callable[[Keyring, bytes, str], Keyring]) -> KeyVersion:
        with self._lock, self._editing() as ring:
            new = edit(ring, self._randbytes(MASTER_KEY_BYTES), utc_now())
            self._commit(new)
            self._keyring = new
        return public_version(alias, new.active(alias))

    # Hooks for persistent keyrings (see `admitd.kms.local`).
    def _current(self) -> Keyring:
        return self._keyring

    def _editing(self) -> AbstractContextManager[Keyring]:
        return nullcontext(self._keyring)

    def _commit(self, keyring: Keyring) -> None:
        """Persist `keyring`; in memory there is nothing to do."""


class MemoryKms(KeyringKms):
    """In-memory test double of a KMS with random keys: the model for a cloud seam."""

    @classmethod
    def with_aliases(
        cls, aliases: Iterable[str], *, randbytes: RandBytes = os.urandom
    ) -> MemoryKms:
        kms = cls(Keyring(), randbytes=randbytes)
        for alias in aliases:
            kms.create_alias(alias)
        return kms
