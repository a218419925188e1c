"""The KMS ports: `Kms` wraps data keys, `AsyncKms` awaits the same, `ManagedKms` administers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from admitd.errors import ConfigError

__all__ = [
    "ALIAS_AUDIT_LOG",
    "ALIAS_DEVICE_TELEMETRY",
    "ALIAS_SESSION_SECRETS",
    "DEFAULT_ALIASES",
    "DEK_BYTES",
    "AsyncKms",
    "KeyState",
    "KeyVersion",
    "Kms",
    "ManagedKms",
    "WrappedDek",
    "check_alias",
    "is_valid_alias",
]

# The sensitive-record classes of the security policy, one master key each, so
# a leak or rotation of one class never touches the others.
ALIAS_SESSION_SECRETS = "kms/session-secrets"  # TOTP secrets, passkey credentials
ALIAS_DEVICE_TELEMETRY = "kms/device-telemetry"
ALIAS_AUDIT_LOG = "kms/audit-log"
DEFAULT_ALIASES = (ALIAS_SESSION_SECRETS, ALIAS_DEVICE_TELEMETRY, ALIAS_AUDIT_LOG)

DEK_BYTES = 32  # AES-256 data encryption keys

_ALIAS = re.compile(r"kms/[a-z0-9][a-z0-9-]{0,62}")


class KeyState(StrEnum):
    """Life cycle of one master-key version: active -> decrypt-only -> retired."""

    ACTIVE = "active"
    DECRYPT_ONLY = "decrypt-only"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """Public facts about one master-key version; never its material."""

    alias: str
    version: int
    state: KeyState
    created: str  # RFC 3339 UTC, "" when the provider does not know


@dataclass(frozen=True, slots=True)
class WrappedDek:
    """A data key wrapped by master-key `key_version` of its alias."""

    key_version: int
    wrapped: bytes


@runtime_checkable
class Kms(Protocol):
    """Wraps and unwraps 32-byte data keys under named master keys.

    This is the seam for cloud KMSs (AWS KMS Encrypt/Decrypt, GCP Cloud KMS,
    Vault transit): an implementation only has to honour these contracts.

    - `wrap_dek` wraps under the alias's *active* version and says which one.
    - `unwrap_dek` accepts any non-retired version; raises `AliasNotFound`,
      `KeyVersionNotFound`, or `WrongKey` when the wrapped bytes do not
      authenticate under that version; other failures raise `KmsError`.
    - Master-key material never leaves the provider through this interface.

    A synchronous provider whose calls block on a device or the network says so
    with a class attribute `worker_threads = n` (n > 0): `admitd.kms.adapter`
    then runs its calls on n worker threads, never on the event loop. Without
    it, calls run inline (in-process keys answer faster than a thread hop).
    """

    def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        """Wrap `dek` under the active version of `alias`."""
        ...

    def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        """Return the DEK that `wrapped` protects, or raise a `KmsError`."""
        ...

    def active_version(self, alias: str) -> int:
        """The version new records are wrapped under."""
        ...


class AsyncKms(Protocol):
    """The `Kms` contracts, awaited: the port `Sealer` and re-encryption call.

    A network provider (cloud KMS, remote HSM) implements this directly; a
    synchronous `Kms` is adapted by `admitd.kms.adapter.async_kms`. Not
    runtime-checkable: a synchronous `Kms` has the same method names.
    """

    async def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        """Wrap `dek` under the active version of `alias`."""
        ...

    async def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        """Return the DEK that `wrapped` protects, or raise a `KmsError`."""
        ...

    async def active_version(self, alias: str) -> int:
        """The version new records are wrapped under."""
        ...


@runtime_checkable
class ManagedKms(Kms, Protocol):
    """A `Kms` whose keys admitd itself creates, rotates and retires."""

    def aliases(self) -> tuple[str, ...]:
        """Every alias the provider holds, sorted."""
        ...

    def versions(self, alias: str) -> tuple[KeyVersion, ...]:
        """Every version of `alias` ever created, oldest first, retired included."""
        ...

    def create_alias(self, alias: str) -> KeyVersion:
        """Create `alias` with an active version 1; `KmsError` if it exists."""
        ...

    def rotate(self, alias: str) -> KeyVersion:
        """Make a new active version; the previous one becomes decrypt-only."""
        ...

    def retire(self, alias: str, version: int) -> KeyVersion:
        """Destroy a decrypt-only version; `KeyInUse` if it is the active one."""
        ...


def is_valid_alias(alias: str) -> bool:
    """True for `kms/<lowercase-name>` aliases (letters, digits, dashes)."""
    return _ALIAS.fullmatch(alias) is not None


def check_alias(alias: str, *, file: str | None = None, key: str | None = None) -> str:
    """Return `alias` or raise `ConfigError` explaining the allowed shape."""
    if not is_valid_alias(alias):
        raise ConfigError(
            f"invalid key alias {alias!r}",
            file=file,
            key=key,
            fix="use kms/<name> with lowercase letters, digits and dashes, e.g. kms/audit-log",
        )
    return alias
