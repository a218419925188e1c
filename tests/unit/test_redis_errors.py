"""redis-py's exceptions become admitd's in one table: every class is decided, no message leaks."""

from __future__ import annotations

import asyncio
import builtins

import pytest
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.sentinel
from redis import exceptions as rx

from admitd.errors import StoreRefused, StoreUnavailable
from admitd.sessions.redis_errors import (
    mapped_redis_errors,
    store_error_from_redis,
    store_error_kind,
)


def redis_exception_classes() -> list[type[BaseException]]:
    """Every exception class in `redis.exceptions`, and every subclass of one that redis-py
    defines elsewhere (Sentinel's, the asyncio client's). Imported above, so all are loaded.

    Left out: the exceptions of redis-py features admitd does not use (multi-database
    failover, token-based re-authentication, its HTTP health checks)."""
    assert redis.sentinel and redis.asyncio.sentinel and redis.asyncio.cluster  # loaded
    found = {
        value
        for value in vars(rx).values()
        if isinstance(value, type) and issubclass(value, BaseException)
        if value.__module__ == rx.__name__
    }
    pending = list(found)
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub.__module__.split(".")[0] == "redis" and sub not in found:
                found.add(sub)
                pending.append(sub)
    return sorted(found, key=_name)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@pytest.mark.parametrize("error", redis_exception_classes(), ids=_name)
def test_every_redis_exception_class_is_mapped(error: type[BaseException]) -> None:
    assert store_error_kind(error) in (StoreUnavailable, StoreRefused)


def test_the_class_list_is_not_trivially_short() -> None:
    names = {cls.__name__ for cls in redis_exception_classes()}
    assert {"ConnectionError", "ClusterDownError", "NoScriptError"} <= names
    assert len(names) > 30


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        # Waiting can cure these: a reconnect, a failover, a reshard, expiring keys.
        (rx.ConnectionError, StoreUnavailable),
        (rx.TimeoutError, StoreUnavailable),
        (rx.BusyLoadingError, StoreUnavailable),
        (rx.MaxConnectionsError, StoreUnavailable),
        (redis.asyncio.sentinel.MasterNotFoundError, StoreUnavailable),
        (rx.ClusterDownError, StoreUnavailable),
        (rx.MasterDownError, StoreUnavailable),
        (rx.TryAgainError, StoreUnavailable),
        (rx.MovedError, StoreUnavailable),
        (rx.ReadOnlyError, StoreUnavailable),
        (rx.OutOfMemoryError, StoreUnavailable),
        (rx.RedisClusterException, StoreUnavailable),
        (rx.SlotNotCoveredError, StoreUnavailable),
        (builtins.ConnectionRefusedError, StoreUnavailable),
        (builtins.TimeoutError, StoreUnavailable),
        # Waiting will not: credentials, ACL, a bug or damaged data.
        (rx.AuthenticationError, StoreRefused),
        (rx.AuthorizationError, StoreRefused),
        (rx.NoPermissionError, StoreRefused),
        (rx.ResponseError, StoreRefused),
        (rx.NoScriptError, StoreRefused),
        (rx.ExecAbortError, StoreRefused),
        (rx.DataError, StoreRefused),
        (rx.InvalidResponse, StoreRefused),
        (rx.ClusterCrossSlotError, StoreRefused),
        (rx.CrossSlotTransactionError, StoreRefused),
        # Not Redis's: a bug in admitd, or the task being cancelled.
        (ValueError, None),
        (asyncio.CancelledError, None),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_the_deliberate_split(error: type[BaseException], kind: type | None) -> None:
    assert store_error_kind(error) is kind


def test_a_server_error_keeps_its_code_and_nothing_else() -> None:
    error = rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    mapped = store_error_from_redis(error, "HGETALL")
    assert isinstance(mapped, StoreRefused)
    assert str(mapped) == "Redis HGETALL: ResponseError WRONGTYPE"


def test_a_connection_error_names_neither_address_nor_secret() -> None:
    error = rx.ConnectionError("Error 111 connecting to 10.0.0.5:6380 for :hunter2@redis. Refused.")
    mapped = store_error_from_redis(error, "GET")
    assert str(mapped) == "Redis GET: ConnectionError"


def test_the_guard_raises_the_admitd_error_from_the_redis_one() -> None:
    cause = rx.TimeoutError("Timeout reading from 127.0.0.1:6379")
    with pytest.raises(StoreUnavailable) as raised, mapped_redis_errors("SET"):
        raise cause
    assert str(raised.value) == "Redis SET: TimeoutError"
    assert raised.value.__cause__ is cause


def test_only_the_outermost_guard_maps() -> None:
    """redis-py's own handling inside a guarded call (Script's reload on NOSCRIPT, a
    retry of a stale connection) must still see redis-py's exception."""
    seen_inside: list[BaseException] = []
    with pytest.raises(StoreRefused, match="EVALSHA"), mapped_redis_errors("EVALSHA"):
        try:
            with mapped_redis_errors("EVALSHA"):
                raise rx.NoScriptError("No matching script")
        except rx.NoScriptError as exc:
            seen_inside.append(exc)
            raise
    assert [type(e) for e in seen_inside] == [rx.NoScriptError]


@pytest.mark.parametrize("error", [ValueError("a bug"), asyncio.CancelledError()], ids=repr)
def test_anything_else_passes_unchanged(error: BaseException) -> None:
    with pytest.raises(type(error)) as raised, mapped_redis_errors("GET"):
        raise error
    assert raised.value is error


async def test_tasks_keep_their_own_guard_state() -> None:
    """The guard is per task: a command of another task is mapped by its own guard."""

    async def failing() -> None:
        with mapped_redis_errors("GET"):
            await asyncio.sleep(0)
            raise rx.ConnectionError("down")

    results = await asyncio.gather(failing(), failing(), return_exceptions=True)
    assert [type(r) for r in results] == [StoreUnavailable, StoreUnavailable]
