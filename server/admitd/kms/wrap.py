"""DEK wrapping shared by every provider: AES-256-GCM bound to alias and key version.

Wrapped form: nonce (12 bytes) || ciphertext of the 32-byte DEK || tag (16 bytes),
60 bytes in all. The PKCS#11 provider computes exactly this inside the token
(CKM_AES_GCM, same nonce and associated data), so the format does not depend on
where the master key lives.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from admitd.kms.base import DEK_BYTES
from admitd.kms.errors import KmsError, WrongKey

__all__ = [
    "MASTER_KEY_BYTES",
    "WRAPPED_DEK_BYTES",
    "WRAP_NONCE_BYTES",
    "check_dek",
    "unwrap_with_key",
    "wrap_aad",
    "wrap_with_key",
]

MASTER_KEY_BYTES = 32
WRAP_NONCE_BYTES = 12
WRAPPED_DEK_BYTES = WRAP_NONCE_BYTES + DEK_BYTES + 16

_WRAP_LABEL = b"admitd/kms/dek-wrap/v1\x00"


def wrap_aad(alias: str, key_version: int) -> bytes:
    """Associated data binding a wrapped DEK to its alias and version.

    A wrapped DEK copied under another alias or version header then fails to
    unwrap even if two versions ever shared key material.
    """
    return _WRAP_LABEL + alias.encode() + b"\x00" + key_version.to_bytes(4, "big")


def check_dek(dek: bytes) -> None:
    """Refuse anything but a 256-bit data key (a programming error upstream)."""
    if len(dek) != DEK_BYTES:
        raise KmsError(f"a data key must be {DEK_BYTES} bytes, got {len(dek)}")


def wrap_with_key(key: bytes, alias: str, key_version: int, dek: bytes, nonce: bytes) -> bytes:
    """Wrap `dek` with master `key`; `nonce` must be fresh random bytes."""
    check_dek(dek)
    sealed = AESGCM(key).encrypt(nonce, dek, wrap_aad(alias, key_version))
    return nonce + sealed


def unwrap_with_key(key: bytes, alias: str, key_version: int, wrapped: bytes) -> bytes:
    """Unwrap a DEK wrapped by `wrap_with_key`; `WrongKey` if it does not authenticate."""
    if len(wrapped) != WRAPPED_DEK_BYTES:
        raise WrongKey(f"wrapped DEK for {alias} v{key_version} has the wrong length")
    nonce, sealed = wrapped[:WRAP_NONCE_BYTES], wrapped[WRAP_NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, sealed, wrap_aad(alias, key_version))
    except InvalidTag:
        raise WrongKey(f"{alias} v{key_version} did not unwrap the DEK") from None
