"""Re-wrapping: move an envelope's DEK to the active master key, leaving the data untouched."""

from __future__ import annotations

from dataclasses import replace

from admitd.envelope.format import Envelope
from admitd.kms.base import AsyncKms

__all__ = ["is_current", "rewrap_envelope"]


async def is_current(envelope: Envelope, kms: AsyncKms) -> bool:
    """True when `envelope` is already wrapped under its alias's active version."""
    return envelope.key_version == await kms.active_version(envelope.alias)


async def rewrap_envelope(envelope: Envelope, kms: AsyncKms) -> Envelope:
    """Same nonce, ciphertext and context check; new wrapped DEK and key version.

    The AEAD associated data covers the alias and the context but not the key
    version or wrapped DEK, which is what makes re-wrapping possible without
    touching (or seeing) the plaintext. `kms` is the awaitable port: adapt a
    synchronous provider once with `admitd.kms.adapter.async_kms`.
    """
    if await is_current(envelope, kms):
        return envelope
    dek = await kms.unwrap_dek(envelope.alias, envelope.key_version, envelope.wrapped_dek)
    wrapped = await kms.wrap_dek(envelope.alias, dek)
    return replace(envelope, key_version=wrapped.key_version, wrapped_dek=wrapped.wrapped)
