"""`async_kms`: the awaitable `AsyncKms` port over any provider, sync ones inline or on threads."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeGuard, TypeVar, cast

from admitd.kms.base import AsyncKms, Kms, WrappedDek

__all__ = ["SyncKmsAdapter", "async_kms", "is_async_kms"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class SyncKmsAdapter:
    """An `AsyncKms` over a synchronous `Kms`.

    With `worker_threads == 0` every call runs inline on the event loop: keys held
    in process (local keyring, dev, memory) answer in microseconds, less than a
    thread hop costs. Otherwise each call runs on one of `worker_threads`
    dedicated threads, so a slow device or network call never stalls the loop,
    and at most that many calls are inside the provider at once. The threads
    start on first use and are not tied to any one event loop.
    """

    def __init__(self, kms: Kms, *, worker_threads: int = 0) -> None:
        if worker_threads < 0:
            raise ValueError("worker_threads must be 0 (inline) or more")
        self._kms = kms
        self.worker_threads = worker_threads
        self._executor = (
            ThreadPoolExecutor(worker_threads, thread_name_prefix="admitd-kms")
            if worker_threads
            else None
        )

    async def wrap_dek(self, alias: str, dek: bytes) -> WrappedDek:
        return await self._call(self._kms.wrap_dek, alias, dek)

    async def unwrap_dek(self, alias: str, key_version: int, wrapped: bytes) -> bytes:
        return await self._call(self._kms.unwrap_dek, alias, key_version, wrapped)

    async def active_version(self, alias: str) -> int:
        return await self._call(self._kms.active_version, alias)

    async def _call(self, method: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self._executor is None:
            return method(*args, **kwargs)
        # As asyncio.to_thread does: the call sees the caller's context variables.
        call = functools.partial(contextvars.copy_context().run, method, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


def is_async_kms(kms: Kms | AsyncKms) -> TypeGuard[AsyncKms]:
    """True when `kms` implements `AsyncKms` itself (its methods are coroutines)."""
    return inspect.iscoroutinefunction(kms.wrap_dek)


def async_kms(kms: Kms | AsyncKms) -> AsyncKms:
    """`kms` itself if it is already awaitable, else `kms` behind a `SyncKmsAdapter`.

    The adapter runs on as many worker threads as the provider declares in its
    `worker_threads` class attribute (none: inline), see `admitd.kms.base.Kms`.
    Adapt once per provider: each adapter owns its threads.
    """
    if is_async_kms(kms):
        return kms
    sync = cast(Kms, kms)  # TypeGuard narrows only the True branch
    return SyncKmsAdapter(sync, worker_threads=int(getattr(sync, "worker_threads", 0)))
