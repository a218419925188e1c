"""A synchronous redis-py client from any URL `admitd serve` accepts, for the offline
tools (`admitd audit verify|export`, `admitd kms`, key custody's re-encryption): an
operator runs them with the deployment's own config, Sentinel and Cluster included.

Errors stay redis-py's here; each tool maps them where it reports them.
"""

from __future__ import annotations

from typing import cast

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from admitd.sessions.redis_url import (
    check_plain_scheme,
    cluster_url,
    is_cluster,
    is_sentinel,
    sentinel_url,
)

__all__ = ["sync_client_from_url"]


def sync_client_from_url(
    url: str, *, decode_responses: bool = False, timeout: float = 10.0
) -> redis.Redis:
    """Sentinel: the current master, looked up again after a failover. Cluster: a
    RedisCluster client (it answers the commands the tools use, with the same signatures)."""
    if is_sentinel(url):
        parts = sentinel_url(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
            list(parts.sentinels), socket_timeout=timeout, password=parts.password
        )
        master = sentinel.master_for(
            parts.service,
            decode_responses=decode_responses,
            db=parts.db,
            socket_timeout=timeout,
            password=parts.password,
        )
        return cast(redis.Redis, master)
    if is_cluster(url):
        seeds = cluster_url(url)
        cluster = RedisCluster(
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call,unused-ignore]
                for host, port in seeds.seeds
            ],
            password=seeds.password,
            ssl=seeds.tls,
            decode_responses=decode_responses,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        return cast(redis.Redis, cluster)
    check_plain_scheme(url)
    return redis.Redis.from_url(url, decode_responses=decode_responses, socket_timeout=timeout)
