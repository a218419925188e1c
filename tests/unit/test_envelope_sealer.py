"""Seal/open round trips, typed failures, tampering, the DEK cache, and properties."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admitd.envelope import (
    AliasNotFound,
    Context,
    ContextMismatch,
    DekCache,
    Envelope,
    KeyVersionNotFound,
    MalformedEnvelope,
    RecordType,
    Sealer,
    TamperedEnvelope,
    TruncatedEnvelope,
    UnknownEnvelopeVersion,
    WrongKey,
    bytes_from_envelope,
    envelope_from_bytes,
    envelope_from_json,
    json_from_envelope,
    rewrap_envelope,
)
from admitd.envelope.context import associated_data
from admitd.errors import EnvelopeError, KmsError
from admitd.kms import (
    DEFAULT_ALIASES,
    DevKms,
    LocalKms,
    ManagedKms,
    MemoryKms,
    WrappedDek,
    async_kms,
)
from admitd.kms.local import create_keyring_file

CTX = Context(RecordType.TOTP_SECRET, "user-42", "acme", (("user", "u-42"),))
SECRET = b"JBSWY3DPEHPK3PXP"


def memory_kms() -> ManagedKms:
    return MemoryKms.with_aliases(DEFAULT_ALIASES)


@pytest.fixture(params=["memory", "local", "dev"])
def kms(request: pytest.FixtureRequest, tmp_path: Path) -> ManagedKms:
    if request.param == "local":
        create_keyring_file(tmp_path / "keyring.json", DEFAULT_ALIASES)
        return LocalKms(tmp_path / "keyring.json")
    if request.param == "dev":
        return DevKms(DEFAULT_ALIASES, dev_mode=True)
    return memory_kms()


@pytest.mark.parametrize("record_type", list(RecordType))
async def test_round_trip_every_provider_and_record_type(
    kms: ManagedKms, record_type: RecordType
) -> None:
    sealer = Sealer(kms)
    context = Context(record_type, "r-1", "acme")
    envelope = await sealer.seal(b"sensitive", context)
    assert (
        await sealer.open(envelope_from_json(json_from_envelope(envelope)), context) == b"sensitive"
    )
    assert (
        await sealer.open(envelope_from_bytes(bytes_from_envelope(envelope)), context)
        == b"sensitive"
    )


async def test_record_types_use_their_own_alias() -> None:
    sealer = Sealer(memory_kms())
    aliases = {t: (await sealer.seal(b"x", Context(t, "r", "o"))).alias for t in RecordType}
    assert aliases == {
        RecordType.TOTP_SECRET: "kms/session-secrets",
        RecordType.PASSKEY_CREDENTIAL: "kms/session-secrets",
        RecordType.DEVICE_TELEMETRY: "kms/device-telemetry",
        RecordType.AUDIT_ENTRY: "kms/audit-log",
    }


async def test_fresh_dek_and_nonce_per_record() -> None:
    sealer = Sealer(memory_kms())
    envelopes = [await sealer.seal(SECRET, CTX) for _ in range(200)]
    assert len({e.nonce for e in envelopes}) == 200
    assert len({e.wrapped_dek for e in envelopes}) == 200
    assert len({e.ciphertext for e in envelopes}) == 200


async def test_empty_plaintext() -> None:
    sealer = Sealer(memory_kms())
    assert await sealer.open(await sealer.seal(b"", CTX), CTX) == b""


@pytest.mark.parametrize(
    "other",
    [
        Context(RecordType.TOTP_SECRET, "user-43", "acme", (("user", "u-42"),)),
        Context(RecordType.TOTP_SECRET, "user-42", "evil", (("user", "u-42"),)),
        Context(RecordType.PASSKEY_CREDENTIAL, "user-42", "acme", (("user", "u-42"),)),
        Context(RecordType.AUDIT_ENTRY, "user-42", "acme", (("user", "u-42"),)),
        Context(RecordType.TOTP_SECRET, "user-42", "acme"),
        Context(RecordType.TOTP_SECRET, "user-42", "acme", (("user", "u-4"),)),
    ],
    ids=["record-id", "organisation", "same-alias-type", "other-alias-type", "no-extra", "extra"],
)
async def test_wrong_context(other: Context) -> None:
    sealer = Sealer(memory_kms())
    with pytest.raises(ContextMismatch):
        await sealer.open(await sealer.seal(SECRET, CTX), other)


async def test_extra_order_does_not_matter() -> None:
    sealer = Sealer(memory_kms())
    a = Context(RecordType.AUDIT_ENTRY, "e-1", "acme", (("a", "1"), ("b", "2")))
    b = Context(RecordType.AUDIT_ENTRY, "e-1", "acme", (("b", "2"), ("a", "1")))
    assert await sealer.open(await sealer.seal(SECRET, a), b) == SECRET


async def test_wrong_key() -> None:
    envelope = await Sealer(memory_kms()).seal(SECRET, CTX)
    with pytest.raises(WrongKey):
        await Sealer(memory_kms()).open(envelope, CTX)


async def test_missing_key_version() -> None:
    kms = memory_kms()
    sealer = Sealer(kms)
    envelope = await sealer.seal(SECRET, CTX)
    kms.rotate("kms/session-secrets")
    kms.retire("kms/session-secrets", 1)
    with pytest.raises(KeyVersionNotFound):
        await sealer.open(envelope, CTX)


async def test_unknown_alias() -> None:
    envelope = await Sealer(memory_kms()).seal(SECRET, CTX)
    with pytest.raises(AliasNotFound):
        await Sealer(MemoryKms.with_aliases(["kms/audit-log"])).open(envelope, CTX)


async def test_rotation_keeps_old_versions_for_decrypt_only() -> None:
    kms = memory_kms()
    sealer = Sealer(kms)
    old = await sealer.seal(SECRET, CTX)
    kms.rotate("kms/session-secrets")
    new = await sealer.seal(SECRET, CTX)
    assert (old.key_version, new.key_version) == (1, 2)
    assert await sealer.open(old, CTX) == await sealer.open(new, CTX) == SECRET


async def test_rewrap_changes_only_the_wrapping() -> None:
    kms = memory_kms()
    sealer = Sealer(kms)
    old = await sealer.seal(SECRET, CTX)
    kms.rotate("kms/session-secrets")
    new = await rewrap_envelope(old, async_kms(kms))
    assert new.key_version == 2 and new.wrapped_dek != old.wrapped_dek
    assert (new.nonce, new.ciphertext, new.context_check) == (
        old.nonce,
        old.ciphertext,
        old.context_check,
    )
    kms.retire("kms/session-secrets", 1)
    assert await sealer.open(new, CTX) == SECRET
    assert await rewrap_envelope(new, async_kms(kms)) is new


def _regions(envelope: Envelope) -> Iterator[tuple[str, int, int]]:
    """(name, start, end) of each field of the binary form."""
    sizes = [
        ("magic", 4),
        ("version", 1),
        ("alias_len", 1),
        ("alias", len(envelope.alias)),
        ("key_version", 4),
        ("wrapped_len", 2),
        ("wrapped_dek", len(envelope.wrapped_dek)),
        ("nonce", 12),
        ("context_check", 16),
        ("ciphertext_len", 4),
        ("ciphertext", len(envelope.ciphertext) - 16),
        ("tag", 16),
    ]
    start = 0
    for name, size in sizes:
        yield name, start, start + size
        start += size


EXPECTED: dict[str, tuple[type[Exception], ...]] = {
    "magic": (MalformedEnvelope,),
    "version": (UnknownEnvelopeVersion,),
    "alias_len": (MalformedEnvelope,),
    "alias": (MalformedEnvelope, ContextMismatch),
    "key_version": (KeyVersionNotFound, MalformedEnvelope),
    "wrapped_len": (MalformedEnvelope,),
    "wrapped_dek": (WrongKey,),
    "nonce": (TamperedEnvelope,),
    "context_check": (TamperedEnvelope,),
    "ciphertext_len": (MalformedEnvelope,),
    "ciphertext": (TamperedEnvelope,),
    "tag": (TamperedEnvelope,),
}


@pytest.mark.parametrize("region", list(EXPECTED))
@pytest.mark.parametrize("mask", [0x01, 0x80])
async def test_flipping_any_byte_fails_with_the_regions_error(region: str, mask: int) -> None:
    sealer = Sealer(memory_kms())
    envelope = await sealer.seal(SECRET, CTX)
    data = bytes_from_envelope(envelope)
    _, start, end = next(r for r in _regions(envelope) if r[0] == region)
    for index in range(start, end):
        flipped = bytearray(data)
        flipped[index] ^= mask
        with pytest.raises(EXPECTED[region]):
            await sealer.open(envelope_from_bytes(bytes(flipped)), CTX)


async def test_truncated_envelope() -> None:
    data = bytes_from_envelope(await Sealer(memory_kms()).seal(SECRET, CTX))
    with pytest.raises(TruncatedEnvelope):
        envelope_from_bytes(data[:-1])


async def test_failures_are_logged_without_key_material(caplog: pytest.LogCaptureFixture) -> None:
    dek = bytes(range(32))
    kms = memory_kms()
    sealer = Sealer(kms, randbytes=lambda n: dek if n == 32 else bytes(n))
    envelope = await sealer.seal(SECRET, CTX)
    with caplog.at_level(logging.WARNING), pytest.raises(ContextMismatch):
        await sealer.open(envelope, Context(RecordType.TOTP_SECRET, "x", "acme"))
    (record,) = caplog.records
    text = record.getMessage()
    assert "ContextMismatch" in text and "kms/session-secrets" in text
    for secret in (dek, SECRET, envelope.wrapped_dek):
        assert secret.hex() not in text and repr(secret) not in text
        assert secret.decode("latin-1") not in text


class CountingKms:
    """Wraps a Kms and counts unwraps, to see the cache working."""

    def __init__(self, inner: ManagedKms) -> None:
        self.inner, self.unwraps = inner, 0

    def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        return self.inner.wrap_dek(alias, dek)

    def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        self.unwraps += 1
        return self.inner.unwrap_dek(alias, key_version, wrapped)

    def active_version(self, alias: str) -> int:
        return self.inner.active_version(alias)


async def test_cache_skips_repeated_unwraps_until_ttl() -> None:
    now = [0.0]
    kms = CountingKms(memory_kms())
    sealer = Sealer(kms, cache=DekCache(8, 30.0, clock=lambda: now[0]))
    envelope = await sealer.seal(SECRET, CTX)
    for _ in range(5):
        assert await sealer.open(envelope, CTX) == SECRET
    assert kms.unwraps == 1
    now[0] = 31.0
    await sealer.open(envelope, CTX)
    assert kms.unwraps == 2


async def test_cache_is_bounded() -> None:
    cache = DekCache(3, 60.0)
    kms = CountingKms(memory_kms())
    sealer = Sealer(kms, cache=cache)
    envelopes = [await sealer.seal(SECRET, CTX) for _ in range(5)]
    for envelope in envelopes:
        await sealer.open(envelope, CTX)
    assert len(cache) == 3
    await sealer.open(envelopes[0], CTX)  # evicted: unwrapped again
    assert kms.unwraps == 6


async def test_cache_still_checks_context_and_tag() -> None:
    sealer = Sealer(memory_kms(), cache=DekCache())
    envelope = await sealer.seal(SECRET, CTX)
    await sealer.open(envelope, CTX)
    with pytest.raises(ContextMismatch):
        await sealer.open(envelope, Context(RecordType.TOTP_SECRET, "other", "acme"))
    data = bytearray(bytes_from_envelope(envelope))
    data[-1] ^= 1
    with pytest.raises(TamperedEnvelope):
        await sealer.open(envelope_from_bytes(bytes(data)), CTX)


async def test_failed_unwrap_is_not_cached() -> None:
    cache = DekCache()
    envelope = await Sealer(memory_kms()).seal(SECRET, CTX)
    with pytest.raises(KmsError):
        await Sealer(memory_kms(), cache=cache).open(envelope, CTX)
    assert len(cache) == 0


def test_context_requires_record_id() -> None:
    with pytest.raises(ValueError, match="record_id"):
        Context(RecordType.AUDIT_ENTRY, "", "acme")


PROPERTY_KMS = memory_kms()
texts = st.text(max_size=40)
contexts = st.builds(
    Context,
    st.sampled_from(list(RecordType)),
    st.text(min_size=1, max_size=40),
    texts,
    st.dictionaries(texts, texts, max_size=3).map(lambda d: tuple(d.items())),
)


@given(plaintext=st.binary(max_size=2048), context=contexts)
async def test_property_round_trip(plaintext: bytes, context: Context) -> None:
    sealer = Sealer(PROPERTY_KMS)
    envelope = await sealer.seal(plaintext, context)
    assert await sealer.open(envelope_from_json(json_from_envelope(envelope)), context) == plaintext


@given(plaintext=st.binary(max_size=256), context=contexts, other=contexts)
async def test_property_other_context_never_opens(
    plaintext: bytes, context: Context, other: Context
) -> None:
    if associated_data("kms/x", other) == associated_data("kms/x", context):
        return  # the same context, spelled differently (extra in another order)
    sealer = Sealer(PROPERTY_KMS)
    envelope = await sealer.seal(plaintext, context)
    with pytest.raises(ContextMismatch):
        await sealer.open(envelope, other)


@given(data=st.binary(max_size=300))
def test_property_garbage_never_parses_silently(data: bytes) -> None:
    try:
        envelope_from_bytes(data)
    except EnvelopeError:
        return
    raise AssertionError("random bytes parsed as an envelope")
