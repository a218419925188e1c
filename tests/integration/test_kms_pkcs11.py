"""The PKCS#11 provider against a real SoftHSM2 token created in a temporary directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from admitd.envelope import Context, RecordType, Sealer, WrongKey, envelope_from_json
from admitd.envelope import json_from_envelope as to_json
from admitd.kms import KeyInUse, KeyState, KeyVersionNotFound, Kms, ManagedKms, WrappedDek

SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
pytestmark = pytest.mark.skipif(
    not SOFTHSM.exists() or shutil.which("softhsm2-util") is None,
    reason=f"SoftHSM2 not installed ({SOFTHSM} or softhsm2-util missing)",
)
pkcs11_module = pytest.importorskip("admitd.kms.pkcs11", reason="python-pkcs11 not installed")

PIN, LABEL = "1234", "admitd-test"
SO_AND_USER_PIN = ("--so-pin", "12345678", "--pin", PIN)
ALIASES = ("kms/session-secrets", "kms/audit-log")
CTX = Context(RecordType.TOTP_SECRET, "user-1", "acme")


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A token in a temporary directory, with SOFTHSM2_CONF pointing at our own config.

    Module-scoped: SoftHSM2 reads its config once per process (C_Initialize).
    """
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", LABEL, *SO_AND_USER_PIN],
        check=True,
        capture_output=True,
    )
    yield LABEL
    if previous is None:
        del os.environ["SOFTHSM2_CONF"]
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def hsm(token: str) -> Iterator[ManagedKms]:
    kms = pkcs11_module.Pkcs11Kms(str(SOFTHSM), token, PIN)
    for alias in ALIASES:
        kms.create_alias(alias)
    yield kms
    for key in list(kms._keys.values()):  # a clean token for the next test
        key.destroy()
    kms.close()


async def test_round_trip_through_the_token(hsm: ManagedKms) -> None:
    assert isinstance(hsm, Kms)
    sealer = Sealer(hsm)
    envelope = await sealer.seal(b"otpauth secret", CTX)
    assert await sealer.open(envelope_from_json(to_json(envelope)), CTX) == b"otpauth secret"


async def test_token_calls_run_on_the_kms_worker_thread(
    hsm: ManagedKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    wrap = hsm.wrap_dek

    def recording_wrap(alias: str, dek: bytes) -> WrappedDek:
        threads.append(threading.current_thread().name)
        return wrap(alias, dek)

    monkeypatch.setattr(hsm, "wrap_dek", recording_wrap)
    await Sealer(hsm).seal(b"x", CTX)
    assert threads and threads[0].startswith("admitd-kms")
    assert threads[0] != threading.current_thread().name


async def test_concurrent_seals_share_the_session_safely(hsm: ManagedKms) -> None:
    sealer = Sealer(hsm)
    envelopes = await asyncio.gather(*(sealer.seal(b"s%d" % n, CTX) for n in range(20)))
    opened = await asyncio.gather(*(sealer.open(e, CTX) for e in envelopes))
    assert opened == [b"s%d" % n for n in range(20)]


def test_master_key_is_not_extractable(hsm: ManagedKms) -> None:
    import pkcs11
    from pkcs11 import Attribute

    keys = hsm._keys  # type: ignore[attr-defined]
    key = keys[("kms/audit-log", 1)]
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.SENSITIVE] is True
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[Attribute.VALUE]


async def test_keys_persist_in_the_token_across_sessions(hsm: ManagedKms, token: str) -> None:
    envelope = await Sealer(hsm).seal(b"x", CTX)
    other = pkcs11_module.Pkcs11Kms(str(SOFTHSM), token, PIN)
    try:
        assert await Sealer(other).open(envelope, CTX) == b"x"
        assert other.aliases() == tuple(sorted(ALIASES))
    finally:
        other.close()


async def test_rotate_and_retire_in_the_token(hsm: ManagedKms) -> None:
    sealer = Sealer(hsm)
    old = await sealer.seal(b"x", CTX)
    assert hsm.rotate("kms/session-secrets").version == 2
    assert [v.state for v in hsm.versions("kms/session-secrets")] == [
        KeyState.DECRYPT_ONLY,
        KeyState.ACTIVE,
    ]
    assert (await sealer.seal(b"x", CTX)).key_version == 2
    assert await sealer.open(old, CTX) == b"x"
    with pytest.raises(KeyInUse):
        hsm.retire("kms/session-secrets", 2)
    hsm.retire("kms/session-secrets", 1)
    with pytest.raises(KeyVersionNotFound):
        await sealer.open(old, CTX)


def test_wrong_key_from_the_token(hsm: ManagedKms, token: str) -> None:
    wrapped = hsm.wrap_dek("kms/audit-log", bytes(32))
    with pytest.raises(WrongKey):
        hsm.unwrap_dek("kms/audit-log", 1, wrapped.wrapped[:-1] + b"\x00")


def test_local_and_token_wrap_formats_agree(hsm: ManagedKms) -> None:
    wrapped = hsm.wrap_dek("kms/audit-log", bytes(range(32)))
    assert len(wrapped.wrapped) == 60  # nonce || DEK ciphertext || tag, as admitd.kms.wrap
