"""`Sealer.seal` and `Sealer.open`: AES-256-GCM envelope encryption of one record."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidTag

from admitd.envelope.cache import CacheKey, DataKeys, DekCache, data_keys_from_dek
from admitd.envelope.context import ALIAS_FOR_RECORD_TYPE, Context, RecordType, associated_data
from admitd.envelope.errors import ContextMismatch, TamperedEnvelope
from admitd.envelope.format import CHECK_BYTES, NONCE_BYTES, Envelope
from admitd.errors import AdmitdError, KmsError
from admitd.kms.adapter import async_kms
from admitd.kms.base import DEK_BYTES, AsyncKms, Kms
from admitd.tracing import tracing

__all__ = ["Sealer", "context_check"]

logger = logging.getLogger(__name__)


def context_check(keys: DataKeys, aad: bytes) -> bytes:
    """Keyed commitment to the context, so a wrong context is told apart from tampering."""
    return hmac.new(keys.check_key, aad, hashlib.sha256).digest()[:CHECK_BYTES]


class Sealer:
    """Seals records under the master key of their record type's alias.

    Every `seal` draws a fresh 256-bit DEK and 96-bit nonce, so no (key, nonce)
    pair is ever used twice. `open` returns plaintext only after AES-GCM has
    authenticated it; every failure raises an `EnvelopeError` or `KmsError`.
    Both are awaited: the KMS may be a network call. A synchronous `Kms` is
    adapted once, here (`admitd.kms.adapter.async_kms`); an unwrapped DEK found
    in `cache` is used without awaiting the KMS at all.
    `randbytes` is the test seam for known-answer tests; leave it alone otherwise.
    """

    def __init__(
        self,
        kms: Kms | AsyncKms,
        *,
        aliases: Mapping[RecordType, str] = ALIAS_FOR_RECORD_TYPE,
        cache: DekCache | None = None,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.provider = kms  # as given: key listing (ManagedKms) for the key-age metrics
        self._kms, self._aliases, self._cache = async_kms(kms), aliases, cache
        self._randbytes = randbytes

    async def seal(self, plaintext: bytes, context: Context) -> Envelope:
        """Encrypt `plaintext` for the record named by `context`."""
        alias = self._aliases[context.record_type]
        dek, nonce = self._randbytes(DEK_BYTES), self._randbytes(NONCE_BYTES)
        with tracing.span("kms wrap"):
            wrapped = await self._kms.wrap_dek(alias, dek)
        keys, aad = data_keys_from_dek(dek), associated_data(alias, context)
        ciphertext = keys.aead.encrypt(nonce, plaintext, aad)
        check = context_check(keys, aad)
        return Envelope(alias, wrapped.key_version, wrapped.wrapped, nonce, check, ciphertext)

    async def probe(self) -> str:
        """Whether the KMS wraps and unwraps under every alias in use: "" or what failed.

        A throwaway random DEK goes through the provider and back (the cache is bypassed);
        nothing is stored and the DEK is never logged."""
        for alias in sorted(set(self._aliases.values())):
            dek = self._randbytes(DEK_BYTES)
            wrapped = await self._kms.wrap_dek(alias, dek)
            back = await self._kms.unwrap_dek(alias, wrapped.key_version, wrapped.wrapped)
            if not hmac.compare_digest(back, dek):
                return f"{alias} v{wrapped.key_version}: unwrap returned another key"
        return ""

    async def open(self, envelope: Envelope, context: Context) -> bytes:
        """Decrypt `envelope`, which must have been sealed for exactly `context`."""
        try:
            return await self._open(envelope, context)
        except AdmitdError as exc:
            # Names and numbers only: never a key, a DEK or the plaintext.
            logger.warning(
                "envelope open refused: %s alias=%s key_version=%d record_type=%s",
                type(exc).__name__,
                envelope.alias,
                envelope.key_version,
                context.record_type.value,
            )
            raise

    async def _open(self, envelope: Envelope, context: Context) -> bytes:
        expected = self._aliases[context.record_type]
        if envelope.alias != expected:
            raise ContextMismatch(
                f"envelope sealed under {envelope.alias}, {context.record_type} uses {expected}"
            )
        keys = self._cached_keys(envelope) or await self._unwrapped_keys(envelope)
        aad = associated_data(expected, context)
        same_context = hmac.compare_digest(context_check(keys, aad), envelope.context_check)
        try:
            plaintext = keys.aead.decrypt(envelope.nonce, envelope.ciphertext, aad)
        except InvalidTag:
            # A context mismatch also fails the tag; the check says which it was.
            if not same_context:
                raise ContextMismatch("envelope was sealed for another record") from None
            raise TamperedEnvelope("envelope failed authentication") from None
        if not same_context:
            raise TamperedEnvelope("envelope context check was altered")
        return plaintext

    def _cached_keys(self, envelope: Envelope) -> DataKeys | None:
        # Synchronous on purpose: the hot path (a DEK seen recently) never awaits.
        if self._cache is None:
            return None
        return self._cache.get(_slot(envelope))

    async def _unwrapped_keys(self, envelope: Envelope) -> DataKeys:
        with tracing.span("kms unwrap"):
            dek = await self._kms.unwrap_dek(
                envelope.alias, envelope.key_version, envelope.wrapped_dek
            )
        if len(dek) != DEK_BYTES:
            raise KmsError(f"{envelope.alias} v{envelope.key_version} returned a malformed DEK")
        keys = data_keys_from_dek(dek)
        if self._cache is not None:
            self._cache.put(_slot(envelope), keys)
        return keys


def _slot(envelope: Envelope) -> CacheKey:
    return (envelope.alias, envelope.key_version, envelope.wrapped_dek)
