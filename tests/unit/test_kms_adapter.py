"""The awaitable KMS port: slow providers off the event loop, fast ones inline, cache hits free."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from admitd.envelope import Context, DekCache, RecordType, Sealer, WrongKey
from admitd.kms import (
    DEFAULT_ALIASES,
    DevKms,
    Kms,
    LocalKms,
    MemoryKms,
    SyncKmsAdapter,
    WrappedDek,
    async_kms,
    create_keyring_file,
)

CTX = Context(RecordType.DEVICE_TELEMETRY, "t-1", "acme")
SECRET = b"device telemetry"
RELEASE_TIMEOUT = 5.0  # a broken adapter fails the test instead of hanging it


class GatedKms:
    """A synchronous provider that blocks, like a device call, until `release` is set.

    Counts calls and how many are inside the provider at once; `reached` is set
    once `wait_for` calls are inside together.
    """

    worker_threads = 1

    def __init__(self, *, wait_for: int = 1) -> None:
        self.inner = MemoryKms.with_aliases(DEFAULT_ALIASES)
        self.release, self.reached = threading.Event(), threading.Event()
        self.wait_for, self.calls, self.in_flight, self.max_in_flight = wait_for, 0, 0, 0
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        with self._call():
            return self.inner.wrap_dek(alias, dek)

    def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        with self._call():
            return self.inner.unwrap_dek(alias, key_version, wrapped)

    def active_version(self, alias: str) -> int:
        with self._call():
            return self.inner.active_version(alias)

    @contextmanager
    def _call(self) -> Iterator[None]:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.threads.append(threading.current_thread().name)
            if self.in_flight >= self.wait_for:
                self.reached.set()
        try:
            if not self.release.wait(RELEASE_TIMEOUT):
                raise TimeoutError("the test never released the provider")
            yield
        finally:
            with self._lock:
                self.in_flight -= 1


class AwaitingKms:
    """An async-native provider (a cloud KMS client): each data-key call awaits `release`."""

    def __init__(self) -> None:
        self.inner = MemoryKms.with_aliases(DEFAULT_ALIASES)
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        self.entered.set()
        await self.release.wait()
        return self.inner.wrap_dek(alias, dek)

    async def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        self.entered.set()
        await self.release.wait()
        return self.inner.unwrap_dek(alias, key_version, wrapped)

    async def active_version(self, alias: str) -> int:
        return self.inner.active_version(alias)


async def another_task_ran() -> bool:
    """Schedule another task and wait for it; with the seal still pending after, the two
    overlapped on one loop."""
    ran = asyncio.Event()

    async def beat() -> None:
        ran.set()

    await asyncio.create_task(beat())
    return ran.is_set()


async def test_a_blocking_provider_does_not_block_the_event_loop() -> None:
    kms = GatedKms()
    sealer = Sealer(kms)
    sealing = asyncio.create_task(sealer.seal(SECRET, CTX))
    # Had the call run on the loop, the loop would sit in it and this would not return
    # before the provider gave up.
    assert await asyncio.to_thread(kms.reached.wait, RELEASE_TIMEOUT)
    assert await another_task_ran()
    assert kms.in_flight == 1 and not sealing.done()  # the seal is still inside the provider
    kms.release.set()
    envelope = await sealing
    assert await sealer.open(envelope, CTX) == SECRET
    assert all(name.startswith("admitd-kms") for name in kms.threads)


async def test_an_async_provider_is_awaited_directly() -> None:
    kms = AwaitingKms()
    assert async_kms(kms) is kms
    sealing = asyncio.create_task(Sealer(kms).seal(SECRET, CTX))
    await asyncio.wait_for(kms.entered.wait(), RELEASE_TIMEOUT)
    assert await another_task_ran()
    assert not sealing.done()
    kms.release.set()
    assert (await sealing).alias == "kms/device-telemetry"


async def test_a_cached_dek_opens_without_calling_or_awaiting_the_provider() -> None:
    kms = GatedKms()
    kms.release.set()
    sealer = Sealer(kms, cache=DekCache())
    envelope = await sealer.seal(SECRET, CTX)
    assert await sealer.open(envelope, CTX) == SECRET  # a miss: unwrapped on the worker
    calls = kms.calls
    opening = sealer.open(envelope, CTX)
    with pytest.raises(StopIteration) as finished:
        opening.send(None)  # done in its first step: nothing was awaited, no thread hop
    assert finished.value.value == SECRET
    assert kms.calls == calls


def in_process_kms(name: str, tmp_path: Path) -> Kms:
    if name == "local":
        create_keyring_file(tmp_path / "keyring.json", DEFAULT_ALIASES)
        return LocalKms(tmp_path / "keyring.json")
    if name == "dev":
        return DevKms(DEFAULT_ALIASES, dev_mode=True)
    return MemoryKms.with_aliases(DEFAULT_ALIASES)


@pytest.mark.parametrize("name", ["memory", "local", "dev"])
def test_in_process_providers_are_called_inline(name: str, tmp_path: Path) -> None:
    sealing = Sealer(in_process_kms(name, tmp_path)).seal(SECRET, CTX)
    with pytest.raises(StopIteration) as finished:
        sealing.send(None)  # no event loop needed: the provider ran right here
    assert finished.value.value.alias == "kms/device-telemetry"


async def test_at_most_worker_threads_calls_reach_a_blocking_provider() -> None:
    kms = GatedKms(wait_for=2)
    sealer = Sealer(SyncKmsAdapter(kms, worker_threads=2))
    sealing = [asyncio.create_task(sealer.seal(SECRET, CTX)) for _ in range(6)]
    assert await asyncio.to_thread(kms.reached.wait, RELEASE_TIMEOUT)
    kms.release.set()
    await asyncio.gather(*sealing)
    assert (kms.calls, kms.max_in_flight) == (6, 2)


async def test_provider_errors_cross_the_thread_unchanged() -> None:
    envelope = await Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES)).seal(SECRET, CTX)
    kms = GatedKms()
    kms.release.set()
    with pytest.raises(WrongKey):
        await Sealer(kms).open(envelope, CTX)


def test_negative_worker_threads_are_refused() -> None:
    with pytest.raises(ValueError, match="worker_threads"):
        SyncKmsAdapter(MemoryKms.with_aliases(DEFAULT_ALIASES), worker_threads=-1)
