"""Redis's maxmemory-policy as admitd reads it, on a real server and a real cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from admitd.errors import ConfigError
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_eviction import eviction_policy, refuse_evicting_redis
from tests.integration.redis_cluster import RedisCluster3
from tests.integration.redis_server import RedisServer, RedisServers, has_redis_server

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]


def set_policy(port: int, policy: str) -> None:
    client = redis.Redis(port=port)
    try:
        client.config_set("maxmemory-policy", policy)
    finally:
        client.close()


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "allkeys-random"])
async def test_every_evicting_policy_stops_the_start(
    redis_servers: RedisServers, policy: str
) -> None:
    server: RedisServer = redis_servers.start()
    client = client_from_url(server.url)
    try:
        await refuse_evicting_redis(client)  # the default, noeviction: starts
        set_policy(server.port, policy)
        with pytest.raises(ConfigError) as raised:
            await refuse_evicting_redis(client)
        assert raised.value.key == "redis_url" and policy in str(raised.value)
    finally:
        await client.aclose()


async def test_one_evicting_cluster_node_is_enough(tmp_path: Path) -> None:
    with RedisCluster3(tmp_path / "cluster") as cluster:
        client = client_from_url(cluster.url)
        try:
            assert await eviction_policy(client) == "noeviction"
            set_policy(cluster.ports[2], "allkeys-lfu")
            assert await eviction_policy(client) == "allkeys-lfu"
        finally:
            await client.aclose()


async def test_an_unreachable_redis_does_not_stop_the_start() -> None:
    client = client_from_url("redis://127.0.0.1:1/0", timeout=0.2)
    try:
        assert await eviction_policy(client) is None
        await refuse_evicting_redis(client)  # fails closed later, per Check; warned now
    finally:
        await client.aclose()
