"""The `dev` provider: deterministic master keys derived from the alias (never in production)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from admitd.errors import KmsError
from admitd.kms.base import KeyState, KeyVersion, WrappedDek, check_alias
from admitd.kms.errors import AliasNotFound, KeyAdminUnsupported, KeyVersionNotFound
from admitd.kms.wrap import MASTER_KEY_BYTES, WRAP_NONCE_BYTES, unwrap_with_key, wrap_with_key

__all__ = ["DevKms", "dev_master_key"]

logger = logging.getLogger(__name__)

# Public by design: anyone can recompute these keys from this file. They exist
# so fixtures and tests sealed in one run open in the next.
_DEV_IKM = b"admitd development master key -- INSECURE, PUBLIC, NOT FOR PRODUCTION"
_DEV_SALT = b"admitd/kms/dev/v1"


def dev_master_key(alias: str, version: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) of a public secret, info = alias NUL version."""
    info = alias.encode() + b"\x00" + version.to_bytes(4, "big")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=MASTER_KEY_BYTES, salt=_DEV_SALT, info=info)
    return hkdf.derive(_DEV_IKM)


class DevKms:
    """Versions 1..`active_version` of each alias, all derivable; refused unless `dev_mode`.

    Only the master keys are deterministic: DEKs and nonces stay random.
    """

    def __init__(
        self,
        aliases: Iterable[str],
        *,
        dev_mode: bool,
        active_version: int = 1,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not dev_mode:
            raise KmsError("the dev KMS provider is refused outside a development build")
        self._aliases = tuple(sorted({check_alias(a) for a in aliases}))
        self._active = active_version
        self._randbytes = randbytes
        self._keys = {
            (a, v): dev_master_key(a, v)
            for a in self._aliases
            for v in range(1, active_version + 1)
        }
        logger.warning(
            "INSECURE: dev KMS provider in use; master keys for %s are derived from public"
            " constants and protect nothing. Never use this outside development.",
            ", ".join(self._aliases),
        )

    def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        key = self._key(alias, self._active)
        nonce = self._randbytes(WRAP_NONCE_BYTES)
        return WrappedDek(self._active, wrap_with_key(key, alias, self._active, dek, nonce))

    def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        return unwrap_with_key(self._key(alias, key_version), alias, key_version, wrapped)

    def active_version(self, alias: str) -> int:
        self._key(alias, self._active)
        return self._active

    def aliases(self) -> tuple[str, ...]:
        return self._aliases

    def versions(self, alias: str) -> tuple[KeyVersion, ...]:
        self._key(alias, self._active)
        return tuple(
            KeyVersion(
                alias, v, KeyState.ACTIVE if v == self._active else KeyState.DECRYPT_ONLY, ""
            )
            for v in range(1, self._active + 1)
        )

    def create_alias(self, alias: str) -> KeyVersion:
        raise KeyAdminUnsupported("dev keys are derived from the alias; nothing to create")

    def rotate(self, alias: str) -> KeyVersion:
        raise KeyAdminUnsupported("dev keys are derived; set kms.dev_active_version instead")

    def retire(self, alias: str, version: int) -> KeyVersion:
        raise KeyAdminUnsupported("dev keys are derived from the alias; nothing to retire")

    def _key(self, alias: str, version: int) -> bytes:
        try:
            return self._keys[(alias, version)]
        except KeyError:
            if alias not in self._aliases:
                raise AliasNotFound(f"no master key for alias {alias}") from None
            raise KeyVersionNotFound(f"{alias} has no version {version}") from None
