"""Build a redis.asyncio client from a URL; the client raises admitd errors, never redis-py's.

Supported: `redis://`, `rediss://` (TLS), `unix://`,
`redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]`,
`redis+cluster://[:password@]host:port[,host:port...]`.

Every client built here maps errors at the library boundary, once, with the table in
`admitd.sessions.redis_errors`: command execution (including EVAL and PUBLISH), a
pipeline's or transaction's `execute`, a registered `Script`, and pub/sub commands
and reads. Adapters built on it (session store, risk state, baselines, audit, MFA
state, passkeys) therefore see only `StoreUnavailable` and its subclasses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, ClusterPubSub, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, KeyT, ScriptTextT

from admitd.sessions.redis_errors import mapped_redis_errors
from admitd.sessions.redis_url import (
    ClusterUrl,
    SentinelUrl,
    check_plain_scheme,
    cluster_url,
    is_cluster,
    is_sentinel,
    sentinel_url,
)

__all__ = ["client_from_url"]

_TIMEOUT = 0.5  # seconds: well inside Envoy's ext_authz timeout


def client_from_url(url: str, *, timeout: float = _TIMEOUT) -> redis.Redis:
    if is_sentinel(url):
        return _sentinel_client(sentinel_url(url), timeout)
    if is_cluster(url):
        return _cluster_client(cluster_url(url), timeout)
    check_plain_scheme(url)
    return _Redis.from_url(
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


def _cluster_client(url: ClusterUrl, timeout: float) -> redis.Redis:
    """Any reachable nodes seed it. Every key admitd writes for a user carries the user's
    hash tag, so multi-key pipelines and transactions stay on one slot."""
    cluster = _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in url.seeds],
        password=url.password,
        ssl=url.tls,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=_one_retry(),
    )
    # RedisCluster answers every command admitd uses, with the same signatures.
    return cast(redis.Redis, cluster)


def _sentinel_client(url: SentinelUrl, timeout: float) -> redis.Redis:
    sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
        list(url.sentinels), socket_timeout=timeout, password=url.password
    )
    master = sentinel.master_for(
        url.service,
        redis_class=_Redis,
        decode_responses=True,
        db=url.db,
        socket_timeout=timeout,
        password=url.password,
    )
    return cast(redis.Redis, master)


class _Redis(redis.Redis):
    """A standalone or Sentinel-managed client whose every way to Redis maps errors."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        with mapped_redis_errors(str(args[0])):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)

    def pubsub(self, **kwargs: Any) -> PubSub:
        return _PubSub(self.connection_pool, event_dispatcher=self._event_dispatcher, **kwargs)

    # The override error is redis-py's own: its async mixin narrows the sync one's return.
    def register_script(self, script: ScriptTextT) -> AsyncScript:  # type: ignore[override]
        return _Script(self, script)


class _Pipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        with mapped_redis_errors(_pipeline_name(len(self))):
            return await super().execute(raise_on_error)


class _PubSub(PubSub):
    async def execute_command(self, *args: EncodableT) -> Any:
        with mapped_redis_errors(str(args[0])):
            return await super().execute_command(*args)

    async def parse_response(self, block: bool = True, timeout: float = 0) -> Any:
        with mapped_redis_errors("pub/sub read"):
            return await super().parse_response(block, timeout)


class _Script(AsyncScript):
    """Inner EVALSHA calls are not mapped, so redis-py can still reload on NOSCRIPT."""

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: redis.Redis | RedisCluster | None = None,
    ) -> Any:
        with mapped_redis_errors(f"EVALSHA {self.sha[:12]}"):
            return await super().__call__(keys, args, client)


class _Cluster(RedisCluster):
    """A Redis Cluster client whose every way to Redis maps errors (as `_Redis`)."""

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:
        with mapped_redis_errors("CLUSTER SLOTS"):
            return await super().initialize(*args, **kwargs)

    async def execute_command(self, *args: EncodableT, **kwargs: Any) -> Any:
        with mapped_redis_errors(str(args[0])):
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises: unsupported
        # redis-py's stubs call ClusterPipeline abstract; redis-py instantiates it too.
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]

    def pubsub(
        self,
        node: ClusterNode | None = None,
        host: str | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> ClusterPubSub:
        return _ClusterPubSub(self, node=node, host=host, port=port, **kwargs)

    # The override error is redis-py's own: its async mixin narrows the sync one's return.
    def register_script(self, script: ScriptTextT) -> AsyncScript:  # type: ignore[override]
        return _Script(self, script)


class _ClusterPipeline(ClusterPipeline):
    async def initialize(self) -> ClusterPipeline:
        with mapped_redis_errors("CLUSTER SLOTS"):
            return await super().initialize()

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        with mapped_redis_errors(_pipeline_name(len(self))):
            return await super().execute(raise_on_error, allow_redirections)


class _ClusterPubSub(ClusterPubSub):
    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with mapped_redis_errors(str(args[0])):
            return await super().execute_command(*args, **kwargs)

    async def parse_response(self, block: bool = True, timeout: float = 0) -> Any:
        with mapped_redis_errors("pub/sub read"):
            return await super().parse_response(block, timeout)


def _pipeline_name(commands: int) -> str:
    return f"pipeline of {commands}"  # a transaction's too: MULTI/EXEC is redis-py's detail
