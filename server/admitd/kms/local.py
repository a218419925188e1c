"""The `local` provider: master keys from a keyring file, reloaded when it changes."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from admitd.errors import ConfigError
from admitd.kms.errors import KeyVersionNotFound
from admitd.kms.keyring import Keyring, KeyringKms, utc_now
from admitd.kms.keyring_file import keyring_from_file, write_keyring
from admitd.kms.wrap import MASTER_KEY_BYTES

__all__ = ["LocalKms", "create_keyring_file"]

logger = logging.getLogger(__name__)

RandBytes = Callable[[int], bytes]


def _identity(info: os.stat_result) -> tuple[int, int, int]:
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class LocalKms(KeyringKms):
    """Keys from `path`; other processes' rotations are picked up within `reload_seconds`.

    An unknown key version forces an immediate re-read, so a replica can open
    records sealed by a replica that already saw a rotation.
    """

    def __init__(
        self,
        path: Path,
        *,
        reload_seconds: float = 5.0,
        randbytes: RandBytes = os.urandom,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        keyring, info = keyring_from_file(path)
        super().__init__(keyring, randbytes=randbytes)
        self.path = path
        self._seen = _identity(info)
        self._reload_seconds = reload_seconds
        self._clock = clock
        self._checked = clock()

    def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        try:
            return super().unwrap_dek(alias, key_version, wrapped)
        except KeyVersionNotFound:
            if not self._reload_if_changed():
                raise
            return super().unwrap_dek(alias, key_version, wrapped)

    def _current(self) -> Keyring:
        if self._clock() - self._checked >= self._reload_seconds:
            self._reload_if_changed()
        return self._keyring

    def _reload_if_changed(self) -> bool:
        self._checked = self._clock()
        try:
            if _identity(os.stat(self.path)) == self._seen:
                return False
            keyring, info = keyring_from_file(self.path)
        except (OSError, ConfigError) as exc:
            # Keep serving with the keys already loaded; start-up is where a bad
            # keyring is fatal.
            logger.error("keyring reload failed, keeping loaded keys: %s", exc)
            return False
        self._keyring, self._seen = keyring, _identity(info)
        logger.info("keyring reloaded from %s", self.path)
        return True

    @contextmanager
    def _editing(self) -> Iterator[Keyring]:
        # An exclusive lock plus a fresh read, so two concurrent `admitd keys`
        # commands cannot lose each other's versions.
        with _locked(self.path):
            keyring, info = keyring_from_file(self.path)
            self._keyring, self._seen = keyring, _identity(info)
            yield keyring

    def _commit(self, keyring: Keyring) -> None:
        write_keyring(self.path, keyring)
        self._seen = _identity(os.stat(self.path))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def create_keyring_file(
    path: Path, aliases: Iterable[str], *, randbytes: RandBytes = os.urandom
) -> tuple[str, ...]:
    """Create `path` (0600) or add missing `aliases` to it; return the aliases added."""
    with _locked(path):
        keyring = keyring_from_file(path)[0] if path.exists() else Keyring()
        added = tuple(a for a in dict.fromkeys(aliases) if a not in keyring.aliases)
        for alias in added:
            keyring = keyring.with_alias(alias, randbytes(MASTER_KEY_BYTES), utc_now())
        if added or not path.exists():
            write_keyring(path, keyring)
    return added
