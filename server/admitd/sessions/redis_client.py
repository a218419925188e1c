"""Build a redis.asyncio client from a URL, and map redis-py's exceptions in one place.

Supported: `redis://`, `rediss://` (TLS), `unix://`,
`redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import cast
from urllib.parse import unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from admitd.errors import ConfigError, StoreUnavailable

__all__ = ["client_from_url", "store_errors"]

_TIMEOUT = 0.5  # seconds: well inside Envoy's ext_authz timeout


def client_from_url(url: str, *, timeout: float = _TIMEOUT) -> redis.Redis:
    if url.startswith("redis+sentinel://"):
        return _sentinel_client(url, timeout)
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        return _cluster_client(url, timeout)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"unsupported Redis URL scheme in {url.split(':', 1)[0]!r}",
            key="redis_url",
            fix="use redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://",
        )
    return redis.Redis.from_url(
        url,
        # One quick retry: after Redis restarts, pooled connections are stale and the
        # first command on each fails although Redis is back.
        retry=_one_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
    )


def _one_retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.05, base=0.005), retries=1)


def _cluster_client(url: str, timeout: float) -> redis.Redis:
    """`redis+cluster://[:password@]host:port[,host:port...]`: any reachable nodes seed it.

    Every key admitd writes for a user carries the user's hash tag, so multi-key
    pipelines and transactions stay on one slot.
    """
    parts = urlsplit(url)
    seeds = [h.rsplit(":", 1) for h in parts.netloc.rsplit("@", 1)[-1].split(",")]
    if not seeds or not all(len(h) == 2 and h[1].isdigit() for h in seeds):
        raise ConfigError("expected redis+cluster://host:port[,host:port...]", key="redis_url")
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, int(port)) for host, port in seeds],
        password=unquote(parts.password) if parts.password else None,
        ssl=url.startswith("rediss+"),
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=_one_retry(),
    )
    # RedisCluster answers every command admitd uses, with the same signatures.
    return cast(redis.Redis, cluster)


def _sentinel_client(url: str, timeout: float) -> redis.Redis:
    parts = urlsplit(url)
    hosts = [h.rsplit(":", 1) for h in parts.netloc.rsplit("@", 1)[-1].split(",")]
    path = [p for p in parts.path.split("/") if p]
    if not path or not all(len(h) == 2 and h[1].isdigit() for h in hosts):
        raise ConfigError(
            "expected redis+sentinel://host:port[,host:port]/service_name[/db]", key="redis_url"
        )
    password = unquote(parts.password) if parts.password else None
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        [(h, int(p)) for h, p in hosts], socket_timeout=timeout, password=password
    )
    db = int(path[1]) if len(path) > 1 else 0
    master = sentinel.master_for(
        path[0], decode_responses=True, db=db, socket_timeout=timeout, password=password
    )
    return cast(redis.Redis, master)


@contextlib.contextmanager
def store_errors(action: str) -> Iterator[None]:
    """Every redis-py failure (connection, timeout, protocol, server error) -> StoreUnavailable."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"{action}: {type(exc).__name__}") from exc
