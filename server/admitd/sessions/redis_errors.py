"""The one table that turns redis-py's exceptions into admitd's, and the guard that applies it.

Deliberate split (`admitd.errors` draws the hierarchy):

- `StoreUnavailable`: waiting can cure it. The connection failed or timed out, Redis
  is loading its data set, a Sentinel has no master yet, the cluster is down, resharding
  (TRYAGAIN, ASK/MOVED left over) or re-electing (a READONLY replica, MASTERDOWN), the
  pool is exhausted, memory is full (OOM, until keys expire), or a watched transaction
  lost its connection.
- `StoreRefused` (a `StoreUnavailable`): waiting will not cure it. Wrong credentials or
  ACL, a server error reply (a wrong key type, a Lua error: a bug or damaged data), a
  reply that is not Redis protocol, an argument redis-py cannot encode, keys of one
  transaction on several cluster slots.

Only the outermost guarded call maps: redis-py's own logic inside it (the one retry of
a stale pooled connection, a cluster's redirects, `Script` reloading on NOSCRIPT) still
sees redis-py's exceptions.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from redis import exceptions as rx

from admitd.errors import StoreRefused, StoreUnavailable

__all__ = ["mapped_redis_errors", "store_error_from_redis", "store_error_kind"]

_Kind = type[StoreUnavailable]

# Looked up along the exception's MRO, so the most specific entry wins: ClusterDownError
# is also a ResponseError, AuthenticationError also a ConnectionError.
_KIND_BY_CLASS: dict[type[BaseException], _Kind] = {
    OSError: StoreUnavailable,  # sockets and TLS below redis-py; includes TimeoutError
    # Also BusyLoadingError, MaxConnectionsError and Sentinel's MasterNotFoundError.
    rx.ConnectionError: StoreUnavailable,
    rx.TimeoutError: StoreUnavailable,
    rx.ClusterError: StoreUnavailable,  # ClusterDownError, MasterDownError
    rx.TryAgainError: StoreUnavailable,
    rx.AskError: StoreUnavailable,  # MovedError: a redirect the client gave up following
    rx.ReadOnlyError: StoreUnavailable,  # wrote to a master that was just demoted
    rx.OutOfMemoryError: StoreUnavailable,
    rx.WatchError: StoreUnavailable,
    rx.RedisClusterException: StoreUnavailable,  # e.g. "cannot be connected": no node answers
    rx.SlotNotCoveredError: StoreUnavailable,
    rx.AuthenticationError: StoreRefused,
    rx.AuthorizationError: StoreRefused,
    rx.NoPermissionError: StoreRefused,
    rx.CrossSlotTransactionError: StoreRefused,
    rx.InvalidPipelineStack: StoreRefused,
    rx.RedisError: StoreRefused,  # ResponseError, DataError, InvalidResponse, PubSubError...
    rx.ChildDeadlockedError: StoreRefused,
    rx.IncorrectPolicyType: StoreRefused,
}

_inside_guard: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "admitd_inside_redis_guard", default=False
)


def store_error_kind(error: type[BaseException]) -> _Kind | None:
    """The admitd class for a redis-py (or socket) exception class; None: not Redis's."""
    for cls in error.__mro__:
        kind = _KIND_BY_CLASS.get(cls)
        if kind is not None:
            return kind
    return None


def store_error_from_redis(exc: BaseException, operation: str) -> StoreUnavailable | None:
    """The admitd error to raise instead of `exc`, naming `operation` and the error's kind
    only: redis-py's messages may quote the address, keys or values of the command."""
    kind = store_error_kind(type(exc))
    if kind is None:
        return None
    code = _server_error_code(exc)
    return kind(f"Redis {operation}: {type(exc).__name__}{f' {code}' if code else ''}")


@contextlib.contextmanager
def mapped_redis_errors(operation: str) -> Iterator[None]:
    """Raise admitd errors for redis-py's in the block, unless an outer guard will."""
    if _inside_guard.get():
        yield
        return
    token = _inside_guard.set(True)
    try:
        yield
    except Exception as exc:  # BaseException (cancellation) is never a store error
        mapped = store_error_from_redis(exc, operation)
        if mapped is None:
            raise
        raise mapped from exc
    finally:
        _inside_guard.reset(token)


def _server_error_code(exc: BaseException) -> str:
    """The error code of a server reply (WRONGTYPE, NOPERM...), which holds no data."""
    if not isinstance(exc, rx.ResponseError):
        return ""
    code = getattr(exc, "status_code", None)
    words = str(exc).split(" ", 1)
    if code is None and words[0].isalpha() and words[0].isupper():
        code = words[0]
    return code or ""
